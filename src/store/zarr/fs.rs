//! A directory as zarrs storage, written so that no file is ever torn.
//!
//! zarrs' own `FilesystemStore` truncates a chunk file in place, writes
//! it and fsyncs it: a process killed between the truncate and the end of
//! the write leaves a short chunk, and the chunk's previous (flushed)
//! contents are gone. Here every value is written to a temporary file in
//! the same directory, `fdatasync`ed, and renamed over the old one, so a
//! reader (or a process after a crash) sees either the old file or the
//! new one, whole. The directories that gained or lost entries are
//! fsynced by [`DirStorage::sync`], which the store's `flush` calls; only
//! then are renames and removals durable across a power failure.
//!
//! Writes of different keys share no lock: the only shared state is the
//! set of directories to sync, locked for an insert.
//!
//! Whole raw chunks ([`DirStorage::write_deferred`]) leave the
//! `fdatasync` and the rename to background threads (up to four, whose
//! concurrent syncs the journal commits together), with at most 1 GiB
//! and 64 files under way: each `fdatasync`
//! of a new file commits the file system's journal, and doing it for
//! every 16 MB chunk before going on made the 8 GB build store at 1.15
//! GB/s against 1.55 for the same files synced together (docs/benchmarks.md,
//! "Zarr's storing rate"). A chunk is still renamed only once its data
//! is on disk, so the guarantee above holds; what changes is when the new
//! file appears: soon after the call, and at the latest when
//! [`DirStorage::sync`] (the store's flush) returns. This process's reads,
//! writes and erases of a key wait for its deferred write first, so they
//! see it; other processes see the old file until the rename.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex, MutexGuard};
use zarrs::storage::byte_range::{ByteRange, ByteRangeIterator};
use zarrs::storage::{
    Bytes, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits, StorageError, StoreKey,
    StorePrefix, WritableStorageTraits,
};

/// Temporary files start with this (and end with `.tmp`); a crash may
/// leave one behind, which no Zarr reader looks at.
pub(crate) const TMP_PREFIX: &str = ".chunkyard-";

/// The directory, in the array's, of the chunks' lock files (which no
/// Zarr reader looks at: not a key any array or group uses).
pub(crate) const LOCK_DIR: &str = ".chunkyard-locks";

/// Bytes of deferred writes not yet renamed beyond which
/// [`DirStorage::write_deferred`] waits: how far the background syncs may
/// fall behind (dirty page cache, not this process's memory, as an `.npy`
/// file's written pages are). 1 GiB raised the 8 GB build's storing rate
/// 13% over 256 MiB (docs/benchmarks.md, "Zarr's storing rate").
const MAX_DEFERRED_BYTES: usize = 1 << 30;

/// Deferred writes not yet renamed beyond which `write_deferred` waits,
/// whatever their size: each holds its temporary file open until synced,
/// and small chunks under the byte bound alone ran a process with the
/// common limit of 1,024 descriptors out of them ("Too many open files").
const MAX_DEFERRED_FILES: usize = 64;

/// Threads that sync and rename deferred writes at most. Several, because
/// a file system commits concurrent `fdatasync`s of new files together
/// (ext4's journal: one commit for every sync that arrives while the
/// last commits), where one thread pays a commit per chunk file
/// (docs/benchmarks.md, "Zarr's storing rate").
const SYNC_WORKERS: usize = 4;

/// A directory of keys (`zarr.json`, `c/0/1`, ...) with atomic writes.
#[derive(Debug)]
pub(crate) struct DirStorage {
    root: PathBuf,
    writable: bool,
    /// Directories whose entries changed since the last [`sync`](Self::sync).
    dirty_dirs: Arc<Mutex<HashSet<PathBuf>>>,
    /// Makes temporary names unique within the process.
    seq: AtomicU64,
    /// Writes whose `fdatasync` and rename background threads do.
    deferred: Arc<Deferred>,
}

/// The queue of deferred writes and what waits on it.
#[derive(Debug, Default)]
struct Deferred {
    state: Mutex<DeferredState>,
    /// Signalled whenever a deferred write ends (or the queue grows).
    changed: Condvar,
}

