//! Property and differential tests of the record's JSON form.

use std::io::Write;
use std::process::{Command, Stdio};

use edgepipe_core::record::json::{parse_jsonl, write_jsonl};
use edgepipe_core::record::{CompactString, DataRecord, FieldMap, JsonOptions, Timestamp, Value};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{1,12}",
        any::<String>(),
        "[\\x00-\\x1f\"\\\\é漢🙂]{0,6}",
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        Just(-0.0),
        Just(f64::MIN_POSITIVE / 4.0), // subnormal
        Just(f64::MAX),
        Just(5e-324),
        (-1_000_000i64..1_000_000).prop_map(|n| n as f64 / 100.0),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::from_u64),
        float().prop_map(Value::Float),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|entries| Value::Map(entries.into_iter().collect())),
        ]
    })
}

fn record() -> impl Strategy<Value = DataRecord> {
    // Nanoseconds within 1678..2261 so every instant is representable after parsing.
    let nanos = -9_000_000_000_000_000_000i64..9_000_000_000_000_000_000i64;
    (
        text(),
        text(),
        nanos,
        text(),
        prop::collection::vec((text(), value()), 0..8),
        prop::collection::vec((text(), text()), 0..4),
    )
        .prop_map(
            |(record_id, device_id, nanos, data_type, payload, metadata)| DataRecord {
                record_id: record_id.into(),
                device_id: device_id.into(),
                timestamp: Timestamp::from_unix_nanos(nanos),
                data_type: data_type.into(),
                payload: payload.into_iter().collect(),
                metadata: metadata
                    .into_iter()
                    .map(|(key, value)| (key, value.into()))
                    .collect::<FieldMap<CompactString>>(),
            },
        )
}

