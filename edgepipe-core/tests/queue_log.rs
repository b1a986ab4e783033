//! What the segmented log persists across a restart besides the entries: TTL
//! expiry, drops under `DropOldest`, attempt counts, dead letters and purges;
//! and the options it accepts.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use edgepipe_core::queue::{
    Durability, Entry, EntryStatus, FullPolicy, LogOptions, NackOutcome, Queue, QueueOptions,
    SegmentedLog, SimFs,
};
use edgepipe_core::{Error, Timestamp};

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000 + seconds).unwrap()
}

fn entry(n: u8, created: i64) -> Entry {
    Entry {
        source_id: format!("gw-{n}"),
        batch_id: format!("batch-{n}"),
        created_at: at(created),
        payload: vec![n; 90],
    }
}

fn open(fs: &SimFs, queue: QueueOptions) -> SegmentedLog {
    let options = LogOptions {
        queue,
        segment_bytes: 300,
        ..LogOptions::default()
    };
    SegmentedLog::open_with(Arc::new(fs.clone()), Path::new("q"), options).unwrap()
}

#[test]
fn expiry_drops_attempts_dead_letters_and_purges_survive_a_restart() {
    let fs = SimFs::new();
    let options = QueueOptions {
        max_bytes: 3 * 101, // three entries of 90 + 4 + 7 bytes
        full_policy: FullPolicy::DropOldest,
        max_attempts: 2,
        ttl: Some(Duration::from_secs(60)),
    };
    let queue = open(&fs, options.clone());
    for n in 1..=3 {
        queue.enqueue(entry(n, 0)).unwrap();
    }
    queue.enqueue(entry(4, 100)).unwrap(); // drops entry 1
    assert_eq!(queue.stats().dropped, 1);
    assert_eq!(queue.expire(at(61)).unwrap(), 2); // entries 2 and 3 expire
    queue.enqueue(entry(5, 100)).unwrap();
    queue.enqueue(entry(6, 100)).unwrap();
    let taken = queue.take(3, at(100)).unwrap();
    assert_eq!(taken.iter().map(|p| p.id).collect::<Vec<_>>(), [4, 5, 6]);
    assert!(matches!(
        queue.nack(4, at(200)).unwrap(),
        NackOutcome::Retry { attempts: 1, .. }
    ));
    queue.nack(5, at(100)).unwrap();
    assert!(matches!(
        queue.nack(6, at(100)).unwrap(),
        NackOutcome::Retry { .. }
    ));
    drop(queue);

    let queue = open(&fs, options.clone());
    let listed: Vec<(u64, u32, EntryStatus)> = queue
        .entries()
        .iter()
        .map(|e| (e.id, e.attempts, e.status))
        .collect();
    assert_eq!(
        listed,
        [
            (4, 1, EntryStatus::Retry(at(200))),
            (5, 1, EntryStatus::Retry(at(100))),
            (6, 1, EntryStatus::Retry(at(100))),
        ]
    );
    // gw-4 waits until 200; the others are due.
    let taken = queue.take(10, at(150)).unwrap();
    assert_eq!(
        taken.iter().map(|p| (p.id, p.attempts)).collect::<Vec<_>>(),
        [(5, 1), (6, 1)]
    );
    assert_eq!(
        queue.nack(5, at(150)).unwrap(),
        NackOutcome::DeadLettered { attempts: 2 }
    );
    queue.ack(6).unwrap();
    drop(queue);

    let queue = open(&fs, options.clone());
    let dead = queue.dead_letters(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].id, dead[0].attempts, &dead[0].entry),
        (5, 2, &entry(5, 100))
    );
    assert_eq!(queue.purge_dead_letters().unwrap(), 1);
    drop(queue);

    let queue = open(&fs, options);
    assert_eq!(
        queue.entries().iter().map(|e| e.id).collect::<Vec<_>>(),
        [4]
    );
    assert_eq!(queue.stats().lost, 0);
    assert_eq!(
        queue.enqueue(entry(7, 300)).unwrap(),
        7,
        "ids are never reused"
    );
}

#[test]
fn sync_policy_is_synced_or_written() {
    let fs = SimFs::new();
    let written = LogOptions {
        sync: Durability::Written,
        ..LogOptions::default()
    };
    let queue = SegmentedLog::open_with(Arc::new(fs.clone()), Path::new("q"), written).unwrap();
    assert_eq!(queue.durability(), Durability::Written);
    queue.enqueue(entry(1, 0)).unwrap();
    assert_eq!(queue.commit_stats().commits, 1);
    drop(queue);
    let queue = open(&fs, QueueOptions::default());
    assert_eq!(queue.durability(), Durability::Synced);
    assert_eq!(
        queue.stats().pending,
        1,
        "written entries survive a process kill"
    );

    let memory = LogOptions {
        sync: Durability::Memory,
        ..LogOptions::default()
    };
    let refused = SegmentedLog::open_with(Arc::new(SimFs::new()), Path::new("q"), memory);
    assert!(matches!(refused, Err(Error::Config { .. })));
}

#[test]
fn an_entry_larger_than_the_queue_is_refused_and_nothing_is_written() {
    let fs = SimFs::new();
    let queue = open(
        &fs,
        QueueOptions {
            max_bytes: 50,
            ..QueueOptions::default()
        },
    );
    assert!(matches!(
        queue.enqueue(entry(1, 0)),
        Err(Error::QueueFull { .. })
    ));
    assert_eq!(queue.commit_stats().commits, 0);
    assert_eq!(queue.stats().enqueued, 0);
}

mod queue_support;

#[test]
fn take_heads_hands_out_the_next_entry_of_each_source() {
    queue_support::take_heads_hands_out_the_next_entry_of_each_source(&|options| {
        queue_support::Opened {
            queue: Box::new(open(&SimFs::new(), options)),
            reopen: None,
        }
    });
}
