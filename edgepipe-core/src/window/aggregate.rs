//! Aggregate functions and the mergeable state behind them.
//!
//! One [`FieldState`] per (window, field) keeps everything every aggregate needs
//! as plain numbers, updated in O(1) per reading, plus a [`Sketch`] when a
//! quantile is asked for. Two states merge into the state of all their readings,
//! which is what lets partial aggregates from many gateways combine in the cloud.
//!
//! | name               | value                                                        |
//! | ------------------ | ------------------------------------------------------------ |
//! | `count`            | number of readings                                           |
//! | `sum`              | compensated (Neumaier) sum                                   |
//! | `min`, `max`       | smallest, largest reading                                    |
//! | `mean`             | `sum / count`                                                |
//! | `variance`         | population variance (÷ n, as seed 002), Welford/Chan updates |
//! | `stddev`           | square root of `variance`                                    |
//! | `first`, `last`    | reading with the earliest / latest timestamp                 |
//! | `rate`             | `(last - first) / seconds between them`; null over 0 s       |
//! | `rms`              | `sqrt(Σx² / n)` (seed 001's vibration feature)               |
//! | `p50`, `p99.9`, …  | quantile from the sketch, within its relative accuracy       |
//! | `median`           | `p50`                                                        |
//!
//! Ties of `first`/`last` (equal timestamps) go to the reading seen first / last;
//! [`FieldState::merge`] treats `self` as the earlier part of the stream.

use serde::{Deserialize, Serialize};

use super::sketch::Sketch;
use crate::record::{Payload, Value};

/// One aggregate function over a field's readings in a window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Aggregate {
    /// Number of readings.
    Count,
    /// Sum (compensated).
    Sum,
    /// Smallest reading.
    Min,
    /// Largest reading.
    Max,
    /// Arithmetic mean.
    Mean,
    /// Population variance.
    Variance,
    /// Population standard deviation.
    Stddev,
    /// The reading with the earliest timestamp.
    First,
    /// The reading with the latest timestamp.
    Last,
    /// Change per second between the first and the last reading.
    Rate,
    /// Root mean square.
    Rms,
    /// A quantile in `[0, 1]`, from the sketch.
    Quantile(f64),
}

impl Aggregate {
    /// Reads a config name: `count`, `sum`, `min`, `max`, `mean` (or `avg`),
    /// `variance`, `stddev`, `first`, `last`, `rate`, `rms`, `median`, or `pNN`
    /// with NN a percentage such as `p99` or `p99.9`.
    pub fn parse(name: &str) -> Option<Aggregate> {
        Some(match name {
            "count" => Aggregate::Count,
            "sum" => Aggregate::Sum,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "mean" | "avg" => Aggregate::Mean,
            "variance" => Aggregate::Variance,
            "stddev" => Aggregate::Stddev,
            "first" => Aggregate::First,
            "last" => Aggregate::Last,
            "rate" => Aggregate::Rate,
            "rms" => Aggregate::Rms,
            "median" => Aggregate::Quantile(0.5),
            _ => {
                let digits = name.strip_prefix('p')?;
                // Plain decimal digits only: `p1e2`, `p+5` and `pinf` are not percentiles.
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                    return None;
                }
                let percent: f64 = digits.parse().ok()?;
                if !(0.0..=100.0).contains(&percent) {
                    return None;
                }
                Aggregate::Quantile(percent / 100.0)
            }
        })
    }

    /// The suffix of the output field, e.g. `mean` in `temperature.mean`;
    /// quantiles are `p` and the percentage (`p50`, `p99.9`).
    pub fn name(&self) -> String {
        match self {
            Aggregate::Count => "count".into(),
            Aggregate::Sum => "sum".into(),
            Aggregate::Min => "min".into(),
            Aggregate::Max => "max".into(),
            Aggregate::Mean => "mean".into(),
            Aggregate::Variance => "variance".into(),
            Aggregate::Stddev => "stddev".into(),
            Aggregate::First => "first".into(),
            Aggregate::Last => "last".into(),
            Aggregate::Rate => "rate".into(),
            Aggregate::Rms => "rms".into(),
            Aggregate::Quantile(q) => {
                // Round away float noise (0.999 * 100 = 99.89999…).
                let percent = (q * 100.0 * 1e6).round() / 1e6;
                let mut buffer = ryu::Buffer::new();
                let text = buffer.format(percent);
                format!("p{}", text.strip_suffix(".0").unwrap_or(text))
            }
        }
    }

    /// True when the aggregate needs the quantile sketch.
    pub fn needs_sketch(&self) -> bool {
        matches!(self, Aggregate::Quantile(_))
    }
}

