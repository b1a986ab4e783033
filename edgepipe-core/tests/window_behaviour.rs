//! The window stage's contracts: late-data policies, idle timeouts, processing
//! time, bounded state, bad input, snapshot/restore, output shape and config.

use edgepipe_core::Error;
use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};
use edgepipe_core::transform::PipelineConfig;
use edgepipe_core::window::{
    LatePolicy, TimeMode, WindowConfig, WindowOperator, WindowOutput, WindowSnapshot,
};
use proptest::prelude::*;

const S: i64 = 1_000_000_000;
const T0: i64 = 1_767_225_600 * S; // 2026-01-01T00:00:00Z

fn reading(device: &str, seconds: f64, fields: &[(&str, Value)]) -> DataRecord {
    let payload: Payload = fields.iter().cloned().collect();
    DataRecord {
        record_id: "r".into(),
        device_id: device.into(),
        timestamp: Timestamp::from_unix_nanos(T0 + (seconds * 1e9) as i64),
        data_type: "sensors".into(),
        payload,
        metadata: [("site", "f1")]
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect(),
    }
}

fn temp(device: &str, seconds: f64, value: f64) -> DataRecord {
    reading(device, seconds, &[("temperature", Value::Float(value))])
}

fn meta<'a>(record: &'a DataRecord, key: &str) -> &'a str {
    record.metadata.get(key).map(|v| v.as_str()).unwrap_or("")
}

fn number(record: &DataRecord, field: &str) -> Option<f64> {
    record.payload.get(field).and_then(Value::as_f64)
}

#[test]
fn output_records_have_the_documented_shape_and_deterministic_ids() {
    let run = || {
        let mut operator = WindowConfig::tumbling(10.0).build().unwrap();
        let mut out = WindowOutput::new();
        for (t, v) in [(1.0, 20.0), (2.0, 22.0), (11.0, 25.0)] {
            operator.push(&temp("dev-1", t, v), &mut out);
        }
        out.aggregates
    };
    let first = run();
    assert_eq!(first, run(), "same input, same records and ids");
    let record = &first[0];
    assert_eq!(record.device_id, "dev-1");
    assert_eq!(record.data_type, "sensors.agg");
    assert_eq!(record.timestamp, Timestamp::from_unix_nanos(T0));
    assert_eq!(
        record.payload.keys().collect::<Vec<_>>(),
        [
            "temperature.count",
            "temperature.min",
            "temperature.max",
            "temperature.mean"
        ]
    );
    assert_eq!(
        record.payload.get("temperature.count"),
        Some(&Value::Int(2))
    );
    assert_eq!(number(record, "temperature.mean"), Some(21.0));
    assert_eq!(meta(record, "site"), "f1", "the series' labels are kept");
    assert_eq!(meta(record, "window.kind"), "tumbling");
    assert_eq!(meta(record, "window.start"), "2026-01-01T00:00:00Z");
    assert_eq!(meta(record, "window.end"), "2026-01-01T00:00:10Z");
    assert_eq!(meta(record, "window.revision"), "0");
    assert_eq!(meta(record, "window.readings"), "2");
    assert_eq!(meta(record, "window.closed_by"), "watermark");
    let id = uuid_parts(&record.record_id);
    assert_eq!(id, [8, 4, 4, 4, 12], "a UUID: {}", record.record_id);
    assert_eq!(&record.record_id[14..15], "8", "version 8");
    // The JSON form is the seed's record shape.
    let json = record.to_json().unwrap();
    assert_eq!(DataRecord::from_json(&json).unwrap(), *record);
}

fn uuid_parts(id: &str) -> Vec<usize> {
    id.split('-').map(str::len).collect()
}

#[test]
fn windows_close_on_the_watermark_only_after_the_allowed_lateness() {
    let mut operator = WindowConfig {
        allowed_lateness_seconds: 5.0,
        ..WindowConfig::tumbling(10.0)
    }
    .build()
    .unwrap();
    let mut out = WindowOutput::new();
    operator.push(&temp("d", 1.0, 1.0), &mut out);
    operator.push(&temp("d", 14.0, 2.0), &mut out);
    assert!(
        out.aggregates.is_empty(),
        "watermark 9 s has not passed 10 s"
    );
    operator.push(&temp("d", 8.0, 3.0), &mut out); // out of order, within lateness
    operator.push(&temp("d", 15.0, 4.0), &mut out); // watermark 10 s
    assert_eq!(out.aggregates.len(), 1);
    assert_eq!(number(&out.aggregates[0], "temperature.count"), Some(2.0));
    assert_eq!(number(&out.aggregates[0], "temperature.max"), Some(3.0));
}

