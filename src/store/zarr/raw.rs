//! Reads of uncompressed ("raw") chunks straight from their files.
//!
//! A chunk file is raw when it holds exactly the decoded chunk: C order,
//! native byte order, nothing before or after. Then a read needs no codec:
//! a whole chunk is one `pread` into the caller's buffer, an element or part
//! of a row one `pread` of its bytes, a region of many runs a copy out of a
//! map of the file kept with it ([`FileMap`]; the maps of a store share
//! one resident bound), and zarrs (its `get` into a `Vec`, the decode
//! copy, the partial decoder's allocations and `stat`) is bypassed. Writes
//! of raw chunks to a directory bypass zarrs too (`write_chunk_locked` in
//! `io.rs`); on object storage they still go through its codecs.
//!
//! Files stay open in a small per-store LRU ([`OpenFiles`]), so that a
//! random element does not pay `open` and `close`, which cost more than
//! the `pread` itself (`docs/benchmarks.md#open-zarr-chunk-files`). Chunk
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
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use lru::LruCache;
use memmap2::MmapOptions;
use parking_lot::Mutex;
use zarrs::array::codec::BytesCodec;
use zarrs::array::{CodecChain, CodecMetadataOptions, Endianness};

use super::ZarrInner;
use super::blosc::{self, BloscCodec};
use super::lz4::{self, Lz4Codec};
use crate::buffer::{ChunkBuf, MAP_THRESHOLD};
use crate::dtype::{DType, normalize_bools};
use crate::error::{Error, Result};
use crate::layout::Strided;
use crate::store::ChunkRegion;
use crate::store::filemap::{FileMap, Touched};
pub(super) use crate::store::rawio::Method;
#[cfg(test)]
pub(crate) use crate::store::rawio::method;
use crate::store::rawio::{self, Mapped, RawChunk};

/// Open chunk files a store keeps at most: each is one file descriptor
/// and a few dozen bytes. A quarter of [`open_files_total`], from 16 to
/// 1024: 128 under the usual limit of 1024 descriptors per process.
/// Random elements slow down as soon as the bound is below the array's
/// number of chunks (`docs/benchmarks.md#open-zarr-chunk-files`); the
/// default 500-chunk array needs 500 to keep its files open.
pub(super) fn open_files() -> usize {
    (open_files_total() / 4).clamp(16, 1024)
}

/// Open chunk files all the stores of the process keep at most: half the
/// process's limit of descriptors (`RLIMIT_NOFILE`, read once), from 64
/// to 4096, so that many arrays open at once leave descriptors for
/// everything else: 512 under the usual limit of 1024. A store at the
/// limit replaces its own least recently used file, or keeps none. (A
/// store whose `open` meets the limit all the same closes its files and
/// tries again.)
pub(super) fn open_files_total() -> usize {
    static TOTAL: OnceLock<usize> = OnceLock::new();
    *TOTAL.get_or_init(|| {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        (limit / 2).clamp(64, 4096) as usize
    })
}

/// Reads of many runs copy from a chunk file's map only when at most this
/// many bytes lie between runs on average; sparser ones are a `pread` each.
/// Chunk files read once are cached in small folios, so each sparse run
/// through the map is a page fault that costs more than a `pread`, while
/// dense runs (a tile) share their faults; see
/// `docs/benchmarks.md#reading-runs-pread-or-map`.
const MAP_MAX_GAP: usize = 16 << 10;

/// Files held by every store's [`OpenFiles`].
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Whether the codec chain stores a chunk as its decoded bytes: no
/// array-to-array codec (transpose), `bytes` with the machine's byte order
/// (or no byte order, for one-byte elements) as the array-to-bytes codec
/// (not sharding), and no bytes-to-bytes codec (compressor, checksum).
/// Zarr v2 metadata arrives here converted: `order: "F"` is a transpose,
/// filters are codecs, the dtype's byte order is the `bytes` codec's.
pub(super) fn is_raw(codecs: &CodecChain, dtype: DType) -> bool {
    codecs.bytes_to_bytes_codecs().is_empty() && stores_native_bytes(codecs, dtype)
}

