//! Status codes, the one mapping from core errors to them, and the last error message.
//!
//! Every fallible exported function returns an [`edgepipe_status`]. On failure the
//! message (with its source chain) is kept per thread and copied out by
//! [`edgepipe_error_message`].

use std::cell::RefCell;
use std::ffi::c_char;

use edgepipe_core::Error;

use crate::ffi::{self, Out};
use crate::panic;

/// The result of a call: `EDGEPIPE_STATUS_OK` (0) or what went wrong.
///
/// The numbers are grouped by who has to act and are never reused:
/// 1xx the call itself was wrong (a NULL pointer, bad UTF-8, an index out of range),
/// 2xx the data was refused, 3xx the configuration was refused, 4xx the operating
/// system failed, 9xx a bug in edgepipe. The message of the last failure on the
/// calling thread is available from `edgepipe_error_message`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum edgepipe_status {
    /// Success.
    Ok = 0,

    /// A pointer argument that must not be NULL was NULL.
    NullArgument = 100,
    /// A text argument was not valid UTF-8.
    InvalidUtf8 = 101,
    /// An index was not below the number of items.
    IndexOutOfRange = 102,
    /// A caller's buffer was too small; what fitted was written.
    BufferTooSmall = 103,
    /// An ack or nack named a queue entry that is not held (already acked, dropped,
    /// expired or dead-lettered).
    UnknownEntry = 104,
    /// A handle argument that is not live: freed already (a double free or a use
    /// after free), of another type, or not made by edgepipe. Nothing was read
    /// through it.
    InvalidHandle = 105,
    /// A wait ended before what it waited for happened (its time ran out, or what
    /// would make it happen has stopped).
    // Only `edgepipe_delivery_wait` returns it, but its number is in every header.
    #[cfg_attr(not(feature = "delivery"), allow(dead_code))]
    TimedOut = 106,

    /// A record could not be read from JSON.
    InvalidJson = 200,
    /// A JSON Lines line was longer than the reader's bound.
    LineTooLong = 201,
    /// A timestamp was not in a supported form or out of range.
    InvalidTimestamp = 202,
    /// A NaN or infinity could not be written as JSON.
    NonFiniteFloat = 203,
    /// A record id was not in the expected form.
    InvalidRecordId = 204,
    /// A batch's payload did not match its sha256; nothing was parsed.
    ChecksumMismatch = 205,
    /// A batch passed a decoder limit (compressed size, decompressed size or records).
    LimitExceeded = 206,
    /// A compressed stream, batch payload or envelope could not be read.
    CorruptData = 207,
    /// A codec, compression or format version this build does not support.
    Unsupported = 208,
    /// A saved window state could not be restored.
    InvalidSnapshot = 209,
    /// The queue cannot take the entry within its byte bound, or the disk is full;
    /// nothing was written. Back off, shed or aggregate.
    QueueFull = 210,

    /// A pipeline or transform configuration was refused; the message names the key.
    Config = 300,

    /// An operating-system I/O operation failed.
    Io = 400,

    /// edgepipe panicked. The handle the call was given may be inconsistent:
    /// free it and do not use it again.
    Panic = 900,
    /// The core reported a kind of error this build of the C ABI has no code for.
    Internal = 901,
}

impl edgepipe_status {
    /// The status for a core error kind. The one place the mapping lives.
    pub(crate) fn of(error: &Error) -> Self {
        match error {
            Error::InvalidJson { .. } => edgepipe_status::InvalidJson,
            Error::LineTooLong { .. } => edgepipe_status::LineTooLong,
            Error::InvalidTimestamp { .. } => edgepipe_status::InvalidTimestamp,
            Error::NonFiniteFloat { .. } => edgepipe_status::NonFiniteFloat,
            Error::InvalidRecordId { .. } => edgepipe_status::InvalidRecordId,
            Error::ChecksumMismatch { .. } => edgepipe_status::ChecksumMismatch,
            Error::CompressedTooLarge { .. }
            | Error::DecompressedTooLarge { .. }
            | Error::TooManyRecords { .. } => edgepipe_status::LimitExceeded,
            Error::CorruptCompression { .. }
            | Error::CorruptBatch { .. }
            | Error::CorruptEnvelope { .. } => edgepipe_status::CorruptData,
            Error::Unsupported { .. } => edgepipe_status::Unsupported,
            Error::Snapshot { .. } => edgepipe_status::InvalidSnapshot,
            Error::QueueFull { .. } => edgepipe_status::QueueFull,
            Error::UnknownEntry { .. } => edgepipe_status::UnknownEntry,
            Error::Config { .. } | Error::InvalidBatchOption { .. } => edgepipe_status::Config,
            Error::Io { .. } => edgepipe_status::Io,
            // `Error` is #[non_exhaustive]: a new kind needs a new code above.
            _ => edgepipe_status::Internal,
        }
    }
}

