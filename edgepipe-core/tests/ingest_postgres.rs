//! The dedup ledger shared by ingest replicas, against a real PostgreSQL server
//! started for this test binary on loopback (`postgres_support`; needs
//! `apt-get install postgresql`). Each test has a database of its own, and its
//! "replicas" are receivers with a ledger connection each over one shared store,
//! as processes sharing a lake volume would be.
#![cfg(feature = "postgres")]

mod ingest_support;
mod postgres_support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use edgepipe_core::batch::{Codec, Compression};
use edgepipe_core::ingest::{
    CrashPoint, MemoryStore, Outcome, PgLedger, Receiver, ReceiverConfig, Retention,
};
use ingest_support::*;
use postgres_support::PgServer;

fn config() -> ReceiverConfig {
    ReceiverConfig::new([KEY])
}

/// A replica: a receiver with its own ledger connection, over the shared `store`.
fn replica(url: &str, store: &MemoryStore) -> Receiver {
    let ledger = PgLedger::connect(url, Retention::default()).unwrap();
    Receiver::with_ledger(
        config(),
        ledger,
        Box::new(store.clone()),
        Box::new(store.clone()),
    )
    .unwrap()
}

fn stored(batch_id: &str, accepted: u64, duplicate: u64) -> Outcome {
    Outcome::Stored {
        batch_id: batch_id.to_owned(),
        accepted,
        quarantined: 0,
        duplicate,
    }
}

fn duplicate(batch_id: &str) -> Outcome {
    Outcome::Duplicate {
        batch_id: batch_id.to_owned(),
    }
}

#[test]
fn a_batch_stored_by_one_replica_is_a_duplicate_at_the_other() {
    let url = PgServer::shared().database();
    let store = MemoryStore::default();
    let (a, b) = (replica(&url, &store), replica(&url, &store));
    let first = batch(
        "gw",
        &records("gw", 1, 0..10),
        Codec::Columnar,
        Compression::Lz4,
    );
    let id = first.envelope.batch_id.clone();
    assert_eq!(a.handle(&request(&first)), stored(&id, 10, 0));
    assert_eq!(b.handle(&request(&first)), duplicate(&id));
    assert_eq!(a.handle(&request(&first)), duplicate(&id));
    // A seed batch (no sequence ids) is known by its key alone.
    let seed = seed_request("seed-batch-1", &records("x", 0, 0..3));
    assert_eq!(b.handle(&seed).status(), 200);
    assert_eq!(a.handle(&seed), duplicate("seed-batch-1"));
    assert_eq!(store.all_records().len(), 13);
    // A re-batched retry at the other replica stores only what is new.
    let wider = batch(
        "gw",
        &records("gw", 1, 5..15),
        Codec::Json,
        Compression::SEED,
    );
    assert_eq!(
        b.handle(&request(&wider)),
        stored(&wider.envelope.batch_id, 5, 5)
    );
    let ids: Vec<String> = ids_once(&store.all_records())
        .into_iter()
        .filter(|id| id.starts_with("gw:"))
        .collect();
    assert_eq!(ids, expected_ids("gw", 1, 0..15));
}

