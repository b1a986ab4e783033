//! The seed's batch body byte for byte: what Python's
//! `json.dumps([r.to_dict() for r in records])` writes for edgepipe's records.
//!
//! Python's defaults differ from edgepipe's compact JSON in three ways, all
//! reproduced here: separators `", "` and `": "`; `ensure_ascii`, so every
//! character outside `' '..='~'` is a `\uXXXX` escape (lowercase hex, UTF-16
//! surrogate pairs above U+FFFF); and `repr` for floats, which keeps the same
//! shortest digits as edgepipe but switches to exponent form below `1e-4` and
//! from `1e16` on, with a signed two-digit exponent (`1e+16`, `1e-07`).
//!
//! The timestamp is `to_dict()`'s, edgepipe's ISO-8601 text (see
//! [`Timestamp::write_iso8601`](crate::record::Timestamp::write_iso8601)).
//! Python writes NaN and infinities as the non-JSON tokens `NaN` and
//! `Infinity`; edgepipe refuses them here as in all its JSON, so a body that
//! other JSON readers reject is never sent.
//!
//! Reading is the JSON codec's: it is the same JSON.

use crate::error::{Error, Result};
use crate::record::{DataRecord, FieldMap, Value};

/// Appends the records as one JSON array, formatted as Python's `json.dumps`.
pub fn encode(records: &[DataRecord], out: &mut Vec<u8>) -> Result<()> {
    encode_array(records, out, |_| None)
}

/// As [`encode`], with `timestamps[i]` written as record `i`'s timestamp text
/// instead of edgepipe's ISO-8601 form.
///
/// The seed's `to_dict()` writes `datetime.isoformat()`, whose form depends on
/// the `datetime` object, not only on the instant: no `Z` for the naive UTC times
/// of `datetime.utcnow()`, `+00:00` for aware ones, six fraction digits or none.
/// A [`Timestamp`](crate::record::Timestamp) keeps the instant only, so the Python
/// bindings pass each record's own `isoformat()` text here to write the seed's
/// body byte for byte. The texts are written as JSON strings, escaped as any
/// other string. Refuses a `timestamps` of another length than `records`.
pub fn encode_with_timestamps<S: AsRef<str>>(
    records: &[DataRecord],
    timestamps: &[S],
    out: &mut Vec<u8>,
) -> Result<()> {
    if timestamps.len() != records.len() {
        return Err(Error::InvalidBatchOption {
            option: "timestamps",
            reason: format!(
                "{} timestamp texts for {} records",
                timestamps.len(),
                records.len()
            ),
        });
    }
    encode_array(records, out, |index| Some(timestamps[index].as_ref()))
}

fn encode_array<'a>(
    records: &[DataRecord],
    out: &mut Vec<u8>,
    timestamp_text: impl Fn(usize) -> Option<&'a str>,
) -> Result<()> {
    let start = out.len();
    out.push(b'[');
    for (index, record) in records.iter().enumerate() {
        if index > 0 {
            out.extend_from_slice(b", ");
        }
        if let Err(error) = write_record(record, timestamp_text(index), out) {
            out.truncate(start);
            return Err(error);
        }
    }
    out.push(b']');
    Ok(())
}

/// Bytes that `record` adds to an array holding `count_before` records.
pub(crate) fn record_size(
    record: &DataRecord,
    scratch: &mut Vec<u8>,
    count_before: usize,
) -> Result<usize> {
    scratch.clear();
    write_record(record, None, scratch)?;
    Ok(scratch.len() + if count_before > 0 { 2 } else { 0 })
}

/// Bytes of the array's framing: `[` and `]`.
pub(crate) const FRAMING: usize = 2;

/// Writes one record; `timestamp_text`, when given, replaces the timestamp's ISO-8601 form.
fn write_record(
    record: &DataRecord,
    timestamp_text: Option<&str>,
    out: &mut Vec<u8>,
) -> Result<()> {
    out.extend_from_slice(b"{\"record_id\": ");
    write_string(out, &record.record_id);
    out.extend_from_slice(b", \"device_id\": ");
    write_string(out, &record.device_id);
    out.extend_from_slice(b", \"timestamp\": ");
    match timestamp_text {
        Some(text) => write_string(out, text),
        None => {
            let mut timestamp = String::with_capacity(32);
            record.timestamp.write_iso8601(&mut timestamp);
            write_string(out, &timestamp);
        }
    }
    out.extend_from_slice(b", \"data_type\": ");
    write_string(out, &record.data_type);
    out.extend_from_slice(b", \"payload\": ");
    let mut path = Vec::new();
    write_map(out, &record.payload, &mut path).map_err(|value| Error::NonFiniteFloat {
        // As the compact writer names it: `readings[1].x`.
        field: path.iter().fold(String::new(), |mut field, segment| {
            if !field.is_empty() && !segment.starts_with('[') {
                field.push('.');
            }
            field.push_str(segment);
            field
        }),
        value,
    })?;
    out.extend_from_slice(b", \"metadata\": {");
    for (index, (key, value)) in record.metadata.iter().enumerate() {
        if index > 0 {
            out.extend_from_slice(b", ");
        }
        write_string(out, key);
        out.extend_from_slice(b": ");
        write_string(out, value);
    }
    out.extend_from_slice(b"}}");
    Ok(())
}

