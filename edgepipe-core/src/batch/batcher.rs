//! The batcher: closes a batch at max records, max encoded bytes or max age,
//! whichever comes first.
//!
//! One batcher serves one source; records leave in the order they arrived, so
//! order per source holds across batches. Bytes are the encoded size before
//! compression, counted exactly: a batch never exceeds `max_bytes` unless it is a
//! single record that alone does, and such a record travels alone with
//! [`Envelope::oversize`](super::Envelope::oversize) set.
//!
//! For JSON, JSON Lines and MessagePack a batch's size is the sum of its records'
//! sizes plus framing, so each record is measured once as it arrives. The
//! columnar size depends on the whole batch: the batcher estimates from the last
//! exact measurement, measures exactly (one encode) when the estimate nears the
//! limit, and at close splits off the largest prefix that fits if needed.

use std::collections::VecDeque;

use super::codec::{Codec, json, json_python, jsonl, msgpack};
use super::envelope::{Batch, BatchEncoder};
use crate::error::{Error, Result};
use crate::record::{DataRecord, Timestamp};

/// When a batch closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Most records per batch (the seed's `max_batch_size`, default 100).
    pub max_records: usize,
    /// Most encoded bytes per batch before compression (the seed's
    /// `max_batch_bytes`, default 1 MiB).
    pub max_bytes: usize,
    /// Longest time, in nanoseconds of the caller's clock, a batch stays open
    /// after its first record (default 10 s); `None` never closes on age.
    pub max_age_nanos: Option<i64>,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy {
            max_records: 100,
            max_bytes: 1 << 20,
            max_age_nanos: Some(10_000_000_000),
        }
    }
}

impl BatchPolicy {
    /// Checks the limits can be met.
    pub fn validate(&self) -> Result<()> {
        if self.max_records == 0 {
            return Err(Error::InvalidBatchOption {
                option: "max_records",
                reason: "must be at least 1".into(),
            });
        }
        if self.max_bytes == 0 {
            return Err(Error::InvalidBatchOption {
                option: "max_bytes",
                reason: "must be at least 1".into(),
            });
        }
        if self.max_age_nanos.is_some_and(|age| age <= 0) {
            return Err(Error::InvalidBatchOption {
                option: "max_age",
                reason: "must be positive".into(),
            });
        }
        Ok(())
    }
}

/// Groups one source's records into batches; see the [module docs](self).
///
/// The clock is the caller's: every call takes `now`, so tests and event-time
/// batching need no wall clock.
#[derive(Debug)]
pub struct Batcher {
    encoder: BatchEncoder,
    policy: BatchPolicy,
    open: Vec<DataRecord>,
    opened_at: Option<Timestamp>,
    /// Exact encoded size of `open` for additive codecs.
    open_bytes: usize,
    /// Columnar: exact size of the first `measured_count` open records.
    measured_bytes: usize,
    measured_count: usize,
    ready: VecDeque<Batch>,
    scratch: Vec<u8>,
}

impl Batcher {
    /// A batcher encoding with `encoder` and closing by `policy`.
    pub fn new(encoder: BatchEncoder, policy: BatchPolicy) -> Result<Self> {
        policy.validate()?;
        Ok(Batcher {
            encoder,
            policy,
            open: Vec::new(),
            opened_at: None,
            open_bytes: 0,
            measured_bytes: 0,
            measured_count: 0,
            ready: VecDeque::new(),
            scratch: Vec::new(),
        })
    }

    /// Records waiting in the open batch.
    pub fn open_records(&self) -> usize {
        self.open.len()
    }

    /// Closed batches waiting to be taken with [`next_batch`](Self::next_batch).
    pub fn ready_batches(&self) -> usize {
        self.ready.len()
    }

    /// The oldest closed batch.
    pub fn next_batch(&mut self) -> Option<Batch> {
        self.ready.pop_front()
    }

    /// Adds a record, closing batches as the policy says. A record the codec
    /// cannot encode (e.g. NaN for JSON) is refused with an error and the open
    /// batch is left as it was.
    pub fn push(&mut self, record: DataRecord, now: Timestamp) -> Result<()> {
        self.poll(now)?;
        let codec = self.encoder.codec;
        let count = self.open.len();
        let (alone, grown) = match codec {
            Codec::Json => {
                let size = json::record_size(&record, &mut self.scratch, count)?;
                let first = size - usize::from(count > 0);
                (
                    json::FRAMING + first,
                    json::FRAMING.max(self.open_bytes) + size,
                )
            }
            Codec::JsonPython => {
                let size = json_python::record_size(&record, &mut self.scratch, count)?;
                let first = size - if count > 0 { 2 } else { 0 };
                (
                    json_python::FRAMING + first,
                    json_python::FRAMING.max(self.open_bytes) + size,
                )
            }
            Codec::Jsonl => {
                let size = jsonl::record_size(&record, &mut self.scratch)?;
                (size, self.open_bytes + size)
            }
            Codec::Msgpack => {
                let size = msgpack::record_size(&record, &mut self.scratch)?;
                let framed = self.open_bytes.saturating_sub(msgpack::framing(count));
                (
                    msgpack::framing(1) + size,
                    msgpack::framing(count + 1) + framed + size,
                )
            }
            Codec::Columnar => return self.push_columnar(record, now),
        };
        if alone > self.policy.max_bytes {
            self.close(now)?;
            let mut encoded = Vec::with_capacity(alone);
            codec.encode(std::slice::from_ref(&record), &mut encoded)?;
            let batch = self.encoder.seal(&[record], encoded, now, true)?;
            self.ready.push_back(batch);
            return Ok(());
        }
        if grown > self.policy.max_bytes {
            self.close(now)?;
            self.open_bytes = alone;
        } else {
            self.open_bytes = grown;
        }
        self.add(record, now);
        if self.open.len() >= self.policy.max_records {
            self.close(now)?;
        }
        Ok(())
    }

