//! Segment files: names, and what a scan of one finds.
//!
//! A segment is named after the first id it was created for,
//! `{id:020}.seg`, so names sort in id order.

use super::frame::{self, Damage, FILE_HEADER, Frame, Kind, SEGMENT_MAGIC};
use crate::queue::EntryId;
use crate::queue::index::EntryMeta;

pub(crate) const SEGMENT_SUFFIX: &str = ".seg";
/// A rewritten copy of a damaged segment, renamed over it once synced.
pub(crate) const REPAIR_SUFFIX: &str = ".seg.repair";
pub(crate) const CORRUPT_DIR: &str = "corrupt";

pub(crate) fn segment_name(base: EntryId) -> String {
    format!("{base:020}{SEGMENT_SUFFIX}")
}

/// The base id of a segment file name, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<EntryId> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Where an entry's frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub segment: EntryId,
    pub offset: u64,
    pub len: u32,
}

/// An intact entry found by a scan.
#[derive(Clone, Debug)]
pub(crate) struct ScannedEntry {
    pub id: EntryId,
    pub meta: EntryMeta,
    pub frame: Frame,
}

/// What one segment file holds.
#[derive(Clone, Debug, Default)]
pub(crate) struct SegmentScan {
    pub bytes: u64,
    pub header_ok: bool,
    /// Intact entries, in id order, up to `valid_len`.
    pub entries: Vec<ScannedEntry>,
    /// Intact frames (entries and commits) up to `valid_len`, for a rewrite.
    pub frames: Vec<Frame>,
    /// Damage before the last commit frame: acknowledged data was hit.
    pub damaged: Vec<Damage>,
    /// Where the torn tail (damage after the last commit frame) starts, if there is one.
    pub torn_at: Option<u64>,
    /// Whether any commit frame is intact.
    pub committed: bool,
    /// The largest id an intact frame names (an entry, or the last entry a commit covers).
    pub max_seq: EntryId,
}

impl SegmentScan {
    /// The length the file keeps once a torn tail is cut.
    pub fn valid_len(&self) -> u64 {
        self.torn_at.unwrap_or(self.bytes)
    }
}

pub(crate) fn scan_segment(bytes: &[u8]) -> SegmentScan {
    let header_ok = frame::header_ok(bytes, SEGMENT_MAGIC);
    let (mut frames, mut damage) = frame::scan(bytes, FILE_HEADER.min(bytes.len()));
    // A frame out of id order cannot be one the log wrote (a checksum collision
    // inside damage): count it as damage.
    let mut last_seq = 0;
    frames.retain(|f| {
        let in_order = match f.kind {
            Kind::Entry => f.seq > last_seq,
            Kind::Commit => f.seq >= last_seq,
            _ => false,
        };
        if in_order {
            last_seq = f.seq;
        } else {
            damage.push(Damage {
                offset: f.offset,
                len: u64::from(f.total),
            });
        }
        in_order
    });
    damage.sort_by_key(|d| d.offset);
    let committed_end = frames
        .iter()
        .filter(|f| f.kind == Kind::Commit)
        .map(Frame::end)
        .next_back();
    let mut scan = SegmentScan {
        bytes: bytes.len() as u64,
        header_ok,
        committed: committed_end.is_some(),
        ..SegmentScan::default()
    };
    if bytes.len() < FILE_HEADER || (!header_ok && committed_end.is_none()) {
        // A segment created but never committed to: nothing in it was acknowledged.
        scan.torn_at = Some(0);
        return scan;
    }
    let committed_end = committed_end.unwrap_or(FILE_HEADER as u64);
    for d in damage {
        if d.offset < committed_end {
            scan.damaged.push(d);
        } else {
            scan.torn_at = Some(d.offset);
            break;
        }
    }
    let valid_len = scan.valid_len();
    scan.max_seq = frames
        .iter()
        .filter(|f| f.end() <= valid_len)
        .map(|f| f.seq)
        .max()
        .unwrap_or(0);
    for f in frames.into_iter().filter(|f| f.end() <= valid_len) {
        if f.kind == Kind::Entry {
            match frame::parse_entry_body(f.body(bytes)) {
                Some(body) => {
                    let size =
                        (body.payload.len() + body.source_id.len() + body.batch_id.len()) as u64;
                    scan.entries.push(ScannedEntry {
                        id: f.seq,
                        meta: EntryMeta {
                            source_id: body.source_id.into(),
                            batch_id: body.batch_id.to_owned(),
                            created_at: body.created_at,
                            size,
                        },
                        frame: f,
                    });
                }
                None => {
                    scan.damaged.push(Damage {
                        offset: f.offset,
                        len: u64::from(f.total),
                    });
                    continue;
                }
            }
        }
        scan.frames.push(f);
    }
    if !header_ok && scan.committed {
        // The header is not needed to read the frames, but a file whose header
        // changed was damaged: set it aside like any other damage.
        scan.damaged.insert(
            0,
            Damage {
                offset: 0,
                len: FILE_HEADER as u64,
            },
        );
    }
    scan
}
