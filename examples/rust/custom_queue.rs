//! Bringing your own queue: any store that can keep batches in order per source
//! can back the delivery worker, through the `Queue` trait.
//!
//! ```text
//! cargo run -p edgepipe-examples --bin custom-queue
//! ```
//!
//! `ListQueue` keeps entries in a list behind a mutex (swap the list for your
//! device's flash store, a ring buffer in battery-backed RAM, a database). The
//! delivery loop then drains it into a sink that fails its first attempt, so the
//! queue sees a take, a nack with a retry time, a second take and an ack.

use std::sync::{Arc, Mutex, MutexGuard};

use edgepipe_core::batch::{Batch, BatchEncoder, Codec, Compression};
use edgepipe_core::deliver::{Delivered, Delivery, DeliveryOptions, SendFailure, Sink, Step};
use edgepipe_core::queue::{
    Durability, Entry, EntryId, NackOutcome, Pending, Queue, QueueOptions, QueueStats,
};
use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};
use edgepipe_core::{Error, Result};

#[derive(Debug)]
struct Slot {
    id: EntryId,
    entry: Entry,
    attempts: u32,
    /// Not handed out before this time (after a nack).
    retry_at: Timestamp,
    in_flight: bool,
    dead: bool,
}

#[derive(Debug, Default)]
struct State {
    next_id: EntryId,
    slots: Vec<Slot>,
    enqueued: u64,
    acked: u64,
    dead_lettered: u64,
}

/// A queue in a list: oldest first, one source's entries never overtaking each other.
#[derive(Debug)]
struct ListQueue {
    options: QueueOptions,
    state: Mutex<State>,
}

impl ListQueue {
    fn new(options: QueueOptions) -> Self {
        ListQueue {
            options,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the list as it was between calls.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn unknown(id: EntryId) -> Error {
        Error::UnknownEntry {
            id,
            reason: "not held by this queue",
        }
    }
}

fn live(state: &mut State, id: EntryId) -> Result<usize> {
    state
        .slots
        .iter()
        .position(|slot| slot.id == id && !slot.dead)
        .ok_or_else(|| ListQueue::unknown(id))
}

impl Queue for ListQueue {
    fn durability(&self) -> Durability {
        Durability::Memory
    }

    fn enqueue(&self, entry: Entry) -> Result<EntryId> {
        Ok(self.enqueue_all(vec![entry])?[0])
    }

    fn enqueue_all(&self, entries: Vec<Entry>) -> Result<Vec<EntryId>> {
        let mut state = self.state();
        let held: u64 = state.slots.iter().map(|slot| slot.entry.size()).sum();
        let adding: u64 = entries.iter().map(Entry::size).sum();
        // All or nothing: check the bound before taking any of them.
        if self.options.max_bytes > 0 && held + adding > self.options.max_bytes {
            return Err(Error::QueueFull {
                limit_bytes: self.options.max_bytes,
                reason: format!("{held} bytes held, {adding} more do not fit"),
            });
        }
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            state.next_id += 1;
            let id = state.next_id;
            state.slots.push(Slot {
                id,
                retry_at: entry.created_at,
                entry,
                attempts: 0,
                in_flight: false,
                dead: false,
            });
            state.enqueued += 1;
            ids.push(id);
        }
        Ok(ids)
    }

    fn take(&self, max: usize, now: Timestamp) -> Result<Vec<Pending>> {
        let mut state = self.state();
        let mut blocked_sources: Vec<String> = Vec::new();
        let mut taken = Vec::new();
        for slot in state.slots.iter_mut().filter(|slot| !slot.dead) {
            if taken.len() == max {
                break;
            }
            let source = &slot.entry.source_id;
            let ready = !slot.in_flight && slot.retry_at <= now;
            if ready && !blocked_sources.contains(source) {
                slot.in_flight = true;
                taken.push(Pending {
                    id: slot.id,
                    attempts: slot.attempts,
                    entry: slot.entry.clone(),
                });
            } else if !ready {
                // An earlier entry of this source is out or waiting: later ones wait too.
                blocked_sources.push(source.clone());
            }
        }
        Ok(taken)
    }

    fn ack(&self, id: EntryId) -> Result<()> {
        let mut state = self.state();
        let index = live(&mut state, id)?;
        state.slots.remove(index);
        state.acked += 1;
        Ok(())
    }

    fn nack(&self, id: EntryId, retry_at: Timestamp) -> Result<NackOutcome> {
        let max_attempts = self.options.max_attempts;
        let mut state = self.state();
        let index = live(&mut state, id)?;
        let slot = &mut state.slots[index];
        slot.attempts += 1;
        slot.in_flight = false;
        let attempts = slot.attempts;
        if attempts >= max_attempts {
            slot.dead = true;
            state.dead_lettered += 1;
            return Ok(NackOutcome::DeadLettered { attempts });
        }
        slot.retry_at = retry_at;
        Ok(NackOutcome::Retry { attempts, retry_at })
    }

    fn release(&self, id: EntryId) -> Result<()> {
        let mut state = self.state();
        let index = live(&mut state, id)?;
        state.slots[index].in_flight = false;
        Ok(())
    }

    fn dead_letter(&self, id: EntryId) -> Result<u32> {
        let mut state = self.state();
        let index = live(&mut state, id)?;
        let slot = &mut state.slots[index];
        slot.attempts += 1;
        slot.dead = true;
        slot.in_flight = false;
        let attempts = slot.attempts;
        state.dead_lettered += 1;
        Ok(attempts)
    }

    fn expire(&self, _now: Timestamp) -> Result<u64> {
        // This queue keeps entries until they are delivered (no TTL).
        Ok(0)
    }

    fn dead_letters(&self, max: usize) -> Result<Vec<Pending>> {
        let state = self.state();
        Ok(state
            .slots
            .iter()
            .filter(|slot| slot.dead)
            .take(max)
            .map(|slot| Pending {
                id: slot.id,
                attempts: slot.attempts,
                entry: slot.entry.clone(),
            })
            .collect())
    }

    fn purge_dead_letters(&self) -> Result<u64> {
        let mut state = self.state();
        let before = state.slots.len();
        state.slots.retain(|slot| !slot.dead);
        Ok((before - state.slots.len()) as u64)
    }

    fn stats(&self) -> QueueStats {
        let state = self.state();
        let count =
            |keep: fn(&Slot) -> bool| state.slots.iter().filter(|slot| keep(slot)).count() as u64;
        QueueStats {
            pending: count(|slot| !slot.dead && !slot.in_flight),
            in_flight: count(|slot| slot.in_flight),
            dead: count(|slot| slot.dead),
            bytes: state.slots.iter().map(|slot| slot.entry.size()).sum(),
            oldest_created_at: state
                .slots
                .iter()
                .filter(|slot| !slot.dead)
                .map(|slot| slot.entry.created_at)
                .min(),
            enqueued: state.enqueued,
            acked: state.acked,
            dead_lettered: state.dead_lettered,
            ..QueueStats::default()
        }
    }
}

/// A sink that loses its first send (a dropped connection), then keeps batches.
#[derive(Debug, Default)]
struct FlakySink {
    failed_once: bool,
    received: Arc<Mutex<Vec<String>>>,
}

impl Sink for FlakySink {
    fn describe(&self) -> String {
        "flaky-memory".to_owned()
    }

