//! Two stores as one: the ingest server writes to the data lake *and* another
//! store (e.g. [`KafkaStore`](super::KafkaStore)).

use super::store::Store;
use crate::error::Result;
use crate::record::DataRecord;

/// Writes every batch to `first`, then to `second`; the batch is stored only
/// when both writes succeeded (a failure of either fails the `put`, the
/// receiver answers 503 and the sender retries the whole batch).
///
/// Put the store that can say what it holds first (the lake) and the one that
/// cannot read back (Kafka) second. [`recover`](Store::recover) returns only the
/// records *both* hold: a record the lake has and Kafka may lack is not counted
/// as stored, so the retry writes it to both again (the lake's write of a key
/// is idempotent; Kafka may get a repeat, marked by its record-id header)
/// rather than leaving it out of Kafka.
///
/// ```
/// use edgepipe_core::ingest::{MemoryStore, Store, TeeStore};
/// use edgepipe_core::record::json::parse_jsonl;
///
/// let (lake, stream) = (MemoryStore::default(), MemoryStore::default());
/// let mut both = TeeStore::new(Box::new(lake.clone()), Box::new(stream.clone()));
/// let records: Vec<_> = parse_jsonl(
///     br#"{"record_id":"r1","device_id":"d1","timestamp":"2026-01-01T00:00:00Z","data_type":"sensors","payload":{"t":1}}"#,
/// )
/// .map(|(_, record)| record.unwrap())
/// .collect();
/// both.put("batch-1", &records)?;
/// assert_eq!(lake.all_records(), records);
/// assert_eq!(stream.all_records(), records);
/// assert_eq!(both.recover("batch-1")?, records);
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Debug)]
pub struct TeeStore {
    first: Box<dyn Store>,
    second: Box<dyn Store>,
}

impl TeeStore {
    /// Writes to `first`, then `second`.
    pub fn new(first: Box<dyn Store>, second: Box<dyn Store>) -> Self {
        TeeStore { first, second }
    }
}

impl Store for TeeStore {
    fn put(&mut self, key: &str, records: &[DataRecord]) -> Result<()> {
        self.first.put(key, records)?;
        self.second.put(key, records)
    }

    fn recover(&mut self, key: &str) -> Result<Vec<DataRecord>> {
        let first = self.first.recover(key)?;
        let second = self.second.recover(key)?;
        let held: std::collections::HashSet<&str> =
            second.iter().map(|r| r.record_id.as_str()).collect();
        Ok(first
            .into_iter()
            .filter(|r| held.contains(r.record_id.as_str()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::MemoryStore;

    #[test]
    fn recover_counts_only_what_both_hold() {
        let records: Vec<DataRecord> = crate::record::json::parse_jsonl(
            b"{\"record_id\":\"r1\",\"device_id\":\"d1\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"data_type\":\"s\",\"payload\":{}}\n\
              {\"record_id\":\"r2\",\"device_id\":\"d1\",\"timestamp\":\"2026-01-01T00:00:01Z\",\"data_type\":\"s\",\"payload\":{}}",
        )
        .map(|(_, record)| record.unwrap())
        .collect();
        let (lake, stream) = (MemoryStore::default(), MemoryStore::default());
        // A crash after the lake's write, before the second store's.
        let mut lake_only = lake.clone();
        lake_only.put("k", &records).unwrap();
        let mut tee = TeeStore::new(Box::new(lake.clone()), Box::new(stream.clone()));
        assert!(tee.recover("k").unwrap().is_empty());
        let mut partial = stream.clone();
        partial.put("k", &records[1..]).unwrap();
        assert_eq!(tee.recover("k").unwrap(), records[1..]);
    }
}
