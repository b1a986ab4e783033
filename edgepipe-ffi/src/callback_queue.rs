//! A queue implemented in C: `edgepipe_queue_callbacks` behind the core's `Queue`
//! trait, so the batch → queue path and the delivery worker use it like the
//! core's own queues.

use std::ffi::{c_char, c_void};
use std::io;
use std::sync::{Mutex, MutexGuard};

use edgepipe_core::queue::{Durability, Entry, EntryId, NackOutcome, Pending, Queue, QueueStats};
use edgepipe_core::record::Timestamp;
use edgepipe_core::{Error, Result};

use crate::error::{Failure, edgepipe_status};
use crate::ffi;

/// One queue entry as it crosses the callbacks, borrowed: the pointers belong to
/// whoever filled the struct in.
///
/// - In `enqueue`, edgepipe fills it in; the callback may read it only until it
///   returns, and copies what it keeps. `id` and `attempts` are 0 there.
/// - In `take`, the callback fills it in with pointers into its own memory, which
///   must stay valid until the callback returns *and* edgepipe has copied them,
///   that is until the next call of any callback of this queue; edgepipe never
///   frees them.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct edgepipe_queue_entry_view {
    /// The entry's id, given by the queue at enqueue; increasing, never reused.
    pub id: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The batch's source (UTF-8, not NUL-terminated); ordering is kept per source.
    pub source_id: *const c_char,
    /// Bytes in `source_id`.
    pub source_id_len: usize,
    /// The batch's deterministic id (UTF-8, not NUL-terminated).
    pub batch_id: *const c_char,
    /// Bytes in `batch_id`.
    pub batch_id_len: usize,
    /// When the batch was closed (Unix nanoseconds).
    pub created_at_unix_nanos: i64,
    /// The bytes to deliver (a batch's binary form, `edgepipe_batch_to_bytes`).
    pub payload: *const u8,
    /// Bytes in `payload`.
    pub payload_len: usize,
}

impl edgepipe_queue_entry_view {
    fn empty() -> Self {
        edgepipe_queue_entry_view {
            id: 0,
            attempts: 0,
            source_id: std::ptr::null(),
            source_id_len: 0,
            batch_id: std::ptr::null(),
            batch_id_len: 0,
            created_at_unix_nanos: 0,
            payload: std::ptr::null(),
            payload_len: 0,
        }
    }
}

/// A queue written in C, for `edgepipe_queue_new_from_callbacks`: a store the
/// firmware already has (flash pages, an RTOS queue) used by edgepipe's batch →
/// queue path and by the delivery worker.
///
/// Every callback returns an `edgepipe_status` value as an `int32_t` (0 for
/// success); `EDGEPIPE_STATUS_QUEUE_FULL` from `enqueue` and
/// `EDGEPIPE_STATUS_UNKNOWN_ENTRY` from `ack`/`nack` are passed on as such, any
/// other failure becomes `EDGEPIPE_STATUS_IO`.
///
/// The contract the callbacks keep is the core's `Queue`: `take` hands out the
/// oldest ready entry (never nacked, or whose `retry_at` has come) and marks it in
/// flight, so that it is not handed out again until nacked or released; `ack`
/// removes it for good; `nack` counts a failed attempt and schedules it at
/// `retry_at`, or dead-letters it, saying which.
///
/// Threads: edgepipe calls the callbacks of one queue one at a time (under a lock
/// of its own), but not always from the same thread: the delivery worker calls
/// them from its thread. `ctx` is passed to every callback untouched.
///
/// Ownership: edgepipe copies this struct; `ctx` stays the caller's, and
/// `free_ctx` (when not NULL) is called once with it by `edgepipe_queue_free` (or
/// when the delivery worker that used the queue last lets it go). The buffers of
/// `edgepipe_queue_entry_view` are borrowed as stated there. No callback may call
/// back into the same `edgepipe_queue`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug)]
pub struct edgepipe_queue_callbacks {
    /// Passed to every callback.
    pub ctx: *mut c_void,
    /// Required. Stores a copy of `*entry` and its new id in `*out_id`; returns
    /// only once the entry is as durable as the queue promises.
    pub enqueue: Option<
        extern "C" fn(
            ctx: *mut c_void,
            entry: *const edgepipe_queue_entry_view,
            out_id: *mut u64,
        ) -> i32,
    >,
    /// Required. Fills `*out_entry` with the oldest entry ready at `now_unix_nanos`
    /// and sets `*out_found` to true, marking it in flight; or sets `*out_found` to
    /// false when none is ready.
    pub take: Option<
        extern "C" fn(
            ctx: *mut c_void,
            now_unix_nanos: i64,
            out_entry: *mut edgepipe_queue_entry_view,
            out_found: *mut bool,
        ) -> i32,
    >,
    /// Required. Removes a delivered in-flight entry for good.
    pub ack: Option<extern "C" fn(ctx: *mut c_void, id: u64) -> i32>,
    /// Required. Counts a failed attempt of an in-flight entry; stores the attempts
    /// so far in `*out_attempts`, and in `*out_dead_lettered` whether the entry was
    /// dead-lettered (never handed out again) rather than scheduled at `retry_at`.
    pub nack: Option<
        extern "C" fn(
            ctx: *mut c_void,
            id: u64,
            retry_at_unix_nanos: i64,
            out_attempts: *mut u32,
            out_dead_lettered: *mut bool,
        ) -> i32,
    >,
    /// Required. Stores the entries held (not dead-lettered) and their bytes.
    pub len:
        Option<extern "C" fn(ctx: *mut c_void, out_entries: *mut u64, out_bytes: *mut u64) -> i32>,
    /// Optional. Hands an in-flight entry back, ready at once, without counting an
    /// attempt. When NULL, edgepipe nacks it with `retry_at` = now instead, which
    /// counts an attempt: provide it if the delivery worker will use the queue.
    pub release: Option<extern "C" fn(ctx: *mut c_void, id: u64) -> i32>,
    /// Optional. Dead-letters an in-flight entry now (a permanent failure). When
    /// NULL, edgepipe nacks it with the latest `retry_at` there is (`INT64_MAX`),
    /// which parks it for good without losing it.
    pub dead_letter: Option<extern "C" fn(ctx: *mut c_void, id: u64) -> i32>,
    /// Optional. Called once with `ctx` when edgepipe lets the queue go.
    pub free_ctx: Option<extern "C" fn(ctx: *mut c_void)>,
}

