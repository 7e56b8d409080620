//! What a card reads of an archive, read once: the character's row and the rows of the
//! world books it is attached to, with their entries. Each table is streamed once; a line
//! is parsed only when it holds one of the ids looked for (or a `\u` escape, which could
//! spell one), so memory follows the card's own size, not the archive's.
//!
//! Rows are taken as an import keeps them ([`StoredRow`]): of several rows with one id, the
//! first one an import would store wins, as `INSERT OR IGNORE` keeps it.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek};

use memchr::memmem;

use super::book::Book;
use super::ccv3::{attached_book_ids, character_extensions};
use super::js::JsValue;
use super::stored::{under_affinity, Affinity, StoredRow, Table, CHARACTERS, WORLD_BOOKS, WORLD_BOOK_ENTRIES};
use crate::archive::Archive;
use crate::error::{FormatError, Result};
use crate::explore::{clip, ExploreIndex, ID_TEXT};
use crate::line_index::LineIndex;
use crate::ndjson::{parse_row_aligned, UnknownColumns};

/// One character of an archive and the rows its card is built from.
#[derive(Clone, Debug)]
pub struct CharacterRows {
    pub(crate) character: StoredRow,
    /// The attached books the archive has, each once, in the order first attached.
    pub(crate) books: Vec<Book>,
}

impl CharacterRows {
    /// Reads the character whose id is `character_id` (its whole id, not the explorer's
    /// clipped one) and its attached world books. `character_not_found` when the archive
    /// has no such character; `bad_card_data` when it has one that no import would store.
    pub fn read<R: Read + Seek>(archive: &mut Archive<R>, character_id: &str) -> Result<Self> {
        Self::read_from(archive, character_id, None)
    }

    /// [`Self::read`], taking the character's row and its books' entries at the lines the
    /// explorer's index names, through its line indexes (a card from deep in a large table
    /// without inflating everything before it). The rows read are the same: where the
    /// index cannot tell, or finds no row an import keeps, the tables are read as
    /// [`Self::read`] reads them.
    pub fn read_indexed<R: Read + Seek>(
        archive: &mut Archive<R>,
        character_id: &str,
        explorer: &ExploreIndex,
    ) -> Result<Self> {
        Self::read_from(archive, character_id, Some(explorer))
    }

    fn read_from<R: Read + Seek>(
        archive: &mut Archive<R>,
        character_id: &str,
        explorer: Option<&ExploreIndex>,
    ) -> Result<Self> {
        let indexed = explorer.and_then(|explorer| character_lines(explorer, character_id));
        let character = match indexed.map(|lines| find_character(archive, character_id, &lines)) {
            Some(Ok(row)) => row,
            _ => find_character(archive, character_id, &Lines::Scan)?,
        };
        let extensions = character_extensions(&character)?;
        let mut wanted = attached_book_ids(&extensions);
        wanted.sort();
        wanted.dedup();
        let mut books = read_books(archive, &wanted, explorer)?;
        let order = attached_book_ids(&extensions);
        books.sort_by_key(|book| order.iter().position(|id| id == book.id()));
        Ok(Self { character, books })
    }

    /// The first book an import keeps under this id.
    pub(crate) fn book(&self, id: &str) -> Option<&Book> {
        self.books.iter().find(|book| book.id() == id)
    }

    /// The character's id.
    pub fn id(&self) -> &str {
        self.character.text("id").unwrap_or_default()
    }

    /// The character's name.
    pub fn name(&self) -> &str {
        self.character.text("name").unwrap_or_default()
    }
}

/// The characters of an archive an import keeps, as `(id, name)` in archive order: the
/// first storable row of each id, ids whole (where the explorer clips them).
pub fn character_list<R: Read + Seek>(archive: &mut Archive<R>) -> Result<Vec<(String, String)>> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut characters = Vec::new();
    // The empty needle is in every line: every row is parsed.
    scan_table(archive, &CHARACTERS, &[""], |id, row| {
        if let (Some(id), Ok(row)) = (id, row) {
            if seen.insert(id.to_string()) {
                characters.push((id.to_string(), row.text("name").unwrap_or_default().to_string()));
            }
        }
        Ok(true)
    })?;
    Ok(characters)
}

/// A row as an import stores it, or the column that keeps an import from storing it.
type Stored = std::result::Result<StoredRow, &'static str>;

/// Which lines of a table a card reads.
pub(crate) enum Lines<'a> {
    /// Every line holding one of the needles, streaming the table from its start.
    Scan,
    /// These lines (ascending), through the table's line index.
    Indexed(&'a LineIndex, Vec<u64>),
}

/// The lines of the characters the explorer lists under `id` (clipped as it clips ids), if
/// its index can say.
fn character_lines<'e>(explorer: &'e ExploreIndex, id: &str) -> Option<Lines<'e>> {
    let index = explorer.character_lines.as_ref()?;
    let listed = clip(id, ID_TEXT);
    let lines: Vec<u64> =
        explorer.characters.iter().filter(|c| c.id == listed && c.line > 0).map(|c| u64::from(c.line)).collect();
    (!lines.is_empty()).then_some(Lines::Indexed(index, lines))
}

