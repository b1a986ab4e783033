//! The SQLite backend (cargo feature `sqlite`): the seed's `delivery_queue` table,
//! so a device's existing queue database is drained by edgepipe, and a database
//! edgepipe wrote is still drained by the seed's `PersistentDeliveryQueue`.
//!
//! ## Table
//!
//! The seed's columns, unchanged, and four nullable columns edgepipe adds with
//! `ALTER TABLE ... ADD COLUMN` (the seed's `INSERT` names its columns and its
//! `SELECT *` readers use keys, so they keep working):
//!
//! | column | seed meaning | edgepipe writes |
//! | --- | --- | --- |
//! | `batch_id` (primary key) | the batch id | [`Entry::batch_id`] |
//! | `device_id` | the producing device | [`Entry::source_id`] |
//! | `batch_data` | the compressed payload `decompress_batch` reads | the batch's payload, without the envelope |
//! | `compression` | `gzip`, `lz4` or `none` | the envelope's compression name |
//! | `checksum` | sha256 hex of `batch_data` | the envelope's checksum |
//! | `status` | `pending`, `sending`, `delivered`, `failed` | `pending`, `failed`, `dead` |
//! | `attempts` | sends started | failed attempts |
//! | `created_at` | `datetime.utcnow().isoformat()` | the same form, to the microsecond |
//! | `last_attempt`, `delivered_at` | times of the seed's updates | left alone |
//! | `edgepipe_id` | — | the [`EntryId`]: the order entries are handed out in |
//! | `edgepipe_envelope` | — | the [`Batch::to_bytes`] bytes before the payload; empty for a payload that is not a batch |
//! | `edgepipe_created_ns` | — | [`Entry::created_at`] in Unix nanoseconds |
//! | `edgepipe_retry_at_ns` | — | when a nacked entry may be handed out again |
//!
//! A small table `edgepipe_queue_meta` keeps the next id, so an id is never
//! reused, even after every entry was acked and the queue reopened.
//!
//! ## Status mapping
//!
//! - `pending` is ready.
//! - `failed` waits for its retry time (a seed row has none: ready at once) with
//!   `attempts` failed attempts.
//! - `sending` is what the seed leaves behind when it stops mid-send. On open it
//!   becomes `failed`: the interrupted send is counted as a failed attempt, as
//!   the seed already counted it when it started. edgepipe itself never writes
//!   `sending`: an in-flight entry is ready again after a reopen anyway, so
//!   persisting it would cost a sync per `take` and guarantee nothing.
//! - `delivered` rows are the seed's history. They are never loaded, handed out
//!   or counted, and are left for the seed's `cleanup_delivered`. An edgepipe
//!   [`ack`](Queue::ack) deletes its row instead (the contract's "removed for good").
//! - `dead` is edgepipe's dead-letter status: the seed's `WHERE status IN
//!   ('pending', 'failed') AND attempts < 10` never selects it. A `pending` or
//!   `failed` row with `attempts` at or over [`QueueOptions::max_attempts`] is
//!   marked `dead` on open, which is what the seed's own query does with it.
//! - Any other status is left alone.
//!
//! ## Rows the seed wrote
//!
//! A row without `edgepipe_id` (the seed inserted it) is adopted on open, oldest
//! `created_at` first, after every entry edgepipe already holds: its `batch_data`
//! is checked against `checksum`, decompressed and decoded as the seed's JSON
//! within [`DecodeLimits::default`], and an envelope is built from its columns
//! (codec json, its compression, checksum, record count, batch id and device id),
//! so it comes out of [`take`](Queue::take) as a valid [`Batch::to_bytes`]. A row
//! that cannot be read so is dead-lettered with its raw `batch_data` as the payload.
//!
//! ## Durability
//!
//! WAL journal with `synchronous = FULL`: every commit fsyncs the WAL before it
//! returns, so an acknowledged enqueue survives SIGKILL and power loss
//! ([`Durability::Synced`]). (`NORMAL`, WAL's usual setting, syncs only at
//! checkpoints and may lose the last commits on power loss.) One enqueue is one
//! transaction; [`enqueue_all`](Queue::enqueue_all) is one transaction for all.
//! The connection holds the database in exclusive locking mode, so a second
//! queue, or the seed's code, cannot drain it at the same time; the seed's code
//! can open it once edgepipe has closed it.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, ErrorCode, OptionalExtension, Transaction, params};

