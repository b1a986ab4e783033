//! `Pipeline`: the core's transform chain, run over JSON Lines bytes.

use std::sync::{Mutex, MutexGuard};

use edgepipe_core::Error;
use edgepipe_core::record::JsonOptions;
use edgepipe_core::record::json::parse_jsonl;
use edgepipe_core::transform::Pipeline as CorePipeline;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyType};

use crate::batch::{PyBatch, checked_encoder, encode_records, encoding_args, policy_args};
use crate::error::{EdgepipeError, exception_type, to_py_err};
use crate::gil::without_gil;
use crate::record::timestamp_arg;

/// Transforms applied in order to every record, with counters per stage.
///
/// Build one with `Pipeline.from_json` or `Pipeline.from_toml`. Calls on one
/// pipeline from several threads are safe: they take turns, without holding the GIL.
#[pyclass(frozen, name = "Pipeline", module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct PyPipeline {
    // A Mutex because transforms keep state and the counters move on every batch,
    // while a frozen class is shared between threads; it is only locked with the
    // GIL released, so a long batch never blocks Python.
    inner: Mutex<CorePipeline>,
}

impl PyPipeline {
    fn build(
        py: Python<'_>,
        config: &str,
        parse: fn(&str) -> Result<CorePipeline, Error>,
    ) -> PyResult<Self> {
        let pipeline = without_gil(py, || parse(config)).map_err(|error| to_py_err(py, &error))?;
        Ok(PyPipeline {
            inner: Mutex::new(pipeline),
        })
    }
}

fn lock(pipeline: &Mutex<CorePipeline>) -> PyResult<MutexGuard<'_, CorePipeline>> {
    pipeline.lock().map_err(|_| {
        EdgepipeError::new_err(
            "this pipeline is unusable: a call on it panicked (a bug in edgepipe; please report it)",
        )
    })
}

#[pymethods]
impl PyPipeline {
    /// Builds a pipeline from a JSON config: `{"transforms": [{"type": ...}, ...]}`.
    ///
    /// Raises ConfigError naming the offending key (e.g. `transforms[0].mapping`).
    #[staticmethod]
    fn from_json(py: Python<'_>, config: &str) -> PyResult<Self> {
        Self::build(py, config, CorePipeline::from_json_str)
    }

    /// Builds a pipeline from a TOML config: `[[transforms]]` tables.
    ///
    /// Raises ConfigError naming the offending key.
    #[staticmethod]
    fn from_toml(py: Python<'_>, config: &str) -> PyResult<Self> {
        Self::build(py, config, CorePipeline::from_toml_str)
    }

    /// Builds a pipeline from a config dict, the JSON config's shape:
    /// `{"transforms": [{"type": "add_metadata", "metadata": {...}}, ...]}`.
    ///
    /// Raises ConfigError naming the offending key, TypeError for values JSON
    /// cannot hold.
    #[staticmethod]
    fn from_dict(py: Python<'_>, config: &Bound<'_, PyDict>) -> PyResult<Self> {
        let text = config_json(config.as_any(), "config")?;
        Self::build(py, &text, CorePipeline::from_json_str)
    }

    /// A PipelineBuilder: transforms added one call at a time, then `build()`.
    #[staticmethod]
    fn builder() -> PipelineBuilder {
        PipelineBuilder {
            transforms: Vec::new(),
        }
    }

    /// Runs every record of a JSON Lines batch through the pipeline, GIL released.
    ///
    /// Returns the records that passed (JSON Lines, in input order), the quarantine
    /// (one JSON object per line: stage, reason, record), and a LineError for every
    /// line that could not be used. Bad lines never abort the batch.
    fn process_jsonl(&self, py: Python<'_>, data: &[u8]) -> PyResult<ProcessResult> {
        let output = without_gil(py, || {
            lock(&self.inner)
                .map(|mut pipeline| pipeline.process_jsonl(data, &JsonOptions::default()))
        })?;
        let errors = output
            .errors
            .iter()
            .map(|(line, error)| LineError::new(py, *line, error))
            .collect::<PyResult<_>>()?;
        Ok(ProcessResult::new(
            py,
            &output.records,
            &output.quarantine,
            errors,
        ))
    }

