//! Reads of a region of a "raw" chunk: a chunk stored in a file exactly as
//! it is decoded (C order, native byte order, no codec), starting at some
//! byte offset. Uncompressed Zarr chunk files (offset 0) and unfiltered
//! HDF5 chunks (at the address HDF5's chunk index gives) are both read
//! this way, so a region needs no decode: one `pread` for an element, part
//! of a row or whole consecutive rows, else a `pread` per run or one map
//! of the chunk for the call, whichever [`method`] says is cheaper.
//!
//! The callers own the file and the checks (chunk coordinates, region
//! inside the chunk, `at` inside `out`); this module only turns a region
//! into reads.

use std::fs::File;
use std::io;
use std::ops::Range;

use memmap2::{Mmap, MmapOptions};

use super::ChunkRegion;
use super::filemap::{FileMap, Touched};
use crate::error::Result;
use crate::layout::{Small, Strided, copy_region, for_each_file_run, single_run};

/// How a region of many file runs is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// One `pread` per file-contiguous run, straight into the output.
    Preads,
    /// Map the chunk for this call and copy out of the map.
    Map,
    /// Copy out of a long-lived map of the whole file ([`FileMap`]),
    /// when the caller has one (only tests force it).
    #[cfg_attr(not(all(test, feature = "hdf5")), allow(dead_code))]
    FileMap,
}

/// Page size the cost model counts in.
const PAGE: usize = 4096;

/// Picks how to read `runs` file runs of `run_bytes` each, spread over
/// `span_bytes` from the first byte to the last.
///
/// A `pread` costs the same per run whatever its length up to a few KiB.
/// Mapping the file for the call costs a fixed amount (`mmap`, the page
/// tables the first touch allocates, `munmap`) plus a little per page
/// mapped, and a fault maps up to 16 pages around the one touched
/// (fault-around, whatever the advice), so the map's cost follows the
/// span the runs cover, not their number: many runs close together are
/// cheaper mapped, few or scattered ones by `pread`. The model and the
/// measurements behind its constants are in
/// `docs/benchmarks.md#reading-runs-pread-or-map`. A map kept between
/// calls is cheaper still, and the stores use one whenever they have it
/// (a [`FileMap`] of the whole file, with its resident bound): this model
/// decides only for a chunk file a Zarr store could not keep open.
pub(crate) fn method(runs: usize, run_bytes: usize, span_bytes: usize) -> Method {
    const FAULT_AROUND: usize = 16;
    let pages =
        (span_bytes / PAGE + 1).min(runs.saturating_mul((run_bytes / PAGE + 1) * FAULT_AROUND));
    // The model's costs, in hundredths of a microsecond: 0.8 per pread
    // against 13 per map and 0.35 per page mapped.
    if runs.saturating_mul(80) > pages.saturating_mul(35).saturating_add(1300) {
        Method::Map
    } else {
        Method::Preads
    }
}

/// A chunk's bytes mapped read-only for one copy.
pub(crate) struct ChunkMap {
    map: Mmap,
    /// Where the chunk starts in the map (the map starts on a page).
    start: usize,
    len: usize,
}

impl std::ops::Deref for ChunkMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map[self.start..self.start + self.len]
    }
}

/// Maps the `len` bytes of a chunk stored at byte `base` of `file`,
/// read-only, for one copy out of it.
pub(crate) fn map_chunk(file: &File, base: u64, len: usize) -> io::Result<ChunkMap> {
    map_at(file, base, len, false)
}

/// Maps the `len` stored bytes of a filtered HDF5 chunk at byte `base` of
/// `file`, read-only and populated (one system call makes every page
/// present), for one decode out of it.
#[cfg(feature = "hdf5")]
pub(crate) fn map_stored(file: &File, base: u64, len: usize) -> io::Result<ChunkMap> {
    map_at(file, base, len, true)
}