#[test]
fn late_readings_are_dropped_and_counted_by_default() {
    let mut operator = WindowConfig::tumbling(10.0).build().unwrap();
    let mut out = WindowOutput::new();
    operator.push(&temp("d", 1.0, 1.0), &mut out);
    operator.push(&temp("d", 12.0, 2.0), &mut out);
    operator.push(&temp("d", 3.0, 9.0), &mut out);
    assert_eq!(out.aggregates.len(), 1);
    assert!(out.late.is_empty());
    let stats = operator.stats();
    assert_eq!((stats.late_dropped, stats.late_routed), (1, 0));
}

#[test]
fn late_readings_go_to_the_late_output_with_policy_output() {
    let mut operator = WindowConfig {
        late: LatePolicy::Output,
        ..WindowConfig::tumbling(10.0)
    }
    .build()
    .unwrap();
    let mut out = WindowOutput::new();
    operator.push(&temp("d", 1.0, 1.0), &mut out);
    operator.push(&temp("d", 12.0, 2.0), &mut out);
    let late = temp("d", 3.0, 9.0);
    operator.push(&late, &mut out);
    assert_eq!(out.late, [late]);
    assert_eq!(operator.stats().late_routed, 1);
}

#[test]
fn late_readings_emit_a_revision_with_the_same_key_and_the_full_aggregate() {
    let mut operator = WindowConfig {
        late: LatePolicy::Revise,
        revision_horizon_seconds: Some(60.0),
        ..WindowConfig::tumbling(10.0)
    }
    .build()
    .unwrap();
    let mut out = WindowOutput::new();
    operator.push(&temp("d", 1.0, 1.0), &mut out);
    operator.push(&temp("d", 12.0, 2.0), &mut out);
    operator.push(&temp("d", 3.0, 9.0), &mut out);
    operator.push(&temp("d", 4.0, 5.0), &mut out);
    assert_eq!(out.aggregates.len(), 3);
    let (first, revised) = (&out.aggregates[0], &out.aggregates[2]);
    assert_eq!(meta(revised, "window.revision"), "2");
    assert_eq!(meta(&out.aggregates[1], "window.revision"), "1");
    assert_eq!(meta(revised, "window.start"), meta(first, "window.start"));
    assert_eq!(meta(revised, "window.closed_by"), "late");
    assert_ne!(revised.record_id, first.record_id);
    assert_eq!(number(revised, "temperature.count"), Some(3.0));
    assert_eq!(number(revised, "temperature.mean"), Some(5.0));
    let stats = operator.stats();
    assert_eq!(
        (
            stats.late_revised,
            stats.revisions_emitted,
            stats.windows_emitted
        ),
        (2, 2, 1)
    );

    // Past the horizon a late reading is dropped and counted.
    operator.push(&temp("d", 200.0, 1.0), &mut out);
    operator.push(&temp("d", 5.0, 1.0), &mut out);
    assert_eq!(operator.stats().late_dropped, 1);
}

#[test]
fn idle_series_flush_when_the_caller_clock_passes_the_timeout() {
    let mut operator = WindowConfig {
        idle_timeout_seconds: Some(30.0),
        ..WindowConfig::tumbling(10.0)
    }
    .build()
    .unwrap();
    let mut out = WindowOutput::new();
    let clock = |seconds: i64| Timestamp::from_unix_nanos(T0 + seconds * S);
    operator.advance_to(clock(0), &mut out);
    operator.push(&temp("quiet", 1.0, 1.0), &mut out);
    operator.advance_to(clock(5), &mut out);
    operator.push(&temp("busy", 6.0, 1.0), &mut out);
    operator.advance_to(clock(29), &mut out);
    assert!(out.aggregates.is_empty());
    operator.advance_to(clock(30), &mut out);
    assert_eq!(out.aggregates.len(), 1);
    assert_eq!(out.aggregates[0].device_id, "quiet");
    assert_eq!(meta(&out.aggregates[0], "window.closed_by"), "idle");
    // A reading for the emitted window is now late, never a second revision 0.
    operator.push(&temp("quiet", 2.0, 1.0), &mut out);
    assert_eq!(operator.stats().late_dropped, 1);
    operator.advance_to(clock(35), &mut out);
    assert_eq!(out.aggregates.len(), 2);
}

