//! The OS page cache around the bench's read passes: a built file's pages
//! dropped from it (cold) or all read into it (warm).

use std::path::{Path, PathBuf};

use chunkyard::Scratch;
use chunkyard::{Error, Result};

/// Drops every file under `path` (a file or a directory) from the OS page
/// cache with `posix_fadvise(DONTNEED)`; no privileges needed. The files
/// must be clean (flushed), which they are after a build. Returns false
/// where the platform cannot.
pub fn drop_page_cache(path: &Path) -> Result<bool> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        for p in files_under(path)? {
            let f = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
            rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)
                .map_err(|e| Error::io(&p, e.into()))?;
        }
        Ok(true)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = path;
        Ok(false)
    }
}

/// Reads every file under `path` once, so that the OS page cache holds
/// all of it: what "warm" means in the read workloads (and in
/// `../shared/ANCHORS.md`, where the file was read right after it was
/// written). Reading through 8 MiB at a time keeps this process's memory
/// flat; the pages read are the kernel's, not ours.
pub fn warm_page_cache(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut scratch = Scratch::<u8>::default();
    let buf = scratch.reset(8 << 20);
    for p in files_under(path)? {
        let mut f = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
        while f.read(buf).map_err(|e| Error::io(&p, e))? > 0 {}
    }
    Ok(())
}

/// `path` if it is a file, or every file below it if it is a directory
/// (a Zarr array).
fn files_under(path: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?;
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).map_err(|e| Error::io(&p, e))? {
                stack.push(e.map_err(|e| Error::io(&p, e))?.path());
            }
        } else if meta.is_file() {
            files.push(p);
        }
    }
    Ok(files)
}
