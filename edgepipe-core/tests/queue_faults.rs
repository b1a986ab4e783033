//! I/O faults: for every kind of operation the log makes (write, fdatasync,
//! directory sync, create, rename, unlink), the Nth one over a workload
//! fails, once (transient) or from then on (persistent), for every N. Whatever
//! fails, no entry whose enqueue was acknowledged is lost — after a process kill
//! or a power cut — nothing is served damaged, and the queue reopens once the
//! disk is healthy again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use edgepipe_core::queue::log::{Fault, FsOp};
use edgepipe_core::queue::{Entry, LogOptions, Queue, QueueOptions, SegmentedLog, SimFs};
use edgepipe_core::{Error, Timestamp};

const OPS: [FsOp; 6] = [
    FsOp::Write,
    FsOp::Sync,
    FsOp::SyncDir,
    FsOp::Create,
    FsOp::Rename,
    FsOp::Remove,
];

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000).unwrap()
}

fn entry(n: u64) -> Entry {
    Entry {
        source_id: format!("gw-{}", n % 2),
        batch_id: format!("batch-{n}"),
        created_at: now(),
        payload: vec![n as u8; 30 + (n as usize * 7) % 50],
    }
}

fn options() -> LogOptions {
    LogOptions {
        queue: QueueOptions {
            max_bytes: 0,
            max_attempts: 2,
            ..QueueOptions::default()
        },
        segment_bytes: 400,
        state_rewrite_bytes: 200,
        ..LogOptions::default()
    }
}

fn open(fs: &SimFs) -> edgepipe_core::Result<SegmentedLog> {
    SegmentedLog::open_with(Arc::new(fs.clone()), Path::new("q"), options())
}

/// What the workload knows: acknowledged entries not acked (must survive), and
/// every entry it tried to enqueue (anything served must be one of them).
#[derive(Default)]
struct Ledger {
    must_hold: BTreeMap<u64, Entry>,
    tried: BTreeMap<String, Entry>,
    counter: u64,
    full_errors: u64,
}

impl Ledger {
    fn enqueue(&mut self, queue: &SegmentedLog, count: usize) {
        let entries: Vec<Entry> = (0..count)
            .map(|_| {
                self.counter += 1;
                entry(self.counter)
            })
            .collect();
        for e in &entries {
            self.tried.insert(e.batch_id.clone(), e.clone());
        }
        let result = if count == 1 {
            queue.enqueue(entries[0].clone()).map(|id| vec![id])
        } else {
            queue.enqueue_all(entries.clone())
        };
        match result {
            Ok(ids) => {
                for (id, e) in ids.into_iter().zip(entries) {
                    self.must_hold.insert(id, e);
                }
            }
            Err(Error::QueueFull { .. }) => self.full_errors += 1,
            Err(Error::Io { .. }) => {}
            Err(other) => panic!("unexpected enqueue error {other}"),
        }
    }

    /// Checks a reopened queue: everything that must be held is, byte-exact.
    fn check(&self, queue: &SegmentedLog, context: &str) {
        let served: BTreeMap<u64, Entry> = queue
            .take(usize::MAX, now())
            .unwrap()
            .into_iter()
            .chain(queue.dead_letters(usize::MAX).unwrap())
            .map(|p| (p.id, p.entry))
            .collect();
        for (id, e) in &self.must_hold {
            assert_eq!(
                served.get(id),
                Some(e),
                "{context}: acknowledged entry {id} lost or damaged"
            );
        }
        for e in served.values() {
            assert_eq!(
                self.tried.get(&e.batch_id),
                Some(e),
                "{context}: served an entry never enqueued"
            );
        }
    }
}

/// Enqueues, takes, acks, nacks into dead letters, purges, reopens: enough for
/// segments to roll over and be deleted and the state log to be rewritten.
fn workload(fs: &SimFs, ledger: &mut Ledger) {
    let Ok(mut queue) = open(fs) else {
        return;
    };
    for round in 0..4 {
        for _ in 0..3 {
            ledger.enqueue(&queue, 1);
        }
        ledger.enqueue(&queue, 3);
        if let Ok(taken) = queue.take(4, now()) {
            for (i, pending) in taken.iter().enumerate() {
                if i % 3 == 2 {
                    let _ = queue.nack(pending.id, now());
                } else if queue.ack(pending.id).is_ok() {
                    ledger.must_hold.remove(&pending.id);
                }
            }
        }
        if round == 1 {
            // Take again: nacked entries come back and die at the second failure.
            if let Ok(taken) = queue.take(10, now()) {
                for pending in taken {
                    let _ = queue.nack(pending.id, now());
                }
            }
            let _ = queue.expire(now());
            let dead: Vec<u64> = queue
                .dead_letters(100)
                .map(|d| d.iter().map(|p| p.id).collect())
                .unwrap_or_default();
            if queue.purge_dead_letters().is_ok() {
                for id in dead {
                    ledger.must_hold.remove(&id);
                }
            }
        }
        if round == 2 {
            drop(queue);
            match open(fs) {
                Ok(reopened) => queue = reopened,
                Err(_) => return,
            }
        }
    }
}

