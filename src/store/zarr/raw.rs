//! Reads of uncompressed ("raw") chunks straight from their files.
//!
//! A chunk file is raw when it holds exactly the decoded chunk: C order,
//! native byte order, nothing before or after. Then a read needs no codec:
//! a whole chunk is one `pread` into the caller's buffer, an element or part
//! of a row one `pread` of its bytes, and zarrs (its `get` into a `Vec`, the
//! decode copy, the partial decoder's allocations and `stat`) is bypassed.
//! Writes still go through zarrs.
//!
//! Files stay open in a small per-store LRU ([`OpenFiles`]), so that a
//! random element does not pay `open` and `close` (3.4 us against 1.2 us
//! for the `pread` alone, warm, on the 2-core development machine). Chunk
//! files are never changed in place: a write renames a new file over the
//! chunk and an erase unlinks it ([`super::fs`]), so an open file keeps
//! the contents it had, and every call that replaces or removes a chunk
//! file drops that chunk's entry before returning. Another process
//! rewriting a chunk is seen once the entry is dropped or evicted, as with
//! the array's chunk cache; another process truncating a chunk file in
//! place while it is open here is outside what the store guards against
//! (a read past the new end is still an error).

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lru::LruCache;
use memmap2::{Mmap, MmapOptions};
use parking_lot::Mutex;
use zarrs::array::codec::BytesCodec;
use zarrs::array::{CodecChain, CodecMetadataOptions, Endianness};

use super::ZarrInner;
use crate::buffer::ChunkBuf;
use crate::dtype::{DType, normalize_bools};
use crate::error::{Error, Result};
use crate::layout::{Strided, copy_region, for_each_file_run, single_run};
use crate::store::ChunkRegion;

/// Open chunk files a store keeps at most: each is one file descriptor
/// and a few dozen bytes. Random elements of the bench's 100-chunk array
/// (`examples/random_reads.rs`) cost 2.95 us with 64 (a third of them
/// opened their file), 1.97 us with 128 (npy 1.65 in the same run).
pub const OPEN_FILES: usize = 128;

/// Open chunk files all the stores of the process keep at most: half the
/// usual limit of 1024 descriptors per process, so that many arrays open
/// at once leave descriptors for everything else. A store at the limit
/// replaces its own least recently used file, or keeps none. (A store
/// whose `open` meets the limit all the same closes its files and tries
/// again.)
pub const OPEN_FILES_TOTAL: usize = 512;

/// Files held by every store's [`OpenFiles`].
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Whether the codec chain stores a chunk as its decoded bytes: no
/// array-to-array codec (transpose), `bytes` with the machine's byte order
/// (or no byte order, for one-byte elements) as the array-to-bytes codec
/// (not sharding), and no bytes-to-bytes codec (compressor, checksum).
/// Zarr v2 metadata arrives here converted: `order: "F"` is a transpose,
/// filters are codecs, the dtype's byte order is the `bytes` codec's.
pub fn is_raw(codecs: &CodecChain, dtype: DType) -> bool {
    if !codecs.array_to_array_codecs().is_empty() || !codecs.bytes_to_bytes_codecs().is_empty() {
        return false;
    }
    let a2b = codecs.array_to_bytes_codec();
    if a2b.as_any().downcast_ref::<BytesCodec>().is_none() {
        return false;
    }
    let endian = a2b
        .configuration_v3(&CodecMetadataOptions::default())
        .and_then(|c| c.get("endian").cloned())
        .filter(|v| !v.is_null());
    match endian {
        None => dtype.size() == 1,
        Some(v) => match serde_json::from_value::<Endianness>(v) {
            Ok(e) => e.is_native() || dtype.size() == 1,
            Err(_) => false,
        },
    }
}

/// A bounded map from chunk coordinates to that chunk's file, open
/// read-only. See the [module docs](self).
#[derive(Debug)]
pub struct OpenFiles {
    files: Mutex<LruCache<Vec<u64>, Arc<File>>>,
    /// Files opened and `pread`s made (tests count system calls).
    #[cfg(test)]
    pub calls: Mutex<(usize, usize)>,
}

impl OpenFiles {
    pub fn new() -> Self {
        OpenFiles {
            files: Mutex::new(LruCache::unbounded()),
            #[cfg(test)]
            calls: Mutex::new((0, 0)),
        }
    }

    /// The cached file of a chunk.
    fn get(&self, chunk: &[u64]) -> Option<Arc<File>> {
        self.files.lock().get(chunk).cloned()
    }

