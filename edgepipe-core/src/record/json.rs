//! The seed's JSON shape for records: single objects, arrays and JSON Lines.
//!
//! Reading goes straight from bytes into [`DataRecord`] through serde visitors,
//! never through a generic `serde_json::Value` per record (that detour costs
//! several times the parse). Writing is a small hand-written emitter, so that a
//! NaN is refused with the path of its field, the output is exactly the seed's
//! key order, and nothing is half-written on error.
//!
//! Accepted on input, beyond what edgepipe itself writes:
//! - `timestamp` as any ISO-8601 form Python writes (see [`Timestamp::parse`]) or as
//!   an epoch number in seconds, milliseconds, microseconds or nanoseconds
//!   (see [`Timestamp::from_epoch_number`]);
//! - a missing `metadata` (read as empty) or `metadata: null`;
//! - repeated payload keys, resolved as Python's `json.loads` does (first
//!   position, last value).
//!
//! Refused, with the line, column and field in the message: unknown top-level
//! keys (a field edgepipe would silently drop), missing required keys, wrong types,
//! numbers beyond `f64`, nesting deeper than 128 levels, invalid UTF-8.

use std::cell::RefCell;
use std::fmt;
use std::io::BufRead;

use compact_str::CompactString;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{DataRecord, FieldMap, Metadata, Payload, Timestamp, Value};
use crate::error::{Error, Result};

/// What to do with NaN and infinities when writing JSON, which cannot carry them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NonFinite {
    /// Refuse with [`Error::NonFiniteFloat`] naming the field (the default).
    #[default]
    Reject,
    /// Write `null` in their place, as JavaScript's `JSON.stringify` does.
    Null,
}

/// Options for writing records as JSON.
#[derive(Clone, Debug, Default)]
pub struct JsonOptions {
    /// Policy for NaN and infinities.
    pub non_finite: NonFinite,
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/// Where a failed parse was when it failed, filled in only on the error path.
#[derive(Default)]
struct ErrorContext {
    field: RefCell<Option<String>>,
}

impl ErrorContext {
    fn blame(&self, field: impl FnOnce() -> String) {
        let mut slot = self.field.borrow_mut();
        if slot.is_none() {
            *slot = Some(field());
        }
    }
}

fn json_error(error: &serde_json::Error, context: &ErrorContext, line: Option<u64>) -> Error {
    let text = error.to_string();
    // serde_json appends " at line L column C"; the column is worth keeping, the
    // line is replaced by ours (each JSON Lines line is parsed on its own).
    let bare = match text.rfind(" at line ") {
        Some(cut) if error.line() != 0 => &text[..cut],
        _ => text.as_str(),
    };
    let mut message = String::new();
    if error.line() != 0 {
        if line.is_none() && error.line() > 1 {
            message.push_str(&format!("line {}, ", error.line()));
        }
        message.push_str(&format!("column {}: ", error.column()));
    }
    if let Some(field) = context.field.borrow().as_deref() {
        message.push_str(&format!("field `{field}`: "));
    }
    message.push_str(bare);
    Error::InvalidJson { line, message }
}

/// Reads one record from `bytes`; `line` is reported in errors when given.
pub(crate) fn record_from_slice(bytes: &[u8], line: Option<u64>) -> Result<DataRecord> {
    // One UTF-8 check of the whole line is cheaper than serde_json checking each
    // string on its own (a tenth of the parse time, measured with perf).
    let text = std::str::from_utf8(bytes).map_err(|error| Error::InvalidJson {
        line,
        message: format!("column {}: invalid UTF-8", error.valid_up_to() + 1),
    })?;
    let context = ErrorContext::default();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    RecordSeed { context: &context }
        .deserialize(&mut deserializer)
        .and_then(|record| deserializer.end().map(|()| record))
        .map_err(|error| json_error(&error, &context, line))
}

/// Reads a JSON array of records, the body of a seed batch (`json.dumps([r.to_dict() ...])`).
pub fn records_from_json_array(bytes: &[u8]) -> Result<Vec<DataRecord>> {
    let context = ErrorContext::default();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    deserializer
        .deserialize_seq(RecordArrayVisitor { context: &context })
        .and_then(|records| deserializer.end().map(|()| records))
        .map_err(|error| json_error(&error, &context, None))
}

struct RecordArrayVisitor<'c> {
    context: &'c ErrorContext,
}

