//! Cloud ingestion: the receiving end of [`deliver`](crate::deliver).
//!
//! In the order a request is handled:
//!
//! 1. [`receiver`]: [`Receiver`] checks a request (headers, API key, signature,
//!    limits, checksum), decodes it (any codec and compression, or the seed's gzip
//!    JSON array), validates every record and answers with a typed [`Outcome`],
//!    one per response of the HTTP protocol (`docs/wire-http.md`);
//! 2. [`dedup`]: [`Dedup`], batch ids and per-source sequence ranges, journalled
//!    so each record is stored once across retries and restarts;
//!    `ledger::PgLedger` (feature `postgres`) is the same state shared by many
//!    replicas, in PostgreSQL;
//! 3. [`store`]: the [`Store`] trait, the partitioned [`DataLakeStore`], the
//!    [`JsonlQuarantine`] and a [`MemoryStore`] for tests;
//!    `parquet::ParquetStore` (feature `parquet`) is the cold tier;
//!    [`TeeStore`] writes to two stores (the lake, then Kafka);
//!    `kafka::KafkaStore` (feature `kafka`) publishes to a Kafka topic by device;
//! 4. `server` (feature `ingest-server`): the HTTP/1.1 server around the receiver,
//!    also run by the `edgepipe-ingest` binary.
//!
//! The design, the order of the checks and the crash argument are in `docs/ingest.md`.

pub mod dedup;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "postgres")]
pub mod ledger;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod receiver;
#[cfg(feature = "ingest-server")]
pub mod server;
pub mod store;
pub mod tee;

pub use dedup::{Dedup, RangeSet, Retention};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaMessage, KafkaReader, KafkaStore};
#[cfg(feature = "postgres")]
pub use ledger::PgLedger;
pub use receiver::{CrashPoint, IngestRequest, Metrics, Outcome, Receiver, ReceiverConfig};
pub use store::{
    DataLakeStore, JsonlQuarantine, MemoryStore, QuarantineStore, QuarantinedRecord, Store,
    store_key,
};
pub use tee::TeeStore;
