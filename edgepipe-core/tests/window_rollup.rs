//! Rollups from finer aggregates: hourly windows computed from 10-second
//! aggregates that carry their state (`emit_state`, `input = "aggregates"`)
//! equal hourly windows computed from the raw readings.

use std::collections::BTreeMap;

use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};
use edgepipe_core::window::{
    Aggregate, FieldState, InputKind, WindowConfig, WindowOperator, WindowOutput, WindowSnapshot,
};
use proptest::prelude::*;

const MS: i64 = 1_000_000;
const AGGREGATES: &[&str] = &[
    "count", "sum", "min", "max", "mean", "variance", "stddev", "first", "last", "rate", "rms",
    "p50", "p99",
];

#[derive(Clone, Debug)]
struct Reading {
    device: usize,
    time: i64,
    x: f64,
    y: Option<f64>,
}

fn record(reading: &Reading) -> DataRecord {
    let mut payload: Payload = [("x", Value::Float(reading.x))].into_iter().collect();
    if let Some(y) = reading.y {
        payload.insert("y", Value::Float(y));
    }
    DataRecord {
        record_id: "r".into(),
        device_id: format!("dev-{}", reading.device).into(),
        timestamp: Timestamp::from_unix_nanos(reading.time),
        data_type: "sensors".into(),
        payload,
        metadata: [("site", "f1")]
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect(),
    }
}

/// About three hours of readings from three devices: mostly a few seconds
/// apart, now and then minutes, out of order within the 2 s lateness. The
/// position in ns keeps timestamps unique, so `first`/`last` have no ties.
fn stream() -> impl Strategy<Value = Vec<Reading>> {
    let step = prop_oneof![4 => 0i64..5_000, 1 => 0i64..400_000];
    let value = prop_oneof![-1e3..1e3f64, Just(0.0), (-3i32..3).prop_map(f64::from)];
    prop::collection::vec(
        (
            0usize..3,
            step,
            0i64..2_000,
            value,
            prop::option::of(0.0..100.0f64),
        ),
        1..300,
    )
    .prop_map(|steps| {
        let mut clocks = [1_767_225_600_000 * MS; 3];
        steps
            .into_iter()
            .enumerate()
            .map(|(index, (device, advance_ms, back_ms, x, y))| {
                clocks[device] += advance_ms * MS;
                Reading {
                    device,
                    time: clocks[device] - back_ms * MS + index as i64,
                    x,
                    y,
                }
            })
            .collect()
    })
}

/// The same lateness as the finer stage: then neither path finds a reading
/// late (the stream is never more than 2 s behind), and both see the same ones.
fn hourly() -> WindowConfig {
    WindowConfig {
        allowed_lateness_seconds: 2.0,
        aggregates: AGGREGATES.iter().map(|name| name.to_string()).collect(),
        output_data_type: "{data_type}.hourly".into(),
        ..WindowConfig::tumbling(3600.0)
    }
}

fn ten_seconds() -> WindowConfig {
    WindowConfig {
        allowed_lateness_seconds: 2.0,
        aggregates: vec!["mean".into(), "p99".into()],
        ..WindowConfig::tumbling(10.0)
    }
    .with_emit_state(true)
}

/// Hourly from raw readings, and hourly from the 10 s aggregates fed to the
/// rollup as they are emitted; also returns those 10 s aggregates.
fn both_ways(
    readings: &[Reading],
    split: usize,
) -> (Vec<DataRecord>, Vec<DataRecord>, Vec<DataRecord>) {
    let mut direct = hourly().with_series_per_field(false).build().unwrap();
    let config = hourly()
        .with_input(InputKind::Aggregates)
        .with_emit_state(true);
    let mut fine = ten_seconds().build().unwrap();
    let mut rollup = config.build().unwrap();
    let (mut raw_out, mut fine_out, mut rolled) = (
        WindowOutput::new(),
        WindowOutput::new(),
        WindowOutput::new(),
    );
    let mut fine_records = Vec::new();
    for (index, reading) in readings.iter().enumerate() {
        let record = record(reading);
        direct.push(&record, &mut raw_out);
        fine.push(&record, &mut fine_out);
        for aggregate in fine_out.aggregates.drain(..) {
            rollup.push(&aggregate, &mut rolled);
            fine_records.push(aggregate);
        }
        if index == split {
            // The rollup's own state survives a restart like any window's.
            let bytes = rollup.snapshot().to_json().unwrap();
            rollup = WindowOperator::restore(WindowSnapshot::from_json(&bytes).unwrap()).unwrap();
        }
    }
    direct.flush(&mut raw_out);
    fine.flush(&mut fine_out);
    for aggregate in fine_out.aggregates.drain(..) {
        rollup.push(&aggregate, &mut rolled);
        fine_records.push(aggregate);
    }
    rollup.flush(&mut rolled);
    assert!(
        rolled.rejected.is_empty() && rolled.late.is_empty(),
        "{:?}",
        rolled.rejected
    );
    (raw_out.aggregates, rolled.aggregates, fine_records)
}

