//! Reading a queue directory back: what each segment and the state log hold,
//! what is damaged, what was lost, and the repairs that make the directory clean
//! again. [`examine`] only reads (it is `verify`); [`finish_interrupted`] and
//! [`repair_segments`] change the directory, each step idempotent, so a crash
//! during recovery is recovered from by the next open.

use std::fmt;
use std::io;
use std::path::Path;

use super::frame::{self, FILE_HEADER, Kind, SEGMENT_MAGIC};
use super::fs::Fs;
use super::segment::{
    CORRUPT_DIR, REPAIR_SUFFIX, SEGMENT_SUFFIX, SegmentScan, parse_segment_name, scan_segment,
    segment_name,
};
use super::state::{STATE_FILE, STATE_TMP, StateRecords, StateReport, read_state};
use crate::queue::EntryId;

/// Damage found in a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The file header is not the segment header (its frames are still read).
    BadHeader,
    /// Bytes before the segment's last commit that hold no intact frame: data
    /// that had been acknowledged was hit. The entries there are counted as lost.
    Damaged {
        /// Where the damaged run starts.
        offset: u64,
        /// How long it is.
        bytes: u64,
    },
    /// Bytes after the segment's last commit that hold no intact frame: a write
    /// that was torn by a crash before it was acknowledged. Cut off, not counted as lost.
    TornTail {
        /// Where the tail starts.
        offset: u64,
        /// How long it is.
        bytes: u64,
    },
}

/// What recovery does (or, for [`verify`](super::SegmentedLog::verify), would do) with a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repair {
    /// The torn tail is cut: the file keeps its first `to` bytes.
    Truncated {
        /// The length kept.
        to: u64,
    },
    /// The damaged file is moved to `corrupt/` (named here, relative to the queue
    /// directory) and replaced by a copy holding its intact frames.
    SetAside {
        /// Where the damaged file went.
        to: String,
    },
    /// Nothing in the file is still held (all acked, or never committed): removed.
    Deleted,
}

/// What a segment holds and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentReport {
    /// File name.
    pub name: String,
    /// File size.
    pub bytes: u64,
    /// Intact entries in the file (including ones the state log says are gone).
    pub entries: u64,
    /// Intact entries still held (not acked, dropped, expired or purged).
    pub live: u64,
    /// Smallest and largest intact entry id.
    pub ids: Option<(EntryId, EntryId)>,
    /// Damage found.
    pub findings: Vec<Finding>,
    /// Entries lost to damage, counted from the gaps in the id sequence of this segment.
    pub lost: u64,
    /// What recovery does about it.
    pub repair: Option<Repair>,
}

/// What [`SegmentedLog::verify`](super::SegmentedLog::verify) found (or what
/// opening the queue found and did, [`SegmentedLog::recovery`](super::SegmentedLog::recovery)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// One report per segment file, in id order.
    pub segments: Vec<SegmentReport>,
    /// The state log.
    pub state: StateReport,
    /// Files left by an interrupted step (a state rewrite, a segment repair),
    /// finished or removed on open.
    pub leftovers: Vec<String>,
    /// Entries still held.
    pub live: u64,
    /// Entries lost to damage (newly found: losses counted by an earlier open are
    /// recorded and not counted again).
    pub lost: u64,
}

impl VerifyReport {
    /// Whether nothing is damaged, torn, lost or left over.
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.leftovers.is_empty()
            && self.state.damaged_bytes == 0
            && (!self.state.present || self.state.header_ok)
            && self.segments.iter().all(|s| s.findings.is_empty())
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for segment in &self.segments {
            write!(
                f,
                "{}: {} bytes, {} entries ({} held)",
                segment.name, segment.bytes, segment.entries, segment.live
            )?;
            if let Some((first, last)) = segment.ids {
                write!(f, ", ids {first}..={last}")?;
            }
            if segment.lost > 0 {
                write!(f, ", {} lost", segment.lost)?;
            }
            writeln!(f)?;
            for finding in &segment.findings {
                match finding {
                    Finding::BadHeader => writeln!(f, "  bad header")?,
                    Finding::Damaged { offset, bytes } => {
                        writeln!(f, "  damaged: {bytes} bytes at offset {offset}")?
                    }
                    Finding::TornTail { offset, bytes } => {
                        writeln!(f, "  torn tail: {bytes} bytes at offset {offset}")?
                    }
                }
            }
            match &segment.repair {
                Some(Repair::Truncated { to }) => writeln!(f, "  repair: truncate to {to} bytes")?,
                Some(Repair::SetAside { to }) => {
                    writeln!(f, "  repair: move to {to}, keep its intact entries")?
                }
                Some(Repair::Deleted) => writeln!(f, "  repair: delete (nothing held)")?,
                None => {}
            }
        }
        let state = &self.state;
        if state.present {
            write!(
                f,
                "{STATE_FILE}: {} bytes, {} records",
                state.bytes, state.records
            )?;
            if !state.header_ok {
                write!(f, ", bad header")?;
            }
            if state.damaged_bytes > 0 {
                write!(f, ", {} damaged bytes", state.damaged_bytes)?;
            }
            writeln!(f)?;
        }
        for leftover in &self.leftovers {
            writeln!(f, "leftover: {leftover}")?;
        }
        writeln!(
            f,
            "{} entries held, {} lost, {}",
            self.live,
            self.lost,
            if self.is_clean() {
                "clean"
            } else {
                "damage found"
            }
        )
    }
}

