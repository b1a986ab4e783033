//! The segmented log: the default durable [`Queue`] backend.
//!
//! - `frame`: the framing every file uses (length, CRC32C, sequence number);
//! - `segment`: append-only segment files holding the entries;
//! - `state`: the state log holding what happened to entries afterwards;
//! - `recovery`: reading a directory back, damage, loss, repair;
//! - `fs`: the filesystem seam, and `simfs`, its crash-modelling double.
//!
//! `docs/durability.md` states the on-disk format and the crash-ordering argument.
//!
//! **Group commit.** An enqueue encodes and checksums its entry outside the lock,
//! then queues the frame. If no thread is writing, it becomes the leader: it takes
//! every queued frame, writes them with one `write` followed by a commit frame,
//! `fdatasync`s once, inserts them into the index and wakes everyone whose frames
//! it carried. Threads that enqueue while a leader syncs queue up for the next
//! sync, so N concurrent enqueuers share syncs.

use std::collections::BTreeMap;
use std::io;
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

mod frame;
mod fs;
mod recovery;
mod segment;
mod simfs;
mod state;

pub use fs::{Fs, FsFile, LOCK_FILE, StdFs};
pub use recovery::{Finding, Repair, SegmentReport, VerifyReport};
pub use simfs::{Fault, FsOp, SimFs};
pub use state::StateReport;

use self::frame::{FILE_HEADER, Kind, SEGMENT_MAGIC};
use self::recovery::segment_path;
use self::segment::Loc;
use self::state::StateLog;
use super::index::{EntryMeta, QueueIndex, Removal};
use super::{
    Durability, Entry, EntryId, EntryInfo, EntryStatus, NackOutcome, Pending, Queue, QueueOptions,
    QueueStats,
};
use crate::error::{Error, Result};
use crate::record::Timestamp;

/// The largest entry body a frame holds (its length is a `u32`).
const MAX_BODY: usize = u32::MAX as usize - frame::FRAME_HEADER;

/// Options of a [`SegmentedLog`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Bounds, full policy, attempts and TTL, as for every backend.
    pub queue: QueueOptions,
    /// [`Durability::Synced`] (the default: fdatasync, shared by group commit,
    /// before `enqueue` returns) or [`Durability::Written`] (handed to the OS only:
    /// survives SIGKILL, not a power cut).
    pub sync: Durability,
    /// A segment is closed and a new one started once it holds this many bytes;
    /// a fully acknowledged closed segment is deleted. Smaller segments give disk
    /// space back sooner; larger ones cost fewer file creations.
    pub segment_bytes: u64,
    /// The state log is rewritten from memory once it passes this size (and four
    /// times what a rewrite would hold).
    pub state_rewrite_bytes: u64,
}

impl Default for LogOptions {
    /// Default queue options, `Synced`, 8 MiB segments, 1 MiB state log.
    fn default() -> Self {
        LogOptions {
            queue: QueueOptions::default(),
            sync: Durability::Synced,
            segment_bytes: 8 * 1024 * 1024,
            state_rewrite_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug)]
struct SegmentFile {
    file: Arc<dyn FsFile>,
    /// Bytes written and acknowledged.
    len: u64,
    /// Entries of this segment the index holds.
    live: u64,
    /// No longer appended to: deleted once `live` is 0.
    sealed: bool,
}

/// An entry accepted by `enqueue`, waiting for a leader to write it.
#[derive(Debug)]
struct Queued {
    id: EntryId,
    frame: Vec<u8>,
    meta: EntryMeta,
}

/// Why a group commit failed, kept until every enqueuer in it has read it.
#[derive(Clone, Debug)]
enum FailKind {
    Full(String),
    Io {
        context: &'static str,
        kind: io::ErrorKind,
        message: String,
    },
}

impl FailKind {
    fn from_io(context: &'static str, error: &io::Error) -> FailKind {
        if error.kind() == io::ErrorKind::StorageFull {
            FailKind::Full(format!("{context}: {error}"))
        } else {
            FailKind::Io {
                context,
                kind: error.kind(),
                message: error.to_string(),
            }
        }
    }