#[test]
fn ranges_merge_across_gaps_and_extremes() {
    let url = PgServer::shared().database();
    let mut ledger = PgLedger::connect(&url, Retention::default()).unwrap();
    let commit = |ledger: &mut PgLedger, key: &str, ranges: &[(u64, u64)]| {
        let ranges: Vec<(String, u64, u64, u64)> = ranges
            .iter()
            .map(|&(first, last)| ("s".to_owned(), 3, first, last))
            .collect();
        let sources = BTreeSet::from(["s".to_owned()]);
        ledger
            .acquire(key, &sources, &mut |_| Ok(Vec::new()))
            .unwrap();
        ledger.commit(key, 1000, &ranges).unwrap();
        ledger.release().unwrap();
    };
    commit(&mut ledger, "k1", &[(0, 9)]);
    commit(&mut ledger, "k2", &[(20, 29)]);
    let ranges =
        |ledger: &mut PgLedger| ledger.stream("s", 3).unwrap().ranges().collect::<Vec<_>>();
    assert_eq!(ranges(&mut ledger), [(0, 9), (20, 29)]);
    // A replayed batch fills the gap exactly: one range again.
    commit(&mut ledger, "k3", &[(10, 19)]);
    assert_eq!(ranges(&mut ledger), [(0, 29)]);
    // Adjacent on both sides, overlapping, and both ends of u64 (the signed
    // column must keep their order).
    commit(
        &mut ledger,
        "k4",
        &[
            (30, 30),
            (25, 40),
            (u64::MAX - 1, u64::MAX),
            (1 << 63, 1 << 63),
        ],
    );
    assert_eq!(
        ranges(&mut ledger),
        [(0, 40), (1 << 63, 1 << 63), (u64::MAX - 1, u64::MAX)]
    );
    assert!(
        ledger.stream("s", 4).unwrap().is_empty(),
        "epochs are apart"
    );
    assert_eq!(ledger.batch_ids().unwrap(), 4);
}

#[test]
fn replicas_racing_the_same_batch_store_it_once() {
    let url = PgServer::shared().database();
    let store = MemoryStore::default();
    let replicas: Vec<Arc<Receiver>> = (0..2).map(|_| Arc::new(replica(&url, &store))).collect();
    for round in 0..10u64 {
        let b = batch(
            "race",
            &records("race", round, 0..20),
            Codec::Columnar,
            Compression::Lz4,
        );
        let request = Arc::new(request(&b));
        let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..6)
                .map(|thread| {
                    let replica = Arc::clone(&replicas[thread % 2]);
                    let request = Arc::clone(&request);
                    scope.spawn(move || replica.handle(&request))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let id = &b.envelope.batch_id;
        let stores = outcomes.iter().filter(|o| **o == stored(id, 20, 0)).count();
        assert_eq!(stores, 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| *o == stored(id, 20, 0) || *o == duplicate(id)),
            "{outcomes:?}"
        );
    }
    let mut expected: Vec<String> = (0..10)
        .flat_map(|round| expected_ids("race", round, 0..20))
        .collect();
    expected.sort();
    assert_eq!(ids_once(&store.all_records()), expected);
}

