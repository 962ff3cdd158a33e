//! Shared helpers for integration tests: backends under test and a dense
//! in-memory model to compare against.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chunkyard::store::{
    ChunkStore, MemoryStore, NpyOptions, NpyStore, StoreMeta, ZarrOptions, ZarrStore,
};
use chunkyard::{DType, Element};

/// A backend the model tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Npy,
    Zarr,
    #[cfg(feature = "hdf5")]
    Hdf5,
}

/// Every backend built in, for property tests to draw from.
pub fn backends() -> Vec<Backend> {
    vec![
        Backend::Memory,
        Backend::Npy,
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
            (None, Some(path)) if self.backend == Backend::Zarr => {
                let s = ZarrStore::open(path, true).expect("reopen zarr");
                TestStore {
                    store: Arc::new(s),
                    memory: None,
                    path: Some(path.clone()),
                    backend: self.backend,
                }
            }
            #[cfg(feature = "hdf5")]
            (None, Some(path)) if self.backend == Backend::Hdf5 => {
                let s = chunkyard::store::Hdf5Store::open(path, "g/a", None, true)
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
                let s = NpyStore::open(path, Some(&chunks), true).expect("reopen npy");
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

/// Runs Python code (with numpy) and returns its stdout; fails the test if
/// Python or numpy is missing, or the code fails (its assertion message is
/// in the panic).
pub fn python(code: &str) -> String {
    let check = std::process::Command::new("python3")
        .args(["-c", "import numpy"])
        .output();
    match check {
        Ok(o) if o.status.success() => {}
        _ => panic!("numpy is required: pip install numpy"),
    }
    let out = std::process::Command::new("python3")
        .args(["-c", code])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python failed:\n{code}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}
