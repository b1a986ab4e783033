//! The seed's delivery: its `delivery_queue` SQLite table through the core's
//! `SqliteQueue`, and its HTTP protocol through the core's `HttpSink` in
//! seed-compatible mode. `python/edgepipe/delivery.py` gives them the seed's
//! `PersistentDeliveryQueue` and `DataDeliveryService` shapes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgepipe_core::Timestamp;
use edgepipe_core::batch::{Batch, Codec, Compression, DecodeLimits, Envelope};
use edgepipe_core::deliver::{Delivered, HttpSink, HttpSinkOptions, SendFailure, Sink};
use edgepipe_core::queue::{Entry, NackOutcome, Queue, QueueOptions, SqliteQueue};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::error::{EdgepipeError, to_py_err};
use crate::gil::without_gil;

/// A batch as the seed's `DataBatch` describes it, for the core.
#[allow(clippy::too_many_arguments)] // the seed's DataBatch fields, one each
fn core_batch(
    batch_id: &str,
    device_id: &str,
    payload: &[u8],
    compression: &str,
    checksum: &str,
    record_count: u64,
    original_size: u64,
    created_at_ns: i64,
) -> edgepipe_core::Result<Batch> {
    Ok(Batch {
        envelope: Envelope {
            batch_id: batch_id.to_owned(),
            source_id: device_id.to_owned(),
            created_at: Timestamp::from_unix_nanos(created_at_ns),
            record_count,
            sequence: None,
            // Read as JSON either way; json-python is what create_batch writes.
            codec: Codec::JsonPython,
            compression: Compression::from_name(compression)?,
            checksum: checksum.to_owned(),
            compressed_size: payload.len() as u64,
            original_size,
            oversize: false,
        },
        payload: payload.to_vec(),
    })
}

/// The seed's SQLite delivery queue, opened through the core's `SqliteQueue`.
///
/// Holds the database exclusively until `close()`; every enqueue is synced
/// (WAL, `synchronous=FULL`) before it returns.
#[pyclass(frozen, module = "edgepipe", name = "SeedQueue")]
#[derive(Debug)]
pub(crate) struct SeedQueue {
    // None once closed; an Arc so a call in progress keeps its queue while
    // close() runs in another thread.
    queue: Mutex<Option<Arc<SqliteQueue>>>,
}

impl SeedQueue {
    fn queue(&self) -> PyResult<Arc<SqliteQueue>> {
        self.queue
            .lock()
            .map_err(|_| EdgepipeError::new_err("the queue is unusable after a panic"))?
            .clone()
            .ok_or_else(|| PyRuntimeError::new_err("the delivery queue is closed"))
    }
}

fn nanos(value: i64, argument: &str) -> PyResult<Timestamp> {
    if value < 0 {
        return Err(PyValueError::new_err(format!(
            "{argument} must be nanoseconds since 1970, not {value}"
        )));
    }
    Ok(Timestamp::from_unix_nanos(value))
}

