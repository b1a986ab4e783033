//! edgepipe's columnar time-series codec (format version 1).
//!
//! Records are grouped by series (device id) and every column is encoded on its
//! own, in series-major order: timestamps by delta-of-delta, record ids implicitly
//! when they are sequence ids, floats that are decimals in disguise (`22.87`) as
//! scaled integers with delta + zigzag + bit-packing, other floats by Gorilla XOR,
//! and every string (device ids, data types, metadata, field names, string
//! values) once, in a sorted, front-coded table. The original record order is
//! restored on decode. Lossless: every record decodes equal, floats bit for bit.
//!
//! The byte layout is specified in `docs/wire-format.md`; this file follows it
//! section by section.

use std::collections::HashMap as StdHashMap;
use std::hash::{BuildHasherDefault, Hasher};

use compact_str::CompactString;

use super::wire::{
    BitReader, BitWriter, Reader, get_packed, put_packed, put_varint, unzigzag, zigzag,
};
use crate::batch::limits::DecodeLimits;
use crate::error::{Error, Result};
use crate::record::{DataRecord, FieldMap, Metadata, Payload, Timestamp, Value};

const CODEC: &str = "columnar";

/// FNV-1a: the encoder's maps hash short strings and small integer lists, where
/// the standard SipHash (built against hash flooding, which an encoder of its own
/// records does not face) costs more than the rest of the encoding.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type HashMap<K, V> = StdHashMap<K, V, BuildHasherDefault<Fnv>>;

/// The format version this build writes (the first byte of every payload).
pub const VERSION: u8 = 1;

/// Largest decimal scale tried for decimals in disguise (digits after the point).
const MAX_SCALE: usize = 15;
const POW10: [f64; MAX_SCALE + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];
/// Integers up to 2^53 convert to f64 and back exactly.
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

// Section tags, written as bytes (see docs/wire-format.md).
const IDS_SEQUENCE: u8 = 0;
const IDS_UUID: u8 = 1;
const IDS_VERBATIM: u8 = 2;
const ORDER_SERIES: u8 = 0;
const ORDER_SEQUENCE: u8 = 1;
const ORDER_EXPLICIT: u8 = 2;
const COLUMN_INT: u8 = 0;
const COLUMN_DECIMAL: u8 = 1;
const COLUMN_FLOAT: u8 = 2;
const COLUMN_MIXED: u8 = 3;
const FLAT_DELTA: u8 = 0;
const FLAT_OFFSET: u8 = 1;

// Value tags in mixed columns and nested values.
const TAG_NULL: u64 = 0;
const TAG_BOOL: u64 = 1;
const TAG_INT: u64 = 2;
const TAG_UINT: u64 = 3;
const TAG_FLOAT: u64 = 4;
const TAG_STRING: u64 = 5;
const TAG_LIST: u64 = 6;
const TAG_MAP: u64 = 7;

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Strings in first-seen order, numbered provisionally; sorted at the end.
#[derive(Default)]
struct Interner<'a> {
    ids: HashMap<&'a str, u32>,
    list: Vec<&'a str>,
}

impl<'a> Interner<'a> {
    fn id(&mut self, text: &'a str) -> u32 {
        let next = self.list.len() as u32;
        *self.ids.entry(text).or_insert_with(|| {
            self.list.push(text);
            next
        })
    }

    /// The final (sorted) number of each provisional id, and the sorted strings.
    fn sorted(&self) -> (Vec<u32>, Vec<&'a str>) {
        let mut order: Vec<u32> = (0..self.list.len() as u32).collect();
        order.sort_unstable_by_key(|&id| self.list[id as usize]);
        let mut remap = vec![0u32; order.len()];
        for (final_id, &provisional) in order.iter().enumerate() {
            remap[provisional as usize] = final_id as u32;
        }
        let sorted = order.iter().map(|&id| self.list[id as usize]).collect();
        (remap, sorted)
    }
}

struct FieldColumn<'a> {
    name: u32,
    values: Vec<&'a Value>,
    /// Values per series, for series that have any.
    lengths: Vec<usize>,
    last_series: usize,
}

/// Parses the canonical text form of a sequence id (see [`crate::record::SequenceId`]).
pub(crate) fn parse_sequence_id(text: &str) -> Option<(&str, u64, u64)> {
    let mut parts = text.rsplitn(3, ':');
    let sequence = number(parts.next()?)?;
    let epoch = number(parts.next()?)?;
    let source = parts.next().filter(|source| !source.is_empty())?;
    Some((source, epoch, sequence))
}

fn number(digits: &str) -> Option<u64> {
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !(digits.len() > 1 && digits.starts_with('0'));
    if canonical { digits.parse().ok() } else { None }
}

/// The 16 bytes of a canonical lowercase hyphenated UUID.
fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut nibble = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        if matches!(index, 8 | 13 | 18 | 23) {
            if byte != b'-' {
                return None;
            }
            continue;
        }
        let value = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            _ => return None,
        };
        out[nibble / 2] |= value << (4 * (1 - nibble % 2));
        nibble += 1;
    }
    Some(out)
}

