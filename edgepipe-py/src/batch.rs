//! Batches: `Batcher`, `Batch`, `DecodeLimits` and the bulk `encode_jsonl`.

use std::sync::{Mutex, MutexGuard};

use edgepipe_core::batch::{
    Batch as CoreBatch, BatchEncoder, BatchPolicy, Batcher as CoreBatcher, Codec, Compression,
    DecodeLimits as CoreLimits,
};
use edgepipe_core::{DataRecord, Error, Timestamp};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::error::{EdgepipeError, to_py_err};
use crate::gil::without_gil;
use crate::record::{dicts_to_records, records_to_list, seconds_of, timestamp_arg, to_jsonl};

/// Bounds applied when a batch is read back; each passed bound raises
/// LimitExceededError. Defaults: 16 MiB compressed, 64 MiB decompressed,
/// 1,000,000 records, nesting 128 deep.
#[pyclass(frozen, name = "DecodeLimits", module = "edgepipe")]
#[derive(Clone, Copy, Debug)]
pub(crate) struct PyDecodeLimits {
    pub(crate) inner: CoreLimits,
}

#[pymethods]
impl PyDecodeLimits {
    #[new]
    #[pyo3(signature = (*, max_compressed_bytes=None, max_decompressed_bytes=None, max_records=None, max_depth=None))]
    fn new(
        max_compressed_bytes: Option<usize>,
        max_decompressed_bytes: Option<usize>,
        max_records: Option<usize>,
        max_depth: Option<usize>,
    ) -> Self {
        let default = CoreLimits::default();
        PyDecodeLimits {
            inner: CoreLimits {
                max_compressed_bytes: max_compressed_bytes.unwrap_or(default.max_compressed_bytes),
                max_decompressed_bytes: max_decompressed_bytes
                    .unwrap_or(default.max_decompressed_bytes),
                max_records: max_records.unwrap_or(default.max_records),
                max_depth: max_depth.unwrap_or(default.max_depth),
            },
        }
    }

    /// Largest compressed payload accepted, in bytes.
    #[getter]
    fn max_compressed_bytes(&self) -> usize {
        self.inner.max_compressed_bytes
    }

    /// Largest payload after decompression, in bytes (checked while inflating).
    #[getter]
    fn max_decompressed_bytes(&self) -> usize {
        self.inner.max_decompressed_bytes
    }

    /// Most records in one batch.
    #[getter]
    fn max_records(&self) -> usize {
        self.inner.max_records
    }

    /// Deepest nesting of lists and maps in a payload value.
    #[getter]
    fn max_depth(&self) -> usize {
        self.inner.max_depth
    }

    fn __repr__(&self) -> String {
        let limits = &self.inner;
        format!(
            "DecodeLimits(max_compressed_bytes={}, max_decompressed_bytes={}, max_records={}, max_depth={})",
            limits.max_compressed_bytes,
            limits.max_decompressed_bytes,
            limits.max_records,
            limits.max_depth
        )
    }
}

pub(crate) fn limits_of(limits: Option<&PyDecodeLimits>) -> CoreLimits {
    limits.map_or_else(CoreLimits::default, |limits| limits.inner)
}

/// The codec and compression named by the arguments; `level` None takes the
/// compression's default (gzip 6, zstd 3).
pub(crate) fn encoding_args(
    py: Python<'_>,
    codec: &str,
    compression: &str,
    level: Option<i64>,
) -> PyResult<(Codec, Compression)> {
    let codec = Codec::from_name(codec).map_err(|error| to_py_err(py, &error))?;
    let mut compression =
        Compression::from_name(compression).map_err(|error| to_py_err(py, &error))?;
    if let Some(level) = level {
        let out_of_range = || {
            PyValueError::new_err(format!(
                "level {level} is out of range for {} compression",
                compression.name()
            ))
        };
        compression = match compression {
            Compression::Gzip { .. } => Compression::Gzip {
                level: u32::try_from(level).map_err(|_| out_of_range())?,
            },
            Compression::Zstd { .. } => Compression::Zstd {
                level: i32::try_from(level).map_err(|_| out_of_range())?,
            },
            other => {
                return Err(PyValueError::new_err(format!(
                    "level: {} compression takes no level",
                    other.name()
                )));
            }
        };
    }
    compression
        .validate()
        .map_err(|error| to_py_err(py, &error))?;
    Ok((codec, compression))
}

