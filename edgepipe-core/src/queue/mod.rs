//! Stage 5: the durable store-and-forward queue between batching and delivery.
//!
//! A [`Queue`] holds encoded batches until the cloud has acknowledged them. Every
//! backend keeps the same contract, so a gateway can swap one for another:
//!
//! - [`enqueue`](Queue::enqueue) returns only once the entry is as durable as the
//!   backend promises ([`Durability`]); an entry it refused was never accepted.
//! - [`take`](Queue::take) hands out ready entries, oldest first and in enqueue
//!   order per source, and marks them *in flight*. Nothing in flight is handed out
//!   twice until it is nacked, or until the queue is reopened (a restart resends at
//!   most what was in flight).
//! - No entry is handed out while an earlier entry of its source waits for a retry,
//!   so a consumer that sends a take's entries in order and stops at the first
//!   failure delivers every source in order.
//! - [`ack`](Queue::ack) removes a delivered entry for good; [`nack`](Queue::nack)
//!   counts a failed attempt and schedules the next one, and after
//!   [`QueueOptions::max_attempts`] attempts the entry is dead-lettered: kept for
//!   inspection, never handed out again, and no longer holding back its source.
//! - Entries older than [`QueueOptions::ttl`] (by their `created_at`) expire and are
//!   counted, never silently dropped.
//! - The queue is bounded by [`QueueOptions::max_bytes`] with a stated
//!   [`FullPolicy`].
//!
//! Times are passed in by the caller (`now`), like the batcher's clock, so tests
//! and replays are deterministic.

use std::time::Duration;

mod index;
pub mod log;
mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use log::{
    CommitStats, Finding, Fs, FsFile, Inspection, LogOptions, Repair, SegmentReport, SegmentedLog,
    SimFs, StateReport, StdFs, VerifyReport,
};
pub use memory::MemoryQueue;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteQueue;

use crate::batch::{Batch, DecodeLimits};
use crate::error::Result;
use crate::record::Timestamp;

/// The id a queue gives an entry at enqueue: increasing in enqueue order, never reused.
pub type EntryId = u64;

/// What is enqueued: an encoded batch and what the queue needs to order and expire it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The batch's producing source; ordering is kept per source.
    pub source_id: String,
    /// The batch's deterministic id (see [`crate::batch`]), kept for inspection and dedup.
    pub batch_id: String,
    /// When the batch was closed; the TTL counts from here.
    pub created_at: Timestamp,
    /// The bytes to deliver, usually [`Batch::to_bytes`].
    pub payload: Vec<u8>,
}

impl Entry {
    /// The entry that carries `batch` (its envelope and payload, [`Batch::to_bytes`]).
    pub fn from_batch(batch: &Batch) -> Entry {
        Entry {
            source_id: batch.envelope.source_id.clone(),
            batch_id: batch.envelope.batch_id.clone(),
            created_at: batch.envelope.created_at,
            payload: batch.to_bytes(),
        }
    }

    /// Reads the payload back as a batch (sizes checked against `limits`).
    pub fn to_batch(&self, limits: &DecodeLimits) -> Result<Batch> {
        Batch::from_bytes(&self.payload, limits)
    }

    /// Bytes the entry counts against [`QueueOptions::max_bytes`].
    pub fn size(&self) -> u64 {
        (self.payload.len() + self.source_id.len() + self.batch_id.len()) as u64
    }
}

/// An entry handed out by [`Queue::take`] (or listed by [`Queue::dead_letters`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Pass this to [`Queue::ack`] or [`Queue::nack`].
    pub id: EntryId,
    /// Failed attempts so far (persisted across restarts by durable backends).
    pub attempts: u32,
    /// The entry as enqueued.
    pub entry: Entry,
}

/// What a [`Queue::nack`] did with the entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NackOutcome {
    /// The entry will be handed out again at or after `retry_at`.
    Retry {
        /// Failed attempts so far, this one included.
        attempts: u32,
        /// Not handed out before this time.
        retry_at: Timestamp,
    },
    /// The entry reached [`QueueOptions::max_attempts`] and was dead-lettered.
    DeadLettered {
        /// Failed attempts, this one included.
        attempts: u32,
    },
}

impl NackOutcome {
    /// Failed attempts so far, the one that led to this outcome included.
    pub fn attempts(self) -> u32 {
        match self {
            NackOutcome::Retry { attempts, .. } | NackOutcome::DeadLettered { attempts } => {
                attempts
            }
        }
    }
}

/// What happens when an enqueue would take the queue past [`QueueOptions::max_bytes`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FullPolicy {
    /// Refuse the new entry with [`Error::QueueFull`](crate::Error::QueueFull): backpressure
    /// the caller can act on (wait, aggregate harder, shed). The default, because it
    /// loses nothing the queue already accepted.
    #[default]
    Reject,
    /// Drop the oldest entries (not in flight) until the new one fits, counting them
    /// in [`QueueStats::dropped`]: for telemetry where fresh readings matter more.
    DropOldest,
}

/// How durable an acknowledged enqueue is, as stated by each backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Held in memory only: lost with the process.
    Memory,
    /// Written and fdatasync'ed (group commit) before `enqueue` returns: survives
    /// SIGKILL and power loss.
    Synced,
    /// Written to the OS before `enqueue` returns, synced later: survives SIGKILL,
    /// not power loss.
    Written,
}

/// Options every backend reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueOptions {
    /// Bound on the bytes of all entries held (see [`Entry::size`]); `0` means unbounded.
    pub max_bytes: u64,
    /// What an enqueue does when the bound would be passed.
    pub full_policy: FullPolicy,
    /// Failed attempts after which an entry is dead-lettered.
    pub max_attempts: u32,
    /// Entries whose `created_at` is older than this expire; `None` keeps them until delivered.
    pub ttl: Option<Duration>,
}