/// Everything needed to answer every [`Aggregate`] over a set of readings.
///
/// Created from a first reading, so `min`, `max`, `first` and `last` always hold
/// real readings. Fields that may overflow to infinity (sums of squares of huge
/// values) are written to snapshots losslessly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldState {
    count: u64,
    #[serde(with = "lossless_f64")]
    sum: f64,
    /// Neumaier compensation: the low-order bits lost by `sum`.
    #[serde(with = "lossless_f64")]
    compensation: f64,
    #[serde(with = "lossless_f64")]
    mean: f64,
    /// Sum of squared deviations from the mean (Welford).
    #[serde(with = "lossless_f64")]
    m2: f64,
    #[serde(with = "lossless_f64")]
    sum_squares: f64,
    min: f64,
    max: f64,
    first_time: i64,
    first: f64,
    last_time: i64,
    last: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sketch: Option<Box<Sketch>>,
}

impl FieldState {
    /// The state of one reading `value` taken at `time` (ns since the epoch).
    /// With `sketch`, quantiles are tracked too (the sketch should be empty).
    pub fn new(value: f64, time: i64, sketch: Option<Sketch>) -> Self {
        let mut state = FieldState {
            count: 1,
            sum: value,
            compensation: 0.0,
            mean: value,
            m2: 0.0,
            sum_squares: value * value,
            min: value,
            max: value,
            first_time: time,
            first: value,
            last_time: time,
            last: value,
            sketch: sketch.map(Box::new),
        };
        if let Some(sketch) = &mut state.sketch {
            sketch.add(value);
        }
        state
    }

    /// Adds one reading.
    #[inline]
    pub fn update(&mut self, value: f64, time: i64) {
        let count = self.count.saturating_add(1);
        self.update_with_inverse(value, time, 1.0 / count as f64);
    }

    /// Adds one reading, given `1 / (count + 1)`: the fields of one reading
    /// usually have equal counts, so the window divides once for all of them
    /// (the division was the slowest step of an update).
    #[inline]
    pub(crate) fn update_with_inverse(&mut self, value: f64, time: i64, inverse_count: f64) {
        self.count = self.count.saturating_add(1);
        let sum = self.sum + value;
        // Neumaier: keep what the addition rounded away.
        self.compensation += if self.sum.abs() >= value.abs() {
            (self.sum - sum) + value
        } else {
            (value - sum) + self.sum
        };
        self.sum = sum;
        let delta = value - self.mean;
        self.mean += delta * inverse_count;
        self.m2 += delta * (value - self.mean);
        self.sum_squares += value * value;
        if value < self.min {
            self.min = value;
        }
        if value > self.max {
            self.max = value;
        }
        if time < self.first_time {
            self.first_time = time;
            self.first = value;
        }
        if time >= self.last_time {
            self.last_time = time;
            self.last = value;
        }
        if let Some(sketch) = &mut self.sketch {
            sketch.add(value);
        }
    }

    /// Adds every reading of `other`, as if they had come after `self`'s.
    pub fn merge(&mut self, other: &FieldState) {
        let count = self.count.saturating_add(other.count);
        let (n_a, n_b, n) = (self.count as f64, other.count as f64, count as f64);
        // Chan et al.'s pairwise update for the mean and squared deviations.
        let delta = other.mean - self.mean;
        self.mean += delta * (n_b / n);
        self.m2 += other.m2 + delta * delta * (n_a * n_b / n);
        let sum = self.sum + other.sum;
        self.compensation += if self.sum.abs() >= other.sum.abs() {
            (self.sum - sum) + other.sum
        } else {
            (other.sum - sum) + self.sum
        } + other.compensation;
        self.sum = sum;
        self.count = count;
        self.sum_squares += other.sum_squares;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.first_time < self.first_time {
            self.first_time = other.first_time;
            self.first = other.first;
        }
        if other.last_time >= self.last_time {
            self.last_time = other.last_time;
            self.last = other.last;
        }
        match (&mut self.sketch, &other.sketch) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            // A partial without a sketch cannot add its values to ours: drop the
            // sketch rather than answer quantiles over part of the readings.
            (Some(_), None) => self.sketch = None,
            (None, _) => {}
        }
    }

    /// Number of readings.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value of `aggregate`, `None` when it is undefined (a rate over zero
    /// seconds, a quantile without a sketch) or not finite.
    pub fn value(&self, aggregate: Aggregate) -> Option<f64> {
        let n = self.count as f64;
        let value = match aggregate {
            Aggregate::Count => n,
            Aggregate::Sum => self.sum + self.compensation,
            Aggregate::Min => self.min,
            Aggregate::Max => self.max,
            Aggregate::Mean => (self.sum + self.compensation) / n,
            Aggregate::Variance => (self.m2 / n).max(0.0),
            Aggregate::Stddev => (self.m2 / n).max(0.0).sqrt(),
            Aggregate::First => self.first,
            Aggregate::Last => self.last,
            Aggregate::Rate => {
                if self.last_time <= self.first_time {
                    return None;
                }
                // Subtract as integers: nanoseconds since 1970 do not fit an f64 exactly.
                let seconds =
                    (i128::from(self.last_time) - i128::from(self.first_time)) as f64 / 1e9;
                (self.last - self.first) / seconds
            }
            Aggregate::Rms => (self.sum_squares / n).sqrt(),
            Aggregate::Quantile(q) => self.sketch.as_ref()?.quantile(q)?,
        };
        value.is_finite().then_some(value)
    }

    /// The sketch, when quantiles are tracked.
    pub fn sketch(&self) -> Option<&Sketch> {
        self.sketch.as_deref()
    }
}

