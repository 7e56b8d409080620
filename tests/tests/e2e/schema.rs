//! The live SQLite schema against Lumiverse's: every table, column (name, type, NOT NULL,
//! default, primary key) and foreign key of `lumiverse-schema.json` exists as it is there,
//! in the same order; lvbak adds only the columns listed here, after Lumiverse's.

use serde_json::Value;

use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_is_lumiverses() {
    let server = TestServer::start("schema").await;
    let expected: Value = serde_json::from_str(include_str!("../../data/lumiverse-schema.json")).unwrap();
    let tables = expected["tables"].as_object().unwrap();
    assert_eq!(tables.len(), 67);
    let live = serde_json::to_value(server.store.db.schema_facts().unwrap()).unwrap();
    for (name, table) in tables {
        let facts = live.get(name).unwrap_or_else(|| panic!("table {name} is missing"));
        let want = table["columns"].as_array().unwrap();
        let have = facts["columns"].as_array().unwrap();
        assert_eq!(&have[..want.len().min(have.len())], &want[..], "columns of {name}");
        let added: Vec<&str> = have[want.len()..].iter().map(|c| c["name"].as_str().unwrap()).collect();
        let allowed: &[&str] = if name == "import_consumed_tickets" { &["last_used_at"] } else { &[] };
        assert_eq!(added, allowed, "columns lvbak added to {name}");
        let mut want: Vec<Value> = table["foreign_keys"].as_array().cloned().unwrap_or_default();
        let mut have: Vec<Value> = facts["foreign_keys"].as_array().cloned().unwrap_or_default();
        want.sort_by_key(|v| v.to_string());
        have.sort_by_key(|v| v.to_string());
        assert_eq!(have, want, "foreign keys of {name}");
    }
}
