//! `Window`: the core's window operator, fed JSON Lines or dicts, driven by the
//! caller's clock.

use std::sync::{Mutex, MutexGuard};

use edgepipe_core::Error;
use edgepipe_core::record::JsonOptions;
use edgepipe_core::record::json::parse_jsonl;
use edgepipe_core::transform::Quarantined;
use edgepipe_core::window::{
    WindowConfig, WindowOperator, WindowOutput as CoreOutput, WindowSnapshot,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::error::{EdgepipeError, to_py_err};
use crate::gil::without_gil;
use crate::record::{dicts_to_records, seconds_of, timestamp_arg, to_jsonl};
use crate::transform::{LineError, config_json};

/// Keyed windows over event time: readings in, aggregate records out.
///
/// Built from the `window` table of a pipeline config (docs/windows.md) with
/// `Window.from_json`, `from_toml` or `from_dict`. Feed it with `push_jsonl` or
/// `push`; move its clock with `advance(now)`; `flush()` at shutdown. Each call
/// returns a WindowOutput. Calls from several threads take turns, GIL released.
#[pyclass(frozen, name = "Window", module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct PyWindow {
    // Locked only with the GIL released (see Pipeline).
    inner: Mutex<WindowOperator>,
}

fn lock(window: &Mutex<WindowOperator>) -> PyResult<MutexGuard<'_, WindowOperator>> {
    window.lock().map_err(|_| {
        EdgepipeError::new_err(
            "this window is unusable: a call on it panicked (a bug in edgepipe; please report it)",
        )
    })
}

impl PyWindow {
    fn build(
        py: Python<'_>,
        config: &str,
        parse: fn(&str) -> Result<WindowConfig, Error>,
    ) -> PyResult<Self> {
        let operator = without_gil(py, || parse(config).and_then(|config| config.build()))
            .map_err(|error| to_py_err(py, &error))?;
        Ok(PyWindow {
            inner: Mutex::new(operator),
        })
    }
}

/// Rejected readings in the pipeline quarantine's line shape, stage `window`.
fn rejected_jsonl(output: &CoreOutput) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    for rejected in &output.rejected {
        Quarantined {
            record: rejected.record.clone(),
            stage_index: 0,
            stage: "window".into(),
            reason: rejected.reason.clone(),
        }
        .write_json(&mut out, &JsonOptions::default())?;
        out.push(b'\n');
    }
    Ok(out)
}

/// What one call produced, as JSON Lines, with the bad input lines.
struct Produced {
    aggregates: Vec<u8>,
    late: Vec<u8>,
    rejected: Vec<u8>,
    errors: Vec<(u64, Error)>,
}

fn produce(output: &CoreOutput, errors: Vec<(u64, Error)>) -> Result<Produced, Error> {
    Ok(Produced {
        aggregates: to_jsonl(&output.aggregates)?,
        late: to_jsonl(&output.late)?,
        rejected: rejected_jsonl(output)?,
        errors,
    })
}

impl PyWindow {
    /// Runs `work` on the operator with the GIL released and returns its output.
    fn run<F>(&self, py: Python<'_>, work: F) -> PyResult<WindowOutput>
    where
        F: Send + FnOnce(&mut WindowOperator, &mut CoreOutput) -> Vec<(u64, Error)>,
    {
        let produced = without_gil(py, || {
            let mut operator = lock(&self.inner)?;
            let mut output = CoreOutput::new();
            let errors = work(&mut operator, &mut output);
            drop(operator);
            Ok::<_, PyErr>(produce(&output, errors))
        })?;
        let produced = produced.map_err(|error: Error| to_py_err(py, &error))?;
        let errors = produced
            .errors
            .iter()
            .map(|(line, error)| LineError::new(py, *line, error))
            .collect::<PyResult<_>>()?;
        Ok(WindowOutput {
            aggregates: PyBytes::new(py, &produced.aggregates).unbind(),
            late: PyBytes::new(py, &produced.late).unbind(),
            rejected: PyBytes::new(py, &produced.rejected).unbind(),
            errors,
        })
    }
}

#[pymethods]
impl PyWindow {
    /// A window from its JSON config, e.g. `{"kind": "tumbling", "size_seconds": 10}`.
    ///
    /// Raises ConfigError naming the offending key (e.g. `window.hop_seconds`).
    #[staticmethod]
    fn from_json(py: Python<'_>, config: &str) -> PyResult<Self> {
        Self::build(py, config, WindowConfig::from_json_str)
    }

    /// A window from its TOML config.
    #[staticmethod]
    fn from_toml(py: Python<'_>, config: &str) -> PyResult<Self> {
        Self::build(py, config, WindowConfig::from_toml_str)
    }

    /// A window from a config dict, the JSON config's shape.
    #[staticmethod]
    fn from_dict(py: Python<'_>, config: &Bound<'_, PyDict>) -> PyResult<Self> {
        let text = config_json(config.as_any(), "config")?;
        Self::build(py, &text, WindowConfig::from_json_str)
    }

