//! The delivery loop: drain a [`Queue`] into a [`Sink`], ack only what the sink
//! confirmed, and schedule everything else by the retry policy.
//!
//! [`Delivery`] is the loop's body, driven by the caller's clock one step at a
//! time (tests and replays drive it deterministically); [`DeliveryWorker`] runs it
//! on a thread of its own with the wall clock.
//!
//! After an outage the queue holds a *backlog*: batches older than
//! [`DeliveryOptions::backlog_after`]. Its replay can be paced
//! ([`DeliveryOptions::backlog_bytes_per_second`]) so that it does not take the
//! whole link, and [`ReplayOrder`] says whether *live* batches or the backlog go
//! first. Per-source order always wins: only each source's next batch is ever
//! sent, so within one source older goes first, whatever the order says.
//!
//! One loop keeps one batch in flight, so a sink's round trip bounds it. Several
//! *lanes* ([`Delivery::lane`], [`DeliveryWorker::spawn_lanes`]) drain the same
//! queue at once, each with its own sink (its own connection) and circuit
//! breaker, sharing the backlog's byte budget. The price is order: two lanes may
//! carry consecutive batches of one source, and a retried batch can land after
//! its successor. edgepipe's ingest server deduplicates by batch id and by
//! sequence *ranges*, so arrival order does not matter to it; a sink whose
//! consumers need each source in order (Kafka partitions, for instance) keeps
//! one lane.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::retry::{CircuitBreaker, Jitter, RetryPolicy, SendFailure};
use super::sink::{Delivered, Sink};
use crate::batch::DecodeLimits;
use crate::error::Result;
use crate::queue::{NackOutcome, Pending, Queue};
use crate::record::Timestamp;

/// Which goes first when live batches and backlog are both ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplayOrder {
    /// Sources whose next batch is live are served first, unpaced; the backlog
    /// goes when no live batch is ready, within its byte budget. The default:
    /// fresh readings are what dashboards and alarms wait for.
    #[default]
    LiveFirst,
    /// The queue's order, oldest first, within the backlog's byte budget; while
    /// the backlog waits for its budget, live batches go.
    OldestFirst,
}

/// How the delivery loop behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// Waits between attempts of one batch.
    pub retry: RetryPolicy,
    /// Consecutive retryable failures after which the endpoint is left alone.
    pub breaker_open_after: u32,
    /// How long it is left alone before one probe.
    pub breaker_revive_after: Duration,
    /// Limits applied when reading a queued batch back.
    pub limits: DecodeLimits,
    /// How long the worker thread waits for new entries when the queue has nothing
    /// ready and no retry is due sooner (a producer can wake it with
    /// [`DeliveryWorker::notify`]).
    pub idle_wait: Duration,
    /// A batch whose `created_at` is at least this old when it is sent is
    /// *backlog*; a younger one is *live*.
    pub backlog_after: Duration,
    /// Bytes per second (batch payloads, as on the wire) the backlog may use;
    /// `None` sends it as fast as the sink takes it. Live batches are never paced.
    pub backlog_bytes_per_second: Option<u64>,
    /// Whether live batches or the backlog go first.
    pub replay_order: ReplayOrder,
    /// How many sources' next batches are looked at when the oldest ready batch
    /// is backlog (each is read from the queue, so this bounds the work per step).
    pub replay_lookahead: usize,
}

impl Default for DeliveryOptions {
    /// The seed's backoff (1 s to 300 s), a breaker that opens after 5 failures in a
    /// row for 30 s, default decode limits, 1 s idle wait; batches older than
    /// 60 s are backlog, unpaced, live first, 64 sources looked at.
    fn default() -> Self {
        DeliveryOptions {
            retry: RetryPolicy::default(),
            breaker_open_after: 5,
            breaker_revive_after: Duration::from_secs(30),
            limits: DecodeLimits::default(),
            idle_wait: Duration::from_secs(1),
            backlog_after: Duration::from_secs(60),
            backlog_bytes_per_second: None,
            replay_order: ReplayOrder::LiveFirst,
            replay_lookahead: 64,
        }
    }
}