    /// The bulk edge path in one call, GIL released: reads a JSON Lines buffer,
    /// runs every record through the pipeline and encodes what passed into
    /// batches, as `encode_jsonl` does (same options and defaults: the seed's
    /// json, gzip-6, 100 records, sha256). Records are parsed once, never written
    /// back to JSON Lines in between.
    ///
    /// Returns an EncodeResult: the batches, the quarantine (JSON Lines, as
    /// `process_jsonl`'s) and a LineError per unusable input line.
    #[pyo3(signature = (data, source_id, *, codec="json", compression="gzip", level=None, max_records=100, max_bytes=1048576, created_at=None, threads=1))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn encode_jsonl(
        &self,
        py: Python<'_>,
        data: &[u8],
        source_id: &str,
        codec: &str,
        compression: &str,
        level: Option<i64>,
        max_records: usize,
        max_bytes: usize,
        created_at: Option<f64>,
        threads: usize,
    ) -> PyResult<EncodeResult> {
        let (codec, compression) = encoding_args(py, codec, compression, level)?;
        let policy = policy_args(max_records, max_bytes, None)?;
        let created_at = timestamp_arg("created_at", created_at)?;
        let encoder = checked_encoder(py, source_id, codec, compression, policy, threads)?;
        let (batches, quarantine, errors) = without_gil(py, || {
            let mut records = Vec::new();
            let mut errors = Vec::new();
            for (line, record) in parse_jsonl(data) {
                match record {
                    Ok(record) => records.push(record),
                    Err(error) => errors.push((line, error)),
                }
            }
            let mut quarantined = Vec::new();
            lock(&self.inner)?.process_in_place(&mut records, &mut quarantined);
            let mut quarantine = Vec::new();
            for entry in &quarantined {
                // Quarantined records came from JSON, so they can be written as JSON.
                if entry
                    .write_json(&mut quarantine, &JsonOptions::default())
                    .is_ok()
                {
                    quarantine.push(b'\n');
                }
            }
            let batches = encode_records(records, &encoder, policy, created_at, threads);
            Ok::<_, PyErr>((batches, quarantine, errors))
        })?;
        let batches = batches.map_err(|error| to_py_err(py, &error))?;
        let errors = errors
            .iter()
            .map(|(line, error)| LineError::new(py, *line, error))
            .collect::<PyResult<_>>()?;
        Ok(EncodeResult {
            batches: PyBatch::list(py, batches)?.unbind(),
            quarantine: PyBytes::new(py, &quarantine).unbind(),
            errors,
        })
    }

    /// Counters per stage, in stage order: dicts with `name`, `records_in`,
    /// `records_out`, `dropped` and `quarantined`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let stats = without_gil(py, || {
            lock(&self.inner).map(|pipeline| pipeline.stats().to_vec())
        })?;
        let list = PyList::empty(py);
        for stage in stats {
            let dict = PyDict::new(py);
            dict.set_item("name", stage.name)?;
            dict.set_item("records_in", stage.records_in)?;
            dict.set_item("records_out", stage.records_out)?;
            dict.set_item("dropped", stage.dropped)?;
            dict.set_item("quarantined", stage.quarantined)?;
            list.append(dict)?;
        }
        Ok(list)
    }

    /// The number of stages.
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        without_gil(py, || lock(&self.inner).map(|pipeline| pipeline.len()))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let names = without_gil(py, || {
            lock(&self.inner).map(|pipeline| {
                pipeline
                    .stats()
                    .iter()
                    .map(|stage| format!("{:?}", stage.name))
                    .collect::<Vec<_>>()
            })
        })?;
        Ok(format!("Pipeline([{}])", names.join(", ")))
    }
}

