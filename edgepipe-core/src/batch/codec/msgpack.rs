//! MessagePack: an array of maps with the seed's `to_dict()` keys and types.
//!
//! `msgpack.unpackb(payload)` in Python gives the same list of dicts as
//! `json.loads` of the JSON codec. The timestamp stays an ISO-8601 string for that
//! reason. Unlike JSON, floats are raw IEEE-754 doubles, so NaN, infinities and
//! -0.0 travel, and an integer-valued float stays a float.

use compact_str::CompactString;
use rmp::Marker;

use super::wire::Reader;
use crate::batch::limits::DecodeLimits;
use crate::error::{Error, Result};
use crate::record::{DataRecord, FieldMap, Metadata, Payload, Timestamp, Value};

const CODEC: &str = "msgpack";

/// Appends the records as one MessagePack array of maps.
pub fn encode(records: &[DataRecord], out: &mut Vec<u8>) -> Result<()> {
    put_array_len(out, records.len())?;
    for record in records {
        encode_record(record, out)?;
    }
    Ok(())
}

/// Bytes of the array header for `count` records.
pub(crate) fn framing(count: usize) -> usize {
    match count {
        0..=15 => 1,
        16..=0xffff => 3,
        _ => 5,
    }
}

/// Bytes that `record` adds to the array (the header is counted by [`framing`]).
pub(crate) fn record_size(record: &DataRecord, scratch: &mut Vec<u8>) -> Result<usize> {
    scratch.clear();
    encode_record(record, scratch)?;
    Ok(scratch.len())
}

fn too_long(what: &str) -> Error {
    Error::CorruptBatch {
        codec: CODEC,
        reason: format!("{what} longer than MessagePack's 2^32 - 1"),
    }
}

fn put_array_len(out: &mut Vec<u8>, length: usize) -> Result<()> {
    let length = u32::try_from(length).map_err(|_| too_long("array"))?;
    rmp::encode::write_array_len(out, length).map_err(|_| too_long("array"))?;
    Ok(())
}

fn put_map_len(out: &mut Vec<u8>, length: usize) -> Result<()> {
    let length = u32::try_from(length).map_err(|_| too_long("map"))?;
    rmp::encode::write_map_len(out, length).map_err(|_| too_long("map"))?;
    Ok(())
}

fn put_str(out: &mut Vec<u8>, text: &str) -> Result<()> {
    rmp::encode::write_str(out, text).map_err(|_| too_long("string"))
}

fn encode_record(record: &DataRecord, out: &mut Vec<u8>) -> Result<()> {
    put_map_len(out, 6)?;
    put_str(out, "record_id")?;
    put_str(out, &record.record_id)?;
    put_str(out, "device_id")?;
    put_str(out, &record.device_id)?;
    put_str(out, "timestamp")?;
    put_str(out, &record.timestamp.to_iso8601())?;
    put_str(out, "data_type")?;
    put_str(out, &record.data_type)?;
    put_str(out, "payload")?;
    put_map_len(out, record.payload.len())?;
    for (key, value) in record.payload.iter() {
        put_str(out, key)?;
        encode_value(value, out)?;
    }
    put_str(out, "metadata")?;
    put_map_len(out, record.metadata.len())?;
    for (key, value) in record.metadata.iter() {
        put_str(out, key)?;
        put_str(out, value)?;
    }
    Ok(())
}

fn encode_value(value: &Value, out: &mut Vec<u8>) -> Result<()> {
    match value {
        Value::Null => out.push(0xc0),
        Value::Bool(flag) => out.push(if *flag { 0xc3 } else { 0xc2 }),
        Value::Int(number) => {
            rmp::encode::write_sint(out, *number).map_err(|_| too_long("int"))?;
        }
        Value::UInt(number) => {
            rmp::encode::write_uint(out, *number).map_err(|_| too_long("int"))?;
        }
        Value::Float(number) => {
            out.push(0xcb);
            out.extend_from_slice(&number.to_bits().to_be_bytes());
        }
        Value::String(text) => put_str(out, text)?,
        Value::List(items) => {
            put_array_len(out, items.len())?;
            for item in items {
                encode_value(item, out)?;
            }
        }
        Value::Map(map) => {
            put_map_len(out, map.len())?;
            for (key, item) in map.iter() {
                put_str(out, key)?;
                encode_value(item, out)?;
            }
        }
    }
    Ok(())
}

