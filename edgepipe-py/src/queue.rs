//! `Queue`: the core's store-and-forward queues (durable segmented log, SQLite
//! in the seed's layout, memory) as one context-managed class.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use edgepipe_core::queue::{
    Durability, Entry, EntryId, FullPolicy, LogOptions, MemoryQueue, NackOutcome, Pending,
    Queue as CoreQueue, QueueOptions, SegmentedLog, SqliteQueue,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::batch::{PyBatch, PyDecodeLimits, limits_of};
use crate::error::to_py_err;
use crate::gil::without_gil;
use crate::record::{duration_arg, seconds_of, timestamp_arg};

#[derive(Debug, Clone)]
enum Backend {
    Log(Arc<SegmentedLog>),
    Sqlite(Arc<SqliteQueue>),
    Memory(Arc<MemoryQueue>),
}

impl Backend {
    fn queue(&self) -> Arc<dyn CoreQueue> {
        match self {
            Backend::Log(queue) => queue.clone(),
            Backend::Sqlite(queue) => queue.clone(),
            Backend::Memory(queue) => queue.clone(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Backend::Log(_) => "durable",
            Backend::Sqlite(_) => "sqlite",
            Backend::Memory(_) => "memory",
        }
    }
}

/// A store-and-forward queue of batches: `enqueue`/`enqueue_all`, then
/// `take` → send → `ack` (or `nack` to retry later).
///
/// Open one with `Queue.durable(dir)` (the crash-safe segmented log: an enqueue
/// returns once fdatasync'ed), `Queue.sqlite(path)` (the seed's `delivery_queue`
/// table) or `Queue.memory()`. Use it as a context manager: leaving the block
/// closes it (a Delivery still running keeps its own reference until it stops).
/// Safe to share between threads; every call releases the GIL.
#[pyclass(frozen, name = "Queue", module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct PyQueue {
    backend: RwLock<Option<Backend>>,
}

fn queue_options(
    max_bytes: u64,
    full_policy: &str,
    max_attempts: u32,
    ttl: Option<f64>,
) -> PyResult<QueueOptions> {
    let full_policy = match full_policy {
        "reject" => FullPolicy::Reject,
        "drop_oldest" => FullPolicy::DropOldest,
        other => {
            return Err(PyValueError::new_err(format!(
                "full_policy must be \"reject\" or \"drop_oldest\", not {other:?}"
            )));
        }
    };
    if max_attempts == 0 {
        return Err(PyValueError::new_err("max_attempts must be at least 1"));
    }
    Ok(QueueOptions {
        max_bytes,
        full_policy,
        max_attempts,
        ttl: ttl
            .map(|seconds| duration_arg("ttl", seconds))
            .transpose()?,
    })
}

impl PyQueue {
    /// The open backend, or ValueError once closed (as Python's files do).
    fn backend(&self) -> PyResult<Backend> {
        self.backend
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
            .ok_or_else(|| PyValueError::new_err("operation on a closed queue"))
    }

    pub(crate) fn shared(&self) -> PyResult<Arc<dyn CoreQueue>> {
        Ok(self.backend()?.queue())
    }

    fn open(backend: Backend) -> Self {
        PyQueue {
            backend: RwLock::new(Some(backend)),
        }
    }
}

fn pending_list<'py>(py: Python<'py>, taken: Vec<Pending>) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for pending in taken {
        list.append(Py::new(py, PyPending::from(pending))?)?;
    }
    Ok(list)
}

fn entries_of(batches: &Bound<'_, PyAny>) -> PyResult<Vec<Py<PyBatch>>> {
    let mut entries = Vec::new();
    for (index, item) in batches.try_iter()?.enumerate() {
        let item = item?;
        let batch = item.cast::<PyBatch>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "batches[{index}] must be a Batch, not {}",
                item.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        entries.push(batch.clone().unbind());
    }
    Ok(entries)
}

