//! Windows on the shared workload (scenario S2): 10 s tumbling windows, count/min/
//! max/mean of every field per device.
//!
//! - `window/preparsed`: records already in memory → aggregates; throughput in
//!   field updates (3 per reading). `window/naive` is the same result computed the
//!   simple way (every value kept per device and window, computed at the end),
//!   for a ratio measured in the same run.
//! - `window/jsonl_end_to_end`: JSON Lines bytes → records → window → aggregate
//!   JSON Lines; throughput in readings. `window/jsonl_end_to_end_parallel` parses
//!   with `parse_jsonl_parallel` and one helper thread (a 2-core gateway's
//!   second core), the windows staying on the caller's thread.
//! - `window/rollup_hourly`: hourly windows from the 10 s aggregates with their
//!   state (`emit_state`, `input = "aggregates"`); throughput in 10 s aggregates.
//! - Before criterion starts, the seed's Python window code (seed 001's
//!   `process_sensor_readings`, per device, every field) is run once with
//!   `python3` on the same bytes, and the Rust end-to-end path is timed the same
//!   way, so the printed ratio compares like with like. Skipped without python3.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgepipe_benches::workload_jsonl;
use edgepipe_core::record::json::{parse_jsonl, parse_jsonl_parallel, write_jsonl};
use edgepipe_core::record::{DataRecord, JsonOptions};
use edgepipe_core::window::{InputKind, WindowConfig, WindowOperator, WindowOutput};

const RECORDS: usize = 200_000;
const FIELDS: [&str; 3] = ["temperature", "humidity", "pressure"];

fn operator() -> WindowOperator {
    WindowConfig::tumbling(10.0).build().unwrap()
}

fn window_all(records: &[DataRecord]) -> usize {
    let mut operator = operator();
    let mut out = WindowOutput::new();
    for record in records {
        operator.push(record, &mut out);
    }
    operator.flush(&mut out);
    out.aggregates.len()
}

/// The 10 s aggregates of `records`, each carrying its fields' state.
fn ten_second_states(records: &[DataRecord]) -> Vec<DataRecord> {
    let mut operator = WindowConfig::tumbling(10.0)
        .with_emit_state(true)
        .build()
        .unwrap();
    let mut out = WindowOutput::new();
    for record in records {
        operator.push(record, &mut out);
    }
    operator.flush(&mut out);
    out.aggregates
}

/// Hourly count/min/max/mean from 10 s aggregates.
fn rollup_hourly(aggregates: &[DataRecord]) -> usize {
    let mut operator = WindowConfig::tumbling(3600.0)
        .with_input(InputKind::Aggregates)
        .build()
        .unwrap();
    let mut out = WindowOutput::new();
    for aggregate in aggregates {
        operator.push(aggregate, &mut out);
    }
    operator.flush(&mut out);
    assert!(out.rejected.is_empty());
    out.aggregates.len()
}

/// The simple way: keep every value, compute at the end.
fn naive(records: &[DataRecord]) -> usize {
    let mut groups: HashMap<(String, i64, &str), Vec<f64>> = HashMap::new();
    for record in records {
        let start = record.timestamp.unix_nanos().div_euclid(10_000_000_000);
        for field in FIELDS {
            if let Some(value) = record.payload.get(field).and_then(|v| v.as_f64()) {
                groups
                    .entry((record.device_id.to_string(), start, field))
                    .or_default()
                    .push(value);
            }
        }
    }
    let mut checksum = 0.0;
    for values in groups.values() {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        checksum += min + max + mean + values.len() as f64;
    }
    black_box(checksum);
    groups.len()
}

/// JSONL in → aggregate JSONL out, parsing on `helpers` threads besides this
/// one (0: all on this thread); returns (aggregates, output bytes).
fn end_to_end(input: &[u8], output: &mut Vec<u8>, helpers: usize) -> (usize, usize) {
    let mut operator = operator();
    let mut out = WindowOutput::new();
    output.clear();
    parse_jsonl_parallel(input, helpers, |_, record| {
        if let Ok(record) = record {
            operator.push(record, &mut out);
        }
        if out.aggregates.len() >= 1024 {
            write_jsonl(&out.aggregates, output, &JsonOptions::default()).unwrap();
            out.aggregates.clear();
        }
    });
    operator.flush(&mut out);
    write_jsonl(&out.aggregates, output, &JsonOptions::default()).unwrap();
    (operator.stats().windows_emitted as usize, output.len())
}

/// Seed 001's time-windowed aggregation, applied per device to every field of
/// the workload (the S2 scenario of `shared/bench/README.md`).
const SEED_PYTHON: &str = r#"
import json, sys, time
from collections import defaultdict
from datetime import datetime

data_buffer = defaultdict(list)
WINDOW_SIZE_SECONDS = 10
emitted = []

