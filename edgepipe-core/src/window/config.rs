//! The declarative form of a window stage, in JSON or TOML.
//!
//! The `window` table of a pipeline config (beside `transforms`), or a
//! document of its own read with [`WindowConfig::from_json_str`] /
//! [`WindowConfig::from_toml_str`]:
//!
//! ```
//! use edgepipe_core::window::WindowConfig;
//!
//! let config = WindowConfig::from_toml_str(r#"
//!     kind = "tumbling"
//!     size_seconds = 10
//!     allowed_lateness_seconds = 2
//!     idle_timeout_seconds = 30
//!     late = "revise"
//!     aggregates = ["count", "min", "max", "mean", "p99"]
//!     rules = { power = ["mean"], temperature = ["max"] }
//! "#)?;
//! let operator = config.build()?;
//! # let _ = operator;
//!
//! let error = WindowConfig::from_json_str(r#"{"kind": "hopping", "size_seconds": 60}"#)
//!     .and_then(|config| config.build().map(|_| ()))
//!     .unwrap_err();
//! assert!(error.to_string().contains("window.hop_seconds"), "{error}");
//! # Ok::<(), edgepipe_core::Error>(())
//! ```

use std::collections::BTreeMap;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::aggregate::Aggregate;
use super::assigner::WindowKind;
use super::operator::WindowOperator;
use super::sketch::{DEFAULT_MAX_BINS, DEFAULT_RELATIVE_ACCURACY};
use crate::error::{Error, Result};

/// Default bound on the number of series with state.
pub const DEFAULT_MAX_SERIES: usize = 100_000;
/// Default bound on open (plus retained) windows per series.
pub const DEFAULT_MAX_WINDOWS_PER_SERIES: usize = 256;
/// Default bound on aggregated fields per window.
pub const DEFAULT_MAX_FIELDS: usize = 64;

/// Which clock places readings in windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeMode {
    /// The record's own `timestamp`; windows close when the series' watermark
    /// passes their end (the default).
    #[default]
    Event,
    /// The caller's clock, as last given to
    /// [`WindowOperator::advance_to`](super::WindowOperator::advance_to);
    /// windows close when that clock passes their end.
    Processing,
}

/// What happens to a reading that arrives after its window was emitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatePolicy {
    /// Drop it and count it in `late_dropped` (the default).
    #[default]
    Drop,
    /// Put it, unchanged, on the late output and count it in `late_routed`.
    Output,
    /// Add it to the emitted window and emit the window again as revision n+1
    /// (same key but the revision), within `revision_horizon_seconds`. A
    /// reading that bridges emitted sessions merges them into the earliest;
    /// the others are emitted once more, empty, as `merged` (see the guide).
    /// Count windows have no late readings, so nothing changes for them.
    Revise,
}

/// What a window stage reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// Readings: every numeric payload field is a value (the default).
    #[default]
    Readings,
    /// Aggregate records of a finer window stage that ran with `emit_state`:
    /// their `{field}.state.*` fields are merged into coarser windows (hourly
    /// from 10-second aggregates, daily from hourly). Tumbling and hopping only.
    Aggregates,
}

/// The window kind's config name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindName {
    /// `size_seconds`.
    #[default]
    Tumbling,
    /// `size_seconds` and `hop_seconds`.
    Hopping,
    /// `gap_seconds`.
    Session,
    /// `count`.
    Count,
}

fn default_aggregates() -> Vec<String> {
    ["count", "min", "max", "mean"].map(String::from).to_vec()
}
fn default_output_data_type() -> String {
    "{data_type}.agg".into()
}
fn default_relative_accuracy() -> f64 {
    DEFAULT_RELATIVE_ACCURACY
}
fn default_max_bins() -> u32 {
    DEFAULT_MAX_BINS
}
fn default_max_series() -> usize {
    DEFAULT_MAX_SERIES
}
fn default_max_windows() -> usize {
    DEFAULT_MAX_WINDOWS_PER_SERIES
}
fn default_max_fields() -> usize {
    DEFAULT_MAX_FIELDS
}
fn default_max_future() -> Option<f64> {
    Some(300.0)
}

