//! Turning command-line arguments into library values: shapes, and
//! arrays opened read-only.

use std::path::Path;

use chunkyard::{ArrayHandle, ChunkCache, Error, OpenOptions, Result};

/// `500,2000,2000` (or `(500, 2000, 2000)`) as a shape; `what` names the
/// option in the error.
pub(crate) fn parse_shape(text: &str, what: &str) -> Result<Vec<u64>> {
    let t = text.trim().trim_start_matches('(').trim_end_matches(')');
    if t.trim().is_empty() {
        return Ok(Vec::new());
    }
    t.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.trim().parse::<u64>().map_err(|_| {
                Error::invalid(format!(
                    "{what} {text:?}: {p:?} is not a non-negative integer"
                ))
            })
        })
        .collect()
}

/// `path` opened read-only with `cache`.
pub(crate) fn open_read(path: &Path, cache: ChunkCache) -> Result<ArrayHandle> {
    ArrayHandle::open(path, OpenOptions::new().read_only(true).cache(cache))
}
