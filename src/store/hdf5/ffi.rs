//! The few HDF5 calls that `hdf5-metno` has no safe wrapper for: direct
//! chunk reads and writes, the chunk index lookup, and registering the LZ4
//! filter (32004) so that HDF5 itself can read and write LZ4 datasets too.
//!
//! This module is the HDF5 backend's only `unsafe` code (an exception to
//! the crate's "unsafe only for memory maps" rule, recorded in
//! `docs/hdf5.md`). Every call runs under `hdf5_metno::sync::sync`, the
//! lock that serialises all of `hdf5-metno`'s own calls into the library.

use std::ffi::{c_uint, c_void};
use std::sync::OnceLock;

use hdf5_metno::{Dataset, h5check, sync::sync};
use hdf5_metno_sys::h5::{H5allocate_memory, H5free_memory, HADDR_UNDEF, hsize_t};
use hdf5_metno_sys::h5d::{H5Dget_chunk_info_by_coord, H5Dread_chunk1, H5Dwrite_chunk};
use hdf5_metno_sys::h5p::H5P_DEFAULT;
use hdf5_metno_sys::h5z::{H5Z_FLAG_REVERSE, H5Z_class2_t, H5Zregister};

use super::filters::{FILTER_LZ4, lz4_decode, lz4_encode};
use crate::buffer::ChunkBuf;

/// Where a chunk is stored: `None` if it was never allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChunkStorage {
    /// The chunk's file address, as HDF5 reports it. Before HDF5 1.14.4
    /// it leaves out the user block, so callers only use it in files
    /// without one.
    pub addr: u64,
    /// Stored (filtered) size in bytes.
    pub size: u64,
    /// Filters of the pipeline skipped for this chunk.
    pub mask: u32,
}

/// Where a chunk is stored: `None` if it was never allocated.
#[allow(unsafe_code)]
pub(super) fn chunk_storage(
    ds: &Dataset,
    offset: &[u64],
) -> hdf5_metno::Result<Option<ChunkStorage>> {
    debug_assert_eq!(offset.len(), ds.ndim());
    let (mut mask, mut addr, mut size): (c_uint, u64, hsize_t) = (0, 0, 0);
    // SAFETY: `offset` holds one hsize_t (u64) per dataset axis, as HDF5
    // reads; the three out-pointers point at live locals of the types
    // HDF5 writes. The dataset id is valid while `ds` lives.
    sync(|| {
        h5check(unsafe {
            H5Dget_chunk_info_by_coord(ds.id(), offset.as_ptr(), &mut mask, &mut addr, &mut size)
        })
    })?;
    Ok((addr != HADDR_UNDEF).then_some(ChunkStorage { addr, size, mask }))
}

/// Reads a chunk's stored bytes (still filtered) and its filter mask,
/// into a buffer that a large chunk's bytes do not leave in malloc's heap
/// ([`ChunkBuf`]). `size` comes from [`chunk_storage`] under the same
/// store lock.
#[allow(unsafe_code)]
pub(super) fn read_chunk_raw(
    ds: &Dataset,
    offset: &[u64],
    size: u64,
) -> hdf5_metno::Result<(u32, ChunkBuf)> {
    debug_assert_eq!(offset.len(), ds.ndim());
    let mut buf = ChunkBuf::zeroed(size as usize);
    let mut mask: u32 = 0;
    // SAFETY: HDF5 writes exactly the chunk's stored size into `buf`,
    // which is that long (the size was looked up for this chunk, and the
    // store's lock keeps anyone from rewriting it in between); `offset`
    // has one u64 per axis; `mask` is a live u32.
    sync(|| {
        h5check(unsafe {
            H5Dread_chunk1(
                ds.id(),
                H5P_DEFAULT,
                offset.as_ptr(),
                &mut mask,
                buf.as_mut_ptr().cast::<c_void>(),
            )
        })
    })?;
    Ok((mask, buf))
}

/// Stores already-filtered chunk bytes as they are (`mask` 0: every
/// filter of the pipeline was applied).
#[allow(unsafe_code)]
pub(super) fn write_chunk_raw(
    ds: &Dataset,
    offset: &[u64],
    mask: u32,
    data: &[u8],
) -> hdf5_metno::Result<()> {
    debug_assert_eq!(offset.len(), ds.ndim());
    // SAFETY: HDF5 reads `data.len()` bytes from `data` and one u64 per
    // axis from `offset`; both outlive the call.
    sync(|| {
        h5check(unsafe {
            H5Dwrite_chunk(
                ds.id(),
                H5P_DEFAULT,
                mask,
                offset.as_ptr(),
                data.len(),
                data.as_ptr().cast::<c_void>(),
            )
        })
    })?;
    Ok(())
}

/// Registers the LZ4 filter with HDF5 once per process, so that HDF5's own
/// reads and writes (and `H5Pset_filter` on a new dataset) accept it.
#[allow(unsafe_code)]
pub(super) fn register_lz4() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let class = H5Z_class2_t {
            version: 1, // H5Z_CLASS_T_VERS
            id: FILTER_LZ4,
            encoder_present: 1,
            decoder_present: 1,
            name: c"HDF5 lz4 filter (chunkyard, lz4_flex)".as_ptr(),
            can_apply: None,
            set_local: None,
            filter: Some(lz4_filter),
        };
        // SAFETY: HDF5 copies the class struct; the name is a 'static C
        // string and the callback a 'static function.
        sync(|| h5check(unsafe { H5Zregister((&raw const class).cast::<c_void>()) }))
            .map(|_| ())
            .map_err(|e| format!("cannot register the LZ4 filter with HDF5: {e}"))
    })
    .clone()
}

/// The filter callback HDF5 calls for filter 32004: replaces `*buf` with
/// the (de)compressed bytes and returns their length, or 0 on failure
/// (HDF5's convention), never unwinding into C.
#[allow(unsafe_code)]
unsafe extern "C" fn lz4_filter(
    flags: c_uint,
    cd_nelmts: usize,
    cd_values: *const c_uint,
    nbytes: usize,
    buf_size: *mut usize,
    buf: *mut *mut c_void,
) -> usize {
    let run = || -> Option<usize> {
        // SAFETY: HDF5 passes `cd_nelmts` parameters at `cd_values`.
        let block = if cd_nelmts > 0 && !cd_values.is_null() {
            (unsafe { *cd_values }) as usize
        } else {
            0
        };
        // SAFETY: `*buf` holds at least `nbytes` valid bytes that HDF5
        // owns and that nothing else touches during the call.
        let input = unsafe { std::slice::from_raw_parts((*buf).cast::<u8>(), nbytes) };
        let output = if flags & H5Z_FLAG_REVERSE != 0 {
            ChunkBuf::from(lz4_decode(input, usize::MAX).ok()?)
        } else {
            lz4_encode(input, block).ok()?
        };
        // SAFETY: HDF5 frees filter buffers with its own allocator, so the
        // new buffer comes from H5allocate_memory; it is `output.len()`
        // bytes (at least 1) and filled before HDF5 sees it. The old
        // buffer is released with the matching H5free_memory, after the
        // last use of `input`.
        unsafe {
            let out = H5allocate_memory(output.len().max(1), 0).cast::<u8>();
            if out.is_null() {
                return None;
            }
            std::ptr::copy_nonoverlapping(output.as_ptr(), out, output.len());
            H5free_memory(*buf);
            *buf = out.cast::<c_void>();
            *buf_size = output.len().max(1);
        }
        Some(output.len())
    };
    std::panic::catch_unwind(run).ok().flatten().unwrap_or(0)
}
