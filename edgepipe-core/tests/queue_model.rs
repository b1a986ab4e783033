//! Model-based test of the queue backends: random sequences of enqueue, take,
//! ack, nack, purge, process kill (reopen), power cut (crash: everything not
//! synced is dropped) and power cut during a sync (a torn last write), run
//! against a deliberately naive in-memory model.
//!
//! The same model checks the log with `Written` durability through kills only,
//! and `MemoryQueue` without crash steps.
//!
//! Cases: 1,000 per test by default; `EDGEPIPE_QUEUE_CASES=N` for more.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use edgepipe_core::queue::log::{Fault, FsOp};
use edgepipe_core::queue::{
    Durability, Entry, EntryStatus, FullPolicy, LogOptions, MemoryQueue, NackOutcome, Queue,
    QueueOptions, SegmentedLog, SimFs,
};
use edgepipe_core::{Error, Timestamp};
use proptest::prelude::*;

const MAX_ATTEMPTS: u32 = 3;
const SOURCES: [&str; 3] = ["gw-a", "gw-b", "gw-c"];

#[derive(Clone, Debug)]
enum Op {
    Enqueue {
        source: usize,
        len: usize,
    },
    EnqueueAll {
        source: usize,
        len: usize,
        count: usize,
    },
    Take {
        max: usize,
    },
    Ack {
        pick: usize,
    },
    AckUnknown,
    Nack {
        pick: usize,
        delay: i64,
    },
    Tick,
    Purge,
    /// The process dies (SIGKILL): nothing handed to the OS is lost.
    Reopen,
    /// Power cut: unsynced bytes and directory entries are dropped, or a prefix
    /// of them is kept (`tear` picks how much).
    Crash {
        tear: Option<u16>,
    },
    /// Power cut while an enqueue's fdatasync is in progress: the enqueue fails
    /// and the crash tears its write.
    CrashDuringSync {
        source: usize,
        len: usize,
        tear: u16,
    },
}

/// `crashes`: kills (reopen) and, with `power_cuts`, power cuts too.
fn op(crashes: bool, power_cuts: bool) -> impl Strategy<Value = Op> {
    let source = 0..SOURCES.len();
    let len = 0usize..400;
    let common = prop_oneof![
        6 => (source.clone(), len.clone()).prop_map(|(source, len)| Op::Enqueue { source, len }),
        2 => (source.clone(), len.clone(), 1usize..4)
            .prop_map(|(source, len, count)| Op::EnqueueAll { source, len, count }),
        5 => (1usize..5).prop_map(|max| Op::Take { max }),
        4 => any::<usize>().prop_map(|pick| Op::Ack { pick }),
        1 => Just(Op::AckUnknown),
        3 => (any::<usize>(), 0i64..3).prop_map(|(pick, delay)| Op::Nack { pick, delay }),
        2 => Just(Op::Tick),
        1 => Just(Op::Purge),
    ];
    if !crashes {
        return common.boxed();
    }
    if !power_cuts {
        return prop_oneof![20 => common, 2 => Just(Op::Reopen)].boxed();
    }
    prop_oneof![
        20 => common,
        1 => Just(Op::Reopen),
        1 => proptest::option::of(any::<u16>()).prop_map(|tear| Op::Crash { tear }),
        1 => (source, len, any::<u16>())
            .prop_map(|(source, len, tear)| Op::CrashDuringSync { source, len, tear }),
    ]
    .boxed()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Ready,
    Retry(i64),
    InFlight,
    Dead,
}

#[derive(Clone, Debug)]
struct Held {
    entry: Entry,
    attempts: u32,
    state: State,
}

/// The naive model: a sorted map of held entries and the rules written out plainly.
#[derive(Debug)]
struct Model {
    options: QueueOptions,
    held: BTreeMap<u64, Held>,
    /// Entries that left (acked, dropped, purged): a power cut may bring them back.
    gone: BTreeMap<u64, Held>,
    /// Entries whose enqueue failed: they may turn up after a crash, or not.
    unacknowledged: BTreeMap<String, Entry>,
    now: i64,
    counter: u64,
}

fn ts(seconds: i64) -> Timestamp {
    Timestamp::from_unix_nanos(1_700_000_000_000_000_000 + seconds * 1_000_000_000)
}

impl Model {
    fn entry(&mut self, source: usize, len: usize) -> Entry {
        self.counter += 1;
        let seed = self.counter as u8;
        Entry {
            source_id: SOURCES[source].to_owned(),
            batch_id: format!("batch-{}", self.counter),
            created_at: ts(self.now),
            payload: (0..len)
                .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
                .collect(),
        }
    }

