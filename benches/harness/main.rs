//! `edgepipe-bench`: edgepipe's end-to-end benchmark harness.
//!
//! Runs named scenarios on JSON Lines in the shared workload format and prints one
//! JSON object on stdout (with `--table`, a human table on stderr as well):
//!
//! ```text
//! cargo run --release -p edgepipe-benches --bin edgepipe-bench -- \
//!     --input workload.jsonl --records 200000 --scenario all --table
//! ```
//!
//! | scenario | what |
//! | --- | --- |
//! | `s1-seed` | parse → add_metadata → 100-record batches → JSON (the seed's bytes) → gzip-6 → sha256 → durable enqueue, synced (group commit) |
//! | `s1-native` | the same path in edgepipe's best configuration: columnar codec, lz4, 10 s / 1 MiB batches |
//! | `s2` | 10 s tumbling windows per device, count/min/max/mean of every field, flushed at the end |
//! | `s3` | the `s1-seed` batches delivered over loopback HTTP to edgepipe's ingest server |
//! | `bandwidth` | bytes per record for every codec × compression × batch policy, with the workload's UUIDs and with sequence ids |
//! | `kafka-batches`, `kafka-records` | the `s1-seed` batches drained from a durable queue through the Kafka sink to `--kafka-brokers`, one Kafka record per batch / per reading (`kafka` runs both; `all` includes them only when a broker is given) |
//! | `nats` | the `s1-seed` batches delivered through `NatsSink` to NATS JetStream at `--nats-url` (skipped by `all` without it) |
//!
//! Options: `--input FILE` (default: the same model generated in-process),
//! `--records N` (the first N lines), `--scenario NAME` (repeatable; `all`),
//! `--queue-dir DIR` (where the queues go, so a run chooses its disk; default a
//! temporary directory), `--nats-url URL` (the `nats` scenario's server), `--table`. It reads nothing but its input and writes only
//! under the queue directory and a temporary directory, both emptied on exit.
//!
//! Every scenario ends with an untimed check of its output (the queue drained
//! and every batch decoded, the windows' counts summed, the server's count), so a
//! figure is never reported for a run that lost or mangled records.

mod scenarios;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use edgepipe_benches::first_lines;
use scenarios::{Scenario, ScenarioReport};
use serde_json::json;

const USAGE: &str = "usage: edgepipe-bench [--input FILE] [--records N] [--scenario NAME]... \
[--queue-dir DIR] [--kafka-brokers ADDR] [--nats-url URL] [--table]
scenarios: s1-seed s1-native s2 s3 bandwidth kafka-batches kafka-records kafka nats all
(default all; the kafka scenarios only with --kafka-brokers, nats only with --nats-url)";

#[derive(Debug)]
struct Options {
    input: Option<PathBuf>,
    records: Option<usize>,
    scenarios: Vec<Scenario>,
    queue_dir: Option<PathBuf>,
    nats_url: Option<String>,
    table: bool,
    kafka_brokers: Option<String>,
}

fn parse_options(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        input: None,
        records: None,
        scenarios: Vec::new(),
        queue_dir: None,
        nats_url: None,
        table: false,
        kafka_brokers: None,
    };
    let mut all = false;
    let mut nats_named = false;
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--table" {
            options.table = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--input" => options.input = Some(PathBuf::from(value)),
            "--records" => {
                let records = value
                    .parse()
                    .map_err(|_| format!("--records takes a number, not {value:?}"))?;
                options.records = Some(records);
            }
            "--scenario" if value == "all" => {
                all = true;
                options.scenarios.extend(Scenario::ALL);
            }
            "--scenario" if value == "kafka" => options.scenarios.extend(Scenario::KAFKA),
            "--scenario" if value == "nats" => {
                nats_named = true;
                options.scenarios.push(Scenario::Nats);
            }
            "--scenario" => options.scenarios.push(
                Scenario::from_name(&value).ok_or_else(|| format!("unknown scenario {value:?}"))?,
            ),
            "--queue-dir" => options.queue_dir = Some(PathBuf::from(value)),
            "--kafka-brokers" => options.kafka_brokers = Some(value),
            "--nats-url" => options.nats_url = Some(value),
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    if options.scenarios.is_empty() {
        all = true;
        options.scenarios.extend(Scenario::ALL);
    }
    // `all` takes the Kafka scenarios only when there is a broker to run them against.
    if all && options.kafka_brokers.is_some() {
        options.scenarios.extend(Scenario::KAFKA);
    }
    if options.nats_url.is_none() {
        if nats_named {
            return Err("--scenario nats needs --nats-url URL".into());
        }
        // `all` runs what needs no outside server.
        options
            .scenarios
            .retain(|scenario| *scenario != Scenario::Nats);
    }
    let mut seen = Vec::new();
    options.scenarios.retain(|scenario| {
        let first = !seen.contains(scenario);
        seen.push(*scenario);
        first
    });
    Ok(options)
}

