//! `lvbak serve`: open (or create) the data directory, listen, print the URL, serve until
//! Ctrl-C. With `--demo`, an empty instance gets a seeded `demo` account on first start.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::{fail, runtime};
use crate::app;
use crate::auth::generate_password;
use crate::config::ServeConfig;
use crate::seed::{seed, SeedOptions};
use crate::state::AppState;
use crate::storage::Store;
use crate::util::now;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ServeConfig,
    /// On first start (no accounts yet), create a `demo` account full of demo data.
    #[arg(long)]
    pub demo: bool,
}

const DEMO_USER: &str = "demo";
const DEMO_PASSWORD_FILE: &str = "demo-password.txt";

/// glibc's allocator settings for a long-running server with many threads: two arenas
/// (not eight per core), large blocks mapped and unmapped on their own, and freed memory
/// given back above 1 MiB. Eight users importing at once (`scripts/bench`): 443 MiB of
/// anonymous memory without them (heaptrack: 87 MB of it live), 166 MiB with them.
const MALLOC_TUNABLES: &str =
    "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=1048576";

/// glibc reads its tunables only when a process starts: the server starts itself again
/// (same process id, same arguments) with them set, unless the operator set their own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let error =
        std::process::Command::new(exe).args(std::env::args_os().skip(1)).env("GLIBC_TUNABLES", MALLOC_TUNABLES).exec();
    // Only reached when the exec failed: serve with the defaults.
    eprintln!("warning: could not apply the allocator settings ({error}); serving with glibc's defaults");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

pub fn run(args: &ServeArgs) -> ExitCode {
    tune_allocator();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,lance=warn,lancedb=warn,lance_core=warn,object_store=warn,lance_io::object_store=error",
        )
    });
    // Logs go to stderr; stdout carries only what the command prints (the URL first).
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    runtime().and_then(|runtime| runtime.block_on(serve(args))).map_or_else(fail, |()| ExitCode::SUCCESS)
}

/// Creates and seeds the demo account if the instance has no account yet; returns the
/// demo password when there is a demo account.
async fn prepare_demo(store: &Store) -> anyhow::Result<Option<String>> {
    let password_file = store.data_dir.join(DEMO_PASSWORD_FILE);
    if store.accounts().user_names().await?.is_empty() {
        let password = generate_password();
        super::add_user(store, DEMO_USER, &password).await?;
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&password_file)?;
        writeln!(file, "{password}")?;
        let user = store.accounts().user_by_name(DEMO_USER).await?;
        let user = user.ok_or_else(|| anyhow::anyhow!("the demo account vanished"))?;
        let report = seed(store, &user, SeedOptions::default(), now()).await?;
        println!("created the demo account: {} rows, {} files, {} vectors", report.rows, report.files, report.vectors);
    }
    Ok(std::fs::read_to_string(&password_file).ok().map(|text| text.trim().to_string()))
}

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = &args.config;
    let limits = crate::config::limits_from_env().map_err(anyhow::Error::msg)?;
    let hosting = crate::config::HostingLimits::for_serve(config).map_err(anyhow::Error::msg)?;
    let store = Arc::new(config.data.open_store().await?);
    let demo_password = if args.demo { prepare_demo(&store).await? } else { None };
    // The state first: it recovers what a previous process left (interrupted jobs, staging)
    // before anyone can connect.
    let data_dir = store.data_dir.clone();
    let state = AppState::new(store, config.web_dir.clone(), limits, hosting).await;
    // Re-vectorization a previous process left unfinished goes on.
    let embeddings = state.embeddings().clone();
    tokio::spawn(async move { embeddings.resume_all().await });
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let address = listener.local_addr()?;
    state.set_node_url(config.node_url.clone(), address);
    println!("lvbak is running at http://{address}/ (data in {})", data_dir.display());
    if let Some(password) = demo_password {
        println!("sign in as {DEMO_USER} with password {password}");
    }
    app::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