#[pymethods]
impl PyQueue {
    /// Opens (or creates) the durable segmented-log queue in directory `path`,
    /// recovering from whatever a crash left (never failing on damage: losses are
    /// counted in `stats()["lost"]`).
    ///
    /// `max_bytes` bounds what it holds (0: unbounded); `full_policy` is
    /// `"reject"` (QueueFullError, the default) or `"drop_oldest"`; an entry is
    /// dead-lettered after `max_attempts` nacks; `ttl` (seconds) expires old
    /// entries; `sync` is `"synced"` (fdatasync before enqueue returns) or
    /// `"written"` (survives SIGKILL, not a power cut).
    #[staticmethod]
    #[pyo3(signature = (path, *, max_bytes=268435456, full_policy="reject", max_attempts=10, ttl=None, sync="synced", segment_bytes=8388608))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn durable(
        py: Python<'_>,
        path: PathBuf,
        max_bytes: u64,
        full_policy: &str,
        max_attempts: u32,
        ttl: Option<f64>,
        sync: &str,
        segment_bytes: u64,
    ) -> PyResult<Self> {
        let sync = match sync {
            "synced" => Durability::Synced,
            "written" => Durability::Written,
            other => {
                return Err(PyValueError::new_err(format!(
                    "sync must be \"synced\" or \"written\", not {other:?}"
                )));
            }
        };
        if segment_bytes == 0 {
            return Err(PyValueError::new_err("segment_bytes must be at least 1"));
        }
        let options = LogOptions {
            queue: queue_options(max_bytes, full_policy, max_attempts, ttl)?,
            sync,
            segment_bytes,
            ..LogOptions::default()
        };
        let log = without_gil(py, || SegmentedLog::open(&path, options))
            .map_err(|error| to_py_err(py, &error))?;
        Ok(Self::open(Backend::Log(Arc::new(log))))
    }

    /// Opens (or creates) the SQLite queue at `path`, in the seed's
    /// `delivery_queue` table (an existing seed queue file keeps working).
    #[staticmethod]
    #[pyo3(signature = (path, *, max_bytes=268435456, full_policy="reject", max_attempts=10, ttl=None))]
    fn sqlite(
        py: Python<'_>,
        path: PathBuf,
        max_bytes: u64,
        full_policy: &str,
        max_attempts: u32,
        ttl: Option<f64>,
    ) -> PyResult<Self> {
        let options = queue_options(max_bytes, full_policy, max_attempts, ttl)?;
        let queue = without_gil(py, || SqliteQueue::open(&path, options))
            .map_err(|error| to_py_err(py, &error))?;
        Ok(Self::open(Backend::Sqlite(Arc::new(queue))))
    }

    /// A bounded queue in memory (lost with the process).
    #[staticmethod]
    #[pyo3(signature = (*, max_bytes=268435456, full_policy="reject", max_attempts=10, ttl=None))]
    fn memory(
        max_bytes: u64,
        full_policy: &str,
        max_attempts: u32,
        ttl: Option<f64>,
    ) -> PyResult<Self> {
        let options = queue_options(max_bytes, full_policy, max_attempts, ttl)?;
        Ok(Self::open(Backend::Memory(Arc::new(MemoryQueue::new(
            options,
        )))))
    }

    /// `"durable"`, `"sqlite"` or `"memory"`.
    #[getter]
    fn kind(&self) -> PyResult<&'static str> {
        Ok(self.backend()?.kind())
    }

    /// True once `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.backend
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .is_none()
    }

    /// Adds a batch; returns its entry id once it is as durable as the backend
    /// promises. Raises QueueFullError when the byte bound is reached (policy
    /// `"reject"`); nothing was written then.
    fn enqueue(&self, py: Python<'_>, batch: &Bound<'_, PyBatch>) -> PyResult<EntryId> {
        let queue = self.shared()?;
        let batch = batch.get();
        without_gil(py, || queue.enqueue(Entry::from_batch(&batch.inner)))
            .map_err(|error| to_py_err(py, &error))
    }

    /// Adds many batches with one durability point (one fdatasync for all of
    /// them); returns their ids in order. All or nothing.
    fn enqueue_all(&self, py: Python<'_>, batches: &Bound<'_, PyAny>) -> PyResult<Vec<EntryId>> {
        let queue = self.shared()?;
        let batches = entries_of(batches)?;
        without_gil(py, || {
            let entries = batches
                .iter()
                .map(|batch| Entry::from_batch(&batch.get().inner))
                .collect();
            queue.enqueue_all(entries)
        })
        .map_err(|error| to_py_err(py, &error))
    }

    /// Up to `max` entries ready at `now` (Unix seconds; the wall clock when
    /// None), oldest first and in order per source; they are in flight until
    /// acked, nacked or released.
    #[pyo3(signature = (max=100, now=None))]
    fn take<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        now: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let queue = self.shared()?;
        let now = timestamp_arg("now", now)?;
        let taken =
            without_gil(py, || queue.take(max, now)).map_err(|error| to_py_err(py, &error))?;
        pending_list(py, taken)
    }

    /// The entry was delivered: removes it for good. Raises UnknownEntryError for
    /// an entry not in flight.
    fn ack(&self, py: Python<'_>, id: EntryId) -> PyResult<()> {
        let queue = self.shared()?;
        without_gil(py, || queue.ack(id)).map_err(|error| to_py_err(py, &error))
    }

    /// Delivery failed: counts an attempt and makes the entry ready again at
    /// `retry_at` (Unix seconds; at once when None), or dead-letters it after
    /// `max_attempts`. Returns `{"attempts", "dead_lettered", "retry_at"}`.
    #[pyo3(signature = (id, retry_at=None))]
    fn nack<'py>(
        &self,
        py: Python<'py>,
        id: EntryId,
        retry_at: Option<f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let queue = self.shared()?;
        let retry_at = timestamp_arg("retry_at", retry_at)?;
        let outcome =
            without_gil(py, || queue.nack(id, retry_at)).map_err(|error| to_py_err(py, &error))?;
        let dict = PyDict::new(py);
        dict.set_item("attempts", outcome.attempts())?;
        match outcome {
            NackOutcome::Retry { retry_at, .. } => {
                dict.set_item("dead_lettered", false)?;
                dict.set_item("retry_at", seconds_of(retry_at))?;
            }
            NackOutcome::DeadLettered { .. } => {
                dict.set_item("dead_lettered", true)?;
                dict.set_item("retry_at", py.None())?;
            }
        }
        Ok(dict)
    }

    /// Hands an in-flight entry back without counting an attempt.
    fn release(&self, py: Python<'_>, id: EntryId) -> PyResult<()> {
        let queue = self.shared()?;
        without_gil(py, || queue.release(id)).map_err(|error| to_py_err(py, &error))
    }

    /// Dead-letters an in-flight entry now; returns its attempts.
    fn dead_letter(&self, py: Python<'_>, id: EntryId) -> PyResult<u32> {
        let queue = self.shared()?;
        without_gil(py, || queue.dead_letter(id)).map_err(|error| to_py_err(py, &error))
    }

    /// Up to `max` dead-lettered entries, oldest first.
    #[pyo3(signature = (max=100))]
    fn dead_letters<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyList>> {
        let queue = self.shared()?;
        let dead =
            without_gil(py, || queue.dead_letters(max)).map_err(|error| to_py_err(py, &error))?;
        pending_list(py, dead)
    }

    /// Removes dead-lettered entries for good; returns how many.
    fn purge_dead_letters(&self, py: Python<'_>) -> PyResult<u64> {
        let queue = self.shared()?;
        without_gil(py, || queue.purge_dead_letters()).map_err(|error| to_py_err(py, &error))
    }

    /// Expires every entry whose TTL has passed at `now`; returns how many.
    #[pyo3(signature = (now=None))]
    fn expire(&self, py: Python<'_>, now: Option<f64>) -> PyResult<u64> {
        let queue = self.shared()?;
        let now = timestamp_arg("now", now)?;
        without_gil(py, || queue.expire(now)).map_err(|error| to_py_err(py, &error))
    }

    /// An iterator over the ready entries, taking one at a time (each is in
    /// flight once yielded: ack or nack it). Stops when nothing is ready at `now`.
    #[pyo3(signature = (now=None))]
    fn drain(&self, now: Option<f64>) -> PyResult<QueueDrain> {
        Ok(QueueDrain {
            queue: self.shared()?,
            now: timestamp_arg("now", now)?,
        })
    }

    /// Counters and gauges: `pending`, `in_flight`, `dead`, `bytes`,
    /// `oldest_created_at`, `enqueued`, `acked`, `dropped`, `expired`,
    /// `dead_lettered`, `lost`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let queue = self.shared()?;
        let stats = without_gil(py, || queue.stats());
        let dict = PyDict::new(py);
        for (name, value) in [
            ("pending", stats.pending),
            ("in_flight", stats.in_flight),
            ("dead", stats.dead),
            ("bytes", stats.bytes),
        ] {
            dict.set_item(name, value)?;
        }
        dict.set_item("oldest_created_at", stats.oldest_created_at.map(seconds_of))?;
        for (name, value) in [
            ("enqueued", stats.enqueued),
            ("acked", stats.acked),
            ("dropped", stats.dropped),
            ("expired", stats.expired),
            ("dead_lettered", stats.dead_lettered),
            ("lost", stats.lost),
        ] {
            dict.set_item(name, value)?;
        }
        Ok(dict)
    }

    /// Makes acks and nacks so far survive a power cut (durable queue; a no-op
    /// for the others, whose every call is already as durable as it gets).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        match self.backend()? {
            Backend::Log(log) => {
                without_gil(py, || log.flush()).map_err(|error| to_py_err(py, &error))
            }
            Backend::Sqlite(_) | Backend::Memory(_) => Ok(()),
        }
    }

    /// Closes the queue (files and locks are let go once a Delivery using it has
    /// stopped too). Further calls raise ValueError; closing twice is fine.
    fn close(&self, py: Python<'_>) {
        let backend = self
            .backend
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        // Dropping the log flushes and unlocks files: not under the GIL.
        without_gil(py, move || drop(backend));
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    /// Entries held that are not dead-lettered (pending and in flight).
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let queue = self.shared()?;
        let stats = without_gil(py, || queue.stats());
        Ok((stats.pending + stats.in_flight) as usize)
    }

    fn __repr__(&self) -> String {
        match self.backend() {
            Ok(backend) => format!("Queue(kind={:?})", backend.kind()),
            Err(_) => "Queue(closed)".to_owned(),
        }
    }
}

