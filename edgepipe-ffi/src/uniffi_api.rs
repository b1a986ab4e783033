//! Kotlin and Swift bindings through uniffi (feature `uniffi`), with Python
//! generated from the same library as the smoke test.
//!
//! This is a second, independent surface over the core, not a wrapper of the C
//! ABI: uniffi passes its own buffer format across the boundary and generates the
//! foreign side, so records, batches and stats travel as typed records and
//! enums, and handles are reference-counted objects. It covers what an app on a
//! phone or gateway needs: records, a pipeline from config, batch encode/decode,
//! the durable queue and delivery over HTTP on a background thread.
//!
//! Errors are one [`EdgepipeError`] carrying the C ABI's status number and name,
//! so the two surfaces report the same kinds with the same codes from the one
//! mapping in `error.rs`.
//!
//! Generate the bindings from the built library:
//!
//! ```text
//! cargo build --release -p edgepipe-ffi --features uniffi
//! cargo run -p edgepipe-ffi --features uniffi-cli --bin uniffi-bindgen -- \
//!     generate --library target/release/libedgepipe.so --language kotlin --out-dir bindings
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgepipe_core::batch::{Batch as CoreBatch, BatchEncoder, Codec, Compression, DecodeLimits};
use edgepipe_core::deliver::{
    DeliveryMetrics as CoreDeliveryMetrics, DeliveryOptions, DeliveryWorker, HttpSink,
    HttpSinkOptions,
};
use edgepipe_core::queue::{
    Entry, LogOptions, Queue as CoreQueue, QueueOptions, QueueStats as CoreQueueStats, SegmentedLog,
};
use edgepipe_core::record::{JsonOptions, Metadata, Payload, Timestamp, Value};
use edgepipe_core::transform::{Outcome, Pipeline as CorePipeline};
use edgepipe_core::{DataRecord, Error};

use crate::error::{Failure, edgepipe_status};

/// Every failure: the C ABI's status code and name for its kind, and the message.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum EdgepipeError {
    /// The call failed; `code` is the `edgepipe_status` number of the C ABI
    /// (1xx bad call, 2xx refused data, 3xx refused configuration, 4xx I/O, 9xx bug).
    #[error("{message}")]
    Failed {
        /// The `edgepipe_status` number.
        code: u32,
        /// The status's name, e.g. `Config`.
        kind: String,
        /// What went wrong, with its causes.
        message: String,
    },
}

impl EdgepipeError {
    fn new(status: edgepipe_status, message: impl Into<String>) -> Self {
        EdgepipeError::Failed {
            code: status as u32,
            kind: format!("{status:?}"),
            message: message.into(),
        }
    }

    fn lock_poisoned(what: &str) -> Self {
        Self::new(
            edgepipe_status::Panic,
            format!("this {what} is unusable: a call on it panicked (a bug in edgepipe)"),
        )
    }
}

impl From<Error> for EdgepipeError {
    fn from(error: Error) -> Self {
        // Through the C ABI's mapping, so both surfaces give a kind the same code
        // and the same message.
        let failure = Failure::from(error);
        Self::new(failure.status, failure.message)
    }
}

type Result<T> = std::result::Result<T, EdgepipeError>;

/// A payload value. Lists, objects and integers above `i64::MAX` travel as their
/// JSON text, so nothing a record can hold is lost on the way.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum FieldValue {
    /// JSON null.
    Null,
    /// true or false.
    Bool {
        /// The value.
        value: bool,
    },
    /// A signed integer.
    Int {
        /// The value.
        value: i64,
    },
    /// A 64-bit float.
    Float {
        /// The value.
        value: f64,
    },
    /// A string.
    Text {
        /// The value.
        value: String,
    },
    /// A list, an object, or an integer above `i64::MAX`, as JSON.
    Json {
        /// The JSON text.
        json: String,
    },
}

/// One named payload field; a record's fields keep their order.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Field {
    /// The field's name.
    pub name: String,
    /// Its value.
    pub value: FieldValue,
}