def publish_to_message_broker(payload):
    emitted.append(payload)

def process_sensor_readings(device_id, value, timestamp):
    data_buffer[device_id].append((timestamp, value))
    timestamps = [ts for ts, _ in data_buffer[device_id]]
    if timestamps and (max(timestamps) - min(timestamps) >= WINDOW_SIZE_SECONDS):
        values = [val for _, val in data_buffer[device_id]]
        aggregated_payload = {"device_id": device_id, "window_start": min(timestamps),
            "window_end": max(timestamps),
            "avg_value": {k: sum(v[k] for v in values) / len(values) for k in values[0]},
            "min_value": {k: min(v[k] for v in values) for k in values[0]},
            "max_value": {k: max(v[k] for v in values) for k in values[0]},
            "sample_count": len(values)}
        data_buffer[device_id].clear()
        publish_to_message_broker(aggregated_payload)

lines = sys.stdin.buffer.read().splitlines()
start = time.perf_counter()
for line in lines:
    record = json.loads(line)
    ts = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
    process_sensor_readings(record["device_id"], record["payload"], ts)
elapsed = time.perf_counter() - start
print(f"{len(lines)} {elapsed} {len(emitted)}")
"#;

fn seed_python(input: &[u8]) -> Option<(f64, usize)> {
    let mut child = Command::new("python3")
        .args(["-c", SEED_PYTHON])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(input).ok()?;
    let output = child.wait_with_output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let mut parts = text.split_whitespace();
    let lines: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    let emitted: usize = parts.next()?.parse().ok()?;
    Some((lines / seconds, emitted))
}

fn bench(c: &mut Criterion) {
    let (input, source) = workload_jsonl(RECORDS);
    eprintln!("workload: {source:?}, {} bytes", input.len());
    let records: Vec<DataRecord> = parse_jsonl(&input)
        .filter_map(|(_, record)| record.ok())
        .collect();
    assert_eq!(records.len(), RECORDS);

    // Same-run comparison with the seed's Python, timed the same way (best of 3 for Rust).
    let mut output = Vec::new();
    let best_of_3 = |helpers: usize, output: &mut Vec<u8>| {
        (0..3)
            .map(|_| {
                let start = Instant::now();
                black_box(end_to_end(&input, output, helpers));
                RECORDS as f64 / start.elapsed().as_secs_f64()
            })
            .fold(0.0, f64::max)
    };
    let rust = best_of_3(0, &mut output);
    let rust_parallel = best_of_3(1, &mut output);
    let (windows, bytes_out) = end_to_end(&input, &mut output, 0);
    let parallel_output = {
        let mut parallel = Vec::new();
        end_to_end(&input, &mut parallel, 1);
        parallel
    };
    assert_eq!(parallel_output, output, "parallel parsing changes nothing");
    eprintln!(
        "reduction: {RECORDS} readings -> {windows} aggregates ({:.1} readings per aggregate), \
         {} -> {bytes_out} bytes of JSON Lines ({:.1}x)",
        RECORDS as f64 / windows as f64,
        input.len(),
        input.len() as f64 / bytes_out as f64
    );
    match seed_python(&input) {
        Some((python, emitted)) => eprintln!(
            "JSONL -> 10 s windows: seed Python {python:.0} records/s ({emitted} windows \
             emitted, partial ones never); edgepipe {rust:.0} records/s, ratio {:.1}x; \
             parsing on two threads {rust_parallel:.0} records/s, ratio {:.1}x",
            rust / python,
            rust_parallel / python
        ),
        None => eprintln!("python3 not available: seed comparison skipped"),
    }

    let mut group = c.benchmark_group("window");
    group.sample_size(10);
    group.throughput(Throughput::Elements((RECORDS * FIELDS.len()) as u64));
    group.bench_function("preparsed", |b| b.iter(|| window_all(&records)));
    group.bench_function("naive", |b| b.iter(|| naive(&records)));
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("jsonl_end_to_end", |b| {
        let mut output = Vec::with_capacity(input.len() / 8);
        b.iter(|| end_to_end(&input, &mut output, 0))
    });
    group.bench_function("jsonl_end_to_end_parallel", |b| {
        let mut output = Vec::with_capacity(input.len() / 8);
        b.iter(|| end_to_end(&input, &mut output, 1))
    });
    let states = ten_second_states(&records);
    let mut state_bytes = Vec::new();
    write_jsonl(&states, &mut state_bytes, &JsonOptions::default()).unwrap();
    eprintln!(
        "with emit_state: {} aggregates, {} bytes of JSON Lines ({:.1}x fewer than the readings)",
        states.len(),
        state_bytes.len(),
        input.len() as f64 / state_bytes.len() as f64
    );
    group.throughput(Throughput::Elements(states.len() as u64));
    group.bench_function("rollup_hourly", |b| b.iter(|| rollup_hourly(&states)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