    fn to_error(&self, limit_bytes: u64) -> Error {
        match self {
            FailKind::Full(reason) => Error::QueueFull {
                limit_bytes,
                reason: format!("the disk is full ({reason})"),
            },
            FailKind::Io {
                context,
                kind,
                message,
            } => Error::io(*context, io::Error::new(*kind, message.clone())),
        }
    }
}

#[derive(Debug)]
struct Failure {
    first: EntryId,
    last: EntryId,
    kind: FailKind,
    /// Enqueue calls that have not read it yet.
    waiters: usize,
}

/// Where a group commit writes.
#[derive(Debug)]
enum Target {
    Active {
        base: EntryId,
        file: Arc<dyn FsFile>,
        len: u64,
    },
    New {
        base: EntryId,
    },
}

#[derive(Debug)]
struct Written {
    base: EntryId,
    file: Arc<dyn FsFile>,
    new: bool,
    offsets: Vec<u64>,
    end: u64,
}

#[derive(Debug)]
struct WriteFailure {
    kind: FailKind,
    /// The active segment can no longer be trusted (an fsync failed, or a partial
    /// write could not be cut back): appends move to a new segment.
    seal_active: bool,
    /// A new segment that failed and could not be removed: deleted later.
    orphan: Option<(EntryId, Arc<dyn FsFile>)>,
}

/// Armed while a leader writes without the lock: if the write panics, the
/// enqueuers it carried get an error instead of waiting forever, and the segment
/// it may have half-written is sealed.
struct PanicGuard<'a> {
    log: &'a SegmentedLog,
    first: EntryId,
    last: EntryId,
    /// Enqueue calls in the batch besides the leader's own (which unwinds).
    others: usize,
    size: u64,
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        let mut inner = self.log.lock();
        inner.unresolved_bytes -= self.size;
        if self.others > 0 {
            inner.failures.push(Failure {
                first: self.first,
                last: self.last,
                kind: FailKind::Io {
                    context: "writing a segment",
                    kind: io::ErrorKind::Other,
                    message: "the thread writing it panicked".to_owned(),
                },
                waiters: self.others,
            });
        }
        if let Some(base) = inner.active.take()
            && let Some(segment) = inner.segments.get_mut(&base)
        {
            segment.sealed = true;
        }
        inner.resolved_upto = self.last + 1;
        inner.leading = false;
        self.log.resolved.notify_all();
    }
}

#[derive(Debug)]
struct Inner {
    index: QueueIndex<Loc>,
    segments: BTreeMap<EntryId, SegmentFile>,
    /// The segment appends go to; `None` until the first append after open or a seal.
    active: Option<EntryId>,
    queued: Vec<Queued>,
    queued_calls: usize,
    /// Bytes (as [`Entry::size`]) accepted but not yet in the index.
    unresolved_bytes: u64,
    /// A leader is writing.
    leading: bool,
    /// Every id below this is committed or failed.
    resolved_upto: EntryId,
    failures: Vec<Failure>,
    state: StateLog,
    /// State appends to skip before trying to rewrite a broken state log again.
    state_retry_in: u32,
    /// Group commits that succeeded, and the entries they carried.
    commits: u64,
    committed_entries: u64,
    /// The smallest base of a deleted segment whose removal is not durable yet:
    /// the state log keeps the removal records of its ids until it is.
    undurable_delete: Option<EntryId>,
}

/// The index a recovered directory holds, and the live entries per segment.
fn recovered_index(
    examined: &recovery::Examined,
    options: QueueOptions,
) -> (QueueIndex<Loc>, BTreeMap<EntryId, u64>) {
    let mut index = QueueIndex::new(options);
    let mut live = BTreeMap::new();
    let state = &examined.state;
    for segment in &examined.segments {
        let count = live.entry(segment.base).or_insert(0);
        for entry in &segment.scan.entries {
            if state.removed.contains(entry.id) {
                continue;
            }
            let loc = Loc {
                segment: segment.base,
                offset: entry.frame.offset,
                len: entry.frame.total,
            };
            index.insert(entry.id, entry.meta.clone(), loc);
            *count += 1;
        }
    }
    for (&id, &(attempts, retry_at)) in &state.attempts {
        if !state.dead.contains_key(&id) {
            index.restore_attempts(id, attempts, retry_at, false);
        }
    }
    for (&id, &attempts) in &state.dead {
        index.restore_attempts(id, attempts, Timestamp::UNIX_EPOCH, true);
    }
    index.count_lost(examined.report.lost);
    let reserved = examined
        .max_committed
        .max(state.next_id.saturating_sub(1))
        .max(state.removed.max().unwrap_or(0));
    index.advance_next_id(reserved);
    (index, live)
}

/// Group commit counters of a [`SegmentedLog`] since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Group commits that succeeded: one write and (when `Synced`) one fdatasync each.
    pub commits: u64,
    /// Entries those commits carried.
    pub entries: u64,
    /// Entries queued for the next commit right now.
    pub waiting: u64,
}

/// What [`SegmentedLog::inspect`] reads from a queue directory without changing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// Damage and loss, as [`SegmentedLog::verify`] reports them.
    pub report: VerifyReport,
    /// Every entry held, in id order.
    pub entries: Vec<EntryInfo>,
    /// The gauges (the counters since open are 0, except `lost`).
    pub stats: QueueStats,
    /// Bytes of the segment files.
    pub segment_bytes: u64,
}

