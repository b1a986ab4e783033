//! `anomaly`: flag readings that stand out from their series (seed 002's 3σ).
//!
//! Three methods, each kept per series — one series per `(device_id, data_type,
//! field)` — with a bound on the state: a rolling z-score over the last `window`
//! readings, an exponentially weighted mean and variance, and fixed limits with
//! hysteresis. Anomalies are flagged in the record, not dropped (unless the
//! policy says otherwise).

use std::collections::VecDeque;

use serde::Deserialize;

use super::bounded::SeriesMap;

use super::{OnFailure, Reason, Transform, Verdict};
use crate::error::{Error, Result};
use crate::record::{DataRecord, Value};

/// The default bound on the number of series an [`Anomaly`] remembers.
pub const DEFAULT_MAX_SERIES: usize = 100_000;
/// The default number of readings in a z-score baseline.
pub const DEFAULT_WINDOW: usize = 60;
/// The default threshold, in standard deviations.
pub const DEFAULT_THRESHOLD: f64 = 3.0;
/// The default number of readings needed before a reading is judged.
pub const DEFAULT_MIN_SAMPLES: usize = 10;
/// The default EWMA smoothing factor.
pub const DEFAULT_ALPHA: f64 = 0.1;

/// The score written when a reading differs from a baseline without spread
/// (a standard deviation of 0): JSON cannot carry infinity.
pub const CONSTANT_BASELINE_SCORE: f64 = f64::MAX;

/// How an [`Anomaly`] judges a reading.
#[derive(Clone, Debug, PartialEq)]
pub enum AnomalyMethod {
    /// Flag when `|x - mean| > threshold × stddev` over the last `window` readings
    /// of the series (population standard deviation, as seed 002), computed
    /// before `x` joins the baseline.
    ZScore {
        /// Readings in the baseline (at least 2).
        window: usize,
        /// In standard deviations (finite, at least 0).
        threshold: f64,
    },
    /// Flag when `|x - ewma| > threshold × sqrt(ewm variance)`, computed before
    /// `x` updates them.
    Ewma {
        /// Weight of the newest reading, in (0, 1].
        alpha: f64,
        /// In standard deviations (finite, at least 0).
        threshold: f64,
    },
    /// Raise an alarm when `x > high` (or `x < low`); it stays raised until `x`
    /// falls below `high - hysteresis` (or rises above `low + hysteresis`).
    Threshold {
        /// Upper limit, if any.
        high: Option<f64>,
        /// Lower limit, if any.
        low: Option<f64>,
        /// Dead band for clearing an alarm (finite, at least 0).
        hysteresis: f64,
    },
}

/// Flags anomalous readings of chosen payload fields.
///
/// For every tracked field present in a record whose value is a finite number
/// (Int, UInt or Float), the transform writes `{field}.anomaly` (Bool) into the
/// payload, and `{field}.score` (Float) once the reading could be judged: the
/// z-score or EWMA deviation in standard deviations, or for `threshold` the
/// signed distance past the nearest limit (`x - high` or `low - x`, whichever is
/// larger; negative means inside the limits). A z-score or EWMA reading is judged
/// only once its series has `min_samples` readings; before that it is written
/// `{field}.anomaly = false` without a score. A reading off a baseline with no
/// spread scores [`CONSTANT_BASELINE_SCORE`] and is flagged.
///
/// When any field is flagged, metadata `anomaly.rule` names the rule (e.g.
/// `zscore>3`, `ewma>2.5`, `threshold>80`, `threshold<-10`; distinct rules
/// joined by `,`) and the verdict follows `on_anomaly` (default: keep). With
/// `threshold`, a record that raises or clears an alarm also gets metadata
/// `anomaly.state.{field}` = `raised` or `cleared`.
///
/// Non-numeric, NaN and infinite values are neither judged nor added to the
/// baseline, and nothing is written for them.
///
/// ```
/// use edgepipe_core::record::{DataRecord, Payload, Value};
/// use edgepipe_core::transform::{Anomaly, AnomalyMethod, Transform, Verdict};
///
/// let method = AnomalyMethod::Threshold { high: Some(80.0), low: None, hysteresis: 5.0 };
/// let mut anomaly = Anomaly::new(["temperature"], method)?;
/// let mut reading = |t: f64| {
///     let payload: Payload = [("temperature", Value::Float(t))].into_iter().collect();
///     let mut record = DataRecord::new("dev-1", "sensors", payload);
///     assert_eq!(anomaly.apply(&mut record), Verdict::Keep); // flagged, not dropped
///     record.payload.get("temperature.anomaly").cloned()
/// };
/// assert_eq!(reading(79.0), Some(Value::Bool(false)));
/// assert_eq!(reading(81.0), Some(Value::Bool(true)));
/// assert_eq!(reading(76.0), Some(Value::Bool(true))); // not below 80 - 5 yet
/// assert_eq!(reading(74.0), Some(Value::Bool(false)));
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Debug)]
pub struct Anomaly {
    fields: Vec<String>,
    method: AnomalyMethod,
    min_samples: usize,
    on_anomaly: OnFailure,
    series: SeriesMap<Series>,
}