impl<'de> Visitor<'de> for RecordArrayVisitor<'_> {
    type Value = Vec<DataRecord>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(record) = seq
            .next_element_seed(RecordSeed {
                context: self.context,
            })
            .inspect_err(|_| {
                let index = records.len();
                let mut slot = self.context.field.borrow_mut();
                *slot = Some(match slot.take() {
                    Some(inner) => format!("[{index}].{inner}"),
                    None => format!("[{index}]"),
                });
            })?
        {
            records.push(record);
        }
        Ok(records)
    }
}

struct RecordSeed<'c> {
    context: &'c ErrorContext,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = DataRecord;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<DataRecord, D::Error> {
        deserializer.deserialize_map(RecordVisitor {
            context: self.context,
        })
    }
}

const RECORD_FIELDS: &[&str] = &[
    "record_id",
    "device_id",
    "timestamp",
    "data_type",
    "payload",
    "metadata",
];

#[derive(Clone, Copy)]
enum RecordField {
    RecordId,
    DeviceId,
    Timestamp,
    DataType,
    Payload,
    Metadata,
}

impl RecordField {
    fn name(self) -> &'static str {
        RECORD_FIELDS[self as usize]
    }
}

struct RecordFieldVisitor;

impl Visitor<'_> for RecordFieldVisitor {
    type Value = RecordField;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a record field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<RecordField, E> {
        Ok(match name {
            "record_id" => RecordField::RecordId,
            "device_id" => RecordField::DeviceId,
            "timestamp" => RecordField::Timestamp,
            "data_type" => RecordField::DataType,
            "payload" => RecordField::Payload,
            "metadata" => RecordField::Metadata,
            other => return Err(E::unknown_field(other, RECORD_FIELDS)),
        })
    }
}

impl<'de> serde::Deserialize<'de> for RecordField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(RecordFieldVisitor)
    }
}

struct RecordVisitor<'c> {
    context: &'c ErrorContext,
}

impl<'de> Visitor<'de> for RecordVisitor<'_> {
    type Value = DataRecord;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DataRecord, A::Error> {
        let mut record_id = None;
        let mut device_id = None;
        let mut timestamp = None;
        let mut data_type = None;
        let mut payload = None;
        let mut metadata = None;
        let context = self.context;
        while let Some(field) = map.next_key::<RecordField>()? {
            let blame = |error| {
                context.blame(|| field.name().to_owned());
                error
            };
            match field {
                RecordField::RecordId => set_once(
                    &mut record_id,
                    field,
                    map.next_value::<CompactString>().map_err(blame)?,
                )?,
                RecordField::DeviceId => set_once(
                    &mut device_id,
                    field,
                    map.next_value::<CompactString>().map_err(blame)?,
                )?,
                RecordField::DataType => set_once(
                    &mut data_type,
                    field,
                    map.next_value::<CompactString>().map_err(blame)?,
                )?,
                RecordField::Timestamp => set_once(
                    &mut timestamp,
                    field,
                    map.next_value_seed(TimestampSeed).map_err(blame)?,
                )?,
                RecordField::Payload => set_once(
                    &mut payload,
                    field,
                    map.next_value_seed(PayloadSeed { context })
                        .map_err(blame)?,
                )?,
                RecordField::Metadata => set_once(
                    &mut metadata,
                    field,
                    map.next_value_seed(MetadataSeed { context })
                        .map_err(blame)?,
                )?,
            }
        }
        Ok(DataRecord {
            record_id: record_id.ok_or_else(|| de::Error::missing_field("record_id"))?,
            device_id: device_id.ok_or_else(|| de::Error::missing_field("device_id"))?,
            timestamp: timestamp.ok_or_else(|| de::Error::missing_field("timestamp"))?,
            data_type: data_type.ok_or_else(|| de::Error::missing_field("data_type"))?,
            payload: payload.ok_or_else(|| de::Error::missing_field("payload"))?,
            metadata: metadata.unwrap_or_default(),
        })
    }
}