/// A reading: the seed's `DataRecord` shape.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct Reading {
    /// Unique id; empty asks for a fresh UUIDv4.
    pub record_id: String,
    /// The device the reading is about.
    pub device_id: String,
    /// Event time, RFC 3339 (e.g. `2026-01-01T00:00:00.100Z`); empty means now.
    pub timestamp: String,
    /// The kind of reading, e.g. `sensors`.
    pub data_type: String,
    /// The measured fields, in order.
    pub payload: Vec<Field>,
    /// Labels such as `site` and `region`.
    pub metadata: HashMap<String, String>,
}

fn value_to_field(value: &Value) -> Result<FieldValue> {
    Ok(match value {
        Value::Null => FieldValue::Null,
        Value::Bool(value) => FieldValue::Bool { value: *value },
        Value::Int(value) => FieldValue::Int { value: *value },
        Value::Float(value) => FieldValue::Float { value: *value },
        Value::String(value) => FieldValue::Text {
            value: value.to_string(),
        },
        Value::UInt(_) | Value::List(_) | Value::Map(_) => {
            let mut json = Vec::new();
            edgepipe_core::record::json::write_value(&mut json, value, &JsonOptions::default())?;
            FieldValue::Json {
                json: String::from_utf8_lossy(&json).into_owned(),
            }
        }
    })
}

fn field_to_value(name: &str, value: &FieldValue) -> Result<Value> {
    Ok(match value {
        FieldValue::Null => Value::Null,
        FieldValue::Bool { value } => Value::Bool(*value),
        FieldValue::Int { value } => Value::Int(*value),
        FieldValue::Float { value } => Value::Float(*value),
        FieldValue::Text { value } => Value::String(value.as_str().into()),
        FieldValue::Json { json } => {
            // Parse through a one-field record so the core's reader (and its rules for
            // numbers and nesting) decides what the JSON means.
            let wrapped = format!(
                r#"{{"record_id":"x","device_id":"x","timestamp":0,"data_type":"x","payload":{{"v":{json}}}}}"#
            );
            let record = DataRecord::from_json(&wrapped).map_err(|error| {
                EdgepipeError::new(
                    edgepipe_status::InvalidJson,
                    format!("payload field {name:?}: {error}"),
                )
            })?;
            record.payload.get("v").cloned().unwrap_or_default()
        }
    })
}

impl Reading {
    fn from_core(record: &DataRecord) -> Result<Self> {
        Ok(Reading {
            record_id: record.record_id.to_string(),
            device_id: record.device_id.to_string(),
            timestamp: record.timestamp.to_iso8601(),
            data_type: record.data_type.to_string(),
            payload: record
                .payload
                .iter()
                .map(|(name, value)| {
                    Ok(Field {
                        name: name.to_owned(),
                        value: value_to_field(value)?,
                    })
                })
                .collect::<Result<_>>()?,
            metadata: record
                .metadata
                .iter()
                .map(|(key, value)| (key.to_owned(), value.to_string()))
                .collect(),
        })
    }

    fn to_core(&self) -> Result<DataRecord> {
        let mut payload = Payload::with_capacity(self.payload.len());
        for field in &self.payload {
            payload.insert(
                field.name.as_str(),
                field_to_value(&field.name, &field.value)?,
            );
        }
        let mut record = DataRecord::new(self.device_id.as_str(), self.data_type.as_str(), payload);
        if !self.record_id.is_empty() {
            record.record_id = self.record_id.as_str().into();
        }
        if !self.timestamp.is_empty() {
            record.timestamp = Timestamp::parse(&self.timestamp)?;
        }
        // Sorted, so the same labels give the same record (and batch id) every time.
        let mut labels: Vec<_> = self.metadata.iter().collect();
        labels.sort();
        let mut metadata = Metadata::with_capacity(labels.len());
        for (key, value) in labels {
            metadata.insert(key.as_str(), value.as_str().into());
        }
        record.metadata = metadata;
        Ok(record)
    }
}

fn to_core_records(readings: &[Reading]) -> Result<Vec<DataRecord>> {
    readings.iter().map(Reading::to_core).collect()
}

