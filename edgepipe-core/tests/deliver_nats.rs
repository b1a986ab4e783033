//! The NATS JetStream sink against a real `nats-server -js` that each test starts
//! on free loopback ports (`tests/nats_support`). What the stream holds is read
//! back with a JetStream consumer of the test's own, and compared with what was sent.
//!
//! Needs `nats-server` (`apt-get install nats-server`); a missing binary fails
//! the tests, naming the package.
#![cfg(feature = "nats")]

mod nats_support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use edgepipe_core::Timestamp;
use edgepipe_core::batch::{Batch, BatchEncoder, Codec, Compression, DecodeLimits};
use edgepipe_core::deliver::{
    Delivered, Delivery, DeliveryOptions, DeliveryWorker, NatsAuth, NatsOptions, NatsSink,
    NatsStream, NatsTls, RetryPolicy, SendFailure, Sink,
};
use edgepipe_core::queue::{Entry, LogOptions, Queue, SegmentedLog};
use edgepipe_core::record::json::parse_jsonl;
use futures_util::StreamExt;
use nats_support::{AckCutter, HANG, NatsServer};

const STREAM: &str = "EDGEPIPE";

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000 + seconds).unwrap()
}

/// A batch of `records` readings from `source`, numbered from `index`.
fn batch_of(source: &str, index: usize, records: usize, codec: Codec) -> Batch {
    let lines: String = (0..records)
        .map(|offset| {
            format!(
                "{{\"record_id\":\"{source}-{index}-{offset}\",\"device_id\":\"d1\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"data_type\":\"sensors\",\"payload\":{{\"t\":{index}.{offset}}}}}\n"
            )
        })
        .collect();
    let records: Vec<_> = parse_jsonl(lines.as_bytes())
        .map(|(_, record)| record.unwrap())
        .collect();
    BatchEncoder::new(source, codec, Compression::Gzip { level: 6 })
        .unwrap()
        .encode(&records, at(index as i64))
        .unwrap()
}

fn batch(source: &str, index: usize) -> Batch {
    batch_of(source, index, 1, Codec::Json)
}

fn options(url: String) -> NatsOptions {
    let mut options = NatsOptions::new(url);
    options.ensure_stream = Some(NatsStream::new(STREAM, vec!["edgepipe.>".into()]));
    options.request_timeout = HANG;
    options
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One message as the stream holds it.
#[derive(Debug)]
struct Stored {
    subject: String,
    headers: HashMap<String, String>,
    payload: Vec<u8>,
}

/// Every message of the stream, in stream order, read by an ephemeral pull consumer.
fn read_stream(url: &str) -> Vec<Stored> {
    runtime().block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let context = jetstream::new(client);
        let mut stream = context.get_stream(STREAM).await.unwrap();
        let count = stream.info().await.unwrap().state.messages as usize;
        let consumer: consumer::PullConsumer = stream
            .create_consumer(consumer::pull::Config {
                ack_policy: consumer::AckPolicy::None,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap().take(count);
        let mut stored = Vec::new();
        while let Some(message) = tokio::time::timeout(HANG, messages.next())
            .await
            .expect("the consumer delivered the stream's messages")
        {
            let message = message.unwrap();
            let headers = message
                .headers
                .iter()
                .flat_map(|headers| headers.iter())
                .map(|(name, values)| (name.to_string(), values[0].to_string()))
                .collect();
            stored.push(Stored {
                subject: message.subject.to_string(),
                headers,
                payload: message.payload.to_vec(),
            });
        }
        stored
    })
}

fn stream_messages(url: &str) -> u64 {
    runtime().block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let mut stream = jetstream::new(client).get_stream(STREAM).await.unwrap();
        stream.info().await.unwrap().state.messages
    })
}

