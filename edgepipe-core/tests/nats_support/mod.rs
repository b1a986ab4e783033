//! A real `nats-server` with JetStream for tests, on free loopback ports, and a
//! TCP proxy that cuts connections when a JetStream ack comes back.
//!
//! The server is Debian's `nats-server` package (`apt-get install nats-server`);
//! the binary is `$EDGEPIPE_NATS_SERVER`, else the first `nats-server` on `PATH`,
//! in `/usr/sbin` or in `/usr/bin`. A missing binary fails the test, naming the
//! package. Readiness is the monitor port's `/healthz` answering 200 (it says so
//! only once JetStream is up), polled against a deadline. The server is killed by
//! its pid on drop; [`NatsServer::restart`] starts it again on the same ports and
//! store directory.
//!
//! Standard library only, so the benchmark harness's test includes it too.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Bounds waits that only turn a hang into a failure; nothing is timed.
pub const HANG: Duration = Duration::from_secs(60);

/// The `nats-server` binary, or a panic saying what to install.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("EDGEPIPE_NATS_SERVER") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "$EDGEPIPE_NATS_SERVER is {}, which is not a file (apt-get install nats-server)",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut directories: Vec<PathBuf> = std::env::split_paths(&path).collect();
    directories.extend(["/usr/sbin", "/usr/bin"].map(PathBuf::from));
    directories
        .into_iter()
        .map(|directory| directory.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nats-server not found ($EDGEPIPE_NATS_SERVER, PATH, /usr/sbin, /usr/bin): \
                 apt-get install nats-server"
            )
        })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `nats-server -js` process with its JetStream store in a directory of the test's.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    /// The client port.
    pub port: u16,
    /// The HTTP monitoring port (`/healthz`).
    pub monitor_port: u16,
    dir: PathBuf,
    config: Option<PathBuf>,
}

impl NatsServer {
    /// A server with JetStream storing under `dir`.
    pub fn start(dir: &Path) -> NatsServer {
        NatsServer::start_with_config(dir, None)
    }

    /// A server that also reads `config` (server configuration syntax: TLS,
    /// users, `max_payload`); the command line's address, ports and store win.
    pub fn start_with_config(dir: &Path, config: Option<&str>) -> NatsServer {
        std::fs::create_dir_all(dir).unwrap();
        let config = config.map(|text| {
            let path = dir.join("nats-server.conf");
            std::fs::write(&path, text).unwrap();
            path
        });
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            monitor_port: free_port(),
            dir: dir.to_owned(),
            config,
        };
        server.restart();
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// (Re)starts the process on the same ports and store, and returns once
    /// `/healthz` says it (JetStream included) is ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "nats-server already running");
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut command = Command::new(nats_server_binary());
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        command
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string()])
            .arg("-js")
            .arg("-sd")
            .arg(self.dir.join("jetstream"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = command
            .spawn()
            .expect("starting nats-server (apt-get install nats-server)");
        self.child = Some(child);
        let started = Instant::now();
        while !self.healthy() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "nats-server exited at start-up: {status}\n{}",
                    self.log_tail()
                );
            }
            assert!(
                started.elapsed() < HANG,
                "nats-server did not become healthy\n{}",
                self.log_tail()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether `GET /healthz` on the monitor port answers 200.
    fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.monitor_port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        if stream
            .write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        response.starts_with(b"HTTP/1.1 200") || response.starts_with(b"HTTP/1.0 200")
    }

    /// Kills the process by its pid and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            child.wait().unwrap();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP proxy in front of a NATS server that, on every `cut_every`-th ack or
/// reply the server sends to a client (a `MSG` line), closes both sides of that
/// connection instead of passing the reply on: the server has done the work (a
/// JetStream publish is stored), and the client never learns it.
#[derive(Debug)]
pub struct AckCutter {
    port: u16,
    cuts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl AckCutter {
    pub fn start(upstream_port: u16, cut_every: u64) -> AckCutter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cuts = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let replies = Arc::new(AtomicU64::new(0));
        {
            let (cuts, stop) = (Arc::clone(&cuts), Arc::clone(&stop));
            thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                        continue;
                    };
                    let (cuts, replies) = (Arc::clone(&cuts), Arc::clone(&replies));
                    let (client_in, server_out) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    thread::spawn(move || copy(client_in, server_out));
                    thread::spawn(move || cut_on_reply(server, client, cut_every, &replies, &cuts));
                }
            });
        }
        AckCutter { port, cuts, stop }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// How many replies were cut so far.
    pub fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for AckCutter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 64 * 1024];
    while let Ok(read) = from.read(&mut buffer) {
        if read == 0 || to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

fn cut_on_reply(
    mut server: TcpStream,
    mut client: TcpStream,
    cut_every: u64,
    replies: &AtomicU64,
    cuts: &AtomicU64,
) {
    let mut buffer = [0u8; 64 * 1024];
    while let Ok(read) = server.read(&mut buffer) {
        if read == 0 {
            break;
        }
        let chunk = &buffer[..read];
        // Server-to-client protocol lines start a line; a reply is `MSG` or `HMSG`.
        let reply = chunk.starts_with(b"MSG ")
            || chunk.starts_with(b"HMSG ")
            || chunk.windows(5).any(|w| w == b"\nMSG ")
            || chunk.windows(6).any(|w| w == b"\nHMSG ");
        if reply && (replies.fetch_add(1, Ordering::SeqCst) + 1).is_multiple_of(cut_every) {
            cuts.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if client.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}
