//! Records between Python and the core: JSON Lines bytes ↔ lists of dicts, every
//! record read (and so validated and normalised) by the core's own reader.
//!
//! Also the conversions the other stages share: a core record as a dict, dicts as
//! core records, and the `now`/time arguments every stage takes.

use edgepipe_core::record::json::{parse_jsonl, write_jsonl};
use edgepipe_core::record::{JsonOptions, Value};
use edgepipe_core::transform::Pipeline as CorePipeline;
use edgepipe_core::{DataRecord, Error, Timestamp};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::error::{exception_type, to_py_err};
use crate::gil::without_gil;
use crate::transform::{LineError, ProcessResult};

/// A payload value as the Python object `json.loads` would give.
fn value_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    use pyo3::IntoPyObjectExt;
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(flag) => flag.into_bound_py_any(py)?,
        Value::Int(number) => number.into_bound_py_any(py)?,
        Value::UInt(number) => number.into_bound_py_any(py)?,
        Value::Float(number) => number.into_bound_py_any(py)?,
        Value::String(text) => PyString::new(py, text.as_str()).into_any(),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Map(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map.iter() {
                dict.set_item(key, value_to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// A record as the seed's `DataRecord.to_dict()`: the timestamp as ISO-8601 text.
pub(crate) fn record_to_dict<'py>(
    py: Python<'py>,
    record: &DataRecord,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("record_id", record.record_id.as_str())?;
    dict.set_item("device_id", record.device_id.as_str())?;
    dict.set_item("timestamp", record.timestamp.to_iso8601())?;
    dict.set_item("data_type", record.data_type.as_str())?;
    let payload = PyDict::new(py);
    for (key, value) in record.payload.iter() {
        payload.set_item(key, value_to_py(py, value)?)?;
    }
    dict.set_item("payload", payload)?;
    let metadata = PyDict::new(py);
    for (key, value) in record.metadata.iter() {
        metadata.set_item(key, value.as_str())?;
    }
    dict.set_item("metadata", metadata)?;
    Ok(dict)
}

/// Records as a list of dicts.
pub(crate) fn records_to_list<'py>(
    py: Python<'py>,
    records: &[DataRecord],
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for record in records {
        list.append(record_to_dict(py, record)?)?;
    }
    Ok(list)
}

/// `json.dumps`'s `default`: datetimes (and dates) as ISO-8601, which the core reads;
/// anything else is refused as `json.dumps` itself would.
#[pyfunction]
fn iso_default(value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    if let Ok(isoformat) = value.getattr("isoformat") {
        return Ok(isoformat.call0()?.unbind());
    }
    Err(PyTypeError::new_err(format!(
        "Object of type {} is not JSON serializable",
        value.get_type().name()?
    )))
}

/// Each item of `records` (dicts in the `to_dict()` shape) as JSON text, through
/// Python's `json` (a C extension); the core reads them afterwards, GIL released.
/// `argument` names the parameter in errors, e.g. `records[3]`.
fn dicts_to_json(records: &Bound<'_, PyAny>, argument: &str) -> PyResult<Vec<String>> {
    let py = records.py();
    let dumps = py.import("json")?.getattr("dumps")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("default", wrap_pyfunction!(iso_default, py)?)?;
    // NaN and infinities cannot travel as JSON; refuse them here, naming the record.
    kwargs.set_item("allow_nan", false)?;
    let iterator = records.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "{argument} must be an iterable of dicts, not {}",
            records
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    let mut texts = Vec::new();
    for (index, item) in iterator.enumerate() {
        let item = item?;
        if !item.is_instance_of::<PyDict>() {
            return Err(PyTypeError::new_err(format!(
                "{argument}[{index}] must be a dict, not {}",
                item.get_type().name()?
            )));
        }
        let text = dumps.call((&item,), Some(&kwargs)).map_err(|error| {
            let message = format!("{argument}[{index}]: {}", error.value(py));
            if error.is_instance_of::<PyTypeError>(py) {
                PyTypeError::new_err(message)
            } else {
                PyValueError::new_err(message)
            }
        })?;
        texts.push(text.extract::<String>()?);
    }
    Ok(texts)
}

/// Dicts as core records, each one read by the core's record reader; the first bad
/// one raises its error kind, naming `argument[index]`.
pub(crate) fn dicts_to_records(
    records: &Bound<'_, PyAny>,
    argument: &str,
) -> PyResult<Vec<DataRecord>> {
    let py = records.py();
    let texts = dicts_to_json(records, argument)?;
    let parsed = without_gil(py, || {
        texts
            .iter()
            .enumerate()
            .map(|(index, text)| DataRecord::from_json(text).map_err(|error| (index, error)))
            .collect::<Result<Vec<_>, _>>()
    });
    parsed.map_err(|(index, error)| {
        PyErr::from_type(
            exception_type(py, &error),
            format!("{argument}[{index}]: {}", error.message_with_sources()),
        )
    })
}

/// Every record of a JSON Lines buffer; the first bad line raises its error kind.
pub(crate) fn parse_all(data: &[u8]) -> Result<Vec<DataRecord>, Error> {
    parse_jsonl(data).map(|(_, record)| record).collect()
}

/// Records as JSON Lines (refusing NaN and infinities, which JSON cannot carry).
pub(crate) fn to_jsonl(records: &[DataRecord]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(records.len() * 200);
    write_jsonl(records, &mut out, &JsonOptions::default())?;
    Ok(out)
}

/// A time argument: Unix seconds (fractions allowed), or the wall clock for `None`.
pub(crate) fn timestamp_arg(name: &str, seconds: Option<f64>) -> PyResult<Timestamp> {
    let Some(seconds) = seconds else {
        return Ok(Timestamp::now());
    };
    // i64 nanoseconds reach the year 2262; beyond that is a caller's mistake.
    const LIMIT: f64 = 9.2e9;
    if !seconds.is_finite() || seconds.abs() > LIMIT {
        return Err(PyValueError::new_err(format!(
            "{name} must be finite Unix seconds within ±{LIMIT:e}, not {seconds}"
        )));
    }
    Ok(Timestamp::from_unix_nanos((seconds * 1e9).round() as i64))
}

/// A timestamp as Unix seconds.
pub(crate) fn seconds_of(timestamp: Timestamp) -> f64 {
    timestamp.unix_nanos() as f64 / 1e9
}

/// A duration argument in seconds: finite and not negative.
pub(crate) fn duration_arg(name: &str, seconds: f64) -> PyResult<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be a finite, non-negative number of seconds, not {seconds}"
        ))
    })
}

