//! The real `lvbak serve` process under attack and under faults: one test per abuse a
//! hostile account could try on a shared instance (`abuse`), and crashes and a full disk
//! (`faults`). One binary (each test runs its own server process over its own data).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../examples/common/mod.rs"]
mod common;

mod abuse;
mod faults;
mod hostile;
mod migrate;
mod nodes;
mod object_store;
mod support;
