//! The exception hierarchy and the one mapping from core errors onto it.
//!
//! ```text
//! EdgepipeError(Exception)
//! ├── InvalidJsonError        Error::InvalidJson
//! ├── LineTooLongError        Error::LineTooLong
//! ├── TimestampError          Error::InvalidTimestamp
//! ├── NonFiniteFloatError     Error::NonFiniteFloat
//! ├── RecordIdError           Error::InvalidRecordId
//! ├── ChecksumError           Error::ChecksumMismatch
//! ├── LimitExceededError      Error::CompressedTooLarge, DecompressedTooLarge, TooManyRecords
//! ├── CorruptDataError        Error::CorruptCompression, CorruptBatch, CorruptEnvelope
//! ├── UnsupportedError        Error::Unsupported
//! ├── SnapshotError           Error::Snapshot
//! ├── QueueFullError          Error::QueueFull
//! ├── UnknownEntryError       Error::UnknownEntry
//! ├── ConfigError             Error::Config, InvalidBatchOption
//! ├── IoError                 Error::Io
//! └── SendError               a sink's failed send (`deliver::SendFailure`), with
//!                             `retryable` and `retry_after` attributes
//! ```
//!
//! A core kind this build does not know yet (`Error` is `#[non_exhaustive]`) is
//! raised as the base class, so `except EdgepipeError` always catches it.

use edgepipe_core::Error;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyType;

pyo3::create_exception!(
    edgepipe,
    EdgepipeError,
    PyException,
    "Base class of every error edgepipe raises."
);
pyo3::create_exception!(
    edgepipe,
    InvalidJsonError,
    EdgepipeError,
    "A JSON document or JSON Lines line could not be read as a record."
);
pyo3::create_exception!(
    edgepipe,
    LineTooLongError,
    EdgepipeError,
    "A JSON Lines line was longer than the reader's bound."
);
pyo3::create_exception!(
    edgepipe,
    TimestampError,
    EdgepipeError,
    "A timestamp that is not a supported form, or is out of range."
);
pyo3::create_exception!(
    edgepipe,
    NonFiniteFloatError,
    EdgepipeError,
    "A NaN or infinity that JSON cannot carry was about to be written."
);
pyo3::create_exception!(
    edgepipe,
    RecordIdError,
    EdgepipeError,
    "A record id that is not in the expected form."
);
pyo3::create_exception!(
    edgepipe,
    ChecksumError,
    EdgepipeError,
    "A batch's payload did not match its sha256; nothing was parsed."
);
pyo3::create_exception!(
    edgepipe,
    LimitExceededError,
    EdgepipeError,
    "A batch passed a decoder limit: compressed size, decompressed size or records."
);
pyo3::create_exception!(
    edgepipe,
    CorruptDataError,
    EdgepipeError,
    "A compressed stream, batch payload or batch envelope that cannot be read."
);
pyo3::create_exception!(
    edgepipe,
    UnsupportedError,
    EdgepipeError,
    "A codec, compression or format version this build does not support."
);
pyo3::create_exception!(
    edgepipe,
    SnapshotError,
    EdgepipeError,
    "A saved window state that cannot be restored."
);
pyo3::create_exception!(
    edgepipe,
    QueueFullError,
    EdgepipeError,
    "The queue cannot take the entry within its byte bound (or the disk is full); nothing was written."
);
pyo3::create_exception!(
    edgepipe,
    UnknownEntryError,
    EdgepipeError,
    "An ack or nack for a queue entry that is not held (already acked, dropped, expired or dead)."
);
pyo3::create_exception!(
    edgepipe,
    ConfigError,
    EdgepipeError,
    "A pipeline or transform configuration that cannot be used; the message names the key."
);
pyo3::create_exception!(
    edgepipe,
    IoError,
    EdgepipeError,
    "An operating-system I/O failure, with what edgepipe was doing at the time."
);

pyo3::create_exception!(
    edgepipe,
    SendError,
    EdgepipeError,
    "A sink could not deliver a batch; `retryable` says whether trying again may help, `retry_after` is the receiver's hint in seconds (or None)."
);