/// A window stage: kind, time, lateness, aggregates and bounds.
///
/// Durations are in seconds (fractions allowed). Every key but the kind's own
/// parameters has a default; unknown keys are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// `tumbling` (default), `hopping`, `session` or `count`.
    #[serde(default)]
    pub kind: KindName,
    /// Window length (tumbling, hopping).
    #[serde(default)]
    pub size_seconds: Option<f64>,
    /// Distance between window starts (hopping; at most `size_seconds`, and at
    /// most 1000 windows per reading).
    #[serde(default)]
    pub hop_seconds: Option<f64>,
    /// Inactivity that ends a session (session).
    #[serde(default)]
    pub gap_seconds: Option<f64>,
    /// Readings per window (count).
    #[serde(default)]
    pub count: Option<u64>,
    /// `event` (default) or `processing`.
    #[serde(default)]
    pub time: TimeMode,
    /// How far behind a series' newest reading a reading may be and still count
    /// (the watermark is the newest event time minus this). Default 0.
    #[serde(default)]
    pub allowed_lateness_seconds: f64,
    /// Close a series' open windows once the caller's clock is this far past
    /// its last reading. Default: never.
    #[serde(default)]
    pub idle_timeout_seconds: Option<f64>,
    /// `drop` (default), `output` or `revise`.
    #[serde(default)]
    pub late: LatePolicy,
    /// How long (event time past a window's end) an emitted window is kept
    /// for revisions. Default: one window length.
    #[serde(default)]
    pub revision_horizon_seconds: Option<f64>,
    /// Payload fields to aggregate; every numeric field (bools as 0/1) when absent.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// Make each aggregated field its own series, `(device_id, data_type, field)`,
    /// with its own watermark, idle timeout, sessions and count windows, and one
    /// aggregate record per field and window. Default false: one series per
    /// `(device_id, data_type)` holding every field.
    #[serde(default)]
    pub series_per_field: bool,
    /// `readings` (default) or `aggregates`: aggregate records carrying their
    /// state (`emit_state`), merged into coarser windows.
    #[serde(default)]
    pub input: InputKind,
    /// Add each field's mergeable state (`{field}.state.*`) to the aggregate
    /// records, so that a stage with `input = "aggregates"` can roll them up.
    #[serde(default)]
    pub emit_state: bool,
    /// Aggregates of every field (default `count`, `min`, `max`, `mean`).
    #[serde(default = "default_aggregates")]
    pub aggregates: Vec<String>,
    /// Per-field aggregates replacing `aggregates` for that field (rollup rules,
    /// e.g. `temperature = ["max"]`).
    #[serde(default)]
    pub rules: BTreeMap<String, Vec<String>>,
    /// `data_type` of the aggregate records; `{data_type}` is replaced by the
    /// series' own. Default `{data_type}.agg`.
    #[serde(default = "default_output_data_type")]
    pub output_data_type: String,
    /// Relative accuracy α of quantiles (default 0.01).
    #[serde(default = "default_relative_accuracy")]
    pub relative_accuracy: f64,
    /// Bins per sign of a quantile sketch (default 2048).
    #[serde(default = "default_max_bins")]
    pub sketch_max_bins: u32,
    /// Bound on series with state (default 100 000).
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// Bound on open plus retained windows per series (default 256).
    #[serde(default = "default_max_windows")]
    pub max_windows_per_series: usize,
    /// Bound on aggregated fields per window (default 64).
    #[serde(default = "default_max_fields")]
    pub max_fields: usize,
    /// Refuse readings more than this ahead of the caller's clock (event time,
    /// once a clock was given). Default 300; `null`/absent in TOML keeps the default.
    #[serde(default = "default_max_future")]
    pub max_future_seconds: Option<f64>,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            kind: KindName::Tumbling,
            size_seconds: None,
            hop_seconds: None,
            gap_seconds: None,
            count: None,
            time: TimeMode::Event,
            allowed_lateness_seconds: 0.0,
            idle_timeout_seconds: None,
            late: LatePolicy::Drop,
            revision_horizon_seconds: None,
            fields: None,
            series_per_field: false,
            input: InputKind::Readings,
            emit_state: false,
            aggregates: default_aggregates(),
            rules: BTreeMap::new(),
            output_data_type: default_output_data_type(),
            relative_accuracy: DEFAULT_RELATIVE_ACCURACY,
            sketch_max_bins: DEFAULT_MAX_BINS,
            max_series: DEFAULT_MAX_SERIES,
            max_windows_per_series: DEFAULT_MAX_WINDOWS_PER_SERIES,
            max_fields: DEFAULT_MAX_FIELDS,
            max_future_seconds: default_max_future(),
        }
    }
}