fn by_window(records: Vec<DataRecord>) -> BTreeMap<(String, i64), DataRecord> {
    records
        .into_iter()
        .map(|record| {
            (
                (record.device_id.to_string(), record.timestamp.unix_nanos()),
                record,
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn hourly_from_ten_second_aggregates_equals_hourly_from_raw(
        readings in stream(),
        split in 0usize..300,
    ) {
        let (raw, rolled, fine) = both_ways(&readings, split);
        let (raw, rolled) = (by_window(raw), by_window(rolled));
        prop_assert_eq!(raw.keys().collect::<Vec<_>>(), rolled.keys().collect::<Vec<_>>());
        for (key, from_raw) in &raw {
            let from_fine = &rolled[key];
            // The same series, window and revision: the same id and type.
            prop_assert_eq!(&from_fine.record_id, &from_raw.record_id);
            prop_assert_eq!(&from_fine.data_type, "sensors.hourly");
            for meta in ["site", "window.start", "window.end", "window.readings"] {
                prop_assert_eq!(from_fine.metadata.get(meta), from_raw.metadata.get(meta), "{}", meta);
            }
            for field in ["x", "y"] {
                for name in AGGREGATES {
                    let output = format!("{field}.{name}");
                    let (a, b) = (from_raw.payload.get(&output), from_fine.payload.get(&output));
                    match Aggregate::parse(name).unwrap() {
                        // Exact: counts, extremes, first/last, and quantiles, because
                        // sketch bins merge exactly.
                        Aggregate::Count | Aggregate::Min | Aggregate::Max | Aggregate::First
                        | Aggregate::Last | Aggregate::Quantile(_) => {
                            prop_assert_eq!(a, b, "{}", output);
                        }
                        _ => {
                            let (a, b) = (a.and_then(Value::as_f64), b.and_then(Value::as_f64));
                            prop_assert_eq!(a.is_some(), b.is_some(), "{}", output);
                            if let (Some(a), Some(b)) = (a, b) {
                                let scale = a.abs().max(1.0);
                                prop_assert!((a - b).abs() <= 1e-9 * scale, "{output}: {a} vs {b}");
                            }
                        }
                    }
                }
            }
        }

        // Through the records nothing is lost: the rollup's state is exactly
        // the merge of the 10 s states, in the order they were emitted.
        let mut merged: BTreeMap<(String, i64, &str), FieldState> = BTreeMap::new();
        for record in &fine {
            let hour = record.timestamp.unix_nanos().div_euclid(3_600_000 * MS) * 3_600_000 * MS;
            for field in ["x", "y"] {
                if !record.payload.contains_key(&format!("{field}.state.count")) {
                    continue;
                }
                let state = FieldState::read_state(field, &record.payload, 2048).unwrap();
                merged
                    .entry((record.device_id.to_string(), hour, field))
                    .and_modify(|known| known.merge(&state))
                    .or_insert(state);
            }
        }
        for ((device, hour, field), state) in &merged {
            let from_fine = &rolled[&(device.clone(), *hour)];
            prop_assert_eq!(&FieldState::read_state(field, &from_fine.payload, 2048).unwrap(), state);
        }
    }
}

#[test]
fn bad_or_repeated_aggregate_records_are_refused_with_a_reason() {
    let mut fine = ten_seconds().build().unwrap();
    let mut out = WindowOutput::new();
    for (second, x) in [(1, 1.0), (2, 3.0), (15, 4.0)] {
        fine.push(
            &record(&Reading {
                device: 0,
                time: 1_767_225_600_000 * MS + second * 1000 * MS,
                x,
                y: None,
            }),
            &mut out,
        );
    }
    fine.flush(&mut out);
    let good = out.aggregates[0].clone();
    assert_eq!(good.payload.get("x.state.count"), Some(&Value::Int(2)));
    assert!(
        good.payload
            .get("x.state.sketch")
            .and_then(Value::as_str)
            .is_some()
    );
    assert_eq!(
        good.metadata.get("window.data_type").map(|v| v.as_str()),
        Some("sensors")
    );

    let mut rollup = hourly().with_input(InputKind::Aggregates).build().unwrap();
    let mut rolled = WindowOutput::new();
    let mut revision = good.clone();
    revision.metadata.insert("window.revision", "1".into());
    let mut inverted = good.clone();
    inverted.payload.insert("x.state.min", Value::Float(10.0));
    let mut bad_sketch = good.clone();
    bad_sketch.payload.insert(
        "x.state.sketch",
        Value::String("0.01/2048/0/1/3/0:1/".into()),
    );
    let mut no_count = good.clone();
    no_count.payload.insert("x.state.count", Value::Int(0));
    let raw = record(&Reading {
        device: 0,
        time: 0,
        x: 1.0,
        y: None,
    });
    for (input, code) in [
        (&revision, "window.revision_input"),
        (&inverted, "window.bad_state"),
        (&bad_sketch, "window.bad_state"),
        (&no_count, "window.bad_state"),
        (&raw, "window.no_state"),
    ] {
        rollup.push(input, &mut rolled);
        let rejected = rolled.rejected.pop().expect("refused");
        assert_eq!(rejected.reason.code, code, "{:?}", rejected.reason);
    }
    rollup.push(&good, &mut rolled);
    rollup.flush(&mut rolled);
    assert_eq!(rolled.aggregates.len(), 1);
    assert_eq!(
        rolled.aggregates[0].payload.get("x.count"),
        Some(&Value::Int(2))
    );

    let error = hourly()
        .with_input(InputKind::Aggregates)
        .with_series_per_field(true);
    assert!(error.build().is_ok());
    let error = WindowConfig::session(5.0)
        .with_input(InputKind::Aggregates)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("window.input"), "{error}");
}
