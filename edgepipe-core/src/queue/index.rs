//! The bookkeeping every backend shares: which entries are held, which are in
//! flight, waiting for a retry or dead, and the counters. It knows nothing of
//! storage: a backend keeps a handle `H` per entry (the payload itself in memory,
//! a file position in the segmented log) and persists the changes this index
//! reports before it applies them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::{EntryId, EntryInfo, EntryStatus, FullPolicy, NackOutcome, QueueOptions, QueueStats};
use crate::error::{Error, Result};
use crate::record::Timestamp;

/// What the index keeps of an entry besides the backend's handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntryMeta {
    pub source_id: Arc<str>,
    pub batch_id: String,
    pub created_at: Timestamp,
    /// [`Entry::size`](super::Entry::size).
    pub size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Handed out when its turn comes.
    Ready,
    /// Nacked: handed out at or after this time; holds back its source until then.
    Retry(Timestamp),
    /// Handed out and not yet acked or nacked.
    InFlight,
    /// Reached the attempt limit.
    Dead,
}

#[derive(Clone, Debug)]
struct Slot<H> {
    meta: EntryMeta,
    attempts: u32,
    state: State,
    handle: H,
}

/// An entry [`QueueIndex::take`] handed out.
#[derive(Clone, Debug)]
pub(crate) struct Handed<H> {
    pub id: EntryId,
    pub attempts: u32,
    /// Read by the SQLite backend, whose handle is empty; the others find it in their handle.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub meta: EntryMeta,
    pub handle: H,
}

/// Why an entry left the index, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    Acked,
    Dropped,
    Expired,
    Purged,
}

/// The shared state of a queue; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct QueueIndex<H> {
    options: QueueOptions,
    slots: BTreeMap<EntryId, Slot<H>>,
    /// Ids that `take` may consider: every slot that is neither in flight nor dead.
    candidates: BTreeSet<EntryId>,
    /// How many candidates each source has, so a take can stop once every source is held back.
    candidates_per_source: HashMap<Arc<str>, usize>,
    next_id: EntryId,
    bytes: u64,
    stats: QueueStats,
}

// Not every backend uses every method (the memory backend needs no recovery helpers).
impl<H: Clone> QueueIndex<H> {
    pub fn new(options: QueueOptions) -> Self {
        QueueIndex {
            options,
            slots: BTreeMap::new(),
            candidates: BTreeSet::new(),
            candidates_per_source: HashMap::new(),
            next_id: 1,
            bytes: 0,
            stats: QueueStats::default(),
        }
    }

    // The SQLite backend reads these; the segmented log and memory queue keep their own.
    #[cfg(feature = "sqlite")]
    pub fn options(&self) -> &QueueOptions {
        &self.options
    }

    /// The id the next enqueued entry gets.
    pub fn next_id(&self) -> EntryId {
        self.next_id
    }

    /// Makes ids start after `id` (a reopened queue never reuses an id).
    pub fn advance_next_id(&mut self, id: EntryId) {
        self.next_id = self.next_id.max(id.saturating_add(1));
    }

    #[cfg(feature = "sqlite")]
    pub fn contains(&self, id: EntryId) -> bool {
        self.slots.contains_key(&id)
    }

    #[cfg(feature = "sqlite")]
    pub fn meta(&self, id: EntryId) -> Option<&EntryMeta> {
        self.slots.get(&id).map(|slot| &slot.meta)
    }

    /// The ids to drop so `size` more bytes fit (empty when they already fit), or
    /// [`Error::QueueFull`] under [`FullPolicy::Reject`] or when dropping every
    /// entry not in flight would not be enough. Changes nothing. `pending` counts
    /// bytes a backend accepted but has not inserted yet (written, not yet synced).
    pub fn make_room(&self, pending: u64, size: u64) -> Result<Vec<EntryId>> {
        let limit = self.options.max_bytes;
        let held = self.bytes + pending;
        if limit == 0 || held + size <= limit {
            return Ok(Vec::new());
        }
        let full = |reason: String| Error::QueueFull {
            reason,
            limit_bytes: limit,
        };
        if size > limit {
            return Err(full(format!(
                "an entry of {size} bytes is larger than the whole queue"
            )));
        }
        match self.options.full_policy {
            FullPolicy::Reject => Err(full(format!("{held} bytes held, {size} more do not fit"))),
            FullPolicy::DropOldest => {
                let mut freed = 0;
                let mut victims = Vec::new();
                let needed = held + size - limit;
                for (&id, slot) in &self.slots {
                    if freed >= needed {
                        break;
                    }
                    if slot.state != State::InFlight {
                        freed += slot.meta.size;
                        victims.push(id);
                    }
                }
                if freed < needed {
                    return Err(full(format!(
                        "{} bytes held are in flight or being written; {size} more do not fit",
                        held - freed
                    )));
                }
                Ok(victims)
            }
        }
    }

