//! `json-python` against the real thing: for the same records, our bytes must
//! equal what `python3`'s `json.dumps([r.to_dict() for r in records])` writes
//! (default separators, `ensure_ascii`, float `repr`). Python gets the records
//! as our compact JSON Lines, which `json.loads` reads to the `to_dict()` dicts.

mod batch_support;

use std::io::Write;
use std::process::{Command, Stdio};

use batch_support::{assert_same_records, record, series_batch};
use edgepipe_core::Error;
use edgepipe_core::batch::{Codec, DecodeLimits};
use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};
use proptest::strategy::{Strategy, ValueTree};

/// Each group of records as `json.dumps` writes it, one group per line.
fn python_dumps(groups: &[Vec<DataRecord>]) -> Vec<Vec<u8>> {
    let mut input = Vec::new();
    for group in groups {
        Codec::Jsonl.encode(group, &mut input).unwrap();
        input.extend_from_slice(b"--\n");
    }
    let script = "import json, sys\n\
                  group = []\n\
                  for line in sys.stdin:\n    \
                      if line == '--\\n':\n        \
                          sys.stdout.write(json.dumps(group) + '\\n')\n        \
                          group = []\n    \
                      else:\n        \
                          group.append(json.loads(line))\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("python3 is needed for this test: {error}"));
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "python3 failed");
    output
        .stdout
        .split(|&byte| byte == b'\n')
        .take(groups.len())
        .map(<[u8]>::to_vec)
        .collect()
}

fn reading(id: &str, values: Vec<(&str, Value)>) -> DataRecord {
    let mut payload = Payload::new();
    for (name, value) in values {
        payload.insert(name, value);
    }
    let mut record = DataRecord::new("dev-0001", "sensors", payload);
    record.record_id = id.into();
    record.timestamp = Timestamp::from_unix_nanos(1_767_225_600_123_000_000);
    record.metadata.insert("site", "Zürich 🏭".into());
    record
}

/// The floats and integers where Python's layout differs from edgepipe's compact JSON.
fn edge_cases() -> Vec<DataRecord> {
    let floats = [
        1e16,
        1e15,
        1e-7,
        1.5e-7,
        0.0001,
        0.00001,
        -0.0,
        0.0,
        5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        123456789012345678.0,
        9007199254740993.0,
        0.1,
        22.87,
        1013.2,
        -1e22,
        1e21,
        1e23,
        4.35e-5,
        100.0,
        1e100,
    ];
    let mut records: Vec<DataRecord> = floats
        .iter()
        .enumerate()
        .map(|(index, &value)| reading(&format!("float-{index}"), vec![("x", Value::Float(value))]))
        .collect();
    records.push(reading(
        "ints",
        vec![
            ("max", Value::Int(i64::MAX)),
            ("min", Value::Int(i64::MIN)),
            ("huge", Value::UInt(u64::MAX)),
            ("zero", Value::Int(0)),
        ],
    ));
    records.push(reading(
        "nested",
        vec![
            ("empty_list", Value::List(vec![])),
            ("empty_map", Value::Map(Default::default())),
            (
                "deep",
                Value::List(vec![
                    Value::Null,
                    Value::Bool(true),
                    Value::Bool(false),
                    Value::from("\u{0}\u{1f}\u{7f}\u{80}\u{2028}\u{ffff}\u{10000}\"\\/"),
                    Value::List(vec![Value::Float(1e-9), Value::Int(-3)]),
                ]),
            ),
        ],
    ));
    records
}

#[test]
fn our_bytes_are_pythons_json_dumps() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut groups: Vec<Vec<DataRecord>> = vec![edge_cases(), Vec::new()];
    // Arbitrary records: any strings (controls, non-ASCII, astral), nested
    // payloads, every finite float including subnormals and -0.0.
    for _ in 0..60 {
        groups.push(
            (0..40)
                .map(|_| record(true).new_tree(&mut runner).unwrap().current())
                .collect(),
        );
    }
    for _ in 0..10 {
        groups.push(series_batch().new_tree(&mut runner).unwrap().current());
    }
    let python = python_dumps(&groups);
    assert_eq!(python.len(), groups.len());
    for (group, expected) in groups.iter().zip(&python) {
        let mut ours = Vec::new();
        Codec::JsonPython.encode(group, &mut ours).unwrap();
        if ours != *expected {
            let at = ours
                .iter()
                .zip(expected)
                .position(|(a, b)| a != b)
                .unwrap_or(ours.len().min(expected.len()));
            let window = |bytes: &[u8]| {
                String::from_utf8_lossy(&bytes[at.saturating_sub(60)..(at + 60).min(bytes.len())])
                    .into_owned()
            };
            panic!(
                "first difference at byte {at}:\n  ours   {}\n  python {}",
                window(&ours),
                window(expected)
            );
        }
        // And it reads back to the same records.
        let back = Codec::JsonPython
            .decode(&ours, &DecodeLimits::default())
            .unwrap();
        assert_same_records(&back, group);
    }
}

#[test]
fn non_finite_floats_are_refused_with_their_path() {
    let record = reading(
        "nan",
        vec![(
            "readings",
            Value::List(vec![Value::Float(1.0), Value::Float(f64::NAN)]),
        )],
    );
    let mut out = b"kept".to_vec();
    match Codec::JsonPython.encode(&[record], &mut out) {
        Err(Error::NonFiniteFloat { field, .. }) => assert_eq!(field, "readings[1]"),
        other => panic!("expected NonFiniteFloat, got {other:?}"),
    }
    assert_eq!(out, b"kept", "nothing is half-written");
}