fn format_uuid(bytes: &[u8]) -> CompactString {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(36);
    for (index, &byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    CompactString::from(text)
}

/// The mantissa of `value` at `scale` decimal digits, when dividing it by
/// `10^scale` gives back exactly `value` (the decoder's computation).
fn mantissa_at(value: f64, scale: usize) -> Option<i64> {
    let scaled = (value * POW10[scale]).round();
    if !scaled.is_finite() || scaled.abs() > EXACT_INT {
        return None;
    }
    // The product may round to a neighbour of the right mantissa.
    // Checked through the integer, as the decoder computes it (so -0.0 fails).
    let scaled = scaled as i64;
    [scaled, scaled + 1, scaled - 1]
        .into_iter()
        .find(|&m| (m as f64 / POW10[scale]).to_bits() == value.to_bits())
}

fn decimal_scale(value: f64) -> Option<usize> {
    (0..=MAX_SCALE).find(|&scale| mantissa_at(value, scale).is_some())
}

/// Appends `records` in the columnar format.
pub fn encode(records: &[DataRecord], out: &mut Vec<u8>) -> Result<()> {
    let mut strings = Interner::default();

    // Series in first-seen order; rows of each in input order.
    let mut series_index: HashMap<&str, usize> = HashMap::default();
    let mut series_device: Vec<u32> = Vec::new();
    let mut series_rows: Vec<Vec<usize>> = Vec::new();
    for (row, record) in records.iter().enumerate() {
        let series = *series_index
            .entry(record.device_id.as_str())
            .or_insert_with(|| {
                series_device.push(strings.id(&record.device_id));
                series_rows.push(Vec::new());
                series_rows.len() - 1
            });
        series_rows[series].push(row);
    }
    let lengths: Vec<usize> = series_rows.iter().map(Vec::len).collect();
    let order: Vec<usize> = series_rows.concat();

    // Record ids: sequence ids, UUIDs, or verbatim.
    let sequence_ids: Option<Vec<(&str, u64, u64)>> = records
        .iter()
        .map(|record| parse_sequence_id(&record.record_id))
        .collect();
    let uuids: Option<Vec<[u8; 16]>> = match sequence_ids {
        Some(_) => None,
        None => records.iter().map(|r| parse_uuid(&r.record_id)).collect(),
    };

    // Per-row dictionary references, series-major.
    let mut data_types = Vec::with_capacity(records.len());
    let mut metasets: Vec<Vec<(u32, u32)>> = Vec::new();
    let mut metaset_ids: HashMap<Vec<(u32, u32)>, usize> = HashMap::default();
    let mut metaset_rows = Vec::with_capacity(records.len());
    let mut shapes: Vec<Vec<usize>> = Vec::new();
    let mut shape_ids: HashMap<Vec<usize>, usize> = HashMap::default();
    let mut shape_rows = Vec::with_capacity(records.len());
    let mut fields: Vec<FieldColumn<'_>> = Vec::new();
    let mut field_ids: HashMap<u32, usize> = HashMap::default();
    let mut timestamps = Vec::with_capacity(records.len());
    let mut key: Vec<(u32, u32)> = Vec::new();
    let mut shape_key: Vec<usize> = Vec::new();
    let mut series = 0;
    let mut series_end = lengths.first().copied().unwrap_or(0);
    for (position, &row) in order.iter().enumerate() {
        while position >= series_end {
            series += 1;
            series_end += lengths[series];
        }
        let record = &records[row];
        timestamps.push(record.timestamp.unix_nanos());
        data_types.push(strings.id(&record.data_type));

        key.clear();
        for (name, value) in record.metadata.iter() {
            key.push((strings.id(name), strings.id(value)));
        }
        // Look up by slice first: cloning the key for every row costs an allocation.
        let metaset = match metaset_ids.get(key.as_slice()) {
            Some(&metaset) => metaset,
            None => {
                metasets.push(key.clone());
                metaset_ids.insert(key.clone(), metasets.len() - 1);
                metasets.len() - 1
            }
        };
        metaset_rows.push(metaset);

        shape_key.clear();
        for (name, value) in record.payload.iter() {
            let name = strings.id(name);
            let next = fields.len();
            let field = *field_ids.entry(name).or_insert_with(|| {
                fields.push(FieldColumn {
                    name,
                    values: Vec::new(),
                    lengths: Vec::new(),
                    last_series: usize::MAX,
                });
                next
            });
            shape_key.push(field);
            let column = &mut fields[field];
            if let Value::String(text) = value {
                strings.id(text);
            }
            column.values.push(value);
            if column.last_series != series {
                column.last_series = series;
                column.lengths.push(0);
            }
            if let Some(last) = column.lengths.last_mut() {
                *last += 1;
            }
        }
        let next = shapes.len();
        let shape = *shape_ids.get(shape_key.as_slice()).unwrap_or(&next);
        if shape == next {
            shapes.push(shape_key.clone());
            shape_ids.insert(shape_key.clone(), next);
        }
        shape_rows.push(shape);
    }
    if let Some(ids) = &sequence_ids {
        for (source, _, _) in ids {
            strings.id(source);
        }
    }

    let (remap, sorted) = strings.sorted();
    let string_id = |provisional: u32| i64::from(remap[provisional as usize]);

    out.push(VERSION);
    put_varint(out, records.len() as u64);
    put_string_table(out, &sorted);

    // Series: device string ids and row counts.
    put_varint(out, lengths.len() as u64);
    put_flat(
        out,
        &series_device
            .iter()
            .map(|&id| string_id(id))
            .collect::<Vec<_>>(),
    );
    put_flat(out, &lengths.iter().map(|&n| n as i64).collect::<Vec<_>>());

    // Timestamps: the common power-of-ten unit, then delta-of-delta.
    let exponent = (0..=9u32)
        .rev()
        .find(|&e| {
            let unit = 10i64.pow(e);
            timestamps.iter().all(|t| t % unit == 0)
        })
        .unwrap_or(0);
    out.push(exponent as u8);
    let unit = 10i64.pow(exponent);
    let scaled: Vec<i64> = timestamps.iter().map(|t| t / unit).collect();
    put_int_column(out, &scaled, &lengths, 2);

    // Record ids, then how to restore the input order.
    let mut order_mode = if order.iter().enumerate().all(|(i, &row)| i == row) {
        ORDER_SERIES
    } else {
        ORDER_EXPLICIT
    };
    if let Some(ids) = &sequence_ids {
        out.push(IDS_SEQUENCE);
        let mut prefixes: Vec<(u32, u64)> = Vec::new();
        let mut prefix_ids: HashMap<(u32, u64), usize> = HashMap::default();
        let mut prefix_rows = Vec::with_capacity(records.len());
        let mut sequences = Vec::with_capacity(records.len());
        for &row in &order {
            let (source, epoch, sequence) = ids[row];
            let prefix = (strings.ids[source], epoch);
            let next = prefixes.len();
            prefix_rows.push(*prefix_ids.entry(prefix).or_insert_with(|| {
                prefixes.push(prefix);
                next
            }) as i64);
            sequences.push(sequence as i64);
        }
        put_varint(out, prefixes.len() as u64);
        for (source, epoch) in &prefixes {
            put_varint(out, string_id(*source) as u64);
            put_varint(out, *epoch);
        }
        put_flat(out, &prefix_rows);
        put_int_column(out, &sequences, &lengths, 2);
        if order_mode != ORDER_SERIES && ids.windows(2).all(|pair| pair[0].2 < pair[1].2) {
            order_mode = ORDER_SEQUENCE;
        }
    } else if let Some(uuids) = &uuids {
        out.push(IDS_UUID);
        for &row in &order {
            out.extend_from_slice(&uuids[row]);
        }
    } else {
        out.push(IDS_VERBATIM);
        for &row in &order {
            let id = records[row].record_id.as_bytes();
            put_varint(out, id.len() as u64);
            out.extend_from_slice(id);
        }
    }
    out.push(order_mode);
    if order_mode == ORDER_EXPLICIT {
        let mut row_series = vec![0u64; records.len()];
        for (series, rows) in series_rows.iter().enumerate() {
            for &row in rows {
                row_series[row] = series as u64;
            }
        }
        put_packed(out, &row_series);
    }

    // Data types, metadata sets, fields and shapes.
    put_flat(
        out,
        &data_types
            .iter()
            .map(|&id| string_id(id))
            .collect::<Vec<_>>(),
    );
    put_varint(out, metasets.len() as u64);
    for set in &metasets {
        put_varint(out, set.len() as u64);
        for &(name, value) in set {
            put_varint(out, string_id(name) as u64);
            put_varint(out, string_id(value) as u64);
        }
    }
    put_flat(
        out,
        &metaset_rows.iter().map(|&m| m as i64).collect::<Vec<_>>(),
    );
    put_varint(out, fields.len() as u64);
    for field in &fields {
        put_varint(out, string_id(field.name) as u64);
    }
    put_varint(out, shapes.len() as u64);
    for shape in &shapes {
        put_varint(out, shape.len() as u64);
        for &field in shape {
            put_varint(out, field as u64);
        }
    }
    put_flat(
        out,
        &shape_rows.iter().map(|&s| s as i64).collect::<Vec<_>>(),
    );

    for field in &fields {
        put_field_column(out, field, &|text: &str| {
            string_id(strings.ids[text]) as u64
        })?;
    }
    Ok(())
}

/// Sorted strings, front-coded: each entry shares a prefix with the one before.
/// An entry that is the previous one with its trailing number incremented
/// (`dev-0041` → `dev-0042`) costs one byte.
fn put_string_table(out: &mut Vec<u8>, strings: &[&str]) {
    put_varint(out, strings.len() as u64);
    let mut previous: &str = "";
    for &text in strings {
        if successor(previous).as_deref() == Some(text) {
            put_varint(out, 1);
        } else {
            let shared = previous
                .bytes()
                .zip(text.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            // Cut at a character boundary so the suffix is valid UTF-8 on its own.
            let shared = (0..=shared)
                .rev()
                .find(|&cut| text.is_char_boundary(cut))
                .unwrap_or(0);
            put_varint(out, (shared as u64) << 1);
            put_varint(out, (text.len() - shared) as u64);
            out.extend_from_slice(&text.as_bytes()[shared..]);
        }
        previous = text;
    }
}

/// `text` with its trailing decimal digits incremented, keeping the width.
fn successor(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let digits = bytes
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return None;
    }
    let mut next = bytes.to_vec();
    for index in (bytes.len() - digits..bytes.len()).rev() {
        if next[index] == b'9' {
            next[index] = b'0';
        } else {
            next[index] += 1;
            return String::from_utf8(next).ok();
        }
    }
    None
}

/// A short integer sequence: either zigzag deltas or offsets from the minimum,
/// whichever packs smaller, behind a mode byte.
fn put_flat(out: &mut Vec<u8>, values: &[i64]) {
    let mut previous = 0i64;
    let deltas: Vec<u64> = values
        .iter()
        .map(|&v| {
            let delta = zigzag(v.wrapping_sub(previous));
            previous = v;
            delta
        })
        .collect();
    let mut by_delta = vec![FLAT_DELTA];
    put_packed(&mut by_delta, &deltas);
    let min = values.iter().copied().min().unwrap_or(0);
    let mut by_offset = vec![FLAT_OFFSET];
    put_varint(&mut by_offset, zigzag(min));
    let offsets: Vec<u64> = values.iter().map(|&v| v.wrapping_sub(min) as u64).collect();
    put_packed(&mut by_offset, &offsets);
    out.extend_from_slice(if by_offset.len() < by_delta.len() {
        &by_offset
    } else {
        &by_delta
    });
}

/// An integer column split in per-series chunks (`lengths`, empty chunks left
/// out): the first value of each chunk (and for `order` 2 its first delta) as
/// flat sequences across series, then each chunk's `order`-th differences,
/// zigzagged and bit-packed.
fn put_int_column(out: &mut Vec<u8>, values: &[i64], lengths: &[usize], order: usize) {
    let mut heads = Vec::new();
    let mut second_heads = Vec::new();
    let mut start = 0;
    for &length in lengths {
        let chunk = &values[start..start + length];
        start += length;
        if let Some(&first) = chunk.first() {
            heads.push(first);
        }
        if order == 2 && chunk.len() >= 2 {
            second_heads.push(chunk[1].wrapping_sub(chunk[0]));
        }
    }
    put_flat(out, &heads);
    if order == 2 {
        put_flat(out, &second_heads);
    }
    let mut body = Vec::new();
    let mut start = 0;
    for &length in lengths {
        let chunk = &values[start..start + length];
        start += length;
        if chunk.len() <= order {
            continue;
        }
        body.clear();
        let mut previous = chunk[order - 1];
        let mut previous_delta = if order == 2 {
            chunk[1].wrapping_sub(chunk[0])
        } else {
            0
        };
        for &value in &chunk[order..] {
            let delta = value.wrapping_sub(previous);
            body.push(zigzag(if order == 2 {
                delta.wrapping_sub(previous_delta)
            } else {
                delta
            }));
            previous = value;
            previous_delta = delta;
        }
        put_packed(out, &body);
    }
}

fn put_field_column(
    out: &mut Vec<u8>,
    field: &FieldColumn<'_>,
    string_id: &dyn Fn(&str) -> u64,
) -> Result<()> {
    let values = &field.values;
    if values.iter().all(|v| matches!(v, Value::Int(_))) {
        out.push(COLUMN_INT);
        let ints: Vec<i64> = values
            .iter()
            .map(|v| if let Value::Int(n) = v { *n } else { 0 })
            .collect();
        put_int_column(out, &ints, &field.lengths, 1);
        return Ok(());
    }
    let floats: Option<Vec<f64>> = values
        .iter()
        .map(|v| {
            if let Value::Float(f) = v {
                Some(*f)
            } else {
                None
            }
        })
        .collect();
    if let Some(floats) = floats {
        let scale = floats
            .iter()
            .try_fold(0, |scale, &f| decimal_scale(f).map(|s| s.max(scale)));
        if let Some(scale) = scale {
            let mantissas: Option<Vec<i64>> =
                floats.iter().map(|&f| mantissa_at(f, scale)).collect();
            if let Some(mantissas) = mantissas {
                out.push(COLUMN_DECIMAL);
                out.push(scale as u8);
                put_int_column(out, &mantissas, &field.lengths, 1);
                return Ok(());
            }
        }
        out.push(COLUMN_FLOAT);
        put_gorilla(out, &floats);
        return Ok(());
    }

    out.push(COLUMN_MIXED);
    let mut tags = Vec::with_capacity(values.len());
    let mut bools = Vec::new();
    let mut ints = Vec::new();
    let mut uints = Vec::new();
    let mut floats = Vec::new();
    let mut strings = Vec::new();
    let mut nested = Vec::new();
    for value in values {
        tags.push(match value {
            Value::Null => TAG_NULL,
            Value::Bool(flag) => {
                bools.push(u64::from(*flag));
                TAG_BOOL
            }
            Value::Int(n) => {
                ints.push(*n);
                TAG_INT
            }
            Value::UInt(n) => {
                uints.push(*n);
                TAG_UINT
            }
            Value::Float(f) => {
                floats.push(*f);
                TAG_FLOAT
            }
            Value::String(text) => {
                strings.push(string_id(text));
                TAG_STRING
            }
            Value::List(_) => {
                put_nested(&mut nested, value);
                TAG_LIST
            }
            Value::Map(_) => {
                put_nested(&mut nested, value);
                TAG_MAP
            }
        });
    }
    put_packed(out, &tags);
    put_packed(out, &bools);
    put_flat(out, &ints);
    for n in uints {
        put_varint(out, n);
    }
    put_gorilla(out, &floats);
    put_packed(out, &strings);
    put_varint(out, nested.len() as u64);
    out.extend_from_slice(&nested);
    Ok(())
}

/// A self-describing value: tag byte, then its content.
fn put_nested(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(TAG_NULL as u8),
        Value::Bool(flag) => {
            out.push(TAG_BOOL as u8);
            out.push(u8::from(*flag));
        }
        Value::Int(n) => {
            out.push(TAG_INT as u8);
            put_varint(out, zigzag(*n));
        }
        Value::UInt(n) => {
            out.push(TAG_UINT as u8);
            put_varint(out, *n);
        }
        Value::Float(f) => {
            out.push(TAG_FLOAT as u8);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::String(text) => {
            out.push(TAG_STRING as u8);
            put_varint(out, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        }
        Value::List(items) => {
            out.push(TAG_LIST as u8);
            put_varint(out, items.len() as u64);
            for item in items {
                put_nested(out, item);
            }
        }
        Value::Map(map) => {
            out.push(TAG_MAP as u8);
            put_varint(out, map.len() as u64);
            for (key, item) in map.iter() {
                put_varint(out, key.len() as u64);
                out.extend_from_slice(key.as_bytes());
                put_nested(out, item);
            }
        }
    }
}

/// Gorilla XOR compression of doubles (Pelkonen et al., VLDB 2015), bit-exact.
fn put_gorilla(out: &mut Vec<u8>, values: &[f64]) {
    let mut bits = BitWriter::default();
    let mut previous = 0u64;
    // (leading zeros, meaningful bits) of the last window written.
    let mut window: Option<(u32, u32)> = None;
    for (index, value) in values.iter().enumerate() {
        let raw = value.to_bits();
        if index == 0 {
            bits.write(raw, 64);
            previous = raw;
            continue;
        }
        let xor = raw ^ previous;
        previous = raw;
        if xor == 0 {
            bits.write(0, 1);
            continue;
        }
        let leading = xor.leading_zeros();
        let trailing = xor.trailing_zeros();
        match window {
            Some((lead, length)) if leading >= lead && trailing >= 64 - lead - length => {
                bits.write(0b01, 2);
                bits.write(xor >> (64 - lead - length), length);
            }
            _ => {
                let length = 64 - leading - trailing;
                bits.write(0b11, 2);
                bits.write(u64::from(leading), 6);
                bits.write(u64::from(length - 1), 6);
                bits.write(xor >> trailing, length);
                window = Some((leading, length));
            }
        }
    }
    let bytes = bits.finish();
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(&bytes);
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Bytes a record costs in its JSON form before its payload, used to hold the
/// expansion of a small columnar batch to the decompressed-size limit.
const RECORD_OVERHEAD: usize = 96;
const FIELD_OVERHEAD: usize = 8;

struct Budget {
    left: usize,
    limit: usize,
}

impl Budget {
    fn spend(&mut self, bytes: usize) -> Result<()> {
        self.left = self
            .left
            .checked_sub(bytes)
            .ok_or(Error::DecompressedTooLarge { limit: self.limit })?;
        Ok(())
    }
}

/// Reads a columnar payload.
///
/// Besides the record limit, the size the records would have as JSON is held
/// to `max_decompressed_bytes`, so a few bytes of columnar data cannot expand
/// into gigabytes of records.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<DataRecord>> {
    let mut reader = Reader::new(bytes, CODEC);
    let version = reader.u8()?;
    if version != VERSION {
        return Err(Error::Unsupported {
            what: "columnar format version",
            name: version.to_string(),
        });
    }
    let records = usize::try_from(reader.varint()?).unwrap_or(usize::MAX);
    if records > limits.max_records {
        return Err(Error::TooManyRecords {
            limit: limits.max_records,
        });
    }
    let mut budget = Budget {
        left: limits.max_decompressed_bytes,
        limit: limits.max_decompressed_bytes,
    };
    let strings = get_string_table(&mut reader, &mut budget)?;
    let string = |reader: &Reader<'_>, id: i64| -> Result<&CompactString> {
        usize::try_from(id)
            .ok()
            .and_then(|id| strings.get(id))
            .ok_or_else(|| reader.error(format!("string id {id} out of range")))
    };

    let series_count = reader.count(records, "series count")?;
    let series_device = get_flat(&mut reader, series_count)?;
    let lengths: Vec<usize> = get_flat(&mut reader, series_count)?
        .into_iter()
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .collect();
    let total = lengths
        .iter()
        .try_fold(0usize, |sum, &n| sum.checked_add(n).filter(|_| n > 0));
    if total != Some(records) {
        return Err(reader.error("series row counts do not add up to the record count"));
    }
    let mut devices = Vec::with_capacity(series_count);
    for &id in &series_device {
        devices.push(string(&reader, id)?.clone());
    }

    let exponent = u32::from(reader.u8()?);
    if exponent > 9 {
        return Err(reader.error(format!("timestamp exponent {exponent} exceeds 9")));
    }
    let unit = 10i64.pow(exponent);
    let timestamps = get_int_column(&mut reader, &lengths, 2)?;

    // Record ids in series-major order, and the sequence numbers when implicit.
    let mut sequences = Vec::new();
    let ids: Vec<CompactString> = match reader.u8()? {
        IDS_SEQUENCE => {
            let count = reader.count(records, "prefix count")?;
            let mut prefixes = Vec::with_capacity(count.min(reader.remaining()));
            for _ in 0..count {
                let source = {
                    let id = reader_i64(&mut reader)?;
                    string(&reader, id)?
                }
                .clone();
                let epoch = reader.varint()?;
                prefixes.push((source, epoch));
            }
            let prefix_rows = get_flat(&mut reader, records)?;
            sequences = get_int_column(&mut reader, &lengths, 2)?;
            let mut ids = Vec::with_capacity(records);
            for (&prefix, &sequence) in prefix_rows.iter().zip(&sequences) {
                let (source, epoch) = usize::try_from(prefix)
                    .ok()
                    .and_then(|p| prefixes.get(p))
                    .ok_or_else(|| reader.error("prefix index out of range"))?;
                let mut id = CompactString::with_capacity(source.len() + 24);
                id.push_str(source);
                id.push(':');
                id.push_str(itoa::Buffer::new().format(*epoch));
                id.push(':');
                id.push_str(itoa::Buffer::new().format(sequence as u64));
                budget.spend(id.len())?;
                ids.push(id);
            }
            ids
        }
        IDS_UUID => {
            let raw = reader.take(
                records
                    .checked_mul(16)
                    .ok_or_else(|| reader.error("too many ids"))?,
            )?;
            raw.chunks_exact(16).map(format_uuid).collect()
        }
        IDS_VERBATIM => {
            let mut ids = Vec::with_capacity(records.min(reader.remaining()));
            for _ in 0..records {
                let length = reader.count(reader.remaining(), "record id length")?;
                ids.push(CompactString::from(reader.str(length)?));
            }
            ids
        }
        other => return Err(reader.error(format!("unknown record id mode {other}"))),
    };

    // The input position (row) of each series-major position.
    let positions: Vec<usize> = match reader.u8()? {
        ORDER_SERIES => (0..records).collect(),
        ORDER_SEQUENCE if !sequences.is_empty() || records == 0 => {
            let mut by_sequence: Vec<usize> = (0..records).collect();
            by_sequence.sort_by_key(|&p| sequences[p] as u64);
            let mut rows = vec![0; records];
            for (row, &position) in by_sequence.iter().enumerate() {
                rows[position] = row;
            }
            rows
        }
        ORDER_EXPLICIT => {
            let mut row_series = Vec::with_capacity(records);
            get_packed(&mut reader, records, &mut row_series)?;
            let mut next: Vec<usize> = Vec::with_capacity(series_count);
            let mut start = 0;
            for &length in &lengths {
                next.push(start);
                start += length;
            }
            let mut rows = vec![usize::MAX; records];
            for (row, &series) in row_series.iter().enumerate() {
                let series = usize::try_from(series)
                    .ok()
                    .filter(|&s| s < series_count)
                    .ok_or_else(|| reader.error("series index out of range"))?;
                let end: usize = next[series];
                if rows.get(end).is_none_or(|&r| r != usize::MAX)
                    || end >= lengths[..=series].iter().sum::<usize>()
                {
                    return Err(reader.error("row order does not match the series counts"));
                }
                rows[end] = row;
                next[series] += 1;
            }
            rows
        }
        other => return Err(reader.error(format!("unknown order mode {other}"))),
    };

    let data_types = get_flat(&mut reader, records)?;
    let metaset_count = reader.count(reader.remaining(), "metadata set count")?;
    let mut metasets: Vec<(Metadata, usize)> = Vec::with_capacity(metaset_count);
    for _ in 0..metaset_count {
        let pairs = reader.count(reader.remaining(), "metadata size")?;
        let mut map = Metadata::with_capacity(pairs);
        let mut size = 0usize;
        for _ in 0..pairs {
            let name = {
                let id = reader_i64(&mut reader)?;
                string(&reader, id)?
            }
            .clone();
            let value = {
                let id = reader_i64(&mut reader)?;
                string(&reader, id)?
            }
            .clone();
            size = size.saturating_add(name.len() + value.len() + 6);
            map.insert(name, value);
        }
        metasets.push((map, size));
    }
    let metaset_rows = get_flat(&mut reader, records)?;

    let field_count = reader.count(reader.remaining(), "field count")?;
    let mut field_names = Vec::with_capacity(field_count);
    for _ in 0..field_count {
        field_names.push(
            {
                let id = reader_i64(&mut reader)?;
                string(&reader, id)?
            }
            .clone(),
        );
    }
    let shape_count = reader.count(reader.remaining(), "shape count")?;
    let mut shapes: Vec<(Vec<usize>, usize)> = Vec::with_capacity(shape_count);
    for _ in 0..shape_count {
        let length = reader.count(field_count, "shape size")?;
        let mut shape = Vec::with_capacity(length);
        let mut size = 0usize;
        for _ in 0..length {
            let field = reader.count(field_count.saturating_sub(1), "field index")?;
            if field_count == 0 || shape.contains(&field) {
                return Err(reader.error("a shape repeats a field or names none"));
            }
            size = size.saturating_add(field_names[field].len() + FIELD_OVERHEAD);
            shape.push(field);
        }
        shapes.push((shape, size));
    }
    let shape_rows = get_flat(&mut reader, records)?;

    // Hold the expansion to the limit before building anything per record.
    let mut series_of_position = Vec::with_capacity(records);
    for (series, &length) in lengths.iter().enumerate() {
        series_of_position.extend(std::iter::repeat_n(series, length));
    }
    let lookup = |list_len: usize, index: i64, what: &str, reader: &Reader<'_>| {
        usize::try_from(index)
            .ok()
            .filter(|&i| i < list_len)
            .ok_or_else(|| reader.error(format!("{what} index {index} out of range")))
    };
    let mut field_lengths: Vec<Vec<usize>> = vec![Vec::new(); field_count];
    let mut field_last_series = vec![usize::MAX; field_count];
    for position in 0..records {
        let metaset = lookup(
            metasets.len(),
            metaset_rows[position],
            "metadata set",
            &reader,
        )?;
        let shape = lookup(shapes.len(), shape_rows[position], "shape", &reader)?;
        let data_type = string(&reader, data_types[position])?;
        let series = series_of_position[position];
        budget.spend(
            RECORD_OVERHEAD
                .saturating_add(ids[position].len())
                .saturating_add(devices[series].len())
                .saturating_add(data_type.len())
                .saturating_add(metasets[metaset].1)
                .saturating_add(shapes[shape].1),
        )?;
        for &field in &shapes[shape].0 {
            if field_last_series[field] != series {
                field_last_series[field] = series;
                field_lengths[field].push(0);
            }
            if let Some(last) = field_lengths[field].last_mut() {
                *last += 1;
            }
        }
    }

    let mut columns = Vec::with_capacity(field_count);
    for lengths in &field_lengths {
        let column = get_field_column(&mut reader, lengths, &strings, &mut budget, limits)?;
        columns.push(column.into_iter());
    }
    if !reader.is_empty() {
        return Err(reader.error("trailing bytes after the last column"));
    }

    let mut decoded: Vec<Option<DataRecord>> = (0..records).map(|_| None).collect();
    for (position, id) in ids.into_iter().enumerate() {
        let series = series_of_position[position];
        let (shape, _) = &shapes[shape_rows[position] as usize];
        let mut payload = Payload::with_capacity(shape.len());
        for &field in shape {
            let value = columns[field]
                .next()
                .ok_or_else(|| reader.error("a column ran out of values"))?;
            payload.insert(field_names[field].clone(), value);
        }
        let nanos = timestamps[position]
            .checked_mul(unit)
            .ok_or_else(|| reader.error("timestamp overflows"))?;
        decoded[positions[position]] = Some(DataRecord {
            record_id: id,
            device_id: devices[series].clone(),
            timestamp: Timestamp::from_unix_nanos(nanos),
            data_type: strings[data_types[position] as usize].clone(),
            payload,
            metadata: metasets[metaset_rows[position] as usize].0.clone(),
        });
    }
    decoded
        .into_iter()
        .map(|record| record.ok_or_else(|| reader.error("row order leaves a gap")))
        .collect()
}