    fn bytes(&self) -> u64 {
        self.held.values().map(|h| h.entry.size()).sum()
    }

    /// What enqueueing `size` more bytes does: the ids to drop, or full.
    fn make_room(&self, size: u64) -> Option<Vec<u64>> {
        let limit = self.options.max_bytes;
        let bytes = self.bytes();
        if limit == 0 || bytes + size <= limit {
            return Some(Vec::new());
        }
        if size > limit || self.options.full_policy == FullPolicy::Reject {
            return None;
        }
        let mut freed = 0;
        let mut victims = Vec::new();
        for (&id, held) in &self.held {
            if bytes + size - freed <= limit {
                break;
            }
            if held.state != State::InFlight {
                freed += held.entry.size();
                victims.push(id);
            }
        }
        (bytes + size - freed <= limit).then_some(victims)
    }

    fn take(&mut self, max: usize) -> Vec<(u64, u32, Entry)> {
        let mut held_back = HashSet::new();
        let mut out = Vec::new();
        for (&id, held) in &self.held {
            if out.len() >= max {
                break;
            }
            if matches!(held.state, State::InFlight | State::Dead)
                || held_back.contains(&held.entry.source_id)
            {
                continue;
            }
            if let State::Retry(at) = held.state
                && at > self.now
            {
                held_back.insert(held.entry.source_id.clone());
                continue;
            }
            out.push((id, held.attempts, held.entry.clone()));
        }
        for (id, _, _) in &out {
            self.held.get_mut(id).unwrap().state = State::InFlight;
        }
        out
    }

    fn in_flight(&self) -> Vec<u64> {
        self.held
            .iter()
            .filter(|(_, h)| h.state == State::InFlight)
            .map(|(&id, _)| id)
            .collect()
    }

    fn remove(&mut self, id: u64) {
        let held = self.held.remove(&id).unwrap();
        self.gone.insert(id, held);
    }

    fn reopened(&mut self) {
        for held in self.held.values_mut() {
            if held.state == State::InFlight {
                held.state = State::Ready;
            }
        }
    }
}

struct Harness {
    fs: SimFs,
    options: LogOptions,
}

impl Harness {
    fn open(&self) -> SegmentedLog {
        SegmentedLog::open_with(
            Arc::new(self.fs.clone()),
            Path::new("q"),
            self.options.clone(),
        )
        .expect("opening never fails without I/O faults")
    }
}

/// Checks the reopened log against the model. After a clean reopen (`power_cut`
/// false) it must match exactly; after a power cut, entries acknowledged gone may
/// come back (their removal was not synced yet), attempts may go back, and failed
/// enqueues may turn up; the model adopts what the log shows within those bounds.
fn reconcile(log: &SegmentedLog, model: &mut Model, power_cut: bool) {
    assert_eq!(
        log.stats().lost,
        0,
        "no damage, nothing may be counted lost: {}",
        log.recovery()
    );
    let listed: BTreeMap<u64, _> = log.entries().into_iter().map(|e| (e.id, e)).collect();
    for (id, held) in &model.held {
        let info = listed
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged entry {id} lost; log has {:?}", listed.keys()));
        assert_eq!(info.batch_id, held.entry.batch_id);
        assert_eq!(info.size, held.entry.size());
    }
    let mut adopted = BTreeMap::new();
    for (&id, info) in &listed {
        let (entry, model_attempts) = if let Some(held) = model.held.get(&id) {
            (held.entry.clone(), held.attempts)
        } else if let Some(gone) = model.gone.get(&id) {
            assert!(power_cut, "entry {id} came back after a clean reopen");
            (gone.entry.clone(), gone.attempts)
        } else if let Some(entry) = model.unacknowledged.get(&info.batch_id) {
            assert!(
                power_cut,
                "an unacknowledged entry appeared without a crash"
            );
            (entry.clone(), 0)
        } else {
            panic!("entry {id} ({}) was never enqueued", info.batch_id);
        };
        assert_eq!(info.batch_id, entry.batch_id);
        if power_cut {
            assert!(info.attempts <= model_attempts, "attempts of {id} went up");
        } else {
            assert_eq!(info.attempts, model_attempts, "attempts of {id}");
        }
        let state = match info.status {
            EntryStatus::Ready | EntryStatus::InFlight => State::Ready,
            EntryStatus::Retry(at) => {
                let at = (at.unix_nanos() - ts(0).unix_nanos()).div_euclid(1_000_000_000);
                if at <= model.now {
                    State::Ready
                } else {
                    State::Retry(at)
                }
            }
            EntryStatus::Dead => State::Dead,
        };
        if !power_cut {
            let expected = match model.held[&id].state {
                State::Retry(at) if at <= model.now => State::Ready,
                other => other,
            };
            assert_eq!(state, expected, "state of {id}");
        }
        adopted.insert(
            id,
            Held {
                entry,
                attempts: info.attempts,
                state,
            },
        );
    }
    for id in adopted.keys() {
        model.gone.remove(id);
    }
    model.held = adopted;
    model.unacknowledged.clear();
}