#[test]
fn a_batch_reads_back_byte_identical_with_its_headers_on_its_subject() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start(dir.path());
    let mut options = options(server.url());
    options.subject = "edgepipe.{source}.{codec}".into();
    let mut sink = NatsSink::new(options).unwrap();
    let batches = [
        batch_of("gw-1", 0, 3, Codec::Json),
        batch_of("gw-1", 1, 3, Codec::Columnar),
        // A source id that would add tokens or match as wildcards if used raw.
        batch_of("line.1 *>", 2, 2, Codec::Msgpack),
    ];
    for batch in &batches {
        assert_eq!(sink.send(batch), Ok(Delivered::Stored));
    }
    let stored = read_stream(&server.url());
    assert_eq!(stored.len(), batches.len());
    let subjects = [
        "edgepipe.gw-1.json",
        "edgepipe.gw-1.columnar",
        "edgepipe.line%2E1%20%2A%3E.msgpack",
    ];
    for ((message, batch), subject) in stored.iter().zip(&batches).zip(subjects) {
        assert_eq!(message.subject, subject);
        assert_eq!(message.subject, sink.subject_of(batch));
        assert_eq!(message.payload, batch.to_bytes(), "byte-identical");
        let received = Batch::from_bytes(&message.payload, &DecodeLimits::default()).unwrap();
        assert_eq!(&received, batch);
        let envelope = &batch.envelope;
        let header = |name: &str| message.headers.get(name).map(String::as_str);
        assert_eq!(header("Nats-Msg-Id"), Some(envelope.batch_id.as_str()));
        assert_eq!(header("X-Batch-ID"), Some(envelope.batch_id.as_str()));
        assert_eq!(
            header("X-Edgepipe-Source"),
            Some(envelope.source_id.as_str())
        );
        assert_eq!(header("X-Edgepipe-Codec"), Some(envelope.codec.name()));
        assert_eq!(header("X-Edgepipe-Compression"), Some("gzip"));
        assert_eq!(
            header("X-Edgepipe-Checksum"),
            Some(envelope.checksum.as_str())
        );
        assert_eq!(
            header("X-Edgepipe-Records"),
            Some(envelope.record_count.to_string().as_str())
        );
        assert_eq!(
            header("X-Edgepipe-Created-At"),
            Some(envelope.created_at.to_iso8601().as_str())
        );
    }
}

#[test]
fn a_sequenced_batch_carries_its_sequence_range() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start(dir.path());
    let mut sink = NatsSink::new(options(server.url())).unwrap();
    let lines: String = (5..8)
        .map(|sequence| format!("{{\"record_id\":\"gw:1:{sequence}\",\"device_id\":\"d1\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"data_type\":\"sensors\",\"payload\":{{\"t\":1}}}}\n"))
        .collect();
    let records: Vec<_> = parse_jsonl(lines.as_bytes())
        .map(|(_, record)| record.unwrap())
        .collect();
    let batch = BatchEncoder::new("gw", Codec::Columnar, Compression::Lz4)
        .unwrap()
        .encode(&records, at(0))
        .unwrap();
    let range = batch.envelope.sequence.expect("sequence ids give a range");
    assert_eq!(sink.send(&batch), Ok(Delivered::Stored));
    let stored = read_stream(&server.url());
    assert_eq!(
        stored[0].headers.get("X-Edgepipe-Sequence"),
        Some(&format!("{}:{}-{}", range.epoch, range.first, range.last))
    );
    assert_eq!(
        stored[0]
            .headers
            .get("X-Edgepipe-Compression")
            .map(String::as_str),
        Some("lz4")
    );
}

#[test]
fn jetstream_drops_a_retried_batch_by_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start(dir.path());
    let mut sink = NatsSink::new(options(server.url())).unwrap();
    let first = batch("gw", 0);
    assert_eq!(sink.send(&first), Ok(Delivered::Stored));
    assert_eq!(sink.send(&first), Ok(Delivered::Duplicate));
    // A gateway that restarted (a new sink, a new connection) resends it too.
    let mut restarted = NatsSink::new(options(server.url())).unwrap();
    assert_eq!(restarted.send(&first), Ok(Delivered::Duplicate));
    assert_eq!(restarted.send(&batch("gw", 1)), Ok(Delivered::Stored));
    assert_eq!(stream_messages(&server.url()), 2);
}

/// A worker draining `queue` through `sink`.
fn drain(queue: Arc<dyn Queue>, sink: NatsSink) -> DeliveryWorker {
    let options = DeliveryOptions {
        // Quick retries and probes: the faults below are many and short.
        retry: RetryPolicy {
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        },
        breaker_revive_after: Duration::from_millis(200),
        idle_wait: Duration::from_millis(20),
        ..DeliveryOptions::default()
    };
    let worker = DeliveryWorker::spawn(Delivery::new(queue, Box::new(sink), options)).unwrap();
    worker.notify();
    worker
}

/// The stream holds each of `batches` exactly once, in order per source.
fn assert_exactly_once_in_order(url: &str, batches: &[Batch]) {
    let stored = read_stream(url);
    let ids: Vec<&str> = stored
        .iter()
        .map(|message| message.headers["Nats-Msg-Id"].as_str())
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "a batch is stored twice");
    assert_eq!(stored.len(), batches.len(), "every batch is stored");
    let mut per_source: HashMap<String, Vec<Batch>> = HashMap::new();
    for message in &stored {
        let batch = Batch::from_bytes(&message.payload, &DecodeLimits::default()).unwrap();
        per_source
            .entry(batch.envelope.source_id.clone())
            .or_default()
            .push(batch);
    }
    for (source, received) in &per_source {
        let sent: Vec<&Batch> = batches
            .iter()
            .filter(|batch| &batch.envelope.source_id == source)
            .collect();
        assert_eq!(
            received.iter().collect::<Vec<_>>(),
            sent,
            "order of {source}"
        );
    }
}