fn set_once<T, E: de::Error>(slot: &mut Option<T>, field: RecordField, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(field.name()));
    }
    *slot = Some(value);
    Ok(())
}

struct TimestampSeed;

impl<'de> DeserializeSeed<'de> for TimestampSeed {
    type Value = Timestamp;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Timestamp, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for TimestampSeed {
    type Value = Timestamp;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an ISO-8601 string or an epoch number")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
        Timestamp::parse(text).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Timestamp, E> {
        Timestamp::from_epoch_integer(value).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Timestamp, E> {
        let value = i64::try_from(value).map_err(|_| E::custom("epoch number out of range"))?;
        Timestamp::from_epoch_integer(value).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Timestamp, E> {
        Timestamp::from_epoch_number(value).map_err(E::custom)
    }
}

struct PayloadSeed<'c> {
    context: &'c ErrorContext,
}

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_> {
    type Value = Payload;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Payload, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PayloadSeed<'_> {
    type Value = Payload;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a payload object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Payload, A::Error> {
        let mut payload = FieldMap::with_capacity(map.size_hint().unwrap_or(4));
        let mut repeated = false;
        while let Some(key) = map.next_key::<CompactString>()? {
            let value = match map.next_value::<Value>() {
                Ok(value) => value,
                Err(error) => {
                    self.context.blame(|| format!("payload.{key}"));
                    return Err(error);
                }
            };
            repeated |= payload.contains_key(&key);
            payload.push_unchecked(key, value);
        }
        if repeated {
            payload.dedup_keys_keep_last();
        }
        Ok(payload)
    }
}

struct MetadataSeed<'c> {
    context: &'c ErrorContext,
}

impl<'de> DeserializeSeed<'de> for MetadataSeed<'_> {
    type Value = Metadata;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Metadata, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MetadataSeed<'_> {
    type Value = Metadata;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object of string values")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Metadata, E> {
        Ok(Metadata::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
        let mut metadata = FieldMap::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(key) = map.next_key::<CompactString>()? {
            let value = match map.next_value::<CompactString>() {
                Ok(value) => value,
                Err(error) => {
                    self.context.blame(|| format!("metadata.{key}"));
                    return Err(error);
                }
            };
            metadata.insert(key, value);
        }
        Ok(metadata)
    }
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Int(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from_u64(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::Float(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(CompactString::from(value)))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(CompactString::from(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = FieldMap::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some((key, value)) = map.next_entry::<CompactString, Value>()? {
            fields.insert(key, value);
        }
        Ok(Value::Map(fields))
    }
}

impl<'de> serde::Deserialize<'de> for DataRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RecordSeed {
            context: &ErrorContext::default(),
        }
        .deserialize(deserializer)
    }
}

/// Reads records from JSON Lines, one object per line, with a bound on line length.
///
/// Blank lines are skipped. A bad line yields an error naming its line number and
/// reading goes on with the next line, so one malformed reading never costs the
/// rest of the file. A line longer than the bound is skipped without being held in
/// memory.
#[derive(Debug)]
pub struct JsonLinesReader<R> {
    input: R,
    line: u64,
    max_line_bytes: usize,
    buffer: Vec<u8>,
}

/// The default bound on one JSON Lines line: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

impl<R: BufRead> JsonLinesReader<R> {
    /// Reads from `input` with lines of at most [`DEFAULT_MAX_LINE_BYTES`].
    pub fn new(input: R) -> Self {
        Self::with_max_line_bytes(input, DEFAULT_MAX_LINE_BYTES)
    }

    /// Reads from `input` with lines of at most `max_line_bytes`.
    pub fn with_max_line_bytes(input: R, max_line_bytes: usize) -> Self {
        JsonLinesReader {
            input,
            line: 0,
            max_line_bytes,
            buffer: Vec::new(),
        }
    }