use super::index::{EntryMeta, Handed, QueueIndex, Removal};
use super::{Durability, Entry, EntryId, NackOutcome, Pending, Queue, QueueOptions, QueueStats};
use crate::batch::{Batch, Codec, Compression, DecodeLimits, Envelope, compression, sha256_hex};
use crate::error::{Error, Result};
use crate::record::Timestamp;

/// The seed's table, exactly as its `PersistentDeliveryQueue._init_db` creates it.
const SEED_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS delivery_queue (
        batch_id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL,
        batch_data BLOB NOT NULL,
        compression TEXT,
        checksum TEXT,
        status TEXT DEFAULT 'pending',
        attempts INTEGER DEFAULT 0,
        created_at TEXT,
        last_attempt TEXT,
        delivered_at TEXT
    )";

/// The columns edgepipe adds to the seed's table; all nullable, so the seed's
/// inserts (which do not name them) still work.
const EDGEPIPE_COLUMNS: [(&str, &str); 4] = [
    ("edgepipe_id", "INTEGER"),
    ("edgepipe_envelope", "BLOB"),
    ("edgepipe_created_ns", "INTEGER"),
    ("edgepipe_retry_at_ns", "INTEGER"),
];

const META_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS edgepipe_queue_meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    )";

/// The dead-letter status; see the [module docs](self).
const DEAD_STATUS: &str = "dead";

/// A [`Queue`] in a SQLite database in the seed's `delivery_queue` layout: the
/// table as the seed creates it, its `status` column mapped onto the queue's
/// states, and every enqueue synced (WAL, `synchronous=FULL`) before it returns.
///
/// ```
/// use edgepipe_core::queue::{Entry, Queue, QueueOptions, SqliteQueue};
/// use edgepipe_core::Timestamp;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("delivery_queue.db");
/// let now = Timestamp::from_unix_seconds(1_700_000_000).unwrap();
/// let queue = SqliteQueue::open(&path, QueueOptions::default())?;
/// queue.enqueue(Entry {
///     source_id: "gateway-7".into(),
///     batch_id: "b1".into(),
///     created_at: now,
///     payload: b"...".to_vec(),
/// })?;
/// drop(queue);
///
/// // After a restart the entry is still there.
/// let queue = SqliteQueue::open(&path, QueueOptions::default())?;
/// let taken = queue.take(10, now)?;
/// assert_eq!(taken[0].entry.batch_id, "b1");
/// queue.ack(taken[0].id)?;
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Debug)]
pub struct SqliteQueue {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    connection: Connection,
    /// Handles are unused: the `batch_id` in each entry's meta is the row's key.
    index: QueueIndex<()>,
}

/// An entry's payload split the way the table stores it.
struct StoredPayload<'a> {
    /// The envelope bytes before the payload (empty when the payload is not a batch).
    envelope: &'a [u8],
    /// What goes to `batch_data`: the compressed records, or the whole payload.
    data: &'a [u8],
    compression: Option<&'static str>,
    checksum: String,
}

impl<'a> StoredPayload<'a> {
    fn split(payload: &'a [u8]) -> Self {
        // Only the envelope's sizes are read here, and the payload is already in
        // memory, so no bound is needed beyond what `from_bytes` checks for shape.
        let header_only = DecodeLimits {
            max_compressed_bytes: usize::MAX,
            max_decompressed_bytes: usize::MAX,
            max_records: usize::MAX,
            ..DecodeLimits::default()
        };
        match Batch::from_bytes(payload, &header_only) {
            Ok(batch) => {
                let (envelope, data) = payload.split_at(payload.len() - batch.payload.len());
                StoredPayload {
                    envelope,
                    data,
                    compression: Some(batch.envelope.compression.name()),
                    checksum: batch.envelope.checksum,
                }
            }
            Err(_) => StoredPayload {
                envelope: &[],
                data: payload,
                compression: None,
                checksum: sha256_hex(payload),
            },
        }
    }
}