#[derive(Debug)]
enum Series {
    Window(VecDeque<f64>),
    Ewma {
        count: usize,
        mean: f64,
        variance: f64,
    },
    Alarm(Alarm),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alarm {
    Clear,
    High,
    Low,
}

/// What became of one reading.
struct Judgement {
    flagged: bool,
    score: Option<f64>,
    /// Set by `threshold` when the alarm was raised or cleared.
    change: Option<&'static str>,
    rule: Option<String>,
}

impl Anomaly {
    /// Tracks `fields` (at least one) with `method`; `min_samples` 10, policy
    /// keep, at most 100 000 series.
    pub fn new<S: Into<String>>(
        fields: impl IntoIterator<Item = S>,
        method: AnomalyMethod,
    ) -> Result<Self> {
        let mut tracked: Vec<String> = Vec::new();
        for field in fields {
            let field = field.into();
            if !tracked.contains(&field) {
                tracked.push(field);
            }
        }
        Self::checked("anomaly", tracked, method)
    }

    fn checked(key: &str, fields: Vec<String>, method: AnomalyMethod) -> Result<Self> {
        if fields.is_empty() {
            return Err(Error::config(
                format!("{key}.fields"),
                "name at least one payload field to watch",
            ));
        }
        let non_negative = |name: &str, number: f64| {
            if number.is_finite() && number >= 0.0 {
                Ok(())
            } else {
                Err(Error::config(
                    format!("{key}.{name}"),
                    format!("must be a finite number, at least 0 (found {number})"),
                ))
            }
        };
        match &method {
            AnomalyMethod::ZScore { window, threshold } => {
                if *window < 2 {
                    return Err(Error::config(
                        format!("{key}.window"),
                        format!("must be at least 2 readings (found {window})"),
                    ));
                }
                non_negative("threshold", *threshold)?;
            }
            AnomalyMethod::Ewma { alpha, threshold } => {
                if !(*alpha > 0.0 && *alpha <= 1.0) {
                    return Err(Error::config(
                        format!("{key}.alpha"),
                        format!("must be in (0, 1] (found {alpha})"),
                    ));
                }
                non_negative("threshold", *threshold)?;
            }
            AnomalyMethod::Threshold {
                high,
                low,
                hysteresis,
            } => {
                if high.is_none() && low.is_none() {
                    return Err(Error::config(
                        key,
                        "a threshold rule needs `high`, `low` or both",
                    ));
                }
                for (name, limit) in [("high", high), ("low", low)] {
                    if let Some(limit) = limit
                        && !limit.is_finite()
                    {
                        return Err(Error::config(
                            format!("{key}.{name}"),
                            format!("must be a finite number (found {limit})"),
                        ));
                    }
                }
                if let (Some(high), Some(low)) = (high, low)
                    && low > high
                {
                    return Err(Error::config(
                        format!("{key}.low"),
                        format!("must not be above `high` ({low} > {high})"),
                    ));
                }
                non_negative("hysteresis", *hysteresis)?;
            }
        }
        Ok(Anomaly {
            fields,
            method,
            min_samples: DEFAULT_MIN_SAMPLES,
            on_anomaly: OnFailure::Keep,
            series: SeriesMap::new(DEFAULT_MAX_SERIES),
        })
    }

