//! The [`Queue`] contract as tests any backend runs: one function per behaviour,
//! each given a [`Backend`] that opens a fresh, empty queue (and, for a durable
//! backend, reopens it as a restart would). A backend's test file expands
//! [`queue_contract_tests!`] (and [`durable_queue_contract_tests!`]) with its
//! backend, which makes one named `#[test]` per behaviour.
#![allow(dead_code)]

use edgepipe_core::Error;
use edgepipe_core::batch::{BatchEncoder, Codec, Compression, DecodeLimits};
use edgepipe_core::queue::{
    Entry, EntryId, FullPolicy, NackOutcome, Pending, Queue, QueueOptions, QueueStats,
};
use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};
use std::time::Duration;

/// Drops a queue and opens its storage again, as a restart does.
pub type Reopen = Box<dyn Fn(Box<dyn Queue>) -> Box<dyn Queue>>;

/// A queue just opened on empty storage.
pub struct Opened {
    pub queue: Box<dyn Queue>,
    /// `None` for a backend that keeps nothing across a restart.
    pub reopen: Option<Reopen>,
}

/// Opens a fresh, empty queue with the given options.
pub trait Backend {
    fn open(&self, options: QueueOptions) -> Opened;
}

impl<F: Fn(QueueOptions) -> Opened> Backend for F {
    fn open(&self, options: QueueOptions) -> Opened {
        self(options)
    }
}

/// Generates one `#[test]` per contract behaviour for `$backend` (an expression
/// whose reference is a [`Backend`]; it is evaluated once per test).
#[macro_export]
macro_rules! queue_contract_tests {
    ($backend:expr) => {
        $crate::queue_contract_tests!(@tests $backend;
            hands_out_oldest_first_in_enqueue_order_per_source,
            never_hands_out_an_in_flight_entry_twice,
            a_retry_holds_back_only_its_own_source,
            nack_counts_attempts_and_dead_letters_at_max_attempts,
            dead_letters_can_be_listed_and_purged,
            acked_entries_are_never_handed_out_again,
            entries_past_their_ttl_are_expired_and_counted,
            a_full_queue_rejects_under_the_reject_policy,
            a_full_queue_drops_the_oldest_not_in_flight_under_drop_oldest,
            enqueue_all_gives_ids_in_the_order_given,
            payloads_come_back_byte_for_byte,
            stats_count_what_the_queue_holds,
            take_heads_hands_out_the_next_entry_of_each_source,
        );
    };
    (@tests $backend:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::queue_support::$name(&$backend);
            }
        )*
    };
}

/// Generates one `#[test]` per behaviour across a restart, for durable backends.
#[macro_export]
macro_rules! durable_queue_contract_tests {
    ($backend:expr) => {
        $crate::queue_contract_tests!(@tests $backend;
            a_reopen_resends_only_what_was_not_acked,
            a_reopen_keeps_attempts_retry_times_and_dead_letters,
            a_reopen_never_reuses_an_id,
            a_reopen_keeps_the_byte_count_and_the_bound,
        );
    };
}

pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000 + seconds).unwrap()
}

/// An entry whose payload is a real one-record batch (json, no compression);
/// its `batch_id` is `name`, so tests can refer to it.
pub fn entry(source: &str, name: &str, created_at: Timestamp) -> Entry {
    let mut record = DataRecord::new(source, "sensors", Payload::new());
    record.record_id = name.into();
    record.timestamp = created_at;
    record.payload.insert("temperature", Value::Float(21.5));
    let encoder = BatchEncoder::new(source, Codec::Json, Compression::None).unwrap();
    let batch = encoder.encode(&[record], created_at).unwrap();
    Entry {
        source_id: source.into(),
        batch_id: name.into(),
        created_at,
        payload: batch.to_bytes(),
    }
}

pub fn names(taken: &[Pending]) -> Vec<&str> {
    taken
        .iter()
        .map(|pending| pending.entry.batch_id.as_str())
        .collect()
}

fn open(backend: &dyn Backend, options: QueueOptions) -> Opened {
    backend.open(options)
}

fn defaults() -> QueueOptions {
    QueueOptions::default()
}

pub fn hands_out_oldest_first_in_enqueue_order_per_source(backend: &dyn Backend) {
    let queue = open(backend, defaults()).queue;
    for (source, name) in [
        ("a", "a1"),
        ("b", "b1"),
        ("a", "a2"),
        ("c", "c1"),
        ("b", "b2"),
    ] {
        queue.enqueue(entry(source, name, at(0))).unwrap();
    }
    let taken = queue.take(10, at(0)).unwrap();
    assert_eq!(names(&taken), ["a1", "b1", "a2", "c1", "b2"]);
    assert!(
        taken.windows(2).all(|pair| pair[0].id < pair[1].id),
        "ids increase in enqueue order"
    );
    assert!(taken.iter().all(|pending| pending.attempts == 0));
}

