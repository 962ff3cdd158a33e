//! A read-only map of a whole file for partial reads that copy many
//! small runs (a tile, a strided plane), shared by the stores that keep
//! decoded bytes in files at known offsets: `.npy` (the array), HDF5
//! (unfiltered chunks at their addresses) and raw Zarr chunk files (one
//! map per open chunk file, released together).
//!
//! Faulting pages of a long-lived map costs less than a `pread` per run
//! and much less than mapping per call, but the map's pages count as the
//! process's resident memory. So each read returns an estimate of what it
//! may have touched, its owner adds it up in a [`Touched`] (one per map,
//! or one for a store's many maps), and the maps hand their pages back to
//! the kernel (`MADV_DONTNEED`) after every 32 MiB or so: resident memory
//! stays bounded while the data stays in the page cache. Cold scattered reads
//! read their span ahead first, cold dense ones read it with `pread`s in
//! bounded pieces instead of the map ([`FileMap::copy`], [`super::cover`]).
//!
//! Another process truncating the file while it is mapped is outside what
//! a store can guard against: reads through the map would fault with
//! `SIGBUS`.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use memmap2::{Advice, Mmap, MmapOptions, UncheckedAdvice};

use super::cover;
use crate::error::Result;
use crate::layout::{Strided, copy_region};

/// Longest span of the map a scattered read reads ahead when cold
/// ([`prefetch_if_cold`]), whatever its density.
const PREFETCH_MAX_SPAN: u64 = 8 << 20;

/// A longer span is read ahead when cold if it holds at least one run per
/// this many bytes: a read-ahead then reads at most twice what one page
/// per run would.
const PREFETCH_MIN_DENSITY: u64 = 8 << 10;

/// Page size assumed for aligning advice ranges (4 KiB on x86-64 and most
/// aarch64 Linux; a larger page only makes the advice cover more).
const PAGE_BYTES: usize = 4096;

/// Bytes that reads through the map may touch before its pages are
/// released.
pub(crate) const RELEASE_AFTER_BYTES: u64 = 32 << 20;

/// What one page fault on a file map may make resident: Linux maps the
/// pages around a faulting one that are already in the page cache
/// ("fault-around", 64 KiB by default), so one element per row of a plane
/// costs 64 KiB per row, not 4 KiB.
const FAULT_BYTES: u64 = 64 << 10;

/// What one fault may map when the page cache holds the file in large
/// folios (ext4 and XFS do, for files written in large runs): a whole
/// 2 MiB folio, mapped by one page-middle-directory entry. An estimate
/// that counts fault-around windows only lets random tiles of a
/// just-written file stay resident far past [`RELEASE_AFTER_BYTES`]; see
/// `docs/benchmarks.md#file-map-resident-bound`.
const FOLIO_BYTES: u64 = 2 << 20;

/// A read-only map of a whole file, with the bookkeeping that bounds its
/// resident pages. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct FileMap {
    map: Mmap,
    /// A read went through the map since its pages were last released.
    used: AtomicBool,
}

/// Bytes that reads through one or more file maps may have touched
/// since their pages were last released.
#[derive(Debug, Default)]
pub struct Touched(AtomicU64);

impl Touched {
    /// Notes that a read may have touched `bytes`; `true` when enough
    /// have piled up that the maps' pages should be released now (the
    /// count starts again).
    pub fn note(&self, bytes: u64) -> bool {
        let total = self
            .0
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes);
        total > RELEASE_AFTER_BYTES && self.0.swap(0, Ordering::Relaxed) > RELEASE_AFTER_BYTES
    }
}

impl FileMap {
    /// Maps the whole of `file` read-only, advised for random access.
    pub(crate) fn new(file: &File) -> io::Result<FileMap> {
        Ok(FileMap {
            map: map_file(file)?,
            used: AtomicBool::new(false),
        })
    }

    /// Drops this process's page-table entries for the map (its resident
    /// pages), if a read went through it since the last release; the data
    /// stays in the page cache. Failing costs memory, not correctness.
    pub(crate) fn release(&self) {
        if self.used.swap(false, Ordering::Relaxed) {
            let _ = release_pages(&self.map);
        }
    }

    /// Bytes mapped.
    #[cfg_attr(not(feature = "hdf5"), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Copies the `counts` elements of `elem` bytes at `src` (element offset
    /// and strides counted from byte `base` of the file) into `out` at `at`.
    /// `runs` is how many file runs they make and `span` the bytes from the
    /// first to the last. A cold dense read whose span is long
    /// ([`cover::plan`]) reads the span from `file` in bounded pieces
    /// instead (`read(buf, pos)` fills `buf` from byte `base + pos`, errors
    /// named by the caller) and touches no page of the map; a cold
    /// scattered one reads its span ahead first.
    /// The caller checked that every byte lies inside the map. Returns the
    /// bytes of the map the read may have made resident, for [`Touched`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn copy(
        &self,
        base: usize,
        counts: &[usize],
        elem: usize,
        src: Strided<'_>,
        out: &mut [u8],
        at: Strided<'_>,
        (runs, run_bytes, span): (u64, usize, usize),
        (file, read): (&File, &mut cover::ReadAt<'_>),
    ) -> Result<u64> {
        let start = base + src.offset * elem;
        if cover::plan(runs, run_bytes, span) == cover::Plan::Cover {
            let cold = cover::is_cold(file, start as u64, (start + span - 1) as u64)
                .unwrap_or_else(|| touch_is_slow(&self.map, start));
            if cold {
                cover::read_ahead(file, start as u64, span as u64);
                cover::read_covering(counts, elem, src, out, at, cover::PIECE_BYTES, read)?;
                return Ok(0);
            }
        } else if runs > 1 {
            prefetch_if_cold(&self.map, start, span, runs);
        }
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
        copy_region(counts, elem, &self.map[base..], src, out, at);
        Ok(touched_estimate(runs, run_bytes, span))
    }
}