/// A config dict as JSON text, through Python's `json`; `argument` names it in errors.
pub(crate) fn config_json(config: &Bound<'_, PyAny>, argument: &str) -> PyResult<String> {
    let py = config.py();
    py.import("json")?
        .getattr("dumps")?
        .call1((config,))
        .and_then(|text| text.extract::<String>())
        .map_err(|error| {
            PyTypeError::new_err(format!(
                "{argument} must hold only JSON values: {}",
                error.value(py)
            ))
        })
}

/// Builds a Pipeline one transform at a time: the config's `transforms` list,
/// checked by the core when `build()` is called.
///
/// `Pipeline.builder().add_metadata({"site": "f1"}).filter_fields(["t"]).build()`;
/// `add(type, **params)` adds any transform by its config `type` and keys
/// (docs/transforms.md).
#[pyclass(module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct PipelineBuilder {
    transforms: Vec<Py<PyDict>>,
}

#[pymethods]
impl PipelineBuilder {
    /// Adds a transform of config `type` with its config keys as keyword arguments.
    #[pyo3(signature = (r#type, **params))]
    fn add<'py>(
        mut slf: PyRefMut<'py, Self>,
        r#type: &str,
        params: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let py = slf.py();
        let table = PyDict::new(py);
        table.set_item("type", r#type)?;
        if let Some(params) = params {
            table.update(params.as_mapping())?;
        }
        slf.transforms.push(table.unbind());
        Ok(slf)
    }

    /// `add_metadata`: sets these labels on every record.
    fn add_metadata<'py>(
        slf: PyRefMut<'py, Self>,
        metadata: &Bound<'py, PyDict>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let params = PyDict::new(slf.py());
        params.set_item("metadata", metadata)?;
        Self::add(slf, "add_metadata", Some(&params))
    }

    /// `filter_fields`: keeps only these payload fields.
    fn filter_fields<'py>(
        slf: PyRefMut<'py, Self>,
        fields: &Bound<'py, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let params = PyDict::new(slf.py());
        params.set_item(
            "fields",
            PyList::new(slf.py(), fields.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
        )?;
        Self::add(slf, "filter_fields", Some(&params))
    }

    /// `rename_fields`: renames payload fields, old name → new name.
    fn rename_fields<'py>(
        slf: PyRefMut<'py, Self>,
        mapping: &Bound<'py, PyDict>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let params = PyDict::new(slf.py());
        params.set_item("mapping", mapping)?;
        Self::add(slf, "rename_fields", Some(&params))
    }

    /// `mask_sensitive_fields`: replaces the values of these fields with `mask`
    /// (the core's default mask when None).
    #[pyo3(signature = (fields, mask=None))]
    fn mask_sensitive_fields<'py>(
        slf: PyRefMut<'py, Self>,
        fields: &Bound<'py, PyAny>,
        mask: Option<&str>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let params = PyDict::new(slf.py());
        params.set_item(
            "fields",
            PyList::new(slf.py(), fields.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
        )?;
        if let Some(mask) = mask {
            params.set_item("mask", mask)?;
        }
        Self::add(slf, "mask_sensitive_fields", Some(&params))
    }

    /// `validate_schema`: field → type name or `{"type", "required", "min", "max"}`.
    #[pyo3(signature = (fields, on_invalid=None))]
    fn validate_schema<'py>(
        slf: PyRefMut<'py, Self>,
        fields: &Bound<'py, PyDict>,
        on_invalid: Option<&str>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let params = PyDict::new(slf.py());
        params.set_item("fields", fields)?;
        if let Some(on_invalid) = on_invalid {
            params.set_item("on_invalid", on_invalid)?;
        }
        Self::add(slf, "validate_schema", Some(&params))
    }

    /// The config built so far: `{"transforms": [...]}`, what `Pipeline.from_dict` takes.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let copy = py.import("copy")?.getattr("deepcopy")?;
        let transforms = PyList::empty(py);
        for table in &self.transforms {
            transforms.append(copy.call1((table.bind(py),))?)?;
        }
        let config = PyDict::new(py);
        config.set_item("transforms", transforms)?;
        Ok(config)
    }

    /// Builds the Pipeline; raises ConfigError naming the offending key.
    fn build(&self, py: Python<'_>) -> PyResult<PyPipeline> {
        let config = self.to_dict(py)?;
        PyPipeline::from_dict(py, &config)
    }

    fn __len__(&self) -> usize {
        self.transforms.len()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut names = Vec::new();
        for table in &self.transforms {
            if let Some(kind) = table.bind(py).get_item("type")? {
                names.push(kind.repr()?.to_string());
            }
        }
        Ok(format!("PipelineBuilder([{}])", names.join(", ")))
    }
}

