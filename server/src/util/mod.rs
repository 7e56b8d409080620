//! Small helpers every layer uses and none owns: the clock and fresh ids. They import
//! nothing of the crate, so any module may use them without tying itself to another.

/// Seconds since the Unix epoch, as every stored timestamp counts them.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

/// A random UUID (version 4), lower case and hyphenated as Lumiverse's ids are: archive,
/// job and account ids.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}
