//! `deadband`: forward a reading only when it changed enough (report by exception).
//!
//! The seed's `if abs(current_value - last_sent_value) > THRESHOLD: send(...)`,
//! kept per series — one series per `(device_id, data_type, field)` — with a
//! relative threshold, a heartbeat in event time and a bound on the state.

use std::time::Duration;

use serde::Deserialize;

use super::bounded::SeriesMap;

use super::{Transform, Verdict};
use crate::error::{Error, Result};
use crate::record::{DataRecord, Timestamp, Value};

/// The default bound on the number of series a [`Deadband`] remembers.
pub const DEFAULT_MAX_SERIES: usize = 100_000;

/// Drops readings that did not change by more than a threshold since the last
/// reading forwarded for the same series.
///
/// A series is one `(device_id, data_type, field)`. A record is kept when any
/// tracked field present in it
///
/// - is new for its series (never forwarded, or forgotten to stay within
///   `max_series`),
/// - is a number that differs from the series' last *forwarded* value by strictly
///   more than the absolute threshold, or by strictly more than the relative
///   threshold times the magnitude of that last value (with both set, either
///   suffices; two integers are compared exactly),
/// - is not a number (string, bool, null, list, map — or a number replacing one of
///   those) and is not equal to the last forwarded value, or
/// - belongs to a series whose last forward is at least the heartbeat ago in event
///   time (`record.timestamp`; a reading older than the last forward never counts
///   as a heartbeat).
///
/// When a record is kept, every tracked field in it becomes its series' new
/// reference value, with the record's timestamp. Other records are dropped
/// ([`Verdict::Drop`]). A record without any tracked field is kept untouched.
///
/// NaN is treated as a value of its own: NaN after NaN is no change, NaN after a
/// number (or the other way round) is.
///
/// ```
/// use edgepipe_core::record::{DataRecord, Payload, Value};
/// use edgepipe_core::transform::{Deadband, Transform, Verdict};
///
/// let mut deadband = Deadband::new(Some(0.5), None)?;
/// let mut reading = |t: f64| {
///     let payload: Payload = [("temperature", Value::Float(t))].into_iter().collect();
///     deadband.apply(&mut DataRecord::new("dev-1", "sensors", payload))
/// };
/// assert_eq!(reading(20.0), Verdict::Keep); // first reading of the series
/// assert_eq!(reading(20.4), Verdict::Drop); // within 0.5 of 20.0
/// assert_eq!(reading(20.6), Verdict::Keep); // 0.6 away from 20.0, the last one forwarded
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Deadband {
    /// Fields to track, `None` for every payload field.
    fields: Option<Vec<String>>,
    state: SeriesState,
}

#[derive(Debug)]
struct SeriesState {
    absolute: Option<f64>,
    relative: Option<f64>,
    heartbeat_nanos: Option<i64>,
    series: SeriesMap<LastForwarded>,
}

#[derive(Debug)]
struct LastForwarded {
    value: Value,
    timestamp: Timestamp,
}

impl Deadband {
    /// A deadband with an absolute threshold, a relative one (a fraction of the
    /// last forwarded value's magnitude) or both, tracking every payload field.
    ///
    /// Fails unless at least one threshold is given and every given one is
    /// finite and not negative.
    pub fn new(absolute: Option<f64>, relative: Option<f64>) -> Result<Self> {
        Self::checked("deadband", absolute, relative)
    }

    fn checked(key: &str, absolute: Option<f64>, relative: Option<f64>) -> Result<Self> {
        if absolute.is_none() && relative.is_none() {
            return Err(Error::config(
                key,
                "a deadband needs `absolute`, `relative` or both",
            ));
        }
        for (name, threshold) in [("absolute", absolute), ("relative", relative)] {
            if let Some(threshold) = threshold
                && !(threshold.is_finite() && threshold >= 0.0)
            {
                return Err(Error::config(
                    format!("{key}.{name}"),
                    format!("must be a finite number, at least 0 (found {threshold})"),
                ));
            }
        }
        Ok(Deadband {
            fields: None,
            state: SeriesState {
                absolute,
                relative,
                heartbeat_nanos: None,
                series: SeriesMap::new(DEFAULT_MAX_SERIES),
            },
        })
    }