/// Counters of a delivery loop.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeliveryMetrics {
    /// Batches the sink confirmed (stored or duplicate).
    pub batches_sent: u64,
    /// Records in those batches (from their envelopes).
    pub records_sent: u64,
    /// Payload bytes of those batches, as on the wire.
    pub bytes_sent: u64,
    /// Confirmed batches the receiver already held.
    pub duplicates: u64,
    /// Failed attempts that were scheduled again.
    pub retries: u64,
    /// Probes of an unreachable endpoint handed back without counting an attempt.
    pub probes_failed: u64,
    /// Batches dead-lettered (attempts exhausted, a permanent failure, or unreadable).
    pub dead_lettered: u64,
    /// The last failure, for a status line.
    pub last_failure: Option<String>,
    /// Total time spent in the sink's `send`, confirmed or not.
    pub send_time: Duration,
    /// The longest single send.
    pub max_send_time: Duration,
    /// Confirmed batches that were backlog when sent (included in `batches_sent`).
    pub backlog_batches_sent: u64,
    /// Payload bytes of those.
    pub backlog_bytes_sent: u64,
}

/// What one [`Delivery::step`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A batch was confirmed and acked.
    Sent {
        /// Whether the receiver already had it.
        delivered: Delivered,
    },
    /// A send failed and the batch waits for its next attempt.
    Retry {
        /// When the batch is next handed out.
        retry_at: Timestamp,
        /// Why it failed.
        reason: String,
    },
    /// The breaker's probe found the endpoint unreachable; the batch went back to
    /// the queue uncounted.
    ProbeFailed {
        /// Why it failed.
        reason: String,
    },
    /// The batch was dead-lettered.
    DeadLettered {
        /// Why.
        reason: String,
    },
    /// Nothing was ready at `now`.
    Idle,
    /// The breaker is open: nothing is sent before `until`.
    Paused {
        /// When the next probe may go.
        until: Timestamp,
    },
    /// Only backlog is ready and its byte budget is spent: no backlog batch is
    /// sent before `until` (a live batch enqueued meanwhile goes at once).
    Paced {
        /// When the backlog may go again.
        until: Timestamp,
    },
}

/// The batch a step sends, or why it sends none.
enum Choice {
    Send { pending: Pending, backlog: bool },
    Idle,
    Paced { until: Timestamp },
}

/// The delivery loop's body; see the [module docs](self).
pub struct Delivery {
    queue: Arc<dyn Queue>,
    sink: Box<dyn Sink>,
    options: DeliveryOptions,
    breaker: CircuitBreaker,
    jitter: Jitter,
    metrics: DeliveryMetrics,
    /// When the backlog's byte budget allows its next batch (pacing as a virtual
    /// clock: each backlog send moves it by its bytes at the configured rate);
    /// shared by every lane of one queue, so lanes do not multiply the budget.
    backlog_free_at: Arc<Mutex<Option<Timestamp>>>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Delivery")
            .field("sink", &self.sink.describe())
            .field("options", &self.options)
            .field("breaker", &self.breaker)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A loop from `queue` into `sink`, with jitter seeded from the OS.
    pub fn new(queue: Arc<dyn Queue>, sink: Box<dyn Sink>, options: DeliveryOptions) -> Self {
        Delivery::with_jitter(queue, sink, options, Jitter::from_entropy())
    }

    /// The same with a given jitter generator (deterministic tests and replays).
    pub fn with_jitter(
        queue: Arc<dyn Queue>,
        sink: Box<dyn Sink>,
        options: DeliveryOptions,
        jitter: Jitter,
    ) -> Self {
        let breaker = CircuitBreaker::new(options.breaker_open_after, options.breaker_revive_after);
        Delivery {
            queue,
            sink,
            options,
            breaker,
            jitter,
            metrics: DeliveryMetrics::default(),
            backlog_free_at: Arc::default(),
        }
    }

    /// Another lane over the same queue with the same options: it sends through
    /// `sink` (a connection of its own) while this one waits for its sink, and
    /// shares this one's backlog budget. Its counters and breaker are its own;
    /// [`DeliveryWorker::spawn_lanes`] runs lanes together and sums their counters.
    /// Lanes trade per-source arrival order for throughput (see the
    /// [module docs](self)).
    pub fn lane(&self, sink: Box<dyn Sink>) -> Delivery {
        let mut lane = Delivery::new(Arc::clone(&self.queue), sink, self.options.clone());
        lane.backlog_free_at = Arc::clone(&self.backlog_free_at);
        lane
    }