    fn add(&mut self, record: DataRecord, now: Timestamp) {
        if self.open.is_empty() {
            self.opened_at = Some(now);
        }
        self.open.push(record);
    }

    fn push_columnar(&mut self, record: DataRecord, now: Timestamp) -> Result<()> {
        let max = self.policy.max_bytes;
        // An estimate per unmeasured record: the measured average, rounded up. A
        // columnar batch grows more slowly than linearly (series, dictionaries and
        // steps are shared), so the average over-estimates what later records add,
        // and an exact measurement is taken only when the estimate reaches the
        // limit. An estimate is never trusted with the limit itself: a batch
        // measured over it is split exactly, here or at close.
        let per_record = match self.measured_bytes.checked_div(self.measured_count) {
            Some(average) => average + 1,
            // No measurement yet: the record encoded alone. Not its JSON size, which
            // a NaN or an infinity (that columnar carries bit-exact) would refuse.
            None => {
                self.scratch.clear();
                Codec::Columnar.encode(std::slice::from_ref(&record), &mut self.scratch)?;
                self.scratch.len()
            }
        };
        let unmeasured = self.open.len() + 1 - self.measured_count;
        let estimate = self.measured_bytes + unmeasured * per_record;
        self.add(record, now);
        if estimate > max {
            self.scratch.clear();
            Codec::Columnar.encode(&self.open, &mut self.scratch)?;
            let exact = self.scratch.len();
            if exact > max {
                self.seal_fitting_prefix(now)?;
            } else {
                self.measured_bytes = exact;
                self.measured_count = self.open.len();
                // Close once the room left is a small part of the limit, rather than
                // measure again for every few records that still fit: each
                // measurement encodes the whole open batch.
                if max - exact <= (max / 64).max(per_record) {
                    return self.close(now);
                }
            }
        }
        if self.open.len() >= self.policy.max_records {
            self.close(now)?;
        }
        Ok(())
    }

    /// Columnar: the open batch was measured over the limit. Seals its longest
    /// prefix within the limit (the records measured before still fit), or the
    /// first record alone and flagged when even that is over, and keeps the rest
    /// open (its age still counts from when the batch opened).
    fn seal_fitting_prefix(&mut self, now: Timestamp) -> Result<()> {
        let mut records = std::mem::take(&mut self.open);
        let fits = self.longest_fitting_prefix(&records, self.measured_count.max(1))?;
        let rest = records.split_off(fits);
        let mut encoded = Vec::new();
        self.encoder.codec.encode(&records, &mut encoded)?;
        let oversize = encoded.len() > self.policy.max_bytes;
        let batch = self.encoder.seal(&records, encoded, now, oversize)?;
        self.ready.push_back(batch);
        self.open = rest;
        self.measured_bytes = 0;
        self.measured_count = 0;
        if self.open.is_empty() {
            self.opened_at = None;
        }
        Ok(())
    }

    /// Closes the open batch if it has been open for `max_age` or longer.
    pub fn poll(&mut self, now: Timestamp) -> Result<()> {
        if let (Some(opened), Some(age)) = (self.opened_at, self.policy.max_age_nanos)
            && now.unix_nanos().saturating_sub(opened.unix_nanos()) >= age
        {
            self.close(now)?;
        }
        Ok(())
    }

    /// Closes the open batch, whatever its size.
    pub fn flush(&mut self, now: Timestamp) -> Result<()> {
        self.close(now)
    }

    fn close(&mut self, now: Timestamp) -> Result<()> {
        let mut records = std::mem::take(&mut self.open);
        self.opened_at = None;
        self.open_bytes = 0;
        self.measured_bytes = 0;
        self.measured_count = 0;
        while !records.is_empty() {
            let mut encoded = Vec::new();
            self.encoder.codec.encode(&records, &mut encoded)?;
            if encoded.len() <= self.policy.max_bytes || records.len() == 1 {
                let oversize = encoded.len() > self.policy.max_bytes;
                let batch = self.encoder.seal(&records, encoded, now, oversize)?;
                self.ready.push_back(batch);
                return Ok(());
            }
            // Only an estimate can overshoot (columnar): send the longest prefix
            // that fits and keep going with the rest.
            let fits = self.longest_fitting_prefix(&records, 1)?;
            let rest = records.split_off(fits);
            let mut encoded = Vec::new();
            self.encoder.codec.encode(&records, &mut encoded)?;
            let oversize = encoded.len() > self.policy.max_bytes;
            let batch = self.encoder.seal(&records, encoded, now, oversize)?;
            self.ready.push_back(batch);
            records = rest;
        }
        Ok(())
    }

    /// Binary search for the longest prefix within `max_bytes`, given that the
    /// first `known` records fit (or `known` is 1: at least one record goes).
    fn longest_fitting_prefix(&mut self, records: &[DataRecord], known: usize) -> Result<usize> {
        let (mut low, mut high) = (known.clamp(1, records.len()), records.len());
        while low < high {
            let middle = (low + high).div_ceil(2);
            self.scratch.clear();
            self.encoder
                .codec
                .encode(&records[..middle], &mut self.scratch)?;
            if self.scratch.len() <= self.policy.max_bytes {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        Ok(low)
    }
}
