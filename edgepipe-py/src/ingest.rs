//! `Receiver`: the cloud side of `POST /api/ingest`, for a Python web framework
//! to host.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use edgepipe_core::ingest::DataLakeStore;
use edgepipe_core::ingest::{
    Dedup, IngestRequest, MemoryStore, Receiver as CoreReceiver, ReceiverConfig, Retention,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::sync::atomic::Ordering;

use crate::batch::{PyDecodeLimits, limits_of};
use crate::error::to_py_err;
use crate::gil::without_gil;
use crate::record::records_to_list;

#[derive(Debug, Clone)]
enum Stores {
    /// `lake/`, `quarantine/` and `dedup.journal` under this directory.
    Disk(PathBuf),
    /// Records and quarantine in memory, dedup in memory.
    Memory(MemoryStore),
}

/// The ingest receiver: authenticates, bounds, decodes, validates, deduplicates
/// and stores one batch per `receive` call (the protocol of docs/wire-http.md).
///
/// `Receiver(dir, api_keys)` stores into a partitioned data lake under
/// `dir/lake`, quarantines invalid records as JSON Lines under `dir/quarantine`,
/// and journals batch ids in `dir/dedup.journal`; `Receiver.in_memory(api_keys)`
/// keeps everything in memory. A context manager: leaving the block closes it.
/// Thread-safe; `receive` releases the GIL.
#[pyclass(frozen, name = "Receiver", module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct PyReceiver {
    inner: RwLock<Option<Arc<CoreReceiver>>>,
    stores: Stores,
    retry_after_seconds: u64,
}

#[allow(clippy::too_many_arguments)] // Python keyword arguments
fn receiver_config(
    api_keys: Vec<String>,
    hmac_key: Option<Vec<u8>>,
    require_signature: bool,
    limits: Option<&PyDecodeLimits>,
    retry_after_seconds: u64,
    batch_id_retention: u64,
    max_batch_ids: usize,
) -> PyResult<ReceiverConfig> {
    if require_signature && hmac_key.is_none() {
        return Err(PyValueError::new_err(
            "require_signature needs an hmac_key to check signatures with",
        ));
    }
    let mut config = ReceiverConfig::new(api_keys);
    config.hmac_key = hmac_key;
    config.require_signature = require_signature;
    config.limits = limits_of(limits);
    config.retry_after_seconds = retry_after_seconds;
    config.retention = Retention {
        batch_id_seconds: batch_id_retention,
        max_batch_ids,
    };
    Ok(config)
}

fn headers_of(headers: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let pairs = match headers.getattr("items") {
        Ok(items) => items.call0()?,
        Err(_) => headers.clone(),
    };
    let mut out = Vec::new();
    for pair in pairs.try_iter().map_err(|_| {
        PyTypeError::new_err("headers must be a mapping or an iterable of (name, value) pairs")
    })? {
        let (name, value): (String, String) = pair?.extract().map_err(|_| {
            PyTypeError::new_err("headers must hold (name, value) pairs of strings")
        })?;
        out.push((name, value));
    }
    Ok(out)
}

impl PyReceiver {
    fn receiver(&self) -> PyResult<Arc<CoreReceiver>> {
        self.inner
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
            .ok_or_else(|| PyValueError::new_err("operation on a closed receiver"))
    }
}