#[test]
fn processing_time_windows_follow_the_caller_clock() {
    let mut operator = WindowConfig {
        time: TimeMode::Processing,
        ..WindowConfig::tumbling(10.0)
    }
    .build()
    .unwrap();
    let mut out = WindowOutput::new();
    operator.advance_to(Timestamp::from_unix_nanos(T0 + S), &mut out);
    // Event time is ignored: a reading stamped years ago lands in the current window.
    operator.push(&reading("d", -1e8, &[("x", Value::Int(4))]), &mut out);
    operator.push(&reading("d", 0.0, &[("x", Value::Int(6))]), &mut out);
    operator.advance_to(Timestamp::from_unix_nanos(T0 + 10 * S), &mut out);
    assert_eq!(out.aggregates.len(), 1);
    assert_eq!(out.aggregates[0].timestamp, Timestamp::from_unix_nanos(T0));
    assert_eq!(number(&out.aggregates[0], "x.mean"), Some(5.0));
    assert_eq!(meta(&out.aggregates[0], "window.closed_by"), "clock");
}

#[test]
fn state_stays_within_its_bounds_and_evictions_emit() {
    let mut operator = WindowConfig {
        max_series: 8,
        max_windows_per_series: 2,
        max_fields: 2,
        allowed_lateness_seconds: 1000.0,
        ..WindowConfig::tumbling(1.0)
    }
    .build()
    .unwrap();
    let mut out = WindowOutput::new();
    // 12 devices, 8 series with state: four evictions, whose tombstones let
    // the evicted devices' later windows through without re-emitting any key.
    for device in 0..12 {
        for second in 0..5 {
            let fields = [
                ("a", Value::Int(1)),
                ("b", Value::Int(2)),
                ("c", Value::Int(3)),
            ];
            operator.push(
                &reading(&format!("d{device}"), f64::from(second), &fields),
                &mut out,
            );
            let stats = operator.stats();
            assert!(stats.series <= 8);
            assert!(stats.open_windows <= 16);
        }
    }
    operator.flush(&mut out);
    let stats = operator.stats();
    assert!(stats.series_evicted > 0 && stats.windows_evicted > 0);
    assert_eq!(stats.fields_over_limit, 60, "field c of every reading");
    assert_eq!(stats.late_dropped, 0);
    // Nothing is lost: every reading is in exactly one emitted window.
    let total: f64 = out
        .aggregates
        .iter()
        .filter_map(|r| number(r, "a.count"))
        .sum();
    assert_eq!(total, 60.0);
    assert_eq!(stats.windows_emitted, out.aggregates.len() as u64);
}