    /// Counters so far.
    pub fn metrics(&self) -> &DeliveryMetrics {
        &self.metrics
    }

    /// Sends at most one batch: the oldest ready at `now`, unless it is backlog
    /// and [`ReplayOrder`] or the backlog's byte budget puts another source's
    /// next batch first. Errors are the queue's own (a failed ack or nack); a
    /// sink's failures are outcomes, not errors.
    pub fn step(&mut self, now: Timestamp) -> Result<Step> {
        if !self.breaker.allows(now) {
            let until = self.breaker.open_until().unwrap_or(now);
            return Ok(Step::Paused { until });
        }
        let probing = self.breaker.open_until().is_some();
        let (pending, backlog) = match self.choose(now)? {
            Choice::Send { pending, backlog } => (pending, backlog),
            Choice::Idle => return Ok(Step::Idle),
            Choice::Paced { until } => return Ok(Step::Paced { until }),
        };
        let batch = match pending.entry.to_batch(&self.options.limits) {
            Ok(batch) => batch,
            Err(error) => {
                return self.dead_letter(&pending, format!("unreadable queued batch: {error}"));
            }
        };
        if backlog {
            self.charge_backlog(now, batch.payload.len() as u64);
        }
        let started = Instant::now();
        let outcome = self.sink.send(&batch);
        let elapsed = started.elapsed();
        self.metrics.send_time += elapsed;
        self.metrics.max_send_time = self.metrics.max_send_time.max(elapsed);
        match outcome {
            Ok(delivered) => {
                self.queue.ack(pending.id)?;
                self.breaker.record_success();
                self.metrics.batches_sent += 1;
                self.metrics.records_sent += batch.envelope.record_count;
                self.metrics.bytes_sent += batch.payload.len() as u64;
                if delivered == Delivered::Duplicate {
                    self.metrics.duplicates += 1;
                }
                if backlog {
                    self.metrics.backlog_batches_sent += 1;
                    self.metrics.backlog_bytes_sent += batch.payload.len() as u64;
                }
                Ok(Step::Sent { delivered })
            }
            Err(SendFailure::Permanent { reason }) => {
                // The endpoint answered: it is up, only this batch is refused.
                self.breaker.record_success();
                self.dead_letter(&pending, reason)
            }
            Err(SendFailure::Unreachable { reason }) if probing => {
                self.breaker.record_failure(now);
                self.queue.release(pending.id)?;
                self.metrics.probes_failed += 1;
                self.metrics.last_failure = Some(reason.clone());
                Ok(Step::ProbeFailed { reason })
            }
            Err(failure) => {
                self.breaker.record_failure(now);
                let retry_after = match &failure {
                    SendFailure::Retryable { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let reason = failure.reason().to_owned();
                self.metrics.last_failure = Some(reason.clone());
                let attempts = pending.attempts.saturating_add(1);
                let retry_at =
                    self.options
                        .retry
                        .retry_at(now, attempts, retry_after, &mut self.jitter);
                match self.queue.nack(pending.id, retry_at)? {
                    NackOutcome::Retry { retry_at, .. } => {
                        self.metrics.retries += 1;
                        Ok(Step::Retry { retry_at, reason })
                    }
                    NackOutcome::DeadLettered { attempts } => {
                        self.metrics.dead_lettered += 1;
                        Ok(Step::DeadLettered {
                            reason: format!("{reason} (after {attempts} attempts)"),
                        })
                    }
                }
            }
        }
    }

    /// Picks the batch to send at `now`. The common case (nothing is backlog, or
    /// the backlog may go) costs one `take(1)`; only when the oldest ready batch
    /// is backlog that must not go first does it look at the next batch of up
    /// to [`DeliveryOptions::replay_lookahead`] sources, and hand back the rest.
    fn choose(&mut self, now: Timestamp) -> Result<Choice> {
        let Some(oldest) = self.queue.take(1, now)?.pop() else {
            return Ok(Choice::Idle);
        };
        let oldest_is_backlog = self.is_backlog(&oldest, now);
        let budget = self.backlog_budget_allows(now);
        if !oldest_is_backlog || (budget && self.options.replay_order == ReplayOrder::OldestFirst) {
            return Ok(Choice::Send {
                pending: oldest,
                backlog: oldest_is_backlog,
            });
        }
        self.queue.release(oldest.id)?;
        let mut heads = self
            .queue
            .take_heads(self.options.replay_lookahead.max(1), now)?;
        let first_live = heads.iter().position(|head| !self.is_backlog(head, now));
        let pick = match self.options.replay_order {
            ReplayOrder::LiveFirst => first_live.or(budget.then_some(0)),
            ReplayOrder::OldestFirst => {
                if budget {
                    Some(0)
                } else {
                    first_live
                }
            }
        };
        let chosen = match pick {
            Some(index) if index < heads.len() => Some(heads.remove(index)),
            _ => None,
        };
        for other in &heads {
            self.queue.release(other.id)?;
        }
        Ok(match chosen {
            Some(pending) => {
                let backlog = self.is_backlog(&pending, now);
                Choice::Send { pending, backlog }
            }
            None if heads.is_empty() => Choice::Idle,
            None => Choice::Paced {
                until: self.backlog_free_at().unwrap_or(now),
            },
        })
    }

    fn is_backlog(&self, pending: &Pending, now: Timestamp) -> bool {
        now.duration_since(pending.entry.created_at) >= self.options.backlog_after
    }

    fn backlog_free_at(&self) -> Option<Timestamp> {
        *lock(&self.backlog_free_at)
    }

    fn backlog_budget_allows(&self, now: Timestamp) -> bool {
        match (
            self.options.backlog_bytes_per_second,
            self.backlog_free_at(),
        ) {
            (Some(_), Some(free_at)) => free_at <= now,
            _ => true,
        }
    }

    /// Moves the backlog's virtual clock by `bytes` at the configured rate (from
    /// `now` when it had fallen behind: unused budget is not saved up).
    fn charge_backlog(&mut self, now: Timestamp, bytes: u64) {
        let Some(rate) = self.options.backlog_bytes_per_second else {
            return;
        };
        let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(rate.max(1));
        let cost = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        let mut free_at = lock(&self.backlog_free_at);
        let start = free_at.map_or(now, |free_at| free_at.max(now));
        *free_at = Some(start.saturating_add(cost));
    }

    fn dead_letter(&mut self, pending: &Pending, reason: String) -> Result<Step> {
        self.queue.dead_letter(pending.id)?;
        self.metrics.dead_lettered += 1;
        self.metrics.last_failure = Some(reason.clone());
        Ok(Step::DeadLettered { reason })
    }
}

/// Locks `mutex`, taking the data of a poisoned one: every value behind these
/// locks is whole between statements, so a panicked lane leaves nothing half-done.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl DeliveryMetrics {
    /// Adds `lane`'s counters to these (the longest send is the longer of the
    /// two; the last failure is the worker's to track).
    fn add(&mut self, lane: &DeliveryMetrics) {
        // Destructured so that a new counter cannot be left out of the sum.
        let DeliveryMetrics {
            batches_sent,
            records_sent,
            bytes_sent,
            duplicates,
            retries,
            probes_failed,
            dead_lettered,
            last_failure: _,
            send_time,
            max_send_time,
            backlog_batches_sent,
            backlog_bytes_sent,
        } = lane;
        self.batches_sent += batches_sent;
        self.records_sent += records_sent;
        self.bytes_sent += bytes_sent;
        self.duplicates += duplicates;
        self.retries += retries;
        self.probes_failed += probes_failed;
        self.dead_lettered += dead_lettered;
        self.send_time += *send_time;
        self.max_send_time = self.max_send_time.max(*max_send_time);
        self.backlog_batches_sent += backlog_batches_sent;
        self.backlog_bytes_sent += backlog_bytes_sent;
    }
}

/// State shared between a [`DeliveryWorker`] and its lanes' threads.
#[derive(Debug, Default)]
struct Shared {
    control: Mutex<Control>,
    wake: Condvar,
    /// Notified each time a lane publishes its counters or stops.
    updated: Condvar,
}

#[derive(Debug, Default)]
struct Control {
    stop: bool,
    /// Per lane: new entries were announced since it last looked.
    notified: Vec<bool>,
    /// Per lane: its counters as last published.
    lanes: Vec<DeliveryMetrics>,
    /// The newest failure of any lane.
    last_failure: Option<String>,
    /// The first queue error, which stopped every lane.
    failed: Option<String>,
    /// Lanes whose loop has not returned yet.
    running: usize,
}

impl Control {
    /// Every lane's counters summed.
    fn metrics(&self) -> DeliveryMetrics {
        let mut total = DeliveryMetrics::default();
        for lane in &self.lanes {
            total.add(lane);
        }
        total.last_failure.clone_from(&self.last_failure);
        total
    }
}

impl Shared {
    fn control(&self) -> MutexGuard<'_, Control> {
        lock(&self.control)
    }
}