#[pymethods]
impl PyReceiver {
    /// A receiver storing under directory `dir`, accepting the given API keys.
    ///
    /// Batches a crash interrupted are reconciled before this returns.
    /// `hmac_key` checks `X-Edgepipe-Signature` (required with
    /// `require_signature`); `limits` bound every body; a 503 asks the sender to
    /// wait `retry_after_seconds`; batch ids are remembered for
    /// `batch_id_retention` seconds, at most `max_batch_ids` of them.
    #[new]
    #[pyo3(signature = (dir, api_keys, *, hmac_key=None, require_signature=false, limits=None, retry_after_seconds=5, batch_id_retention=604800, max_batch_ids=1000000))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn new(
        py: Python<'_>,
        dir: PathBuf,
        api_keys: Vec<String>,
        hmac_key: Option<Vec<u8>>,
        require_signature: bool,
        limits: Option<&PyDecodeLimits>,
        retry_after_seconds: u64,
        batch_id_retention: u64,
        max_batch_ids: usize,
    ) -> PyResult<Self> {
        let config = receiver_config(
            api_keys,
            hmac_key,
            require_signature,
            limits,
            retry_after_seconds,
            batch_id_retention,
            max_batch_ids,
        )?;
        let receiver = without_gil(py, || CoreReceiver::open(config, &dir))
            .map_err(|error| to_py_err(py, &error))?;
        Ok(PyReceiver {
            inner: RwLock::new(Some(Arc::new(receiver))),
            stores: Stores::Disk(dir),
            retry_after_seconds,
        })
    }

    /// A receiver keeping records, quarantine and dedup state in memory (tests,
    /// throw-away servers): `records()` and `quarantined()` read them.
    #[staticmethod]
    #[pyo3(signature = (api_keys, *, hmac_key=None, require_signature=false, limits=None, retry_after_seconds=5, batch_id_retention=604800, max_batch_ids=1000000))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn in_memory(
        py: Python<'_>,
        api_keys: Vec<String>,
        hmac_key: Option<Vec<u8>>,
        require_signature: bool,
        limits: Option<&PyDecodeLimits>,
        retry_after_seconds: u64,
        batch_id_retention: u64,
        max_batch_ids: usize,
    ) -> PyResult<Self> {
        let config = receiver_config(
            api_keys,
            hmac_key,
            require_signature,
            limits,
            retry_after_seconds,
            batch_id_retention,
            max_batch_ids,
        )?;
        let store = MemoryStore::default();
        let dedup = Dedup::in_memory(config.retention);
        let receiver = CoreReceiver::with_parts(
            config,
            dedup,
            Box::new(store.clone()),
            Box::new(store.clone()),
        )
        .map_err(|error| to_py_err(py, &error))?;
        Ok(PyReceiver {
            inner: RwLock::new(Some(Arc::new(receiver))),
            stores: Stores::Memory(store),
            retry_after_seconds,
        })
    }

    /// Handles one `POST /api/ingest`, GIL released: `headers` (a mapping or
    /// (name, value) pairs, names in any case) and the body as sent. Returns
    /// `(status, body)`: the HTTP status and the JSON body, the seed's shapes.
    /// On 503 the response needs `Retry-After: retry_after_seconds`.
    fn receive(
        &self,
        py: Python<'_>,
        headers: &Bound<'_, PyAny>,
        body: &[u8],
    ) -> PyResult<(u16, String)> {
        let receiver = self.receiver()?;
        let request = IngestRequest {
            headers: headers_of(headers)?,
            body: body.to_vec(),
        };
        Ok(without_gil(py, || {
            let outcome = receiver.handle(&request);
            (outcome.status(), outcome.body())
        }))
    }

    /// Seconds a 503 asks the sender to wait (its `Retry-After`).
    #[getter]
    fn retry_after_seconds(&self) -> u64 {
        self.retry_after_seconds
    }

    /// The counters: `batches_stored`, `batches_duplicate`, `records_accepted`,
    /// `records_quarantined`, `records_duplicate`, `bytes_received`, and
    /// `rejected` (status → count).
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let receiver = self.receiver()?;
        let metrics = receiver.metrics();
        let dict = PyDict::new(py);
        for (name, value) in [
            ("batches_stored", &metrics.batches_stored),
            ("batches_duplicate", &metrics.batches_duplicate),
            ("records_accepted", &metrics.records_accepted),
            ("records_quarantined", &metrics.records_quarantined),
            ("records_duplicate", &metrics.records_duplicate),
            ("bytes_received", &metrics.bytes_received),
        ] {
            dict.set_item(name, value.load(Ordering::Relaxed))?;
        }
        let rejected = PyDict::new(py);
        for status in [400u16, 401, 404, 413, 422, 503] {
            rejected.set_item(status, metrics.rejected(status))?;
        }
        dict.set_item("rejected", rejected)?;
        Ok(dict)
    }

    /// The counters in the Prometheus text format (what `GET /metrics` serves).
    fn prometheus(&self) -> PyResult<String> {
        Ok(self.receiver()?.metrics().render_prometheus())
    }

    /// Every stored record, as dicts: read back from the data lake (on disk) or
    /// from memory.
    fn records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let stores = self.stores.clone();
        let records = without_gil(py, || match stores {
            Stores::Disk(dir) => DataLakeStore::read_all(&dir.join("lake")),
            Stores::Memory(store) => Ok(store.all_records()),
        })
        .map_err(|error| to_py_err(py, &error))?;
        records_to_list(py, &records)
    }

    /// Quarantined records of an in-memory receiver: dicts `{"reason", "raw"}`
    /// (`raw` is the record's JSON as sent). On disk they are JSON Lines files
    /// under `dir/quarantine`.
    fn quarantined<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let Stores::Memory(store) = &self.stores else {
            return Err(PyValueError::new_err(
                "quarantined() reads an in-memory receiver; on disk, read dir/quarantine/*.jsonl",
            ));
        };
        let list = PyList::empty(py);
        for record in store.all_quarantined() {
            let dict = PyDict::new(py);
            dict.set_item("reason", record.reason)?;
            dict.set_item("raw", record.raw)?;
            list.append(dict)?;
        }
        Ok(list)
    }

    /// Closes the receiver (its journal); further calls raise ValueError.
    fn close(&self, py: Python<'_>) {
        let receiver = self
            .inner
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        without_gil(py, move || drop(receiver));
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        match &self.stores {
            Stores::Disk(dir) => format!("Receiver({:?})", dir.display().to_string()),
            Stores::Memory(_) => "Receiver.in_memory()".to_owned(),
        }
    }
}
