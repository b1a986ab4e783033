//! A simulated filesystem that knows what a power cut would keep, and fails on
//! command: the seam the crash and fault tests run the log on. Public so users can
//! test their own shutdown and retry paths against the same model.
//!
//! The model: a file's bytes become durable when it is `sync_data`ed; a directory
//! entry (a file created, renamed or removed) becomes durable when its directory is
//! `sync_dir`ed. [`SimFs::crash`] throws away everything else, as a power cut
//! does; [`SimFs::crash_tearing`] also keeps part of what was appended since the
//! last sync, as a torn write does. A process kill (SIGKILL) loses nothing the
//! OS was given: model it by dropping the queue and reopening, without a crash.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::fs::{Fs, FsFile};

/// The kinds of operation a [`Fault`] can hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FsOp {
    /// [`FsFile::append`]: a failure writes half the data, then reports ENOSPC.
    Write,
    /// [`FsFile::sync_data`]: reports EIO.
    Sync,
    /// [`Fs::sync_dir`]: reports EIO.
    SyncDir,
    /// [`Fs::create_new`]: reports ENOSPC.
    Create,
    /// [`Fs::rename`]: reports EIO.
    Rename,
    /// [`Fs::remove_file`]: reports EIO.
    Remove,
    /// [`FsFile::set_len`]: reports EIO.
    SetLen,
}

/// A planned failure: the `nth` operation of kind `op` from now on fails (1 = the
/// next one), and so does every later one if `persistent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Which operations.
    pub op: FsOp,
    /// Which one fails first, counting from 1 after [`SimFs::inject`].
    pub nth: u64,
    /// Whether every operation of the kind fails after that one (a dead disk) or
    /// only that one (a transient error).
    pub persistent: bool,
}

type Ino = u64;

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Debug, Default)]
struct Dir {
    names: BTreeMap<String, Ino>,
    durable: BTreeMap<String, Ino>,
}

#[derive(Debug, Default)]
struct State {
    dirs: HashMap<PathBuf, Dir>,
    inodes: HashMap<Ino, Inode>,
    next_ino: Ino,
    /// Bumped by a crash: handles opened before it are dead.
    epoch: u64,
    /// Planned faults, each with the operations of its kind seen since it was injected.
    faults: Vec<(Fault, u64)>,
    counts: HashMap<FsOp, u64>,
    /// Crash (as [`SimFs::crash`]) instead of doing this many-th change from now.
    crash_at: Option<u64>,
    /// Changes (every [`FsOp`]) since `crash_at` was set.
    changes: u64,
    /// Crashed by `crash_at`: every change fails until [`SimFs::heal`].
    down: bool,
}

impl State {
    /// Counts `op` and says whether it must fail.
    fn hit(&mut self, op: FsOp) -> bool {
        *self.counts.entry(op).or_default() += 1;
        if self.down {
            return true;
        }
        if let Some(at) = self.crash_at {
            self.changes += 1;
            if self.changes == at {
                self.crash_with(&mut |_, _| 0);
                self.down = true;
                return true;
            }
        }
        let mut fails = false;
        for (fault, seen) in &mut self.faults {
            if fault.op == op {
                *seen += 1;
                fails |= *seen == fault.nth || (fault.persistent && *seen > fault.nth);
            }
        }
        fails
    }

    fn crash_with(&mut self, keep: &mut dyn FnMut(&Path, usize) -> usize) {
        self.epoch += 1;
        let mut survivors: Vec<(PathBuf, Ino)> = Vec::new();
        for (dir_path, dir) in &mut self.dirs {
            dir.names = dir.durable.clone();
            for (name, &ino) in &dir.names {
                survivors.push((dir_path.join(name), ino));
            }
        }
        survivors.sort();
        for (path, ino) in survivors {
            let inode = self.inodes.get_mut(&ino).expect("named inodes exist");
            if inode.data.len() > inode.synced.len() && inode.data.starts_with(&inode.synced) {
                let unsynced = inode.data.len() - inode.synced.len();
                let kept = keep(&path, unsynced).min(unsynced);
                inode.data.truncate(inode.synced.len() + kept);
            } else {
                inode.data.clone_from(&inode.synced);
            }
            inode.synced.clone_from(&inode.data);
        }
    }

    fn dir(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs
            .get_mut(dir)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such directory"))
    }