/// What `Queue.drain()` returns: yields each ready entry, taking one at a time.
#[pyclass(frozen, module = "edgepipe")]
pub(crate) struct QueueDrain {
    queue: Arc<dyn CoreQueue>,
    now: edgepipe_core::Timestamp,
}

impl std::fmt::Debug for QueueDrain {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("QueueDrain").finish_non_exhaustive()
    }
}

#[pymethods]
impl QueueDrain {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyPending>> {
        let mut taken = without_gil(py, || self.queue.take(1, self.now))
            .map_err(|error| to_py_err(py, &error))?;
        Ok(taken.pop().map(PyPending::from))
    }
}

/// An entry handed out by `Queue.take` (or listed by `dead_letters`).
#[pyclass(frozen, name = "Pending", module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct PyPending {
    inner: Pending,
}

impl From<Pending> for PyPending {
    fn from(inner: Pending) -> Self {
        PyPending { inner }
    }
}

#[pymethods]
impl PyPending {
    /// Pass this to `ack`, `nack`, `release` or `dead_letter`.
    #[getter]
    fn id(&self) -> EntryId {
        self.inner.id
    }

    /// Failed attempts so far.
    #[getter]
    fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    /// The batch's source.
    #[getter]
    fn source_id(&self) -> &str {
        &self.inner.entry.source_id
    }

    /// The batch's id.
    #[getter]
    fn batch_id(&self) -> &str {
        &self.inner.entry.batch_id
    }

    /// When the batch was closed, Unix seconds.
    #[getter]
    fn created_at(&self) -> f64 {
        seconds_of(self.inner.entry.created_at)
    }

    /// The bytes enqueued: `Batch.to_bytes()`.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.entry.payload)
    }

    /// The payload read back as a Batch (sizes checked against `limits`).
    #[pyo3(signature = (*, limits=None))]
    fn batch(&self, py: Python<'_>, limits: Option<&PyDecodeLimits>) -> PyResult<PyBatch> {
        let limits = limits_of(limits);
        let batch = without_gil(py, || self.inner.entry.to_batch(&limits))
            .map_err(|error| to_py_err(py, &error))?;
        Ok(PyBatch { inner: batch })
    }

    fn __repr__(&self) -> String {
        format!(
            "Pending(id={}, attempts={}, source_id={:?}, batch_id={:?}, size={})",
            self.inner.id,
            self.inner.attempts,
            self.inner.entry.source_id,
            self.inner.entry.batch_id,
            self.inner.entry.payload.len()
        )
    }
}