    /// Judges z-score and EWMA readings only once the series has this many
    /// readings (at least 1; for a z-score, capped at `window`).
    pub fn min_samples(mut self, min_samples: usize) -> Self {
        self.min_samples = min_samples.max(1);
        self
    }

    /// What to do with flagged records: keep (the default), quarantine with
    /// reason `anomaly.detected`, or drop.
    pub fn on_anomaly(mut self, policy: OnFailure) -> Self {
        self.on_anomaly = policy;
        self
    }

    /// Remembers at most `max_series` series (at least 2), forgetting the least
    /// recently seen ones first (approximately). A forgotten series starts a new
    /// baseline (or a cleared alarm). Clears what was remembered so far.
    pub fn max_series(mut self, max_series: usize) -> Self {
        let max_series = max_series.max(2);
        self.series = SeriesMap::new(max_series);
        self
    }

    /// How many series are remembered now (at most `max_series`).
    pub fn tracked_series(&self) -> usize {
        self.series.len()
    }
}

impl AnomalyMethod {
    /// The state a new series starts with.
    fn fresh_series(&self) -> Series {
        match self {
            AnomalyMethod::ZScore { window, .. } => {
                Series::Window(VecDeque::with_capacity((*window).min(1024)))
            }
            AnomalyMethod::Ewma { .. } => Series::Ewma {
                count: 0,
                mean: 0.0,
                variance: 0.0,
            },
            AnomalyMethod::Threshold { .. } => Series::Alarm(Alarm::Clear),
        }
    }

