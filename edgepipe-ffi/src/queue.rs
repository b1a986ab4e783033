//! `edgepipe_queue`: the store-and-forward queue between batching and delivery,
//! durable on disk (the core's segmented log), in memory, or written in C.

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use edgepipe_core::queue::{
    Durability, Entry, FullPolicy, LogOptions, MemoryQueue, NackOutcome, Pending, Queue,
    QueueOptions, SegmentedLog,
};
use edgepipe_core::record::Timestamp;

use crate::batch::{edgepipe_batch, edgepipe_decode_limits};
use crate::buffer::edgepipe_buffer;
use crate::callback_queue::{CallbackQueue, edgepipe_queue_callbacks};
use crate::error::{Failure, edgepipe_status};
use crate::ffi::{self, Out};
use crate::panic;

/// What an enqueue does when the queue would pass `max_bytes`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum edgepipe_full_policy {
    /// Refuse the new entry with `EDGEPIPE_STATUS_QUEUE_FULL` (the default): nothing
    /// already accepted is lost.
    Reject = 0,
    /// Drop the oldest entries not in flight until it fits, counting them.
    DropOldest = 1,
}

/// When a durable queue's enqueue returns.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum edgepipe_sync {
    /// After fdatasync (shared by concurrent enqueues): survives power loss. The default.
    Synced = 0,
    /// After the write reached the OS: survives a crash of the process, not power loss.
    Written = 1,
}

/// How a queue is bounded and retried. Start from `edgepipe_queue_options_default`;
/// a NULL `const edgepipe_queue_options *` means the defaults.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct edgepipe_queue_options {
    /// Bound on the bytes of all entries held; 0 is unbounded (default 256 MiB).
    pub max_bytes: u64,
    /// An `edgepipe_full_policy` value (default `EDGEPIPE_FULL_POLICY_REJECT`).
    pub full_policy: u32,
    /// Failed attempts after which an entry is dead-lettered (default 10).
    pub max_attempts: u32,
    /// Entries older than this (by their `created_at`) expire; 0 keeps them (the default).
    pub ttl_seconds: u64,
    /// An `edgepipe_sync` value, for `edgepipe_queue_open` (default `EDGEPIPE_SYNC_SYNCED`).
    pub sync: u32,
    /// Segment file size of `edgepipe_queue_open` (default 8 MiB).
    pub segment_bytes: u64,
}

impl Default for edgepipe_queue_options {
    fn default() -> Self {
        let log = LogOptions::default();
        edgepipe_queue_options {
            max_bytes: log.queue.max_bytes,
            full_policy: edgepipe_full_policy::Reject as u32,
            max_attempts: log.queue.max_attempts,
            ttl_seconds: 0,
            sync: edgepipe_sync::Synced as u32,
            segment_bytes: log.segment_bytes,
        }
    }
}

impl edgepipe_queue_options {
    fn queue(&self) -> Result<QueueOptions, Failure> {
        let full_policy = match self.full_policy {
            policy if policy == edgepipe_full_policy::Reject as u32 => FullPolicy::Reject,
            policy if policy == edgepipe_full_policy::DropOldest as u32 => FullPolicy::DropOldest,
            other => return Err(unsupported("full_policy", other)),
        };
        Ok(QueueOptions {
            max_bytes: self.max_bytes,
            full_policy,
            max_attempts: self.max_attempts,
            ttl: (self.ttl_seconds != 0).then(|| Duration::from_secs(self.ttl_seconds)),
        })
    }

    fn log(&self) -> Result<LogOptions, Failure> {
        let sync = match self.sync {
            sync if sync == edgepipe_sync::Synced as u32 => Durability::Synced,
            sync if sync == edgepipe_sync::Written as u32 => Durability::Written,
            other => return Err(unsupported("sync", other)),
        };
        Ok(LogOptions {
            queue: self.queue()?,
            sync,
            segment_bytes: self.segment_bytes,
            ..LogOptions::default()
        })
    }
}

fn unsupported(what: &str, value: u32) -> Failure {
    Failure::new(
        edgepipe_status::Unsupported,
        format!("{value} is not an edgepipe_{what} value"),
    )
}

/// A store-and-forward queue of encoded batches: entries are taken oldest first
/// (in order per source), acked when delivered, nacked to retry later.
///
/// Made by `edgepipe_queue_open` (durable, in a directory: an enqueue that returns
/// OK is on disk, and the queue survives closing, crashes and reopening),
/// `edgepipe_queue_new_memory`, or `edgepipe_queue_new_from_callbacks` (a queue
/// written in C); released by `edgepipe_queue_free`. A delivery worker started on
/// the queue holds a reference of its own, so the queue may be freed before the
/// worker is stopped.
///
/// Thread safety: every call but `_free` takes `const edgepipe_queue *` and may run
/// on several threads at once (the queue locks inside); this is how a producer
/// thread and the delivery worker share one queue.
#[allow(non_camel_case_types)]
pub struct edgepipe_queue {
    pub(crate) queue: Arc<dyn Queue>,
}

