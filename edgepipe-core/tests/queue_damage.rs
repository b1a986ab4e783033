//! Exhaustive damage: every byte of a segment flipped, and the segment cut at
//! every offset, one at a time. Every reopen must succeed without panicking,
//! serve only intact entries (byte-exact), count exactly the entries it lost, set
//! the damaged segment aside, and leave a directory that verifies clean.
//! The state log gets the same treatment: damage there may bring acked entries
//! back (resent), never lose one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use edgepipe_core::Timestamp;
use edgepipe_core::queue::{
    Entry, Finding, LogOptions, Queue, QueueOptions, Repair, SegmentedLog, SimFs,
};

const PER_SEGMENT: u64 = 5;
const PAYLOAD: usize = 40;
const HEADER: u64 = 20;
const FRAME_HEADER: u64 = 17;

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000).unwrap()
}

fn entry(n: u64) -> Entry {
    Entry {
        source_id: "gw".to_owned(),
        batch_id: format!("batch-{n:04}"),
        created_at: now(),
        payload: (0..PAYLOAD)
            .map(|i| (n as u8).wrapping_mul(7) ^ i as u8)
            .collect(),
    }
}

/// Bytes one enqueue of one entry appends: its frame, then a commit frame.
fn entry_frame_len() -> u64 {
    let e = entry(0);
    FRAME_HEADER + 4 + e.source_id.len() as u64 + 4 + e.batch_id.len() as u64 + 8 + PAYLOAD as u64
}

fn options() -> LogOptions {
    LogOptions {
        queue: QueueOptions {
            max_bytes: 0,
            ..QueueOptions::default()
        },
        // Exactly PER_SEGMENT enqueues per segment.
        segment_bytes: HEADER + PER_SEGMENT * (entry_frame_len() + FRAME_HEADER),
        ..LogOptions::default()
    }
}

fn dir() -> &'static Path {
    Path::new("q")
}

fn open(fs: &SimFs) -> SegmentedLog {
    SegmentedLog::open_with(Arc::new(fs.clone()), dir(), options())
        .expect("open never fails on damage")
}

/// Two full segments of entries 1..=10, the first closed.
fn two_segments() -> (SimFs, PathBuf, PathBuf) {
    let fs = SimFs::new();
    let queue = open(&fs);
    for n in 1..=2 * PER_SEGMENT {
        assert_eq!(queue.enqueue(entry(n)).unwrap(), n);
    }
    drop(queue);
    let first = dir().join(format!("{:020}.seg", 1));
    let second = dir().join(format!("{:020}.seg", PER_SEGMENT + 1));
    assert!(fs.contents(&first).is_some() && fs.contents(&second).is_some());
    (fs, first, second)
}

/// Which entry (id) of a segment starting at `base` the byte at `offset` belongs to, if any.
fn entry_at(base: u64, offset: u64) -> Option<u64> {
    if offset < HEADER {
        return None;
    }
    let stride = entry_frame_len() + FRAME_HEADER;
    let index = (offset - HEADER) / stride;
    let within = (offset - HEADER) % stride;
    (within < entry_frame_len()).then_some(base + index)
}

/// Takes everything and checks each entry is byte-exact.
fn served(queue: &SegmentedLog) -> Vec<u64> {
    let taken = queue.take(usize::MAX, now()).unwrap();
    for pending in &taken {
        assert_eq!(
            pending.entry,
            entry(pending.id),
            "entry {} served damaged",
            pending.id
        );
    }
    taken.iter().map(|p| p.id).collect()
}

fn all_but(lost: &[u64]) -> Vec<u64> {
    (1..=2 * PER_SEGMENT)
        .filter(|id| !lost.contains(id))
        .collect()
}

/// Reopening a repaired queue finds nothing more and counts nothing again.
fn reopens_clean(fs: &SimFs, expected: &[u64]) {
    let report = SegmentedLog::verify_with(fs, dir()).unwrap();
    assert!(report.is_clean(), "{report}");
    let queue = open(fs);
    assert_eq!(queue.stats().lost, 0);
    assert_eq!(served(&queue), expected);
}

#[test]
fn every_flipped_byte_costs_exactly_the_entry_it_hit() {
    let (pristine, first, second) = two_segments();
    for (path, base) in [(&first, 1), (&second, PER_SEGMENT + 1)] {
        let bytes = pristine.contents(path).unwrap();
        for offset in 0..bytes.len() {
            let fs = pristine.snapshot();
            let mut damaged = bytes.clone();
            damaged[offset] ^= 0x5a;
            fs.overwrite(path, &damaged).unwrap();

            let lost: Vec<u64> = entry_at(base, offset as u64).into_iter().collect();
            let queue = open(&fs);
            let context = format!("{} byte {offset}: {}", path.display(), queue.recovery());
            assert_eq!(queue.stats().lost, lost.len() as u64, "{context}");
            assert_eq!(served(&queue), all_but(&lost), "{context}");
            let segment = queue
                .recovery()
                .segments
                .iter()
                .find(|s| path.ends_with(&s.name))
                .unwrap();
            assert!(!segment.findings.is_empty(), "{context}");
            if segment
                .findings
                .iter()
                .any(|f| matches!(f, Finding::Damaged { .. } | Finding::BadHeader))
            {
                assert!(
                    matches!(segment.repair, Some(Repair::SetAside { .. })),
                    "{context}"
                );
                let corrupt = fs.contents(&dir().join("corrupt").join(&segment.name));
                assert_eq!(corrupt.as_deref(), Some(&damaged[..]), "set aside as found");
            }
            drop(queue);
            reopens_clean(&fs, &all_but(&lost));
        }
    }
}

