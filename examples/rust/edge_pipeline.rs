//! The main example: edge to cloud on one machine, through an outage.
//!
//! Simulated sensors (the shared workload's model, or a JSON Lines file) →
//! transforms from config → 10 s tumbling windows per device → columnar, lz4
//! batches → a durable queue in a local directory → delivery over HTTP to a
//! local ingest server → its data lake. Partway through, the ingest server
//! goes away for a while and comes back: the queue grows, then drains. At the
//! end the data lake is read back and every record the edge sent is looked
//! for: the run fails unless each one landed exactly once (`lost: 0`).
//!
//! ```text
//! cargo run --release -p edgepipe-examples --bin edge-pipeline -- \
//!     [--input FILE.jsonl] [--records N] [--devices N] [--glitch-every N] \
//!     [--config pipeline.toml|.json] [--out DIR] [--outage-seconds S]
//! ```
//!
//! Everything lives under `--out` (default `edgepipe-out`): `queue/` (the edge's
//! queue), `cloud/` (the ingest server's data lake, quarantine and dedup
//! journal) and `edge-quarantine.jsonl` (readings the transforms refused). A run
//! starts by clearing the `queue/` and `cloud/` of an earlier one.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use edgepipe_core::batch::{BatchEncoder, BatchPolicy, Batcher, Codec, Compression};
use edgepipe_core::deliver::{
    Delivery, DeliveryMetrics, DeliveryOptions, DeliveryWorker, HttpSink, HttpSinkOptions,
    RetryPolicy,
};
use edgepipe_core::ingest::server::{self, ServerConfig, ServerHandle};
use edgepipe_core::ingest::{DataLakeStore, Receiver, ReceiverConfig};
use edgepipe_core::queue::{Entry, LogOptions, Queue, SegmentedLog};
use edgepipe_core::record::{DataRecord, JsonLinesReader, JsonOptions, Timestamp};
use edgepipe_core::transform::{Pipeline, Quarantined};
use edgepipe_core::window::{WindowConfig, WindowOperator, WindowOutput};
use edgepipe_examples::workload::{Workload, WorkloadSpec};

const DEFAULT_CONFIG: &str = include_str!("../config/edge-pipeline.toml");
/// Readings read and transformed at a time.
const CHUNK: usize = 4096;
/// The gateway's name: the source id of every batch.
const SOURCE: &str = "gateway-1";
/// The key the edge presents and the local server accepts; a real deployment
/// passes its own to both (`edgepipe-ingest --api-key`).
const API_KEY: &str = "edge-pipeline-example-key";
/// How long the end of the run waits for the queue to drain before giving up.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

struct Options {
    input: Option<PathBuf>,
    records: usize,
    spec: WorkloadSpec,
    config: Option<PathBuf>,
    out: PathBuf,
    outage: Duration,
}

fn usage() -> &'static str {
    "usage: edge-pipeline [--input FILE.jsonl] [--records N] [--devices N] [--glitch-every N] \
     [--config FILE.toml|FILE.json] [--out DIR] [--outage-seconds S]"
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        input: None,
        records: 100_000,
        spec: WorkloadSpec {
            devices: 20,
            glitch_every: 500,
            ..WorkloadSpec::default()
        },
        config: None,
        out: PathBuf::from("edgepipe-out"),
        outage: Duration::from_secs(2),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(usage().to_owned());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))?;
        let number = |value: &str| {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--input" => options.input = Some(value.into()),
            "--records" | "-n" => options.records = number(&value)?,
            "--devices" | "-d" => options.spec.devices = number(&value)?.max(1),
            "--glitch-every" => options.spec.glitch_every = number(&value)? as u64,
            "--config" => options.config = Some(value.into()),
            "--out" => options.out = value.into(),
            "--outage-seconds" => {
                let seconds: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| format!("{flag}: {value:?} is not a number of seconds"))?;
                options.outage = Duration::from_secs_f64(seconds);
            }
            _ => return Err(format!("unknown option {flag}\n{}", usage())),
        }
    }
    Ok(options)
}

