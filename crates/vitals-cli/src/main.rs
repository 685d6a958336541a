//! The `vitals` command (work in progress).
fn main() {}