fn from_core_records(records: &[DataRecord]) -> Result<Vec<Reading>> {
    records.iter().map(Reading::from_core).collect()
}

/// Reads JSON Lines (one seed-shaped record per line); fails on the first bad line.
#[uniffi::export]
pub fn parse_jsonl(jsonl: Vec<u8>) -> Result<Vec<Reading>> {
    let mut readings = Vec::new();
    for (line, record) in edgepipe_core::record::json::parse_jsonl(&jsonl) {
        let record = record.map_err(|error| {
            let failure = EdgepipeError::from(error);
            let EdgepipeError::Failed {
                code,
                kind,
                message,
            } = failure;
            EdgepipeError::Failed {
                code,
                kind,
                message: format!("line {line}: {message}"),
            }
        })?;
        readings.push(Reading::from_core(&record)?);
    }
    Ok(readings)
}

/// Writes readings as JSON Lines.
#[uniffi::export]
pub fn to_jsonl(readings: Vec<Reading>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for record in to_core_records(&readings)? {
        record.write_json(&mut out, &JsonOptions::default())?;
        out.push(b'\n');
    }
    Ok(out)
}

/// The version of the Rust crates, e.g. `0.1.0`.
#[uniffi::export]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// A reading a pipeline stage set aside, and why.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct QuarantinedReading {
    /// The reading as the stage saw it.
    pub reading: Reading,
    /// The stage's config `type`.
    pub stage: String,
    /// A stable code, e.g. `schema.wrong_type`.
    pub code: String,
    /// The payload field concerned, when there is one.
    pub field: Option<String>,
    /// A human-readable explanation.
    pub message: String,
}

/// What a pipeline made of a list of readings.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct PipelineResult {
    /// Readings that passed every stage, in order.
    pub readings: Vec<Reading>,
    /// Readings a stage quarantined, in order.
    pub quarantined: Vec<QuarantinedReading>,
    /// How many readings a stage dropped (filtered out, deduplicated, thinned).
    pub dropped: u64,
}

/// The counters of one stage: `records_in == records_out + dropped + quarantined`.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct StageStats {
    /// The stage's config `type`.
    pub name: String,
    /// Readings the stage saw.
    pub records_in: u64,
    /// Readings it passed on.
    pub records_out: u64,
    /// Readings it dropped.
    pub dropped: u64,
    /// Readings it quarantined.
    pub quarantined: u64,
}

/// Transforms applied in order to every reading. Safe to share between threads;
/// calls take turns.
#[derive(Debug, uniffi::Object)]
pub struct Pipeline {
    inner: Mutex<CorePipeline>,
}

#[uniffi::export]
impl Pipeline {
    /// A pipeline from a JSON config: `{"transforms": [{"type": ...}, ...]}`.
    #[uniffi::constructor]
    pub fn from_json(config: String) -> Result<Arc<Self>> {
        Ok(Arc::new(Pipeline {
            inner: Mutex::new(CorePipeline::from_json_str(&config)?),
        }))
    }

    /// A pipeline from a TOML config: `[[transforms]]` tables.
    #[uniffi::constructor]
    pub fn from_toml(config: String) -> Result<Arc<Self>> {
        Ok(Arc::new(Pipeline {
            inner: Mutex::new(CorePipeline::from_toml_str(&config)?),
        }))
    }

    /// Runs every reading through the stages.
    pub fn process(&self, readings: Vec<Reading>) -> Result<PipelineResult> {
        let records = to_core_records(&readings)?;
        let mut pipeline = self
            .inner
            .lock()
            .map_err(|_| EdgepipeError::lock_poisoned("pipeline"))?;
        let mut result = PipelineResult {
            readings: Vec::new(),
            quarantined: Vec::new(),
            dropped: 0,
        };
        for record in records {
            match pipeline.process(record) {
                Outcome::Keep(record) => result.readings.push(Reading::from_core(&record)?),
                Outcome::Dropped { .. } => result.dropped += 1,
                Outcome::Quarantined(quarantined) => {
                    result.quarantined.push(QuarantinedReading {
                        reading: Reading::from_core(&quarantined.record)?,
                        stage: quarantined.stage,
                        code: quarantined.reason.code.to_owned(),
                        field: quarantined.reason.field,
                        message: quarantined.reason.message,
                    });
                }
            }
        }
        Ok(result)
    }