impl SqliteQueue {
    /// Opens (or creates) the queue database at `path`: adds edgepipe's columns to
    /// a seed database, adopts the rows the seed wrote, and loads every entry held.
    pub fn open(path: impl AsRef<Path>, options: QueueOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let context = |what: &str| format!("{what} {}", path.display());
        let mut connection =
            Connection::open(&path).map_err(sql_error(&context("opening queue database")))?;
        configure(&connection).map_err(sql_error(&context("configuring queue database")))?;
        // SQLite keeps the old journal mode when it cannot switch (e.g. on a
        // file system without the locking WAL needs); the durability stated here
        // assumes WAL, so refuse to run without it.
        let mode: String = connection
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .map_err(sql_error(&context("configuring queue database")))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::io(
                context("configuring queue database"),
                io::Error::other(format!("journal_mode=WAL refused, the mode is {mode}")),
            ));
        }
        let mut index = QueueIndex::new(options);
        migrate_and_load(&mut connection, &mut index)
            .map_err(sql_error(&context("loading queue database")))?;
        // The database and its WAL may have just been created: make their
        // directory entries durable too, or a power cut could lose the files.
        let directory = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(directory)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| Error::io(context("syncing the directory of"), source))?;
        Ok(SqliteQueue {
            path,
            state: Mutex::new(State { connection, index }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change is committed to the database before the index applies it,
        // and the index's own mutations complete before they can panic, so a
        // poisoned lock still guards a consistent state.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn full_error(&self, index: &QueueIndex<()>) -> Error {
        Error::QueueFull {
            limit_bytes: index.options().max_bytes,
            reason: format!("the disk under {} is full", self.path.display()),
        }
    }

    /// Maps a SQLite failure to the crate's error: a full disk is a full queue.
    fn error(&self, index: &QueueIndex<()>, what: &str, error: rusqlite::Error) -> Error {
        if error.sqlite_error_code() == Some(ErrorCode::DiskFull) {
            self.full_error(index)
        } else {
            sql_error(&format!("{what} in {}", self.path.display()))(error)
        }
    }
}

fn sql_error(context: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |error| Error::io(context, io::Error::other(error))
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    // Exclusive before WAL: the WAL index then lives in process memory (no -shm
    // file), and no other connection can change the table behind the index.
    connection.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.execute_batch(SEED_SCHEMA)?;
    connection.execute_batch(META_SCHEMA)?;
    let existing: Vec<String> = connection
        .prepare("SELECT name FROM pragma_table_info('delivery_queue')")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, kind) in EDGEPIPE_COLUMNS {
        if !existing.iter().any(|column| column == name) {
            connection.execute_batch(&format!(
                "ALTER TABLE delivery_queue ADD COLUMN {name} {kind}"
            ))?;
        }
    }
    Ok(())
}

/// Python's `datetime.isoformat()` of a naive UTC time, as the seed writes
/// `created_at`: `YYYY-MM-DDTHH:MM:SS[.ffffff]`. The same form keeps the seed's
/// `ORDER BY created_at` (a text sort) right across rows from both writers.
fn seed_isoformat(at: Timestamp) -> String {
    let micros = at.unix_nanos() - at.unix_nanos().rem_euclid(1_000);
    let text = Timestamp::from_unix_nanos(micros).to_iso8601();
    let text = text.trim_end_matches('Z');
    match text.split_once('.') {
        Some((seconds, fraction)) => format!("{seconds}.{fraction:0<6}"),
        None => text.to_owned(),
    }
}

/// Builds the envelope of a row the seed wrote; fails when it cannot be read.
fn adopt_seed_row(row: &SeedRow) -> Result<(Vec<u8>, Timestamp)> {
    let limits = DecodeLimits::default();
    let created_at = Timestamp::parse(row.created_at.as_deref().unwrap_or_default())?;
    let compression = Compression::from_name(row.compression.as_deref().unwrap_or("none"))?;
    let checksum = sha256_hex(&row.batch_data);
    if let Some(expected) = &row.checksum
        && !expected.eq_ignore_ascii_case(&checksum)
    {
        return Err(Error::ChecksumMismatch {
            expected: expected.clone(),
            actual: checksum,
        });
    }
    if row.batch_data.len() > limits.max_compressed_bytes {
        return Err(Error::CompressedTooLarge {
            size: row.batch_data.len(),
            limit: limits.max_compressed_bytes,
        });
    }
    let decompressed;
    let encoded = if compression == Compression::None {
        &row.batch_data[..]
    } else {
        decompressed =
            compression::decompress(&row.batch_data, compression, limits.max_decompressed_bytes)?;
        &decompressed[..]
    };
    let record_count = Codec::Json.decode(encoded, &limits)?.len() as u64;
    let batch = Batch {
        envelope: Envelope {
            batch_id: row.batch_id.clone(),
            source_id: row.device_id.clone(),
            created_at,
            record_count,
            // The seed's record ids are random UUIDs, never sequence ids.
            sequence: None,
            codec: Codec::Json,
            compression,
            checksum,
            compressed_size: row.batch_data.len() as u64,
            original_size: encoded.len() as u64,
            oversize: false,
        },
        payload: row.batch_data.clone(),
    };
    let mut envelope = batch.to_bytes();
    envelope.truncate(envelope.len() - row.batch_data.len());
    Ok((envelope, created_at))
}

