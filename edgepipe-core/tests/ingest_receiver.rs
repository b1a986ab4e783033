//! The receiver, one test per outcome, plus deduplication and its crash windows.

mod ingest_support;

use edgepipe_core::batch::{Codec, Compression, DecodeLimits, signature};
use edgepipe_core::ingest::{
    CrashPoint, DataLakeStore, Dedup, IngestRequest, MemoryStore, Outcome, Receiver,
    ReceiverConfig, Retention,
};
use ingest_support::*;

fn config() -> ReceiverConfig {
    ReceiverConfig::new([KEY])
}

fn memory_receiver(config: ReceiverConfig) -> (Receiver, MemoryStore) {
    let store = MemoryStore::default();
    let receiver = Receiver::with_parts(
        config,
        Dedup::in_memory(Retention::default()),
        Box::new(store.clone()),
        Box::new(store.clone()),
    )
    .unwrap();
    (receiver, store)
}

fn stored(batch_id: &str, accepted: u64, quarantined: u64, duplicate: u64) -> Outcome {
    Outcome::Stored {
        batch_id: batch_id.into(),
        accepted,
        quarantined,
        duplicate,
    }
}

#[test]
fn every_codec_and_compression_is_stored() {
    let (receiver, store) = memory_receiver(config());
    let mut compressions = vec![Compression::None, Compression::SEED, Compression::Lz4];
    if cfg!(feature = "zstd") {
        compressions.push(Compression::Zstd { level: 3 });
    }
    let mut epoch = 0;
    for codec in Codec::ALL {
        for &compression in &compressions {
            let records = records("gw", epoch, 0..10);
            let batch = batch("gw", &records, codec, compression);
            let outcome = receiver.handle(&request(&batch));
            assert_eq!(
                outcome,
                stored(&batch.envelope.batch_id, 10, 0, 0),
                "{codec:?} {compression:?}"
            );
            epoch += 1;
        }
    }
    assert_eq!(store.all_records().len(), 10 * epoch as usize);
}

#[test]
fn seed_request_gets_the_seed_answer() {
    let (receiver, store) = memory_receiver(config());
    let records = records("edge-001", 0, 0..100);
    let request = seed_request("3f1c0e4e-6a8b-4c55-9d0e-2f7b9a1c0d11", &records);
    let outcome = receiver.handle(&request);
    assert_eq!(outcome.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&outcome.body()).unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["batch_id"], "3f1c0e4e-6a8b-4c55-9d0e-2f7b9a1c0d11");
    assert_eq!(body["records_accepted"], 100);
    assert_eq!(store.all_records(), records);
    // The seed's retry of the same batch id.
    let again = receiver.handle(&request);
    assert_eq!(
        again.body(),
        r#"{"batch_id":"3f1c0e4e-6a8b-4c55-9d0e-2f7b9a1c0d11","status":"duplicate"}"#
    );
}

#[test]
fn missing_headers_are_fastapi_422() {
    let (receiver, _) = memory_receiver(config());
    let outcome = receiver.handle(&IngestRequest::new(b"[]".to_vec()));
    assert_eq!(outcome.status(), 422);
    let body: serde_json::Value = serde_json::from_str(&outcome.body()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"detail": [
            {"type": "missing", "loc": ["header", "x-api-key"], "msg": "Field required", "input": null},
            {"type": "missing", "loc": ["header", "x-batch-id"], "msg": "Field required", "input": null},
        ]})
    );
    let only_id = IngestRequest::new(b"[]".to_vec()).header("x-api-key", KEY);
    assert_eq!(
        receiver.handle(&only_id),
        Outcome::MissingHeaders {
            headers: vec!["x-batch-id"]
        }
    );
}

