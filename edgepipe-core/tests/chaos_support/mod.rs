//! A fault-injecting TCP proxy for delivery tests, on loopback.
//!
//! The proxy sits between a sink and a receiver and decides, for each
//! connection it accepts, which fault that connection suffers:
//!
//! - [`Fault::Pass`]: bytes flow both ways untouched, for a random number of
//!   responses (at most [`FaultWeights::max_responses`]) after which the proxy
//!   closes the connection, so a keep-alive client keeps drawing new faults;
//! - [`Fault::CutBeforeServer`]: part of the request reaches the server, then both
//!   sides are closed — the server sees a truncated request and must not commit;
//! - [`Fault::DropResponse`]: the request reaches the server whole, and its answer
//!   is thrown away and the client's connection closed as soon as the first byte
//!   comes back — the server committed, the client never learns it (a retry must
//!   be recognised as a duplicate);
//! - [`Fault::ServerError`]: the proxy answers `503` itself;
//! - [`Fault::Stall`]: the proxy reads and never answers, until the client gives
//!   up (its timeout) and closes.
//!
//! The receiver behind it can be swapped ([`ChaosProxy::set_upstream`]), which is
//! how a test restarts its server on a new port without the client noticing more
//! than refused or broken connections. With several upstreams
//! ([`ChaosProxy::start_many`]) it is a round-robin front: each new connection
//! goes to the next one, as a load balancer in front of ingest replicas does.
//! [`ChaosProxy::counts`] says how often each fault struck, so a test can insist
//! every one of them did.
//!
//! [`edge`] is the other side: edge processes delivering through the proxy and
//! being killed, and the check that every record landed once.
#![allow(dead_code)]

#[cfg(all(feature = "http", feature = "ingest-server"))]
pub mod edge;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// What happens to one proxied connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    Pass,
    CutBeforeServer,
    DropResponse,
    ServerError,
    Stall,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Pass,
        Fault::CutBeforeServer,
        Fault::DropResponse,
        Fault::ServerError,
        Fault::Stall,
    ];

    fn index(self) -> usize {
        Fault::ALL
            .iter()
            .position(|&fault| fault == self)
            .expect("listed")
    }
}

/// How often each fault is chosen, relative to the others.
#[derive(Clone, Copy, Debug)]
pub struct FaultWeights {
    pub pass: u32,
    pub cut_before_server: u32,
    pub drop_response: u32,
    pub server_error: u32,
    pub stall: u32,
    /// A passing connection carries at most this many responses (0: no limit).
    pub max_responses: u32,
}

impl FaultWeights {
    /// No faults at all.
    pub const CLEAN: FaultWeights = FaultWeights {
        pass: 1,
        cut_before_server: 0,
        drop_response: 0,
        server_error: 0,
        stall: 0,
        max_responses: 0,
    };

    fn pick(&self, roll: u64) -> Fault {
        let weights = [
            self.pass,
            self.cut_before_server,
            self.drop_response,
            self.server_error,
            self.stall,
        ];
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut roll = roll % total.max(1);
        for (fault, weight) in Fault::ALL.into_iter().zip(weights) {
            if roll < u64::from(weight) {
                return fault;
            }
            roll -= u64::from(weight);
        }
        Fault::Pass
    }
}

struct Shared {
    upstreams: Mutex<Vec<SocketAddr>>,
    /// Connections sent upstream so far, each to `upstreams[n % len]`.
    forwarded: Mutex<Vec<u64>>,
    next_upstream: AtomicU64,
    weights: Mutex<FaultWeights>,
    rng: Mutex<u64>,
    counts: [AtomicU64; 5],
    stopping: AtomicBool,
}

