//! The state log (`state.log`): what happened to entries after they were
//! enqueued — removed (acked, dropped, expired, purged, found lost), failed
//! attempts, dead-lettered — as small frames appended with one `write` each
//! (they survive SIGKILL at once, and a power cut from the next sync of the state
//! log on). It is rewritten from the in-memory index when it grows past a bound
//! (and at every open): a snapshot written to `state.log.tmp`, synced, renamed
//! over `state.log`, and the directory synced.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::frame::{self, FILE_HEADER, Kind, STATE_MAGIC};
use super::fs::{Fs, FsFile};
use crate::queue::EntryId;
use crate::record::Timestamp;

pub(crate) const STATE_FILE: &str = "state.log";
pub(crate) const STATE_TMP: &str = "state.log.tmp";

/// A set of ids kept as disjoint inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    ranges: BTreeMap<u64, u64>,
}

impl RangeSet {
    pub fn insert(&mut self, mut from: u64, mut to: u64) {
        if from > to {
            return;
        }
        // Merge every range that overlaps or touches [from, to].
        let overlapping: Vec<(u64, u64)> = self
            .ranges
            .range(..=to.saturating_add(1))
            .rev()
            .take_while(|&(_, &end)| end.saturating_add(1) >= from)
            .map(|(&start, &end)| (start, end))
            .collect();
        for (start, end) in overlapping {
            self.ranges.remove(&start);
            from = from.min(start);
            to = to.max(end);
        }
        self.ranges.insert(from, to);
    }

    pub fn contains(&self, id: u64) -> bool {
        self.ranges
            .range(..=id)
            .next_back()
            .is_some_and(|(_, &end)| end >= id)
    }

    /// How many ids of `from..=to` the set holds.
    pub fn count_in(&self, from: u64, to: u64) -> u64 {
        if from > to {
            return 0;
        }
        let mut count = 0;
        for (&start, &end) in self.ranges.range(..=to) {
            if end < from {
                continue;
            }
            count += end.min(to) - start.max(from) + 1;
        }
        count
    }

    pub fn max(&self) -> Option<u64> {
        self.ranges.values().next_back().copied()
    }
}

/// What the state log says, folded.
#[derive(Clone, Debug, Default)]
pub(crate) struct StateRecords {
    pub removed: RangeSet,
    /// Latest failed-attempt record per id: attempts and retry time.
    pub attempts: HashMap<EntryId, (u32, Timestamp)>,
    /// Dead-lettered ids and their attempts.
    pub dead: HashMap<EntryId, u32>,
    /// Ids below this are never given out again.
    pub next_id: EntryId,
    /// The largest id an attempt or dead record names: that entry was committed.
    pub max_committed: EntryId,
}

/// What reading the state log found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateReport {
    /// Whether `state.log` exists.
    pub present: bool,
    /// Its size.
    pub bytes: u64,
    /// Intact records read.
    pub records: u64,
    /// Whether its header is intact.
    pub header_ok: bool,
    /// Bytes that held no intact record (a torn tail or damage); the records
    /// there are forgotten, which can only make entries come back (resent), not vanish.
    pub damaged_bytes: u64,
}

pub(crate) fn read_state(bytes: Option<&[u8]>) -> (StateRecords, StateReport) {
    let mut records = StateRecords::default();
    let Some(bytes) = bytes else {
        return (records, StateReport::default());
    };
    let header_ok = frame::header_ok(bytes, STATE_MAGIC);
    let (frames, damage) = frame::scan(bytes, FILE_HEADER.min(bytes.len()));
    let mut report = StateReport {
        present: true,
        bytes: bytes.len() as u64,
        records: 0,
        header_ok,
        damaged_bytes: damage.iter().map(|d| d.len).sum(),
    };
    for frame in frames {
        let body = frame.body(bytes);
        let id = frame.seq;
        let applied =
            match frame.kind {
                Kind::Removed => frame::u64_at(body, 0).map(|to| {
                    records.removed.insert(id, to);
                }),
                Kind::Attempt => frame::u32_at(body, 0).zip(frame::u64_at(body, 4)).map(
                    |(attempts, retry_at)| {
                        let retry_at = Timestamp::from_unix_nanos(retry_at as i64);
                        records.attempts.insert(id, (attempts, retry_at));
                        records.max_committed = records.max_committed.max(id);
                    },
                ),
                Kind::Dead => frame::u32_at(body, 0).map(|attempts| {
                    records.dead.insert(id, attempts);
                    records.max_committed = records.max_committed.max(id);
                }),
                Kind::NextId => {
                    records.next_id = records.next_id.max(id);
                    Some(())
                }
                Kind::Entry | Kind::Commit => None,
            };
        if applied.is_some() {
            report.records += 1;
        }
    }
    (records, report)
}

