//! The keyed windowing operator: series, watermarks, lateness, idle timeouts,
//! flushing, bounded state and snapshots.
//!
//! A *series* is one `(device_id, data_type)`, or `(device_id, data_type,
//! field)` with `series_per_field`. Each series has its own
//! watermark, its newest event time minus the allowed lateness: devices have
//! their own clocks and their own connectivity, and a shared watermark would let
//! one fast (or wrong) clock make every other device's readings late.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash, Hasher};

use compact_str::CompactString;
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::aggregate::{Aggregate, FieldState};
use super::assigner::WindowKind;
use super::config::{LatePolicy, Settings, WindowConfig};
use super::sketch::Sketch;
use crate::error::{Error, Result};
use crate::record::{DataRecord, Metadata, Payload, Timestamp, Value};
use crate::transform::Reason;

/// Where a window stage puts what it produces.
///
/// Three outputs rather than one `Vec<DataRecord>`: aggregates go on, late
/// readings (policy `output`) may go to a store of raw data, and refused
/// readings carry a reason, like the pipeline's quarantine.
#[derive(Clone, Debug, Default)]
pub struct WindowOutput {
    /// Aggregate records, in emission order (see the guide for their shape).
    pub aggregates: Vec<DataRecord>,
    /// Readings that arrived after their window was emitted (policy `output`).
    pub late: Vec<DataRecord>,
    /// Readings that could not be aggregated at all, with the reason.
    pub rejected: Vec<Rejected>,
}

impl WindowOutput {
    /// Empty outputs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties every output, keeping their allocations.
    pub fn clear(&mut self) {
        self.aggregates.clear();
        self.late.clear();
        self.rejected.clear();
    }
}

/// A reading the window stage refused, with why.
///
/// Codes: `window.future_timestamp` (more than `max_future_seconds` ahead of the
/// caller's clock), `window.timestamp_out_of_range` (its window would not fit an
/// `i64` of nanoseconds), `window.non_numeric` / `window.non_finite` (no
/// aggregated field had a usable value; the first bad field is named).
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    /// The reading, unchanged.
    pub record: DataRecord,
    /// Why it was refused.
    pub reason: Reason,
}

/// Counters of a window stage. Gauges (`series`, `open_windows`) are read when
/// [`WindowOperator::stats`] is called.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Records pushed.
    pub records_in: u64,
    /// Records that updated at least one window (or were revised in).
    pub records_aggregated: u64,
    /// Field updates: one per aggregated value per window it went into.
    pub values_aggregated: u64,
    /// Records without any aggregated field (ignored, not an error).
    pub records_ignored: u64,
    /// Values of listed fields that were not numbers (skipped).
    pub non_numeric_skipped: u64,
    /// NaN or infinite values (skipped).
    pub non_finite_skipped: u64,
    /// Values skipped because a window already had `max_fields` fields.
    pub fields_over_limit: u64,
    /// Records refused (on the `rejected` output).
    pub rejected: u64,
    /// Late records dropped (policy `drop`, or past the revision horizon).
    pub late_dropped: u64,
    /// Late records put on the `late` output.
    pub late_routed: u64,
    /// Late records added to an emitted window, which was emitted again.
    pub late_revised: u64,
    /// Windows emitted (first emissions, revision 0).
    pub windows_emitted: u64,
    /// Revisions emitted (revision ≥ 1).
    pub revisions_emitted: u64,
    /// Windows emitted early to stay within `max_windows_per_series` or because
    /// their series was evicted.
    pub windows_evicted: u64,
    /// Series forgotten to stay within `max_series`.
    pub series_evicted: u64,
    /// Series with state now.
    pub series: u64,
    /// Open windows now.
    pub open_windows: u64,
}

/// Why a window was emitted: the `window.closed_by` metadata value.
mod closed_by {
    pub(super) const WATERMARK: &str = "watermark";
    pub(super) const CLOCK: &str = "clock";
    pub(super) const IDLE: &str = "idle";
    pub(super) const FLUSH: &str = "flush";
    pub(super) const COUNT: &str = "count";
    pub(super) const EVICTED: &str = "evicted";
    pub(super) const LATE: &str = "late";
    pub(super) const MERGED: &str = "merged";
}

/// What identifies a series and is copied into its aggregate records.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ident {
    device_id: CompactString,
    data_type: CompactString,
    output_data_type: CompactString,
    /// The field, when each field is its own series (`series_per_field`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    field: Option<CompactString>,
    /// The metadata of the series' first record, carried onto its aggregates.
    metadata: Vec<(CompactString, CompactString)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Series {
    ident: Ident,
    /// Newest event time seen (processing time in processing-time mode).
    max_event: Option<i64>,
    /// End of the latest window emitted; readings of windows ending at or before
    /// it are late even when the watermark is behind (idle, flush, eviction).
    emitted_through: Option<i64>,
    /// End of the latest retained window dropped; revisions stop there.
    pruned_through: Option<i64>,
    /// The caller's clock at the last reading.
    last_active: Option<i64>,
    /// Open windows, by start.
    open: Vec<Window>,
    /// Emitted windows kept for revisions (policy `revise`), by start.
    closed: Vec<Window>,
    /// Index of the next count window.
    next_index: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Window {
    start: i64,
    end: i64,
    /// Count windows: position in the series. Other kinds: 0.
    index: u64,
    revision: u32,
    readings: u64,
    fields: Vec<(CompactString, FieldState)>,
    /// A session's (start, end) at its first emission: its key through
    /// revisions that extend it. Other kinds: `None` (their bounds never move).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<(i64, i64)>,
}

impl Window {
    fn new(start: i64, end: i64, index: u64) -> Self {
        Window {
            start,
            end,
            index,
            revision: 0,
            readings: 0,
            fields: Vec::new(),
            key: None,
        }
    }
}

/// The saved state of a [`WindowOperator`], to resume after a restart.
///
/// Serialisable with serde; [`WindowSnapshot::to_json`] and
/// [`WindowSnapshot::from_json`] are the ready-made form. It carries the
/// config, so a snapshot restores into the stage it came from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WindowSnapshot {
    /// Format version (1).
    pub format: u32,
    config: WindowConfig,
    clock: Option<i64>,
    stream_time: Option<i64>,
    forgotten: Forgotten,
    stats: WindowStats,
    /// Series by key, sorted, so that equal states give equal snapshots.
    series: Vec<(String, Series)>,
}

/// The snapshot format this version writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 1;

