//! Issue 10's proof for the ingest tier: two `edgepipe-ingest` *processes*
//! sharing one data-lake directory and one dedup ledger (`--dedup-postgres`, a
//! PostgreSQL server this test starts on loopback), behind a round-robin front
//! that also injects the delivery chaos test's faults (`chaos_support`). Edge
//! processes deliver numbered batches and are SIGKILLed at random moments (the
//! machinery of `deliver_chaos.rs`, in `chaos_support::edge`); once per edge
//! generation one replica, in turn, is SIGKILLed and started again on a new port.
//!
//! At the end the lake holds every record exactly once, the queue nothing, the
//! ledger no pending batch, and the replicas counted the duplicates they refused.
//! Records carry sequence ids, so the per-source ranges and locks are exercised
//! with the batch keys. 2,000 batches and 6 edge kills by default (under a
//! minute on 2 cores); `EDGEPIPE_REPLICAS_BATCHES` and `EDGEPIPE_REPLICAS_KILLS`
//! raise them. Needs `apt-get install postgresql`.
#![cfg(all(feature = "postgres", feature = "http", feature = "ingest-server"))]

mod chaos_support;
mod postgres_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use chaos_support::edge::{self, API_KEY};
use chaos_support::{ChaosProxy, FaultWeights};
use edgepipe_core::ingest::{PgLedger, Retention};
use postgres_support::PgServer;

/// The edge process (see `chaos_support::edge`). Ignored so a normal run skips it.
#[test]
#[ignore = "the child process of two_replicas_store_every_record_once_through_chaos"]
fn chaos_edge_child() {
    edge::edge_child();
}

/// One `edgepipe-ingest` process; SIGKILLed when dropped.
struct Replica {
    child: Child,
    address: SocketAddr,
}

impl Replica {
    fn start(data_dir: &Path, ledger_url: &str) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgepipe-ingest"))
            .args(["--listen", "127.0.0.1:0", "--api-key", API_KEY])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--dedup-postgres", ledger_url])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting edgepipe-ingest");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("edgepipe-ingest did not start: {line:?}"))
            .parse()
            .unwrap();
        Replica { child, address }
    }

    /// `(duplicate batches, duplicate records)` from its `/metrics`.
    fn duplicates(&self) -> (u64, u64) {
        let mut stream = TcpStream::connect(self.address).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: replica\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let value = |name: &str| -> u64 {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
                .trim()
                .parse()
                .unwrap()
        };
        (
            value("edgepipe_ingest_batches_duplicate_total"),
            value("edgepipe_ingest_records_duplicate_total"),
        )
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_replicas_store_every_record_once_through_chaos() {
    let batches = edge::env_number("EDGEPIPE_REPLICAS_BATCHES", 2_000);
    let kills = edge::env_number("EDGEPIPE_REPLICAS_KILLS", 6);
    let ledger_url = PgServer::shared().database();
    let dir = edge::run_dir();
    let queue_dir = dir.path().join("queue");
    // What every replica mounts: lake/ and quarantine/ (with the ledger, nothing
    // under it belongs to one replica).
    let shared: PathBuf = dir.path().join("shared");
    let mut replicas = [
        Replica::start(&shared, &ledger_url),
        Replica::start(&shared, &ledger_url),
    ];
    let proxy = ChaosProxy::start_many(
        replicas.iter().map(|r| r.address).collect(),
        FaultWeights {
            pass: 80,
            cut_before_server: 6,
            drop_response: 8,
            server_error: 5,
            stall: 1,
            max_responses: 20,
        },
        0x2e91_1ca5,
    );
    let (mut duplicate_batches, mut duplicate_records) = (0, 0);
    let mut restarts = 0usize;
    let endpoint = format!("http://{}", proxy.address());
    let run = edge::run_edges(&endpoint, &queue_dir, batches, kills, true, || {
        // One replica in turn dies without warning, mid-batch or not, and a new
        // process takes its place; the other keeps serving meanwhile.
        let index = restarts % replicas.len();
        let (b, r) = replicas[index].duplicates();
        duplicate_batches += b;
        duplicate_records += r;
        replicas[index] = Replica::start(&shared, &ledger_url);
        proxy.set_upstream_at(index, replicas[index].address);
        restarts += 1;
    });
    for replica in &replicas {
        let (b, r) = replica.duplicates();
        duplicate_batches += b;
        duplicate_records += r;
    }
    drop(replicas);

    edge::assert_every_record_once(&shared.join("lake"), &queue_dir, batches, true);
    let mut ledger = PgLedger::connect(&ledger_url, Retention::default()).unwrap();
    assert_eq!(ledger.pending().unwrap(), [], "a pending batch was left");
    let counts = proxy.counts();
    let forwarded = proxy.forwarded();
    eprintln!(
        "replicas chaos: {batches} batches, {} edge kills, {restarts} replica kills, \
         faults {counts:?}, connections per replica {forwarded:?}, {duplicate_batches} \
         duplicate batches and {duplicate_records} duplicate records refused, last edge: {}",
        run.killed, run.summary
    );
    for (fault, count) in counts {
        assert!(count > 0, "{fault:?} never struck");
    }
    assert!(forwarded.iter().all(|&n| n > 0), "a replica got no work");
    assert!(restarts >= 2, "each replica was killed at least once");
    assert!(duplicate_batches > 0, "no duplicate was ever recognised");
}