    fn lookup(&self, path: &Path) -> io::Result<Ino> {
        let (dir, name) = split(path)?;
        self.dirs
            .get(dir)
            .and_then(|d| d.names.get(name))
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
}

fn split(path: &Path) -> io::Result<(&Path, &str)> {
    let dir = path.parent().unwrap_or(Path::new(""));
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    Ok((dir, name))
}

fn injected(kind: io::ErrorKind, what: &str) -> io::Error {
    io::Error::new(kind, format!("injected fault: {what}"))
}

/// An in-memory filesystem that models durability and injects faults (the
/// module docs say how). Clones share the same files.
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
    gate: Arc<SyncGate>,
}

/// Holds `sync_data` calls while paused, so a test can line up concurrent work.
#[derive(Debug, Default)]
struct SyncGate {
    /// (paused, syncs waiting at the gate)
    state: Mutex<(bool, usize)>,
    changed: Condvar,
}

impl SimFs {
    /// An empty filesystem.
    pub fn new() -> SimFs {
        SimFs::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// A power cut: every file goes back to its last synced content and every
    /// directory to its last synced entries. Open handles stop working.
    pub fn crash(&self) {
        self.crash_tearing(|_, _| 0);
    }

    /// A power cut that tears writes: of the bytes appended to a file since its
    /// last sync, `keep(path, unsynced)` are kept (clamped to `unsynced`).
    pub fn crash_tearing(&self, mut keep: impl FnMut(&Path, usize) -> usize) {
        self.state().crash_with(&mut keep);
    }

    /// A power cut just before the `n`th change (write, sync, create, rename,
    /// remove, truncate) from now: that change and every later one fail, as in a
    /// process that is gone, until [`heal`](Self::heal).
    pub fn crash_after(&self, n: u64) {
        let mut state = self.state();
        state.crash_at = Some(n);
        state.changes = 0;
    }

    /// Makes every `sync_data` wait until [`resume_syncs`](Self::resume_syncs).
    pub fn pause_syncs(&self) {
        self.gate_state().0 = true;
    }

    /// Lets waiting and later `sync_data` calls through.
    pub fn resume_syncs(&self) {
        self.gate_state().0 = false;
        self.gate.changed.notify_all();
    }

    /// How many `sync_data` calls are waiting at a pause.
    pub fn paused_syncs(&self) -> usize {
        self.gate_state().1
    }

    fn gate_state(&self) -> MutexGuard<'_, (bool, usize)> {
        self.gate
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn pass_gate(&self) {
        let mut gate = self.gate_state();
        if !gate.0 {
            return;
        }
        gate.1 += 1;
        while gate.0 {
            gate = self
                .gate
                .changed
                .wait(gate)
                .unwrap_or_else(|poison| poison.into_inner());
        }
        gate.1 -= 1;
    }

    /// Plans a failure (in addition to any planned before).
    pub fn inject(&self, fault: Fault) {
        self.state().faults.push((fault, 0));
    }

    /// Removes every planned failure and crash point, and brings a crashed
    /// filesystem back up (as it was at the crash).
    pub fn heal(&self) {
        let mut state = self.state();
        state.faults.clear();
        state.crash_at = None;
        state.down = false;
    }

    /// How many operations of kind `op` were attempted so far.
    pub fn count(&self, op: FsOp) -> u64 {
        self.state().counts.get(&op).copied().unwrap_or(0)
    }

    /// The current content of a file, if it exists.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state();
        let ino = state.lookup(path).ok()?;
        Some(state.inodes[&ino].data.clone())
    }

    /// Replaces a file's content, durably (a test damaging the disk).
    pub fn overwrite(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        let ino = state.lookup(path)?;
        let inode = state.inodes.get_mut(&ino).expect("named inodes exist");
        inode.data = bytes.to_vec();
        inode.synced = bytes.to_vec();
        Ok(())
    }

    /// A deep copy: the same files, durable state and all, shared with no one.
    pub fn snapshot(&self) -> SimFs {
        let state = self.state();
        let copy = State {
            dirs: state
                .dirs
                .iter()
                .map(|(path, dir)| {
                    let dir = Dir {
                        names: dir.names.clone(),
                        durable: dir.durable.clone(),
                    };
                    (path.clone(), dir)
                })
                .collect(),
            inodes: state
                .inodes
                .iter()
                .map(|(&ino, inode)| {
                    let inode = Inode {
                        data: inode.data.clone(),
                        synced: inode.synced.clone(),
                    };
                    (ino, inode)
                })
                .collect(),
            next_ino: state.next_ino,
            ..State::default()
        };
        SimFs {
            state: Arc::new(Mutex::new(copy)),
            gate: Arc::default(),
        }
    }
}

#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    ino: Ino,
    epoch: u64,
}