/// A batch: its envelope (the seed's `DataBatch` fields plus what dedup needs)
/// and its payload, the encoded and compressed records.
#[pyclass(frozen, name = "Batch", module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct PyBatch {
    pub(crate) inner: CoreBatch,
}

impl PyBatch {
    pub(crate) fn list<'py>(
        py: Python<'py>,
        batches: Vec<CoreBatch>,
    ) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for batch in batches {
            list.append(Py::new(py, PyBatch { inner: batch })?)?;
        }
        Ok(list)
    }
}

#[pymethods]
impl PyBatch {
    /// Reads bytes written by `to_bytes()`; sizes are checked against `limits`,
    /// the checksum by `verify()`/`decode()`.
    ///
    /// Raises CorruptDataError for bytes that are not a batch (truncated, bad
    /// magic), UnsupportedError for an unknown codec or version.
    #[staticmethod]
    #[pyo3(signature = (data, *, limits=None))]
    fn from_bytes(py: Python<'_>, data: &[u8], limits: Option<&PyDecodeLimits>) -> PyResult<Self> {
        let limits = limits_of(limits);
        let batch = without_gil(py, || CoreBatch::from_bytes(data, &limits))
            .map_err(|error| to_py_err(py, &error))?;
        Ok(PyBatch { inner: batch })
    }

    /// The batch as bytes: the binary envelope, then the payload (what queues hold).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = without_gil(py, || self.inner.to_bytes());
        PyBytes::new(py, &bytes)
    }

    /// Checks the payload against the envelope's sha256; raises ChecksumError.
    fn verify(&self, py: Python<'_>) -> PyResult<()> {
        without_gil(py, || self.inner.verify()).map_err(|error| to_py_err(py, &error))
    }

    /// Verifies and decodes the records, within `limits`, as JSON Lines bytes.
    #[pyo3(signature = (*, limits=None))]
    fn decode<'py>(
        &self,
        py: Python<'py>,
        limits: Option<&PyDecodeLimits>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let limits = limits_of(limits);
        let jsonl = without_gil(py, || {
            self.inner
                .decode(&limits)
                .and_then(|records| to_jsonl(&records))
        })
        .map_err(|error| to_py_err(py, &error))?;
        Ok(PyBytes::new(py, &jsonl))
    }

    /// Verifies and decodes the records, within `limits`, as dicts.
    #[pyo3(signature = (*, limits=None))]
    fn records<'py>(
        &self,
        py: Python<'py>,
        limits: Option<&PyDecodeLimits>,
    ) -> PyResult<Bound<'py, PyList>> {
        let limits = limits_of(limits);
        let records = without_gil(py, || self.inner.decode(&limits))
            .map_err(|error| to_py_err(py, &error))?;
        records_to_list(py, &records)
    }

    /// Deterministic id: the same records from the same source give the same id.
    #[getter]
    fn batch_id(&self) -> &str {
        &self.inner.envelope.batch_id
    }

    /// The producing source.
    #[getter]
    fn source_id(&self) -> &str {
        &self.inner.envelope.source_id
    }

    /// When the batch was closed, Unix seconds.
    #[getter]
    fn created_at(&self) -> f64 {
        seconds_of(self.inner.envelope.created_at)
    }

    /// Records in the payload.
    #[getter]
    fn record_count(&self) -> u64 {
        self.inner.envelope.record_count
    }

    /// `(epoch, first, last)` when every record id is a sequence id of the
    /// source in one epoch, else None.
    #[getter]
    fn sequence(&self) -> Option<(u64, u64, u64)> {
        self.inner
            .envelope
            .sequence
            .map(|range| (range.epoch, range.first, range.last))
    }

    /// `json`, `json-python`, `jsonl`, `msgpack` or `columnar`.
    #[getter]
    fn codec(&self) -> &'static str {
        self.inner.envelope.codec.name()
    }

    /// `none`, `gzip`, `lz4` or `zstd`.
    #[getter]
    fn compression(&self) -> &'static str {
        self.inner.envelope.compression.name()
    }

    /// Lowercase hex sha256 of the payload (the seed's `checksum`).
    #[getter]
    fn checksum(&self) -> &str {
        &self.inner.envelope.checksum
    }

    /// Payload bytes as sent (the seed's `size_bytes`).
    #[getter]
    fn compressed_size(&self) -> u64 {
        self.inner.envelope.compressed_size
    }

    /// Encoded bytes before compression (the seed's `original_size_bytes`).
    #[getter]
    fn original_size(&self) -> u64 {
        self.inner.envelope.original_size
    }

    /// True for a single record larger than the byte limit, sent alone.
    #[getter]
    fn oversize(&self) -> bool {
        self.inner.envelope.oversize
    }

    /// The encoded, compressed records.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.payload)
    }

    fn __len__(&self) -> usize {
        self.inner.envelope.record_count as usize
    }

    fn __repr__(&self) -> String {
        let envelope = &self.inner.envelope;
        format!(
            "Batch(batch_id={:?}, source_id={:?}, record_count={}, codec={:?}, compression={:?}, size={})",
            envelope.batch_id,
            envelope.source_id,
            envelope.record_count,
            envelope.codec.name(),
            envelope.compression.name(),
            envelope.compressed_size
        )
    }
}

