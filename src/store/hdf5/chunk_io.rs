//! Chunk I/O through HDF5: direct chunk reads decoded in Rust, encoding
//! chunks for direct writes, and HDF5's own hyperslab reads and writes.

use hdf5_metno::{Hyperslab, Selection, SliceOrIndex};
use ndarray::{ArrayD, IxDyn};

use super::filters::{self, Step};
use super::index;
use super::store::Hdf5Inner;
use super::{Access, ffi, store_err};
use crate::buffer::{ChunkBuf, MAP_THRESHOLD};
use crate::dtype::{Element, Endian, swap_bytes_in_place};
use crate::error::{Error, Result};
use crate::layout::{Strided, c_strides, copy_region};
use crate::store::extract_region;
use crate::store::rawio;

impl Hdf5Inner {
    /// Whether HDF5 has storage for the chunk (`true` for contiguous
    /// datasets, which have no chunks).
    pub(super) fn allocated(&self, chunk: &[u64]) -> Result<Option<ffi::ChunkStorage>> {
        match self.access {
            Access::Hyperslab { chunked: false } => Ok(Some(ffi::ChunkStorage {
                addr: 0,
                size: 0,
                mask: 0,
            })),
            _ => ffi::chunk_storage(&self.ds, &self.origin(chunk)).map_err(self.h5("chunk index")),
        }
    }

    /// The in-bounds part of a chunk as an HDF5 selection, with its counts.
    pub(super) fn hyperslab(&self, chunk: &[u64]) -> (Selection, Vec<usize>) {
        let origin = self.origin(chunk);
        let extent = self.grid.chunk_extent(chunk);
        let counts: Vec<usize> = extent.iter().map(|&n| n as usize).collect();
        if origin.is_empty() {
            return (Selection::All, counts);
        }
        let slices: Vec<SliceOrIndex> = origin
            .iter()
            .zip(&extent)
            .map(|(&o, &n)| SliceOrIndex::from(o as usize..(o + n) as usize))
            .collect();
        (Selection::from(Hyperslab::from(slices)), counts)
    }

    /// Strides to place the in-bounds region inside a full chunk buffer.
    pub(super) fn region_strides(&self) -> Vec<usize> {
        c_strides(&self.meta.chunks)
    }

    /// Reads a chunk's stored bytes and decodes them in Rust straight into
    /// `out` (`chunk_bytes` long), in native byte order; `Ok(false)` if the
    /// chunk was never allocated (`out` untouched).
    pub(super) fn direct_read_into(
        &self,
        steps: &[Step],
        chunk: &[u64],
        out: &mut [u8],
    ) -> Result<bool> {
        let Some(ffi::ChunkStorage { addr, size, mask }) = self.allocated(chunk)? else {
            return Ok(false);
        };
        // Filters add at most a few bytes per block; a chunk index that
        // claims far more is corrupt, and is not allocated.
        let expected = self.meta.chunk_bytes() as u64;
        index::check_stored_size(size, expected).map_err(|m| {
            Error::format(&self.path, format!("{}, chunk {chunk:?}: {m}", self.name))
        })?;
        let decoded = match &self.stored {
            // Large chunks are decoded from a map of the file: no buffer
            // for the stored bytes, and no copy into one; see
            // docs/benchmarks.md#hdf5-stored-bytes-from-a-map.
            Some(file) if size >= MAP_THRESHOLD as u64 => {
                let have = file.metadata().map_err(|e| Error::io(&self.path, e))?.len();
                if !index::within_file(addr, size, have) {
                    return Err(Error::format(
                        &self.path,
                        format!(
                            "{}, chunk {chunk:?}: its {size} stored bytes at {addr} lie past \
                             the end of the file ({have} bytes)",
                            self.name
                        ),
                    ));
                }
                let map = rawio::map_stored(file, addr, size as usize)
                    .map_err(|e| Error::io(&self.path, e))?;
                filters::decode(steps, mask, &map, out)
            }
            _ => {
                let (mask, raw) = ffi::read_chunk_raw(&self.ds, &self.origin(chunk), size)
                    .map_err(self.h5("read chunk"))?;
                filters::decode(steps, mask, &raw, out)
            }
        };
        decoded.map_err(|m| {
            Error::format(&self.path, format!("{}, chunk {chunk:?}: {m}", self.name))
        })?;
        if self.file_endian != Endian::NATIVE {
            swap_bytes_in_place(out, self.meta.dtype.size());
        }
        Ok(true)
    }

