//! Ingest replicas: batches/s of the seed's 100-record gzip JSON batches stored
//! into the data lake on disk, measured in one run for
//!
//! - `journal`: one receiver with its own `dedup.journal` (`edgepipe-ingest`
//!   without `--dedup-postgres`);
//! - `ledger-1`: one replica with the PostgreSQL ledger;
//! - `ledger-2`: two replicas (two receivers, one ledger connection each, one
//!   lake) sharing the ledger, as two processes behind a balancer.
//!
//! Each is fed by two threads (a server decodes several requests at once), and
//! the figures are printed with their ratios to `journal`. The PostgreSQL server is
//! started here as the tests start it (`apt-get install postgresql`). Batches per
//! configuration: `EDGEPIPE_BENCH_BATCHES` (default 1,000).
//!
//! ```text
//! cargo bench -p edgepipe-benches --features postgres --bench ingest_replicas
//! ```

#[path = "../../edgepipe-core/tests/postgres_support/mod.rs"]
mod postgres_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use edgepipe_benches::workload_jsonl;
use edgepipe_core::batch::{Codec, Compression, compression::compress};
use edgepipe_core::ingest::{
    DataLakeStore, IngestRequest, JsonlQuarantine, Outcome, PgLedger, Receiver, ReceiverConfig,
};
use edgepipe_core::record::DataRecord;
use edgepipe_core::record::json::parse_jsonl;

const RECORDS: usize = 100;
const THREADS: usize = 2;

fn seed_body() -> Vec<u8> {
    let (jsonl, source) = workload_jsonl(RECORDS);
    eprintln!("ingest_replicas bench workload: {source:?}");
    let records: Vec<DataRecord> = parse_jsonl(&jsonl).map(|(_, r)| r.unwrap()).collect();
    let mut json = Vec::new();
    Codec::JsonPython.encode(&records, &mut json).unwrap();
    let mut body = Vec::new();
    compress(&json, Compression::SEED, &mut body).unwrap();
    body
}

/// Sends `batches` batches with fresh ids from [`THREADS`] threads, thread `t` to
/// `receivers[t % len]`; batches per second.
fn measure(receivers: &[Receiver], body: &[u8], batches: u64, counter: &AtomicU64) -> f64 {
    let sent = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let receiver = &receivers[thread % receivers.len()];
            let sent = &sent;
            scope.spawn(move || {
                while sent.fetch_add(1, Ordering::Relaxed) < batches {
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
            });
        }
    });
    batches as f64 / start.elapsed().as_secs_f64()
}

fn replica(dir: &std::path::Path, url: &str) -> Receiver {
    let config = ReceiverConfig::new(["bench"]);
    let ledger = PgLedger::connect(url, config.retention).unwrap();
    Receiver::with_ledger(
        config,
        ledger,
        Box::new(DataLakeStore::open(dir.join("lake")).unwrap()),
        Box::new(JsonlQuarantine::open(dir.join("quarantine")).unwrap()),
    )
    .unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; a test run (`cargo test --benches`) passes
    // nothing: then run a token amount, so the bench is checked to work.
    let benching = std::env::args().any(|a| a == "--bench");
    let batches = std::env::var("EDGEPIPE_BENCH_BATCHES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if benching { 1_000 } else { 20 });
    let body = seed_body();
    let counter = AtomicU64::new(0);
    let server = postgres_support::PgServer::shared();

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let journal =
        [Receiver::open(ReceiverConfig::new(["bench"]), &dir.path().join("journal")).unwrap()];
    let one_url = server.database();
    let one = [replica(&dir.path().join("one"), &one_url)];
    let two_url = server.database();
    let two = [
        replica(&dir.path().join("two"), &two_url),
        replica(&dir.path().join("two"), &two_url),
    ];
    // Warm-up: files, directories and connections exist before the clock runs.
    for receivers in [&journal[..], &one[..], &two[..]] {
        measure(receivers, &body, (batches / 10).max(2), &counter);
    }
    let journal_rate = measure(&journal, &body, batches, &counter);
    let one_rate = measure(&one, &body, batches, &counter);
    let two_rate = measure(&two, &body, batches, &counter);
    println!(
        "ingest_replicas: {batches} batches of {RECORDS} records per configuration, {THREADS} threads"
    );
    for (name, rate) in [
        ("journal", journal_rate),
        ("ledger-1", one_rate),
        ("ledger-2", two_rate),
    ] {
        println!(
            "  {name:<9} {rate:>9.0} batches/s  {:>10.0} records/s  {:.2}x journal",
            rate * RECORDS as f64,
            rate / journal_rate
        );
    }
    println!("  ledger-2 / ledger-1: {:.2}x", two_rate / one_rate);
}
