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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chaos_support::edge::{self, API_KEY};
use chaos_support::{ChaosProxy, FaultWeights};
use edgepipe_core::ingest::server::{self, ServerConfig, ServerHandle};
use edgepipe_core::ingest::{Receiver, ReceiverConfig};

/// The edge process (see `chaos_support::edge`). Ignored so a normal run skips it.
#[test]
#[ignore = "the child process of every_record_lands_once_through_chaos"]
fn chaos_edge_child() {
    edge::edge_child();
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

#[test]
fn every_record_lands_once_through_chaos() {
    let batches = edge::env_number("EDGEPIPE_CHAOS_BATCHES", 10_000);
    let kills = edge::env_number("EDGEPIPE_CHAOS_KILLS", 12);
    let dir = edge::run_dir();
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
    let endpoint = format!("http://{}", proxy.address());
    let run = edge::run_edges(&endpoint, &queue_dir, batches, kills, false, || {
        // The server goes away and a new one takes over from disk.
        cloud.stop();
        proxy.set_upstream(cloud.start());
        cloud.restarts += 1;
    });
    cloud.stop();

    edge::assert_every_record_once(
        &dir.path().join("cloud").join("lake"),
        &queue_dir,
        batches,
        false,
    );
    let counts = proxy.counts();
    eprintln!(
        "chaos: {batches} batches, {} kills, {} server restarts, faults {counts:?}, \
         {} duplicate batches and {} duplicate records refused, last edge: {}",
        run.killed, cloud.restarts, cloud.duplicate_batches, cloud.duplicate_records, run.summary
    );
    for (fault, count) in counts {
        assert!(count > 0, "{fault:?} never struck");
    }
    assert!(cloud.restarts > 0, "the server never restarted");
    // Answers were thrown away after commits, and kills repeated enqueues: the
    // receivers saw batches again and refused to store them twice.
    assert!(
        cloud.duplicate_batches > 0,
        "no duplicate was ever recognised"
    );
}
