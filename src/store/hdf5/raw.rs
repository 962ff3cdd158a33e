//! Raw reads: unfiltered native-order chunks (and read-only contiguous
//! datasets) read straight from the file by `pread` or a map, at the
//! address HDF5's chunk index gives.

use std::fs::File as StdFile;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use lru::LruCache;
use parking_lot::{Mutex, RwLock};

use super::store::Hdf5Inner;
use crate::error::{Error, Result};
use crate::layout::Strided;
use crate::store::ChunkRegion;
use crate::store::filemap::{FileMap, Touched};
use crate::store::rawio::{self, Mapped, RawChunk};

/// Chunk addresses kept by a store reading chunks straight from the file:
/// a lookup in HDF5's chunk index takes HDF5's global lock.
pub(super) const RAW_ADDRESSES: usize = 4096;

/// Reads of an unfiltered, native-order chunked dataset straight from the
/// file, bypassing HDF5: such a chunk is stored as its decoded bytes at
/// the address HDF5's chunk index gives, so an element is one `pread`
/// (`rawio`). HDF5 writes these chunks only with its direct chunk write,
/// which writes the bytes to the file at once (no HDF5 cache holds raw
/// data for them) and at the chunk's address, which a rewrite of the same
/// size keeps. Every write and erase drops the chunk's cached address all
/// the same, and a resize drops them all.
///
/// A contiguous dataset opened read-only is read the same way: its
/// elements are one C-order array at the address `H5Dget_offset` gives,
/// and each of chunkyard's chunks is a block of it. (Opened for writing,
/// HDF5's own writes to it may wait in HDF5's sieve buffer, so reads stay
/// with HDF5.)
pub(super) struct RawReads {
    /// The file, open read-only.
    pub(super) file: StdFile,
    /// Where the chunks are.
    pub(super) layout: RawLayout,
    /// Chunk addresses looked up lately; `None`: not allocated.
    pub(super) addrs: Mutex<LruCache<Vec<u64>, Option<u64>>>,
    /// A map of the whole file for reads of many runs (a tile): made on
    /// the first such read, made again when a chunk lies past its end
    /// (the file grew), dropped by a resize (the file may shrink).
    pub(super) map: RwLock<Option<Arc<FileMap>>>,
    /// What reads through the map may have made resident.
    pub(super) touched: Touched,
}

/// Where a raw dataset's chunks are.
pub(super) enum RawLayout {
    /// Chunked: each chunk whole at the address HDF5's chunk index gives,
    /// with the C strides of the chunk shape.
    Chunked {
        /// C-order element strides of a chunk.
        strides: Vec<usize>,
    },
    /// Contiguous: one C-order array of the dataset's shape at `addr`.
    Contiguous {
        /// The first element's byte offset in the file.
        addr: u64,
        /// C-order element strides of the dataset.
        strides: Vec<usize>,
    },
}

impl RawReads {
    pub(super) fn strides(&self) -> &[usize] {
        match &self.layout {
            RawLayout::Chunked { strides } | RawLayout::Contiguous { strides, .. } => strides,
        }
    }

    pub(super) fn forget(&self, chunk: &[u64]) {
        self.addrs.lock().pop(chunk);
    }

    /// The file map, if it covers `end` bytes (mapped anew if the file has
    /// grown); `None` if the file cannot be mapped, which costs reads
    /// speed only.
    pub(super) fn map_to(&self, end: u64) -> Option<Arc<FileMap>> {
        if let Some(m) = &*self.map.read()
            && m.len() as u64 >= end
        {
            return Some(m.clone());
        }
        let mut slot = self.map.write();
        if let Some(m) = &*slot
            && m.len() as u64 >= end
        {
            return Some(m.clone());
        }
        let m = Arc::new(FileMap::new(&self.file).ok()?);
        if (m.len() as u64) < end {
            return None;
        }
        *slot = Some(m.clone());
        Some(m)
    }
}

impl Hdf5Inner {
    /// A raw chunk's address in the file (cached); `None` if HDF5 never
    /// allocated it. A chunk index entry that does not describe the
    /// chunk's bytes inside the file is a corrupt file.
    pub(super) fn raw_addr(&self, raw: &RawReads, chunk: &[u64]) -> Result<Option<u64>> {
        if let RawLayout::Contiguous { addr, strides, .. } = &raw.layout {
            let first: usize = self
                .origin(chunk)
                .iter()
                .zip(strides)
                .map(|(&o, &s)| o as usize * s)
                .sum();
            return Ok(Some(addr + (first * self.meta.dtype.size()) as u64));
        }
        if let Some(&a) = raw.addrs.lock().get(chunk) {
            return Ok(a);
        }
        let addr = match self.allocated(chunk)? {
            None => None,
            Some(st) => {
                let want = self.meta.chunk_bytes() as u64;
                let len = raw
                    .file
                    .metadata()
                    .map_err(|e| Error::io(&self.path, e))?
                    .len();
                super::index::check_raw(st.addr, st.size, want, len).map_err(|m| {
                    Error::format(&self.path, format!("{}, chunk {chunk:?}: {m}", self.name))
                })?;
                Some(st.addr)
            }
        };
        raw.addrs.lock().put(chunk.to_vec(), addr);
        Ok(addr)
    }

