//! Chunks on object storage written without losing another process's
//! update (feature `s3`).
//!
//! A chunk this process read whole is remembered with the version
//! (ETag) the GET returned, or as absent. Writing it back with the
//! elements this process changed ([`Written`], kept by the cache) is one
//! conditional PUT: `If-Match` on that version, or `If-None-Match: *` if
//! it was absent. If another process wrote the chunk meanwhile, the PUT
//! fails with 412; then the chunk is read again (its new version with
//! it), the written elements are copied onto it, and the result is put
//! conditionally on that version; repeated until one lands. What lands
//! then differs from the cache's copy (it has the other writer's
//! elements), so the chunk's version is forgotten: its next write-back
//! starts with a fresh read.
//!
//! The versions map is a hint, not a source of truth: a chunk with no
//! entry is read before it is written, which costs a GET and is always
//! correct. So the map is cleared when it reaches [`MAX_VERSIONS`]
//! entries instead of being counted in the cache's budget.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use object_store::PutMode;
use parking_lot::Mutex;
use zarrs::array::{ArrayBytes, ArrayToBytesCodecTraits};
use zarrs::storage::Bytes;

use super::ZarrInner;
use super::s3::{S3Storage, Version, as_too_large, as_wrong_size, chunk_object_limit};
use crate::buffer::ChunkBuf;
use crate::error::{Error, Result};
use crate::store::Written;

/// Entries kept before the map is cleared (about 100 bytes each).
const MAX_VERSIONS: usize = 1 << 16;

/// Conditional writes of one chunk tried before giving up with an error.
const ATTEMPTS: u32 = 64;

#[derive(Debug, Clone)]
enum Seen {
    /// The GET found no object.
    Absent,
    /// The GET returned this version.
    At(Version),
}

/// The version of each chunk as last read or written by this process.
#[derive(Debug, Default)]
pub(super) struct Versions(Mutex<HashMap<Vec<u64>, Seen>>);

impl Versions {
    fn set(&self, chunk: &[u64], seen: Seen) {
        let mut m = self.0.lock();
        if m.len() >= MAX_VERSIONS && !m.contains_key(chunk) {
            m.clear();
        }
        m.insert(chunk.to_vec(), seen);
    }

    fn get(&self, chunk: &[u64]) -> Option<Seen> {
        self.0.lock().get(chunk).cloned()
    }

    /// The chunk was written unconditionally or erased (or a merge made
    /// the cache's copy differ from the object): its next conditional
    /// write reads it first.
    pub(super) fn forget(&self, chunk: &[u64]) {
        self.0.lock().remove(chunk);
    }

    /// Forgets every chunk (a resize dropped some).
    pub(super) fn clear(&self) {
        self.0.lock().clear();
    }
}

/// A short pause that grows with the attempt, spread by the clock's
/// nanoseconds so that processes colliding once do not collide again.
fn backoff(attempt: u32) {
    let base = 2u64 << attempt.min(6);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    std::thread::sleep(Duration::from_millis(base + nanos % (base + 1)));
}

impl ZarrInner {
    /// The chunk's object and its version (one GET). An object larger than
    /// any encoding of the chunk is corrupt, refused before its body is
    /// read.
    fn s3_get_chunk(
        &self,
        s3: &S3Storage,
        chunk: &[u64],
        key: &str,
    ) -> Result<Option<(zarrs::storage::Bytes, Version)>> {
        s3.get_versioned(key, chunk_object_limit(self.meta.chunk_bytes()))
            .map_err(|e| match as_too_large(&e) {
                Some(t) => self.corrupt(chunk, t),
                None => s3.error(&self.chunk_path(chunk).display().to_string(), &e),
            })
    }

