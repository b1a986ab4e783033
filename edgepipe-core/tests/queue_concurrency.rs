//! The segmented log shared between threads: concurrent enqueuers share syncs
//! (group commit), and producers and consumers running at once lose and
//! duplicate nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use edgepipe_core::Timestamp;
use edgepipe_core::queue::log::FsOp;
use edgepipe_core::queue::{Entry, LogOptions, Queue, QueueOptions, SegmentedLog, SimFs};

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_700_000_000).unwrap()
}

fn entry(source: usize, n: usize) -> Entry {
    Entry {
        source_id: format!("gw-{source}"),
        batch_id: format!("gw-{source}:{n}"),
        created_at: now(),
        payload: vec![(source * 31 + n) as u8; 64],
    }
}

fn open(fs: &SimFs, segment_bytes: u64) -> SegmentedLog {
    let options = LogOptions {
        queue: QueueOptions {
            max_bytes: 0,
            ..QueueOptions::default()
        },
        segment_bytes,
        ..LogOptions::default()
    };
    SegmentedLog::open_with(Arc::new(fs.clone()), Path::new("q"), options).unwrap()
}

/// Waits, without sleeping, until `ready` holds (another thread makes it true).
fn until(ready: impl Fn() -> bool) {
    while !ready() {
        std::thread::yield_now();
    }
}

#[test]
fn enqueuers_that_arrive_during_a_sync_share_the_next_one() {
    let fs = SimFs::new();
    let queue = Arc::new(open(&fs, 1 << 20));
    queue.enqueue(entry(0, 0)).unwrap();
    let syncs_before = fs.count(FsOp::Sync);

    // The first enqueuer becomes the leader and is held inside its fdatasync…
    fs.pause_syncs();
    std::thread::scope(|scope| {
        let leader = scope.spawn(|| queue.enqueue(entry(0, 1)).unwrap());
        until(|| fs.paused_syncs() == 1);
        // …while seven more enqueue and wait for the next commit.
        let followers: Vec<_> = (1..8)
            .map(|source| {
                let queue = &queue;
                scope.spawn(move || queue.enqueue(entry(source, 0)).unwrap())
            })
            .collect();
        until(|| queue.commit_stats().waiting == 7);
        fs.resume_syncs();
        leader.join().unwrap();
        for follower in followers {
            follower.join().unwrap();
        }
    });

    let stats = queue.commit_stats();
    assert_eq!(
        (stats.commits, stats.entries),
        (3, 9),
        "1 + 1 + 7 entries in 3 commits"
    );
    assert_eq!(
        fs.count(FsOp::Sync) - syncs_before,
        2,
        "eight enqueues, two fdatasyncs"
    );
    assert_eq!(queue.stats().pending, 9);
}

#[test]
fn producers_and_consumers_at_once_lose_and_duplicate_nothing() {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 150;
    let fs = SimFs::new();
    // Small segments: rollover and deletion race with the takes and acks.
    let queue = Arc::new(open(&fs, 2048));
    let acked = Mutex::new(Vec::new());
    let produced = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for source in 0..PRODUCERS {
            let (queue, produced) = (&queue, &produced);
            scope.spawn(move || {
                for n in 0..PER_PRODUCER {
                    let id = queue.enqueue(entry(source, n)).unwrap();
                    produced.lock().unwrap().push(id);
                }
            });
        }
        for _ in 0..2 {
            let (queue, acked, produced) = (&queue, &acked, &produced);
            scope.spawn(move || {
                loop {
                    // Read before the take: once every producer has returned, an
                    // empty take means nothing is left. (Read after it, the last
                    // enqueues could land between the two and be left behind.)
                    let done = produced.lock().unwrap().len() == PRODUCERS * PER_PRODUCER;
                    let taken = queue.take(7, now()).unwrap();
                    for pending in &taken {
                        let source = pending.entry.source_id[3..].parse().unwrap();
                        let n = pending
                            .entry
                            .batch_id
                            .rsplit(':')
                            .next()
                            .unwrap()
                            .parse()
                            .unwrap();
                        assert_eq!(pending.entry, entry(source, n), "served intact");
                        queue.ack(pending.id).unwrap();
                        acked.lock().unwrap().push(pending.id);
                    }
                    if taken.is_empty() && done {
                        break;
                    }
                }
            });
        }
    });
    let produced: BTreeSet<u64> = produced.into_inner().unwrap().into_iter().collect();
    let acked_list = acked.into_inner().unwrap();
    let acked: BTreeSet<u64> = acked_list.iter().copied().collect();
    assert_eq!(produced.len(), PRODUCERS * PER_PRODUCER, "ids are unique");
    assert_eq!(acked.len(), acked_list.len(), "nothing handed out twice");
    assert_eq!(acked, produced, "everything delivered");
    let stats = queue.commit_stats();
    assert_eq!(stats.entries, produced.len() as u64);
    drop(queue);

    let reopened = open(&fs, 2048);
    assert_eq!(reopened.stats().pending + reopened.stats().lost, 0);
    assert!(
        SegmentedLog::verify_with(&fs, Path::new("q"))
            .unwrap()
            .is_clean()
    );
}