    fn send(&mut self, batch: &Batch) -> std::result::Result<Delivered, SendFailure> {
        if !self.failed_once {
            self.failed_once = true;
            return Err(SendFailure::Retryable {
                reason: "connection reset (simulated)".to_owned(),
                retry_after: None,
            });
        }
        let mut received = self.received.lock().unwrap_or_else(|p| p.into_inner());
        received.push(batch.envelope.batch_id.clone());
        Ok(Delivered::Stored)
    }
}

fn reading(device: &str, second: i64, temperature: f64) -> DataRecord {
    let payload: Payload = [("temperature", Value::Float(temperature))]
        .into_iter()
        .collect();
    let mut record = DataRecord::new(device, "sensors", payload);
    record.record_id = format!("{device}-{second}").into();
    record.timestamp =
        Timestamp::from_unix_seconds(1_767_225_600 + second).unwrap_or(Timestamp::UNIX_EPOCH);
    record
}

fn main() -> Result<()> {
    let queue = Arc::new(ListQueue::new(QueueOptions::default()));
    let encoder = BatchEncoder::new("gateway-1", Codec::Columnar, Compression::Lz4)?;
    let start = Timestamp::from_unix_seconds(1_767_225_600).unwrap_or(Timestamp::UNIX_EPOCH);
    let mut sent_ids = Vec::new();
    for minute in 0..3 {
        let records: Vec<DataRecord> = (0..5)
            .map(|i| reading("edge-001", minute * 60 + i, 21.0 + i as f64 / 10.0))
            .collect();
        let batch = encoder.encode(&records, start)?;
        sent_ids.push(batch.envelope.batch_id.clone());
        queue.enqueue(Entry::from_batch(&batch))?;
    }
    println!("enqueued {} batches", queue.stats().pending);

    let sink = FlakySink::default();
    let received = Arc::clone(&sink.received);
    let queue_for_delivery: Arc<dyn Queue> = queue.clone();
    let mut delivery = Delivery::new(
        queue_for_delivery,
        Box::new(sink),
        DeliveryOptions::default(),
    );
    // Driven step by step on a simulated clock, so the retry's wait costs nothing.
    let mut now = start;
    while queue.stats().pending + queue.stats().in_flight > 0 {
        match delivery.step(now)? {
            Step::Sent { delivered } => println!("sent ({delivered:?})"),
            Step::Retry { retry_at, reason } => {
                println!("retry: {reason}");
                now = retry_at;
            }
            Step::Idle => now = now.saturating_add(std::time::Duration::from_secs(1)),
            other => println!("{other:?}"),
        }
    }
    let received = received.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(received, sent_ids, "every batch arrived once, in order");
    let stats = queue.stats();
    println!(
        "delivered {} batches in order; queue: {} pending, {} acked, {} retried",
        received.len(),
        stats.pending,
        stats.acked,
        delivery.metrics().retries
    );
    Ok(())
}
