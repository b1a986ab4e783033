//! The edge side of the chaos tests: an edge process (the test binary re-run on
//! its ignored child test) makes numbered batches, enqueues each in a
//! segmented-log queue and delivers them with a [`DeliveryWorker`] and an
//! [`HttpSink`]; the parent SIGKILLs it at random moments and starts it again,
//! and asks the test to restart its servers once per edge generation. Then the
//! lake must hold every record exactly once and the queue nothing.
//!
//! A test binary using this defines the ignored child test (named
//! [`CHILD_TEST`]) calling [`edge_child`], and runs [`run_edges`].

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use edgepipe_core::batch::{BatchEncoder, Codec, Compression};
use edgepipe_core::deliver::{
    Delivery, DeliveryOptions, DeliveryWorker, HttpSink, HttpSinkOptions, RetryPolicy,
};
use edgepipe_core::ingest::DataLakeStore;
use edgepipe_core::queue::{Entry, LogOptions, Queue, QueueOptions, SegmentedLog};
use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};

/// The name of the ignored child test each chaos binary defines.
pub const CHILD_TEST: &str = "chaos_edge_child";
const CHILD_QUEUE: &str = "EDGEPIPE_CHAOS_CHILD_QUEUE";
const CHILD_ENDPOINT: &str = "EDGEPIPE_CHAOS_CHILD_ENDPOINT";
const CHILD_BATCHES: &str = "EDGEPIPE_CHAOS_CHILD_BATCHES";
const CHILD_SEQUENCE_IDS: &str = "EDGEPIPE_CHAOS_CHILD_SEQUENCE_IDS";
pub const API_KEY: &str = "chaos-key";
pub const SOURCE: &str = "chaos-gateway";
pub const RECORDS_PER_BATCH: u64 = 4;

pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// The id of record `i` of batch `n`: `b{n}-{i}`, or with sequence ids
/// `chaos-gateway:0:{seq}` (then the receiver's per-source ranges and, with
/// replicas, the source locks are exercised too).
pub fn record_id(n: u64, i: u64, sequence_ids: bool) -> String {
    if sequence_ids {
        format!("{SOURCE}:0:{}", n * RECORDS_PER_BATCH + i)
    } else {
        format!("b{n}-{i}")
    }
}

/// The records of batch `n`: one device per batch (one lake file per batch),
/// time derived from `n` so a batch made again is the same.
pub fn records_of(n: u64, sequence_ids: bool) -> Vec<DataRecord> {
    (0..RECORDS_PER_BATCH)
        .map(|i| {
            let mut record = DataRecord::new(format!("dev-{}", n % 16), "sensors", Payload::new());
            record.record_id = record_id(n, i, sequence_ids).into();
            record.timestamp = Timestamp::from_unix_nanos(
                1_767_225_600_000_000_000 + (n * 1000 + i) as i64 * 1_000_000,
            );
            record
                .payload
                .insert("temperature", Value::Float(20.0 + (n % 100) as f64 / 10.0));
            record
                .payload
                .insert("sequence", Value::Int((n * RECORDS_PER_BATCH + i) as i64));
            record
        })
        .collect()
}

pub fn queue_options() -> LogOptions {
    LogOptions {
        queue: QueueOptions {
            max_bytes: 0,
            // Faults are many; only a permanent failure may dead-letter (none is expected).
            max_attempts: 100_000,
            ..QueueOptions::default()
        },
        segment_bytes: 256 * 1024,
        ..LogOptions::default()
    }
}

fn progress_file(queue: &Path) -> PathBuf {
    queue.with_extension("next")
}