/// The suffixes of the state fields an aggregate record carries per field
/// (`{field}.state.{suffix}`) with `emit_state`; see the guide.
pub mod state_fields {
    /// Readings (an integer); its presence marks a field's state.
    pub const COUNT: &str = "count";
    /// The float fields, in the order they are written.
    pub const FLOATS: [&str; 9] = [
        "sum",
        "compensation",
        "mean",
        "m2",
        "sum_squares",
        "min",
        "max",
        "first",
        "last",
    ];
    /// Nanoseconds since the epoch of `first` and `last` (integers).
    pub const TIMES: [&str; 2] = ["first_time", "last_time"];
    /// The quantile sketch as compact text ([`Sketch::encode`](super::Sketch::encode)).
    pub const SKETCH: &str = "sketch";
}

impl FieldState {
    fn floats(&self) -> [f64; 9] {
        [
            self.sum,
            self.compensation,
            self.mean,
            self.m2,
            self.sum_squares,
            self.min,
            self.max,
            self.first,
            self.last,
        ]
    }

    /// Writes the whole state into `payload` as `{field}.state.*` fields, so
    /// that a coarser window can merge it later (see [`FieldState::read_state`]).
    /// Floats are written exactly; the few that can overflow (sums) are written
    /// as the strings `"inf"`, `"-inf"` or `"NaN"`, which JSON can carry.
    pub fn write_state(&self, field: &str, payload: &mut Payload) {
        let mut name = String::with_capacity(field.len() + 20);
        let mut put = |suffix: &str, value: Value| {
            name.clear();
            name.push_str(field);
            name.push_str(".state.");
            name.push_str(suffix);
            payload.insert(name.as_str(), value);
        };
        put(state_fields::COUNT, Value::from_u64(self.count));
        for (suffix, value) in state_fields::FLOATS.into_iter().zip(self.floats()) {
            let value = if value.is_finite() {
                Value::Float(value)
            } else if value.is_nan() {
                Value::String("NaN".into())
            } else if value > 0.0 {
                Value::String("inf".into())
            } else {
                Value::String("-inf".into())
            };
            put(suffix, value);
        }
        put(state_fields::TIMES[0], Value::Int(self.first_time));
        put(state_fields::TIMES[1], Value::Int(self.last_time));
        if let Some(sketch) = &self.sketch {
            put(state_fields::SKETCH, Value::String(sketch.encode().into()));
        }
    }