/// Callbacks that are required, checked once when the queue is made.
struct Required {
    enqueue: extern "C" fn(*mut c_void, *const edgepipe_queue_entry_view, *mut u64) -> i32,
    take: extern "C" fn(*mut c_void, i64, *mut edgepipe_queue_entry_view, *mut bool) -> i32,
    ack: extern "C" fn(*mut c_void, u64) -> i32,
    nack: extern "C" fn(*mut c_void, u64, i64, *mut u32, *mut bool) -> i32,
    len: extern "C" fn(*mut c_void, *mut u64, *mut u64) -> i32,
}

/// The core's `Queue` over C callbacks; every call is made under one lock.
pub(crate) struct CallbackQueue {
    callbacks: Mutex<edgepipe_queue_callbacks>,
    required: Required,
}

impl std::fmt::Debug for CallbackQueue {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CallbackQueue")
            .finish_non_exhaustive()
    }
}

impl CallbackQueue {
    pub(crate) fn new(callbacks: edgepipe_queue_callbacks) -> Result<Self, Failure> {
        let missing = |name: &str| Failure::null_argument(&format!("callbacks->{name}"));
        let required = Required {
            enqueue: callbacks.enqueue.ok_or_else(|| missing("enqueue"))?,
            take: callbacks.take.ok_or_else(|| missing("take"))?,
            ack: callbacks.ack.ok_or_else(|| missing("ack"))?,
            nack: callbacks.nack.ok_or_else(|| missing("nack"))?,
            len: callbacks.len.ok_or_else(|| missing("len"))?,
        };
        Ok(CallbackQueue {
            callbacks: Mutex::new(callbacks),
            required,
        })
    }

    fn lock(&self) -> MutexGuard<'_, edgepipe_queue_callbacks> {
        self.callbacks
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Drop for CallbackQueue {
    fn drop(&mut self) {
        let callbacks = self.lock();
        if let Some(free_ctx) = callbacks.free_ctx {
            free_ctx(callbacks.ctx);
        }
    }
}

/// The core error for a callback's failure status.
fn failed(operation: &str, code: i32, id: Option<u64>) -> Error {
    if code == edgepipe_status::QueueFull as i32 {
        return Error::QueueFull {
            limit_bytes: 0,
            reason: format!("the C queue's {operation} callback refused the entry"),
        };
    }
    if code == edgepipe_status::UnknownEntry as i32 {
        return Error::UnknownEntry {
            id: id.unwrap_or(0),
            reason: "the C queue does not hold it in flight",
        };
    }
    Error::io(
        format!("the C queue's {operation} callback"),
        io::Error::other(format!("returned status {code}")),
    )
}

fn check(operation: &str, code: i32, id: Option<u64>) -> Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(failed(operation, code, id))
    }
}

/// A `take` callback's entry, copied out of the C queue's memory.
fn copy_entry(view: &edgepipe_queue_entry_view) -> Result<Pending> {
    let bad = |failure: Failure| {
        Error::io(
            "the C queue's take callback",
            io::Error::other(format!("returned an unusable entry: {}", failure.message)),
        )
    };
    let source_id = ffi::try_str(view.source_id, view.source_id_len, "source_id").map_err(bad)?;
    let batch_id = ffi::try_str(view.batch_id, view.batch_id_len, "batch_id").map_err(bad)?;
    let payload = ffi::try_slice(view.payload, view.payload_len, "payload").map_err(bad)?;
    Ok(Pending {
        id: view.id,
        attempts: view.attempts,
        entry: Entry {
            source_id: source_id.to_owned(),
            batch_id: batch_id.to_owned(),
            created_at: Timestamp::from_unix_nanos(view.created_at_unix_nanos),
            payload: payload.to_vec(),
        },
    })
}

