//! Enqueue throughput of the SQLite queue against the seed's way of using the
//! same table, on 100-record batches of the shared workload encoded as the seed
//! does (JSON, gzip 6) by `edgepipe_core::batch`.
//!
//! - `seed configuration`: what the seed's `PersistentDeliveryQueue.enqueue` does,
//!   through rusqlite with the seed's SQL: a new connection per batch, default
//!   journal mode (a rollback journal) and synchronous setting, `INSERT OR
//!   REPLACE`, commit, close.
//! - `SqliteQueue::enqueue`: one connection, WAL, `synchronous=FULL`, a commit per batch.
//! - `SqliteQueue::enqueue_all of 10`: ten batches per commit (group commit).
//!
//! Every commit is synced in all three, so the figures compare what each pays
//! per durable batch. The databases are written under the target directory
//! (beside this benchmark's executable), on the disk the build uses, never tmpfs.
//!
//! `cargo bench -p edgepipe-benches --features sqlite --bench queue_sqlite`

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgepipe_benches::workload_jsonl;
use edgepipe_core::batch::{Batch, BatchEncoder, Codec, Compression};
use edgepipe_core::queue::{Entry, Queue, QueueOptions, SqliteQueue};
use edgepipe_core::record::json::parse_jsonl;
use edgepipe_core::record::{DataRecord, Timestamp};

const RECORDS_PER_BATCH: usize = 100;
const BATCHES: usize = 50;

/// The seed's `_init_db` and `enqueue` statements.
const SEED_CREATE: &str = "
    CREATE TABLE IF NOT EXISTS delivery_queue (
        batch_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        batch_data BLOB NOT NULL,
        compression TEXT,
        checksum TEXT,
        status TEXT DEFAULT 'pending',
        attempts INTEGER DEFAULT 0,
        created_at TEXT,
        last_attempt TEXT,
        delivered_at TEXT
    )";
const SEED_INSERT: &str = "
    INSERT OR REPLACE INTO delivery_queue
    (batch_id, device_id, batch_data, compression, checksum, created_at)
    VALUES (?, ?, ?, ?, ?, ?)";

fn batches() -> Vec<Batch> {
    let (input, source) = workload_jsonl(RECORDS_PER_BATCH * BATCHES);
    eprintln!("workload: {source:?}");
    let records: Vec<DataRecord> = parse_jsonl(&input)
        .filter_map(|(_, record)| record.ok())
        .collect();
    let encoder = BatchEncoder::new("gw-0", Codec::Json, Compression::SEED).unwrap();
    let created_at = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
    records
        .chunks(RECORDS_PER_BATCH)
        .map(|chunk| encoder.encode(chunk, created_at).unwrap())
        .collect()
}

/// A fresh directory for the databases, under the target directory.
fn bench_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe
        .parent()
        .unwrap()
        .join(format!("queue-sqlite-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Each enqueue gets a batch id never used before, as real batches have: a
/// repeated id would be an `INSERT OR REPLACE` for the seed and a no-op for edgepipe.
fn unique(batch: &Batch, counter: &AtomicU64) -> Entry {
    let mut entry = Entry::from_batch(batch);
    entry.batch_id = format!(
        "{}-{}",
        entry.batch_id,
        counter.fetch_add(1, Ordering::Relaxed)
    );
    entry
}

fn seed_enqueue(path: &Path, batch: &Batch, batch_id: &str) {
    // sqlite3.connect, execute (Python opens the transaction), commit, close.
    let mut connection = rusqlite::Connection::open(path).unwrap();
    let transaction = connection.transaction().unwrap();
    let envelope = &batch.envelope;
    transaction
        .execute(
            SEED_INSERT,
            rusqlite::params![
                batch_id,
                envelope.source_id,
                batch.payload,
                envelope.compression.name(),
                envelope.checksum,
                "2023-11-14T22:13:20",
            ],
        )
        .unwrap();
    transaction.commit().unwrap();
    connection.close().unwrap();
}

fn bench(c: &mut Criterion) {
    let batches = batches();
    let dir = bench_dir();
    eprintln!("databases in {}", dir.display());
    let counter = AtomicU64::new(0);
    let unbounded = QueueOptions {
        max_bytes: 0,
        ..QueueOptions::default()
    };

    let mut group = c.benchmark_group("queue enqueue, json+gzip6 batches of 100");
    group.sample_size(10);

    group.throughput(Throughput::Elements(RECORDS_PER_BATCH as u64));
    let seed_path = dir.join("seed.db");
    rusqlite::Connection::open(&seed_path)
        .unwrap()
        .execute_batch(SEED_CREATE)
        .unwrap();
    let mut next = 0;
    group.bench_function("seed configuration", |b| {
        b.iter(|| {
            let batch = &batches[next % batches.len()];
            next += 1;
            let entry = unique(batch, &counter);
            seed_enqueue(&seed_path, batch, &entry.batch_id);
        })
    });

    let queue = SqliteQueue::open(dir.join("edgepipe.db"), unbounded.clone()).unwrap();
    group.bench_function("SqliteQueue::enqueue", |b| {
        b.iter(|| {
            let batch = &batches[next % batches.len()];
            next += 1;
            queue.enqueue(unique(batch, &counter)).unwrap();
        })
    });
    drop(queue);

    group.throughput(Throughput::Elements(10 * RECORDS_PER_BATCH as u64));
    let queue = SqliteQueue::open(dir.join("edgepipe-group.db"), unbounded).unwrap();
    group.bench_function("SqliteQueue::enqueue_all of 10", |b| {
        b.iter(|| {
            let entries = (0..10)
                .map(|k| unique(&batches[(next + k) % batches.len()], &counter))
                .collect();
            next += 10;
            queue.enqueue_all(entries).unwrap();
        })
    });
    drop(queue);
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