    /// The counters of every stage, in pipeline order.
    pub fn stats(&self) -> Result<Vec<StageStats>> {
        let pipeline = self
            .inner
            .lock()
            .map_err(|_| EdgepipeError::lock_poisoned("pipeline"))?;
        Ok(pipeline
            .stats()
            .iter()
            .map(|stats| StageStats {
                name: stats.name.to_string(),
                records_in: stats.records_in,
                records_out: stats.records_out,
                dropped: stats.dropped,
                quarantined: stats.quarantined,
            })
            .collect())
    }
}

/// An encoded batch: the envelope's fields and the payload as sent.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Batch {
    /// Deterministic id: the same readings give the same id, so a retry is recognisable.
    pub batch_id: String,
    /// The producing source.
    pub source_id: String,
    /// When the batch was closed, RFC 3339.
    pub created_at: String,
    /// Readings in the payload.
    pub record_count: u64,
    /// `json`, `json-python`, `jsonl`, `msgpack` or `columnar`.
    pub codec: String,
    /// `none`, `gzip`, `lz4` or `zstd` (the HTTP `Content-Encoding`).
    pub compression: String,
    /// Lowercase hex sha256 of the payload.
    pub checksum: String,
    /// Encoded bytes before compression.
    pub original_size: u64,
    /// The encoded, compressed readings: the HTTP body.
    pub payload: Vec<u8>,
    /// The whole batch, envelope and payload, as the queue stores it
    /// (`Batch::to_bytes` in Rust, the `EPB` format of docs/wire-format.md).
    pub bytes: Vec<u8>,
}

impl Batch {
    fn from_core(batch: &CoreBatch) -> Self {
        let envelope = &batch.envelope;
        Batch {
            batch_id: envelope.batch_id.clone(),
            source_id: envelope.source_id.clone(),
            created_at: envelope.created_at.to_iso8601(),
            record_count: envelope.record_count,
            codec: envelope.codec.name().to_owned(),
            compression: envelope.compression.name().to_owned(),
            checksum: envelope.checksum.clone(),
            original_size: envelope.original_size,
            payload: batch.payload.clone(),
            bytes: batch.to_bytes(),
        }
    }
}

fn compression_named(name: &str, level: Option<u32>) -> Result<Compression> {
    let compression = Compression::from_name(name)?;
    Ok(match (compression, level) {
        (Compression::Gzip { .. }, Some(level)) => Compression::Gzip { level },
        (Compression::Zstd { .. }, Some(level)) => Compression::Zstd {
            level: i32::try_from(level).map_err(|_| {
                EdgepipeError::new(edgepipe_status::Config, "compression level out of range")
            })?,
        },
        (compression, _) => compression,
    })
}

/// Encodes readings into one batch for `source_id`: `codec` is `json` (the seed's),
/// `json-python`, `jsonl`, `msgpack` or `columnar`; `compression` is `none`,
/// `gzip` (with `level`, default 6), `lz4` or `zstd`.
#[uniffi::export(default(level = None))]
pub fn encode_batch(
    source_id: String,
    codec: String,
    compression: String,
    readings: Vec<Reading>,
    level: Option<u32>,
) -> Result<Batch> {
    let encoder = BatchEncoder::new(
        source_id,
        Codec::from_name(&codec)?,
        compression_named(&compression, level)?,
    )?;
    let records = to_core_records(&readings)?;
    Ok(Batch::from_core(
        &encoder.encode(&records, Timestamp::now())?,
    ))
}

/// Reads a batch back from its `bytes`, checking its checksum before anything else,
/// within the default decode limits.
#[uniffi::export]
pub fn batch_from_bytes(bytes: Vec<u8>) -> Result<Batch> {
    Ok(Batch::from_core(&CoreBatch::from_bytes(
        &bytes,
        &DecodeLimits::default(),
    )?))
}