impl Queue for CallbackQueue {
    fn durability(&self) -> Durability {
        // edgepipe cannot know what the C store promises; claim the least.
        Durability::Memory
    }

    fn enqueue(&self, entry: Entry) -> Result<EntryId> {
        let callbacks = self.lock();
        let view = edgepipe_queue_entry_view {
            id: 0,
            attempts: 0,
            source_id: entry.source_id.as_ptr().cast(),
            source_id_len: entry.source_id.len(),
            batch_id: entry.batch_id.as_ptr().cast(),
            batch_id_len: entry.batch_id.len(),
            created_at_unix_nanos: entry.created_at.unix_nanos(),
            payload: entry.payload.as_ptr(),
            payload_len: entry.payload.len(),
        };
        let mut id = 0;
        check(
            "enqueue",
            (self.required.enqueue)(callbacks.ctx, &view, &mut id),
            None,
        )?;
        Ok(id)
    }

    /// One `enqueue` callback per entry: the C queue has no batch call, so an error
    /// part-way leaves the entries before it enqueued (the error says which).
    fn enqueue_all(&self, entries: Vec<Entry>) -> Result<Vec<EntryId>> {
        let mut ids = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            match self.enqueue(entry) {
                Ok(id) => ids.push(id),
                Err(error) => {
                    return Err(Error::io(
                        format!(
                            "enqueueing entry {index} into the C queue ({index} enqueued before it)"
                        ),
                        io::Error::other(error.message_with_sources()),
                    ));
                }
            }
        }
        Ok(ids)
    }

    fn take(&self, max: usize, now: Timestamp) -> Result<Vec<Pending>> {
        let callbacks = self.lock();
        let mut taken = Vec::new();
        while taken.len() < max {
            let mut view = edgepipe_queue_entry_view::empty();
            let mut found = false;
            check(
                "take",
                (self.required.take)(callbacks.ctx, now.unix_nanos(), &mut view, &mut found),
                None,
            )?;
            if !found {
                break;
            }
            taken.push(copy_entry(&view)?);
        }
        Ok(taken)
    }

    fn ack(&self, id: EntryId) -> Result<()> {
        let callbacks = self.lock();
        check("ack", (self.required.ack)(callbacks.ctx, id), Some(id))
    }

    fn nack(&self, id: EntryId, retry_at: Timestamp) -> Result<NackOutcome> {
        let callbacks = self.lock();
        self.nack_locked(&callbacks, id, retry_at)
    }

    fn release(&self, id: EntryId) -> Result<()> {
        let callbacks = self.lock();
        match callbacks.release {
            Some(release) => check("release", release(callbacks.ctx, id), Some(id)),
            None => self
                .nack_locked(&callbacks, id, Timestamp::now())
                .map(|_| ()),
        }
    }

    fn dead_letter(&self, id: EntryId) -> Result<u32> {
        let callbacks = self.lock();
        match callbacks.dead_letter {
            Some(dead_letter) => {
                check("dead_letter", dead_letter(callbacks.ctx, id), Some(id))?;
                Ok(0)
            }
            None => self
                .nack_locked(&callbacks, id, Timestamp::from_unix_nanos(i64::MAX))
                .map(NackOutcome::attempts),
        }
    }

    fn expire(&self, _now: Timestamp) -> Result<u64> {
        // A C queue expires entries itself, if it does at all.
        Ok(0)
    }

    fn dead_letters(&self, _max: usize) -> Result<Vec<Pending>> {
        // Dead letters stay in the C queue, which lists them itself.
        Ok(Vec::new())
    }

    fn purge_dead_letters(&self) -> Result<u64> {
        Ok(0)
    }

    fn stats(&self) -> QueueStats {
        let callbacks = self.lock();
        let (mut entries, mut bytes) = (0, 0);
        if (self.required.len)(callbacks.ctx, &mut entries, &mut bytes) != 0 {
            // Counters are best effort; a failing `len` reads as empty.
            (entries, bytes) = (0, 0);
        }
        QueueStats {
            pending: entries,
            bytes,
            ..QueueStats::default()
        }
    }
}

impl CallbackQueue {
    fn nack_locked(
        &self,
        callbacks: &edgepipe_queue_callbacks,
        id: EntryId,
        retry_at: Timestamp,
    ) -> Result<NackOutcome> {
        let mut attempts = 0;
        let mut dead = false;
        check(
            "nack",
            (self.required.nack)(
                callbacks.ctx,
                id,
                retry_at.unix_nanos(),
                &mut attempts,
                &mut dead,
            ),
            Some(id),
        )?;
        Ok(if dead {
            NackOutcome::DeadLettered { attempts }
        } else {
            NackOutcome::Retry { attempts, retry_at }
        })
    }
}
