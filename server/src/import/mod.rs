//! Import: the apply engine (`session`, stopping with an `error`), driven from an archive (`from_archive`) or from
//! the browser's verified batches (`batches`), rows read in bounded steps (`steps`), previewed
//! without writing (`preview`), narrowed to picked items (`selection`), run as
//! jobs (`jobs`, whose status answers `report` bounds) behind the HTTP routes (`http`,
//! `batches`) or by `lvbak import`.

pub mod batches;
pub mod error;
pub(crate) mod forward;
pub mod from_archive;
pub mod http;
pub mod jobs;
pub mod preview;
pub mod report;
pub mod selection;
pub mod services;
pub mod session;
pub mod steps;
