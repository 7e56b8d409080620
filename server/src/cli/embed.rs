//! `lvbak embed --user NAME [--data-dir DIR]`: runs the account's re-vectorization from
//! the command line (cron, operators) with the server's own worker and the account's
//! settings and key, showing progress, and exits with the counts: 0 when every waiting row
//! got its vector, 1 with the reason otherwise. Run it while the server is stopped, or for
//! an account whose run the server is not doing.

use crate::embeddings::config::EmbeddingRules as _;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::printable::{field, print_json, printable, Breaks, JsonLayout};
use super::progress::{CliProgress, Step};
use super::{fail, runtime};
use crate::config::{parse_bytes, DataDirArg, DEFAULT_QUOTA};
use crate::embeddings::Embeddings;

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The account whose rows to embed.
    #[arg(long)]
    user: String,
    /// Print the final status as JSON (the shape of `GET /api/v1/embeddings/status`).
    #[arg(long)]
    json: bool,
    /// The account's embeddings setting came from a backup and was never saved by its
    /// user: confirm it (as saving it in the page does), so its texts and key go where it
    /// says. Without this, such an account is not embedded.
    #[arg(long)]
    confirm_setting: bool,
    #[command(flatten)]
    data: DataDirArg,
}

pub fn run(args: &EmbedArgs) -> ExitCode {
    let result = runtime().and_then(|runtime| {
        runtime.block_on(async {
            let store = Arc::new(args.data.open_store().await?);
            let user = store.accounts().user_by_name(&args.user).await?;
            let user = user.ok_or_else(|| anyhow::anyhow!("no user {:?}", args.user))?;
            let embeddings = Arc::new(Embeddings::new(store.clone(), 4, parse_bytes(DEFAULT_QUOTA).ok(), true).await);
            let mut settings = embeddings.settings(&user.id).await?;
            if settings.restored && args.confirm_setting {
                store.settings().confirm_embedding_setting(&user.id, &settings.endpoint()).await?;
                settings = embeddings.settings(&user.id).await?;
            }
            // The model and the address are the account's settings, which an archive brings.
            if !args.json {
                eprintln!(
                    "embedding with {} at {} ({} rows per request)",
                    field(&settings.model),
                    field(&settings.endpoint()),
                    settings.batch_size
                );
            }
            embeddings.start(&user.id).await?;
            let mut receiver = embeddings.watch(&user.id).await?;
            let progress = CliProgress::new(args.json);
            let mut last;
            loop {
                let status = receiver.borrow_and_update().clone();
                let rate = format!("Embedding ({:.1} rows/s):", status.rate);
                let ended = status.status != "running";
                progress.show(Step {
                    phase: "embed".into(),
                    words: rate,
                    position: Some((status.done, status.total)),
                    last: ended,
                });
                last = status;
                if last.status != "running" || receiver.changed().await.is_err() {
                    break;
                }
            }
            if let Some(ended) = embeddings.finished(&user.id).await {
                last = ended;
            }
            progress.finish();
            Ok(last)
        })
    });
    match result {
        Ok(status) => {
            if args.json {
                if let Err(error) = print_json(&mut std::io::stdout().lock(), &status, JsonLayout::Pretty) {
                    return fail(error.into());
                }
            } else {
                println!("{}: {} rows embedded, {} still waiting", status.status, status.done, status.pending);
                // The provider's own words (an archive chose the provider): prose, maybe of
                // several lines, the last thing printed.
                if let Some(error) = &status.error {
                    println!("stopped: {}", printable(error, Breaks::Keep));
                }
            }
            if status.status == "complete" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => fail(error),
    }
}