impl Default for QueueOptions {
    /// 256 MiB, reject when full, 10 attempts (the seed's `attempts < 10`), no TTL.
    fn default() -> Self {
        QueueOptions {
            max_bytes: 256 * 1024 * 1024,
            full_policy: FullPolicy::Reject,
            max_attempts: 10,
            ttl: None,
        }
    }
}

/// Where an entry held by a queue stands (inspection, e.g. `edgepipe-queue stats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryStatus {
    /// Handed out by the next `take` whose turn reaches it.
    Ready,
    /// Nacked; not handed out before this time.
    Retry(Timestamp),
    /// Handed out, neither acked nor nacked yet.
    InFlight,
    /// Dead-lettered.
    Dead,
}

/// One entry held by a queue, without its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// The entry's id.
    pub id: EntryId,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Where it stands.
    pub status: EntryStatus,
    /// [`Entry::source_id`].
    pub source_id: String,
    /// [`Entry::batch_id`].
    pub batch_id: String,
    /// [`Entry::created_at`].
    pub created_at: Timestamp,
    /// [`Entry::size`].
    pub size: u64,
}

/// Counters and gauges of a queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Entries held that are neither in flight nor dead-lettered.
    pub pending: u64,
    /// Entries handed out by `take` and not yet acked or nacked.
    pub in_flight: u64,
    /// Dead-lettered entries still held.
    pub dead: u64,
    /// Bytes of all entries held (pending, in flight and dead), as counted for `max_bytes`.
    pub bytes: u64,
    /// `created_at` of the oldest entry held that is not dead-lettered.
    pub oldest_created_at: Option<Timestamp>,
    /// Entries accepted since the queue was opened.
    pub enqueued: u64,
    /// Entries acked since the queue was opened.
    pub acked: u64,
    /// Entries dropped by [`FullPolicy::DropOldest`] since the queue was opened.
    pub dropped: u64,
    /// Entries expired by the TTL since the queue was opened.
    pub expired: u64,
    /// Entries dead-lettered since the queue was opened.
    pub dead_lettered: u64,
    /// Entries found lost to damage when the queue was opened (counted from gaps in
    /// the sequence of a durable backend; always 0 in memory).
    pub lost: u64,
}

/// A store-and-forward queue of encoded batches. Safe to share between threads.
pub trait Queue: Send + Sync {
    /// What an `Ok` from [`enqueue`](Self::enqueue) guarantees.
    fn durability(&self) -> Durability;

    /// Adds an entry; returns its id once it is as durable as [`durability`](Self::durability) says.
    fn enqueue(&self, entry: Entry) -> Result<EntryId>;

    /// Adds several entries with one durability point (one sync for all of them in a
    /// durable backend); the ids are in the order given. All or nothing: on error
    /// none is acknowledged and none is served later. (There is no default made of
    /// [`Queue::enqueue`] calls, because a failure part-way would leave a prefix
    /// enqueued behind an error.)
    fn enqueue_all(&self, entries: Vec<Entry>) -> Result<Vec<EntryId>>;

    /// Up to `max` entries ready at `now` (never nacked, or whose retry time has
    /// come), oldest first, in order per source; they are in flight until acked or nacked.
    /// Entries whose TTL has passed at `now` are expired instead of handed out.
    fn take(&self, max: usize, now: Timestamp) -> Result<Vec<Pending>>;

    /// Like [`take`](Self::take), but at most one entry per source: the next entry
    /// of up to `max` sources, oldest first. A consumer that picks among sources
    /// (the delivery loop's backlog pacing) sees every source's next batch
    /// without reading the sources' later batches, and whichever it sends, each
    /// source's order is kept. Release the ones it does not send.
    ///
    /// The default takes the oldest `max` entries and releases all but each
    /// source's first, so it sees fewer sources; the backends here override it.
    fn take_heads(&self, max: usize, now: Timestamp) -> Result<Vec<Pending>> {
        let mut seen = std::collections::HashSet::new();
        let mut heads = Vec::new();
        for pending in self.take(max, now)? {
            if seen.insert(pending.entry.source_id.clone()) {
                heads.push(pending);
            } else {
                self.release(pending.id)?;
            }
        }
        Ok(heads)
    }

    /// The entry was delivered: it is removed for good.
    fn ack(&self, id: EntryId) -> Result<()>;

    /// Delivery of the entry failed: count the attempt and retry at `retry_at`, or
    /// dead-letter it after [`QueueOptions::max_attempts`] attempts.
    fn nack(&self, id: EntryId, retry_at: Timestamp) -> Result<NackOutcome>;

    /// Hands an in-flight entry back without counting an attempt (a consumer that
    /// stops before sending it, or an endpoint found unreachable by a probe): it is
    /// ready again at once, in its place.
    fn release(&self, id: EntryId) -> Result<()>;

    /// Dead-letters the entry now, whatever its attempt count (a permanent failure:
    /// retrying cannot help); returns its attempts, this one included.
    fn dead_letter(&self, id: EntryId) -> Result<u32>;

    /// Expires every entry whose TTL has passed at `now`; returns how many.
    fn expire(&self, now: Timestamp) -> Result<u64>;

    /// Up to `max` dead-lettered entries, oldest first.
    fn dead_letters(&self, max: usize) -> Result<Vec<Pending>>;

    /// Removes dead-lettered entries for good; returns how many.
    fn purge_dead_letters(&self) -> Result<u64>;

    /// Current counters.
    fn stats(&self) -> QueueStats;
}