#[test]
fn a_closed_segment_cut_at_any_offset_counts_what_the_cut_took() {
    let (pristine, first, _) = two_segments();
    let bytes = pristine.contents(&first).unwrap();
    for cut in 0..bytes.len() {
        let fs = pristine.snapshot();
        fs.overwrite(&first, &bytes[..cut]).unwrap();
        // Every entry whose frame does not fit before the cut is gone.
        let lost: Vec<u64> = (1..=PER_SEGMENT)
            .filter(|&id| {
                let end =
                    HEADER + (id - 1) * (entry_frame_len() + FRAME_HEADER) + entry_frame_len();
                end > cut as u64
            })
            .collect();
        let queue = open(&fs);
        let context = format!("cut at {cut}: {}", queue.recovery());
        assert_eq!(queue.stats().lost, lost.len() as u64, "{context}");
        assert_eq!(served(&queue), all_but(&lost), "{context}");
        drop(queue);
        reopens_clean(&fs, &all_but(&lost));
    }
}

#[test]
fn the_last_segment_cut_at_any_offset_keeps_the_intact_prefix() {
    // A cut of the last segment looks exactly like a write torn by a power cut:
    // whole entries before it are served, the rest is cut off. Nothing after it
    // names the ids cut away, so they cannot be counted (docs/durability.md).
    let (pristine, _, second) = two_segments();
    let bytes = pristine.contents(&second).unwrap();
    for cut in 0..bytes.len() {
        let fs = pristine.snapshot();
        fs.overwrite(&second, &bytes[..cut]).unwrap();
        let kept: Vec<u64> = (PER_SEGMENT + 1..=2 * PER_SEGMENT)
            .filter(|&id| {
                let index = id - PER_SEGMENT - 1;
                HEADER + index * (entry_frame_len() + FRAME_HEADER) + entry_frame_len()
                    <= cut as u64
            })
            .collect();
        let queue = open(&fs);
        let context = format!("cut at {cut}: {}", queue.recovery());
        let mut expected: Vec<u64> = (1..=PER_SEGMENT).collect();
        expected.extend(&kept);
        assert_eq!(served(&queue), expected, "{context}");
        assert_eq!(queue.stats().lost, 0, "{context}");
        drop(queue);
        reopens_clean(&fs, &expected);
    }
}

#[test]
fn damage_in_the_state_log_can_resend_but_never_lose() {
    let (pristine, _, _) = two_segments();
    let queue = open(&pristine);
    let taken = queue.take(4, now()).unwrap();
    queue.ack(taken[0].id).unwrap();
    queue.ack(taken[1].id).unwrap();
    queue.nack(taken[2].id, now()).unwrap();
    drop(queue);
    let state = dir().join("state.log");
    let bytes = pristine.contents(&state).unwrap();
    let acked = [taken[0].id, taken[1].id];
    for offset in 0..bytes.len() {
        for damage in [Some(0x5a_u8), None] {
            let fs = pristine.snapshot();
            let mut damaged = bytes.clone();
            match damage {
                Some(mask) => damaged[offset] ^= mask,
                None => damaged.truncate(offset),
            }
            fs.overwrite(&state, &damaged).unwrap();
            let queue = open(&fs);
            let context = format!("state byte {offset} {damage:?}: {}", queue.recovery());
            assert_eq!(queue.stats().lost, 0, "{context}");
            let ids = served(&queue);
            let held: BTreeMap<u64, ()> = ids.iter().map(|&id| (id, ())).collect();
            for id in all_but(&acked) {
                assert!(held.contains_key(&id), "{context}: entry {id} lost");
            }
        }
    }
}

#[test]
fn a_power_cut_at_any_step_of_a_repair_is_recovered_by_the_next_open() {
    use edgepipe_core::queue::log::FsOp;
    let (damaged, first, second) = two_segments();
    // Entries 1 and 2 acked (and flushed), so the state log has records to keep…
    {
        let queue = open(&damaged);
        for pending in queue.take(2, now()).unwrap() {
            queue.ack(pending.id).unwrap();
        }
        queue.flush().unwrap(); // acks survive a power cut from here on
    }
    // …then entry 3 damaged (the segment is set aside) and a torn tail on the
    // last segment (it is cut).
    let mut bytes = damaged.contents(&first).unwrap();
    let third = HEADER + 2 * (entry_frame_len() + FRAME_HEADER) + 30;
    bytes[third as usize] ^= 0x5a;
    damaged.overwrite(&first, &bytes).unwrap();
    let mut bytes = damaged.contents(&second).unwrap();
    bytes.extend_from_slice(&[0xee; 25]);
    damaged.overwrite(&second, &bytes).unwrap();
    let expected = all_but(&[1, 2, 3]);

    let counting = damaged.snapshot();
    drop(open(&counting));
    let ops = [
        FsOp::Write,
        FsOp::Sync,
        FsOp::SyncDir,
        FsOp::Create,
        FsOp::Rename,
        FsOp::Remove,
        FsOp::SetLen,
    ];
    let changes: u64 = ops.iter().map(|&op| counting.count(op)).sum();
    assert!(changes >= 8, "the repair takes several steps ({changes})");
    for n in 1..=changes {
        let fs = damaged.snapshot();
        fs.crash_after(n);
        let _ = SegmentedLog::open_with(Arc::new(fs.clone()), dir(), options());
        fs.heal();
        let queue = open(&fs);
        let context = format!(
            "power cut before change #{n} of {changes}: {}",
            queue.recovery()
        );
        assert!(queue.stats().lost <= 1, "{context}");
        assert_eq!(served(&queue), expected, "{context}");
        drop(queue);
        reopens_clean(&fs, &expected);
    }
}
