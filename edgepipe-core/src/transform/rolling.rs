//! `rolling`: annotate each reading with aggregates over its series' recent
//! readings (seed 001's `EdgeAggregator`: rolling mean, min, max, RMS, stddev).
//!
//! A 1→1 transform: every record is kept, and each tracked numeric field gets
//! `{field}.rolling_{aggregate}` computed over the last N readings, or the last
//! T seconds of event time, of its series — one series per `(device_id,
//! data_type, field)`. The state is bounded in series and in readings per series.

use std::collections::VecDeque;

use serde::Deserialize;

use super::bounded::SeriesMap;

use super::{Transform, Verdict};
use crate::error::{Error, Result};
use crate::record::{DataRecord, Value};

/// The default bound on the number of series a [`Rolling`] remembers.
pub const DEFAULT_MAX_SERIES: usize = 100_000;
/// The default bound on readings kept per series by a time window.
pub const DEFAULT_MAX_READINGS: usize = 10_000;

/// One aggregate a [`Rolling`] writes, as `{field}.rolling_{name}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollingAggregate {
    /// Arithmetic mean (Float).
    Mean,
    /// Smallest reading (Float).
    Min,
    /// Largest reading (Float).
    Max,
    /// Root mean square, `sqrt(mean(x²))` (Float).
    Rms,
    /// Population standard deviation (Float).
    Stddev,
    /// Number of readings in the window (Int).
    Count,
}

impl RollingAggregate {
    /// The suffix after `rolling_`.
    pub fn name(self) -> &'static str {
        match self {
            RollingAggregate::Mean => "mean",
            RollingAggregate::Min => "min",
            RollingAggregate::Max => "max",
            RollingAggregate::Rms => "rms",
            RollingAggregate::Stddev => "stddev",
            RollingAggregate::Count => "count",
        }
    }
}

/// Which readings of a series form the window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RollingWindow {
    /// The last `n` readings of the series, this one included (at least 1).
    Last(usize),
    /// Readings whose event timestamp is less than `seconds` before the newest
    /// timestamp seen in the series, i.e. within `(newest - T, newest]`.
    LastSeconds(f64),
}

/// Annotates each reading with aggregates over its series' recent readings.
///
/// For every tracked field present in a record whose value is a finite number
/// (Int, UInt or Float), the reading joins its series' window, then each
/// configured aggregate is written into the payload as
/// `{field}.rolling_{aggregate}` (Float; `count` as Int). Non-numeric, NaN and
/// infinite values are not added and nothing is written for them. Records are
/// always kept.
///
/// With a time window, the window is `(newest - T, newest]`, where `newest` is
/// the newest event timestamp seen in the series (so a late reading does not
/// move the window back; one older than the window is not counted). A time
/// window also keeps at most `max_readings` readings per series, dropping the
/// earliest arrived first. An aggregate that overflows (readings near
/// `f64::MAX`) is not written.
///
/// ```
/// use edgepipe_core::record::{DataRecord, Payload, Value};
/// use edgepipe_core::transform::{Rolling, RollingAggregate, Transform, Verdict};
///
/// let mut rolling = Rolling::last(["vibration"], 3)?
///     .aggregates([RollingAggregate::Mean, RollingAggregate::Max]);
/// let mut reading = |x: f64| {
///     let payload: Payload = [("vibration", Value::Float(x))].into_iter().collect();
///     let mut record = DataRecord::new("dev-1", "sensors", payload);
///     assert_eq!(rolling.apply(&mut record), Verdict::Keep);
///     record.payload.get("vibration.rolling_mean").cloned()
/// };
/// assert_eq!(reading(1.0), Some(Value::Float(1.0)));
/// assert_eq!(reading(2.0), Some(Value::Float(1.5)));
/// assert_eq!(reading(3.0), Some(Value::Float(2.0)));
/// assert_eq!(reading(7.0), Some(Value::Float(4.0))); // 1.0 rolled out
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Rolling {
    fields: Vec<String>,
    window: RollingWindow,
    /// `last_seconds` in whole nanoseconds (at least 1); unused by `Last`.
    window_nanos: i128,
    aggregates: Vec<RollingAggregate>,
    max_readings: usize,
    series: SeriesMap<Series>,
}

#[derive(Debug)]
struct Series {
    /// `(timestamp in nanos, value)`, in arrival order.
    readings: VecDeque<(i64, f64)>,
    /// The newest timestamp seen in the series.
    newest: i64,
}