/// The segmented-log [`Queue`]; see the [module docs](self).
///
/// ```
/// use edgepipe_core::queue::{Entry, LogOptions, Queue, SegmentedLog};
/// use edgepipe_core::Timestamp;
///
/// let dir = tempfile::tempdir().unwrap();
/// let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
/// let entry = Entry {
///     source_id: "gateway-7".into(),
///     batch_id: "b1".into(),
///     created_at: now,
///     payload: b"...".to_vec(),
/// };
/// {
///     let queue = SegmentedLog::open(dir.path(), LogOptions::default())?;
///     queue.enqueue(entry.clone())?; // on disk (fdatasync'ed) once this returns
/// }
/// let queue = SegmentedLog::open(dir.path(), LogOptions::default())?;
/// let taken = queue.take(10, now)?;
/// assert_eq!(taken[0].entry, entry);
/// queue.ack(taken[0].id)?;
/// assert!(SegmentedLog::verify(dir.path())?.is_clean());
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Debug)]
pub struct SegmentedLog {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    options: LogOptions,
    inner: Mutex<Inner>,
    resolved: Condvar,
    recovery: VerifyReport,
    _lock: Box<dyn std::fmt::Debug + Send + Sync>,
}

fn io_error(context: impl Into<String>, dir: &Path) -> impl FnOnce(io::Error) -> Error {
    let context = format!("{} in {}", context.into(), dir.display());
    move |source| Error::io(context, source)
}

impl SegmentedLog {
    /// Opens (or creates) the queue in `dir` on the real filesystem, recovering
    /// from whatever a crash or damage left; see [`open_with`](Self::open_with).
    pub fn open(dir: impl AsRef<Path>, options: LogOptions) -> Result<SegmentedLog> {
        SegmentedLog::open_with(Arc::new(StdFs), dir, options)
    }

    /// Opens (or creates) the queue in `dir` on `fs`. Damage never makes this
    /// fail: a torn tail is cut, a damaged segment is set aside in `corrupt/` with
    /// its intact entries kept, and lost entries are counted in
    /// [`QueueStats::lost`]; [`recovery`](Self::recovery) says what was found and
    /// done. Only I/O errors (the directory cannot be read, a repair step fails)
    /// are returned.
    pub fn open_with(
        fs: Arc<dyn Fs>,
        dir: impl AsRef<Path>,
        options: LogOptions,
    ) -> Result<SegmentedLog> {
        if !matches!(options.sync, Durability::Synced | Durability::Written) {
            return Err(Error::config(
                "sync",
                "a segmented log is Synced or Written, not Memory",
            ));
        }
        let dir = dir.as_ref().to_path_buf();
        fs.create_dir_all(&dir)
            .map_err(io_error("creating the queue directory", &dir))?;
        let lock = fs
            .lock(&dir)
            .map_err(io_error("locking the queue directory", &dir))?;
        recovery::finish_interrupted(&*fs, &dir)
            .map_err(io_error("finishing an interrupted repair", &dir))?;
        let mut examined =
            recovery::examine(&*fs, &dir).map_err(io_error("reading the queue", &dir))?;
        let report = examined.report.clone();
        for (segment, found) in examined.segments.iter_mut().zip(&report.segments) {
            let Some(repair) = &found.repair else {
                continue;
            };
            match repair {
                Repair::Deleted => {} // once the state log is rewritten, below
                Repair::Truncated { .. } => {
                    // If the cut fails, the torn bytes stay unread past the valid
                    // length, and appends go to a new segment anyway.
                    let _ = recovery::repair_segment(&*fs, &dir, segment, repair);
                }
                Repair::SetAside { .. } => {
                    if recovery::repair_segment(&*fs, &dir, segment, repair).is_err() {
                        // Put whichever file survived back in place before reading it.
                        recovery::finish_interrupted(&*fs, &dir)
                            .map_err(io_error("setting a damaged segment aside", &dir))?;
                    }
                    recovery::rescan(&*fs, &dir, segment)
                        .map_err(io_error("reading a repaired segment", &dir))?;
                }
            }
        }

        let (index, live) = recovered_index(&examined, options.queue.clone());
        let mut segments = BTreeMap::new();
        for segment in &examined.segments {
            let file = fs
                .open(&dir.join(&segment.name))
                .map_err(io_error(format!("opening {}", segment.name), &dir))?;
            segments.insert(
                segment.base,
                SegmentFile {
                    file,
                    len: segment.scan.valid_len(),
                    live: live.get(&segment.base).copied().unwrap_or(0),
                    sealed: true,
                },
            );
        }
        let resolved_upto = index.next_id();

        let log = SegmentedLog {
            inner: Mutex::new(Inner {
                index,
                segments,
                active: None,
                queued: Vec::new(),
                queued_calls: 0,
                unresolved_bytes: 0,
                leading: false,
                resolved_upto,
                failures: Vec::new(),
                state: StateLog::new(fs.clone(), &dir),
                state_retry_in: 0,
                commits: 0,
                committed_entries: 0,
                undurable_delete: None,
            }),
            fs,
            dir,
            options,
            resolved: Condvar::new(),
            recovery: report,
            _lock: lock,
        };
        {
            let mut inner = log.lock();
            // An intact, small state log is appended to. Otherwise it is rewritten
            // from what was recovered: damage in it is gone, losses just counted
            // are recorded (never counted twice), and the next id is reserved
            // before any segment is deleted.
            let found = &log.recovery;
            let intact = found.state.present
                && found.state.header_ok
                && found.state.damaged_bytes == 0
                && found.lost == 0
                && found.state.bytes <= log.options.state_rewrite_bytes;
            let adopted = intact
                && match log.fs.open(&log.dir.join(state::STATE_FILE)) {
                    Ok(file) => {
                        inner.state.adopt(file, found.state.bytes);
                        true
                    }
                    Err(_) => false,
                };
            if !adopted {
                log.rewrite_state(&mut inner);
            }
            log.collect_garbage(&mut inner);
        }
        Ok(log)
    }