/// The exception class for a core error kind.
pub(crate) fn exception_type<'py>(py: Python<'py>, error: &Error) -> Bound<'py, PyType> {
    match error {
        Error::InvalidJson { .. } => py.get_type::<InvalidJsonError>(),
        Error::LineTooLong { .. } => py.get_type::<LineTooLongError>(),
        Error::InvalidTimestamp { .. } => py.get_type::<TimestampError>(),
        Error::NonFiniteFloat { .. } => py.get_type::<NonFiniteFloatError>(),
        Error::InvalidRecordId { .. } => py.get_type::<RecordIdError>(),
        Error::ChecksumMismatch { .. } => py.get_type::<ChecksumError>(),
        Error::CompressedTooLarge { .. }
        | Error::DecompressedTooLarge { .. }
        | Error::TooManyRecords { .. } => py.get_type::<LimitExceededError>(),
        Error::CorruptCompression { .. }
        | Error::CorruptBatch { .. }
        | Error::CorruptEnvelope { .. } => py.get_type::<CorruptDataError>(),
        Error::Unsupported { .. } => py.get_type::<UnsupportedError>(),
        Error::Snapshot { .. } => py.get_type::<SnapshotError>(),
        Error::QueueFull { .. } => py.get_type::<QueueFullError>(),
        Error::UnknownEntry { .. } => py.get_type::<UnknownEntryError>(),
        Error::Config { .. } | Error::InvalidBatchOption { .. } => py.get_type::<ConfigError>(),
        Error::Io { .. } => py.get_type::<IoError>(),
        _ => py.get_type::<EdgepipeError>(),
    }
}

/// The exception to raise for a core error.
pub(crate) fn to_py_err(py: Python<'_>, error: &Error) -> PyErr {
    PyErr::from_type(exception_type(py, error), error.message_with_sources())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each_kind() -> Vec<Error> {
        vec![
            Error::InvalidJson {
                line: Some(3),
                message: "column 2: key must be a string".into(),
            },
            Error::LineTooLong {
                line: 1,
                length: 10,
                limit: 5,
            },
            Error::InvalidTimestamp {
                input: "yesterday".into(),
                reason: "not ISO-8601",
            },
            Error::NonFiniteFloat {
                field: "temperature".into(),
                value: f64::NAN,
            },
            Error::InvalidRecordId {
                id: "x".into(),
                reason: "too short",
            },
            Error::Config {
                key: "transforms[0].mapping".into(),
                message: "missing".into(),
            },
            Error::io(
                "reading devices.json",
                std::io::Error::other("disk on fire"),
            ),
            Error::ChecksumMismatch {
                expected: "00".into(),
                actual: "ff".into(),
            },
            Error::DecompressedTooLarge { limit: 1 },
            Error::CorruptBatch {
                codec: "columnar",
                reason: "truncated".into(),
            },
            Error::Unsupported {
                what: "codec",
                name: "xml".into(),
            },
            Error::Snapshot {
                message: "wrong format".into(),
            },
            Error::QueueFull {
                limit_bytes: 1024,
                reason: "full".into(),
            },
            Error::UnknownEntry {
                id: 7,
                reason: "already acked",
            },
        ]
    }

    #[test]
    fn send_error_is_an_edgepipe_error_of_its_own() {
        Python::initialize();
        Python::attach(|py| {
            let class = py.get_type::<SendError>();
            assert!(class.is_subclass_of::<EdgepipeError>().unwrap());
            for error in one_of_each_kind() {
                assert!(!exception_type(py, &error).is(&class), "{error:?}");
            }
        });
    }

    #[test]
    fn each_core_kind_raises_its_own_subclass_of_edgepipe_error() {
        Python::initialize();
        Python::attach(|py| {
            let mut seen = Vec::new();
            for error in one_of_each_kind() {
                let class = exception_type(py, &error);
                assert!(class.is_subclass_of::<EdgepipeError>().unwrap());
                assert!(!class.is(py.get_type::<EdgepipeError>()), "{error:?}");
                let name = class.name().unwrap().to_string();
                assert!(!seen.contains(&name), "{name} used twice");
                seen.push(name);

                let raised = to_py_err(py, &error);
                assert!(raised.get_type(py).is(&class));
                assert_eq!(raised.value(py).to_string(), error.message_with_sources());
            }
        });
    }
}