impl WindowSnapshot {
    /// The snapshot as JSON.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|error| Error::Snapshot {
            message: error.to_string(),
        })
    }

    /// Reads a snapshot written by [`WindowSnapshot::to_json`].
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|error| Error::Snapshot {
            message: error.to_string(),
        })
    }
}

/// Keyed windows over a stream of records: the window stage.
///
/// Not a [`Transform`](crate::transform::Transform): a window takes many
/// readings and emits one aggregate later, so it has its own calls. The caller
/// drives time: [`push`](Self::push) readings, call
/// [`advance_to`](Self::advance_to) with the current time now and then (idle
/// timeouts, processing time), and [`flush`](Self::flush) at shutdown. Nothing
/// here starts a thread or reads a clock, so runs are deterministic.
///
/// ```
/// use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};
/// use edgepipe_core::window::{WindowConfig, WindowOutput};
///
/// let mut windows = WindowConfig::tumbling(10.0).build()?;
/// let mut out = WindowOutput::new();
/// for (second, temperature) in [(0, 20.0), (4, 22.0), (12, 30.0)] {
///     let payload: Payload = [("temperature", Value::Float(temperature))].into_iter().collect();
///     let mut record = DataRecord::new("dev-1", "sensors", payload);
///     record.timestamp = Timestamp::from_unix_seconds(second).unwrap();
///     windows.push(&record, &mut out);
/// }
/// // The reading at 12 s moved the watermark past [0 s, 10 s): it was emitted.
/// let first = &out.aggregates[0];
/// assert_eq!(first.data_type, "sensors.agg");
/// assert_eq!(first.payload.get("temperature.mean"), Some(&Value::Float(21.0)));
/// assert_eq!(first.payload.get("temperature.count"), Some(&Value::Int(2)));
/// windows.flush(&mut out);
/// assert_eq!(out.aggregates.len(), 2);
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Debug)]
pub struct WindowOperator {
    config: WindowConfig,
    settings: Settings,
    /// Every series, densely packed: a reading touches its own series and a
    /// 4-byte slot of `index`, not a large hash-table bucket.
    series: Vec<Series>,
    /// Positions in `series`, found by the hash of (device, type, field) and
    /// checked against the series' own ident, so no key is built per record.
    index: HashTable<u32>,
    /// Seeded per operator, so that crafted device ids cannot flood one bucket.
    hasher: foldhash::fast::RandomState,
    /// Per payload position: the value to aggregate, or NaN for a field that is
    /// not aggregated (valid values are finite, so NaN is free as a marker).
    /// Reused so that classifying a record allocates nothing.
    values: Vec<f64>,
    /// The field states of an aggregate record (`input = "aggregates"`).
    states: Vec<(CompactString, FieldState)>,
    clock: Option<i64>,
    stream_time: Option<i64>,
    /// What evicted series leave behind, so that forgetting a series can never
    /// emit one window key twice.
    forgotten: Forgotten,
    stats: WindowStats,
}

/// How a payload value takes part in aggregation.
enum Use {
    /// Not an aggregated field.
    Skip,
    /// Aggregated, with this value.
    Value(f64),
    /// Aggregated field with an unusable value (the reason code).
    Bad(&'static str),
}

#[inline]
fn classify(settings: &Settings, name: &str, value: &Value) -> Use {
    let listed = match &settings.fields {
        None => false,
        Some(fields) => {
            if !fields.iter().any(|field| field == name) {
                return Use::Skip;
            }
            true
        }
    };
    let number = match *value {
        Value::Float(number) => number,
        Value::Int(number) => number as f64,
        Value::UInt(number) => number as f64,
        // Flags (`anomaly: true`) aggregate as 0/1: their sum is a count.
        Value::Bool(flag) => f64::from(u8::from(flag)),
        _ if listed => return Use::Bad("window.non_numeric"),
        // Unlisted strings and the like are labels, not readings.
        _ => return Use::Skip,
    };
    if number.is_finite() {
        Use::Value(number)
    } else {
        Use::Bad("window.non_finite")
    }
}

/// Writes an unambiguous key for one series (snapshots and tombstones): the
/// device id is length-prefixed, and so is the data type when a field follows.
fn series_key(out: &mut String, device_id: &str, data_type: &str, field: Option<&str>) {
    let mut digits = itoa::Buffer::new();
    out.clear();
    out.push_str(digits.format(device_id.len()));
    out.push(':');
    out.push_str(device_id);
    if let Some(field) = field {
        out.push_str(digits.format(data_type.len()));
        out.push(':');
        out.push_str(data_type);
        out.push_str(field);
    } else {
        out.push_str(data_type);
    }
}

impl Ident {
    fn key(&self) -> String {
        let mut key = String::new();
        series_key(
            &mut key,
            &self.device_id,
            &self.data_type,
            self.field.as_deref(),
        );
        key
    }

    #[inline]
    fn is(&self, device_id: &str, data_type: &str, field: Option<&str>) -> bool {
        self.device_id == device_id && self.data_type == data_type && self.field.as_deref() == field
    }
}

/// The index hash of a series. `str` hashes end with a 0xff byte, which UTF-8
/// never contains, so the three parts cannot run into each other.
#[inline]
fn series_hash(
    hasher: &foldhash::fast::RandomState,
    device_id: &str,
    data_type: &str,
    field: Option<&str>,
) -> u64 {
    let mut state = hasher.build_hasher();
    device_id.hash(&mut state);
    data_type.hash(&mut state);
    field.hash(&mut state);
    state.finish()
}

impl WindowOperator {
    /// A window stage for `config`, checking every parameter.
    pub fn new(config: WindowConfig) -> Result<Self> {
        let settings = config.settings("window")?;
        Ok(WindowOperator {
            config,
            settings,
            series: Vec::new(),
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            values: Vec::new(),
            states: Vec::new(),
            clock: None,
            stream_time: None,
            forgotten: Forgotten::default(),
            stats: WindowStats::default(),
        })
    }

    /// The config the stage was built from.
    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    /// The newest event time seen across all series: what a replay of recorded
    /// data can pass to [`advance_to`](Self::advance_to) as its clock.
    pub fn stream_time(&self) -> Option<Timestamp> {
        self.stream_time.map(Timestamp::from_unix_nanos)
    }

    /// Counters, with the gauges read now.
    pub fn stats(&self) -> WindowStats {
        let mut stats = self.stats.clone();
        stats.series = self.series.len() as u64;
        stats.open_windows = self
            .series
            .iter()
            .map(|series| series.open.len() as u64)
            .sum();
        stats
    }

