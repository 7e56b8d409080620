//! A restore preview: what restoring an archive into an account would do, per table, per
//! file and per item (character, chat, persona, world book, preset), before anything is
//! written; with a selection, of the picked items only. Every row goes through the
//! import's checks and merge by id (`policy::preview`), answered by the backend's reads
//! only: no row, file, job or quota use is written. [`Previewer`] is the one engine, fed
//! either by [`preview_archive`] (`lvbak import --dry-run`: the archive read and checked
//! exactly as an import reads it, so a hostile archive is refused with the same code) or
//! by the browser's batches (a batch job opened with `preview`, `session::preview`), whose
//! files are previewed from the client's claims (name, size, CRC-32).
//!
//! Left out for now: vectors (their entries are checked, not previewed), and files no row
//! names (an import refuses them; the preview counts them by name and content only).

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::sync::atomic::AtomicBool;

use lvbak_core::closure::RowKey;
use lvbak_core::import_plan::ImportPlan;
use lvbak_core::protocol::{ItemDifference, ItemKind, MessageTally, PreviewItem, RestorePreview, RestoreState};
use lvbak_core::registry::{table_spec, TableSpec};
use lvbak_core::{parse_row_aligned, Archive, EntryKind, FileBucket, UnknownColumns};
use serde_json::Value;

use super::error::ImportError;
use super::from_archive::check_secret_records;
use super::selection::Picked;
use super::session::files::stored_crc32;
use super::steps::for_each_step;
use crate::policy::files::{file_rule, FileRule};
use crate::policy::preview::{chat_state, PreviewLedger, RowVerdict};
use crate::policy::rows::AlignedRow;
use crate::storage::backend::import_rows::ImportRows;
use crate::storage::backend::row_snapshot::RowValue;
use crate::storage::Store;

/// The chats of the archive, while their messages are previewed.
#[derive(Default)]
struct Chats {
    /// Chat id → its place in the preview's items.
    items: HashMap<String, usize>,
    /// Its messages' states, each state once, and their tally.
    messages: HashMap<usize, (Vec<RestoreState>, MessageTally)>,
}

/// One preview under way, whatever brings the archive's rows — the archive itself
/// ([`preview_archive`]) or the browser's batches (`batches`, a job opened with
/// `preview`): rows a step at a time in import order, then [`Previewer::end_rows`], then
/// the files, then [`Previewer::into_preview`]. It reads through the importer's
/// [`ImportRows`], which only answers (nothing is written).
#[derive(Default)]
pub(crate) struct Previewer {
    preview: RestorePreview,
    ledger: PreviewLedger,
    chats: Chats,
    /// The most rows (the ledger's entries and the items) it may hold; none for the command
    /// line's.
    limit: Option<usize>,
}

impl Previewer {
    /// A preview that holds at most `limit` rows — the ids of rows the restore would add
    /// and the items it lists; past it the preview ends with `preview_too_large` (preview
    /// picked items instead, or restore). The browser's previews are held to the hosting
    /// limit `preview_rows`.
    pub(crate) fn bounded(limit: usize) -> Self {
        Self { limit: Some(limit), ..Self::default() }
    }

