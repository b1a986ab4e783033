//! The in-memory backend: bounded in bytes, the same contract and policies as
//! the durable ones, nothing survives the process. For tests, and for devices
//! without storage that would rather shed than block.

use std::sync::{Arc, Mutex, MutexGuard};

use super::index::{EntryMeta, QueueIndex, Removal};
use super::{Durability, Entry, EntryId, NackOutcome, Pending, Queue, QueueOptions, QueueStats};
use crate::error::Result;
use crate::record::Timestamp;

/// A [`Queue`] held in memory.
///
/// ```
/// use edgepipe_core::queue::{Entry, MemoryQueue, NackOutcome, Queue, QueueOptions};
/// use edgepipe_core::Timestamp;
///
/// let queue = MemoryQueue::new(QueueOptions::default());
/// let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
/// let entry = |batch: &str| Entry {
///     source_id: "gateway-7".into(),
///     batch_id: batch.into(),
///     created_at: now,
///     payload: b"...".to_vec(),
/// };
/// queue.enqueue(entry("b1"))?;
/// queue.enqueue(entry("b2"))?;
///
/// let taken = queue.take(10, now)?;
/// assert_eq!(taken.len(), 2);
/// queue.ack(taken[0].id)?;
/// // b2 failed: it waits for its retry time, and holds back later batches of gateway-7.
/// let later = Timestamp::from_unix_seconds(1_700_000_030).unwrap();
/// assert!(matches!(queue.nack(taken[1].id, later)?, NackOutcome::Retry { attempts: 1, .. }));
/// assert!(queue.take(10, now)?.is_empty());
/// assert_eq!(queue.take(10, later)?[0].entry.batch_id, "b2");
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Debug)]
pub struct MemoryQueue {
    index: Mutex<QueueIndex<Arc<Entry>>>,
}

impl MemoryQueue {
    /// An empty queue.
    pub fn new(options: QueueOptions) -> Self {
        MemoryQueue {
            index: Mutex::new(QueueIndex::new(options)),
        }
    }

    fn take_with(&self, max: usize, now: Timestamp, one_per_source: bool) -> Vec<Pending> {
        let mut index = self.index();
        let (handed, expired) = index.take(max, now, one_per_source);
        for id in expired {
            index.remove(id, Removal::Expired);
        }
        handed
            .iter()
            .map(|item| pending(item.id, item.attempts, &item.handle))
            .collect()
    }

    fn index(&self) -> MutexGuard<'_, QueueIndex<Arc<Entry>>> {
        // A panic while holding the lock leaves the index consistent (every
        // mutation completes before it can panic), so a poisoned lock is still usable.
        self.index
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

fn pending(id: EntryId, attempts: u32, entry: &Entry) -> Pending {
    Pending {
        id,
        attempts,
        entry: entry.clone(),
    }
}

impl Queue for MemoryQueue {
    fn durability(&self) -> Durability {
        Durability::Memory
    }

    fn enqueue(&self, entry: Entry) -> Result<EntryId> {
        Ok(self.enqueue_all(vec![entry])?[0])
    }

    fn enqueue_all(&self, entries: Vec<Entry>) -> Result<Vec<EntryId>> {
        let mut index = self.index();
        // Room for all of them first: on error none is accepted.
        let size = entries.iter().map(Entry::size).sum();
        for victim in index.make_room(0, size)? {
            index.remove(victim, Removal::Dropped);
        }
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            let id = index.next_id();
            let meta = EntryMeta {
                source_id: Arc::from(entry.source_id.as_str()),
                batch_id: entry.batch_id.clone(),
                created_at: entry.created_at,
                size: entry.size(),
            };
            index.insert(id, meta, Arc::new(entry));
            index.count_enqueued();
            ids.push(id);
        }
        Ok(ids)
    }

    fn take(&self, max: usize, now: Timestamp) -> Result<Vec<Pending>> {
        Ok(self.take_with(max, now, false))
    }

    fn take_heads(&self, max: usize, now: Timestamp) -> Result<Vec<Pending>> {
        Ok(self.take_with(max, now, true))
    }

    fn ack(&self, id: EntryId) -> Result<()> {
        let mut index = self.index();
        index.check_live(id)?;
        index.remove(id, Removal::Acked);
        Ok(())
    }

    fn nack(&self, id: EntryId, retry_at: Timestamp) -> Result<NackOutcome> {
        let mut index = self.index();
        let outcome = index.nack_outcome(id, retry_at)?;
        index.apply_nack(id, outcome);
        Ok(outcome)
    }

    fn release(&self, id: EntryId) -> Result<()> {
        let mut index = self.index();
        index.check_live(id)?;
        index.release(id);
        Ok(())
    }

    fn dead_letter(&self, id: EntryId) -> Result<u32> {
        let mut index = self.index();
        let outcome = index.dead_letter_outcome(id)?;
        index.apply_nack(id, outcome);
        Ok(outcome.attempts())
    }

    fn expire(&self, now: Timestamp) -> Result<u64> {
        let mut index = self.index();
        let expired = index.expired_ids(now);
        for &id in &expired {
            index.remove(id, Removal::Expired);
        }
        Ok(expired.len() as u64)
    }

    fn dead_letters(&self, max: usize) -> Result<Vec<Pending>> {
        Ok(self
            .index()
            .dead(max)
            .iter()
            .map(|item| pending(item.id, item.attempts, &item.handle))
            .collect())
    }

    fn purge_dead_letters(&self) -> Result<u64> {
        let mut index = self.index();
        let dead = index.dead_ids();
        for &id in &dead {
            index.remove(id, Removal::Purged);
        }
        Ok(dead.len() as u64)
    }

    fn stats(&self) -> QueueStats {
        self.index().stats()
    }
}
