//! Sinks, the retry policy and `Delivery`: the core's delivery loop, stepped by
//! the caller or run on a thread of its own.

use std::sync::{Mutex, MutexGuard};

use edgepipe_core::deliver::{
    Delivered, Delivery as CoreDelivery, DeliveryMetrics, DeliveryOptions, DeliveryWorker,
    DirectorySink as CoreDirectorySink, HttpSink as CoreHttpSink, HttpSinkOptions, Jitter,
    MqttOptions, MqttSink as CoreMqttSink, MqttTls, ReplayOrder, RetryPolicy as CoreRetryPolicy,
    SendFailure, Sink, Step,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::batch::{PyBatch, PyDecodeLimits, limits_of};
use crate::error::{EdgepipeError, SendError, to_py_err};
use crate::gil::without_gil;
use crate::queue::PyQueue;
use crate::record::{duration_arg, seconds_of, timestamp_arg};

/// A sink owned by a Python object until a Delivery takes it.
struct Slot(Mutex<Option<Box<dyn Sink>>>);

impl Slot {
    fn new(sink: impl Sink + 'static) -> Self {
        Slot(Mutex::new(Some(Box::new(sink))))
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&describe(self))
    }
}

fn slot(slot: &Slot) -> MutexGuard<'_, Option<Box<dyn Sink>>> {
    // A panic inside a sink leaves it as it was; the next send reports its own error.
    slot.0.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn taken() -> PyErr {
    PyValueError::new_err("this sink belongs to a Delivery now; make a new one")
}

/// The exception for a failed send: SendError with `retryable` and `retry_after`.
fn send_error(py: Python<'_>, failure: &SendFailure) -> PyErr {
    let (kind, retryable, retry_after) = match failure {
        SendFailure::Retryable { retry_after, .. } => (
            "retryable",
            true,
            retry_after.map(|wait| wait.as_secs_f64()),
        ),
        SendFailure::Unreachable { .. } => ("unreachable", true, None),
        SendFailure::Permanent { .. } => ("permanent", false, None),
    };
    let error = SendError::new_err(format!("{kind}: {}", failure.reason()));
    let value = error.value(py);
    // Attributes on the instance, so `except SendError as e: e.retryable` reads them.
    let _ = value.setattr("retryable", retryable);
    let _ = value.setattr("retry_after", retry_after);
    error
}

fn send(py: Python<'_>, sink: &Slot, batch: &PyBatch) -> PyResult<&'static str> {
    let outcome = without_gil(py, || {
        slot(sink).as_mut().map(|sink| sink.send(&batch.inner))
    });
    match outcome {
        None => Err(taken()),
        Some(Ok(Delivered::Stored)) => Ok("stored"),
        Some(Ok(Delivered::Duplicate)) => Ok("duplicate"),
        Some(Err(failure)) => Err(send_error(py, &failure)),
    }
}

fn describe(sink: &Slot) -> String {
    slot(sink).as_ref().map_or_else(
        || "<taken by a Delivery>".to_owned(),
        |sink| sink.describe(),
    )
}

/// The one `#[pymethods]` block of a sink class: its constructor (given) and the
/// methods every sink has, `send(batch)` and `describe()`.
macro_rules! sink_class {
    ($class:ident, $name:literal, { $($constructor:tt)* }) => {
        impl $class {
            pub(crate) fn take(&self) -> PyResult<Box<dyn Sink>> {
                slot(&self.sink).take().ok_or_else(taken)
            }
        }

        #[pymethods]
        impl $class {
            $($constructor)*

            /// Delivers one batch now, GIL released: `"stored"`, or `"duplicate"`
            /// when the receiver already had it. Raises SendError (with
            /// `retryable` and `retry_after`) when it was not delivered.
            fn send(&self, py: Python<'_>, batch: &Bound<'_, PyBatch>) -> PyResult<&'static str> {
                send(py, &self.sink, batch.get())
            }

            /// A name for logs: the endpoint, broker or directory.
            fn describe(&self) -> String {
                describe(&self.sink)
            }

            fn __repr__(&self) -> String {
                format!(concat!($name, "({:?})"), describe(&self.sink))
            }
        }
    };
}