/// [`Delivery`] on a thread of its own with the wall clock, or several lanes of
/// one queue, each on its own thread ([`spawn_lanes`](Self::spawn_lanes)).
///
/// A lane sends whenever something is ready; otherwise it waits until its
/// breaker's probe time, or for [`DeliveryOptions::idle_wait`] (a retry falls due
/// within that much of its time), or until [`notify`](Self::notify). On
/// [`shutdown`](Self::shutdown) each lane finishes the send in progress and
/// stops: what was not sent stays queued for the next run.
#[derive(Debug)]
pub struct DeliveryWorker {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl DeliveryWorker {
    /// Starts the loop on a new thread.
    pub fn spawn(delivery: Delivery) -> std::io::Result<DeliveryWorker> {
        DeliveryWorker::spawn_lanes(vec![delivery])
    }

    /// Starts each lane ([`Delivery::lane`]) on a thread of its own: up to
    /// `lanes.len()` batches in flight at once. The counters are the lanes'
    /// sums; a queue error in one lane stops them all.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use edgepipe_core::batch::{BatchEncoder, Codec, Compression};
    /// use edgepipe_core::deliver::{Delivery, DeliveryOptions, DeliveryWorker, DirectorySink};
    /// use edgepipe_core::queue::{Entry, MemoryQueue, Queue, QueueOptions};
    /// use edgepipe_core::record::json::parse_jsonl;
    /// use edgepipe_core::Timestamp;
    ///
    /// let queue = Arc::new(MemoryQueue::new(QueueOptions::default()));
    /// let encoder = BatchEncoder::new("gateway-1", Codec::Json, Compression::None)?;
    /// for reading in 0..10 {
    ///     let line = format!(
    ///         r#"{{"record_id":"r{reading}","device_id":"d1","timestamp":"2026-01-01T00:00:00Z","data_type":"sensors","payload":{{"t":{reading}}}}}"#
    ///     );
    ///     let records: Vec<_> = parse_jsonl(line.as_bytes()).map(|(_, r)| r.unwrap()).collect();
    ///     queue.enqueue(Entry::from_batch(&encoder.encode(&records, Timestamp::UNIX_EPOCH)?))?;
    /// }
    /// let exports = tempfile::tempdir().unwrap();
    /// let first = Delivery::new(
    ///     queue.clone(),
    ///     Box::new(DirectorySink::new(exports.path())?),
    ///     DeliveryOptions::default(),
    /// );
    /// let second = first.lane(Box::new(DirectorySink::new(exports.path())?));
    /// let worker = DeliveryWorker::spawn_lanes(vec![first, second])?;
    /// let metrics = worker.wait_for(Duration::from_secs(60), |m| m.batches_sent == 10);
    /// assert_eq!(metrics.batches_sent, 10);
    /// worker.shutdown();
    /// assert_eq!(queue.stats().pending + queue.stats().in_flight, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn_lanes(lanes: Vec<Delivery>) -> std::io::Result<DeliveryWorker> {
        if lanes.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a delivery worker needs at least one lane",
            ));
        }
        let shared = Arc::new(Shared::default());
        {
            let mut control = shared.control();
            control.notified = vec![false; lanes.len()];
            control.lanes = vec![DeliveryMetrics::default(); lanes.len()];
        }
        let mut worker = DeliveryWorker {
            shared,
            threads: Vec::with_capacity(lanes.len()),
        };
        for (index, delivery) in lanes.into_iter().enumerate() {
            let shared = Arc::clone(&worker.shared);
            shared.control().running += 1;
            let spawned = std::thread::Builder::new()
                .name(format!("edgepipe-delivery-{index}"))
                .spawn(move || run(delivery, &shared, index));
            match spawned {
                Ok(thread) => worker.threads.push(thread),
                Err(error) => {
                    worker.shared.control().running -= 1;
                    // Dropping the worker stops the lanes already started.
                    return Err(error);
                }
            }
        }
        Ok(worker)
    }

    /// Wakes every lane: new entries were enqueued.
    pub fn notify(&self) {
        let mut control = self.shared.control();
        control.notified.iter_mut().for_each(|flag| *flag = true);
        drop(control);
        self.shared.wake.notify_all();
    }

    /// Counters so far, summed over the lanes.
    pub fn metrics(&self) -> DeliveryMetrics {
        self.shared.control().metrics()
    }

    /// The queue error that stopped the loop, if one did.
    pub fn failure(&self) -> Option<String> {
        self.shared.control().failed.clone()
    }

    /// Waits until `done` holds for the counters (checked each time a lane
    /// updates them), the loop has stopped on a queue error, or `timeout` has
    /// passed; returns the counters then. A caller that must know its batches
    /// were confirmed (a shutdown that drains first, a test) waits on this instead
    /// of polling [`metrics`](Self::metrics).
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&DeliveryMetrics) -> bool,
    ) -> DeliveryMetrics {
        let control = self.shared.control();
        let (control, _) = self
            .shared
            .updated
            .wait_timeout_while(control, timeout, |control| {
                !done(&control.metrics()) && control.failed.is_none() && control.running > 0
            })
            .unwrap_or_else(|poison| poison.into_inner());
        control.metrics()
    }

    /// Stops after the sends in progress and returns the final counters.
    pub fn shutdown(mut self) -> DeliveryMetrics {
        self.stop();
        self.metrics()
    }

    fn stop(&mut self) {
        self.shared.control().stop = true;
        self.shared.wake.notify_all();
        for thread in self.threads.drain(..) {
            // A panic in a sink ends its lane; the queue still holds what was not acked.
            let _ = thread.join();
        }
    }
}