    fn reject(&mut self, record: &DataRecord, reason: Reason, out: &mut WindowOutput) {
        self.stats.rejected += 1;
        out.rejected.push(Rejected {
            record: record.clone(),
            reason,
        });
    }

    /// Adds one reading. Windows it completes (the series' watermark passed
    /// their end) are emitted to `out.aggregates`; a late reading follows the
    /// late policy; an unusable one goes to `out.rejected`.
    pub fn push(&mut self, record: &DataRecord, out: &mut WindowOutput) {
        self.stats.records_in += 1;
        let settings = &self.settings;
        let time = match (settings.processing_time, self.clock) {
            (true, Some(clock)) => clock,
            _ => record.timestamp.unix_nanos(),
        };
        if !settings.processing_time
            && let (Some(clock), Some(max_future)) = (self.clock, settings.max_future)
            && time > clock.saturating_add(max_future)
        {
            let message = format!(
                "{} is more than {} s ahead of the clock {}",
                record.timestamp,
                max_future as f64 / 1e9,
                Timestamp::from_unix_nanos(clock)
            );
            return self.reject(
                record,
                Reason::record("window.future_timestamp", message),
                out,
            );
        }

        if settings.input_aggregates {
            return self.push_aggregate(record, time, out);
        }
        let mut valid = 0usize;
        let mut first_bad: Option<(&'static str, &str)> = None;
        self.values.clear();
        for (name, value) in record.payload.iter() {
            match classify(settings, name, value) {
                Use::Skip => self.values.push(f64::NAN),
                Use::Value(number) => {
                    valid += 1;
                    self.values.push(number);
                }
                Use::Bad(code) => {
                    self.values.push(f64::NAN);
                    if code == "window.non_numeric" {
                        self.stats.non_numeric_skipped += 1;
                    } else {
                        self.stats.non_finite_skipped += 1;
                    }
                    first_bad.get_or_insert((code, name));
                }
            }
        }
        if valid == 0 {
            match first_bad {
                Some((code, field)) => {
                    let message = format!("`{field}` is not a finite number; nothing to aggregate");
                    let reason = Reason::field(code, field, message);
                    self.reject(record, reason, out);
                }
                None => self.stats.records_ignored += 1,
            }
            return;
        }
        // Every window of `time` lies within `time ± size`; refusing the few
        // readings within one window of the i64 limits (the year 2262) keeps
        // all later arithmetic exact without checking each step.
        let in_range = match settings.kind {
            WindowKind::Session { gap: size }
            | WindowKind::Tumbling { size }
            | WindowKind::Hopping { size, .. } => {
                time.checked_sub(size).is_some() && time.checked_add(size).is_some()
            }
            WindowKind::Count { .. } => true,
        };
        if !in_range {
            let message = format!(
                "the window of {} does not fit the time range",
                record.timestamp
            );
            return self.reject(
                record,
                Reason::record("window.timestamp_out_of_range", message),
                out,
            );
        }

        let mut late = false;
        let mut aggregated = false;
        if self.settings.series_per_field {
            for (position, (name, _)) in record.payload.iter().enumerate() {
                if self.values.get(position).is_none_or(|value| value.is_nan()) {
                    continue;
                }
                let slot = self.series_slot(record, &record.data_type, Some(name), out);
                let placed = self.place_in(slot, record, time, Some(position), 1, out);
                late |= placed.late;
                aggregated |= placed.aggregated;
            }
        } else {
            let slot = self.series_slot(record, &record.data_type, None, out);
            let placed = self.place_in(slot, record, time, None, 1, out);
            late = placed.late;
            aggregated = placed.aggregated;
        }
        if aggregated {
            self.stats.records_aggregated += 1;
        }
        self.stream_time = Some(self.stream_time.map_or(time, |newest| newest.max(time)));
        // With a series per field the record is routed once, however many of
        // its fields were late (the late counters count field readings).
        if late && self.settings.late != LatePolicy::Drop {
            out.late.push(record.clone());
        }
    }

    /// An aggregate record of a finer stage (`input = "aggregates"`): its
    /// field states are merged into the coarser windows of its start.
    fn push_aggregate(&mut self, record: &DataRecord, time: i64, out: &mut WindowOutput) {
        // A revision repeats readings an earlier emission already brought.
        if record
            .metadata
            .get("window.revision")
            .is_some_and(|revision| revision != "0")
        {
            let message = "a revision would count its window's readings twice";
            return self.reject(
                record,
                Reason::record("window.revision_input", message),
                out,
            );
        }
        self.states.clear();
        for name in record.payload.keys() {
            let Some(field) = name.strip_suffix(".state.count") else {
                continue;
            };
            if let Some(fields) = &self.settings.fields
                && !fields.iter().any(|known| known == field)
            {
                continue;
            }
            match FieldState::read_state(field, &record.payload, self.settings.sketch_max_bins) {
                Ok(state) => self.states.push((CompactString::from(field), state)),
                Err(message) => {
                    let reason = Reason::field("window.bad_state", field, message);
                    return self.reject(record, reason, out);
                }
            }
        }
        if self.states.is_empty() {
            let message = "no `{field}.state.count`: not an aggregate record with its state";
            return self.reject(record, Reason::record("window.no_state", message), out);
        }
        let in_range = match self.settings.kind {
            WindowKind::Tumbling { size } | WindowKind::Hopping { size, .. } => {
                time.checked_sub(size).is_some() && time.checked_add(size).is_some()
            }
            _ => true,
        };
        if !in_range {
            let message = format!(
                "the window of {} does not fit the time range",
                record.timestamp
            );
            return self.reject(
                record,
                Reason::record("window.timestamp_out_of_range", message),
                out,
            );
        }
        // The finer stage's series: its data type, not the aggregates' own.
        let data_type = record
            .metadata
            .get("window.data_type")
            .map_or(record.data_type.as_str(), |data_type| data_type.as_str());
        let readings = record
            .metadata
            .get("window.readings")
            .and_then(|readings| readings.parse::<u64>().ok());
        let mut late = false;
        let mut aggregated = false;
        if self.settings.series_per_field {
            for position in 0..self.states.len() {
                let field = self.states.get(position).map(|(field, _)| field.clone());
                let slot = self.series_slot(record, data_type, field.as_deref(), out);
                let readings = self
                    .states
                    .get(position)
                    .map_or(0, |(_, state)| state.count());
                let placed = self.place_in(slot, record, time, Some(position), readings, out);
                late |= placed.late;
                aggregated |= placed.aggregated;
            }
        } else {
            let slot = self.series_slot(record, data_type, None, out);
            let readings = readings.unwrap_or_else(|| {
                self.states
                    .iter()
                    .map(|(_, state)| state.count())
                    .max()
                    .unwrap_or(0)
            });
            let placed = self.place_in(slot, record, time, None, readings, out);
            late = placed.late;
            aggregated = placed.aggregated;
        }
        if aggregated {
            self.stats.records_aggregated += 1;
        }
        self.stream_time = Some(self.stream_time.map_or(time, |newest| newest.max(time)));
        if late && self.settings.late != LatePolicy::Drop {
            out.late.push(record.clone());
        }
    }

    /// The slot of the record's series (its `field`'s with a series per
    /// field), created when new, after making room if at `max_series`.
    #[inline]
    fn series_slot(
        &mut self,
        record: &DataRecord,
        data_type: &str,
        field: Option<&str>,
        out: &mut WindowOutput,
    ) -> usize {
        let hash = series_hash(&self.hasher, &record.device_id, data_type, field);
        let series = &self.series;
        if let Some(&slot) = self.index.find(hash, |&slot| {
            series
                .get(slot as usize)
                .is_some_and(|series| series.ident.is(&record.device_id, data_type, field))
        }) {
            return slot as usize;
        }
        if self.series.len() >= self.settings.max_series {
            self.make_room(out);
        }
        // A finer stage's `window.*` keys describe its windows, not this one's.
        let rollup = self.settings.input_aggregates;
        let ident = Ident {
            device_id: record.device_id.clone(),
            data_type: data_type.into(),
            output_data_type: self
                .settings
                .output_data_type
                .replace("{data_type}", data_type)
                .into(),
            field: field.map(CompactString::from),
            metadata: record
                .metadata
                .iter()
                .filter(|(key, _)| !(rollup && key.starts_with("window.")))
                .map(|(key, value)| (CompactString::from(key), value.clone()))
                .collect(),
        };
        let (through, next_index) = self.forgotten.recall(&ident.key());
        let series = Series {
            ident,
            max_event: None,
            emitted_through: through,
            pruned_through: through,
            last_active: self.clock,
            open: Vec::new(),
            closed: Vec::new(),
            next_index,
        };
        let slot = self.series.len();
        self.series.push(series);
        self.insert_index(hash, slot);
        slot
    }

    fn hash_of(&self, slot: usize) -> u64 {
        self.series.get(slot).map_or(0, |series| {
            let ident = &series.ident;
            series_hash(
                &self.hasher,
                &ident.device_id,
                &ident.data_type,
                ident.field.as_deref(),
            )
        })
    }

    fn insert_index(&mut self, hash: u64, slot: usize) {
        let WindowOperator {
            index,
            series,
            hasher,
            ..
        } = self;
        index.insert_unique(hash, slot as u32, |&slot| {
            series.get(slot as usize).map_or(0, |series| {
                let ident = &series.ident;
                series_hash(
                    hasher,
                    &ident.device_id,
                    &ident.data_type,
                    ident.field.as_deref(),
                )
            })
        });
    }

    /// Removes the series at `slot`; the last series moves into its place.
    fn remove_series(&mut self, slot: usize) -> Option<Series> {
        if slot >= self.series.len() {
            return None;
        }
        let hash = self.hash_of(slot);
        if let Ok(entry) = self.index.find_entry(hash, |&known| known as usize == slot) {
            entry.remove();
        }
        let last = self.series.len() - 1;
        if slot != last {
            let moved_hash = self.hash_of(last);
            if let Some(entry) = self
                .index
                .find_mut(moved_hash, |&known| known as usize == last)
            {
                *entry = slot as u32;
            }
        }
        Some(self.series.swap_remove(slot))
    }

    /// Places `record` in the series at `slot` (only the field at `only`, with
    /// a series per field), then applies the late policy's counters.
    #[inline]
    fn place_in(
        &mut self,
        slot: usize,
        record: &DataRecord,
        time: i64,
        only: Option<usize>,
        readings: u64,
        out: &mut WindowOutput,
    ) -> Placed {
        let WindowOperator {
            settings,
            series,
            values,
            states,
            clock,
            stats,
            ..
        } = self;
        let Some(series) = series.get_mut(slot) else {
            return Placed::default();
        };
        if clock.is_some() {
            series.last_active = *clock;
        }
        let state = State {
            settings,
            stats,
            out,
            values,
            states,
            only,
            readings,
        };
        let placed = state.place(series, record, time);
        if placed.late {
            match settings.late {
                LatePolicy::Drop => stats.late_dropped += 1,
                LatePolicy::Output | LatePolicy::Revise => stats.late_routed += 1,
            }
        }
        placed
    }
    /// Moves the caller's clock to `now` (it never goes back): closes windows
    /// whose end it passed (processing time) and the open windows of series
    /// quiet for the idle timeout. Emitted records are sorted by window start,
    /// device and type.
    pub fn advance_to(&mut self, now: Timestamp, out: &mut WindowOutput) {
        let now = self
            .clock
            .map_or(now.unix_nanos(), |clock| clock.max(now.unix_nanos()));
        self.clock = Some(now);
        let first = out.aggregates.len();
        let mut state = State {
            settings: &self.settings,
            stats: &mut self.stats,
            out,
            values: &[],
            states: &[],
            only: None,
            readings: 0,
        };
        for series in &mut self.series {
            if state.settings.processing_time {
                state.close_until(series, now, closed_by::CLOCK);
            }
            let last_active = *series.last_active.get_or_insert(now);
            if let Some(idle) = state.settings.idle_timeout
                && now.saturating_sub(last_active) >= idle
                && !series.open.is_empty()
            {
                state.close_all(series, closed_by::IDLE);
            }
        }
        sort_emitted(&mut out.aggregates[first..]);
    }

    /// Emits every open window now (shutdown, or the end of a replay). Series
    /// keep their watermarks, so a reading for an emitted window stays late.
    pub fn flush(&mut self, out: &mut WindowOutput) {
        let first = out.aggregates.len();
        let mut state = State {
            settings: &self.settings,
            stats: &mut self.stats,
            out,
            values: &[],
            states: &[],
            only: None,
            readings: 0,
        };
        for series in &mut self.series {
            state.close_all(series, closed_by::FLUSH);
        }
        sort_emitted(&mut out.aggregates[first..]);
    }

    /// Forgets the least recently active eighth of the series (at least one),
    /// emitting their open windows first. Scanning once per eighth keeps the
    /// cost per new series constant on average.
    fn make_room(&mut self, out: &mut WindowOutput) {
        let evict = (self.settings.max_series / 8).max(1);
        let mut candidates: Vec<(Option<i64>, Option<i64>, String, usize)> = self
            .series
            .iter()
            .enumerate()
            .map(|(slot, series)| {
                (
                    series.last_active,
                    series.max_event,
                    series.ident.key(),
                    slot,
                )
            })
            .collect();
        candidates.sort_unstable();
        candidates.truncate(evict);
        // Highest slot first: removing one moves the last series into its
        // slot, which is then never one still to be removed.
        candidates.sort_unstable_by_key(|candidate| std::cmp::Reverse(candidate.3));
        let first = out.aggregates.len();
        for (_, _, key, slot) in candidates {
            let Some(mut series) = self.remove_series(slot) else {
                continue;
            };
            let mut state = State {
                settings: &self.settings,
                stats: &mut self.stats,
                out,
                values: &[],
                states: &[],
                only: None,
                readings: 0,
            };
            let open = series.open.len() as u64;
            state.close_all(&mut series, closed_by::EVICTED);
            self.stats.windows_evicted += open;
            self.stats.series_evicted += 1;
            let through = series.emitted_through.max(series.pruned_through);
            self.forgotten
                .remember(&key, through, series.next_index, self.settings.max_series);
        }
        sort_emitted(&mut out.aggregates[first..]);
    }

    /// The state to resume from after a restart.
    pub fn snapshot(&self) -> WindowSnapshot {
        let mut series: Vec<(String, Series)> = self
            .series
            .iter()
            .map(|series| (series.ident.key(), series.clone()))
            .collect();
        series.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        WindowSnapshot {
            format: SNAPSHOT_FORMAT,
            config: self.config.clone(),
            clock: self.clock,
            stream_time: self.stream_time,
            forgotten: self.forgotten.clone(),
            stats: self.stats.clone(),
            series,
        }
    }

    /// A stage resumed from `snapshot`: the same config, windows and counters.
    /// Refuses snapshots of another format or with state no run could produce.
    pub fn restore(snapshot: WindowSnapshot) -> Result<Self> {
        let invalid = |message: &str| Error::Snapshot {
            message: message.to_owned(),
        };
        if snapshot.format != SNAPSHOT_FORMAT {
            return Err(invalid("unsupported snapshot format"));
        }
        let mut operator = WindowOperator::new(snapshot.config)?;
        for (key, series) in &snapshot.series {
            if *key != series.ident.key() {
                return Err(invalid("a series key does not match its device and type"));
            }
            if series.ident.field.is_some() != operator.settings.series_per_field {
                return Err(invalid("a series does not match `series_per_field`"));
            }
            for window in series.open.iter().chain(&series.closed) {
                if window.start > window.end {
                    return Err(invalid("a window ends before it starts"));
                }
                if window
                    .fields
                    .iter()
                    .any(|(_, state)| state.sketch().is_some_and(|sketch| !sketch.is_sane()))
                {
                    return Err(invalid("a quantile sketch is malformed"));
                }
            }
        }
        if snapshot.series.len() > operator.settings.max_series {
            return Err(invalid("more series than `max_series`"));
        }
        for (_, series) in snapshot.series {
            let ident = &series.ident;
            let hash = series_hash(
                &operator.hasher,
                &ident.device_id,
                &ident.data_type,
                ident.field.as_deref(),
            );
            let duplicate = operator.index.find(hash, |&slot| {
                operator.series.get(slot as usize).is_some_and(|known| {
                    known
                        .ident
                        .is(&ident.device_id, &ident.data_type, ident.field.as_deref())
                })
            });
            if duplicate.is_some() {
                return Err(invalid("a series appears twice"));
            }
            let slot = operator.series.len();
            operator.series.push(series);
            operator.insert_index(hash, slot);
        }
        operator.clock = snapshot.clock;
        operator.stream_time = snapshot.stream_time;
        operator.forgotten = snapshot.forgotten;
        operator.stats = snapshot.stats;
        Ok(operator)
    }
}

/// Window start, then device, type and id: the same order whatever the hash
/// map's iteration order, so runs and restored runs emit identically.
fn sort_emitted(records: &mut [DataRecord]) {
    records.sort_by(|a, b| {
        (a.timestamp, &a.device_id, &a.data_type, &a.record_id).cmp(&(
            b.timestamp,
            &b.device_id,
            &b.data_type,
            &b.record_id,
        ))
    });
}

/// Tombstones of evicted series: 16 bytes each instead of their windows.
///
/// A re-created series resumes from its tombstone: readings of windows it
/// already emitted are late, and count windows continue their numbering. When
/// tombstones outnumber `max_series` they are folded into one conservative
/// tombstone for every series (the latest end and the highest index).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Forgotten {
    /// FNV-1a hash of the series key → (emitted through, next count index).
    /// A `BTreeMap` keeps snapshots deterministic.
    series: BTreeMap<u64, (Option<i64>, u64)>,
    /// The fold of discarded tombstones.
    through: Option<i64>,
    next_index: u64,
}

/// FNV-1a: stable across Rust releases, unlike `DefaultHasher`, so snapshots
/// keep working after an upgrade.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Forgotten {
    fn recall(&mut self, key: &str) -> (Option<i64>, u64) {
        let (through, next_index) = self.series.remove(&fnv1a(key)).unwrap_or((None, 0));
        (through.max(self.through), next_index.max(self.next_index))
    }

