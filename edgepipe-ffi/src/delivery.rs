//! `edgepipe_delivery` (cargo feature `delivery`): the core's delivery worker on a
//! background thread, draining a queue into the HTTP or the MQTT sink.

use std::ffi::c_char;
use std::time::Duration;

use edgepipe_core::deliver::{
    Delivery, DeliveryMetrics, DeliveryOptions, DeliveryWorker, HttpSink, HttpSinkOptions,
    MqttOptions, MqttSink, RetryPolicy, Sink,
};

use crate::buffer::edgepipe_buffer;
use crate::error::{Failure, edgepipe_status};
use crate::ffi::{self, Out};
use crate::panic;
use crate::queue::edgepipe_queue;

/// How the delivery loop retries and waits. Start from
/// `edgepipe_delivery_options_default`; a NULL pointer means the defaults.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct edgepipe_delivery_options {
    /// Ceiling of the first retry's wait, in milliseconds (default 1000).
    pub retry_base_millis: u64,
    /// Longest wait between attempts, in milliseconds (default 300000).
    pub retry_max_millis: u64,
    /// Consecutive failures after which the endpoint is left alone (default 5).
    pub breaker_open_after: u32,
    /// How long it is left alone before one probe, in milliseconds (default 30000).
    pub breaker_revive_after_millis: u64,
    /// Longest wait for new entries when nothing is ready, in milliseconds
    /// (default 1000); `edgepipe_delivery_notify` ends it early.
    pub idle_wait_millis: u64,
    /// A whole send (HTTP exchange, or MQTT publish and PUBACK) must finish within
    /// this, in milliseconds (default 60000 for HTTP, 30000 for MQTT; 0 keeps the sink's).
    pub request_timeout_millis: u64,
}

impl Default for edgepipe_delivery_options {
    fn default() -> Self {
        let options = DeliveryOptions::default();
        edgepipe_delivery_options {
            retry_base_millis: millis(options.retry.base_delay),
            retry_max_millis: millis(options.retry.max_delay),
            breaker_open_after: options.breaker_open_after,
            breaker_revive_after_millis: millis(options.breaker_revive_after),
            idle_wait_millis: millis(options.idle_wait),
            request_timeout_millis: 0,
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl edgepipe_delivery_options {
    fn core(&self) -> DeliveryOptions {
        DeliveryOptions {
            retry: RetryPolicy {
                base_delay: Duration::from_millis(self.retry_base_millis),
                max_delay: Duration::from_millis(self.retry_max_millis),
            },
            breaker_open_after: self.breaker_open_after,
            breaker_revive_after: Duration::from_millis(self.breaker_revive_after_millis),
            idle_wait: Duration::from_millis(self.idle_wait_millis),
            ..DeliveryOptions::default()
        }
    }

    fn request_timeout(&self) -> Option<Duration> {
        (self.request_timeout_millis != 0)
            .then(|| Duration::from_millis(self.request_timeout_millis))
    }
}

/// A delivery worker: a thread that takes batches from a queue, sends them to a
/// sink, acks what the sink confirmed and schedules the rest by the retry policy
/// (at least once; batch ids let the receiver store each record once).
///
/// Made by `edgepipe_delivery_start_http` or `_start_mqtt`, stopped by
/// `edgepipe_delivery_stop` (which finishes the send in progress; what was not sent
/// stays queued) and released by `edgepipe_delivery_free` (which stops it first).
/// The worker holds its own reference to the queue.
///
/// Thread safety: every call but `_stop` and `_free` takes
/// `const edgepipe_delivery *` and may run on several threads at once.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct edgepipe_delivery {
    worker: Option<DeliveryWorker>,
    /// The counters when it was stopped.
    stopped: Option<DeliveryMetrics>,
}

/// Counters of a delivery worker.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default)]
pub struct edgepipe_delivery_counters {
    /// Batches the sink confirmed (stored, or already held by the receiver).
    pub batches_sent: u64,
    /// Records in those batches.
    pub records_sent: u64,
    /// Payload bytes of those batches, as on the wire.
    pub bytes_sent: u64,
    /// Confirmed batches the receiver already held.
    pub duplicates: u64,
    /// Failed attempts scheduled again.
    pub retries: u64,
    /// Probes of an unreachable endpoint handed back uncounted.
    pub probes_failed: u64,
    /// Batches dead-lettered.
    pub dead_lettered: u64,
    /// Total time spent sending, in microseconds.
    pub send_time_micros: u64,
    /// The longest single send, in microseconds.
    pub max_send_time_micros: u64,
    /// True while the worker thread runs; false once stopped, or once a queue error
    /// stopped it (the message is in `edgepipe_delivery_metrics_json`'s `failure`).
    pub running: bool,
}

fn start(
    queue: *const edgepipe_queue,
    options: *const edgepipe_delivery_options,
    out: *mut *mut edgepipe_delivery,
    sink: impl FnOnce(&edgepipe_delivery_options) -> Result<Box<dyn Sink>, Failure>,
) -> Result<(), Failure> {
    let queue = ffi::try_ref(queue, "queue")?;
    let options = ffi::input_or_default(options);
    let out = Out::new(out, "out")?;
    let sink = sink(&options)?;
    let delivery = Delivery::new(queue.queue.clone(), sink, options.core());
    let worker = DeliveryWorker::spawn(delivery).map_err(|error| {
        Failure::new(
            edgepipe_status::Io,
            format!("starting the delivery thread: {error}"),
        )
    })?;
    out.write(ffi::into_handle(edgepipe_delivery {
        worker: Some(worker),
        stopped: None,
    }));
    Ok(())
}

/// Stores the default delivery options in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_delivery_options_default(
    out: *mut edgepipe_delivery_options,
) -> edgepipe_status {
    panic::status(|| {
        Out::new(out, "out")?.write(edgepipe_delivery_options::default());
        Ok(())
    })
}

/// Starts a worker draining `queue` into the HTTP sink: `POST {endpoint}/api/ingest`
/// (the seed's protocol, `http://` or `https://` with Mozilla's roots) with
/// `X-API-Key: api_key`. Stores it in `*out`.
///
/// `EDGEPIPE_STATUS_CONFIG` for an endpoint that is not an http(s) URL,
/// `EDGEPIPE_STATUS_IO` when the thread cannot start.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_delivery_start_http(
    queue: *const edgepipe_queue,
    endpoint: *const c_char,
    endpoint_len: usize,
    api_key: *const c_char,
    api_key_len: usize,
    options: *const edgepipe_delivery_options,
    out: *mut *mut edgepipe_delivery,
) -> edgepipe_status {
    panic::status(|| {
        let endpoint = ffi::try_str(endpoint, endpoint_len, "endpoint")?;
        let api_key = ffi::try_str(api_key, api_key_len, "api_key")?;
        start(queue, options, out, |options| {
            let mut sink = HttpSinkOptions::new(endpoint, api_key);
            if let Some(timeout) = options.request_timeout() {
                sink = sink.with_request_timeout(timeout);
            }
            Ok(Box::new(HttpSink::new(sink)?))
        })
    })
}

