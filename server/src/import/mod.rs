//! Import: the apply engine (`session`), driven from an archive (`from_archive`), run as
//! jobs (`jobs`) behind the HTTP routes (`http`) or by `lvbak import`.

pub mod from_archive;
pub mod http;
pub mod jobs;
pub mod session;