#[pymethods]
impl SeedQueue {
    /// Opens (or creates) the queue database at `path`, adopting rows the seed wrote.
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let queue = without_gil(py, || SqliteQueue::open(&path, QueueOptions::default()))
            .map_err(|error| to_py_err(py, &error))?;
        Ok(SeedQueue {
            queue: Mutex::new(Some(Arc::new(queue))),
        })
    }

    /// Enqueues a batch (the seed's `DataBatch` fields); returns its entry id.
    /// A batch id already held is not stored twice: its entry id is returned.
    #[allow(clippy::too_many_arguments)] // the seed's DataBatch fields, one each
    fn enqueue(
        &self,
        py: Python<'_>,
        batch_id: &str,
        device_id: &str,
        payload: &[u8],
        compression: &str,
        checksum: &str,
        record_count: u64,
        original_size: u64,
        created_at_ns: i64,
    ) -> PyResult<u64> {
        let created_at = nanos(created_at_ns, "created_at_ns")?;
        let queue = self.queue()?;
        without_gil(py, || {
            let batch = core_batch(
                batch_id,
                device_id,
                payload,
                compression,
                checksum,
                record_count,
                original_size,
                created_at.unix_nanos(),
            )?;
            queue.enqueue(Entry::from_batch(&batch))
        })
        .map_err(|error| to_py_err(py, &error))
    }

    /// Up to `limit` entries ready at `now_ns`, oldest first, left in the queue:
    /// tuples `(entry_id, batch_id, device_id, batch_data, compression,
    /// checksum, attempts, created_at_ns)`. An entry whose bytes cannot be read
    /// as a batch is dead-lettered, not returned.
    fn pending<'py>(
        &self,
        py: Python<'py>,
        limit: usize,
        now_ns: i64,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let now = nanos(now_ns, "now_ns")?;
        let queue = self.queue()?;
        let taken = without_gil(py, || -> edgepipe_core::Result<_> {
            let taken = queue.take(limit, now)?;
            let mut rows = Vec::with_capacity(taken.len());
            for pending in taken {
                // Listed, not handed out: the seed's get_pending only reads.
                queue.release(pending.id)?;
                match pending.entry.to_batch(&DecodeLimits::default()) {
                    Ok(batch) => rows.push((pending.id, pending.attempts, batch)),
                    Err(_) => {
                        queue.dead_letter(pending.id)?;
                    }
                }
            }
            Ok(rows)
        })
        .map_err(|error| to_py_err(py, &error))?;
        taken
            .into_iter()
            .map(|(id, attempts, batch)| {
                let row = PyDict::new(py);
                row.set_item("entry_id", id)?;
                row.set_item("batch_id", &batch.envelope.batch_id)?;
                row.set_item("device_id", &batch.envelope.source_id)?;
                row.set_item("batch_data", PyBytes::new(py, &batch.payload))?;
                row.set_item("compression", batch.envelope.compression.name())?;
                row.set_item("checksum", &batch.envelope.checksum)?;
                row.set_item("attempts", attempts)?;
                row.set_item("record_count", batch.envelope.record_count)?;
                row.set_item("original_size", batch.envelope.original_size)?;
                row.set_item("created_at_ns", batch.envelope.created_at.unix_nanos())?;
                Ok(row)
            })
            .collect()
    }

    /// The entry was delivered: its row is deleted.
    fn ack(&self, py: Python<'_>, entry_id: u64) -> PyResult<()> {
        let queue = self.queue()?;
        without_gil(py, || queue.ack(entry_id)).map_err(|error| to_py_err(py, &error))
    }

    /// A failed attempt: counted, and the entry is ready again at `retry_at_ns`.
    /// Returns `(attempts, dead_lettered)`: after 10 failed attempts (the seed's
    /// `attempts < 10`) the entry is dead-lettered.
    fn nack(&self, py: Python<'_>, entry_id: u64, retry_at_ns: i64) -> PyResult<(u32, bool)> {
        let retry_at = nanos(retry_at_ns, "retry_at_ns")?;
        let queue = self.queue()?;
        let outcome = without_gil(py, || queue.nack(entry_id, retry_at))
            .map_err(|error| to_py_err(py, &error))?;
        Ok(match outcome {
            NackOutcome::Retry { attempts, .. } => (attempts, false),
            NackOutcome::DeadLettered { attempts } => (attempts, true),
        })
    }

    /// A permanent failure (the receiver refused the batch): dead-lettered now.
    fn dead_letter(&self, py: Python<'_>, entry_id: u64) -> PyResult<u32> {
        let queue = self.queue()?;
        without_gil(py, || queue.dead_letter(entry_id)).map_err(|error| to_py_err(py, &error))
    }

    /// `(entry_id, batch_id)` of every entry held that is not dead-lettered.
    fn ids(&self, py: Python<'_>) -> PyResult<Vec<(u64, String)>> {
        let queue = self.queue()?;
        without_gil(py, || -> edgepipe_core::Result<_> {
            // Far enough ahead that every retry time has come; released at once.
            let taken = queue.take(usize::MAX, Timestamp::from_unix_nanos(i64::MAX))?;
            let mut ids = Vec::with_capacity(taken.len());
            for pending in taken {
                queue.release(pending.id)?;
                ids.push((pending.id, pending.entry.batch_id));
            }
            Ok(ids)
        })
        .map_err(|error| to_py_err(py, &error))
    }

    /// Counters: `pending`, `dead`, `enqueued`, `acked`, `dead_lettered`, `bytes`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.queue()?.stats();
        let dict = PyDict::new(py);
        dict.set_item("pending", stats.pending + stats.in_flight)?;
        dict.set_item("dead", stats.dead)?;
        dict.set_item("enqueued", stats.enqueued)?;
        dict.set_item("acked", stats.acked)?;
        dict.set_item("dead_lettered", stats.dead_lettered)?;
        dict.set_item("bytes", stats.bytes)?;
        Ok(dict)
    }

    /// Closes the database, so another program (the seed's code) can open it.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let queue = self
            .queue
            .lock()
            .map_err(|_| EdgepipeError::new_err("the queue is unusable after a panic"))?
            .take();
        without_gil(py, || drop(queue));
        Ok(())
    }
}

