//! `DataRecord`: the seed's dataclass as a native class.
//!
//! A record keeps what Python gave it (the `str`s, the `datetime`, the dicts) and
//! converts a dict into the core's [`Payload`] or [`Metadata`] only when a native
//! transform or a batch needs it; the result is kept in core form until Python
//! asks for the field again. A chain of native transforms and a batch therefore
//! convert each field once, and a record Python only looks at never converts.
//! Once Python has a field's dict, the record holds that very dict, so
//! `record.payload["x"] = 1` changes the record, as with the seed's dataclass.

use edgepipe_core::Timestamp;
use edgepipe_core::record::{CompactString, DataRecord as CoreRecord, Metadata, Payload, Value};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyDateTime, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType,
};

use crate::error::to_py_err;

/// Nesting deeper than this is refused, as the core's JSON reader refuses it: a
/// list that contains itself must give an error, not exhaust the stack.
const MAX_DEPTH: usize = 128;

/// A field held as Python gave it, or converted for the core.
#[derive(Debug)]
pub(crate) enum Field<T> {
    Python(Py<PyDict>),
    Core(T),
}

impl<T: Clone> Field<T> {
    fn clone_ref(&self, py: Python<'_>) -> Self {
        match self {
            Field::Python(dict) => Field::Python(dict.clone_ref(py)),
            Field::Core(value) => Field::Core(value.clone()),
        }
    }
}

/// Single data record for pipeline (the seed's `DataRecord`).
///
/// Fields are read and written as on the seed's dataclass: `record_id`,
/// `device_id`, `data_type` (str), `timestamp` (datetime), `payload` (dict of
/// JSON values) and `metadata` (dict of str to str). Values are checked when set:
/// a wrong type raises TypeError naming the field, and payload values must be
/// what JSON carries (None, bool, int within 64 bits, float, str, list, tuple,
/// dict with str keys). `dataclasses.replace`, `fields` and `asdict` work on it.
#[pyclass(module = "edgepipe", name = "DataRecord", subclass)]
#[derive(Debug)]
pub(crate) struct DataRecord {
    pub(crate) record_id: Py<PyString>,
    pub(crate) device_id: Py<PyString>,
    pub(crate) timestamp: Py<PyDateTime>,
    pub(crate) data_type: Py<PyString>,
    pub(crate) payload: Field<Payload>,
    pub(crate) metadata: Field<Metadata>,
}

fn string_field(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Py<PyString>> {
    value
        .cast::<PyString>()
        .map(|text| text.clone().unbind())
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "DataRecord.{name} must be a str, not {}",
                type_name(value)
            ))
        })
}

fn datetime_field(value: &Bound<'_, PyAny>) -> PyResult<Py<PyDateTime>> {
    value
        .cast::<PyDateTime>()
        .map(|datetime| datetime.clone().unbind())
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "DataRecord.timestamp must be a datetime.datetime, not {}",
                type_name(value)
            ))
        })
}

fn dict_field(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Py<PyDict>> {
    value
        .cast::<PyDict>()
        .map(|dict| dict.clone().unbind())
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "DataRecord.{name} must be a dict, not {}",
                type_name(value)
            ))
        })
}

pub(crate) fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

fn compact(text: &Bound<'_, PyString>) -> PyResult<CompactString> {
    Ok(CompactString::from(text.to_cow()?.as_ref()))
}