/// The edge process: runs until killed, or until every batch is made and
/// delivered. Returns at once when not started by [`run_edges`].
pub fn edge_child() {
    let (Ok(queue_dir), Ok(endpoint), Ok(batches)) = (
        std::env::var(CHILD_QUEUE),
        std::env::var(CHILD_ENDPOINT),
        std::env::var(CHILD_BATCHES),
    ) else {
        return;
    };
    let sequence_ids = std::env::var_os(CHILD_SEQUENCE_IDS).is_some();
    let queue_dir = PathBuf::from(queue_dir);
    let batches: u64 = batches.parse().unwrap();
    let progress = progress_file(&queue_dir);
    // Where the last run got to. Written after each enqueue, not synced: a kill
    // does not lose the page cache, and a lost update only means making a batch
    // again (same id: the receiver recognises it).
    let mut next: u64 = std::fs::read_to_string(&progress)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    let queue: Arc<dyn Queue> =
        Arc::new(SegmentedLog::open(&queue_dir, queue_options()).expect("open the queue"));
    let sink = HttpSink::new(
        HttpSinkOptions::new(endpoint, API_KEY)
            .with_request_timeout(Duration::from_millis(700))
            .with_connect_timeout(Duration::from_millis(500)),
    )
    .unwrap();
    let options = DeliveryOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(50),
        },
        breaker_open_after: 8,
        breaker_revive_after: Duration::from_millis(20),
        idle_wait: Duration::from_millis(20),
        ..DeliveryOptions::default()
    };
    let worker =
        DeliveryWorker::spawn(Delivery::new(Arc::clone(&queue), Box::new(sink), options)).unwrap();
    let json = BatchEncoder::new(SOURCE, Codec::Json, Compression::Gzip { level: 1 }).unwrap();
    let columnar = BatchEncoder::new(SOURCE, Codec::Columnar, Compression::Lz4).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "@O {next}").unwrap();
    out.flush().unwrap();
    while next < batches {
        let encoder = if next.is_multiple_of(2) {
            &json
        } else {
            &columnar
        };
        let created_at = Timestamp::from_unix_nanos(1_767_225_600_000_000_000 + next as i64);
        let batch = encoder
            .encode(&records_of(next, sequence_ids), created_at)
            .unwrap();
        queue.enqueue(Entry::from_batch(&batch)).expect("enqueue");
        worker.notify();
        next += 1;
        std::fs::write(&progress, next.to_string()).unwrap();
        writeln!(out, "@E {next}").unwrap();
        out.flush().unwrap();
        // Keep the producer no more than a little ahead of delivery, so kills
        // also land while the queue is short and the worker busy.
        while queue.stats().pending > 200 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    loop {
        let stats = queue.stats();
        assert_eq!(
            stats.dead,
            0,
            "dead-lettered: {:?}",
            worker.metrics().last_failure
        );
        assert!(worker.failure().is_none(), "{:?}", worker.failure());
        if stats.pending + stats.in_flight == 0 {
            break;
        }
        writeln!(out, "@Q {}", stats.pending).unwrap();
        out.flush().unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let metrics = worker.shutdown();
    writeln!(out, "@DONE {} {}", metrics.batches_sent, metrics.retries).unwrap();
    out.flush().unwrap();
}

/// xorshift64*: enough randomness for kill moments, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// What [`run_edges`] did.
pub struct EdgeRun {
    /// Edge processes SIGKILLed.
    pub killed: u64,
    /// The last edge process's `@DONE` line: batches sent and retries.
    pub summary: String,
}

/// Runs edge processes delivering `batches` batches to `endpoint` through the
/// queue at `queue_dir`, SIGKILLing the first `kills` of them at random moments,
/// until one finishes. `restart` is called once per edge generation, at a
/// random report of its progress: where the test restarts its server(s).
pub fn run_edges(
    endpoint: &str,
    queue_dir: &Path,
    batches: u64,
    kills: u64,
    sequence_ids: bool,
    mut restart: impl FnMut(),
) -> EdgeRun {
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(0x5eed_c4a0_0000_0001);
    let mut generation = 0u64;
    let mut killed = 0u64;
    let summary = loop {
        let mut command = Command::new(&exe);
        command
            .args([
                "--ignored",
                "--exact",
                CHILD_TEST,
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_QUEUE, queue_dir)
            .env(CHILD_ENDPOINT, endpoint)
            .env(CHILD_BATCHES, batches.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if sequence_ids {
            command.env(CHILD_SEQUENCE_IDS, "1");
        }
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        // Spread the kills over the production; a generation past them runs to the end.
        let kill_after = (generation < kills).then(|| rng.below(2 * batches / kills.max(1)));
        let restart_at = rng.below(batches / kills.max(1) + 1);
        let mut reports = 0u64;
        let mut line = String::new();
        let mut finished = None;
        loop {
            line.clear();
            if lines.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if let Some(rest) = line.strip_prefix("@DONE") {
                finished = Some(rest.trim().to_owned());
                continue;
            }
            if !line.starts_with('@') {
                continue; // the test harness's own output
            }
            reports += 1;
            if reports == restart_at {
                restart();
            }
            if kill_after == Some(reports) {
                child.kill().unwrap();
                killed += 1;
            }
        }
        let status = child.wait().unwrap();
        generation += 1;
        if let Some(summary) = finished {
            assert!(status.success(), "the last edge process failed: {status}");
            break summary;
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "the edge process died on its own: {status}"
            );
        }
        assert!(generation <= kills + 1, "the edge process keeps stopping");
    };
    assert!(killed >= kills.min(1), "the edge process was never killed");
    EdgeRun { killed, summary }
}

/// The lake under `lake` holds every record of every batch exactly once and
/// nothing else, and the queue at `queue_dir` is empty.
pub fn assert_every_record_once(lake: &Path, queue_dir: &Path, batches: u64, sequence_ids: bool) {
    let mut stored: HashMap<String, u32> = HashMap::new();
    for record in DataLakeStore::read_all(lake).unwrap() {
        *stored.entry(record.record_id.to_string()).or_default() += 1;
    }
    let twice: Vec<_> = stored.iter().filter(|&(_, &n)| n > 1).take(5).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let expected = batches * RECORDS_PER_BATCH;
    let missing: Vec<String> = (0..batches)
        .flat_map(|n| (0..RECORDS_PER_BATCH).map(move |i| record_id(n, i, sequence_ids)))
        .filter(|id| !stored.contains_key(id))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?} (and maybe more)");
    assert_eq!(
        stored.len() as u64,
        expected,
        "records that were never made"
    );

    let queue = SegmentedLog::open(queue_dir, queue_options()).unwrap();
    let stats = queue.stats();
    assert_eq!(
        (stats.pending, stats.in_flight, stats.dead),
        (0, 0, 0),
        "the queue is empty"
    );
}

/// A directory for a chaos run: in memory when the machine has a tmpfs. These
/// tests are about the network and process kills, which do not drop the page
/// cache, so the fsyncs (several per batch, on both sides) would only make them
/// slow. Power cuts are the queue's own tests' business (queue_faults, queue_model).
pub fn run_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}
