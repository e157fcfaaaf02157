//! Shared helpers for dynrt's criterion benchmarks. The benchmarks themselves live in
//! `benches/benches/`.