impl std::fmt::Debug for edgepipe_queue {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("edgepipe_queue")
            .field("stats", &self.queue.stats())
            .finish()
    }
}

/// An entry handed out by `edgepipe_queue_take`, in flight until acked or nacked by
/// its id. Released by `edgepipe_queue_entry_free` (which neither acks nor nacks).
///
/// Thread safety: never changes; may be read from several threads at once.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct edgepipe_queue_entry {
    pending: Pending,
}

/// What `edgepipe_queue_entry_info` reports. The pointers belong to the entry:
/// valid until `edgepipe_queue_entry_free`; the strings are not NUL-terminated.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct edgepipe_queue_entry_fields {
    /// Pass to `edgepipe_queue_ack` or `edgepipe_queue_nack`.
    pub id: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The batch's source.
    pub source_id: *const c_char,
    /// Bytes in `source_id`.
    pub source_id_len: usize,
    /// The batch's id.
    pub batch_id: *const c_char,
    /// Bytes in `batch_id`.
    pub batch_id_len: usize,
    /// When the batch was closed (Unix nanoseconds).
    pub created_at_unix_nanos: i64,
    /// The bytes enqueued (a batch's binary form for `edgepipe_queue_enqueue_batch`).
    pub payload: *const u8,
    /// Bytes in `payload`.
    pub payload_len: usize,
}

/// What `edgepipe_queue_nack` did.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default)]
pub struct edgepipe_nack_result {
    /// Failed attempts so far, this one included.
    pub attempts: u32,
    /// True when the entry reached `max_attempts` and was dead-lettered: kept for
    /// inspection, never handed out again.
    pub dead_lettered: bool,
}

/// Counters and gauges of a queue. A queue written in C reports only `pending`
/// and `bytes`, from its `len` callback.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default)]
pub struct edgepipe_queue_counters {
    /// Entries held that are neither in flight nor dead-lettered (the depth).
    pub pending: u64,
    /// Entries handed out and not yet acked or nacked.
    pub in_flight: u64,
    /// Dead-lettered entries still held.
    pub dead: u64,
    /// Bytes of all entries held.
    pub bytes: u64,
    /// Entries accepted since the queue was opened.
    pub enqueued: u64,
    /// Entries acked since the queue was opened.
    pub acked: u64,
    /// Entries dropped by `EDGEPIPE_FULL_POLICY_DROP_OLDEST` since opened.
    pub dropped: u64,
    /// Entries expired by the TTL since opened.
    pub expired: u64,
    /// Entries dead-lettered since opened.
    pub dead_lettered: u64,
    /// Entries found lost to damage when the queue was opened.
    pub lost: u64,
}

/// Stores the default queue options in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_options_default(
    out: *mut edgepipe_queue_options,
) -> edgepipe_status {
    panic::status(|| {
        Out::new(out, "out")?.write(edgepipe_queue_options::default());
        Ok(())
    })
}

fn into_queue(queue: Arc<dyn Queue>, out: Out<*mut edgepipe_queue>) {
    out.write(ffi::into_handle(edgepipe_queue { queue }));
}

/// Opens (or creates) the durable queue in directory `dir` (a path of `dir_len`
/// bytes, UTF-8) with `options` (NULL: the defaults) and stores it in `*out`.
///
/// Recovers from whatever a crash left: a torn tail is cut, damage is set aside
/// and counted (`lost`), never a failure. Entries in flight when it was closed are
/// handed out again. One process at a time may hold a directory open.
/// `EDGEPIPE_STATUS_IO` when the directory cannot be created, read or locked.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_open(
    dir: *const c_char,
    dir_len: usize,
    options: *const edgepipe_queue_options,
    out: *mut *mut edgepipe_queue,
) -> edgepipe_status {
    panic::status(|| {
        let dir = ffi::try_str(dir, dir_len, "dir")?;
        let options = ffi::input_or_default(options).log()?;
        let out = Out::new(out, "out")?;
        into_queue(Arc::new(SegmentedLog::open(dir, options)?), out);
        Ok(())
    })
}

/// Makes a queue held in memory only (lost with the process) with `options`
/// (NULL: the defaults; `sync` and `segment_bytes` are ignored) and stores it in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_new_memory(
    options: *const edgepipe_queue_options,
    out: *mut *mut edgepipe_queue,
) -> edgepipe_status {
    panic::status(|| {
        let options = ffi::input_or_default(options).queue()?;
        let out = Out::new(out, "out")?;
        into_queue(Arc::new(MemoryQueue::new(options)), out);
        Ok(())
    })
}

