//! The ingest tier's Kafka output against a real broker (tansu): the
//! `edgepipe-ingest` binary with `--kafka-only` and with the lake as well
//! publishes every accepted record once, keyed and partitioned by device, and
//! nothing dedup refused; a crash between producing and the journal's commit
//! repeats records in Kafka, recognisable by their record-id header, and loses none.
#![cfg(all(feature = "kafka", feature = "ingest-server"))]

mod ingest_support;
mod kafka_support;

use std::collections::{BTreeMap, HashSet};

use edgepipe_core::batch::{Codec, Compression};
use edgepipe_core::deliver::kafka::{HEADER_BATCH_ID, HEADER_CODEC, HEADER_RECORD_ID};
use edgepipe_core::deliver::{KafkaOptions, default_partition};
use edgepipe_core::ingest::{
    CrashPoint, DataLakeStore, Dedup, KafkaStore, MemoryStore, Outcome, Receiver, ReceiverConfig,
    Retention, TeeStore,
};
use edgepipe_core::record::DataRecord;
use ingest_support::*;
use kafka_support::{Tansu, header};

const PARTITIONS: i32 = 4;

/// Every record in `topic`, checked to be keyed by its device and in that key's
/// partition, with the record-id and batch-id headers; in partition order.
fn published(tansu: &Tansu, topic: &str) -> Vec<DataRecord> {
    let mut out = Vec::new();
    for (partition, records) in tansu.read_all(topic) {
        for record in records {
            let parsed = DataRecord::from_json_slice(record.value.as_ref().unwrap()).unwrap();
            assert_eq!(record.key.as_deref(), Some(parsed.device_id.as_bytes()));
            assert_eq!(
                partition,
                default_partition(parsed.device_id.as_bytes(), PARTITIONS)
            );
            assert_eq!(header(&record, HEADER_RECORD_ID), parsed.record_id.as_str());
            assert_eq!(header(&record, HEADER_CODEC), "json");
            assert!(!header(&record, HEADER_BATCH_ID).is_empty());
            out.push(parsed);
        }
    }
    out
}

fn sorted_ids(records: &[DataRecord]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r.record_id.to_string()).collect();
    ids.sort();
    ids
}

/// Sends the same traffic as an edge that retries: a batch, the batch again, and
/// a re-batch overlapping it by ten records; returns the records sent, once each.
fn send_with_duplicates(server: &Server) -> Vec<DataRecord> {
    let all = records("gw", 3, 0..40);
    let first = batch("gw", &all[..20], Codec::Columnar, Compression::Lz4);
    let mut http = Http::connect(server.addr);
    let response = http.send("POST", "/api/ingest", &request(&first));
    assert_eq!(response.json()["records_accepted"], 20, "{}", response.body);
    let again = http.send("POST", "/api/ingest", &request(&first));
    assert_eq!(again.json()["status"], "duplicate");
    let rebatched = batch("gw", &all[10..40], Codec::Json, Compression::SEED);
    let response = http.send("POST", "/api/ingest", &request(&rebatched));
    assert_eq!(response.json()["records_accepted"], 20, "{}", response.body);
    assert_eq!(response.json()["records_duplicate"], 10);
    all
}

#[test]
fn kafka_only_publishes_each_accepted_record_once_by_device() {
    let tansu = Tansu::start();
    tansu.create_topic("ingested", PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--kafka-brokers",
            &tansu.bootstrap(),
            "--kafka-topic",
            "ingested",
            "--kafka-only",
        ],
    );
    let sent = send_with_duplicates(&server);
    let out = published(&tansu, "ingested");
    assert_eq!(sorted_ids(&out), sorted_ids(&sent), "each record once");
    // Per device, in the order the edge produced them.
    let mut by_device: BTreeMap<String, Vec<DataRecord>> = BTreeMap::new();
    for record in out {
        by_device
            .entry(record.device_id.to_string())
            .or_default()
            .push(record);
    }
    for (device, records) in by_device {
        let expected: Vec<DataRecord> = sent
            .iter()
            .filter(|r| r.device_id == device)
            .cloned()
            .collect();
        assert_eq!(records, expected, "{device}");
    }
    assert!(
        DataLakeStore::read_all(&dir.path().join("lake"))
            .unwrap()
            .is_empty(),
        "--kafka-only writes no lake"
    );
}

#[test]
fn lake_and_kafka_both_hold_each_accepted_record_once() {
    let tansu = Tansu::start();
    tansu.create_topic("both", PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--kafka-brokers",
            &tansu.bootstrap(),
            "--kafka-topic",
            "both",
        ],
    );
    let sent = send_with_duplicates(&server);
    assert_eq!(sorted_ids(&published(&tansu, "both")), sorted_ids(&sent));
    let lake = DataLakeStore::read_all(&dir.path().join("lake")).unwrap();
    assert_eq!(sorted_ids(&lake), sorted_ids(&sent));
}