    /// Tracks only these payload fields (other fields neither trigger nor block).
    pub fn fields<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        let mut tracked: Vec<String> = Vec::new();
        for field in fields {
            let field = field.into();
            if !tracked.contains(&field) {
                tracked.push(field);
            }
        }
        self.fields = Some(tracked);
        self
    }

    /// Forwards a series at least once per `interval` of event time.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.state.heartbeat_nanos = Some(i64::try_from(interval.as_nanos()).unwrap_or(i64::MAX));
        self
    }

    /// Remembers at most `max_series` series (at least 2), forgetting the least
    /// recently seen ones first (approximately). A forgotten series forwards its
    /// next reading. Clears what was remembered so far.
    pub fn max_series(mut self, max_series: usize) -> Self {
        self.state.series = SeriesMap::new(max_series);
        self
    }

    /// How many series are remembered now (at most `max_series`).
    pub fn tracked_series(&self) -> usize {
        self.state.series.len()
    }
}

impl Transform for Deadband {
    fn name(&self) -> &str {
        "deadband"
    }

    fn apply(&mut self, record: &mut DataRecord) -> Verdict {
        let Deadband { fields, state } = self;
        let forward = match fields {
            Some(fields) => state.should_forward(
                record,
                fields
                    .iter()
                    .filter_map(|field| record.payload.get(field).map(|value| (&**field, value))),
            ),
            None => state.should_forward(record, record.payload.iter()),
        };
        match forward {
            // No tracked field in the record: not ours to judge.
            None => Verdict::Keep,
            Some(false) => Verdict::Drop,
            Some(true) => {
                match fields {
                    Some(fields) => state.remember(
                        record,
                        fields.iter().filter_map(|field| {
                            record.payload.get(field).map(|value| (&**field, value))
                        }),
                    ),
                    None => state.remember(record, record.payload.iter()),
                }
                Verdict::Keep
            }
        }
    }
}

impl SeriesState {
    /// `None` when no tracked field is present, else whether any of them triggers.
    fn should_forward<'a>(
        &mut self,
        record: &DataRecord,
        present: impl Iterator<Item = (&'a str, &'a Value)>,
    ) -> Option<bool> {
        let mut any = false;
        for (field, value) in present {
            any = true;
            let Some(last) = self
                .series
                .get_mut(&record.device_id, &record.data_type, field)
            else {
                return Some(true);
            };
            if let Some(heartbeat) = self.heartbeat_nanos
                && record
                    .timestamp
                    .unix_nanos()
                    .saturating_sub(last.timestamp.unix_nanos())
                    >= heartbeat
            {
                return Some(true);
            }
            if changed(&last.value, value, self.absolute, self.relative) {
                return Some(true);
            }
        }
        any.then_some(false)
    }

    fn remember<'a>(
        &mut self,
        record: &DataRecord,
        present: impl Iterator<Item = (&'a str, &'a Value)>,
    ) {
        for (field, value) in present {
            let fresh = || LastForwarded {
                value: Value::Null,
                timestamp: record.timestamp,
            };
            if let Some(last) =
                self.series
                    .get_or_insert_with(&record.device_id, &record.data_type, field, fresh)
            {
                last.value.clone_from(value);
                last.timestamp = record.timestamp;
            }
        }
    }
}

/// Whether `current` differs from `last` enough to be forwarded.
fn changed(last: &Value, current: &Value, absolute: Option<f64>, relative: Option<f64>) -> bool {
    let difference = match (last, current) {
        (Value::Int(_) | Value::UInt(_), Value::Int(_) | Value::UInt(_)) => {
            // Exact, where going through f64 would round away small changes of
            // large integers.
            (as_i128(last) - as_i128(current)).unsigned_abs() as f64
        }
        _ => match (last.as_f64(), current.as_f64()) {
            (Some(previous), Some(now)) => {
                if previous == now || (previous.is_nan() && now.is_nan()) {
                    return false;
                }
                if previous.is_nan() || now.is_nan() {
                    return true;
                }
                (now - previous).abs()
            }
            _ => return last != current,
        },
    };
    let over_absolute = absolute.is_some_and(|threshold| difference > threshold);
    let over_relative = relative.is_some_and(|fraction| {
        let reference = last.as_f64().map_or(0.0, f64::abs);
        difference > fraction * reference
    });
    over_absolute || over_relative
}

