//! A throw-away PostgreSQL server per test binary, on loopback, and a fresh
//! database per test.
//!
//! Needs PostgreSQL's server programs (`apt-get install postgresql`): found
//! through `$PG_BINDIR`, `pg_config --bindir` or `/usr/lib/postgresql/*/bin`. A
//! missing server fails the tests with that message. As root, the server runs as
//! user `postgres` (PostgreSQL refuses to run as root).
//!
//! The server is started under a small shell that holds the read end of a pipe
//! from this process: when the test binary exits, however it exits, the pipe
//! closes and the shell stops the server, so no server outlives its tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

const MISSING: &str = "PostgreSQL's server programs (initdb, postgres) not found \
    ($PG_BINDIR, pg_config --bindir, /usr/lib/postgresql/*/bin): apt-get install postgresql";

/// The server programs' directory.
pub fn bindir() -> PathBuf {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("PG_BINDIR").map(PathBuf::from) {
        assert!(has_initdb(&dir), "{MISSING}");
        return dir;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_initdb(&dir) {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|dir| has_initdb(dir))
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| panic!("{MISSING}"))
}

/// The uid and gid of user `postgres` when this process is root (PostgreSQL
/// refuses root), else none: the server runs as whoever runs the tests.
fn server_user() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id("-u")? != 0 {
        return None;
    }
    let user = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("running id");
        assert!(
            out.status.success(),
            "running as root, and there is no user `postgres` to run the server as: \
             apt-get install postgresql (it creates the user)"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    Some((user("-u"), user("-g")))
}

fn as_server_user(command: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
    command
}

/// One running server.
pub struct PgServer {
    dir: tempfile::TempDir,
    port: u16,
    /// The shell holding the server; its stdin is the pipe whose closing stops it.
    guard: Mutex<Child>,
    next_database: AtomicU64,
}

impl PgServer {
    fn start() -> PgServer {
        let bin = bindir();
        let user = server_user();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let initdb = as_server_user(&mut Command::new(bin.join("initdb")), user)
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .unwrap_or_else(|e| panic!("running initdb: {e} ({MISSING})"));
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // fsync off: the tests are about the ledger's logic and replicas dying,
        // not about PostgreSQL surviving power cuts.
        let script = "\"$0\" \"$@\" & pg=$!; read _; kill -INT $pg; wait $pg";
        let mut guard = as_server_user(&mut Command::new("sh"), user)
            .arg("-c")
            .arg(script)
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting postgres: {e}"));
        // Ready when the server says so in its log; the rest of the log is drained.
        let stderr = guard.stderr.take().unwrap();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut log = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("ready to accept connections") {
                    let _ = ready_tx.send(Ok(()));
                } else if log.len() < 50 {
                    log.push(line);
                }
            }
            let _ = ready_tx.send(Err(log.join("\n")));
        });
        match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(())) => {}
            Ok(Err(log)) => panic!("postgres exited at start-up:\n{log}"),
            Err(_) => panic!("postgres was not ready within 60 s"),
        }
        PgServer {
            dir,
            port,
            guard: Mutex::new(guard),
            next_database: AtomicU64::new(0),
        }
    }

    /// The server this test binary shares, started on first use.
    pub fn shared() -> &'static PgServer {
        static SERVER: OnceLock<PgServer> = OnceLock::new();
        SERVER.get_or_init(PgServer::start)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:{}/{name}?connect_timeout=10",
            self.port
        )
    }

    /// A new, empty database; its URL.
    pub fn database(&self) -> String {
        let n = self.next_database.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connecting to the test server");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("creating a test database");
        self.url(&name)
    }

    /// Ends every other session on the database at `url` and waits until each is
    /// gone (its locks released): a closed connection's session ends on the
    /// server's own time, and this is how a test waits for it without polling.
    pub fn end_other_sessions(&self, url: &str) {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        let rows = client
            .query(
                "SELECT pid FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap();
        for row in rows {
            let pid: i32 = row.get(0);
            // Waits up to 30 s for the exit; a session already gone only warns.
            client
                .query("SELECT pg_terminate_backend($1, 30000)", &[&pid])
                .unwrap();
        }
    }
}