fn durable_queue(dir: &std::path::Path, batches: &[Batch]) -> Arc<dyn Queue> {
    let queue = SegmentedLog::open(dir.join("queue"), LogOptions::default()).unwrap();
    queue
        .enqueue_all(batches.iter().map(Entry::from_batch).collect())
        .unwrap();
    Arc::new(queue)
}

#[test]
fn a_server_restart_mid_drain_leaves_every_batch_stored_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = NatsServer::start(&dir.path().join("nats"));
    let batches: Vec<Batch> = (0..60)
        .map(|i| batch_of(["gw-a", "gw-b"][i % 2], i, 5, Codec::Columnar))
        .collect();
    let queue = durable_queue(dir.path(), &batches);
    let sink = NatsSink::new(options(server.url())).unwrap();
    let worker = drain(Arc::clone(&queue), sink);

    // Stopped (SIGKILL) once a third is confirmed, while the rest are on their way.
    worker.wait_for(HANG, |metrics| metrics.batches_sent >= 20);
    server.stop();
    let before = worker.metrics().batches_sent;
    assert!(before < batches.len() as u64, "stopped mid-way");
    server.restart();
    worker.wait_for(HANG, |metrics| {
        metrics.batches_sent + metrics.dead_lettered >= batches.len() as u64
    });
    let metrics = worker.shutdown();
    assert_eq!(metrics.dead_lettered, 0, "{:?}", metrics.last_failure);
    assert_eq!(metrics.batches_sent, batches.len() as u64);
    assert!(metrics.retries > 0, "the restart was felt: {metrics:?}");
    assert_eq!(queue.stats().pending + queue.stats().in_flight, 0);
    assert_exactly_once_in_order(&server.url(), &batches);
}

#[test]
fn acks_cut_after_the_publish_was_stored_leave_every_batch_stored_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start(&dir.path().join("nats"));
    // Every 4th reply from the server (PubAcks, stream lookups) is cut off.
    let proxy = AckCutter::start(server.port, 4);
    let batches: Vec<Batch> = (0..40)
        .map(|i| batch_of(["gw-a", "gw-b", "gw-c"][i % 3], i, 3, Codec::Json))
        .collect();
    let queue = durable_queue(dir.path(), &batches);
    let mut options = options(proxy.url());
    // A cut ack is noticed when the connection closes; this bounds the rest.
    options.request_timeout = Duration::from_secs(5);
    let sink = NatsSink::new(options).unwrap();
    let worker = drain(Arc::clone(&queue), sink);
    worker.wait_for(HANG * 2, |metrics| {
        metrics.batches_sent + metrics.dead_lettered >= batches.len() as u64
    });
    let metrics = worker.shutdown();
    assert_eq!(metrics.dead_lettered, 0, "{:?}", metrics.last_failure);
    assert_eq!(metrics.batches_sent, batches.len() as u64);
    assert!(proxy.cuts() > 0, "the proxy cut acks");
    // A cut PubAck means the batch was stored and is sent again: JetStream says
    // it is a duplicate, and the stream still holds it once.
    assert!(metrics.duplicates > 0, "{metrics:?}");
    assert_exactly_once_in_order(&server.url(), &batches);
}

#[test]
fn without_a_stream_for_the_subject_the_batch_is_refused_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start(dir.path());
    let mut options = NatsOptions::new(server.url());
    options.request_timeout = HANG;
    let mut sink = NatsSink::new(options).unwrap();
    let outcome = sink.send(&batch("gw", 0));
    assert!(
        matches!(&outcome, Err(SendFailure::Permanent { reason }) if reason.contains("no NATS JetStream stream")),
        "{outcome:?}"
    );
}

#[test]
fn a_stream_deleted_under_ensure_stream_is_made_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start(dir.path());
    let mut sink = NatsSink::new(options(server.url())).unwrap();
    assert_eq!(sink.send(&batch("gw", 0)), Ok(Delivered::Stored));
    runtime().block_on(async {
        let client = async_nats::connect(server.url()).await.unwrap();
        jetstream::new(client).delete_stream(STREAM).await.unwrap();
    });
    let outcome = sink.send(&batch("gw", 1));
    assert!(
        matches!(&outcome, Err(SendFailure::Retryable { .. })),
        "{outcome:?}"
    );
    assert_eq!(sink.send(&batch("gw", 1)), Ok(Delivered::Stored));
    assert_eq!(stream_messages(&server.url()), 1);
}