#[allow(unsafe_code)]
fn map_at(file: &File, base: u64, len: usize, populate: bool) -> io::Result<ChunkMap> {
    let page = PAGE as u64;
    let aligned = base / page * page;
    let start = (base - aligned) as usize;
    let mut opts = MmapOptions::new();
    opts.offset(aligned).len(start + len);
    if populate {
        opts.populate();
    }
    // SAFETY: the map is only read, through one `&[u8]` borrow of the
    // chunk's own bytes for one copy or decode out of it, and is dropped
    // before the read returns. The callers (`zarr/raw.rs`, `hdf5`)
    // guarantee that nothing in this process writes those bytes meanwhile:
    // the layer above runs no write of a chunk while a read of it runs,
    // Zarr never rewrites a chunk file in place (a write renames a new
    // file over it), and HDF5 writes a chunk with its direct chunk write,
    // all at once, at the address its chunk index then gives (an
    // unfiltered one at its own address, a filtered one of another size
    // moved), never into another chunk's. Bytes of the same pages outside
    // the chunk (HDF5 metadata, a neighbouring chunk) may be written in
    // place by this process; the kernel keeps a shared map coherent with
    // those writes and they are never read through it. The callers
    // checked that the file holds `base + len` bytes. Another process
    // truncating or rewriting the file while it is mapped is outside what
    // we can guard against (the backends' docs say so).
    let map = unsafe { opts.map(file)? };
    Ok(ChunkMap { map, start, len })
}

/// A long-lived map of the file that holds a chunk, for reads of many
/// runs.
pub(crate) struct Mapped<'a> {
    /// Gets the map, made on first use (it covers the chunk: the caller
    /// checked); `None` if it cannot be made, which costs speed only.
    pub map: &'a dyn Fn() -> Option<&'a FileMap>,
    /// The chunk's first byte in the file.
    pub base: usize,
    /// The file mapped, for the page-cache probe of a cold dense read
    /// (which reads with the caller's `pread`).
    pub file: &'a File,
    /// What reads through this map and its siblings may have made
    /// resident.
    pub touched: &'a Touched,
    /// Releases the resident pages of every map `touched` counts for.
    pub release: &'a dyn Fn(),
    /// Use the map only if at most this many bytes lie between runs on
    /// average (else [`method`] decides): where the page cache holds the
    /// file in small folios, each sparse run costs a page fault that a
    /// `pread` is cheaper than. `None`: always.
    pub max_gap: Option<usize>,
}

/// A chunk stored raw in a file: in C order, at element strides
/// `strides` from its first element. A chunk stored whole (edge chunks
/// too) has the C strides of its own shape; a block of a larger C-order
/// array (an HDF5 contiguous dataset read as chunks) has the array's.
pub(crate) struct RawChunk<'a> {
    /// Element strides in the file, per axis (the last is 1).
    pub strides: &'a [usize],
    /// Element size in bytes.
    pub elem: usize,
}