#[derive(Debug, Default)]
struct DeferredState {
    /// The process that queued the writes: in a forked child the state
    /// starts afresh (the parent's thread, which renames the parent's
    /// files, is not in it).
    pid: u32,
    queue: VecDeque<DeferredWrite>,
    /// Final paths with a write queued or under way, and how many.
    pending: HashMap<PathBuf, usize>,
    /// Bytes queued or under way.
    bytes: usize,
    /// Writes queued or under way: their files are open.
    files: usize,
    /// How many threads work on the queue (at most [`SYNC_WORKERS`];
    /// each ends when it finds the queue empty, and later writes start
    /// others).
    running: usize,
    /// The first failure of a deferred write: its chunk's data is lost,
    /// so every later write and sync reports it (the store fails closed;
    /// reopening the array starts afresh).
    failed: Option<String>,
}

/// A temporary file written whole, to be synced and renamed to `path`.
#[derive(Debug)]
struct DeferredWrite {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    len: usize,
}

impl Deferred {
    /// The state, reset if this is a forked child of the process that
    /// queued its writes.
    /// An idle state is everyone's: only a busy one is checked (one
    /// `getpid` call), so reads, which take this lock, pay nothing for it.
    fn lock(&self) -> MutexGuard<'_, DeferredState> {
        let mut s = self.state.lock();
        // `files` counts every entry of `pending`.
        let idle = s.running == 0 && s.files == 0 && s.failed.is_none();
        if !idle && s.pid != std::process::id() {
            *s = DeferredState::default();
        }
        s
    }

    /// A background thread: syncs and renames queued writes, oldest first,
    /// until the queue is empty. Several run at once; no two writes of one
    /// path are ever queued together (`write_deferred` waits), so their
    /// renames need no order among them.
    fn run(self: Arc<Self>, dirty_dirs: Arc<Mutex<HashSet<PathBuf>>>) {
        loop {
            let job = {
                let mut s = self.lock();
                match s.queue.pop_front() {
                    Some(j) => j,
                    None => {
                        s.running -= 1;
                        self.changed.notify_all();
                        return;
                    }
                }
            };
            let done = job
                .file
                .sync_data()
                .and_then(|()| fs::rename(&job.tmp, &job.path));
            drop(job.file);
            match &done {
                Ok(()) => {
                    if let Some(dir) = job.path.parent() {
                        dirty_dirs.lock().insert(dir.to_path_buf());
                    }
                }
                Err(_) => {
                    let _ = fs::remove_file(&job.tmp);
                }
            }
            let mut s = self.lock();
            if let Err(e) = done
                && s.failed.is_none()
            {
                s.failed = Some(format!(
                    "{}: writing the chunk in the background failed: {e}",
                    job.path.display()
                ));
            }
            if let Some(n) = s.pending.get_mut(&job.path) {
                *n -= 1;
                if *n == 0 {
                    s.pending.remove(&job.path);
                }
            }
            s.bytes -= job.len;
            s.files -= 1;
            self.changed.notify_all();
        }
    }
}

/// An I/O error that names the file.
fn io_err(path: &Path, e: io::Error) -> StorageError {
    StorageError::IOError(Arc::new(io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    )))
}

impl DirStorage {
    /// Storage rooted at `root` (which must exist to read anything).
    pub(crate) fn new(root: &Path, writable: bool) -> DirStorage {
        DirStorage {
            root: root.to_path_buf(),
            writable,
            dirty_dirs: Arc::new(Mutex::new(HashSet::new())),
            seq: AtomicU64::new(0),
            deferred: Arc::new(Deferred::default()),
        }
    }

    /// Waits until no deferred write of `path` is queued or under way.
    pub(crate) fn wait_written(&self, path: &Path) {
        let mut s = self.deferred.lock();
        while s.pending.contains_key(path) {
            self.deferred.changed.wait(&mut s);
        }
    }

