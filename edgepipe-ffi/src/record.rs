//! `edgepipe_record`: one reading, built field by field without JSON.

use std::ffi::c_char;

use edgepipe_core::DataRecord;
use edgepipe_core::record::{JsonOptions, Payload, Timestamp, Value};

use crate::buffer::{self, edgepipe_buffer};
use crate::error::{Failure, edgepipe_status};
use crate::ffi::{self, Out};
use crate::panic;

/// One reading from one device: `record_id`, `device_id`, `timestamp`,
/// `data_type`, `payload` (field → number, string, bool or null) and `metadata`
/// (string → string), the seed's `DataRecord`.
///
/// Made by `edgepipe_record_new` (a fresh UUIDv4 id, stamped now) or
/// `edgepipe_record_new_from_json`, filled with the `_set_*` calls, released by
/// `edgepipe_record_free`. Setting a field that exists replaces its value in place;
/// `edgepipe_record_clear_fields` empties payload and metadata but keeps their
/// memory, so a sensor loop can reuse one record without allocating per reading.
///
/// Thread safety: `edgepipe_record *` calls change the record and need it to
/// themselves; `const edgepipe_record *` calls (serialising it, pushing it into a
/// batcher or window, which copy it) may run on several threads at once.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct edgepipe_record {
    pub(crate) record: DataRecord,
}

/// Makes a record for `device_id` and `data_type` (UTF-8, no NUL needed) with a
/// fresh UUIDv4 `record_id`, the current time as `timestamp`, and an empty payload
/// and metadata; stores it in `*out`.
///
/// `EDGEPIPE_STATUS_NULL_ARGUMENT`, `EDGEPIPE_STATUS_INVALID_UTF8`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_new(
    device_id: *const c_char,
    device_id_len: usize,
    data_type: *const c_char,
    data_type_len: usize,
    out: *mut *mut edgepipe_record,
) -> edgepipe_status {
    panic::status(|| {
        let device_id = ffi::try_str(device_id, device_id_len, "device_id")?;
        let data_type = ffi::try_str(data_type, data_type_len, "data_type")?;
        let out = Out::new(out, "out")?;
        let record = DataRecord::new(device_id, data_type, Payload::new());
        out.write(ffi::into_handle(edgepipe_record { record }));
        Ok(())
    })
}

/// Reads a record from one JSON object in the seed's shape (`json_len` bytes) and
/// stores it in `*out`.
///
/// `EDGEPIPE_STATUS_INVALID_JSON` (the message names the field),
/// `EDGEPIPE_STATUS_INVALID_TIMESTAMP`, `EDGEPIPE_STATUS_NULL_ARGUMENT`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_new_from_json(
    json: *const c_char,
    json_len: usize,
    out: *mut *mut edgepipe_record,
) -> edgepipe_status {
    panic::status(|| {
        let json = ffi::try_slice(json.cast(), json_len, "json")?;
        let out = Out::new(out, "out")?;
        let record = DataRecord::from_json_slice(json)?;
        out.write(ffi::into_handle(edgepipe_record { record }));
        Ok(())
    })
}

/// Frees a record. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_free(record: *mut edgepipe_record) {
    panic::catch_or((), || ffi::free_handle(record));
}

/// Sets the `record_id` (e.g. a deterministic `source:epoch:sequence` id, which
/// gives batches a sequence range).
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_set_id(
    record: *mut edgepipe_record,
    id: *const c_char,
    id_len: usize,
) -> edgepipe_status {
    panic::status(|| {
        let record = ffi::try_mut(record, "record")?;
        let id = ffi::try_str(id, id_len, "id")?;
        record.record.record_id = id.into();
        Ok(())
    })
}

/// Sets the `timestamp` (event time) in nanoseconds since the Unix epoch, UTC.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_set_timestamp(
    record: *mut edgepipe_record,
    unix_nanos: i64,
) -> edgepipe_status {
    panic::status(|| {
        let record = ffi::try_mut(record, "record")?;
        record.record.timestamp = Timestamp::from_unix_nanos(unix_nanos);
        Ok(())
    })
}

/// Sets the `timestamp` from ISO-8601 text (`2026-01-01T00:00:00.100Z`, an offset,
/// or none for UTC, as Python's `isoformat()` writes). `EDGEPIPE_STATUS_INVALID_TIMESTAMP`
/// leaves the record as it was.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_set_timestamp_iso8601(
    record: *mut edgepipe_record,
    text: *const c_char,
    text_len: usize,
) -> edgepipe_status {
    panic::status(|| {
        let record = ffi::try_mut(record, "record")?;
        let text = ffi::try_str(text, text_len, "text")?;
        record.record.timestamp = Timestamp::parse(text)?;
        Ok(())
    })
}

