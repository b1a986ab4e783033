//! Helpers shared by the ingest tests: records, batches and requests.
#![allow(dead_code)]

use std::path::Path;

use edgepipe_core::batch::{Batch, BatchEncoder, Codec, Compression};
use edgepipe_core::ingest::IngestRequest;
use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};

pub const KEY: &str = "test-key-1";

/// Records `source:epoch:seq` for `seqs`, two devices, one day.
pub fn records(source: &str, epoch: u64, seqs: std::ops::Range<u64>) -> Vec<DataRecord> {
    seqs.map(|seq| {
        let mut record = DataRecord::new(format!("dev-{}", seq % 2), "sensors", Payload::new());
        record.record_id = format!("{source}:{epoch}:{seq}").into();
        record.timestamp = Timestamp::from_unix_millis(1_767_225_600_000 + seq as i64).unwrap();
        record
            .payload
            .insert("temperature", Value::Float(20.0 + seq as f64 / 8.0));
        record
    })
    .collect()
}

pub fn batch(
    source: &str,
    records: &[DataRecord],
    codec: Codec,
    compression: Compression,
) -> Batch {
    BatchEncoder::new(source, codec, compression)
        .unwrap()
        .encode(records, Timestamp::from_unix_millis(0).unwrap())
        .unwrap()
}

/// The request the edge's HTTP sink makes for `batch` (every extension header).
pub fn request(batch: &Batch) -> IngestRequest {
    let e = &batch.envelope;
    let mut request = IngestRequest::new(batch.payload.clone())
        .header("X-API-Key", KEY)
        .header("X-Batch-ID", e.batch_id.clone())
        .header("Content-Type", "application/octet-stream")
        .header("X-Edgepipe-Codec", e.codec.name())
        .header("X-Edgepipe-Checksum", e.checksum.clone())
        .header("X-Edgepipe-Source", e.source_id.clone())
        .header("X-Edgepipe-Records", e.record_count.to_string());
    if e.compression != Compression::None {
        request = request.header("Content-Encoding", e.compression.name());
    }
    request
}

/// The request the seed's aiohttp sender makes: gzip JSON array, seed headers only.
pub fn seed_request(batch_id: &str, records: &[DataRecord]) -> IngestRequest {
    let mut json = Vec::new();
    Codec::JsonPython.encode(records, &mut json).unwrap();
    IngestRequest::new(gzip(&json))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Encoding", "gzip")
        .header("X-API-Key", KEY)
        .header("X-Batch-ID", batch_id)
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Every record stored in a data lake directory, read back from its JSONL files.
pub fn lake_records(root: &Path) -> Vec<DataRecord> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if !dir.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                let text = std::fs::read_to_string(&path).unwrap();
                for line in text.lines() {
                    out.push(DataRecord::from_json(line).unwrap());
                }
            }
        }
    }
    out
}

/// Sorted record ids, asserting none appears twice.
pub fn ids_once(records: &[DataRecord]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r.record_id.to_string()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "a record was stored twice");
    ids
}

pub fn expected_ids(source: &str, epoch: u64, seqs: std::ops::Range<u64>) -> Vec<String> {
    let mut ids: Vec<String> = seqs.map(|s| format!("{source}:{epoch}:{s}")).collect();
    ids.sort();
    ids
}
