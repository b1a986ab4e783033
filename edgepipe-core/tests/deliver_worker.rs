//! The delivery loop against a scripted sink, driven by a fake clock, and the
//! worker thread against the directory sink.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgepipe_core::Timestamp;
use edgepipe_core::batch::{Batch, BatchEncoder, Codec, Compression};
use edgepipe_core::deliver::{
    Delivered, Delivery, DeliveryOptions, DeliveryWorker, DirectorySink, Jitter, ReplayOrder,
    RetryPolicy, SendFailure, Sink, Step,
};
use edgepipe_core::queue::{Entry, MemoryQueue, Queue, QueueOptions};
use edgepipe_core::record::json::parse_jsonl;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000 + seconds).unwrap()
}

fn batch(source: &str, index: usize) -> Batch {
    batch_at(source, index, at(0))
}

fn batch_at(source: &str, index: usize, created_at: Timestamp) -> Batch {
    let line = format!(
        r#"{{"record_id":"{source}-{index}","device_id":"d1","timestamp":"2026-01-01T00:00:00Z","data_type":"sensors","payload":{{"t":{index}}}}}"#
    );
    let records: Vec<_> = parse_jsonl(line.as_bytes())
        .map(|(_, record)| record.unwrap())
        .collect();
    BatchEncoder::new(source, Codec::Json, Compression::None)
        .unwrap()
        .encode(&records, created_at)
        .unwrap()
}

/// A sink that answers from a script (confirming once the script runs out) and
/// tells the test which batch ids it was given.
struct ScriptedSink {
    script: Arc<Mutex<VecDeque<Result<Delivered, SendFailure>>>>,
    sent: Sender<String>,
}

impl Sink for ScriptedSink {
    fn describe(&self) -> String {
        "scripted".into()
    }

    fn send(&mut self, batch: &Batch) -> Result<Delivered, SendFailure> {
        let answer = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(Delivered::Stored));
        self.sent.send(batch.envelope.batch_id.clone()).unwrap();
        answer
    }
}

struct Harness {
    queue: Arc<MemoryQueue>,
    delivery: Delivery,
    sent: Receiver<String>,
    ids: Vec<String>,
}

fn harness(
    options: QueueOptions,
    delivery_options: DeliveryOptions,
    script: Vec<Result<Delivered, SendFailure>>,
    batches: &[Batch],
) -> Harness {
    let queue = Arc::new(MemoryQueue::new(options));
    let mut ids = Vec::new();
    for batch in batches {
        queue.enqueue(Entry::from_batch(batch)).unwrap();
        ids.push(batch.envelope.batch_id.clone());
    }
    let (sender, sent) = mpsc::channel();
    let sink = ScriptedSink {
        script: Arc::new(Mutex::new(script.into())),
        sent: sender,
    };
    let delivery = Delivery::with_jitter(
        queue.clone(),
        Box::new(sink),
        delivery_options,
        Jitter::seeded(1),
    );
    Harness {
        queue,
        delivery,
        sent,
        ids,
    }
}

fn options() -> DeliveryOptions {
    DeliveryOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(10),
        },
        breaker_open_after: 3,
        breaker_revive_after: Duration::from_secs(60),
        ..DeliveryOptions::default()
    }
}

#[test]
fn confirmed_batches_are_acked_in_order_and_counted() {
    let batches: Vec<Batch> = (0..3).map(|i| batch("gw", i)).collect();
    let mut h = harness(
        QueueOptions::default(),
        options(),
        vec![Ok(Delivered::Stored), Ok(Delivered::Duplicate)],
        &batches,
    );
    assert_eq!(
        h.delivery.step(at(0)).unwrap(),
        Step::Sent {
            delivered: Delivered::Stored
        }
    );
    assert_eq!(
        h.delivery.step(at(0)).unwrap(),
        Step::Sent {
            delivered: Delivered::Duplicate
        }
    );
    assert!(matches!(h.delivery.step(at(0)).unwrap(), Step::Sent { .. }));
    assert_eq!(h.delivery.step(at(0)).unwrap(), Step::Idle);
    let sent: Vec<String> = h.sent.try_iter().collect();
    assert_eq!(sent, h.ids);
    let metrics = h.delivery.metrics();
    assert_eq!(
        (
            metrics.batches_sent,
            metrics.records_sent,
            metrics.duplicates
        ),
        (3, 3, 1)
    );
    assert_eq!(
        metrics.bytes_sent,
        batches.iter().map(|b| b.payload.len() as u64).sum::<u64>()
    );
    assert_eq!(h.queue.stats().pending + h.queue.stats().in_flight, 0);
}