fn set(
    record: *mut edgepipe_record,
    key: *const c_char,
    key_len: usize,
    value: impl FnOnce() -> Result<Value, Failure>,
) -> edgepipe_status {
    panic::status(|| {
        let record = ffi::try_mut(record, "record")?;
        let key = ffi::try_str(key, key_len, "key")?;
        let value = value()?;
        match record.record.payload.get_mut(key) {
            // In place: no new key string for a field set on every reading.
            Some(slot) => *slot = value,
            None => {
                record.record.payload.insert(key, value);
            }
        }
        Ok(())
    })
}

/// Sets payload field `key` to a string.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_set_str(
    record: *mut edgepipe_record,
    key: *const c_char,
    key_len: usize,
    value: *const c_char,
    value_len: usize,
) -> edgepipe_status {
    set(record, key, key_len, || {
        Ok(Value::String(
            ffi::try_str(value, value_len, "value")?.into(),
        ))
    })
}

/// Sets payload field `key` to a float. NaN and infinities are kept, but JSON
/// codecs refuse them later with `EDGEPIPE_STATUS_NON_FINITE_FLOAT`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_set_f64(
    record: *mut edgepipe_record,
    key: *const c_char,
    key_len: usize,
    value: f64,
) -> edgepipe_status {
    set(record, key, key_len, || Ok(Value::Float(value)))
}

/// Sets payload field `key` to an integer.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_set_i64(
    record: *mut edgepipe_record,
    key: *const c_char,
    key_len: usize,
    value: i64,
) -> edgepipe_status {
    set(record, key, key_len, || Ok(Value::Int(value)))
}

/// Sets payload field `key` to a boolean (0 is false, anything else true).
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_set_bool(
    record: *mut edgepipe_record,
    key: *const c_char,
    key_len: usize,
    value: i32,
) -> edgepipe_status {
    set(record, key, key_len, || Ok(Value::Bool(value != 0)))
}

/// Sets payload field `key` to null (Python's `None`).
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_set_null(
    record: *mut edgepipe_record,
    key: *const c_char,
    key_len: usize,
) -> edgepipe_status {
    set(record, key, key_len, || Ok(Value::Null))
}

/// Sets metadata label `key` to `value` (both strings).
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_set_metadata(
    record: *mut edgepipe_record,
    key: *const c_char,
    key_len: usize,
    value: *const c_char,
    value_len: usize,
) -> edgepipe_status {
    panic::status(|| {
        let record = ffi::try_mut(record, "record")?;
        let key = ffi::try_str(key, key_len, "key")?;
        let value = ffi::try_str(value, value_len, "value")?;
        match record.record.metadata.get_mut(key) {
            Some(slot) => *slot = value.into(),
            None => {
                record.record.metadata.insert(key, value.into());
            }
        }
        Ok(())
    })
}

/// Empties the payload and the metadata, keeping their memory for the next
/// reading; the id, device, type and timestamp stay as they are.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_clear_fields(record: *mut edgepipe_record) -> edgepipe_status {
    panic::status(|| {
        let record = ffi::try_mut(record, "record")?;
        record.record.payload.retain(|_, _| false);
        record.record.metadata.retain(|_, _| false);
        Ok(())
    })
}

/// Writes the record as one compact JSON object (the seed's `to_dict()`, no
/// newline, no NUL) into the caller's `buf` of `len` bytes and its length into
/// `*out_len`.
///
/// When it does not fit, nothing is written to `buf`, `*out_len` receives the size
/// needed and the status is `EDGEPIPE_STATUS_BUFFER_TOO_SMALL`; `(NULL, 0)` asks
/// for the size. `EDGEPIPE_STATUS_NON_FINITE_FLOAT` for a NaN or infinity.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_to_json(
    record: *const edgepipe_record,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> edgepipe_status {
    panic::status(|| {
        let record = ffi::try_ref(record, "record")?;
        buffer::to_caller(buf, len, out_len, |out| {
            Ok(record.record.write_json(out, &JsonOptions::default())?)
        })
    })
}

/// The record as one compact JSON object in a new buffer stored in `*out` (free
/// it with `edgepipe_buffer_free`). Errors as for `edgepipe_record_to_json`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_record_to_json_buffer(
    record: *const edgepipe_record,
    out: *mut *mut edgepipe_buffer,
) -> edgepipe_status {
    panic::status(|| {
        let record = ffi::try_ref(record, "record")?;
        let out = Out::new(out, "out")?;
        let mut bytes = Vec::with_capacity(256);
        record
            .record
            .write_json(&mut bytes, &JsonOptions::default())?;
        out.write(ffi::into_handle(edgepipe_buffer::new(bytes)));
        Ok(())
    })
}
