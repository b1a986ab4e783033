//! Deduplication state and its journal.
//!
//! Two keys say a record was already stored:
//!
//! - the batch's store key (a retry after a lost response carries the same batch
//!   id), kept for a retention period and up to a count, oldest dropped first;
//! - for records whose ids are sequence ids `source:epoch:seq`, per
//!   (source, epoch) a *watermark* (every sequence number from the lowest seen up
//!   to it is stored) and the ranges stored above it. A re-batched retry, or a
//!   retry of a batch whose id has aged out, drops exactly the records already
//!   stored; a batch dead-lettered at the edge and replayed later fills its gap.
//!
//! The journal is a file of JSON lines: `begin` (fsync'ed before a batch's files
//! are written) and `commit` (fsync'ed after they are), see `docs/ingest.md` for the
//! crash argument. Opening replays it, and rewrites it compacted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::{sync_dir, write_atomic};
use crate::error::{Error, Result};

/// Disjoint, non-adjacent inclusive ranges of sequence numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start → end (inclusive).
    ranges: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// True when `value` is in one of the ranges.
    pub fn contains(&self, value: u64) -> bool {
        self.ranges
            .range(..=value)
            .next_back()
            .is_some_and(|(_, &end)| end >= value)
    }

    /// Adds `first..=last`, merging with overlapping and adjacent ranges.
    pub fn insert(&mut self, first: u64, last: u64) {
        let (mut first, mut last) = (first.min(last), first.max(last));
        // A range starting at or before `last + 1` that reaches `first - 1` merges.
        while let Some((&start, &end)) = self.ranges.range(..=last.saturating_add(1)).next_back() {
            if end.saturating_add(1) < first {
                break;
            }
            self.ranges.remove(&start);
            first = first.min(start);
            last = last.max(end);
        }
        self.ranges.insert(first, last);
    }

    /// The watermark: the end of the lowest range (everything from its start up to
    /// it is stored).
    pub fn watermark(&self) -> Option<u64> {
        self.ranges.first_key_value().map(|(_, &end)| end)
    }

    /// The ranges as `(first, last)` pairs, ascending.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }

    /// Number of disjoint ranges (1 while there is no gap).
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// One (source, epoch) stream's stored sequence ranges.
pub type StreamKey = (String, u64);

/// When batch keys are forgotten (the sequence ranges are never forgotten).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Seconds a batch key is remembered after its batch was stored (default 7 days).
    pub batch_id_seconds: u64,
    /// Most batch keys remembered (default 1,000,000, about 100 MB at most).
    pub max_batch_ids: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            batch_id_seconds: 7 * 24 * 3600,
            max_batch_ids: 1_000_000,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Entry {
    Begin {
        key: String,
    },
    Commit {
        key: String,
        /// Unix seconds when it was stored.
        at: u64,
        /// False for a batch reconciled after a crash: its files may be partial, so
        /// its key is not remembered, only its records' ranges.
        complete: bool,
        /// `[source, epoch, first, last]`.
        ranges: Vec<(String, u64, u64, u64)>,
    },
}

/// The dedup state in memory plus its journal on disk (or none, in memory only).
#[derive(Debug)]
pub struct Dedup {
    retention: Retention,
    batches: HashMap<String, u64>,
    order: VecDeque<(String, u64)>,
    streams: HashMap<StreamKey, RangeSet>,
    journal: Option<Journal>,
    /// Keys begun and not committed: to reconcile before anything else.
    pending: Vec<String>,
}

#[derive(Debug)]
struct Journal {
    path: PathBuf,
    file: File,
    lines: u64,
}

impl Dedup {
    /// State kept in memory only (lost on restart): for tests and throw-away servers.
    pub fn in_memory(retention: Retention) -> Self {
        Dedup {
            retention,
            batches: HashMap::new(),
            order: VecDeque::new(),
            streams: HashMap::new(),
            journal: None,
            pending: Vec::new(),
        }
    }