/// Equality that also tells -0.0 from 0.0 (f64's `==` does not).
fn same_bits(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::List(xs), Value::List(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same_bits(x, y))
        }
        (Value::Map(xs), Value::Map(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .zip(ys.iter())
                    .all(|((kx, x), (ky, y))| kx == ky && same_bits(x, y))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_record_round_trips_through_json_bit_exactly(record in record()) {
        let json = record.to_json().unwrap();
        let back = DataRecord::from_json(&json).unwrap();
        prop_assert_eq!(&back, &record);
        for ((_, a), (_, b)) in back.payload.iter().zip(record.payload.iter()) {
            prop_assert!(same_bits(a, b), "{a:?} != {b:?}");
        }
        prop_assert_eq!(back.to_json().unwrap(), json);
    }

    #[test]
    fn any_timestamp_round_trips_through_iso8601(nanos in -9_000_000_000_000_000_000i64..9_000_000_000_000_000_000i64) {
        let timestamp = Timestamp::from_unix_nanos(nanos);
        prop_assert_eq!(Timestamp::parse(&timestamp.to_iso8601()).unwrap(), timestamp);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_reader(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for (_, result) in parse_jsonl(&bytes) {
            let _ = result;
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_timestamp_parser(text in "[0-9T:+\\-. Zz]{0,40}") {
        let _ = Timestamp::parse(&text);
    }
}

/// The seed's Python reads what edgepipe writes, builds its own `DataRecord`
/// (`datetime.fromisoformat` on the timestamp) and writes it back with
/// `json.dumps(to_dict())`, which edgepipe reads to the same records.
#[test]
fn the_seed_python_reads_our_json_and_we_read_its_json() {
    let fixture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/seed_records.jsonl"
    ))
    .unwrap();
    let records: Vec<DataRecord> = parse_jsonl(&fixture).map(|(_, r)| r.unwrap()).collect();
    let mut ours = Vec::new();
    write_jsonl(&records, &mut ours, &JsonOptions::default()).unwrap();

    let script = r#"
import json, sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict

@dataclass
class DataRecord:
    record_id: str
    device_id: str
    timestamp: datetime
    data_type: str
    payload: Dict[str, Any]
    metadata: Dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"record_id": self.record_id, "device_id": self.device_id,
                "timestamp": self.timestamp.isoformat(), "data_type": self.data_type,
                "payload": self.payload, "metadata": self.metadata}

for line in sys.stdin:
    d = json.loads(line)
    d["timestamp"] = datetime.fromisoformat(d["timestamp"].replace("Z", "+00:00"))
    print(json.dumps(DataRecord(**d).to_dict()))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (the seed's reference language)");
    child.stdin.take().unwrap().write_all(&ours).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "python failed");
    let theirs: Vec<DataRecord> = parse_jsonl(&output.stdout)
        .map(|(_, r)| r.unwrap())
        .collect();
    assert_eq!(theirs, records);
}

/// Each kind of bad line gets an error that names its line and, where there is
/// one, its field; the good lines around them are all read.
#[test]
fn bad_lines_name_line_and_field_and_do_not_stop_the_reader() {
    use edgepipe_core::record::JsonLinesReader;

    let good = r#"{"record_id":"r","device_id":"d","timestamp":"2026-01-01T00:00:00Z","data_type":"t","payload":{"v":1.5}}"#;
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let bad_lines: Vec<(String, &str)> = vec![
        ("{\"record_id\":".to_owned(), "EOF while parsing"),
        (
            good.replace("\"d\"", "7"),
            "field `device_id`: invalid type: integer `7`",
        ),
        (
            good.replace(",\"data_type\":\"t\"", ""),
            "missing field `data_type`",
        ),
        (
            good.replace("1.5", "1e999"),
            "field `payload.v`: number out of range",
        ),
        (
            good.replace("1.5", &deep),
            "field `payload.v`: recursion limit exceeded",
        ),
        (
            good.replace("2026-01-01T00:00:00Z", "2026-02-30T00:00:00Z"),
            "field `timestamp`: invalid timestamp",
        ),
        (
            good.replace("\"t\"", "\"t\",\"extra\":1"),
            "unknown field `extra`",
        ),
        (
            good.replace("{\"v\":1.5}", "[1.5]"),
            "field `payload`: invalid type: sequence",
        ),
    ];
    let mut input = Vec::new();
    for (line, _) in &bad_lines {
        input.extend_from_slice(good.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    input.extend_from_slice(b"\xff\xfe not utf-8\n");

    let results: Vec<_> = JsonLinesReader::new(input.as_slice()).collect();
    assert_eq!(results.len(), bad_lines.len() * 2 + 1);
    for (index, (_, expected)) in bad_lines.iter().enumerate() {
        assert!(results[index * 2].is_ok());
        let message = results[index * 2 + 1].as_ref().unwrap_err().to_string();
        let line = index * 2 + 2;
        assert!(message.starts_with(&format!("line {line}: ")), "{message}");
        assert!(
            message.contains(expected),
            "line {line}: expected {expected:?} in {message:?}"
        );
    }
    let last = results.last().unwrap().as_ref().unwrap_err().to_string();
    assert!(
        last.starts_with(&format!("line {}: ", bad_lines.len() * 2 + 1)),
        "{last}"
    );
}

/// One line of a JSON Lines input for the parallel parser: a record, or each
/// kind of line `parse_jsonl` treats on its own terms.
fn jsonl_line() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0u32..1000, -5000i32..5000).prop_map(|(device, reading)| format!(
            r#"{{"record_id":"r-{device}-{reading}","device_id":"dev-{device}","timestamp":"2026-01-01T00:00:{:02}Z","data_type":"sensors","payload":{{"temperature":{}.{:02}}}}}"#,
            device % 60,
            reading / 100,
            reading.unsigned_abs() % 100
        )),
        1 => Just(String::new()),
        1 => Just("   \r".to_owned()),
        1 => Just("{oops".to_owned()),
        1 => Just(r#"{"record_id":"x","payload":{}}"#.to_owned()),
        1 => "[a-z]{600,700}".prop_map(|long| format!("{{\"pad\":\"{long}\"}}")),
    ]
}

/// A parse result in a comparable form.
fn comparable(item: (u64, edgepipe_core::Result<DataRecord>)) -> (u64, Result<DataRecord, String>) {
    (item.0, item.1.map_err(|error| error.to_string()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Large inputs (several 256 KiB chunks) of every kind of line, with or
    /// without a final newline: the parallel parser gives parse_jsonl's items,
    /// line numbers and errors, in order, whatever the number of threads.
    #[test]
    fn parallel_parsing_matches_the_serial_parser(
        lines in proptest::collection::vec(jsonl_line(), 1500..7000),
        final_newline in any::<bool>(),
        threads in 0usize..4,
    ) {
        let mut input = lines.join("\n");
        if final_newline {
            input.push('\n');
        }
        let limit = 400;
        let serial: Vec<_> = edgepipe_core::record::json::parse_jsonl_with_limit(input.as_bytes(), limit)
            .map(comparable)
            .collect();
        let mut parallel = Vec::new();
        edgepipe_core::record::json::parse_jsonl_parallel_with_limit(
            input.as_bytes(),
            threads,
            limit,
            |number, parsed| parallel.push(comparable((number, parsed.map(|record| record.clone())))),
        );
        prop_assert_eq!(parallel.len(), serial.len());
        prop_assert_eq!(parallel, serial);
    }
}
