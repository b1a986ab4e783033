//! `edgepipe-bench` end to end on a small slice of the shared workload's model:
//! every scenario runs, its untimed check passes (the queue drained and every
//! batch decoded, the windows' counts, the server's count), the report carries
//! the figures and configuration, and nothing is left behind.

use std::process::Command;

#[path = "../../edgepipe-core/tests/kafka_support/mod.rs"]
mod kafka_support;
#[path = "../../edgepipe-core/tests/nats_support/mod.rs"]
mod nats_support;

const RECORDS: usize = 3_000;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgepipe-bench"))
        .args(args)
        .output()
        .expect("running edgepipe-bench")
}

fn scenario<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|scenario| scenario["scenario"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

#[test]
fn every_scenario_runs_and_checks_its_output() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("workload.jsonl");
    // More lines than asked for: --records takes the first N.
    let spec = edgepipe_examples::workload::WorkloadSpec::default();
    std::fs::write(
        &input,
        edgepipe_examples::workload::jsonl(spec, RECORDS + 500),
    )
    .unwrap();
    let queues = work.path().join("queues");
    let output = run(&[
        "--input",
        input.to_str().unwrap(),
        "--records",
        &RECORDS.to_string(),
        "--scenario",
        "all",
        "--queue-dir",
        queues.to_str().unwrap(),
        "--table",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "edgepipe-bench failed:\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("stdout is not one JSON object ({error}):\n{stderr}"));
    assert_eq!(report["records"], RECORDS);
    assert!(
        stderr.contains("records/s"),
        "--table printed no table:\n{stderr}"
    );

    for name in ["s1-seed", "s1-native", "s2", "s3", "bandwidth"] {
        let result = scenario(&report, name);
        for figure in ["records_per_second", "cpu_seconds", "seconds", "bytes_out"] {
            assert!(
                result[figure].as_f64().is_some_and(|value| value > 0.0),
                "{name}.{figure} in {result}"
            );
        }
        assert!(
            result["peak_rss_bytes"].as_u64().is_some_and(|rss| rss > 0),
            "{result}"
        );
        assert!(result["config"].is_object(), "{result}");
    }

    // S1: every record came back out of the queue, from checksummed batches.
    let seed = scenario(&report, "s1-seed");
    assert_eq!(seed["verified"]["records"], RECORDS);
    assert_eq!(seed["verified"]["batches"], RECORDS / 100);
    assert_eq!(seed["config"]["codec"], "json-python");
    assert_eq!(seed["config"]["compression"], "gzip-6");
    let native = scenario(&report, "s1-native");
    assert_eq!(native["verified"]["records"], RECORDS);
    assert!(
        native["bytes_out"].as_u64() < seed["bytes_out"].as_u64(),
        "columnar + lz4 sends fewer bytes than the seed's gzip JSON"
    );

    // S2: 1,000 devices at 10 readings/s: 3,000 readings are 300 ms, one window each.
    let windows = scenario(&report, "s2");
    assert_eq!(windows["verified"]["readings_counted"], RECORDS);
    assert_eq!(windows["verified"]["aggregates"], 1_000);

    // S3: the server accepted every record, without a retry.
    let delivery = scenario(&report, "s3");
    assert_eq!(delivery["verified"]["records_accepted"], RECORDS);
    assert_eq!(delivery["verified"]["batches_sent"], RECORDS / 100);
    assert_eq!(delivery["bytes_out"], seed["bytes_out"]);

    // Bandwidth: every codec × compression × policy × id kind, each decodable.
    let bandwidth = scenario(&report, "bandwidth");
    let codecs = bandwidth["config"]["codecs"].as_array().unwrap().len();
    let compressions = bandwidth["config"]["compressions"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(codecs, 5);
    assert!(compressions >= 3);
    let rows = bandwidth["rows"].as_array().unwrap();
    assert_eq!(rows.len(), codecs * compressions * 2 * 2);
    assert_eq!(
        bandwidth["config"]["seed_bytes_per_record"], seed["bytes_per_record"],
        "the table's seed row is the s1-seed path's bytes"
    );

    // Each scenario's directory is removed when it ends.
    let left: Vec<_> = std::fs::read_dir(&queues).unwrap().collect();
    assert!(left.is_empty(), "left behind in the queue dir: {left:?}");
}

/// The `nats` scenario against a `nats-server -js` the test starts (`apt-get install
/// nats-server`): every batch is in the stream once, and the stream is gone afterwards.
#[test]
fn the_nats_scenario_delivers_every_batch_to_jetstream() {
    let work = tempfile::tempdir().unwrap();
    let server = nats_support::NatsServer::start(&work.path().join("nats"));
    let input = work.path().join("workload.jsonl");
    let spec = edgepipe_examples::workload::WorkloadSpec::default();
    std::fs::write(&input, edgepipe_examples::workload::jsonl(spec, RECORDS)).unwrap();
    let output = run(&[
        "--input",
        input.to_str().unwrap(),
        "--scenario",
        "nats",
        "--nats-url",
        &server.url(),
        "--queue-dir",
        work.path().join("queues").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "edgepipe-bench failed:\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let nats = scenario(&report, "nats");
    assert_eq!(nats["records"], RECORDS);
    assert_eq!(nats["verified"]["stream_messages"], RECORDS / 100);
    assert_eq!(nats["verified"]["batches_sent"], RECORDS / 100);
    assert!(nats["records_per_second"].as_f64().is_some_and(|r| r > 0.0));

    // Without a URL, `all` leaves it out and naming it is refused.
    let named = run(&["--scenario", "nats", "--records", "10"]);
    assert_eq!(named.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&named.stderr).contains("--nats-url"));
}

#[test]
fn bad_arguments_are_refused_with_the_usage() {
    for args in [
        &["--scenario", "s9"][..],
        &["--records", "many"],
        &["--records"],
        &["--frobnicate", "1"],
    ] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("usage: edgepipe-bench"),
            "{args:?}: {stderr}"
        );
        assert!(output.stdout.is_empty());
    }
    let missing = run(&["--input", "no/such/file.jsonl"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/file.jsonl"));
}

/// `docs/bench/bytes-per-record.svg` is what `benches/chart.py` draws from the
/// committed report, `docs/bench/edgepipe-bench.json`: regenerating it is one
/// command, and the two cannot drift apart.
#[test]
fn the_committed_chart_is_drawn_from_the_committed_report() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tempfile::tempdir().unwrap();
    let svg = out.path().join("chart.svg");
    let status = Command::new("python3")
        .arg(root.join("benches/chart.py"))
        .arg(root.join("docs/bench/edgepipe-bench.json"))
        .arg(&svg)
        .status()
        .expect("python3 runs benches/chart.py (install Python 3)");
    assert!(status.success());
    let drawn = std::fs::read_to_string(&svg).unwrap();
    let committed = std::fs::read_to_string(root.join("docs/bench/bytes-per-record.svg")).unwrap();
    assert!(
        drawn == committed,
        "regenerate it: python3 benches/chart.py docs/bench/edgepipe-bench.json docs/bench/bytes-per-record.svg"
    );
    assert!(drawn.contains("columnar + lz4") && drawn.contains("json-python + gzip-6"));
}

/// The Kafka scenarios, small, against a tansu broker this test starts: both modes
/// drain the queue into the topic and read every record back before reporting.
#[test]
fn the_kafka_scenarios_run_against_a_broker() {
    let tansu = kafka_support::Tansu::start();
    let records = 1_000;
    let output = run(&[
        "--records",
        &records.to_string(),
        "--scenario",
        "kafka",
        "--kafka-brokers",
        &tansu.bootstrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "edgepipe-bench failed:\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for name in ["kafka-batches", "kafka-records"] {
        let result = scenario(&report, name);
        assert_eq!(result["verified"]["records_read_back"], records, "{result}");
        assert!(
            result["records_per_second"]
                .as_f64()
                .is_some_and(|r| r > 0.0),
            "{result}"
        );
    }
    assert_eq!(
        scenario(&report, "kafka-batches")["verified"]["kafka_records"],
        records / 100
    );
    assert_eq!(
        scenario(&report, "kafka-records")["verified"]["kafka_records"],
        records
    );
    // Without a broker, `all` leaves them out rather than failing.
    let names: Vec<&str> = ["kafka-batches", "kafka-records"].into();
    let without = run(&["--records", "200", "--scenario", "all"]);
    assert!(without.status.success());
    let report: serde_json::Value = serde_json::from_slice(&without.stdout).unwrap();
    for result in report["scenarios"].as_array().unwrap() {
        assert!(
            !names.contains(&result["scenario"].as_str().unwrap()),
            "{result}"
        );
    }
}