/// Starts a worker draining `queue` into the MQTT sink: QoS 1 publishes to the
/// broker at `host:port` as `client_id`, confirmed by its PUBACK, on `topic` (a
/// template where `{source}`, `{codec}` and `{batch_id}` are replaced; `(NULL, 0)`
/// is `edgepipe/{source}/batches`). Stores it in `*out`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn edgepipe_delivery_start_mqtt(
    queue: *const edgepipe_queue,
    host: *const c_char,
    host_len: usize,
    port: u16,
    client_id: *const c_char,
    client_id_len: usize,
    topic: *const c_char,
    topic_len: usize,
    options: *const edgepipe_delivery_options,
    out: *mut *mut edgepipe_delivery,
) -> edgepipe_status {
    panic::status(|| {
        let host = ffi::try_str(host, host_len, "host")?;
        let client_id = ffi::try_str(client_id, client_id_len, "client_id")?;
        let topic = ffi::try_str(topic, topic_len, "topic")?;
        start(queue, options, out, |options| {
            let mut sink = MqttOptions::new(host, port, client_id);
            if !topic.is_empty() {
                sink.topic = topic.to_owned();
            }
            if let Some(timeout) = options.request_timeout() {
                sink.request_timeout = timeout;
            }
            Ok(Box::new(MqttSink::new(sink)?))
        })
    })
}

/// Wakes the worker: new entries were enqueued (otherwise it looks again after
/// `idle_wait_millis`).
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_delivery_notify(delivery: *const edgepipe_delivery) -> edgepipe_status {
    panic::status(|| {
        let delivery = ffi::try_ref(delivery, "delivery")?;
        if let Some(worker) = &delivery.worker {
            worker.notify();
        }
        Ok(())
    })
}

fn current(delivery: &edgepipe_delivery) -> (DeliveryMetrics, bool, Option<String>) {
    match (&delivery.worker, &delivery.stopped) {
        (Some(worker), _) => {
            let failure = worker.failure();
            (worker.metrics(), failure.is_none(), failure)
        }
        (None, Some(stopped)) => (stopped.clone(), false, None),
        (None, None) => (DeliveryMetrics::default(), false, None),
    }
}

fn metrics_struct(metrics: &DeliveryMetrics, running: bool) -> edgepipe_delivery_counters {
    let micros = |duration: Duration| u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    edgepipe_delivery_counters {
        batches_sent: metrics.batches_sent,
        records_sent: metrics.records_sent,
        bytes_sent: metrics.bytes_sent,
        duplicates: metrics.duplicates,
        retries: metrics.retries,
        probes_failed: metrics.probes_failed,
        dead_lettered: metrics.dead_lettered,
        send_time_micros: micros(metrics.send_time),
        max_send_time_micros: micros(metrics.max_send_time),
        running,
    }
}

