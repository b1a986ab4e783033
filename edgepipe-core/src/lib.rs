//! # edgepipe-core
//!
//! The engine of edgepipe, an embeddable library for edge-to-cloud telemetry
//! pipelines: it takes readings from sensors and gateways, cleans and thins them at
//! the edge, packs them into small checksummed batches, keeps them on disk until
//! the cloud confirms them, delivers them over flaky networks, and on the cloud
//! side stores every record exactly once. One Rust core serves Rust programs (this
//! crate), Python collectors (the `edgepipe` package, with drop-ins for the seed
//! agent's classes) and C firmware (`libedgepipe.a`).
//!
//! ## When to use it
//!
//! Use edgepipe when the pipeline lives *inside* your program on a small device or
//! gateway, rather than beside it as an agent (Vector, Fluent Bit): it is a library
//! with no daemon, no runtime of its own in the default build, and bounded memory.
//! It is built for what fleets on flaky links need:
//!
//! - **nothing acknowledged is lost**: the durable queue syncs before an enqueue
//!   returns and survives SIGKILL and power loss (the contract and the tests that
//!   prove it are in `docs/durability.md`);
//! - **exactly once in effect**: batch ids are deterministic, so a retry is
//!   recognised, and the ingest side deduplicates by batch id and sequence range;
//! - **far fewer bytes than JSON**: the columnar codec sends the shared workload in
//!   about 1 byte per reading where the seed's gzip JSON needs about 40;
//! - **bad input is data, not a crash**: every decoder is bounded, every refusal
//!   says why, and a record a stage refuses goes to a quarantine with its reason.
//!
//! If you need routing between many services with a config language of its own,
//! an agent is the better fit; edgepipe's stages can still feed it.
//!
//! ## Cargo features
//!
//! | feature | adds |
//! | --- | --- |
//! | `zstd` | zstd batch compression (builds the C libzstd) |
//! | `sqlite` | `queue::SqliteQueue`, the seed's `delivery_queue` table |
//! | `http` | `deliver::HttpSink` (rustls on ring) |
//! | `mqtt` | `deliver::MqttSink` (QoS 1) |
//! | `nats` | `deliver::NatsSink` (NATS JetStream, deduplicated by batch id) |
//! | `ingest-server` | the HTTP ingest server and the `edgepipe-ingest` binary |
//! | `parquet` | the Parquet cold-tier store |
//! | `postgres` | `ingest::PgLedger`, dedup shared by many ingest replicas |
//! | `kafka` | `deliver::KafkaSink` and `ingest::KafkaStore` (rskafka, pure Rust; `docs/kafka.md`) |
//! | `kafka-lz4` | Kafka-side lz4 compression (builds the C liblz4) |
//!
//! The guides live in the repository's `docs/`: `quickstart.md` (Rust, Python and
//! C), `architecture.md`, `transforms.md`, `windows.md`, `wire-format.md` and
//! `wire-http.md` (with versioning rules), `config.md`, `queue.md` and `durability.md`,
//! `delivery.md`, `kafka.md`, `ingest.md`, `performance.md` (every figure with the command that
//! reproduces it), `python.md`, `c.md`, `uniffi.md` and `migrating-from-seed.md`.
//!
//! ## The stages
//!
//! Readings flow through the stages in this order, one module each:
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
//! 6. [`deliver`]: retry policy, circuit breaker, the delivery worker and the sinks
//!    batches are sent to;
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