impl SimFile {
    fn state(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = self.fs.state();
        if state.epoch != self.epoch {
            return Err(io::Error::other("simulated crash: the handle is gone"));
        }
        Ok(state)
    }
}

impl FsFile for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let state = self.state()?;
        let data = &state.inodes[&self.ino].data;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let source = data
            .get(start..start + buf.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(source);
        Ok(())
    }

    fn append(&self, data: &[u8]) -> io::Result<()> {
        let mut state = self.state()?;
        if state.hit(FsOp::Write) {
            let half = &data[..data.len() / 2];
            let inode = state.inodes.get_mut(&self.ino).expect("open inodes exist");
            inode.data.extend_from_slice(half);
            return Err(injected(
                io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        let inode = state.inodes.get_mut(&self.ino).expect("open inodes exist");
        inode.data.extend_from_slice(data);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.fs.pass_gate();
        let mut state = self.state()?;
        if state.hit(FsOp::Sync) {
            return Err(injected(io::ErrorKind::Other, "fdatasync: I/O error"));
        }
        let inode = state.inodes.get_mut(&self.ino).expect("open inodes exist");
        inode.synced.clone_from(&inode.data);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.state()?;
        if state.hit(FsOp::SetLen) {
            return Err(injected(io::ErrorKind::Other, "ftruncate: I/O error"));
        }
        let inode = state.inodes.get_mut(&self.ino).expect("open inodes exist");
        inode
            .data
            .resize(usize::try_from(len).map_err(io::Error::other)?, 0);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.state()?.inodes[&self.ino].data.len() as u64)
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        // Directories are created durable: the model is about files and entries.
        let mut state = self.state();
        for ancestor in dir.ancestors() {
            state.dirs.entry(ancestor.to_path_buf()).or_default();
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut state = self.state();
        Ok(state.dir(dir)?.names.keys().cloned().collect())
    }

    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let (dir, name) = split(path)?;
        let mut state = self.state();
        if state.hit(FsOp::Create) {
            return Err(injected(io::ErrorKind::StorageFull, "creat: no space left"));
        }
        let ino = state.next_ino;
        let entry = state.dir(dir)?;
        if entry.names.contains_key(name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        entry.names.insert(name.to_owned(), ino);
        state.next_ino += 1;
        state.inodes.insert(ino, Inode::default());
        Ok(Arc::new(SimFile {
            fs: self.clone(),
            ino,
            epoch: state.epoch,
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let state = self.state();
        let ino = state.lookup(path)?;
        Ok(Arc::new(SimFile {
            fs: self.clone(),
            ino,
            epoch: state.epoch,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        if state.hit(FsOp::Rename) {
            return Err(injected(io::ErrorKind::Other, "rename: I/O error"));
        }
        let ino = state.lookup(from)?;
        let (to_dir, to_name) = split(to)?;
        state.dir(to_dir)?;
        let (from_dir, from_name) = split(from)?;
        state.dir(from_dir)?.names.remove(from_name);
        state.dir(to_dir)?.names.insert(to_name.to_owned(), ino);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        if state.hit(FsOp::Remove) {
            return Err(injected(io::ErrorKind::Other, "unlink: I/O error"));
        }
        state.lookup(path)?;
        let (dir, name) = split(path)?;
        state.dir(dir)?.names.remove(name);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        if state.hit(FsOp::SyncDir) {
            return Err(injected(io::ErrorKind::Other, "fsync(dir): I/O error"));
        }
        let entry = state.dir(dir)?;
        entry.durable = entry.names.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_keeps_only_synced_bytes_and_entries() {
        let fs = SimFs::new();
        let dir = Path::new("q");
        fs.create_dir_all(dir).unwrap();
        let a = fs.create_new(&dir.join("a")).unwrap();
        a.append(b"synced").unwrap();
        a.sync_data().unwrap();
        fs.sync_dir(dir).unwrap();
        a.append(b"+unsynced").unwrap();
        let b = fs.create_new(&dir.join("b")).unwrap();
        b.append(b"never named durably").unwrap();
        b.sync_data().unwrap();

        let torn = fs.snapshot();
        torn.crash_tearing(|_, unsynced| unsynced / 3);
        assert_eq!(torn.contents(&dir.join("a")).unwrap(), b"synced+un");

        fs.crash();
        assert_eq!(fs.list(dir).unwrap(), ["a"]);
        assert_eq!(fs.contents(&dir.join("a")).unwrap(), b"synced");
        assert!(a.append(b"x").is_err(), "handles die with the crash");
    }
}
