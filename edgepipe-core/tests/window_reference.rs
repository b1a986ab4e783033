//! The window stage against a deliberately naive reference: collect every
//! reading, group them at the end, compute each aggregate from the full list.
//! Random streams (out of order within the lateness, duplicates, gaps, idle
//! series) must give the reference's windows and aggregates.

use std::collections::BTreeMap;

use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};
use edgepipe_core::window::{
    Aggregate, FieldState, KindName, Sketch, WindowConfig, WindowOperator, WindowOutput,
};
use proptest::prelude::*;

const ALL: &[&str] = &[
    "count", "sum", "min", "max", "mean", "variance", "stddev", "first", "last", "rate", "rms",
    "p50", "p90", "p99",
];
const ALPHA: f64 = 0.01;
const MS: i64 = 1_000_000;

/// One reading of the generated stream.
#[derive(Clone, Debug)]
struct Reading {
    device: usize,
    time: i64,
    value: f64,
}

fn record(reading: &Reading) -> DataRecord {
    let payload: Payload = [("x", Value::Float(reading.value))].into_iter().collect();
    DataRecord {
        record_id: "r".into(),
        device_id: format!("dev-{}", reading.device).into(),
        timestamp: Timestamp::from_unix_nanos(reading.time),
        data_type: "sensors".into(),
        payload,
        metadata: Default::default(),
    }
}

/// Streams over three devices: each device's clock moves forward by 0–3 s per
/// reading, and a reading may be up to `lateness_ms` behind it (out of order,
/// never late). Values repeat often (duplicates) and jumps make gaps.
fn stream(lateness_ms: i64) -> impl Strategy<Value = Vec<Reading>> {
    let value = prop_oneof![
        -1000.0..1000.0f64,
        Just(0.0),
        Just(5.5),
        (-3i32..3).prop_map(f64::from)
    ];
    prop::collection::vec((0usize..3, 0i64..3000, 0..=lateness_ms, value), 0..120).prop_map(
        move |steps| {
            let mut clocks = [1_767_225_600_000 * MS; 3];
            steps
                .into_iter()
                .map(|(device, advance_ms, back_ms, value)| {
                    clocks[device] += advance_ms * MS;
                    Reading {
                        device,
                        time: clocks[device] - back_ms * MS,
                        value,
                    }
                })
                .collect()
        },
    )
}