#[test]
fn a_message_over_max_payload_is_refused_for_good_and_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start_with_config(dir.path(), Some("max_payload: 4096\n"));
    let mut sink = NatsSink::new(options(server.url())).unwrap();
    // Uncompressed and with distinct ids: well over 4 KiB.
    let records: String = (0..200)
        .map(|i| format!("{{\"record_id\":\"r-{i}\",\"device_id\":\"d{i}\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"data_type\":\"sensors\",\"payload\":{{\"t\":{i}}}}}\n"))
        .collect();
    let records: Vec<_> = parse_jsonl(records.as_bytes())
        .map(|(_, record)| record.unwrap())
        .collect();
    let big = BatchEncoder::new("gw", Codec::Json, Compression::None)
        .unwrap()
        .encode(&records, at(0))
        .unwrap();
    assert!(big.to_bytes().len() > 4096);
    let outcome = sink.send(&big);
    assert!(
        matches!(&outcome, Err(SendFailure::Permanent { reason }) if reason.contains("max payload")),
        "{outcome:?}"
    );
    // The sink still works for batches that fit.
    assert_eq!(sink.send(&batch("gw", 1)), Ok(Delivered::Stored));
    assert_eq!(stream_messages(&server.url()), 1);
}

#[test]
fn a_server_that_is_down_is_unreachable_and_a_restart_is_recovered_from() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = NatsServer::start(dir.path());
    let mut sink = NatsSink::new(options(server.url())).unwrap();
    assert_eq!(sink.send(&batch("gw", 0)), Ok(Delivered::Stored));
    server.stop();
    let outcome = sink.send(&batch("gw", 1));
    assert!(
        matches!(&outcome, Err(SendFailure::Unreachable { .. })),
        "{outcome:?}"
    );
    server.restart();
    assert_eq!(sink.send(&batch("gw", 1)), Ok(Delivered::Stored));
    assert_eq!(stream_messages(&server.url()), 2);
}

#[test]
fn wrong_credentials_and_a_denied_subject_are_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start_with_config(
        dir.path(),
        Some(
            r#"authorization {
  users = [
    { user: edge, password: right }
    { user: narrow, password: right, permissions: { publish: { allow: ["$JS.API.>", "_INBOX.>"] } } }
  ]
}
"#,
        ),
    );
    let with = |user: &str, password: &str| {
        let mut options = options(server.url());
        options.auth = NatsAuth::UserPassword {
            user: user.into(),
            password: password.into(),
        };
        // A denied publish is never answered: this bounds the wait for the ack.
        options.request_timeout = Duration::from_secs(3);
        NatsSink::new(options).unwrap()
    };
    assert_eq!(
        with("edge", "right").send(&batch("gw", 0)),
        Ok(Delivered::Stored)
    );
    let wrong = with("edge", "wrong").send(&batch("gw", 1));
    assert!(
        matches!(&wrong, Err(SendFailure::Permanent { reason }) if reason.contains("credentials")),
        "{wrong:?}"
    );
    let denied = with("narrow", "right").send(&batch("gw", 1));
    assert!(
        matches!(&denied, Err(SendFailure::Permanent { reason }) if reason.contains("Permissions Violation")),
        "{denied:?}"
    );
}

#[test]
fn tls_with_the_servers_ca_delivers_and_with_another_ca_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let server = NatsServer::start_with_config(
        dir.path(),
        Some(&format!(
            "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n}}\n",
            cert_path.display().to_string(),
            key_path.display().to_string()
        )),
    );
    let tls_options = |ca: String| {
        let mut options = options(format!("tls://127.0.0.1:{}", server.port));
        options.tls = Some(NatsTls {
            native_roots: false,
            extra_ca_pem: Some(ca.into_bytes()),
        });
        options
    };
    let mut sink = NatsSink::new(tls_options(cert.pem())).unwrap();
    assert_eq!(sink.send(&batch("gw", 0)), Ok(Delivered::Stored));

    let other_key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    let mut untrusting = NatsSink::new(tls_options(other.pem())).unwrap();
    let outcome = untrusting.send(&batch("gw", 1));
    assert!(
        matches!(&outcome, Err(SendFailure::Unreachable { .. })),
        "{outcome:?}"
    );
}

#[test]
fn a_token_is_sent_and_its_absence_is_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start_with_config(
        dir.path(),
        Some("authorization {\n  token: \"edge-token\"\n}\n"),
    );
    let mut with_token = options(server.url());
    with_token.auth = NatsAuth::Token("edge-token".into());
    assert_eq!(
        NatsSink::new(with_token).unwrap().send(&batch("gw", 0)),
        Ok(Delivered::Stored)
    );
    let without = NatsSink::new(options(server.url()))
        .unwrap()
        .send(&batch("gw", 1));
    assert!(
        matches!(&without, Err(SendFailure::Permanent { reason }) if reason.contains("credentials")),
        "{without:?}"
    );
}
