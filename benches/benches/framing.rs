//! Placeholder while the codecs are written.
fn main() {}