    /// Adds an entry under `id` (enqueue, or recovery on reopen). `attempts` and
    /// `retry_at` restore a nacked entry; `dead` a dead-lettered one.
    pub fn insert(&mut self, id: EntryId, meta: EntryMeta, handle: H) {
        self.bytes += meta.size;
        self.advance_next_id(id);
        self.add_candidate(id, &meta.source_id);
        self.slots.insert(
            id,
            Slot {
                meta,
                attempts: 0,
                state: State::Ready,
                handle,
            },
        );
    }

    /// Counts an accepted enqueue.
    pub fn count_enqueued(&mut self) {
        self.stats.enqueued += 1;
    }

    /// Counts entries found lost to damage on reopen.
    pub fn count_lost(&mut self, lost: u64) {
        self.stats.lost += lost;
    }

    /// Restores a recorded failed attempt (recovery): the entry waits until
    /// `retry_at`, or is dead when `dead`.
    pub fn restore_attempts(
        &mut self,
        id: EntryId,
        attempts: u32,
        retry_at: Timestamp,
        dead: bool,
    ) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        slot.attempts = attempts;
        if dead {
            if slot.state != State::Dead {
                slot.state = State::Dead;
                let source = slot.meta.source_id.clone();
                self.remove_candidate(id, &source);
            }
        } else if slot.state != State::Dead {
            slot.state = State::Retry(retry_at);
        }
    }

    /// Hands out up to `max` entries ready at `now` (see [`Queue::take`](super::Queue::take)),
    /// at most one per source when `one_per_source` ([`Queue::take_heads`](super::Queue::take_heads)),
    /// and lists the ids met on the way whose TTL has passed: the caller records
    /// and [`remove`](Self::remove)s those.
    pub fn take(
        &mut self,
        max: usize,
        now: Timestamp,
        one_per_source: bool,
    ) -> (Vec<Handed<H>>, Vec<EntryId>) {
        let mut handed = Vec::new();
        let mut expired = Vec::new();
        let mut held_back: HashMap<Arc<str>, ()> = HashMap::new();
        let sources = self.candidates_per_source.len();
        for &id in &self.candidates {
            if handed.len() >= max || held_back.len() == sources {
                break;
            }
            let slot = &self.slots[&id];
            if self.is_expired(&slot.meta, now) {
                expired.push(id);
                continue;
            }
            if held_back.contains_key(&slot.meta.source_id) {
                continue;
            }
            if let State::Retry(retry_at) = slot.state
                && retry_at > now
            {
                held_back.insert(slot.meta.source_id.clone(), ());
                continue;
            }
            if one_per_source {
                // Its later entries wait behind the one handed out.
                held_back.insert(slot.meta.source_id.clone(), ());
            }
            handed.push(Handed {
                id,
                attempts: slot.attempts,
                meta: slot.meta.clone(),
                handle: slot.handle.clone(),
            });
        }
        for item in &handed {
            let slot = self.slots.get_mut(&item.id).expect("handed from slots");
            slot.state = State::InFlight;
            let source = slot.meta.source_id.clone();
            self.remove_candidate(item.id, &source);
        }
        (handed, expired)
    }

    /// Puts an in-flight entry back to ready without counting an attempt (a take
    /// that could not read it).
    pub fn release(&mut self, id: EntryId) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        if slot.state == State::InFlight {
            slot.state = State::Ready;
            let source = slot.meta.source_id.clone();
            self.add_candidate(id, &source);
        }
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Checks that `id` is held and not dead (what ack and nack accept).
    pub fn check_live(&self, id: EntryId) -> Result<()> {
        match self.slots.get(&id) {
            Some(slot) if slot.state != State::Dead => Ok(()),
            Some(_) => Err(Error::UnknownEntry {
                id,
                reason: "it is dead-lettered",
            }),
            None => Err(Error::UnknownEntry {
                id,
                reason: "it is not held (acked, dropped, expired, or never enqueued)",
            }),
        }
    }

    /// What a nack of `id` leads to, without changing anything.
    pub fn nack_outcome(&self, id: EntryId, retry_at: Timestamp) -> Result<NackOutcome> {
        self.check_live(id)?;
        let attempts = self.slots[&id].attempts.saturating_add(1);
        Ok(if attempts >= self.options.max_attempts {
            NackOutcome::DeadLettered { attempts }
        } else {
            NackOutcome::Retry { attempts, retry_at }
        })
    }

    /// The outcome of dead-lettering `id` at once.
    pub fn dead_letter_outcome(&self, id: EntryId) -> Result<NackOutcome> {
        self.check_live(id)?;
        Ok(NackOutcome::DeadLettered {
            attempts: self.slots[&id].attempts.saturating_add(1),
        })
    }

    /// Applies a nack whose outcome [`nack_outcome`](Self::nack_outcome) gave.
    pub fn apply_nack(&mut self, id: EntryId, outcome: NackOutcome) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let source = slot.meta.source_id.clone();
        let was_candidate = matches!(slot.state, State::Ready | State::Retry(_));
        match outcome {
            NackOutcome::Retry { attempts, retry_at } => {
                slot.attempts = attempts;
                slot.state = State::Retry(retry_at);
                if !was_candidate {
                    self.add_candidate(id, &source);
                }
            }
            NackOutcome::DeadLettered { attempts } => {
                slot.attempts = attempts;
                slot.state = State::Dead;
                self.stats.dead_lettered += 1;
                if was_candidate {
                    self.remove_candidate(id, &source);
                }
            }
        }
    }

    /// Removes `id` for good, counting why. Unknown ids are ignored.
    pub fn remove(&mut self, id: EntryId, why: Removal) -> Option<H> {
        let slot = self.slots.remove(&id)?;
        self.bytes -= slot.meta.size;
        if matches!(slot.state, State::Ready | State::Retry(_)) {
            self.remove_candidate(id, &slot.meta.source_id);
        }
        match why {
            Removal::Acked => self.stats.acked += 1,
            Removal::Dropped => self.stats.dropped += 1,
            Removal::Expired => self.stats.expired += 1,
            Removal::Purged => {}
        }
        Some(slot.handle)
    }

    /// Ids of entries (not in flight, not dead) whose TTL has passed at `now`.
    pub fn expired_ids(&self, now: Timestamp) -> Vec<EntryId> {
        self.candidates
            .iter()
            .copied()
            .filter(|id| self.is_expired(&self.slots[id].meta, now))
            .collect()
    }

    /// Up to `max` dead-lettered entries, oldest first.
    pub fn dead(&self, max: usize) -> Vec<Handed<H>> {
        self.slots
            .iter()
            .filter(|(_, slot)| slot.state == State::Dead)
            .take(max)
            .map(|(&id, slot)| Handed {
                id,
                attempts: slot.attempts,
                meta: slot.meta.clone(),
                handle: slot.handle.clone(),
            })
            .collect()
    }

    /// Ids of every dead-lettered entry.
    pub fn dead_ids(&self) -> Vec<EntryId> {
        self.slots
            .iter()
            .filter(|(_, slot)| slot.state == State::Dead)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Ids of every entry held, in order.
    pub fn ids(&self) -> impl Iterator<Item = EntryId> + '_ {
        self.slots.keys().copied()
    }

    /// Every entry held with its status, in id order (inspection).
    pub fn infos(&self) -> Vec<EntryInfo> {
        self.slots
            .iter()
            .map(|(&id, slot)| EntryInfo {
                id,
                attempts: slot.attempts,
                status: match slot.state {
                    State::Ready => EntryStatus::Ready,
                    State::Retry(at) => EntryStatus::Retry(at),
                    State::InFlight => EntryStatus::InFlight,
                    State::Dead => EntryStatus::Dead,
                },
                source_id: slot.meta.source_id.to_string(),
                batch_id: slot.meta.batch_id.clone(),
                created_at: slot.meta.created_at,
                size: slot.meta.size,
            })
            .collect()
    }

    pub fn stats(&self) -> QueueStats {
        let mut stats = self.stats.clone();
        stats.pending = self.candidates.len() as u64;
        stats.dead = self
            .slots
            .values()
            .filter(|slot| slot.state == State::Dead)
            .count() as u64;
        stats.in_flight = self.slots.len() as u64 - stats.pending - stats.dead;
        stats.bytes = self.bytes;
        stats.oldest_created_at = self
            .slots
            .values()
            .filter(|slot| slot.state != State::Dead)
            .map(|slot| slot.meta.created_at)
            .min();
        stats
    }

    fn is_expired(&self, meta: &EntryMeta, now: Timestamp) -> bool {
        let Some(ttl) = self.options.ttl else {
            return false;
        };
        let ttl_nanos = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX);
        now.unix_nanos()
            .saturating_sub(meta.created_at.unix_nanos())
            > ttl_nanos
    }

    fn add_candidate(&mut self, id: EntryId, source: &Arc<str>) {
        if self.candidates.insert(id) {
            *self
                .candidates_per_source
                .entry(source.clone())
                .or_default() += 1;
        }
    }

    fn remove_candidate(&mut self, id: EntryId, source: &Arc<str>) {
        if self.candidates.remove(&id)
            && let Some(count) = self.candidates_per_source.get_mut(source)
        {
            *count -= 1;
            if *count == 0 {
                self.candidates_per_source.remove(source);
            }
        }
    }
}
