//! Property test: the `anomaly` transform's rolling z-score against a deliberately
//! naive reference that keeps every reading of every series in a `Vec` and
//! recomputes the mean and population standard deviation of the last `window`
//! readings from scratch. Flags, scores and verdicts must agree exactly.

use std::collections::HashMap;

use proptest::prelude::*;

use edgepipe_core::record::{DataRecord, Payload, Value};
use edgepipe_core::transform::{Anomaly, AnomalyMethod, OnFailure, Transform, Verdict};

/// Payload values: small ints, round-ish floats, a few wild floats, non-numbers.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (-5_i64..5).prop_map(Value::Int),
        4 => (-40_i32..40).prop_map(|quarters| Value::Float(f64::from(quarters) / 4.0)),
        2 => (-1000.0_f64..1000.0).prop_map(Value::Float),
        1 => Just(Value::Float(f64::NAN)),
        1 => Just(Value::from("fault")),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
    ]
}

fn records(max: usize) -> impl Strategy<Value = Vec<DataRecord>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["d0", "d1"]),
            prop::sample::select(vec!["sensors", "system"]),
            prop::option::of(value()),
            prop::option::of(value()),
        ),
        0..max,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .map(|(device, data_type, a, b)| {
                let payload: Payload = [("a", a), ("b", b)]
                    .into_iter()
                    .filter_map(|(field, value)| value.map(|value| (field, value)))
                    .collect();
                DataRecord::new(device, data_type, payload)
            })
            .collect()
    })
}

/// What the reference expects for one field of one record.
#[derive(Debug, PartialEq)]
struct Expected {
    flagged: bool,
    score: Option<f64>,
}

struct NaiveZScore {
    window: usize,
    threshold: f64,
    min_samples: usize,
    history: HashMap<(String, String, String), Vec<f64>>,
}

impl NaiveZScore {
    fn judge(&mut self, record: &DataRecord, field: &str) -> Option<Expected> {
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
        let baseline = &history[history.len().saturating_sub(self.window)..];
        let expected = if baseline.len() >= self.min_samples {
            let n = baseline.len() as f64;
            let mean = baseline.iter().sum::<f64>() / n;
            let variance = baseline
                .iter()
                .map(|v| (v - mean) * (v - mean))
                .sum::<f64>()
                / n;
            let stddev = variance.sqrt();
            let deviation = (x - mean).abs();
            let score = if stddev > 0.0 {
                deviation / stddev
            } else if deviation > 0.0 {
                f64::MAX
            } else {
                0.0
            };
            Expected {
                flagged: deviation > self.threshold * stddev,
                score: Some(score),
            }
        } else {
            Expected {
                flagged: false,
                score: None,
            }
        };
        history.push(x);
        Some(expected)
    }
}

fn observed(record: &DataRecord, field: &str) -> Option<Expected> {
    let flagged = match record.payload.get(&format!("{field}.anomaly"))? {
        Value::Bool(flag) => *flag,
        other => panic!("{field}.anomaly is {other:?}"),
    };
    let score = record
        .payload
        .get(&format!("{field}.score"))
        .map(|score| match score {
            Value::Float(score) => *score,
            other => panic!("{field}.score is {other:?}"),
        });
    Some(Expected { flagged, score })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn zscore_matches_a_naive_recomputation(
        input in records(120),
        window in 2_usize..8,
        min_samples_raw in 1_usize..8,
        threshold in prop::sample::select(vec![0.0, 0.5, 1.0, 1.5, 3.0]),
        quarantine in any::<bool>(),
    ) {
        let min_samples = min_samples_raw.min(window);
        let policy = if quarantine { OnFailure::Quarantine } else { OnFailure::Keep };
        let mut anomaly = Anomaly::new(["a", "b"], AnomalyMethod::ZScore { window, threshold })
            .unwrap()
            .min_samples(min_samples)
            .on_anomaly(policy);
        let mut naive = NaiveZScore {
            window,
            threshold,
            min_samples,
            history: HashMap::new(),
        };
        for mut record in input {
            let expected: Vec<_> = ["a", "b"].iter().map(|field| naive.judge(&record, field)).collect();
            let verdict = anomaly.apply(&mut record);
            let got: Vec<_> = ["a", "b"].iter().map(|field| observed(&record, field)).collect();
            prop_assert_eq!(&got, &expected);
            let any_flagged = expected.iter().flatten().any(|e| e.flagged);
            prop_assert_eq!(
                record.metadata.get("anomaly.rule").map(|rule| rule.to_string()),
                any_flagged.then(|| format!("zscore>{threshold}"))
            );
            match verdict {
                Verdict::Keep => prop_assert!(!(quarantine && any_flagged)),
                Verdict::Quarantine(reason) => {
                    prop_assert!(quarantine && any_flagged);
                    prop_assert_eq!(reason.code, "anomaly.detected");
                }
                Verdict::Drop => prop_assert!(false, "never drops"),
            }
        }
    }
}
