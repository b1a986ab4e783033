//! Property test: the `rolling` transform against a deliberately naive reference
//! that keeps every reading of every series in a `Vec` and recomputes each window
//! from scratch: the last N readings, or (for a time window) the readings within
//! `(newest - T, newest]` of the newest timestamp seen, then the last
//! `max_readings` of those. The aggregates must agree exactly.
//!
//! With out-of-order timestamps the reference is only equal to "earliest arrived
//! dropped first" while `max_readings` does not bind, so the time-window test with
//! a small `max_readings` uses in-order timestamps per series.

use std::collections::HashMap;

use proptest::prelude::*;

use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};
use edgepipe_core::transform::{Rolling, RollingAggregate, Transform, Verdict};

const ALL: [RollingAggregate; 6] = [
    RollingAggregate::Mean,
    RollingAggregate::Min,
    RollingAggregate::Max,
    RollingAggregate::Rms,
    RollingAggregate::Stddev,
    RollingAggregate::Count,
];

/// Payload values: small ints, round-ish floats, a few wild floats, non-numbers.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (-5_i64..5).prop_map(Value::Int),
        4 => (-40_i32..40).prop_map(|quarters| Value::Float(f64::from(quarters) / 4.0)),
        2 => (-1000.0_f64..1000.0).prop_map(Value::Float),
        1 => Just(Value::Float(f64::NAN)),
        1 => Just(Value::Float(f64::INFINITY)),
        1 => Just(Value::from("fault")),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
    ]
}

/// Records over two devices and two data types. With `in_order`, timestamps only
/// grow; otherwise each record steps time by -3..=5 seconds (late readings too).
fn records(max: usize, in_order: bool) -> impl Strategy<Value = Vec<DataRecord>> {
    let step = if in_order { 0_i64..4 } else { -3_i64..6 };
    prop::collection::vec(
        (
            prop::sample::select(vec!["d0", "d1"]),
            prop::sample::select(vec!["sensors", "system"]),
            prop::option::of(value()),
            prop::option::of(value()),
            step,
        ),
        0..max,
    )
    .prop_map(|rows| {
        let mut now: i64 = 1_767_225_600;
        rows.into_iter()
            .map(|(device, data_type, a, b, step)| {
                now += step;
                let payload: Payload = [("a", a), ("b", b)]
                    .into_iter()
                    .filter_map(|(field, value)| value.map(|value| (field, value)))
                    .collect();
                let mut record = DataRecord::new(device, data_type, payload);
                record.timestamp = Timestamp::from_unix_nanos(now * 1_000_000_000);
                record
            })
            .collect()
    })
}

#[derive(Clone, Copy)]
enum Window {
    Last(usize),
    Seconds { seconds: f64, max_readings: usize },
}

/// The aggregates the reference expects for one field of one record, by name.
type Expected = Vec<(&'static str, Value)>;

struct Naive {
    window: Window,
    history: HashMap<(String, String, String), Vec<(i64, f64)>>,
}

impl Naive {
    fn expect(&mut self, record: &DataRecord, field: &str) -> Option<Expected> {
        let x = match record.payload.get(field)? {
            Value::Int(n) => *n as f64,
            Value::Float(x) if x.is_finite() => *x,
            _ => return None,
        };
        let history = self
            .history
            .entry((
                record.device_id.to_string(),
                record.data_type.to_string(),
                field.to_owned(),
            ))
            .or_default();
        history.push((record.timestamp.unix_nanos(), x));
        let window: Vec<f64> = match self.window {
            Window::Last(n) => history[history.len().saturating_sub(n)..]
                .iter()
                .map(|(_, x)| *x)
                .collect(),
            Window::Seconds {
                seconds,
                max_readings,
            } => {
                let newest = history.iter().map(|(at, _)| *at).max()?;
                let nanos = ((seconds * 1e9).round() as i64).max(1);
                let inside: Vec<f64> = history
                    .iter()
                    .filter(|(at, _)| newest - at < nanos)
                    .map(|(_, x)| *x)
                    .collect();
                inside[inside.len().saturating_sub(max_readings)..].to_vec()
            }
        };
        if window.is_empty() {
            return Some(Vec::new());
        }
        let n = window.len() as f64;
        let mean = window.iter().sum::<f64>() / n;
        let rms = (window.iter().map(|x| x * x).sum::<f64>() / n).sqrt();
        let stddev = (window.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
        let min = window.iter().copied().fold(f64::INFINITY, f64::min);
        let max = window.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(vec![
            ("mean", Value::Float(mean)),
            ("min", Value::Float(min)),
            ("max", Value::Float(max)),
            ("rms", Value::Float(rms)),
            ("stddev", Value::Float(stddev)),
            ("count", Value::Int(window.len() as i64)),
        ])
    }
}

fn observed(record: &DataRecord, field: &str) -> Expected {
    ["mean", "min", "max", "rms", "stddev", "count"]
        .into_iter()
        .filter_map(|name| {
            record
                .payload
                .get(&format!("{field}.rolling_{name}"))
                .map(|value| (name, value.clone()))
        })
        .collect()
}

fn check(window: Window, input: Vec<DataRecord>) -> Result<(), TestCaseError> {
    let mut rolling = match window {
        Window::Last(n) => Rolling::last(["a", "b"], n).unwrap(),
        Window::Seconds {
            seconds,
            max_readings,
        } => Rolling::last_seconds(["a", "b"], seconds)
            .unwrap()
            .max_readings(max_readings),
    }
    .aggregates(ALL);
    let mut naive = Naive {
        window,
        history: HashMap::new(),
    };
    for mut record in input {
        let before = record.payload.len();
        let expected: Vec<Option<Expected>> = ["a", "b"]
            .into_iter()
            .map(|field| naive.expect(&record, field))
            .collect();
        prop_assert_eq!(rolling.apply(&mut record), Verdict::Keep);
        let mut written = 0;
        for (field, expected) in ["a", "b"].into_iter().zip(expected) {
            let expected = expected.unwrap_or_default();
            written += expected.len();
            prop_assert_eq!(observed(&record, field), expected, "field {}", field);
        }
        prop_assert_eq!(record.payload.len(), before + written);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn count_window_matches_a_naive_recomputation(input in records(120, false), n in 1_usize..8) {
        check(Window::Last(n), input)?;
    }

    #[test]
    fn time_window_with_late_readings_matches_a_naive_recomputation(
        input in records(120, false),
        seconds in prop::sample::select(vec![0.5, 1.0, 3.0, 4.5, 10.0]),
    ) {
        check(Window::Seconds { seconds, max_readings: 10_000 }, input)?;
    }

    #[test]
    fn time_window_bounded_by_max_readings_matches_a_naive_recomputation(
        input in records(120, true),
        seconds in prop::sample::select(vec![1.0, 3.0, 10.0, 60.0]),
        max_readings in 1_usize..6,
    ) {
        check(Window::Seconds { seconds, max_readings }, input)?;
    }
}