/// Groups one source's records into batches closed at `max_records`, `max_bytes`
/// (encoded, before compression) or `max_age` seconds, whichever comes first.
///
/// Every call returns the batches it closed, oldest first. Times are Unix seconds
/// of the caller's clock (`now`; the wall clock when None).
#[pyclass(frozen, name = "Batcher", module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct PyBatcher {
    inner: Mutex<CoreBatcher>,
}

fn lock(batcher: &Mutex<CoreBatcher>) -> PyResult<MutexGuard<'_, CoreBatcher>> {
    batcher.lock().map_err(|_| {
        EdgepipeError::new_err(
            "this batcher is unusable: a call on it panicked (a bug in edgepipe; please report it)",
        )
    })
}

fn drain(batcher: &mut CoreBatcher) -> Vec<CoreBatch> {
    std::iter::from_fn(|| batcher.next_batch()).collect()
}

pub(crate) fn policy_args(
    max_records: usize,
    max_bytes: usize,
    max_age: Option<f64>,
) -> PyResult<BatchPolicy> {
    let max_age_nanos = match max_age {
        None => None,
        Some(seconds) if seconds.is_finite() && seconds > 0.0 && seconds < 9.2e9 => {
            Some((seconds * 1e9).round().max(1.0) as i64)
        }
        Some(seconds) => {
            return Err(PyValueError::new_err(format!(
                "max_age must be a positive number of seconds or None, not {seconds}"
            )));
        }
    };
    Ok(BatchPolicy {
        max_records,
        max_bytes,
        max_age_nanos,
    })
}

impl PyBatcher {
    /// Runs `work` on the batcher, GIL released, and returns the batches it closed.
    fn run<'py, F>(&self, py: Python<'py>, work: F) -> PyResult<Bound<'py, PyList>>
    where
        F: Send + FnOnce(&mut CoreBatcher) -> Result<(), Error>,
    {
        let (result, batches) = without_gil(py, || {
            lock(&self.inner).map(|mut batcher| {
                let result = work(&mut batcher);
                // Batches closed before an error are handed out all the same.
                (result, drain(&mut batcher))
            })
        })?;
        let list = PyBatch::list(py, batches)?;
        match result {
            Ok(()) => Ok(list),
            Err(error) => Err(to_py_err(py, &error)),
        }
    }
}