    /// Judges `x` against one series' state, then adds it.
    fn judge(&self, min_samples: usize, series: &mut Series, x: f64) -> Judgement {
        let method = self;
        match (method, series) {
            (AnomalyMethod::ZScore { window, threshold }, Series::Window(history)) => {
                let judgement = if history.len() >= min_samples.min(*window) {
                    let (mean, stddev) = mean_and_stddev(history.iter().copied());
                    sigma_judgement(x, mean, stddev, *threshold, "zscore")
                } else {
                    Judgement::unjudged()
                };
                if history.len() >= *window {
                    history.pop_front();
                }
                history.push_back(x);
                judgement
            }
            (
                AnomalyMethod::Ewma { alpha, threshold },
                Series::Ewma {
                    count,
                    mean,
                    variance,
                },
            ) => {
                if *count == 0 {
                    *count = 1;
                    *mean = x;
                    *variance = 0.0;
                    return Judgement::unjudged();
                }
                let judgement = if *count >= min_samples {
                    sigma_judgement(x, *mean, variance.sqrt(), *threshold, "ewma")
                } else {
                    Judgement::unjudged()
                };
                let difference = x - *mean;
                let increment = alpha * difference;
                *mean += increment;
                *variance = (1.0 - alpha) * (*variance + difference * increment);
                *count = count.saturating_add(1);
                judgement
            }
            (
                AnomalyMethod::Threshold {
                    high,
                    low,
                    hysteresis,
                },
                Series::Alarm(alarm),
            ) => threshold_judgement(x, *high, *low, *hysteresis, alarm),
            // A series always holds the state of this transform's method.
            _ => Judgement::unjudged(),
        }
    }
}

impl Judgement {
    fn unjudged() -> Self {
        Judgement {
            flagged: false,
            score: None,
            change: None,
            rule: None,
        }
    }
}

/// Population mean and standard deviation, two passes (numerically stable).
fn mean_and_stddev(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let mut count = 0_usize;
    let mut sum = 0.0;
    for value in values.clone() {
        count += 1;
        sum += value;
    }
    if count == 0 {
        return (0.0, 0.0);
    }
    let mean = sum / count as f64;
    let squares: f64 = values.map(|value| (value - mean) * (value - mean)).sum();
    (mean, (squares / count as f64).sqrt())
}

fn sigma_judgement(x: f64, mean: f64, stddev: f64, threshold: f64, name: &str) -> Judgement {
    let deviation = (x - mean).abs();
    let score = if stddev > 0.0 {
        deviation / stddev
    } else if deviation > 0.0 {
        CONSTANT_BASELINE_SCORE
    } else {
        0.0
    };
    if !score.is_finite() {
        // The statistics overflowed (readings near f64::MAX): not judged.
        return Judgement::unjudged();
    }
    let flagged = deviation > threshold * stddev;
    Judgement {
        flagged,
        score: Some(score),
        change: None,
        rule: flagged.then(|| format!("{name}>{threshold}")),
    }
}

fn threshold_judgement(
    x: f64,
    high: Option<f64>,
    low: Option<f64>,
    hysteresis: f64,
    alarm: &mut Alarm,
) -> Judgement {
    let before = *alarm;
    if *alarm == Alarm::High && high.is_some_and(|high| x < high - hysteresis) {
        *alarm = Alarm::Clear;
    }
    if *alarm == Alarm::Low && low.is_some_and(|low| x > low + hysteresis) {
        *alarm = Alarm::Clear;
    }
    if *alarm == Alarm::Clear {
        if high.is_some_and(|high| x > high) {
            *alarm = Alarm::High;
        } else if low.is_some_and(|low| x < low) {
            *alarm = Alarm::Low;
        }
    }
    let past_high = high.map(|high| x - high);
    let past_low = low.map(|low| low - x);
    let score = match (past_high, past_low) {
        (Some(a), Some(b)) => a.max(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => 0.0,
    };
    let flagged = *alarm != Alarm::Clear;
    let change = match (before == Alarm::Clear, flagged) {
        (true, true) => Some("raised"),
        (false, false) => Some("cleared"),
        // High straight to low (or back) is a new alarm.
        (false, true) if before != *alarm => Some("raised"),
        _ => None,
    };
    let rule = match (*alarm, high, low) {
        (Alarm::High, Some(high), _) => Some(format!("threshold>{high}")),
        (Alarm::Low, _, Some(low)) => Some(format!("threshold<{low}")),
        _ => None,
    };
    Judgement {
        flagged,
        score: score.is_finite().then_some(score),
        change,
        rule,
    }
}

impl Transform for Anomaly {
    fn name(&self) -> &str {
        "anomaly"
    }

    fn apply(&mut self, record: &mut DataRecord) -> Verdict {
        let mut first_flagged: Option<usize> = None;
        let mut rules: Vec<String> = Vec::new();
        for index in 0..self.fields.len() {
            let field = &self.fields[index];
            let Some(x) = record.payload.get(field).and_then(Value::as_finite_f64) else {
                continue;
            };
            let method = &self.method;
            let fresh = || method.fresh_series();
            let Some(series) =
                self.series
                    .get_or_insert_with(&record.device_id, &record.data_type, field, fresh)
            else {
                continue;
            };
            let judgement = method.judge(self.min_samples, series, x);
            record
                .payload
                .insert(format!("{field}.anomaly"), Value::Bool(judgement.flagged));
            if let Some(score) = judgement.score {
                record
                    .payload
                    .insert(format!("{field}.score"), Value::Float(score));
            }
            if let Some(change) = judgement.change {
                record
                    .metadata
                    .insert(format!("anomaly.state.{field}"), change.into());
            }
            if judgement.flagged {
                first_flagged.get_or_insert(index);
                if let Some(rule) = judgement.rule
                    && !rules.contains(&rule)
                {
                    rules.push(rule);
                }
            }
        }
        let Some(index) = first_flagged else {
            return Verdict::Keep;
        };
        let rule = rules.join(",");
        record.metadata.insert("anomaly.rule", rule.as_str().into());
        let field = &self.fields[index];
        self.on_anomaly.verdict(|| {
            Reason::field(
                "anomaly.detected",
                field.clone(),
                format!("{field} is anomalous ({rule})"),
            )
        })
    }
}

/// The `method` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodName {
    /// Rolling z-score.
    Zscore,
    /// Exponentially weighted mean and variance.
    Ewma,
    /// Fixed limits with hysteresis.
    Threshold,
}

fn default_max_series() -> usize {
    DEFAULT_MAX_SERIES
}

fn keep_by_default() -> OnFailure {
    OnFailure::Keep
}

/// `{"type": "anomaly", "fields": ["temperature"], "method": "zscore", "window": 60, "threshold": 3}`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Payload fields to watch (at least one).
    pub fields: Vec<String>,
    /// `zscore`, `ewma` or `threshold`.
    pub method: MethodName,
    /// `zscore`: readings in the baseline (default 60).
    #[serde(default)]
    pub window: Option<usize>,
    /// `zscore`, `ewma`: in standard deviations (default 3).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// `zscore`, `ewma`: readings needed before judging (default 10).
    #[serde(default)]
    pub min_samples: Option<usize>,
    /// `ewma`: smoothing factor in (0, 1] (default 0.1).
    #[serde(default)]
    pub alpha: Option<f64>,
    /// `threshold`: upper limit.
    #[serde(default)]
    pub high: Option<f64>,
    /// `threshold`: lower limit.
    #[serde(default)]
    pub low: Option<f64>,
    /// `threshold`: dead band for clearing an alarm (default 0).
    #[serde(default)]
    pub hysteresis: Option<f64>,
    /// `keep` (default), `quarantine` or `drop`.
    #[serde(default = "keep_by_default")]
    pub on_anomaly: OnFailure,
    /// Bound on the number of series remembered (default 100 000).
    #[serde(default = "default_max_series")]
    pub max_series: usize,
}

