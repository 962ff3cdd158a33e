//! HDF5 files: recognising one by its signature, opening it with typed
//! errors, dataset names, and listing the datasets a file holds.

use std::fs::File as StdFile;
use std::io::Read;
use std::path::Path;

use hdf5_metno::{File, Group};

use super::types::element_type;
use super::{ffi, store_err};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// The eight bytes every HDF5 file's superblock starts with.
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// A dataset found in a file, for listings (`chunkyard info file.h5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSummary {
    /// Absolute path inside the file.
    pub name: String,
    /// The element type, if chunkyard reads it; else HDF5's description.
    pub dtype: std::result::Result<DType, String>,
    /// Shape.
    pub shape: Vec<u64>,
    /// Chunk shape, for chunked datasets.
    pub chunks: Option<Vec<u64>>,
}

/// Whether `path` starts with the HDF5 signature (at 0 or, after a user
/// block, at 512, 1024, 2048, ...).
pub(super) fn has_signature(path: &Path) -> Result<bool> {
    let mut f = StdFile::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = [0u8; 8];
    let mut at = 0u64;
    loop {
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(at))
            .map_err(|e| Error::io(path, e))?;
        match f.read_exact(&mut head) {
            Ok(()) if &head == SIGNATURE => return Ok(true),
            Ok(()) => {}
            Err(_) => return Ok(false),
        }
        at = if at == 0 { 512 } else { at * 2 };
        if at > 1 << 30 {
            return Ok(false);
        }
    }
}

/// Opens a file with HDF5, with typed errors for missing and foreign
/// files (and none of HDF5's error stack on stderr).
pub(super) fn open_file(path: &Path, writable: bool) -> Result<File> {
    if !has_signature(path)? {
        return Err(Error::format(
            path,
            "not an HDF5 file (no HDF5 signature in its first bytes)",
        ));
    }
    let f = if writable {
        File::open_rw(path)
    } else {
        File::open(path)
    };
    f.map_err(|e| {
        if e.to_string().contains("already open for read-only") {
            // HDF5 cannot reopen for writing a file this process has open
            // read-only (say, as the source of a convert).
            Error::Unsupported(format!(
                "{}: the file is already open read-only in this process; \
                 write to another file",
                path.display()
            ))
        } else {
            store_err(format!("{}: cannot open: {e}", path.display()))
        }
    })
}

/// `group/data` -> `/group/data`.
pub(super) fn absolute(name: &str) -> String {
    let trimmed = name.trim_matches('/');
    format!("/{trimmed}")
}

/// Every dataset in the file, depth first, sorted by name.
pub fn list_datasets(path: &Path) -> Result<Vec<DatasetSummary>> {
    init()?;
    let file = open_file(path, false)?;
    let mut out = Vec::new();
    let err = |e: hdf5_metno::Error| store_err(format!("{}: {e}", path.display()));
    fn walk(
        g: &Group,
        out: &mut Vec<DatasetSummary>,
        err: &dyn Fn(hdf5_metno::Error) -> Error,
    ) -> Result<()> {
        for ds in g.datasets().map_err(err)? {
            out.push(DatasetSummary {
                name: ds.name(),
                dtype: element_type(&ds).map(|(d, _)| d),
                shape: ds.shape().into_iter().map(|n| n as u64).collect(),
                chunks: ds
                    .chunk()
                    .map(|c| c.into_iter().map(|n| n as u64).collect()),
            });
        }
        for sub in g.groups().map_err(err)? {
            walk(&sub, out, err)?;
        }
        Ok(())
    }
    walk(&file, &mut out, &err)?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Registers the LZ4 filter (once per process).
pub(super) fn init() -> Result<()> {
    ffi::register_lz4().map_err(store_err)
}