    /// Reads a whole chunk with one GET and remembers its version.
    pub(super) fn s3_read_chunk(&self, s3: &S3Storage, chunk: &[u64]) -> Result<Option<ChunkBuf>> {
        let key = self.array.chunk_key(chunk);
        let got = self.s3_get_chunk(s3, chunk, key.as_str())?;
        match got {
            None => {
                if self.writable {
                    self.versions.set(chunk, Seen::Absent);
                }
                Ok(None)
            }
            Some((bytes, version)) => {
                let buf = self.decode_chunk(chunk, bytes)?;
                if self.writable {
                    self.versions.set(chunk, Seen::At(version));
                }
                Ok(Some(buf))
            }
        }
    }

    /// Reads a whole uncompressed chunk (`object_raw`) with one GET
    /// whose body streams straight into `out` (exactly the chunk's size),
    /// and remembers its version. False if there is no object (`out` is
    /// then untouched). An object of any other size is corrupt.
    pub(super) fn s3_read_raw_into(
        &self,
        s3: &S3Storage,
        chunk: &[u64],
        out: &mut [u8],
    ) -> Result<bool> {
        debug_assert!(self.object_raw && out.len() == self.meta.chunk_bytes());
        let key = self.array.chunk_key(chunk);
        let got = s3
            .get_into(key.as_str(), out)
            .map_err(|e| match as_wrong_size(&e) {
                Some(w) => self.corrupt(chunk, w),
                None => s3.error(&self.chunk_path(chunk).display().to_string(), &e),
            })?;
        let found = got.is_some();
        if self.writable {
            self.versions.set(chunk, got.map_or(Seen::Absent, Seen::At));
        }
        if found && self.meta.dtype == crate::dtype::DType::Bool {
            crate::dtype::normalize_bools(out);
        }
        Ok(found)
    }

    /// Writes a whole uncompressed chunk (`object_raw`) with one
    /// unconditional PUT, or deletes its object if it is all fill value:
    /// what zarrs' `store_chunk` does, with the body in a [`ChunkBuf`]
    /// rather than the `Vec` zarrs copies the chunk into (`encode` says
    /// why).
    pub(super) fn s3_write_raw(&self, s3: &S3Storage, chunk: &[u64], data: &[u8]) -> Result<()> {
        let key = self.array.chunk_key(chunk);
        if crate::store::is_fill(data, &self.meta.fill) {
            return zarrs::storage::WritableStorageTraits::erase(s3, &key)
                .map_err(|e| self.write_error(chunk, e.into()));
        }
        let body = self.encode(chunk, Payload::Borrowed(data))?;
        s3.put(key.as_str(), body, PutMode::Overwrite)
            .map(|_| ())
            .map_err(|e| s3.error(&self.chunk_path(chunk).display().to_string(), &e))
    }

    /// Writes `data`, of which this process changed the elements in
    /// `written`, without losing another process's update of the chunk
    /// (module docs).
    pub(super) fn s3_write_merging(
        &self,
        s3: &S3Storage,
        chunk: &[u64],
        data: &[u8],
        written: &Written,
    ) -> Result<()> {
        let key = self.array.chunk_key(chunk);
        let key = key.as_str();
        let url = || self.chunk_path(chunk).display().to_string();
        let elem = self.meta.dtype.size();
        let mut seen = self.versions.get(chunk);
        for attempt in 0..ATTEMPTS {
            // What to put, on which condition, and whether it is `data`
            // itself (then the cache's copy is what the store holds).
            let (payload, mode, is_data) = match seen.take() {
                Some(Seen::Absent) => (Payload::Borrowed(data), PutMode::Create, true),
                Some(Seen::At(v)) => (Payload::Borrowed(data), PutMode::Update(v), true),
                None => {
                    let current = self.s3_get_chunk(s3, chunk, key)?;
                    let (mut base, mode) = match current {
                        None => (
                            ChunkBuf::filled(self.meta.chunk_bytes(), &self.meta.fill),
                            PutMode::Create,
                        ),
                        Some((bytes, v)) => (self.decode_chunk(chunk, bytes)?, PutMode::Update(v)),
                    };
                    written.apply(data, &mut base, elem);
                    let same = base[..] == data[..];
                    (Payload::Owned(base), mode, same)
                }
            };
            let fill = crate::store::is_fill(payload.bytes(), &self.meta.fill);
            if fill && matches!(mode, PutMode::Create) {
                // All fill and still absent when last looked: nothing to
                // store. (A writer that creates it meanwhile wrote after
                // this one.)
                if is_data {
                    self.versions.set(chunk, Seen::Absent);
                } else {
                    self.versions.forget(chunk);
                }
                return Ok(());
            }
            // All fill over an existing object is stored too: object
            // stores have no conditional delete, so the fill chunk goes
            // under the same condition as any other write.
            let encoded = self.encode(chunk, payload)?;
            if self.put_conditional(s3, chunk, key, encoded, mode, is_data)? {
                return Ok(());
            }
            backoff(attempt);
        }
        Err(Error::Store {
            backend: "zarr",
            message: format!(
                "{}: other writers kept changing the chunk through {ATTEMPTS} conditional writes; \
                 the array is closed for writing, its unwritten data stays readable",
                url()
            ),
        })
    }