/// The naive reference value of `aggregate` over `readings` (arrival order).
fn reference(readings: &[(i64, f64)], aggregate: Aggregate) -> Option<f64> {
    let n = readings.len() as f64;
    let values: Vec<f64> = readings.iter().map(|&(_, v)| v).collect();
    let mean = values.iter().sum::<f64>() / n;
    let first = readings
        .iter()
        .fold(readings[0], |best, &r| if r.0 < best.0 { r } else { best });
    let last = readings
        .iter()
        .fold(readings[0], |best, &r| if r.0 >= best.0 { r } else { best });
    Some(match aggregate {
        Aggregate::Count => n,
        Aggregate::Sum => values.iter().sum(),
        Aggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Aggregate::Mean => mean,
        Aggregate::Variance => values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n,
        Aggregate::Stddev => (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt(),
        Aggregate::First => first.1,
        Aggregate::Last => last.1,
        Aggregate::Rate => {
            if last.0 <= first.0 {
                return None;
            }
            (last.1 - first.1) / ((last.0 - first.0) as f64 / 1e9)
        }
        Aggregate::Rms => (values.iter().map(|v| v * v).sum::<f64>() / n).sqrt(),
        Aggregate::Quantile(q) => {
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            sorted[(q * (n - 1.0)).floor() as usize]
        }
    })
}

/// Asserts that `actual` is the aggregate of `readings`: exact where the
/// computation is exact, within float rounding for sums, within α for quantiles.
fn check(readings: &[(i64, f64)], name: &str, actual: Option<&Value>) -> Result<(), TestCaseError> {
    let aggregate = Aggregate::parse(name).unwrap();
    let expected = reference(readings, aggregate);
    let actual = match actual {
        Some(Value::Null) | None => None,
        Some(value) => value.as_f64(),
    };
    let scale: f64 = readings.iter().map(|&(_, v)| v.abs()).sum::<f64>().max(1.0);
    match (expected, actual) {
        (None, None) => {}
        (Some(expected), Some(actual)) => {
            let tolerance = match aggregate {
                Aggregate::Count
                | Aggregate::Min
                | Aggregate::Max
                | Aggregate::First
                | Aggregate::Last => 0.0,
                Aggregate::Quantile(_) => ALPHA * expected.abs() + 1e-9,
                Aggregate::Variance => 1e-9 * scale * scale,
                Aggregate::Rate => 1e-9 * expected.abs().max(1.0),
                _ => 1e-9 * scale,
            };
            prop_assert!(
                (expected - actual).abs() <= tolerance,
                "{name}: expected {expected}, got {actual} over {readings:?}"
            );
        }
        (expected, actual) => prop_assert!(false, "{name}: expected {expected:?}, got {actual:?}"),
    }
    Ok(())
}

/// Runs the operator over the stream, then flushes; returns the aggregates by
/// (device, window start).
fn run(
    config: &WindowConfig,
    readings: &[Reading],
) -> (BTreeMap<(String, i64), DataRecord>, WindowOperator) {
    let mut operator = config.build().unwrap();
    let mut out = WindowOutput::new();
    for reading in readings {
        operator.push(&record(reading), &mut out);
    }
    operator.flush(&mut out);
    assert!(out.late.is_empty(), "nothing is late in these streams");
    assert!(out.rejected.is_empty());
    let mut windows = BTreeMap::new();
    for aggregate in out.aggregates {
        let start = aggregate.timestamp.unix_nanos();
        let key = (aggregate.device_id.to_string(), start);
        assert!(
            windows.insert(key, aggregate).is_none(),
            "one emission per window"
        );
    }
    (windows, operator)
}

/// The reference's windows: (device, start) → readings in arrival order.
type Groups = BTreeMap<(String, i64), Vec<(i64, f64)>>;

fn compare(
    windows: &BTreeMap<(String, i64), DataRecord>,
    groups: &Groups,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        windows.keys().collect::<Vec<_>>(),
        groups.keys().collect::<Vec<_>>()
    );
    for (key, readings) in groups {
        let record = &windows[key];
        for name in ALL {
            check(readings, name, record.payload.get(&format!("x.{name}")))?;
        }
    }
    Ok(())
}