/// Reads JSON Lines into dicts in the seed's `DataRecord.to_dict()` shape.
///
/// Every line goes through the core's record reader: the result is validated and
/// normalised (timestamps as ISO-8601 UTC, `metadata` always present). Blank lines
/// are skipped; the first bad line raises its error kind (e.g. InvalidJsonError),
/// naming the line.
#[pyfunction]
pub(crate) fn read_jsonl<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let records = without_gil(py, || parse_all(data)).map_err(|error| to_py_err(py, &error))?;
    records_to_list(py, &records)
}

/// Writes dicts in the `to_dict()` shape as JSON Lines, each read by the core first.
///
/// Timestamps may be ISO-8601 text, epoch numbers or datetimes. Raises TypeError for
/// an item that is not a dict, ValueError for NaN or infinities, and the core's
/// error kind (e.g. InvalidJsonError) for a record it refuses, naming `records[i]`.
#[pyfunction(name = "write_jsonl")]
pub(crate) fn write_jsonl_records<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let records = dicts_to_records(records, "records")?;
    let out = without_gil(py, || to_jsonl(&records)).map_err(|error| to_py_err(py, &error))?;
    Ok(PyBytes::new(py, &out))
}

/// Checks and normalises a JSON Lines buffer in bulk, GIL released.
///
/// Returns a ProcessResult: the records that could be read, rewritten in the
/// canonical form, and a LineError for each line that could not; `quarantine` is
/// always empty (no transform ran).
#[pyfunction]
pub(crate) fn normalize_jsonl(py: Python<'_>, data: &[u8]) -> PyResult<ProcessResult> {
    let output = without_gil(py, || {
        CorePipeline::new().process_jsonl(data, &JsonOptions::default())
    });
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
