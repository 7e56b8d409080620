//! The `lvbak` binary.
fn main() {}