    pub(super) fn read_hyperslab(&self, chunk: &[u64]) -> Result<ChunkBuf> {
        let (sel, counts) = self.hyperslab(chunk);
        let elem = self.meta.dtype.size();
        let bytes: Vec<u8> = crate::dispatch!(self.meta.dtype, T => {
            let a: ArrayD<T> = self
                .ds
                .read_slice::<T, _, IxDyn>(sel)
                .map_err(self.h5("read"))?;
            let a = a.as_standard_layout();
            T::to_ne_vec(a.as_slice().expect("standard layout"))
        });
        let mut out = ChunkBuf::filled(self.meta.chunk_bytes(), &self.meta.fill);
        let out_strides = self.region_strides();
        copy_region(
            &counts,
            elem,
            &bytes,
            Strided {
                offset: 0,
                strides: &c_strides(&counts.iter().map(|&n| n as u64).collect::<Vec<_>>()),
            },
            &mut out,
            Strided {
                offset: 0,
                strides: &out_strides,
            },
        );
        Ok(out)
    }

    pub(super) fn write_hyperslab(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        let (sel, counts) = self.hyperslab(chunk);
        let region: Vec<(u64, u64, u64)> = counts.iter().map(|&n| (0, 1, n as u64)).collect();
        let inside = extract_region(&self.meta, data, &region);
        crate::dispatch!(self.meta.dtype, T => {
            let values: Vec<T> = inside
                .chunks_exact(self.meta.dtype.size())
                .map(T::from_ne_slice)
                .collect();
            let a = ArrayD::from_shape_vec(IxDyn(&counts), values).expect("region shape");
            self.ds.write_slice(&a, sel).map_err(self.h5("write"))?;
        });
        Ok(())
    }
    /// Native-order decoded bytes to what the file stores.
    /// Whether chunks are written as they are: no filter and the file in
    /// this machine's byte order.
    pub(super) fn verbatim(&self, steps: &[Step]) -> bool {
        steps.is_empty() && !(self.file_endian != Endian::NATIVE && self.meta.dtype.size() > 1)
    }

    /// The chunk as the file stores it: `data` itself when nothing is to
    /// be done (an uncompressed native-order dataset: no 16 MB copy per
    /// chunk of the bench), else a filtered or byte-swapped copy.
    pub(super) fn encode<'a>(&self, steps: &[Step], data: &'a [u8]) -> Result<Encoded<'a>> {
        if self.verbatim(steps) {
            return Ok(Encoded::Borrowed(data));
        }
        let swapped;
        let file_order = if self.file_endian != Endian::NATIVE && self.meta.dtype.size() > 1 {
            let mut v = ChunkBuf::copy_of(data);
            swap_bytes_in_place(&mut v, self.meta.dtype.size());
            swapped = v;
            &swapped[..]
        } else {
            data
        };
        filters::encode(steps, file_order)
            .map(Encoded::Owned)
            .map_err(|m| store_err(format!("{}: {m}", self.here())))
    }
}

/// A chunk as the file stores it: the caller's bytes, or an encoded copy.
pub(super) enum Encoded<'a> {
    Borrowed(&'a [u8]),
    Owned(ChunkBuf),
}

impl std::ops::Deref for Encoded<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Encoded::Borrowed(b) => b,
            Encoded::Owned(b) => b,
        }
    }
}
