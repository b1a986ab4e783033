//! The durable queue: enqueue throughput of 100-record batches, and recovery
//! (open) time of a large queue.
//!
//! The payload is a fixed 3,800 bytes of incompressible data: the size of a
//! 100-record json + gzip-6 batch on the shared workload (37.9 bytes per record,
//! docs/performance.md), which is what a gateway enqueues by default. Throughput
//! is in records/s (100 per enqueue). Queues live under cargo's target tmp dir,
//! on the real disk (not a tmpfs), so fdatasync costs what it costs there.
//!
//! Every backend is measured by [`enqueue_group`] with the same payload and thread
//! counts; a backend adds one call in [`queue`]. Before the criterion groups, the
//! recovery time of a large queue is printed (`EDGEPIPE_QUEUE_RECOVERY_MIB`,
//! default 1024).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgepipe_core::Timestamp;
use edgepipe_core::queue::{Durability, Entry, LogOptions, Queue, QueueOptions, SegmentedLog};

const PAYLOAD_BYTES: usize = 3_800;
const RECORDS_PER_BATCH: u64 = 100;

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000).unwrap()
}

fn payload() -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..PAYLOAD_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn entry(payload: &[u8], n: u64) -> Entry {
    Entry {
        source_id: "gateway-7".to_owned(),
        batch_id: format!("gateway-7:{n}"),
        created_at: now(),
        payload: payload.to_vec(),
    }
}

fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn log_options(sync: Durability) -> LogOptions {
    LogOptions {
        queue: QueueOptions {
            max_bytes: 0,
            ..QueueOptions::default()
        },
        sync,
        ..LogOptions::default()
    }
}

/// Enqueues `iters` entries from `threads` threads into a fresh queue and returns
/// the time the enqueues took. Every 1,000 enqueues the queue is drained (untimed),
/// so disk use stays bounded however many iterations criterion asks for.
fn timed_enqueues(queue: Arc<dyn Queue>, threads: u64, iters: u64) -> Duration {
    let payload = payload();
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let round = (iters - done).min(1_000);
        let start = Instant::now();
        std::thread::scope(|scope| {
            for t in 0..threads {
                let queue = &queue;
                let payload = &payload;
                let share = round / threads + u64::from(t < round % threads);
                scope.spawn(move || {
                    for n in 0..share {
                        queue.enqueue(entry(payload, n)).unwrap();
                    }
                });
            }
        });
        elapsed += start.elapsed();
        done += round;
        for pending in queue.take(usize::MAX, now()).unwrap() {
            queue.ack(pending.id).unwrap();
        }
    }
    elapsed
}

/// The enqueue benchmarks of one backend: `open` makes a fresh queue in a directory.
fn enqueue_group(
    c: &mut Criterion,
    backend: &str,
    open: &dyn Fn(&Path, Durability) -> Arc<dyn Queue>,
) {
    let mut group = c.benchmark_group(format!("queue/{backend}"));
    group.throughput(Throughput::Elements(RECORDS_PER_BATCH));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    for (name, sync, threads) in [
        ("enqueue synced, 1 thread", Durability::Synced, 1),
        (
            "enqueue synced, 4 threads (group commit)",
            Durability::Synced,
            4,
        ),
        ("enqueue written, 1 thread", Durability::Written, 1),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let dir = scratch_dir();
                timed_enqueues(open(dir.path(), sync), threads, iters)
            })
        });
    }
    group.finish();
}

/// Opening a queue of `mib` MiB: every segment is read and checksummed. Printed,
/// not asserted; the page cache is warm (the queue was just written).
fn recovery_time() {
    let mib: u64 = std::env::var("EDGEPIPE_QUEUE_RECOVERY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = scratch_dir();
    let payload = payload();
    let count = mib * 1024 * 1024 / PAYLOAD_BYTES as u64;
    let start = Instant::now();
    {
        let queue = SegmentedLog::open(dir.path(), log_options(Durability::Written)).unwrap();
        let batch = 256;
        for chunk in 0..count.div_ceil(batch) {
            let entries = (0..batch.min(count - chunk * batch))
                .map(|n| entry(&payload, chunk * batch + n))
                .collect();
            queue.enqueue_all(entries).unwrap();
        }
        queue.flush().unwrap();
    }
    let written = start.elapsed();
    let start = Instant::now();
    let queue = SegmentedLog::open(dir.path(), log_options(Durability::Synced)).unwrap();
    let opened = start.elapsed();
    let stats = queue.stats();
    assert_eq!(stats.pending, count);
    eprintln!(
        "queue recovery: {count} entries, {:.0} MiB in {} segments: open took {:.2} s \
         ({:.0} MiB/s, warm page cache); writing them took {:.1} s",
        stats.bytes as f64 / (1024.0 * 1024.0),
        queue.recovery().segments.len(),
        opened.as_secs_f64(),
        stats.bytes as f64 / (1024.0 * 1024.0) / opened.as_secs_f64(),
        written.as_secs_f64(),
    );
}

fn queue(c: &mut Criterion) {
    recovery_time();
    enqueue_group(c, "segmented_log", &|dir, sync| {
        Arc::new(SegmentedLog::open(dir, log_options(sync)).unwrap())
    });
    // SQLite backend: add `enqueue_group(c, "sqlite", &|dir, sync| ...)` here, with
    // the same payload and thread counts, so the two read side by side.
}

criterion_group!(benches, queue);
criterion_main!(benches);