/// A Python payload value as a core value; `path` names it in errors.
pub(crate) fn value_from_py(value: &Bound<'_, PyAny>, path: &str, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "payload field {path}: nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if value.is_none() {
        return Ok(Value::Null);
    }
    // Floats first: most readings are floats.
    if let Ok(number) = value.cast::<PyFloat>() {
        return Ok(Value::Float(number.value()));
    }
    // bool before int: Python's bool is an int.
    if let Ok(flag) = value.cast::<PyBool>() {
        return Ok(Value::Bool(flag.is_true()));
    }
    if value.is_instance_of::<PyInt>() {
        if let Ok(number) = value.extract::<i64>() {
            return Ok(Value::Int(number));
        }
        if let Ok(number) = value.extract::<u64>() {
            return Ok(Value::UInt(number));
        }
        return Err(PyValueError::new_err(format!(
            "payload field {path}: the integer {} does not fit in 64 bits",
            value.str().map(|text| text.to_string()).unwrap_or_default()
        )));
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(Value::String(compact(text)?));
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        return map_from_py(dict, path, depth + 1).map(Value::Map);
    }
    let items = if let Ok(list) = value.cast::<PyList>() {
        Some(list.iter().collect::<Vec<_>>())
    } else if let Ok(tuple) = value.cast::<PyTuple>() {
        Some(tuple.iter().collect())
    } else {
        None
    };
    if let Some(items) = items {
        return items
            .iter()
            .enumerate()
            .map(|(index, item)| value_from_py(item, &format!("{path}[{index}]"), depth + 1))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::List);
    }
    Err(PyTypeError::new_err(format!(
        "payload field {path}: a {} cannot be carried (None, bool, int, float, str, list, tuple or dict only)",
        type_name(value)
    )))
}

fn map_from_py(dict: &Bound<'_, PyDict>, path: &str, depth: usize) -> PyResult<Payload> {
    let mut map = Payload::with_capacity(dict.len());
    for (key, value) in dict.iter() {
        let key = key.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "payload field {}: keys must be str, not {}",
                if path.is_empty() { "<top>" } else { path },
                type_name(&key)
            ))
        })?;
        let name = compact(key)?;
        let child = if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        let value = value_from_py(&value, &child, depth)?;
        // Keys of a dict are unique already.
        map.insert(name, value);
    }
    Ok(map)
}

pub(crate) fn payload_from_py(dict: &Bound<'_, PyDict>) -> PyResult<Payload> {
    map_from_py(dict, "", 1)
}

pub(crate) fn metadata_from_py(dict: &Bound<'_, PyDict>) -> PyResult<Metadata> {
    let mut map = Metadata::with_capacity(dict.len());
    for (key, value) in dict.iter() {
        let key = key.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "metadata keys must be str, not {}",
                type_name(&key)
            ))
        })?;
        let value = value.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "metadata[{:?}] must be a str, not {}",
                key.to_string(),
                type_name(&value)
            ))
        })?;
        map.insert(compact(key)?, compact(value)?);
    }
    Ok(map)
}

pub(crate) fn value_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(flag) => PyBool::new(py, *flag).to_owned().into_any(),
        Value::Int(number) => number.into_pyobject(py)?.into_any(),
        Value::UInt(number) => number.into_pyobject(py)?.into_any(),
        Value::Float(number) => PyFloat::new(py, *number).into_any(),
        Value::String(text) => PyString::new(py, text).into_any(),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Map(map) => payload_to_py(py, map)?.into_any(),
    })
}

pub(crate) fn payload_to_py<'py>(
    py: Python<'py>,
    payload: &Payload,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value) in payload.iter() {
        dict.set_item(key, value_to_py(py, value)?)?;
    }
    Ok(dict)
}

fn metadata_to_py<'py>(py: Python<'py>, metadata: &Metadata) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value) in metadata.iter() {
        dict.set_item(key, value.as_str())?;
    }
    Ok(dict)
}

impl DataRecord {
    /// The payload in core form, converting (and keeping) it if Python gave it.
    pub(crate) fn core_payload(&mut self, py: Python<'_>) -> PyResult<&mut Payload> {
        if let Field::Python(dict) = &self.payload {
            self.payload = Field::Core(payload_from_py(dict.bind(py))?);
        }
        match &mut self.payload {
            Field::Core(payload) => Ok(payload),
            Field::Python(_) => unreachable!("converted above"),
        }
    }

    /// The metadata in core form, converting (and keeping) it if Python gave it.
    pub(crate) fn core_metadata(&mut self, py: Python<'_>) -> PyResult<&mut Metadata> {
        if let Field::Python(dict) = &self.metadata {
            self.metadata = Field::Core(metadata_from_py(dict.bind(py))?);
        }
        match &mut self.metadata {
            Field::Core(metadata) => Ok(metadata),
            Field::Python(_) => unreachable!("converted above"),
        }
    }