    /// The chunk's encoded bytes, whatever they hold (a merge that must
    /// replace a version with fill encodes it too; the callers decide when
    /// a chunk of fill is stored at all).
    ///
    /// An uncompressed chunk's body is a copy of `data` in a [`ChunkBuf`]
    /// (for a 16 MB chunk an anonymous map, unmapped when the request
    /// drops it), not a `Vec`: glibc serves large `Vec`s from per-thread
    /// heaps it does not shrink, and the write-behind writers' bodies
    /// stayed resident beside the cache's budget (docs/benchmarks.md,
    /// "The article on S3").
    ///
    /// A merged chunk ([`Payload::Owned`]) becomes the body itself: no
    /// second 16 MB buffer beside it while the PUT runs.
    fn encode(&self, chunk: &[u64], payload: Payload<'_>) -> Result<Bytes> {
        if self.object_raw {
            return Ok(match payload {
                Payload::Borrowed(data) => Bytes::from_owner(ChunkBuf::copy_of(data)),
                Payload::Owned(buf) => Bytes::from_owner(buf),
            });
        }
        let data = payload.bytes();
        let shape = self
            .array
            .chunk_shape(chunk)
            .map_err(|e| self.corrupt(chunk, e))?;
        let encoded = self
            .array
            .codecs()
            .encode(
                ArrayBytes::new_flen(Cow::Borrowed(data)),
                &shape,
                self.array.data_type(),
                self.array.fill_value(),
                &Self::codec_options(),
            )
            .map_err(|e| self.corrupt(chunk, e))?;
        Ok(Bytes::from(encoded.into_owned()))
    }

    /// One conditional PUT: `Ok(true)` if it landed, `Ok(false)` if the
    /// chunk changed since the version the condition names.
    fn put_conditional(
        &self,
        s3: &S3Storage,
        chunk: &[u64],
        key: &str,
        encoded: Bytes,
        mode: PutMode,
        is_data: bool,
    ) -> Result<bool> {
        match s3.put(key, encoded, mode) {
            Ok(v) => {
                if is_data {
                    self.versions.set(chunk, Seen::At(v));
                } else {
                    self.versions.forget(chunk);
                }
                Ok(true)
            }
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => {
                self.versions.forget(chunk);
                Ok(false)
            }
            Err(e) => Err(s3.error(&self.chunk_path(chunk).display().to_string(), &e)),
        }
    }
}

/// The bytes of a chunk write: the caller's (copied into an uncompressed
/// body), or a chunk merged here, which an uncompressed body takes over.
enum Payload<'a> {
    Borrowed(&'a [u8]),
    Owned(ChunkBuf),
}

impl Payload<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Owned(b) => b,
        }
    }
}