#[test]
fn wrong_key_and_signature_are_401() {
    let mut config = config();
    config.hmac_key = Some(b"secret".to_vec());
    config.require_signature = true;
    let (receiver, store) = memory_receiver(config);
    let batch = batch(
        "gw",
        &records("gw", 0, 0..3),
        Codec::Json,
        Compression::SEED,
    );
    let good = request(&batch);
    let mut wrong_key = good.clone();
    wrong_key.headers[0].1 = "valid-api-key".into();
    assert_eq!(
        receiver.handle(&wrong_key).body(),
        r#"{"detail":"Invalid API key"}"#
    );
    assert_eq!(receiver.handle(&wrong_key).status(), 401);
    // Required and absent, then present but over another batch id.
    assert_eq!(
        receiver.handle(&good).body(),
        r#"{"detail":"Invalid signature"}"#
    );
    let replayed = good.clone().header(
        "X-Edgepipe-Signature",
        signature(b"secret", "other-id", &batch.payload),
    );
    assert_eq!(receiver.handle(&replayed).status(), 401);
    assert!(store.all_records().is_empty());
    let signed = good.header(
        "X-Edgepipe-Signature",
        signature(b"secret", &batch.envelope.batch_id, &batch.payload),
    );
    assert_eq!(receiver.handle(&signed).status(), 200);
    assert_eq!(receiver.metrics().rejected(401), 4);
}

#[test]
fn bad_batches_are_400_with_the_reason() {
    let (receiver, store) = memory_receiver(config());
    let records = records("gw", 0, 0..5);
    let gz = batch("gw", &records, Codec::Json, Compression::SEED);

    let mut bad_sum = request(&gz);
    bad_sum.body[20] ^= 1;
    let outcome = receiver.handle(&bad_sum);
    assert_eq!(outcome.status(), 400);
    assert!(
        outcome.body().contains("checksum mismatch"),
        "{}",
        outcome.body()
    );

    let truncated = seed_request("t1", &records);
    let mut truncated = truncated;
    truncated.body.truncate(truncated.body.len() / 2);
    assert_eq!(
        receiver.handle(&truncated).body(),
        r#"{"detail":"Invalid gzip data"}"#
    );

    let garbage = IngestRequest::new(b"\x00\x01not json".to_vec())
        .header("X-API-Key", KEY)
        .header("X-Batch-ID", "g1");
    assert_eq!(
        receiver.handle(&garbage).body(),
        r#"{"detail":"Invalid JSON"}"#
    );

    let lz4 = batch("gw", &records, Codec::Columnar, Compression::Lz4);
    let mut corrupt = request(&lz4);
    corrupt.body[8] ^= 0xff;
    corrupt.headers.retain(|(n, _)| n != "X-Edgepipe-Checksum");
    assert_eq!(receiver.handle(&corrupt).status(), 400);

    let unknown = request(&gz).header("X-Edgepipe-Codec", "xml");
    let mut unknown = unknown;
    unknown
        .headers
        .retain(|(n, v)| n != "X-Edgepipe-Codec" || v == "xml");
    assert!(
        receiver
            .handle(&unknown)
            .body()
            .contains("unsupported codec")
    );

    let mut lying = request(&gz);
    for (name, value) in &mut lying.headers {
        if name == "X-Edgepipe-Records" {
            *value = "4".into();
        }
    }
    assert!(
        receiver
            .handle(&lying)
            .body()
            .contains("X-Edgepipe-Records says 4")
    );
    assert!(store.all_records().is_empty());
    assert_eq!(receiver.metrics().rejected(400), 6);
}

#[test]
fn over_limit_is_413() {
    let mut config = config();
    config.limits = DecodeLimits {
        max_compressed_bytes: 4096,
        max_decompressed_bytes: 64 << 10,
        max_records: 50,
        max_depth: 16,
    };
    let (receiver, store) = memory_receiver(config);
    // Body over the limit.
    let big = IngestRequest::new(vec![b' '; 5000])
        .header("X-API-Key", KEY)
        .header("X-Batch-ID", "b");
    assert_eq!(
        receiver.handle(&big).body(),
        r#"{"detail":"compressed batch of 5000 bytes exceeds the limit of 4096 bytes"}"#
    );
    // A small gzip that inflates past the limit.
    let bomb = IngestRequest::new(gzip(&vec![b' '; 1 << 20]))
        .header("X-API-Key", KEY)
        .header("X-Batch-ID", "bomb")
        .header("Content-Encoding", "gzip");
    assert_eq!(
        receiver.handle(&bomb).body(),
        r#"{"detail":"batch decompresses to more than the limit of 65536 bytes"}"#
    );
    // Too many records, declared and actual.
    let many = batch(
        "gw",
        &records("gw", 0, 0..60),
        Codec::Columnar,
        Compression::Lz4,
    );
    assert_eq!(receiver.handle(&request(&many)).status(), 413);
    let mut undeclared = request(&many);
    undeclared
        .headers
        .retain(|(n, _)| n != "X-Edgepipe-Records");
    assert_eq!(receiver.handle(&undeclared).status(), 413);
    let json = batch(
        "gw",
        &records("gw", 0, 0..60),
        Codec::Json,
        Compression::SEED,
    );
    let mut undeclared = request(&json);
    undeclared
        .headers
        .retain(|(n, _)| n != "X-Edgepipe-Records");
    assert_eq!(
        receiver.handle(&undeclared).body(),
        r#"{"detail":"batch holds more than the limit of 50 records"}"#
    );
    assert!(store.all_records().is_empty());
    assert_eq!(receiver.metrics().rejected(413), 5);
}

