//! The durability contract under SIGKILL, on the real filesystem.
//!
//! A child process (this test binary, re-run on its ignored helper test) opens
//! the queue, enqueues entries with checkable payloads, takes and acks some, and
//! reports every acknowledged enqueue (`@E id batch hash`), every take (`@T id`)
//! and every returned ack (`@A id`) over a pipe. The parent kills it (SIGKILL) at a random moment —
//! sometimes before it has reported anything, so also during recovery — and
//! reopens the queue: every acknowledged entry not acked must be there,
//! byte-exact and in order; every acked one must be gone; anything else must be
//! an entry a child tried to enqueue. Small segments make rollover and deletion
//! happen under the kills too.
//!
//! The segmented log takes 500 kills by default, the SQLite backend (feature
//! `sqlite`) 200; `EDGEPIPE_SIGKILL_KILLS=N` sets both.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use edgepipe_core::Timestamp;
use edgepipe_core::queue::{Entry, LogOptions, Queue, QueueOptions, SegmentedLog};

const CHILD_DIR: &str = "EDGEPIPE_SIGKILL_CHILD_DIR";
const CHILD_GENERATION: &str = "EDGEPIPE_SIGKILL_CHILD_GENERATION";
const CHILD_BACKEND: &str = "EDGEPIPE_SIGKILL_CHILD_BACKEND";

/// The durable backend under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Log,
    #[cfg(feature = "sqlite")]
    Sqlite,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Log => "log",
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => "sqlite",
        }
    }

    fn from_name(name: &str) -> Backend {
        match name {
            "log" => Backend::Log,
            #[cfg(feature = "sqlite")]
            "sqlite" => Backend::Sqlite,
            other => panic!("unknown backend {other}"),
        }
    }

    fn open(self, dir: &Path) -> Box<dyn Queue> {
        match self {
            Backend::Log => Box::new(SegmentedLog::open(dir, options()).expect("open")),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => Box::new(
                edgepipe_core::queue::SqliteQueue::open(
                    dir.join("queue.db"),
                    QueueOptions {
                        max_bytes: 0,
                        ..QueueOptions::default()
                    },
                )
                .expect("open"),
            ),
        }
    }
}

fn options() -> LogOptions {
    LogOptions {
        queue: QueueOptions {
            max_bytes: 0,
            ..QueueOptions::default()
        },
        segment_bytes: 16 * 1024,
        state_rewrite_bytes: 2048,
        ..LogOptions::default()
    }
}

/// xorshift64*: enough randomness for lengths and timings, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed_of(text: &str) -> u64 {
    // FNV-1a.
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
    }) | 1
}

/// The payload a batch id stands for: anyone can regenerate and compare it.
fn payload_for(batch_id: &str) -> Vec<u8> {
    let mut rng = Rng(seed_of(batch_id));
    let len = rng.below(3000) as usize;
    (0..len).map(|_| rng.next() as u8).collect()
}

fn hash(payload: &[u8]) -> u64 {
    payload.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
    })
}

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000).unwrap()
}

/// The child's side: runs until killed. Ignored so a normal run skips it.
#[test]
#[ignore = "the child process of sigkill_never_loses_an_acknowledged_entry"]
fn sigkill_child() {
    let (Ok(dir), Ok(generation), Ok(backend)) = (
        std::env::var(CHILD_DIR),
        std::env::var(CHILD_GENERATION),
        std::env::var(CHILD_BACKEND),
    ) else {
        return;
    };
    let queue = Backend::from_name(&backend).open(Path::new(&dir));
    let mut out = std::io::stdout().lock();
    writeln!(out, "@O").unwrap();
    out.flush().unwrap();
    let mut rng = Rng(seed_of(&generation));
    for n in 0u64.. {
        let batch_id = format!("g{generation}-{n}");
        let payload = payload_for(&batch_id);
        let digest = hash(&payload);
        let entry = Entry {
            source_id: "gw".to_owned(),
            batch_id: batch_id.clone(),
            created_at: now(),
            payload,
        };
        let id = queue.enqueue(entry).expect("enqueue");
        writeln!(out, "@E {id} {batch_id} {digest}").unwrap();
        out.flush().unwrap();
        if rng.below(2) == 0 {
            let taken = queue.take(rng.below(4) as usize, now()).expect("take");
            for pending in &taken {
                writeln!(out, "@T {}", pending.id).unwrap();
            }
            out.flush().unwrap();
            for pending in taken {
                queue.ack(pending.id).expect("ack");
                writeln!(out, "@A {}", pending.id).unwrap();
                out.flush().unwrap();
            }
        }
    }
}

