//! The delivery loop: drain a [`Queue`] into a [`Sink`], ack only what the sink
//! confirmed, and schedule everything else by the retry policy.
//!
//! [`Delivery`] is the loop's body, driven by the caller's clock one step at a
//! time (tests and replays drive it deterministically); [`DeliveryWorker`] runs it
//! on a thread of its own with the wall clock.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::retry::{CircuitBreaker, Jitter, RetryPolicy, SendFailure};
use super::sink::{Delivered, Sink};
use crate::batch::DecodeLimits;
use crate::error::Result;
use crate::queue::{NackOutcome, Pending, Queue};
use crate::record::Timestamp;

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
}

impl Default for DeliveryOptions {
    /// The seed's backoff (1 s to 300 s), a breaker that opens after 5 failures in a
    /// row for 30 s, default decode limits, 1 s idle wait.
    fn default() -> Self {
        DeliveryOptions {
            retry: RetryPolicy::default(),
            breaker_open_after: 5,
            breaker_revive_after: Duration::from_secs(30),
            limits: DecodeLimits::default(),
            idle_wait: Duration::from_secs(1),
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
}

/// The delivery loop's body; see the [module docs](self).
pub struct Delivery {
    queue: Arc<dyn Queue>,
    sink: Box<dyn Sink>,
    options: DeliveryOptions,
    breaker: CircuitBreaker,
    jitter: Jitter,
    metrics: DeliveryMetrics,
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
        }
    }

    /// Counters so far.
    pub fn metrics(&self) -> &DeliveryMetrics {
        &self.metrics
    }

    /// Sends at most one batch: the oldest ready at `now`. Errors are the queue's
    /// own (a failed ack or nack); a sink's failures are outcomes, not errors.
    pub fn step(&mut self, now: Timestamp) -> Result<Step> {
        if !self.breaker.allows(now) {
            let until = self.breaker.open_until().unwrap_or(now);
            return Ok(Step::Paused { until });
        }
        let probing = self.breaker.open_until().is_some();
        let Some(pending) = self.queue.take(1, now)?.pop() else {
            return Ok(Step::Idle);
        };
        let batch = match pending.entry.to_batch(&self.options.limits) {
            Ok(batch) => batch,
            Err(error) => {
                return self.dead_letter(&pending, format!("unreadable queued batch: {error}"));
            }
        };
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

    fn dead_letter(&mut self, pending: &Pending, reason: String) -> Result<Step> {
        self.queue.dead_letter(pending.id)?;
        self.metrics.dead_lettered += 1;
        self.metrics.last_failure = Some(reason.clone());
        Ok(Step::DeadLettered { reason })
    }
}

/// State shared between a [`DeliveryWorker`] and its thread.
#[derive(Debug, Default)]
struct Shared {
    control: Mutex<Control>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct Control {
    stop: bool,
    notified: bool,
    metrics: DeliveryMetrics,
    /// The last queue error, when the loop had to stop.
    failed: Option<String>,
}

impl Shared {
    fn control(&self) -> MutexGuard<'_, Control> {
        self.control
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// [`Delivery`] on a thread of its own, with the wall clock.
///
/// It sends whenever something is ready; otherwise it waits until the breaker's
/// probe time, or for [`DeliveryOptions::idle_wait`] (a retry falls due within
/// that much of its time), or until [`notify`](Self::notify). On
/// [`shutdown`](Self::shutdown) finishes the send in progress and stops: what was
/// not sent stays queued for the next run.
#[derive(Debug)]
pub struct DeliveryWorker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl DeliveryWorker {
    /// Starts the loop on a new thread.
    pub fn spawn(delivery: Delivery) -> std::io::Result<DeliveryWorker> {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("edgepipe-delivery".into())
            .spawn({
                let shared = shared.clone();
                move || run(delivery, &shared)
            })?;
        Ok(DeliveryWorker {
            shared,
            thread: Some(thread),
        })
    }

    /// Wakes the loop: new entries were enqueued.
    pub fn notify(&self) {
        self.shared.control().notified = true;
        self.shared.wake.notify_all();
    }

    /// Counters so far.
    pub fn metrics(&self) -> DeliveryMetrics {
        self.shared.control().metrics.clone()
    }

    /// The queue error that stopped the loop, if one did.
    pub fn failure(&self) -> Option<String> {
        self.shared.control().failed.clone()
    }

    /// Stops after the send in progress and returns the final counters.
    pub fn shutdown(mut self) -> DeliveryMetrics {
        self.stop();
        self.metrics()
    }

    fn stop(&mut self) {
        self.shared.control().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // A panic in the sink ends the loop; the queue still holds what was not acked.
            let _ = thread.join();
        }
    }
}

impl Drop for DeliveryWorker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(mut delivery: Delivery, shared: &Shared) {
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
            Err(_) => None,
        };
        let mut control = shared.control();
        control.metrics = delivery.metrics().clone();
        if let Err(error) = step {
            control.failed = Some(error.message_with_sources());
            return;
        }
        if let Some(wait) = wait
            && !control.notified
            && !control.stop
        {
            control = shared
                .wake
                .wait_timeout_while(control, wait, |control| !control.notified && !control.stop)
                .unwrap_or_else(|poison| poison.into_inner())
                .0;
        }
        control.notified = false;
    }
}
