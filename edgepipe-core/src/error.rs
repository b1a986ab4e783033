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
         (set NonFinite::Null or NonFinite::Literal to write it anyway)"
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

    pub(crate) fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }
}