    /// `pread` of a raw chunk's bytes `pos..pos + buf.len()`.
    pub(super) fn raw_pread(
        &self,
        raw: &RawReads,
        chunk: &[u64],
        addr: u64,
        buf: &mut [u8],
        pos: usize,
    ) -> Result<()> {
        raw.file
            .read_exact_at(buf, addr + pos as u64)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::format(
                    &self.path,
                    format!(
                        "{}, chunk {chunk:?}: the file ends inside the chunk",
                        self.name
                    ),
                ),
                _ => Error::io(&self.path, e),
            })
    }

    /// Reads a whole raw chunk into `out`; `Ok(false)` if it was never
    /// allocated or holds only the fill value (an erased chunk). A
    /// contiguous dataset's chunk is always there: the fill value past the
    /// array's edge.
    pub(super) fn raw_read_chunk_into(
        &self,
        raw: &RawReads,
        chunk: &[u64],
        out: &mut [u8],
    ) -> Result<bool> {
        if let RawLayout::Contiguous { .. } = raw.layout {
            // The block of the array inside the chunk; the fill value past
            // the array's edge.
            let f = &self.meta.fill;
            for e in out.chunks_exact_mut(f.len()) {
                e.copy_from_slice(f);
            }
            let region: Vec<(u64, u64, u64)> = self
                .grid
                .chunk_extent(chunk)
                .iter()
                .map(|&n| (0, 1, n))
                .collect();
            let strides = self.region_strides();
            let at = Strided {
                offset: 0,
                strides: &strides,
            };
            return self.raw_region_into(raw, chunk, &region, out, at, None);
        }
        let Some(addr) = self.raw_addr(raw, chunk)? else {
            return Ok(false);
        };
        self.raw_pread(raw, chunk, addr, out, 0)?;
        Ok(!self.is_fill(out))
    }

    /// Reads a region of a raw chunk into `out` at `at` (checked by the
    /// caller); `Ok(false)` if it was never allocated. `force`: see
    /// [`RawChunk::read_region_into`].
    pub(super) fn raw_region_into(
        &self,
        raw: &RawReads,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        out: &mut [u8],
        at: Strided<'_>,
        force: Option<rawio::Method>,
    ) -> Result<bool> {
        let Some(addr) = self.raw_addr(raw, chunk)? else {
            return Ok(false);
        };
        let elem = self.meta.dtype.size();
        // Bytes from the chunk's first element to its last in the file.
        let len = match &raw.layout {
            RawLayout::Chunked { .. } => self.meta.chunk_bytes(),
            RawLayout::Contiguous { strides, .. } => {
                let extent = self.grid.chunk_extent(chunk);
                let last: usize = extent
                    .iter()
                    .zip(strides)
                    .map(|(&n, &s)| (n as usize).saturating_sub(1) * s)
                    .sum();
                (last + 1) * elem
            }
        };
        let one_run = region.iter().rev().skip(1).all(|r| r.2 <= 1);
        let file_map = if one_run {
            None
        } else {
            raw.map_to(addr + len as u64)
        };
        let release = || {
            if let Some(m) = &file_map {
                m.release();
            }
        };
        let get_map = || file_map.as_deref();
        RawChunk {
            strides: raw.strides(),
            elem,
        }
        .read_region_into(
            region,
            out,
            at,
            force,
            |buf, pos| self.raw_pread(raw, chunk, addr, buf, pos),
            || rawio::map_chunk(&raw.file, addr, len).map_err(|e| Error::io(&self.path, e)),
            file_map.as_deref().map(|_| Mapped {
                map: &get_map,
                base: addr as usize,
                file: &raw.file,
                touched: &raw.touched,
                release: &release,
                // One large file: the page cache holds it in large folios
                // and one fault maps many runs.
                max_gap: None,
            }),
        )?;
        Ok(true)
    }

    /// Whether a region can be read raw: a contiguous dataset's chunks
    /// are blocks of the array, so only their part inside it can.
    pub(super) fn raw_fits(&self, raw: &RawReads, chunk: &[u64], region: ChunkRegion<'_>) -> bool {
        match raw.layout {
            RawLayout::Chunked { .. } => true,
            RawLayout::Contiguous { .. } => region
                .iter()
                .zip(&self.grid.chunk_extent(chunk))
                .all(|(&(start, step, count), &e)| count == 0 || start + (count - 1) * step < e),
        }
    }
}