fn reader_i64(reader: &mut Reader<'_>) -> Result<i64> {
    i64::try_from(reader.varint()?).map_err(|_| reader.error("index overflows"))
}

fn get_string_table(reader: &mut Reader<'_>, budget: &mut Budget) -> Result<Vec<CompactString>> {
    // Every entry takes at least one byte.
    let count = reader.count(reader.remaining(), "string count")?;
    let mut strings: Vec<CompactString> = Vec::with_capacity(count);
    let mut previous = String::new();
    for _ in 0..count {
        let header = reader.varint()?;
        let text = if header == 1 {
            successor(&previous)
                .ok_or_else(|| reader.error("no successor of the previous string"))?
        } else if header & 1 == 0 {
            let shared = usize::try_from(header >> 1).unwrap_or(usize::MAX);
            if shared > previous.len() || !previous.is_char_boundary(shared) {
                return Err(reader.error("shared prefix longer than the previous string"));
            }
            let suffix_length = reader.count(reader.remaining(), "string length")?;
            let suffix = reader.str(suffix_length)?;
            let mut text = String::with_capacity(shared + suffix.len());
            text.push_str(&previous[..shared]);
            text.push_str(suffix);
            text
        } else {
            return Err(reader.error("unknown string entry"));
        };
        budget.spend(text.len())?;
        strings.push(CompactString::from(text.as_str()));
        previous = text;
    }
    Ok(strings)
}