#[test]
fn a_retryable_failure_waits_for_its_backoff_and_holds_back_its_source() {
    let batches = [batch("gw", 0), batch("gw", 1)];
    let mut h = harness(
        QueueOptions::default(),
        options(),
        vec![Err(SendFailure::retryable("HTTP 503"))],
        &batches,
    );
    let Step::Retry { retry_at, reason } = h.delivery.step(at(0)).unwrap() else {
        panic!("expected a retry");
    };
    assert_eq!(reason, "HTTP 503");
    assert!(retry_at >= at(0) && retry_at <= at(10));
    // Before its time nothing of that source goes, not even the later batch.
    if retry_at > at(0) {
        assert_eq!(
            h.delivery
                .step(Timestamp::from_unix_nanos(retry_at.unix_nanos() - 1))
                .unwrap(),
            Step::Idle
        );
    }
    assert!(matches!(
        h.delivery.step(retry_at).unwrap(),
        Step::Sent { .. }
    ));
    assert!(matches!(
        h.delivery.step(retry_at).unwrap(),
        Step::Sent { .. }
    ));
    let sent: Vec<String> = h.sent.try_iter().collect();
    assert_eq!(sent, [h.ids[0].clone(), h.ids[0].clone(), h.ids[1].clone()]);
    assert_eq!(h.delivery.metrics().retries, 1);
}

#[test]
fn retry_after_from_the_receiver_is_a_floor() {
    let mut h = harness(
        QueueOptions::default(),
        options(),
        vec![Err(SendFailure::Retryable {
            reason: "HTTP 429".into(),
            retry_after: Some(Duration::from_secs(120)),
        })],
        &[batch("gw", 0)],
    );
    let Step::Retry { retry_at, .. } = h.delivery.step(at(0)).unwrap() else {
        panic!("expected a retry");
    };
    assert_eq!(retry_at, at(120));
}

#[test]
fn a_permanent_failure_dead_letters_at_once_and_the_next_batch_goes_on() {
    let batches = [batch("gw", 0), batch("gw", 1)];
    let mut h = harness(
        QueueOptions::default(),
        options(),
        vec![Err(SendFailure::permanent("HTTP 401: bad key"))],
        &batches,
    );
    assert_eq!(
        h.delivery.step(at(0)).unwrap(),
        Step::DeadLettered {
            reason: "HTTP 401: bad key".into()
        }
    );
    assert!(matches!(h.delivery.step(at(0)).unwrap(), Step::Sent { .. }));
    let dead = h.queue.dead_letters(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].entry.batch_id, h.ids[0]);
    assert_eq!(dead[0].attempts, 1);
}

#[test]
fn attempts_run_out_into_the_dead_letters() {
    let queue_options = QueueOptions {
        max_attempts: 2,
        ..QueueOptions::default()
    };
    let mut delivery_options = options();
    delivery_options.breaker_open_after = 100;
    let mut h = harness(
        queue_options,
        delivery_options,
        vec![
            Err(SendFailure::retryable("HTTP 500")),
            Err(SendFailure::retryable("HTTP 500")),
        ],
        &[batch("gw", 0)],
    );
    let Step::Retry { retry_at, .. } = h.delivery.step(at(0)).unwrap() else {
        panic!("expected a retry");
    };
    assert_eq!(
        h.delivery.step(retry_at).unwrap(),
        Step::DeadLettered {
            reason: "HTTP 500 (after 2 attempts)".into()
        }
    );
    assert_eq!(h.queue.stats().dead, 1);
    assert_eq!(h.delivery.metrics().dead_lettered, 1);
}