    /// Waits until every deferred write is renamed (or failed), and
    /// reports the first failure, if one did.
    fn wait_all(&self) -> Result<(), StorageError> {
        let mut s = self.deferred.lock();
        // `files` counts every queued write: a thread runs while it is not 0.
        while s.files > 0 || s.running > 0 {
            self.deferred.changed.wait(&mut s);
        }
        Self::failure(&s)
    }

    /// The failure of a deferred write, if one failed: every write after
    /// it fails too.
    fn deferred_failure(&self) -> Result<(), StorageError> {
        Self::failure(&self.deferred.lock())
    }

    fn failure(s: &DeferredState) -> Result<(), StorageError> {
        match &s.failed {
            Some(m) => Err(StorageError::IOError(Arc::new(io::Error::other(m.clone())))),
            None => Ok(()),
        }
    }

    /// Creates and writes `path`'s temporary file (not synced).
    fn write_temporary(&self, path: &Path, value: &[u8]) -> Result<(File, PathBuf), StorageError> {
        let dir = path
            .parent()
            .ok_or_else(|| StorageError::Other(format!("{}: no parent", path.display())))?;
        self.make_parents(dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(
            "{TMP_PREFIX}{name}.{}.{}.tmp",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        ));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| f.write_all(value).map(|()| f));
        match written {
            Ok(f) => Ok((f, tmp)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(io_err(path, e))
            }
        }
    }

    /// Writes `value` to `path` as [`write_atomic`](Self::write_atomic)
    /// does, with the `fdatasync` and the rename left to background
    /// threads (module docs): returns once the temporary file is written.
    /// A failure of the background part is reported by every later write
    /// and [`sync`](Self::sync).
    pub(crate) fn write_deferred(&self, path: &Path, value: &[u8]) -> Result<(), StorageError> {
        self.check_writable()?;
        self.deferred_failure()?;
        // One write of a key at a time, in the order they were made.
        self.wait_written(path);
        let (file, tmp) = self.write_temporary(path, value)?;
        let mut s = self.deferred.lock();
        while s.files > 0
            && (s.bytes + value.len() > MAX_DEFERRED_BYTES || s.files >= MAX_DEFERRED_FILES)
        {
            self.deferred.changed.wait(&mut s);
        }
        s.pid = std::process::id();
        s.queue.push_back(DeferredWrite {
            file,
            tmp,
            path: path.to_path_buf(),
            len: value.len(),
        });
        *s.pending.entry(path.to_path_buf()).or_insert(0) += 1;
        s.bytes += value.len();
        s.files += 1;
        if s.running < SYNC_WORKERS.min(s.queue.len()) {
            let (deferred, dirs) = (self.deferred.clone(), self.dirty_dirs.clone());
            let spawned = std::thread::Builder::new()
                .name("chunkyard-sync".into())
                .spawn(move || deferred.run(dirs));
            match spawned {
                Ok(_) => s.running += 1,
                Err(_) if s.running > 0 => {
                    // The threads already running will get to it.
                }
                Err(_) => {
                    // No thread: this caller does the work itself.
                    s.running = 1;
                    drop(s);
                    self.deferred.clone().run(self.dirty_dirs.clone());
                    return self.deferred_failure();
                }
            }
        }
        Ok(())
    }

    /// Remembers that `dir` gained or lost an entry (for the next sync).
    pub(crate) fn mark_dirty(&self, dir: &Path) {
        self.dirty_dirs.lock().insert(dir.to_path_buf());
    }

    /// The file that holds `key`.
    pub(crate) fn key_path(&self, key: &StoreKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    fn check_writable(&self) -> Result<(), StorageError> {
        if self.writable {
            Ok(())
        } else {
            Err(StorageError::ReadOnly)
        }
    }

    /// Creates the directories above `path` that are missing, remembering
    /// each new entry's directory for the next sync.
    fn make_parents(&self, dir: &Path) -> Result<(), StorageError> {
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let mut dirty = self.dirty_dirs.lock();
        let mut d = dir;
        while let Some(parent) = d.parent() {
            dirty.insert(parent.to_path_buf());
            if parent == self.root || !parent.starts_with(&self.root) {
                break;
            }
            d = parent;
        }
        Ok(())
    }

    /// Takes the exclusive lock of one key across processes: an `flock`
    /// on a file of its own under [`LOCK_DIR`] (kept, empty, for the
    /// next writer), released when the returned file is dropped or the
    /// process dies. Every write, erase and merging write of a chunk
    /// holds it, so a merge's read and its rename are one step for every
    /// other writer of the chunk.
    pub(crate) fn lock_key(&self, key: &StoreKey) -> io::Result<File> {
        let dir = self.root.join(LOCK_DIR);
        if !dir.is_dir() {
            match fs::create_dir(&dir) {
                Ok(()) => self.mark_dirty(&self.root),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
            }
        }
        let path = dir.join(key.as_str().replace('/', "."));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("{}: flock: {e}", path.display()),
            )
        })?;
        Ok(file)
    }

    /// Writes `value` to `path` atomically: temporary file, fdatasync,
    /// rename.
    pub(crate) fn write_atomic(&self, path: &Path, value: &[u8]) -> Result<(), StorageError> {
        self.check_writable()?;
        self.deferred_failure()?;
        self.wait_written(path);
        let (file, tmp) = self.write_temporary(path, value)?;
        let written = file.sync_data().and_then(|()| fs::rename(&tmp, path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(path, e));
        }
        if let Some(dir) = path.parent() {
            self.dirty_dirs.lock().insert(dir.to_path_buf());
        }
        Ok(())
    }

    /// Removes the temporary files (`{TMP_PREFIX}NAME.PID.SEQ.tmp`) that a
    /// writer killed between creating and renaming them left anywhere under
    /// the root; returns how many. Only names of exactly that pattern are
    /// touched, and only those whose process is gone: a file of this
    /// process, or of a process that still runs (`/proc/PID` exists), may
    /// be a write in progress through another handle. Symbolic links are
    /// not followed.
    pub(crate) fn remove_stale_temporaries(&self) -> io::Result<usize> {
        self.check_writable().map_err(io::Error::other)?;
        let me = std::process::id();
        let mut removed = 0;
        let mut stack = vec![self.root.clone()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", d.display())))?
            {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    // Lock files are kept; no temporary is written there.
                    if entry.file_name() != LOCK_DIR {
                        stack.push(entry.path());
                    }
                    continue;
                }
                if !kind.is_file() {
                    continue;
                }
                let name = entry.file_name();
                let Some(pid) = name.to_str().and_then(temp_owner) else {
                    continue;
                };
                let alive = pid == me || Path::new(&format!("/proc/{pid}")).exists();
                if alive {
                    continue;
                }
                match fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("{}: {e}", entry.path().display()),
                        ));
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Makes every write, rename and removal so far durable: waits for
    /// the deferred writes (reporting the first failure among them), then
    /// fsyncs the directories that changed.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.wait_all().map_err(io::Error::other)?;
        let dirs: Vec<PathBuf> = self.dirty_dirs.lock().drain().collect();
        let mut failed = None;
        for d in &dirs {
            if let Err(e) = File::open(d).and_then(|f| f.sync_all()) {
                failed = Some(io::Error::new(e.kind(), format!("{}: {e}", d.display())));
            }
        }
        match failed {
            None => Ok(()),
            Some(e) => {
                // Try again next time.
                self.dirty_dirs.lock().extend(dirs);
                Err(e)
            }
        }
    }
}