impl RawChunk<'_> {
    /// If `region` is one run of the file that lands as one run of the
    /// output at `at` (an element, part of a row): its byte offset in the
    /// chunk and its byte range in `out`. Allocates nothing: this is the
    /// random element's path.
    fn one_run(&self, region: ChunkRegion<'_>, at: Strided<'_>) -> Option<(usize, Range<usize>)> {
        let elem = self.elem;
        let last = region.len().checked_sub(1);
        let mut offset = 0usize;
        let mut len = 1usize;
        for (axis, (&(start, step, count), &fs)) in region.iter().zip(self.strides).enumerate() {
            offset += start as usize * fs;
            if Some(axis) == last {
                if count > 1 && (step != 1 || at.strides[axis] != 1) {
                    return None;
                }
                len = count as usize;
            } else if count != 1 {
                return None;
            }
        }
        Some((offset * elem, at.offset * elem..(at.offset + len) * elem))
    }

    /// Reads `region` of the chunk into `out` at `at` (both checked by the
    /// caller). `pread(buf, pos)` fills `buf` from byte `pos` of the chunk;
    /// `map()` maps the chunk; `file_map`, if the caller keeps one, is a
    /// map of the whole file (the chunk starting at byte `base`, checked to
    /// lie inside it) with that file, and serves every read of many runs.
    /// `force` picks the method for many runs (tests compare them); `None`
    /// takes the one-`pread` shortcuts, then the file map or what
    /// [`method`] chooses.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn read_region_into(
        &self,
        region: ChunkRegion<'_>,
        out: &mut [u8],
        at: Strided<'_>,
        force: Option<Method>,
        mut pread: impl FnMut(&mut [u8], usize) -> Result<()>,
        map: impl FnOnce() -> Result<ChunkMap>,
        file_map: Option<Mapped<'_>>,
    ) -> Result<()> {
        if region.iter().any(|r| r.2 == 0) {
            return Ok(());
        }
        if force.is_none()
            && let Some((pos, range)) = self.one_run(region, at)
        {
            return pread(&mut out[range], pos);
        }
        let elem = self.elem;
        let fs = self.strides;
        let offset: usize = region.iter().zip(fs).map(|(r, &s)| r.0 as usize * s).sum();
        let strides: Small<usize> = region
            .iter()
            .zip(fs)
            .map(|(r, &s)| r.1 as usize * s)
            .collect();
        let counts: Small<usize> = region.iter().map(|r| r.2 as usize).collect();
        let src = Strided {
            offset,
            strides: &strides,
        };
        if force.is_none()
            && let Some((s, d, n)) = single_run(&counts, src, at)
        {
            return pread(&mut out[d * elem..(d + n) * elem], s * elem);
        }
        let elems: usize = counts.iter().product();
        let run = match region.last() {
            Some(&(_, 1, n)) => n as usize,
            _ => 1,
        };
        let span = counts
            .iter()
            .zip(&strides)
            .map(|(&n, &s)| (n - 1) * s)
            .sum::<usize>()
            + 1;
        let runs = elems / run;
        // Bytes between the runs, on average.
        let gap = (span - elems) * elem / runs.max(1);
        let dense = |m: &Mapped<'_>| m.max_gap.is_none_or(|g| gap <= g);
        let mapped = file_map
            .filter(|f| match force {
                Some(Method::FileMap) => true,
                None => dense(f),
                Some(_) => false,
            })
            .and_then(|f| (f.map)().map(|fm| (fm, f)));
        let how = match (force, mapped) {
            (_, Some(m)) => Ok(m),
            (Some(Method::FileMap), None) => Err(Method::Map),
            (Some(m), None) => Err(m),
            (None, None) => Err(method(runs, run * elem, span * elem)),
        };
        match how {
            Ok((fm, m)) => {
                let runs = runs as u64;
                let touched = fm.copy(
                    m.base,
                    &counts,
                    elem,
                    src,
                    out,
                    at,
                    (runs, run * elem, span * elem),
                    (m.file, &mut pread),
                )?;
                if m.touched.note(touched) {
                    (m.release)();
                }
                Ok(())
            }
            Err(Method::Map | Method::FileMap) => {
                let map = map()?;
                copy_region(&counts, elem, &map, src, out, at);
                Ok(())
            }
            Err(Method::Preads) => {
                let mut result = Ok(());
                let mut tmp = Vec::new();
                for_each_file_run(&counts, src, at, |fo, bo, n, stride| {
                    if result.is_err() {
                        return;
                    }
                    let (pos, range) = (fo * elem, bo * elem..(bo + n) * elem);
                    result = if stride == 1 || n == 1 {
                        pread(&mut out[range], pos)
                    } else {
                        // File-contiguous, output-strided: read, then
                        // scatter. The array lays outputs out so that this
                        // does not happen; it is here for correctness.
                        tmp.resize(range.len(), 0);
                        pread(&mut tmp, pos).map(|()| {
                            for (i, e) in tmp.chunks_exact(elem).enumerate() {
                                let at = range.start + i * stride * elem;
                                out[at..at + elem].copy_from_slice(e);
                            }
                        })
                    };
                });
                result
            }
        }
    }
}