fn as_i128(value: &Value) -> i128 {
    match *value {
        Value::Int(number) => i128::from(number),
        Value::UInt(number) => i128::from(number),
        _ => 0,
    }
}

fn default_max_series() -> usize {
    DEFAULT_MAX_SERIES
}

/// `{"type": "deadband", "fields": ["temperature"], "absolute": 0.5, "relative": 0.01, "heartbeat_seconds": 300}`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Payload fields to track; every payload field when absent.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// Forward when a number moved by more than this.
    #[serde(default)]
    pub absolute: Option<f64>,
    /// Forward when a number moved by more than this fraction of the last
    /// forwarded value's magnitude (0.01 = 1 %).
    #[serde(default)]
    pub relative: Option<f64>,
    /// Forward each series at least this often, in seconds of event time.
    #[serde(default)]
    pub heartbeat_seconds: Option<f64>,
    /// Bound on the number of series remembered (default 100 000).
    #[serde(default = "default_max_series")]
    pub max_series: usize,
}

impl Config {
    pub(crate) fn build(&self, key: &str) -> Result<Deadband> {
        let mut deadband = Deadband::checked(key, self.absolute, self.relative)?;
        if let Some(fields) = &self.fields {
            if fields.is_empty() {
                return Err(Error::config(
                    format!("{key}.fields"),
                    "an empty list tracks nothing; leave `fields` out to track every field",
                ));
            }
            deadband = deadband.fields(fields.iter().cloned());
        }
        if let Some(seconds) = self.heartbeat_seconds {
            let interval = Duration::try_from_secs_f64(seconds).map_err(|_| {
                Error::config(
                    format!("{key}.heartbeat_seconds"),
                    format!("must be a finite, non-negative number of seconds (found {seconds})"),
                )
            })?;
            deadband = deadband.heartbeat(interval);
        }
        if self.max_series == 0 {
            return Err(Error::config(
                format!("{key}.max_series"),
                "must be at least 1",
            ));
        }
        Ok(deadband.max_series(self.max_series))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::tests::record;

    fn at(record: &mut DataRecord, seconds: i64) -> &mut DataRecord {
        record.timestamp = Timestamp::from_unix_nanos(seconds * 1_000_000_000);
        record
    }

    fn reading(field: &str, value: Value, seconds: i64) -> DataRecord {
        let mut input = record();
        input.payload = [(field, value)].into_iter().collect();
        at(&mut input, seconds);
        input
    }

    #[test]
    fn absolute_threshold_compares_with_the_last_forwarded_value() {
        let mut deadband = Deadband::new(Some(0.5), None).unwrap();
        let mut verdicts = Vec::new();
        for (second, value) in [20.0, 20.3, 20.5, 20.51, 20.9, 21.2]
            .into_iter()
            .enumerate()
        {
            let mut input = reading("temperature", Value::Float(value), second as i64);
            verdicts.push(deadband.apply(&mut input));
        }
        // 20.3 and 20.5 are within 0.5 of 20.0 (strictly more is needed); 20.51
        // is not; 20.9 is within 0.5 of 20.51, and 21.2 is 0.69 away from it.
        use Verdict::{Drop, Keep};
        assert_eq!(verdicts, [Keep, Drop, Drop, Keep, Drop, Keep]);
    }

    #[test]
    fn relative_threshold_and_either_threshold_suffices() {
        let mut relative = Deadband::new(None, Some(0.1)).unwrap();
        assert_eq!(
            relative.apply(&mut reading("p", Value::Int(1000), 0)),
            Verdict::Keep
        );
        assert_eq!(
            relative.apply(&mut reading("p", Value::Int(1100), 1)),
            Verdict::Drop
        );
        assert_eq!(
            relative.apply(&mut reading("p", Value::Int(1101), 2)),
            Verdict::Keep
        );
        // From zero, any change is more than 10 % of |0|.
        let mut from_zero = Deadband::new(None, Some(0.1)).unwrap();
        from_zero.apply(&mut reading("p", Value::Float(0.0), 0));
        assert_eq!(
            from_zero.apply(&mut reading("p", Value::Float(1e-9), 1)),
            Verdict::Keep
        );

        let mut both = Deadband::new(Some(5.0), Some(0.5)).unwrap();
        both.apply(&mut reading("p", Value::Float(2.0), 0));
        // 4 more: under the absolute 5, over 50 % of 2.
        assert_eq!(
            both.apply(&mut reading("p", Value::Float(6.0), 1)),
            Verdict::Keep
        );
        // 0.2 more: under both.
        assert_eq!(
            both.apply(&mut reading("p", Value::Float(6.2), 2)),
            Verdict::Drop
        );
    }

    #[test]
    fn series_are_per_device_data_type_and_field() {
        let mut deadband = Deadband::new(Some(1.0), None).unwrap();
        let mut first = record();
        assert_eq!(deadband.apply(&mut first), Verdict::Keep);
        assert_eq!(deadband.apply(&mut record()), Verdict::Drop);
        let mut other_device = record();
        other_device.device_id = "dev-0001".into();
        assert_eq!(deadband.apply(&mut other_device), Verdict::Keep);
        let mut other_type = record();
        other_type.data_type = "system".into();
        assert_eq!(deadband.apply(&mut other_type), Verdict::Keep);
        let mut new_field = record();
        new_field.payload.insert("wind", Value::Float(3.0));
        assert_eq!(deadband.apply(&mut new_field), Verdict::Keep);
        assert_eq!(deadband.tracked_series(), 3 + 3 + 3 + 1);
        // Keys cannot collide by moving characters between device and data type.
        let mut tricky = record();
        tricky.device_id = "dev-0000s".into();
        tricky.data_type = "ensors".into();
        assert_eq!(deadband.apply(&mut tricky), Verdict::Keep);
    }

    #[test]
    fn a_kept_record_updates_every_tracked_field() {
        let mut deadband = Deadband::new(Some(1.0), None).unwrap();
        deadband.apply(&mut record());
        // temperature moves by 2 (forwarding), humidity by 0.9: both become references.
        let mut input = record();
        input.payload.insert("temperature", Value::Float(24.11));
        input.payload.insert("humidity", Value::Float(51.2));
        assert_eq!(deadband.apply(&mut input), Verdict::Keep);
        // humidity 52.0 is 0.8 from the new reference 51.2 (1.7 from the old one).
        let mut next = input.clone();
        next.payload.insert("humidity", Value::Float(52.0));
        assert_eq!(deadband.apply(&mut next), Verdict::Drop);
    }

    #[test]
    fn non_numbers_forward_on_any_change() {
        let mut deadband = Deadband::new(Some(100.0), None).unwrap();
        let values = [
            Value::from("ok"),
            Value::from("ok"),
            Value::from("fault"),
            Value::Bool(true),
            Value::Bool(true),
            Value::Null,
            Value::Null,
            Value::Int(1),
            Value::Float(1.0),
            Value::Float(f64::NAN),
            Value::Float(f64::NAN),
            Value::Float(1.0),
            Value::List(vec![Value::Int(1)]),
            Value::List(vec![Value::Int(1)]),
        ];
        let verdicts: Vec<_> = values
            .into_iter()
            .enumerate()
            .map(|(second, value)| deadband.apply(&mut reading("status", value, second as i64)))
            .collect();
        use Verdict::{Drop, Keep};
        assert_eq!(
            verdicts,
            [
                Keep, Drop, Keep, Keep, Drop, Keep, Drop, Keep, Drop, Keep, Drop, Keep, Keep, Drop
            ]
        );
    }

    #[test]
    fn integers_compare_exactly() {
        let mut deadband = Deadband::new(Some(0.0), None).unwrap();
        let big = 1_i64 << 60;
        deadband.apply(&mut reading("count", Value::Int(big), 0));
        // big + 1 rounds to big as an f64.
        assert_eq!(
            deadband.apply(&mut reading("count", Value::Int(big + 1), 1)),
            Verdict::Keep
        );
        assert_eq!(
            deadband.apply(&mut reading("count", Value::UInt(u64::MAX), 2)),
            Verdict::Keep
        );
    }

    #[test]
    fn heartbeat_forwards_in_event_time() {
        let mut deadband = Deadband::new(Some(10.0), None)
            .unwrap()
            .heartbeat(Duration::from_secs(60));
        let verdicts: Vec<_> = [0, 30, 59, 60, 61, 119, 120, 100]
            .into_iter()
            .map(|second| deadband.apply(&mut reading("t", Value::Float(20.0), second)))
            .collect();
        use Verdict::{Drop, Keep};
        // A late reading (100 after 120) is not a heartbeat.
        assert_eq!(verdicts, [Keep, Drop, Drop, Keep, Drop, Drop, Keep, Drop]);
    }

    #[test]
    fn only_tracked_fields_count_and_records_without_them_pass() {
        let mut deadband = Deadband::new(Some(1.0), None)
            .unwrap()
            .fields(["temperature"]);
        assert_eq!(deadband.apply(&mut record()), Verdict::Keep);
        let mut input = record();
        input.payload.insert("humidity", Value::Float(99.0));
        assert_eq!(deadband.apply(&mut input), Verdict::Drop);
        let mut untracked = reading("humidity", Value::Float(1.0), 0);
        assert_eq!(deadband.apply(&mut untracked), Verdict::Keep);
        assert_eq!(deadband.apply(&mut untracked), Verdict::Keep);
        assert_eq!(deadband.tracked_series(), 1);
    }

    #[test]
    fn state_stays_within_max_series() {
        let mut deadband = Deadband::new(Some(1.0), None).unwrap().max_series(10);
        for device in 0..1000 {
            let mut input = record();
            input.device_id = format!("dev-{device}").into();
            assert_eq!(deadband.apply(&mut input), Verdict::Keep);
            assert!(deadband.tracked_series() <= 10);
        }
    }

    #[test]
    fn config_parses_and_names_bad_keys() {
        let config: Config = serde_json::from_str(
            r#"{"fields": ["temperature"], "absolute": 0.5, "relative": 0.01, "heartbeat_seconds": 300, "max_series": 1000}"#,
        )
        .unwrap();
        let deadband = config.build("transforms[1]").unwrap();
        assert_eq!(
            deadband.fields.as_deref(),
            Some(&["temperature".to_owned()][..])
        );
        assert_eq!(deadband.state.absolute, Some(0.5));
        assert_eq!(deadband.state.relative, Some(0.01));
        assert_eq!(deadband.state.heartbeat_nanos, Some(300_000_000_000));
        assert_eq!(deadband.state.series.capacity(), 1000);

        let error = |json: &str| {
            serde_json::from_str::<Config>(json)
                .unwrap()
                .build("transforms[3]")
                .unwrap_err()
                .to_string()
        };
        let neither = error(r#"{"fields": ["x"]}"#);
        assert!(neither.contains("transforms[3]"), "{neither}");
        assert!(neither.contains("absolute"), "{neither}");
        assert!(error(r#"{"absolute": -1}"#).contains("transforms[3].absolute"));
        assert!(error(r#"{"relative": -0.1}"#).contains("transforms[3].relative"));
        assert!(
            error(r#"{"absolute": 1, "heartbeat_seconds": -5}"#)
                .contains("transforms[3].heartbeat_seconds")
        );
        assert!(error(r#"{"absolute": 1, "max_series": 0}"#).contains("transforms[3].max_series"));
        assert!(error(r#"{"absolute": 1, "fields": []}"#).contains("transforms[3].fields"));
        assert!(Deadband::new(Some(f64::NAN), None).is_err());
        assert!(Deadband::new(None, Some(f64::INFINITY)).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"absolut": 1}"#).is_err());
    }
}