    fn payload_dict<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        if let Field::Core(payload) = &self.payload {
            self.payload = Field::Python(payload_to_py(py, payload)?.unbind());
        }
        match &self.payload {
            Field::Python(dict) => Ok(dict.bind(py).clone()),
            Field::Core(_) => unreachable!("converted above"),
        }
    }

    fn metadata_dict<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        if let Field::Core(metadata) = &self.metadata {
            self.metadata = Field::Python(metadata_to_py(py, metadata)?.unbind());
        }
        match &self.metadata {
            Field::Python(dict) => Ok(dict.bind(py).clone()),
            Field::Core(_) => unreachable!("converted above"),
        }
    }

    /// A new record sharing every field (the seed's `replace(record)` with no changes).
    pub(crate) fn copy(&self, py: Python<'_>) -> DataRecord {
        DataRecord {
            record_id: self.record_id.clone_ref(py),
            device_id: self.device_id.clone_ref(py),
            timestamp: self.timestamp.clone_ref(py),
            data_type: self.data_type.clone_ref(py),
            payload: self.payload.clone_ref(py),
            metadata: self.metadata.clone_ref(py),
        }
    }

    /// The record for the core, and its timestamp as `to_dict()` writes it.
    ///
    /// Leaves the record as it is: a dict Python gave it stays its field.
    pub(crate) fn to_core(&self, py: Python<'_>) -> PyResult<(CoreRecord, String)> {
        let isoformat = isoformat(self.timestamp.bind(py))?;
        let timestamp = Timestamp::parse(&isoformat).map_err(|error| to_py_err(py, &error))?;
        let payload = match &self.payload {
            Field::Python(dict) => payload_from_py(dict.bind(py))?,
            Field::Core(payload) => payload.clone(),
        };
        let metadata = match &self.metadata {
            Field::Python(dict) => metadata_from_py(dict.bind(py))?,
            Field::Core(metadata) => metadata.clone(),
        };
        Ok((
            CoreRecord {
                record_id: compact(self.record_id.bind(py))?,
                device_id: compact(self.device_id.bind(py))?,
                timestamp,
                data_type: compact(self.data_type.bind(py))?,
                payload,
                metadata,
            },
            isoformat,
        ))
    }

    fn fields<'py>(&mut self, py: Python<'py>) -> PyResult<[Bound<'py, PyAny>; 6]> {
        Ok([
            self.record_id.bind(py).clone().into_any(),
            self.device_id.bind(py).clone().into_any(),
            self.timestamp.bind(py).clone().into_any(),
            self.data_type.bind(py).clone().into_any(),
            self.payload_dict(py)?.into_any(),
            self.metadata_dict(py)?.into_any(),
        ])
    }
}

/// `datetime.isoformat()` of `moment`, as `to_dict()` writes it.
///
/// Calling `isoformat()` cost more than all the rest of a record's conversion
/// (an aware datetime's goes through `utcoffset()` and a `timedelta`), and the
/// limited API (abi3) cannot read a datetime's fields directly. For the two kinds
/// the seed makes, a plain `datetime` that is naive or in `timezone.utc`, the text
/// is written here from the 10-byte state `__reduce__` gives (the pickle form,
/// stable across Python versions: year as two bytes, month, day, hour, minute,
/// second, microsecond as three bytes). Anything else asks Python.
fn isoformat(moment: &Bound<'_, PyDateTime>) -> PyResult<String> {
    static DATETIME: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = moment.py();
    let datetime = DATETIME.import(py, "datetime", "datetime")?;
    if moment.get_type().is(datetime) {
        let utc = UTC
            .get_or_try_init(py, || {
                py.import("datetime")?
                    .getattr("timezone")?
                    .getattr("utc")
                    .map(Bound::unbind)
            })?
            .bind(py);
        let reduced = moment.call_method0("__reduce__")?;
        let arguments = reduced.get_item(1)?.cast_into::<PyTuple>()?;
        let state = arguments.get_item(0)?.cast_into::<PyBytes>()?;
        let suffix = match arguments.len() {
            1 => Some(""),
            2 if arguments.get_item(1)?.is(utc) => Some("+00:00"),
            _ => None,
        };
        if let (Some(suffix), Ok([y1, y2, month, day, hour, minute, second, u1, u2, u3])) =
            (suffix, <[u8; 10]>::try_from(state.as_bytes()))
        {
            let year = u16::from_be_bytes([y1, y2]);
            let micros = u32::from_be_bytes([0, u1, u2, u3]);
            // The fold flag rides in the month's high bit in protocol 4 only.
            let month = month & 0x7f;
            let mut text =
                format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
            if micros != 0 {
                text.push_str(&format!(".{micros:06}"));
            }
            text.push_str(suffix);
            return Ok(text);
        }
    }
    moment.call_method0("isoformat")?.extract()
}

