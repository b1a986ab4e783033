//! Stage 6: getting queued batches to the cloud.
//!
//! - [`retry`]: [`RetryPolicy`] (exponential backoff with full jitter, the
//!   receiver's `Retry-After` as a floor), [`SendFailure`] (retryable or
//!   permanent, classified from HTTP statuses as the seed's protocol answers), and
//!   the [`CircuitBreaker`] that stops calling an endpoint that keeps failing;
//! - [`sink`]: the [`Sink`] trait every destination implements, and the
//!   [`DirectorySink`] for offline export;
//! - [`worker`]: [`Delivery`], the loop that drains a [`Queue`](crate::queue::Queue)
//!   into a sink and acks only what the sink confirmed, and [`DeliveryWorker`],
//!   that loop on a thread of its own;
//! - [`http`] (feature `http`): [`HttpSink`], `POST /api/ingest` as the seed's
//!   protocol with edgepipe's extension headers;
//! - [`kafka`] (feature `kafka`): [`KafkaSink`], batches or records produced with
//!   `acks=all`, partitioned by Kafka's default partitioner (`docs/kafka.md`);
//! - [`mqtt`] (feature `mqtt`): [`MqttSink`], QoS 1 publishes confirmed by the broker's PUBACK;
//! - [`nats`] (feature `nats`): [`NatsSink`], JetStream publishes confirmed by the
//!   stream's PubAck, deduplicated by batch id.

#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "nats")]
pub mod nats;
pub mod retry;
pub mod sink;
#[cfg(any(feature = "mqtt", feature = "nats", feature = "kafka"))]
mod tls;
pub mod worker;

#[cfg(feature = "http")]
pub use http::{HttpSink, HttpSinkOptions};
#[cfg(feature = "kafka")]
pub use kafka::{
    KafkaCompression, KafkaMode, KafkaOptions, KafkaSink, KafkaTls, create_topic,
    default_partition, murmur2,
};
#[cfg(feature = "mqtt")]
pub use mqtt::{DEFAULT_TOPIC, MqttOptions, MqttSink, MqttTls, topic_level};
#[cfg(feature = "nats")]
pub use nats::{
    DEFAULT_SUBJECT, NatsAuth, NatsOptions, NatsSink, NatsStream, NatsTls, subject_token,
};
pub use retry::{
    CircuitBreaker, Jitter, RetryPolicy, SendFailure, parse_retry_after, parse_retry_after_at,
};
pub use sink::{Delivered, DirectorySink, Sink, file_name_part};
pub use worker::{Delivery, DeliveryMetrics, DeliveryOptions, DeliveryWorker, ReplayOrder, Step};