/// Calls `each` with every row of `table` whose line contains one of `needles` (the row's
/// id as written, and the row as stored), until it answers `false`. Every table a card
/// reads has its id as its first column.
pub(crate) fn scan_table<R: Read + Seek>(
    archive: &mut Archive<R>,
    table: &'static Table,
    needles: &[&str],
    each: impl FnMut(Option<&str>, Stored) -> Result<bool>,
) -> Result<()> {
    read_table(archive, table, needles, &Lines::Scan, each)
}

/// [`scan_table`] over `lines`.
fn read_table<R: Read + Seek>(
    archive: &mut Archive<R>,
    table: &'static Table,
    needles: &[&str],
    lines: &Lines<'_>,
    mut each: impl FnMut(Option<&str>, Stored) -> Result<bool>,
) -> Result<()> {
    let Some(entry) = archive.table_entry(table.name) else { return Ok(()) };
    let columns = table.column_names();
    let unknown = UnknownColumns::default();
    let mut row = |name: &str, number: u64, line: &[u8]| -> Result<bool> {
        let values = parse_row_aligned(name, number, line, &columns, &unknown)?;
        let id = values.first().and_then(Option::as_ref).map(|id| under_affinity(Affinity::Text, id));
        let id = id.as_ref().and_then(JsValue::as_str).map(str::to_string);
        each(id.as_deref(), StoredRow::new(table, values))
    };
    if let Lines::Indexed(index, wanted) = lines {
        if index.entry() == entry {
            return index.read_lines(archive, wanted, row);
        }
    }
    let finders: Vec<memmem::Finder<'_>> =
        needles.iter().map(|needle| needle.as_bytes()).chain([b"\\u".as_slice()]).map(memmem::Finder::new).collect();
    let mut lines = archive.ndjson_lines(entry)?;
    let name = lines.entry().to_string();
    while let Some((number, line)) = lines.next_line()? {
        if finders.iter().any(|finder| finder.find(line).is_some()) && !row(&name, number, line)? {
            break;
        }
    }
    Ok(())
}

fn find_character<R: Read + Seek>(
    archive: &mut Archive<R>,
    character_id: &str,
    lines: &Lines<'_>,
) -> Result<StoredRow> {
    let mut found = None;
    let mut refused = None;
    read_table(archive, &CHARACTERS, &[character_id], lines, |id, row| {
        if id != Some(character_id) {
            return Ok(true);
        }
        match row {
            Ok(row) => {
                found = Some(row);
                Ok(false)
            }
            Err(column) => {
                refused = refused.or(Some(column));
                Ok(true)
            }
        }
    })?;
    match (found, refused) {
        (Some(row), _) => Ok(row),
        (None, Some(column)) => Err(FormatError::BadCardData {
            what: format!("character {character_id:?}"),
            detail: format!("its row has no {column}, so no import would keep it"),
        }),
        (None, None) => Err(FormatError::CharacterNotFound { id: character_id.to_string() }),
    }
}

/// The lines of these books' entries the explorer lists, if its index can say.
fn entry_lines<'e>(explorer: Option<&'e ExploreIndex>, book_ids: &[String]) -> Option<Lines<'e>> {
    let explorer = explorer?;
    let index = explorer.entry_lines.as_ref()?;
    let mut lines = Vec::new();
    for id in book_ids {
        lines.extend(explorer.world_book(id)?.lines.iter().map(|&line| u64::from(line)));
    }
    lines.sort_unstable();
    lines.dedup();
    Some(Lines::Indexed(index, lines))
}

