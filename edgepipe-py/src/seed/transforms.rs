//! The seed's transform factories and `TransformPipeline`.
//!
//! Each factory returns a [`SeedTransform`]: callable on one record like the
//! seed's closures, and run by `TransformPipeline` without calling back into
//! Python. The four field transforms are the core's own (`AddMetadata`,
//! `FilterFields`, `RenameFields`, `MaskFields`); `validate_schema` answers as
//! the seed's `isinstance` does, which the core's JSON-typed schema cannot (a
//! `bool` is an `int` in Python); `add_computed_field` calls its Python function.
//!
//! A chain of native transforms converts each field it touches once, and only
//! the field it touches: `add_metadata` never converts the payload. A Python
//! callable in the chain (the user's own function) gets a `DataRecord`, as in
//! the seed.

use std::sync::Mutex;

use edgepipe_core::Timestamp;
use edgepipe_core::record::{CompactString, DataRecord as CoreRecord, Metadata, Payload, Value};
use edgepipe_core::transform::{
    AddMetadata, FilterFields, MaskFields, Reason, RenameFields, Transform, Verdict,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyNone, PyString, PyType};

use super::edge_collector::{DataRecord, Field, record_of, type_name};
use crate::error::EdgepipeError;

/// Which record field a core transform reads and writes. The seed's transforms
/// touch the payload or the metadata only, so only that field is converted.
#[derive(Debug, Clone, Copy)]
enum Touches {
    Payload,
    Metadata,
}

#[derive(Debug)]
enum Kind {
    Core {
        // Transform::apply takes &mut self; these four keep no state, and the
        // lock is uncontended unless two threads share one transform.
        transform: Mutex<Box<dyn Transform>>,
        touches: Touches,
    },
    Computed {
        field: Py<PyString>,
        compute: Py<PyAny>,
    },
}

/// One of the seed's transforms, made by `add_metadata`, `filter_fields`,
/// `rename_fields`, `add_computed_field`, `mask_sensitive_fields` or
/// `validate_schema`. Call it on a `DataRecord` to get the transformed copy, as
/// the seed's closures; `TransformPipeline` runs a chain of them natively.
#[pyclass(frozen, module = "edgepipe", name = "SeedTransform")]
#[derive(Debug)]
pub(crate) struct SeedTransform {
    kind: Kind,
    description: String,
}

/// The seed's `validate_schema`: a field present with a value that is not an
/// instance of its type (`isinstance`) fails the record.
#[derive(Debug)]
struct PythonTypeSchema {
    /// For each field, whether a value of each kind (see [`kind_index`]) passes.
    rules: Vec<(String, [bool; KINDS])>,
}

const KINDS: usize = 7;

fn kind_index(value: &Value) -> usize {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) | Value::UInt(_) => 2,
        Value::Float(_) => 3,
        Value::String(_) => 4,
        Value::List(_) => 5,
        Value::Map(_) => 6,
    }
}

impl Transform for PythonTypeSchema {
    fn name(&self) -> &str {
        "validate_schema"
    }

    fn apply(&mut self, record: &mut CoreRecord) -> Verdict {
        for (field, allowed) in &self.rules {
            if let Some(value) = record.payload.get(field)
                && !allowed[kind_index(value)]
            {
                return Verdict::Quarantine(Reason::field(
                    "schema.wrong_type",
                    field.clone(),
                    format!("Field {field} has wrong type"),
                ));
            }
        }
        Verdict::Keep
    }
}

impl SeedTransform {
    fn core(transform: impl Transform + 'static, touches: Touches, description: String) -> Self {
        SeedTransform {
            kind: Kind::Core {
                transform: Mutex::new(Box::new(transform)),
                touches,
            },
            description,
        }
    }

    /// Applies this transform to the working copy `record`.
    fn apply(&self, py: Python<'_>, record: &mut DataRecord) -> PyResult<()> {
        match &self.kind {
            Kind::Core { transform, touches } => {
                let mut scratch = CoreRecord {
                    record_id: CompactString::default(),
                    device_id: CompactString::default(),
                    timestamp: Timestamp::UNIX_EPOCH,
                    data_type: CompactString::default(),
                    payload: Payload::new(),
                    metadata: Metadata::new(),
                };
                match touches {
                    Touches::Payload => {
                        std::mem::swap(&mut scratch.payload, record.core_payload(py)?)
                    }
                    Touches::Metadata => {
                        std::mem::swap(&mut scratch.metadata, record.core_metadata(py)?)
                    }
                }
                let verdict = transform
                    .lock()
                    .map_err(|_| EdgepipeError::new_err("a transform is unusable after a panic"))?
                    .apply(&mut scratch);
                match touches {
                    Touches::Payload => record.payload = Field::Core(scratch.payload),
                    Touches::Metadata => record.metadata = Field::Core(scratch.metadata),
                }
                match verdict {
                    Verdict::Keep | Verdict::Drop => Ok(()),
                    Verdict::Quarantine(reason) => Err(rejected(py, record, &reason)),
                }
            }
            Kind::Computed { field, compute } => {
                let payload = record_payload_dict(py, record)?;
                let value = compute.bind(py).call1((payload.clone(),))?;
                let updated = payload.copy()?;
                updated.set_item(field.bind(py), value)?;
                record.payload = Field::Python(updated.unbind());
                Ok(())
            }
        }
    }
}

