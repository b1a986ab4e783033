//! Benchmarks for edgepipe.
