//! The ingest tier's Kafka output: validated, deduplicated records published to a
//! topic, one Kafka record per record, keyed and partitioned by device id.
//!
//! Stream processors downstream scale by partitions and read each device's
//! records in order from one partition. The record's shape and headers are the
//! Kafka sink's records mode ([`crate::deliver::kafka`]): value = `to_dict()`
//! JSON, key = device id, headers `edgepipe-batch-id` (the batch's store key),
//! `edgepipe-record-id` and `edgepipe-codec: json`.

use std::collections::BTreeMap;

use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};

use super::store::Store;
use crate::deliver::SendFailure;
use crate::deliver::kafka::{KafkaOptions, Producer, kafka_error, record_to_kafka};
use crate::error::{Error, Result};
use crate::record::{DataRecord, Timestamp};

/// A [`Store`] that publishes each batch's accepted records to Kafka and returns
/// once the brokers acknowledged them with `acks=all`.
///
/// **What [`Store::recover`] can do.** Nothing is read back from Kafka, so
/// `recover` returns no records: a batch a crash interrupted between producing
/// and the dedup journal's commit is stored again when its sender retries. Its
/// records are then in the topic twice, each copy with the same
/// `edgepipe-record-id` header, and a consumer drops the repeat by that id. No
/// record is lost: a record counts as stored only once the journal says so, and
/// the journal commits only after the brokers acknowledged.
///
/// ```
/// use edgepipe_core::deliver::KafkaOptions;
/// use edgepipe_core::ingest::{KafkaStore, Store};
///
/// let mut store = KafkaStore::new(KafkaOptions::new(["127.0.0.1:9092"], "telemetry"))?;
/// // Nothing can be read back from Kafka (see above).
/// assert!(store.recover("any-key")?.is_empty());
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Debug)]
pub struct KafkaStore {
    producer: Producer,
}

impl KafkaStore {
    /// A store producing with `options` (its `mode` is ignored: always records).
    /// Connects on the first [`put`](Store::put).
    pub fn new(options: KafkaOptions) -> Result<Self> {
        Ok(KafkaStore {
            producer: Producer::new(options)?,
        })
    }

    /// Where it publishes, e.g. `kafka://127.0.0.1:9092/telemetry`.
    pub fn describe(&self) -> String {
        self.producer.describe()
    }
}

impl Store for KafkaStore {
    fn put(&mut self, key: &str, records: &[DataRecord]) -> Result<()> {
        let now = Timestamp::now();
        let records = records
            .iter()
            .map(|record| record_to_kafka(record, key, None, now))
            .collect::<Result<Vec<_>>>()?;
        self.producer.produce(records).map_err(|failure| {
            let kind = match failure {
                SendFailure::Permanent { .. } => std::io::ErrorKind::InvalidData,
                _ => std::io::ErrorKind::Other,
            };
            Error::io(
                format!("publishing batch {key} to {}", self.producer.describe()),
                std::io::Error::new(kind, failure.reason().to_owned()),
            )
        })
    }

    fn recover(&mut self, _key: &str) -> Result<Vec<DataRecord>> {
        Ok(Vec::new())
    }
}

/// One Kafka record read back by a [`KafkaReader`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaMessage {
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// The key (the device id, for what edgepipe produces in records mode).
    pub key: Option<Vec<u8>>,
    /// The value (a record's `to_dict()` JSON, in records mode).
    pub value: Option<Vec<u8>>,
    /// The headers, by name.
    pub headers: BTreeMap<String, Vec<u8>>,
    /// The Kafka record timestamp, milliseconds since the Unix epoch.
    pub timestamp_millis: i64,
}

impl KafkaMessage {
    /// A header as text, when present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The value parsed as a record (records mode and the ingest output).
    pub fn record(&self) -> Result<DataRecord> {
        DataRecord::from_json_slice(self.value.as_deref().unwrap_or_default())
    }
}

/// Reads a topic from the earliest offset of every partition: the consumer side,
/// for stream processors built on edgepipe's stages (see the `kafka-windows`
/// example) and for checks. It keeps its own offsets and commits nothing to the
/// brokers (no consumer group): a restart reads from the start again, so it
/// suits tests, backfills and processors that checkpoint on their own.
#[derive(Debug)]
pub struct KafkaReader {
    producer: Producer,
    partitions: Vec<rskafka::client::partition::PartitionClient>,
    next: Vec<i64>,
}

impl KafkaReader {
    /// Connects to `options`' brokers and finds the topic's partitions.
    pub fn new(options: KafkaOptions) -> Result<Self> {
        let producer = Producer::new(options)?;
        let context = format!("reading {}", producer.describe());
        let topic = producer.options.topic.clone();
        let partitions = producer
            .runtime()
            .block_on(async {
                let client = producer.client().await?;
                let count = client
                    .list_topics()
                    .await?
                    .into_iter()
                    .find(|listed| listed.name == topic)
                    .map_or(0, |listed| listed.partitions.len());
                let mut partitions = Vec::with_capacity(count);
                for partition in 0..count as i32 {
                    partitions.push(
                        client
                            .partition_client(
                                topic.as_str(),
                                partition,
                                UnknownTopicHandling::Retry,
                            )
                            .await?,
                    );
                }
                Ok::<_, rskafka::client::error::Error>(partitions)
            })
            .map_err(|error| kafka_error(context.clone(), &error))?;
        if partitions.is_empty() {
            return Err(Error::io(
                context,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such topic"),
            ));
        }
        let next = vec![0; partitions.len()];
        Ok(KafkaReader {
            producer,
            partitions,
            next,
        })
    }

    /// How many partitions the topic has.
    pub fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// Every message after the ones already read, up to each partition's end as it
    /// is now, partition by partition (each in offset order).
    pub fn read_available(&mut self) -> Result<Vec<KafkaMessage>> {
        let context = format!("reading {}", self.producer.describe());
        let (partitions, next) = (&self.partitions, &mut self.next);
        self.producer
            .runtime()
            .block_on(async {
                let mut out = Vec::new();
                for (client, next) in partitions.iter().zip(next.iter_mut()) {
                    let end = client.get_offset(OffsetAt::Latest).await?;
                    let start = client.get_offset(OffsetAt::Earliest).await?;
                    *next = (*next).max(start);
                    while *next < end {
                        let (records, _high_watermark) =
                            client.fetch_records(*next, 1..FETCH_BYTES, 500).await?;
                        for record in records {
                            // A fetch starts at the batch holding `next`, which may begin earlier.
                            if record.offset < *next {
                                continue;
                            }
                            *next = record.offset + 1;
                            out.push(KafkaMessage {
                                partition: client.partition(),
                                offset: record.offset,
                                key: record.record.key,
                                value: record.record.value,
                                headers: record.record.headers,
                                timestamp_millis: record.record.timestamp.timestamp_millis(),
                            });
                        }
                    }
                }
                Ok::<_, rskafka::client::error::Error>(out)
            })
            .map_err(|error| kafka_error(context, &error))
    }
}

/// Most bytes one fetch asks for.
const FETCH_BYTES: i32 = 4 * 1024 * 1024;