#[test]
fn invalid_records_are_quarantined_with_reasons() {
    let (receiver, store) = memory_receiver(config());
    let good = &records("gw", 0, 0..2);
    let body = format!(
        r#"[{},{{"record_id":"x1","device_id":"d"}},{{"record_id":"x2","device_id":"d","timestamp":"yesterday","data_type":"s","payload":{{}}}},{},7]"#,
        good[0].to_json().unwrap(),
        good[1].to_json().unwrap()
    );
    let request = IngestRequest::new(gzip(body.as_bytes()))
        .header("X-API-Key", KEY)
        .header("X-Batch-ID", "q1")
        .header("Content-Encoding", "gzip");
    assert_eq!(receiver.handle(&request), stored("q1", 2, 3, 0));
    let quarantined = store.all_quarantined();
    assert_eq!(quarantined.len(), 3);
    assert_eq!(quarantined[0].raw, r#"{"record_id":"x1","device_id":"d"}"#);
    assert!(
        quarantined[0].reason.contains("timestamp"),
        "{}",
        quarantined[0].reason
    );
    assert!(
        quarantined[1].reason.contains("yesterday"),
        "{}",
        quarantined[1].reason
    );
    assert_eq!(quarantined[2].raw, "7");
    assert_eq!(store.all_records(), good.to_vec());
    let metrics = receiver.metrics().render_prometheus();
    assert!(
        metrics.contains("edgepipe_ingest_records_quarantined_total 3\n"),
        "{metrics}"
    );
}

#[test]
fn rebatched_and_replayed_records_are_stored_once() {
    let (receiver, store) = memory_receiver(config());
    let all = records("gw", 7, 0..30);
    // 0..10 lands; 10..20 is dead-lettered at the edge; 20..30 lands.
    for part in [&all[0..10], &all[20..30]] {
        let b = batch("gw", part, Codec::Columnar, Compression::Lz4);
        assert_eq!(receiver.handle(&request(&b)).status(), 200);
    }
    // A re-batched retry overlapping what landed: only the new records are stored.
    let b = batch("gw", &all[5..15], Codec::Json, Compression::SEED);
    assert_eq!(
        receiver.handle(&request(&b)),
        stored(&b.envelope.batch_id, 5, 0, 5)
    );
    // The dead-lettered batch replayed later fills the rest of the gap.
    let b = batch("gw", &all[10..20], Codec::Jsonl, Compression::None);
    assert_eq!(
        receiver.handle(&request(&b)),
        stored(&b.envelope.batch_id, 5, 0, 5)
    );
    // A batch whose every record is stored is a duplicate, whatever its id.
    let b = batch("gw", &all[3..27], Codec::Msgpack, Compression::Lz4);
    assert_eq!(
        receiver.handle(&request(&b)),
        Outcome::Duplicate {
            batch_id: b.envelope.batch_id.clone()
        }
    );
    assert_eq!(ids_once(&store.all_records()), expected_ids("gw", 7, 0..30));
}

#[test]
fn dedup_survives_reopen_and_batch_ids_age_out() {
    let dir = tempfile::tempdir().unwrap();
    let all = records("gw", 1, 0..20);
    let first = batch("gw", &all[..10], Codec::Json, Compression::SEED);
    let seed_records = records("uuid", 0, 0..3);
    {
        let receiver = Receiver::open(config(), dir.path()).unwrap();
        assert_eq!(receiver.handle(&request(&first)).status(), 200);
        assert_eq!(
            receiver
                .handle(&seed_request("seed-1", &seed_records))
                .status(),
            200
        );
    }
    let receiver = Receiver::open(config(), dir.path()).unwrap();
    assert!(matches!(
        receiver.handle(&request(&first)),
        Outcome::Duplicate { .. }
    ));
    assert!(matches!(
        receiver.handle(&seed_request("seed-1", &seed_records)),
        Outcome::Duplicate { .. }
    ));
    let overlap = batch("gw", &all[5..20], Codec::Json, Compression::SEED);
    assert_eq!(
        receiver.handle(&request(&overlap)),
        stored(&overlap.envelope.batch_id, 10, 0, 5)
    );
    drop(receiver);
    // With no batch id remembered, the ranges still recognise every record.
    let mut forgetful = config();
    forgetful.retention = Retention {
        batch_id_seconds: 0,
        max_batch_ids: 0,
    };
    let receiver = Receiver::open(forgetful, dir.path()).unwrap();
    assert!(matches!(
        receiver.handle(&request(&first)),
        Outcome::Duplicate { .. }
    ));
    let lake = DataLakeStore::read_all(&dir.path().join("lake")).unwrap();
    let mut expected = expected_ids("gw", 1, 0..20);
    expected.extend(seed_records.iter().map(|r| r.record_id.to_string()));
    expected.sort();
    assert_eq!(ids_once(&lake), expected);
}

/// A crash at each point between the steps, then a reopen and both kinds of retry
/// (the same batch, and the records re-batched under another id): every record is
/// stored exactly once.
#[test]
fn a_crash_between_any_two_steps_loses_nothing_and_stores_nothing_twice() {
    for point in [
        CrashPoint::AfterBegin,
        CrashPoint::AfterStore,
        CrashPoint::AfterCommit,
    ] {
        for rebatch in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let all = records("gw", 3, 0..40);
            let crashed = batch("gw", &all[..20], Codec::Columnar, Compression::Lz4);
            {
                let receiver = Receiver::open(config(), dir.path()).unwrap();
                receiver.crash_at(Some(point));
                let outcome = receiver.handle(&request(&crashed));
                assert_eq!(outcome.status(), 503, "{point:?}");
                // The "dead" receiver answers nothing more.
                assert_eq!(receiver.handle(&request(&crashed)).status(), 503);
            }
            let receiver = Receiver::open(config(), dir.path()).unwrap();
            let retry = if rebatch {
                batch("gw", &all[10..40], Codec::Json, Compression::SEED)
            } else {
                crashed.clone()
            };
            let outcome = receiver.handle(&request(&retry));
            assert_eq!(outcome.status(), 200, "{point:?} {outcome:?}");
            if rebatch {
                let rest = batch("gw", &all[..10], Codec::Jsonl, Compression::Lz4);
                assert_eq!(receiver.handle(&request(&rest)).status(), 200);
            }
            let stored = DataLakeStore::read_all(&dir.path().join("lake")).unwrap();
            let expected = if rebatch { 0..40 } else { 0..20 };
            assert_eq!(
                ids_once(&stored),
                expected_ids("gw", 3, expected),
                "{point:?} rebatch={rebatch}"
            );
        }
    }
}