    /// Previews one step of rows of `spec`, aligned with `columns`.
    pub(crate) fn rows(
        &mut self,
        rows: &mut dyn ImportRows,
        spec: &'static TableSpec,
        columns: &[String],
        step: Vec<AlignedRow>,
    ) -> Result<(), ImportError> {
        let at = |name: &str| columns.iter().position(|column| column == name);
        let (id_at, name_at, chat_at, sent_at) = (at("id"), at("name"), at("chat_id"), at("send_date"));
        let kind = ItemKind::of_table(spec.name);
        let text = |row: &AlignedRow, index: Option<usize>| {
            index.and_then(|index| row[index].as_ref()).and_then(Value::as_str).unwrap_or_default().to_string()
        };
        // What the items need, before the rows are handed over.
        let sent = |row: &AlignedRow| sent_at.and_then(|index| row[index].as_ref()).and_then(Value::as_i64);
        // Only items and messages are told apart; other rows are only counted.
        let named: Vec<(String, String, String, Option<i64>)> = if kind.is_some() || spec.name == "messages" {
            step.iter().map(|row| (text(row, id_at), text(row, name_at), text(row, chat_at), sent(row))).collect()
        } else {
            Vec::new()
        };
        let verdicts = rows.preview(spec, step, &mut self.ledger)?;
        if let Some(limit) = self.limit.filter(|limit| self.ledger.len() + self.preview.items.len() > *limit) {
            return Err(ImportError::PreviewTooLarge(limit as u64));
        }
        let counts = self.preview.tables.entry(spec.name.to_string()).or_default();
        verdicts.iter().for_each(|verdict| counts.count(verdict.state));
        let (items, chats) = (&mut self.preview.items, &mut self.chats);
        for ((id, name, chat, sent), RowVerdict { state, changed }) in named.into_iter().zip(verdicts) {
            if let Some(kind) = kind {
                if kind == ItemKind::Chat {
                    chats.items.insert(id.clone(), items.len());
                }
                let differs =
                    (state == RestoreState::Differs).then_some(ItemDifference { columns: changed, messages: None });
                items.push(PreviewItem { kind, id, name, state, differs });
            } else if spec.name == "messages" {
                if let Some(&item) = chats.items.get(&chat) {
                    let (seen, tally) = chats.messages.entry(item).or_default();
                    if !seen.contains(&state) {
                        seen.push(state);
                    }
                    tally.archive += 1;
                    tally.archive_last_at = tally.archive_last_at.max(sent);
                    match state {
                        RestoreState::Differs => tally.edited += 1,
                        RestoreState::New => tally.missing += 1,
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Once every row was previewed: the chats' states from their messages', and for the
    /// chats that differ, the account's side.
    pub(crate) fn end_rows(
        &mut self,
        store: &Store,
        user_id: &str,
        rows: &mut dyn ImportRows,
    ) -> Result<(), ImportError> {
        let mut differing = Vec::new();
        for (item, (states, tally)) in std::mem::take(&mut self.chats.messages) {
            let chat = &mut self.preview.items[item];
            chat.state = chat_state(chat.state, states);
            if chat.state == RestoreState::Differs {
                chat.differs.get_or_insert_with(ItemDifference::default).messages = Some(tally);
                differing.push((rows.local_id(&chat.id)?, item));
            }
        }
        count_account_messages(store, user_id, &differing, &mut self.preview.items)
    }

    /// Previews one archive file, by name and content (`crc32`): a file the account holds
    /// where the restore would put it is unchanged when its bytes' CRC-32 is the archive's,
    /// else it differs; a file whose name holds the id of a row the restore would copy is
    /// remapped; one the restore may put nowhere is refused. At most `budget` bytes of the
    /// account's files are read to compare (what is left is lowered): a file of the same
    /// size past it counts as differing.
    pub(crate) fn file(
        &mut self,
        account: Account<'_>,
        rows: &mut dyn ImportRows,
        file: (FileBucket, &str, u32),
        budget: &mut u64,
    ) -> Result<(), ImportError> {
        let (bucket, name, crc32) = file;
        let Account { store, user_id, cancel } = account;
        let ledger = &self.ledger;
        let copied = crate::policy::ids::rewrite_uuids(name, false, |original| {
            Ok::<_, ImportError>(ledger.copy_of(None, original))
        })?;
        let name = rows.local_file_name(name)?;
        // Where the restore would put it (as `ImportSession::destination`, except that a
        // row the restore would add is not there to name it yet).
        let destination = match file_rule(bucket, &name) {
            FileRule::Nowhere => None,
            FileRule::PathOf { table, column, id } => Some(rows.path_of(table, column, id)?),
            FileRule::NamedByAny(_) | FileRule::Always => Some(Some(name)),
        };
        let bucket = if bucket == FileBucket::Thumbnails { FileBucket::Images } else { bucket };
        let state = match destination {
            _ if copied.is_some() => RestoreState::Remapped,
            None => RestoreState::Refused,
            Some(None) => RestoreState::New,
            Some(Some(name)) if !store.files.accepts(bucket, user_id, &name) => RestoreState::Refused,
            Some(Some(name)) => match store.files.size_of(bucket, user_id, &name)? {
                None => RestoreState::New,
                Some(size) if size > *budget => RestoreState::Differs,
                Some(size) => {
                    *budget -= size;
                    match stored_crc32(store, user_id, bucket, &name, cancel)? {
                        Some(stored) if stored == crc32 => RestoreState::Unchanged,
                        _ => RestoreState::Differs,
                    }
                }
            },
        };
        self.preview.files.count(state);
        Ok(())
    }

    /// The preview: a table is listed once a step of its rows came (tables without a line
    /// in the archive are left out).
    pub(crate) fn into_preview(self) -> RestorePreview {
        self.preview
    }
}

/// The account a preview reads.
#[derive(Clone, Copy)]
pub(crate) struct Account<'a> {
    pub(crate) store: &'a Store,
    pub(crate) user_id: &'a str,
    /// Stops reading the account's files when set.
    pub(crate) cancel: &'a AtomicBool,
}

/// What restoring `archive` into `user_id`'s account would do. Reads only.
pub fn preview_archive<R: Read + Seek + Send>(
    store: &Store,
    user_id: &str,
    archive: &mut Archive<R>,
    selection: Option<&Picked>,
) -> Result<RestorePreview, ImportError> {
    let mut rows = store.import_rows(user_id, None)?;
    let plan = ImportPlan::of(archive);
    let mut previewer = Previewer::default();
    for unused in plan.unused_row_tables() {
        archive.check_lines(unused.index)?;
    }
    for &(spec, index) in &plan.tables {
        let columns = rows.columns_of(spec)?;
        let unknown = UnknownColumns::default();
        let parse = |entry: &str, number: u64, line: &[u8]| parse_row_aligned(entry, number, line, &columns, &unknown);
        let keep = selection.map(|picked| picked.rows_of(spec.name, &columns));
        for_each_step(archive.ndjson_lines(index)?, 1, parse, |mut step| {
            if let (Some(keep), Some(picked)) = (&keep, selection) {
                step.retain(|row| keep.keeps(row));
                step.iter_mut().for_each(|row| picked.copy_row(spec, &columns, row));
            }
            previewer.rows(&mut *rows, spec, &columns, step)
        })?;
    }
    previewer.end_rows(store, user_id, &mut *rows)?;
    for vectors in plan.vectors.iter().map(|&(_, index)| index).chain(plan.unused_vector_tables().map(|t| t.index)) {
        archive.check_lines(vectors)?;
    }
    // A preview from the command line is not cancelled (it ends with the command), and
    // reads every file it compares.
    let never = AtomicBool::new(false);
    let account = Account { store, user_id, cancel: &never };
    let mut budget = u64::MAX;
    for &index in &plan.files {
        let entry = archive.entries()[index].clone();
        let EntryKind::File { bucket, name } = entry.kind.clone() else { continue };
        // Every entry is read to its end, as an import reads it.
        std::io::copy(&mut archive.open_entry(index)?, &mut std::io::sink())
            .map_err(lvbak_core::FormatError::from_io)?;
        if selection.is_some_and(|picked| !picked.keeps_file(&name)) {
            continue;
        }
        let name = match selection {
            Some(picked) => picked.copy_file_name(&name),
            None => name,
        };
        previewer.file(account, &mut *rows, (bucket, &name, entry.crc32), &mut budget)?;
    }
    if let Some(index) = plan.secrets {
        check_secret_records(archive, index, |_| Ok(()))?;
    }
    Ok(previewer.into_preview())
}

/// The account's side of the chats that differ (`(the chat's id here, its item)`): how many
/// messages each has, and its last message time.
fn count_account_messages(
    store: &Store,
    user_id: &str,
    chats: &[(String, usize)],
    items: &mut [PreviewItem],
) -> Result<(), ImportError> {
    let Some(messages) = table_spec("messages") else { return Ok(()) };
    if chats.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = chats.iter().map(|(id, _)| id.clone()).collect();
    let mut found: HashMap<String, (u64, Option<i64>)> = HashMap::new();
    let snapshot = store.row_snapshot()?;
    snapshot.owned_rows_where(messages, user_id, RowKey::Column("chat_id"), &ids, |columns, row| {
        let at = |name: &str| columns.iter().position(|column| column == name);
        let (Some(chat), Some(sent)) = (at("chat_id"), at("send_date")) else { return Ok::<_, ImportError>(()) };
        let RowValue::Text(chat) = row.value(chat) else { return Ok(()) };
        let entry = found.entry(chat.to_string()).or_default();
        entry.0 += 1;
        if let RowValue::Integer(sent) = row.value(sent) {
            entry.1 = entry.1.max(Some(sent));
        }
        Ok(())
    })?;
    for (id, item) in chats {
        let (count, last) = found.get(id).copied().unwrap_or_default();
        if let Some(tally) = items[*item].differs.as_mut().and_then(|differs| differs.messages.as_mut()) {
            tally.account = count;
            tally.account_last_at = last;
        }
    }
    Ok(())
}