/// Stores the worker's counters so far in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_delivery_metrics(
    delivery: *const edgepipe_delivery,
    out: *mut edgepipe_delivery_counters,
) -> edgepipe_status {
    panic::status(|| {
        let delivery = ffi::try_ref(delivery, "delivery")?;
        let out = Out::new(out, "out")?;
        let (metrics, running, _) = current(delivery);
        out.write(metrics_struct(&metrics, running));
        Ok(())
    })
}

/// The worker's counters as one JSON object (the fields of
/// `edgepipe_delivery_metrics`, plus `last_failure` and `failure`, strings or null)
/// in a new buffer stored in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_delivery_metrics_json(
    delivery: *const edgepipe_delivery,
    out: *mut *mut edgepipe_buffer,
) -> edgepipe_status {
    panic::status(|| {
        let delivery = ffi::try_ref(delivery, "delivery")?;
        let out = Out::new(out, "out")?;
        let (metrics, running, failure) = current(delivery);
        let fields = metrics_struct(&metrics, running);
        let json = serde_json::json!({
            "batches_sent": fields.batches_sent,
            "records_sent": fields.records_sent,
            "bytes_sent": fields.bytes_sent,
            "duplicates": fields.duplicates,
            "retries": fields.retries,
            "probes_failed": fields.probes_failed,
            "dead_lettered": fields.dead_lettered,
            "send_time_micros": fields.send_time_micros,
            "max_send_time_micros": fields.max_send_time_micros,
            "running": fields.running,
            "last_failure": metrics.last_failure,
            "failure": failure,
        });
        out.write(ffi::into_handle(edgepipe_buffer::new(
            json.to_string().into_bytes(),
        )));
        Ok(())
    })
}

/// Waits until every counter of the worker is at least the one in `*at_least`
/// (`batches_sent`, `records_sent`, `bytes_sent`, `duplicates`, `retries`,
/// `probes_failed`, `dead_lettered`; the times and `running` are not compared),
/// for at most `timeout_millis`, and stores the counters in `*out`.
///
/// Woken each time the worker publishes its counters: no polling. A shutdown that
/// must not stop before its readings are confirmed waits for `records_sent`.
/// `EDGEPIPE_STATUS_TIMED_OUT` when the time runs out or the worker is stopped
/// first, `EDGEPIPE_STATUS_IO` when a queue error stopped it (with the message);
/// `*out` is written only on success.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_delivery_wait(
    delivery: *const edgepipe_delivery,
    at_least: *const edgepipe_delivery_counters,
    timeout_millis: u64,
    out: *mut edgepipe_delivery_counters,
) -> edgepipe_status {
    panic::status(|| {
        let delivery = ffi::try_ref(delivery, "delivery")?;
        let at_least = *ffi::try_input(at_least, "at_least")?;
        let out = Out::new(out, "out")?;
        let reached = |metrics: &DeliveryMetrics| {
            let now = metrics_struct(metrics, true);
            now.batches_sent >= at_least.batches_sent
                && now.records_sent >= at_least.records_sent
                && now.bytes_sent >= at_least.bytes_sent
                && now.duplicates >= at_least.duplicates
                && now.retries >= at_least.retries
                && now.probes_failed >= at_least.probes_failed
                && now.dead_lettered >= at_least.dead_lettered
        };
        let metrics = match &delivery.worker {
            Some(worker) => worker.wait_for(Duration::from_millis(timeout_millis), |metrics| {
                reached(metrics)
            }),
            None => delivery.stopped.clone().unwrap_or_default(),
        };
        if reached(&metrics) {
            let running = delivery
                .worker
                .as_ref()
                .is_some_and(|worker| worker.failure().is_none());
            out.write(metrics_struct(&metrics, running));
            return Ok(());
        }
        if let Some(failure) = delivery.worker.as_ref().and_then(DeliveryWorker::failure) {
            return Err(Failure::new(
                edgepipe_status::Io,
                format!("the delivery worker stopped on a queue error: {failure}"),
            ));
        }
        Err(Failure::new(
            edgepipe_status::TimedOut,
            match &delivery.worker {
                Some(_) => format!("the counters did not get there within {timeout_millis} ms"),
                None => "the delivery worker is stopped".to_owned(),
            },
        ))
    })
}

/// Stops the worker after the send in progress (what was not sent stays queued)
/// and waits for its thread. Stopping a stopped worker does nothing. The handle
/// still needs `edgepipe_delivery_free`; its metrics stay readable.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_delivery_stop(delivery: *mut edgepipe_delivery) -> edgepipe_status {
    panic::status(|| {
        let delivery = ffi::try_mut(delivery, "delivery")?;
        if let Some(worker) = delivery.worker.take() {
            delivery.stopped = Some(worker.shutdown());
        }
        Ok(())
    })
}

/// Stops the worker if it runs (as `edgepipe_delivery_stop`) and frees it. NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_delivery_free(delivery: *mut edgepipe_delivery) {
    panic::catch_or((), || ffi::free_handle(delivery));
}
