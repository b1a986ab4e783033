//! `edgepipe-queue` run as a process on a real queue directory: stats, dead
//! letters, verify on a clean and a damaged queue, repair, and usage errors.

use std::path::Path;
use std::process::{Command, Output};

use edgepipe_core::Timestamp;
use edgepipe_core::queue::{Entry, LogOptions, Queue, QueueOptions, SegmentedLog};

fn run(args: &[&str]) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_edgepipe-queue"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap()
    );
    (status.code().unwrap(), text)
}

fn fill(dir: &Path) {
    let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
    let options = LogOptions {
        queue: QueueOptions {
            max_attempts: 1,
            ..QueueOptions::default()
        },
        ..LogOptions::default()
    };
    let queue = SegmentedLog::open(dir, options).unwrap();
    for n in 0..3 {
        queue
            .enqueue(Entry {
                source_id: format!("gw-{n}"),
                batch_id: format!("batch-{n}"),
                created_at: now,
                payload: vec![n; 100],
            })
            .unwrap();
    }
    let taken = queue.take(1, now).unwrap();
    queue.nack(taken[0].id, now).unwrap(); // one attempt allowed: dead
}

#[test]
fn stats_dead_verify_and_repair() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    fill(dir.path());

    let (code, out) = run(&["stats", path]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("entries: 3 (ready 2, retry 0, in flight 0, dead 1)"),
        "{out}"
    );
    assert!(out.contains("bytes: 333 held"), "{out}");
    assert!(out.contains("oldest: 2023-11-14T22:13:20"), "{out}");
    assert!(out.contains("damage: none"), "{out}");

    let (code, out) = run(&["dead", path]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1\t1\tgw-0\tbatch-0\t"), "{out}");
    assert!(!out.contains("batch-1"), "{out}");

    let (code, out) = run(&["verify", path]);
    assert_eq!(
        (code, out.contains("3 entries held, 0 lost, clean")),
        (0, true),
        "{out}"
    );

    // Damage the second entry's payload.
    let segment = dir.path().join(format!("{:020}.seg", 1));
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.windows(100).position(|w| w == [1u8; 100]).unwrap();
    bytes[at + 50] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();

    let (code, out) = run(&["verify", path]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("damaged: "), "{out}");
    assert!(out.contains("1 lost"), "{out}");
    let (code, out) = run(&["stats", path]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("damage: found, 1 entries lost"), "{out}");

    let (code, out) = run(&["repair", path]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("repair: move to corrupt/"), "{out}");
    assert!(
        dir.path()
            .join("corrupt")
            .join(format!("{:020}.seg", 1))
            .exists()
    );

    let (code, out) = run(&["verify", path]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 entries held, 0 lost, clean"), "{out}");
}

#[test]
fn a_queue_open_in_another_process_is_not_repaired_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let _open = SegmentedLog::open(dir.path(), LogOptions::default()).unwrap();
    let (code, out) = run(&["repair", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("open in another process"), "{out}");
}

#[test]
fn usage_errors() {
    assert_eq!(run(&[]).0, 2);
    let (code, out) = run(&["frobnicate", "x"]);
    assert_eq!(code, 2);
    assert!(out.contains("usage: edgepipe-queue"), "{out}");
    let (code, out) = run(&["stats", "/nonexistent/edgepipe/queue"]);
    assert_eq!(code, 2);
    assert!(out.contains("edgepipe-queue: reading the queue"), "{out}");
}
