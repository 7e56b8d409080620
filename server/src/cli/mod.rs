//! The `lvbak` command line: `serve`, `inspect`, the account and backup commands, `card`
//! (character cards out of an archive, or read back) and `embed` (re-vectorization).

mod card;
mod embed;
mod export;
mod import;
mod inspect;
mod migrate;
mod printable;
mod progress;
mod seed;
mod serve;
mod user;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use user::add_user;

#[derive(Debug, Parser)]
#[command(name = "lvbak", version, about = "Lumiverse-compatible account archives: serve, inspect, import, export")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (web page and API).
    Serve(serve::ServeArgs),
    /// Show what a .lvbak archive holds, checking it on the way.
    Inspect(inspect::InspectArgs),
    /// Manage accounts.
    User(user::UserArgs),
    /// Fill an account with demo data.
    Seed(seed::SeedArgs),
    /// Export an account to a .lvbak file.
    Export(export::ExportArgs),
    /// Import a .lvbak file into an account.
    Import(import::ImportArgs),
    /// Re-vectorize an account's rows that wait for vectors (Settings → Embeddings).
    Embed(embed::EmbedArgs),
    /// Character cards (JSON, PNG, CHARX) out of a .lvbak, as Lumiverse exports them; or a
    /// card file read back (--inspect).
    Card(card::CardArgs),
    /// Move a single-node instance's accounts and rows into PostgreSQL (--database-url),
    /// its files and vectors into object storage (--object-store), or both, checked by
    /// exporting every account from both; with the server stopped.
    Migrate(migrate::MigrateArgs),
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::User(args) => user::run(args),
        Command::Seed(args) => seed::run(args),
        Command::Export(args) => export::run(args),
        Command::Import(args) => import::run(args),
        Command::Embed(args) => embed::run(args),
        Command::Card(args) => card::run(args),
        Command::Migrate(args) => migrate::run(args),
    }
}

/// A multi-threaded runtime for commands that use the store.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Runtime::new()?)
}

/// Prints a failed command's error and gives its exit status. The error may quote an
/// archive (or rows that came from one), so it is printed as one escaped field.
fn fail(error: anyhow::Error) -> ExitCode {
    eprintln!("lvbak: {}", printable::field(&format!("{error:#}")));
    ExitCode::FAILURE
}