/// The field names, in the dataclass's order.
pub(crate) const FIELD_NAMES: [&str; 6] = [
    "record_id",
    "device_id",
    "timestamp",
    "data_type",
    "payload",
    "metadata",
];

#[pymethods]
impl DataRecord {
    #[new]
    #[pyo3(signature = (record_id, device_id, timestamp, data_type, payload, metadata = None))]
    fn new(
        py: Python<'_>,
        record_id: &Bound<'_, PyAny>,
        device_id: &Bound<'_, PyAny>,
        timestamp: &Bound<'_, PyAny>,
        data_type: &Bound<'_, PyAny>,
        payload: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(DataRecord {
            record_id: string_field(record_id, "record_id")?,
            device_id: string_field(device_id, "device_id")?,
            timestamp: datetime_field(timestamp)?,
            data_type: string_field(data_type, "data_type")?,
            payload: Field::Python(dict_field(payload, "payload")?),
            metadata: Field::Python(match metadata {
                Some(metadata) => dict_field(metadata, "metadata")?,
                None => PyDict::new(py).unbind(),
            }),
        })
    }

    #[getter]
    fn get_record_id(&self, py: Python<'_>) -> Py<PyString> {
        self.record_id.clone_ref(py)
    }

    #[setter]
    fn set_record_id(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.record_id = string_field(value, "record_id")?;
        Ok(())
    }

    #[getter]
    fn get_device_id(&self, py: Python<'_>) -> Py<PyString> {
        self.device_id.clone_ref(py)
    }

    #[setter]
    fn set_device_id(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.device_id = string_field(value, "device_id")?;
        Ok(())
    }

    #[getter]
    fn get_timestamp(&self, py: Python<'_>) -> Py<PyDateTime> {
        self.timestamp.clone_ref(py)
    }

    #[setter]
    fn set_timestamp(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.timestamp = datetime_field(value)?;
        Ok(())
    }

    #[getter]
    fn get_data_type(&self, py: Python<'_>) -> Py<PyString> {
        self.data_type.clone_ref(py)
    }

    #[setter]
    fn set_data_type(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.data_type = string_field(value, "data_type")?;
        Ok(())
    }

