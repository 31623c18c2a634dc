//! Audio benchmarks (placeholder while written).
fn main() {}