#[test]
fn an_outage_opens_the_breaker_and_failed_probes_cost_no_attempts() {
    let sources: Vec<Batch> = (0..4).map(|i| batch(&format!("gw{i}"), i)).collect();
    let unreachable = || Err(SendFailure::unreachable("connection refused"));
    let mut h = harness(
        QueueOptions::default(),
        options(),
        vec![
            unreachable(),
            unreachable(),
            unreachable(),
            unreachable(),
            unreachable(),
        ],
        &sources,
    );
    for _ in 0..3 {
        assert!(matches!(
            h.delivery.step(at(0)).unwrap(),
            Step::Retry { .. }
        ));
    }
    assert_eq!(
        h.delivery.step(at(59)).unwrap(),
        Step::Paused { until: at(60) }
    );
    // Probes at 60 and 120 fail: the fourth batch goes back uncounted.
    assert!(matches!(
        h.delivery.step(at(60)).unwrap(),
        Step::ProbeFailed { .. }
    ));
    assert_eq!(
        h.delivery.step(at(61)).unwrap(),
        Step::Paused { until: at(120) }
    );
    assert!(matches!(
        h.delivery.step(at(120)).unwrap(),
        Step::ProbeFailed { .. }
    ));
    // The endpoint is back: the probe succeeds and everything drains.
    let mut sent = 0;
    while let Step::Sent { .. } = h.delivery.step(at(180)).unwrap() {
        sent += 1;
    }
    assert_eq!(sent, 4);
    assert_eq!(h.delivery.metrics().probes_failed, 2);
    assert_eq!(h.delivery.metrics().retries, 3);
    assert_eq!(h.queue.stats().dead, 0);
}

#[test]
fn an_unreadable_queued_batch_is_dead_lettered() {
    let queue = Arc::new(MemoryQueue::new(QueueOptions::default()));
    queue
        .enqueue(Entry {
            source_id: "gw".into(),
            batch_id: "junk".into(),
            created_at: at(0),
            payload: b"not a batch".to_vec(),
        })
        .unwrap();
    let (sender, _sent) = mpsc::channel();
    let sink = ScriptedSink {
        script: Arc::default(),
        sent: sender,
    };
    let mut delivery = Delivery::new(queue.clone(), Box::new(sink), options());
    assert!(matches!(
        delivery.step(at(0)).unwrap(),
        Step::DeadLettered { reason } if reason.starts_with("unreadable queued batch")
    ));
    assert_eq!(queue.stats().dead, 1);
}

/// Forwards to the directory sink and reports each confirmed batch, so the test
/// waits on the channel rather than on time.
struct ReportingSink {
    inner: DirectorySink,
    confirmed: Sender<String>,
}

impl Sink for ReportingSink {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn send(&mut self, batch: &Batch) -> Result<Delivered, SendFailure> {
        let delivered = self.inner.send(batch)?;
        self.confirmed
            .send(batch.envelope.batch_id.clone())
            .unwrap();
        Ok(delivered)
    }
}

#[test]
fn the_worker_thread_drains_the_queue_into_the_sink_and_stops_cleanly() {
    let root = tempfile::tempdir().unwrap();
    let queue = Arc::new(MemoryQueue::new(QueueOptions::default()));
    let (confirmed, reports) = mpsc::channel();
    let sink = ReportingSink {
        inner: DirectorySink::new(root.path()).unwrap(),
        confirmed,
    };
    let worker = DeliveryWorker::spawn(Delivery::new(
        queue.clone(),
        Box::new(sink),
        DeliveryOptions::default(),
    ))
    .unwrap();
    let batches: Vec<Batch> = (0..20).map(|i| batch("gw", i)).collect();
    for batch in &batches {
        queue.enqueue(Entry::from_batch(batch)).unwrap();
        worker.notify();
    }
    let mut seen = Vec::new();
    for _ in 0..batches.len() {
        // The bound only turns a hang into a failure; it does not time anything.
        seen.push(reports.recv_timeout(Duration::from_secs(60)).unwrap());
    }
    let expected: Vec<String> = batches
        .iter()
        .map(|b| b.envelope.batch_id.clone())
        .collect();
    assert_eq!(seen, expected);
    // Every batch was reported confirmed above; the loop publishes its counters
    // right after: waiting for them needs no poll.
    let waited = worker.wait_for(Duration::from_secs(60), |metrics| {
        metrics.batches_sent == 20
    });
    assert_eq!(waited.batches_sent, 20);
    // A condition that never holds returns at the timeout with the counters.
    let never = worker.wait_for(Duration::from_millis(1), |metrics| {
        metrics.batches_sent > 20
    });
    assert_eq!(never.batches_sent, 20);
    let metrics = worker.shutdown();
    assert_eq!(metrics.batches_sent, 20);
    assert_eq!(queue.stats().pending + queue.stats().in_flight, 0);
    assert_eq!(
        std::fs::read_dir(root.path().join("gw")).unwrap().count(),
        20
    );
}