/// A failed call: the status to return and the message to keep for the caller.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: edgepipe_status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: edgepipe_status, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn null_argument(name: &str) -> Self {
        Failure::new(
            edgepipe_status::NullArgument,
            format!("argument `{name}` is NULL"),
        )
    }

    /// Keeps this failure as the calling thread's last error and returns its status.
    pub(crate) fn record(self) -> edgepipe_status {
        let status = self.status;
        LAST_ERROR.with_borrow_mut(|last| *last = Some(self));
        status
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::new(edgepipe_status::of(&error), error.message_with_sources())
    }
}

thread_local! {
    // Per thread, not per handle or global: a `const` handle may be shared read-only
    // between threads, and each thread must read the message of its own last failure,
    // never one that another thread's failure raced in on top of it.
    static LAST_ERROR: RefCell<Option<Failure>> = const { RefCell::new(None) };
}

/// Copies the message of the calling thread's last failed call into `buf`.
///
/// `buf` must point at `len` writable bytes; the message is written with a
/// terminating NUL, and `*written` receives its length without the NUL. With no
/// failure yet on this thread the message is empty. Successful calls leave the last
/// error as it was, and this function never changes it.
///
/// Returns `EDGEPIPE_STATUS_BUFFER_TOO_SMALL` when the message did not fit: unlike
/// other calls, the part that fitted (cut at a UTF-8 character boundary, NUL
/// terminated) is still written, since a truncated message beats none. 512 bytes hold
/// typical messages. `EDGEPIPE_STATUS_NULL_ARGUMENT` if `buf` or `written` is NULL.
///
/// Thread safety: may be called from any thread; it reads only that thread's state.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_error_message(
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
) -> edgepipe_status {
    // Not `panic::status`: reporting a problem here must not overwrite the error
    // the caller is asking about.
    panic::catch_or(edgepipe_status::Panic, || {
        let Ok(written) = Out::new(written, "written") else {
            return edgepipe_status::NullArgument;
        };
        LAST_ERROR.with_borrow(|last| {
            let message = last.as_ref().map_or("", |failure| failure.message.as_str());
            match ffi::write_c_string(buf, len, message) {
                Ok((count, complete)) => {
                    written.write(count);
                    if complete {
                        edgepipe_status::Ok
                    } else {
                        edgepipe_status::BufferTooSmall
                    }
                }
                Err(failure) => failure.status,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_kind_has_its_own_code() {
        let config = edgepipe_core::Pipeline::from_json_str("{\"transforms\": 3}").unwrap_err();
        assert_eq!(edgepipe_status::of(&config), edgepipe_status::Config);
        let json = edgepipe_core::DataRecord::from_json("{").unwrap_err();
        assert_eq!(edgepipe_status::of(&json), edgepipe_status::InvalidJson);
        let io = Error::io("reading x", std::io::Error::other("disk on fire"));
        assert_eq!(edgepipe_status::of(&io), edgepipe_status::Io);
        let bomb = Error::DecompressedTooLarge { limit: 1 };
        assert_eq!(edgepipe_status::of(&bomb), edgepipe_status::LimitExceeded);
        let corrupt = Error::CorruptEnvelope {
            reason: "short".into(),
        };
        assert_eq!(edgepipe_status::of(&corrupt), edgepipe_status::CorruptData);
        let option = Error::InvalidBatchOption {
            option: "max_records",
            reason: "zero".into(),
        };
        assert_eq!(edgepipe_status::of(&option), edgepipe_status::Config);
    }
}