#[test]
fn no_fault_loses_an_acknowledged_entry() {
    let clean = SimFs::new();
    let mut ledger = Ledger::default();
    workload(&clean, &mut ledger);
    assert!(!ledger.must_hold.is_empty());
    let mut runs = 0;
    for op in OPS {
        let total = clean.count(op);
        assert!(total > 0, "the workload makes {op:?} operations");
        for persistent in [false, true] {
            for nth in 1..=total {
                let fs = SimFs::new();
                fs.inject(Fault {
                    op,
                    nth,
                    persistent,
                });
                let mut ledger = Ledger::default();
                workload(&fs, &mut ledger);
                fs.heal();
                let context = format!("{op:?} #{nth} persistent={persistent}");
                if op == FsOp::Write && !persistent {
                    assert!(ledger.full_errors <= 1, "{context}");
                }
                // The process dies; the disk is healthy again.
                let power_cut = fs.snapshot();
                let queue = open(&fs).unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
                ledger.check(&queue, &context);
                drop(queue);
                // Or the power goes: synced entries survive that too.
                power_cut.crash();
                let queue = open(&power_cut)
                    .unwrap_or_else(|e| panic!("{context}: reopen after a power cut failed: {e}"));
                ledger.check(&queue, &format!("{context}, power cut"));
                runs += 1;
            }
        }
    }
    eprintln!("faults: {runs} fault runs");
}

#[test]
fn a_full_disk_is_queue_full_and_leaves_no_partial_entry() {
    let fs = SimFs::new();
    let queue = open(&fs).unwrap();
    queue.enqueue(entry(1)).unwrap();
    fs.inject(Fault {
        op: FsOp::Write,
        nth: 1,
        persistent: false,
    });
    assert!(matches!(
        queue.enqueue(entry(2)),
        Err(Error::QueueFull { .. })
    ));
    queue.enqueue(entry(3)).unwrap();
    drop(queue);
    let queue = open(&fs).unwrap();
    assert!(
        queue.recovery().is_clean(),
        "the half-written entry was cut back: {}",
        queue.recovery()
    );
    let served: Vec<Entry> = queue
        .take(10, now())
        .unwrap()
        .into_iter()
        .map(|p| p.entry)
        .collect();
    assert_eq!(served, [entry(1), entry(3)]);
}

#[test]
fn a_failed_fsync_seals_the_segment_and_the_next_enqueue_starts_a_new_one() {
    let fs = SimFs::new();
    let queue = open(&fs).unwrap();
    queue.enqueue(entry(1)).unwrap();
    let segments = |fs: &SimFs| {
        use edgepipe_core::queue::Fs;
        fs.list(Path::new("q"))
            .unwrap()
            .into_iter()
            .filter(|n| n.ends_with(".seg"))
            .count()
    };
    assert_eq!(segments(&fs), 1);
    fs.inject(Fault {
        op: FsOp::Sync,
        nth: 1,
        persistent: false,
    });
    assert!(matches!(queue.enqueue(entry(2)), Err(Error::Io { .. })));
    let syncs = fs.count(FsOp::Sync);
    queue.enqueue(entry(3)).unwrap();
    assert_eq!(segments(&fs), 2, "a new segment, not a retried fsync");
    assert!(fs.count(FsOp::Sync) > syncs);
    drop(queue);
    let queue = open(&fs).unwrap();
    let served: Vec<Entry> = queue
        .take(10, now())
        .unwrap()
        .into_iter()
        .map(|p| p.entry)
        .collect();
    assert_eq!(
        served,
        [entry(1), entry(3)],
        "the failed enqueue is not served"
    );
    assert_eq!(queue.stats().lost, 0);
}

#[test]
fn a_partial_write_that_cannot_be_cut_back_seals_the_segment() {
    let fs = SimFs::new();
    let queue = open(&fs).unwrap();
    queue.enqueue(entry(1)).unwrap();
    fs.inject(Fault {
        op: FsOp::Write,
        nth: 1,
        persistent: false,
    });
    fs.inject(Fault {
        op: FsOp::SetLen,
        nth: 1,
        persistent: false,
    });
    assert!(matches!(
        queue.enqueue(entry(2)),
        Err(Error::QueueFull { .. })
    ));
    queue.enqueue(entry(3)).unwrap();
    drop(queue);
    let queue = open(&fs).unwrap();
    let first = &queue.recovery().segments[0];
    assert!(
        matches!(
            first.findings[..],
            [edgepipe_core::queue::Finding::TornTail { .. }]
        ),
        "the half-written entry is a torn tail of the sealed segment: {}",
        queue.recovery()
    );
    let served: Vec<Entry> = queue
        .take(10, now())
        .unwrap()
        .into_iter()
        .map(|p| p.entry)
        .collect();
    assert_eq!(served, [entry(1), entry(3)]);
    assert_eq!(queue.stats().lost, 0);
}

#[test]
fn a_power_cut_before_any_change_loses_nothing_acknowledged() {
    let clean = SimFs::new();
    workload(&clean, &mut Ledger::default());
    let changes: u64 = OPS
        .iter()
        .chain([&FsOp::SetLen])
        .map(|&op| clean.count(op))
        .sum();
    for n in 1..=changes {
        let fs = SimFs::new();
        fs.crash_after(n);
        let mut ledger = Ledger::default();
        workload(&fs, &mut ledger);
        fs.heal();
        let context = format!("power cut before change #{n} of {changes}");
        let queue = open(&fs).unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
        assert_eq!(queue.stats().lost, 0, "{context}: {}", queue.recovery());
        ledger.check(&queue, &context);
    }
    eprintln!("faults: {changes} crash points");
}
