//! The crate's one error type.
//!
//! Every fallible call in `edgepipe-core` returns [`Result`]. The variants are the
//! *kinds* of failure the bindings map onto their own (a Python exception subclass,
//! a C status code), so a new kind is a new variant rather than a new string.

use std::io;

/// Everything that can go wrong in edgepipe's core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A JSON document or JSON Lines line could not be read as a record.
    #[error("{}invalid record JSON: {message}", line_prefix(*line))]
    InvalidJson {
        /// 1-based line number inside a JSON Lines input, when there is one.
        line: Option<u64>,
        /// What the parser said, including the column and, inside a payload, the field.
        message: String,
    },

    /// A JSON Lines line was longer than the reader's bound; it was skipped.
    #[error("line {line}: {length} bytes exceeds the limit of {limit} bytes per line")]
    LineTooLong {
        /// 1-based line number.
        line: u64,
        /// Bytes in the line (at least this many; reading stopped at the limit).
        length: usize,
        /// The configured bound.
        limit: usize,
    },

    /// A timestamp string or number that is not a supported form, or is out of range.
    #[error("invalid timestamp {input:?}: {reason}")]
    InvalidTimestamp {
        /// The offending input, as text.
        input: String,
        /// Which part is wrong.
        reason: &'static str,
    },

    /// A float that JSON cannot carry (NaN or ±infinity) was about to be written.
    #[error(
        "payload field `{field}` is {value}, which JSON cannot represent \
         (set `NonFinite::Null` to write null in its place)"
    )]
    NonFiniteFloat {
        /// Path of the field, e.g. `temperature` or `readings[3]`.
        field: String,
        /// `NaN`, `inf` or `-inf`.
        value: f64,
    },

    /// A record id that is not in the expected form.
    #[error("invalid record id {id:?}: {reason}")]
    InvalidRecordId {
        /// The id as given.
        id: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A pipeline or transform configuration that cannot be used.
    #[error("invalid configuration at `{key}`: {message}")]
    Config {
        /// Path of the offending key, e.g. `transforms[2].mapping`.
        key: String,
        /// What is wrong with it.
        message: String,
    },

    /// A batch's payload does not match the sha256 its envelope carries; nothing was parsed.
    #[error("batch checksum mismatch: envelope says {expected}, payload hashes to {actual}")]
    ChecksumMismatch {
        /// The lowercase hex sha256 from the envelope.
        expected: String,
        /// The lowercase hex sha256 of the payload as received.
        actual: String,
    },

    /// A compressed payload is larger than the decoder accepts.
    #[error("compressed batch of {size} bytes exceeds the limit of {limit} bytes")]
    CompressedTooLarge {
        /// Bytes received.
        size: usize,
        /// The configured bound.
        limit: usize,
    },

    /// Decompression was stopped because the output passed the limit (a bomb or a
    /// batch too big for this receiver); at most `limit + 1` bytes were produced.
    #[error("batch decompresses to more than the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The configured bound on decompressed bytes.
        limit: usize,
    },

    /// A batch holds (or declares) more records than the decoder accepts.
    #[error("batch holds more than the limit of {limit} records")]
    TooManyRecords {
        /// The configured bound on records per batch.
        limit: usize,
    },

    /// A codec or compression name or tag this build does not know (or was built without).
    #[error("unsupported {what} {name:?}")]
    Unsupported {
        /// `codec`, `compression` or `format version`.
        what: &'static str,
        /// The name or tag as received.
        name: String,
    },

    /// A compressed stream that its decompressor refuses (truncated, bad header, bad checksum).
    #[error("corrupt {compression} stream: {reason}")]
    CorruptCompression {
        /// `gzip`, `lz4` or `zstd`.
        compression: &'static str,
        /// What the decompressor said.
        reason: String,
    },

    /// A decompressed payload that its codec cannot read.
    #[error("corrupt {codec} batch: {reason}")]
    CorruptBatch {
        /// `json`, `jsonl`, `msgpack` or `columnar`.
        codec: &'static str,
        /// What is wrong, with the position where it helps.
        reason: String,
    },

    /// A serialized batch envelope that cannot be read.
    #[error("corrupt batch envelope: {reason}")]
    CorruptEnvelope {
        /// What is wrong with it.
        reason: String,
    },

    /// A batching policy or codec option that cannot be used.
    #[error("invalid batch option `{option}`: {reason}")]
    InvalidBatchOption {
        /// The option, e.g. `max_records` or `gzip level`.
        option: &'static str,
        /// Why it was refused.
        reason: String,
    },

    /// A saved window state that cannot be read or restored (wrong format,
    /// malformed, or state no run could have produced).
    #[error("invalid window snapshot: {message}")]
    Snapshot {
        /// What is wrong with it.
        message: String,
    },

    /// The queue cannot take an entry without breaking its byte bound (under
    /// [`FullPolicy::Reject`](crate::queue::FullPolicy::Reject), or when what would
    /// have to be dropped is in flight), or the disk under it is full. Nothing was
    /// written: retry later, shed or aggregate.
    #[error("queue full ({limit_bytes} byte limit): {reason}")]
    QueueFull {
        /// The queue's `max_bytes`, 0 when unbounded.
        limit_bytes: u64,
        /// Why this entry does not fit.
        reason: String,
    },

    /// An ack or nack for an entry the queue does not hold as live.
    #[error("queue entry {id} cannot be acked or nacked: {reason}")]
    UnknownEntry {
        /// The id passed in.
        id: u64,
        /// Why it is refused.
        reason: &'static str,
    },

    /// The shared dedup ledger of ingest replicas (PostgreSQL) failed, could not be
    /// reached or did not grant a lock in time. Nothing was answered as stored: a
    /// retry is safe.
    #[error("dedup ledger: {context}: {message}")]
    Ledger {
        /// What was being done, e.g. `locking batch b-17`.
        context: String,
        /// What the database or its client said.
        message: String,
    },

    /// An operating-system I/O failure, with what edgepipe was doing at the time.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `reading devices.json`.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn line_prefix(line: Option<u64>) -> String {
    match line {
        Some(line) => format!("line {line}: "),
        None => String::new(),
    }
}

impl Error {
    /// Wraps an I/O error with what was being attempted.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The message followed by each `source()` whose text it does not already
    /// contain: what the bindings show, since Python and C see no source chain.
    pub fn message_with_sources(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        message
    }

    pub(crate) fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_the_source_chain_once() {
        // Io prints its source already: it is not repeated.
        let io = Error::io("reading devices.json", io::Error::other("disk on fire"));
        assert_eq!(
            io.message_with_sources(),
            "reading devices.json: disk on fire"
        );
        let plain = Error::config("transforms[0].type", "missing");
        assert_eq!(plain.message_with_sources(), plain.to_string());
    }
}