    #[getter]
    fn get_payload<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.payload_dict(py)
    }

    #[setter]
    fn set_payload(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.payload = Field::Python(dict_field(value, "payload")?);
        Ok(())
    }

    #[getter]
    fn get_metadata<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.metadata_dict(py)
    }

    #[setter]
    fn set_metadata(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.metadata = Field::Python(dict_field(value, "metadata")?);
        Ok(())
    }

    /// The seed's `to_dict()`: the fields, with the timestamp as `isoformat()`.
    ///
    /// The payload and metadata are the record's own dicts, as in the seed.
    // `&mut self`: a field held in core form becomes the record's dict here.
    #[allow(clippy::wrong_self_convention)]
    fn to_dict<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        let [
            record_id,
            device_id,
            timestamp,
            data_type,
            payload,
            metadata,
        ] = self.fields(py)?;
        dict.set_item("record_id", record_id)?;
        dict.set_item("device_id", device_id)?;
        dict.set_item("timestamp", timestamp.call_method0("isoformat")?)?;
        dict.set_item("data_type", data_type)?;
        dict.set_item("payload", payload)?;
        dict.set_item("metadata", metadata)?;
        Ok(dict)
    }

    fn __richcmp__(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        // As a dataclass's __eq__: only another instance of exactly this class compares.
        if !matches!(op, CompareOp::Eq | CompareOp::Ne) || !other.get_type().is(slf.get_type()) {
            return Ok(py.NotImplemented());
        }
        let mine = PyTuple::new(py, slf.borrow_mut().fields(py)?)?;
        let theirs = if other.is(slf) {
            mine.clone()
        } else {
            let fields = other.cast::<DataRecord>()?.borrow_mut().fields(py)?;
            PyTuple::new(py, fields)?
        };
        Ok(mine.rich_compare(theirs, op)?.unbind())
    }

    fn __repr__(&mut self, py: Python<'_>) -> PyResult<String> {
        let fields = self.fields(py)?;
        let mut parts = Vec::with_capacity(6);
        for (name, value) in FIELD_NAMES.iter().zip(fields.iter()) {
            parts.push(format!("{name}={}", value.repr()?));
        }
        Ok(format!("DataRecord({})", parts.join(", ")))
    }

    /// Pickling and `copy.copy`/`deepcopy` rebuild the record from its fields.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyType>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let fields = slf.borrow_mut().fields(py)?;
        Ok((slf.get_type(), PyTuple::new(py, fields)?))
    }

    /// What `dataclasses.fields`, `replace` and `asdict` read: the fields of a
    /// dataclass with the seed's definition.
    #[classattr]
    fn __dataclass_fields__(py: Python<'_>) -> PyResult<Py<PyAny>> {
        seed_dataclass(py)?
            .getattr("__dataclass_fields__")
            .map(Bound::unbind)
    }

    #[classattr]
    fn __dataclass_params__(py: Python<'_>) -> PyResult<Py<PyAny>> {
        seed_dataclass(py)?
            .getattr("__dataclass_params__")
            .map(Bound::unbind)
    }

    #[classattr]
    fn __match_args__() -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ) {
        (
            "record_id",
            "device_id",
            "timestamp",
            "data_type",
            "payload",
            "metadata",
        )
    }
}

/// A plain dataclass with the seed's `DataRecord` fields, whose field objects the
/// native class presents as its own.
fn seed_dataclass(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    CLASS
        .get_or_try_init(py, || {
            let dataclasses = py.import("dataclasses")?;
            let datetime = py.import("datetime")?.getattr("datetime")?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("default_factory", py.get_type::<PyDict>())?;
            let metadata_field = dataclasses.getattr("field")?.call((), Some(&kwargs))?;
            let str_type = py.get_type::<PyString>();
            let dict_type = py.get_type::<PyDict>();
            let fields = PyList::new(
                py,
                [
                    PyTuple::new(
                        py,
                        [
                            PyString::new(py, "record_id").into_any(),
                            str_type.clone().into_any(),
                        ],
                    )?,
                    PyTuple::new(
                        py,
                        [
                            PyString::new(py, "device_id").into_any(),
                            str_type.clone().into_any(),
                        ],
                    )?,
                    PyTuple::new(py, [PyString::new(py, "timestamp").into_any(), datetime])?,
                    PyTuple::new(
                        py,
                        [
                            PyString::new(py, "data_type").into_any(),
                            str_type.into_any(),
                        ],
                    )?,
                    PyTuple::new(
                        py,
                        [
                            PyString::new(py, "payload").into_any(),
                            dict_type.clone().into_any(),
                        ],
                    )?,
                    PyTuple::new(
                        py,
                        [
                            PyString::new(py, "metadata").into_any(),
                            dict_type.into_any(),
                            metadata_field,
                        ],
                    )?,
                ],
            )?;
            dataclasses
                .call_method1("make_dataclass", ("DataRecord", fields))
                .map(Bound::unbind)
        })
        .map(|class| class.bind(py).clone())
}

/// The native record inside `value`, or a TypeError naming `what`.
pub(crate) fn record_of<'py>(
    value: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<Bound<'py, DataRecord>> {
    value.cast::<DataRecord>().cloned().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be an edgepipe DataRecord, not {}",
            type_name(value)
        ))
    })
}
