//! Exactly-once effect, end to end, under chaos.
//!
//! An edge process (this test binary, re-run on its ignored child test) makes
//! numbered batches, enqueues each in a segmented-log queue and delivers them
//! with a [`DeliveryWorker`] and an [`HttpSink`] — through a fault-injecting
//! proxy (`chaos_support`) to edgepipe's ingest server, which stores into its
//! data lake. The proxy cuts requests before the server has them, throws away
//! answers after the server committed, answers 503 itself and stalls past the
//! client's timeout; the parent restarts the server (a new receiver read back
//! from disk, on a new port) and SIGKILLs the edge process at random moments,
//! starting it again each time. A batch whose enqueue the kill interrupted is
//! made again, with the same deterministic id.
//!
//! When every batch is made and the queue is empty, the lake must hold every
//! record exactly once, the queue nothing, and the receivers must have counted
//! the duplicates they refused to store. 10,000 batches and 12 kills by
//! default; `EDGEPIPE_CHAOS_BATCHES` and `EDGEPIPE_CHAOS_KILLS` change them.
#![cfg(all(feature = "http", feature = "ingest-server"))]

mod chaos_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chaos_support::{ChaosProxy, FaultWeights};
use edgepipe_core::batch::{BatchEncoder, Codec, Compression};
use edgepipe_core::deliver::{
    Delivery, DeliveryOptions, DeliveryWorker, HttpSink, HttpSinkOptions, RetryPolicy,
};
use edgepipe_core::ingest::server::{self, ServerConfig, ServerHandle};
use edgepipe_core::ingest::{DataLakeStore, Receiver, ReceiverConfig};
use edgepipe_core::queue::{Entry, LogOptions, Queue, QueueOptions, SegmentedLog};
use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};

const CHILD_QUEUE: &str = "EDGEPIPE_CHAOS_CHILD_QUEUE";
const CHILD_ENDPOINT: &str = "EDGEPIPE_CHAOS_CHILD_ENDPOINT";
const CHILD_BATCHES: &str = "EDGEPIPE_CHAOS_CHILD_BATCHES";
const API_KEY: &str = "chaos-key";
const SOURCE: &str = "chaos-gateway";
const RECORDS_PER_BATCH: u64 = 4;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// The records of batch `n`: ids `b{n}-{i}`, one device per batch (one lake
/// file per batch), time derived from `n` so a batch made again is the same.
fn records_of(n: u64) -> Vec<DataRecord> {
    (0..RECORDS_PER_BATCH)
        .map(|i| {
            let mut record = DataRecord::new(format!("dev-{}", n % 16), "sensors", Payload::new());
            record.record_id = format!("b{n}-{i}").into();
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

fn queue_options() -> LogOptions {
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
/// delivered. Ignored so a normal run skips it.
#[test]
#[ignore = "the child process of every_record_lands_once_through_chaos"]
fn chaos_edge_child() {
    let (Ok(queue_dir), Ok(endpoint), Ok(batches)) = (
        std::env::var(CHILD_QUEUE),
        std::env::var(CHILD_ENDPOINT),
        std::env::var(CHILD_BATCHES),
    ) else {
        return;
    };
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
        let batch = encoder.encode(&records_of(next), created_at).unwrap();
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

/// The ingest side: a receiver over `dir`, served on a new port each start.
struct Cloud {
    dir: PathBuf,
    running: Option<(Arc<Receiver>, ServerHandle)>,
    duplicate_batches: u64,
    duplicate_records: u64,
    restarts: u64,
}

impl Cloud {
    fn start(&mut self) -> SocketAddr {
        let receiver = Arc::new(Receiver::open(ReceiverConfig::new([API_KEY]), &self.dir).unwrap());
        let handle = server::start(
            Arc::clone(&receiver),
            ServerConfig::new("127.0.0.1:0".parse().unwrap()),
        )
        .unwrap();
        let address = handle.local_addr();
        self.running = Some((receiver, handle));
        address
    }

    fn stop(&mut self) {
        if let Some((receiver, handle)) = self.running.take() {
            handle.shutdown().unwrap();
            let metrics = receiver.metrics();
            self.duplicate_batches += metrics.batches_duplicate.load(Ordering::Relaxed);
            self.duplicate_records += metrics.records_duplicate.load(Ordering::Relaxed);
        }
    }
}

/// xorshift64*: enough randomness for kill moments, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

#[test]
fn every_record_lands_once_through_chaos() {
    let batches = env_number("EDGEPIPE_CHAOS_BATCHES", 10_000);
    let kills = env_number("EDGEPIPE_CHAOS_KILLS", 12);
    // In memory when the machine has a tmpfs: this test is about the network and
    // process kills, which do not drop the page cache, so the fsyncs (several per
    // batch, on both sides) would only make it slow. Power cuts are the queue's
    // own tests' business (queue_faults, queue_model).
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let queue_dir = dir.path().join("queue");
    let mut cloud = Cloud {
        dir: dir.path().join("cloud"),
        running: None,
        duplicate_batches: 0,
        duplicate_records: 0,
        restarts: 0,
    };
    let proxy = ChaosProxy::start(
        cloud.start(),
        FaultWeights {
            pass: 80,
            cut_before_server: 6,
            drop_response: 8,
            server_error: 5,
            stall: 1,
            max_responses: 20,
        },
        0xc4a0_5eed,
    );
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(0x5eed_c4a0_0000_0001);
    let mut generation = 0u64;
    let mut killed = 0u64;
    let done = loop {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "chaos_edge_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_QUEUE, &queue_dir)
            .env(CHILD_ENDPOINT, format!("http://{}", proxy.address()))
            .env(CHILD_BATCHES, batches.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
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
                // The server goes away and a new one takes over from disk.
                cloud.stop();
                proxy.set_upstream(cloud.start());
                cloud.restarts += 1;
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
    cloud.stop();

    // The lake: every record of every batch, exactly once, and nothing else.
    let mut stored: HashMap<String, u32> = HashMap::new();
    for record in DataLakeStore::read_all(&dir.path().join("cloud").join("lake")).unwrap() {
        *stored.entry(record.record_id.to_string()).or_default() += 1;
    }
    let twice: Vec<_> = stored.iter().filter(|&(_, &n)| n > 1).take(5).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let expected = batches * RECORDS_PER_BATCH;
    let missing: Vec<String> = (0..batches)
        .flat_map(|n| (0..RECORDS_PER_BATCH).map(move |i| format!("b{n}-{i}")))
        .filter(|id| !stored.contains_key(id))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?} (and maybe more)");
    assert_eq!(
        stored.len() as u64,
        expected,
        "records that were never made"
    );

    let queue = SegmentedLog::open(&queue_dir, queue_options()).unwrap();
    let stats = queue.stats();
    assert_eq!(
        (stats.pending, stats.in_flight, stats.dead),
        (0, 0, 0),
        "the queue is empty"
    );

    let counts = proxy.counts();
    eprintln!(
        "chaos: {batches} batches, {killed} kills, {} server restarts, faults {counts:?}, \
         {} duplicate batches and {} duplicate records refused, last edge: {done}",
        cloud.restarts, cloud.duplicate_batches, cloud.duplicate_records
    );
    for (fault, count) in counts {
        assert!(count > 0, "{fault:?} never struck");
    }
    assert!(killed >= kills.min(1), "the edge process was never killed");
    assert!(cloud.restarts > 0, "the server never restarted");
    // Answers were thrown away after commits, and kills repeated enqueues: the
    // receivers saw batches again and refused to store them twice.
    assert!(
        cloud.duplicate_batches > 0,
        "no duplicate was ever recognised"
    );
}
