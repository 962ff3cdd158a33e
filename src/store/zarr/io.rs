//! Chunk I/O of a Zarr array: the [`ChunkStore`] impl, through zarrs'
//! codecs or straight from raw and LZ4 chunk files.

use std::borrow::Cow;

use zarrs::array::{ArrayBytes, ArraySubset, ArrayToBytesCodecTraits};
use zarrs::storage::ReadableStorageTraits;

use super::fs;
use super::{ZarrInner, encoded_bound, store_error};
use crate::buffer::{ChunkBuf, MAP_THRESHOLD};
use crate::dtype::{DType, normalize_bools};
use crate::error::{Error, Result};
use crate::layout::{Strided, c_strides};
use crate::store::{Capabilities, ChunkRegion, ChunkStore, Labels, StoreMeta, extract_region};

impl ChunkStore for ZarrInner {
    fn backend(&self) -> &'static str {
        "zarr"
    }

    fn meta(&self) -> StoreMeta {
        self.meta.clone()
    }

    fn describe(&self) -> String {
        self.summary.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            parallel_writes: true,
            partial_reads: self.partial,
            tracks_missing: true,
            read_only: !self.writable,
            decodes: !(self.raw || self.object_raw),
            reads_into: self.raw || self.lz4 || self.object_raw,
            write_buffer_bytes: self.write_buffer_bytes(),
            concurrent_requests: self.concurrent_requests(),
        }
    }

    fn labels(&self) -> Option<Labels> {
        Some(Labels {
            dimension_names: self.array.dimension_names().clone(),
            attributes: serde_json::to_string(self.array.attributes())
                .unwrap_or_else(|_| "{}".into()),
            dropped: Vec::new(),
        })
    }

    fn read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>> {
        self.check_chunk(chunk)?;
        if self.raw {
            return self.raw_read_chunk(chunk);
        }
        if self.lz4 {
            let mut buf = ChunkBuf::zeroed(self.meta.chunk_bytes());
            return Ok(self.lz4_read_chunk_into(chunk, &mut buf)?.then_some(buf));
        }
        #[cfg(feature = "s3")]
        if let Some(s3) = self.storage.s3() {
            if self.object_raw {
                let mut buf = ChunkBuf::zeroed(self.meta.chunk_bytes());
                return Ok(self.s3_read_raw_into(s3, chunk, &mut buf)?.then_some(buf));
            }
            return self.s3_read_chunk(s3, chunk);
        }
        let key = self.array.chunk_key(chunk);
        let Some(encoded) = self
            .storage
            .get(&key)
            .map_err(|e| self.storage_error(chunk, e))?
        else {
            return Ok(None);
        };
        self.decode_chunk(chunk, encoded).map(Some)
    }

    fn merges_writes(&self) -> bool {
        // A chunk may be shared by processes that do not know of each
        // other: objects are written back conditionally on the version
        // read, chunk files under a lock after a fresh read.
        self.writable
    }

    fn write_chunk_merging(
        &self,
        chunk: &[u64],
        data: &[u8],
        written: &crate::store::Written,
    ) -> Result<()> {
        #[cfg(feature = "s3")]
        if let Some(s3) = self.storage.s3() {
            self.check_writable()?;
            self.check_chunk(chunk)?;
            return self.s3_write_merging(s3, chunk, data, written);
        }
        self.check_writable()?;
        self.check_chunk(chunk)?;
        self.check_data_len(chunk, data)?;
        // Under the chunk's lock: the file as it is now (another process
        // may have replaced it since this one read it), with this
        // process's elements copied over, replaces it.
        let _lock = self.lock_chunk(chunk)?;
        self.files.forget(chunk);
        let mut merged = match self.read_chunk(chunk)? {
            Some(current) => current,
            None => ChunkBuf::filled(self.meta.chunk_bytes(), &self.meta.fill),
        };
        written.apply(data, &mut merged, self.meta.dtype.size());
        // Renamed before the lock is released: the next writer's merge
        // must read this one.
        self.write_chunk_locked(chunk, &merged, false)
    }
    fn read_chunk_into(&self, chunk: &[u64], out: &mut [u8]) -> Result<bool> {
        self.check_chunk(chunk)?;
        let want = self.meta.chunk_bytes();
        if out.len() != want {
            return Err(Error::invalid(format!(
                "{}: chunk {chunk:?}: a buffer of {} bytes for a chunk of {want}",
                self.path.display(),
                out.len()
            )));
        }
        if self.raw {
            return self.raw_read_chunk_into(chunk, out);
        }
        if self.lz4 {
            return self.lz4_read_chunk_into(chunk, out);
        }
        #[cfg(feature = "s3")]
        if self.object_raw
            && let Some(s3) = self.storage.s3()
        {
            return self.s3_read_raw_into(s3, chunk, out);
        }
        let Some(data) = self.read_chunk(chunk)? else {
            return Ok(false);
        };
        out.copy_from_slice(&data);
        Ok(true)
    }

    fn read_region_into(
        &self,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        out: &mut [u8],
        at: Strided<'_>,
    ) -> Result<bool> {
        self.check_chunk(chunk)?;
        self.check_region(chunk, region)?;
        let elem = self.meta.dtype.size();
        crate::store::check_strided_fits(region, elem, out.len(), at)?;
        if self.raw && self.meta.dtype != DType::Bool {
            return self.raw_read_region_into(chunk, region, out, at, None);
        }
        // Bools are normalized in `read_region`'s dense buffer.
        let Some(data) = self.dense_region(chunk, region)? else {
            return Ok(false);
        };
        crate::store::place_region("zarr", chunk, region, elem, &data, out, at)?;
        Ok(true)
    }

    fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        self.check_writable()?;
        self.check_chunk(chunk)?;
        self.check_data_len(chunk, data)?;
        let _lock = self.lock_chunk(chunk)?;
        // A whole chunk replaces the file, whatever it held: its sync and
        // rename may follow (`DirStorage::write_deferred`), as a whole
        // chunk in the cache is written back later.
        self.write_chunk_locked(chunk, data, true)
    }

    fn erase_chunk(&self, chunk: &[u64]) -> Result<()> {
        self.check_writable()?;
        self.check_chunk(chunk)?;
        let _lock = self.lock_chunk(chunk)?;
        let erased = self
            .array
            .erase_chunk(chunk)
            .map_err(|e| self.write_error(chunk, e.into()));
        self.files.forget(chunk);
        #[cfg(feature = "s3")]
        self.versions.forget(chunk);
        erased
    }

    fn flush(&self) -> Result<()> {
        self.storage.sync().map_err(|e| Error::io(&self.path, e))
    }

    fn stored_bytes(&self) -> Result<u64> {
        #[cfg(feature = "s3")]
        if let Some(s3) = self.storage.s3() {
            // Object sizes, one LIST of the prefix.
            return s3
                .stored_bytes()
                .map_err(|e| s3.error(&self.path.display().to_string(), &e));
        }
        fs::allocated_bytes(&self.path).map_err(|e| Error::io(&self.path, e))
    }
}