/// Makes a queue from C callbacks (see `edgepipe_queue_callbacks`: the struct is
/// copied, `ctx` stays yours until `free_ctx`) and stores it in `*out`.
///
/// `EDGEPIPE_STATUS_NULL_ARGUMENT` when a required callback is NULL; then
/// `free_ctx` is not called.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_new_from_callbacks(
    callbacks: *const edgepipe_queue_callbacks,
    out: *mut *mut edgepipe_queue,
) -> edgepipe_status {
    panic::status(|| {
        let callbacks = *ffi::try_input(callbacks, "callbacks")?;
        let out = Out::new(out, "out")?;
        let queue = CallbackQueue::new(callbacks)?;
        into_queue(Arc::new(queue), out);
        Ok(())
    })
}

/// Closes the queue (a durable one stays on disk). NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_free(queue: *mut edgepipe_queue) {
    panic::catch_or((), || ffi::free_handle(queue));
}

/// Enqueues a batch (its binary form, `edgepipe_batch_to_bytes`, with its source,
/// id and time) and stores the entry's id in `*out_id`. Returns once the entry is
/// as durable as the queue promises.
///
/// `EDGEPIPE_STATUS_QUEUE_FULL` under `EDGEPIPE_FULL_POLICY_REJECT` (nothing was
/// written: back off, shed or aggregate), `EDGEPIPE_STATUS_IO`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_enqueue_batch(
    queue: *const edgepipe_queue,
    batch: *const edgepipe_batch,
    out_id: *mut u64,
) -> edgepipe_status {
    panic::status(|| {
        let queue = ffi::try_ref(queue, "queue")?;
        let batch = ffi::try_ref(batch, "batch")?;
        let out_id = Out::new(out_id, "out_id")?;
        out_id.write(queue.queue.enqueue(Entry::from_batch(&batch.batch))?);
        Ok(())
    })
}

/// Enqueues any bytes: `payload` (`payload_len` bytes) from `source_id` with id
/// `batch_id` (both UTF-8), created at `created_at_unix_nanos` (the TTL counts from
/// it); stores the entry's id in `*out_id`. Errors as `edgepipe_queue_enqueue_batch`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn edgepipe_queue_enqueue(
    queue: *const edgepipe_queue,
    source_id: *const c_char,
    source_id_len: usize,
    batch_id: *const c_char,
    batch_id_len: usize,
    created_at_unix_nanos: i64,
    payload: *const u8,
    payload_len: usize,
    out_id: *mut u64,
) -> edgepipe_status {
    panic::status(|| {
        let queue = ffi::try_ref(queue, "queue")?;
        let source_id = ffi::try_str(source_id, source_id_len, "source_id")?;
        let batch_id = ffi::try_str(batch_id, batch_id_len, "batch_id")?;
        let payload = ffi::try_slice(payload, payload_len, "payload")?;
        let out_id = Out::new(out_id, "out_id")?;
        out_id.write(queue.queue.enqueue(Entry {
            source_id: source_id.to_owned(),
            batch_id: batch_id.to_owned(),
            created_at: Timestamp::from_unix_nanos(created_at_unix_nanos),
            payload: payload.to_vec(),
        })?);
        Ok(())
    })
}

/// Takes the oldest entry ready at `now_unix_nanos` (never nacked, or whose retry
/// time has come) and marks it in flight: stores a new entry handle in `*out`, or
/// NULL when none is ready. Entries whose TTL passed are expired instead.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_take(
    queue: *const edgepipe_queue,
    now_unix_nanos: i64,
    out: *mut *mut edgepipe_queue_entry,
) -> edgepipe_status {
    panic::status(|| {
        let queue = ffi::try_ref(queue, "queue")?;
        let out = Out::new(out, "out")?;
        let taken = queue
            .queue
            .take(1, Timestamp::from_unix_nanos(now_unix_nanos))?
            .pop();
        out.write(match taken {
            Some(pending) => ffi::into_handle(edgepipe_queue_entry { pending }),
            None => std::ptr::null_mut(),
        });
        Ok(())
    })
}

/// The entry was delivered: removes it for good. `EDGEPIPE_STATUS_UNKNOWN_ENTRY`
/// when `id` is not in flight (acked already, or dead-lettered).
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_ack(queue: *const edgepipe_queue, id: u64) -> edgepipe_status {
    panic::status(|| {
        let queue = ffi::try_ref(queue, "queue")?;
        queue.queue.ack(id)?;
        Ok(())
    })
}

