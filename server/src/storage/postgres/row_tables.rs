//! Lumiverse's row tables in PostgreSQL, built from the shape SQLite's migrations give them
//! (`sqlite::schema::shapes`), so both backends have the same tables and columns by
//! construction: brought up to date at every start (tables created, columns added, indexes
//! made, each only if missing), under the migration lock.
//!
//! The mapping (also in ARCHITECTURE.md): a column declared INTEGER is `BIGINT`, REAL is
//! `DOUBLE PRECISION`, TEXT is `TEXT COLLATE "C"` (ordered bytewise, as SQLite's `BINARY`).
//! SQLite keeps a value of another storage class in any column (text in an INTEGER
//! column, a fraction in one); such a value, and text PostgreSQL cannot hold (a NUL
//! character), is kept in the row's `lvbak_odd` (a JSONB object, column → its class and
//! value: `postgres::values`) with the typed column NULL — so no column but the key's is
//! NOT NULL here (the import checks what SQLite's NOT NULL would). Every table also has
//! `lvbak_import`, the import that added the row (what an import takes back or settles).
//! SQLite's defaults become PostgreSQL expressions of the same value.

use crate::storage::sqlite::schema::{Affinity, ColumnShape, TableShape};
use crate::storage::sqlite::{quoted, DbError, DbResult};

/// The column naming the import that added a row.
pub(crate) const IMPORT_COLUMN: &str = "lvbak_import";
/// The column keeping values PostgreSQL's typed columns cannot.
pub(crate) const ODD_COLUMN: &str = "lvbak_odd";

/// The PostgreSQL type of a column of `affinity`.
pub(crate) fn column_type(affinity: Affinity) -> &'static str {
    match affinity {
        Affinity::Integer => "BIGINT",
        Affinity::Real => "DOUBLE PRECISION",
        Affinity::Text => "TEXT COLLATE \"C\"",
    }
}

/// SQLite's default (as its schema spells it) as a PostgreSQL expression of the same value.
fn default_expression(column: &ColumnShape) -> DbResult<String> {
    let Some(default) = column.default.as_deref() else { return Ok("NULL".into()) };
    let expression = match default {
        "unixepoch()" => "(extract(epoch FROM now())::bigint)".to_string(),
        "datetime('now')" => "(to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'))".to_string(),
        "lower(hex(randomblob(16)))" => "(md5(random()::text || clock_timestamp()::text))".to_string(),
        "NULL" => "NULL".to_string(),
        text if text.starts_with('\'') && text.ends_with('\'') && text.len() >= 2 => text.to_string(),
        number if number.parse::<f64>().is_ok() => match column.affinity {
            Affinity::Integer if number.parse::<i64>().is_err() => {
                return Err(DbError::Invalid(format!("{}: a default of {number} in an INTEGER column", column.name)))
            }
            Affinity::Text => format!("'{number}'"),
            _ => number.to_string(),
        },
        other => return Err(DbError::Invalid(format!("{}: no PostgreSQL form of the default {other}", column.name))),
    };
    Ok(expression)
}

/// An index name PostgreSQL accepts (at most 63 bytes), the same for the same parts.
fn index_name(table: &str, parts: &[&str]) -> String {
    let name = format!("lvbak_{table}_{}", parts.join("_")).replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    if name.len() <= 63 {
        return name;
    }
    use sha2::Digest as _;
    let digest = hex::encode(&sha2::Sha256::digest(name.as_bytes())[..8]);
    format!("{}_{digest}", &name[..40])
}