impl ZarrInner {
    /// A failed chunk write or erase as one line that names the chunk
    /// once: object storage's messages already name the object's URL.
    pub(super) fn write_error(&self, chunk: &[u64], e: zarrs::array::ArrayError) -> Error {
        match e {
            #[cfg(feature = "s3")]
            zarrs::array::ArrayError::StorageError(zarrs::storage::StorageError::Other(m))
                if self.storage.s3().is_some() =>
            {
                store_error(m)
            }
            e => store_error(format!(
                "{}: chunk {chunk:?}: {e}",
                self.chunk_path(chunk).display()
            )),
        }
    }

    /// Writes a whole chunk; the caller holds its lock (`lock_chunk`).
    /// `deferred`: a raw chunk file's sync and rename may be left to the
    /// storage's background threads (`DirStorage::write_deferred`).
    fn write_chunk_locked(&self, chunk: &[u64], data: &[u8], deferred: bool) -> Result<()> {
        let stored = match self.storage.dir() {
            // A raw chunk's file is the chunk's bytes: written straight
            // from the caller's buffer, as zarrs would (a chunk of fill
            // erased, else a new file renamed over the old), without its
            // owned copy of the chunk to encode from
            // (docs/benchmarks.md#zarr-chunks-written-raw).
            Some(dir) if self.raw => {
                let key = self.array.chunk_key(chunk);
                if crate::store::is_fill(data, &self.meta.fill) {
                    zarrs::storage::WritableStorageTraits::erase(dir, &key)
                } else if deferred {
                    dir.write_deferred(&dir.key_path(&key), data)
                } else {
                    dir.write_atomic(&dir.key_path(&key), data)
                }
                .map_err(|e| self.write_error(chunk, e.into()))
            }
            // An uncompressed object: one PUT of the chunk's bytes, as
            // zarrs would, without its `Vec` copy (`s3_write_raw`).
            #[cfg(feature = "s3")]
            None if self.object_raw && self.storage.s3().is_some() => {
                self.s3_write_raw(self.storage.s3().expect("checked above"), chunk, data)
            }
            _ => self
                .array
                .store_chunk_opt(
                    chunk,
                    ArrayBytes::new_flen(Cow::Borrowed(data)),
                    &Self::codec_options(),
                )
                .map_err(|e| self.write_error(chunk, e)),
        };
        // The chunk's file was replaced (or removed, for a chunk of fill
        // values): an open one holds the old contents. Dropped after a
        // failed write too, which may have renamed.
        self.files.forget(chunk);
        #[cfg(feature = "s3")]
        self.versions.forget(chunk);
        stored
    }