    /// The number of the last line read (1-based).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Fills `buffer` with the next line, without its newline. Returns the line's
    /// full length (which may exceed the bound, in which case the buffer holds only
    /// a prefix), or `None` at the end of input.
    fn next_line(&mut self) -> Result<Option<usize>> {
        self.buffer.clear();
        let mut length = 0;
        let mut read_any = false;
        loop {
            let available = match self.input.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(Error::io("reading JSON Lines", error)),
            };
            if available.is_empty() {
                return Ok(read_any.then_some(length));
            }
            read_any = true;
            let (chunk, consumed, done) = match memchr::memchr(b'\n', available) {
                Some(end) => (&available[..end], end + 1, true),
                None => (available, available.len(), false),
            };
            length += chunk.len();
            let room = self.max_line_bytes.saturating_sub(self.buffer.len());
            self.buffer
                .extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.input.consume(consumed);
            if done {
                return Ok(Some(length));
            }
        }
    }
}

impl<R: BufRead> Iterator for JsonLinesReader<R> {
    type Item = Result<DataRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let length = match self.next_line() {
                Ok(Some(length)) => length,
                Ok(None) => return None,
                Err(error) => return Some(Err(error)),
            };
            self.line += 1;
            if length > self.max_line_bytes {
                return Some(Err(Error::LineTooLong {
                    line: self.line,
                    length,
                    limit: self.max_line_bytes,
                }));
            }
            let line = trim_line(&self.buffer);
            if line.is_empty() {
                continue;
            }
            return Some(record_from_slice(line, Some(self.line)));
        }
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

/// Reads records from an in-memory JSON Lines buffer, without copying lines.
///
/// Each item is `(line_number, result)`; blank lines are skipped. Lines longer
/// than [`DEFAULT_MAX_LINE_BYTES`] are refused with [`Error::LineTooLong`], as
/// [`JsonLinesReader`] does.
pub fn parse_jsonl(input: &[u8]) -> impl Iterator<Item = (u64, Result<DataRecord>)> + '_ {
    parse_jsonl_with_limit(input, DEFAULT_MAX_LINE_BYTES)
}

/// [`parse_jsonl`] with a chosen bound on line length.
pub fn parse_jsonl_with_limit(
    input: &[u8],
    max_line_bytes: usize,
) -> impl Iterator<Item = (u64, Result<DataRecord>)> + '_ {
    // memchr finds each newline a word at a time; a byte-by-byte split was a
    // fifth of the time of JSON Lines → window → JSON Lines.
    let mut rest = Some(input);
    let lines = std::iter::from_fn(move || {
        let remaining = rest?;
        match memchr::memchr(b'\n', remaining) {
            Some(end) => {
                rest = remaining.get(end + 1..);
                remaining.get(..end)
            }
            None => {
                rest = None;
                Some(remaining)
            }
        }
    });
    lines.enumerate().filter_map(move |(index, line)| {
        let number = index as u64 + 1;
        parse_line(line, Some(number), max_line_bytes).map(|parsed| (number, parsed))
    })
}

/// One line of a JSON Lines buffer (without its newline): `None` when blank.
fn parse_line(
    line: &[u8],
    number: Option<u64>,
    max_line_bytes: usize,
) -> Option<Result<DataRecord>> {
    if line.len() > max_line_bytes {
        return Some(Err(Error::LineTooLong {
            line: number.unwrap_or(0),
            length: line.len(),
            limit: max_line_bytes,
        }));
    }
    let line = trim_line(line);
    (!line.is_empty()).then(|| record_from_slice(line, number))
}

/// How many bytes of input one parsing thread takes at a time in
/// [`parse_jsonl_parallel`]: large enough that handing chunks over costs
/// nothing next to parsing them, small enough that the threads stay busy and
/// the records parsed ahead (at most three chunks per helper) stay few.
const PARALLEL_CHUNK_BYTES: usize = 256 << 10;

