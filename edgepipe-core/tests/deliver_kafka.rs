//! The Kafka sink against a real Kafka-protocol broker (tansu, started per test
//! on loopback by `kafka_support`): what lands in the topic, where, with which
//! headers; compression; how failures are classified; and per-device order
//! through a proxy that cuts produce requests and throws away their answers.
#![cfg(feature = "kafka")]

mod kafka_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use edgepipe_core::batch::{Batch, BatchEncoder, Codec, Compression, DecodeLimits};
use edgepipe_core::deliver::kafka::{
    HEADER_BATCH_ID, HEADER_CODEC, HEADER_RECORD_ID, HEADER_SOURCE,
};
use edgepipe_core::deliver::{
    Delivered, Delivery, DeliveryOptions, DeliveryWorker, KafkaCompression, KafkaMode,
    KafkaOptions, KafkaSink, RetryPolicy, SendFailure, Sink, default_partition,
};
use edgepipe_core::queue::{Entry, MemoryQueue, Queue, QueueOptions};
use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};
use kafka_support::{KafkaFaultProxy, Tansu, free_port, header};

const DEVICES: u64 = 6;

/// Reading `n` of `device`: record id `{device}-{n}`, time and value from `n`.
fn reading(device: &str, n: u64) -> DataRecord {
    let mut record = DataRecord::new(device, "sensors", Payload::new());
    record.record_id = format!("{device}-{n}").into();
    record.timestamp =
        Timestamp::from_unix_nanos(1_767_225_600_000_000_000 + n as i64 * 1_000_000_000);
    record
        .payload
        .insert("temperature", Value::Float(20.0 + n as f64 / 8.0));
    record.payload.insert("sequence", Value::Int(n as i64));
    record
}

/// Batch `b` of a gateway: readings `2b` and `2b + 1` of every device.
fn gateway_batch(encoder: &BatchEncoder, b: u64) -> Batch {
    let records: Vec<DataRecord> = (0..DEVICES)
        .flat_map(|d| {
            [
                reading(&format!("dev-{d}"), 2 * b),
                reading(&format!("dev-{d}"), 2 * b + 1),
            ]
        })
        .collect();
    encoder
        .encode(
            &records,
            Timestamp::from_unix_nanos(1_767_225_600_000_000_000 + b as i64),
        )
        .unwrap()
}

fn sink(tansu_bootstrap: &str, topic: &str, mode: KafkaMode) -> KafkaSink {
    let mut options = KafkaOptions::new([tansu_bootstrap], topic);
    options.mode = mode;
    options.request_timeout = Duration::from_secs(10);
    KafkaSink::new(options).unwrap()
}

#[test]
fn batches_mode_puts_each_batch_whole_in_its_sources_partition() {
    let tansu = Tansu::start();
    tansu.create_topic("batches", 4);
    let mut sink = sink(&tansu.bootstrap(), "batches", KafkaMode::Batches);
    let mut sent = Vec::new();
    for source in ["gw-a", "gw-b", "gw-c"] {
        let encoder =
            BatchEncoder::new(source, Codec::Json, Compression::Gzip { level: 1 }).unwrap();
        for b in 0..3 {
            let batch = gateway_batch(&encoder, b);
            assert_eq!(sink.send(&batch), Ok(Delivered::Stored));
            sent.push(batch);
        }
    }
    let topic = tansu.read_all("batches");
    let mut found: HashMap<String, Vec<Batch>> = HashMap::new();
    for (partition, records) in &topic {
        for record in records {
            let key = String::from_utf8(record.key.clone().unwrap()).unwrap();
            assert_eq!(*partition, default_partition(key.as_bytes(), 4), "{key}");
            let batch = Batch::from_bytes(record.value.as_ref().unwrap(), &DecodeLimits::default())
                .unwrap();
            assert_eq!(header(record, HEADER_BATCH_ID), batch.envelope.batch_id);
            assert_eq!(header(record, HEADER_SOURCE), key);
            assert_eq!(header(record, HEADER_CODEC), "json");
            assert!(!record.headers.contains_key(HEADER_RECORD_ID));
            found.entry(key).or_default().push(batch);
        }
    }
    for source in ["gw-a", "gw-b", "gw-c"] {
        let expected: Vec<Batch> = sent
            .iter()
            .filter(|b| b.envelope.source_id == source)
            .cloned()
            .collect();
        assert_eq!(
            found[source], expected,
            "{source}: every batch, once, in order"
        );
    }
}

