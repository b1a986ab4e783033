//! The Kafka sink: batches, or the records inside them, produced to a Kafka topic
//! with `acks=all`, keyed and partitioned the way every Kafka client does.
//!
//! The client is [rskafka](https://docs.rs/rskafka) (pure Rust, on tokio): the sink
//! owns a small current-thread tokio runtime and blocks on it, so [`Sink::send`]
//! stays synchronous like every other sink. `docs/kafka.md` says why this client
//! rather than librdkafka, and argues the ordering and exactly-once effect below.
//!
//! - **Ordering.** rskafka has no idempotent producer. The sink keeps at most one
//!   produce request in flight per partition and a batch is confirmed only when
//!   every partition it touched has acknowledged it; the delivery worker retries a
//!   source's batch before it sends that source's next one. A retry can therefore
//!   *repeat* records, never put a later one before an earlier one: the first
//!   copy of every record is in order.
//! - **Exactly-once effect.** Every Kafka record carries the batch id (and, in
//!   records mode, the record id) as headers; a consumer that drops record ids
//!   it has seen sees each record once.
//! - **acks=all.** rskafka sends `acks = -1` on every produce request
//!   (`build_produce_request` in its `client/partition.rs`), so the broker
//!   answers only once all in-sync replicas hold the records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rskafka::BackoffConfig;
use rskafka::client::ClientBuilder;
use rskafka::client::error::{Error as ClientError, ProtocolError};
use rskafka::client::partition::{Compression as ClientCompression, UnknownTopicHandling};
use rskafka::record::Record;

use super::retry::SendFailure;
use super::sink::{Delivered, Sink};
use crate::batch::{Batch, DecodeLimits};
use crate::error::{Error, Result};
use crate::record::{DataRecord, Timestamp};

/// Header naming the edgepipe batch a Kafka record came from.
pub const HEADER_BATCH_ID: &str = "edgepipe-batch-id";
/// Header with the record id (records mode, and the ingest output).
pub const HEADER_RECORD_ID: &str = "edgepipe-record-id";
/// Header with the batch's source id.
pub const HEADER_SOURCE: &str = "edgepipe-source";
/// Header naming the value's codec: the batch's codec in batches mode, `json` in records mode.
pub const HEADER_CODEC: &str = "edgepipe-codec";

/// What one Kafka record holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KafkaMode {
    /// One Kafka record per edgepipe batch: value = [`Batch::to_bytes`] (the same
    /// binary envelope the MQTT sink publishes), key = the batch's source id.
    #[default]
    Batches,
    /// One Kafka record per [`DataRecord`]: value = its `to_dict()` JSON, key =
    /// its device id, so each device's records live in one partition, in order.
    Records,
}

/// Kafka record-batch compression, applied by the client to each produce request.
/// Only the codecs compiled in exist: gzip and snappy are pure Rust and always
/// there; zstd needs edgepipe's `zstd` feature and lz4 its `kafka-lz4` feature
/// (both build C libraries).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KafkaCompression {
    /// Records as they are.
    #[default]
    None,
    /// gzip (flate2).
    Gzip,
    /// snappy (the `snap` crate).
    Snappy,
    /// lz4 (the `lz4` crate, which builds the C liblz4).
    #[cfg(feature = "kafka-lz4")]
    Lz4,
    /// zstd (the `zstd` crate, which builds the C libzstd).
    #[cfg(feature = "zstd")]
    Zstd,
}

impl KafkaCompression {
    fn client(self) -> ClientCompression {
        match self {
            KafkaCompression::None => ClientCompression::NoCompression,
            KafkaCompression::Gzip => ClientCompression::Gzip,
            KafkaCompression::Snappy => ClientCompression::Snappy,
            #[cfg(feature = "kafka-lz4")]
            KafkaCompression::Lz4 => ClientCompression::Lz4,
            #[cfg(feature = "zstd")]
            KafkaCompression::Zstd => ClientCompression::Zstd,
        }
    }
}

/// TLS to the brokers (rustls with the ring provider).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaTls {
    /// Trust the platform's root certificates.
    pub native_roots: bool,
    /// PEM text of further CA certificates to trust.
    pub extra_ca_pem: Option<Vec<u8>>,
}

