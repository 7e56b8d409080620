//! lvbak-server: the HTTP app, storage and jobs, as a library; `main.rs` only parses
//! arguments. Start at [`app::router`].

pub mod app;
pub mod cli;
pub mod config;