pub fn take_heads_hands_out_the_next_entry_of_each_source(backend: &dyn Backend) {
    let queue = open(backend, defaults()).queue;
    for (source, name) in [
        ("a", "a1"),
        ("a", "a2"),
        ("b", "b1"),
        ("a", "a3"),
        ("c", "c1"),
        ("b", "b2"),
        ("d", "d1"),
    ] {
        queue.enqueue(entry(source, name, at(0))).unwrap();
    }
    let release = |taken: &[Pending]| {
        for pending in taken {
            queue.release(pending.id).unwrap();
        }
    };
    let heads = queue.take_heads(3, at(0)).unwrap();
    assert_eq!(names(&heads), ["a1", "b1", "c1"]);
    // In flight like any take: behind them come their sources' next entries.
    let next = queue.take_heads(10, at(0)).unwrap();
    assert_eq!(names(&next), ["a2", "b2", "d1"]);
    release(&next);
    queue.ack(heads[0].id).unwrap();
    release(&heads[2..]);
    let next = queue.take_heads(10, at(0)).unwrap();
    assert_eq!(names(&next), ["a2", "c1", "b2", "d1"]);
    release(&next);
    // A source waiting for a retry has no head until its time.
    queue.nack(heads[1].id, at(60)).unwrap();
    let next = queue.take_heads(10, at(0)).unwrap();
    assert_eq!(names(&next), ["a2", "c1", "d1"]);
    release(&next);
    assert_eq!(
        names(&queue.take_heads(10, at(60)).unwrap()),
        ["a2", "b1", "c1", "d1"]
    );
}

pub fn never_hands_out_an_in_flight_entry_twice(backend: &dyn Backend) {
    let queue = open(backend, defaults()).queue;
    for name in ["a1", "a2", "a3"] {
        queue.enqueue(entry("a", name, at(0))).unwrap();
    }
    assert_eq!(names(&queue.take(2, at(0)).unwrap()), ["a1", "a2"]);
    assert_eq!(names(&queue.take(10, at(0)).unwrap()), ["a3"]);
    assert!(queue.take(10, at(1_000)).unwrap().is_empty());
    assert_eq!(queue.stats().in_flight, 3);
}

pub fn a_retry_holds_back_only_its_own_source(backend: &dyn Backend) {
    let queue = open(backend, defaults()).queue;
    for (source, name) in [("a", "a1"), ("a", "a2"), ("b", "b1"), ("b", "b2")] {
        queue.enqueue(entry(source, name, at(0))).unwrap();
    }
    let first = queue.take(1, at(0)).unwrap();
    assert_eq!(names(&first), ["a1"]);
    let outcome = queue.nack(first[0].id, at(30)).unwrap();
    assert_eq!(
        outcome,
        NackOutcome::Retry {
            attempts: 1,
            retry_at: at(30)
        }
    );
    // a2 waits behind a1's retry; b is not held back.
    assert_eq!(names(&queue.take(10, at(10)).unwrap()), ["b1", "b2"]);
    assert!(queue.take(10, at(29)).unwrap().is_empty());
    let retried = queue.take(10, at(30)).unwrap();
    assert_eq!(names(&retried), ["a1", "a2"]);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(retried[0].id, first[0].id, "a retry keeps its id");
    assert_eq!(retried[1].attempts, 0);
}

pub fn nack_counts_attempts_and_dead_letters_at_max_attempts(backend: &dyn Backend) {
    let options = QueueOptions {
        max_attempts: 3,
        ..defaults()
    };
    let queue = open(backend, options).queue;
    queue.enqueue(entry("a", "a1", at(0))).unwrap();
    queue.enqueue(entry("a", "a2", at(0))).unwrap();
    let mut outcomes = Vec::new();
    for round in 0..3 {
        let taken = queue.take(1, at(round * 10)).unwrap();
        assert_eq!(names(&taken), ["a1"], "round {round}");
        assert_eq!(taken[0].attempts as i64, round);
        outcomes.push(queue.nack(taken[0].id, at(round * 10 + 5)).unwrap());
    }
    assert_eq!(
        outcomes,
        [
            NackOutcome::Retry {
                attempts: 1,
                retry_at: at(5)
            },
            NackOutcome::Retry {
                attempts: 2,
                retry_at: at(15)
            },
            NackOutcome::DeadLettered { attempts: 3 },
        ]
    );
    // The dead entry no longer holds back its source.
    assert_eq!(names(&queue.take(10, at(20)).unwrap()), ["a2"]);
    let stats = queue.stats();
    assert_eq!((stats.dead, stats.dead_lettered), (1, 1));
}

