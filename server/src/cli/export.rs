//! `lvbak export --user NAME [--include-vectors] [--include-secrets [--ticket-out FILE]]
//! [--only KIND:ID ... [--without-chats]] [--json] -o FILE`: the same archive the web page
//! downloads, written to a file (for scheduled backups); with secrets, the ticket goes next
//! to the archive unless `--ticket-out` says otherwise. With `--only`, just the picked items
//! and their closure (core's `closure`): no settings, no completion sound, never API keys;
//! a pick the account does not hold exits 2 with `not_in_account` before anything is
//! written. The archive appears under its name only once complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use lvbak_core::closure::{ClosureError, Pick, Selection};
use lvbak_core::protocol::ExportOutcome;
use serde::Serialize;

use super::printable::{field, print_json, JsonLayout, Refusal};
use super::progress::CliProgress;
use super::{fail, runtime};
use crate::config::DataDirArg;
use crate::export::archive::write_archive_of;
use crate::export::plan::ExportPlan;
use crate::export::selection::closure_in_account;
use crate::util::now;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The account to export.
    #[arg(long)]
    user: String,
    /// Include vector embeddings.
    #[arg(long = "include-vectors")]
    include_vectors: bool,
    /// Include API keys, encrypted, with a decryption ticket beside the archive.
    #[arg(long = "include-secrets", conflicts_with = "only")]
    include_secrets: bool,
    /// Export only this item and what it needs and holds (repeatable): KIND:ID with KIND one
    /// of character, chat, persona, world_book, preset. A character brings its chats, a
    /// chat the chats branched from it. No settings and never API keys.
    #[arg(long = "only", value_name = "KIND:ID")]
    only: Vec<Pick>,
    /// With --only: picked characters come without their chats.
    #[arg(long = "without-chats", requires = "only")]
    without_chats: bool,
    /// Where the ticket goes (default: the archive's name with .ticket.json).
    #[arg(long = "ticket-out", requires = "include_secrets")]
    ticket_out: Option<PathBuf>,
    /// The archive file to write.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Print what was written as JSON (the shape of the HTTP export's `complete` event,
    /// plus the file names), and no progress.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    data: DataDirArg,
}

/// `--json`: the HTTP export's `complete` event, then the files written and the secrets
/// that could not be sealed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonOutcome<'a> {
    #[serde(flatten)]
    outcome: &'a ExportOutcome,
    /// Always `complete`: a failed export exits with an error instead.
    status: &'static str,
    file: &'a Path,
    ticket_file: Option<&'a Path>,
    unreachable_secrets: &'a [String],
}

fn ticket_path_beside(archive: &Path) -> PathBuf {
    let name = archive.file_name().and_then(|n| n.to_str()).unwrap_or("archive.lvbak");
    let base = name.strip_suffix(".lvbak").unwrap_or(name);
    archive.with_file_name(format!("{base}.ticket.json"))
}

/// Exit status of a selection that names what the account does not hold, as for a
/// rejected archive.
const REJECTED: u8 = 2;

pub fn run(args: &ExportArgs) -> ExitCode {
    let mut refusal = None;
    let result = runtime().and_then(|runtime| {
        let store = runtime.block_on(args.data.open_store())?;
        // The command's own thread, outside the runtime: it waits on it.
        let user = runtime.block_on(store.accounts().user_by_name(&args.user))?;
        let user = user.ok_or_else(|| anyhow::anyhow!("no user {:?}", args.user))?;
        let only = if args.only.is_empty() {
            None
        } else {
            let selection = Selection { picks: args.only.clone(), without_chats: args.without_chats };
            match closure_in_account(&store, &user.id, &selection) {
                Ok(closure) => Some(closure),
                Err(ClosureError::NotFound(picks)) => {
                    let message = format!("not in the account of {}: {}", args.user, Pick::named(&picks));
                    refusal = Some(Refusal { ok: false, code: "not_in_account".into(), message });
                    return Ok(());
                }
                Err(ClosureError::Source(error)) => return Err(error.into()),
            }
        };
        let mut plan = ExportPlan::new(user, now(), args.include_vectors);
        let secrets = if args.include_secrets {
            let stored = runtime.block_on(store.secrets().secrets_of(&plan.user.id))?;
            Some(plan.seal_secrets(&store.identity, stored))
        } else {
            None
        };
        let partial = args.output.with_extension("lvbak.partial");
        let file = BufWriter::with_capacity(1 << 20, File::create(&partial)?);
        let handle = runtime.handle().clone();
        let progress = CliProgress::new(args.json);
        let started = std::time::Instant::now();
        let written = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    write_archive_of(&store, &handle, &plan, only.as_ref(), file, &|event| progress.event(&event))
                })
                .join()
        });
        progress.finish();
        let (mut file, report) = match written {
            Ok(Ok(done)) => done,
            Ok(Err(error)) => {
                let _ = std::fs::remove_file(&partial);
                anyhow::bail!("export failed ({}): {error}", error.code());
            }
            Err(_) => anyhow::bail!("the export thread panicked"),
        };
        file.flush()?;
        file.get_ref().sync_all()?;
        let bytes = file.get_ref().metadata()?.len();
        drop(file);
        std::fs::rename(&partial, &args.output)?;
        let unreachable = secrets.as_ref().map(|s| s.unreachable.clone()).unwrap_or_default();
        let ticket_file = match secrets.and_then(|s| s.ticket) {
            Some(ticket) => {
                let path = args.ticket_out.clone().unwrap_or_else(|| ticket_path_beside(&args.output));
                std::fs::write(&path, ticket.to_json())?;
                Some(path)
            }
            None => None,
        };
        let outcome = report.outcome(bytes, started.elapsed().as_secs_f64());
        if args.json {
            let answer = JsonOutcome {
                outcome: &outcome,
                status: "complete",
                file: &args.output,
                ticket_file: ticket_file.as_deref(),
                unreachable_secrets: &unreachable,
            };
            print_json(&mut std::io::stdout().lock(), &answer, JsonLayout::Line)?;
            return Ok(());
        }
        println!("wrote {} ({} bytes in {:.2} s)", args.output.display(), outcome.bytes, outcome.seconds);
        let vectors: u64 = outcome.vectors.values().sum();
        for (what, count) in
            [("rows", outcome.rows), ("files", outcome.files), ("vectors", vectors), ("API keys", outcome.secrets)]
        {
            println!("  {what:<10} {count:>10}");
        }
        // File names and secret keys are the account's, which archives brought.
        for missing in &outcome.missing_files {
            println!("missing file (left out): {}", field(missing));
        }
        for key in &unreachable {
            println!("secret could not be decrypted (left out): {}", field(key));
        }
        if let Some(path) = ticket_file {
            println!("wrote the decryption ticket to {}", path.display());
        }
        Ok(())
    });
    match (result, refusal) {
        (Err(error), _) => fail(error),
        (Ok(()), None) => ExitCode::SUCCESS,
        (Ok(()), Some(refusal)) => {
            if args.json {
                let _ = print_json(&mut std::io::stdout().lock(), &refusal, JsonLayout::Line);
            } else {
                eprintln!("{}: {}", refusal.code, field(&refusal.message));
            }
            ExitCode::from(REJECTED)
        }
    }
}