/// Sends batches to an ingest service: `POST {endpoint}/api/ingest`, the seed's
/// protocol with edgepipe's extension headers (keep-alive, TLS, HMAC).
///
/// `seed_compatible=True` sends only the seed's headers and refuses batches the
/// seed's service cannot read. A Delivery takes the sink over.
#[pyclass(frozen, name = "HttpSink", module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct PyHttpSink {
    sink: Slot,
}

sink_class!(PyHttpSink, "HttpSink", {
    #[new]
    #[pyo3(signature = (endpoint, api_key, *, request_timeout=60.0, connect_timeout=10.0, hmac_key=None, ca_certificates_pem=None, seed_compatible=false))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn new(
        py: Python<'_>,
        endpoint: String,
        api_key: String,
        request_timeout: f64,
        connect_timeout: f64,
        hmac_key: Option<Vec<u8>>,
        ca_certificates_pem: Option<Vec<u8>>,
        seed_compatible: bool,
    ) -> PyResult<Self> {
        let mut options = HttpSinkOptions::new(endpoint, api_key)
            .with_request_timeout(duration_arg("request_timeout", request_timeout)?)
            .with_connect_timeout(duration_arg("connect_timeout", connect_timeout)?)
            .with_seed_compatible(seed_compatible);
        if let Some(key) = hmac_key {
            options = options.with_hmac_key(key);
        }
        if let Some(pem) = ca_certificates_pem {
            options = options.with_ca_certificates_pem(pem);
        }
        let sink = without_gil(py, || CoreHttpSink::new(options))
            .map_err(|error| to_py_err(py, &error))?;
        Ok(PyHttpSink {
            sink: Slot::new(sink),
        })
    }
});

/// Publishes each batch to an MQTT broker at QoS 1; a send returns once the
/// broker's PUBACK arrived. `topic` may use `{source}`, `{codec}` and `{batch_id}`.
#[pyclass(frozen, name = "MqttSink", module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct PyMqttSink {
    sink: Slot,
}

sink_class!(PyMqttSink, "MqttSink", {
    #[new]
    #[pyo3(signature = (host, port, client_id, *, topic=None, keep_alive=30.0, username=None, password=None, clean_session=false, tls=false, ca_certificates_pem=None, request_timeout=30.0, max_packet_bytes=16777216))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn new(
        py: Python<'_>,
        host: String,
        port: u16,
        client_id: String,
        topic: Option<String>,
        keep_alive: f64,
        username: Option<String>,
        password: Option<String>,
        clean_session: bool,
        tls: bool,
        ca_certificates_pem: Option<Vec<u8>>,
        request_timeout: f64,
        max_packet_bytes: usize,
    ) -> PyResult<Self> {
        let mut options = MqttOptions::new(host, port, client_id);
        if let Some(topic) = topic {
            options.topic = topic;
        }
        options.keep_alive = duration_arg("keep_alive", keep_alive)?;
        options.credentials = match (username, password) {
            (Some(username), Some(password)) => Some((username, password)),
            (None, None) => None,
            _ => {
                return Err(PyValueError::new_err(
                    "username and password go together: give both or neither",
                ));
            }
        };
        options.clean_session = clean_session;
        if tls || ca_certificates_pem.is_some() {
            options.tls = Some(MqttTls {
                native_roots: ca_certificates_pem.is_none(),
                extra_ca_pem: ca_certificates_pem,
            });
        }
        options.request_timeout = duration_arg("request_timeout", request_timeout)?;
        options.max_packet_bytes = max_packet_bytes;
        let sink = without_gil(py, || CoreMqttSink::new(options))
            .map_err(|error| to_py_err(py, &error))?;
        Ok(PyMqttSink {
            sink: Slot::new(sink),
        })
    }
});

