//! The small examples, run as a user runs them: each exits 0 (each also asserts
//! its own round trip) and prints what its doc comment promises.

use std::process::Command;

fn run(program: &str) -> String {
    let output = Command::new(program).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn minimal_batcher_closes_batches_at_four_records_and_decodes_them() {
    let stdout = run(env!("CARGO_BIN_EXE_minimal-batcher"));
    let batches: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("batch "))
        .collect();
    assert_eq!(batches.len(), 2, "{stdout}");
    assert!(batches[0].contains(": 4 records"), "{stdout}");
    assert!(batches[1].contains(": 1 records"), "{stdout}");
    assert!(
        stdout.contains("5 readings in, 5 decoded back, identical"),
        "{stdout}"
    );
}

#[test]
fn custom_transform_adds_the_dew_point_and_quarantines_bad_humidity() {
    let stdout = run(env!("CARGO_BIN_EXE_custom-transform"));
    let kept: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("keep       "))
        .map(|json| serde_json::from_str(json).unwrap())
        .collect();
    assert_eq!(kept.len(), 2, "{stdout}");
    assert_eq!(kept[0]["payload"]["dew_point"], 10.34);
    assert_eq!(kept[0]["metadata"]["site"], "factory-1");
    assert!(
        kept[1]["payload"].get("dew_point").is_none(),
        "not a climate reading"
    );
    assert!(stdout.contains("quarantine r2 by dew_point: 180 % is not a relative humidity"));
    assert!(
        stdout.contains("stage dew_point    in 3 out 2 quarantined 1"),
        "{stdout}"
    );
}

#[test]
fn custom_queue_is_drained_in_order_through_a_retry() {
    let stdout = run(env!("CARGO_BIN_EXE_custom-queue"));
    assert!(stdout.contains("enqueued 3 batches"), "{stdout}");
    assert_eq!(
        stdout.matches("retry: connection reset").count(),
        1,
        "{stdout}"
    );
    assert_eq!(stdout.matches("sent (Stored)").count(), 3, "{stdout}");
    assert!(
        stdout.contains("delivered 3 batches in order; queue: 0 pending, 3 acked, 1 retried"),
        "{stdout}"
    );
}