struct SeedRow {
    rowid: i64,
    batch_id: String,
    device_id: String,
    batch_data: Vec<u8>,
    compression: Option<String>,
    checksum: Option<String>,
    created_at: Option<String>,
}

/// Adopts the seed's rows and loads every held entry into `index`, in one transaction.
fn migrate_and_load(
    connection: &mut Connection,
    index: &mut QueueIndex<()>,
) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    let max_attempts = i64::from(index.options().max_attempts);
    // A send the seed started and never finished counts as a failed attempt.
    transaction.execute(
        "UPDATE delivery_queue
         SET status = CASE WHEN attempts > 0 THEN 'failed' ELSE 'pending' END
         WHERE status = 'sending'",
        [],
    )?;
    transaction.execute(
        "UPDATE delivery_queue SET status = ?1
         WHERE status IN ('pending', 'failed') AND attempts >= ?2",
        params![DEAD_STATUS, max_attempts],
    )?;

    let stored_next: Option<i64> = transaction
        .query_row(
            "SELECT value FROM edgepipe_queue_meta WHERE key = 'next_id'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    let max_id: Option<i64> =
        transaction.query_row("SELECT MAX(edgepipe_id) FROM delivery_queue", [], |row| {
            row.get(0)
        })?;
    let mut next_id = stored_next
        .unwrap_or(1)
        .max(max_id.map_or(1, |id| id + 1))
        .max(1);

    let seed_rows: Vec<SeedRow> = transaction
        .prepare(
            "SELECT rowid, batch_id, device_id, batch_data, compression, checksum, created_at
             FROM delivery_queue
             WHERE edgepipe_id IS NULL AND batch_id IS NOT NULL
               AND status IN ('pending', 'failed', 'dead')
             ORDER BY created_at, rowid",
        )?
        .query_map([], |row| {
            Ok(SeedRow {
                rowid: row.get(0)?,
                batch_id: row.get(1)?,
                device_id: row.get(2)?,
                batch_data: row.get(3)?,
                compression: row.get(4)?,
                checksum: row.get(5)?,
                created_at: row.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    for row in &seed_rows {
        let (envelope, created_ns, dead) = match adopt_seed_row(row) {
            Ok((envelope, created_at)) => (envelope, created_at.unix_nanos(), false),
            // Kept for inspection with its raw bytes; the created time only orders dead letters.
            Err(_) => (Vec::new(), 0, true),
        };
        transaction.execute(
            "UPDATE delivery_queue
             SET edgepipe_id = ?1, edgepipe_envelope = ?2, edgepipe_created_ns = ?3,
                 status = CASE WHEN ?4 THEN ?5 ELSE status END
             WHERE rowid = ?6",
            params![next_id, envelope, created_ns, dead, DEAD_STATUS, row.rowid],
        )?;
        next_id += 1;
    }
    // Written on every open: it also creates the WAL now, so `open` can make its
    // directory entry durable.
    transaction.execute(
        "INSERT OR REPLACE INTO edgepipe_queue_meta (key, value) VALUES ('next_id', ?1)",
        [next_id],
    )?;

    let mut statement = transaction.prepare(
        "SELECT edgepipe_id, batch_id, device_id, edgepipe_created_ns,
                length(edgepipe_envelope) + length(batch_data),
                status, attempts, edgepipe_retry_at_ns
         FROM delivery_queue
         WHERE edgepipe_id IS NOT NULL AND status IN ('pending', 'failed', 'dead')
         ORDER BY edgepipe_id",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let batch_id: String = row.get(1)?;
        let source_id: String = row.get(2)?;
        let created_ns: Option<i64> = row.get(3)?;
        let payload_len: Option<i64> = row.get(4)?;
        let status: String = row.get(5)?;
        let attempts: Option<i64> = row.get(6)?;
        let retry_at_ns: Option<i64> = row.get(7)?;
        let id = id as EntryId;
        let size = payload_len.unwrap_or(0) as u64 + (source_id.len() + batch_id.len()) as u64;
        index.insert(
            id,
            EntryMeta {
                source_id: Arc::from(source_id),
                batch_id,
                created_at: Timestamp::from_unix_nanos(created_ns.unwrap_or(0)),
                size,
            },
            (),
        );
        let attempts = u32::try_from(attempts.unwrap_or(0).max(0)).unwrap_or(u32::MAX);
        let dead = status == DEAD_STATUS;
        if dead || status == "failed" || attempts > 0 {
            // A seed row has no retry time: it is due at once.
            let retry_at = Timestamp::from_unix_nanos(retry_at_ns.unwrap_or(i64::MIN));
            index.restore_attempts(id, attempts, retry_at, dead);
        }
    }
    index.advance_next_id((next_id - 1) as EntryId);
    drop(rows);
    drop(statement);
    transaction.commit()
}

fn delete_rows<'a>(
    transaction: &Transaction<'_>,
    batch_ids: impl IntoIterator<Item = &'a str>,
) -> rusqlite::Result<()> {
    let mut delete =
        transaction.prepare_cached("DELETE FROM delivery_queue WHERE batch_id = ?1")?;
    for batch_id in batch_ids {
        delete.execute([batch_id])?;
    }
    Ok(())
}

fn batch_ids_of<'a>(index: &'a QueueIndex<()>, ids: &[EntryId]) -> Vec<&'a str> {
    ids.iter()
        .filter_map(|&id| index.meta(id))
        .map(|meta| meta.batch_id.as_str())
        .collect()
}

/// Reads the payloads of handed-out entries back from the table.
fn read_pending(connection: &Connection, handed: &[Handed<()>]) -> rusqlite::Result<Vec<Pending>> {
    let mut select = connection.prepare_cached(
        "SELECT edgepipe_envelope, batch_data FROM delivery_queue WHERE batch_id = ?1",
    )?;
    handed
        .iter()
        .map(|item| {
            let (envelope, data): (Option<Vec<u8>>, Vec<u8>) =
                select.query_row([&item.meta.batch_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            let mut payload = envelope.unwrap_or_default();
            payload.extend_from_slice(&data);
            Ok(Pending {
                id: item.id,
                attempts: item.attempts,
                entry: Entry {
                    source_id: item.meta.source_id.to_string(),
                    batch_id: item.meta.batch_id.clone(),
                    created_at: item.meta.created_at,
                    payload,
                },
            })
        })
        .collect()
}

impl SqliteQueue {
    /// [`Queue::take`], or [`Queue::take_heads`] when `one_per_source`.
    fn take_with(&self, max: usize, now: Timestamp, one_per_source: bool) -> Result<Vec<Pending>> {
        let mut guard = self.state();
        let State { connection, index } = &mut *guard;
        let (handed, expired) = index.take(max, now, one_per_source);
        let result = (|| -> rusqlite::Result<Vec<Pending>> {
            if !expired.is_empty() {
                let transaction = connection.transaction()?;
                delete_rows(&transaction, batch_ids_of(index, &expired))?;
                transaction.commit()?;
            }
            read_pending(connection, &handed)
        })();
        match result {
            Ok(pending) => {
                for id in expired {
                    index.remove(id, Removal::Expired);
                }
                Ok(pending)
            }
            Err(error) => {
                // Nothing was handed out: put the entries back, their attempts unchanged.
                for item in &handed {
                    index.release(item.id);
                }
                Err(self.error(index, "taking entries", error))
            }
        }
    }
}

impl Queue for SqliteQueue {
    fn durability(&self) -> Durability {
        Durability::Synced
    }

    fn enqueue(&self, entry: Entry) -> Result<EntryId> {
        let ids = self.enqueue_all(vec![entry])?;
        Ok(ids[0])
    }

    /// One transaction for all the entries. The table's primary key is
    /// `batch_id`: an entry whose batch id the queue already holds is not stored
    /// again, and its id is the held entry's (batch ids are deterministic, so it is
    /// the same batch, enqueued again after a restart for instance). Under
    /// [`FullPolicy::DropOldest`](super::FullPolicy::DropOldest) room is made for
    /// all the entries at once, from entries held before the call.
    fn enqueue_all(&self, entries: Vec<Entry>) -> Result<Vec<EntryId>> {
        let mut guard = self.state();
        let State { connection, index } = &mut *guard;
        let mut ids = Vec::with_capacity(entries.len());
        // Ids of entries this call stores, by batch id, and the index of each in `entries`.
        let mut new_ids: HashMap<&str, EntryId> = HashMap::new();
        let mut new_entries = Vec::new();
        let mut next_id = index.next_id();
        let mut new_bytes = 0;
        {
            let mut held = connection
                .prepare_cached("SELECT edgepipe_id FROM delivery_queue WHERE batch_id = ?1")
                .map_err(|error| self.error(index, "looking up a batch id", error))?;
            for entry in &entries {
                if let Some(&id) = new_ids.get(entry.batch_id.as_str()) {
                    ids.push(id);
                    continue;
                }
                let existing: Option<Option<i64>> = held
                    .query_row([&entry.batch_id], |row| row.get(0))
                    .optional()
                    .map_err(|error| self.error(index, "looking up a batch id", error))?;
                if let Some(Some(id)) = existing
                    && index.contains(id as EntryId)
                {
                    ids.push(id as EntryId);
                    continue;
                }
                new_ids.insert(&entry.batch_id, next_id);
                ids.push(next_id);
                new_entries.push((next_id, entry));
                new_bytes += entry.size();
                next_id += 1;
            }
        }
        if new_entries.is_empty() {
            return Ok(ids);
        }
        let victims = index.make_room(0, new_bytes)?;
        let mut commit = || -> rusqlite::Result<()> {
            let transaction = connection.transaction()?;
            delete_rows(&transaction, batch_ids_of(index, &victims))?;
            {
                // INSERT OR REPLACE: a row with this batch id that the queue does not
                // hold (the seed's delivered history) gives way, as in the seed.
                let mut insert = transaction.prepare_cached(
                    "INSERT OR REPLACE INTO delivery_queue
                     (batch_id, device_id, batch_data, compression, checksum, status, attempts,
                      created_at, edgepipe_id, edgepipe_envelope, edgepipe_created_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?7, ?8, ?9)",
                )?;
                for &(id, entry) in &new_entries {
                    let stored = StoredPayload::split(&entry.payload);
                    insert.execute(params![
                        entry.batch_id,
                        entry.source_id,
                        stored.data,
                        stored.compression,
                        stored.checksum,
                        seed_isoformat(entry.created_at),
                        id as i64,
                        stored.envelope,
                        entry.created_at.unix_nanos(),
                    ])?;
                }
            }
            transaction.execute(
                "INSERT OR REPLACE INTO edgepipe_queue_meta (key, value) VALUES ('next_id', ?1)",
                [next_id as i64],
            )?;
            transaction.commit()
        };
        commit().map_err(|error| self.error(index, "enqueueing", error))?;
        for victim in victims {
            index.remove(victim, Removal::Dropped);
        }
        for (id, entry) in new_entries {
            index.insert(
                id,
                EntryMeta {
                    source_id: Arc::from(entry.source_id.as_str()),
                    batch_id: entry.batch_id.clone(),
                    created_at: entry.created_at,
                    size: entry.size(),
                },
                (),
            );
            index.count_enqueued();
        }
        Ok(ids)
    }

    fn take(&self, max: usize, now: Timestamp) -> Result<Vec<Pending>> {
        self.take_with(max, now, false)
    }

    fn take_heads(&self, max: usize, now: Timestamp) -> Result<Vec<Pending>> {
        self.take_with(max, now, true)
    }

    fn ack(&self, id: EntryId) -> Result<()> {
        let mut guard = self.state();
        let State { connection, index } = &mut *guard;
        index.check_live(id)?;
        let batch_id = batch_ids_of(index, &[id]);
        connection
            .prepare_cached("DELETE FROM delivery_queue WHERE batch_id = ?1")
            .and_then(|mut delete| delete.execute([batch_id[0]]))
            .map_err(|error| self.error(index, "acking an entry", error))?;
        index.remove(id, Removal::Acked);
        Ok(())
    }

    fn nack(&self, id: EntryId, retry_at: Timestamp) -> Result<NackOutcome> {
        self.record_nack(id, |index| index.nack_outcome(id, retry_at))
    }

    fn release(&self, id: EntryId) -> Result<()> {
        // A row in flight is still 'pending' or 'failed' in the table (in flight is
        // not persisted), so handing it back writes nothing.
        let mut guard = self.state();
        guard.index.check_live(id)?;
        guard.index.release(id);
        Ok(())
    }

    fn dead_letter(&self, id: EntryId) -> Result<u32> {
        self.record_nack(id, |index| index.dead_letter_outcome(id))
            .map(NackOutcome::attempts)
    }

    fn expire(&self, now: Timestamp) -> Result<u64> {
        let mut guard = self.state();
        let State { connection, index } = &mut *guard;
        let expired = index.expired_ids(now);
        if expired.is_empty() {
            return Ok(0);
        }
        (|| {
            let transaction = connection.transaction()?;
            delete_rows(&transaction, batch_ids_of(index, &expired))?;
            transaction.commit()
        })()
        .map_err(|error| self.error(index, "expiring entries", error))?;
        for &id in &expired {
            index.remove(id, Removal::Expired);
        }
        Ok(expired.len() as u64)
    }

    fn dead_letters(&self, max: usize) -> Result<Vec<Pending>> {
        let guard = self.state();
        let dead = guard.index.dead(max);
        read_pending(&guard.connection, &dead)
            .map_err(|error| self.error(&guard.index, "reading dead letters", error))
    }

    fn purge_dead_letters(&self) -> Result<u64> {
        let mut guard = self.state();
        let State { connection, index } = &mut *guard;
        let dead = index.dead_ids();
        connection
            .execute(
                "DELETE FROM delivery_queue WHERE status = ?1",
                [DEAD_STATUS],
            )
            .map_err(|error| self.error(index, "purging dead letters", error))?;
        for &id in &dead {
            index.remove(id, Removal::Purged);
        }
        Ok(dead.len() as u64)
    }

    fn stats(&self) -> QueueStats {
        self.state().index.stats()
    }
}

impl SqliteQueue {
    /// Decides a nack's outcome, writes it to the row, then applies it to the
    /// index, all under one lock so a concurrent ack cannot slip in between.
    fn record_nack(
        &self,
        id: EntryId,
        outcome_of: impl FnOnce(&QueueIndex<()>) -> Result<NackOutcome>,
    ) -> Result<NackOutcome> {
        let mut guard = self.state();
        let State { connection, index } = &mut *guard;
        let outcome = outcome_of(index)?;
        let (status, attempts, retry_at_ns) = match outcome {
            NackOutcome::Retry { attempts, retry_at } => {
                ("failed", attempts, Some(retry_at.unix_nanos()))
            }
            NackOutcome::DeadLettered { attempts } => (DEAD_STATUS, attempts, None),
        };
        let batch_id = batch_ids_of(index, &[id]);
        connection
            .prepare_cached(
                "UPDATE delivery_queue
                 SET status = ?1, attempts = ?2, edgepipe_retry_at_ns = ?3
                 WHERE batch_id = ?4",
            )
            .and_then(|mut update| {
                update.execute(params![status, attempts, retry_at_ns, batch_id[0]])
            })
            .map_err(|error| self.error(index, "nacking an entry", error))?;
        index.apply_nack(id, outcome);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_at_is_written_as_python_isoformat_of_naive_utc() {
        let at = |nanos| seed_isoformat(Timestamp::from_unix_nanos(nanos));
        assert_eq!(at(1_700_000_000_000_000_000), "2023-11-14T22:13:20");
        assert_eq!(at(1_700_000_000_500_000_000), "2023-11-14T22:13:20.500000");
        assert_eq!(at(1_700_000_000_000_123_999), "2023-11-14T22:13:20.000123");
    }
}