    fn remember(&mut self, key: &str, through: Option<i64>, next_index: u64, limit: usize) {
        // On a hash collision keep the later of both, which is only more cautious.
        let entry = self.series.entry(fnv1a(key)).or_insert((None, 0));
        entry.0 = entry.0.max(through);
        entry.1 = entry.1.max(next_index);
        if self.series.len() > limit {
            for (through, next_index) in std::mem::take(&mut self.series).into_values() {
                self.through = self.through.max(through);
                self.next_index = self.next_index.max(next_index);
            }
        }
    }
}

/// What the per-series steps borrow from the operator.
struct State<'a> {
    settings: &'a Settings,
    stats: &'a mut WindowStats,
    out: &'a mut WindowOutput,
    /// The record's values by payload position (NaN: not aggregated).
    values: &'a [f64],
    /// The field states of an aggregate record (`input = "aggregates"`).
    states: &'a [(CompactString, FieldState)],
    /// With a series per field: the one position (in `values` or `states`)
    /// this series takes.
    only: Option<usize>,
    /// Readings the record stands for: 1, or a finer window's readings.
    readings: u64,
}

/// What placing a reading in its series did.
#[derive(Clone, Copy, Debug, Default)]
struct Placed {
    /// It was late and not revised in (the caller applies the late policy).
    late: bool,
    /// It went into at least one window (or revision).
    aggregated: bool,
}

