//! The segmented log shared between threads: concurrent enqueuers share syncs
//! (group commit), and producers and consumers running at once lose and
//! duplicate nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use edgepipe_core::Timestamp;
use edgepipe_core::queue::log::FsOp;
use edgepipe_core::queue::{Entry, LogOptions, Queue, QueueOptions, SegmentedLog, SimFs};

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000).unwrap()
}

fn entry(source: usize, n: usize) -> Entry {
    Entry {
        source_id: format!("gw-{source}"),
        batch_id: format!("gw-{source}:{n}"),
        created_at: now(),
        payload: vec![(source * 31 + n) as u8; 64],
    }
}

fn open(fs: &SimFs, segment_bytes: u64) -> SegmentedLog {
    let options = LogOptions {
        queue: QueueOptions {
            max_bytes: 0,
            ..QueueOptions::default()
        },
        segment_bytes,
        ..LogOptions::default()
    };
    SegmentedLog::open_with(Arc::new(fs.clone()), Path::new("q"), options).unwrap()
}

/// Waits, without sleeping, until `ready` holds (another thread makes it true).
fn until(ready: impl Fn() -> bool) {
    while !ready() {
        std::thread::yield_now();
    }
}

#[test]
fn enqueuers_that_arrive_during_a_sync_share_the_next_one() {
    let fs = SimFs::new();
    let queue = Arc::new(open(&fs, 1 << 20));
    queue.enqueue(entry(0, 0)).unwrap();
    let syncs_before = fs.count(FsOp::Sync);

    // The first enqueuer becomes the leader and is held inside its fdatasync…
    fs.pause_syncs();
    std::thread::scope(|scope| {
        let leader = scope.spawn(|| queue.enqueue(entry(0, 1)).unwrap());
        until(|| fs.paused_syncs() == 1);
        // …while seven more enqueue and wait for the next commit.
        let followers: Vec<_> = (1..8)
            .map(|source| {
                let queue = &queue;
                scope.spawn(move || queue.enqueue(entry(source, 0)).unwrap())
            })
            .collect();
        until(|| queue.commit_stats().waiting == 7);
        fs.resume_syncs();
        leader.join().unwrap();
        for follower in followers {
            follower.join().unwrap();
        }
    });

    let stats = queue.commit_stats();
    assert_eq!(
        (stats.commits, stats.entries),
        (3, 9),
        "1 + 1 + 7 entries in 3 commits"
    );
    assert_eq!(
        fs.count(FsOp::Sync) - syncs_before,
        2,
        "eight enqueues, two fdatasyncs"
    );
    assert_eq!(queue.stats().pending, 9);
}

#[test]
fn producers_and_consumers_at_once_lose_and_duplicate_nothing() {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 150;
    let fs = SimFs::new();
    // Small segments: rollover and deletion race with the takes and acks.
    let queue = Arc::new(open(&fs, 2048));
    let acked = Mutex::new(Vec::new());
    let produced = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for source in 0..PRODUCERS {
            let (queue, produced) = (&queue, &produced);
            scope.spawn(move || {
                for n in 0..PER_PRODUCER {
                    let id = queue.enqueue(entry(source, n)).unwrap();
                    produced.lock().unwrap().push(id);
                }
            });
        }
        for _ in 0..2 {
            let (queue, acked, produced) = (&queue, &acked, &produced);
            scope.spawn(move || {
                loop {
                    let taken = queue.take(7, now()).unwrap();
                    for pending in &taken {
                        let source = pending.entry.source_id[3..].parse().unwrap();
                        let n = pending
                            .entry
                            .batch_id
                            .rsplit(':')
                            .next()
                            .unwrap()
                            .parse()
                            .unwrap();
                        assert_eq!(pending.entry, entry(source, n), "served intact");
                        queue.ack(pending.id).unwrap();
                        acked.lock().unwrap().push(pending.id);
                    }
                    let done = produced.lock().unwrap().len() == PRODUCERS * PER_PRODUCER;
                    if taken.is_empty() && done {
                        break;
                    }
                }
            });
        }
    });
    let produced: BTreeSet<u64> = produced.into_inner().unwrap().into_iter().collect();
    let acked_list = acked.into_inner().unwrap();
    let acked: BTreeSet<u64> = acked_list.iter().copied().collect();
    assert_eq!(produced.len(), PRODUCERS * PER_PRODUCER, "ids are unique");
    assert_eq!(acked.len(), acked_list.len(), "nothing handed out twice");
    assert_eq!(acked, produced, "everything delivered");
    let stats = queue.commit_stats();
    assert_eq!(stats.entries, produced.len() as u64);
    drop(queue);

    let reopened = open(&fs, 2048);
    assert_eq!(reopened.stats().pending + reopened.stats().lost, 0);
    assert!(
        SegmentedLog::verify_with(&fs, Path::new("q"))
            .unwrap()
            .is_clean()
    );
}