/// The readings of a batch given as its `bytes`, checksum verified first.
#[uniffi::export]
pub fn decode_batch(bytes: Vec<u8>) -> Result<Vec<Reading>> {
    let limits = DecodeLimits::default();
    let batch = CoreBatch::from_bytes(&bytes, &limits)?;
    from_core_records(&batch.decode(&limits)?)
}

/// A batch handed out by [`Queue::take`], in flight until acked or nacked.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct QueuedBatch {
    /// Pass to `ack` or `nack`.
    pub entry_id: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The batch.
    pub batch: Batch,
}

/// A queue's counters and gauges.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct QueueStats {
    /// Entries waiting (neither in flight nor dead-lettered).
    pub pending: u64,
    /// Entries taken and not yet acked or nacked.
    pub in_flight: u64,
    /// Dead-lettered entries held.
    pub dead: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Entries accepted since the queue was opened.
    pub enqueued: u64,
    /// Entries acked since the queue was opened.
    pub acked: u64,
    /// Entries found lost to damage when the queue was opened.
    pub lost: u64,
}

impl From<CoreQueueStats> for QueueStats {
    fn from(stats: CoreQueueStats) -> Self {
        QueueStats {
            pending: stats.pending,
            in_flight: stats.in_flight,
            dead: stats.dead,
            bytes: stats.bytes,
            enqueued: stats.enqueued,
            acked: stats.acked,
            lost: stats.lost,
        }
    }
}

/// The durable queue (edgepipe's crash-safe segmented log) in a directory. An
/// enqueue returns once the batch is synced to disk. Safe to share between threads.
#[derive(Debug, uniffi::Object)]
pub struct Queue {
    inner: Arc<SegmentedLog>,
}

#[uniffi::export]
impl Queue {
    /// Opens (or creates) the queue in `dir`, holding at most `max_bytes` (0: unbounded).
    #[uniffi::constructor]
    pub fn open(dir: String, max_bytes: u64) -> Result<Arc<Self>> {
        let options = LogOptions {
            queue: QueueOptions {
                max_bytes,
                ..QueueOptions::default()
            },
            ..LogOptions::default()
        };
        Ok(Arc::new(Queue {
            inner: Arc::new(SegmentedLog::open(PathBuf::from(dir), options)?),
        }))
    }

    /// Adds a batch (its `bytes`); returns its entry id once it is on disk.
    pub fn enqueue(&self, batch: Batch) -> Result<u64> {
        let batch = CoreBatch::from_bytes(&batch.bytes, &DecodeLimits::default())?;
        Ok(self.inner.enqueue(Entry::from_batch(&batch))?)
    }

    /// Up to `max` batches ready now, oldest first, in order per source.
    pub fn take(&self, max: u32) -> Result<Vec<QueuedBatch>> {
        let limits = DecodeLimits::default();
        self.inner
            .take(max as usize, Timestamp::now())?
            .into_iter()
            .map(|pending| {
                let batch = pending.entry.to_batch(&limits)?;
                Ok(QueuedBatch {
                    entry_id: pending.id,
                    attempts: pending.attempts,
                    batch: Batch::from_core(&batch),
                })
            })
            .collect()
    }

    /// The batch was delivered: it is removed for good.
    pub fn ack(&self, entry_id: u64) -> Result<()> {
        Ok(self.inner.ack(entry_id)?)
    }

    /// Delivery failed: retry after `retry_after_ms`, or dead-letter after the
    /// attempt limit. Returns true when the entry was dead-lettered.
    pub fn nack(&self, entry_id: u64, retry_after_ms: u64) -> Result<bool> {
        let retry_at = Timestamp::now().saturating_add(Duration::from_millis(retry_after_ms));
        Ok(matches!(
            self.inner.nack(entry_id, retry_at)?,
            edgepipe_core::queue::NackOutcome::DeadLettered { .. }
        ))
    }

    /// The queue's counters and gauges.
    pub fn stats(&self) -> Result<QueueStats> {
        Ok(self.inner.stats().into())
    }
}