impl State<'_> {
    /// Puts `record` (at `time`) into its windows.
    fn place(mut self, series: &mut Series, record: &DataRecord, time: i64) -> Placed {
        let settings = self.settings;
        let watermark = series.max_event.map(|newest| {
            newest.saturating_sub(if settings.processing_time {
                0
            } else {
                settings.lateness
            })
        });
        let closed_through = watermark.max(series.emitted_through);
        let mut late = false;
        let mut aggregated = false;
        match settings.kind {
            WindowKind::Count { count } => {
                let needs_new = series
                    .open
                    .last()
                    .is_none_or(|window| window.readings >= count);
                if needs_new {
                    series.open.push(Window::new(time, time, series.next_index));
                    series.next_index = series.next_index.saturating_add(1);
                }
                if let Some(window) = series.open.last_mut() {
                    window.start = window.start.min(time);
                    window.end = window.end.max(time);
                    self.add(window, record, time);
                    aggregated = true;
                    if window.readings >= count
                        && let Some(window) = series.open.pop()
                    {
                        self.emit(&series.ident, &window, closed_by::COUNT);
                        series.emitted_through = series.emitted_through.max(Some(window.end));
                    }
                }
            }
            WindowKind::Session { gap } => {
                let end = time.saturating_add(gap);
                let first = series
                    .open
                    .iter()
                    .position(|window| window.start < end && time < window.end);
                let revise = settings.late == LatePolicy::Revise;
                let joins_emitted = || {
                    series
                        .closed
                        .iter()
                        .any(|window| window.start < end && time < window.end)
                };
                match first {
                    // Under `revise` a reading within the gap of an emitted
                    // session reopens it, whether or not it is late itself.
                    _ if revise && joins_emitted() => {
                        aggregated = self.revise_session(
                            series,
                            watermark,
                            closed_through,
                            record,
                            time,
                            end,
                        );
                    }
                    None if closed_through.is_some_and(|through| end <= through) => {
                        if revise {
                            aggregated = self.revise_session(
                                series,
                                watermark,
                                closed_through,
                                record,
                                time,
                                end,
                            );
                        } else {
                            late = true;
                        }
                    }
                    None => {
                        let index = series.open.partition_point(|window| window.start < time);
                        let index = self.make_window_room(series, index);
                        series.open.insert(index, Window::new(time, end, 0));
                        if let Some(window) = series.open.get_mut(index) {
                            self.add(window, record, time);
                            aggregated = true;
                        }
                    }
                    Some(first) => {
                        // Sessions are disjoint and sorted, so the ones the reading
                        // bridges follow each other.
                        let mut last = first;
                        while series
                            .open
                            .get(last + 1)
                            .is_some_and(|window| window.start < end && time < window.end)
                        {
                            last += 1;
                        }
                        let merged: Vec<Window> = series.open.drain(first + 1..=last).collect();
                        if let Some(window) = series.open.get_mut(first) {
                            for other in merged {
                                window.end = window.end.max(other.end);
                                window.readings = window.readings.saturating_add(other.readings);
                                merge_fields(
                                    &mut window.fields,
                                    other.fields,
                                    settings,
                                    self.stats,
                                );
                            }
                            window.start = window.start.min(time);
                            window.end = window.end.max(end);
                            self.add(window, record, time);
                            aggregated = true;
                        }
                    }
                }
            }
            WindowKind::Tumbling { .. }
                if closed_through.is_none_or(|through| time >= through)
                    && let Some(index) = series
                        .open
                        .iter()
                        .rposition(|window| window.start <= time && time < window.end) =>
            {
                // The common case, an open window holds the reading: no division.
                if let Some(window) = series.open.get_mut(index) {
                    self.add(window, record, time);
                    aggregated = true;
                }
            }
            kind => {
                kind.aligned_windows(time, |start, end| {
                    if closed_through.is_some_and(|through| end <= through) {
                        if settings.late == LatePolicy::Revise {
                            if self.revise(series, watermark, start, end, record, time) {
                                aggregated = true;
                            }
                        } else {
                            late = true;
                        }
                        return;
                    }
                    let found = series.open.partition_point(|window| window.start < start);
                    let index = if series
                        .open
                        .get(found)
                        .is_some_and(|window| window.start == start)
                    {
                        found
                    } else {
                        let index = self.make_window_room(series, found);
                        series.open.insert(index, Window::new(start, end, 0));
                        index
                    };
                    if let Some(window) = series.open.get_mut(index) {
                        self.add(window, record, time);
                        aggregated = true;
                    }
                });
            }
        }
        if series.max_event.is_none_or(|newest| time > newest) {
            series.max_event = Some(time);
        }
        if !matches!(settings.kind, WindowKind::Count { .. })
            && let Some(newest) = series.max_event
        {
            let lateness = if settings.processing_time {
                0
            } else {
                settings.lateness
            };
            self.close_until(
                series,
                newest.saturating_sub(lateness),
                closed_by::WATERMARK,
            );
        }
        Placed {
            late: late && !aggregated,
            aggregated,
        }
    }

    /// A late reading under policy `revise`: adds it to the retained window and
    /// emits the next revision. Returns false when the window is past the
    /// horizon (counted as dropped).
    fn revise(
        &mut self,
        series: &mut Series,
        watermark: Option<i64>,
        start: i64,
        end: i64,
        record: &DataRecord,
        time: i64,
    ) -> bool {
        let horizon_passed = watermark.is_some_and(|watermark| {
            end.saturating_add(self.settings.revision_horizon) <= watermark
        });
        if horizon_passed || series.pruned_through.is_some_and(|through| end <= through) {
            self.stats.late_dropped += 1;
            return false;
        }
        let found = series.closed.partition_point(|window| window.start < start);
        let index = if series
            .closed
            .get(found)
            .is_some_and(|window| window.start == start)
        {
            if let Some(window) = series.closed.get_mut(found) {
                window.revision = window.revision.saturating_add(1);
            }
            found
        } else {
            // The window was empty when it closed: this is its first emission.
            series.closed.insert(found, Window::new(start, end, 0));
            found
        };
        let Some(window) = series.closed.get_mut(index) else {
            return false;
        };
        self.add(window, record, time);
        self.stats.late_revised += 1;
        let window = window.clone();
        self.emit(&series.ident, &window, closed_by::LATE);
        self.prune(series, watermark);
        true
    }

    /// A reading under policy `revise` that is late for its session or within
    /// the gap of an emitted one. Every session it touches, emitted or open,
    /// becomes one with it. When an emitted one is among them, the result is
    /// the next revision of the earliest emitted one (same key); each other
    /// emitted one is emitted once more, empty, as `closed_by = merged` with
    /// `window.merged_into`, so that a store keeping the highest revision per
    /// key holds the sessions of all readings. The result is emitted now when
    /// the watermark is past its end, else it stays open. Returns false when
    /// the reading is past the horizon (counted as dropped).
    fn revise_session(
        &mut self,
        series: &mut Series,
        watermark: Option<i64>,
        closed_through: Option<i64>,
        record: &DataRecord,
        time: i64,
        end: i64,
    ) -> bool {
        let horizon_passed = watermark.is_some_and(|watermark| {
            end.saturating_add(self.settings.revision_horizon) <= watermark
        });
        // A forgotten session may have held this reading's neighbours.
        if horizon_passed || series.pruned_through.is_some_and(|through| time < through) {
            self.stats.late_dropped += 1;
            return false;
        }
        let touches = |window: &Window| window.start < end && time < window.end;
        // Sessions are disjoint and sorted, so the touched ones are a run.
        let mut touched: Vec<Window> = Vec::new();
        for windows in [&mut series.closed, &mut series.open] {
            let first = windows.iter().position(touches);
            let last = windows.iter().rposition(touches);
            if let (Some(first), Some(last)) = (first, last) {
                touched.extend(windows.drain(first..=last));
            }
        }
        touched.sort_by_key(|window| window.start);
        // Emitted sessions (reopened ones included) have a key.
        let mut session = match touched.iter().position(|window| window.key.is_some()) {
            Some(earliest) => {
                let mut session = touched.remove(earliest);
                session.revision = session.revision.saturating_add(1);
                session
            }
            None => Window::new(time, end, 0),
        };
        let survivor = session.key.map(|(start, _)| start);
        for absorbed in touched {
            if absorbed.key.is_some() {
                let tombstone = Window {
                    revision: absorbed.revision.saturating_add(1),
                    readings: 0,
                    fields: Vec::new(),
                    ..absorbed.clone()
                };
                self.emit(&series.ident, &tombstone, closed_by::MERGED);
                if let (Some(record), Some(start)) = (self.out.aggregates.last_mut(), survivor) {
                    record.metadata.insert(
                        "window.merged_into",
                        Timestamp::from_unix_nanos(start).to_iso8601().into(),
                    );
                }
            }
            session.start = session.start.min(absorbed.start);
            session.end = session.end.max(absorbed.end);
            session.readings = session.readings.saturating_add(absorbed.readings);
            merge_fields(
                &mut session.fields,
                absorbed.fields,
                self.settings,
                self.stats,
            );
        }
        session.start = session.start.min(time);
        session.end = session.end.max(end);
        self.add(&mut session, record, time);
        self.stats.late_revised += 1;
        if closed_through.is_some_and(|through| session.end <= through) {
            self.finish(series, session, closed_by::LATE);
        } else {
            let index = series
                .open
                .partition_point(|window| window.start < session.start);
            let index = self.make_window_room(series, index);
            series.open.insert(index, session);
        }
        true
    }

    /// Emits the oldest open window early when the series is at its bound;
    /// returns where the window meant for `index` now goes.
    fn make_window_room(&mut self, series: &mut Series, index: usize) -> usize {
        if series.open.len() < self.settings.max_windows || series.open.is_empty() {
            return index;
        }
        let window = series.open.remove(0);
        self.stats.windows_evicted += 1;
        self.finish(series, window, closed_by::EVICTED);
        index.saturating_sub(1)
    }

    /// Adds every aggregated field of `record` to `window`.
    #[inline]
    fn add(&mut self, window: &mut Window, record: &DataRecord, time: i64) {
        let settings = self.settings;
        window.readings = window.readings.saturating_add(self.readings);
        if !self.states.is_empty() {
            return self.merge_states(window);
        }
        // What a field that was in every reading of the window divides by.
        let readings = window.readings;
        let inverse = 1.0 / readings as f64;
        for (position, ((name, _), &number)) in record.payload.iter().zip(self.values).enumerate() {
            if number.is_nan() || self.only.is_some_and(|only| only != position) {
                continue;
            }
            // Payloads of a series usually list fields in the same order.
            let slot = match window.fields.get(position) {
                Some((known, _)) if known == name => Some(position),
                _ => window.fields.iter().position(|(known, _)| known == name),
            };
            match slot {
                Some(slot) => {
                    if let Some((_, state)) = window.fields.get_mut(slot) {
                        if state.count().saturating_add(1) == readings {
                            state.update_with_inverse(number, time, inverse);
                        } else {
                            state.update(number, time);
                        }
                    }
                }
                None if window.fields.len() >= settings.max_fields => {
                    self.stats.fields_over_limit += 1;
                    continue;
                }
                None => {
                    let sketch = settings
                        .needs_sketch(name)
                        .then(|| Sketch::new(settings.relative_accuracy, settings.sketch_max_bins));
                    window.fields.push((
                        CompactString::from(name),
                        FieldState::new(number, time, sketch),
                    ));
                }
            }
            self.stats.values_aggregated += 1;
        }
    }

    /// Merges the record's field states into `window` (`input = "aggregates"`).
    fn merge_states(&mut self, window: &mut Window) {
        for (position, (name, state)) in self.states.iter().enumerate() {
            if self.only.is_some_and(|only| only != position) {
                continue;
            }
            match window.fields.iter().position(|(known, _)| known == name) {
                Some(slot) => {
                    if let Some((_, mine)) = window.fields.get_mut(slot) {
                        mine.merge(state);
                    }
                }
                None if window.fields.len() >= self.settings.max_fields => {
                    self.stats.fields_over_limit += 1;
                    continue;
                }
                None => window.fields.push((name.clone(), state.clone())),
            }
            self.stats.values_aggregated += 1;
        }
    }

    /// Emits the open windows whose end is at or before `watermark`.
    fn close_until(&mut self, series: &mut Series, watermark: i64, reason: &'static str) {
        if matches!(self.settings.kind, WindowKind::Count { .. }) {
            return;
        }
        // Open windows are sorted by start; their ends are sorted too (equal
        // sizes, or disjoint sessions), so the closed ones are a prefix.
        let done = series
            .open
            .iter()
            .take_while(|window| window.end <= watermark)
            .count();
        if done > 0 {
            let windows: Vec<Window> = series.open.drain(..done).collect();
            for window in windows {
                self.finish(series, window, reason);
            }
        }
        self.prune(series, Some(watermark));
    }

    /// Emits every open window.
    fn close_all(&mut self, series: &mut Series, reason: &'static str) {
        let windows = std::mem::take(&mut series.open);
        for window in windows {
            self.finish(series, window, reason);
        }
    }

    /// Emits `window` and either retains it for revisions or lets it go.
    fn finish(&mut self, series: &mut Series, mut window: Window, reason: &'static str) {
        if let WindowKind::Session { .. } = self.settings.kind {
            // A session keeps the key of its first emission through revisions.
            window.key.get_or_insert((window.start, window.end));
        }
        self.emit(&series.ident, &window, reason);
        series.emitted_through = series.emitted_through.max(Some(window.end));
        let revisable = !matches!(self.settings.kind, WindowKind::Count { .. });
        if self.settings.late == LatePolicy::Revise && revisable {
            let index = series
                .closed
                .partition_point(|kept| kept.start < window.start);
            series.closed.insert(index, window);
        }
    }

    /// Drops retained windows past the revision horizon or over the bound.
    fn prune(&mut self, series: &mut Series, watermark: Option<i64>) {
        let horizon = self.settings.revision_horizon;
        if let Some(watermark) = watermark {
            let expired = series
                .closed
                .iter()
                .take_while(|window| window.end.saturating_add(horizon) <= watermark)
                .count();
            for window in series.closed.drain(..expired) {
                series.pruned_through = series.pruned_through.max(Some(window.end));
            }
        }
        while series.closed.len() > self.settings.max_windows {
            let window = series.closed.remove(0);
            series.pruned_through = series.pruned_through.max(Some(window.end));
        }
    }

    fn emit(&mut self, ident: &Ident, window: &Window, reason: &'static str) {
        if window.revision == 0 {
            self.stats.windows_emitted += 1;
        } else {
            self.stats.revisions_emitted += 1;
        }
        self.out
            .aggregates
            .push(aggregate_record(self.settings, ident, window, reason));
    }
}

