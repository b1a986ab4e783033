//! Where batches go: the [`Sink`] trait, and the directory sink for offline export.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::retry::SendFailure;
use crate::batch::{Batch, Compression};

/// What the receiver did with a batch it confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Stored now.
    Stored,
    /// Already held from an earlier attempt (a retry after a lost confirmation);
    /// stored once, counted as a duplicate.
    Duplicate,
}

/// A destination for batches. A sink confirms a batch only once the receiver
/// holds it durably; until then the batch stays in the queue.
pub trait Sink: Send {
    /// A name for logs and metrics, e.g. `dir:exports` or an endpoint URL.
    fn describe(&self) -> String;

    /// Delivers one batch. `Ok` means the receiver has it (stored, or recognised
    /// as a duplicate by its deterministic batch id); any failure says whether a
    /// retry can help.
    fn send(&mut self, batch: &Batch) -> Result<Delivered, SendFailure>;
}

/// Offline export: one file per batch under `root/<source>/<batch id>.<codec>[.<compression>]`,
/// holding the batch's payload as sent (`zcat …json.gz | jq .` reads a JSON batch).
///
/// Each file is written to a temporary name, synced, renamed into place and its
/// directory synced, so a reader (or a crash) never sees half a batch; a batch
/// whose file already exists is a [`Delivered::Duplicate`] and is not written again.
/// Source ids and batch ids are made safe for file names (see [`file_name_part`]).
///
/// ```
/// use edgepipe_core::batch::{BatchEncoder, Codec, Compression};
/// use edgepipe_core::deliver::{Delivered, DirectorySink, Sink};
/// use edgepipe_core::record::json::parse_jsonl;
/// use edgepipe_core::Timestamp;
///
/// let records: Vec<_> = parse_jsonl(
///     br#"{"record_id":"r1","device_id":"d1","timestamp":"2026-01-01T00:00:00Z","data_type":"sensors","payload":{"t":1}}"#,
/// )
/// .map(|(_, record)| record.unwrap())
/// .collect();
/// let encoder = BatchEncoder::new("gateway-1", Codec::Json, Compression::Gzip { level: 6 })?;
/// let batch = encoder.encode(&records, Timestamp::UNIX_EPOCH)?;
///
/// let root = tempfile::tempdir().unwrap();
/// let mut sink = DirectorySink::new(root.path())?;
/// assert_eq!(sink.send(&batch), Ok(Delivered::Stored));
/// assert_eq!(sink.send(&batch), Ok(Delivered::Duplicate));
/// let path = sink.path_of(&batch);
/// assert!(path.ends_with(format!("gateway-1/{}.json.gz", batch.envelope.batch_id)));
/// # Ok::<(), edgepipe_core::Error>(())
/// ```
#[derive(Debug)]
pub struct DirectorySink {
    root: PathBuf,
}

impl DirectorySink {
    /// A sink writing under `root`, which is created when missing.
    pub fn new(root: impl Into<PathBuf>) -> crate::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|error| crate::Error::io(format!("creating {}", root.display()), error))?;
        Ok(DirectorySink { root })
    }

    /// Where `batch` is (or would be) written.
    pub fn path_of(&self, batch: &Batch) -> PathBuf {
        let envelope = &batch.envelope;
        let mut name = file_name_part(&envelope.batch_id);
        name.push('.');
        name.push_str(envelope.codec.name());
        if let Some(extension) = compression_extension(envelope.compression) {
            name.push('.');
            name.push_str(extension);
        }
        self.root
            .join(file_name_part(&envelope.source_id))
            .join(name)
    }

    fn write(&self, batch: &Batch, path: &Path) -> io::Result<Delivered> {
        if path.exists() {
            return Ok(Delivered::Duplicate);
        }
        let directory = path
            .parent()
            .expect("path_of always has a source directory");
        let created = !directory.exists();
        fs::create_dir_all(directory)?;
        if created {
            sync_directory(&self.root)?;
        }
        let mut temporary = path.to_path_buf().into_os_string();
        temporary.push(".partial");
        let temporary = PathBuf::from(temporary);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        file.write_all(&batch.payload)?;
        file.sync_data()?;
        drop(file);
        fs::rename(&temporary, path)?;
        sync_directory(directory)?;
        Ok(Delivered::Stored)
    }
}

impl Sink for DirectorySink {
    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    fn send(&mut self, batch: &Batch) -> Result<Delivered, SendFailure> {
        // A full or failing disk may recover (space freed, disk remounted): retryable.
        let path = self.path_of(batch);
        self.write(batch, &path)
            .map_err(|error| SendFailure::retryable(format!("writing {}: {error}", path.display())))
    }
}

fn sync_directory(directory: &Path) -> io::Result<()> {
    File::open(directory)?.sync_all()
}

fn compression_extension(compression: Compression) -> Option<&'static str> {
    match compression {
        Compression::None => None,
        Compression::Gzip { .. } => Some("gz"),
        Compression::Lz4 => Some("lz4"),
        Compression::Zstd { .. } => Some("zst"),
    }
}

/// `text` made safe as one file name component: ASCII letters, digits, `-` and `_`
/// are kept, every other byte becomes `%XX`, so distinct ids stay distinct, no id
/// can climb out of its directory (`..`, `/`), and an empty id becomes `%`.
pub fn file_name_part(text: &str) -> String {
    if text.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