/// Reads an array of record maps written by [`encode`] (or by Python's `msgpack`
/// from `to_dict()`s).
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<DataRecord>> {
    let mut reader = Reader::new(bytes, CODEC);
    let count = match reader.u8().map(Marker::from_u8)? {
        Marker::FixArray(length) => usize::from(length),
        Marker::Array16 => be_len(&mut reader, 2)?,
        Marker::Array32 => be_len(&mut reader, 4)?,
        other => return Err(reader.error(format!("expected an array, found {other:?}"))),
    };
    if count > limits.max_records {
        return Err(Error::TooManyRecords {
            limit: limits.max_records,
        });
    }
    // Each record takes at least a dozen bytes, so the input bounds the capacity.
    let mut records = Vec::with_capacity(count.min(reader.remaining() / 16));
    for _ in 0..count {
        records.push(decode_record(&mut reader, limits)?);
    }
    if !reader.is_empty() {
        return Err(reader.error("trailing bytes after the array"));
    }
    Ok(records)
}

fn be_len(reader: &mut Reader<'_>, bytes: usize) -> Result<usize> {
    let raw = reader.take(bytes)?;
    let value = raw.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    usize::try_from(value).map_err(|_| reader.error("length overflows"))
}

fn map_len(reader: &mut Reader<'_>) -> Result<Option<usize>> {
    Ok(match Marker::from_u8(reader.u8()?) {
        Marker::FixMap(length) => Some(usize::from(length)),
        Marker::Map16 => Some(be_len(reader, 2)?),
        Marker::Map32 => Some(be_len(reader, 4)?),
        Marker::Null => None,
        other => return Err(reader.error(format!("expected a map, found {other:?}"))),
    })
}

fn read_str<'a>(reader: &mut Reader<'a>) -> Result<&'a str> {
    let marker = Marker::from_u8(reader.u8()?);
    let length = str_len(reader, marker)?
        .ok_or_else(|| reader.error(format!("expected a string, found {marker:?}")))?;
    reader.str(length)
}

fn str_len(reader: &mut Reader<'_>, marker: Marker) -> Result<Option<usize>> {
    Ok(match marker {
        Marker::FixStr(length) => Some(usize::from(length)),
        Marker::Str8 => Some(be_len(reader, 1)?),
        Marker::Str16 => Some(be_len(reader, 2)?),
        Marker::Str32 => Some(be_len(reader, 4)?),
        _ => None,
    })
}

fn decode_record(reader: &mut Reader<'_>, limits: &DecodeLimits) -> Result<DataRecord> {
    let fields = map_len(reader)?.ok_or_else(|| reader.error("a record is null"))?;
    let mut record_id = None;
    let mut device_id = None;
    let mut timestamp = None;
    let mut data_type = None;
    let mut payload = None;
    let mut metadata = Metadata::new();
    for _ in 0..fields {
        let key = read_str(reader)?;
        match key {
            "record_id" => record_id = Some(CompactString::from(read_str(reader)?)),
            "device_id" => device_id = Some(CompactString::from(read_str(reader)?)),
            "data_type" => data_type = Some(CompactString::from(read_str(reader)?)),
            "timestamp" => {
                let text = read_str(reader)?;
                timestamp = Some(Timestamp::parse(text).map_err(|error| reader.error(error))?);
            }
            "payload" => {
                let length = map_len(reader)?.ok_or_else(|| reader.error("payload is null"))?;
                payload = Some(decode_map(reader, length, limits.max_depth)?);
            }
            "metadata" => {
                if let Some(length) = map_len(reader)? {
                    let mut map = FieldMap::with_capacity(length.min(reader.remaining() / 2));
                    for _ in 0..length {
                        let key = read_str(reader)?;
                        let value = read_str(reader)?;
                        map.insert(key, CompactString::from(value));
                    }
                    metadata = map;
                }
            }
            other => return Err(reader.error(format!("unknown record field `{other}`"))),
        }
    }
    let missing = |name: &str| reader.error(format!("missing record field `{name}`"));
    Ok(DataRecord {
        record_id: record_id.ok_or_else(|| missing("record_id"))?,
        device_id: device_id.ok_or_else(|| missing("device_id"))?,
        timestamp: timestamp.ok_or_else(|| missing("timestamp"))?,
        data_type: data_type.ok_or_else(|| missing("data_type"))?,
        payload: payload.ok_or_else(|| missing("payload"))?,
        metadata,
    })
}

