//! Shared helpers for integration tests: backends under test and a dense
//! in-memory model to compare against; running `python3` and the
//! `chunkyard` command, and keeping their processes apart from HDF5 files
//! open in this one. A module of both test binaries, `tests/it/` and
//! `tests/external/`.
#![allow(dead_code)]

pub mod wrap;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chunkyard::store::{ChunkStore, MemoryStore, NpyOptions, NpyStore, StoreMeta};
#[cfg(feature = "zarr")]
use chunkyard::store::{ZarrOptions, ZarrStore};
use chunkyard::{DType, Element};

/// A backend the model tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Npy,
    #[cfg(feature = "zarr")]
    Zarr,
    #[cfg(feature = "hdf5")]
    Hdf5,
}

/// Every backend built in, for property tests to draw from.
pub fn backends() -> Vec<Backend> {
    vec![
        Backend::Memory,
        Backend::Npy,
        #[cfg(feature = "zarr")]
        Backend::Zarr,
        #[cfg(feature = "hdf5")]
        Backend::Hdf5,
    ]
}

/// A store under test and how to get it back after a reopen or a crash.
pub struct TestStore {
    pub store: Arc<dyn ChunkStore>,
    memory: Option<Arc<MemoryStore>>,
    path: Option<PathBuf>,
    backend: Backend,
}

impl TestStore {
    pub fn create(
        backend: Backend,
        dir: &Path,
        dtype: DType,
        shape: &[u64],
        chunks: &[u64],
    ) -> Self {
        let meta = StoreMeta {
            dtype,
            shape: shape.to_vec(),
            chunks: chunks.to_vec(),
            fill: vec![0; dtype.size()],
        };
        match backend {
            Backend::Memory => {
                let m = Arc::new(MemoryStore::new(meta));
                TestStore {
                    store: m.clone(),
                    memory: Some(m),
                    path: None,
                    backend,
                }
            }
            #[cfg(feature = "zarr")]
            Backend::Zarr => {
                let path = dir.join("a.zarr");
                let fill = vec![0; dtype.size()];
                let s =
                    ZarrStore::create(&path, dtype, shape, chunks, &fill, &ZarrOptions::default())
                        .expect("create zarr");
                TestStore {
                    store: Arc::new(s),
                    memory: None,
                    path: Some(path),
                    backend,
                }
            }
            #[cfg(feature = "hdf5")]
            Backend::Hdf5 => {
                use chunkyard::Codec;
                use chunkyard::store::{Hdf5Options, Hdf5Store};
                let path = dir.join("a.h5");
                let opts = Hdf5Options {
                    codec: Codec::Lz4,
                    overwrite: false,
                    ..Hdf5Options::default()
                };
                let s = Hdf5Store::create(&path, "g/a", dtype, shape, chunks, &meta.fill, &opts)
                    .expect("create hdf5");
                TestStore {
                    store: Arc::new(s),
                    memory: None,
                    path: Some(path),
                    backend,
                }
            }
            Backend::Npy => {
                let path = dir.join("a.npy");
                let s = NpyStore::create(&path, dtype, shape, chunks, &NpyOptions::default())
                    .expect("create npy");
                TestStore {
                    store: Arc::new(s),
                    memory: None,
                    path: Some(path),
                    backend,
                }
            }
        }
    }

    /// Opens the same storage again (after the array was dropped and so
    /// flushed).
    pub fn reopen(&self) -> Self {
        self.reopen_as(true)
    }