    /// What opening the queue found and did.
    pub fn recovery(&self) -> &VerifyReport {
        &self.recovery
    }

    /// Reads the queue in `dir` and reports damage and loss, changing nothing.
    pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
        SegmentedLog::verify_with(&StdFs, dir)
    }

    /// Reads what the queue in `dir` holds (entries, statuses, gauges, damage)
    /// without changing anything: safe while another process has it open.
    pub fn inspect(dir: impl AsRef<Path>) -> Result<Inspection> {
        SegmentedLog::inspect_with(&StdFs, dir)
    }

    /// [`inspect`](Self::inspect) on `fs`.
    pub fn inspect_with(fs: &dyn Fs, dir: impl AsRef<Path>) -> Result<Inspection> {
        let dir = dir.as_ref();
        let examined = recovery::examine(fs, dir).map_err(io_error("reading the queue", dir))?;
        let queue = QueueOptions {
            max_bytes: 0,
            ..QueueOptions::default()
        };
        let (index, _) = recovered_index(&examined, queue);
        Ok(Inspection {
            entries: index.infos(),
            stats: index.stats(),
            segment_bytes: examined.report.segments.iter().map(|s| s.bytes).sum(),
            report: examined.report,
        })
    }

    /// [`verify`](Self::verify) on `fs`.
    pub fn verify_with(fs: &dyn Fs, dir: impl AsRef<Path>) -> Result<VerifyReport> {
        let dir = dir.as_ref();
        let examined = recovery::examine(fs, dir).map_err(io_error("reading the queue", dir))?;
        Ok(examined.report)
    }

    /// Repairs the queue in `dir` as opening it does, and reports what was found and done.
    pub fn repair(dir: impl AsRef<Path>) -> Result<VerifyReport> {
        let options = LogOptions {
            queue: QueueOptions {
                max_bytes: 0,
                ..QueueOptions::default()
            },
            ..LogOptions::default()
        };
        Ok(SegmentedLog::open(dir, options)?.recovery)
    }

    /// The queue's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every entry held, in id order, without payloads.
    pub fn entries(&self) -> Vec<EntryInfo> {
        self.lock().index.infos()
    }

    /// Makes the acks, nacks and removals recorded so far survive a power cut (they
    /// survive SIGKILL as soon as they return). Without it, a power cut can bring
    /// back entries acknowledged since the last segment deletion: resent, never lost.
    pub fn flush(&self) -> Result<()> {
        let mut inner = self.lock();
        if inner.state.sync().is_ok() {
            return Ok(());
        }
        self.rewrite_state(&mut inner);
        if inner.state.is_broken() {
            return Err(Error::io(
                format!("syncing the state log in {}", self.dir.display()),
                io::Error::other("the state log could not be rewritten"),
            ));
        }
        Ok(())
    }

    /// How group commit is doing since open: entries per commit is entries per sync.
    pub fn commit_stats(&self) -> CommitStats {
        let inner = self.lock();
        CommitStats {
            commits: inner.commits,
            entries: inner.committed_entries,
            waiting: inner.queued.len() as u64,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation of `Inner` completes before anything that can panic, so a
        // poisoned lock still guards consistent state.
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn enqueue_entries(&self, entries: Vec<Entry>) -> Result<Vec<EntryId>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // Encode and checksum outside the lock: the expensive part of an enqueue.
        let encoded: Vec<(Vec<u8>, u32, EntryMeta)> = entries
            .into_iter()
            .map(|entry| {
                let body = frame::entry_body(
                    &entry.source_id,
                    &entry.batch_id,
                    entry.created_at,
                    &entry.payload,
                );
                let crc = crc32c::crc32c(&body);
                let meta = EntryMeta {
                    size: entry.size(),
                    source_id: Arc::from(entry.source_id),
                    batch_id: entry.batch_id,
                    created_at: entry.created_at,
                };
                (body, crc, meta)
            })
            .collect();
        let size: u64 = encoded.iter().map(|(_, _, meta)| meta.size).sum();
        if let Some((body, _, _)) = encoded.iter().find(|(body, _, _)| body.len() > MAX_BODY) {
            return Err(Error::QueueFull {
                limit_bytes: self.options.queue.max_bytes,
                reason: format!(
                    "an entry of {} bytes is larger than a frame holds ({MAX_BODY} bytes)",
                    body.len()
                ),
            });
        }

        let mut inner = self.lock();
        let victims = inner.index.make_room(inner.unresolved_bytes, size)?;
        self.remove_ids(&mut inner, victims, Removal::Dropped);
        let first = inner.index.next_id();
        let mut ids = Vec::with_capacity(encoded.len());
        for (body, crc, meta) in encoded {
            let id = inner.index.next_id();
            inner.index.advance_next_id(id);
            let mut frame = Vec::with_capacity(frame::FRAME_HEADER + body.len());
            frame::put_frame(&mut frame, id, Kind::Entry, &body, crc);
            inner.queued.push(Queued { id, frame, meta });
            ids.push(id);
        }
        let last = *ids.last().expect("not empty");
        inner.queued_calls += 1;
        inner.unresolved_bytes += size;

        while inner.resolved_upto <= last {
            if inner.leading {
                inner = self
                    .resolved
                    .wait(inner)
                    .unwrap_or_else(|poison| poison.into_inner());
            } else {
                inner = self.lead(inner);
            }
        }
        if let Some(at) = inner
            .failures
            .iter()
            .position(|f| f.first <= first && last <= f.last)
        {
            let failure = &mut inner.failures[at];
            let error = failure.kind.to_error(self.options.queue.max_bytes);
            failure.waiters -= 1;
            if failure.waiters == 0 {
                inner.failures.swap_remove(at);
            }
            return Err(error);
        }
        Ok(ids)
    }

    /// Writes and syncs everything queued as one group commit, with the lock
    /// released during the I/O, then publishes the outcome.
    fn lead<'a>(&'a self, mut inner: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
        inner.leading = true;
        let batch = mem::take(&mut inner.queued);
        let calls = mem::take(&mut inner.queued_calls);
        let first = batch.first().expect("a leader has work").id;
        let last = batch.last().expect("a leader has work").id;
        let frame_bytes: u64 = batch.iter().map(|q| q.frame.len() as u64).sum();
        let target = match inner
            .active
            .and_then(|base| inner.segments.get(&base).map(|s| (base, s)))
        {
            Some((base, segment))
                if segment.len + frame_bytes <= self.options.segment_bytes
                    || segment.len <= FILE_HEADER as u64 =>
            {
                Target::Active {
                    base,
                    file: segment.file.clone(),
                    len: segment.len,
                }
            }
            _ => Target::New { base: first },
        };
        drop(inner);
        let size: u64 = batch.iter().map(|q| q.meta.size).sum();
        let guard = PanicGuard {
            log: self,
            first,
            last,
            others: calls - 1,
            size,
        };
        let result = self.write(target, &batch, last);
        mem::forget(guard);
        let mut inner = self.lock();

        inner.unresolved_bytes -= size;
        let mut sealed = false;
        match result {
            Ok(written) => {
                if written.new {
                    if let Some(old) = inner.active.and_then(|b| inner.segments.get_mut(&b)) {
                        old.sealed = true;
                        sealed = true;
                    }
                    inner.segments.insert(
                        written.base,
                        SegmentFile {
                            file: written.file,
                            len: 0,
                            live: 0,
                            sealed: false,
                        },
                    );
                    inner.active = Some(written.base);
                }
                let count = batch.len() as u64;
                for (queued, offset) in batch.into_iter().zip(written.offsets) {
                    let loc = Loc {
                        segment: written.base,
                        offset,
                        len: queued.frame.len() as u32,
                    };
                    inner.index.insert(queued.id, queued.meta, loc);
                    inner.index.count_enqueued();
                }
                inner.commits += 1;
                inner.committed_entries += count;
                let segment = inner
                    .segments
                    .get_mut(&written.base)
                    .expect("inserted above");
                segment.len = written.end;
                segment.live += count;
            }
            Err(failure) => {
                if failure.seal_active
                    && let Some(base) = inner.active.take()
                    && let Some(segment) = inner.segments.get_mut(&base)
                {
                    segment.sealed = true;
                    sealed = true;
                }
                if let Some((base, file)) = failure.orphan {
                    let len = file.size().unwrap_or(0);
                    inner.segments.insert(
                        base,
                        SegmentFile {
                            file,
                            len,
                            live: 0,
                            sealed: true,
                        },
                    );
                    sealed = true;
                }
                // The failed ids may be on disk (written, not synced): recorded as
                // removed so a restart neither serves them nor counts them as lost.
                let mut records = Vec::new();
                state::put_removed(&mut records, first, last);
                inner.state.append(&records);
                let _ = inner.state.sync();
                inner.failures.push(Failure {
                    first,
                    last,
                    kind: failure.kind,
                    waiters: calls,
                });
            }
        }
        inner.resolved_upto = last + 1;
        inner.leading = false;
        self.resolved.notify_all();
        if sealed {
            self.collect_garbage(&mut inner);
        }
        inner
    }

    fn write(
        &self,
        target: Target,
        batch: &[Queued],
        last: EntryId,
    ) -> Result<Written, WriteFailure> {
        let plain = |kind| WriteFailure {
            kind,
            seal_active: false,
            orphan: None,
        };
        let (base, file, start, new) = match target {
            Target::Active { base, file, len } => (base, file, len, false),
            Target::New { base } => {
                let path = segment_path(&self.dir, base);
                let file = self
                    .fs
                    .create_new(&path)
                    .map_err(|e| plain(FailKind::from_io("creating a segment", &e)))?;
                if let Err(e) = self.fs.sync_dir(&self.dir) {
                    return Err(self.discard_new(
                        base,
                        file,
                        FailKind::from_io("syncing the queue directory", &e),
                    ));
                }
                (base, file, 0, true)
            }
        };
        let frame_bytes: usize = batch.iter().map(|q| q.frame.len()).sum();
        let mut buf = Vec::with_capacity(FILE_HEADER + frame_bytes + frame::FRAME_HEADER);
        if new {
            buf.extend_from_slice(&frame::file_header(SEGMENT_MAGIC));
        }
        let mut offsets = Vec::with_capacity(batch.len());
        for queued in batch {
            offsets.push(start + buf.len() as u64);
            buf.extend_from_slice(&queued.frame);
        }
        frame::put_small_frame(&mut buf, last, Kind::Commit, &[]);
        if let Err(e) = file.append(&buf) {
            let kind = FailKind::from_io("writing a segment", &e);
            if new {
                return Err(self.discard_new(base, file, kind));
            }
            // Cut back what was partly written, so nothing half-written stays
            // behind the acknowledged entries; if that fails too, seal the segment.
            let cut = file.set_len(start).is_ok();
            return Err(WriteFailure {
                kind,
                seal_active: !cut,
                orphan: None,
            });
        }
        if self.options.sync == Durability::Synced
            && let Err(e) = file.sync_data()
        {
            // After a failed fdatasync the kernel may have dropped the dirty pages
            // and cleared the error: this descriptor is never synced again.
            let kind = FailKind::from_io("syncing a segment", &e);
            if new {
                return Err(self.discard_new(base, file, kind));
            }
            return Err(WriteFailure {
                kind,
                seal_active: true,
                orphan: None,
            });
        }
        Ok(Written {
            base,
            file,
            new,
            offsets,
            end: start + buf.len() as u64,
        })
    }

    fn discard_new(&self, base: EntryId, file: Arc<dyn FsFile>, kind: FailKind) -> WriteFailure {
        let orphan = match self.fs.remove_file(&segment_path(&self.dir, base)) {
            Ok(()) => None,
            Err(_) => Some((base, file)),
        };
        WriteFailure {
            kind,
            seal_active: false,
            orphan,
        }
    }

    /// Removes entries from the index, recording why in the state log first.
    fn remove_ids(&self, inner: &mut Inner, mut ids: Vec<EntryId>, why: Removal) {
        if ids.is_empty() {
            return;
        }
        ids.sort_unstable();
        let mut records = Vec::new();
        let mut run: Option<(EntryId, EntryId)> = None;
        for &id in &ids {
            run = match run {
                Some((from, to)) if to + 1 == id => Some((from, id)),
                Some((from, to)) => {
                    state::put_removed(&mut records, from, to);
                    Some((id, id))
                }
                None => Some((id, id)),
            };
        }
        if let Some((from, to)) = run {
            state::put_removed(&mut records, from, to);
        }
        inner.state.append(&records);
        let mut emptied = false;
        for id in ids {
            if let Some(loc) = inner.index.remove(id, why)
                && let Some(segment) = inner.segments.get_mut(&loc.segment)
            {
                segment.live -= 1;
                emptied |= segment.live == 0 && segment.sealed;
            }
        }
        self.after_state_append(inner);
        if emptied {
            self.collect_garbage(inner);
        }
    }

    /// Rewrites the state log when it has grown well past what it needs to say,
    /// or retries a rewrite while it is broken.
    fn after_state_append(&self, inner: &mut Inner) {
        if inner.state.is_broken() {
            if inner.state_retry_in == 0 {
                self.rewrite_state(inner);
            } else {
                inner.state_retry_in -= 1;
            }
            return;
        }
        let needed = 64 * (inner.index.len() as u64 + 1);
        if inner.state.len() > self.options.state_rewrite_bytes && inner.state.len() > 4 * needed {
            self.rewrite_state(inner);
        }
    }

    fn rewrite_state(&self, inner: &mut Inner) {
        let snapshot = self.state_snapshot(inner);
        if inner.state.rewrite(&snapshot).is_err() {
            inner.state_retry_in = 64;
        }
    }

    /// The state log's content, from memory: the next id, every id from the first
    /// segment on that is resolved and not held (as ranges), and the attempts of
    /// entries held.
    fn state_snapshot(&self, inner: &Inner) -> Vec<u8> {
        let mut out = Vec::new();
        state::put_next_id(&mut out, inner.index.next_id());
        let high = inner.resolved_upto;
        let low = inner
            .segments
            .keys()
            .next()
            .copied()
            .into_iter()
            .chain(inner.undurable_delete)
            .min()
            .unwrap_or(high)
            .min(high);
        let mut expected = low;
        for id in inner.index.ids() {
            if id >= high {
                break;
            }
            if id > expected {
                state::put_removed(&mut out, expected, id - 1);
            }
            expected = expected.max(id + 1);
        }
        if expected < high {
            state::put_removed(&mut out, expected, high - 1);
        }
        for info in inner.index.infos() {
            match info.status {
                EntryStatus::Dead => state::put_dead(&mut out, info.id, info.attempts),
                EntryStatus::Retry(at) => state::put_attempt(&mut out, info.id, info.attempts, at),
                EntryStatus::Ready | EntryStatus::InFlight if info.attempts > 0 => {
                    state::put_attempt(&mut out, info.id, info.attempts, Timestamp::UNIX_EPOCH)
                }
                _ => {}
            }
        }
        out
    }

    /// Deletes sealed segments that hold nothing. Order: the state log records
    /// every removal of their entries durably first (else their ids would look
    /// lost after a power cut), then the files are unlinked, then the directory is
    /// synced (until it is, the state log keeps their records, see
    /// `undurable_delete`).
    fn collect_garbage(&self, inner: &mut Inner) {
        let doomed: Vec<EntryId> = inner
            .segments
            .iter()
            .filter(|(_, s)| s.sealed && s.live == 0)
            .map(|(&base, _)| base)
            .collect();
        if doomed.is_empty() {
            return;
        }
        if inner.state.sync().is_err() {
            self.rewrite_state(inner);
            if inner.state.is_broken() {
                return;
            }
        }
        let mut deleted = None;
        for base in doomed {
            match self.fs.remove_file(&segment_path(&self.dir, base)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => continue,
                _ => {}
            }
            inner.segments.remove(&base);
            deleted = Some(deleted.map_or(base, |d: EntryId| d.min(base)));
        }
        let Some(deleted) = deleted else {
            return;
        };
        if self.fs.sync_dir(&self.dir).is_ok() {
            inner.undurable_delete = None;
        } else {
            inner.undurable_delete =
                Some(inner.undurable_delete.map_or(deleted, |d| d.min(deleted)));
        }
    }

    /// Reads an entry's frame back and checks it.
    fn read(&self, inner: &Inner, id: EntryId, loc: Loc) -> io::Result<Option<Entry>> {
        let Some(segment) = inner.segments.get(&loc.segment) else {
            return Ok(None);
        };
        let mut bytes = vec![0; loc.len as usize];
        segment.file.read_exact_at(&mut bytes, loc.offset)?;
        let Some(frame) =
            frame::frame_at(&bytes, 0).filter(|f| f.seq == id && f.kind == Kind::Entry)
        else {
            return Ok(None);
        };
        Ok(
            frame::parse_entry_body(frame.body(&bytes)).map(|body| Entry {
                source_id: body.source_id.to_owned(),
                batch_id: body.batch_id.to_owned(),
                created_at: body.created_at,
                payload: body.payload.to_vec(),
            }),
        )
    }

    /// Reads handed-out entries; damaged ones are removed and counted as lost, and
    /// on an I/O error the rest go back to ready.
    fn read_all(
        &self,
        inner: &mut Inner,
        items: Vec<(EntryId, u32, Loc)>,
        release_on_error: bool,
    ) -> Result<Vec<Pending>> {
        let mut out = Vec::with_capacity(items.len());
        let mut damaged = Vec::new();
        for (at, &(id, attempts, loc)) in items.iter().enumerate() {
            match self.read(inner, id, loc) {
                Ok(Some(entry)) => out.push(Pending {
                    id,
                    attempts,
                    entry,
                }),
                Ok(None) => damaged.push(id),
                Err(source) => {
                    if release_on_error {
                        for &(id, _, _) in &items[at..] {
                            inner.index.release(id);
                        }
                        for pending in &out {
                            inner.index.release(pending.id);
                        }
                    }
                    return Err(Error::io(
                        format!("reading entry {id} in {}", self.dir.display()),
                        source,
                    ));
                }
            }
        }
        if !damaged.is_empty() {
            inner.index.count_lost(damaged.len() as u64);
            self.remove_ids(inner, damaged, Removal::Purged);
        }
        Ok(out)
    }
}