/// The delivery worker's counters.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct DeliveryMetrics {
    /// Batches the endpoint confirmed (stored or duplicate).
    pub batches_sent: u64,
    /// Records in those batches.
    pub records_sent: u64,
    /// Payload bytes in those batches.
    pub bytes_sent: u64,
    /// Batches the endpoint already had.
    pub duplicates: u64,
    /// Failed attempts that will be retried.
    pub retries: u64,
    /// Batches dead-lettered.
    pub dead_lettered: u64,
    /// The last failure's description.
    pub last_failure: Option<String>,
}

impl From<CoreDeliveryMetrics> for DeliveryMetrics {
    fn from(metrics: CoreDeliveryMetrics) -> Self {
        DeliveryMetrics {
            batches_sent: metrics.batches_sent,
            records_sent: metrics.records_sent,
            bytes_sent: metrics.bytes_sent,
            duplicates: metrics.duplicates,
            retries: metrics.retries,
            dead_lettered: metrics.dead_lettered,
            last_failure: metrics.last_failure,
        }
    }
}

/// A background thread draining a [`Queue`] to an HTTP ingest endpoint
/// (`POST /api/ingest`, the seed's protocol), with retries and backoff. Stop it
/// with `shutdown`; dropping it stops it too.
#[derive(Debug, uniffi::Object)]
pub struct Delivery {
    worker: Mutex<Option<DeliveryWorker>>,
}

#[uniffi::export]
impl Delivery {
    /// Starts delivering `queue` to the ingest service at `endpoint`, its base URL
    /// (e.g. `https://ingest.example.com`; batches go to `{endpoint}/api/ingest`),
    /// with `api_key`.
    #[uniffi::constructor]
    pub fn start_http(queue: Arc<Queue>, endpoint: String, api_key: String) -> Result<Arc<Self>> {
        let sink = HttpSink::new(HttpSinkOptions::new(endpoint, api_key))?;
        let queue: Arc<dyn CoreQueue> = queue.inner.clone();
        let delivery = edgepipe_core::deliver::Delivery::new(
            queue,
            Box::new(sink),
            DeliveryOptions::default(),
        );
        let worker = DeliveryWorker::spawn(delivery)
            .map_err(|error| Error::io("starting the delivery thread", error))?;
        Ok(Arc::new(Delivery {
            worker: Mutex::new(Some(worker)),
        }))
    }

    /// Wakes the worker: new batches are in the queue.
    pub fn notify(&self) -> Result<()> {
        if let Some(worker) = self.lock()?.as_ref() {
            worker.notify();
        }
        Ok(())
    }

    /// Blocks until the worker has confirmed at least `batches` batches in all (or
    /// dead-lettered them), it stopped on a queue error, or `timeout_ms` passed;
    /// returns the counters then.
    pub fn wait(&self, batches: u64, timeout_ms: u64) -> Result<DeliveryMetrics> {
        let guard = self.lock()?;
        let Some(worker) = guard.as_ref() else {
            return Ok(CoreDeliveryMetrics::default().into());
        };
        Ok(worker
            .wait_for(Duration::from_millis(timeout_ms), |metrics| {
                metrics.batches_sent + metrics.dead_lettered >= batches
            })
            .into())
    }

    /// The counters so far (the final ones after `shutdown`).
    pub fn metrics(&self) -> Result<DeliveryMetrics> {
        Ok(self
            .lock()?
            .as_ref()
            .map(|worker| worker.metrics().into())
            .unwrap_or_else(|| CoreDeliveryMetrics::default().into()))
    }

    /// Stops the worker after the batch in hand (an unconfirmed batch stays queued)
    /// and returns the final counters. Later calls return zeros.
    pub fn shutdown(&self) -> Result<DeliveryMetrics> {
        let worker = self.lock()?.take();
        Ok(worker
            .map(|worker| worker.shutdown().into())
            .unwrap_or_else(|| CoreDeliveryMetrics::default().into()))
    }
}

impl Delivery {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Option<DeliveryWorker>>> {
        self.worker
            .lock()
            .map_err(|_| EdgepipeError::lock_poisoned("delivery"))
    }
}