fn get_flat(reader: &mut Reader<'_>, count: usize) -> Result<Vec<i64>> {
    let mode = reader.u8()?;
    let mut raw = Vec::with_capacity(count.min(reader.remaining().saturating_mul(128)));
    match mode {
        FLAT_DELTA => {
            get_packed(reader, count, &mut raw)?;
            let mut previous = 0i64;
            Ok(raw
                .into_iter()
                .map(|delta| {
                    previous = previous.wrapping_add(unzigzag(delta));
                    previous
                })
                .collect())
        }
        FLAT_OFFSET => {
            let min = unzigzag(reader.varint()?);
            get_packed(reader, count, &mut raw)?;
            Ok(raw
                .into_iter()
                .map(|offset| min.wrapping_add(offset as i64))
                .collect())
        }
        other => Err(reader.error(format!("unknown integer sequence mode {other}"))),
    }
}

fn get_int_column(reader: &mut Reader<'_>, lengths: &[usize], order: usize) -> Result<Vec<i64>> {
    let chunks = lengths.iter().filter(|&&n| n > 0).count();
    let heads = get_flat(reader, chunks)?;
    let second_heads = if order == 2 {
        get_flat(reader, lengths.iter().filter(|&&n| n >= 2).count())?
    } else {
        Vec::new()
    };
    let total: usize = lengths.iter().sum();
    let mut values = Vec::with_capacity(total);
    let mut heads = heads.into_iter();
    let mut second_heads = second_heads.into_iter();
    let mut body = Vec::new();
    for &length in lengths.iter().filter(|&&n| n > 0) {
        let mut value = heads.next().unwrap_or(0);
        values.push(value);
        let mut delta = 0i64;
        if order == 2 && length >= 2 {
            delta = second_heads.next().unwrap_or(0);
            value = value.wrapping_add(delta);
            values.push(value);
        }
        if length > order {
            body.clear();
            get_packed(reader, length - order, &mut body)?;
            for &encoded in &body {
                let step = unzigzag(encoded);
                if order == 2 {
                    delta = delta.wrapping_add(step);
                } else {
                    delta = step;
                }
                value = value.wrapping_add(delta);
                values.push(value);
            }
        }
    }
    Ok(values)
}

