//! # edgepipe-core
//!
//! The engine of edgepipe, an embeddable library for edge-to-cloud telemetry
//! pipelines. Readings flow through the stages in this order, one module each:
//!
//! 1. [`record`]: the [`DataRecord`] (the seed's `to_dict()` shape), its JSON and
//!    JSON Lines forms, timestamps and record ids;
//! 2. [`transform`]: per-record [`Transform`](transform::Transform)s chained into a
//!    [`Pipeline`], built in code or from JSON/TOML config, with a quarantine output
//!    and counters for every stage;
//! 3. [`window`]: windows over event time with watermarks, late-data policies and
//!    mergeable aggregates, emitted as ordinary records;
//! 4. [`batch`]: records split into batches, encoded (JSON, JSON Lines, msgpack or
//!    the columnar time-series codec), compressed and checksummed, with a
//!    deterministic batch id, and decoded within limits;
//! 5. [`queue`]: the store-and-forward [`Queue`](queue::Queue) that holds batches
//!    until the cloud acknowledges them, in memory or durable on disk;
//! 6. [`deliver`]: retry policy, circuit breaker and the sinks batches are sent to.
//!
//! 7. [`ingest`]: the cloud side, a receiver that authenticates, bounds, decodes,
//!    validates, deduplicates and stores batches, and (feature `ingest-server`) its
//!    HTTP server.
//!
//! ```
//! use edgepipe_core::record::json::parse_jsonl;
//! use edgepipe_core::transform::{Outcome, Pipeline};
//!
//! let input = br#"{"record_id":"r1","device_id":"dev-0001","timestamp":"2026-01-01T00:00:00.100Z","data_type":"sensors","payload":{"temperature":22.87,"humidity":50.3}}
//! {"record_id":"r2","device_id":"dev-0001","timestamp":"2026-01-01T00:00:00.200Z","data_type":"sensors","payload":{"temperature":"broken"}}"#;
//!
//! let mut pipeline = Pipeline::from_json_str(r#"{"transforms": [
//!     {"type": "add_metadata", "metadata": {"site": "factory-1"}},
//!     {"type": "validate_schema", "fields": {"temperature": "number"}},
//!     {"type": "rename_fields", "mapping": {"temperature": "temp_c"}}
//! ]}"#)?;
//!
//! let mut out = Vec::new();
//! for (_line, record) in parse_jsonl(input) {
//!     match pipeline.process(record?) {
//!         Outcome::Keep(record) => out.push(record.to_json()?),
//!         Outcome::Quarantined(q) => assert_eq!(q.reason.code, "schema.wrong_type"),
//!         Outcome::Dropped { .. } => unreachable!(),
//!     }
//! }
//! assert_eq!(out, [r#"{"record_id":"r1","device_id":"dev-0001","timestamp":"2026-01-01T00:00:00.100Z","data_type":"sensors","payload":{"temp_c":22.87,"humidity":50.3},"metadata":{"site":"factory-1"}}"#]);
//! assert_eq!(pipeline.stats()[1].quarantined, 1);
//! # Ok::<(), edgepipe_core::Error>(())
//! ```

pub mod batch;
pub mod deliver;
pub mod error;
pub mod ingest;
pub mod queue;
pub mod record;
pub mod transform;
pub mod window;

pub use error::{Error, Result};
pub use record::{DataRecord, Timestamp, Value};
pub use transform::Pipeline;

/// The Rust code blocks of the README and the guide, run as doctests.
#[cfg(doctest)]
mod guide {
    #[doc = include_str!("../../README.md")]
    struct Readme;
    #[doc = include_str!("../../docs/records.md")]
    struct Records;
    #[doc = include_str!("../../docs/quickstart.md")]
    struct Quickstart;
    #[doc = include_str!("../../docs/windows.md")]
    struct Windows;
}