pub fn dead_letters_can_be_listed_and_purged(backend: &dyn Backend) {
    let options = QueueOptions {
        max_attempts: 1,
        ..defaults()
    };
    let queue = open(backend, options).queue;
    let enqueued = entry("a", "a1", at(0));
    queue.enqueue(enqueued.clone()).unwrap();
    queue.enqueue(entry("b", "b1", at(0))).unwrap();
    let taken = queue.take(1, at(0)).unwrap();
    assert_eq!(
        queue.nack(taken[0].id, at(5)).unwrap(),
        NackOutcome::DeadLettered { attempts: 1 }
    );
    let dead = queue.dead_letters(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].entry, enqueued);
    assert_eq!(dead[0].attempts, 1);
    assert!(matches!(
        queue.ack(dead[0].id),
        Err(Error::UnknownEntry { .. })
    ));
    assert!(matches!(
        queue.nack(dead[0].id, at(6)),
        Err(Error::UnknownEntry { .. })
    ));
    assert_eq!(queue.purge_dead_letters().unwrap(), 1);
    assert!(queue.dead_letters(10).unwrap().is_empty());
    assert_eq!(queue.stats().dead, 0);
    assert_eq!(names(&queue.take(10, at(10)).unwrap()), ["b1"]);
}

pub fn acked_entries_are_never_handed_out_again(backend: &dyn Backend) {
    let queue = open(backend, defaults()).queue;
    queue.enqueue(entry("a", "a1", at(0))).unwrap();
    queue.enqueue(entry("a", "a2", at(0))).unwrap();
    let taken = queue.take(10, at(0)).unwrap();
    queue.ack(taken[0].id).unwrap();
    assert!(matches!(
        queue.ack(taken[0].id),
        Err(Error::UnknownEntry { .. })
    ));
    assert!(matches!(
        queue.nack(taken[0].id, at(1)),
        Err(Error::UnknownEntry { .. })
    ));
    queue.nack(taken[1].id, at(1)).unwrap();
    assert_eq!(names(&queue.take(10, at(1)).unwrap()), ["a2"]);
    assert_eq!(queue.stats().acked, 1);
}

pub fn entries_past_their_ttl_are_expired_and_counted(backend: &dyn Backend) {
    let options = QueueOptions {
        ttl: Some(Duration::from_secs(60)),
        ..defaults()
    };
    let queue = open(backend, options).queue;
    queue.enqueue(entry("a", "old", at(0))).unwrap();
    queue.enqueue(entry("a", "fresh", at(100))).unwrap();
    queue.enqueue(entry("b", "older", at(-10))).unwrap();
    // At 61 s, `old` and `older` are past the TTL: take expires them on its way.
    assert_eq!(names(&queue.take(10, at(61)).unwrap()), ["fresh"]);
    assert_eq!(queue.stats().expired, 2);
    assert_eq!(queue.stats().pending, 0);

    queue.enqueue(entry("c", "late", at(100))).unwrap();
    assert_eq!(
        queue.expire(at(160)).unwrap(),
        0,
        "exactly the TTL is not past it"
    );
    assert_eq!(
        queue.expire(at(161)).unwrap(),
        1,
        "in flight entries are not expired"
    );
    let stats = queue.stats();
    assert_eq!((stats.expired, stats.in_flight, stats.pending), (3, 1, 0));
}

pub fn a_full_queue_rejects_under_the_reject_policy(backend: &dyn Backend) {
    let first = entry("a", "a1", at(0));
    let options = QueueOptions {
        max_bytes: 2 * first.size(),
        full_policy: FullPolicy::Reject,
        ..defaults()
    };
    let queue = open(backend, options).queue;
    queue.enqueue(first).unwrap();
    queue.enqueue(entry("a", "a2", at(0))).unwrap();
    let refused = queue.enqueue(entry("a", "a3", at(0)));
    assert!(
        matches!(refused, Err(Error::QueueFull { .. })),
        "{refused:?}"
    );
    let stats = queue.stats();
    assert_eq!((stats.enqueued, stats.pending, stats.dropped), (2, 2, 0));
    // Room again once one is delivered; the refused entry was never accepted.
    let taken = queue.take(1, at(0)).unwrap();
    queue.ack(taken[0].id).unwrap();
    queue.enqueue(entry("a", "a4", at(0))).unwrap();
    assert_eq!(names(&queue.take(10, at(0)).unwrap()), ["a2", "a4"]);
}