impl ReadableStorageTraits for DirStorage {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        let path = self.key_path(key);
        self.wait_written(&path);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, e)),
        };
        let size = file.metadata().map_err(|e| io_err(&path, e))?.len();
        let out: Vec<Result<Bytes, StorageError>> = byte_ranges
            .map(|r| {
                // Checked before `start`/`length`, which subtract a
                // suffix from the size and overflow when a corrupt shard is
                // shorter than its own index.
                let in_file = match r {
                    ByteRange::FromStart(o, Some(n)) => o.checked_add(n).is_some_and(|e| e <= size),
                    ByteRange::FromStart(o, None) => o <= size,
                    ByteRange::Suffix(n) => n <= size,
                };
                if !in_file {
                    // The store names the chunk's file around this.
                    return Err(StorageError::Other(format!(
                        "truncated: bytes {r} asked for, the file holds {size}"
                    )));
                }
                let (start, len) = (r.start(size), r.length(size));
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, start)
                    .map_err(|e| io_err(&path, e))?;
                Ok(Bytes::from(buf))
            })
            .collect();
        Ok(Some(Box::new(out.into_iter())))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        let path = self.key_path(key);
        self.wait_written(&path);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn supports_get_partial(&self) -> bool {
        true
    }
}

impl WritableStorageTraits for DirStorage {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        self.write_atomic(&self.key_path(key), &value)
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        _offset_values: OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        Err(StorageError::Unsupported(format!(
            "{}: partial writes would not be atomic",
            self.key_path(key).display()
        )))
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        self.check_writable()?;
        let path = self.key_path(key);
        self.wait_written(&path);
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    self.dirty_dirs.lock().insert(dir.to_path_buf());
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        self.check_writable()?;
        self.wait_all()?;
        let path = self.root.join(prefix.as_str());
        match fs::remove_dir_all(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    self.dirty_dirs.lock().insert(dir.to_path_buf());
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

impl Drop for DirStorage {
    /// Lets the deferred writes finish: a dropped store's chunks are
    /// renamed as if it had lived (their failures, unreported, are lost
    /// here; the array's flush reports them).
    fn drop(&mut self) {
        let _ = self.wait_all();
    }
}

/// The process id in a temporary file's name (`{TMP_PREFIX}NAME.PID.SEQ.tmp`),
/// or `None` if `name` is not one of ours.
fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TMP_PREFIX)?.strip_suffix(".tmp")?;
    let mut parts = rest.rsplitn(3, '.');
    let seq = parts.next()?;
    let pid = parts.next()?;
    let key = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if key.is_empty() || !digits(seq) || !digits(pid) {
        return None;
    }
    pid.parse().ok()
}