/// Adds `other`'s fields to `fields` (merging sessions).
fn merge_fields(
    fields: &mut Vec<(CompactString, FieldState)>,
    other: Vec<(CompactString, FieldState)>,
    settings: &Settings,
    stats: &mut WindowStats,
) {
    for (name, state) in other {
        match fields.iter().position(|(known, _)| *known == name) {
            Some(index) => {
                if let Some((_, mine)) = fields.get_mut(index) {
                    mine.merge(&state);
                }
            }
            None if fields.len() >= settings.max_fields => stats.fields_over_limit += 1,
            None => fields.push((name, state)),
        }
    }
}

/// The deterministic id of one emission: a UUID (version 8, RFC 9562) made of
/// the first 16 bytes of SHA-256 over the series, the output type, the window
/// (start and end, or index for count windows) and the revision.
fn aggregate_id(settings: &Settings, ident: &Ident, window: &Window) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"edgepipe.window.v1");
    for part in [&ident.device_id, &ident.data_type, &ident.output_data_type] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    // Only with a series per field, so that the other ids stay what they were.
    if let Some(field) = &ident.field {
        hasher.update(b"field");
        hasher.update((field.len() as u64).to_le_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.update(settings.kind.name().as_bytes());
    match settings.kind {
        WindowKind::Count { count } => {
            hasher.update(count.to_le_bytes());
            hasher.update(window.index.to_le_bytes());
        }
        _ => {
            let (start, end) = window.key.unwrap_or((window.start, window.end));
            hasher.update(start.to_le_bytes());
            hasher.update(end.to_le_bytes());
        }
    }
    hasher.update(window.revision.to_le_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// One aggregate record; see the guide (`docs/windows.md`) for its shape.
fn aggregate_record(
    settings: &Settings,
    ident: &Ident,
    window: &Window,
    reason: &'static str,
) -> DataRecord {
    let mut payload = Payload::with_capacity(window.fields.len() * settings.aggregates.len());
    let mut name = String::new();
    for (field, state) in &window.fields {
        for output in settings.aggregates_for(field) {
            name.clear();
            name.push_str(field);
            name.push('.');
            name.push_str(&output.suffix);
            let value = match output.aggregate {
                Aggregate::Count => Value::from_u64(state.count()),
                aggregate => state.value(aggregate).map_or(Value::Null, Value::Float),
            };
            payload.insert(name.as_str(), value);
        }
        if settings.emit_state {
            state.write_state(field, &mut payload);
        }
    }
    let mut metadata = Metadata::with_capacity(ident.metadata.len() + 6);
    for (key, value) in &ident.metadata {
        metadata.insert(key.clone(), value.clone());
    }
    metadata.insert("window.kind", settings.kind.name().into());
    metadata.insert(
        "window.start",
        Timestamp::from_unix_nanos(window.start).to_iso8601().into(),
    );
    metadata.insert(
        "window.end",
        Timestamp::from_unix_nanos(window.end).to_iso8601().into(),
    );
    let mut digits = itoa::Buffer::new();
    metadata.insert("window.revision", digits.format(window.revision).into());
    metadata.insert("window.readings", digits.format(window.readings).into());
    if let WindowKind::Count { .. } = settings.kind {
        metadata.insert("window.index", digits.format(window.index).into());
    }
    if let Some(field) = &ident.field {
        metadata.insert("window.field", field.clone());
    }
    if settings.emit_state {
        // The series' own data type, which a rollup keeps (see `push_aggregate`).
        metadata.insert("window.data_type", ident.data_type.clone());
    }
    metadata.insert("window.closed_by", reason.into());
    DataRecord {
        record_id: aggregate_id(settings, ident, window).into(),
        device_id: ident.device_id.clone(),
        // The key's start, which a revision that extends a session keeps.
        timestamp: Timestamp::from_unix_nanos(window.key.map_or(window.start, |(start, _)| start)),
        data_type: ident.output_data_type.clone(),
        payload,
        metadata,
    }
}
