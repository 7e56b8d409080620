//! The `lvbak` command line: `serve`, `inspect`, and the account and backup commands.

mod inspect;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "lvbak",
    version,
    about = "Lumiverse-compatible account archives: serve, inspect, import, export"
)]
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
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Inspect(args) => inspect::run(args),
    }
}