pub fn a_full_queue_drops_the_oldest_not_in_flight_under_drop_oldest(backend: &dyn Backend) {
    let first = entry("a", "a1", at(0));
    let options = QueueOptions {
        max_bytes: 3 * first.size(),
        full_policy: FullPolicy::DropOldest,
        ..defaults()
    };
    let queue = open(backend, options).queue;
    queue.enqueue(first).unwrap();
    queue.enqueue(entry("a", "a2", at(0))).unwrap();
    queue.enqueue(entry("a", "a3", at(0))).unwrap();
    let in_flight = queue.take(1, at(0)).unwrap();
    assert_eq!(names(&in_flight), ["a1"]);
    queue.enqueue(entry("a", "a4", at(0))).unwrap();
    queue.enqueue(entry("a", "a5", at(0))).unwrap();
    let stats = queue.stats();
    assert_eq!((stats.dropped, stats.enqueued), (2, 5));
    // a1 was in flight, so a2 and a3 made room.
    queue.ack(in_flight[0].id).unwrap();
    assert_eq!(names(&queue.take(10, at(0)).unwrap()), ["a4", "a5"]);
}

pub fn enqueue_all_gives_ids_in_the_order_given(backend: &dyn Backend) {
    let queue = open(backend, defaults()).queue;
    let single = queue.enqueue(entry("a", "a0", at(0))).unwrap();
    let ids = queue
        .enqueue_all(vec![
            entry("b", "b1", at(0)),
            entry("a", "a1", at(0)),
            entry("b", "b2", at(0)),
        ])
        .unwrap();
    assert_eq!(ids.len(), 3);
    assert!(single < ids[0] && ids[0] < ids[1] && ids[1] < ids[2]);
    let taken = queue.take(10, at(0)).unwrap();
    assert_eq!(names(&taken), ["a0", "b1", "a1", "b2"]);
    assert_eq!(
        taken
            .iter()
            .map(|pending| pending.id)
            .collect::<Vec<EntryId>>()[1..],
        ids[..]
    );
    assert_eq!(queue.stats().enqueued, 4);
}

pub fn payloads_come_back_byte_for_byte(backend: &dyn Backend) {
    let queue = open(backend, defaults()).queue;
    let batch = entry("a", "batch", at(0));
    let opaque = Entry {
        source_id: "a".into(),
        batch_id: "opaque".into(),
        created_at: Timestamp::from_unix_nanos(1_700_000_000_123_456_789),
        payload: b"not an edgepipe batch \x00\xff".to_vec(),
    };
    let empty = Entry {
        payload: Vec::new(),
        batch_id: "empty".into(),
        ..opaque.clone()
    };
    for entry in [&batch, &opaque, &empty] {
        queue.enqueue(entry.clone()).unwrap();
    }
    let taken = queue.take(10, at(0)).unwrap();
    let entries: Vec<&Entry> = taken.iter().map(|pending| &pending.entry).collect();
    assert_eq!(entries, [&batch, &opaque, &empty]);
    let decoded = taken[0].entry.to_batch(&DecodeLimits::default()).unwrap();
    assert_eq!(decoded.decode(&DecodeLimits::default()).unwrap().len(), 1);
}

pub fn stats_count_what_the_queue_holds(backend: &dyn Backend) {
    let options = QueueOptions {
        max_attempts: 1,
        ..defaults()
    };
    let queue = open(backend, options).queue;
    let entries = [
        entry("a", "a1", at(5)),
        entry("b", "b1", at(3)),
        entry("c", "c1", at(7)),
    ];
    let bytes: u64 = entries.iter().map(Entry::size).sum();
    assert_eq!(queue.stats(), QueueStats::default());
    for entry in &entries {
        queue.enqueue(entry.clone()).unwrap();
    }
    let taken = queue.take(2, at(10)).unwrap();
    queue.nack(taken[1].id, at(11)).unwrap(); // b1: dead at one attempt
    let stats = queue.stats();
    assert_eq!(
        stats,
        QueueStats {
            pending: 1,
            in_flight: 1,
            dead: 1,
            bytes,
            // b1 is dead and no longer counts as the oldest held.
            oldest_created_at: Some(at(5)),
            enqueued: 3,
            dead_lettered: 1,
            ..QueueStats::default()
        }
    );
}

// --- across a restart ---------------------------------------------------------