/// The statements that bring one table up to date, each a no-op when it already is.
pub(crate) fn statements(table: &TableShape, ownership_column: Option<&str>) -> DbResult<Vec<String>> {
    let name = quoted(table.name);
    let mut key: Vec<&ColumnShape> = table.columns.iter().filter(|column| column.primary_key > 0).collect();
    key.sort_by_key(|column| column.primary_key);
    let key: Vec<String> = key.iter().map(|column| quoted(&column.name)).collect();
    let mut definitions = Vec::new();
    let mut additions = Vec::new();
    for column in &table.columns {
        let definition = format!(
            "{} {} DEFAULT {}",
            quoted(&column.name),
            column_type(column.affinity),
            default_expression(column)?
        );
        additions.push(format!("ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {definition}"));
        definitions.push(definition);
    }
    for extra in [format!("{IMPORT_COLUMN} BIGINT"), format!("{ODD_COLUMN} JSONB")] {
        additions.push(format!("ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {extra}"));
        definitions.push(extra);
    }
    if !key.is_empty() {
        definitions.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    let mut statements = vec![format!("CREATE TABLE IF NOT EXISTS {name} ({})", definitions.join(", "))];
    statements.extend(additions);
    let mut indexes: Vec<(bool, Vec<&str>)> =
        table.indexes.iter().map(|index| (index.unique, index.columns.iter().map(String::as_str).collect())).collect();
    if let Some(owner) = ownership_column {
        if !indexes.iter().any(|(_, columns)| columns.first() == Some(&owner)) {
            indexes.push((false, vec![owner]));
        }
    }
    // The rows an import added (what settling, scrubbing and taking them back read). The
    // import's number alone: one value per import, so its entries deduplicate and every
    // insert lands on the rightmost page. With the key beside it (until issue 22's speed
    // work) the index was a second copy of the primary key, and maintaining it cost more
    // than a third of a 100,000-character import's time in PostgreSQL.
    let first_key = table.columns.iter().find(|column| column.primary_key == 1).map(|column| column.name.as_str());
    if let Some(first_key) = first_key {
        statements.push(format!("DROP INDEX IF EXISTS {}", index_name(table.name, &[IMPORT_COLUMN, first_key])));
    }
    indexes.push((false, vec![IMPORT_COLUMN]));
    for (unique, columns) in indexes {
        let quoted_columns: Vec<String> = columns.iter().map(|column| quoted(column)).collect();
        statements.push(format!(
            "CREATE {}INDEX IF NOT EXISTS {} ON {name} ({})",
            if unique { "UNIQUE " } else { "" },
            index_name(table.name, &columns),
            quoted_columns.join(", ")
        ));
    }
    Ok(statements)
}

/// The expression of an avatar path's last segment ('\\' taken as '/'): what the avatar
/// indexes hold and the file questions ask by.
pub(crate) fn last_segment_expression(column: &str) -> String {
    format!("regexp_replace(replace({column}, '\\', '/'), '^.*/', '')")
}

/// Indexes over expressions, PostgreSQL's forms of SQLite's (migration 0007).
pub(crate) fn expression_indexes() -> Vec<String> {
    ["characters", "personas"]
        .iter()
        .map(|table| {
            format!(
                "CREATE INDEX IF NOT EXISTS lvbak_{table}_user_avatar_name ON {table} (user_id, ({})) \
                 WHERE avatar_path IS NOT NULL",
                last_segment_expression("avatar_path")
            )
        })
        .collect()
}

/// Brings every registry table up to date (called under the migration lock).
pub(crate) async fn ensure(client: &tokio_postgres::Client) -> DbResult<()> {
    let mut sql = Vec::new();
    for shape in &crate::storage::sqlite::schema::shapes()?.tables {
        let owner = lvbak_core::registry::table_spec(shape.name).map(|spec| match spec.ownership {
            lvbak_core::registry::Ownership::Direct { column } => column,
            lvbak_core::registry::Ownership::Parent { column, .. } => column,
        });
        sql.extend(statements(shape, owner)?);
    }
    sql.extend(expression_indexes());
    let sql = sql.join(";\n");
    // The statements' digest, kept in `lvbak_meta`: a start that would run the same ones
    // again (every command of the CLI) skips them.
    use sha2::Digest as _;
    let digest = hex::encode(sha2::Sha256::digest(sql.as_bytes()));
    let done =
        client.query_opt("SELECT 1 FROM lvbak_meta WHERE key = $1 AND value = $2", &[&TABLES_KEY, &digest]).await?;
    if done.is_some() {
        return Ok(());
    }
    client.batch_execute(&sql).await?;
    client
        .execute(
            "INSERT INTO lvbak_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&TABLES_KEY, &digest],
        )
        .await?;
    Ok(())
}

/// The `lvbak_meta` key of the digest of the statements last run by [`ensure`].
const TABLES_KEY: &str = "row_tables";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every registry table's statements can be made: every default has a PostgreSQL form.
    #[test]
    fn every_table_has_statements() {
        for shape in &crate::storage::sqlite::schema::shapes().unwrap().tables {
            let statements = statements(shape, Some("user_id")).unwrap();
            assert!(statements[0].starts_with("CREATE TABLE IF NOT EXISTS"), "{}", shape.name);
        }
        assert!(index_name(&"t".repeat(80), &["a"]).len() <= 63);
    }
}
