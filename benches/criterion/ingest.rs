//! Server-side ingest throughput of the receiver, in records/s: the seed's
//! 100-record gzip JSON batches (`json.dumps` of the shared workload's records,
//! gzip 6), each request checked, inflated, parsed, validated per record and
//! stored. Two stores:
//!
//! - `discard`: a store that keeps nothing, so the figure is the receiver's own
//!   CPU cost (what one core decodes and validates);
//! - `data_lake`: the `DataLakeStore` and the journal on disk under cargo's
//!   target tmp dir, with their fsyncs, as `edgepipe-ingest` runs.
//!
//! Compare the two as a ratio (how much of a request durability costs); absolute
//! figures depend on the disk.

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgepipe_benches::{DiscardStore, workload_jsonl};
use edgepipe_core::batch::{Codec, Compression, compression::compress};
use edgepipe_core::ingest::{
    Dedup, IngestRequest, MemoryStore, Outcome, Receiver, ReceiverConfig, Retention,
};
use edgepipe_core::record::DataRecord;
use edgepipe_core::record::json::parse_jsonl;

const RECORDS: usize = 100;

/// The seed's body for the workload's first 100 records.
fn seed_body() -> Vec<u8> {
    let (jsonl, source) = workload_jsonl(RECORDS);
    eprintln!("ingest bench workload: {source:?}");
    let records: Vec<DataRecord> = parse_jsonl(&jsonl).map(|(_, r)| r.unwrap()).collect();
    let mut json = Vec::new();
    Codec::JsonPython.encode(&records, &mut json).unwrap();
    let mut body = Vec::new();
    compress(&json, Compression::SEED, &mut body).unwrap();
    body
}

fn run(receiver: &Receiver, body: &[u8], counter: &AtomicU64) {
    // A fresh batch id each time; the workload's record ids are UUIDs, so no
    // record is dropped as a duplicate.
    let id = counter.fetch_add(1, Ordering::Relaxed);
    let request = IngestRequest::new(body.to_vec())
        .header("X-API-Key", "bench")
        .header("X-Batch-ID", format!("batch-{id}"))
        .header("Content-Encoding", "gzip");
    let outcome = receiver.handle(&request);
    assert!(
        matches!(outcome, Outcome::Stored { accepted: 100, .. }),
        "{outcome:?}"
    );
}

fn bench(c: &mut Criterion) {
    let body = seed_body();
    let counter = AtomicU64::new(0);
    let retention = Retention {
        batch_id_seconds: 3600,
        max_batch_ids: 10_000,
    };
    let mut group = c.benchmark_group("ingest_seed_gzip_json_100");
    group.throughput(Throughput::Elements(RECORDS as u64));

    let discard = Receiver::with_parts(
        ReceiverConfig::new(["bench"]),
        Dedup::in_memory(retention),
        Box::new(DiscardStore),
        Box::new(MemoryStore::default()),
    )
    .unwrap();
    group.bench_function("discard", |b| b.iter(|| run(&discard, &body, &counter)));

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut config = ReceiverConfig::new(["bench"]);
    config.retention = retention;
    let lake = Receiver::open(config, dir.path()).unwrap();
    group.sample_size(10);
    group.bench_function("data_lake", |b| b.iter(|| run(&lake, &body, &counter)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