fn load_pipeline(config: Option<&PathBuf>) -> Result<(Pipeline, String), String> {
    let Some(path) = config else {
        let pipeline = Pipeline::from_toml_str(DEFAULT_CONFIG).map_err(|e| e.to_string())?;
        return Ok((
            pipeline,
            "built-in examples/config/edge-pipeline.toml".to_owned(),
        ));
    };
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let pipeline = if path.extension().is_some_and(|ext| ext == "json") {
        Pipeline::from_json_str(&text)
    } else {
        Pipeline::from_toml_str(&text)
    };
    Ok((
        pipeline.map_err(|e| format!("{}: {e}", path.display()))?,
        path.display().to_string(),
    ))
}

/// The cloud side: an ingest server over a receiver storing under `dir`, on
/// `listen` (port 0 the first time; the same address again after the outage).
struct Cloud {
    dir: PathBuf,
    address: SocketAddr,
    running: Option<(Arc<Receiver>, ServerHandle)>,
    /// Counted by receivers already stopped: batches and records recognised as duplicates.
    duplicate_batches: u64,
    duplicate_records: u64,
}

impl Cloud {
    fn start(dir: &Path) -> Result<Cloud, String> {
        let mut cloud = Cloud {
            dir: dir.to_owned(),
            address: "127.0.0.1:0".parse().expect("an address"),
            running: None,
            duplicate_batches: 0,
            duplicate_records: 0,
        };
        cloud.restart()?;
        Ok(cloud)
    }

    /// Opens the receiver (reading its deduplication state back from disk) and
    /// serves it on the cloud's address.
    fn restart(&mut self) -> Result<(), String> {
        let receiver = Arc::new(
            Receiver::open(ReceiverConfig::new([API_KEY]), &self.dir)
                .map_err(|e| format!("opening the ingest receiver: {e}"))?,
        );
        let server = server::start(Arc::clone(&receiver), ServerConfig::new(self.address))
            .map_err(|e| format!("starting the ingest server on {}: {e}", self.address))?;
        self.address = server.local_addr();
        self.running = Some((receiver, server));
        Ok(())
    }

    /// The outage: the server stops and its receiver is closed.
    fn stop(&mut self) -> Result<(), String> {
        if let Some((receiver, server)) = self.running.take() {
            server
                .shutdown()
                .map_err(|e| format!("stopping the ingest server: {e}"))?;
            let metrics = receiver.metrics();
            self.duplicate_batches += metrics.batches_duplicate.load(Ordering::Relaxed);
            self.duplicate_records += metrics.records_duplicate.load(Ordering::Relaxed);
        }
        Ok(())
    }

    fn is_up(&self) -> bool {
        self.running.is_some()
    }
}

/// What the edge produced, counted as it went.
#[derive(Default)]
struct Totals {
    read: u64,
    unreadable: u64,
    forwarded: u64,
    quarantined: u64,
    aggregates: u64,
    batches: u64,
    /// The same records as compact JSON, one object per record: what a JSON sender would ship.
    raw_json_bytes: u64,
}

/// The edge: windows, batcher and queue, fed one transformed chunk at a time.
struct Edge {
    window: WindowOperator,
    window_out: WindowOutput,
    batcher: Batcher,
    queue: Arc<dyn Queue>,
    worker: DeliveryWorker,
    /// Record id → times sent (1 each; kept to check the lake against).
    sent: HashMap<String, u32>,
    json: Vec<u8>,
}

impl Edge {
    fn push(&mut self, records: Vec<DataRecord>, totals: &mut Totals) -> Result<(), String> {
        let now = Timestamp::now();
        for record in &records {
            self.window.push(record, &mut self.window_out);
        }
        let aggregates = std::mem::take(&mut self.window_out.aggregates);
        self.window_out.clear();
        totals.aggregates += aggregates.len() as u64;
        for record in records.into_iter().chain(aggregates) {
            self.json.clear();
            record
                .write_json(&mut self.json, &JsonOptions::default())
                .map_err(|e| e.to_string())?;
            totals.raw_json_bytes += self.json.len() as u64;
            *self.sent.entry(record.record_id.to_string()).or_default() += 1;
            self.batcher.push(record, now).map_err(|e| e.to_string())?;
        }
        self.batcher.poll(now).map_err(|e| e.to_string())?;
        self.enqueue_ready(totals)
    }