    /// Resumes a window from `snapshot()`'s bytes: the same config, windows and counters.
    ///
    /// Raises SnapshotError for bytes that are not a snapshot this version reads.
    #[staticmethod]
    fn restore(py: Python<'_>, snapshot: &[u8]) -> PyResult<Self> {
        let operator = without_gil(py, || {
            WindowSnapshot::from_json(snapshot).and_then(WindowOperator::restore)
        })
        .map_err(|error| to_py_err(py, &error))?;
        Ok(PyWindow {
            inner: Mutex::new(operator),
        })
    }

    /// Adds every reading of a JSON Lines buffer, GIL released.
    ///
    /// Bad lines are reported in the output's `errors`; the rest go on.
    fn push_jsonl(&self, py: Python<'_>, data: &[u8]) -> PyResult<WindowOutput> {
        self.run(py, |operator, output| {
            let mut errors = Vec::new();
            for (line, record) in parse_jsonl(data) {
                match record {
                    Ok(record) => operator.push(&record, output),
                    Err(error) => errors.push((line, error)),
                }
            }
            errors
        })
    }

    /// Adds readings given as dicts in the `to_dict()` shape.
    ///
    /// Each dict is read by the core first: a bad one raises (naming `records[i]`)
    /// before any reading is added.
    fn push(&self, py: Python<'_>, records: &Bound<'_, PyAny>) -> PyResult<WindowOutput> {
        let records = dicts_to_records(records, "records")?;
        self.run(py, move |operator, output| {
            for record in &records {
                operator.push(record, output);
            }
            Vec::new()
        })
    }

    /// Moves the caller's clock to `now` (Unix seconds; the wall clock when None):
    /// closes windows by processing time and idle timeouts.
    #[pyo3(signature = (now=None))]
    fn advance(&self, py: Python<'_>, now: Option<f64>) -> PyResult<WindowOutput> {
        let now = timestamp_arg("now", now)?;
        self.run(py, move |operator, output| {
            operator.advance_to(now, output);
            Vec::new()
        })
    }

    /// Emits every open window now (shutdown, or the end of a replay).
    fn flush(&self, py: Python<'_>) -> PyResult<WindowOutput> {
        self.run(py, |operator, output| {
            operator.flush(output);
            Vec::new()
        })
    }

    /// The window's state as bytes (JSON), to resume with `Window.restore`.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = without_gil(py, || {
            lock(&self.inner).map(|window| window.snapshot().to_json())
        })?
        .map_err(|error| to_py_err(py, &error))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The newest event time seen, in Unix seconds (None before any reading): the
    /// clock a replay of recorded data can pass to `advance`.
    #[getter]
    fn stream_time(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        let time = without_gil(py, || lock(&self.inner).map(|window| window.stream_time()))?;
        Ok(time.map(seconds_of))
    }

    /// Counters (records in, aggregated, late, rejected, windows emitted, …) and
    /// gauges (`series`, `open_windows`), as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = without_gil(py, || lock(&self.inner).map(|window| window.stats()))?;
        let dict = PyDict::new(py);
        for (name, value) in [
            ("records_in", stats.records_in),
            ("records_aggregated", stats.records_aggregated),
            ("values_aggregated", stats.values_aggregated),
            ("records_ignored", stats.records_ignored),
            ("non_numeric_skipped", stats.non_numeric_skipped),
            ("non_finite_skipped", stats.non_finite_skipped),
            ("fields_over_limit", stats.fields_over_limit),
            ("rejected", stats.rejected),
            ("late_dropped", stats.late_dropped),
            ("late_routed", stats.late_routed),
            ("late_revised", stats.late_revised),
            ("windows_emitted", stats.windows_emitted),
            ("revisions_emitted", stats.revisions_emitted),
            ("windows_evicted", stats.windows_evicted),
            ("series_evicted", stats.series_evicted),
            ("series", stats.series),
            ("open_windows", stats.open_windows),
        ] {
            dict.set_item(name, value)?;
        }
        Ok(dict)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let kind = without_gil(py, || {
            lock(&self.inner).map(|window| format!("{:?}", window.config().kind))
        })?;
        Ok(format!("Window(kind={kind})"))
    }
}

/// What a Window call produced, each output as JSON Lines
/// (`edgepipe.read_jsonl` turns them into dicts).
#[pyclass(frozen, module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct WindowOutput {
    /// Aggregate records, in emission order (docs/windows.md has their shape).
    #[pyo3(get)]
    aggregates: Py<PyBytes>,
    /// Readings that arrived after their window was emitted (late policy `output`).
    #[pyo3(get)]
    late: Py<PyBytes>,
    /// Readings the window refused, one `{"stage": "window", "reason": {...},
    /// "record": {...}}` per line, the pipeline quarantine's shape.
    #[pyo3(get)]
    rejected: Py<PyBytes>,
    /// Input lines that could not be read (push_jsonl only).
    #[pyo3(get)]
    errors: Vec<Py<LineError>>,
}

#[pymethods]
impl WindowOutput {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "WindowOutput(aggregates=<{} lines>, late=<{} lines>, rejected=<{} lines>, errors=<{} lines>)",
            line_count(self.aggregates.as_bytes(py)),
            line_count(self.late.as_bytes(py)),
            line_count(self.rejected.as_bytes(py)),
            self.errors.len()
        )
    }
}

fn line_count(data: &[u8]) -> usize {
    data.iter().filter(|&&byte| byte == b'\n').count()
}