impl Rolling {
    /// Tracks `fields` (at least one) over the last `n` readings (at least 1);
    /// aggregate `mean`, at most 100 000 series.
    pub fn last<S: Into<String>>(fields: impl IntoIterator<Item = S>, n: usize) -> Result<Self> {
        Self::checked("rolling", dedup(fields), RollingWindow::Last(n))
    }

    /// Tracks `fields` (at least one) over the last `seconds` of event time
    /// (finite, above 0); aggregate `mean`, at most 100 000 series and 10 000
    /// readings per series.
    pub fn last_seconds<S: Into<String>>(
        fields: impl IntoIterator<Item = S>,
        seconds: f64,
    ) -> Result<Self> {
        Self::checked(
            "rolling",
            dedup(fields),
            RollingWindow::LastSeconds(seconds),
        )
    }

    fn checked(key: &str, fields: Vec<String>, window: RollingWindow) -> Result<Self> {
        if fields.is_empty() {
            return Err(Error::config(
                format!("{key}.fields"),
                "name at least one payload field to aggregate",
            ));
        }
        let window_nanos = match window {
            RollingWindow::Last(n) => {
                if n == 0 {
                    return Err(Error::config(
                        format!("{key}.last"),
                        "must be at least 1 reading",
                    ));
                }
                0
            }
            RollingWindow::LastSeconds(seconds) => {
                if !(seconds.is_finite() && seconds > 0.0) {
                    return Err(Error::config(
                        format!("{key}.last_seconds"),
                        format!("must be a finite number above 0 (found {seconds})"),
                    ));
                }
                // `as` saturates; at least 1 ns so the newest reading is in the window.
                ((seconds * 1e9).round() as i64).max(1) as i128
            }
        };
        Ok(Rolling {
            fields,
            window,
            window_nanos,
            aggregates: vec![RollingAggregate::Mean],
            max_readings: DEFAULT_MAX_READINGS,
            series: SeriesMap::new(DEFAULT_MAX_SERIES),
        })
    }

    /// Writes these aggregates, in this order (duplicates ignored; an empty list
    /// keeps the current ones).
    pub fn aggregates(mut self, aggregates: impl IntoIterator<Item = RollingAggregate>) -> Self {
        let mut chosen: Vec<RollingAggregate> = Vec::new();
        for aggregate in aggregates {
            if !chosen.contains(&aggregate) {
                chosen.push(aggregate);
            }
        }
        if !chosen.is_empty() {
            self.aggregates = chosen;
        }
        self
    }

    /// With a time window, keeps at most `max_readings` readings per series (at
    /// least 1), dropping the earliest arrived first. No effect on `last`.
    pub fn max_readings(mut self, max_readings: usize) -> Self {
        self.max_readings = max_readings.max(1);
        self
    }

    /// Remembers at most `max_series` series (at least 2), forgetting the least
    /// recently seen ones first (approximately). A forgotten series starts an
    /// empty window. Clears what was remembered so far.
    pub fn max_series(mut self, max_series: usize) -> Self {
        let max_series = max_series.max(2);
        self.series = SeriesMap::new(max_series);
        self
    }

    /// How many series are remembered now (at most `max_series`).
    pub fn tracked_series(&self) -> usize {
        self.series.len()
    }

    /// Readings a series keeps at most.
    fn bound(&self) -> usize {
        match self.window {
            RollingWindow::Last(n) => n,
            RollingWindow::LastSeconds(_) => self.max_readings,
        }
    }
}

impl Series {
    fn new(bound: usize, timestamp: i64) -> Self {
        Series {
            readings: VecDeque::with_capacity(bound.min(64)),
            newest: timestamp,
        }
    }

    /// Adds `(timestamp, x)`, trims to the window (`window_nanos` for a time
    /// window, `None` for a count window) and `bound`, and returns the window.
    fn push(
        &mut self,
        window_nanos: Option<i128>,
        bound: usize,
        timestamp: i64,
        x: f64,
    ) -> &VecDeque<(i64, f64)> {
        self.newest = self.newest.max(timestamp);
        self.readings.push_back((timestamp, x));
        if let Some(window_nanos) = window_nanos {
            let newest = i128::from(self.newest);
            self.readings
                .retain(|(at, _)| newest - i128::from(*at) < window_nanos);
        }
        while self.readings.len() > bound {
            self.readings.pop_front();
        }
        &self.readings
    }
}

