//! `Pipeline`: the core's transform chain, run over JSON Lines bytes.

use std::sync::{Mutex, MutexGuard};

use edgepipe_core::Error;
use edgepipe_core::record::JsonOptions;
use edgepipe_core::transform::Pipeline as CorePipeline;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyType};

use crate::error::{EdgepipeError, exception_type, to_py_err};
use crate::gil::without_gil;

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
            .map(|(line, error)| {
                Py::new(
                    py,
                    LineError {
                        line: *line,
                        message: error.message_with_sources(),
                        error_type: exception_type(py, error).unbind(),
                    },
                )
            })
            .collect::<PyResult<_>>()?;
        Ok(ProcessResult {
            records: PyBytes::new(py, &output.records).unbind(),
            quarantine: PyBytes::new(py, &output.quarantine).unbind(),
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
