//! The SQLite backend: the queue contract (`queue_support`), durable across
//! reopens, and compatibility both ways with the seed's `PersistentDeliveryQueue`,
//! whose class runs here unchanged in python3 (the seed's `delivery.py`, kept once in
//! `benches/seed/`).
#![cfg(feature = "sqlite")]

mod queue_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use edgepipe_core::batch::{BatchEncoder, Codec, Compression, DecodeLimits};
use edgepipe_core::queue::{Entry, Queue, QueueOptions, SqliteQueue};
use edgepipe_core::record::{DataRecord, Payload, Timestamp, Value};
use edgepipe_core::{Error, Result};
use queue_support::{Opened, at, entry, names};
use serde_json::Value as Json;

/// Fresh databases in a temporary directory that lives as long as the backend.
struct SqliteBackend {
    dir: tempfile::TempDir,
    opened: AtomicU32,
}

impl SqliteBackend {
    fn new() -> Self {
        SqliteBackend {
            dir: tempfile::tempdir().unwrap(),
            opened: AtomicU32::new(0),
        }
    }
}

impl queue_support::Backend for SqliteBackend {
    fn open(&self, options: QueueOptions) -> Opened {
        let number = self.opened.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("queue-{number}.db"));
        let queue = SqliteQueue::open(&path, options.clone()).unwrap();
        Opened {
            queue: Box::new(queue),
            reopen: Some(Box::new(move |queue| {
                // The old connection holds the database exclusively: close it first.
                drop(queue);
                Box::new(SqliteQueue::open(&path, options.clone()).unwrap())
            })),
        }
    }
}

queue_contract_tests!(SqliteBackend::new());
durable_queue_contract_tests!(SqliteBackend::new());

// --- the seed's code on the same database ------------------------------------

/// Runs `driver` after the seed's class in python3 with `args`; returns what it
/// printed as JSON.
fn seed_python(driver: &str, args: &[&Path]) -> Json {
    // The seed's whole module; its HTTP client, aiohttp, is only used inside
    // `DataDeliveryService`'s methods, so an empty stand-in lets it import without it.
    let seed_module = include_str!("../../benches/seed/delivery.py");
    let script = format!(
        "import sys, types\nsys.modules.setdefault('aiohttp', types.ModuleType('aiohttp'))\n\n\
         {seed_module}\n\n{driver}"
    );
    let output = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .args(args)
        .output()
        .expect("python3 (with its stdlib sqlite3) is needed for the seed compatibility tests");
    assert!(
        output.status.success(),
        "the seed's Python failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the driver prints one JSON document")
}

/// Records the driver printed, each as the JSON text Python wrote (key order kept).
fn records_from_json(records: &Json) -> Vec<DataRecord> {
    records
        .as_array()
        .unwrap()
        .iter()
        .map(|record| DataRecord::from_json(record.as_str().unwrap()).unwrap())
        .collect()
}

/// Fills a database the way the seed's queue does, one row per status it can
/// leave behind, and prints the records each batch holds.
const SEED_FILLS_A_QUEUE: &str = r#"
import gzip, hashlib, sys
from types import SimpleNamespace

queue = PersistentDeliveryQueue(sys.argv[1])
written = {}

def enqueue(batch_id, device_id, minute, compression="gzip", corrupt=False):
    # BatchProcessor.create_batch for gzip and none, with fixed times.
    records = [{
        "record_id": f"{batch_id}-r{n}",
        "device_id": device_id,
        "timestamp": datetime(2024, 1, 1, 12, minute, n).isoformat(),
        "data_type": "sensors",
        "payload": {"temperature": 20.5 + n, "ok": True},
        "metadata": {"site": "north"},
    } for n in range(3)]
    json_data = json.dumps(records).encode("utf-8")
    compressed = gzip.compress(json_data, compresslevel=6) if compression == "gzip" else json_data
    checksum = hashlib.sha256(compressed).hexdigest()
    if corrupt:
        compressed = compressed[:-1] + bytes([compressed[-1] ^ 1])
    queue.enqueue(SimpleNamespace(
        batch_id=batch_id, device_id=device_id, compressed_data=compressed,
        compression=compression, checksum=checksum,
        created_at=datetime(2024, 1, 1, 12, minute, 0, 250000 * (minute % 2))))
    written[batch_id] = [json.dumps(record) for record in records]