#[test]
fn overlapping_rebatched_batches_from_threads_store_each_record_once() {
    let url = PgServer::shared().database();
    let store = MemoryStore::default();
    let replicas: Vec<Arc<Receiver>> = (0..2).map(|_| Arc::new(replica(&url, &store))).collect();
    // Two sources; every thread cuts the same records into different, overlapping
    // batches (different ids), as re-batched retries are.
    let all: Vec<_> = ["s1", "s2"]
        .iter()
        .flat_map(|s| records(s, 0, 0..120))
        .collect();
    let accepted: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6usize)
            .map(|thread| {
                let replica = Arc::clone(&replicas[thread % 2]);
                let all = &all;
                scope.spawn(move || {
                    let size = 7 + 5 * thread;
                    let mut accepted = 0;
                    for start in (thread..all.len()).step_by(size) {
                        let part = &all[start..(start + size).min(all.len())];
                        let source = part[0].record_id.split(':').next().unwrap().to_owned();
                        let b = batch(&source, part, Codec::Json, Compression::Lz4);
                        match replica.handle(&request(&b)) {
                            Outcome::Stored { accepted: n, .. } => accepted += n,
                            Outcome::Duplicate { .. } => {}
                            other => panic!("{other:?}"),
                        }
                    }
                    accepted
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let ids = ids_once(&store.all_records());
    let mut expected: Vec<String> = expected_ids("s1", 0, 0..120);
    expected.extend(expected_ids("s2", 0, 0..120));
    // Thread 0 starts at record 0 and thread 1 at record 1: each stream is covered
    // from its start, except what no thread's cut reaches.
    let covered: BTreeSet<String> = ids.iter().cloned().collect();
    assert!(covered.iter().all(|id| expected.contains(id)));
    assert_eq!(
        accepted,
        ids.len() as u64,
        "accepted counts match the store"
    );
    assert_eq!(
        ids.len(),
        expected.len(),
        "thread 0 alone covers every record"
    );
}

#[test]
fn a_replica_dying_mid_batch_is_taken_over_by_the_other() {
    let url = PgServer::shared().database();
    for point in [
        CrashPoint::AfterBegin,
        CrashPoint::AfterStore,
        CrashPoint::AfterCommit,
    ] {
        let store = MemoryStore::default();
        let a = replica(&url, &store);
        let b = replica(&url, &store);
        let source = format!("crash{point:?}");
        let first = batch(
            &source,
            &records(&source, 0, 0..10),
            Codec::Columnar,
            Compression::Lz4,
        );
        a.crash_at(Some(point));
        assert_eq!(a.handle(&request(&first)).status(), 503, "{point:?}");
        // The dead replica's connection is closed: the other takes the batch over.
        let outcome = b.handle(&request(&first));
        let id = &first.envelope.batch_id;
        match point {
            CrashPoint::AfterBegin => assert_eq!(outcome, stored(id, 10, 0)),
            // Its files were written: reconciled as stored, the retry is a duplicate.
            CrashPoint::AfterStore | CrashPoint::AfterCommit => {
                assert_eq!(outcome, duplicate(id), "{point:?}")
            }
        }
        // A re-batched retry of the same records is refused record by record.
        let again = batch(
            &source,
            &records(&source, 0, 5..12),
            Codec::Json,
            Compression::SEED,
        );
        assert_eq!(
            b.handle(&request(&again)),
            stored(&again.envelope.batch_id, 2, 5),
            "{point:?}"
        );
        assert_eq!(
            ids_once(&store.all_records()),
            expected_ids(&source, 0, 0..12),
            "{point:?}"
        );
    }
    let mut ledger = PgLedger::connect(&url, Retention::default()).unwrap();
    assert_eq!(ledger.pending().unwrap(), [], "no pending row is left");
}

#[test]
fn a_rebatched_retry_after_a_death_reconciles_the_dead_batch_first() {
    let url = PgServer::shared().database();
    let store = MemoryStore::default();
    let a = replica(&url, &store);
    let b = replica(&url, &store);
    let first = batch(
        "gw",
        &records("gw", 0, 0..10),
        Codec::Columnar,
        Compression::Lz4,
    );
    a.crash_at(Some(CrashPoint::AfterStore));
    assert_eq!(a.handle(&request(&first)).status(), 503);
    // Another batch id, the same records and two more: the pending batch is found
    // through the source it shares, reconciled, and its records refused.
    let retry = batch(
        "gw",
        &records("gw", 0, 0..12),
        Codec::Json,
        Compression::SEED,
    );
    assert_ne!(retry.envelope.batch_id, first.envelope.batch_id);
    assert_eq!(
        b.handle(&request(&retry)),
        stored(&retry.envelope.batch_id, 2, 10)
    );
    assert_eq!(ids_once(&store.all_records()), expected_ids("gw", 0, 0..12));
}

#[test]
fn pending_rows_of_dead_replicas_are_reconciled_at_start_and_live_ones_are_left() {
    let url = PgServer::shared().database();
    let store = MemoryStore::default();
    let a = replica(&url, &store);
    let dead = batch(
        "dead",
        &records("dead", 0, 0..8),
        Codec::Columnar,
        Compression::Lz4,
    );
    a.crash_at(Some(CrashPoint::AfterStore));
    assert_eq!(a.handle(&request(&dead)).status(), 503);
    // Its connection is closed; PostgreSQL ends the session (and frees its
    // locks) on its own time, so wait for that before a start-up looks.
    PgServer::shared().end_other_sessions(&url);
    // A live writer: a ledger holding its locks with its pending row written.
    let mut live = PgLedger::connect(&url, Retention::default()).unwrap();
    let sources = BTreeSet::from(["live".to_owned()]);
    live.acquire("live-batch", &sources, &mut |_| Ok(Vec::new()))
        .unwrap();
    live.begin("live-batch", &sources, 1000).unwrap();

    let mut ledger = PgLedger::connect(&url, Retention::default()).unwrap();
    assert_eq!(ledger.pending().unwrap().len(), 2);
    let started = replica(&url, &store);
    let pending = ledger.pending().unwrap();
    assert_eq!(pending.len(), 1, "the dead batch is settled at start-up");
    assert_eq!(pending[0].key, "live-batch");
    assert_eq!(pending[0].sources, ["live"]);
    assert_eq!(
        ledger
            .stream("dead", 0)
            .unwrap()
            .ranges()
            .collect::<Vec<_>>(),
        [(0, 7)],
        "what the dead replica wrote is recorded as stored"
    );
    assert!(
        !ledger.has_batch(&dead.envelope.batch_id).unwrap(),
        "a reconciled key is not remembered (its files may be partial)"
    );
    // The live writer commits; its batch is then a duplicate everywhere.
    live.commit("live-batch", 1000, &[("live".into(), 0, 0, 3)])
        .unwrap();
    live.release().unwrap();
    assert_eq!(ledger.pending().unwrap(), []);
    assert!(ledger.has_batch("live-batch").unwrap());
    drop(started);
}

#[test]
fn a_lock_held_too_long_is_a_503_with_retry_after() {
    let url = PgServer::shared().database();
    let store = MemoryStore::default();
    let b = batch(
        "held",
        &records("held", 0, 0..4),
        Codec::Columnar,
        Compression::Lz4,
    );
    let key = b.envelope.batch_id.clone();
    let mut holder = PgLedger::connect(&url, Retention::default()).unwrap();
    holder
        .acquire(&key, &BTreeSet::new(), &mut |_| Ok(Vec::new()))
        .unwrap();
    let mut ledger = PgLedger::connect(&url, Retention::default()).unwrap();
    ledger.set_lock_timeout(Duration::from_millis(50));
    let waiting = Receiver::with_ledger(
        config(),
        ledger,
        Box::new(store.clone()),
        Box::new(store.clone()),
    )
    .unwrap();
    let outcome = waiting.handle(&request(&b));
    assert_eq!(outcome.status(), 503, "{outcome:?}");
    assert_eq!(outcome.retry_after(), Some(config().retry_after_seconds));
    assert!(outcome.body().contains("lock"), "{}", outcome.body());
    assert!(store.all_records().is_empty());
    // Once the holder lets go, the same request goes through.
    holder.release().unwrap();
    assert_eq!(waiting.handle(&request(&b)), stored(&key, 4, 0));
}

#[test]
fn batch_keys_age_out_by_time_and_count_and_ranges_stay() {
    let url = PgServer::shared().database();
    let retention = Retention {
        batch_id_seconds: 100,
        max_batch_ids: 2,
    };
    let mut ledger = PgLedger::connect(&url, retention).unwrap();
    let none = BTreeSet::new();
    for (key, at) in [("k1", 1000), ("k2", 1001), ("k3", 1002)] {
        ledger.acquire(key, &none, &mut |_| Ok(Vec::new())).unwrap();
        let ranges = [("s".to_owned(), 0, at, at)];
        ledger.commit(key, at, &ranges).unwrap();
        ledger.release().unwrap();
    }
    assert_eq!(ledger.prune(1002).unwrap(), 1, "count bound");
    assert!(!ledger.has_batch("k1").unwrap());
    assert!(ledger.has_batch("k2").unwrap() && ledger.has_batch("k3").unwrap());
    assert_eq!(ledger.prune(1102).unwrap(), 1, "age bound");
    assert!(!ledger.has_batch("k2").unwrap() && ledger.has_batch("k3").unwrap());
    assert_eq!(
        ledger.stream("s", 0).unwrap().ranges().collect::<Vec<_>>(),
        [(1000, 1002)],
        "ranges are kept"
    );
}