    /// The chunk's cross-process lock (chunk files only; objects are
    /// written conditionally instead).
    fn lock_chunk(&self, chunk: &[u64]) -> Result<Option<std::fs::File>> {
        match self.storage.dir() {
            Some(dir) => dir
                .lock_key(&self.array.chunk_key(chunk))
                .map(Some)
                .map_err(|e| Error::io(&self.path, e)),
            None => Ok(None),
        }
    }

    fn check_data_len(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        let want = self.meta.chunk_bytes();
        if data.len() != want {
            return Err(store_error(format!(
                "{}: chunk {chunk:?}: {} bytes given, {want} expected",
                self.path.display(),
                data.len()
            )));
        }
        Ok(())
    }

    /// Decodes a chunk's stored bytes (checked against the chunk's size).
    pub(super) fn decode_chunk(
        &self,
        chunk: &[u64],
        encoded: zarrs::storage::Bytes,
    ) -> Result<ChunkBuf> {
        let shape = self
            .array
            .chunk_shape(chunk)
            .map_err(|e| self.corrupt(chunk, e))?;
        let decoded = self
            .array
            .codecs()
            .decode(
                Cow::Owned(encoded.into()),
                &shape,
                self.array.data_type(),
                self.array.fill_value(),
                &Self::codec_options(),
            )
            .map_err(|e| self.corrupt(chunk, e))?
            .into_fixed()
            .map_err(|e| self.corrupt(chunk, e))?;
        let want = self.meta.chunk_bytes();
        if decoded.len() != want {
            return Err(self.corrupt(
                chunk,
                format!("decodes to {} bytes, expected {want}", decoded.len()),
            ));
        }
        // Large chunks live in their own maps (see `buffer`), small ones
        // keep the decoder's allocation.
        let mut buf = if want >= MAP_THRESHOLD {
            ChunkBuf::copy_of(&decoded)
        } else {
            ChunkBuf::from(decoded.into_owned())
        };
        if self.meta.dtype == DType::Bool {
            normalize_bools(&mut buf);
        }
        Ok(buf)
    }