impl Config {
    pub(crate) fn build(&self, key: &str) -> Result<Anomaly> {
        let method_name = match self.method {
            MethodName::Zscore => "zscore",
            MethodName::Ewma => "ewma",
            MethodName::Threshold => "threshold",
        };
        let set = [
            ("window", self.window.is_some()),
            ("threshold", self.threshold.is_some()),
            ("min_samples", self.min_samples.is_some()),
            ("alpha", self.alpha.is_some()),
            ("high", self.high.is_some()),
            ("low", self.low.is_some()),
            ("hysteresis", self.hysteresis.is_some()),
        ];
        let allowed: &[&str] = match self.method {
            MethodName::Zscore => &["window", "threshold", "min_samples"],
            MethodName::Ewma => &["alpha", "threshold", "min_samples"],
            MethodName::Threshold => &["high", "low", "hysteresis"],
        };
        if let Some((name, _)) = set
            .iter()
            .find(|(name, present)| *present && !allowed.contains(name))
        {
            return Err(Error::config(
                format!("{key}.{name}"),
                format!(
                    "does not apply to method `{method_name}` (which takes {})",
                    allowed.join(", ")
                ),
            ));
        }
        let threshold = self.threshold.unwrap_or(DEFAULT_THRESHOLD);
        let method = match self.method {
            MethodName::Zscore => AnomalyMethod::ZScore {
                window: self.window.unwrap_or(DEFAULT_WINDOW),
                threshold,
            },
            MethodName::Ewma => AnomalyMethod::Ewma {
                alpha: self.alpha.unwrap_or(DEFAULT_ALPHA),
                threshold,
            },
            MethodName::Threshold => AnomalyMethod::Threshold {
                high: self.high,
                low: self.low,
                hysteresis: self.hysteresis.unwrap_or(0.0),
            },
        };
        let mut fields: Vec<String> = Vec::new();
        for field in &self.fields {
            if !fields.contains(field) {
                fields.push(field.clone());
            }
        }
        let mut anomaly = Anomaly::checked(key, fields, method)?;
        if let Some(min_samples) = self.min_samples {
            if min_samples == 0 {
                return Err(Error::config(
                    format!("{key}.min_samples"),
                    "must be at least 1",
                ));
            }
            if let Some(window) = self
                .window
                .or((self.method == MethodName::Zscore).then_some(DEFAULT_WINDOW))
                && min_samples > window
            {
                return Err(Error::config(
                    format!("{key}.min_samples"),
                    format!("must not exceed `window` ({min_samples} > {window})"),
                ));
            }
            anomaly = anomaly.min_samples(min_samples);
        }
        if self.max_series == 0 {
            return Err(Error::config(
                format!("{key}.max_series"),
                "must be at least 1",
            ));
        }
        Ok(anomaly
            .on_anomaly(self.on_anomaly)
            .max_series(self.max_series))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::tests::record;

    fn reading(field: &str, value: Value) -> DataRecord {
        let mut input = record();
        input.payload = [(field, value)].into_iter().collect();
        input
    }

    /// Applies `x` as field `t`; returns (verdict, flagged, score, record).
    fn feed(anomaly: &mut Anomaly, x: f64) -> (Verdict, Option<bool>, Option<f64>, DataRecord) {
        let mut input = reading("t", Value::Float(x));
        let verdict = anomaly.apply(&mut input);
        let flagged = match input.payload.get("t.anomaly") {
            Some(Value::Bool(flag)) => Some(*flag),
            _ => None,
        };
        let score = input.payload.get("t.score").and_then(Value::as_f64);
        (verdict, flagged, score, input)
    }

    fn zscore(window: usize) -> Anomaly {
        Anomaly::new(
            ["t"],
            AnomalyMethod::ZScore {
                window,
                threshold: 3.0,
            },
        )
        .unwrap()
    }

    #[test]
    fn zscore_flags_against_the_baseline_before_the_reading() {
        let mut anomaly = zscore(60).min_samples(4);
        // Baseline 10, 12, 10, 12: mean 11, population stddev 1.
        for x in [10.0, 12.0, 10.0, 12.0] {
            let (verdict, flagged, score, _) = feed(&mut anomaly, x);
            assert_eq!(verdict, Verdict::Keep);
            assert_eq!(flagged, Some(false));
            assert_eq!(score, None, "not judged before min_samples");
        }
        let (verdict, flagged, score, output) = feed(&mut anomaly, 14.0);
        assert_eq!(
            (verdict, flagged, score),
            (Verdict::Keep, Some(false), Some(3.0))
        );
        assert_eq!(output.metadata.get("anomaly.rule"), None);
        // Baseline now 10 12 10 12 14: mean 11.6, stddev 1.4967; 20 is 5.6σ away.
        let (verdict, flagged, score, output) = feed(&mut anomaly, 20.0);
        assert_eq!((verdict, flagged), (Verdict::Keep, Some(true)));
        assert!((score.unwrap() - 8.4 / 1.4966629547095767).abs() < 1e-9);
        assert_eq!(
            output
                .metadata
                .get("anomaly.rule")
                .map(|rule| rule.as_str()),
            Some("zscore>3")
        );
    }

    #[test]
    fn zscore_window_rolls_and_constant_baseline_flags_any_change() {
        let mut anomaly = zscore(3).min_samples(3);
        for x in [100.0, 5.0, 5.0, 5.0] {
            feed(&mut anomaly, x);
        }
        // 100 has rolled out: the baseline is 5, 5, 5.
        let (_, flagged, score, _) = feed(&mut anomaly, 5.0);
        assert_eq!((flagged, score), (Some(false), Some(0.0)));
        let (_, flagged, score, _) = feed(&mut anomaly, 5.5);
        assert_eq!(
            (flagged, score),
            (Some(true), Some(CONSTANT_BASELINE_SCORE))
        );
    }

    #[test]
    fn ewma_flags_a_jump_after_min_samples() {
        let mut anomaly = Anomaly::new(
            ["t"],
            AnomalyMethod::Ewma {
                alpha: 0.5,
                threshold: 3.0,
            },
        )
        .unwrap()
        .min_samples(3);
        // mean/variance: 10 -> (10, 0); 12 -> (11, 1); 10 -> (10.5, 0.75).
        for (x, judged) in [(10.0, false), (12.0, false), (10.0, false)] {
            let (_, flagged, score, _) = feed(&mut anomaly, x);
            assert_eq!(flagged, Some(false));
            assert_eq!(score.is_some(), judged);
        }
        let (_, flagged, score, output) = feed(&mut anomaly, 11.0);
        assert_eq!(flagged, Some(false));
        assert!((score.unwrap() - 0.5 / 0.75_f64.sqrt()).abs() < 1e-12);
        assert_eq!(output.metadata.get("anomaly.rule"), None);
        let (_, flagged, score, output) = feed(&mut anomaly, 30.0);
        assert_eq!(flagged, Some(true));
        assert!(score.unwrap() > 3.0);
        assert_eq!(
            output
                .metadata
                .get("anomaly.rule")
                .map(|rule| rule.as_str()),
            Some("ewma>3")
        );
    }

    #[test]
    fn threshold_hysteresis_up_and_down() {
        let mut anomaly = Anomaly::new(
            ["t"],
            AnomalyMethod::Threshold {
                high: Some(80.0),
                low: Some(10.0),
                hysteresis: 5.0,
            },
        )
        .unwrap();
        let mut flags = Vec::new();
        let mut states = Vec::new();
        for x in [
            50.0, 80.0, 81.0, 76.0, 75.0, 74.9, 10.0, 9.0, 14.0, 15.1, 9.0, 90.0,
        ] {
            let (verdict, flagged, _, output) = feed(&mut anomaly, x);
            assert_eq!(verdict, Verdict::Keep);
            flags.push(flagged.unwrap());
            states.push(
                output
                    .metadata
                    .get("anomaly.state.t")
                    .map(|state| state.to_string()),
            );
        }
        assert_eq!(
            flags,
            [
                false, false, true, true, true, false, false, true, true, false, true, true
            ]
        );
        let raised = Some("raised".to_owned());
        let cleared = Some("cleared".to_owned());
        assert_eq!(
            states,
            [
                None,
                None,
                raised.clone(),
                None,
                None,
                cleared.clone(),
                None,
                raised.clone(),
                None,
                cleared,
                raised.clone(),
                raised
            ]
        );
        // Score: distance past the nearest limit, and the rule names it.
        let (_, _, score, output) = feed(&mut anomaly, 95.0);
        assert_eq!(score, Some(15.0));
        assert_eq!(
            output
                .metadata
                .get("anomaly.rule")
                .map(|rule| rule.as_str()),
            Some("threshold>80")
        );
        let (_, _, score, _) = feed(&mut anomaly, 40.0);
        assert_eq!(score, Some(-30.0));
        let (_, _, score, output) = feed(&mut anomaly, 7.0);
        assert_eq!(score, Some(3.0));
        assert_eq!(
            output
                .metadata
                .get("anomaly.rule")
                .map(|rule| rule.as_str()),
            Some("threshold<10")
        );
    }

    #[test]
    fn quarantine_and_drop_policies_and_series_separation() {
        let method = AnomalyMethod::Threshold {
            high: Some(1.0),
            low: None,
            hysteresis: 0.0,
        };
        let mut quarantine = Anomaly::new(["t"], method.clone())
            .unwrap()
            .on_anomaly(OnFailure::Quarantine);
        let (verdict, _, _, _) = feed(&mut quarantine, 2.0);
        match verdict {
            Verdict::Quarantine(reason) => {
                assert_eq!(reason.code, "anomaly.detected");
                assert_eq!(reason.field.as_deref(), Some("t"));
            }
            other => panic!("expected quarantine, got {other:?}"),
        }
        assert_eq!(feed(&mut quarantine, 0.5).0, Verdict::Keep);
        let mut drop = Anomaly::new(["t"], method)
            .unwrap()
            .on_anomaly(OnFailure::Drop);
        assert_eq!(feed(&mut drop, 2.0).0, Verdict::Drop);
        // Another device is another series: its alarm starts clear.
        let mut other = reading("t", Value::Float(0.0));
        other.device_id = "dev-0001".into();
        assert_eq!(drop.apply(&mut other), Verdict::Keep);
        assert_eq!(drop.tracked_series(), 2);
    }

    #[test]
    fn non_numeric_and_nan_values_are_ignored() {
        let mut anomaly = zscore(10).min_samples(2);
        for value in [
            Value::from("fault"),
            Value::Null,
            Value::Bool(true),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
        ] {
            let mut input = reading("t", value);
            assert_eq!(anomaly.apply(&mut input), Verdict::Keep);
            assert_eq!(input.payload.get("t.anomaly"), None);
        }
        assert_eq!(anomaly.tracked_series(), 0);
        // Integers count; records without the field pass untouched.
        let mut input = reading("t", Value::Int(3));
        anomaly.apply(&mut input);
        assert_eq!(input.payload.get("t.anomaly"), Some(&Value::Bool(false)));
        let mut untracked = reading("u", Value::Float(1e9));
        assert_eq!(anomaly.apply(&mut untracked), Verdict::Keep);
        assert_eq!(untracked.payload.len(), 1);
    }

    #[test]
    fn state_stays_within_max_series() {
        let mut anomaly = zscore(5).max_series(10);
        for device in 0..1000 {
            let mut input = reading("t", Value::Float(1.0));
            input.device_id = format!("dev-{device}").into();
            anomaly.apply(&mut input);
            assert!(anomaly.tracked_series() <= 10);
        }
    }

    #[test]
    fn config_parses_and_names_bad_keys() {
        let config: Config = serde_json::from_str(
            r#"{"fields": ["temperature"], "method": "zscore", "window": 30, "threshold": 2.5, "min_samples": 5, "on_anomaly": "quarantine", "max_series": 1000}"#,
        )
        .unwrap();
        let anomaly = config.build("transforms[1]").unwrap();
        assert_eq!(
            anomaly.method,
            AnomalyMethod::ZScore {
                window: 30,
                threshold: 2.5
            }
        );
        assert_eq!(anomaly.min_samples, 5);
        assert_eq!(anomaly.on_anomaly, OnFailure::Quarantine);
        assert_eq!(anomaly.series.capacity(), 1000);
        let defaults: Config =
            serde_json::from_str(r#"{"fields": ["t"], "method": "ewma"}"#).unwrap();
        let anomaly = defaults.build("t").unwrap();
        assert_eq!(
            anomaly.method,
            AnomalyMethod::Ewma {
                alpha: 0.1,
                threshold: 3.0
            }
        );
        assert_eq!(anomaly.on_anomaly, OnFailure::Keep);
        assert_eq!(anomaly.min_samples, 10);

        let error = |json: &str| {
            serde_json::from_str::<Config>(json)
                .unwrap()
                .build("transforms[3]")
                .unwrap_err()
                .to_string()
        };
        for (json, key) in [
            (
                r#"{"fields": [], "method": "zscore"}"#,
                "transforms[3].fields",
            ),
            (
                r#"{"fields": ["t"], "method": "zscore", "window": 1}"#,
                "transforms[3].window",
            ),
            (
                r#"{"fields": ["t"], "method": "zscore", "threshold": -1}"#,
                "transforms[3].threshold",
            ),
            (
                r#"{"fields": ["t"], "method": "zscore", "min_samples": 0}"#,
                "transforms[3].min_samples",
            ),
            (
                r#"{"fields": ["t"], "method": "zscore", "window": 5, "min_samples": 6}"#,
                "transforms[3].min_samples",
            ),
            (
                r#"{"fields": ["t"], "method": "zscore", "alpha": 0.5}"#,
                "transforms[3].alpha",
            ),
            (
                r#"{"fields": ["t"], "method": "ewma", "alpha": 0}"#,
                "transforms[3].alpha",
            ),
            (
                r#"{"fields": ["t"], "method": "ewma", "alpha": 1.5}"#,
                "transforms[3].alpha",
            ),
            (
                r#"{"fields": ["t"], "method": "ewma", "window": 5}"#,
                "transforms[3].window",
            ),
            (
                r#"{"fields": ["t"], "method": "threshold", "high": 1, "hysteresis": -1}"#,
                "transforms[3].hysteresis",
            ),
            (
                r#"{"fields": ["t"], "method": "threshold", "high": 1, "low": 2}"#,
                "transforms[3].low",
            ),
            (
                r#"{"fields": ["t"], "method": "threshold", "high": 1, "threshold": 2}"#,
                "transforms[3].threshold",
            ),
            (
                r#"{"fields": ["t"], "method": "threshold"}"#,
                "transforms[3]",
            ),
            (
                r#"{"fields": ["t"], "method": "zscore", "max_series": 0}"#,
                "transforms[3].max_series",
            ),
        ] {
            let message = error(json);
            assert!(message.contains(key), "{json}: {message}");
        }
        assert!(serde_json::from_str::<Config>(r#"{"fields": ["t"], "method": "sigma"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"fields": ["t"]}"#).is_err());
        assert!(
            serde_json::from_str::<Config>(r#"{"fields": ["t"], "method": "zscore", "windw": 3}"#)
                .is_err()
        );
    }
}
