//! `lvbak import --user NAME FILE [--ticket T | --skip-secrets] [--json]`: the raw upload
//! path from the command line. The archive is read where it lies (no staging copy), checked
//! the same way, and applied by the same engine; a summary table is printed at the end.
//! `--dry-run` previews instead of writing (`import::preview`); `--only KIND:ID
//! [--without-chats] [--as-copy]` takes just the picked items (`import::selection`).

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use lvbak_core::{Archive, Ticket};

use super::printable::{field, print_json, JsonLayout, Refusal};
use super::progress::CliProgress;
use super::runtime;
use crate::config::{limits_from_env, DataDirArg};
use crate::import::from_archive::import_archive_part;
use crate::import::selection::Picked;
use crate::import::session::ImportSession;
use crate::progress::Event;
use crate::util::now;
use lvbak_core::closure::{ClosureError, Pick, Selection};
use lvbak_core::protocol::{JobStatus, SummaryReport};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The account to import into.
    #[arg(long)]
    user: String,
    /// The .lvbak archive.
    file: PathBuf,
    /// The archive's decryption ticket, to restore its API keys (not with `--only`: a
    /// selective restore never restores them).
    #[arg(long, conflicts_with_all = ["skip_secrets", "only"])]
    ticket: Option<PathBuf>,
    /// Import without the archive's API keys.
    #[arg(long = "skip-secrets")]
    skip_secrets: bool,
    /// Print the summary as one JSON object, in the shape of the HTTP status answer (with
    /// `--dry-run`: the preview, `{"tables", "files", "items"}`).
    #[arg(long)]
    json: bool,
    /// Write nothing: show what the restore would do with each table, file and item (new,
    /// unchanged, differs, remapped, refused).
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// Restore only this item and what it needs and holds (`KIND:ID`, kinds character, chat,
    /// persona, world_book, preset; repeatable): a selective restore, never API keys.
    #[arg(long = "only", value_name = "KIND:ID")]
    only: Vec<Pick>,
    /// Picked characters come without their chats.
    #[arg(long = "without-chats", requires = "only")]
    without_chats: bool,
    /// Restore the picked items as a copy beside the account's version: under ids of its
    /// own, named with the backup's date; what they need links to the account's rows.
    #[arg(long = "as-copy", requires = "only")]
    as_copy: bool,
    #[command(flatten)]
    data: DataDirArg,
}

/// Exit status of a rejected archive or ticket, as for `inspect`.
const REJECTED: u8 = 2;

