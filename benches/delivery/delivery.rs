//! Delivery over loopback, edgepipe's path: the seed's 100-record gzip-6 JSON
//! batches enqueued one at a time in the segmented log (synced, as the seed
//! commits each batch to SQLite), drained by a `DeliveryWorker` with the HTTP
//! sink (keep-alive) into edgepipe's ingest server.
//!
//! ```text
//! EDGEPIPE_WORKLOAD=workload.jsonl cargo run --release -p edgepipe-benches \
//!     --features http,ingest-server --bin delivery-bench -- [--records N] [--store discard|lake] \
//!     [--enqueue each|all] [--lanes N] [--queue-dir DIR]
//! ```
//!
//! `--store discard` keeps nothing on the server (what the seed's FastAPI
//! service does: it prints a line per batch), so the figure compares the paths;
//! `--store lake` writes the data lake and the dedup journal to disk. Prints one
//! JSON object. `--enqueue all` enqueues the batches, which all exist before the
//! clock starts, with one `enqueue_all` (one sync) instead of one sync each.
//! `--lanes N` drains the queue with N lanes (N batches in flight, a keep-alive
//! connection each); `benches/delivery-vs-seed.sh` runs it beside the seed's path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use edgepipe_benches::measure::process_cpu_seconds;
use edgepipe_benches::{DiscardStore, workload_jsonl};
use edgepipe_core::batch::{BatchEncoder, Codec, Compression};
use edgepipe_core::deliver::{
    Delivery, DeliveryOptions, DeliveryWorker, HttpSink, HttpSinkOptions, Sink,
};
use edgepipe_core::ingest::server::{self, ServerConfig};
use edgepipe_core::ingest::{Dedup, JsonlQuarantine, Receiver, ReceiverConfig, Retention};
use edgepipe_core::queue::{Entry, LogOptions, Queue, SegmentedLog};
use edgepipe_core::record::json::parse_jsonl;
use edgepipe_core::record::{DataRecord, Timestamp};

const KEY: &str = "bench-key";

fn main() {
    let mut records_wanted = 20_000usize;
    let mut store = "discard".to_owned();
    let mut queue_dir = None;
    let mut enqueue_all = false;
    let mut lanes = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--records" => records_wanted = value.parse().expect("--records N"),
            "--store" => store = value,
            "--lanes" => lanes = value.parse().expect("--lanes N"),
            "--queue-dir" => queue_dir = Some(std::path::PathBuf::from(value)),
            "--enqueue" => {
                enqueue_all = match value.as_str() {
                    "each" => false,
                    "all" => true,
                    other => panic!("--enqueue each|all, not {other}"),
                }
            }
            _ => panic!("unknown option {flag}"),
        }
    }
    let (jsonl, source) = workload_jsonl(records_wanted);
    let records: Vec<DataRecord> = parse_jsonl(&jsonl)
        .map(|(_, record)| record.expect("a workload record"))
        .take(records_wanted)
        .collect();
    let encoder = BatchEncoder::new(
        "gateway-1",
        Codec::JsonPython,
        Compression::Gzip { level: 6 },
    )
    .expect("encoder");
    let batches: Vec<Entry> = records
        .chunks(100)
        .map(|chunk| Entry::from_batch(&encoder.encode(chunk, Timestamp::now()).expect("encode")))
        .collect();

    let work = tempfile::tempdir().expect("a temporary directory");
    let config = ReceiverConfig::new([KEY]);
    let receiver = match store.as_str() {
        "discard" => Receiver::with_parts(
            config,
            Dedup::in_memory(Retention::default()),
            Box::new(DiscardStore),
            Box::new(JsonlQuarantine::open(work.path().join("quarantine")).expect("quarantine")),
        ),
        "lake" => Receiver::open(config, &work.path().join("cloud")),
        other => panic!("--store discard|lake, not {other}"),
    }
    .expect("receiver");
    let receiver = Arc::new(receiver);
    let server = server::start(
        Arc::clone(&receiver),
        ServerConfig::new("127.0.0.1:0".parse().unwrap()),
    )
    .expect("server");
    let queue_path = queue_dir.unwrap_or_else(|| work.path().join("queue"));
    let queue: Arc<dyn Queue> =
        Arc::new(SegmentedLog::open(&queue_path, LogOptions::default()).expect("queue"));
    let sink = || -> Box<dyn Sink> {
        Box::new(
            HttpSink::new(HttpSinkOptions::new(
                format!("http://{}", server.local_addr()),
                KEY,
            ))
            .expect("sink"),
        )
    };

    let started = Instant::now();
    let cpu_started = process_cpu_seconds();
    let first = Delivery::new(
        Arc::clone(&queue),
        sink(),
        DeliveryOptions {
            idle_wait: Duration::from_millis(1),
            ..DeliveryOptions::default()
        },
    );
    let mut deliveries: Vec<Delivery> = (1..lanes.max(1)).map(|_| first.lane(sink())).collect();
    deliveries.insert(0, first);
    let worker = DeliveryWorker::spawn_lanes(deliveries).expect("worker");
    let batch_count = batches.len();
    if enqueue_all {
        // Batches that exist together are enqueued together: one sync for all.
        queue.enqueue_all(batches).expect("enqueue");
        worker.notify();
    } else {
        for entry in batches {
            // One durable enqueue per batch, as the seed commits each.
            queue.enqueue(entry).expect("enqueue");
            worker.notify();
        }
    }
    // Woken by the worker as it acks: polling the queue's stats would take its
    // lock thousands of times a second and slow the path measured.
    let delivered = worker.wait_for(Duration::from_secs(600), |metrics| {
        metrics.batches_sent + metrics.dead_lettered >= batch_count as u64
    });
    assert!(worker.failure().is_none(), "{:?}", worker.failure());
    assert_eq!(
        delivered.batches_sent, batch_count as u64,
        "{:?}",
        delivered.last_failure
    );
    let seconds = started.elapsed().as_secs_f64();
    // Client, server and queue share the process: its CPU time is the path's.
    let cpu_seconds = process_cpu_seconds() - cpu_started;
    let metrics = worker.shutdown();
    let accepted = receiver
        .metrics()
        .records_accepted
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(accepted as usize, records.len(), "every record accepted");
    assert_eq!(metrics.retries, 0, "{:?}", metrics.last_failure);
    server.shutdown().expect("server shutdown");
    println!(
        "{{\"path\":\"edgepipe DeliveryWorker+HttpSink -> edgepipe ingest server ({store}, enqueue {}, {lanes} lanes)\",\
         \"records\":{},\"batches\":{batch_count},\"seconds\":{seconds:.3},\"cpu_seconds\":{cpu_seconds:.3},\
         \"records_per_second\":{:.0},\"workload\":\"{source}\"}}",
        if enqueue_all { "all" } else { "each" },
        records.len(),
        records.len() as f64 / seconds,
        source = format!("{source:?}").replace(['"', '\\'], "'"),
    );
}
