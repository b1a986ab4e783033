//! A real Kafka-protocol broker for tests: `tansu` on a free loopback port, with
//! in-memory storage, topics created explicitly, killed on drop; every record
//! read back (edgepipe's `KafkaReader`); and a Kafka-aware fault proxy. Only
//! edgepipe's public API and std, so the examples' and benches' tests include
//! it too (`#[path]`).
//!
//! The tansu binary is `$EDGEPIPE_TANSU`, else `$HOME/.cache/edgepipe/tools/bin/tansu`,
//! else `tansu` on `PATH`; `scripts/test-all` builds it there when missing.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use edgepipe_core::deliver::{KafkaOptions, create_topic};
use edgepipe_core::ingest::{KafkaMessage, KafkaReader};

const INSTALL: &str = "cargo install tansu --version 0.6.0 --locked --features dynostore --root \"$HOME/.cache/edgepipe/tools\"";

/// The tansu executable, or a panic naming how to install it.
pub fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("EDGEPIPE_TANSU") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "EDGEPIPE_TANSU={} is not a file; install tansu with: {INSTALL}",
            path.display()
        );
        return path;
    }
    if let Some(home) = std::env::var_os("HOME") {
        let cached = PathBuf::from(home).join(".cache/edgepipe/tools/bin/tansu");
        if cached.is_file() {
            return cached;
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("tansu");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "the Kafka tests need the tansu broker (a Kafka-protocol broker in Rust): install it with\n  {INSTALL}\n(about 19 minutes cold on 2 cores), or point EDGEPIPE_TANSU at the binary"
    );
}

/// A free loopback port (bound, read and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A running tansu broker; killed on drop.
pub struct Tansu {
    child: Child,
    address: SocketAddr,
}

impl Tansu {
    /// A broker advertising its own address.
    pub fn start() -> Tansu {
        let port = free_port();
        Tansu::start_advertising(port, port)
    }

