//! Batches: split, encode, compress, checksum.
//!
//! In the order a batch is made:
//!
//! 1. [`batcher`]: [`Batcher`] closes batches by [`BatchPolicy`] (records,
//!    encoded bytes, age), keeping each source's order;
//! 2. [`codec`]: [`Codec`] encodes the records — `json` (the seed's body),
//!    `jsonl`, `msgpack` or `columnar` (edgepipe's time-series format);
//! 3. [`compression`]: [`Compression`] — none, gzip, lz4 (frame) or zstd
//!    (feature `zstd`);
//! 4. [`envelope`]: sha256 checksum, deterministic batch id and the [`Envelope`]
//!    around the payload ([`Batch`]), with a binary form for queues;
//! 5. [`limits`]: [`DecodeLimits`], what the receiving side accepts.
//!
//! The wire formats are specified in `docs/wire-format.md`.
//!
//! ```
//! use edgepipe_core::batch::{BatchEncoder, BatchPolicy, Batcher, Codec, Compression, DecodeLimits};
//! use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};
//!
//! let encoder = BatchEncoder::new("gw-1", Codec::Columnar, Compression::Lz4)?;
//! let mut batcher = Batcher::new(encoder, BatchPolicy { max_records: 2, ..BatchPolicy::default() })?;
//! for sequence in 0..3 {
//!     let mut record = DataRecord::new("dev-0001", "sensors", Payload::new());
//!     record.record_id = format!("gw-1:0:{sequence}").into();
//!     record.payload.insert("temperature", Value::Float(22.87));
//!     batcher.push(record, Timestamp::from_unix_nanos(0))?;
//! }
//! let batch = batcher.next_batch().expect("closed at two records");
//! assert_eq!(batch.envelope.record_count, 2);
//! assert_eq!(batch.envelope.sequence.map(|s| (s.first, s.last)), Some((0, 1)));
//! let records = batch.decode(&DecodeLimits::default())?;
//! assert_eq!(records[1].record_id, "gw-1:0:1");
//! # Ok::<(), edgepipe_core::Error>(())
//! ```

pub mod batcher;
pub mod codec;
pub mod compression;
pub mod envelope;
pub mod limits;

pub use batcher::{BatchPolicy, Batcher};
pub use codec::Codec;
pub use compression::Compression;
pub use envelope::{
    Batch, BatchEncoder, Envelope, SequenceRange, batch_id, decode_payload, sha256_hex, signature,
};
pub use limits::DecodeLimits;