fn open_durable(backend: &dyn Backend, options: QueueOptions) -> (Box<dyn Queue>, Reopen) {
    let opened = open(backend, options);
    let reopen = opened
        .reopen
        .expect("the durable contract needs a backend that reopens");
    (opened.queue, reopen)
}

pub fn a_reopen_resends_only_what_was_not_acked(backend: &dyn Backend) {
    let (queue, reopen) = open_durable(backend, defaults());
    for name in ["a1", "a2", "a3", "a4"] {
        queue.enqueue(entry("a", name, at(0))).unwrap();
    }
    let taken = queue.take(3, at(0)).unwrap();
    queue.ack(taken[0].id).unwrap();
    queue.ack(taken[2].id).unwrap();
    // a2 is in flight and a4 never taken when the process stops.
    let queue = reopen(queue);
    let stats = queue.stats();
    assert_eq!((stats.pending, stats.in_flight), (2, 0));
    let resent = queue.take(10, at(1)).unwrap();
    assert_eq!(names(&resent), ["a2", "a4"]);
    assert_eq!(
        resent[0].id, taken[1].id,
        "an entry keeps its id across a reopen"
    );
    assert_eq!(resent[0].entry, entry("a", "a2", at(0)));
    for pending in &resent {
        queue.ack(pending.id).unwrap();
    }
    let queue = reopen(queue);
    assert!(queue.take(10, at(2)).unwrap().is_empty());
    assert_eq!(queue.stats().pending, 0);
}

pub fn a_reopen_keeps_attempts_retry_times_and_dead_letters(backend: &dyn Backend) {
    let options = QueueOptions {
        max_attempts: 2,
        ..defaults()
    };
    let (queue, reopen) = open_durable(backend, options);
    for (source, name) in [("a", "a1"), ("a", "a2"), ("b", "b1")] {
        queue.enqueue(entry(source, name, at(0))).unwrap();
    }
    let taken = queue.take(10, at(0)).unwrap();
    queue.nack(taken[0].id, at(60)).unwrap(); // a1: retry at 60 s
    queue.nack(taken[1].id, at(5)).unwrap(); // a2: retry at 5 s
    queue.nack(taken[2].id, at(5)).unwrap(); // b1: retry at 5 s ...
    let b1 = queue.take(10, at(5)).unwrap();
    assert_eq!(names(&b1), ["b1"]);
    queue.nack(b1[0].id, at(6)).unwrap(); // ... and dead at the second attempt

    let queue = reopen(queue);
    assert!(
        queue.take(10, at(59)).unwrap().is_empty(),
        "a1's retry time holds back a2 across the reopen"
    );
    let retried = queue.take(10, at(60)).unwrap();
    assert_eq!(names(&retried), ["a1", "a2"]);
    assert_eq!(
        retried.iter().map(|p| p.attempts).collect::<Vec<_>>(),
        [1, 1]
    );
    let dead = queue.dead_letters(10).unwrap();
    assert_eq!(names(&dead), ["b1"]);
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(queue.stats().dead, 1);
    assert_eq!(
        queue.nack(retried[0].id, at(61)).unwrap(),
        NackOutcome::DeadLettered { attempts: 2 },
        "attempts made before the reopen count towards max_attempts"
    );
}

pub fn a_reopen_never_reuses_an_id(backend: &dyn Backend) {
    let (queue, reopen) = open_durable(backend, defaults());
    let first = queue.enqueue(entry("a", "a1", at(0))).unwrap();
    let second = queue.enqueue(entry("a", "a2", at(0))).unwrap();
    for pending in queue.take(10, at(0)).unwrap() {
        queue.ack(pending.id).unwrap();
    }
    let queue = reopen(queue);
    let third = queue.enqueue(entry("a", "a3", at(0))).unwrap();
    assert!(first < second && second < third, "{first} {second} {third}");
}

pub fn a_reopen_keeps_the_byte_count_and_the_bound(backend: &dyn Backend) {
    let first = entry("a", "a1", at(0));
    let options = QueueOptions {
        max_bytes: 2 * first.size(),
        full_policy: FullPolicy::Reject,
        ..defaults()
    };
    let (queue, reopen) = open_durable(backend, options);
    queue.enqueue(first.clone()).unwrap();
    queue.enqueue(entry("a", "a2", at(0))).unwrap();
    let queue = reopen(queue);
    assert_eq!(queue.stats().bytes, 2 * first.size());
    assert!(matches!(
        queue.enqueue(entry("a", "a3", at(0))),
        Err(Error::QueueFull { .. })
    ));
}