/// [`parse_jsonl`] with the parsing spread over `threads` threads besides the
/// caller's (which parses its share too, and hands every item to `each` in
/// input order): the same items, numbered the same way, with the same errors.
/// `threads == 0`, or an input of one chunk (256 KiB) or less, parses on the
/// caller's thread alone.
///
/// `each` borrows each record (a window or a batch only reads it; a transform
/// edits it in place; `std::mem::take` or `clone` keeps it). The records go back
/// to the thread that parsed them to be freed: freed on the caller's thread,
/// memory allocated on another one contends for the allocator's lock, which made
/// a first version slower on two threads than on one.
///
/// Parsing is most of the cost of JSON Lines in, windows or batches out; on a
/// two-core gateway one helper thread halves it. Memory stays bounded: each
/// helper parses at most three chunks ahead of `each`.
///
/// ```
/// use edgepipe_core::record::json::{parse_jsonl, parse_jsonl_parallel};
///
/// let mut input = String::new();
/// for reading in 0..20_000 {
///     input.push_str(&format!(
///         r#"{{"record_id":"r{reading}","device_id":"d{}","timestamp":"2026-01-01T00:00:00Z","data_type":"sensors","payload":{{"t":{reading}}}}}"#,
///         reading % 7
///     ));
///     input.push('\n');
/// }
/// let mut parallel = Vec::new();
/// parse_jsonl_parallel(input.as_bytes(), 1, |line, record| {
///     parallel.push((line, record.unwrap().clone()))
/// });
/// let serial: Vec<_> = parse_jsonl(input.as_bytes()).map(|(line, r)| (line, r.unwrap())).collect();
/// assert_eq!(parallel, serial);
/// ```
pub fn parse_jsonl_parallel(
    input: &[u8],
    threads: usize,
    each: impl FnMut(u64, Result<&mut DataRecord>),
) {
    parse_jsonl_parallel_with_limit(input, threads, DEFAULT_MAX_LINE_BYTES, each);
}

/// [`parse_jsonl_parallel`] with a chosen bound on line length.
pub fn parse_jsonl_parallel_with_limit(
    input: &[u8],
    threads: usize,
    max_line_bytes: usize,
    mut each: impl FnMut(u64, Result<&mut DataRecord>),
) {
    fn lend(
        each: &mut impl FnMut(u64, Result<&mut DataRecord>),
        number: u64,
        parsed: Result<DataRecord>,
    ) {
        match parsed {
            Ok(mut record) => each(number, Ok(&mut record)),
            Err(error) => each(number, Err(error)),
        }
    }
    if threads == 0 || input.len() <= PARALLEL_CHUNK_BYTES {
        for (number, parsed) in parse_jsonl_with_limit(input, max_line_bytes) {
            lend(&mut each, number, parsed);
        }
        return;
    }
    // Chunk boundaries fall just after a newline, so no line is split.
    let mut bounds = vec![0];
    let mut start = 0;
    while start < input.len() {
        let end = match input.get(start + PARALLEL_CHUNK_BYTES..) {
            Some(rest) => memchr::memchr(b'\n', rest)
                .map_or(input.len(), |at| start + PARALLEL_CHUNK_BYTES + at + 1),
            None => input.len(),
        };
        bounds.push(end);
        start = end;
    }
    let chunks: Vec<&[u8]> = bounds.windows(2).map(|w| &input[w[0]..w[1]]).collect();
    std::thread::scope(|scope| {
        // The caller and `helpers` threads take turns: helper k parses chunks
        // k, k + parsers, …, each into its own channel, and the caller parses
        // every `parsers`-th chunk itself, so chunks come back in order without
        // a reordering buffer. Each helper takes its chunks back to free them.
        let helpers = threads.min(chunks.len() - 1);
        let parsers = helpers + 1;
        let lanes: Vec<_> = (0..helpers)
            .map(|first| {
                let (parsed_sender, parsed) = std::sync::mpsc::sync_channel(2);
                let (done, done_receiver) = std::sync::mpsc::channel::<ParsedChunk>();
                let chunks = &chunks;
                scope.spawn(move || {
                    for chunk in chunks.iter().skip(first).step_by(parsers) {
                        // Free the chunks the caller has finished with.
                        done_receiver.try_iter().for_each(drop);
                        if parsed_sender
                            .send(parse_chunk(chunk, max_line_bytes))
                            .is_err()
                        {
                            break; // The caller stopped reading (it panicked).
                        }
                    }
                    drop(parsed_sender);
                    done_receiver.iter().for_each(drop);
                });
                (parsed, done)
            })
            .collect();
        let mut lines_before = 0u64;
        for (index, chunk) in chunks.iter().enumerate() {
            let lane = lanes.get(index % parsers);
            let mut parsed = match lane {
                Some((parsed, _)) => parsed
                    .recv()
                    .expect("a parsing thread ended before its chunk"),
                None => parse_chunk(chunk, max_line_bytes),
            };
            for (offset, line, record) in &mut parsed.items {
                let number = lines_before + *offset;
                match record {
                    Some(record) => each(number, Ok(record)),
                    // Errors are rare: parse the line again here, so that
                    // they name the line as parse_jsonl's would.
                    None => {
                        if let Some(again) =
                            parse_line(&chunk[line.clone()], Some(number), max_line_bytes)
                        {
                            lend(&mut each, number, again);
                        }
                    }
                }
            }
            lines_before += parsed.newlines;
            if let Some((_, done)) = lane {
                // A thread that has stopped has nothing left to free with.
                let _ = done.send(parsed);
            }
        }
    });
}

