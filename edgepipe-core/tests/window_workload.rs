//! The shared workload's shape (devices reporting every 100 ms, tick by tick,
//! random walks rounded like the seed's sensors), in order, through 10 s
//! tumbling windows: exactly the count/min/max, and the mean to 1e-9, of a
//! straightforward per-device computation, and every reading in exactly one
//! emitted window after `flush()`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use edgepipe_core::record::json::parse_jsonl;
use edgepipe_core::window::{WindowConfig, WindowOutput};

const DEVICES: usize = 200;
const TICKS: i64 = 355; // 35.5 s: the last window is partial and only flush emits it
const FIELDS: [&str; 3] = ["temperature", "humidity", "pressure"];

/// JSON Lines in the workload's format, from a fixed-seed generator.
fn workload() -> String {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut walks: Vec<[f64; 3]> = (0..DEVICES).map(|_| [22.0, 50.0, 1012.0]).collect();
    let mut text = String::new();
    for tick in 0..TICKS {
        let millis = tick * 100;
        for (device, walk) in walks.iter_mut().enumerate() {
            walk[0] += random() * 0.2;
            walk[1] += random();
            walk[2] += random();
            let _ = writeln!(
                text,
                r#"{{"record_id":"{device}-{tick}","device_id":"dev-{device:04}","timestamp":"2026-01-01T00:00:{:02}.{:03}Z","data_type":"sensors","payload":{{"temperature":{:.2},"humidity":{:.1},"pressure":{:.1}}}}}"#,
                millis / 1000,
                millis % 1000,
                walk[0],
                walk[1],
                walk[2]
            );
        }
    }
    text
}

#[derive(Default)]
struct Naive {
    count: u64,
    min: f64,
    max: f64,
    sum: f64,
}

#[test]
fn ten_second_windows_match_a_straightforward_computation() {
    let text = workload();
    let records: Vec<_> = parse_jsonl(text.as_bytes())
        .map(|(_, record)| record.unwrap())
        .collect();
    assert_eq!(records.len(), DEVICES * TICKS as usize);

    // The straightforward way: group everything by (device, window, field).
    let mut naive: BTreeMap<(String, i64, &str), Naive> = BTreeMap::new();
    for record in &records {
        let start = record.timestamp.unix_nanos().div_euclid(10_000_000_000) * 10_000_000_000;
        for field in FIELDS {
            let value = record.payload.get(field).and_then(|v| v.as_f64()).unwrap();
            let entry = naive
                .entry((record.device_id.to_string(), start, field))
                .or_insert(Naive {
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                    ..Naive::default()
                });
            entry.count += 1;
            entry.min = entry.min.min(value);
            entry.max = entry.max.max(value);
            entry.sum += value;
        }
    }

    let mut operator = WindowConfig::tumbling(10.0).build().unwrap();
    let mut out = WindowOutput::new();
    for record in &records {
        operator.push(record, &mut out);
    }
    let before_flush = out.aggregates.len();
    assert_eq!(
        before_flush,
        DEVICES * 3,
        "three complete windows per device"
    );
    operator.flush(&mut out);
    assert_eq!(
        out.aggregates.len(),
        DEVICES * 4,
        "flush emits the partial fourth"
    );

    let mut readings = 0;
    let mut seen = 0;
    for aggregate in &out.aggregates {
        let start = aggregate.timestamp.unix_nanos();
        for field in FIELDS {
            let expected = &naive[&(aggregate.device_id.to_string(), start, field)];
            let get = |name: &str| {
                aggregate
                    .payload
                    .get(&format!("{field}.{name}"))
                    .and_then(|v| v.as_f64())
            };
            assert_eq!(get("count"), Some(expected.count as f64));
            assert_eq!(get("min"), Some(expected.min));
            assert_eq!(get("max"), Some(expected.max));
            let mean = get("mean").unwrap();
            let reference = expected.sum / expected.count as f64;
            assert!(
                (mean - reference).abs() <= 1e-9 * reference.abs(),
                "{mean} vs {reference}"
            );
            seen += 1;
        }
        readings += aggregate
            .payload
            .get("temperature.count")
            .and_then(|v| v.as_f64())
            .unwrap() as usize;
    }
    assert_eq!(
        seen,
        naive.len(),
        "every (device, window, field) emitted once"
    );
    assert_eq!(
        readings,
        records.len(),
        "every reading in exactly one window"
    );
    let stats = operator.stats();
    assert_eq!(stats.records_aggregated, records.len() as u64);
    assert_eq!(stats.values_aggregated, 3 * records.len() as u64);
    assert_eq!(stats.late_dropped + stats.rejected, 0);
}