impl SegmentedLog {
    /// [`Queue::take`], or [`Queue::take_heads`] when `one_per_source`.
    fn take_with(&self, max: usize, now: Timestamp, one_per_source: bool) -> Result<Vec<Pending>> {
        let mut inner = self.lock();
        let (handed, expired) = inner.index.take(max, now, one_per_source);
        self.remove_ids(&mut inner, expired, Removal::Expired);
        let items = handed
            .into_iter()
            .map(|item| (item.id, item.attempts, item.handle))
            .collect();
        self.read_all(&mut inner, items, true)
    }
}

impl Queue for SegmentedLog {
    fn durability(&self) -> Durability {
        self.options.sync
    }

    fn enqueue(&self, entry: Entry) -> Result<EntryId> {
        Ok(self.enqueue_entries(vec![entry])?[0])
    }

    fn enqueue_all(&self, entries: Vec<Entry>) -> Result<Vec<EntryId>> {
        self.enqueue_entries(entries)
    }

    fn take(&self, max: usize, now: Timestamp) -> Result<Vec<Pending>> {
        self.take_with(max, now, false)
    }

    fn take_heads(&self, max: usize, now: Timestamp) -> Result<Vec<Pending>> {
        self.take_with(max, now, true)
    }

    fn ack(&self, id: EntryId) -> Result<()> {
        let mut inner = self.lock();
        inner.index.check_live(id)?;
        self.remove_ids(&mut inner, vec![id], Removal::Acked);
        Ok(())
    }