/// A line of a chunk: its number within the chunk, its bytes in the chunk, and
/// its record, or `None` when it failed (parsed again with its real number).
type ChunkLine = (u64, std::ops::Range<usize>, Option<DataRecord>);

/// One chunk's non-blank lines, and how many newlines it holds.
struct ParsedChunk {
    items: Vec<ChunkLine>,
    newlines: u64,
}

fn parse_chunk(chunk: &[u8], max_line_bytes: usize) -> ParsedChunk {
    let mut items = Vec::new();
    let mut newlines = 0;
    let mut start = 0;
    while start < chunk.len() {
        let end = memchr::memchr(b'\n', &chunk[start..]).map_or(chunk.len(), |at| start + at);
        let line = &chunk[start..end];
        newlines += u64::from(end < chunk.len());
        if let Some(parsed) = parse_line(line, None, max_line_bytes) {
            let number = newlines + u64::from(end == chunk.len());
            items.push((number, start..end, parsed.ok()));
        }
        start = end + 1;
    }
    ParsedChunk { items, newlines }
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// A non-finite float found while writing, with the path to it (innermost first).
struct NonFiniteAt {
    path: Vec<String>,
    value: f64,
}

pub(crate) fn write_record(
    record: &DataRecord,
    out: &mut Vec<u8>,
    options: &JsonOptions,
) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(b"{\"record_id\":");
    write_string(out, &record.record_id);
    out.extend_from_slice(b",\"device_id\":");
    write_string(out, &record.device_id);
    out.extend_from_slice(b",\"timestamp\":\"");
    let mut timestamp = String::with_capacity(32);
    record.timestamp.write_iso8601(&mut timestamp);
    out.extend_from_slice(timestamp.as_bytes());
    out.extend_from_slice(b"\",\"data_type\":");
    write_string(out, &record.data_type);
    out.extend_from_slice(b",\"payload\":");
    if let Err(at) = write_map(out, &record.payload, options) {
        out.truncate(start);
        let field = at
            .path
            .iter()
            .rev()
            .fold(String::new(), |mut path, segment| {
                if !path.is_empty() && !segment.starts_with('[') {
                    path.push('.');
                }
                path.push_str(segment);
                path
            });
        return Err(Error::NonFiniteFloat {
            field,
            value: at.value,
        });
    }
    out.extend_from_slice(b",\"metadata\":{");
    for (index, (key, value)) in record.metadata.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_string(out, key);
        out.push(b':');
        write_string(out, value);
    }
    out.extend_from_slice(b"}}");
    Ok(())
}

/// Writes records as JSON Lines (one compact object and a newline each).
pub fn write_jsonl<'a>(
    records: impl IntoIterator<Item = &'a DataRecord>,
    out: &mut Vec<u8>,
    options: &JsonOptions,
) -> Result<()> {
    for record in records {
        write_record(record, out, options)?;
        out.push(b'\n');
    }
    Ok(())
}