/// An aggregate with its output suffix, resolved once.
#[derive(Clone, Debug)]
pub(crate) struct OutputAggregate {
    pub(crate) aggregate: Aggregate,
    pub(crate) suffix: CompactString,
}

/// A validated config in the units the operator works in (nanoseconds).
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) kind: WindowKind,
    pub(crate) processing_time: bool,
    pub(crate) lateness: i64,
    pub(crate) idle_timeout: Option<i64>,
    pub(crate) late: LatePolicy,
    pub(crate) revision_horizon: i64,
    pub(crate) fields: Option<Vec<CompactString>>,
    pub(crate) series_per_field: bool,
    pub(crate) input_aggregates: bool,
    pub(crate) emit_state: bool,
    pub(crate) aggregates: Vec<OutputAggregate>,
    pub(crate) rules: Vec<(CompactString, Vec<OutputAggregate>)>,
    pub(crate) output_data_type: String,
    pub(crate) relative_accuracy: f64,
    pub(crate) sketch_max_bins: u32,
    pub(crate) max_series: usize,
    pub(crate) max_windows: usize,
    pub(crate) max_fields: usize,
    pub(crate) max_future: Option<i64>,
}

impl Settings {
    /// The aggregates emitted for `field`.
    pub(crate) fn aggregates_for(&self, field: &str) -> &[OutputAggregate] {
        self.rules
            .iter()
            .find(|(name, _)| name == field)
            .map_or(&self.aggregates, |(_, aggregates)| aggregates)
    }

    pub(crate) fn needs_sketch(&self, field: &str) -> bool {
        self.aggregates_for(field)
            .iter()
            .any(|output| output.aggregate.needs_sketch())
    }
}

/// Seconds to nanoseconds: finite, positive (or zero when allowed), within range.
fn nanos(key: &str, seconds: f64, allow_zero: bool) -> Result<i64> {
    // About 290 years: far beyond any window, far from i64 overflow.
    const MAX_SECONDS: f64 = 9.0e9;
    let ok = seconds.is_finite()
        && seconds <= MAX_SECONDS
        && (seconds > 0.0 || (allow_zero && seconds == 0.0));
    if !ok {
        let at_least = if allow_zero { "at least 0" } else { "above 0" };
        return Err(Error::config(
            key,
            format!(
                "must be a number of seconds, {at_least} and at most {MAX_SECONDS} (found {seconds})"
            ),
        ));
    }
    // At least 1 ns, so that a tiny positive duration cannot become an empty window.
    Ok(((seconds * 1e9).round() as i64).max(i64::from(seconds > 0.0)))
}

fn required(key: &str, value: Option<f64>, kind: &str) -> Result<f64> {
    value.ok_or_else(|| Error::config(key, format!("required for a {kind} window")))
}

fn aggregates(key: &str, names: &[String]) -> Result<Vec<OutputAggregate>> {
    if names.is_empty() {
        return Err(Error::config(key, "needs at least one aggregate"));
    }
    let mut out: Vec<OutputAggregate> = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let aggregate = Aggregate::parse(name).ok_or_else(|| {
            Error::config(
                format!("{key}[{index}]"),
                format!(
                    "unknown aggregate `{name}`, expected count, sum, min, max, mean, variance, \
                     stddev, first, last, rate, rms, median or pNN (e.g. p99)"
                ),
            )
        })?;
        let suffix = CompactString::from(aggregate.name());
        if !out.iter().any(|existing| existing.suffix == suffix) {
            out.push(OutputAggregate { aggregate, suffix });
        }
    }
    Ok(out)
}