pub fn run(args: &ImportArgs) -> ExitCode {
    match import(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Rejected(code, message)) => {
            eprintln!("{code}: {}", field(&message));
            if args.json {
                let refusal = Refusal { ok: false, code, message };
                let _ = print_json(&mut std::io::stdout().lock(), &refusal, JsonLayout::Line);
            }
            ExitCode::from(REJECTED)
        }
        Err(Failure::Other(error)) => {
            eprintln!("lvbak: {}", field(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Rejected(String, String),
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Self::Other(error.into())
    }
}

fn rejected(code: &str, message: impl std::fmt::Display) -> Failure {
    Failure::Rejected(code.to_string(), message.to_string())
}

/// An import's or preview's error: the archive refused (exit 2 with its code), or another.
fn refused_archive(error: crate::import::session::ImportError) -> Failure {
    match error {
        crate::import::session::ImportError::Format(error) => rejected(error.code(), &error),
        other => Failure::Other(other.into()),
    }
}

fn import(args: &ImportArgs) -> Result<(), Failure> {
    let limits = limits_from_env().map_err(anyhow::Error::msg)?;
    let runtime = runtime()?;
    // The command's own thread, outside the runtime: it waits on it.
    let store = runtime.block_on(args.data.open_store())?;
    let user = runtime.block_on(store.accounts().user_by_name(&args.user))?;
    let user = user.ok_or_else(|| anyhow::anyhow!("no user {:?}", args.user))?;
    let file = File::open(&args.file)?;
    let mut archive =
        Archive::open(BufReader::with_capacity(256 * 1024, file), limits).map_err(|e| rejected(e.code(), &e))?;
    let picked = if args.only.is_empty() {
        None
    } else {
        let selection = Selection { picks: args.only.clone(), without_chats: args.without_chats };
        let picked = Picked::of_archive(&archive, &selection);
        let picked = match picked {
            Ok(picked) if args.as_copy => picked.restored_as_copy(&archive, &selection, &user.id),
            other => other,
        };
        match picked {
            Ok(picked) => Some(picked),
            Err(ClosureError::NotFound(picks)) => {
                return Err(rejected("not_in_archive", format!("the archive holds none of {}", Pick::named(&picks))));
            }
            Err(ClosureError::Source(error)) => return Err(rejected(error.code(), &error)),
        }
    };
    if args.dry_run {
        let preview = crate::import::preview::preview_archive(&store, &user.id, &mut archive, picked.as_ref());
        return print_preview(&preview.map_err(refused_archive)?, args.json);
    }
    let manifest = archive.manifest().clone();
    let has_secrets = manifest.has_encrypted_secrets && archive.secrets_index().is_some_and(|i| !i.keys.is_empty());
    let key = match (&args.ticket, has_secrets) {
        (Some(path), true) => {
            let ticket = Ticket::parse(&std::fs::read(path)?).map_err(|e| rejected(e.code(), &e))?;
            let index = archive.secrets_index().cloned().unwrap_or_else(|| unreachable!("checked above"));
            if ticket.archive_id != manifest.archive_id {
                let error = lvbak_core::FormatError::ArchiveMismatch {
                    ticket: ticket.archive_id,
                    archive: manifest.archive_id,
                };
                return Err(rejected(error.code(), error));
            }
            ticket.verify(&manifest.archive_id, &index).map_err(|e| rejected(e.code(), &e))?;
            let used = runtime.block_on(store.secrets().record_ticket_use(&manifest.archive_id, &user.id, now()))?;
            if used.was_reused {
                eprintln!("note: this ticket was used before ({} uses so far)", used.uses);
            }
            Some(ticket.key().map_err(|e| rejected(e.code(), &e))?)
        }
        (None, true) if !args.skip_secrets && picked.is_none() => {
            return Err(anyhow::anyhow!(
            "the archive carries {} encrypted API keys: give --ticket FILE, or --skip-secrets to import without them",
            manifest.secrets_count
        )
            .into())
        }
        _ => None,
    };
    let started = Instant::now();
    let shown = CliProgress::new(args.json);
    let progress = |event: Event| shown.event(&event);
    let mut session = ImportSession::new(
        &store,
        &user.id,
        None,
        Arc::new(AtomicBool::new(false)),
        &progress,
        runtime.handle().clone(),
    )?;
    import_archive_part(&mut session, &mut archive, key.as_ref(), Some(&args.file), picked.as_ref())
        .map_err(refused_archive)?;
    let summary = session.finish()?;
    shown.finish();
    if args.json {
        /// What `lvbak import --json` prints: the summary a job's status gives.
        #[derive(serde::Serialize)]
        struct Printed {
            status: JobStatus,
            #[serde(flatten)]
            report: SummaryReport,
        }
        let printed = Printed { status: JobStatus::Complete, report: SummaryReport::from(&summary) };
        print_json(&mut std::io::stdout().lock(), &printed, JsonLayout::Line)?;
        return Ok(());
    }
    println!("{:<28} {:>9} {:>9} {:>9} {:>9} {:>9}", "table", "imported", "remapped", "merged", "skipped", "rejected");
    for (table, counts) in &summary.tables {
        let table = field(table);
        println!(
            "{table:<28} {:>9} {:>9} {:>9} {:>9} {:>9}",
            counts.imported, counts.remapped, counts.merged, counts.skipped, counts.rejected
        );
    }
    for notice in summary.notices() {
        println!("note: {}", field(&notice));
    }
    let files = summary.files;
    println!(
        "files: {} imported ({} bytes), {} skipped, {} rejected",
        files.imported, files.bytes, files.skipped, files.rejected
    );
    match &summary.vectors.reason {
        None => {
            let tables: Vec<String> =
                summary.vectors.tables.iter().map(|(table, counts)| format!("{table} {}", counts.imported)).collect();
            println!("vectors: restored ({})", field(&tables.join(", ")))
        }
        Some(reason) => {
            let reason = field(reason);
            println!("vectors: not restored ({reason}); {} chunks marked for re-vectorization", summary.revectorized)
        }
    }
    if key.is_some() {
        println!("secrets: {} restored, {} skipped", summary.secrets.imported, summary.secrets.skipped);
    }
    if !summary.skipped_tables.is_empty() {
        println!("not applied: {}", field(&summary.skipped_tables.join(", ")));
    }
    for (table, columns) in &summary.dropped_columns {
        eprintln!("warning: {}", dropped_columns_warning(table, columns, true));
    }
    println!("done in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Prints a restore preview: one JSON object, or a table per table, the files and the
/// items that a restore would not leave as they are.
fn print_preview(preview: &lvbak_core::protocol::RestorePreview, json: bool) -> Result<(), Failure> {
    if json {
        print_json(&mut std::io::stdout().lock(), preview, JsonLayout::Line)?;
        return Ok(());
    }
    println!("{:<28} {:>9} {:>9} {:>9} {:>9} {:>9}", "table", "new", "unchanged", "differs", "remapped", "refused");
    let files = ("files".to_string(), preview.files);
    for (table, counts) in preview.tables.iter().map(|(table, counts)| (table.clone(), *counts)).chain([files]) {
        println!(
            "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9}",
            field(&table),
            counts.new,
            counts.unchanged,
            counts.differs,
            counts.remapped,
            counts.refused
        );
    }
    for item in preview.items.iter().filter(|item| item.state != lvbak_core::protocol::RestoreState::Unchanged) {
        let state = serde_json::to_value(item.state)?;
        let mut what = Vec::new();
        if let Some(differs) = &item.differs {
            if !differs.columns.is_empty() {
                what.push(field(&differs.columns.join(", ")).into_owned());
            }
            if let Some(messages) = differs.messages {
                what.push(format!(
                    "{} messages in the backup, {} in the account; {} edited since, {} not in the account",
                    messages.archive, messages.account, messages.edited, messages.missing
                ));
            }
        }
        let what = if what.is_empty() { String::new() } else { format!(" ({})", what.join("; ")) };
        println!(
            "{} {} {:?}: {}{what}",
            item.kind.word(),
            field(&item.id),
            field(&item.name),
            state.as_str().unwrap_or_default()
        );
    }
    println!("nothing was written (dry run)");
    Ok(())
}

/// The plain-words warning for values an import could not keep (`imported`: it ran; else
/// it would happen), ready to print: the names are the archive's, escaped.
pub fn dropped_columns_warning(table: &str, columns: &[String], imported: bool) -> String {
    format!(
        "the archive's {} rows have {} this server does not know ({}): {} \
         (the archive may come from a newer Lumiverse)",
        field(table),
        if columns.len() == 1 { "a column" } else { "columns" },
        field(&columns.join(", ")),
        if imported { "those values were not imported" } else { "an import here would not keep those values" }
    )
}