/// Writes records as one JSON array, the body of a seed batch.
pub fn write_json_array<'a>(
    records: impl IntoIterator<Item = &'a DataRecord>,
    out: &mut Vec<u8>,
    options: &JsonOptions,
) -> Result<()> {
    let start = out.len();
    out.push(b'[');
    for (index, record) in records.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        if let Err(error) = write_record(record, out, options) {
            out.truncate(start);
            return Err(error);
        }
    }
    out.push(b']');
    Ok(())
}

/// Writes one payload value as JSON (used by codecs that embed values).
pub fn write_value(out: &mut Vec<u8>, value: &Value, options: &JsonOptions) -> Result<()> {
    let start = out.len();
    write_value_inner(out, value, options).map_err(|at| {
        out.truncate(start);
        Error::NonFiniteFloat {
            field: at.path.into_iter().rev().collect::<Vec<_>>().join("."),
            value: at.value,
        }
    })
}

fn write_map(out: &mut Vec<u8>, map: &Payload, options: &JsonOptions) -> Result<(), NonFiniteAt> {
    out.push(b'{');
    for (index, (key, value)) in map.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_string(out, key);
        out.push(b':');
        write_value_inner(out, value, options).map_err(|mut at| {
            at.path.push(key.to_owned());
            at
        })?;
    }
    out.push(b'}');
    Ok(())
}

fn write_value_inner(
    out: &mut Vec<u8>,
    value: &Value,
    options: &JsonOptions,
) -> Result<(), NonFiniteAt> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(number) => out.extend_from_slice(itoa::Buffer::new().format(*number).as_bytes()),
        Value::UInt(number) => {
            out.extend_from_slice(itoa::Buffer::new().format(*number).as_bytes())
        }
        Value::Float(number) => write_float(out, *number, options)?,
        Value::String(text) => write_string(out, text),
        Value::List(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value_inner(out, item, options).map_err(|mut at| {
                    at.path.push(format!("[{index}]"));
                    at
                })?;
            }
            out.push(b']');
        }
        Value::Map(map) => write_map(out, map, options)?,
    }
    Ok(())
}

fn write_float(out: &mut Vec<u8>, number: f64, options: &JsonOptions) -> Result<(), NonFiniteAt> {
    if number.is_finite() {
        // ryu writes the shortest text that reads back as the same f64, and always
        // with a '.' or exponent, so 22.0 stays a float ("22.0") on the way back.
        out.extend_from_slice(ryu::Buffer::new().format_finite(number).as_bytes());
        return Ok(());
    }
    match options.non_finite {
        NonFinite::Null => {
            out.extend_from_slice(b"null");
            Ok(())
        }
        NonFinite::Reject => Err(NonFiniteAt {
            path: Vec::new(),
            value: number,
        }),
    }
}