/// What a read of `runs` runs of `run_bytes` each, spread over `span`
/// bytes of a map, may make resident: per run its bytes and a
/// fault-around window, or per folio-sized window spanned (plus one at
/// either end) a folio, whichever is less.
pub fn touched_estimate(runs: u64, run_bytes: usize, span: usize) -> u64 {
    runs.saturating_mul(run_bytes as u64 + FAULT_BYTES)
        .min((span as u64 / FOLIO_BYTES + 2).saturating_mul(FOLIO_BYTES))
}

/// Maps the whole file read-only with random-access advice (no
/// read-ahead: a one-element read faults in one page).
#[allow(unsafe_code)]
pub(crate) fn map_file(file: &File) -> io::Result<Mmap> {
    // SAFETY: the map is only ever read, through `&[u8]` borrows that live
    // for one `copy_region` call. The only writers this process has are the
    // owning store's: the npy store's positioned writes, which touch the
    // bytes of one chunk, and HDF5's writes of chunks and of its metadata,
    // in place (Zarr never writes a chunk file in place: a write renames a
    // new file over it, leaving a mapped one as it was); the layer above guarantees no read of a chunk runs while
    // that chunk is written (the cache holds the chunk's lock across
    // write-backs and partial reads; the contract in `store/mod.rs`), and
    // reads copy only the bytes of the chunk they read. The kernel keeps
    // the map coherent with those writes. The length is fixed at map time;
    // the owning store drops the map before the file can get shorter, and
    // reads only bytes it checked lie inside the map. Another process
    // truncating or rewriting the file while it is mapped is outside what
    // we can guard against (documented on the module).
    let map = unsafe { MmapOptions::new().map(file)? };
    map.advise(Advice::Random)?;
    Ok(map)
}

/// Drops this process's page-table entries for the map; the pages stay in
/// the page cache and fault back in on the next read.
#[allow(unsafe_code)]
pub fn release_pages(map: &Mmap) -> io::Result<()> {
    // SAFETY: `MADV_DONTNEED` on a shared, read-only file mapping discards
    // no data: there are no private dirty pages, and later reads refault
    // the same file contents from the page cache. Borrows of the map held
    // by other threads stay valid (the range stays mapped).
    unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) }
}

/// How long touching one byte of a map may take before that byte counts
/// as read from the disk: above a warm touch (a minor fault mapping a
/// 2 MiB folio, or 16 small ones) even at its slow tail, below a cold one
/// (a 4 KiB read from the disk); see
/// `docs/benchmarks.md#what-chunkyard-adds-over-the-floor`. A disk fast
/// enough to answer under it gains less from reading ahead.
const COLD_TOUCH: std::time::Duration = std::time::Duration::from_micros(30);

/// Whether touching byte `start` of the map took long enough that it came
/// from the disk ([`COLD_TOUCH`]).
fn touch_is_slow(map: &Mmap, start: usize) -> bool {
    let t = std::time::Instant::now();
    std::hint::black_box(map[start]);
    t.elapsed() >= COLD_TOUCH
}

/// Before a read of `runs` separate runs spread over `len` bytes of the
/// map from `start`: if the first run is not in the page cache, asks
/// the kernel to read the whole span at once (`MADV_WILLNEED`, which
/// returns without waiting), so that the runs' page faults wait for one
/// large read instead of one small read each. The map is advised
/// `MADV_RANDOM` (no read-around), so without this a cold 64x64 tile of
/// float32 rows 8000 bytes apart is 64 serial 4 KiB reads, several times
/// slower than one read of the span (see
/// `docs/benchmarks.md#what-chunkyard-adds-over-the-floor`). Only spans
/// at most `PREFETCH_MAX_SPAN` long, or no sparser than one run per
/// `PREFETCH_MIN_DENSITY` bytes, are read ahead: a scattered selection
/// over a whole file is not.
///
/// Cold is told from warm by timing the first byte's touch, which the
/// copy pays anyway: a touch slower than [`COLD_TOUCH`] waited for the
/// disk. A probe such as a one-byte `preadv2(RWF_NOWAIT)` would cost a
/// system call on every warm tile, a sizeable part of it. A warm
/// touch slowed past the threshold (a preemption) costs one needless
/// read-ahead walk of a cached span; a cold one under it, the serial
/// reads above. Failures cost speed only and are ignored.
fn prefetch_if_cold(map: &Mmap, start: usize, len: usize, runs: u64) {
    if len as u64 > PREFETCH_MAX_SPAN.max(runs.saturating_mul(PREFETCH_MIN_DENSITY)) {
        return;
    }
    if touch_is_slow(map, start) {
        let page = start & !(PAGE_BYTES - 1);
        let _ = map.advise_range(Advice::WillNeed, page, len + (start - page));
    }
}