#[test]
fn bad_input_is_counted_and_routed_never_poisoning_an_aggregate() {
    let mut operator = WindowConfig {
        fields: Some(vec!["temperature".into(), "humidity".into()]),
        ..WindowConfig::tumbling(10.0)
    }
    .build()
    .unwrap();
    let mut out = WindowOutput::new();
    operator.advance_to(Timestamp::from_unix_nanos(T0), &mut out);
    operator.push(&temp("d", 1.0, 20.0), &mut out);
    for value in [
        Value::Float(f64::NAN),
        Value::Float(f64::INFINITY),
        Value::from("hot"),
        Value::Null,
        Value::List(vec![]),
    ] {
        operator.push(&reading("d", 2.0, &[("temperature", value)]), &mut out);
    }
    operator.push(
        &reading("d", 3.0, &[("temperature", Value::Bool(true))]),
        &mut out,
    );
    // Mixed: the good field counts, the bad one is skipped.
    operator.push(
        &reading(
            "d",
            4.0,
            &[
                ("temperature", Value::Float(22.0)),
                ("humidity", Value::from("wet")),
            ],
        ),
        &mut out,
    );
    operator.push(&temp("d", 1e9, 1.0), &mut out); // far future
    let mut extreme = temp("d", 0.0, 1.0);
    for nanos in [i64::MIN, i64::MAX] {
        extreme.timestamp = Timestamp::from_unix_nanos(nanos);
        operator.push(&extreme, &mut out);
    }
    operator.push(
        &reading("d", 5.0, &[("status", Value::from("ok"))]),
        &mut out,
    );
    let codes: Vec<&str> = out.rejected.iter().map(|r| r.reason.code).collect();
    assert_eq!(
        codes,
        [
            "window.non_finite",
            "window.non_finite",
            "window.non_numeric",
            "window.non_numeric",
            "window.non_numeric",
            "window.future_timestamp",
            "window.timestamp_out_of_range",
            "window.future_timestamp",
        ]
    );
    operator.flush(&mut out);
    assert_eq!(out.aggregates.len(), 1);
    let record = &out.aggregates[0];
    assert_eq!(
        number(record, "temperature.count"),
        Some(3.0),
        "20, true (1), 22"
    );
    assert_eq!(number(record, "temperature.mean"), Some(43.0 / 3.0));
    let stats = operator.stats();
    assert_eq!(stats.non_finite_skipped, 2);
    assert_eq!(stats.non_numeric_skipped, 4);
    assert_eq!(stats.rejected, 8);
    assert_eq!(stats.records_ignored, 1);
    assert!(record.to_json().is_ok());
}

#[test]
fn extreme_timestamps_without_a_clock_never_panic() {
    for config in [
        WindowConfig::tumbling(10.0),
        WindowConfig::hopping(10.0, 1.0),
        WindowConfig::session(5.0),
        WindowConfig::count(2),
    ] {
        let mut operator = WindowConfig {
            allowed_lateness_seconds: 9.0e9,
            late: LatePolicy::Revise,
            ..config
        }
        .build()
        .unwrap();
        let mut out = WindowOutput::new();
        let mut record = temp("d", 0.0, 1.0);
        for nanos in [i64::MIN, i64::MAX, 0, i64::MIN + 1, i64::MAX - 1, -1] {
            record.timestamp = Timestamp::from_unix_nanos(nanos);
            operator.push(&record, &mut out);
        }
        operator.advance_to(Timestamp::from_unix_nanos(i64::MAX), &mut out);
        operator.flush(&mut out);
        for aggregate in &out.aggregates {
            assert!(aggregate.to_json().is_ok());
        }
    }
}

/// A stream with several devices, out-of-order readings, late ones and idle gaps.
fn mixed_stream() -> impl Strategy<Value = Vec<(u8, i64, f64, bool)>> {
    prop::collection::vec(
        (0u8..4, -3000i64..4000, -50.0..50.0f64, any::<bool>()),
        0..150,
    )
}