    /// Closes every window and batch still open and queues them.
    fn finish(&mut self, totals: &mut Totals) -> Result<(), String> {
        self.window.flush(&mut self.window_out);
        let aggregates = std::mem::take(&mut self.window_out.aggregates);
        self.push(aggregates, totals)?;
        self.batcher
            .flush(Timestamp::now())
            .map_err(|e| e.to_string())?;
        self.enqueue_ready(totals)
    }

    fn enqueue_ready(&mut self, totals: &mut Totals) -> Result<(), String> {
        let mut entries = Vec::new();
        while let Some(batch) = self.batcher.next_batch() {
            entries.push(Entry::from_batch(&batch));
        }
        if entries.is_empty() {
            return Ok(());
        }
        totals.batches += entries.len() as u64;
        // One sync for all of them; durable when this returns.
        self.queue
            .enqueue_all(entries)
            .map_err(|e| format!("enqueueing: {e}"))?;
        self.worker.notify();
        Ok(())
    }
}

fn progress(
    percent: u64,
    totals: &Totals,
    queue: &dyn Queue,
    sent: &DeliveryMetrics,
    cloud: &Cloud,
) {
    let stats = queue.stats();
    println!(
        "  {percent:>3}%  read {:>8}  queued {:>4} batches ({:>7} B)  sent {:>5} batches  retries {:>3}  cloud {}",
        totals.read,
        stats.pending + stats.in_flight,
        stats.bytes,
        sent.batches_sent,
        sent.retries,
        if cloud.is_up() { "up" } else { "DOWN" },
    );
}