#[test]
fn unknown_topic_or_broker_down_answers_503_and_stores_nothing() {
    let tansu = Tansu::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--kafka-brokers",
            &tansu.bootstrap(),
            "--kafka-topic",
            "missing",
        ],
    );
    let sent = records("gw", 1, 0..4);
    let response = Http::connect(server.addr).send(
        "POST",
        "/api/ingest",
        &request(&batch("gw", &sent, Codec::Json, Compression::None)),
    );
    assert_eq!(response.status, 503, "{}", response.body);
    // Now the operator creates the topic; the sender's retry goes through.
    tansu.create_topic("missing", PARTITIONS);
    let response = Http::connect(server.addr).send(
        "POST",
        "/api/ingest",
        &request(&batch("gw", &sent, Codec::Json, Compression::None)),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(sorted_ids(&published(&tansu, "missing")), sorted_ids(&sent));
}

/// What `Store::recover` can and cannot do for Kafka: after a crash between the
/// produce and the journal's commit, the retry publishes the batch again. The
/// lake holds each record once; Kafka holds the repeats, each recognisable by
/// its record-id header, and no record is missing.
#[test]
fn a_crash_before_the_commit_repeats_records_in_kafka_and_loses_none() {
    let tansu = Tansu::start();
    tansu.create_topic("crashy", PARTITIONS);
    let lake = MemoryStore::default();
    let journal = tempfile::tempdir().unwrap();
    let journal = journal.path().join("dedup.journal");
    let open = || {
        let kafka = KafkaStore::new(KafkaOptions::new([tansu.bootstrap()], "crashy")).unwrap();
        let store = TeeStore::new(Box::new(lake.clone()), Box::new(kafka));
        Receiver::with_parts(
            ReceiverConfig::new([KEY]),
            Dedup::open(&journal, Retention::default(), 0).unwrap(),
            Box::new(store),
            Box::new(MemoryStore::default()),
        )
        .unwrap()
    };
    let sent = records("gw", 5, 0..12);
    let request = request(&batch("gw", &sent, Codec::Json, Compression::None));
    let receiver = open();
    receiver.crash_at(Some(CrashPoint::AfterStore));
    assert!(matches!(
        receiver.handle(&request),
        Outcome::Unavailable { .. }
    ));
    drop(receiver);
    // Restarted: recovery cannot read Kafka back, so the batch counts as not stored.
    let receiver = open();
    assert!(matches!(
        receiver.handle(&request),
        Outcome::Stored { accepted: 12, .. }
    ));
    assert!(matches!(
        receiver.handle(&request),
        Outcome::Duplicate { .. }
    ));

    let out = published(&tansu, "crashy");
    assert_eq!(
        out.len(),
        2 * sent.len(),
        "published, crashed, published again"
    );
    let unique: HashSet<&str> = out.iter().map(|r| r.record_id.as_str()).collect();
    assert_eq!(unique.len(), sent.len(), "repeats share their record id");
    assert_eq!(
        sorted_ids(&lake.all_records()),
        sorted_ids(&sent),
        "the lake holds each once"
    );
}

/// The server drops its receiver, and the Kafka store's own runtime with it,
/// inside its runtime when it shuts down: that must be a clean stop, not a panic.
#[test]
fn the_server_with_a_kafka_store_shuts_down_cleanly() {
    use edgepipe_core::ingest::server::{ServerConfig, start};
    let tansu = Tansu::start();
    tansu.create_topic("stopping", PARTITIONS);
    let kafka = KafkaStore::new(KafkaOptions::new([tansu.bootstrap()], "stopping")).unwrap();
    let receiver = Receiver::with_parts(
        ReceiverConfig::new([KEY]),
        Dedup::in_memory(Retention::default()),
        Box::new(kafka),
        Box::new(MemoryStore::default()),
    )
    .unwrap();
    let handle = start(
        std::sync::Arc::new(receiver),
        ServerConfig::new(([127, 0, 0, 1], 0).into()),
    )
    .unwrap();
    let sent = records("gw", 2, 0..6);
    let response = Http::connect(handle.local_addr()).send(
        "POST",
        "/api/ingest",
        &request(&batch("gw", &sent, Codec::Json, Compression::None)),
    );
    assert_eq!(response.status, 200, "{}", response.body);
    handle.shutdown().unwrap();
    assert_eq!(
        sorted_ids(&published(&tansu, "stopping")),
        sorted_ids(&sent)
    );
}