/// A filesystem whose next `sync_data` panics, to check a panicking writer
/// strands no one.
#[derive(Debug)]
struct PanicOnSync {
    fs: SimFs,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug)]
struct PanicOnSyncFile {
    file: Arc<dyn edgepipe_core::queue::FsFile>,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl edgepipe_core::queue::FsFile for PanicOnSyncFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn append(&self, data: &[u8]) -> std::io::Result<()> {
        self.file.append(data)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        let result = self.file.sync_data();
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            panic!("a sync panicked");
        }
        result
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }
    fn size(&self) -> std::io::Result<u64> {
        self.file.size()
    }
}

impl edgepipe_core::queue::Fs for PanicOnSync {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.fs.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.fs.list(dir)
    }
    fn create_new(&self, path: &Path) -> std::io::Result<Arc<dyn edgepipe_core::queue::FsFile>> {
        let file = self.fs.create_new(path)?;
        Ok(Arc::new(PanicOnSyncFile {
            file,
            armed: self.armed.clone(),
        }))
    }
    fn open(&self, path: &Path) -> std::io::Result<Arc<dyn edgepipe_core::queue::FsFile>> {
        let file = self.fs.open(path)?;
        Ok(Arc::new(PanicOnSyncFile {
            file,
            armed: self.armed.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.fs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.fs.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.fs.sync_dir(dir)
    }
}

#[test]
fn a_writer_that_panics_strands_no_one() {
    use edgepipe_core::queue::Fs;
    let fs = SimFs::new();
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let panicky = Arc::new(PanicOnSync {
        fs: fs.clone(),
        armed: armed.clone(),
    });
    let queue =
        Arc::new(SegmentedLog::open_with(panicky, Path::new("q"), LogOptions::default()).unwrap());
    queue.enqueue(entry(0, 0)).unwrap();
    fs.pause_syncs();
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    std::thread::scope(|scope| {
        let leader = scope.spawn(|| queue.enqueue(entry(0, 1)));
        until(|| fs.paused_syncs() == 1);
        let followers: Vec<_> = (1..4)
            .map(|source| {
                let queue = &queue;
                scope.spawn(move || queue.enqueue(entry(source, 0)).unwrap())
            })
            .collect();
        until(|| queue.commit_stats().waiting == 3);
        fs.resume_syncs();
        assert!(leader.join().is_err(), "the leader's enqueue panicked");
        for follower in followers {
            follower.join().unwrap();
        }
    });
    // The followers went to a new segment; the old one was sealed.
    let segments = fs
        .list(Path::new("q"))
        .unwrap()
        .iter()
        .filter(|n| n.ends_with(".seg"))
        .count();
    assert_eq!(segments, 2);
    assert_eq!(queue.stats().pending, 4);
}