    /// Opens the same storage again, read-only if `writable` is false
    /// (the memory store has no read-only mode and reopens writable).
    #[allow(dead_code)]
    pub fn reopen_as(&self, writable: bool) -> Self {
        match (&self.memory, &self.path) {
            (Some(m), _) => {
                let m = Arc::new(m.reopen());
                TestStore {
                    store: m.clone(),
                    memory: Some(m),
                    path: None,
                    backend: self.backend,
                }
            }
            #[cfg(feature = "zarr")]
            (None, Some(path)) if self.backend == Backend::Zarr => {
                let s = ZarrStore::open(path, writable).expect("reopen zarr");
                TestStore {
                    store: Arc::new(s),
                    memory: None,
                    path: Some(path.clone()),
                    backend: self.backend,
                }
            }
            #[cfg(feature = "hdf5")]
            (None, Some(path)) if self.backend == Backend::Hdf5 => {
                let s = chunkyard::store::Hdf5Store::open(path, "g/a", None, writable)
                    .expect("reopen hdf5");
                TestStore {
                    store: Arc::new(s),
                    memory: None,
                    path: Some(path.clone()),
                    backend: self.backend,
                }
            }
            (None, Some(path)) => {
                let chunks = self.store.meta().chunks.clone();
                let s = NpyStore::open(path, Some(&chunks), writable).expect("reopen npy");
                TestStore {
                    store: Arc::new(s),
                    memory: None,
                    path: Some(path.clone()),
                    backend: self.backend,
                }
            }
            (None, None) => unreachable!("every store has a memory model or a path"),
        }
    }

    /// What a crash right now would leave, if the backend can tell.
    pub fn crash(&self) -> Option<Self> {
        self.memory.as_ref().map(|_| self.reopen())
    }
}

/// A dense C-order array: the reference model.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense<T> {
    pub shape: Vec<u64>,
    pub data: Vec<T>,
}

impl<T: Element> Dense<T> {
    pub fn zeros(shape: &[u64]) -> Self {
        Dense {
            shape: shape.to_vec(),
            data: vec![T::default(); shape.iter().product::<u64>() as usize],
        }
    }

    /// Per-axis counts of a (start, stop, step) region.
    pub fn selection_shape(&self, r: &[(u64, u64, u64)]) -> Vec<usize> {
        r.iter()
            .map(|&(a, b, s)| {
                if b > a {
                    (b - a).div_ceil(s) as usize
                } else {
                    0
                }
            })
            .collect()
    }

    fn positions(&self, r: &[(u64, u64, u64)]) -> Vec<usize> {
        let counts = self.selection_shape(r);
        let total: usize = counts.iter().product();
        (0..total)
            .map(|lin| {
                let mut rem = lin;
                let mut idx = vec![0u64; r.len()];
                for ax in (0..r.len()).rev() {
                    idx[ax] = r[ax].0 + (rem % counts[ax]) as u64 * r[ax].2;
                    rem /= counts[ax];
                }
                self.offset(&idx)
            })
            .collect()
    }

    fn offset(&self, idx: &[u64]) -> usize {
        idx.iter()
            .zip(&self.shape)
            .fold(0u64, |acc, (&i, &n)| acc * n + i) as usize
    }

    pub fn assign(&mut self, r: &[(u64, u64, u64)], values: &[T]) {
        for (p, v) in self.positions(r).into_iter().zip(values) {
            self.data[p] = *v;
        }
    }

    pub fn read(&self, r: &[(u64, u64, u64)]) -> Vec<T> {
        self.positions(r)
            .into_iter()
            .map(|p| self.data[p])
            .collect()
    }

    pub fn get(&self, idx: &[u64]) -> T {
        self.data[self.offset(idx)]
    }
}

/// What installs every Python package the `interop` tests use.
pub const PIP_INSTALL: &str = "pip install -r requirements-dev.txt";

/// Runs Python code (with numpy) and returns its stdout; fails the test if
/// Python or numpy is missing, or the code fails (its assertion message is
/// in the panic).
#[cfg(feature = "interop")]
pub fn python(code: &str) -> String {
    python_with(&["numpy"], code, &[])
}

