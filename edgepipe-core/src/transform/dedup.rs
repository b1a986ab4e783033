//! `dedup`: drop records seen recently (a retried send, a collector replaying its buffer).
//!
//! The seeds deduplicate by batch id at the receiver and by "seen recently?" in
//! the stream processor; this is the per-record form, with a bounded window.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::Arc;

use serde::Deserialize;

use super::{OnFailure, Reason, Transform, Verdict};
use crate::error::{Error, Result};
use crate::record::DataRecord;

/// The default number of distinct keys a [`Dedup`] remembers.
pub const DEFAULT_WINDOW: usize = 100_000;

/// What makes two records the same for [`Dedup`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DedupKey {
    /// The `record_id` (the default): catches the same record sent twice.
    #[default]
    RecordId,
    /// `device_id`, `timestamp` and `data_type` together: catches the same
    /// reading collected twice under different record ids.
    Content,
}

/// Drops a record when its key is among the `window` most recently seen
/// distinct keys.
///
/// "Seen" includes duplicates: a key that keeps coming back stays in the window.
/// Exactly the last `window` distinct keys are remembered (least recently seen
/// forgotten first), so memory is bounded by `window` keys. Duplicates are
/// dropped by default (`on_duplicate`; reason `dedup.duplicate` when quarantined).
///
/// ```
/// use std::num::NonZeroUsize;
/// use edgepipe_core::record::{DataRecord, Payload};
/// use edgepipe_core::transform::{Dedup, Transform, Verdict};
///
/// let mut dedup = Dedup::new(NonZeroUsize::new(1000).unwrap());
/// let mut record = DataRecord::new("dev-1", "sensors", Payload::new());
/// assert_eq!(dedup.apply(&mut record), Verdict::Keep);
/// assert_eq!(dedup.apply(&mut record.clone()), Verdict::Drop);
/// ```
#[derive(Debug)]
pub struct Dedup {
    key: DedupKey,
    window: usize,
    on_duplicate: OnFailure,
    /// Key to the sequence number of its latest sighting.
    last_seen: HashMap<Arc<str>, u64>,
    /// Sightings, oldest first. A sighting is stale once its key has been seen
    /// again; stale ones are skipped on eviction and purged when they pile up.
    sightings: VecDeque<(u64, Arc<str>)>,
    next_sequence: u64,
    /// Reused to build content keys without allocating per record.
    scratch: String,
}

impl Dedup {
    /// Remembers the last `window` distinct record ids; duplicates are dropped.
    pub fn new(window: NonZeroUsize) -> Self {
        Dedup {
            key: DedupKey::RecordId,
            window: window.get(),
            on_duplicate: OnFailure::Drop,
            last_seen: HashMap::new(),
            sightings: VecDeque::new(),
            next_sequence: 0,
            scratch: String::new(),
        }
    }

    /// What identifies a record (default: its `record_id`).
    pub fn key(mut self, key: DedupKey) -> Self {
        self.key = key;
        self
    }

    /// What to do with duplicates instead of dropping them.
    pub fn on_duplicate(mut self, policy: OnFailure) -> Self {
        self.on_duplicate = policy;
        self
    }

    /// How many distinct keys are remembered now (at most the window).
    pub fn remembered(&self) -> usize {
        self.last_seen.len()
    }

    /// Records a sighting of `key`; true when it was already in the window.
    fn observe(&mut self, key: &str) -> bool {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let shared = match self.last_seen.get_key_value(key) {
            Some((shared, _)) => Some(Arc::clone(shared)),
            None => None,
        };
        let duplicate = match shared {
            Some(shared) => {
                self.last_seen.insert(Arc::clone(&shared), sequence);
                self.sightings.push_back((sequence, shared));
                true
            }
            None => {
                let shared: Arc<str> = Arc::from(key);
                self.last_seen.insert(Arc::clone(&shared), sequence);
                self.sightings.push_back((sequence, shared));
                false
            }
        };
        while self.last_seen.len() > self.window {
            let Some((sighting, key)) = self.sightings.pop_front() else {
                break;
            };
            if self.last_seen.get(&key) == Some(&sighting) {
                self.last_seen.remove(&key);
            }
        }
        // Stale sightings cost memory but no correctness; purge them once they
        // outnumber the live ones, which keeps the work amortised O(1).
        if self.sightings.len() > 2 * self.last_seen.len() + 16 {
            let last_seen = &self.last_seen;
            self.sightings
                .retain(|(sighting, key)| last_seen.get(key) == Some(sighting));
        }
        duplicate
    }
}

impl Transform for Dedup {
    fn name(&self) -> &str {
        "dedup"
    }

    fn apply(&mut self, record: &mut DataRecord) -> Verdict {
        let duplicate = match self.key {
            DedupKey::RecordId => self.observe(&record.record_id),
            DedupKey::Content => {
                let mut key = std::mem::take(&mut self.scratch);
                content_key(&mut key, record);
                let duplicate = self.observe(&key);
                self.scratch = key;
                duplicate
            }
        };
        if !duplicate {
            return Verdict::Keep;
        }
        let window = self.window;
        let key = self.key;
        self.on_duplicate.verdict(|| {
            let what = match key {
                DedupKey::RecordId => format!("record_id {:?}", record.record_id),
                DedupKey::Content => format!(
                    "a reading of {:?} ({:?}) at {}",
                    record.device_id, record.data_type, record.timestamp
                ),
            };
            Reason::record(
                "dedup.duplicate",
                format!("{what} was seen among the last {window} distinct records"),
            )
        })
    }
}