fn get_field_column(
    reader: &mut Reader<'_>,
    lengths: &[usize],
    strings: &[CompactString],
    budget: &mut Budget,
    limits: &DecodeLimits,
) -> Result<Vec<Value>> {
    let count: usize = lengths.iter().sum();
    match reader.u8()? {
        COLUMN_INT => Ok(get_int_column(reader, lengths, 1)?
            .into_iter()
            .map(Value::Int)
            .collect()),
        COLUMN_DECIMAL => {
            let scale = usize::from(reader.u8()?);
            let divisor = *POW10.get(scale).ok_or_else(|| {
                reader.error(format!("decimal scale {scale} exceeds {MAX_SCALE}"))
            })?;
            Ok(get_int_column(reader, lengths, 1)?
                .into_iter()
                .map(|m| Value::Float(m as f64 / divisor))
                .collect())
        }
        COLUMN_FLOAT => Ok(get_gorilla(reader, count)?
            .into_iter()
            .map(Value::Float)
            .collect()),
        COLUMN_MIXED => {
            let mut tags = Vec::with_capacity(count);
            get_packed(reader, count, &mut tags)?;
            let of = |tag: u64| tags.iter().filter(|&&t| t == tag).count();
            let mut bools = Vec::new();
            get_packed(reader, of(TAG_BOOL), &mut bools)?;
            let ints = get_flat(reader, of(TAG_INT))?;
            let mut uints = Vec::new();
            for _ in 0..of(TAG_UINT) {
                uints.push(reader.varint()?);
            }
            let floats = get_gorilla(reader, of(TAG_FLOAT))?;
            let mut string_ids = Vec::new();
            get_packed(reader, of(TAG_STRING), &mut string_ids)?;
            let nested_length = reader.count(reader.remaining(), "nested length")?;
            let mut nested = Reader::new(reader.take(nested_length)?, CODEC);
            let (mut bools, mut ints, mut uints, mut floats, mut string_ids) = (
                bools.into_iter(),
                ints.into_iter(),
                uints.into_iter(),
                floats.into_iter(),
                string_ids.into_iter(),
            );
            let mut values = Vec::with_capacity(count);
            for tag in tags {
                values.push(match tag {
                    TAG_NULL => Value::Null,
                    TAG_BOOL => Value::Bool(bools.next().unwrap_or(0) != 0),
                    TAG_INT => Value::Int(ints.next().unwrap_or(0)),
                    TAG_UINT => Value::UInt(uints.next().unwrap_or(0)),
                    TAG_FLOAT => Value::Float(floats.next().unwrap_or(0.0)),
                    TAG_STRING => {
                        let id = string_ids.next().unwrap_or(0);
                        let text = usize::try_from(id)
                            .ok()
                            .and_then(|id| strings.get(id))
                            .ok_or_else(|| reader.error("string id out of range"))?;
                        budget.spend(text.len())?;
                        Value::String(text.clone())
                    }
                    TAG_LIST | TAG_MAP => get_nested(&mut nested, limits.max_depth)?,
                    other => return Err(reader.error(format!("unknown value tag {other}"))),
                });
            }
            if !nested.is_empty() {
                return Err(nested.error("trailing bytes after nested values"));
            }
            Ok(values)
        }
        other => Err(reader.error(format!("unknown column mode {other}"))),
    }
}

