//! edgepipe's columnar time-series codec (format version 2; version 1 is still read).
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
    BitReader, BitWriter, Reader, bit_width, get_packed, packed_size, put_packed, put_packed_iter,
    put_varint, unzigzag, zigzag,
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
/// Version 1 payloads are still read.
pub const VERSION: u8 = 2;

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
/// Version 2: the first value as a varint, then the deltas.
const FLAT_FIRST_DELTA: u8 = 2;
/// Version 2: the first value and the first delta as varints, then the deltas' deltas.
const FLAT_FIRST_DELTA2: u8 = 3;
/// String table entry: successors of the previous string (in version 1 one
/// successor; in version 2 followed by a varint count).
const STRING_SUCCESSORS: u64 = 1;

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
struct Interner<'a> {
    ids: HashMap<&'a str, u32>,
    list: Vec<&'a str>,
}

impl<'a> Interner<'a> {
    fn with_capacity(capacity: usize) -> Self {
        Interner {
            ids: HashMap::with_capacity_and_hasher(capacity, Default::default()),
            list: Vec::with_capacity(capacity),
        }
    }

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
        order.sort_unstable_by(|&a, &b| self.list[a as usize].cmp(self.list[b as usize]));
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

/// Parses the canonical text form of a sequence id (see [`crate::record::SequenceId`]):
/// `source:epoch:sequence`, the numbers in decimal without leading zeros.
pub(crate) fn parse_sequence_id(text: &str) -> Option<(&str, u64, u64)> {
    // By hand from the end: this runs for every record twice per batch (the
    // codec and the envelope's sequence range), where `rsplitn` and `parse`
    // showed up in profiles.
    let bytes = text.as_bytes();
    let (sequence, rest) = trailing_number(bytes)?;
    let (epoch, rest) = trailing_number(rest.strip_suffix(b":")?)?;
    let source = rest.strip_suffix(b":")?;
    if source.is_empty() {
        return None;
    }
    // `source` ends just before an ASCII ':', so it is a valid prefix of `text`.
    Some((&text[..source.len()], epoch, sequence))
}

/// The canonical decimal number at the end of `bytes` (no leading zeros, fits a
/// u64), and the bytes before it.
fn trailing_number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let start = bytes.len() - digits;
    let number = &bytes[start..];
    if digits == 0 || digits > 20 || (digits > 1 && number[0] == b'0') {
        return None;
    }
    let mut value = 0u64;
    for &digit in number {
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    Some((value, &bytes[..start]))
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

/// The column as decimals: the largest of the values' smallest exact scales, and
/// every mantissa at that scale; `None` when some value has no exact scale or
/// is not exact at the common one.
fn decimal_mantissas(floats: &[f64]) -> Option<(usize, Vec<i64>)> {
    let mut scale = 0;
    let mut mantissas = Vec::with_capacity(floats.len());
    let mut all_exact = true;
    for &value in floats {
        // Exact at the scale so far means its own smallest scale is no larger,
        // so the common scale stays: only the others need the search.
        match mantissa_at(value, scale) {
            Some(mantissa) => mantissas.push(mantissa),
            None => {
                scale = scale.max(decimal_scale(value)?);
                all_exact = false;
                mantissas.push(0);
            }
        }
    }
    if !all_exact {
        mantissas.clear();
        for &value in floats {
            mantissas.push(mantissa_at(value, scale)?);
        }
    }
    Some((scale, mantissas))
}

/// The largest `e` ≤ 9 such that every timestamp is a multiple of `10^e`.
fn timestamp_exponent(timestamps: &[i64]) -> u32 {
    let mut exponent = 9u32;
    for &timestamp in timestamps {
        // Readings share their resolution, so after the first the test is one
        // division per timestamp.
        while exponent > 0 && timestamp % 10i64.pow(exponent) != 0 {
            exponent -= 1;
        }
        if exponent == 0 {
            break;
        }
    }
    exponent
}

/// Appends `records` in the columnar format (version [`VERSION`]).
pub fn encode(records: &[DataRecord], out: &mut Vec<u8>) -> Result<()> {
    let count = records.len();
    // Devices, data types, metadata, field names and some values: most batches
    // hold far fewer distinct strings than records.
    let mut strings = Interner::with_capacity(count.min(1024) + 16);

    // Series in first-seen order, and each row's series.
    let mut series_index: HashMap<&str, u32> =
        HashMap::with_capacity_and_hasher(count.min(1024), Default::default());
    let mut series_device: Vec<u32> = Vec::new();
    let mut lengths: Vec<usize> = Vec::new();
    let mut row_series: Vec<u32> = Vec::with_capacity(count);
    for record in records {
        let next = lengths.len() as u32;
        let series = *series_index
            .entry(record.device_id.as_str())
            .or_insert_with(|| {
                series_device.push(strings.id(&record.device_id));
                lengths.push(0);
                next
            });
        lengths[series as usize] += 1;
        row_series.push(series);
    }
    // Series-major order by a counting sort: the rows of series 0 in input
    // order, then those of series 1, and so on.
    let mut next_position: Vec<usize> = Vec::with_capacity(lengths.len());
    let mut start = 0;
    for &length in &lengths {
        next_position.push(start);
        start += length;
    }
    let mut order = vec![0usize; count];
    for (row, &series) in row_series.iter().enumerate() {
        let slot = &mut next_position[series as usize];
        order[*slot] = row;
        *slot += 1;
    }

    // Record ids: sequence ids, UUIDs, or verbatim.
    let sequence_ids: Option<Vec<(&str, u64, u64)>> = records
        .iter()
        .map(|record| parse_sequence_id(&record.record_id))
        .collect();
    let uuids: Option<Vec<[u8; 16]>> = match sequence_ids {
        Some(_) => None,
        None => records.iter().map(|r| parse_uuid(&r.record_id)).collect(),
    };
    if let Some(ids) = &sequence_ids {
        let mut previous = None;
        for &(source, _, _) in ids {
            if previous != Some(source) {
                strings.id(source);
                previous = Some(source);
            }
        }
    }

    // Per-row dictionary references, series-major.
    let mut data_types = Vec::with_capacity(count);
    let mut metasets: Vec<Vec<(u32, u32)>> = Vec::new();
    let mut metaset_ids: HashMap<Vec<(u32, u32)>, usize> = HashMap::default();
    let mut metaset_rows = Vec::with_capacity(count);
    let mut shapes: Vec<Vec<usize>> = Vec::new();
    let mut shape_ids: HashMap<Vec<usize>, usize> = HashMap::default();
    let mut shape_rows = Vec::with_capacity(count);
    let mut fields: Vec<FieldColumn<'_>> = Vec::new();
    let mut field_ids: HashMap<u32, usize> = HashMap::default();
    let mut timestamps = Vec::with_capacity(count);
    let mut key: Vec<(u32, u32)> = Vec::new();
    let mut shape_key: Vec<usize> = Vec::new();
    let mut previous: Option<&DataRecord> = None;
    let (mut data_type, mut metaset, mut shape) = (0u32, 0usize, 0usize);
    let mut series = 0;
    let mut series_end = lengths.first().copied().unwrap_or(0);
    for (position, &row) in order.iter().enumerate() {
        while position >= series_end {
            series += 1;
            series_end += lengths[series];
        }
        let record = &records[row];
        timestamps.push(record.timestamp.unix_nanos());

        // Neighbouring rows nearly always share their data type, metadata and
        // payload keys: compare with the previous row before hashing anything.
        if previous.is_none_or(|p| p.data_type != record.data_type) {
            data_type = strings.id(&record.data_type);
        }
        data_types.push(data_type);

        if previous.is_none_or(|p| !p.metadata.iter().eq(record.metadata.iter())) {
            key.clear();
            for (name, value) in record.metadata.iter() {
                key.push((strings.id(name), strings.id(value)));
            }
            metaset = match metaset_ids.get(key.as_slice()) {
                Some(&known) => known,
                None => {
                    metasets.push(key.clone());
                    metaset_ids.insert(key.clone(), metasets.len() - 1);
                    metasets.len() - 1
                }
            };
        }
        metaset_rows.push(metaset);

        if previous.is_none_or(|p| !p.payload.keys().eq(record.payload.keys())) {
            shape_key.clear();
            for name in record.payload.keys() {
                let name = strings.id(name);
                let next = fields.len();
                let field = *field_ids.entry(name).or_insert_with(|| {
                    fields.push(FieldColumn {
                        name,
                        // Not `count`: a batch of sparse payloads has many fields.
                        values: Vec::new(),
                        lengths: Vec::new(),
                        last_series: usize::MAX,
                    });
                    next
                });
                shape_key.push(field);
            }
            shape = match shape_ids.get(shape_key.as_slice()) {
                Some(&known) => known,
                None => {
                    shapes.push(shape_key.clone());
                    shape_ids.insert(shape_key.clone(), shapes.len() - 1);
                    shapes.len() - 1
                }
            };
        }
        shape_rows.push(shape);
        for (&field, (_, value)) in shapes[shape].iter().zip(record.payload.iter()) {
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
        previous = Some(record);
    }

    let (remap, sorted) = strings.sorted();
    let string_id = |provisional: u32| i64::from(remap[provisional as usize]);

    out.push(VERSION);
    put_varint(out, count as u64);
    put_string_table(out, &sorted);

    // Series: device string ids and row counts.
    put_varint(out, lengths.len() as u64);
    let mut integers: Vec<i64> = series_device.iter().map(|&id| string_id(id)).collect();
    put_flat(out, &integers);
    integers.clear();
    integers.extend(lengths.iter().map(|&n| n as i64));
    put_flat(out, &integers);

    // Timestamps: the common power-of-ten unit, then delta-of-delta.
    let exponent = timestamp_exponent(&timestamps);
    out.push(exponent as u8);
    if exponent > 0 {
        let unit = 10i64.pow(exponent);
        for timestamp in &mut timestamps {
            *timestamp /= unit;
        }
    }
    put_int_column(out, &timestamps, &lengths, 2);

    // Record ids, then how to restore the input order.
    let mut order_mode = if order.iter().enumerate().all(|(i, &row)| i == row) {
        ORDER_SERIES
    } else {
        ORDER_EXPLICIT
    };
    if let Some(ids) = &sequence_ids {
        out.push(IDS_SEQUENCE);
        let mut prefixes: Vec<(&str, u64)> = Vec::new();
        let mut prefix_rows = Vec::with_capacity(count);
        let mut sequences = Vec::with_capacity(count);
        let mut last_prefix = None;
        for &row in &order {
            let (source, epoch, sequence) = ids[row];
            // A batch holds one source and epoch, or very few: a linear search
            // from the last one found beats hashing.
            let index = match last_prefix {
                Some(index) if prefixes[index] == (source, epoch) => index,
                _ => match prefixes.iter().position(|&p| p == (source, epoch)) {
                    Some(index) => index,
                    None => {
                        prefixes.push((source, epoch));
                        prefixes.len() - 1
                    }
                },
            };
            last_prefix = Some(index);
            prefix_rows.push(index as i64);
            sequences.push(sequence as i64);
        }
        put_varint(out, prefixes.len() as u64);
        for (source, epoch) in &prefixes {
            put_varint(out, string_id(strings.ids[source]) as u64);
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
        put_packed_iter(out, row_series.iter().map(|&series| u64::from(series)));
    }

    // Data types, metadata sets, fields and shapes.
    integers.clear();
    integers.extend(data_types.iter().map(|&id| string_id(id)));
    put_flat(out, &integers);
    put_varint(out, metasets.len() as u64);
    for set in &metasets {
        put_varint(out, set.len() as u64);
        for &(name, value) in set {
            put_varint(out, string_id(name) as u64);
            put_varint(out, string_id(value) as u64);
        }
    }
    integers.clear();
    integers.extend(metaset_rows.iter().map(|&m| m as i64));
    put_flat(out, &integers);
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
    integers.clear();
    integers.extend(shape_rows.iter().map(|&s| s as i64));
    put_flat(out, &integers);

    for field in &fields {
        put_field_column(out, field, &|text: &str| {
            string_id(strings.ids[text]) as u64
        })?;
    }
    Ok(())
}

/// Sorted strings, front-coded: each entry shares a prefix with the one before.
/// A run of entries that each are the previous one with its trailing number
/// incremented (`dev-0041`, `dev-0042`, ...) costs two bytes, whatever its length.
fn put_string_table(out: &mut Vec<u8>, strings: &[&str]) {
    put_varint(out, strings.len() as u64);
    let mut index = 0;
    let mut previous: &str = "";
    while index < strings.len() {
        let run = strings[index..]
            .iter()
            .scan(previous, |before, &text| {
                let next = is_successor(before, text);
                *before = text;
                Some(next)
            })
            .take_while(|&next| next)
            .count();
        if run > 0 {
            put_varint(out, STRING_SUCCESSORS);
            put_varint(out, run as u64);
            index += run;
            previous = strings[index - 1];
            continue;
        }
        let text = strings[index];
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
        previous = text;
        index += 1;
    }
}

/// True when `next` is [`successor`]`(previous)`, without building it.
fn is_successor(previous: &str, next: &str) -> bool {
    let (before, after) = (previous.as_bytes(), next.as_bytes());
    let digits = before
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || before.len() != after.len() {
        return false;
    }
    let split = before.len() - digits;
    if before[..split] != after[..split] {
        return false;
    }
    let mut carry = true;
    for index in (split..before.len()).rev() {
        let expected = match (carry, before[index]) {
            (true, b'9') => b'0',
            (true, digit) => {
                carry = false;
                digit + 1
            }
            (false, digit) => digit,
        };
        if after[index] != expected {
            return false;
        }
    }
    // All nines have no successor of the same width.
    !carry
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

fn varint_size(value: u64) -> usize {
    (bit_width(value).max(1) as usize).div_ceil(7)
}

fn deltas(values: &[i64]) -> impl Iterator<Item = u64> + '_ {
    values
        .windows(2)
        .map(|pair| zigzag(pair[1].wrapping_sub(pair[0])))
}

fn second_deltas(values: &[i64]) -> impl Iterator<Item = u64> + '_ {
    values.windows(3).map(|triple| {
        zigzag(
            triple[2]
                .wrapping_sub(triple[1])
                .wrapping_sub(triple[1].wrapping_sub(triple[0])),
        )
    })
}

/// A short integer sequence in whichever mode packs smallest, behind a mode
/// byte: zigzag deltas from 0, offsets from the minimum, or (version 2) the
/// first value then its deltas, or the first value and delta then the deltas'
/// deltas. Sizes are computed before anything is written.
fn put_flat(out: &mut Vec<u8>, values: &[i64]) {
    let first = values.first().map_or(0, |&v| zigzag(v));
    let min = values.iter().copied().min().unwrap_or(0);
    let offsets = || values.iter().map(move |&v| v.wrapping_sub(min) as u64);
    let mut best = (
        1 + packed_size(
            values
                .first()
                .map(|_| first)
                .into_iter()
                .chain(deltas(values)),
        ),
        FLAT_DELTA,
    );
    let mut consider = |size: usize, mode: u8| {
        if size < best.0 {
            best = (size, mode);
        }
    };
    consider(
        1 + varint_size(zigzag(min)) + packed_size(offsets()),
        FLAT_OFFSET,
    );
    if !values.is_empty() {
        consider(
            1 + varint_size(first) + packed_size(deltas(values)),
            FLAT_FIRST_DELTA,
        );
    }
    let first_delta = match values {
        [a, b, ..] => Some(zigzag(b.wrapping_sub(*a))),
        _ => None,
    };
    if let Some(first_delta) = first_delta {
        consider(
            1 + varint_size(first) + varint_size(first_delta) + packed_size(second_deltas(values)),
            FLAT_FIRST_DELTA2,
        );
    }
    out.push(best.1);
    match best.1 {
        FLAT_DELTA => put_packed_iter(
            out,
            values
                .first()
                .map(|_| first)
                .into_iter()
                .chain(deltas(values)),
        ),
        FLAT_OFFSET => {
            put_varint(out, zigzag(min));
            put_packed_iter(out, offsets());
        }
        FLAT_FIRST_DELTA => {
            put_varint(out, first);
            put_packed_iter(out, deltas(values));
        }
        _ => {
            put_varint(out, first);
            put_varint(out, first_delta.unwrap_or(0));
            put_packed_iter(out, second_deltas(values));
        }
    }
}

/// An integer column split in per-series chunks (`lengths`, empty chunks left
/// out): the first value of each chunk (and for `order` 2 its first delta) as
/// flat sequences across series, then each chunk's `order`-th differences,
/// zigzagged and bit-packed.
fn put_int_column(out: &mut Vec<u8>, values: &[i64], lengths: &[usize], order: usize) {
    let mut heads = Vec::with_capacity(lengths.len());
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
    let mut start = 0;
    for &length in lengths {
        let chunk = &values[start..start + length];
        start += length;
        if chunk.len() <= order {
            continue;
        }
        if order == 2 {
            put_packed_iter(out, second_deltas(chunk));
        } else {
            put_packed_iter(out, deltas(chunk));
        }
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
        if let Some((scale, mantissas)) = decimal_mantissas(&floats) {
            out.push(COLUMN_DECIMAL);
            out.push(scale as u8);
            put_int_column(out, &mantissas, &field.lengths, 1);
            return Ok(());
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
/// Bytes a dictionary string costs besides its text (its JSON quotes), so a
/// version 2 run of successors, a few bytes on the wire, cannot list more
/// strings than the limit allows.
const STRING_OVERHEAD: usize = 2;

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
    if !(1..=VERSION).contains(&version) {
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
    let strings = get_string_table(&mut reader, &mut budget, version)?;
    let string = |reader: &Reader<'_>, id: i64| -> Result<&CompactString> {
        usize::try_from(id)
            .ok()
            .and_then(|id| strings.get(id))
            .ok_or_else(|| reader.error(format!("string id {id} out of range")))
    };

    let series_count = reader.count(records, "series count")?;
    let series_device = get_flat(&mut reader, series_count, version)?;
    let lengths: Vec<usize> = get_flat(&mut reader, series_count, version)?
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
    let timestamps = get_int_column(&mut reader, &lengths, 2, version)?;

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
            let prefix_rows = get_flat(&mut reader, records, version)?;
            sequences = get_int_column(&mut reader, &lengths, 2, version)?;
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

    let data_types = get_flat(&mut reader, records, version)?;
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
    let metaset_rows = get_flat(&mut reader, records, version)?;

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
    let shape_rows = get_flat(&mut reader, records, version)?;

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
        let column =
            get_field_column(&mut reader, lengths, &strings, &mut budget, limits, version)?;
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

fn get_string_table(
    reader: &mut Reader<'_>,
    budget: &mut Budget,
    version: u8,
) -> Result<Vec<CompactString>> {
    // Version 1 entries take at least a byte each; a version 2 run of
    // successors does not, but every string spends its length plus quotes from
    // the budget, which bounds the count.
    let max = if version == 1 {
        reader.remaining()
    } else {
        budget.left / STRING_OVERHEAD
    };
    let count = reader.count(max, "string count")?;
    let mut strings: Vec<CompactString> = Vec::with_capacity(count.min(reader.remaining()));
    let mut previous = String::new();
    while strings.len() < count {
        let header = reader.varint()?;
        let repeat = if header == STRING_SUCCESSORS && version >= 2 {
            reader.count(count - strings.len(), "successor run")?
        } else {
            1
        };
        for _ in 0..repeat {
            let text = if header == STRING_SUCCESSORS {
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
            if version >= 2 {
                budget.spend(text.len() + STRING_OVERHEAD)?;
            } else {
                budget.spend(text.len())?;
            }
            strings.push(CompactString::from(text.as_str()));
            previous = text;
        }
        if repeat == 0 {
            return Err(reader.error("empty successor run"));
        }
    }
    Ok(strings)
}

fn get_flat(reader: &mut Reader<'_>, count: usize, version: u8) -> Result<Vec<i64>> {
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
        FLAT_FIRST_DELTA if version >= 2 && count >= 1 => {
            let mut previous = unzigzag(reader.varint()?);
            get_packed(reader, count - 1, &mut raw)?;
            let mut values = Vec::with_capacity(count);
            values.push(previous);
            for &delta in &raw {
                previous = previous.wrapping_add(unzigzag(delta));
                values.push(previous);
            }
            Ok(values)
        }
        FLAT_FIRST_DELTA2 if version >= 2 && count >= 2 => {
            let mut previous = unzigzag(reader.varint()?);
            let mut delta = unzigzag(reader.varint()?);
            get_packed(reader, count - 2, &mut raw)?;
            let mut values = Vec::with_capacity(count);
            values.push(previous);
            previous = previous.wrapping_add(delta);
            values.push(previous);
            for &step in &raw {
                delta = delta.wrapping_add(unzigzag(step));
                previous = previous.wrapping_add(delta);
                values.push(previous);
            }
            Ok(values)
        }
        other => Err(reader.error(format!("unknown integer sequence mode {other}"))),
    }
}

fn get_int_column(
    reader: &mut Reader<'_>,
    lengths: &[usize],
    order: usize,
    version: u8,
) -> Result<Vec<i64>> {
    let chunks = lengths.iter().filter(|&&n| n > 0).count();
    let heads = get_flat(reader, chunks, version)?;
    let second_heads = if order == 2 {
        get_flat(reader, lengths.iter().filter(|&&n| n >= 2).count(), version)?
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
    version: u8,
) -> Result<Vec<Value>> {
    let count: usize = lengths.iter().sum();
    match reader.u8()? {
        COLUMN_INT => Ok(get_int_column(reader, lengths, 1, version)?
            .into_iter()
            .map(Value::Int)
            .collect()),
        COLUMN_DECIMAL => {
            let scale = usize::from(reader.u8()?);
            let divisor = *POW10.get(scale).ok_or_else(|| {
                reader.error(format!("decimal scale {scale} exceeds {MAX_SCALE}"))
            })?;
            Ok(get_int_column(reader, lengths, 1, version)?
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
            let ints = get_flat(reader, of(TAG_INT), version)?;
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
                get_int_column(&mut reader, &lengths, order, VERSION).unwrap(),
                values
            );
            assert!(reader.is_empty());
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// The straightforward reading of a sequence id, which the hand-written
    /// parser must agree with.
    fn naive_sequence_id(text: &str) -> Option<(&str, u64, u64)> {
        let number = |digits: &str| {
            let canonical = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !(digits.len() > 1 && digits.starts_with('0'));
            if canonical { digits.parse().ok() } else { None }
        };
        let mut parts = text.rsplitn(3, ':');
        let sequence = number(parts.next()?)?;
        let epoch = number(parts.next()?)?;
        let source = parts.next().filter(|source| !source.is_empty())?;
        Some((source, epoch, sequence))
    }

    proptest! {
        #[test]
        fn sequence_ids_parse_as_the_naive_reader_does(
            text in prop_oneof![
                "[a-z:]{0,4}:[0-9]{0,3}:[0-9]{0,4}",
                "gw-1:[0-9]{1,21}:[0-9]{1,21}",
                any::<String>(),
            ]
        ) {
            prop_assert_eq!(parse_sequence_id(&text), naive_sequence_id(&text));
        }

        #[test]
        fn successor_tests_agree_with_successor(
            previous in "[a-c]{0,2}[0-9]{0,3}",
            next in "[a-c]{0,2}[0-9]{0,3}",
        ) {
            let expected = successor(&previous).as_deref() == Some(next.as_str());
            prop_assert_eq!(is_successor(&previous, &next), expected);
            if let Some(after) = successor(&previous) {
                prop_assert!(is_successor(&previous, &after));
            }
        }

        #[test]
        fn flat_sequences_round_trip_in_every_mode(
            values in prop_oneof![
                prop::collection::vec(any::<i64>(), 0..300),
                (any::<i64>(), -3i64..3, 0usize..300)
                    .prop_map(|(start, step, n)| (0..n as i64).map(|i| start.wrapping_add(i * step)).collect()),
                prop::collection::vec(-2i64..2, 0..300),
            ]
        ) {
            let mut out = Vec::new();
            put_flat(&mut out, &values);
            let mut reader = Reader::new(&out, CODEC);
            prop_assert_eq!(get_flat(&mut reader, values.len(), VERSION).unwrap(), values);
            prop_assert!(reader.is_empty());
        }

        #[test]
        fn decimal_columns_match_the_largest_smallest_scale(
            floats in prop::collection::vec(prop_oneof![
                (-100_000i64..100_000, 0usize..4).prop_map(|(m, k)| m as f64 / POW10[k]),
                any::<f64>(),
            ], 0..20)
        ) {
            // The definition: the largest of the values' own smallest scales,
            // and every value exact at it.
            let expected = floats
                .iter()
                .try_fold(0, |scale, &f| decimal_scale(f).map(|s| s.max(scale)))
                .and_then(|scale| {
                    let mantissas: Option<Vec<i64>> =
                        floats.iter().map(|&f| mantissa_at(f, scale)).collect();
                    mantissas.map(|m| (scale, m))
                });
            prop_assert_eq!(decimal_mantissas(&floats), expected);
        }
    }

    #[test]
    fn every_flat_mode_is_chosen_somewhere() {
        let mode = |values: &[i64]| {
            let mut out = Vec::new();
            put_flat(&mut out, values);
            out[0]
        };
        assert_eq!(mode(&[1, 0, 1, 0, 2, 1]), FLAT_DELTA);
        assert_eq!(
            mode(&[1_000_000, 1_000_003, 1_000_001, 1_000_002]),
            FLAT_OFFSET
        );
        // A climbing walk: small deltas, irregular enough that their deltas are no smaller.
        let walk: Vec<i64> = (0..100).map(|i| 1_000_000 + 3 * ((i + 1) / 2)).collect();
        assert_eq!(mode(&walk), FLAT_FIRST_DELTA);
        let steps: Vec<i64> = (0..100).map(|i| 150_000 + 7 * i).collect();
        assert_eq!(mode(&steps), FLAT_FIRST_DELTA2);
    }
}
