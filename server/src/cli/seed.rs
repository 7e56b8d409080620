//! `lvbak seed --user NAME [--characters N] ...`: fills an account with demo data.

use std::process::ExitCode;

use clap::Args;

use super::{fail, runtime};
use crate::config::DataDirArg;
use crate::seed::{seed, SeedOptions};
use crate::util::now;

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The account to fill.
    #[arg(long)]
    user: String,
    #[arg(long, default_value_t = SeedOptions::default().characters)]
    characters: usize,
    #[arg(long, default_value_t = SeedOptions::default().chats)]
    chats: usize,
    #[arg(long = "messages-per-chat", default_value_t = SeedOptions::default().messages_per_chat)]
    messages_per_chat: usize,
    #[arg(long, default_value_t = SeedOptions::default().images)]
    images: usize,
    #[arg(long, default_value_t = SeedOptions::default().vectors)]
    vectors: usize,
    #[arg(long, default_value_t = SeedOptions::default().secrets)]
    secrets: usize,
    /// Secrets sealed under a foreign key, which an export must report as unreachable.
    #[arg(long = "unreadable-secrets", default_value_t = 0)]
    unreadable_secrets: usize,
    /// Extra ~1 KB characters, shaped like Lumiverse's export benchmark.
    #[arg(long = "bulk-characters", default_value_t = 0)]
    bulk_characters: usize,
    /// The embedding dimension of the account's vectors (and its `embeddingConfig`).
    #[arg(long, default_value_t = SeedOptions::default().dimension)]
    dimension: u32,
    #[command(flatten)]
    data: DataDirArg,
}

pub fn run(args: &SeedArgs) -> ExitCode {
    let options = SeedOptions {
        characters: args.characters,
        chats: args.chats,
        messages_per_chat: args.messages_per_chat,
        images: args.images,
        vectors: args.vectors,
        secrets: args.secrets,
        unreadable_secrets: args.unreadable_secrets,
        bulk_characters: args.bulk_characters,
        dimension: args.dimension,
    };
    let result = runtime().and_then(|runtime| {
        runtime.block_on(async {
            let store = args.data.open_store().await?;
            let user = store.accounts().user_by_name(&args.user).await?;
            let user = user.ok_or_else(|| anyhow::anyhow!("no user {:?}", args.user))?;
            let report = seed(&store, &user, options, now()).await?;
            println!(
                "seeded {}: {} rows, {} files, {} vectors, {} secrets",
                args.user,
                report.rows,
                report.files,
                report.vectors,
                report.secrets.len()
            );
            Ok(())
        })
    });
    result.map_or_else(fail, |()| ExitCode::SUCCESS)
}
