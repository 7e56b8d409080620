//! Where the server keeps its data and where it listens: flags, then environment, then
//! defaults that work with no configuration (`./data`, `127.0.0.1:8080`, `./dist`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

pub const DEFAULT_DATA_DIR: &str = "data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_WEB_DIR: &str = "dist";

/// The data directory, shared by every subcommand.
#[derive(Clone, Debug, Args)]
pub struct DataDirArg {
    /// Where accounts, files and vectors live (created if missing).
    #[arg(long = "data-dir", env = "LVBAK_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// How `lvbak serve` runs.
#[derive(Clone, Debug, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub data: DataDirArg,
    /// Address to listen on.
    #[arg(long, env = "LVBAK_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// The built web page (Trunk's output).
    #[arg(long = "web-dir", env = "LVBAK_WEB_DIR", default_value = DEFAULT_WEB_DIR)]
    pub web_dir: PathBuf,
}

/// Parses a caps override such as `entries=64,decompressed=1048576`, starting from the
/// documented caps. Keys: `archive`, `decompressed`, `line`, `legacy_line`, `entries`,
/// `metadata` (bytes or counts).
pub fn parse_limits(text: &str) -> Result<lvbak_core::Limits, String> {
    let mut limits = lvbak_core::Limits::STANDARD;
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let (key, value) = part.split_once('=').ok_or_else(|| format!("{part:?} is not key=value"))?;
        let value: u64 = value.trim().parse().map_err(|_| format!("{value:?} is not a number"))?;
        let slot = match key.trim() {
            "archive" => &mut limits.max_archive_bytes,
            "decompressed" => &mut limits.max_decompressed_bytes,
            "line" => &mut limits.max_line_bytes,
            "legacy_line" => &mut limits.max_legacy_line_bytes,
            "entries" => &mut limits.max_entries,
            "metadata" => &mut limits.max_metadata_bytes,
            other => return Err(format!("unknown cap {other:?}")),
        };
        *slot = value;
    }
    Ok(limits)
}

/// The caps in force: `LVBAK_LIMITS` if set, else the documented ones.
pub fn limits_from_env() -> Result<lvbak_core::Limits, String> {
    match std::env::var("LVBAK_LIMITS") {
        Ok(text) => parse_limits(&text).map_err(|error| format!("LVBAK_LIMITS: {error}")),
        Err(_) => Ok(lvbak_core::Limits::STANDARD),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_override() {
        let limits = parse_limits("entries=64, decompressed=1048576").unwrap_or_default();
        assert_eq!((limits.max_entries, limits.max_decompressed_bytes), (64, 1_048_576));
        assert_eq!(limits.max_line_bytes, lvbak_core::Limits::STANDARD.max_line_bytes);
        assert!(parse_limits("entries=x").is_err() && parse_limits("bogus=1").is_err());
    }
}