fn dedup<S: Into<String>>(fields: impl IntoIterator<Item = S>) -> Vec<String> {
    let mut tracked: Vec<String> = Vec::new();
    for field in fields {
        let field = field.into();
        if !tracked.contains(&field) {
            tracked.push(field);
        }
    }
    tracked
}

/// The aggregates of one window, computed by scanning it.
struct Summary {
    count: usize,
    mean: f64,
    min: f64,
    max: f64,
    rms: f64,
    stddev: f64,
}

fn summarize(readings: &VecDeque<(i64, f64)>) -> Option<Summary> {
    let count = readings.len();
    if count == 0 {
        return None;
    }
    let n = count as f64;
    let mut sum = 0.0;
    let mut squares = 0.0;
    let mut min = f64::INFINITY;
    let mut max = f64::NEG_INFINITY;
    for &(_, x) in readings {
        sum += x;
        squares += x * x;
        min = min.min(x);
        max = max.max(x);
    }
    let mean = sum / n;
    let deviations: f64 = readings.iter().map(|&(_, x)| (x - mean) * (x - mean)).sum();
    Some(Summary {
        count,
        mean,
        min,
        max,
        rms: (squares / n).sqrt(),
        stddev: (deviations / n).sqrt(),
    })
}

impl Transform for Rolling {
    fn name(&self) -> &str {
        "rolling"
    }

    fn apply(&mut self, record: &mut DataRecord) -> Verdict {
        let timestamp = record.timestamp.unix_nanos();
        for index in 0..self.fields.len() {
            let field = &self.fields[index];
            let Some(x) = record.payload.get(field).and_then(Value::as_finite_f64) else {
                continue;
            };
            let bound = self.bound();
            let window_nanos = match self.window {
                RollingWindow::Last(_) => None,
                RollingWindow::LastSeconds(_) => Some(self.window_nanos),
            };
            let fresh = || Series::new(bound, timestamp);
            let Some(series) =
                self.series
                    .get_or_insert_with(&record.device_id, &record.data_type, field, fresh)
            else {
                continue;
            };
            let Some(summary) = summarize(series.push(window_nanos, bound, timestamp, x)) else {
                continue;
            };
            for aggregate in &self.aggregates {
                let value = match aggregate {
                    RollingAggregate::Count => {
                        Value::Int(i64::try_from(summary.count).unwrap_or(i64::MAX))
                    }
                    RollingAggregate::Mean => Value::Float(summary.mean),
                    RollingAggregate::Min => Value::Float(summary.min),
                    RollingAggregate::Max => Value::Float(summary.max),
                    RollingAggregate::Rms => Value::Float(summary.rms),
                    RollingAggregate::Stddev => Value::Float(summary.stddev),
                };
                if let Value::Float(number) = value
                    && !number.is_finite()
                {
                    // Overflowed (readings near f64::MAX): JSON cannot carry it.
                    continue;
                }
                record
                    .payload
                    .insert(format!("{field}.rolling_{}", aggregate.name()), value);
            }
        }
        Verdict::Keep
    }
}

fn default_aggregates() -> Vec<RollingAggregate> {
    vec![RollingAggregate::Mean]
}

fn default_max_series() -> usize {
    DEFAULT_MAX_SERIES
}

/// `{"type": "rolling", "fields": ["vibration"], "last": 10, "aggregates": ["mean", "rms"]}`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Payload fields to aggregate (at least one).
    pub fields: Vec<String>,
    /// The last N readings (at least 1); exactly one of `last`, `last_seconds`.
    #[serde(default)]
    pub last: Option<usize>,
    /// The last T seconds of event time (finite, above 0).
    #[serde(default)]
    pub last_seconds: Option<f64>,
    /// Aggregates to write (default `["mean"]`).
    #[serde(default = "default_aggregates")]
    pub aggregates: Vec<RollingAggregate>,
    /// `last_seconds`: bound on readings per series (default 10 000).
    #[serde(default)]
    pub max_readings: Option<usize>,
    /// Bound on the number of series remembered (default 100 000).
    #[serde(default = "default_max_series")]
    pub max_series: usize,
}