#[pymethods]
impl PyBatcher {
    /// A batcher for `source_id`. The seed's choice is the default: the `json`
    /// codec, gzip at level 6, 100 records, 1 MiB, 10 s.
    ///
    /// Raises UnsupportedError for an unknown codec or compression, ConfigError
    /// for a limit that cannot be met (e.g. `max_records=0`).
    #[new]
    #[pyo3(signature = (source_id, *, codec="json", compression="gzip", level=None, max_records=100, max_bytes=1048576, max_age=Some(10.0)))]
    // pyo3 cannot print `Some(10.0)` as Python; spelled out for `help()` and inspect.
    #[pyo3(
        text_signature = "(source_id, *, codec='json', compression='gzip', level=None, max_records=100, max_bytes=1048576, max_age=10.0)"
    )]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn new(
        py: Python<'_>,
        source_id: &str,
        codec: &str,
        compression: &str,
        level: Option<i64>,
        max_records: usize,
        max_bytes: usize,
        max_age: Option<f64>,
    ) -> PyResult<Self> {
        let (codec, compression) = encoding_args(py, codec, compression, level)?;
        let policy = policy_args(max_records, max_bytes, max_age)?;
        let batcher = BatchEncoder::new(source_id, codec, compression)
            .and_then(|encoder| CoreBatcher::new(encoder, policy))
            .map_err(|error| to_py_err(py, &error))?;
        Ok(PyBatcher {
            inner: Mutex::new(batcher),
        })
    }

    /// Adds every record of a JSON Lines buffer, GIL released; returns the
    /// batches that closed.
    ///
    /// All or nothing on bad input: the first bad line raises its error kind
    /// before any record is added.
    #[pyo3(signature = (data, now=None))]
    fn push_jsonl<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        now: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let now = timestamp_arg("now", now)?;
        let records = without_gil(py, || crate::record::parse_all(data))
            .map_err(|error| to_py_err(py, &error))?;
        self.run(py, move |batcher| push_all(batcher, records, now))
    }

    /// Adds records given as dicts in the `to_dict()` shape; returns the batches
    /// that closed. A bad dict raises (naming `records[i]`) before any is added.
    #[pyo3(signature = (records, now=None))]
    fn push<'py>(
        &self,
        py: Python<'py>,
        records: &Bound<'py, PyAny>,
        now: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let now = timestamp_arg("now", now)?;
        let records = dicts_to_records(records, "records")?;
        self.run(py, move |batcher| push_all(batcher, records, now))
    }

    /// Closes the open batch if it reached `max_age` at `now`.
    #[pyo3(signature = (now=None))]
    fn poll<'py>(&self, py: Python<'py>, now: Option<f64>) -> PyResult<Bound<'py, PyList>> {
        let now = timestamp_arg("now", now)?;
        self.run(py, move |batcher| batcher.poll(now))
    }

    /// Closes the open batch, whatever its size.
    #[pyo3(signature = (now=None))]
    fn flush<'py>(&self, py: Python<'py>, now: Option<f64>) -> PyResult<Bound<'py, PyList>> {
        let now = timestamp_arg("now", now)?;
        self.run(py, move |batcher| batcher.flush(now))
    }

    /// Records waiting in the open batch.
    #[getter]
    fn open_records(&self, py: Python<'_>) -> PyResult<usize> {
        without_gil(py, || {
            lock(&self.inner).map(|batcher| batcher.open_records())
        })
    }
}

fn push_all(
    batcher: &mut CoreBatcher,
    records: Vec<DataRecord>,
    now: Timestamp,
) -> Result<(), Error> {
    for record in records {
        batcher.push(record, now)?;
    }
    Ok(())
}