    /// Requests a flush keeps in flight on object storage (the issue's
    /// "at least 32"); local directories use rayon's threads.
    fn concurrent_requests(&self) -> usize {
        #[cfg(feature = "s3")]
        if self.storage.s3().is_some() {
            return super::s3::CONCURRENT_REQUESTS;
        }
        0
    }

    pub(super) fn write_buffer_bytes(&self) -> usize {
        // One encoded copy of the chunk (compressors' worst case is a
        // little over the input); none when nothing can be written.
        if !self.writable {
            return 0;
        }
        encoded_bound(self.meta.chunk_bytes())
    }
}

impl ZarrInner {
    pub(super) fn dense_region(
        &self,
        chunk: &[u64],
        region: ChunkRegion<'_>,
    ) -> Result<Option<Vec<u8>>> {
        self.check_chunk(chunk)?;
        self.check_region(chunk, region)?;
        if self.raw {
            let elem = self.meta.dtype.size();
            let shape: Vec<u64> = region.iter().map(|r| r.2).collect();
            let strides = c_strides(&shape);
            let mut out = vec![0u8; shape.iter().product::<u64>() as usize * elem];
            let at = Strided {
                offset: 0,
                strides: &strides,
            };
            if !self.raw_read_region_into(chunk, region, &mut out, at, None)? {
                return Ok(None);
            }
            if self.meta.dtype == DType::Bool {
                normalize_bools(&mut out);
            }
            return Ok(Some(out));
        }
        if !self.partial {
            let Some(data) = self.read_chunk(chunk)? else {
                return Ok(None);
            };
            return Ok(Some(extract_region(&self.meta, &data, region)));
        }
        if region.iter().any(|r| r.2 == 0) {
            return Ok(Some(Vec::new()));
        }
        // Zarr subsets are boxes: read the bounding box of the (strided)
        // region, then pick the strided elements out of it.
        let bbox: Vec<u64> = region.iter().map(|&(_, s, n)| (n - 1) * s + 1).collect();
        let ranges: Vec<std::ops::Range<u64>> = region
            .iter()
            .zip(&bbox)
            .map(|(&(start, _, _), &len)| start..start + len)
            .collect();
        let decoder = self
            .array
            .partial_decoder(chunk)
            .map_err(|e| self.corrupt(chunk, e))?;
        let key = self.array.chunk_key(chunk);
        match self.storage.size_key(&key) {
            Err(e) => return Err(self.storage_error(chunk, e)),
            Ok(None) => return Ok(None),
            Ok(Some(n)) if self.fixed_encoded.is_some_and(|want| want != n) => {
                return Err(self.corrupt(
                    chunk,
                    format!(
                        "the chunk file holds {n} bytes, expected {}",
                        self.fixed_encoded.unwrap_or_default()
                    ),
                ));
            }
            Ok(Some(_)) => {}
        }
        let bytes: ArrayBytes<'_> = decoder
            .partial_decode(
                &ArraySubset::new_with_ranges(&ranges),
                &Self::codec_options(),
            )
            .map_err(|e| self.corrupt(chunk, e))?;
        let mut bytes = bytes
            .into_fixed()
            .map_err(|e| self.corrupt(chunk, e))?
            .into_owned();
        let want = bbox.iter().product::<u64>() as usize * self.meta.dtype.size();
        if bytes.len() != want {
            return Err(self.corrupt(
                chunk,
                format!("partial read gave {} bytes, expected {want}", bytes.len()),
            ));
        }
        if self.meta.dtype == DType::Bool {
            normalize_bools(&mut bytes);
        }
        if region.iter().all(|r| r.1 == 1) {
            return Ok(Some(bytes));
        }
        let boxed = StoreMeta {
            chunks: bbox,
            ..self.meta.clone()
        };
        let local: Vec<(u64, u64, u64)> = region.iter().map(|&(_, s, n)| (0, s, n)).collect();
        Ok(Some(extract_region(&boxed, &bytes, &local)))
    }
}