#[test]
fn records_mode_puts_each_record_in_its_devices_partition_in_order() {
    let tansu = Tansu::start();
    tansu.create_topic("records", 3);
    let mut sink = sink(&tansu.bootstrap(), "records", KafkaMode::Records);
    let encoder = BatchEncoder::new("gw-1", Codec::Columnar, Compression::Lz4).unwrap();
    let batches: Vec<Batch> = (0..4).map(|b| gateway_batch(&encoder, b)).collect();
    for batch in &batches {
        assert_eq!(sink.send(batch), Ok(Delivered::Stored));
    }
    let topic = tansu.read_all("records");
    let mut by_device: BTreeMap<String, Vec<DataRecord>> = BTreeMap::new();
    for (partition, records) in &topic {
        for record in records {
            let device = String::from_utf8(record.key.clone().unwrap()).unwrap();
            assert_eq!(
                *partition,
                default_partition(device.as_bytes(), 3),
                "{device}"
            );
            let parsed = DataRecord::from_json_slice(record.value.as_ref().unwrap()).unwrap();
            assert_eq!(parsed.device_id, device);
            assert_eq!(header(record, HEADER_RECORD_ID), parsed.record_id.as_str());
            assert_eq!(header(record, HEADER_SOURCE), "gw-1");
            assert_eq!(header(record, HEADER_CODEC), "json");
            assert_eq!(record.timestamp_millis, parsed.timestamp.unix_millis());
            let batch_id = header(record, HEADER_BATCH_ID);
            assert!(batches.iter().any(|b| b.envelope.batch_id == batch_id));
            by_device.entry(device).or_default().push(parsed);
        }
    }
    assert_eq!(by_device.len(), DEVICES as usize);
    for (device, records) in by_device {
        let expected: Vec<DataRecord> = (0..8).map(|n| reading(&device, n)).collect();
        assert_eq!(records, expected, "{device}");
    }
}

#[test]
fn every_compression_round_trips() {
    let tansu = Tansu::start();
    let codecs = [
        KafkaCompression::None,
        KafkaCompression::Gzip,
        KafkaCompression::Snappy,
        #[cfg(feature = "zstd")]
        KafkaCompression::Zstd,
        #[cfg(feature = "kafka-lz4")]
        KafkaCompression::Lz4,
    ];
    let encoder = BatchEncoder::new("gw-z", Codec::Json, Compression::None).unwrap();
    let batch = gateway_batch(&encoder, 7);
    let expected = batch.decode(&DecodeLimits::default()).unwrap();
    for (index, compression) in codecs.into_iter().enumerate() {
        let topic = format!("compressed-{index}");
        tansu.create_topic(&topic, 1);
        let mut options = KafkaOptions::new([tansu.bootstrap()], topic.as_str());
        options.mode = KafkaMode::Records;
        options.compression = compression;
        let mut sink = KafkaSink::new(options).unwrap();
        assert_eq!(sink.send(&batch), Ok(Delivered::Stored), "{compression:?}");
        let read: Vec<DataRecord> = tansu.read_all(&topic)[&0]
            .iter()
            .map(|record| DataRecord::from_json_slice(record.value.as_ref().unwrap()).unwrap())
            .collect();
        assert_eq!(read, expected, "{compression:?}");
    }
}

#[test]
fn failures_are_classified_for_the_retry_policy() {
    let tansu = Tansu::start();
    tansu.create_topic("small", 1);
    let encoder = BatchEncoder::new("gw-f", Codec::Json, Compression::None).unwrap();
    let batch = gateway_batch(&encoder, 1);

    // A topic that does not exist (tansu, like Kafka with auto-create off, does
    // not make one on produce): retrying cannot help.
    let mut unknown = sink(&tansu.bootstrap(), "no-such-topic", KafkaMode::Batches);
    let outcome = unknown.send(&batch);
    assert!(
        matches!(&outcome, Err(SendFailure::Permanent { reason }) if reason.contains("no-such-topic")),
        "{outcome:?}"
    );

    // A record over the size limit is refused before it is sent.
    let mut options = KafkaOptions::new([tansu.bootstrap()], "small");
    options.max_record_bytes = 64;
    let mut small = KafkaSink::new(options).unwrap();
    let outcome = small.send(&batch);
    assert!(
        matches!(&outcome, Err(SendFailure::Permanent { reason }) if reason.contains("max_record_bytes")),
        "{outcome:?}"
    );
    assert!(
        tansu.read_all("small")[&0].is_empty(),
        "nothing was produced"
    );

    // No broker at all: unreachable, within the request timeout.
    let mut options = KafkaOptions::new([format!("127.0.0.1:{}", free_port())], "small");
    options.request_timeout = Duration::from_millis(500);
    let mut nowhere = KafkaSink::new(options).unwrap();
    let outcome = nowhere.send(&batch);
    assert!(
        matches!(outcome, Err(SendFailure::Unreachable { .. })),
        "{outcome:?}"
    );

    // And the sink that failed still works once the cause is gone.
    let mut fine = sink(&tansu.bootstrap(), "small", KafkaMode::Batches);
    assert_eq!(fine.send(&batch), Ok(Delivered::Stored));
}