fn get_nested(reader: &mut Reader<'_>, depth: usize) -> Result<Value> {
    let tag = u64::from(reader.u8()?);
    let inner = |reader: &Reader<'_>| {
        depth
            .checked_sub(1)
            .ok_or_else(|| reader.error("nesting deeper than the limit"))
    };
    Ok(match tag {
        TAG_NULL => Value::Null,
        TAG_BOOL => Value::Bool(reader.u8()? != 0),
        TAG_INT => Value::Int(unzigzag(reader.varint()?)),
        TAG_UINT => Value::UInt(reader.varint()?),
        TAG_FLOAT => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(reader.take(8)?);
            Value::Float(f64::from_bits(u64::from_le_bytes(raw)))
        }
        TAG_STRING => {
            let length = reader.count(reader.remaining(), "string length")?;
            Value::String(reader.str(length)?.into())
        }
        TAG_LIST => {
            let depth = inner(reader)?;
            let count = reader.count(reader.remaining(), "list length")?;
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                items.push(get_nested(reader, depth)?);
            }
            Value::List(items)
        }
        TAG_MAP => {
            let depth = inner(reader)?;
            let count = reader.count(reader.remaining(), "map length")?;
            let mut map = FieldMap::with_capacity(count);
            for _ in 0..count {
                let length = reader.count(reader.remaining(), "key length")?;
                let key = reader.str(length)?;
                let value = get_nested(reader, depth)?;
                map.insert(key, value);
            }
            Value::Map(map)
        }
        other => return Err(reader.error(format!("unknown value tag {other}"))),
    })
}