enqueue("pending", "dev-1", 1)
enqueue("sending", "dev-2", 2)
queue.mark_sending("sending")                # the process died mid-send
enqueue("failed-3", "dev-1", 3)
for _ in range(3):
    queue.mark_sending("failed-3")
    queue.mark_failed("failed-3")
enqueue("delivered", "dev-2", 4)
queue.mark_sending("delivered")
queue.mark_delivered("delivered")
enqueue("failed-10", "dev-2", 5)              # the seed's query never picks it again
for _ in range(10):
    queue.mark_sending("failed-10")
    queue.mark_failed("failed-10")
enqueue("uncompressed", "dev-2", 6, compression="none")
enqueue("corrupt", "dev-1", 7, corrupt=True)
print(json.dumps(written))
"#;

/// What the seed's `get_pending` and `decompress_batch` make of the table, then
/// the seed's own updates and an insert.
const SEED_DRAINS_A_QUEUE: &str = r#"
import gzip, hashlib, sys

queue = PersistentDeliveryQueue(sys.argv[1])
seen = []
for row in queue.get_pending(limit=100):
    data = row["batch_data"]
    # BatchProcessor.decompress_batch, for the compressions the seed has without lz4.
    if row["compression"] == "gzip":
        decompressed = gzip.decompress(data)
    else:
        decompressed = data
    seen.append({
        "batch_id": row["batch_id"],
        "device_id": row["device_id"],
        "status": row["status"],
        "attempts": row["attempts"],
        "checksum_ok": hashlib.sha256(data).hexdigest() == row["checksum"],
        "created_at": datetime.fromisoformat(row["created_at"]).isoformat(),
        "records": [json.dumps(record) for record in json.loads(decompressed.decode("utf-8"))],
    })
queue.mark_sending(seen[0]["batch_id"])
queue.mark_delivered(seen[0]["batch_id"])
queue.mark_sending(seen[1]["batch_id"])
queue.mark_failed(seen[1]["batch_id"])
records = [{"record_id": "seed-r0", "device_id": "dev-9", "timestamp": "2024-01-01T13:00:00",
            "data_type": "sensors", "payload": {"temperature": 19.0}, "metadata": {}}]
compressed = gzip.compress(json.dumps(records).encode("utf-8"), compresslevel=6)
queue.enqueue(type("DataBatch", (), dict(
    batch_id="from-seed", device_id="dev-9", compressed_data=compressed, compression="gzip",
    checksum=hashlib.sha256(compressed).hexdigest(), created_at=datetime(2024, 1, 1, 13))))
conn = sqlite3.connect(sys.argv[1])
statuses = dict(conn.execute("SELECT batch_id, status FROM delivery_queue").fetchall())
mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
conn.close()
print(json.dumps({"seen": seen, "statuses": statuses, "journal_mode": mode}))
"#;