// --- Paced backlog replay ------------------------------------------------------
//
// Backlog: batches created at 0, replayed at 100 (older than `backlog_after`,
// 60 s); live: created at 100. The clock is the test's: no sleeps.

const RATE: u64 = 1000;

fn paced(order: ReplayOrder) -> DeliveryOptions {
    DeliveryOptions {
        backlog_bytes_per_second: Some(RATE),
        replay_order: order,
        ..options()
    }
}

/// When a backlog batch of `batch`'s payload, sent at `from`, frees the budget.
fn after(from: Timestamp, batch: &Batch) -> Timestamp {
    let nanos = batch.payload.len() as i64 * 1_000_000_000 / RATE as i64;
    Timestamp::from_unix_nanos(from.unix_nanos() + nanos)
}

fn sent_ids(h: &Harness) -> Vec<String> {
    h.sent.try_iter().collect()
}

fn id(batch: &Batch) -> String {
    batch.envelope.batch_id.clone()
}

#[test]
fn live_first_serves_live_sources_before_a_paced_backlog() {
    let old: Vec<Batch> = (0..3).map(|i| batch_at("old", i, at(0))).collect();
    let new: Vec<Batch> = (0..2).map(|i| batch_at("new", i, at(100))).collect();
    let queued: Vec<Batch> = old.iter().chain(&new).cloned().collect();
    let mut h = harness(
        QueueOptions::default(),
        paced(ReplayOrder::LiveFirst),
        vec![],
        &queued,
    );
    let now = at(100);
    for _ in 0..3 {
        assert!(matches!(h.delivery.step(now).unwrap(), Step::Sent { .. }));
    }
    // Live first although older batches are queued; then one backlog batch,
    // after which the backlog waits for its budget.
    assert_eq!(sent_ids(&h), [id(&new[0]), id(&new[1]), id(&old[0])]);
    let free = after(now, &old[0]);
    assert_eq!(h.delivery.step(now).unwrap(), Step::Paced { until: free });
    // A live batch enqueued meanwhile goes at once.
    let late = batch_at("new", 2, at(100));
    h.queue.enqueue(Entry::from_batch(&late)).unwrap();
    assert!(matches!(h.delivery.step(now).unwrap(), Step::Sent { .. }));
    assert_eq!(sent_ids(&h), [id(&late)]);
    // Just before its time the backlog still waits; at its time the next goes.
    let before = Timestamp::from_unix_nanos(free.unix_nanos() - 1);
    assert_eq!(
        h.delivery.step(before).unwrap(),
        Step::Paced { until: free }
    );
    assert!(matches!(h.delivery.step(free).unwrap(), Step::Sent { .. }));
    assert_eq!(
        h.delivery.step(free).unwrap(),
        Step::Paced {
            until: after(free, &old[1])
        }
    );
    assert!(matches!(
        h.delivery.step(after(free, &old[1])).unwrap(),
        Step::Sent { .. }
    ));
    assert_eq!(sent_ids(&h), [id(&old[1]), id(&old[2])]);
    let metrics = h.delivery.metrics();
    assert_eq!(metrics.backlog_batches_sent, 3);
    assert_eq!(
        metrics.backlog_bytes_sent,
        old.iter().map(|b| b.payload.len() as u64).sum::<u64>()
    );
    assert_eq!(metrics.batches_sent, 6);
    assert_eq!(h.queue.stats().pending + h.queue.stats().in_flight, 0);
}

