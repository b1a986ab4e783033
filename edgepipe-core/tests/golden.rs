//! Golden tests: records in the seed's shape (as the seed's Python writes them)
//! are read, transformed and written to the expected bytes.
//!
//! Regenerate the expected files after an intended change with
//! `EDGEPIPE_BLESS=1 cargo test -p edgepipe-core --test golden`, then review the diff.

use std::path::PathBuf;

use edgepipe_core::record::json::{parse_jsonl, write_jsonl};
use edgepipe_core::record::{DataRecord, JsonOptions};
use edgepipe_core::transform::Pipeline;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|error| panic!("reading fixture {name}: {error}"))
}

fn check_golden(name: &str, actual: &[u8]) {
    if std::env::var_os("EDGEPIPE_BLESS").is_some() {
        std::fs::write(fixture(name), actual).unwrap();
        return;
    }
    let expected = read(name);
    assert!(
        expected == actual,
        "{name} differs.\nexpected:\n{}\nactual:\n{}",
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(actual)
    );
}

fn seed_records() -> Vec<DataRecord> {
    parse_jsonl(&read("seed_records.jsonl"))
        .map(|(line, result)| result.unwrap_or_else(|error| panic!("line {line}: {error}")))
        .collect()
}

#[test]
fn seed_records_serialize_to_the_expected_bytes() {
    let mut out = Vec::new();
    write_jsonl(&seed_records(), &mut out, &JsonOptions::default()).unwrap();
    check_golden("seed_records.expected.jsonl", &out);
}

#[test]
fn seed_records_through_the_golden_pipeline() {
    let config = String::from_utf8(read("golden_pipeline.json")).unwrap();
    let mut pipeline = Pipeline::from_json_str(&config).unwrap();
    let output = pipeline.process_batch(seed_records());

    let mut out = Vec::new();
    write_jsonl(&output.records, &mut out, &JsonOptions::default()).unwrap();
    check_golden("golden_output.jsonl", &out);

    let mut quarantine = Vec::new();
    for entry in &output.quarantined {
        entry
            .write_json(&mut quarantine, &JsonOptions::default())
            .unwrap();
        quarantine.push(b'\n');
    }
    check_golden("golden_quarantine.jsonl", &quarantine);

    let stats = pipeline.stats();
    assert_eq!(stats.len(), 6);
    assert_eq!(
        (stats[2].name.as_str(), stats[2].quarantined),
        ("validate_schema", 1)
    );
    for stage in stats {
        assert_eq!(
            stage.records_in,
            stage.records_out + stage.dropped + stage.quarantined
        );
    }
}

#[test]
fn our_output_reads_back_to_the_same_records() {
    let records = seed_records();
    let mut out = Vec::new();
    write_jsonl(&records, &mut out, &JsonOptions::default()).unwrap();
    let again: Vec<DataRecord> = parse_jsonl(&out).map(|(_, r)| r.unwrap()).collect();
    assert_eq!(again, records);
}