    /// A broker listening on `port` that tells clients to connect to
    /// `advertised` (a proxy's port, so every connection goes through it).
    pub fn start_advertising(port: u16, advertised: u16) -> Tansu {
        let binary = tansu_binary();
        let mut child = Command::new(&binary)
            .arg("broker")
            .arg("--listener-url")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{advertised}"))
            .arg("--storage-engine")
            .arg("memory://tansu/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", binary.display()));
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // Readiness: the listener accepts. The deadline only bounds a broker that
        // never comes up; nothing is timed.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!("tansu exited ({status}) before listening:\n{stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {address} within 60 s"
            );
            thread::sleep(Duration::from_millis(20));
        }
        // Its log goes nowhere from here on (an unread pipe would fill and block it).
        if let Some(mut pipe) = child.stderr.take() {
            thread::spawn(move || {
                let mut sink = [0u8; 8192];
                while matches!(pipe.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
        Tansu { child, address }
    }

    /// Where the broker listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `host:port` of the broker itself.
    pub fn bootstrap(&self) -> String {
        self.address.to_string()
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        create_topic(&KafkaOptions::new([self.bootstrap()], topic), partitions, 1)
            .unwrap_or_else(|error| panic!("creating topic {topic}: {error}"));
    }

    /// Every record of every partition of `topic`, by partition, in offset order.
    pub fn read_all(&self, topic: &str) -> BTreeMap<i32, Vec<KafkaMessage>> {
        let mut reader = KafkaReader::new(KafkaOptions::new([self.bootstrap()], topic))
            .unwrap_or_else(|error| panic!("reading topic {topic}: {error}"));
        let mut out: BTreeMap<i32, Vec<KafkaMessage>> = (0..reader.partition_count() as i32)
            .map(|partition| (partition, Vec::new()))
            .collect();
        for message in reader.read_available().unwrap() {
            out.entry(message.partition).or_default().push(message);
        }
        out
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A header's value as text ("" when absent).
pub fn header(message: &KafkaMessage, name: &str) -> String {
    message.header(name).unwrap_or_default().to_owned()
}

/// What a Kafka-aware fault proxy did to produce requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyCounts {
    /// Produce requests forwarded and answered.
    pub passed: u64,
    /// Produce requests cut in half: the broker never had them whole.
    pub cut_before_broker: u64,
    /// Produce requests forwarded whole whose answer was thrown away.
    pub answer_dropped: u64,
    /// Produce requests swallowed: never forwarded, never answered, until the
    /// client gives up (its request timeout) and closes.
    pub stalled: u64,
}

struct ProxyShared {
    upstream: SocketAddr,
    rng: Mutex<u64>,
    /// Per mille of produce requests cut before the broker, and answered-then-dropped.
    cut_per_mille: u64,
    drop_per_mille: u64,
    stall_per_mille: u64,
    passed: AtomicU64,
    stalled: AtomicU64,
    cut: AtomicU64,
    dropped: AtomicU64,
    stopping: AtomicBool,
}

impl ProxyShared {
    fn roll(&self) -> u64 {
        // SplitMix64: reproducible from the seed.
        let mut state = self.rng.lock().unwrap();
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A TCP proxy that reads the Kafka framing (a 4-byte length before every
/// request and response) and, for produce requests (API key 0), at random:
/// forwards half of the request and closes both sides (the broker never has it),
/// or forwards it whole and closes both sides instead of passing its answer on
/// (the broker has stored it, the client cannot know), or swallows it (the
/// client's own timeout ends the connection). Kafka answers the
/// requests of one connection in order, so the n-th response is the n-th
/// request's.
pub struct KafkaFaultProxy {
    listener_address: SocketAddr,
    shared: Arc<ProxyShared>,
    acceptor: Option<JoinHandle<()>>,
}

impl KafkaFaultProxy {
    /// A proxy on `listener` (already bound, so a broker can be told its port
    /// first) forwarding to `upstream`.
    pub fn start(
        listener: TcpListener,
        upstream: SocketAddr,
        cut_per_mille: u64,
        drop_per_mille: u64,
        stall_per_mille: u64,
        seed: u64,
    ) -> KafkaFaultProxy {
        let listener_address = listener.local_addr().unwrap();
        let shared = Arc::new(ProxyShared {
            upstream,
            rng: Mutex::new(seed),
            cut_per_mille,
            drop_per_mille,
            stall_per_mille,
            passed: AtomicU64::new(0),
            stalled: AtomicU64::new(0),
            cut: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                for client in listener.incoming() {
                    if shared.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    let shared = Arc::clone(&shared);
                    thread::spawn(move || relay(client, &shared));
                }
            })
        };
        KafkaFaultProxy {
            listener_address,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.listener_address
    }

    /// How produce requests fared so far.
    pub fn counts(&self) -> ProxyCounts {
        ProxyCounts {
            passed: self.shared.passed.load(Ordering::Relaxed),
            cut_before_broker: self.shared.cut.load(Ordering::Relaxed),
            answer_dropped: self.shared.dropped.load(Ordering::Relaxed),
            stalled: self.shared.stalled.load(Ordering::Relaxed),
        }
    }
}

impl Drop for KafkaFaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.listener_address);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).ok()?;
    let length = i32::from_be_bytes(length);
    let mut frame = vec![0u8; 4 + usize::try_from(length).ok()?];
    frame[..4].copy_from_slice(&length.to_be_bytes());
    stream.read_exact(&mut frame[4..]).ok()?;
    Some(frame)
}

fn relay(client: TcpStream, shared: &Arc<ProxyShared>) {
    let Ok(server) = TcpStream::connect(shared.upstream) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // The index of the request whose answer is to be dropped (u64::MAX: none).
    let drop_answer = Arc::new(AtomicU64::new(u64::MAX));
    let (mut client_reader, mut server_writer) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let upward = {
        let shared = Arc::clone(shared);
        let drop_answer = Arc::clone(&drop_answer);
        let closers = (client.try_clone().unwrap(), server.try_clone().unwrap());
        thread::spawn(move || {
            let mut index = 0u64;
            while let Some(frame) = read_frame(&mut client_reader) {
                let api_key = frame.get(4..6).map(|k| i16::from_be_bytes([k[0], k[1]]));
                if api_key == Some(0) {
                    let roll = shared.roll() % 1000;
                    if roll < shared.cut_per_mille {
                        shared.cut.fetch_add(1, Ordering::Relaxed);
                        let _ = server_writer.write_all(&frame[..frame.len() / 2]);
                        break;
                    } else if roll < shared.cut_per_mille + shared.drop_per_mille {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                        drop_answer.store(index, Ordering::SeqCst);
                        let _ = server_writer.write_all(&frame);
                        // Nothing more goes up: the answer to this one ends the connection.
                        let mut rest = [0u8; 4096];
                        while matches!(client_reader.read(&mut rest), Ok(n) if n > 0) {}
                        return;
                    } else if roll
                        < shared.cut_per_mille + shared.drop_per_mille + shared.stall_per_mille
                    {
                        shared.stalled.fetch_add(1, Ordering::Relaxed);
                        let mut rest = [0u8; 4096];
                        while matches!(client_reader.read(&mut rest), Ok(n) if n > 0) {}
                        break;
                    } else {
                        shared.passed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if server_writer.write_all(&frame).is_err() {
                    break;
                }
                index += 1;
            }
            let _ = closers.0.shutdown(Shutdown::Both);
            let _ = closers.1.shutdown(Shutdown::Both);
        })
    };
    let (mut server_reader, mut client_writer) = (server, client);
    let mut index = 0u64;
    while let Some(frame) = read_frame(&mut server_reader) {
        if drop_answer.load(Ordering::SeqCst) == index {
            break;
        }
        if client_writer.write_all(&frame).is_err() {
            break;
        }
        index += 1;
    }
    let _ = client_writer.shutdown(Shutdown::Both);
    let _ = server_reader.shutdown(Shutdown::Both);
    let _ = upward.join();
}