/// The books with these ids (sorted, distinct) that an import keeps, with their entries.
fn read_books<R: Read + Seek>(
    archive: &mut Archive<R>,
    ids: &[String],
    explorer: Option<&ExploreIndex>,
) -> Result<Vec<Book>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let needles: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut books: Vec<Book> = Vec::new();
    scan_table(archive, &WORLD_BOOKS, &needles, |id, row| {
        let wanted = id.is_some_and(|id| ids.binary_search_by(|w| w.as_str().cmp(id)).is_ok());
        if let (true, Ok(row)) = (wanted, row) {
            if !books.iter().any(|book| Some(book.id()) == id) {
                books.push(Book { row, entries: Vec::new() });
            }
        }
        Ok(books.len() < ids.len())
    })?;
    if books.is_empty() {
        return Ok(books);
    }
    let at: HashMap<String, usize> = books.iter().enumerate().map(|(at, book)| (book.id().to_string(), at)).collect();
    let book_ids: Vec<String> = books.iter().map(|book| book.id().to_string()).collect();
    let needles: Vec<&str> = book_ids.iter().map(String::as_str).collect();
    // Entry ids already taken (by an earlier row of these books): `INSERT OR IGNORE`.
    let mut taken: HashSet<String> = HashSet::new();
    let mut entries: Vec<(usize, StoredRow)> = Vec::new();
    let lines = entry_lines(explorer, &book_ids).unwrap_or(Lines::Scan);
    read_table(archive, &WORLD_BOOK_ENTRIES, &needles, &lines, |id, row| {
        let (Some(id), Ok(row)) = (id, row) else { return Ok(true) };
        let Some(&book) = row.text("world_book_id").and_then(|book| at.get(book)) else { return Ok(true) };
        if taken.insert(id.to_string()) {
            entries.push((book, row));
        }
        Ok(true)
    })?;
    for (book, row) in entries {
        books[book].entries.push(row);
    }
    Ok(books)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Cursor;

    use lvbak_tests::corpus;
    use lvbak_tests::zipcraft::{RawEntry, RawZip};
    use serde_json::json;

    use super::*;
    use crate::card::card_json;
    use crate::Limits;

    /// An archive whose tables hold these NDJSON lines (written as given).
    fn archive(tables: &[(&str, &[&str])]) -> Archive<Cursor<Vec<u8>>> {
        let mut entries = vec![RawEntry::deflated("manifest.json", &corpus::manifest_json(&[]))];
        for (table, lines) in tables {
            let ndjson: String = lines.iter().map(|line| format!("{line}\n")).collect();
            entries.push(RawEntry::deflated(&format!("database/{table}.ndjson"), ndjson.as_bytes()));
        }
        Archive::open(Cursor::new(RawZip::new(entries).build()), Limits::STANDARD).unwrap()
    }

    fn data(card: &str) -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(card).unwrap()["data"].clone()
    }

    #[test]
    fn the_first_row_an_import_keeps_is_the_character() {
        let mut archive = archive(&[(
            "characters",
            &[
                r#"{"id":"other","name":"Other"}"#,
                // No name: refused by an import, so the next row of the id is kept.
                r#"{"id":"c1","name":null}"#,
                r#"{"id":"c1","name":"Kept"}"#,
                r#"{"id":"c1","name":"Ignored"}"#,
            ],
        )]);
        assert_eq!(data(&card_json(&mut archive, "c1").unwrap())["name"], "Kept");
        assert_eq!(data(&card_json(&mut archive, "other").unwrap())["name"], "Other");
        let error = card_json(&mut archive, "c").unwrap_err();
        assert_eq!(error.code(), "character_not_found");
    }

    #[test]
    fn a_character_no_import_would_keep_is_refused_with_the_reason() {
        let mut archive = archive(&[("characters", &[r#"{"id":"c1","name":"A","description":null}"#])]);
        let error = card_json(&mut archive, "c1").unwrap_err();
        assert_eq!(error.code(), "bad_card_data");
        assert!(error.to_string().contains("description"), "{error}");
        // An archive without a characters table has no characters.
        assert_eq!(card_json(&mut self::archive(&[]), "c1").unwrap_err().code(), "character_not_found");
    }

    #[test]
    fn an_id_written_with_escapes_is_found() {
        let mut archive = archive(&[("characters", &[r#"{"id":"\u0063\u0031","name":"Escaped"}"#])]);
        assert_eq!(data(&card_json(&mut archive, "c1").unwrap())["name"], "Escaped");
    }

    #[test]
    fn attached_books_and_their_entries_are_read_as_an_import_keeps_them() {
        let character =
            json!({"id": "c1", "name": "A", "extensions": json!({"world_book_ids": ["b2", "b1"]}).to_string()});
        let character = character.to_string();
        let mut archive = archive(&[
            ("characters", &[&character]),
            (
                "world_books",
                &[
                    r#"{"id":"b1","name":null}"#,
                    r#"{"id":"b1","name":"One"}"#,
                    r#"{"id":"b1","name":"Shadowed"}"#,
                    r#"{"id":"b2","name":"Two"}"#,
                    r#"{"id":"b3","name":"Unattached"}"#,
                ],
            ),
            (
                "world_book_entries",
                &[
                    r#"{"id":"e1","world_book_id":"b1","uid":"u1","comment":"first"}"#,
                    r#"{"id":"e2","world_book_id":"b3","uid":"u2","comment":"unattached"}"#,
                    r#"{"id":"e3","world_book_id":"b2","uid":null,"comment":"refused"}"#,
                    r#"{"id":"e3","world_book_id":"b2","uid":"u3","comment":"second"}"#,
                    r#"{"id":"e1","world_book_id":"b2","uid":"u4","comment":"taken id"}"#,
                    r#"{"id":"e4","world_book_id":"gone","uid":"u5","comment":"orphan"}"#,
                ],
            ),
        ]);
        let rows = CharacterRows::read(&mut archive, "c1").unwrap();
        assert_eq!(rows.books.iter().map(Book::id).collect::<Vec<_>>(), ["b2", "b1"]);
        let book = data(&rows.ccv3_json().unwrap())["character_book"].clone();
        assert_eq!(book["name"], "Merged Lorebook (2 books)");
        assert_eq!(book["description"], "Merged from: Two, One");
        let comments: Vec<&str> =
            book["entries"].as_array().unwrap().iter().map(|e| e["comment"].as_str().unwrap()).collect();
        assert_eq!(comments, ["[Two] second", "[One] first"]);
    }
}