/// Offline export: one file per batch under
/// `root/<source>/<batch id>.<codec>[.<compression>]`, written atomically.
#[pyclass(frozen, name = "DirectorySink", module = "edgepipe")]
#[derive(Debug)]
pub(crate) struct PyDirectorySink {
    sink: Slot,
}

sink_class!(PyDirectorySink, "DirectorySink", {
    #[new]
    fn new(py: Python<'_>, root: std::path::PathBuf) -> PyResult<Self> {
        let sink = without_gil(py, || CoreDirectorySink::new(root))
            .map_err(|error| to_py_err(py, &error))?;
        Ok(PyDirectorySink {
            sink: Slot::new(sink),
        })
    }
});

/// Waits between attempts of one batch: exponential backoff with full jitter,
/// from `base_delay` up to `max_delay` seconds (the seed's 1 s and 300 s).
#[pyclass(frozen, name = "RetryPolicy", module = "edgepipe")]
#[derive(Clone, Copy, Debug)]
pub(crate) struct PyRetryPolicy {
    inner: CoreRetryPolicy,
}

#[pymethods]
impl PyRetryPolicy {
    #[new]
    #[pyo3(signature = (*, base_delay=1.0, max_delay=300.0))]
    fn new(base_delay: f64, max_delay: f64) -> PyResult<Self> {
        Ok(PyRetryPolicy {
            inner: CoreRetryPolicy {
                base_delay: duration_arg("base_delay", base_delay)?,
                max_delay: duration_arg("max_delay", max_delay)?,
            },
        })
    }

    /// The ceiling of the first retry's wait, seconds.
    #[getter]
    fn base_delay(&self) -> f64 {
        self.inner.base_delay.as_secs_f64()
    }

    /// The longest wait, seconds (unless the receiver's Retry-After asks for more).
    #[getter]
    fn max_delay(&self) -> f64 {
        self.inner.max_delay.as_secs_f64()
    }

    /// The longest wait after `attempts` failed attempts, seconds.
    fn ceiling(&self, attempts: u32) -> f64 {
        self.inner.ceiling(attempts).as_secs_f64()
    }

    /// A wait after `attempts` failed attempts: a draw in `[0, ceiling]` (from
    /// `seed` when given, for repeatable runs), raised to `retry_after` seconds.
    #[pyo3(signature = (attempts, retry_after=None, seed=None))]
    fn delay(&self, attempts: u32, retry_after: Option<f64>, seed: Option<u64>) -> PyResult<f64> {
        let retry_after = retry_after
            .map(|seconds| duration_arg("retry_after", seconds))
            .transpose()?;
        let mut jitter = seed.map_or_else(Jitter::from_entropy, Jitter::seeded);
        Ok(self
            .inner
            .delay(attempts, retry_after, &mut jitter)
            .as_secs_f64())
    }

    fn __repr__(&self) -> String {
        format!(
            "RetryPolicy(base_delay={}, max_delay={})",
            self.base_delay(),
            self.max_delay()
        )
    }
}

enum State {
    /// Built, stepped by the caller.
    Ready(Box<CoreDelivery>),
    /// Running on its own thread.
    Running(DeliveryWorker),
    /// Stopped; the final counters.
    Stopped(DeliveryMetrics),
}

/// The delivery loop from a Queue into a sink: sends the oldest ready batch,
/// acks only what the sink confirmed, and schedules everything else by the retry
/// policy (a circuit breaker leaves a failing endpoint alone for a while).
///
/// Step it yourself (`step()`, `drain()`, deterministic with `now`), or run it on
/// a thread of its own: `start()`, or `with Delivery(...) as delivery:` — leaving
/// the block stops it after the send in progress; what was not sent stays queued.
#[pyclass(frozen, name = "Delivery", module = "edgepipe")]
pub(crate) struct PyDelivery {
    state: Mutex<State>,
}