    fn nack(&self, id: EntryId, retry_at: Timestamp) -> Result<NackOutcome> {
        let mut inner = self.lock();
        let outcome = inner.index.nack_outcome(id, retry_at)?;
        self.record_nack(&mut inner, id, outcome);
        Ok(outcome)
    }

    fn release(&self, id: EntryId) -> Result<()> {
        // In-flight state is not persisted (a reopen hands everything out again),
        // so handing an entry back writes nothing.
        let mut inner = self.lock();
        inner.index.check_live(id)?;
        inner.index.release(id);
        Ok(())
    }

    fn dead_letter(&self, id: EntryId) -> Result<u32> {
        let mut inner = self.lock();
        let outcome = inner.index.dead_letter_outcome(id)?;
        self.record_nack(&mut inner, id, outcome);
        Ok(outcome.attempts())
    }

    fn expire(&self, now: Timestamp) -> Result<u64> {
        let mut inner = self.lock();
        let expired = inner.index.expired_ids(now);
        let count = expired.len() as u64;
        self.remove_ids(&mut inner, expired, Removal::Expired);
        Ok(count)
    }

    fn dead_letters(&self, max: usize) -> Result<Vec<Pending>> {
        let mut inner = self.lock();
        let items = inner
            .index
            .dead(max)
            .into_iter()
            .map(|item| (item.id, item.attempts, item.handle))
            .collect();
        self.read_all(&mut inner, items, false)
    }

    fn purge_dead_letters(&self) -> Result<u64> {
        let mut inner = self.lock();
        let dead = inner.index.dead_ids();
        let count = dead.len() as u64;
        self.remove_ids(&mut inner, dead, Removal::Purged);
        Ok(count)
    }

    fn stats(&self) -> QueueStats {
        self.lock().index.stats()
    }
}

impl SegmentedLog {
    /// Persists a nack's outcome in the state log, then applies it.
    fn record_nack(&self, inner: &mut Inner, id: EntryId, outcome: NackOutcome) {
        let mut record = Vec::new();
        match outcome {
            NackOutcome::Retry { attempts, retry_at } => {
                state::put_attempt(&mut record, id, attempts, retry_at)
            }
            NackOutcome::DeadLettered { attempts } => state::put_dead(&mut record, id, attempts),
        }
        inner.state.append(&record);
        inner.index.apply_nack(id, outcome);
        self.after_state_append(inner);
    }
}
