//! JSON Lines: one compact record per line, each ending in `\n`.

use crate::batch::limits::DecodeLimits;
use crate::error::{Error, Result};
use crate::record::json::{parse_jsonl, write_jsonl};
use crate::record::{DataRecord, JsonOptions};

/// Appends the records, one line each.
pub fn encode(records: &[DataRecord], out: &mut Vec<u8>) -> Result<()> {
    write_jsonl(records, out, &JsonOptions::default())
}

/// Bytes that `record` adds: its JSON and a newline.
pub(crate) fn record_size(record: &DataRecord, scratch: &mut Vec<u8>) -> Result<usize> {
    scratch.clear();
    record.write_json(scratch, &JsonOptions::default())?;
    Ok(scratch.len() + 1)
}

/// Reads every line; a batch is all or nothing, so the first bad line fails it.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<DataRecord>> {
    let mut records = Vec::new();
    for (_line, record) in parse_jsonl(bytes) {
        if records.len() == limits.max_records {
            return Err(Error::TooManyRecords {
                limit: limits.max_records,
            });
        }
        records.push(record?);
    }
    Ok(records)
}
