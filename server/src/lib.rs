//! lvbak-server: the HTTP app, storage and jobs, as a library; `main.rs` only parses
//! arguments. Start at [`app::router`].

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod embeddings;
pub mod error;
pub mod export;
pub mod failure;
pub mod faults;
pub mod import;
pub(crate) mod memory;
pub mod progress;
pub mod seed;
pub mod sign_in;
pub mod state;
pub mod storage;
pub mod throttle;
pub mod util;