/// How a [`KafkaSink`] (or an [`ingest::KafkaStore`](crate::ingest::KafkaStore))
/// connects and produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaOptions {
    /// Bootstrap brokers, `host:port` each.
    pub brokers: Vec<String>,
    /// The topic. It must exist (created by the operator with its partition count):
    /// the partition of a key depends on that count.
    pub topic: String,
    /// What a Kafka record holds (sink only; the ingest output is always records).
    pub mode: KafkaMode,
    /// Record-batch compression.
    pub compression: KafkaCompression,
    /// How long one `send`, connecting included, may take before it fails as
    /// [`SendFailure::Unreachable`]; also the deadline of the client's own retries.
    pub request_timeout: Duration,
    /// The Kafka client id brokers log and apply quotas by.
    pub client_id: String,
    /// TLS; `None` is plain TCP.
    pub tls: Option<KafkaTls>,
    /// Largest uncompressed Kafka record (key, value and headers) sent; a bigger one
    /// fails the batch as [`SendFailure::Permanent`] without being sent. Keep it at
    /// or under the broker's `message.max.bytes` (1 MiB by default in Kafka).
    pub max_record_bytes: usize,
    /// Limits for decoding a batch into records (records mode).
    pub decode_limits: DecodeLimits,
}

impl KafkaOptions {
    /// Options for `brokers` and `topic` with the defaults: batches mode, no
    /// compression, 30 s request timeout, client id `edgepipe`, plain TCP,
    /// records up to 1 MiB.
    pub fn new<I, S>(brokers: I, topic: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        KafkaOptions {
            brokers: brokers.into_iter().map(Into::into).collect(),
            topic: topic.into(),
            mode: KafkaMode::Batches,
            compression: KafkaCompression::None,
            request_timeout: Duration::from_secs(30),
            client_id: "edgepipe".to_owned(),
            tls: None,
            max_record_bytes: 1024 * 1024,
            decode_limits: DecodeLimits::default(),
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.brokers.is_empty() || self.brokers.iter().any(|b| !b.contains(':')) {
            return Err(config("kafka.brokers", "give at least one host:port"));
        }
        let topic_ok = !self.topic.is_empty()
            && self.topic.len() <= 249
            && self.topic != "."
            && self.topic != ".."
            && self
                .topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !topic_ok {
            return Err(config(
                "kafka.topic",
                format!(
                    "{:?} is not a Kafka topic name ([A-Za-z0-9._-], 1-249)",
                    self.topic
                ),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(config("kafka.request_timeout", "must be more than zero"));
        }
        Ok(())
    }
}

/// Kafka's default partitioner's hash: murmur2 (the 32-bit MurmurHash2 variant
/// with seed `0x9747b28c`), exactly as the Java client's `Utils.murmur2` and
/// librdkafka's `rd_murmur2` compute it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    // Java hashes an `int` length; keys are far below 2 GiB.
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives `key` among `partitions`:
/// `(murmur2(key) & 0x7fffffff) % partitions` (Java's `Utils.toPositive`), so Java,
/// librdkafka (`murmur2_random`) and edgepipe producers put a device in one place.
pub fn default_partition(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Produces each batch to a Kafka topic and returns once the broker acknowledged
/// it with `acks=all`.
///
/// | what happens | `send` returns |
/// | --- | --- |
/// | every partition acknowledged | `Ok(Delivered::Stored)` (Kafka cannot tell a repeat; consumers drop them by the id headers) |
/// | connection refused or cut, TLS, no answer within `request_timeout` | `SendFailure::Unreachable` |
/// | leader moved, not enough replicas, throttled, broker timeout | `SendFailure::Retryable` |
/// | record over `max_record_bytes` or the broker's limit, unknown topic, authorization | `SendFailure::Permanent` |
///
/// After any failure the client is dropped and the next `send` connects anew, so
/// a request that failed is never answered into a later `send`.
///
/// ```
/// use edgepipe_core::deliver::{KafkaMode, KafkaOptions, KafkaSink, Sink};
///
/// let mut options = KafkaOptions::new(["127.0.0.1:9092"], "telemetry");
/// options.mode = KafkaMode::Records;
/// let sink = KafkaSink::new(options)?; // connects on the first send
/// assert_eq!(sink.describe(), "kafka://127.0.0.1:9092/telemetry");
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Debug)]
pub struct KafkaSink {
    producer: Producer,
}

impl KafkaSink {
    /// A sink with these options. Checks the options and TLS roots; connects on
    /// the first [`send`](Sink::send).
    pub fn new(options: KafkaOptions) -> Result<Self> {
        Ok(KafkaSink {
            producer: Producer::new(options)?,
        })
    }

    /// The options.
    pub fn options(&self) -> &KafkaOptions {
        &self.producer.options
    }

    fn records_of(&self, batch: &Batch) -> std::result::Result<Vec<KeyedRecord>, SendFailure> {
        let envelope = &batch.envelope;
        let now = Timestamp::now();
        match self.producer.options.mode {
            KafkaMode::Batches => {
                let mut headers = BTreeMap::new();
                headers.insert(HEADER_BATCH_ID.to_owned(), envelope.batch_id.clone().into());
                headers.insert(HEADER_SOURCE.to_owned(), envelope.source_id.clone().into());
                headers.insert(HEADER_CODEC.to_owned(), envelope.codec.name().into());
                Ok(vec![KeyedRecord::new(
                    envelope.source_id.as_bytes().to_vec(),
                    batch.to_bytes(),
                    headers,
                    envelope.created_at,
                    now,
                )])
            }
            KafkaMode::Records => {
                // A batch that cannot be decoded never will be: dead-letter it.
                let records =
                    batch
                        .decode(&self.producer.options.decode_limits)
                        .map_err(|error| {
                            SendFailure::permanent(format!("decoding batch for Kafka: {error}"))
                        })?;
                records
                    .iter()
                    .map(|record| {
                        record_to_kafka(record, &envelope.batch_id, Some(&envelope.source_id), now)
                            .map_err(|error| SendFailure::permanent(error.to_string()))
                    })
                    .collect()
            }
        }
    }
}

impl Sink for KafkaSink {
    fn describe(&self) -> String {
        self.producer.describe()
    }

    fn send(&mut self, batch: &Batch) -> std::result::Result<Delivered, SendFailure> {
        let records = self.records_of(batch)?;
        self.producer.produce(records).map(|()| Delivered::Stored)
    }
}

/// One Kafka record with the key it is partitioned by.
#[derive(Debug)]
pub(crate) struct KeyedRecord {
    record: Record,
}

impl KeyedRecord {
    fn new(
        key: Vec<u8>,
        value: Vec<u8>,
        headers: BTreeMap<String, Vec<u8>>,
        event_time: Timestamp,
        now: Timestamp,
    ) -> Self {
        // Kafka record timestamps are milliseconds; one outside chrono's range
        // (a corrupt reading) is stamped with the send time instead.
        let timestamp = chrono::DateTime::from_timestamp_millis(event_time.unix_millis())
            .or_else(|| chrono::DateTime::from_timestamp_millis(now.unix_millis()))
            .unwrap_or_default();
        KeyedRecord {
            record: Record {
                key: Some(key),
                value: Some(value),
                headers,
                timestamp,
            },
        }
    }

    fn key(&self) -> &[u8] {
        self.record.key.as_deref().unwrap_or_default()
    }
}

/// A record as one Kafka record: value = its `to_dict()` JSON, key = its device
/// id, headers = batch id, record id, source (when known) and codec `json`;
/// timestamp = the record's own (event) time.
pub(crate) fn record_to_kafka(
    record: &DataRecord,
    batch_id: &str,
    source: Option<&str>,
    now: Timestamp,
) -> Result<KeyedRecord> {
    let mut value = Vec::with_capacity(256);
    record.write_json(&mut value, &Default::default())?;
    let mut headers = BTreeMap::new();
    headers.insert(HEADER_BATCH_ID.to_owned(), batch_id.as_bytes().to_vec());
    headers.insert(
        HEADER_RECORD_ID.to_owned(),
        record.record_id.as_bytes().to_vec(),
    );
    if let Some(source) = source {
        headers.insert(HEADER_SOURCE.to_owned(), source.as_bytes().to_vec());
    }
    headers.insert(HEADER_CODEC.to_owned(), b"json".to_vec());
    Ok(KeyedRecord::new(
        record.device_id.as_bytes().to_vec(),
        value,
        headers,
        record.timestamp,
        now,
    ))
}

/// The connection to the cluster shared by the sink and the ingest output: a
/// current-thread runtime, the client and the topic's partition count, all
/// dropped on a failure so the next call starts clean.
pub(crate) struct Producer {
    pub(crate) options: KafkaOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Always `Some` until dropped (see `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    link: Option<Link>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.link = None;
        // The ingest server drops its receiver, and this with it, inside its own
        // runtime, where dropping a runtime panics; shutting down in the
        // background is allowed anywhere and leaves nothing to wait for.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

struct Link {
    // Each partition client holds its own handle on the cluster's connections.
    partitions: Vec<Arc<rskafka::client::partition::PartitionClient>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Producer")
            .field("options", &self.options)
            .field("connected", &self.link.is_some())
            .finish_non_exhaustive()
    }
}

impl Producer {
    pub(crate) fn new(options: KafkaOptions) -> Result<Self> {
        options.check()?;
        let tls = match &options.tls {
            Some(tls) => Some(Arc::new(tls_config(tls)?)),
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| Error::io("starting the Kafka client's runtime", error))?;
        Ok(Producer {
            options,
            tls,
            runtime: Some(runtime),
            link: None,
        })
    }

    /// A client of the cluster with this producer's brokers, TLS and deadlines.
    pub(crate) async fn client(&self) -> std::result::Result<rskafka::client::Client, ClientError> {
        builder(&self.options, self.tls.as_ref()).build().await
    }

    pub(crate) fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("a runtime until dropped")
    }

    pub(crate) fn describe(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "kafka+tls"
        } else {
            "kafka"
        };
        format!(
            "{scheme}://{}/{}",
            self.options.brokers.join(","),
            self.options.topic
        )
    }

    /// Produces `records`, each to its key's partition, and returns once every
    /// partition acknowledged its part. Partitions are written concurrently, one
    /// request each; within a partition the records keep their order.
    pub(crate) fn produce(
        &mut self,
        records: Vec<KeyedRecord>,
    ) -> std::result::Result<(), SendFailure> {
        if records.is_empty() {
            return Ok(());
        }
        for record in &records {
            let size = record.record.approximate_size();
            if size > self.options.max_record_bytes {
                return Err(SendFailure::permanent(format!(
                    "Kafka record of {size} bytes exceeds max_record_bytes {}",
                    self.options.max_record_bytes
                )));
            }
        }
        let timeout = self.options.request_timeout;
        // The timer is made inside `block_on`: it needs the runtime's context.
        let work = produce_all(&mut self.link, &self.options, self.tls.as_ref(), records);
        let runtime = self.runtime.as_ref().expect("a runtime until dropped");
        let outcome = match runtime.block_on(async { tokio::time::timeout(timeout, work).await }) {
            Ok(outcome) => outcome,
            Err(_) => Err(SendFailure::unreachable(format!(
                "no acknowledgement from Kafka within {timeout:?}"
            ))),
        };
        if outcome.is_err() {
            // A request cut short may still be answered, or applied; a fresh
            // connection keeps its answer out of the next call (the records are
            // retried whole, so an applied one is a repeat, never a gap).
            self.link = None;
        }
        outcome
    }
}

async fn produce_all(
    link: &mut Option<Link>,
    options: &KafkaOptions,
    tls: Option<&Arc<rustls::ClientConfig>>,
    records: Vec<KeyedRecord>,
) -> std::result::Result<(), SendFailure> {
    if link.is_none() {
        *link = Some(connect(options, tls).await?);
    }
    let link = link.as_ref().expect("connected above");
    let count = i32::try_from(link.partitions.len()).unwrap_or(i32::MAX);
    let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    for record in records {
        let partition = default_partition(record.key(), count);
        by_partition
            .entry(partition)
            .or_default()
            .push(record.record);
    }
    let compression = options.compression.client();
    // Partitions in parallel, one request each. rskafka writes a request's length
    // and body in two sends and leaves Nagle's algorithm on, so every produce
    // request waits for the broker's delayed ACK (~40 ms on Linux); one at a time,
    // a records-mode batch over 3 partitions took 3 of those instead of one.
    let mut requests = tokio::task::JoinSet::new();
    for (partition, records) in by_partition {
        let client = Arc::clone(&link.partitions[partition as usize]);
        requests.spawn(async move { client.produce(records, compression).await });
    }
    let mut first_failure = None;
    while let Some(joined) = requests.join_next().await {
        let failure = match joined {
            Ok(Ok(_offsets)) => continue,
            Ok(Err(error)) => classify(&error),
            Err(panic) => SendFailure::retryable(format!("Kafka produce task: {panic}")),
        };
        // Permanent beats retryable: retrying a batch one partition refuses for good
        // would only repeat it into the other partitions.
        match (&first_failure, &failure) {
            (None, _) | (Some(SendFailure::Retryable { .. }), SendFailure::Permanent { .. }) => {
                first_failure = Some(failure);
            }
            _ => {}
        }
    }
    match first_failure {
        None => Ok(()),
        Some(failure) => Err(failure),
    }
}

fn builder(options: &KafkaOptions, tls: Option<&Arc<rustls::ClientConfig>>) -> ClientBuilder {
    // rskafka retries connections and retryable answers by itself, forever by
    // default; its deadline is ours, so a call answers within request_timeout.
    let backoff = BackoffConfig {
        init_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
        base: 2.0,
        deadline: Some(options.request_timeout),
    };
    let mut builder = ClientBuilder::new(options.brokers.clone())
        .client_id(options.client_id.as_str())
        .backoff_config(backoff);
    if let Some(tls) = tls {
        builder = builder.tls_config(Arc::clone(tls));
    }
    builder
}

async fn connect(
    options: &KafkaOptions,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> std::result::Result<Link, SendFailure> {
    let client = builder(options, tls)
        .build()
        .await
        .map_err(|error| classify(&error))?;
    let topics = client
        .list_topics()
        .await
        .map_err(|error| classify(&error))?;
    let Some(topic) = topics.iter().find(|topic| topic.name == options.topic) else {
        return Err(SendFailure::permanent(format!(
            "Kafka topic {:?} does not exist (create it with its partition count first)",
            options.topic
        )));
    };
    let count = topic.partitions.len();
    if count == 0 || topic.partitions.iter().copied().ne(0..count as i32) {
        return Err(SendFailure::retryable(format!(
            "Kafka topic {:?} reports partitions {:?}, not 0..n",
            options.topic, topic.partitions
        )));
    }
    let mut partitions = Vec::with_capacity(count);
    for partition in 0..count as i32 {
        let client = client
            .partition_client(
                options.topic.clone(),
                partition,
                UnknownTopicHandling::Error,
            )
            .await
            .map_err(|error| classify(&error))?;
        partitions.push(Arc::new(client));
    }
    Ok(Link { partitions })
}

/// Creates `topic` with `partitions` partitions (replication factor 1 when the
/// cluster has one broker; `replication` otherwise), as an operator does before
/// the first produce. An existing topic is an error
/// ([`ProtocolError::TopicAlreadyExists`] in the message).
pub fn create_topic(options: &KafkaOptions, partitions: i32, replication: i16) -> Result<()> {
    options.check()?;
    let producer = Producer::new(options.clone())?;
    let timeout = options.request_timeout;
    let work = async {
        let client = producer.client().await?;
        let controller = client.controller_client()?;
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        controller
            .create_topic(options.topic.as_str(), partitions, replication, millis)
            .await
    };
    let outcome = producer
        .runtime()
        .block_on(async { tokio::time::timeout(timeout, work).await });
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(kafka_error(
            format!("creating Kafka topic {}", options.topic),
            &error,
        )),
        Err(_) => Err(Error::io(
            format!("creating Kafka topic {}", options.topic),
            std::io::ErrorKind::TimedOut.into(),
        )),
    }
}

/// A client error as the crate's error: an I/O failure talking to the cluster.
pub(crate) fn kafka_error(context: String, error: &ClientError) -> Error {
    Error::io(context, std::io::Error::other(error.to_string()))
}

/// How the delivery worker should treat a client error.
fn classify(error: &ClientError) -> SendFailure {
    match error {
        ClientError::ServerError { protocol_error, .. } => {
            classify_protocol(*protocol_error, &error.to_string())
        }
        ClientError::RetryFailed(rskafka::BackoffError::DeadlineExceded { source, .. }) => {
            // The client gave up retrying: what it last saw decides, but never
            // permanently (it only retries what can pass).
            match source.downcast_ref::<ClientError>() {
                Some(ClientError::ServerError { .. }) => {
                    SendFailure::retryable(format!("Kafka: {error}"))
                }
                _ => SendFailure::unreachable(format!("Kafka: {error}")),
            }
        }
        ClientError::Connection(rskafka::ConnectionError::SaslFailed(_)) => {
            SendFailure::permanent(format!("Kafka authentication: {error}"))
        }
        ClientError::Connection(_) | ClientError::Request(_) | ClientError::Timeout => {
            SendFailure::unreachable(format!("Kafka: {error}"))
        }
        _ => SendFailure::retryable(format!("Kafka: {error}")),
    }
}

/// A broker's error code as a retry decision: Kafka's own "retriable" errors and
/// throttling are retryable; a record or request the broker refuses for what it
/// is, a missing topic and authorization are permanent; anything unknown is
/// retried (the batch stays queued rather than being dead-lettered on a guess).
pub(crate) fn classify_protocol(code: ProtocolError, message: &str) -> SendFailure {
    use ProtocolError as E;
    match code {
        E::MessageTooLarge
        | E::RecordListTooLarge
        | E::InvalidRecord
        | E::CorruptMessage
        | E::InvalidTimestamp
        | E::UnsupportedCompressionType
        | E::UnsupportedForMessageFormat
        | E::UnsupportedVersion
        | E::InvalidRequiredAcks
        | E::InvalidRequest
        | E::UnknownTopicOrPartition
        | E::InvalidTopicException
        | E::PolicyViolation
        | E::TopicAuthorizationFailed
        | E::ClusterAuthorizationFailed
        | E::TransactionalIdAuthorizationFailed
        | E::SaslAuthenticationFailed
        | E::UnsupportedSaslMechanism
        | E::IllegalSaslState => SendFailure::permanent(format!("Kafka refused: {message}")),
        E::ThrottlingQuotaExceeded => SendFailure::Retryable {
            reason: format!("Kafka throttled: {message}"),
            retry_after: Some(Duration::from_secs(1)),
        },
        _ => SendFailure::retryable(format!("Kafka: {message}")),
    }
}

fn tls_config(tls: &KafkaTls) -> Result<rustls::ClientConfig> {
    super::tls::client_config("kafka.tls", tls.native_roots, tls.extra_ca_pem.as_deref())
}

fn config(key: &str, message: impl std::fmt::Display) -> Error {
    Error::Config {
        key: key.to_owned(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from the Java client's `UtilsTest.testMurmur2` (Apache Kafka).
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: [(&[u8], i32); 4] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{:?}", String::from_utf8_lossy(key));
        }
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(
            murmur2(b"abc"),
            479_470_107,
            "a 3-byte tail uses all three bytes"
        );
    }

    #[test]
    fn partitions_are_positive_and_in_range() {
        // murmur2("foobar") is negative: the mask, not abs(), makes it positive.
        assert_eq!(
            default_partition(b"foobar", 1_000_000),
            (-790_332_482i32 & 0x7fff_ffff) % 1_000_000
        );
        for key in ["", "a", "dev-0001", "dev-0002", "ü"] {
            let partition = default_partition(key.as_bytes(), 6);
            assert!((0..6).contains(&partition), "{key:?} -> {partition}");
        }
    }

    #[test]
    fn broker_error_codes_split_into_permanent_and_retryable() {
        for code in [
            ProtocolError::MessageTooLarge,
            ProtocolError::UnknownTopicOrPartition,
            ProtocolError::TopicAuthorizationFailed,
            ProtocolError::SaslAuthenticationFailed,
        ] {
            assert!(
                matches!(classify_protocol(code, ""), SendFailure::Permanent { .. }),
                "{code:?}"
            );
        }
        for code in [
            ProtocolError::NotLeaderOrFollower,
            ProtocolError::LeaderNotAvailable,
            ProtocolError::NotEnoughReplicas,
            ProtocolError::NotEnoughReplicasAfterAppend,
            ProtocolError::RequestTimedOut,
            ProtocolError::NetworkException,
        ] {
            assert!(
                matches!(classify_protocol(code, ""), SendFailure::Retryable { .. }),
                "{code:?}"
            );
        }
        assert!(matches!(
            classify_protocol(ProtocolError::ThrottlingQuotaExceeded, ""),
            SendFailure::Retryable {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            classify(&ClientError::Timeout),
            SendFailure::Unreachable { .. }
        ));
    }

    #[test]
    fn options_are_checked() {
        assert!(KafkaSink::new(KafkaOptions::new(["127.0.0.1:9092"], "t.1_x-y")).is_ok());
        assert!(KafkaSink::new(KafkaOptions::new(Vec::<String>::new(), "t")).is_err());
        assert!(KafkaSink::new(KafkaOptions::new(["nohostport"], "t")).is_err());
        for topic in ["", "a/b", "..", "with space"] {
            assert!(
                KafkaSink::new(KafkaOptions::new(["127.0.0.1:9092"], topic)).is_err(),
                "{topic:?}"
            );
        }
        let mut options = KafkaOptions::new(["127.0.0.1:9092"], "t");
        options.tls = Some(KafkaTls::default());
        assert!(KafkaSink::new(options).is_err(), "TLS without roots");
    }
}