fn run(options: Options) -> Result<bool, String> {
    let (mut pipeline, config_name) = load_pipeline(options.config.as_ref())?;
    let queue_dir = options.out.join("queue");
    let cloud_dir = options.out.join("cloud");
    for dir in [&queue_dir, &cloud_dir] {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(|e| format!("clearing {}: {e}", dir.display()))?;
        }
    }
    fs::create_dir_all(&options.out)
        .map_err(|e| format!("creating {}: {e}", options.out.display()))?;
    let quarantine_path = options.out.join("edge-quarantine.jsonl");
    let mut edge_quarantine = BufWriter::new(
        File::create(&quarantine_path)
            .map_err(|e| format!("creating {}: {e}", quarantine_path.display()))?,
    );

    let mut cloud = Cloud::start(&cloud_dir)?;
    let queue: Arc<dyn Queue> = Arc::new(
        SegmentedLog::open(&queue_dir, LogOptions::default())
            .map_err(|e| format!("opening the queue in {}: {e}", queue_dir.display()))?,
    );
    let sink = HttpSink::new(HttpSinkOptions::new(
        format!("http://{}", cloud.address),
        API_KEY,
    ))
    .map_err(|e| e.to_string())?;
    // Retries come quickly so the example drains soon after the outage; the
    // breaker stops hammering a server that is down and probes twice a second.
    let delivery_options = DeliveryOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        },
        breaker_open_after: 3,
        breaker_revive_after: Duration::from_millis(500),
        idle_wait: Duration::from_millis(200),
        ..DeliveryOptions::default()
    };
    let worker = DeliveryWorker::spawn(Delivery::new(
        Arc::clone(&queue),
        Box::new(sink),
        delivery_options,
    ))
    .map_err(|e| format!("starting the delivery worker: {e}"))?;
    let encoder =
        BatchEncoder::new(SOURCE, Codec::Columnar, Compression::Lz4).map_err(|e| e.to_string())?;
    let batcher = Batcher::new(
        encoder,
        BatchPolicy {
            max_records: 1000,
            ..BatchPolicy::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let mut edge = Edge {
        window: WindowConfig::tumbling(10.0)
            .build()
            .map_err(|e| e.to_string())?,
        window_out: WindowOutput::new(),
        batcher,
        queue: Arc::clone(&queue),
        worker,
        sent: HashMap::new(),
        json: Vec::new(),
    };

    let (source, total): (
        Box<dyn Iterator<Item = Result<DataRecord, String>>>,
        Option<u64>,
    ) = match &options.input {
        Some(path) => {
            let file = File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
            let reader = JsonLinesReader::new(BufReader::with_capacity(1 << 20, file));
            (
                Box::new(reader.map(|result| result.map_err(|e| e.to_string()))),
                None,
            )
        }
        None => (
            Box::new(
                Workload::new(options.spec.clone())
                    .take(options.records)
                    .map(Ok),
            ),
            Some(options.records as u64),
        ),
    };

    let input_name = match &options.input {
        Some(path) => path.display().to_string(),
        None => format!(
            "synthetic fleet: {} devices, {} readings, a glitch every {}",
            options.spec.devices, options.records, options.spec.glitch_every
        ),
    };
    println!("edgepipe: edge to cloud on one machine");
    println!("  input     {input_name}");
    println!("  pipeline  {config_name}, then 10 s tumbling windows per device");
    println!("  batches   columnar + lz4, up to 1000 records, source {SOURCE}");
    println!(
        "  queue     {} (segmented log, synced)",
        queue_dir.display()
    );
    println!(
        "  cloud     http://{}/api/ingest → {}",
        cloud.address,
        cloud_dir.join("lake").display()
    );
    println!();

    let started = Instant::now();
    let mut totals = Totals::default();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut quarantined: Vec<Quarantined> = Vec::new();
    let mut source = source.peekable();
    // The outage: from 40 % of the readings until 70 %, and at least `--outage-seconds`.
    let outage_from = total.map(|n| n * 4 / 10);
    let outage_until = total.map(|n| n * 7 / 10);
    let mut outage_started: Option<Instant> = None;
    let mut outages = 0u32;
    let mut next_report = 10u64;
    let mut buffer = Vec::new();
    while source.peek().is_some() {
        chunk.clear();
        quarantined.clear();
        for result in source.by_ref().take(CHUNK) {
            totals.read += 1;
            match result {
                Ok(record) => chunk.push(record),
                Err(error) => {
                    totals.unreadable += 1;
                    if totals.unreadable <= 5 {
                        eprintln!("skipped: {error}");
                    }
                }
            }
        }
        pipeline.process_in_place(&mut chunk, &mut quarantined);
        totals.forwarded += chunk.len() as u64;
        totals.quarantined += quarantined.len() as u64;
        buffer.clear();
        for entry in &quarantined {
            if entry
                .write_json(&mut buffer, &JsonOptions::default())
                .is_ok()
            {
                buffer.push(b'\n');
            }
        }
        edge_quarantine
            .write_all(&buffer)
            .map_err(|e| format!("writing {}: {e}", quarantine_path.display()))?;
        edge.push(std::mem::take(&mut chunk), &mut totals)?;

        if let (Some(from), Some(until)) = (outage_from, outage_until) {
            if cloud.is_up() && outage_started.is_none() && totals.read >= from {
                cloud.stop()?;
                outage_started = Some(Instant::now());
                outages += 1;
                println!("  --- the ingest server goes away ---");
            }
            if !cloud.is_up() && totals.read >= until {
                // The rest of the outage, if generating took less than its length.
                let elapsed = outage_started.map_or(Duration::ZERO, |t| t.elapsed());
                std::thread::sleep(options.outage.saturating_sub(elapsed));
                progress(70, &totals, &*queue, &edge.worker.metrics(), &cloud);
                cloud.restart()?;
                println!("  --- the ingest server is back ---");
            }
        }
        if let Some(total) = total {
            while next_report <= 100 && totals.read * 100 >= next_report * total {
                progress(
                    next_report,
                    &totals,
                    &*queue,
                    &edge.worker.metrics(),
                    &cloud,
                );
                next_report += 10;
            }
        }
    }
    if !cloud.is_up() {
        cloud.restart()?;
    }
    edge.finish(&mut totals)?;
    edge_quarantine.flush().map_err(|e| e.to_string())?;
    let produced = started.elapsed();

    // Drain: the run ends when the queue is empty. Watched by polling; the
    // worker is the one doing the work.
    let drain_started = Instant::now();
    loop {
        let stats = queue.stats();
        if stats.pending + stats.in_flight == 0 {
            break;
        }
        if let Some(failure) = edge.worker.failure() {
            return Err(format!("the delivery worker stopped: {failure}"));
        }
        if drain_started.elapsed() > DRAIN_TIMEOUT {
            return Err(format!(
                "the queue did not drain in {DRAIN_TIMEOUT:?}: {stats:?}, last failure {:?}",
                edge.worker.metrics().last_failure
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Edge { worker, sent, .. } = edge;
    let delivered = worker.shutdown();
    let took = started.elapsed();
    cloud.stop()?;
    let (duplicate_batches, duplicate_records) = (cloud.duplicate_batches, cloud.duplicate_records);

    // The check: every record sent is in the lake exactly once.
    let stored = read_lake(&cloud_dir.join("lake"))?;
    let stored_lines: u64 = stored.values().map(|&n| u64::from(n)).sum();
    let lost = sent.keys().filter(|id| !stored.contains_key(*id)).count() as u64;
    let stored_twice = stored.values().filter(|&&n| n > 1).count() as u64;
    let unexpected = stored.keys().filter(|id| !sent.contains_key(*id)).count() as u64;
    let queue_stats = queue.stats();

    println!();
    println!(
        "  {:<24} {:>10} {:>10} {:>10} {:>11}",
        "stage", "in", "out", "dropped", "quarantined"
    );
    for stats in pipeline.stats() {
        println!(
            "  {:<24} {:>10} {:>10} {:>10} {:>11}",
            stats.name, stats.records_in, stats.records_out, stats.dropped, stats.quarantined
        );
    }
    println!();
    println!(
        "  readings generated   {:>10} ({} unreadable)",
        totals.read, totals.unreadable
    );
    println!(
        "  quarantined at edge  {:>10} (with reasons, {})",
        totals.quarantined,
        quarantine_path.display()
    );
    println!(
        "  records sent         {:>10} readings + {} window aggregates",
        totals.forwarded, totals.aggregates
    );
    println!(
        "  batches              {:>10} queued, {} delivered, {} dead-lettered",
        totals.batches, delivered.batches_sent, delivered.dead_lettered
    );
    println!(
        "  bytes on the wire    {:>10} vs {} as JSON ({:.1}× fewer, {:.2} B per record)",
        delivered.bytes_sent,
        totals.raw_json_bytes,
        totals.raw_json_bytes as f64 / (delivered.bytes_sent.max(1)) as f64,
        delivered.bytes_sent as f64 / (totals.forwarded + totals.aggregates).max(1) as f64
    );
    println!(
        "  outages              {:>10} (the queue held what the cloud could not take)",
        outages
    );
    println!(
        "  retries              {:>10}",
        delivered.retries + delivered.probes_failed
    );
    println!(
        "  duplicates suppressed{:>10} batches, {} records (resent, recognised, not stored again)",
        duplicate_batches, duplicate_records
    );
    println!(
        "  records stored       {:>10} in {}",
        stored_lines,
        cloud_dir.join("lake").display()
    );
    println!(
        "  queue left           {:>10} batches",
        queue_stats.pending + queue_stats.in_flight + queue_stats.dead
    );
    println!(
        "  took                 {:>10.2} s ({:.2} s producing, {:.0} readings/s)",
        took.as_secs_f64(),
        produced.as_secs_f64(),
        totals.read as f64 / produced.as_secs_f64().max(1e-9)
    );
    println!();
    println!("  lost: {lost}   stored twice: {stored_twice}   unexpected: {unexpected}");
    Ok(lost == 0 && stored_twice == 0 && unexpected == 0 && stored_lines == sent.len() as u64)
}

/// Record id → lines holding it, over the lake's partition files.
fn read_lake(root: &Path) -> Result<HashMap<String, u32>, String> {
    let records = DataLakeStore::read_all(root)
        .map_err(|e| format!("reading the lake in {}: {e}", root.display()))?;
    let mut found = HashMap::new();
    for record in records {
        *found.entry(record.record_id.to_string()).or_default() += 1;
    }
    Ok(found)
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("the lake does not hold every record exactly once");
            ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