impl Config {
    pub(crate) fn build(&self, key: &str) -> Result<Rolling> {
        let window = match (self.last, self.last_seconds) {
            (Some(n), None) => RollingWindow::Last(n),
            (None, Some(seconds)) => RollingWindow::LastSeconds(seconds),
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    key,
                    "set only one of `last` (readings) and `last_seconds`",
                ));
            }
            (None, None) => {
                return Err(Error::config(
                    key,
                    "a rolling window needs `last` (readings) or `last_seconds`",
                ));
            }
        };
        let rolling = Rolling::checked(key, dedup(self.fields.iter().cloned()), window)?;
        if self.aggregates.is_empty() {
            return Err(Error::config(
                format!("{key}.aggregates"),
                "name at least one of mean, min, max, rms, stddev, count",
            ));
        }
        let mut rolling = rolling.aggregates(self.aggregates.iter().copied());
        if let Some(max_readings) = self.max_readings {
            if self.last.is_some() {
                return Err(Error::config(
                    format!("{key}.max_readings"),
                    "applies only with `last_seconds` (`last` is its own bound)",
                ));
            }
            if max_readings == 0 {
                return Err(Error::config(
                    format!("{key}.max_readings"),
                    "must be at least 1",
                ));
            }
            rolling = rolling.max_readings(max_readings);
        }
        if self.max_series == 0 {
            return Err(Error::config(
                format!("{key}.max_series"),
                "must be at least 1",
            ));
        }
        Ok(rolling.max_series(self.max_series))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Timestamp;
    use crate::transform::tests::record;

    const SECOND: i64 = 1_000_000_000;

    fn reading(field: &str, value: Value, at_seconds: f64) -> DataRecord {
        let mut input = record();
        input.payload = [(field, value)].into_iter().collect();
        input.timestamp = Timestamp::from_unix_nanos((at_seconds * SECOND as f64) as i64);
        input
    }

    /// Applies `x` as field `t` at `at` seconds; returns the annotated record.
    fn feed(rolling: &mut Rolling, x: f64, at: f64) -> DataRecord {
        let mut input = reading("t", Value::Float(x), at);
        assert_eq!(rolling.apply(&mut input), Verdict::Keep);
        input
    }

    fn float(record: &DataRecord, name: &str) -> Option<f64> {
        match record.payload.get(&format!("t.rolling_{name}")) {
            Some(Value::Float(x)) => Some(*x),
            Some(other) => panic!("t.rolling_{name} is {other:?}"),
            None => None,
        }
    }

    fn count(record: &DataRecord) -> Option<i64> {
        match record.payload.get("t.rolling_count") {
            Some(Value::Int(n)) => Some(*n),
            Some(other) => panic!("t.rolling_count is {other:?}"),
            None => None,
        }
    }

    const ALL: [RollingAggregate; 6] = [
        RollingAggregate::Mean,
        RollingAggregate::Min,
        RollingAggregate::Max,
        RollingAggregate::Rms,
        RollingAggregate::Stddev,
        RollingAggregate::Count,
    ];

    #[test]
    fn count_window_rolls_and_writes_every_aggregate() {
        let mut rolling = Rolling::last(["t"], 3).unwrap().aggregates(ALL);
        let first = feed(&mut rolling, 4.0, 0.0);
        assert_eq!(float(&first, "mean"), Some(4.0));
        assert_eq!(float(&first, "stddev"), Some(0.0));
        assert_eq!(count(&first), Some(1));
        feed(&mut rolling, 100.0, 1.0);
        feed(&mut rolling, 1.0, 2.0);
        feed(&mut rolling, 3.0, 3.0);
        // Window is now 100, 1, 3 -> after 5: 1, 3, 5.
        let output = feed(&mut rolling, 5.0, 4.0);
        assert_eq!(float(&output, "mean"), Some(3.0));
        assert_eq!(float(&output, "min"), Some(1.0));
        assert_eq!(float(&output, "max"), Some(5.0));
        assert_eq!(float(&output, "rms"), Some((35.0_f64 / 3.0).sqrt()));
        assert_eq!(float(&output, "stddev"), Some((8.0_f64 / 3.0).sqrt()));
        assert_eq!(count(&output), Some(3));
        // The original field stays; six annotations were added.
        assert_eq!(output.payload.get("t"), Some(&Value::Float(5.0)));
        assert_eq!(output.payload.len(), 7);
    }

    #[test]
    fn default_aggregate_is_mean_only_and_ints_count() {
        let mut rolling = Rolling::last(["t"], 10).unwrap();
        let mut input = reading("t", Value::Int(2), 0.0);
        rolling.apply(&mut input);
        let mut input = reading("t", Value::UInt(4), 1.0);
        rolling.apply(&mut input);
        assert_eq!(
            input.payload.get("t.rolling_mean"),
            Some(&Value::Float(3.0))
        );
        assert_eq!(input.payload.len(), 2);
    }

    #[test]
    fn time_window_is_half_open_and_relative_to_the_newest_timestamp() {
        let mut rolling = Rolling::last_seconds(["t"], 10.0)
            .unwrap()
            .aggregates([RollingAggregate::Count, RollingAggregate::Mean]);
        assert_eq!(count(&feed(&mut rolling, 1.0, 0.0)), Some(1));
        assert_eq!(count(&feed(&mut rolling, 2.0, 5.0)), Some(2));
        // Exactly 10 s after the first: (0, 10] excludes it.
        let output = feed(&mut rolling, 3.0, 10.0);
        assert_eq!(
            (count(&output), float(&output, "mean")),
            (Some(2), Some(2.5))
        );
        // Late but inside (newest 10 - 10, 10]: counted; the window stays at 10.
        let output = feed(&mut rolling, 4.0, 7.0);
        assert_eq!(
            (count(&output), float(&output, "mean")),
            (Some(3), Some(3.0))
        );
        // Late and outside: not counted; the window as it stands is written.
        let output = feed(&mut rolling, 100.0, 0.0);
        assert_eq!(
            (count(&output), float(&output, "mean")),
            (Some(3), Some(3.0))
        );
        // A jump forward leaves only the new reading.
        let output = feed(&mut rolling, 9.0, 30.0);
        assert_eq!(
            (count(&output), float(&output, "mean")),
            (Some(1), Some(9.0))
        );
    }

    #[test]
    fn time_window_keeps_at_most_max_readings_per_series() {
        let mut rolling = Rolling::last_seconds(["t"], 1000.0)
            .unwrap()
            .aggregates([RollingAggregate::Count, RollingAggregate::Min])
            .max_readings(4);
        let mut output = record();
        for step in 0..20 {
            output = feed(&mut rolling, f64::from(step), f64::from(step));
            assert!(count(&output).unwrap() <= 4);
        }
        // Oldest dropped first: 16..=19 remain.
        assert_eq!(
            (count(&output), float(&output, "min")),
            (Some(4), Some(16.0))
        );
    }

    #[test]
    fn state_stays_within_max_series_and_series_are_separate() {
        let mut rolling = Rolling::last(["t"], 5).unwrap().max_series(10);
        for device in 0..1000 {
            let mut input = reading("t", Value::Float(1.0), 0.0);
            input.device_id = format!("dev-{device}").into();
            rolling.apply(&mut input);
            assert!(rolling.tracked_series() <= 10);
        }
        let mut rolling = Rolling::last(["t"], 5)
            .unwrap()
            .aggregates([RollingAggregate::Count]);
        feed(&mut rolling, 1.0, 0.0);
        let mut other = reading("t", Value::Float(2.0), 1.0);
        other.data_type = "system".into();
        rolling.apply(&mut other);
        assert_eq!(other.payload.get("t.rolling_count"), Some(&Value::Int(1)));
        assert_eq!(rolling.tracked_series(), 2);
    }

    #[test]
    fn non_numeric_nan_and_infinite_values_are_ignored() {
        let mut rolling = Rolling::last(["t"], 10).unwrap().aggregates(ALL);
        for value in [
            Value::from("fault"),
            Value::Null,
            Value::Bool(true),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Float(f64::NEG_INFINITY),
        ] {
            let mut input = reading("t", value, 0.0);
            assert_eq!(rolling.apply(&mut input), Verdict::Keep);
            assert_eq!(input.payload.len(), 1);
        }
        assert_eq!(rolling.tracked_series(), 0);
        let mut untracked = reading("u", Value::Float(1.0), 0.0);
        assert_eq!(rolling.apply(&mut untracked), Verdict::Keep);
        assert_eq!(untracked.payload.len(), 1);
    }

    #[test]
    fn overflowing_aggregates_are_not_written() {
        let mut rolling = Rolling::last(["t"], 2).unwrap().aggregates(ALL);
        feed(&mut rolling, f64::MAX, 0.0);
        let output = feed(&mut rolling, f64::MAX, 1.0);
        assert_eq!(float(&output, "mean"), None);
        assert_eq!(float(&output, "rms"), None);
        assert_eq!(float(&output, "max"), Some(f64::MAX));
        assert_eq!(count(&output), Some(2));
    }

    #[test]
    fn builders_refuse_bad_windows() {
        assert!(Rolling::last(Vec::<String>::new(), 3).is_err());
        assert!(Rolling::last(["t"], 0).is_err());
        for seconds in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Rolling::last_seconds(["t"], seconds).is_err());
        }
        // A tiny window still holds the newest reading.
        let mut rolling = Rolling::last_seconds(["t"], 1e-15).unwrap();
        assert_eq!(float(&feed(&mut rolling, 2.0, 0.0), "mean"), Some(2.0));
    }

    #[test]
    fn config_parses_and_names_bad_keys() {
        let config: Config = serde_json::from_str(
            r#"{"fields": ["t", "t"], "last_seconds": 2.5, "aggregates": ["rms", "count", "rms"], "max_readings": 50, "max_series": 1000}"#,
        )
        .unwrap();
        let rolling = config.build("transforms[1]").unwrap();
        assert_eq!(rolling.fields, ["t"]);
        assert_eq!(rolling.window, RollingWindow::LastSeconds(2.5));
        assert_eq!(rolling.window_nanos, 2_500_000_000);
        assert_eq!(
            rolling.aggregates,
            [RollingAggregate::Rms, RollingAggregate::Count]
        );
        assert_eq!(rolling.max_readings, 50);
        assert_eq!(rolling.series.capacity(), 1000);
        let defaults: Config = serde_json::from_str(r#"{"fields": ["t"], "last": 10}"#).unwrap();
        let rolling = defaults.build("t").unwrap();
        assert_eq!(rolling.window, RollingWindow::Last(10));
        assert_eq!(rolling.aggregates, [RollingAggregate::Mean]);
        assert_eq!(rolling.max_readings, DEFAULT_MAX_READINGS);
        assert_eq!(rolling.series.capacity(), DEFAULT_MAX_SERIES);

        let error = |json: &str| {
            serde_json::from_str::<Config>(json)
                .unwrap()
                .build("transforms[3]")
                .unwrap_err()
                .to_string()
        };
        for (json, key) in [
            (r#"{"fields": [], "last": 3}"#, "transforms[3].fields"),
            (r#"{"fields": ["t"], "last": 0}"#, "transforms[3].last"),
            (
                r#"{"fields": ["t"], "last_seconds": 0}"#,
                "transforms[3].last_seconds",
            ),
            (
                r#"{"fields": ["t"], "last_seconds": -2}"#,
                "transforms[3].last_seconds",
            ),
            (
                r#"{"fields": ["t"], "last": 3, "last_seconds": 2}"#,
                "transforms[3]",
            ),
            (r#"{"fields": ["t"]}"#, "transforms[3]"),
            (
                r#"{"fields": ["t"], "last": 3, "aggregates": []}"#,
                "transforms[3].aggregates",
            ),
            (
                r#"{"fields": ["t"], "last": 3, "max_readings": 5}"#,
                "transforms[3].max_readings",
            ),
            (
                r#"{"fields": ["t"], "last_seconds": 3, "max_readings": 0}"#,
                "transforms[3].max_readings",
            ),
            (
                r#"{"fields": ["t"], "last": 3, "max_series": 0}"#,
                "transforms[3].max_series",
            ),
        ] {
            let message = error(json);
            assert!(message.contains(key), "{json}: {message}");
        }
        assert!(
            serde_json::from_str::<Config>(
                r#"{"fields": ["t"], "last": 3, "aggregates": ["median"]}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<Config>(r#"{"fields": ["t"], "lst": 3}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"last": 3}"#).is_err());
    }

    #[test]
    fn builds_from_a_pipeline_config_and_names_the_key() {
        let pipeline = crate::transform::Pipeline::from_toml_str(
            r#"
            [[transforms]]
            type = "rolling"
            fields = ["t"]
            last = 10
            aggregates = ["mean", "rms"]
            "#,
        );
        assert!(pipeline.is_ok(), "{pipeline:?}");
        let error = crate::transform::Pipeline::from_toml_str(
            r#"
            [[transforms]]
            type = "rolling"
            fields = ["t"]
            last = 10
            lst = 3
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("transforms[0]") && error.contains("lst"),
            "{error}"
        );
    }
}