/// A crash in the middle of writing a batch's partition files: the files that were
/// renamed into place are kept, the retry adds the rest, nothing is doubled.
#[test]
fn a_batch_half_written_before_a_crash_is_completed_by_its_retry() {
    let dir = tempfile::tempdir().unwrap();
    let all = records("gw", 0, 0..10);
    let b = batch("gw", &all, Codec::Json, Compression::SEED);
    {
        let receiver = Receiver::open(config(), dir.path()).unwrap();
        receiver.crash_at(Some(CrashPoint::AfterStore));
        assert_eq!(receiver.handle(&request(&b)).status(), 503);
    }
    // Undo one of the two partition files (device 1), as if the crash came before
    // its rename, leaving its temporary file behind.
    let lake = dir.path().join("lake");
    let file = lake
        .join("date=2026-01-01/device=dev-1")
        .join(format!("part-{}.jsonl", b.envelope.batch_id));
    std::fs::rename(&file, file.with_extension("jsonl.tmp")).unwrap();
    let receiver = Receiver::open(config(), dir.path()).unwrap();
    assert!(
        !file.with_extension("jsonl.tmp").exists(),
        "temp file removed on open"
    );
    assert_eq!(
        receiver.handle(&request(&b)),
        stored(&b.envelope.batch_id, 5, 0, 5)
    );
    assert_eq!(
        ids_once(&DataLakeStore::read_all(&lake).unwrap()),
        expected_ids("gw", 0, 0..10)
    );
}