impl WindowConfig {
    /// A tumbling window of `size_seconds`, with every other key at its default.
    pub fn tumbling(size_seconds: f64) -> Self {
        WindowConfig {
            size_seconds: Some(size_seconds),
            ..WindowConfig::default()
        }
    }

    /// A hopping window of `size_seconds` starting every `hop_seconds`.
    pub fn hopping(size_seconds: f64, hop_seconds: f64) -> Self {
        WindowConfig {
            kind: KindName::Hopping,
            size_seconds: Some(size_seconds),
            hop_seconds: Some(hop_seconds),
            ..WindowConfig::default()
        }
    }

    /// A session window closed by `gap_seconds` of inactivity.
    pub fn session(gap_seconds: f64) -> Self {
        WindowConfig {
            kind: KindName::Session,
            gap_seconds: Some(gap_seconds),
            ..WindowConfig::default()
        }
    }

    /// A window of every `count` readings per series.
    pub fn count(count: u64) -> Self {
        WindowConfig {
            kind: KindName::Count,
            count: Some(count),
            ..WindowConfig::default()
        }
    }

    /// Makes each aggregated field its own series (`series_per_field`).
    pub fn with_series_per_field(mut self, per_field: bool) -> Self {
        self.series_per_field = per_field;
        self
    }

    /// Sets what the stage reads (`input`).
    pub fn with_input(mut self, input: InputKind) -> Self {
        self.input = input;
        self
    }

    /// Adds each field's mergeable state to the aggregate records (`emit_state`).
    pub fn with_emit_state(mut self, emit_state: bool) -> Self {
        self.emit_state = emit_state;
        self
    }