fn seed_time(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

#[test]
fn a_database_the_seed_filled_is_opened_and_drained() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("delivery_queue.db");
    let written = seed_python(SEED_FILLS_A_QUEUE, &[&path]);

    let queue = SqliteQueue::open(&path, QueueOptions::default()).unwrap();
    let stats = queue.stats();
    // pending, sending (interrupted: ready again), failed-3 and uncompressed are
    // live; failed-10 (the seed's attempt limit) and corrupt are dead letters;
    // delivered is the seed's history and not held.
    assert_eq!((stats.pending, stats.in_flight, stats.dead), (4, 0, 2));

    let now = seed_time("2024-01-02T00:00:00");
    let taken = queue.take(10, now).unwrap();
    assert_eq!(
        names(&taken),
        ["pending", "sending", "failed-3", "uncompressed"],
        "oldest created_at first"
    );
    let attempts: Vec<u32> = taken.iter().map(|pending| pending.attempts).collect();
    assert_eq!(
        attempts,
        [0, 1, 3, 0],
        "the interrupted send counts as an attempt"
    );

    let limits = DecodeLimits::default();
    for pending in &taken {
        let name = pending.entry.batch_id.as_str();
        let batch = pending.entry.to_batch(&limits).unwrap();
        let envelope = &batch.envelope;
        assert_eq!(envelope.batch_id, name);
        assert_eq!(envelope.source_id, pending.entry.source_id);
        assert_eq!(envelope.codec, Codec::Json);
        let expected_compression = if name == "uncompressed" {
            "none"
        } else {
            "gzip"
        };
        assert_eq!(envelope.compression.name(), expected_compression);
        assert_eq!(envelope.record_count, 3);
        assert_eq!(envelope.created_at, pending.entry.created_at);
        let records = batch.decode(&limits).unwrap();
        assert_eq!(records, records_from_json(&written[name]), "{name}");
    }
    assert_eq!(taken[0].entry.source_id, "dev-1");
    assert_eq!(taken[1].entry.source_id, "dev-2");
    assert_eq!(
        taken[1].entry.created_at,
        seed_time("2024-01-01T12:02:00"),
        "created_at read as UTC from the seed's naive isoformat"
    );
    assert_eq!(
        taken[2].entry.created_at,
        seed_time("2024-01-01T12:03:00.250")
    );

    let dead = queue.dead_letters(10).unwrap();
    assert_eq!(names(&dead), ["failed-10", "corrupt"]);
    assert_eq!(dead[0].attempts, 10);
    assert!(
        dead[0]
            .entry
            .to_batch(&limits)
            .unwrap()
            .decode(&limits)
            .is_ok(),
        "a dead letter at the attempt limit keeps its envelope"
    );

    for pending in &taken {
        queue.ack(pending.id).unwrap();
    }
    assert!(queue.take(10, now).unwrap().is_empty());
    drop(queue);

    // Nothing is left for the seed either; its delivered row is untouched.
    let after = seed_python(SEED_DRAINS_QUEUE_STATUS_ONLY, &[&path]);
    assert_eq!(
        after,
        serde_json::json!({"pending": [], "statuses": {
            "delivered": "delivered", "failed-10": "dead", "corrupt": "dead"}})
    );
}

/// The seed's `get_pending`, and every row's status.
const SEED_DRAINS_QUEUE_STATUS_ONLY: &str = r#"
import sys
queue = PersistentDeliveryQueue(sys.argv[1])
pending = [row["batch_id"] for row in queue.get_pending(limit=100)]
conn = sqlite3.connect(sys.argv[1])
statuses = dict(conn.execute("SELECT batch_id, status FROM delivery_queue").fetchall())
conn.close()
print(json.dumps({"pending": pending, "statuses": statuses}))
"#;

fn encoded_entry(
    source: &str,
    first: u64,
    compression: Compression,
    created_at: Timestamp,
) -> (Entry, Vec<DataRecord>) {
    let records: Vec<DataRecord> = (first..first + 4)
        .map(|n| {
            let mut record = DataRecord::new(source, "sensors", Payload::new());
            record.timestamp = created_at;
            record.payload.insert("humidity", Value::Float(40.25));
            record.payload.insert("n", Value::Int(n as i64));
            record
        })
        .collect();
    let encoder = BatchEncoder::new(source, Codec::Json, compression).unwrap();
    let batch = encoder.encode(&records, created_at).unwrap();
    (Entry::from_batch(&batch), records)
}