    /// Opens (or creates) the journal at `path` and replays it. Keys begun and
    /// never committed are returned by [`pending`](Dedup::pending) for the caller to
    /// reconcile against its store.
    pub fn open(path: impl Into<PathBuf>, retention: Retention, now: u64) -> Result<Self> {
        let path = path.into();
        let mut dedup = Dedup::in_memory(retention);
        let mut begun: Vec<String> = Vec::new();
        if path.exists() {
            let bytes =
                fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
            for (index, line) in lines.iter().enumerate() {
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<Entry>(line) {
                    Ok(Entry::Begin { key }) => begun.push(key),
                    Ok(Entry::Commit {
                        key,
                        at,
                        complete,
                        ranges,
                    }) => {
                        begun.retain(|k| *k != key);
                        dedup.apply(&key, at, complete, &ranges);
                    }
                    // A torn last line is an append a crash cut short: its batch was
                    // never answered, so dropping it is what the crash did anyway.
                    Err(_) if lines[index + 1..].iter().all(|l| l.is_empty()) => {}
                    Err(error) => {
                        return Err(Error::CorruptEnvelope {
                            reason: format!(
                                "dedup journal {} line {}: {error}",
                                path.display(),
                                index + 1
                            ),
                        });
                    }
                }
            }
        }
        dedup.prune(now);
        dedup.pending = begun;
        dedup.journal = Some(Journal {
            file: File::open(path.parent().unwrap_or(Path::new(".")))
                .map_err(|e| Error::io("opening journal directory", e))?,
            path,
            lines: 0,
        });
        dedup.compact()?;
        Ok(dedup)
    }

    /// Keys whose writes may have been interrupted by a crash.
    pub fn pending(&self) -> &[String] {
        &self.pending
    }

    /// True when a batch with this store key was stored and is still remembered.
    pub fn has_batch(&self, key: &str) -> bool {
        self.batches.contains_key(key)
    }

    /// True when `(source, epoch, sequence)` was stored.
    pub fn has_sequence(&self, source: &str, epoch: u64, sequence: u64) -> bool {
        // The lookup borrows a String key; streams are few, so the allocation is
        // avoided by scanning only when a match on epoch is possible.
        self.streams
            .get(&(source.to_owned(), epoch))
            .is_some_and(|set| set.contains(sequence))
    }

    /// The stored ranges of one stream.
    pub fn stream(&self, source: &str, epoch: u64) -> Option<&RangeSet> {
        self.streams.get(&(source.to_owned(), epoch))
    }

    /// Number of batch keys remembered.
    pub fn batch_ids(&self) -> usize {
        self.batches.len()
    }

    /// Journals that `key` is about to be written (fsync'ed).
    pub fn begin(&mut self, key: &str) -> Result<()> {
        self.append(&Entry::Begin {
            key: key.to_owned(),
        })?;
        self.pending.push(key.to_owned());
        Ok(())
    }

    /// Journals that `key` is stored with these ranges (fsync'ed), then applies it.
    pub fn commit(
        &mut self,
        key: &str,
        now: u64,
        complete: bool,
        ranges: Vec<(String, u64, u64, u64)>,
    ) -> Result<()> {
        let entry = Entry::Commit {
            key: key.to_owned(),
            at: now,
            complete,
            ranges,
        };
        self.append(&entry)?;
        if let Entry::Commit { ranges, .. } = &entry {
            self.apply(key, now, complete, ranges);
        }
        self.pending.retain(|k| k != key);
        self.prune(now);
        let live = (self.batches.len() + self.streams.len()) as u64;
        if let Some(journal) = &self.journal
            && journal.lines > 4 * live + 10_000
        {
            self.compact()?;
        }
        Ok(())
    }

    fn apply(&mut self, key: &str, at: u64, complete: bool, ranges: &[(String, u64, u64, u64)]) {
        for (source, epoch, first, last) in ranges {
            self.streams
                .entry((source.clone(), *epoch))
                .or_default()
                .insert(*first, *last);
        }
        if complete && self.batches.insert(key.to_owned(), at).is_none() {
            self.order.push_back((key.to_owned(), at));
        }
    }

    /// Forgets batch keys past the retention (age or count). Records of a forgotten
    /// batch with sequence ids are still recognised by their ranges.
    fn prune(&mut self, now: u64) {
        let oldest = now.saturating_sub(self.retention.batch_id_seconds);
        while let Some((key, at)) = self.order.front() {
            if *at >= oldest && self.order.len() <= self.retention.max_batch_ids {
                break;
            }
            if self.batches.get(key) == Some(at) {
                self.batches.remove(key);
            }
            self.order.pop_front();
        }
    }

    fn append(&mut self, entry: &Entry) -> Result<()> {
        let Some(journal) = &mut self.journal else {
            return Ok(());
        };
        let mut line = serde_json::to_vec(entry).unwrap_or_default();
        line.push(b'\n');
        journal
            .file
            .write_all(&line)
            .and_then(|()| journal.file.sync_data())
            .map_err(|e| Error::io(format!("appending to {}", journal.path.display()), e))?;
        journal.lines += 1;
        Ok(())
    }

