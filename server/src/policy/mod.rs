//! The rules of an import, whatever stores the rows: what a row may hold and whose it must
//! be (`rows`), what a reference to a row that is missing or another account's becomes
//! (`ownership`), copies under new ids and the ids in text (`ids`), the quota (`quota`), the
//! settings deep merge (`settings`), numbered rows (`numbering`), where a restored file
//! may go (`files`) and what a restore would do, decided without writing (`preview`).
//!
//! A backend (`storage::sqlite` today) answers the questions these rules ask — whose is
//! this id, does one of the importer's rows name this file, which number is taken — and
//! runs the statements they decide on; it decides nothing itself. Nothing here does I/O.

pub(crate) mod files;
pub(crate) mod ids;
pub(crate) mod numbering;
pub(crate) mod ownership;
pub(crate) mod preview;
pub(crate) mod quota;
pub(crate) mod rows;
pub(crate) mod settings;