/// Many batches from two gateways through a [`DeliveryWorker`], while a proxy
/// between the sink and the broker cuts produce requests before the broker has
/// them, drops answers after it stored them, and swallows some whole (the send
/// times out and the worker retries the batch). Read back per partition, each
/// device's records — repeats dropped by record id, first copy kept — are
/// exactly what the gateways produced, in order, none missing.
#[test]
fn per_device_order_survives_cut_connections_and_lost_answers() {
    let batches_per_gateway: u64 = std::env::var("EDGEPIPE_KAFKA_CHAOS_BATCHES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(60);
    let proxy_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_port = proxy_listener.local_addr().unwrap().port();
    let tansu = Tansu::start_advertising(free_port(), proxy_port);
    let proxy = KafkaFaultProxy::start(proxy_listener, tansu.address(), 150, 150, 30, 0x5eed);
    tansu.create_topic("ordered", 3);

    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new(QueueOptions {
        max_bytes: 0,
        // Only a permanent failure may dead-letter, and none is expected.
        max_attempts: 1_000_000,
        ..QueueOptions::default()
    }));
    let mut options = KafkaOptions::new([proxy.address().to_string()], "ordered");
    options.mode = KafkaMode::Records;
    // Ends a swallowed request's wait; the failure path's own clock, not an assertion.
    options.request_timeout = Duration::from_secs(1);
    let sink = KafkaSink::new(options).unwrap();
    let delivery = DeliveryOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
        },
        breaker_open_after: 1_000,
        breaker_revive_after: Duration::from_millis(10),
        idle_wait: Duration::from_millis(10),
        ..DeliveryOptions::default()
    };
    let worker =
        DeliveryWorker::spawn(Delivery::new(Arc::clone(&queue), Box::new(sink), delivery)).unwrap();
    // Two gateways, each with its own devices, so two sources interleave.
    let gateways: Vec<(BatchEncoder, String)> = ["gw-north", "gw-south"]
        .into_iter()
        .map(|gw| {
            (
                BatchEncoder::new(gw, Codec::Json, Compression::Gzip { level: 1 }).unwrap(),
                gw.to_owned(),
            )
        })
        .collect();
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in 0..batches_per_gateway {
        for (encoder, gw) in &gateways {
            let records: Vec<DataRecord> = (0..DEVICES)
                .flat_map(|d| {
                    let device = format!("{gw}-dev-{d}");
                    [reading(&device, 2 * b), reading(&device, 2 * b + 1)]
                })
                .collect();
            for record in &records {
                expected
                    .entry(record.device_id.to_string())
                    .or_default()
                    .push(record.record_id.to_string());
            }
            let batch = encoder
                .encode(&records, Timestamp::from_unix_nanos(b as i64))
                .unwrap();
            queue.enqueue(Entry::from_batch(&batch)).unwrap();
            worker.notify();
        }
    }
    let total = 2 * batches_per_gateway;
    // The deadline only ends a hung run; nothing here is timed.
    let metrics = worker.wait_for(Duration::from_secs(600), |m| m.batches_sent >= total);
    assert!(worker.failure().is_none(), "{:?}", worker.failure());
    assert_eq!(metrics.batches_sent, total, "{metrics:?}");
    assert_eq!(queue.stats().dead, 0, "{:?}", metrics.last_failure);
    let metrics = worker.shutdown();

    let counts = proxy.counts();
    assert!(counts.cut_before_broker > 0, "{counts:?}");
    assert!(counts.answer_dropped > 0, "{counts:?}");
    assert!(counts.stalled > 0, "{counts:?}");
    // The client retries cut connections itself; a swallowed request fails the
    // send, and the worker retries the batch.
    assert!(metrics.retries > 0, "{metrics:?}");

    let topic = tansu.read_all("ordered");
    let mut seen = HashSet::new();
    let mut repeats = 0;
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (partition, records) in &topic {
        for record in records {
            let device = String::from_utf8(record.key.clone().unwrap()).unwrap();
            assert_eq!(
                *partition,
                default_partition(device.as_bytes(), 3),
                "{device}"
            );
            let id = header(record, HEADER_RECORD_ID);
            if !seen.insert(id.clone()) {
                repeats += 1;
                continue;
            }
            found.entry(device).or_default().push(id);
        }
    }
    assert_eq!(found, expected, "per device: every record, in order");
    // A dropped answer means the broker stored a request the sink sent again.
    assert!(
        repeats > 0,
        "lost answers must show up as repeats ({counts:?})"
    );
}