    /// Rewrites the journal as the live state (atomically), and reopens it for appends.
    fn compact(&mut self) -> Result<()> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let path = journal.path.clone();
        let mut out = Vec::new();
        let mut lines = 0;
        for key in &self.pending {
            serde_json::to_writer(&mut out, &Entry::Begin { key: key.clone() }).unwrap_or_default();
            out.push(b'\n');
            lines += 1;
        }
        for (key, at) in &self.order {
            if self.batches.get(key) != Some(at) {
                continue;
            }
            let entry = Entry::Commit {
                key: key.clone(),
                at: *at,
                complete: true,
                ranges: Vec::new(),
            };
            serde_json::to_writer(&mut out, &entry).unwrap_or_default();
            out.push(b'\n');
            lines += 1;
        }
        let mut streams: Vec<_> = self.streams.iter().collect();
        streams.sort_by(|a, b| a.0.cmp(b.0));
        for ((source, epoch), set) in streams {
            let entry = Entry::Commit {
                key: String::new(),
                at: 0,
                complete: false,
                ranges: set
                    .ranges()
                    .map(|(first, last)| (source.clone(), *epoch, first, last))
                    .collect(),
            };
            serde_json::to_writer(&mut out, &entry).unwrap_or_default();
            out.push(b'\n');
            lines += 1;
        }
        write_atomic(&path, &out)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
        self.journal = Some(Journal { path, file, lines });
        Ok(())
    }
}

/// Collapses `(source, epoch, sequence)` triples into journal ranges.
pub(crate) fn collapse(mut ids: Vec<(String, u64, u64)>) -> Vec<(String, u64, u64, u64)> {
    ids.sort_unstable();
    let mut out: Vec<(String, u64, u64, u64)> = Vec::new();
    for (source, epoch, sequence) in ids {
        if let Some(last) = out.last_mut()
            && last.0 == source
            && last.1 == epoch
            && last.3.checked_add(1) == Some(sequence)
        {
            last.3 = sequence;
            continue;
        }
        if let Some(last) = out.last()
            && last.0 == source
            && last.1 == epoch
            && last.3 == sequence
        {
            continue;
        }
        out.push((source, epoch, sequence, sequence));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_keep_gaps() {
        let mut set = RangeSet::default();
        set.insert(0, 9);
        set.insert(20, 29);
        assert_eq!(set.len(), 2);
        assert_eq!(set.watermark(), Some(9));
        assert!(set.contains(5) && !set.contains(10) && set.contains(20));
        // A replayed batch fills the gap: one range again.
        set.insert(10, 19);
        assert_eq!(set.ranges().collect::<Vec<_>>(), [(0, 29)]);
        set.insert(31, 31);
        set.insert(30, 30);
        assert_eq!(set.ranges().collect::<Vec<_>>(), [(0, 31)]);
        set.insert(u64::MAX, u64::MAX);
        assert!(set.contains(u64::MAX));
    }

    #[test]
    fn collapse_makes_runs() {
        let ids = vec![
            ("a".to_owned(), 0, 3),
            ("a".to_owned(), 0, 1),
            ("a".to_owned(), 0, 2),
            ("a".to_owned(), 0, 2),
            ("a".to_owned(), 1, 0),
            ("b".to_owned(), 0, 7),
        ];
        assert_eq!(
            collapse(ids),
            [
                ("a".to_owned(), 0, 1, 3),
                ("a".to_owned(), 1, 0, 0),
                ("b".to_owned(), 0, 7, 7)
            ]
        );
    }

    #[test]
    fn batch_ids_age_out_and_ranges_stay() {
        let retention = Retention {
            batch_id_seconds: 100,
            max_batch_ids: 2,
        };
        let mut dedup = Dedup::in_memory(retention);
        dedup
            .commit("k1", 1000, true, vec![("s".into(), 0, 0, 9)])
            .unwrap();
        dedup.commit("k2", 1001, true, vec![]).unwrap();
        dedup.commit("k3", 1002, true, vec![]).unwrap();
        assert!(!dedup.has_batch("k1"), "count bound");
        assert!(dedup.has_batch("k2") && dedup.has_batch("k3"));
        dedup.commit("k4", 1102, true, vec![]).unwrap();
        assert!(!dedup.has_batch("k2"), "age bound");
        assert!(dedup.has_sequence("s", 0, 9), "ranges are kept");
    }
}