/// Allocated bytes of every file under `dir` (not following links).
pub(crate) fn allocated_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            let m = entry.metadata()?;
            if m.is_dir() {
                stack.push(entry.path());
            } else if m.is_file() {
                total += m.blocks() * 512;
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_whole_files_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStorage::new(dir.path(), true);
        let key = StoreKey::new("c/0/1").unwrap();
        assert!(s.get(&key).unwrap().is_none());
        s.set(&key, Bytes::from(vec![1u8; 100])).unwrap();
        s.set(&key, Bytes::from(vec![2u8; 10])).unwrap();
        assert_eq!(s.get(&key).unwrap().unwrap().as_ref(), &[2u8; 10]);
        assert_eq!(s.size_key(&key).unwrap(), Some(10));
        let names: Vec<_> = fs::read_dir(dir.path().join("c/0"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["1"], "no temporary file left");
        s.sync().unwrap();
        assert!(s.dirty_dirs.lock().is_empty());
        let r = s
            .get_partial(&key, ByteRange::FromStart(4, Some(10)))
            .unwrap_err()
            .to_string();
        // The store names the chunk's file around this message.
        assert!(r.contains("truncated: bytes 4..14"), "{r}");
        s.erase(&key).unwrap();
        s.erase(&key).unwrap();
        assert!(s.get(&key).unwrap().is_none());
    }

    #[test]
    fn deferred_writes_are_read_back_at_once_and_renamed_by_sync() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStorage::new(dir.path(), true);
        let key = StoreKey::new("c/0/1").unwrap();
        let path = s.key_path(&key);
        // Many writes of one key land in order; each is read back at once.
        for i in 0..20u8 {
            s.write_deferred(&path, &vec![i; 1000 + i as usize])
                .unwrap();
            assert_eq!(
                s.get(&key).unwrap().unwrap().as_ref(),
                &vec![i; 1000 + i as usize][..]
            );
        }
        // Small files: the count bounds the open files, not the bytes.
        for i in 0..(10 * MAX_DEFERRED_FILES as u64) {
            let k = StoreKey::new(format!("c/1/{i}")).unwrap();
            s.write_deferred(&s.key_path(&k), &i.to_le_bytes()).unwrap();
            let st = s.deferred.lock();
            assert!(st.files <= MAX_DEFERRED_FILES, "{} files open", st.files);
        }
        s.sync().unwrap();
        {
            let st = s.deferred.lock();
            assert!(st.pending.is_empty() && st.queue.is_empty() && st.bytes == 0 && st.files == 0);
        }
        assert!(
            s.dirty_dirs.lock().is_empty(),
            "sync fsynced the renamed files' directories"
        );
        for i in 0..20u64 {
            let got = fs::read(dir.path().join(format!("c/1/{i}"))).unwrap();
            assert_eq!(got, i.to_le_bytes());
        }
        for d in ["c/0", "c/1"] {
            for e in fs::read_dir(dir.path().join(d)).unwrap() {
                let name = e.unwrap().file_name().into_string().unwrap();
                assert!(!name.starts_with(TMP_PREFIX), "{d}/{name} left behind");
            }
        }
        // An erase waits for the write before it: the key stays erased.
        s.write_deferred(&path, b"again").unwrap();
        s.erase(&key).unwrap();
        s.sync().unwrap();
        assert!(s.get(&key).unwrap().is_none());
    }

    #[test]
    fn a_failed_deferred_write_closes_the_store_for_writing() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStorage::new(dir.path(), true);
        // A non-empty directory where the chunk file goes: the rename fails.
        let path = dir.path().join("c/0/0");
        fs::create_dir_all(path.join("x")).unwrap();
        s.write_deferred(&path, b"data").unwrap();
        let err = s.sync().unwrap_err().to_string();
        assert!(
            err.contains("c/0/0") && err.contains("in the background"),
            "{err}"
        );
        // The temporary file is gone, and the chunk's data with it: every
        // later sync and write fails (closed), and writes write nothing.
        let left: Vec<_> = fs::read_dir(dir.path().join("c/0"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["0"]);
        assert_eq!(s.sync().unwrap_err().to_string(), err);
        let other = dir.path().join("c/0/1");
        assert!(s.write_deferred(&other, b"more").is_err());
        assert!(s.write_atomic(&other, b"more").is_err());
        assert!(!other.exists());
        // A new store (the array reopened) starts afresh.
        let again = DirStorage::new(dir.path(), true);
        again.write_deferred(&other, b"more").unwrap();
        again.sync().unwrap();
        assert_eq!(fs::read(&other).unwrap(), b"more");
    }

    #[test]
    fn stale_temporaries_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("c/0");
        fs::create_dir_all(&sub).unwrap();
        // A pid far above pid_max (4194304 at most on Linux): never alive.
        let dead = format!("{TMP_PREFIX}1.999999999.7.tmp");
        let mine = format!("{TMP_PREFIX}2.{}.0.tmp", std::process::id());
        let keep = [
            "1",
            ".chunkyard-x.tmp",         // not our pattern: no pid and sequence
            ".chunkyard-3.12ab.4.tmp",  // pid not a number
            "other-1.999999999.7.tmp",  // another prefix
            ".chunkyard-4.999999999.7", // no .tmp
        ];
        for n in keep.iter().copied().chain([dead.as_str(), mine.as_str()]) {
            fs::write(sub.join(n), b"x").unwrap();
        }
        fs::write(dir.path().join(&dead), b"x").unwrap();
        let s = DirStorage::new(dir.path(), true);
        assert_eq!(s.remove_stale_temporaries().unwrap(), 2);
        assert!(!sub.join(&dead).exists() && !dir.path().join(&dead).exists());
        assert!(
            sub.join(&mine).exists(),
            "this process's own write may be in flight"
        );
        for n in keep {
            assert!(sub.join(n).exists(), "{n} is not ours to remove");
        }
        let ro = DirStorage::new(dir.path(), false);
        assert!(ro.remove_stale_temporaries().is_err());
    }

    #[test]
    fn read_only_storage_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = DirStorage::new(dir.path(), false);
        let key = StoreKey::new("zarr.json").unwrap();
        assert!(s.set(&key, Bytes::from_static(b"{}")).is_err());
        assert!(s.erase(&key).is_err());
    }
}