fn decode_map(reader: &mut Reader<'_>, length: usize, depth: usize) -> Result<Payload> {
    let mut map = FieldMap::with_capacity(length.min(reader.remaining() / 2));
    for _ in 0..length {
        let key = read_str(reader)?;
        let value = decode_value(reader, depth)?;
        map.insert(key, value);
    }
    Ok(map)
}

fn decode_value(reader: &mut Reader<'_>, depth: usize) -> Result<Value> {
    let marker = Marker::from_u8(reader.u8()?);
    if let Some(length) = str_len(reader, marker)? {
        return Ok(Value::String(reader.str(length)?.into()));
    }
    let int = |raw: &[u8], signed: bool| -> Value {
        let unsigned = raw.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        if signed {
            // Sign-extend from the encoded width.
            let shift = 64 - 8 * raw.len() as u32;
            Value::Int(((unsigned << shift) as i64) >> shift)
        } else {
            Value::from_u64(unsigned)
        }
    };
    let nested = |reader: &Reader<'_>| {
        depth
            .checked_sub(1)
            .ok_or_else(|| reader.error("nesting deeper than the limit"))
    };
    Ok(match marker {
        Marker::Null => Value::Null,
        Marker::True => Value::Bool(true),
        Marker::False => Value::Bool(false),
        Marker::FixPos(number) => Value::Int(i64::from(number)),
        Marker::FixNeg(number) => Value::Int(i64::from(number)),
        Marker::U8 => int(reader.take(1)?, false),
        Marker::U16 => int(reader.take(2)?, false),
        Marker::U32 => int(reader.take(4)?, false),
        Marker::U64 => int(reader.take(8)?, false),
        Marker::I8 => int(reader.take(1)?, true),
        Marker::I16 => int(reader.take(2)?, true),
        Marker::I32 => int(reader.take(4)?, true),
        Marker::I64 => int(reader.take(8)?, true),
        Marker::F32 => {
            let raw = reader.take(4)?;
            Value::Float(f64::from(f32::from_bits(u32::from_be_bytes([
                raw[0], raw[1], raw[2], raw[3],
            ]))))
        }
        Marker::F64 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(reader.take(8)?);
            Value::Float(f64::from_bits(u64::from_be_bytes(raw)))
        }
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
            let depth = nested(reader)?;
            let length = match marker {
                Marker::FixArray(length) => usize::from(length),
                Marker::Array16 => be_len(reader, 2)?,
                _ => be_len(reader, 4)?,
            };
            let mut items = Vec::with_capacity(length.min(reader.remaining()));
            for _ in 0..length {
                items.push(decode_value(reader, depth)?);
            }
            Value::List(items)
        }
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
            let depth = nested(reader)?;
            let length = match marker {
                Marker::FixMap(length) => usize::from(length),
                Marker::Map16 => be_len(reader, 2)?,
                _ => be_len(reader, 4)?,
            };
            Value::Map(decode_map(reader, length, depth)?)
        }
        other => return Err(reader.error(format!("unsupported MessagePack type {other:?}"))),
    })
}