#[test]
fn oldest_first_sends_backlog_within_its_budget_and_lets_live_by_otherwise() {
    let old: Vec<Batch> = (0..2).map(|i| batch_at("old", i, at(0))).collect();
    let new: Vec<Batch> = (0..2).map(|i| batch_at("new", i, at(100))).collect();
    let queued: Vec<Batch> = old.iter().chain(&new).cloned().collect();
    let mut h = harness(
        QueueOptions::default(),
        paced(ReplayOrder::OldestFirst),
        vec![],
        &queued,
    );
    let now = at(100);
    for _ in 0..3 {
        assert!(matches!(h.delivery.step(now).unwrap(), Step::Sent { .. }));
    }
    assert_eq!(sent_ids(&h), [id(&old[0]), id(&new[0]), id(&new[1])]);
    let free = after(now, &old[0]);
    assert_eq!(h.delivery.step(now).unwrap(), Step::Paced { until: free });
    assert!(matches!(h.delivery.step(free).unwrap(), Step::Sent { .. }));
    assert_eq!(sent_ids(&h), [id(&old[1])]);
    assert_eq!(h.delivery.step(free).unwrap(), Step::Idle);
}

#[test]
fn per_source_order_wins_over_live_first() {
    // One source: its live batch sits behind its own backlog and waits with it.
    let batches = [
        batch_at("gw", 0, at(0)),
        batch_at("gw", 1, at(0)),
        batch_at("gw", 2, at(100)),
    ];
    let mut h = harness(
        QueueOptions::default(),
        paced(ReplayOrder::LiveFirst),
        vec![],
        &batches,
    );
    let mut now = at(100);
    let mut paced_steps = 0;
    while h.queue.stats().pending > 0 {
        match h.delivery.step(now).unwrap() {
            Step::Sent { .. } => {}
            Step::Paced { until } => {
                paced_steps += 1;
                now = until;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(sent_ids(&h), batches.iter().map(id).collect::<Vec<_>>());
    assert_eq!(paced_steps, 1, "the second backlog batch waited for budget");
    assert_eq!(h.delivery.metrics().backlog_batches_sent, 2);
}

#[test]
fn without_a_rate_the_backlog_is_not_held_and_live_still_goes_first() {
    let old: Vec<Batch> = (0..3).map(|i| batch_at("old", i, at(0))).collect();
    let new = batch_at("new", 0, at(100));
    let queued: Vec<Batch> = old.iter().chain([&new]).cloned().collect();
    let mut h = harness(QueueOptions::default(), options(), vec![], &queued);
    for _ in 0..4 {
        assert!(matches!(
            h.delivery.step(at(100)).unwrap(),
            Step::Sent { .. }
        ));
    }
    assert_eq!(
        sent_ids(&h),
        [id(&new), id(&old[0]), id(&old[1]), id(&old[2])]
    );
    assert_eq!(h.delivery.step(at(100)).unwrap(), Step::Idle);
}

#[test]
fn a_failed_backlog_send_spends_budget_too() {
    // Bytes on the wire count whether or not the receiver confirmed them.
    let old: Vec<Batch> = (0..2)
        .map(|i| batch_at(&format!("old{i}"), i, at(0)))
        .collect();
    let mut h = harness(
        QueueOptions::default(),
        paced(ReplayOrder::LiveFirst),
        vec![Err(SendFailure::retryable("HTTP 503"))],
        &old,
    );
    assert!(matches!(
        h.delivery.step(at(100)).unwrap(),
        Step::Retry { .. }
    ));
    assert_eq!(
        h.delivery.step(at(100)).unwrap(),
        Step::Paced {
            until: after(at(100), &old[0])
        }
    );
}

// --- Lanes ----------------------------------------------------------------------

#[test]
fn lanes_share_the_backlog_budget() {
    let old: Vec<Batch> = (0..2)
        .map(|i| batch_at(&format!("old{i}"), i, at(0)))
        .collect();
    let mut h = harness(
        QueueOptions::default(),
        paced(ReplayOrder::LiveFirst),
        vec![],
        &old,
    );
    let (sender, second_sent) = mpsc::channel();
    let mut second = h.delivery.lane(Box::new(ScriptedSink {
        script: Arc::default(),
        sent: sender,
    }));
    let now = at(100);
    assert!(matches!(h.delivery.step(now).unwrap(), Step::Sent { .. }));
    // The other lane sees the budget the first one spent.
    let free = after(now, &old[0]);
    assert_eq!(second.step(now).unwrap(), Step::Paced { until: free });
    assert!(matches!(second.step(free).unwrap(), Step::Sent { .. }));
    assert_eq!(sent_ids(&h), [id(&old[0])]);
    assert_eq!(second_sent.try_iter().collect::<Vec<_>>(), [id(&old[1])]);
    // Each lane counts its own sends.
    assert_eq!(h.delivery.metrics().batches_sent, 1);
    assert_eq!(second.metrics().batches_sent, 1);
}

/// Holds each lane's first send until `lanes` sends are in progress at once, so
/// the test sees the lanes overlap instead of inferring it from a clock.
struct Rendezvous {
    lanes: usize,
    arrived: Mutex<usize>,
    all_here: std::sync::Condvar,
}

impl Rendezvous {
    /// True once `lanes` sends have arrived; false if the bound passed first
    /// (the bound only turns a hang into a failure).
    fn meet(&self) -> bool {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.all_here.notify_all();
        let (arrived, _) = self
            .all_here
            .wait_timeout_while(arrived, Duration::from_secs(60), |arrived| {
                *arrived < self.lanes
            })
            .unwrap();
        *arrived >= self.lanes
    }
}

struct LaneSink {
    rendezvous: Arc<Rendezvous>,
    met: Option<bool>,
    sent: Sender<String>,
}

impl Sink for LaneSink {
    fn describe(&self) -> String {
        "lane".into()
    }

    fn send(&mut self, batch: &Batch) -> Result<Delivered, SendFailure> {
        if self.met.is_none() {
            self.met = Some(self.rendezvous.meet());
            if self.met == Some(false) {
                return Err(SendFailure::permanent("the other lanes never sent"));
            }
        }
        self.sent.send(batch.envelope.batch_id.clone()).unwrap();
        Ok(Delivered::Stored)
    }
}

#[test]
fn lanes_send_at_once_and_deliver_every_batch_once() {
    const LANES: usize = 3;
    let queue = Arc::new(MemoryQueue::new(QueueOptions::default()));
    let batches: Vec<Batch> = (0..60).map(|i| batch(&format!("gw{}", i % 4), i)).collect();
    for batch in &batches {
        queue.enqueue(Entry::from_batch(batch)).unwrap();
    }
    let rendezvous = Arc::new(Rendezvous {
        lanes: LANES,
        arrived: Mutex::new(0),
        all_here: std::sync::Condvar::new(),
    });
    let (sent, reports) = mpsc::channel();
    let sink = || -> Box<dyn Sink> {
        Box::new(LaneSink {
            rendezvous: rendezvous.clone(),
            met: None,
            sent: sent.clone(),
        })
    };
    let first = Delivery::new(queue.clone(), sink(), DeliveryOptions::default());
    let mut lanes: Vec<Delivery> = (1..LANES).map(|_| first.lane(sink())).collect();
    lanes.insert(0, first);
    let worker = DeliveryWorker::spawn_lanes(lanes).unwrap();
    let metrics = worker.wait_for(Duration::from_secs(60), |metrics| {
        metrics.batches_sent + metrics.dead_lettered == batches.len() as u64
    });
    assert_eq!(metrics.dead_lettered, 0, "{:?}", metrics.last_failure);
    assert_eq!(metrics.batches_sent, batches.len() as u64);
    assert_eq!(
        metrics.records_sent,
        batches.len() as u64,
        "one record per batch, summed over the lanes"
    );
    let final_metrics = worker.shutdown();
    assert_eq!(final_metrics.batches_sent, batches.len() as u64);
    let mut seen: Vec<String> = reports.try_iter().collect();
    seen.sort();
    let mut expected: Vec<String> = batches.iter().map(id).collect();
    expected.sort();
    assert_eq!(seen, expected, "every batch sent exactly once");
    assert_eq!(queue.stats().pending + queue.stats().in_flight, 0);
}

#[test]
fn a_worker_needs_a_lane() {
    let error = DeliveryWorker::spawn_lanes(Vec::new()).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}