/// Runs a Python script with arguments after checking that `modules`
/// import; panics (never skips) with the `pip install` command if they do
/// not, and with the script's output if it fails.
#[cfg(feature = "interop")]
pub fn python_with(modules: &[&str], script: &str, args: &[&str]) -> String {
    let _children = child_guard();
    let check = std::process::Command::new("python3")
        .args(["-c", &format!("import {}", modules.join(", "))])
        .output();
    match check {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{} required (feature interop): {PIP_INSTALL}\n{}",
            modules.join(", "),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "python3 with {} is required (feature interop): {PIP_INSTALL} ({e})",
            modules.join(", ")
        ),
    }
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed ({}):\n{script}\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs the `chunkyard` binary.
#[cfg(feature = "cli")]
pub fn chunkyard(args: &[&str]) -> std::process::Output {
    let _children = child_guard();
    std::process::Command::new(env!("CARGO_BIN_EXE_chunkyard"))
        .args(args)
        .output()
        .expect("run chunkyard")
}

/// Runs a command that must succeed quietly; returns its stdout.
#[cfg(feature = "cli")]
pub fn ok(args: &[&str]) -> String {
    let out = chunkyard(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chunkyard {args:?} failed: {stderr}");
    assert!(
        out.stderr.is_empty(),
        "chunkyard {args:?} wrote to stderr: {stderr}"
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs a command that must fail cleanly: our own errors are one
/// `chunkyard: error:` line and exit status 1; clap's usage errors exit
/// with 2 and start with `error:`. Never a panic or an HDF5 error stack.
#[cfg(feature = "cli")]
pub fn fails(args: &[&str]) -> String {
    let out = chunkyard(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "chunkyard {args:?} succeeded");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "chunkyard {args:?} panicked: {stderr}"
    );
    assert!(
        !stderr.contains("HDF5-DIAG"),
        "chunkyard {args:?}: {stderr}"
    );
    if out.status.code() == Some(1) {
        assert_eq!(
            stderr.lines().count(),
            1,
            "chunkyard {args:?}: not one line: {stderr}"
        );
        assert!(
            stderr.starts_with("chunkyard: error: "),
            "chunkyard {args:?}: {stderr}"
        );
    } else {
        assert_eq!(out.status.code(), Some(2), "chunkyard {args:?}: {stderr}");
        assert!(stderr.starts_with("error:"), "chunkyard {args:?}: {stderr}");
    }
    stderr
}

/// A path as `&str` for command lines.
pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Child processes against HDF5 files open in this process. HDF5 opens
/// files without `O_CLOEXEC` and holds an `flock` on each: a child spawned
/// while another test has an HDF5 file open inherits the descriptor, so
/// the lock outlives the file's close in this process and a reopen fails
/// with EAGAIN. Children run under the read side (many at once), tests
/// that open HDF5 files here under the write side.
static CHILDREN: RwLock<()> = RwLock::new(());

thread_local! {
    /// Whether this thread holds [`hdf5_files`]: its own children need no
    /// read lock (and would deadlock taking one).
    static HOLDS_HDF5_FILES: Cell<bool> = const { Cell::new(false) };
}

/// Held by a test while it opens HDF5 files in this process: no child of
/// another test runs meanwhile. The test's own children may run.
pub struct Hdf5Files {
    _write: RwLockWriteGuard<'static, ()>,
}

impl Drop for Hdf5Files {
    fn drop(&mut self) {
        HOLDS_HDF5_FILES.with(|h| h.set(false));
    }
}

/// Waits until no other test's child runs, then keeps children of other
/// tests from starting until the guard drops.
pub fn hdf5_files() -> Hdf5Files {
    let write = CHILDREN.write().unwrap_or_else(|e| e.into_inner());
    HOLDS_HDF5_FILES.with(|h| h.set(true));
    Hdf5Files { _write: write }
}

/// Held from spawning a child until it has exited (`None` on the thread
/// that holds [`hdf5_files`]).
pub fn child_guard() -> Option<RwLockReadGuard<'static, ()>> {
    if HOLDS_HDF5_FILES.with(|h| h.get()) {
        return None;
    }
    Some(CHILDREN.read().unwrap_or_else(|e| e.into_inner()))
}