    /// Parses a JSON document (the `window` table on its own).
    pub fn from_json_str(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|error| Error::config("window", error.to_string()))?;
        Self::from_value(value, "window")
    }

    /// Parses a TOML document (the `window` table on its own).
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let value: serde_json::Value =
            toml::from_str(text).map_err(|error| Error::config("window", error.to_string()))?;
        Self::from_value(value, "window")
    }

    /// Reads a config already parsed into a JSON value; `key` prefixes errors.
    pub fn from_value(value: serde_json::Value, key: &str) -> Result<Self> {
        crate::transform::read_config(key, value)
    }

    /// Checks every parameter; `key` (e.g. `window`) prefixes any error.
    pub fn validate(&self, key: &str) -> Result<()> {
        self.settings(key).map(|_| ())
    }

    /// Builds the operator, checking every parameter.
    pub fn build(&self) -> Result<WindowOperator> {
        WindowOperator::new(self.clone())
    }

    pub(crate) fn settings(&self, key: &str) -> Result<Settings> {
        let at = |name: &str| format!("{key}.{name}");
        let kind = match self.kind {
            KindName::Tumbling => WindowKind::Tumbling {
                size: nanos(
                    &at("size_seconds"),
                    required(&at("size_seconds"), self.size_seconds, "tumbling")?,
                    false,
                )?,
            },
            KindName::Hopping => {
                let size = nanos(
                    &at("size_seconds"),
                    required(&at("size_seconds"), self.size_seconds, "hopping")?,
                    false,
                )?;
                let hop = nanos(
                    &at("hop_seconds"),
                    required(&at("hop_seconds"), self.hop_seconds, "hopping")?,
                    false,
                )?;
                if hop > size || size / hop > 1000 {
                    return Err(Error::config(
                        at("hop_seconds"),
                        "must be at most `size_seconds` and at least 1/1000 of it",
                    ));
                }
                WindowKind::Hopping { size, hop }
            }
            KindName::Session => WindowKind::Session {
                gap: nanos(
                    &at("gap_seconds"),
                    required(&at("gap_seconds"), self.gap_seconds, "session")?,
                    false,
                )?,
            },
            KindName::Count => match self.count {
                Some(count) if count > 0 => WindowKind::Count { count },
                _ => {
                    return Err(Error::config(
                        at("count"),
                        "a count window needs `count` above 0",
                    ));
                }
            },
        };
        let size = match kind {
            WindowKind::Tumbling { size } | WindowKind::Hopping { size, .. } => size,
            WindowKind::Session { gap } => gap,
            WindowKind::Count { .. } => 0,
        };
        let lateness = nanos(
            &at("allowed_lateness_seconds"),
            self.allowed_lateness_seconds,
            true,
        )?;
        let idle_timeout = self
            .idle_timeout_seconds
            .map(|seconds| nanos(&at("idle_timeout_seconds"), seconds, false))
            .transpose()?;
        let revision_horizon = match self.revision_horizon_seconds {
            Some(seconds) => nanos(&at("revision_horizon_seconds"), seconds, true)?,
            None => size,
        };
        let max_future = self
            .max_future_seconds
            .map(|seconds| nanos(&at("max_future_seconds"), seconds, true))
            .transpose()?;
        let fields = match &self.fields {
            None => None,
            Some(fields) if fields.is_empty() => {
                return Err(Error::config(
                    at("fields"),
                    "needs at least one field (omit it for all)",
                ));
            }
            Some(fields) => {
                let mut unique: Vec<CompactString> = Vec::with_capacity(fields.len());
                for field in fields {
                    if !unique.iter().any(|known| known == field) {
                        unique.push(field.into());
                    }
                }
                Some(unique)
            }
        };
        let default_aggregates = aggregates(&at("aggregates"), &self.aggregates)?;
        let mut rules = Vec::with_capacity(self.rules.len());
        for (field, names) in &self.rules {
            rules.push((
                CompactString::from(field.as_str()),
                aggregates(&at(&format!("rules.{field}")), names)?,
            ));
        }
        if !(self.relative_accuracy > 0.0 && self.relative_accuracy < 1.0) {
            return Err(Error::config(
                at("relative_accuracy"),
                format!("must be between 0 and 1 (found {})", self.relative_accuracy),
            ));
        }
        if self.output_data_type.is_empty() {
            return Err(Error::config(at("output_data_type"), "must not be empty"));
        }
        if self.sketch_max_bins < 16 {
            return Err(Error::config(at("sketch_max_bins"), "must be at least 16"));
        }
        for (name, value, least) in [
            ("max_series", self.max_series, 1),
            ("max_windows_per_series", self.max_windows_per_series, 1),
            ("max_fields", self.max_fields, 1),
        ] {
            if value < least {
                return Err(Error::config(at(name), format!("must be at least {least}")));
            }
        }
        if let WindowKind::Hopping { size, hop } = kind
            && (size as u64).div_ceil(hop as u64) > self.max_windows_per_series as u64
        {
            return Err(Error::config(
                at("max_windows_per_series"),
                "must hold at least the windows one reading belongs to (size / hop)",
            ));
        }
        if self.input == InputKind::Aggregates && !kind.is_time_aligned() {
            return Err(Error::config(
                at("input"),
                "aggregates roll up into tumbling or hopping windows only",
            ));
        }
        Ok(Settings {
            kind,
            processing_time: self.time == TimeMode::Processing,
            lateness,
            idle_timeout,
            late: self.late,
            revision_horizon,
            fields,
            series_per_field: self.series_per_field,
            input_aggregates: self.input == InputKind::Aggregates,
            emit_state: self.emit_state,
            aggregates: default_aggregates,
            rules,
            output_data_type: self.output_data_type.clone(),
            relative_accuracy: self.relative_accuracy,
            sketch_max_bins: self.sketch_max_bins,
            max_series: self.max_series,
            max_windows: self.max_windows_per_series,
            max_fields: self.max_fields,
            max_future,
        })
    }
}