pub(crate) fn put_removed(out: &mut Vec<u8>, from: EntryId, to: EntryId) {
    frame::put_small_frame(out, from, Kind::Removed, &to.to_le_bytes());
}

pub(crate) fn put_attempt(out: &mut Vec<u8>, id: EntryId, attempts: u32, retry_at: Timestamp) {
    let mut body = [0u8; 12];
    body[..4].copy_from_slice(&attempts.to_le_bytes());
    body[4..].copy_from_slice(&(retry_at.unix_nanos() as u64).to_le_bytes());
    frame::put_small_frame(out, id, Kind::Attempt, &body);
}

pub(crate) fn put_dead(out: &mut Vec<u8>, id: EntryId, attempts: u32) {
    frame::put_small_frame(out, id, Kind::Dead, &attempts.to_le_bytes());
}

pub(crate) fn put_next_id(out: &mut Vec<u8>, next_id: EntryId) {
    frame::put_small_frame(out, next_id, Kind::NextId, &[]);
}

/// The open state log.
#[derive(Debug)]
pub(crate) struct StateLog {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    file: Option<Arc<dyn FsFile>>,
    /// Bytes in the file (as far as we wrote them).
    len: u64,
    /// Records appended since the last sync.
    dirty: bool,
    /// A write or sync failed: the file may not hold what we think, and an fd
    /// whose sync failed is never trusted again. The next [`rewrite`](Self::rewrite) replaces it.
    broken: bool,
}

impl StateLog {
    pub fn new(fs: Arc<dyn Fs>, dir: &Path) -> StateLog {
        StateLog {
            fs,
            dir: dir.to_path_buf(),
            file: None,
            len: 0,
            dirty: false,
            broken: true,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Appends records with one write. A failure leaves the log broken until rewritten;
    /// what was lost can only make entries come back after a restart.
    pub fn append(&mut self, records: &[u8]) {
        if records.is_empty() {
            return;
        }
        let Some(file) = self.file.as_ref().filter(|_| !self.broken) else {
            return;
        };
        match file.append(records) {
            Ok(()) => {
                self.len += records.len() as u64;
                self.dirty = true;
            }
            Err(_) => self.broken = true,
        }
    }

    /// Appends to an existing, intact log of `len` bytes instead of rewriting it.
    pub fn adopt(&mut self, file: Arc<dyn FsFile>, len: u64) {
        self.file = Some(file);
        self.len = len;
        // What a killed process wrote may not be synced yet.
        self.dirty = true;
        self.broken = false;
    }

    /// Makes every record appended so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other("the state log needs a rewrite"));
        }
        if !self.dirty {
            return Ok(());
        }
        let file = self.file.as_ref().expect("an unbroken state log is open");
        if let Err(error) = file.sync_data() {
            self.broken = true;
            return Err(error);
        }
        self.dirty = false;
        Ok(())
    }

    /// Replaces the log with `snapshot` (records without the file header):
    /// write a temporary file, sync it, rename it over the log, sync the directory.
    /// On failure the old log stays as it was and this one is broken.
    pub fn rewrite(&mut self, snapshot: &[u8]) -> io::Result<()> {
        let result = self.try_rewrite(snapshot);
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    fn try_rewrite(&mut self, snapshot: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(STATE_TMP);
        let path = self.dir.join(STATE_FILE);
        match self.fs.remove_file(&tmp) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        let file = self.fs.create_new(&tmp)?;
        let mut bytes = Vec::with_capacity(FILE_HEADER + snapshot.len());
        bytes.extend_from_slice(&frame::file_header(STATE_MAGIC));
        bytes.extend_from_slice(snapshot);
        file.append(&bytes)?;
        file.sync_data()?;
        self.fs.rename(&tmp, &path)?;
        // From here the new log is the log (the rename may be durable already), so
        // the handle moves to it even if the directory sync fails: its records are
        // durable in the file, only its name is not yet.
        self.file = Some(file);
        self.len = bytes.len() as u64;
        self.dirty = false;
        self.fs.sync_dir(&self.dir)?;
        self.broken = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_count() {
        let mut set = RangeSet::default();
        set.insert(5, 7);
        set.insert(9, 9);
        set.insert(8, 8);
        set.insert(1, 2);
        assert_eq!(set.ranges.len(), 2);
        assert!(set.contains(9) && set.contains(1) && !set.contains(3) && !set.contains(10));
        assert_eq!(set.count_in(2, 6), 3);
        assert_eq!(set.count_in(0, 100), 7);
        assert_eq!(set.max(), Some(9));
    }
}