/// Writes a JSON string literal, escaping what RFC 8259 requires.
pub(crate) fn write_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut run_start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run_start..index]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        run_start = index + 1;
    }
    out.extend_from_slice(&bytes[run_start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"record_id":"a","device_id":"dev-0000","timestamp":"2026-01-01T00:00:00.000Z","data_type":"sensors","payload":{"temperature":22.11,"humidity":50.3,"pressure":1012.6}}"#;

    fn message(error: Error) -> String {
        error.to_string()
    }

    #[test]
    fn reads_the_workload_line_and_writes_it_back_with_empty_metadata() {
        let record = DataRecord::from_json(LINE).unwrap();
        assert_eq!(record.device_id, "dev-0000");
        assert_eq!(record.payload.get("humidity"), Some(&Value::Float(50.3)));
        let expected = LINE
            .replace("}}", "},\"metadata\":{}}")
            .replace("00.000Z", "00Z");
        assert_eq!(record.to_json().unwrap(), expected);
    }

    #[test]
    fn errors_name_the_field_and_column() {
        let bad_type = LINE.replace("\"dev-0000\"", "5");
        let text = message(DataRecord::from_json(&bad_type).unwrap_err());
        assert!(
            text.contains("field `device_id`: invalid type: integer `5`"),
            "{text}"
        );
        assert!(text.contains("column 30"), "{text}");

        let huge = LINE.replace("22.11", "1e400");
        let text = message(DataRecord::from_json(&huge).unwrap_err());
        assert!(
            text.contains("payload.temperature") && text.contains("out of range"),
            "{text}"
        );

        let missing = LINE.replace("\"device_id\":\"dev-0000\",", "");
        assert!(
            message(DataRecord::from_json(&missing).unwrap_err())
                .contains("missing field `device_id`")
        );

        let unknown = LINE.replace("\"data_type\"", "\"kind\":1,\"data_type\"");
        assert!(
            message(DataRecord::from_json(&unknown).unwrap_err()).contains("unknown field `kind`")
        );

        let bad_time = LINE.replace("2026-01-01T00:00:00.000Z", "yesterday");
        let text = message(DataRecord::from_json(&bad_time).unwrap_err());
        assert!(text.contains("field `timestamp`"), "{text}");

        let metadata = LINE.replace("}}", "},\"metadata\":{\"site\":7}}");
        assert!(message(DataRecord::from_json(&metadata).unwrap_err()).contains("metadata.site"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        let line = LINE.replace("22.11", &deep);
        assert!(message(DataRecord::from_json(&line).unwrap_err()).contains("recursion limit"));
    }

    #[test]
    fn repeated_payload_keys_resolve_like_python() {
        let line = LINE.replace(
            "\"humidity\":50.3",
            "\"temperature\":1,\"humidity\":50.3,\"temperature\":2",
        );
        let record = DataRecord::from_json(&line).unwrap();
        assert_eq!(
            record.payload.keys().collect::<Vec<_>>(),
            ["temperature", "humidity", "pressure"]
        );
        assert_eq!(record.payload.get("temperature"), Some(&Value::Int(2)));
    }

    #[test]
    fn non_finite_floats_are_refused_with_their_path_or_written_as_null() {
        let mut record = DataRecord::from_json(LINE).unwrap();
        let mut nested = Payload::new();
        nested.insert(
            "samples",
            Value::List(vec![Value::Float(1.0), Value::Float(f64::NAN)]),
        );
        record.payload.insert("vibration", Value::Map(nested));
        match record.to_json().unwrap_err() {
            Error::NonFiniteFloat { field, .. } => assert_eq!(field, "vibration.samples[1]"),
            other => panic!("unexpected {other}"),
        }
        let mut out = b"prefix".to_vec();
        assert!(
            record
                .write_json(&mut out, &JsonOptions::default())
                .is_err()
        );
        assert_eq!(out, b"prefix", "nothing half-written");
        let options = JsonOptions {
            non_finite: NonFinite::Null,
        };
        record.write_json(&mut out, &options).unwrap();
        assert!(String::from_utf8(out).unwrap().contains("[1.0,null]"));
    }

    #[test]
    fn json_lines_reader_reports_bad_lines_and_goes_on() {
        let long = format!("{{\"x\":\"{}\"}}", "y".repeat(300));
        let input = format!("{LINE}\n\n{{not json\n{long}\r\n{LINE}\r\n");
        let results: Vec<_> = JsonLinesReader::with_max_line_bytes(input.as_bytes(), 256).collect();
        assert_eq!(results.len(), 4);
        assert!(results[0].is_ok());
        assert!(
            results[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .starts_with("line 3:")
        );
        assert!(matches!(
            results[2],
            Err(Error::LineTooLong { line: 4, .. })
        ));
        assert!(results[3].is_ok());
    }

    #[test]
    fn record_arrays_round_trip_and_blame_the_element() {
        let record = DataRecord::from_json(LINE).unwrap();
        let mut out = Vec::new();
        write_json_array([&record, &record], &mut out, &JsonOptions::default()).unwrap();
        assert_eq!(
            records_from_json_array(&out).unwrap(),
            vec![record.clone(), record]
        );
        let bad = format!("[{LINE},{}]", LINE.replace("\"sensors\"", "3"));
        let text = records_from_json_array(bad.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(text.contains("[1].data_type"), "{text}");
    }

    #[test]
    fn strings_escape_control_characters() {
        let mut out = Vec::new();
        write_string(&mut out, "a\"b\\c\n\u{1}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\n\\u0001é\"".as_bytes());
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a\"b\\c\n\u{1}é");
    }
}