/// Delivery of the entry failed: counts the attempt and schedules the next at
/// `retry_at_unix_nanos`, or dead-letters it after `max_attempts`; stores which in
/// `*out`. `EDGEPIPE_STATUS_UNKNOWN_ENTRY` when `id` is not in flight.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_nack(
    queue: *const edgepipe_queue,
    id: u64,
    retry_at_unix_nanos: i64,
    out: *mut edgepipe_nack_result,
) -> edgepipe_status {
    panic::status(|| {
        let queue = ffi::try_ref(queue, "queue")?;
        let out = Out::new(out, "out")?;
        let outcome = queue
            .queue
            .nack(id, Timestamp::from_unix_nanos(retry_at_unix_nanos))?;
        out.write(edgepipe_nack_result {
            attempts: outcome.attempts(),
            dead_lettered: matches!(outcome, NackOutcome::DeadLettered { .. }),
        });
        Ok(())
    })
}

/// Hands an in-flight entry back without counting an attempt: ready again at
/// once, in its place (a consumer that took it and then did not send it).
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_release(queue: *const edgepipe_queue, id: u64) -> edgepipe_status {
    panic::status(|| {
        let queue = ffi::try_ref(queue, "queue")?;
        queue.queue.release(id)?;
        Ok(())
    })
}

/// Stores the queue's counters in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_stats(
    queue: *const edgepipe_queue,
    out: *mut edgepipe_queue_counters,
) -> edgepipe_status {
    panic::status(|| {
        let queue = ffi::try_ref(queue, "queue")?;
        let out = Out::new(out, "out")?;
        let stats = queue.queue.stats();
        out.write(edgepipe_queue_counters {
            pending: stats.pending,
            in_flight: stats.in_flight,
            dead: stats.dead,
            bytes: stats.bytes,
            enqueued: stats.enqueued,
            acked: stats.acked,
            dropped: stats.dropped,
            expired: stats.expired,
            dead_lettered: stats.dead_lettered,
            lost: stats.lost,
        });
        Ok(())
    })
}

/// The queue's counters as one JSON object (the fields of `edgepipe_queue_stats`
/// plus `oldest_created_at`, ISO-8601 or null) in a new buffer stored in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_stats_json(
    queue: *const edgepipe_queue,
    out: *mut *mut edgepipe_buffer,
) -> edgepipe_status {
    panic::status(|| {
        let queue = ffi::try_ref(queue, "queue")?;
        let out = Out::new(out, "out")?;
        let stats = queue.queue.stats();
        let json = serde_json::json!({
            "pending": stats.pending,
            "in_flight": stats.in_flight,
            "dead": stats.dead,
            "bytes": stats.bytes,
            "oldest_created_at": stats.oldest_created_at.map(|at| at.to_iso8601()),
            "enqueued": stats.enqueued,
            "acked": stats.acked,
            "dropped": stats.dropped,
            "expired": stats.expired,
            "dead_lettered": stats.dead_lettered,
            "lost": stats.lost,
        });
        out.write(ffi::into_handle(edgepipe_buffer::new(
            json.to_string().into_bytes(),
        )));
        Ok(())
    })
}

/// Frees an entry handle (the entry stays in flight in the queue). NULL is ignored.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_entry_free(entry: *mut edgepipe_queue_entry) {
    panic::catch_or((), || ffi::free_handle(entry));
}

/// Stores the entry's id, attempts, ids, time and payload in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_entry_info(
    entry: *const edgepipe_queue_entry,
    out: *mut edgepipe_queue_entry_fields,
) -> edgepipe_status {
    panic::status(|| {
        let entry = ffi::try_ref(entry, "entry")?;
        let out = Out::new(out, "out")?;
        let pending = &entry.pending;
        out.write(edgepipe_queue_entry_fields {
            id: pending.id,
            attempts: pending.attempts,
            source_id: pending.entry.source_id.as_ptr().cast(),
            source_id_len: pending.entry.source_id.len(),
            batch_id: pending.entry.batch_id.as_ptr().cast(),
            batch_id_len: pending.entry.batch_id.len(),
            created_at_unix_nanos: pending.entry.created_at.unix_nanos(),
            payload: pending.entry.payload.as_ptr(),
            payload_len: pending.entry.payload.len(),
        });
        Ok(())
    })
}

/// Reads the entry's payload as a batch (as `edgepipe_batch_from_bytes`, within
/// `limits`, NULL for the defaults) and stores it in `*out`.
#[unsafe(no_mangle)]
pub extern "C" fn edgepipe_queue_entry_batch(
    entry: *const edgepipe_queue_entry,
    limits: *const edgepipe_decode_limits,
    out: *mut *mut edgepipe_batch,
) -> edgepipe_status {
    panic::status(|| {
        let entry = ffi::try_ref(entry, "entry")?;
        let limits = ffi::input_or_default(limits).core();
        let out = Out::new(out, "out")?;
        let batch = entry.pending.entry.to_batch(&limits)?;
        out.write(ffi::into_handle(edgepipe_batch::new(batch)));
        Ok(())
    })
}