fn get_gorilla(reader: &mut Reader<'_>, count: usize) -> Result<Vec<f64>> {
    let length = reader.count(reader.remaining(), "float stream length")?;
    let bytes = reader.take(length)?;
    // Each value after the first takes at least one bit.
    if count > 0 && count - 1 > bytes.len().saturating_mul(8) {
        return Err(reader.error("float stream shorter than its values"));
    }
    let mut bits = BitReader::new(bytes);
    let short = || reader.error("float stream ended early");
    let mut values = Vec::with_capacity(count);
    let mut previous = 0u64;
    let mut window: Option<(u32, u32)> = None;
    for index in 0..count {
        if index == 0 {
            previous = bits.read(64).ok_or_else(short)?;
            values.push(f64::from_bits(previous));
            continue;
        }
        if bits.read(1).ok_or_else(short)? == 1 {
            let (lead, length) = if bits.read(1).ok_or_else(short)? == 0 {
                window.ok_or_else(|| reader.error("float window reused before it was set"))?
            } else {
                let lead = bits.read(6).ok_or_else(short)? as u32;
                let length = bits.read(6).ok_or_else(short)? as u32 + 1;
                if lead + length > 64 {
                    return Err(reader.error("float window wider than 64 bits"));
                }
                window = Some((lead, length));
                (lead, length)
            };
            let meaningful = bits.read(length).ok_or_else(short)?;
            previous ^= meaningful << (64 - lead - length);
        }
        values.push(f64::from_bits(previous));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_in_disguise_are_found_and_others_are_not() {
        assert_eq!(decimal_scale(22.87), Some(2));
        assert_eq!(decimal_scale(1013.0), Some(0));
        assert_eq!(decimal_scale(0.1 + 0.2), None);
        assert_eq!(decimal_scale(-0.0), None);
        assert_eq!(decimal_scale(f64::NAN), None);
        assert_eq!(decimal_scale(5e-324), None);
        assert_eq!(mantissa_at(50.3, 2), Some(5030));
    }

    #[test]
    fn successors_keep_the_width() {
        assert_eq!(successor("dev-0099").as_deref(), Some("dev-0100"));
        assert_eq!(successor("dev-9"), None);
        assert_eq!(successor("dev"), None);
    }

    #[test]
    fn uuids_round_trip_through_16_bytes() {
        let id = "6f1c1d5e-8f7a-4d2b-9a53-0c3e2b1d4f6a";
        assert_eq!(format_uuid(&parse_uuid(id).unwrap()), id);
        assert!(parse_uuid(&id.to_uppercase()).is_none());
    }

    #[test]
    fn gorilla_is_bit_exact() {
        let values = [
            1.5,
            1.5,
            -0.0,
            0.0,
            f64::NAN,
            5e-324,
            f64::INFINITY,
            22.87,
            22.88,
            f64::from_bits(0x7ff8_dead_beef_0001),
        ];
        let mut out = Vec::new();
        put_gorilla(&mut out, &values);
        let back = get_gorilla(&mut Reader::new(&out, CODEC), values.len()).unwrap();
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&values));
    }

    #[test]
    fn int_columns_round_trip_with_both_orders() {
        let values: Vec<i64> = vec![5, 7, 9, 11, i64::MIN, i64::MAX, 0, 3, 3, 100, -4];
        let lengths = [4, 1, 2, 0, 4];
        for order in [1, 2] {
            let mut out = Vec::new();
            put_int_column(&mut out, &values, &lengths, order);
            let mut reader = Reader::new(&out, CODEC);
            assert_eq!(
                get_int_column(&mut reader, &lengths, order).unwrap(),
                values
            );
            assert!(reader.is_empty());
        }
    }
}
