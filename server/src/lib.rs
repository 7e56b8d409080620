//! lvbak-server: the HTTP app, storage and jobs, as a library; `main.rs` only parses
//! arguments. Start at [`app::router`].

pub mod app;
pub(crate) mod auth;
pub mod cli;
pub mod config;
pub mod embeddings;
pub(crate) mod error;
pub(crate) mod export;
pub(crate) mod failure;
pub mod faults;
pub(crate) mod import;
/// A restore preview as `lvbak import --dry-run` computes it from an archive (the tests
/// compare the browser's batch preview with it).
pub use import::preview::preview_archive;
pub(crate) mod memory;
pub(crate) mod nodes;
pub(crate) mod policy;
pub(crate) mod progress;
pub mod seed;
pub(crate) mod sign_in;
pub mod state;
pub mod storage;
#[cfg(test)]
pub(crate) mod test_support;
pub(crate) mod throttle;
pub(crate) mod util;