fn full(result: &Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(result, Err(Error::QueueFull { .. }))
}

fn run(ops: &[Op], options: QueueOptions, durable: Option<Durability>, segment_bytes: u64) {
    let harness = Harness {
        fs: SimFs::new(),
        options: LogOptions {
            queue: options.clone(),
            sync: durable.unwrap_or(Durability::Synced),
            segment_bytes,
            state_rewrite_bytes: 300,
        },
    };
    let durable = durable.is_some();
    let mut queue: Box<dyn Queue> = if durable {
        Box::new(harness.open())
    } else {
        Box::new(MemoryQueue::new(options.clone()))
    };
    let mut model = Model {
        options,
        held: BTreeMap::new(),
        gone: BTreeMap::new(),
        unacknowledged: BTreeMap::new(),
        now: 0,
        counter: 0,
    };
    for op in ops {
        match *op {
            Op::Enqueue { source, len }
            | Op::EnqueueAll {
                source,
                len,
                count: 1,
            } => {
                let entry = model.entry(source, len);
                let expected = model.make_room(entry.size());
                let result = queue.enqueue(entry.clone());
                match expected {
                    None => assert!(full(&result), "{result:?}"),
                    Some(victims) => {
                        let id = result.expect("enqueue");
                        assert!(
                            model
                                .held
                                .keys()
                                .chain(model.gone.keys())
                                .all(|&old| old < id)
                        );
                        for victim in victims {
                            model.remove(victim);
                        }
                        model.held.insert(
                            id,
                            Held {
                                entry,
                                attempts: 0,
                                state: State::Ready,
                            },
                        );
                    }
                }
            }
            Op::EnqueueAll { source, len, count } => {
                let entries: Vec<Entry> = (0..count).map(|_| model.entry(source, len)).collect();
                let size = entries.iter().map(Entry::size).sum();
                let expected = model.make_room(size);
                let result = queue.enqueue_all(entries.clone());
                match expected {
                    None => assert!(full(&result), "{result:?}"),
                    Some(victims) => {
                        let ids = result.expect("enqueue_all");
                        assert!(ids.windows(2).all(|w| w[0] < w[1]));
                        for victim in victims {
                            model.remove(victim);
                        }
                        for (id, entry) in ids.into_iter().zip(entries) {
                            model.held.insert(
                                id,
                                Held {
                                    entry,
                                    attempts: 0,
                                    state: State::Ready,
                                },
                            );
                        }
                    }
                }
            }
            Op::Take { max } => {
                let expected = model.take(max);
                let taken: Vec<(u64, u32, Entry)> = queue
                    .take(max, ts(model.now))
                    .expect("take")
                    .into_iter()
                    .map(|p| (p.id, p.attempts, p.entry))
                    .collect();
                assert_eq!(taken, expected);
            }
            Op::Ack { pick } => {
                let in_flight = model.in_flight();
                if in_flight.is_empty() {
                    continue;
                }
                let id = in_flight[pick % in_flight.len()];
                queue.ack(id).expect("ack");
                model.remove(id);
            }
            Op::AckUnknown => {
                let id = model.gone.keys().next().copied().unwrap_or(u64::MAX);
                assert!(matches!(queue.ack(id), Err(Error::UnknownEntry { .. })));
            }
            Op::Nack { pick, delay } => {
                let in_flight = model.in_flight();
                if in_flight.is_empty() {
                    continue;
                }
                let id = in_flight[pick % in_flight.len()];
                let outcome = queue.nack(id, ts(model.now + delay)).expect("nack");
                let held = model.held.get_mut(&id).unwrap();
                held.attempts += 1;
                if held.attempts >= MAX_ATTEMPTS {
                    held.state = State::Dead;
                    assert_eq!(
                        outcome,
                        NackOutcome::DeadLettered {
                            attempts: held.attempts
                        }
                    );
                } else {
                    held.state = State::Retry(model.now + delay);
                    assert_eq!(
                        outcome,
                        NackOutcome::Retry {
                            attempts: held.attempts,
                            retry_at: ts(model.now + delay)
                        }
                    );
                }
            }
            Op::Tick => model.now += 1,
            Op::Purge => {
                let dead: Vec<u64> = model
                    .held
                    .iter()
                    .filter(|(_, h)| h.state == State::Dead)
                    .map(|(&id, _)| id)
                    .collect();
                let listed: Vec<u64> = queue
                    .dead_letters(100)
                    .expect("dead")
                    .iter()
                    .map(|p| p.id)
                    .collect();
                assert_eq!(listed, dead);
                assert_eq!(
                    queue.purge_dead_letters().expect("purge"),
                    dead.len() as u64
                );
                for id in dead {
                    model.remove(id);
                }
            }
            Op::Reopen => {
                drop(queue);
                let log = harness.open();
                model.reopened();
                reconcile(&log, &mut model, false);
                queue = Box::new(log);
            }
            Op::Crash { tear } => {
                match tear {
                    None => harness.fs.crash(),
                    Some(tear) => harness
                        .fs
                        .crash_tearing(|_, unsynced| tear as usize % (unsynced + 1)),
                }
                drop(queue);
                let log = harness.open();
                model.reopened();
                reconcile(&log, &mut model, true);
                queue = Box::new(log);
            }
            Op::CrashDuringSync { source, len, tear } => {
                let entry = model.entry(source, len);
                if model.make_room(entry.size()) != Some(Vec::new()) {
                    continue;
                }
                harness.fs.inject(Fault {
                    op: FsOp::Sync,
                    nth: 1,
                    persistent: true,
                });
                let result = queue.enqueue(entry.clone());
                assert!(matches!(result, Err(Error::Io { .. })), "{result:?}");
                harness
                    .fs
                    .crash_tearing(|_, unsynced| tear as usize % (unsynced + 1));
                harness.fs.heal();
                model.unacknowledged.insert(entry.batch_id.clone(), entry);
                drop(queue);
                let log = harness.open();
                model.reopened();
                reconcile(&log, &mut model, true);
                queue = Box::new(log);
            }
        }
        let stats = queue.stats();
        assert_eq!(stats.bytes, model.bytes());
        assert_eq!(
            stats.pending + stats.in_flight + stats.dead,
            model.held.len() as u64
        );
    }
    if !durable {
        return;
    }
    // Everything still held comes out intact after a reopen (which releases what is in flight).
    drop(queue);
    let log = harness.open();
    model.reopened();
    reconcile(&log, &mut model, false);
    model.now += 10;
    let expected = model.take(usize::MAX);
    let drained: Vec<(u64, u32, Entry)> = log
        .take(usize::MAX, ts(model.now))
        .expect("take")
        .into_iter()
        .map(|p| (p.id, p.attempts, p.entry))
        .collect();
    assert_eq!(drained, expected);
    let report = SegmentedLog::verify_with(&harness.fs, Path::new("q")).unwrap();
    assert_eq!(report.lost, 0, "{report}");
}

