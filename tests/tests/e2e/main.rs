//! End-to-end tests: one test binary (it links the server, and so LanceDB, once) holding
//! every suite that runs a real server on 127.0.0.1 over a real data directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod batch_preview;
mod batch_selection;
mod batches;
mod browser;
mod browser_cards;
mod browser_preview;
mod browser_selective;
mod cluster;
mod compat;
mod embeddings;
mod export;
mod import;
mod nodes;
mod page_restore;
mod plans;
mod schema;
mod selective_export;
mod support;
mod tenancy;
mod webdriver;