/// The input lines, and a description of where they came from.
fn load_input(options: &Options) -> Result<(Vec<u8>, serde_json::Value), String> {
    match &options.input {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|error| format!("reading {}: {error}", path.display()))?;
            let bytes = match options.records {
                Some(records) => first_lines(bytes, records),
                None => bytes,
            };
            Ok((bytes, json!({"file": path.display().to_string()})))
        }
        None => {
            let records = options.records.unwrap_or(200_000);
            let spec = edgepipe_examples::workload::WorkloadSpec::default();
            Ok((
                edgepipe_examples::workload::jsonl(spec, records),
                json!({"generated": "the shared workload's model, in-process"}),
            ))
        }
    }
}

fn run(options: &Options) -> Result<serde_json::Value, String> {
    let (input, source) = load_input(options)?;
    let lines = input
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
        .count();
    let scratch = tempfile::tempdir().map_err(|error| format!("a temporary directory: {error}"))?;
    let queue_root = options
        .queue_dir
        .clone()
        .unwrap_or_else(|| scratch.path().join("queues"));
    let mut reports = Vec::new();
    for scenario in &options.scenarios {
        // Each scenario has a fresh directory of its own, removed when it ends so a
        // long run does not fill the disk it measures.
        let dir = queue_root.join(format!("edgepipe-bench-{}", scenario.name()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|error| format!("clearing {}: {error}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .map_err(|error| format!("creating {}: {error}", dir.display()))?;
        eprintln!("edgepipe-bench: running {}", scenario.name());
        let report = scenario
            .run(
                &input,
                &dir,
                scratch.path(),
                options.kafka_brokers.as_deref(),
                options.nats_url.as_deref(),
            )
            .map_err(|error| format!("scenario {}: {error}", scenario.name()))?;
        let _ = std::fs::remove_dir_all(&dir);
        reports.push(report);
    }
    if options.table {
        print_table(&reports);
    }
    Ok(json!({
        "edgepipe": env!("CARGO_PKG_VERSION"),
        "input": source,
        "records": lines,
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "scenarios": reports.iter().map(ScenarioReport::to_json).collect::<Vec<_>>(),
    }))
}

fn print_table(reports: &[ScenarioReport]) {
    let mut out = std::io::stderr().lock();
    let _ = writeln!(
        out,
        "\n{:<10} {:>10} {:>12} {:>9} {:>9} {:>12} {:>10}",
        "scenario", "records", "records/s", "cpu s", "rss MiB", "bytes out", "B/record"
    );
    for report in reports {
        let _ = writeln!(
            out,
            "{:<10} {:>10} {:>12.0} {:>9.2} {:>9.1} {:>12} {:>10.2}",
            report.scenario.name(),
            report.records,
            report.records_per_second(),
            report.cost.cpu_seconds,
            report.cost.peak_rss_bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0),
            report.bytes_out,
            report.bytes_per_record(),
        );
    }
    for report in reports.iter().filter(|report| !report.rows.is_empty()) {
        let _ = writeln!(
            out,
            "\nbytes per record: {:<11} {:<8} {:>12} {:>12}",
            "codec", "compr.", "policy", "uuid / seq"
        );
        for pair in report.rows.chunks(2) {
            let (row, sequenced) = (&pair[0], pair.get(1).unwrap_or(&pair[0]));
            let _ = writeln!(
                out,
                "                  {:<11} {:<8} {:>12} {:>6.2} / {:<6.2}",
                row["codec"].as_str().unwrap_or(""),
                row["compression"].as_str().unwrap_or(""),
                row["batch_policy"].as_str().unwrap_or(""),
                row["bytes_per_record"].as_f64().unwrap_or(0.0),
                sequenced["bytes_per_record"].as_f64().unwrap_or(0.0),
            );
        }
    }
}

fn main() -> ExitCode {
    let options = match parse_options(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("edgepipe-bench: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("edgepipe-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