/// A segment as read.
#[derive(Debug)]
pub(crate) struct ScannedSegment {
    pub base: EntryId,
    pub name: String,
    pub scan: SegmentScan,
}

/// The directory as read.
#[derive(Debug, Default)]
pub(crate) struct Examined {
    pub state: StateRecords,
    pub segments: Vec<ScannedSegment>,
    pub report: VerifyReport,
    /// The largest id any intact frame or state record says was committed.
    pub max_committed: EntryId,
}

fn not_found_is_none<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Reads the directory, changing nothing.
pub(crate) fn examine(fs: &dyn Fs, dir: &Path) -> io::Result<Examined> {
    let names = fs.list(dir)?;
    let state_bytes = not_found_is_none(fs.read(&dir.join(STATE_FILE)))?;
    let (state, state_report) = read_state(state_bytes.as_deref());
    let mut bases: Vec<(EntryId, String)> = names
        .iter()
        .filter_map(|name| parse_segment_name(name).map(|base| (base, name.clone())))
        .collect();
    bases.sort();
    let mut segments = Vec::with_capacity(bases.len());
    for (base, name) in bases {
        let bytes = fs.read(&dir.join(&name))?;
        segments.push(ScannedSegment {
            base,
            name,
            scan: scan_segment(&bytes),
        });
    }
    let leftovers = names
        .iter()
        .filter(|name| name.ends_with(REPAIR_SUFFIX) || *name == STATE_TMP)
        .cloned()
        .collect();
    let mut examined = Examined {
        state,
        segments,
        report: VerifyReport {
            state: state_report,
            leftovers,
            ..VerifyReport::default()
        },
        max_committed: 0,
    };
    examined.account();
    Ok(examined)
}

impl Examined {
    /// Fills the report: per-segment findings, live entries, and the loss counted
    /// from the id gaps that no state record explains.
    fn account(&mut self) {
        let removed = &self.state.removed;
        self.max_committed = self
            .segments
            .iter()
            .map(|s| s.scan.max_seq)
            .chain([self.state.max_committed])
            .max()
            .unwrap_or(0);
        let mut reports = Vec::with_capacity(self.segments.len());
        for segment in &self.segments {
            let scan = &segment.scan;
            let mut findings = Vec::new();
            if !scan.header_ok && scan.committed {
                findings.push(Finding::BadHeader);
            }
            for damage in scan
                .damaged
                .iter()
                .filter(|d| d.offset >= FILE_HEADER as u64)
            {
                findings.push(Finding::Damaged {
                    offset: damage.offset,
                    bytes: damage.len,
                });
            }
            if let Some(offset) = scan.torn_at
                && offset < scan.bytes
            {
                findings.push(Finding::TornTail {
                    offset,
                    bytes: scan.bytes - offset,
                });
            }
            let live = scan
                .entries
                .iter()
                .filter(|e| !removed.contains(e.id))
                .count() as u64;
            let repair = if !scan.damaged.is_empty() {
                Some(Repair::SetAside {
                    to: format!("{CORRUPT_DIR}/{}", segment.name),
                })
            } else if live == 0 {
                Some(Repair::Deleted)
            } else if scan.torn_at.is_some_and(|at| at < scan.bytes) {
                Some(Repair::Truncated {
                    to: scan.valid_len(),
                })
            } else {
                None
            };
            reports.push(SegmentReport {
                name: segment.name.clone(),
                bytes: scan.bytes,
                entries: scan.entries.len() as u64,
                live,
                ids: scan
                    .entries
                    .first()
                    .zip(scan.entries.last())
                    .map(|(first, last)| (first.id, last.id)),
                findings,
                lost: 0,
                repair,
            });
        }
        // Every id from the first segment's base to the last committed id is in a
        // segment, or removed by the state log; any other was lost to damage.
        // A gap is charged to the segment whose id range holds it.
        // A last segment with nothing committed was created by a write that never
        // completed: its base id was never acknowledged. Any other segment was.
        let last = self.segments.len().saturating_sub(1);
        let ranges: Vec<(EntryId, usize)> = self
            .segments
            .iter()
            .enumerate()
            .filter(|&(index, s)| index < last || s.scan.committed || !s.scan.entries.is_empty())
            .map(|(index, s)| (s.base, index))
            .collect();
        if let Some(&(low, _)) = ranges.first() {
            let mut expected = low;
            let charge = |from: EntryId, to: EntryId, reports: &mut Vec<SegmentReport>| {
                // Split the gap at segment bases.
                let mut at = from;
                while at <= to {
                    let slot = ranges.partition_point(|&(base, _)| base <= at) - 1;
                    let end = ranges
                        .get(slot + 1)
                        .map_or(to, |&(next, _)| to.min(next - 1));
                    let missing = end - at + 1 - removed.count_in(at, end);
                    reports[ranges[slot].1].lost += missing;
                    at = end + 1;
                }
            };
            for segment in &self.segments {
                for entry in &segment.scan.entries {
                    if entry.id > expected {
                        charge(expected, entry.id - 1, &mut reports);
                    }
                    expected = expected.max(entry.id + 1);
                }
            }
            if self.max_committed >= expected {
                charge(expected, self.max_committed, &mut reports);
            }
        }
        self.report.live = reports.iter().map(|r| r.live).sum();
        self.report.lost = reports.iter().map(|r| r.lost).sum();
        self.report.segments = reports;
    }
}