impl Drop for DeliveryWorker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(delivery: Delivery, shared: &Shared, lane: usize) {
    run_steps(delivery, shared, lane);
    shared.control().running -= 1;
    shared.updated.notify_all();
}

fn run_steps(mut delivery: Delivery, shared: &Shared, lane: usize) {
    loop {
        if shared.control().stop {
            return;
        }
        let now = Timestamp::now();
        let step = delivery.step(now);
        let wait = match &step {
            Ok(Step::Sent { .. } | Step::Retry { .. } | Step::DeadLettered { .. }) => None,
            Ok(Step::ProbeFailed { .. } | Step::Idle) => Some(delivery.options.idle_wait),
            Ok(Step::Paused { until }) => Some(until.duration_since(now)),
            // A live batch may arrive before then: notify() wakes the loop early.
            Ok(Step::Paced { until }) => Some(until.duration_since(now)),
            Err(_) => None,
        };
        let mut control = shared.control();
        let metrics = delivery.metrics();
        if metrics.last_failure != control.lanes[lane].last_failure {
            control.last_failure.clone_from(&metrics.last_failure);
        }
        control.lanes[lane] = metrics.clone();
        shared.updated.notify_all();
        if let Err(error) = step {
            control.failed = Some(error.message_with_sources());
            // One queue is shared: the other lanes would meet the same error.
            control.stop = true;
            shared.wake.notify_all();
            return;
        }
        if let Some(wait) = wait
            && !control.notified[lane]
            && !control.stop
        {
            control = shared
                .wake
                .wait_timeout_while(control, wait, |control| {
                    !control.notified[lane] && !control.stop
                })
                .unwrap_or_else(|poison| poison.into_inner())
                .0;
        }
        control.notified[lane] = false;
    }
}
