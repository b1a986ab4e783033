//! The record: one reading from one device, in the seed's `DataRecord` shape.
//!
//! - [`DataRecord`]: `record_id`, `device_id`, `timestamp`, `data_type`,
//!   `payload` (field → [`Value`]) and `metadata` (string → string).
//! - [`Timestamp`]: nanoseconds since the epoch, read from ISO-8601 or epoch numbers.
//! - [`id`]: random UUIDv4 ids (the seed's) and deterministic [`SequenceId`]s.
//! - [`json`]: the seed's `to_dict()` JSON shape, single documents and JSON Lines.

pub mod id;
pub mod json;
pub(crate) mod timestamp;
mod value;

pub use id::{SequenceId, SequenceIdGenerator};
pub use json::{JsonLinesReader, JsonOptions, NonFinite};
pub use timestamp::Timestamp;
pub use value::{FieldMap, Metadata, Payload, Value, ValueKind};

pub use compact_str::CompactString;

use crate::error::Result;

/// One reading from one device: the unit everything in edgepipe moves.
///
/// Serialises to exactly the seed's `DataRecord.to_dict()`:
///
/// ```
/// use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};
///
/// let mut record = DataRecord::new("edge-001", "sensors", Payload::new());
/// record.record_id = "r-1".into();
/// record.timestamp = Timestamp::parse("2026-01-01T00:00:00.100Z")?;
/// record.payload.insert("temperature", Value::Float(22.87));
/// assert_eq!(
///     record.to_json()?,
///     r#"{"record_id":"r-1","device_id":"edge-001","timestamp":"2026-01-01T00:00:00.100Z","data_type":"sensors","payload":{"temperature":22.87},"metadata":{}}"#
/// );
/// assert_eq!(DataRecord::from_json(&record.to_json()?)?, record);
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct DataRecord {
    /// Unique id: a UUIDv4 (the seed's) or a [`SequenceId`] in text form.
    pub record_id: CompactString,
    /// The device the reading is about.
    pub device_id: CompactString,
    /// When the reading was taken (event time).
    pub timestamp: Timestamp,
    /// The source or kind of reading, e.g. `sensors` or `system`.
    pub data_type: CompactString,
    /// The measured fields.
    pub payload: Payload,
    /// Labels added along the way, e.g. `region`, `site`.
    pub metadata: Metadata,
}

impl DataRecord {
    /// A record stamped now with a fresh UUIDv4, as the seed's collector makes them.
    pub fn new(
        device_id: impl Into<CompactString>,
        data_type: impl Into<CompactString>,
        payload: Payload,
    ) -> Self {
        DataRecord {
            record_id: id::uuid_v4().into(),
            device_id: device_id.into(),
            timestamp: Timestamp::now(),
            data_type: data_type.into(),
            payload,
            metadata: Metadata::new(),
        }
    }

    /// Reads one record from a JSON object in the seed's shape.
    pub fn from_json(text: &str) -> Result<Self> {
        json::record_from_slice(text.as_bytes(), None)
    }

    /// Reads one record from JSON bytes in the seed's shape.
    pub fn from_json_slice(bytes: &[u8]) -> Result<Self> {
        json::record_from_slice(bytes, None)
    }

    /// The record as compact JSON, refusing NaN and infinities.
    pub fn to_json(&self) -> Result<String> {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out, &JsonOptions::default())?;
        // The writer emits only UTF-8 (strings come from `String`s).
        Ok(String::from_utf8(out).unwrap_or_default())
    }

    /// Appends the record's JSON to `out`. On error `out` is left as it was.
    pub fn write_json(&self, out: &mut Vec<u8>, options: &JsonOptions) -> Result<()> {
        json::write_record(self, out, options)
    }
}