#[test]
fn a_database_edgepipe_wrote_is_drained_by_the_seed() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("delivery_queue.db");
    let options = QueueOptions {
        max_attempts: 2,
        ..QueueOptions::default()
    };
    let created = Timestamp::from_unix_nanos(1_700_000_000_123_456_789); // at(0) and a fraction
    let (gzip, gzip_records) = encoded_entry("dev-1", 0, Compression::SEED, created);
    let (plain, plain_records) = encoded_entry("dev-2", 10, Compression::None, at(1));
    let (nacked, nacked_records) = encoded_entry("dev-3", 20, Compression::SEED, at(2));
    let (dead, _) = encoded_entry("dev-4", 30, Compression::SEED, at(3));
    let (acked, _) = encoded_entry("dev-5", 40, Compression::SEED, at(4));

    let queue = SqliteQueue::open(&path, options.clone())?;
    queue.enqueue_all(vec![
        gzip.clone(),
        plain.clone(),
        nacked.clone(),
        dead.clone(),
        acked.clone(),
    ])?;
    let taken = queue.take(10, at(10))?;
    queue.nack(taken[2].id, at(10))?;
    queue.nack(taken[3].id, at(10))?;
    let retaken = queue.take(10, at(10))?;
    assert_eq!(retaken.len(), 2);
    queue.nack(retaken[1].id, at(10))?; // dead at its second attempt
    queue.ack(taken[4].id)?;
    // gzip, plain and nacked (retaken[0]) are in flight when edgepipe stops.
    drop(queue);

    let drained = seed_python(SEED_DRAINS_A_QUEUE, &[&path]);
    assert_eq!(drained["journal_mode"], "wal");
    let seen = drained["seen"].as_array().unwrap();
    let seen_ids: Vec<&str> = seen
        .iter()
        .map(|row| row["batch_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        seen_ids,
        [&gzip.batch_id, &plain.batch_id, &nacked.batch_id],
        "the seed's get_pending sees the live rows, oldest first, not the dead or acked"
    );
    for (row, (entry, records)) in seen.iter().zip([
        (&gzip, &gzip_records),
        (&plain, &plain_records),
        (&nacked, &nacked_records),
    ]) {
        assert_eq!(row["device_id"], entry.source_id.as_str());
        assert_eq!(row["checksum_ok"], true);
        assert_eq!(records_from_json(&row["records"]), *records);
    }
    assert_eq!(seen[0]["created_at"], "2023-11-14T22:13:20.123456");
    assert_eq!(seen[2]["status"], "failed");
    assert_eq!(seen[2]["attempts"], 1);
    let statuses = &drained["statuses"];
    assert_eq!(statuses[&dead.batch_id], "dead");
    assert!(
        statuses.get(&acked.batch_id).is_none(),
        "an ack deletes its row"
    );

    // Back in edgepipe: the seed delivered gzip and failed plain once; it added a batch.
    let queue = SqliteQueue::open(&path, options)?;
    let taken = queue.take(10, at(20))?;
    assert_eq!(
        names(&taken),
        [plain.batch_id.as_str(), &nacked.batch_id, "from-seed"]
    );
    assert_eq!(taken[0].attempts, 1, "the seed's failed send is counted");
    assert_eq!(taken[0].entry, plain);
    assert_eq!(taken[1].attempts, 1);
    let adopted = taken[2].entry.to_batch(&DecodeLimits::default())?;
    assert_eq!(adopted.envelope.source_id, "dev-9");
    assert_eq!(adopted.decode(&DecodeLimits::default())?.len(), 1);
    assert_eq!(queue.dead_letters(10)?[0].entry, dead);
    Ok(())
}

// --- what only this backend does ----------------------------------------------

#[test]
fn enqueueing_a_batch_id_already_held_stores_nothing_new() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteQueue::open(dir.path().join("q.db"), QueueOptions::default())?;
    let first = queue.enqueue(entry("a", "a1", at(0)))?;
    let again = queue.enqueue_all(vec![entry("a", "a1", at(0)), entry("a", "a2", at(0))])?;
    assert_eq!(again[0], first);
    assert!(again[1] > first);
    assert_eq!(queue.stats().enqueued, 2);
    assert_eq!(names(&queue.take(10, at(0))?), ["a1", "a2"]);
    Ok(())
}

#[test]
fn a_second_open_of_a_database_in_use_is_refused() -> Result<()> {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("q.db");
    let queue = SqliteQueue::open(&path, QueueOptions::default())?;
    queue.enqueue(entry("a", "a1", at(0)))?;
    let second = SqliteQueue::open(&path, QueueOptions::default());
    assert!(matches!(second, Err(Error::Io { .. })), "{second:?}");
    drop(queue);
    let reopened = SqliteQueue::open(&path, QueueOptions::default())?;
    assert_eq!(reopened.stats().pending, 1);
    Ok(())
}
