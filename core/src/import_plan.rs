//! What an import reads of an opened archive, and in which order: the registry's tables
//! parents first, the tables this version does not apply (checked, never applied), the
//! vector tables, the files in the order their bytes sit in the archive, and whether there
//! are secrets. The server's import of a file (`lvbak import`, a staged upload) and the
//! browser's batch upload both walk this one plan; the per-table rules (file columns, id
//! columns, references) stay in the registry's [`TableSpec`]s the plan hands out.

use std::io::{Read, Seek};

use crate::archive::Archive;
use crate::entry_name::EntryKind;
use crate::registry::{unused_table, TableSpec, TABLES, VECTOR_TABLES};
use crate::secrets::SECRETS_BLOB_ENTRY;

/// An entry of a table this version reads but does not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnusedTable {
    /// The entry.
    pub index: usize,
    /// The name it is listed by (`lancedb:<table>` for a vector table).
    pub table: String,
    /// Whether it is a `lancedb/` entry (checked with the vectors) rather than a `database/`
    /// one (checked before the tables).
    pub vectors: bool,
}

/// One archive's import, in order (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct ImportPlan {
    /// The registry's tables the archive holds, with their entries, parents before children.
    pub tables: Vec<(&'static TableSpec, usize)>,
    /// The tables it holds that this version does not apply, in central-directory order.
    pub unused: Vec<UnusedTable>,
    /// The vector tables that travel, with their entries, in the registry's order.
    pub vectors: Vec<(&'static str, usize)>,
    /// The file entries, in the order their bytes sit in the archive.
    pub files: Vec<usize>,
    /// The entry of the encrypted secrets, if any.
    pub secrets: Option<usize>,
}

impl ImportPlan {
    /// The plan of `archive`.
    pub fn of<R: Read + Seek>(archive: &Archive<R>) -> Self {
        let entries = archive.entries();
        let tables =
            TABLES.iter().filter_map(|spec| archive.table_entry(spec.name).map(|index| (spec, index))).collect();
        let unused = entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| {
                let table = unused_table(&entry.kind)?;
                Some(UnusedTable { index, table, vectors: matches!(entry.kind, EntryKind::VectorTable { .. }) })
            })
            .collect();
        let vectors = VECTOR_TABLES
            .iter()
            .filter_map(|&table| archive.vector_table_entry(table).map(|index| (table, index)))
            .collect();
        let files = archive
            .indices_in_file_order()
            .into_iter()
            .filter(|&index| matches!(entries[index].kind, EntryKind::File { .. }))
            .collect();
        Self { tables, unused, vectors, files, secrets: archive.index_of(SECRETS_BLOB_ENTRY) }
    }

    /// The unused `database/` tables (checked before the tables are applied).
    pub fn unused_row_tables(&self) -> impl Iterator<Item = &UnusedTable> {
        self.unused.iter().filter(|unused| !unused.vectors)
    }

    /// The unused `lancedb/` tables (checked with the vectors).
    pub fn unused_vector_tables(&self) -> impl Iterator<Item = &UnusedTable> {
        self.unused.iter().filter(|unused| unused.vectors)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Cursor;

    use lvbak_tests::corpus;
    use lvbak_tests::zipcraft::{RawEntry, RawZip};

    use super::*;
    use crate::Limits;

    /// An archive whose entries are written children first, with unused tables of both
    /// kinds, files out of name order, vectors and secrets.
    fn archive() -> Archive<Cursor<Vec<u8>>> {
        let mut entries = vec![RawEntry::deflated("manifest.json", &corpus::manifest_json(&[]))];
        for name in [
            "database/messages.ndjson",
            "files/images/bbbbbbbb-1111-4c2b-8a55-0d3e6f7a8b9c.png",
            "database/not_a_lumiverse_table.ndjson",
            "lancedb/embeddings.ndjson",
            "database/chats.ndjson",
            "lancedb/someone_elses_vectors.ndjson",
            "files/images/aaaaaaaa-1111-4c2b-8a55-0d3e6f7a8b9c.png",
            "database/characters.ndjson",
        ] {
            entries.push(RawEntry::deflated(name, b"{\"id\":\"x\"}\n"));
        }
        Archive::open(Cursor::new(RawZip::new(entries).build()), Limits::STANDARD).unwrap()
    }

    #[test]
    fn tables_come_parents_first_files_in_file_order_and_unused_tables_by_kind() {
        let archive = archive();
        let plan = ImportPlan::of(&archive);
        let name = |index: usize| archive.entries()[index].name.clone();
        let tables: Vec<&str> = plan.tables.iter().map(|(spec, _)| spec.name).collect();
        assert_eq!(tables, ["characters", "chats", "messages"]);
        for (spec, index) in &plan.tables {
            assert_eq!(name(*index), format!("database/{}.ndjson", spec.name));
        }
        let unused: Vec<(String, bool)> = plan.unused.iter().map(|u| (u.table.clone(), u.vectors)).collect();
        assert_eq!(
            unused,
            [("not_a_lumiverse_table".to_string(), false), ("lancedb:someone_elses_vectors".to_string(), true)]
        );
        assert_eq!(plan.unused_row_tables().count(), 1);
        assert_eq!(
            plan.unused_vector_tables().map(|u| name(u.index)).collect::<Vec<_>>(),
            ["lancedb/someone_elses_vectors.ndjson"]
        );
        assert_eq!(plan.vectors.iter().map(|(table, _)| *table).collect::<Vec<_>>(), ["embeddings"]);
        assert_eq!(
            plan.files.iter().map(|&index| name(index)).collect::<Vec<_>>(),
            [
                "files/images/bbbbbbbb-1111-4c2b-8a55-0d3e6f7a8b9c.png",
                "files/images/aaaaaaaa-1111-4c2b-8a55-0d3e6f7a8b9c.png"
            ]
        );
        assert_eq!(plan.secrets, None);
    }
}