fn drive(
    operator: &mut WindowOperator,
    steps: &[(u8, i64, f64, bool)],
    position: &mut [i64; 4],
    out: &mut WindowOutput,
) {
    for &(device, step_ms, value, tick) in steps {
        let index = usize::from(device);
        position[index] += step_ms;
        let mut record = temp(
            &format!("d{device}"),
            position[index] as f64 / 1000.0,
            value,
        );
        // A second field now and then: with a series per field it has its own
        // watermark and windows.
        if tick {
            record.payload.insert("humidity", Value::Float(value * 0.5));
        }
        operator.push(&record, out);
        if tick {
            let now = T0 + position.iter().max().copied().unwrap_or(0) * 1_000_000;
            operator.advance_to(Timestamp::from_unix_nanos(now), out);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn snapshot_and_restore_mid_stream_gives_the_uninterrupted_output(
        steps in mixed_stream(),
        split in 0usize..150,
        kind in 0usize..4,
        late in prop_oneof![Just(LatePolicy::Drop), Just(LatePolicy::Output), Just(LatePolicy::Revise)],
        per_field in any::<bool>(),
    ) {
        let base = [
            WindowConfig::tumbling(2.0),
            WindowConfig::hopping(3.0, 1.0),
            WindowConfig::session(1.5),
            WindowConfig::count(3),
        ][kind].clone();
        let config = WindowConfig {
            allowed_lateness_seconds: 1.0,
            idle_timeout_seconds: Some(5.0),
            late,
            max_series: 3,
            aggregates: ["count", "mean", "stddev", "first", "last", "p90"].map(String::from).to_vec(),
            series_per_field: per_field,
            ..base
        };
        let split = split.min(steps.len());

        let mut whole = config.build().unwrap();
        let mut expected = WindowOutput::new();
        let mut position = [0i64; 4];
        drive(&mut whole, &steps, &mut position, &mut expected);
        whole.flush(&mut expected);

        let mut first = config.build().unwrap();
        let mut actual = WindowOutput::new();
        let mut position = [0i64; 4];
        drive(&mut first, &steps[..split], &mut position, &mut actual);
        let bytes = first.snapshot().to_json().unwrap();
        drop(first);
        let mut resumed = WindowOperator::restore(WindowSnapshot::from_json(&bytes).unwrap()).unwrap();
        drive(&mut resumed, &steps[split..], &mut position, &mut actual);
        resumed.flush(&mut actual);

        prop_assert_eq!(&actual.aggregates, &expected.aggregates);
        prop_assert_eq!(&actual.late, &expected.late);
        prop_assert_eq!(actual.rejected, expected.rejected);
        prop_assert_eq!(resumed.stats(), whole.stats());
        // Every aggregate key appears once per revision.
        let mut ids: Vec<&str> = expected.aggregates.iter().map(|r| r.record_id.as_str()).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        prop_assert_eq!(ids.len(), before);
    }
}

#[test]
fn malformed_snapshots_are_refused_with_a_typed_error() {
    for bad in [&b"{"[..], b"{}", br#"{"format":2}"#] {
        let result = WindowSnapshot::from_json(bad).and_then(WindowOperator::restore);
        assert!(matches!(result, Err(Error::Snapshot { .. })), "{result:?}");
    }
}

#[test]
fn config_errors_name_the_key() {
    let error = |text: &str| match WindowConfig::from_json_str(text).and_then(|c| c.build()) {
        Err(Error::Config { key, message }) => (key, message),
        other => panic!("expected a config error, got {other:?}"),
    };
    assert_eq!(error(r#"{"kind": "tumbling"}"#).0, "window.size_seconds");
    assert_eq!(error(r#"{"size_seconds": -1}"#).0, "window.size_seconds");
    assert_eq!(
        error(r#"{"size_seconds": 10, "aggregates": ["mean", "p200"]}"#).0,
        "window.aggregates[1]"
    );
    assert_eq!(
        error(r#"{"size_seconds": 10, "rules": {"t": ["nope"]}}"#).0,
        "window.rules.t[0]"
    );
    assert_eq!(
        error(r#"{"size_seconds": 10, "late": "later"}"#).0,
        "window.late"
    );
    let (key, message) = error(r#"{"size_seconds": 10, "sise": 1}"#);
    assert!(key.starts_with("window"), "{key}");
    assert!(message.contains("sise"), "{message}");
    assert_eq!(
        error(r#"{"kind": "hopping", "size_seconds": 10, "hop_seconds": 20}"#).0,
        "window.hop_seconds"
    );
    assert_eq!(error(r#"{"kind": "count", "count": 0}"#).0, "window.count");
}

#[test]
fn the_pipeline_config_carries_a_window_table() {
    let config = PipelineConfig::from_toml_str(
        r#"
        [[transforms]]
        type = "add_metadata"
        metadata = { site = "f1" }

        [window]
        kind = "tumbling"
        size_seconds = 3600
        rules = { temperature = ["max"], power = ["mean"], anomaly = ["sum"] }
        "#,
    )
    .unwrap();
    assert_eq!(config.transforms.len(), 1);
    assert_eq!(config.window.as_ref().unwrap().size_seconds, Some(3600.0));
    let error = PipelineConfig::from_json_str(r#"{"window": {"size_seconds": 0}}"#)
        .unwrap()
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("window.size_seconds"), "{error}");
    let error =
        PipelineConfig::from_json_str(r#"{"window": {"size_seconds": 1, "x": 1}}"#).unwrap_err();
    assert!(error.to_string().contains("window"), "{error}");
}

#[test]
fn rollup_rules_choose_aggregates_per_metric() {
    // Seed 004: CPU → AVG, temperature → MAX, power → AVG, anomalies → COUNT.
    let mut operator = WindowConfig {
        rules: [
            ("cpu", vec!["mean"]),
            ("temperature", vec!["max"]),
            ("power", vec!["mean"]),
            ("anomaly", vec!["sum"]),
        ]
        .into_iter()
        .map(|(field, aggregates)| {
            (
                field.to_string(),
                aggregates.into_iter().map(String::from).collect(),
            )
        })
        .collect(),
        output_data_type: "{data_type}.hourly".into(),
        ..WindowConfig::tumbling(3600.0)
    }
    .build()
    .unwrap();
    let mut out = WindowOutput::new();
    for (minute, cpu, temperature, anomaly) in [
        (0, 10, 40.0, false),
        (20, 30, 55.0, true),
        (40, 20, 45.0, true),
    ] {
        let fields = [
            ("cpu", Value::Int(cpu)),
            ("temperature", Value::Float(temperature)),
            ("power", Value::Float(100.0)),
            ("anomaly", Value::Bool(anomaly)),
        ];
        operator.push(&reading("gw", f64::from(minute) * 60.0, &fields), &mut out);
    }
    operator.flush(&mut out);
    let record = &out.aggregates[0];
    assert_eq!(record.data_type, "sensors.hourly");
    assert_eq!(
        record.payload.keys().collect::<Vec<_>>(),
        ["cpu.mean", "temperature.max", "power.mean", "anomaly.sum"]
    );
    assert_eq!(number(record, "cpu.mean"), Some(20.0));
    assert_eq!(number(record, "temperature.max"), Some(55.0));
    assert_eq!(number(record, "anomaly.sum"), Some(2.0));
}

#[test]
fn a_series_per_field_has_its_own_watermark_and_aggregate_records() {
    let mut operator = WindowConfig::tumbling(10.0)
        .with_series_per_field(true)
        .build()
        .unwrap();
    let mut out = WindowOutput::new();
    let both = |seconds: f64, t: f64, h: f64| {
        reading(
            "d",
            seconds,
            &[
                ("temperature", Value::Float(t)),
                ("humidity", Value::Float(h)),
            ],
        )
    };
    operator.push(&both(1.0, 20.0, 40.0), &mut out);
    operator.push(&temp("d", 2.0, 22.0), &mut out);
    // Only temperature moves on: its window closes, humidity's stays open.
    operator.push(&temp("d", 15.0, 30.0), &mut out);
    assert_eq!(out.aggregates.len(), 1);
    let temperature = out.aggregates[0].clone();
    let temperature = &temperature;
    assert_eq!(meta(temperature, "window.field"), "temperature");
    assert_eq!(meta(temperature, "site"), "f1");
    assert_eq!(number(temperature, "temperature.count"), Some(2.0));
    assert_eq!(
        temperature.payload.len(),
        4,
        "count, min, max, mean of one field"
    );
    // A humidity reading at 3 s is not late for humidity's own series.
    operator.push(
        &reading("d", 3.0, &[("humidity", Value::Float(42.0))]),
        &mut out,
    );
    assert_eq!(operator.stats().late_dropped, 0);
    operator.flush(&mut out);
    let humidity = out
        .aggregates
        .iter()
        .find(|record| meta(record, "window.field") == "humidity")
        .unwrap();
    assert_eq!(number(humidity, "humidity.count"), Some(2.0));
    assert_eq!(
        meta(humidity, "window.start"),
        meta(temperature, "window.start")
    );
    assert_ne!(
        humidity.record_id, temperature.record_id,
        "the field is part of the id"
    );
    let stats = operator.stats();
    assert_eq!(
        (stats.series, stats.records_in, stats.records_aggregated),
        (2, 4, 4)
    );

    // The option reads from a config as well.
    let config =
        WindowConfig::from_toml_str("kind = \"count\"\ncount = 2\nseries_per_field = true")
            .unwrap();
    assert!(config.series_per_field);
}

#[test]
fn late_readings_revise_sessions_and_a_bridging_reading_merges_them() {
    let mut operator = WindowConfig {
        late: LatePolicy::Revise,
        revision_horizon_seconds: Some(100.0),
        ..WindowConfig::session(5.0)
    }
    .build()
    .unwrap();
    let mut out = WindowOutput::new();
    for (seconds, value) in [(0.0, 1.0), (2.0, 2.0), (20.0, 3.0), (30.0, 4.0)] {
        operator.push(&temp("d", seconds, value), &mut out);
    }
    // [0 s, 7 s) and [20 s, 25 s) were emitted; [30 s, 35 s) is open.
    assert_eq!(out.aggregates.len(), 2);
    let first_session = out.aggregates[0].clone();
    out.clear();

    // Late and alone: a session of its own, emitted at once as revision 0.
    operator.push(&temp("d", 10.0, 5.0), &mut out);
    assert_eq!(out.aggregates.len(), 1);
    let alone = out.aggregates[0].clone();
    assert_eq!(
        (
            meta(&alone, "window.revision"),
            meta(&alone, "window.closed_by")
        ),
        ("0", "late")
    );
    assert_eq!(number(&alone, "temperature.count"), Some(1.0));
    out.clear();

    // Within the gap of both [0 s, 7 s) and [10 s, 15 s): they become one session,
    // the next revision of the earlier one (same key: timestamp and id base), and
    // the later one is emitted once more, empty, as merged into it.
    operator.push(&temp("d", 6.0, 6.0), &mut out);
    assert_eq!(out.aggregates.len(), 2, "{:#?}", out.aggregates);
    let merged = out
        .aggregates
        .iter()
        .find(|record| meta(record, "window.closed_by") == "merged")
        .unwrap();
    assert_eq!(merged.timestamp, alone.timestamp);
    assert_eq!(meta(merged, "window.revision"), "1");
    assert!(merged.payload.is_empty());
    assert_eq!(meta(merged, "window.readings"), "0");
    assert_eq!(
        meta(merged, "window.merged_into"),
        meta(&first_session, "window.start")
    );
    let revised = out
        .aggregates
        .iter()
        .find(|record| meta(record, "window.closed_by") == "late")
        .unwrap();
    assert_eq!(revised.timestamp, first_session.timestamp);
    assert_eq!(meta(revised, "window.revision"), "1");
    assert_eq!(
        meta(revised, "window.start"),
        meta(&first_session, "window.start")
    );
    assert_eq!(
        meta(revised, "window.end"),
        Timestamp::from_unix_nanos(T0 + 15 * S).to_iso8601()
    );
    assert_eq!(number(revised, "temperature.count"), Some(4.0));
    assert_eq!(number(revised, "temperature.max"), Some(6.0));
    let stats = operator.stats();
    assert_eq!(
        (stats.late_revised, stats.late_dropped, stats.late_routed),
        (2, 0, 0)
    );
    assert_eq!(stats.revisions_emitted, 2);
}

#[test]
fn count_windows_have_no_late_readings_so_revise_changes_nothing() {
    // A count window is "the next `count` readings in arrival order": a reading
    // with an old timestamp still belongs to the current one.
    let mut operator = WindowConfig {
        late: LatePolicy::Revise,
        ..WindowConfig::count(2)
    }
    .build()
    .unwrap();
    let mut out = WindowOutput::new();
    for (seconds, value) in [(10.0, 1.0), (20.0, 2.0), (5.0, 3.0), (30.0, 4.0)] {
        operator.push(&temp("d", seconds, value), &mut out);
    }
    assert_eq!(out.aggregates.len(), 2);
    assert_eq!(meta(&out.aggregates[1], "window.index"), "1");
    assert_eq!(number(&out.aggregates[1], "temperature.min"), Some(3.0));
    let stats = operator.stats();
    assert_eq!(
        (
            stats.late_revised,
            stats.late_dropped,
            stats.late_routed,
            stats.revisions_emitted
        ),
        (0, 0, 0, 0)
    );
}