fn kills(default: u64) -> u64 {
    std::env::var("EDGEPIPE_SIGKILL_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

#[test]
fn sigkill_never_loses_an_acknowledged_entry() {
    let kills = kills(500);
    let (dir, files_seen) = kill_and_reopen(Backend::Log, kills);
    let segment_files = files_seen
        .iter()
        .filter(|name| name.to_string_lossy().ends_with(".seg"))
        .count();
    eprintln!("sigkill log: {segment_files} segment files seen");
    assert!(segment_files > 2, "segments rolled over and were deleted");
    assert!(
        SegmentedLog::verify(dir.path()).unwrap().lost == 0,
        "nothing counted lost"
    );
}

#[cfg(feature = "sqlite")]
#[test]
fn sigkill_never_loses_an_acknowledged_entry_in_sqlite() {
    kill_and_reopen(Backend::Sqlite, kills(200));
}

/// Runs `kills` children of `backend` in one directory, killing each at a random
/// moment and checking the reopened queue; returns the directory and every file
/// name seen in it between kills.
fn kill_and_reopen(
    backend: Backend,
    kills: u64,
) -> (tempfile::TempDir, HashSet<std::ffi::OsString>) {
    // One kill loop at a time. A child spawned by one loop's thread holds, between
    // its fork and its exec, a copy of every descriptor the process has open, the
    // other loop's queue lock included. Opening waits a moment for such a lock,
    // but a fork on this loaded machine can take longer than that moment.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // Acknowledged and not acked, by id: the batch id (the payload follows from it).
    let mut expected: BTreeMap<u64, String> = BTreeMap::new();
    let mut acked: HashSet<u64> = HashSet::new();
    let mut reported = 0u64;
    let mut segments_seen = HashSet::new();
    for generation in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "sigkill_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_GENERATION, generation.to_string())
            .env(CHILD_BACKEND, backend.name())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        // Kill after a random number of reports; 0 kills it while it opens.
        let wait_for = rng.below(8);
        let mut line = String::new();
        // Taken by this child and not reported acked: it may have been acked just
        // before the kill, so it may be gone.
        let mut taken: HashSet<u64> = HashSet::new();
        let mut record = |line: &str, expected: &mut BTreeMap<u64, String>| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["@E", id, batch, digest] => {
                    let id: u64 = id.parse().unwrap();
                    assert_eq!(hash(&payload_for(batch)).to_string(), *digest);
                    expected.insert(id, (*batch).to_owned());
                    reported += 1;
                }
                ["@T", id] => {
                    taken.insert(id.parse::<u64>().unwrap());
                }
                ["@A", id] => {
                    let id: u64 = id.parse().unwrap();
                    expected.remove(&id);
                    acked.insert(id);
                    taken.remove(&id);
                }
                ["@O"] => {}
                [first, ..] if first.starts_with('@') => panic!("unexpected report {parts:?}"),
                _ => {} // the test harness's own output
            }
        };
        for _ in 0..wait_for {
            line.clear();
            if lines.read_line(&mut line).unwrap() == 0 {
                break;
            }
            record(&line, &mut expected);
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        // What the child wrote before it died was acknowledged too.
        loop {
            line.clear();
            if lines.read_line(&mut line).unwrap() == 0 {
                break;
            }
            record(&line, &mut expected);
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "the child died on its own: {status}"
            );
        }
        #[cfg(not(unix))]
        let _ = status;

        for name in std::fs::read_dir(dir.path()).unwrap() {
            segments_seen.insert(name.unwrap().file_name());
        }
        let queue = backend.open(dir.path());
        assert_eq!(queue.stats().lost, 0, "{backend:?} counted a loss");
        let held = queue.take(usize::MAX, now()).unwrap();
        let held_ids: Vec<u64> = held.iter().map(|p| p.id).collect();
        assert!(held_ids.windows(2).all(|w| w[0] < w[1]), "in order");
        let present: BTreeMap<u64, &Entry> = held.iter().map(|p| (p.id, &p.entry)).collect();
        for id in taken {
            if !present.contains_key(&id) {
                expected.remove(&id);
                acked.insert(id);
            }
        }
        for (id, batch) in &expected {
            let entry = present.get(id).unwrap_or_else(|| {
                panic!("acknowledged entry {id} ({batch}) lost after kill {generation}")
            });
            assert_eq!(&entry.batch_id, batch);
            assert_eq!(entry.payload, payload_for(batch), "entry {id} corrupted");
        }
        for (id, entry) in &present {
            assert!(!acked.contains(id), "entry {id} was acked, yet came back");
            assert!(entry.batch_id.starts_with('g'), "not an entry a child made");
            assert_eq!(
                entry.payload,
                payload_for(&entry.batch_id),
                "entry {id} corrupted"
            );
            // Enqueued but killed before it was reported: it is on disk now, and
            // the next child may take and ack it.
            expected
                .entry(*id)
                .or_insert_with(|| entry.batch_id.clone());
        }
    }
    eprintln!(
        "sigkill {}: {kills} kills, {reported} acknowledged enqueues, {} acks",
        backend.name(),
        acked.len()
    );
    (dir, segments_seen)
}
