//! Where accepted and quarantined records go.
//!
//! Every write is keyed by the batch's *store key* (a path-safe form of its batch
//! id, see [`store_key`]) and is idempotent per key: writing the same key again
//! replaces the same files. The [`Receiver`](super::Receiver)'s crash argument
//! rests on that, and on [`Store::recover`] finding what an interrupted write of a
//! key left behind.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::batch::sha256_hex;
use crate::error::{Error, Result};
use crate::record::DataRecord;

/// A record refused by validation, kept with why and with its JSON as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantinedRecord {
    /// Why it was refused (the record parser's message).
    pub reason: String,
    /// The record's JSON exactly as it arrived.
    pub raw: String,
}

/// Durable home of accepted records.
pub trait Store: Send + std::fmt::Debug {
    /// Writes `records` under `key`, durably, before returning. Writing a key again
    /// replaces what that key wrote before (same files), so a retry is idempotent.
    fn put(&mut self, key: &str, records: &[DataRecord]) -> Result<()>;

    /// The records a possibly interrupted [`put`](Store::put) of `key` left stored
    /// (and removes its unfinished temporary files). Used when the server reopens
    /// after a crash between storing a batch and journalling it.
    fn recover(&mut self, key: &str) -> Result<Vec<DataRecord>>;
}

/// Durable home of quarantined records; as [`Store`], idempotent per key.
pub trait QuarantineStore: Send + std::fmt::Debug {
    /// Writes the refused records of one batch under `key`.
    fn put(&mut self, key: &str, batch_id: &str, records: &[QuarantinedRecord]) -> Result<()>;
}

/// A batch id as a file-name component: the id itself when it is 1–128 characters of
/// `[A-Za-z0-9_-]` (every edgepipe id and the seed's UUIDs), else `h` and the first
/// 32 hex digits of its sha256, so no id can name a path outside the store.
pub fn store_key(batch_id: &str) -> String {
    let safe = !batch_id.is_empty()
        && batch_id.len() <= 128
        && batch_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if safe {
        batch_id.to_owned()
    } else {
        format!("h{}", &sha256_hex(batch_id.as_bytes())[..32])
    }
}

/// A partition value made safe for a directory name: bytes outside
/// `[A-Za-z0-9._-]` (and a leading `.`) are written as `%XX`, as Hive does.
pub fn partition_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (index, byte) in value.bytes().enumerate() {
        let keep = byte.is_ascii_alphanumeric()
            || byte == b'-'
            || byte == b'_'
            || (byte == b'.' && index > 0);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

/// Writes `bytes` to `path` atomically: a temporary name in the same directory,
/// fsync, rename, then fsync of the directory so the rename itself survives a power cut.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_all_atomic(&[(path.to_owned(), bytes)])
}

/// Creates `dir` and any missing ancestors; returns the parents whose entries
/// changed (each new directory's parent), which must be synced for the new
/// directories to survive a power cut.
fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut current = Some(dir);
    while let Some(path) = current {
        if path.as_os_str().is_empty() || path.is_dir() {
            break;
        }
        missing.push(path.to_owned());
        current = path.parent();
    }
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    Ok(missing
        .iter()
        .filter_map(|path| path.parent().map(Path::to_owned))
        .filter(|parent| !parent.as_os_str().is_empty())
        .collect())
}

/// Writes `bytes` to `path`'s temporary name, syncs it and renames it into
/// place. The directory is not synced: the caller does that, once per directory.
fn write_synced_and_rename(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let mut file =
        File::create(&temp).map_err(|e| Error::io(format!("creating {}", temp.display()), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("writing {}", temp.display()), e))?;
    drop(file);
    fs::rename(&temp, path).map_err(|e| Error::io(format!("renaming {}", temp.display()), e))
}

/// Most files a batch's write syncs at once.
const PARALLEL_SYNCS: usize = 16;

