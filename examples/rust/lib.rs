//! Shared pieces of edgepipe's runnable examples.
//!
//! - [`workload`]: a synthetic sensor fleet in the shared benchmark workload's
//!   model, so the examples and benchmarks run without any input file.

pub mod workload;