/// Finishes what an interrupted step left: a synced repair copy whose original is
/// already set aside is renamed into place; any other leftover is removed.
pub(crate) fn finish_interrupted(fs: &dyn Fs, dir: &Path) -> io::Result<()> {
    let names = fs.list(dir)?;
    let mut changed = false;
    for name in &names {
        if let Some(stem) = name.strip_suffix(REPAIR_SUFFIX) {
            let segment = format!("{stem}{SEGMENT_SUFFIX}");
            if names.contains(&segment) {
                // The original was not moved yet: the repair starts again from it.
                fs.remove_file(&dir.join(name))?;
            } else {
                fs.rename(&dir.join(name), &dir.join(segment))?;
            }
            changed = true;
        } else if name == STATE_TMP {
            fs.remove_file(&dir.join(name))?;
            changed = true;
        }
    }
    if changed {
        fs.sync_dir(dir)?;
    }
    Ok(())
}

/// Repairs a segment as its report says: cut a torn tail, or set the file aside
/// and put a copy of its intact frames in its place. Returns whether the file
/// changed (and must be read again).
///
/// The set-aside order keeps every step recoverable: (1) the copy
/// `NAME.seg.repair` is written and synced; (2) the original is renamed into
/// `corrupt/`; (3) the copy is renamed to `NAME.seg`; (4) both directories are
/// synced. A crash after (1) leaves both files (the copy is dropped and the repair
/// redone); after (2) only the copy (it is renamed into place).
pub(crate) fn repair_segment(
    fs: &dyn Fs,
    dir: &Path,
    segment: &ScannedSegment,
    repair: &Repair,
) -> io::Result<()> {
    let path = dir.join(&segment.name);
    match repair {
        Repair::Truncated { to } => {
            let file = fs.open(&path)?;
            file.set_len(*to)?;
            file.sync_data()
        }
        Repair::Deleted => fs.remove_file(&path),
        Repair::SetAside { to } => {
            let original = fs.read(&path)?;
            let mut copy = Vec::with_capacity(original.len());
            copy.extend_from_slice(&frame::file_header(SEGMENT_MAGIC));
            let mut last = 0;
            for f in segment.scan.frames.iter().filter(|f| f.kind == Kind::Entry) {
                copy.extend_from_slice(&original[f.offset as usize..f.end() as usize]);
                last = f.seq;
            }
            // One commit covering the copy, so the next scan sees it as acknowledged
            // data and counts no torn tail; the gaps stay and are not counted again
            // because the state log records them as removed.
            frame::put_small_frame(&mut copy, last.max(segment.scan.max_seq), Kind::Commit, &[]);
            let repair_path = dir.join(format!(
                "{}{REPAIR_SUFFIX}",
                segment.name.trim_end_matches(SEGMENT_SUFFIX)
            ));
            match fs.remove_file(&repair_path) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
            let file = fs.create_new(&repair_path)?;
            file.append(&copy)?;
            file.sync_data()?;
            let corrupt = dir.join(CORRUPT_DIR);
            fs.create_dir_all(&corrupt)?;
            let mut target = dir.join(to);
            let taken = fs.list(&corrupt)?;
            let mut n = 1;
            while taken
                .iter()
                .any(|name| Some(name.as_str()) == target.file_name().and_then(|n| n.to_str()))
            {
                target = corrupt.join(format!("{}.{n}", segment.name));
                n += 1;
            }
            fs.rename(&path, &target)?;
            fs.rename(&repair_path, &path)?;
            fs.sync_dir(dir)?;
            fs.sync_dir(&corrupt)
        }
    }
}

/// Reads one segment again after a repair.
pub(crate) fn rescan(fs: &dyn Fs, dir: &Path, segment: &mut ScannedSegment) -> io::Result<()> {
    let bytes = fs.read(&dir.join(&segment.name))?;
    segment.scan = scan_segment(&bytes);
    Ok(())
}

pub(crate) fn segment_path(dir: &Path, base: EntryId) -> std::path::PathBuf {
    dir.join(segment_name(base))
}