fn record_payload_dict<'py>(
    py: Python<'py>,
    record: &mut DataRecord,
) -> PyResult<Bound<'py, PyDict>> {
    if let Field::Core(payload) = &record.payload {
        record.payload = Field::Python(super::edge_collector::payload_to_py(py, payload)?.unbind());
    }
    match &record.payload {
        Field::Python(dict) => Ok(dict.bind(py).clone()),
        Field::Core(_) => unreachable!("converted above"),
    }
}

/// The seed's `ValueError(f"Field {field} has wrong type")`, carrying the record
/// (`.record`) and the field (`.field`) so a caller can keep what was refused.
fn rejected(py: Python<'_>, record: &DataRecord, reason: &Reason) -> PyErr {
    let error = PyValueError::new_err(reason.message.clone());
    let value = error.value(py);
    let attach = || -> PyResult<()> {
        value.setattr("record", Bound::new(py, record.copy(py))?)?;
        value.setattr("field", reason.field.clone())?;
        value.setattr("code", reason.code)?;
        Ok(())
    };
    match attach() {
        Ok(()) => error,
        Err(other) => other,
    }
}

/// Runs `transforms` on `record` in order, as the seed's `TransformPipeline.process`.
pub(crate) fn run_chain<'py>(
    py: Python<'py>,
    transforms: impl IntoIterator<Item = Bound<'py, PyAny>>,
    record: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut current = record;
    // The native transforms' working copy, made into a Python object only when a
    // Python callable or the caller needs it.
    let mut working: Option<DataRecord> = None;
    for transform in transforms {
        if let Ok(native) = transform.cast::<SeedTransform>() {
            if working.is_none() {
                let input = record_of(&current, "the record given to a transform")?;
                working = Some(input.borrow().copy(py));
            }
            if let Some(record) = working.as_mut() {
                native.get().apply(py, record)?;
            }
        } else {
            if let Some(record) = working.take() {
                current = Bound::new(py, record)?.into_any();
            }
            current = transform.call1((current,))?;
        }
    }
    match working {
        Some(record) => Ok(Bound::new(py, record)?.into_any()),
        None => Ok(current),
    }
}

#[pymethods]
impl SeedTransform {
    /// Applies the transform to one record and returns the new record (the
    /// input is left as it was). `validate_schema` raises ValueError as the seed.
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        record: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        run_chain(slf.py(), [slf.clone().into_any()], record)
    }

    fn __repr__(&self) -> String {
        format!("<edgepipe seed transform {}>", self.description)
    }
}

/// Chain multiple transforms (the seed's `TransformPipeline`).
///
/// `transforms` is a plain list, as in the seed. `process` runs consecutive
/// edgepipe transforms natively and calls any other callable with the record.
#[pyclass(module = "edgepipe", name = "TransformPipeline", subclass)]
#[derive(Debug)]
pub(crate) struct TransformPipeline {
    /// The transforms, in order.
    #[pyo3(get, set)]
    transforms: Py<PyList>,
}

#[pymethods]
impl TransformPipeline {
    #[new]
    fn new(py: Python<'_>) -> Self {
        TransformPipeline {
            transforms: PyList::empty(py).unbind(),
        }
    }

    /// Appends `transform` and returns the pipeline, for chaining.
    fn add<'py>(slf: Bound<'py, Self>, transform: Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        if !transform.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "transform must be callable, not {}",
                type_name(&transform)
            )));
        }
        slf.borrow().transforms.bind(slf.py()).append(transform)?;
        Ok(slf)
    }

    /// Applies all transforms to `record` and returns the result.
    fn process<'py>(
        &self,
        py: Python<'py>,
        record: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        // A snapshot, so a transform that edits the list does not change this run.
        let transforms: Vec<_> = self.transforms.bind(py).iter().collect();
        run_chain(py, transforms, record)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "TransformPipeline({})",
            self.transforms.bind(py).repr()?
        ))
    }
}

fn names(value: &Bound<'_, PyAny>, argument: &str) -> PyResult<Vec<String>> {
    if value.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{argument} must be a list of field names, not a str"
        )));
    }
    let iterator = value.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "{argument} must be a list of field names, not {}",
            type_name(value)
        ))
    })?;
    iterator
        .map(|name| {
            let name = name?;
            name.extract::<String>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{argument} must hold str field names, not {}",
                    type_name(&name)
                ))
            })
        })
        .collect()
}

fn string_pairs(value: &Bound<'_, PyAny>, argument: &str) -> PyResult<Vec<(String, String)>> {
    let dict = value.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{argument} must be a dict, not {}",
            type_name(value)
        ))
    })?;
    dict.iter()
        .map(|(key, value)| {
            let key_text = key.extract::<String>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{argument} keys must be str, not {}",
                    type_name(&key)
                ))
            })?;
            let value_text = value.extract::<String>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{argument}[{key_text:?}] must be a str, not {}",
                    type_name(&value)
                ))
            })?;
            Ok((key_text, value_text))
        })
        .collect()
}