/// Whether the codec chain is `bytes` (as for [`is_raw`]) followed by
/// numcodecs' LZ4 or Blosc and nothing else: a chunk file is then one
/// LZ4 block or Blosc frame of the decoded chunk, which [`ZarrInner::lz4_read_chunk_into`] decodes
/// straight into the caller's buffer.
pub(super) fn is_lz4(codecs: &CodecChain, dtype: DType) -> bool {
    matches!(codecs.bytes_to_bytes_codecs(), [c] if c.as_any().is::<Lz4Codec>() || c.as_any().is::<BloscCodec>())
        && stores_native_bytes(codecs, dtype)
}

/// Whether the one bytes-to-bytes codec [`is_lz4`] found is Blosc (whose
/// frames [`ZarrInner::lz4_read_chunk_into`] decodes the same way).
pub(super) fn is_blosc(codecs: &CodecChain) -> bool {
    matches!(codecs.bytes_to_bytes_codecs(), [c] if c.as_any().is::<BloscCodec>())
}

/// No array-to-array codec and `bytes` in the machine's byte order as the
/// array-to-bytes codec.
fn stores_native_bytes(codecs: &CodecChain, dtype: DType) -> bool {
    if !codecs.array_to_array_codecs().is_empty() {
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

/// A chunk file open read-only, and its map once a read of many runs
/// wanted one.
#[derive(Debug)]
pub(super) struct OpenChunk {
    file: File,
    /// The store keeps this entry; else it lives for one call, and a map
    /// is not worth making.
    held: AtomicBool,
    /// The whole file mapped ([`FileMap`]); `None` inside if it could not
    /// be.
    map: OnceLock<Option<FileMap>>,
}

/// A bounded map from chunk coordinates to that chunk's file, open
/// read-only. See the [module docs](self).
#[derive(Debug)]
pub(super) struct OpenFiles {
    files: Mutex<LruCache<Vec<u64>, Arc<OpenChunk>>>,
    /// What reads through the files' maps may have made resident.
    touched: Touched,
    /// Files opened and `pread`s made (tests count system calls).
    #[cfg(test)]
    pub calls: Mutex<(usize, usize)>,
}

impl OpenFiles {
    pub(super) fn new() -> Self {
        OpenFiles {
            files: Mutex::new(LruCache::unbounded()),
            touched: Touched::default(),
            #[cfg(test)]
            calls: Mutex::new((0, 0)),
        }
    }

    /// The cached file of a chunk.
    fn get(&self, chunk: &[u64]) -> Option<Arc<OpenChunk>> {
        self.files.lock().get(chunk).cloned()
    }

    /// Keeps a chunk's file open, within this store's and the process's
    /// bounds.
    fn put(&self, chunk: &[u64], file: Arc<OpenChunk>) {
        let mut files = self.files.lock();
        let room = || {
            HELD.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < open_files_total()).then_some(n + 1)
            })
            .is_ok()
        };
        // Replacing an entry, growing within both bounds, or in place of
        // the least recently used file keeps the count right.
        let keep = files.contains(chunk)
            || (files.len() < open_files() && room())
            || files.pop_lru().is_some();
        if keep {
            file.held.store(true, Ordering::Relaxed);
            files.put(chunk.to_vec(), file);
        }
    }

    /// Hands back the resident pages of every held file's map.
    /// The maps are collected under the lock and released outside it, so
    /// that lookups do not wait for the `madvise` calls.
    fn release_maps(&self) {
        let held: Vec<Arc<OpenChunk>> = self.files.lock().iter().map(|(_, f)| f.clone()).collect();
        for f in held {
            if let Some(Some(m)) = f.map.get() {
                m.release();
            }
        }
    }

    /// Drops a chunk's file: its file is about to be, or has been,
    /// replaced or removed.
    pub(super) fn forget(&self, chunk: &[u64]) {
        if self.files.lock().pop(chunk).is_some() {
            HELD.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Drops every file.
    pub(super) fn clear(&self) {
        let mut files = self.files.lock();
        HELD.fetch_sub(files.len(), Ordering::Relaxed);
        files.clear();
    }

    /// Files held (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.files.lock().len()
    }

    /// Held files with a map (tests).
    #[cfg(test)]
    pub(super) fn maps(&self) -> usize {
        let files = self.files.lock();
        files
            .iter()
            .filter(|(_, f)| matches!(f.map.get(), Some(Some(_))))
            .count()
    }

    /// Files held by every store (tests).
    #[cfg(test)]
    pub(super) fn held() -> usize {
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

impl ZarrInner {
    /// A raw chunk's file, from the cache or opened (and its length
    /// checked); `Ok(None)` if the chunk was never written.
    fn raw_file(&self, chunk: &[u64]) -> Result<Option<Arc<OpenChunk>>> {
        if let Some(f) = self.files.get(chunk) {
            return Ok(Some(f));
        }
        let path = self.chunk_path(chunk);
        if let Some(dir) = self.storage.dir() {
            // This process's write of the chunk may not be renamed yet.
            dir.wait_written(&path);
        }
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
        let file = Arc::new(OpenChunk {
            file,
            held: AtomicBool::new(false),
            map: OnceLock::new(),
        });
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
        let Some(open) = self.raw_file(chunk)? else {
            return Ok(false);
        };
        self.raw_pread(&open.file, chunk, out, 0)?;
        if self.meta.dtype == DType::Bool {
            normalize_bools(out);
        }
        Ok(true)
    }

    /// Reads a whole LZ4 chunk ([`is_lz4`]) into `out` (`chunk_bytes`
    /// long); `Ok(false)` if it was never written. A large chunk file is
    /// mapped and its block decoded from the page cache straight into
    /// `out`: no copy of the encoded bytes and no decoded buffer in
    /// between (zarrs reads the file into a `Vec`, decodes into another
    /// and the cache copied that into its own). A file longer than LZ4
    /// can make the chunk is corrupt, and is neither mapped nor read.
    #[allow(unsafe_code)]
    pub(super) fn lz4_read_chunk_into(&self, chunk: &[u64], out: &mut [u8]) -> Result<bool> {
        let path = self.chunk_path(chunk);
        let Some(file) = open(&path, &self.files).map_err(|e| Error::io(&path, e))? else {
            return Ok(false);
        };
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        let (most, name) = if self.blosc {
            (blosc::encoded_bound(out.len()), "Blosc")
        } else {
            (lz4::encoded_bound(out.len()), "LZ4")
        };
        if len > most as u64 {
            return Err(self.corrupt(
                chunk,
                format!(
                    "the chunk file holds {len} bytes, more than {name} makes of {} ({most})",
                    out.len()
                ),
            ));
        }
        let decode_into = if self.blosc {
            blosc::decode_into
        } else {
            lz4::decode_into
        };
        let len = len as usize;
        let decoded = if len >= MAP_THRESHOLD {
            // SAFETY: the map is read-only and private to this call. Chunk
            // files are replaced by rename, never rewritten in place
            // (`super::fs`), so the mapped inode keeps its bytes; another
            // process truncating it in place is outside what the store
            // guards against (module docs), as for every file map.
            let map = unsafe { MmapOptions::new().len(len).populate().map(&file) }
                .map_err(|e| Error::io(&path, e))?;
            decode_into(&map, out)
        } else {
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, 0)
                .map_err(|e| Error::io(&path, e))?;
            decode_into(&buf, out)
        };
        decoded.map_err(|m| self.corrupt(chunk, m))?;
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
        let Some(open) = self.raw_file(chunk)? else {
            return Ok(false);
        };
        let file = &open.file;
        // Reads of many runs copy out of a map of the file kept with it,
        // if the file is kept.
        let one_run = region.iter().rev().skip(1).all(|r| r.2 <= 1);
        let map = || open.map.get_or_init(|| FileMap::new(file).ok()).as_ref();
        let keep_map = !one_run && open.held.load(Ordering::Relaxed);
        let release = || self.files.release_maps();
        let raw = RawChunk {
            strides: &self.chunk_strides,
            elem: self.meta.dtype.size(),
        };
        raw.read_region_into(
            region,
            out,
            at,
            force,
            |buf, pos| self.raw_pread(file, chunk, buf, pos),
            || {
                rawio::map_chunk(file, 0, self.meta.chunk_bytes())
                    .map_err(|e| Error::io(self.chunk_path(chunk), e))
            },
            keep_map.then_some(Mapped {
                map: &map,
                base: 0,
                file,
                touched: &self.files.touched,
                release: &release,
                max_gap: Some(MAP_MAX_GAP),
            }),
        )?;
        Ok(true)
    }
}
