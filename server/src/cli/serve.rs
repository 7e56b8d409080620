//! `lvbak serve`: prepare the data directory, listen, print the URL, serve until Ctrl-C.

use std::process::ExitCode;

use clap::Args;

use crate::app::{self, AppState};
use crate::config::ServeConfig;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ServeConfig,
}

pub fn run(args: &ServeArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lvbak: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lvbak: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = &args.config;
    std::fs::create_dir_all(&config.data.data_dir)?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let address = listener.local_addr()?;
    println!("lvbak is running at http://{address}/");
    let state = AppState::new(config.web_dir.clone());
    app::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