impl std::fmt::Debug for PyDelivery {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Delivery").finish_non_exhaustive()
    }
}

impl Drop for PyDelivery {
    fn drop(&mut self) {
        // Collected while running (never stopped): the worker finishes its send in
        // progress, which may take up to the sink's timeout. That wait happens on a
        // thread of its own, not here, where the GIL is held (if no thread can be
        // started, the worker is stopped here after all).
        let state = self
            .state
            .get_mut()
            .map(|state| std::mem::replace(state, State::Stopped(DeliveryMetrics::default())));
        if let Ok(State::Running(worker)) = state {
            let _ = std::thread::Builder::new()
                .name("edgepipe-delivery-stop".into())
                .spawn(move || drop(worker));
        }
    }
}

fn lock(state: &Mutex<State>) -> PyResult<MutexGuard<'_, State>> {
    state.lock().map_err(|_| {
        EdgepipeError::new_err(
            "this delivery is unusable: a call on it panicked (a bug in edgepipe; please report it)",
        )
    })
}

fn take_sink(sink: &Bound<'_, PyAny>) -> PyResult<Box<dyn Sink>> {
    if let Ok(sink) = sink.cast::<PyHttpSink>() {
        return sink.get().take();
    }
    if let Ok(sink) = sink.cast::<PyMqttSink>() {
        return sink.get().take();
    }
    if let Ok(sink) = sink.cast::<PyDirectorySink>() {
        return sink.get().take();
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "sink must be an HttpSink, MqttSink or DirectorySink, not {}",
        sink.get_type().name()?
    )))
}

fn metrics_dict<'py>(py: Python<'py>, metrics: &DeliveryMetrics) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in [
        ("batches_sent", metrics.batches_sent),
        ("records_sent", metrics.records_sent),
        ("bytes_sent", metrics.bytes_sent),
        ("duplicates", metrics.duplicates),
        ("retries", metrics.retries),
        ("probes_failed", metrics.probes_failed),
        ("dead_lettered", metrics.dead_lettered),
        ("backlog_batches_sent", metrics.backlog_batches_sent),
        ("backlog_bytes_sent", metrics.backlog_bytes_sent),
    ] {
        dict.set_item(name, value)?;
    }
    dict.set_item("last_failure", metrics.last_failure.as_deref())?;
    dict.set_item("send_time", metrics.send_time.as_secs_f64())?;
    dict.set_item("max_send_time", metrics.max_send_time.as_secs_f64())?;
    Ok(dict)
}

fn step_dict<'py>(py: Python<'py>, step: &Step) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    match step {
        Step::Sent { delivered } => {
            dict.set_item("step", "sent")?;
            dict.set_item("duplicate", *delivered == Delivered::Duplicate)?;
        }
        Step::Retry { retry_at, reason } => {
            dict.set_item("step", "retry")?;
            dict.set_item("retry_at", seconds_of(*retry_at))?;
            dict.set_item("reason", reason)?;
        }
        Step::ProbeFailed { reason } => {
            dict.set_item("step", "probe_failed")?;
            dict.set_item("reason", reason)?;
        }
        Step::DeadLettered { reason } => {
            dict.set_item("step", "dead_lettered")?;
            dict.set_item("reason", reason)?;
        }
        Step::Idle => dict.set_item("step", "idle")?,
        Step::Paused { until } => {
            dict.set_item("step", "paused")?;
            dict.set_item("until", seconds_of(*until))?;
        }
        Step::Paced { until } => {
            dict.set_item("step", "paced")?;
            dict.set_item("until", seconds_of(*until))?;
        }
    }
    Ok(dict)
}

fn not_ready() -> PyErr {
    PyValueError::new_err(
        "this delivery runs on its own thread (or has stopped): step() and drain() are for a delivery not started",
    )
}