fn cases() -> u32 {
    std::env::var("EDGEPIPE_QUEUE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

fn queue_options() -> impl Strategy<Value = QueueOptions> {
    prop_oneof![
        Just((0u64, FullPolicy::Reject)),
        Just((3000, FullPolicy::Reject)),
        Just((3000, FullPolicy::DropOldest)),
    ]
    .prop_map(|(max_bytes, full_policy)| QueueOptions {
        max_bytes,
        full_policy,
        max_attempts: MAX_ATTEMPTS,
        ttl: None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn segmented_log_matches_the_model_through_crashes(
        options in queue_options(),
        segment_bytes in prop_oneof![Just(600u64), Just(4096)],
        ops in proptest::collection::vec(op(true, true), 1..80),
    ) {
        run(&ops, options, Some(Durability::Synced), segment_bytes);
    }

    /// `Written` promises survival of a process kill, not of a power cut.
    #[test]
    fn written_log_matches_the_model_through_kills(
        options in queue_options(),
        ops in proptest::collection::vec(op(true, false), 1..80),
    ) {
        run(&ops, options, Some(Durability::Written), 600);
    }

    #[test]
    fn memory_queue_matches_the_model(
        options in queue_options(),
        ops in proptest::collection::vec(op(false, false), 1..80),
    ) {
        run(&ops, options, None, 0);
    }
}
