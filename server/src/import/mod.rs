//! Import: the apply engine (`session`), driven from an archive (`from_archive`).

pub mod from_archive;
pub mod session;