/// Writes a map; on a non-finite float returns it, with `path` leading to it.
fn write_map(out: &mut Vec<u8>, map: &FieldMap<Value>, path: &mut Vec<String>) -> Result<(), f64> {
    out.push(b'{');
    for (index, (key, value)) in map.iter().enumerate() {
        if index > 0 {
            out.extend_from_slice(b", ");
        }
        write_string(out, key);
        out.extend_from_slice(b": ");
        path.push(key.to_owned());
        write_value(out, value, path)?;
        path.pop();
    }
    out.push(b'}');
    Ok(())
}

fn write_value(out: &mut Vec<u8>, value: &Value, path: &mut Vec<String>) -> Result<(), f64> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(number) => out.extend_from_slice(itoa::Buffer::new().format(*number).as_bytes()),
        Value::UInt(number) => {
            out.extend_from_slice(itoa::Buffer::new().format(*number).as_bytes())
        }
        Value::Float(number) if number.is_finite() => write_float(out, *number),
        Value::Float(number) => return Err(*number),
        Value::String(text) => write_string(out, text),
        Value::List(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.extend_from_slice(b", ");
                }
                path.push(format!("[{index}]"));
                write_value(out, item, path)?;
                path.pop();
            }
            out.push(b']');
        }
        Value::Map(map) => write_map(out, map, path)?,
    }
    Ok(())
}

/// A string literal as `json.dumps` writes it with `ensure_ascii=True`.
fn write_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for character in text.chars() {
        match character {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            ' '..='~' => out.push(character as u8),
            other => {
                let mut units = [0u16; 2];
                for &unit in other.encode_utf16(&mut units).iter() {
                    out.extend_from_slice(b"\\u");
                    for shift in [12, 8, 4, 0] {
                        out.push(HEX[usize::from((unit >> shift) & 0xf)]);
                    }
                }
            }
        }
    }
    out.push(b'"');
}

/// A finite float as Python's `repr`: the shortest digits that read back to the
/// same double (ryu finds the same digits as Python's dtoa), laid out as
/// `float_repr_style = 'short'` does.
fn write_float(out: &mut Vec<u8>, value: f64) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value);
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // value = 0.DIGITS × 10^point, with DIGITS free of leading and trailing zeros.
    let all = whole.bytes().chain(fraction.bytes());
    let leading = all.clone().take_while(|&d| d == b'0').count();
    let mut digits: Vec<u8> = all.skip(leading).collect();
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    if negative {
        out.push(b'-');
    }
    if digits.is_empty() {
        out.extend_from_slice(b"0.0");
        return;
    }
    let point = whole.len() as i32 - leading as i32 + exponent;
    let count = digits.len() as i32;
    if point <= -4 || point > 16 {
        out.push(digits[0]);
        if count > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        let shown = point - 1;
        out.push(b'e');
        out.push(if shown < 0 { b'-' } else { b'+' });
        let magnitude = shown.unsigned_abs();
        if magnitude < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(itoa::Buffer::new().format(magnitude).as_bytes());
    } else if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-point) as usize));
        out.extend_from_slice(&digits);
    } else if point >= count {
        out.extend_from_slice(&digits);
        out.extend(std::iter::repeat_n(b'0', (point - count) as usize));
        out.extend_from_slice(b".0");
    } else {
        out.extend_from_slice(&digits[..point as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[point as usize..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(value: f64) -> String {
        let mut out = Vec::new();
        write_float(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_read_as_python_repr_writes_them() {
        // Each pair checked against CPython 3.11's repr.
        for (value, python) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (22.87, "22.87"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e-7, "1e-07"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-2.5e100, "-2.5e+100"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(float(value), python, "{value:?}");
        }
    }

    #[test]
    fn given_timestamp_texts_replace_the_iso8601_form() {
        let mut record = DataRecord::new("edge-001", "sensors", Default::default());
        record.record_id = "r1".into();
        let mut out = Vec::new();
        encode_with_timestamps(
            &[record.clone(), record.clone()],
            &["2026-01-01T00:00:00.123456", "2026-01-01T00:00:00+00:00"],
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(r#""timestamp": "2026-01-01T00:00:00.123456", "data_type""#),
            "{text}"
        );
        assert!(
            text.contains(r#""timestamp": "2026-01-01T00:00:00+00:00", "data_type""#),
            "{text}"
        );

        let mut out = b"kept".to_vec();
        let refused = encode_with_timestamps(&[record], &["a", "b"], &mut out);
        assert!(matches!(
            refused,
            Err(Error::InvalidBatchOption {
                option: "timestamps",
                ..
            })
        ));
        assert_eq!(out, b"kept");
    }

    #[test]
    fn strings_are_escaped_to_ascii() {
        let mut out = Vec::new();
        write_string(&mut out, "a\"b\\c\n\u{1}\u{7f}é漢🙂~");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\"b\\c\n\u0001\u007f\u00e9\u6f22\ud83d\ude42~""#
        );
    }
}