fn config(kind: WindowConfig) -> WindowConfig {
    WindowConfig {
        allowed_lateness_seconds: 2.0,
        aggregates: ALL.iter().map(|name| name.to_string()).collect(),
        ..kind
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn tumbling_windows_match_the_reference(readings in stream(2000)) {
        let (windows, operator) = run(&config(WindowConfig::tumbling(1.0)), &readings);
        let mut groups = Groups::new();
        for r in &readings {
            let start = r.time.div_euclid(1_000 * MS) * 1_000 * MS;
            groups.entry((format!("dev-{}", r.device), start)).or_default().push((r.time, r.value));
        }
        compare(&windows, &groups)?;
        let stats = operator.stats();
        prop_assert_eq!(stats.records_in, readings.len() as u64);
        prop_assert_eq!(stats.windows_emitted, groups.len() as u64);
        prop_assert_eq!(stats.late_dropped + stats.late_routed, 0);
    }

    #[test]
    fn hopping_windows_match_the_reference(readings in stream(2000)) {
        let (windows, _) = run(&config(WindowConfig::hopping(2.0, 0.5)), &readings);
        let mut groups = Groups::new();
        for r in &readings {
            let hop = 500 * MS;
            let mut start = r.time.div_euclid(hop) * hop;
            while start > r.time - 2_000 * MS {
                groups.entry((format!("dev-{}", r.device), start)).or_default().push((r.time, r.value));
                start -= hop;
            }
        }
        compare(&windows, &groups)?;
    }

    #[test]
    fn session_windows_match_the_reference(readings in stream(1000)) {
        let gap = 1_500 * MS;
        let (windows, _) = run(&config(WindowConfig::session(1.5)), &readings);
        let mut groups = Groups::new();
        for device in 0..3 {
            let mut mine: Vec<(usize, i64, f64)> = readings.iter().enumerate()
                .filter(|(_, r)| r.device == device)
                .map(|(i, r)| (i, r.time, r.value))
                .collect();
            mine.sort_by_key(|&(i, t, _)| (t, i));
            let mut sessions: Vec<Vec<(usize, i64, f64)>> = Vec::new();
            for reading in mine {
                match sessions.last_mut() {
                    Some(session) if reading.1 < session.last().unwrap().1 + gap => session.push(reading),
                    _ => sessions.push(vec![reading]),
                }
            }
            for mut session in sessions {
                let start = session[0].1;
                session.sort_by_key(|&(i, _, _)| i); // back to arrival order
                groups.insert(
                    (format!("dev-{device}"), start),
                    session.into_iter().map(|(_, t, v)| (t, v)).collect(),
                );
            }
        }
        compare(&windows, &groups)?;
        for ((_, start), record) in &windows {
            let readings = &groups[&(record.device_id.to_string(), *start)];
            let last = readings.iter().map(|&(t, _)| t).max().unwrap();
            prop_assert_eq!(
                record.metadata.get("window.end").map(|end| end.to_string()),
                Some(Timestamp::from_unix_nanos(last + gap).to_iso8601())
            );
        }
    }

    #[test]
    fn count_windows_match_the_reference(readings in stream(0)) {
        let config = WindowConfig { kind: KindName::Count, count: Some(3), ..config(WindowConfig::default()) };
        let mut operator = config.build().unwrap();
        let mut out = WindowOutput::new();
        for reading in &readings {
            operator.push(&record(reading), &mut out);
        }
        operator.flush(&mut out);
        let mut expected: BTreeMap<(String, u64), Vec<(i64, f64)>> = BTreeMap::new();
        let mut seen = [0u64; 3];
        for r in &readings {
            expected.entry((format!("dev-{}", r.device), seen[r.device] / 3)).or_default().push((r.time, r.value));
            seen[r.device] += 1;
        }
        prop_assert_eq!(out.aggregates.len(), expected.len());
        for aggregate in &out.aggregates {
            let index: u64 = aggregate.metadata.get("window.index").unwrap().parse().unwrap();
            let readings = &expected[&(aggregate.device_id.to_string(), index)];
            for name in ALL {
                check(readings, name, aggregate.payload.get(&format!("x.{name}")))?;
            }
        }
    }

    #[test]
    fn merged_partials_equal_the_aggregate_of_all(
        values in prop::collection::vec((0i64..10_000, -1e6..1e6f64), 1..200),
        cuts in prop::collection::vec(0usize..200, 0..6),
    ) {
        let whole = state_of(&values);
        let mut bounds: Vec<usize> = cuts.into_iter().map(|cut| cut % values.len()).filter(|&c| c > 0).collect();
        bounds.push(0);
        bounds.push(values.len());
        bounds.sort_unstable();
        bounds.dedup();
        let mut merged: Option<FieldState> = None;
        for pair in bounds.windows(2) {
            let part = state_of(&values[pair[0]..pair[1]]);
            match &mut merged {
                None => merged = Some(part),
                Some(merged) => merged.merge(&part),
            }
        }
        let merged = merged.unwrap();
        for name in ALL {
            let aggregate = Aggregate::parse(name).unwrap();
            let (a, b) = (whole.value(aggregate), merged.value(aggregate));
            match aggregate {
                Aggregate::Quantile(_) | Aggregate::Count | Aggregate::Min | Aggregate::Max
                | Aggregate::First | Aggregate::Last => prop_assert_eq!(a, b, "{}", name),
                _ => {
                    let (a, b) = (a.unwrap_or(0.0), b.unwrap_or(0.0));
                    prop_assert!((a - b).abs() <= 1e-9 * a.abs().max(1e6), "{name}: {a} vs {b}");
                }
            }
            check(&values, name, merged.value(aggregate).map(Value::Float).as_ref())?;
        }
        prop_assert_eq!(whole.sketch(), merged.sketch());
    }

    #[test]
    fn sketch_quantiles_stay_within_the_bound(
        values in prop::collection::vec(prop_oneof![-1e9..1e9f64, -1.0..1.0f64, Just(0.0)], 1..500),
        q in 0.0..=1.0f64,
    ) {
        let mut sketch = Sketch::new(ALPHA, 2048);
        for &value in &values {
            sketch.add(value);
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let truth = sorted[(q * (values.len() - 1) as f64).floor() as usize];
        let estimate = sketch.quantile(q).unwrap();
        prop_assert!((estimate - truth).abs() <= ALPHA * truth.abs() * (1.0 + 1e-12), "{estimate} vs {truth}");
    }
}

fn state_of(values: &[(i64, f64)]) -> FieldState {
    let mut state = FieldState::new(values[0].1, values[0].0, Some(Sketch::new(ALPHA, 2048)));
    for &(time, value) in &values[1..] {
        state.update(value, time);
    }
    state
}

/// `x` in every reading, `y` in about two of three: with a series per field,
/// each field is windowed as if the other did not exist.
fn two_field_record(reading: &Reading) -> DataRecord {
    let mut record = record(reading);
    if let Some(y) = y_of(reading) {
        record.payload.insert("y", Value::Float(y));
    }
    record
}

fn y_of(reading: &Reading) -> Option<f64> {
    (reading.time / MS % 3 != 0).then_some(reading.value * 2.0 + 1.0)
}

/// The reference groups of one field: its readings only, keyed by
/// (device, field, window start) for time windows or (device, field, index).
fn field_groups(
    readings: &[Reading],
    window_of: impl Fn(&[(i64, f64)], i64) -> Vec<i64>,
    sessions: Option<i64>,
) -> BTreeMap<(String, String, i64), Vec<(i64, f64)>> {
    let mut groups = BTreeMap::new();
    for field in ["x", "y"] {
        for device in 0..3 {
            let mine: Vec<(i64, f64)> = readings
                .iter()
                .filter(|r| r.device == device)
                .filter_map(|r| match field {
                    "x" => Some((r.time, r.value)),
                    _ => y_of(r).map(|y| (r.time, y)),
                })
                .collect();
            let key = |start: i64| (format!("dev-{device}"), field.to_string(), start);
            match sessions {
                Some(gap) => {
                    let mut sorted: Vec<(usize, (i64, f64))> =
                        mine.iter().copied().enumerate().collect();
                    sorted.sort_by_key(|&(i, (t, _))| (t, i));
                    let mut current: Vec<(usize, (i64, f64))> = Vec::new();
                    let mut flush = |current: &mut Vec<(usize, (i64, f64))>| {
                        if let Some(&(_, (start, _))) = current.first() {
                            current.sort_by_key(|&(i, _)| i);
                            groups.insert(key(start), current.drain(..).map(|(_, r)| r).collect());
                        }
                    };
                    for reading in sorted {
                        if current
                            .last()
                            .is_some_and(|&(_, (t, _))| reading.1.0 >= t + gap)
                        {
                            flush(&mut current);
                        }
                        current.push(reading);
                    }
                    flush(&mut current);
                }
                None => {
                    for (position, &reading) in mine.iter().enumerate() {
                        for start in window_of(&mine[..=position], reading.0) {
                            groups
                                .entry(key(start))
                                .or_insert_with(Vec::new)
                                .push(reading);
                        }
                    }
                }
            }
        }
    }
    groups
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn series_per_field_windows_each_field_on_its_own(readings in stream(1000), kind in 0usize..3) {
        let base = [WindowConfig::tumbling(1.0), WindowConfig::session(1.5), WindowConfig::count(3)][kind].clone();
        let config = config(base).with_series_per_field(true);
        let mut operator = config.build().unwrap();
        let mut out = WindowOutput::new();
        for reading in &readings {
            operator.push(&two_field_record(reading), &mut out);
        }
        operator.flush(&mut out);
        prop_assert!(out.late.is_empty() && out.rejected.is_empty());
        let groups = match kind {
            0 => field_groups(&readings, |_, t| vec![t.div_euclid(1_000 * MS) * 1_000 * MS], None),
            1 => field_groups(&readings, |_, _| Vec::new(), Some(1_500 * MS)),
            _ => field_groups(&readings, |seen, _| vec![(seen.len() as i64 - 1) / 3], None),
        };
        let mut windows = BTreeMap::new();
        for aggregate in &out.aggregates {
            let field = aggregate.metadata.get("window.field").unwrap().to_string();
            let start = match aggregate.metadata.get("window.index") {
                Some(index) => index.parse().unwrap(),
                None => aggregate.timestamp.unix_nanos(),
            };
            // One field per aggregate record.
            let other_prefix = if field == "x" { "y." } else { "x." };
            let single = aggregate.payload.keys().all(|name| !name.starts_with(other_prefix));
            prop_assert!(single, "{:?}", aggregate.payload);
            prop_assert!(windows.insert((aggregate.device_id.to_string(), field, start), aggregate).is_none());
        }
        prop_assert_eq!(windows.keys().collect::<Vec<_>>(), groups.keys().collect::<Vec<_>>());
        for (key, readings) in &groups {
            for name in ALL {
                check(readings, name, windows[key].payload.get(&format!("{}.{name}", key.1)))?;
            }
        }
        prop_assert_eq!(operator.stats().series, groups.keys().map(|(d, f, _)| (d, f)).collect::<std::collections::BTreeSet<_>>().len() as u64);
    }
}

/// Streams with readings up to 6 s behind their device's clock: far beyond the
/// 1 s lateness, so many are late for sessions already emitted. Each time is
/// made unique (plus its position in ns) so that `first`/`last` have no ties.
fn late_stream() -> impl Strategy<Value = Vec<Reading>> {
    prop::collection::vec(
        (0usize..3, 0i64..3000, 0i64..6000, -100.0..100.0f64),
        0..120,
    )
    .prop_map(|steps| {
        let mut clocks = [1_767_225_600_000 * MS; 3];
        steps
            .into_iter()
            .enumerate()
            .map(|(index, (device, advance_ms, back_ms, value))| {
                clocks[device] += advance_ms * MS;
                Reading {
                    device,
                    time: clocks[device] - back_ms * MS + index as i64,
                    value,
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Under `revise`, the latest revision of every session key (leaving out
    /// the sessions merged into others) is the reference's sessions of all
    /// readings, late ones included.
    #[test]
    fn session_revisions_converge_to_the_sessions_of_all_readings(readings in late_stream()) {
        let gap = 1_500 * MS;
        let config = WindowConfig {
            late: edgepipe_core::window::LatePolicy::Revise,
            revision_horizon_seconds: Some(1e6),
            allowed_lateness_seconds: 1.0,
            ..config(WindowConfig::session(1.5))
        };
        let mut operator = config.build().unwrap();
        let mut out = WindowOutput::new();
        for reading in &readings {
            operator.push(&record(reading), &mut out);
        }
        operator.flush(&mut out);
        prop_assert!(out.late.is_empty() && out.rejected.is_empty());

        // The store's view: the highest revision per (device, timestamp).
        let mut latest: BTreeMap<(String, i64), DataRecord> = BTreeMap::new();
        for aggregate in out.aggregates {
            let revision: u32 = aggregate.metadata.get("window.revision").unwrap().parse().unwrap();
            let key = (aggregate.device_id.to_string(), aggregate.timestamp.unix_nanos());
            let newer = latest.get(&key).is_none_or(|known| {
                known.metadata.get("window.revision").unwrap().parse::<u32>().unwrap() < revision
            });
            prop_assert!(newer, "revisions of one key come in order");
            latest.insert(key, aggregate);
        }
        let mut windows = BTreeMap::new();
        for (_, aggregate) in latest {
            if aggregate.metadata.get("window.closed_by").map(|v| v.as_str()) == Some("merged") {
                prop_assert!(aggregate.payload.is_empty());
                continue;
            }
            let start = Timestamp::parse(aggregate.metadata.get("window.start").unwrap()).unwrap();
            windows.insert((aggregate.device_id.to_string(), start.unix_nanos()), aggregate);
        }

        let mut groups = Groups::new();
        for device in 0..3 {
            let mut mine: Vec<(usize, i64, f64)> = readings.iter().enumerate()
                .filter(|(_, r)| r.device == device)
                .map(|(i, r)| (i, r.time, r.value))
                .collect();
            mine.sort_by_key(|&(i, t, _)| (t, i));
            let mut sessions: Vec<Vec<(usize, i64, f64)>> = Vec::new();
            for reading in mine {
                match sessions.last_mut() {
                    Some(session) if reading.1 < session.last().unwrap().1 + gap => session.push(reading),
                    _ => sessions.push(vec![reading]),
                }
            }
            for session in sessions {
                groups.insert(
                    (format!("dev-{device}"), session[0].1),
                    session.into_iter().map(|(_, t, v)| (t, v)).collect(),
                );
            }
        }
        compare(&windows, &groups)?;
        let stats = operator.stats();
        prop_assert_eq!(stats.late_dropped + stats.late_routed, 0);
    }
}