#[pymethods]
impl PyDelivery {
    /// A loop from `queue` into `sink` (which it takes over).
    ///
    /// `retry`: a RetryPolicy; the breaker opens after `breaker_open_after`
    /// failures in a row for `breaker_revive_after` seconds; the thread waits up to
    /// `idle_wait` seconds when nothing is ready (`notify()` wakes it); batches
    /// older than `backlog_after` seconds are backlog, paced to
    /// `backlog_bytes_per_second` (None: unpaced), `replay_order` is
    /// `"live_first"` or `"oldest_first"`; `seed` fixes the jitter.
    #[new]
    #[pyo3(signature = (queue, sink, *, retry=None, breaker_open_after=5, breaker_revive_after=30.0, idle_wait=1.0, backlog_after=60.0, backlog_bytes_per_second=None, replay_order="live_first", limits=None, seed=None))]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    fn new(
        queue: &Bound<'_, PyQueue>,
        sink: &Bound<'_, PyAny>,
        retry: Option<&PyRetryPolicy>,
        breaker_open_after: u32,
        breaker_revive_after: f64,
        idle_wait: f64,
        backlog_after: f64,
        backlog_bytes_per_second: Option<u64>,
        replay_order: &str,
        limits: Option<&PyDecodeLimits>,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let replay_order = match replay_order {
            "live_first" => ReplayOrder::LiveFirst,
            "oldest_first" => ReplayOrder::OldestFirst,
            other => {
                return Err(PyValueError::new_err(format!(
                    "replay_order must be \"live_first\" or \"oldest_first\", not {other:?}"
                )));
            }
        };
        if breaker_open_after == 0 {
            return Err(PyValueError::new_err(
                "breaker_open_after must be at least 1",
            ));
        }
        let options = DeliveryOptions {
            retry: retry.map_or_else(CoreRetryPolicy::default, |retry| retry.inner),
            breaker_open_after,
            breaker_revive_after: duration_arg("breaker_revive_after", breaker_revive_after)?,
            limits: limits_of(limits),
            idle_wait: duration_arg("idle_wait", idle_wait)?,
            backlog_after: duration_arg("backlog_after", backlog_after)?,
            backlog_bytes_per_second,
            replay_order,
            ..DeliveryOptions::default()
        };
        let queue = queue.get().shared()?;
        let sink = take_sink(sink)?;
        let jitter = seed.map_or_else(Jitter::from_entropy, Jitter::seeded);
        Ok(PyDelivery {
            state: Mutex::new(State::Ready(Box::new(CoreDelivery::with_jitter(
                queue, sink, options, jitter,
            )))),
        })
    }

    /// Sends at most one batch at `now` (Unix seconds; the wall clock when None)
    /// and says what happened: `{"step": "sent" | "retry" | "probe_failed" |
    /// "dead_lettered" | "idle" | "paused" | "paced", ...}`.
    #[pyo3(signature = (now=None))]
    fn step<'py>(&self, py: Python<'py>, now: Option<f64>) -> PyResult<Bound<'py, PyDict>> {
        let now = timestamp_arg("now", now)?;
        let step = without_gil(py, || {
            let mut state = lock(&self.state)?;
            match &mut *state {
                State::Ready(delivery) => Ok(delivery.step(now)),
                _ => Err(not_ready()),
            }
        })?
        .map_err(|error| to_py_err(py, &error))?;
        step_dict(py, &step)
    }

    /// Steps until nothing more can be sent at `now` (idle, paused by the
    /// breaker, or paced), GIL released; returns the counters.
    #[pyo3(signature = (now=None))]
    fn drain<'py>(&self, py: Python<'py>, now: Option<f64>) -> PyResult<Bound<'py, PyDict>> {
        let now = timestamp_arg("now", now)?;
        let metrics = without_gil(py, || {
            let mut state = lock(&self.state)?;
            let State::Ready(delivery) = &mut *state else {
                return Err(not_ready());
            };
            loop {
                match delivery.step(now) {
                    Ok(Step::Sent { .. } | Step::Retry { .. } | Step::DeadLettered { .. }) => {}
                    Ok(_) => return Ok(Ok(delivery.metrics().clone())),
                    Err(error) => return Ok(Err(error)),
                }
            }
        })?
        .map_err(|error| to_py_err(py, &error))?;
        metrics_dict(py, &metrics)
    }

    /// Starts the loop on a thread of its own, with the wall clock.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        without_gil(py, || {
            let mut state = lock(&self.state)?;
            match std::mem::replace(&mut *state, State::Stopped(DeliveryMetrics::default())) {
                State::Ready(delivery) => match DeliveryWorker::spawn(*delivery) {
                    Ok(worker) => {
                        *state = State::Running(worker);
                        Ok(())
                    }
                    Err(error) => Err(PyErr::from(error)),
                },
                other => {
                    *state = other;
                    Err(PyValueError::new_err("this delivery was already started"))
                }
            }
        })
    }

    /// Wakes the running loop: new batches were enqueued.
    fn notify(&self, py: Python<'_>) -> PyResult<()> {
        without_gil(py, || {
            if let State::Running(worker) = &*lock(&self.state)? {
                worker.notify();
            }
            Ok(())
        })
    }

    /// Stops the running loop after the send in progress (unsent batches stay
    /// queued) and returns the final counters; waits for the thread, GIL released.
    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let metrics = without_gil(py, || {
            let mut state = lock(&self.state)?;
            let metrics =
                match std::mem::replace(&mut *state, State::Stopped(DeliveryMetrics::default())) {
                    State::Ready(delivery) => delivery.metrics().clone(),
                    State::Running(worker) => worker.shutdown(),
                    State::Stopped(metrics) => metrics,
                };
            *state = State::Stopped(metrics.clone());
            Ok::<_, PyErr>(metrics)
        })?;
        metrics_dict(py, &metrics)
    }

    /// True while the loop runs on its thread.
    #[getter]
    fn running(&self, py: Python<'_>) -> PyResult<bool> {
        without_gil(py, || Ok(matches!(&*lock(&self.state)?, State::Running(_))))
    }

    /// The queue error that stopped the running loop, if one did.
    #[getter]
    fn failure(&self, py: Python<'_>) -> PyResult<Option<String>> {
        without_gil(py, || {
            Ok(match &*lock(&self.state)? {
                State::Running(worker) => worker.failure(),
                _ => None,
            })
        })
    }

    /// The counters: `batches_sent`, `records_sent`, `bytes_sent`, `duplicates`,
    /// `retries`, `probes_failed`, `dead_lettered`, `backlog_batches_sent`,
    /// `backlog_bytes_sent`, `last_failure`, `send_time`, `max_send_time` (seconds).
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let metrics = without_gil(py, || {
            Ok::<_, PyErr>(match &*lock(&self.state)? {
                State::Ready(delivery) => delivery.metrics().clone(),
                State::Running(worker) => worker.metrics(),
                State::Stopped(metrics) => metrics.clone(),
            })
        })?;
        metrics_dict(py, &metrics)
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<Py<Self>> {
        let py = slf.py();
        let this = slf.get();
        let ready = without_gil(py, || {
            Ok::<_, PyErr>(matches!(&*lock(&this.state)?, State::Ready(_)))
        })?;
        if ready {
            this.start(py)?;
        }
        Ok(slf.clone().unbind())
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let state = without_gil(py, || {
            Ok::<_, PyErr>(match &*lock(&self.state)? {
                State::Ready(_) => "ready",
                State::Running(_) => "running",
                State::Stopped(_) => "stopped",
            })
        })?;
        Ok(format!("Delivery({state})"))
    }
}