/// The seed's HTTP delivery (`POST {endpoint}/api/ingest` with `X-API-Key` and
/// `X-Batch-ID`) through the core's `HttpSink` in seed-compatible mode, which
/// keeps its connection open between batches.
#[pyclass(frozen, module = "edgepipe", name = "SeedSink")]
#[derive(Debug)]
pub(crate) struct SeedSink {
    sink: Mutex<HttpSink>,
}

#[pymethods]
impl SeedSink {
    /// A sink for `endpoint` (e.g. `https://ingest.example.com`) with `api_key`;
    /// each exchange must finish within `timeout` seconds (the seed's 60).
    #[new]
    #[pyo3(signature = (endpoint, api_key, timeout = 60.0))]
    fn new(py: Python<'_>, endpoint: String, api_key: String, timeout: f64) -> PyResult<Self> {
        let request_timeout = Duration::try_from_secs_f64(timeout)
            .ok()
            .filter(|duration| !duration.is_zero())
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "timeout must be a positive number of seconds, not {timeout}"
                ))
            })?;
        let options = HttpSinkOptions::new(endpoint, api_key)
            .with_seed_compatible(true)
            .with_request_timeout(request_timeout)
            .with_connect_timeout(request_timeout.min(Duration::from_secs(10)));
        let sink =
            without_gil(py, || HttpSink::new(options)).map_err(|error| to_py_err(py, &error))?;
        Ok(SeedSink {
            sink: Mutex::new(sink),
        })
    }

    /// Posts one batch, with the GIL released. Returns `(delivered, detail,
    /// retryable)`: `(True, "stored" or "duplicate", False)` once the receiver
    /// confirmed it, else `(False, why, whether a retry can help)`.
    #[allow(clippy::too_many_arguments)] // the seed's DataBatch fields, one each
    fn send(
        &self,
        py: Python<'_>,
        batch_id: &str,
        device_id: &str,
        payload: &[u8],
        compression: &str,
        checksum: &str,
        record_count: u64,
        created_at_ns: i64,
    ) -> PyResult<(bool, String, bool)> {
        let batch = core_batch(
            batch_id,
            device_id,
            payload,
            compression,
            checksum,
            record_count,
            0,
            created_at_ns,
        )
        .map_err(|error| to_py_err(py, &error))?;
        let outcome = without_gil(py, || {
            self.sink
                .lock()
                .map(|mut sink| sink.send(&batch))
                .map_err(|_| ())
        })
        .map_err(|()| EdgepipeError::new_err("the sink is unusable after a panic"))?;
        Ok(match outcome {
            Ok(Delivered::Stored) => (true, "stored".to_owned(), false),
            Ok(Delivered::Duplicate) => (true, "duplicate".to_owned(), false),
            Err(SendFailure::Permanent { reason }) => (false, reason, false),
            Err(failure) => (false, failure.reason().to_owned(), true),
        })
    }
}