/// An unambiguous key for `(device_id, timestamp, data_type)`: the device id is
/// prefixed by its length.
fn content_key(out: &mut String, record: &DataRecord) {
    let mut digits = itoa::Buffer::new();
    out.clear();
    out.push_str(digits.format(record.device_id.len()));
    out.push(':');
    out.push_str(&record.device_id);
    out.push_str(digits.format(record.timestamp.unix_nanos()));
    out.push(':');
    out.push_str(&record.data_type);
}

fn default_window() -> usize {
    DEFAULT_WINDOW
}

fn drop_by_default() -> OnFailure {
    OnFailure::Drop
}

/// `{"type": "dedup", "window": 100000, "key": "record_id", "on_duplicate": "drop"}`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many distinct keys to remember (default 100 000, at least 1).
    #[serde(default = "default_window")]
    pub window: usize,
    /// `record_id` (default) or `content` (`device_id` + `timestamp` + `data_type`).
    #[serde(default)]
    pub key: DedupKey,
    /// What happens to duplicates: `drop` (default), `quarantine` or `keep`.
    #[serde(default = "drop_by_default")]
    pub on_duplicate: OnFailure,
}

impl Config {
    pub(crate) fn build(&self, key: &str) -> Result<Dedup> {
        let window = NonZeroUsize::new(self.window)
            .ok_or_else(|| Error::config(format!("{key}.window"), "must be at least 1"))?;
        Ok(Dedup::new(window)
            .key(self.key)
            .on_duplicate(self.on_duplicate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Timestamp;
    use crate::transform::tests::record;

    fn with_id(id: &str) -> DataRecord {
        let mut input = record();
        input.record_id = id.into();
        input
    }

    fn run(dedup: &mut Dedup, ids: &str) -> String {
        ids.chars()
            .map(|id| match dedup.apply(&mut with_id(&id.to_string())) {
                Verdict::Keep => 'k',
                Verdict::Drop => 'd',
                Verdict::Quarantine(_) => 'q',
            })
            .collect()
    }

    #[test]
    fn drops_ids_among_the_last_window_distinct_ones() {
        let mut dedup = Dedup::new(NonZeroUsize::new(2).unwrap());
        // a b a: a is a duplicate (and becomes most recent); c evicts b, not a.
        assert_eq!(run(&mut dedup, "abacab"), "kkdkdk");
        assert!(dedup.remembered() <= 2);
        let mut one = Dedup::new(NonZeroUsize::new(1).unwrap());
        assert_eq!(run(&mut one, "aabbab"), "kdkdkk");
    }

    #[test]
    fn memory_stays_bounded_under_repeats() {
        let mut dedup = Dedup::new(NonZeroUsize::new(3).unwrap());
        for round in 0..10_000 {
            let id = (round % 4).to_string();
            dedup.apply(&mut with_id(&id));
            assert!(dedup.remembered() <= 3);
            assert!(dedup.sightings.len() <= 2 * 3 + 16 + 1);
        }
        // Only repeats of one id: every sighting after the first is stale.
        for _ in 0..1000 {
            dedup.apply(&mut with_id("same"));
            assert!(dedup.sightings.len() <= 2 * 3 + 16 + 1);
        }
    }

    #[test]
    fn content_key_ignores_record_ids() {
        let mut dedup = Dedup::new(NonZeroUsize::new(10).unwrap()).key(DedupKey::Content);
        assert_eq!(dedup.apply(&mut with_id("a")), Verdict::Keep);
        assert_eq!(dedup.apply(&mut with_id("b")), Verdict::Drop);
        let mut later = with_id("c");
        later.timestamp = Timestamp::from_unix_nanos(later.timestamp.unix_nanos() + 1);
        assert_eq!(dedup.apply(&mut later), Verdict::Keep);
        let mut other_type = with_id("d");
        other_type.data_type = "system".into();
        assert_eq!(dedup.apply(&mut other_type), Verdict::Keep);
    }

    #[test]
    fn duplicates_follow_the_policy() {
        let mut dedup =
            Dedup::new(NonZeroUsize::new(10).unwrap()).on_duplicate(OnFailure::Quarantine);
        assert_eq!(dedup.apply(&mut with_id("r1")), Verdict::Keep);
        match dedup.apply(&mut with_id("r1")) {
            Verdict::Quarantine(reason) => {
                assert_eq!(reason.code, "dedup.duplicate");
                assert_eq!(reason.field, None);
                assert!(reason.message.contains("\"r1\""), "{}", reason.message);
            }
            other => panic!("{other:?}"),
        }
        let mut keep = Dedup::new(NonZeroUsize::new(10).unwrap()).on_duplicate(OnFailure::Keep);
        assert_eq!(run(&mut keep, "aa"), "kk");
    }

    #[test]
    fn config_parses_and_names_bad_keys() {
        let config: Config = serde_json::from_str(
            r#"{"window": 5, "key": "content", "on_duplicate": "quarantine"}"#,
        )
        .unwrap();
        let dedup = config.build("transforms[0]").unwrap();
        assert_eq!(
            (dedup.window, dedup.key, dedup.on_duplicate),
            (5, DedupKey::Content, OnFailure::Quarantine)
        );
        let defaults = serde_json::from_str::<Config>("{}")
            .unwrap()
            .build("transforms[0]")
            .unwrap();
        assert_eq!(
            (defaults.window, defaults.key, defaults.on_duplicate),
            (DEFAULT_WINDOW, DedupKey::RecordId, OnFailure::Drop)
        );
        let error = serde_json::from_str::<Config>(r#"{"window": 0}"#)
            .unwrap()
            .build("transforms[6]")
            .unwrap_err()
            .to_string();
        assert!(error.contains("transforms[6].window"), "{error}");
        assert!(serde_json::from_str::<Config>(r#"{"key": "payload"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"windows": 3}"#).is_err());
    }
}
