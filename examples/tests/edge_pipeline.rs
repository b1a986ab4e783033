//! The main example, run as a user runs it: edge to cloud through an outage,
//! then the cloud's data lake read back.

use std::path::Path;
use std::process::Command;

use edgepipe_core::ingest::DataLakeStore;
use edgepipe_core::record::{DataRecord, Value};

fn run(args: &[&str]) -> (String, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_edge-pipeline"))
        .args(args)
        .args(["--out", out.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "edge-pipeline failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (stdout, out)
}

/// Every record in the data lake the example's ingest server wrote, readings
/// and window aggregates apart.
fn lake(out: &Path) -> (Vec<DataRecord>, Vec<DataRecord>) {
    DataLakeStore::read_all(&out.join("cloud").join("lake"))
        .unwrap()
        .into_iter()
        .partition(|record| !record.data_type.ends_with(".agg"))
}

#[test]
fn synthetic_fleet_reaches_the_lake_once_through_an_outage() {
    let (stdout, out) = run(&[
        "--records",
        "5000",
        "--devices",
        "50",
        "--glitch-every",
        "100",
        "--outage-seconds",
        "0.2",
    ]);
    assert!(stdout.contains("deadband"), "{stdout}");
    assert!(stdout.contains("the ingest server goes away"), "{stdout}");
    assert!(stdout.contains("the ingest server is back"), "{stdout}");
    assert!(
        stdout.contains("lost: 0   stored twice: 0   unexpected: 0"),
        "{stdout}"
    );

    let (forwarded, aggregates) = lake(out.path());
    let mut ids: Vec<&str> = forwarded
        .iter()
        .chain(&aggregates)
        .map(|r| r.record_id.as_str())
        .collect();
    let stored = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), stored, "a record stored twice");
    // Windows of 10 s per device: every device has at least one aggregate.
    let devices: std::collections::HashSet<&str> =
        aggregates.iter().map(|r| r.device_id.as_str()).collect();
    assert_eq!(devices.len(), 50);
    // The deadband forwards a fraction of the 4,950 good readings, at least one per device.
    assert!(
        forwarded.len() >= 50 && forwarded.len() < 4950,
        "{}",
        forwarded.len()
    );
    for record in &forwarded {
        assert_eq!(
            record.metadata.get("region").map(|v| v.as_str()),
            Some("us-west")
        );
        assert!(!record.payload.contains_key("temperature"));
        let celsius = record
            .payload
            .get("temperature_c")
            .and_then(Value::as_f64)
            .unwrap();
        let fahrenheit = record
            .payload
            .get("temperature_f")
            .and_then(Value::as_f64)
            .unwrap();
        assert!((fahrenheit - (celsius * 1.8 + 32.0)).abs() < 1e-9);
    }

    let quarantine = std::fs::read_to_string(out.path().join("edge-quarantine.jsonl")).unwrap();
    let reasons: Vec<serde_json::Value> = quarantine
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(reasons.len(), 50, "one glitch in 100 readings");
    let below = reasons
        .iter()
        .filter(|r| r["reason"]["code"] == "schema.below_min")
        .count();
    let wrong = reasons
        .iter()
        .filter(|r| r["reason"]["code"] == "schema.wrong_type")
        .count();
    assert_eq!((below, wrong), (25, 25));
    assert!(
        reasons
            .iter()
            .all(|r| r["reason"]["field"] == "temperature" && r["stage"] == "validate_schema")
    );
}

#[test]
fn a_jsonl_file_with_a_bad_line_is_processed_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    let good = r#"{"record_id":"r1","device_id":"d1","timestamp":"2026-01-01T00:00:00Z","data_type":"sensors","payload":{"temperature":21.5,"humidity":40.0,"pressure":1000.0}}"#;
    std::fs::write(
        &input,
        format!(
            "{good}\n{{\"broken\n{}\n",
            good.replace("r1", "r2").replace("00:00Z", "00:30Z")
        ),
    )
    .unwrap();
    let (stdout, out) = run(&["--input", input.to_str().unwrap()]);
    assert!(stdout.contains("(1 unreadable)"), "{stdout}");
    // The second good reading is 30 s later: the heartbeat forwards it, and each
    // closes a window of its own.
    let (forwarded, aggregates) = lake(out.path());
    assert_eq!(forwarded.len(), 2);
    assert_eq!(aggregates.len(), 2);
}