/// Encodes a JSON Lines buffer into batches in one call, GIL released: records
/// split at `max_records` and `max_bytes`, in input order, each batch encoded,
/// compressed and checksummed (sha256), stamped `created_at` (Unix seconds; now
/// when None).
///
/// The seed's S1 batches are the defaults: `json`, gzip level 6, 100 records.
/// `threads` > 1 encodes on that many threads: the records are first cut into
/// runs of whole `max_records` batches, one run per thread, so the batches are
/// the same as with one thread unless one closes early on `max_bytes`.
/// The first bad line raises its error kind (e.g. InvalidJsonError), naming it;
/// run `Pipeline.process_jsonl` or `normalize_jsonl` first to set bad lines aside.
#[pyfunction]
#[pyo3(signature = (data, source_id, *, codec="json", compression="gzip", level=None, max_records=100, max_bytes=1048576, created_at=None, threads=1))]
#[allow(clippy::too_many_arguments)] // Python keyword arguments
pub(crate) fn encode_jsonl<'py>(
    py: Python<'py>,
    data: &[u8],
    source_id: &str,
    codec: &str,
    compression: &str,
    level: Option<i64>,
    max_records: usize,
    max_bytes: usize,
    created_at: Option<f64>,
    threads: usize,
) -> PyResult<Bound<'py, PyList>> {
    let (codec, compression) = encoding_args(py, codec, compression, level)?;
    let policy = policy_args(max_records, max_bytes, None)?;
    let created_at = timestamp_arg("created_at", created_at)?;
    let encoder = checked_encoder(py, source_id, codec, compression, policy, threads)?;
    let batches = without_gil(py, || {
        let records = crate::record::parse_all(data)?;
        encode_records(records, &encoder, policy, created_at, threads)
    })
    .map_err(|error| to_py_err(py, &error))?;
    PyBatch::list(py, batches)
}

/// The encoder for a bulk encode, every option checked before any work.
pub(crate) fn checked_encoder(
    py: Python<'_>,
    source_id: &str,
    codec: Codec,
    compression: Compression,
    policy: BatchPolicy,
    threads: usize,
) -> PyResult<BatchEncoder> {
    if threads == 0 {
        return Err(PyValueError::new_err("threads must be at least 1"));
    }
    BatchEncoder::new(source_id, codec, compression)
        .and_then(|encoder| CoreBatcher::new(encoder.clone(), policy).map(|_| encoder))
        .map_err(|error| to_py_err(py, &error))
}

/// Batches `records` in order, on up to `threads` threads: cut into runs of whole
/// `max_records` batches, each run through a batcher of its own.
pub(crate) fn encode_records(
    mut records: Vec<DataRecord>,
    encoder: &BatchEncoder,
    policy: BatchPolicy,
    created_at: Timestamp,
    threads: usize,
) -> Result<Vec<CoreBatch>, Error> {
    let per_thread = records
        .len()
        .div_ceil(threads.max(1))
        .div_ceil(policy.max_records.max(1))
        .saturating_mul(policy.max_records)
        .max(1);
    let mut runs = Vec::new();
    while records.len() > per_thread {
        let rest = records.split_off(per_thread);
        runs.push(std::mem::replace(&mut records, rest));
    }
    runs.push(records);
    let encode = |run: Vec<DataRecord>| -> Result<Vec<CoreBatch>, Error> {
        let mut batcher = CoreBatcher::new(encoder.clone(), policy)?;
        let mut batches = Vec::new();
        for record in run {
            batcher.push(record, created_at)?;
            batches.extend(drain(&mut batcher));
        }
        batcher.flush(created_at)?;
        batches.extend(drain(&mut batcher));
        Ok(batches)
    };
    if runs.len() == 1 {
        return runs.pop().map_or_else(|| Ok(Vec::new()), encode);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .into_iter()
            .map(|run| scope.spawn(move || encode(run)))
            .collect();
        let mut batches = Vec::new();
        for handle in handles {
            match handle.join() {
                Ok(part) => batches.extend(part?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(batches)
    })
}