/// What `Pipeline.encode_jsonl` returns.
#[pyclass(frozen, module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct EncodeResult {
    /// The batches of the records that passed every stage, in input order.
    #[pyo3(get)]
    batches: Py<PyList>,
    /// The records a stage set aside, one JSON object per line (as `ProcessResult.quarantine`).
    #[pyo3(get)]
    quarantine: Py<PyBytes>,
    /// One LineError per input line that could not be read, in input order.
    #[pyo3(get)]
    errors: Vec<Py<LineError>>,
}

#[pymethods]
impl EncodeResult {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "EncodeResult(batches=<{} batches>, quarantine=<{} bytes>, errors=<{} lines>)",
            self.batches.bind(py).len(),
            self.quarantine.as_bytes(py).len(),
            self.errors.len()
        )
    }
}

/// What `Pipeline.process_jsonl` returns.
#[pyclass(frozen, module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct ProcessResult {
    /// The records that passed every stage, as JSON Lines in input order.
    #[pyo3(get)]
    records: Py<PyBytes>,
    /// One JSON object per line for each record a stage set aside:
    /// `{"stage", "stage_index", "reason": {"code", "field", "message"}, "record"}`.
    #[pyo3(get)]
    quarantine: Py<PyBytes>,
    /// One LineError per input line that could not be used, in input order.
    #[pyo3(get)]
    errors: Vec<Py<LineError>>,
}

impl ProcessResult {
    pub(crate) fn new(
        py: Python<'_>,
        records: &[u8],
        quarantine: &[u8],
        errors: Vec<Py<LineError>>,
    ) -> Self {
        ProcessResult {
            records: PyBytes::new(py, records).unbind(),
            quarantine: PyBytes::new(py, quarantine).unbind(),
            errors,
        }
    }
}

#[pymethods]
impl ProcessResult {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "ProcessResult(records=<{} bytes>, quarantine=<{} bytes>, errors=<{} lines>)",
            self.records.as_bytes(py).len(),
            self.quarantine.as_bytes(py).len(),
            self.errors.len()
        )
    }
}

/// An input line that could not be used; the rest of the batch went on.
#[pyclass(frozen, module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct LineError {
    /// The 1-based line number in the input.
    #[pyo3(get)]
    line: u64,
    /// What was wrong, with the column and field where known.
    #[pyo3(get)]
    message: String,
    /// The exception class this error would raise, e.g. InvalidJsonError.
    #[pyo3(get)]
    error_type: Py<PyType>,
}

impl LineError {
    /// The LineError of input line `line`, which failed with `error`.
    pub(crate) fn new(py: Python<'_>, line: u64, error: &Error) -> PyResult<Py<LineError>> {
        Py::new(
            py,
            LineError {
                line,
                message: error.message_with_sources(),
                error_type: exception_type(py, error).unbind(),
            },
        )
    }
}

#[pymethods]
impl LineError {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "LineError(line={}, error_type={}, message={:?})",
            self.line,
            self.error_type.bind(py).name()?,
            self.message
        ))
    }
}