fn repr_of(value: &Bound<'_, PyAny>) -> String {
    value
        .repr()
        .map(|text| text.to_string())
        .unwrap_or_else(|_| "...".to_owned())
}

/// Add static metadata to records (the seed's `add_metadata`): the record's
/// metadata merged with `metadata`, whose values win.
#[pyfunction]
pub(crate) fn add_metadata(metadata: &Bound<'_, PyAny>) -> PyResult<SeedTransform> {
    let labels = string_pairs(metadata, "metadata")?;
    Ok(SeedTransform::core(
        AddMetadata::new(labels),
        Touches::Metadata,
        format!("add_metadata({})", repr_of(metadata)),
    ))
}

/// Keep only specified fields in payload (the seed's `filter_fields`).
#[pyfunction]
pub(crate) fn filter_fields(allowed_fields: &Bound<'_, PyAny>) -> PyResult<SeedTransform> {
    let fields = names(allowed_fields, "allowed_fields")?;
    Ok(SeedTransform::core(
        FilterFields::new(fields),
        Touches::Payload,
        format!("filter_fields({})", repr_of(allowed_fields)),
    ))
}

/// Rename fields in payload (the seed's `rename_fields`); a new name that
/// collides keeps the first position and the last value, as the seed's dict does.
#[pyfunction]
pub(crate) fn rename_fields(mapping: &Bound<'_, PyAny>) -> PyResult<SeedTransform> {
    let pairs = string_pairs(mapping, "mapping")?;
    Ok(SeedTransform::core(
        RenameFields::new(pairs),
        Touches::Payload,
        format!("rename_fields({})", repr_of(mapping)),
    ))
}

/// Add a computed field to payload (the seed's `add_computed_field`):
/// `compute(payload)` is called with the record's payload dict.
#[pyfunction]
pub(crate) fn add_computed_field(
    field_name: &Bound<'_, PyAny>,
    compute: &Bound<'_, PyAny>,
) -> PyResult<SeedTransform> {
    let field = field_name.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "field_name must be a str, not {}",
            type_name(field_name)
        ))
    })?;
    if !compute.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "compute must be callable, not {}",
            type_name(compute)
        )));
    }
    Ok(SeedTransform {
        kind: Kind::Computed {
            field: field.clone().unbind(),
            compute: compute.clone().unbind(),
        },
        description: format!(
            "add_computed_field({}, {})",
            repr_of(field_name),
            repr_of(compute)
        ),
    })
}

/// Mask sensitive data fields (the seed's `mask_sensitive_fields`): each listed
/// field present becomes `"***MASKED***"`.
#[pyfunction]
pub(crate) fn mask_sensitive_fields(fields: &Bound<'_, PyAny>) -> PyResult<SeedTransform> {
    let fields_list = names(fields, "fields")?;
    Ok(SeedTransform::core(
        MaskFields::new(fields_list),
        Touches::Payload,
        format!("mask_sensitive_fields({})", repr_of(fields)),
    ))
}

/// Validate payload against schema (the seed's `validate_schema`): each field
/// present must be an instance of its type (or tuple of types), as `isinstance`
/// says; otherwise ValueError("Field {field} has wrong type"), carrying the
/// record as `.record` and the field as `.field`.
#[pyfunction]
pub(crate) fn validate_schema(schema: &Bound<'_, PyAny>) -> PyResult<SeedTransform> {
    let py = schema.py();
    let dict = schema.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(format!("schema must be a dict, not {}", type_name(schema)))
    })?;
    // The Python type of each value kind, in kind_index order: a value passes
    // exactly when isinstance would say so, that is issubclass of its type.
    let kind_types: [Bound<'_, PyType>; KINDS] = [
        py.get_type::<PyNone>(),
        py.get_type::<PyBool>(),
        py.get_type::<PyInt>(),
        py.get_type::<PyFloat>(),
        py.get_type::<PyString>(),
        py.get_type::<PyList>(),
        py.get_type::<PyDict>(),
    ];
    let mut rules = Vec::with_capacity(dict.len());
    for (field, expected) in dict.iter() {
        let field = field.extract::<String>().map_err(|_| {
            PyTypeError::new_err(format!(
                "schema keys must be str, not {}",
                type_name(&field)
            ))
        })?;
        let mut allowed = [false; KINDS];
        for (slot, kind_type) in allowed.iter_mut().zip(&kind_types) {
            *slot = kind_type.is_subclass(&expected).map_err(|_| {
                PyTypeError::new_err(format!(
                    "schema[{field:?}] must be a type or a tuple of types, not {}",
                    repr_of(&expected)
                ))
            })?;
        }
        rules.push((field, allowed));
    }
    Ok(SeedTransform::core(
        PythonTypeSchema { rules },
        Touches::Payload,
        format!("validate_schema({})", repr_of(schema)),
    ))
}