    /// Keeps a chunk's file open, within this store's and the process's
    /// bounds.
    fn put(&self, chunk: &[u64], file: Arc<File>) {
        let mut files = self.files.lock();
        let room = || {
            HELD.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < OPEN_FILES_TOTAL).then_some(n + 1)
            })
            .is_ok()
        };
        // Replacing an entry, growing within both bounds, or in place of
        // the least recently used file keeps the count right.
        let keep = files.contains(chunk)
            || (files.len() < OPEN_FILES && room())
            || files.pop_lru().is_some();
        if keep {
            files.put(chunk.to_vec(), file);
        }
    }

    /// Drops a chunk's file: its file is about to be, or has been,
    /// replaced or removed.
    pub fn forget(&self, chunk: &[u64]) {
        if self.files.lock().pop(chunk).is_some() {
            HELD.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Drops every file.
    pub fn clear(&self) {
        let mut files = self.files.lock();
        HELD.fetch_sub(files.len(), Ordering::Relaxed);
        files.clear();
    }

    /// Files held (tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.files.lock().len()
    }

    /// Files held by every store (tests).
    #[cfg(test)]
    pub fn held() -> usize {
        HELD.load(Ordering::Relaxed)
    }
}

impl Drop for OpenFiles {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Opens a chunk file read-only; `Ok(None)` if it does not exist. Out of
/// file descriptors, it closes the ones `files` holds and tries again.
fn open(path: &Path, files: &OpenFiles) -> io::Result<Option<File>> {
    #[cfg(test)]
    {
        files.calls.lock().0 += 1;
    }
    let mut retried = false;
    loop {
        match File::open(path) {
            Ok(f) => return Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e)
                if !retried
                    && matches!(
                        rustix::io::Errno::from_io_error(&e),
                        Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE)
                    ) =>
            {
                files.clear();
                retried = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How a region of many file runs is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One `pread` per file-contiguous run, straight into the output.
    Preads,
    /// Map the chunk file for this call and copy out of the map.
    Map,
}

/// Page size the cost model counts in.
const PAGE: usize = 4096;

/// Picks how to read `runs` file runs of `run_bytes` each, spread over
/// `span_bytes` from the first byte to the last.
///
/// Measured on the bench's chunk files (2000 x 2000 float32, 16 MB, page
/// cache warm, 2-core development VM, random positions; a scratch program
/// against memmap2, not kept): a `pread` costs 0.75-0.95 us per run
/// whatever its length up to a few KiB. Mapping the file for the call
/// costs about 13 us (`mmap`, the page tables the first touch allocates,
/// `munmap`) plus about 0.35 us per page mapped, and a fault maps up to
/// 16 pages around the one touched (fault-around; `MADV_RANDOM` made no
/// difference), so the map's cost follows the span the runs cover, not
/// their number. Runs of 256 bytes on consecutive rows (8000 bytes
/// apart): 64 runs (a 64 x 64 tile) 49-56 us by `pread` against 58-64 us
/// mapped; 256 runs 199-208 against 172-206. One element on each of 1000
/// consecutive rows: 735-760 against 656-825; on every 2nd row 956
/// against 1393; every 7th row (`a[::3, ::7, 5]`, 286 runs) 231 against
/// 1249-1456. `a[z, ::2, ::2]` (a million one-element runs) 0.9 ms
/// mapped. Keeping maps open between calls would be faster still (a tile
/// 24-29 us), but an LRU of 64 of them measured no better than mapping
/// per call on random tiles over 100 chunks (tearing down an evicted
/// map's page tables costs what keeping it saved), and held maps pin page
/// tables and show as resident memory.
pub fn method(runs: usize, run_bytes: usize, span_bytes: usize) -> Method {
    const FAULT_AROUND: usize = 16;
    let pages =
        (span_bytes / PAGE + 1).min(runs.saturating_mul((run_bytes / PAGE + 1) * FAULT_AROUND));
    // In hundredths of a microsecond: 0.8 per pread against 13 per map
    // and 0.35 per page mapped.
    if runs.saturating_mul(80) > pages.saturating_mul(35).saturating_add(1300) {
        Method::Map
    } else {
        Method::Preads
    }
}

/// Maps a chunk file of `len` bytes read-only for one copy.
#[allow(unsafe_code)]
fn map_chunk(file: &File, len: usize) -> io::Result<Mmap> {
    // SAFETY: the map is only read, through one `&[u8]` borrow for one
    // `copy_region` call, and dropped before the read returns. This
    // process never writes a chunk file in place: writes rename a new
    // file over the chunk and erases unlink it (`fs.rs`), which leave
    // this open file's contents as they were; and the layer above runs no
    // write of a chunk while a read of it runs. Its length was checked
    // against `len` when it was opened. Another process truncating the
    // file in place while it is mapped is outside what we can guard
    // against (the module docs say so).
    unsafe { MmapOptions::new().len(len).map(file) }
}

impl ZarrInner {
    /// A raw chunk's file, from the cache or opened (and its length
    /// checked); `Ok(None)` if the chunk was never written.
    fn raw_file(&self, chunk: &[u64]) -> Result<Option<Arc<File>>> {
        if let Some(f) = self.files.get(chunk) {
            return Ok(Some(f));
        }
        let path = self.chunk_path(chunk);
        let Some(file) = open(&path, &self.files).map_err(|e| Error::io(&path, e))? else {
            return Ok(None);
        };
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let want = self.meta.chunk_bytes() as u64;
        if len != want {
            return Err(Error::format(
                &path,
                format!("the chunk file holds {len} bytes, expected {want} (uncompressed)"),
            ));
        }
        let file = Arc::new(file);
        self.files.put(chunk, file.clone());
        Ok(Some(file))
    }

    /// `read_exact_at` with the chunk file named in errors; a short read
    /// (the file shrank since it was checked) is a corrupt chunk.
    fn raw_pread(&self, file: &File, chunk: &[u64], buf: &mut [u8], pos: usize) -> Result<()> {
        #[cfg(test)]
        {
            self.files.calls.lock().1 += 1;
        }
        file.read_exact_at(buf, pos as u64).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.corrupt(
                    chunk,
                    format!(
                        "truncated: bytes {pos}..{} asked for, expected {} bytes",
                        pos + buf.len(),
                        self.meta.chunk_bytes()
                    ),
                )
            } else {
                Error::io(self.chunk_path(chunk), e)
            }
        })
    }

    /// Reads a whole raw chunk into `out` (`chunk_bytes` long); `Ok(false)`
    /// if it was never written.
    pub(super) fn raw_read_chunk_into(&self, chunk: &[u64], out: &mut [u8]) -> Result<bool> {
        let Some(file) = self.raw_file(chunk)? else {
            return Ok(false);
        };
        self.raw_pread(&file, chunk, out, 0)?;
        if self.meta.dtype == DType::Bool {
            normalize_bools(out);
        }
        Ok(true)
    }

    /// Reads a whole raw chunk.
    pub(super) fn raw_read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>> {
        let mut buf = ChunkBuf::zeroed(self.meta.chunk_bytes());
        Ok(self.raw_read_chunk_into(chunk, &mut buf)?.then_some(buf))
    }

    /// If `region` is one run of the file that lands as one run of the
    /// output at `at` (an element, part of a row): its byte offset in the
    /// file and its byte range in `out`. Allocates nothing: this is the
    /// random element's path.
    fn raw_one_run(
        &self,
        region: ChunkRegion<'_>,
        at: Strided<'_>,
    ) -> Option<(usize, Range<usize>)> {
        let elem = self.meta.dtype.size();
        let last = region.len().checked_sub(1);
        let mut offset = 0usize;
        let mut len = 1usize;
        for (axis, (&(start, step, count), &c)) in region.iter().zip(&self.meta.chunks).enumerate()
        {
            offset = offset * c as usize + start as usize;
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

    /// Reads a region of a raw chunk into `out` at `at` (both checked by
    /// the caller); `Ok(false)` if the chunk was never written (`out`
    /// untouched). Values are as stored: bools are not normalized.
    pub(crate) fn raw_read_region_into(
        &self,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        out: &mut [u8],
        at: Strided<'_>,
        force: Option<Method>,
    ) -> Result<bool> {
        let Some(file) = self.raw_file(chunk)? else {
            return Ok(false);
        };
        if region.iter().any(|r| r.2 == 0) {
            return Ok(true);
        }
        if force.is_none()
            && let Some((pos, range)) = self.raw_one_run(region, at)
        {
            self.raw_pread(&file, chunk, &mut out[range], pos)?;
            return Ok(true);
        }
        let elem = self.meta.dtype.size();
        let fs = crate::layout::c_strides(&self.meta.chunks);
        let offset: usize = region.iter().zip(&fs).map(|(r, &s)| r.0 as usize * s).sum();
        let strides: Vec<usize> = region
            .iter()
            .zip(&fs)
            .map(|(r, &s)| r.1 as usize * s)
            .collect();
        let counts: Vec<usize> = region.iter().map(|r| r.2 as usize).collect();
        let src = Strided {
            offset,
            strides: &strides,
        };
        if force.is_none()
            && let Some((s, d, n)) = single_run(&counts, src, at)
        {
            self.raw_pread(&file, chunk, &mut out[d * elem..(d + n) * elem], s * elem)?;
            return Ok(true);
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
        let how = force.unwrap_or_else(|| method(elems / run, run * elem, span * elem));
        match how {
            Method::Map => {
                let map = map_chunk(&file, self.meta.chunk_bytes())
                    .map_err(|e| Error::io(self.chunk_path(chunk), e))?;
                copy_region(&counts, elem, &map, src, out, at);
            }
            Method::Preads => {
                let mut result = Ok(());
                let mut tmp = Vec::new();
                for_each_file_run(&counts, src, at, |fo, bo, n, stride| {
                    if result.is_err() {
                        return;
                    }
                    let (pos, range) = (fo * elem, bo * elem..(bo + n) * elem);
                    result = if stride == 1 || n == 1 {
                        self.raw_pread(&file, chunk, &mut out[range], pos)
                    } else {
                        // File-contiguous, output-strided: read, then
                        // scatter. The array lays outputs out so that this
                        // does not happen; it is here for correctness.
                        tmp.resize(range.len(), 0);
                        self.raw_pread(&file, chunk, &mut tmp, pos).map(|()| {
                            for (i, e) in tmp.chunks_exact(elem).enumerate() {
                                let at = range.start + i * stride * elem;
                                out[at..at + elem].copy_from_slice(e);
                            }
                        })
                    };
                });
                result?;
            }
        }
        Ok(true)
    }
}