impl Shared {
    fn roll(&self) -> u64 {
        // SplitMix64: reproducible from the seed, no dependency.
        let mut state = self.rng.lock().unwrap();
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The proxy; stops accepting when dropped. Connections already open end when
/// either side closes them.
pub struct ChaosProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl ChaosProxy {
    /// A proxy on a free loopback port forwarding to `upstream`, choosing faults by
    /// `weights` from a generator seeded with `seed`.
    pub fn start(upstream: SocketAddr, weights: FaultWeights, seed: u64) -> ChaosProxy {
        ChaosProxy::start_many(vec![upstream], weights, seed)
    }

    /// A proxy alternating between `upstreams`, one connection each in turn.
    pub fn start_many(upstreams: Vec<SocketAddr>, weights: FaultWeights, seed: u64) -> ChaosProxy {
        assert!(!upstreams.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let address = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            forwarded: Mutex::new(vec![0; upstreams.len()]),
            upstreams: Mutex::new(upstreams),
            next_upstream: AtomicU64::new(0),
            weights: Mutex::new(weights),
            rng: Mutex::new(seed),
            counts: Default::default(),
            stopping: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept_loop(listener, shared))
        };
        ChaosProxy {
            address,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// New connections go to `upstream` from now on.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        self.set_upstream_at(0, upstream);
    }

    /// New connections that take turn `index` go to `upstream` from now on.
    pub fn set_upstream_at(&self, index: usize, upstream: SocketAddr) {
        self.shared.upstreams.lock().unwrap()[index] = upstream;
    }

    /// How many connections each upstream turn was given (whether or not its
    /// server was up).
    pub fn forwarded(&self) -> Vec<u64> {
        self.shared.forwarded.lock().unwrap().clone()
    }

    /// New connections draw their fault by `weights` from now on.
    pub fn set_weights(&self, weights: FaultWeights) {
        *self.shared.weights.lock().unwrap() = weights;
    }

    /// How many connections each fault struck, in [`Fault::ALL`]'s order.
    pub fn counts(&self) -> Vec<(Fault, u64)> {
        Fault::ALL
            .into_iter()
            .map(|fault| {
                (
                    fault,
                    self.shared.counts[fault.index()].load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(self.address);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut first_faults: Vec<Fault> = Fault::ALL.to_vec();
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let weights = *shared.weights.lock().unwrap();
        let fault = first_faults
            .pop()
            .unwrap_or_else(|| weights.pick(shared.roll()));
        let responses = match weights.max_responses {
            0 => u32::MAX,
            max => 1 + (shared.roll() % u64::from(max)) as u32,
        };
        shared.counts[fault.index()].fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(&shared);
        thread::spawn(move || serve(client, fault, responses, &shared));
    }
}

fn serve(client: TcpStream, fault: Fault, responses: u32, shared: &Shared) {
    let _ = client.set_nodelay(true);
    match fault {
        Fault::ServerError => {
            let mut client = client;
            let mut buffer = [0u8; 4096];
            if matches!(client.read(&mut buffer), Ok(n) if n > 0) {
                let _ = client.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
                      content-length: 34\r\nconnection: close\r\n\r\n\
                      {\"detail\":\"injected by the proxy\"}",
                );
            }
            let _ = client.shutdown(Shutdown::Both);
        }
        Fault::Stall => {
            // Read and never answer; the client's timeout ends it by closing.
            let mut client = client;
            let mut buffer = [0u8; 4096];
            while matches!(client.read(&mut buffer), Ok(n) if n > 0) {}
        }
        Fault::Pass | Fault::CutBeforeServer | Fault::DropResponse => {
            let upstream = {
                let upstreams = shared.upstreams.lock().unwrap();
                let turn =
                    shared.next_upstream.fetch_add(1, Ordering::Relaxed) as usize % upstreams.len();
                shared.forwarded.lock().unwrap()[turn] += 1;
                upstreams[turn]
            };
            let Ok(server) = TcpStream::connect(upstream) else {
                // The server is down: the client sees a connection closed at once.
                let _ = client.shutdown(Shutdown::Both);
                return;
            };
            let _ = server.set_nodelay(true);
            relay(client, server, fault, responses);
        }
    }
}

/// Copies bytes both ways, with the damage `fault` calls for; closes both sides
/// after `responses` reads from the server (a response is one read on loopback).
fn relay(client: TcpStream, server: TcpStream, fault: Fault, mut responses: u32) {
    let (mut client_reader, mut server_writer) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let upward = thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let n = match client_reader.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if fault == Fault::CutBeforeServer {
                // Half of the first chunk, then nothing: never a whole request.
                let _ = server_writer.write_all(&buffer[..n / 2]);
                break;
            }
            if server_writer.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = server_writer.shutdown(Shutdown::Both);
        let _ = client_reader.shutdown(Shutdown::Both);
    });
    let (mut server_reader, mut client_writer) = (server, client);
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let n = match server_reader.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if fault == Fault::DropResponse {
            // The server has answered, so it has committed: lose the answer.
            break;
        }
        if client_writer.write_all(&buffer[..n]).is_err() {
            break;
        }
        responses -= 1;
        if responses == 0 {
            break;
        }
    }
    let _ = client_writer.shutdown(Shutdown::Both);
    let _ = server_reader.shutdown(Shutdown::Both);
    let _ = upward.join();
}