/// [`write_atomic`] for many files at once. A batch spreads over one partition
/// file per device; syncing them one after another costs a disk flush each
/// (100 devices: ~100 flushes per batch), while syncs issued together share the
/// filesystem's journal commits. Every file is synced and renamed, then every
/// directory touched (and the parent of every directory created) is synced,
/// before this returns.
pub(crate) fn write_all_atomic<B: AsRef<[u8]> + Sync>(files: &[(PathBuf, B)]) -> Result<()> {
    let mut dirs = std::collections::BTreeSet::new();
    for (path, _) in files {
        let dir = path.parent().unwrap_or_else(|| Path::new(".")).to_owned();
        if !dirs.contains(&dir) {
            for parent in create_dirs(&dir)? {
                dirs.insert(parent);
            }
            dirs.insert(dir);
        }
    }
    parallel(files, |(path, bytes)| {
        write_synced_and_rename(path, bytes.as_ref())
    })?;
    let dirs: Vec<PathBuf> = dirs.into_iter().collect();
    parallel(&dirs, |dir| sync_dir(dir))
}

/// Runs `work` on every item from up to [`PARALLEL_SYNCS`] threads; the first error wins.
fn parallel<T: Sync>(items: &[T], work: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    if items.len() <= 1 {
        return items.iter().try_for_each(&work);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = items.len().min(PARALLEL_SYNCS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(index) else {
                            return Ok(());
                        };
                        work(item)?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Result<Vec<()>>>()
            .map(drop)
    })
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

/// The data lake: `date=YYYY-MM-DD/device=<id>/part-<key>.jsonl` under a root
/// directory, one file per batch and partition, each line a record's `to_dict()`
/// JSON. The date is the record's timestamp in UTC. Files appear whole (written
/// under a temporary name, fsync'ed, renamed), so `cat`, `jq`, pandas or DuckDB can
/// read the tree while the server writes it.
#[derive(Debug)]
pub struct DataLakeStore {
    root: PathBuf,
}

impl DataLakeStore {
    /// A store rooted at `root` (created when missing).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
        Ok(DataLakeStore { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The relative path of the partition file a record goes to in batch `key`.
    pub fn partition_path(record: &DataRecord, key: &str) -> PathBuf {
        let date = &record.timestamp.to_iso8601()[..10];
        PathBuf::from(format!("date={date}"))
            .join(format!("device={}", partition_value(&record.device_id)))
            .join(format!("part-{key}.jsonl"))
    }

    /// Every record in the lake under `root`, read back from its partition files
    /// (files still being written are not read); empty when `root` does not exist.
    /// For checks and small lakes: it holds all of them in memory.
    pub fn read_all(root: &Path) -> Result<Vec<DataRecord>> {
        let mut records = Vec::new();
        let mut dirs = vec![root.to_owned()];
        while let Some(dir) = dirs.pop() {
            for path in read_dir(&dir)? {
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|ext| ext == "jsonl") {
                    read_part(&path, &mut records)?;
                }
            }
        }
        Ok(records)
    }

    fn files_of(&self, key: &str) -> Result<Vec<PathBuf>> {
        let name = format!("part-{key}.jsonl");
        let temp = format!("{name}.tmp");
        let mut found = Vec::new();
        for date in read_dir(&self.root)? {
            for device in read_dir(&date)? {
                for file in read_dir(&device)? {
                    match file.file_name().and_then(|n| n.to_str()) {
                        Some(n) if n == name => found.push(file),
                        Some(n) if n == temp => {
                            // An interrupted write: it never became visible.
                            fs::remove_file(&file).map_err(|e| {
                                Error::io(format!("removing {}", file.display()), e)
                            })?;
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(found)
    }
}

/// Appends the records of one partition file (JSON Lines) to `records`.
fn read_part(path: &Path, records: &mut Vec<DataRecord>) -> Result<()> {
    let bytes = fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        records.push(DataRecord::from_json_slice(line)?);
    }
    Ok(())
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in
        fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
    {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        out.push(entry.path());
    }
    Ok(out)
}

impl Store for DataLakeStore {
    fn put(&mut self, key: &str, records: &[DataRecord]) -> Result<()> {
        let mut files: BTreeMap<PathBuf, Vec<u8>> = BTreeMap::new();
        for record in records {
            let out = files.entry(Self::partition_path(record, key)).or_default();
            record.write_json(out, &Default::default())?;
            out.push(b'\n');
        }
        let mut writes = Vec::with_capacity(files.len());
        for (relative, mut bytes) in files {
            let path = self.root.join(relative);
            // A file this key wrote before is kept whole: its records that this write
            // does not carry (a retry whose records were partly stored) stay in it.
            if path.exists() {
                let old = fs::read(&path)
                    .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
                let new_ids: std::collections::HashSet<_> =
                    records.iter().map(|r| r.record_id.as_str()).collect();
                for line in old.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    let record = DataRecord::from_json_slice(line)?;
                    if !new_ids.contains(record.record_id.as_str()) {
                        bytes.extend_from_slice(line);
                        bytes.push(b'\n');
                    }
                }
            }
            writes.push((path, bytes));
        }
        write_all_atomic(&writes)
    }

    fn recover(&mut self, key: &str) -> Result<Vec<DataRecord>> {
        let mut records = Vec::new();
        for file in self.files_of(key)? {
            read_part(&file, &mut records)?;
        }
        Ok(records)
    }
}

/// Quarantined records as JSON Lines, `<root>/part-<key>.jsonl`, one
/// `{"batch_id":…,"reason":…,"record":<the JSON as sent>}` per line (the raw
/// record is embedded as it came when it is valid JSON, else as a string).
#[derive(Debug)]
pub struct JsonlQuarantine {
    root: PathBuf,
}

impl JsonlQuarantine {
    /// A quarantine directory at `root` (created when missing).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
        Ok(JsonlQuarantine { root })
    }
}

impl QuarantineStore for JsonlQuarantine {
    fn put(&mut self, key: &str, batch_id: &str, records: &[QuarantinedRecord]) -> Result<()> {
        let mut out = Vec::new();
        for record in records {
            let raw: serde_json::Value = serde_json::from_str(&record.raw)
                .unwrap_or_else(|_| serde_json::Value::String(record.raw.clone()));
            let line = serde_json::json!({
                "batch_id": batch_id,
                "reason": record.reason,
                "record": raw,
            });
            // Serialising a `Value` to a Vec cannot fail.
            serde_json::to_writer(&mut out, &line).unwrap_or_default();
            out.push(b'\n');
        }
        write_atomic(&self.root.join(format!("part-{key}.jsonl")), &out)
    }
}

/// What a [`MemoryStore`] holds, shared with whoever made it.
#[derive(Debug, Default)]
pub struct MemoryContents {
    /// Accepted records by store key.
    pub records: BTreeMap<String, Vec<DataRecord>>,
    /// Quarantined records by store key.
    pub quarantined: BTreeMap<String, Vec<QuarantinedRecord>>,
}

/// A store in memory, for tests: clones share their contents.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    /// The contents, readable while the receiver runs.
    pub contents: Arc<Mutex<MemoryContents>>,
}

impl MemoryStore {
    /// Every accepted record, in key order.
    pub fn all_records(&self) -> Vec<DataRecord> {
        let contents = self.contents.lock().unwrap_or_else(|p| p.into_inner());
        contents.records.values().flatten().cloned().collect()
    }

    /// Every quarantined record, in key order.
    pub fn all_quarantined(&self) -> Vec<QuarantinedRecord> {
        let contents = self.contents.lock().unwrap_or_else(|p| p.into_inner());
        contents.quarantined.values().flatten().cloned().collect()
    }
}

impl Store for MemoryStore {
    fn put(&mut self, key: &str, records: &[DataRecord]) -> Result<()> {
        let mut contents = self.contents.lock().unwrap_or_else(|p| p.into_inner());
        contents.records.insert(key.to_owned(), records.to_vec());
        Ok(())
    }

    fn recover(&mut self, key: &str) -> Result<Vec<DataRecord>> {
        let contents = self.contents.lock().unwrap_or_else(|p| p.into_inner());
        Ok(contents.records.get(key).cloned().unwrap_or_default())
    }
}

impl QuarantineStore for MemoryStore {
    fn put(&mut self, key: &str, _batch_id: &str, records: &[QuarantinedRecord]) -> Result<()> {
        let mut contents = self.contents.lock().unwrap_or_else(|p| p.into_inner());
        contents
            .quarantined
            .insert(key.to_owned(), records.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_partitions_stay_inside_the_store() {
        assert_eq!(store_key("0123abcd-ef"), "0123abcd-ef");
        let hashed = store_key("../../etc/passwd");
        assert!(hashed.starts_with('h') && hashed.len() == 33, "{hashed}");
        assert_eq!(partition_value("dev-0001"), "dev-0001");
        assert_eq!(partition_value("../x"), "%2E.%2Fx");
        assert_eq!(partition_value("a b/c"), "a%20b%2Fc");
        assert_eq!(partition_value(""), "%00");
    }
}