    /// Reads the state of `field` written by [`FieldState::write_state`].
    /// `Err` names what is wrong: a missing or mistyped part, or numbers no run
    /// could produce (no readings, min above max, a sketch of other readings,
    /// a sketch with more than `max_sketch_bins` bins), so that a bad record
    /// is refused rather than poisoning a window.
    pub fn read_state(
        field: &str,
        payload: &Payload,
        max_sketch_bins: u32,
    ) -> Result<FieldState, String> {
        // One pass over the payload rather than a lookup per part: an
        // aggregate record holds some fifty fields.
        let suffixes = std::iter::once(state_fields::COUNT)
            .chain(state_fields::FLOATS)
            .chain(state_fields::TIMES)
            .chain(std::iter::once(state_fields::SKETCH));
        let mut parts: Vec<(&str, Option<&Value>)> =
            suffixes.map(|suffix| (suffix, None)).collect();
        for (name, value) in payload.iter() {
            let Some(suffix) = name
                .strip_prefix(field)
                .and_then(|rest| rest.strip_prefix(".state."))
            else {
                continue;
            };
            if let Some((_, slot)) = parts.iter_mut().find(|(known, _)| *known == suffix) {
                slot.get_or_insert(value);
            }
        }
        let get = |suffix: &str| {
            parts
                .iter()
                .find(|(known, _)| *known == suffix)
                .and_then(|(_, value)| *value)
        };
        let count = match get(state_fields::COUNT) {
            Some(Value::Int(count)) if *count > 0 => *count as u64,
            Some(Value::UInt(count)) => *count,
            _ => return Err(format!("`{field}.state.count` must be an integer above 0")),
        };
        let mut floats = [0.0; 9];
        for (slot, suffix) in floats.iter_mut().zip(state_fields::FLOATS) {
            *slot = match get(suffix) {
                Some(Value::Float(value)) => *value,
                Some(Value::Int(value)) => *value as f64,
                Some(Value::String(text)) if text == "inf" => f64::INFINITY,
                Some(Value::String(text)) if text == "-inf" => f64::NEG_INFINITY,
                Some(Value::String(text)) if text == "NaN" => f64::NAN,
                _ => return Err(format!("`{field}.state.{suffix}` must be a number")),
            };
        }
        let mut times = [0i64; 2];
        for (slot, suffix) in times.iter_mut().zip(state_fields::TIMES) {
            *slot = match get(suffix) {
                Some(Value::Int(value)) => *value,
                _ => return Err(format!("`{field}.state.{suffix}` must be an integer")),
            };
        }
        let sketch = match get(state_fields::SKETCH) {
            None => None,
            Some(Value::String(text)) => match Sketch::decode(text, max_sketch_bins) {
                Some(sketch) if sketch.count() == count => Some(Box::new(sketch)),
                _ => return Err(format!("`{field}.state.sketch` is malformed")),
            },
            Some(_) => return Err(format!("`{field}.state.sketch` must be a string")),
        };
        let [
            sum,
            compensation,
            mean,
            m2,
            sum_squares,
            min,
            max,
            first,
            last,
        ] = floats;
        // What every real state satisfies; the sums alone may have overflowed.
        let sane = [mean, min, max, first, last].iter().all(|v| v.is_finite())
            && min <= max
            && (min..=max).contains(&first)
            && (min..=max).contains(&last)
            && m2 >= 0.0
            && !sum.is_nan()
            && !compensation.is_nan()
            && sum_squares >= 0.0
            && times[0] <= times[1];
        if !sane {
            return Err(format!("`{field}.state` holds numbers no readings give"));
        }
        Ok(FieldState {
            count,
            sum,
            compensation,
            mean,
            m2,
            sum_squares,
            min,
            max,
            first_time: times[0],
            first,
            last_time: times[1],
            last,
            sketch,
        })
    }
}

/// Floats that may be infinite or NaN, written as numbers when finite and as the
/// strings `"inf"`, `"-inf"`, `"NaN"` otherwise (JSON has no literal for them).
mod lossless_f64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            serializer.serialize_f64(*value)
        } else if value.is_nan() {
            serializer.serialize_str("NaN")
        } else if *value > 0.0 {
            serializer.serialize_str("inf")
        } else {
            serializer.serialize_str("-inf")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        match Repr::deserialize(deserializer)? {
            Repr::Number(value) => Ok(value),
            Repr::Text(text) => match text.as_str() {
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                "NaN" => Ok(f64::NAN),
                other => Err(serde::de::Error::custom(format!(
                    "expected a number, \"inf\", \"-inf\" or \"NaN\", found {other:?}"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "count", "sum", "min", "max", "mean", "variance", "stddev", "first", "last", "rate",
            "rms", "p50", "p99", "p99.9", "p0", "p100",
        ] {
            assert_eq!(Aggregate::parse(name).unwrap().name(), name);
        }
        assert_eq!(Aggregate::parse("avg"), Some(Aggregate::Mean));
        assert_eq!(Aggregate::parse("median"), Some(Aggregate::Quantile(0.5)));
        for bad in ["", "p", "p101", "p-1", "pinf", "p1e2", "average"] {
            assert_eq!(Aggregate::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn variance_is_stable_for_large_offsets() {
        // Naive Σx² - n·mean² loses every digit here; Welford keeps them.
        let mut state = FieldState::new(1e9 + 4.0, 0, None);
        for (index, value) in [1e9 + 7.0, 1e9 + 13.0, 1e9 + 16.0].into_iter().enumerate() {
            state.update(value, index as i64 + 1);
        }
        assert_eq!(state.value(Aggregate::Variance), Some(22.5));
        assert_eq!(state.value(Aggregate::Mean), Some(1e9 + 10.0));
        assert_eq!(state.value(Aggregate::Rate), Some(12.0 / 3e-9));
    }

    #[test]
    fn non_finite_results_are_none() {
        let mut state = FieldState::new(f64::MAX, 0, None);
        state.update(f64::MAX, 0);
        assert_eq!(state.value(Aggregate::Sum), None);
        assert_eq!(state.value(Aggregate::Max), Some(f64::MAX));
        assert_eq!(state.value(Aggregate::Rate), None, "zero seconds");
        let json = serde_json::to_string(&state).unwrap();
        let back: FieldState = serde_json::from_str(&json).unwrap();
        assert_eq!(back.value(Aggregate::Max), Some(f64::MAX));
        assert_eq!(back.sum, f64::INFINITY);
    }
}
