//! Chunk and region I/O of a `.npy` file: the [`ChunkStore`] impl, with
//! positioned reads and writes of file-contiguous runs and copies out of
//! the read-only map.

use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
#[cfg(test)]
use std::sync::atomic::Ordering;

use super::Order;
use super::store::NpyFile;
use crate::buffer::ChunkBuf;
use crate::dtype::{DType, Endian, normalize_bools, swap_bytes_in_place};
use crate::error::{Error, Result};
use crate::layout::{
    Small, Strided, c_strides, copy_region, f_strides, for_each_file_run, single_run,
};
use crate::store::filemap::FileMap;
use crate::store::{Capabilities, ChunkRegion, ChunkStore, StoreMeta, extract_region};

/// Runs written at least this long start their write-back at once
/// (`start_writeback`).
const WRITEBACK_MIN_RUN: usize = 1 << 20;

impl NpyFile {
    /// Per-axis counts of the chunk's part inside the array, and the
    /// element offset in the file of its first element.
    fn geometry(&self, chunk: &[u64]) -> (Vec<usize>, usize) {
        let origin = self.grid.chunk_origin(chunk);
        let counts = self
            .grid
            .chunk_extent(chunk)
            .iter()
            .map(|&n| n as usize)
            .collect();
        let offset = origin
            .iter()
            .zip(&self.file_strides)
            .map(|(&o, &s)| o as usize * s)
            .sum();
        (counts, offset)
    }

    /// Whether the chunk buffer (C order over the chunk shape) holds the
    /// chunk's inside part densely in file order, so that runs go straight
    /// between file and buffer: C order and every axis but the first
    /// complete.
    fn direct(&self, counts: &[usize]) -> bool {
        !self.fortran()
            && counts
                .iter()
                .skip(1)
                .zip(self.meta.chunks.iter().skip(1))
                .all(|(&n, &c)| n as u64 == c)
    }

    /// Strides of a dense buffer over `counts` in the file's order.
    fn dense_strides(&self, counts: &[usize]) -> Vec<usize> {
        let shape: Vec<u64> = counts.iter().map(|&n| n as u64).collect();
        if self.fortran() {
            f_strides(&shape)
        } else {
            c_strides(&shape)
        }
    }

    /// Axes in file order (fastest-varying last), as `for_each_file_run`
    /// wants them to find the longest file-contiguous runs.
    fn file_order(&self, v: &[usize]) -> Vec<usize> {
        if self.fortran() {
            v.iter().rev().copied().collect()
        } else {
            v.to_vec()
        }
    }

    /// Calls `io(file_position, buffer_range)` for every file-contiguous
    /// run of a `counts` region at `file_offset`, with the buffer laid out
    /// by `buf_strides`. Stops at the first error.
    fn for_each_run(
        &self,
        counts: &[usize],
        file_offset: usize,
        buf_strides: &[usize],
        mut io: impl FnMut(u64, std::ops::Range<usize>, usize) -> io::Result<()>,
    ) -> Result<()> {
        let elem = self.meta.dtype.size();
        let counts = self.file_order(counts);
        let fs = self.file_order(&self.file_strides);
        let bs = self.file_order(buf_strides);
        let mut result = Ok(());
        for_each_file_run(
            &counts,
            Strided {
                offset: file_offset,
                strides: &fs,
            },
            Strided {
                offset: 0,
                strides: &bs,
            },
            |fo, bo, n, stride| {
                if result.is_err() {
                    return;
                }
                // In range: the file holds data_offset + nbytes bytes
                // (checked at open), and fo + n <= the element count.
                let pos = self.header.data_offset + (fo * elem) as u64;
                #[cfg(test)]
                self.io_calls.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = io(pos, bo * elem..(bo + n) * elem, stride) {
                    result = Err(Error::io(&self.path, e));
                }
            },
        );
        result
    }

    /// Reads a region into `buf` (laid out by `buf_strides`).
    fn read_runs(
        &self,
        counts: &[usize],
        file_offset: usize,
        buf: &mut [u8],
        buf_strides: &[usize],
    ) -> Result<()> {
        let elem = self.meta.dtype.size();
        let mut tmp = Vec::new();
        self.for_each_run(counts, file_offset, buf_strides, |pos, range, stride| {
            if stride == 1 || range.len() == elem {
                return self.file.read_exact_at(&mut buf[range], pos);
            }
            // File-contiguous, buffer-strided: read, then scatter. The
            // callers lay buffers out so that this does not happen; it is
            // here for correctness, not speed.
            tmp.resize(range.len(), 0);
            self.file.read_exact_at(&mut tmp, pos)?;
            for (i, e) in tmp.chunks_exact(elem).enumerate() {
                let at = range.start + i * stride * elem;
                buf[at..at + elem].copy_from_slice(e);
            }
            Ok(())
        })
    }

    /// Writes a region from `buf` (laid out by `buf_strides`).
    fn write_runs(
        &self,
        counts: &[usize],
        file_offset: usize,
        buf: &[u8],
        buf_strides: &[usize],
    ) -> Result<()> {
        let elem = self.meta.dtype.size();
        let mut tmp = Vec::new();
        self.for_each_run(counts, file_offset, buf_strides, |pos, range, stride| {
            if stride == 1 || range.len() == elem {
                let len = range.len();
                self.file.write_all_at(&buf[range], pos)?;
                self.start_writeback(pos, len);
                return Ok(());
            }
            tmp.clear();
            for i in 0..range.len() / elem {
                let at = range.start + i * stride * elem;
                tmp.extend_from_slice(&buf[at..at + elem]);
            }
            self.file.write_all_at(&tmp, pos)
        })
    }

    /// Starts writing a long run just written to disk without waiting
    /// for it, so that the disk works while the caller computes and the
    /// next `flush` has less left to sync (otherwise a build spends a
    /// large part of its storing time in its final `fdatasync`; see
    /// `docs/benchmarks.md#npy-write-back-started-early`).
    /// `POSIX_FADV_DONTNEED` on pages just written starts
    /// their write-back (`WB_SYNC_NONE`) and drops none of them: they
    /// are dirty or under write-back, and stay cached once clean. Like
    /// `sync_file_range(SYNC_FILE_RANGE_WRITE)`, without `unsafe`. Short
    /// runs are left to the kernel: a system call each would cost more
    /// than it saves. A failure costs speed only and is ignored.
    fn start_writeback(&self, pos: u64, len: usize) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if len >= WRITEBACK_MIN_RUN {
            let _ = rustix::fs::fadvise(
                &self.file,
                pos,
                std::num::NonZeroU64::new(len as u64),
                rustix::fs::Advice::DontNeed,
            );
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = (pos, len);
    }

    /// If `region` is one contiguous run in the file and lands as one
    /// contiguous run of the output at `at`: the run's file position and
    /// its byte range in the output.
    fn one_run(
        &self,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        at: Strided<'_>,
    ) -> Option<(u64, std::ops::Range<usize>)> {
        let elem = self.meta.dtype.size();
        let origin = self.grid.chunk_origin(chunk);
        let offset: usize = region
            .iter()
            .zip(&origin)
            .zip(&self.file_strides)
            .map(|((r, &o), &fs)| (o + r.0) as usize * fs)
            .sum();
        let pos = |s: usize| self.header.data_offset + (s * elem) as u64;
        // An element or part of a row, checked without allocating: the
        // random element's path.
        let inner = if self.fortran() {
            0
        } else {
            region.len().saturating_sub(1)
        };
        let row = region.iter().enumerate().all(|(axis, &(_, step, count))| {
            if axis == inner {
                count <= 1 || (step == 1 && at.strides[axis] == 1)
            } else {
                count == 1
            }
        });
        if row {
            let len = region.get(inner).map_or(1, |r| r.2 as usize);
            return Some((pos(offset), at.offset * elem..(at.offset + len) * elem));
        }
        // Whole rows, contiguous in the file and in the output (a scan's
        // block of a C-order chunk): one long read, which the kernel's
        // read-ahead serves well when cold.
        let counts: Small<usize> = region.iter().map(|r| r.2 as usize).collect();
        let strides: Small<usize> = region
            .iter()
            .zip(&self.file_strides)
            .map(|(r, &fs)| r.1 as usize * fs)
            .collect();
        let src = Strided {
            offset,
            strides: &strides,
        };
        let (s, d, n) = single_run(&counts, src, at)?;
        Some((pos(s), d * elem..(d + n) * elem))
    }

    /// Copies the part of `region` inside the array from the map into
    /// `out` at `at`, in file byte order; positions past the array's edge
    /// are left as they are. The region fits the chunk (checked). A cold
    /// dense region is read with `pread`s instead ([`FileMap::copy`]).
    fn copy_from_map(
        &self,
        map: &FileMap,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        out: &mut [u8],
        at: Strided<'_>,
    ) -> Result<()> {
        let elem = self.meta.dtype.size();
        // Per axis: the elements of the region inside the array, and the
        // file stride of a step (no heap: this runs on every partial read).
        let origin = self.grid.chunk_origin(chunk);
        let extent = self.grid.chunk_extent(chunk);
        let mut inside: Small<usize> = Small::with_capacity(region.len());
        let mut strides: Small<usize> = Small::with_capacity(region.len());
        let mut offset = 0usize;
        for (i, &(start, step, count)) in region.iter().enumerate() {
            inside.push(if count == 0 || start >= extent[i] {
                0
            } else {
                count.min((extent[i] - 1 - start) / step + 1) as usize
            });
            offset += (origin[i] + start) as usize * self.file_strides[i];
            strides.push(step as usize * self.file_strides[i]);
        }
        let n: usize = inside.iter().product();
        if n == 0 {
            return Ok(());
        }
        // Elements from the first to the last.
        let span = 1 + inside
            .iter()
            .zip(strides.iter())
            .map(|(&k, &s)| (k - 1) * s)
            .sum::<usize>();
        let inner = if self.fortran() {
            0
        } else {
            inside.len().saturating_sub(1)
        };
        let run = match region.get(inner) {
            Some(&(_, 1, _)) => inside[inner].max(1),
            _ => 1,
        };
        let runs = (n / run) as u64;
        let data = self.header.data_offset;
        let mut read = |buf: &mut [u8], pos: usize| {
            #[cfg(test)]
            self.io_calls.fetch_add(1, Ordering::Relaxed);
            self.file
                .read_exact_at(buf, data + pos as u64)
                .map_err(|e| Error::io(&self.path, e))
        };
        let touched = map.copy(
            data as usize,
            &inside,
            elem,
            Strided {
                offset,
                strides: &strides,
            },
            out,
            at,
            (runs, run * elem, span * elem),
            (&self.file, &mut read),
        )?;
        if self.touched.note(touched) {
            map.release();
        }
        Ok(())
    }

    fn to_native(&self, buf: &mut [u8]) {
        if self.swap {
            swap_bytes_in_place(buf, self.meta.dtype.size());
        }
        if self.meta.dtype == DType::Bool {
            normalize_bools(buf);
        }
    }
}

impl ChunkStore for NpyFile {
    fn backend(&self) -> &'static str {
        "npy"
    }

    fn describe(&self) -> String {
        let h = &self.header;
        let kind = if h.version == (0, 0) {
            format!("raw file, data at byte {}", h.data_offset)
        } else {
            format!("npy {}.{}", h.version.0, h.version.1)
        };
        let order = match h.order {
            Order::C => "C order",
            Order::Fortran => "Fortran order",
        };
        let endian = match h.endian {
            Endian::Little => "little-endian",
            Endian::Big => "big-endian",
        };
        format!("{kind}, {order}, {endian}")
    }

    fn meta(&self) -> StoreMeta {
        self.meta.clone()
    }

    fn capabilities(&self) -> Capabilities {
        // Whole chunks are read straight into the buffer (edge chunks
        // and Fortran order go through a copy).
        Capabilities {
            parallel_writes: true,
            partial_reads: true,
            tracks_missing: false,
            read_only: !self.writable,
            decodes: false,
            reads_into: true,
            write_buffer_bytes: self.write_buffer_bytes(),
            concurrent_requests: 0,
        }
    }

    fn read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>> {
        self.check_chunk(chunk)?;
        let elem = self.meta.dtype.size();
        let chunk_strides = c_strides(&self.meta.chunks);
        let mut buf = ChunkBuf::zeroed(self.meta.chunk_bytes());
        let (counts, offset) = self.geometry(chunk);
        if self.direct(&counts) {
            self.read_runs(&counts, offset, &mut buf, &chunk_strides)?;
        } else {
            // Read the inside part densely in file order (longest runs),
            // then rearrange into the C-order chunk.
            let dense = self.dense_strides(&counts);
            let mut scratch = vec![0u8; counts.iter().product::<usize>() * elem];
            self.read_runs(&counts, offset, &mut scratch, &dense)?;
            copy_region(
                &counts,
                elem,
                &scratch,
                Strided {
                    offset: 0,
                    strides: &dense,
                },
                &mut buf,
                Strided {
                    offset: 0,
                    strides: &chunk_strides,
                },
            );
        }
        self.to_native(&mut buf);
        Ok(Some(buf))
    }

    fn read_chunk_into(&self, chunk: &[u64], out: &mut [u8]) -> Result<bool> {
        self.check_chunk(chunk)?;
        self.check_len(chunk, out)?;
        let (counts, offset) = self.geometry(chunk);
        let full = counts
            .iter()
            .zip(&self.meta.chunks)
            .all(|(&n, &c)| n as u64 == c);
        if !(full && self.direct(&counts)) {
            // Edge or Fortran chunks: padding and reordering go through
            // the general path.
            let data = self.read_chunk(chunk)?.expect("npy chunks always exist");
            out.copy_from_slice(&data);
            return Ok(true);
        }
        // One positioned read per file run, straight into the caller's
        // buffer: no intermediate chunk.
        self.read_runs(&counts, offset, out, &c_strides(&self.meta.chunks))?;
        self.to_native(out);
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
        // Straight from the map when nothing needs converting and the
        // region lies inside the array; else through `dense_region`.
        let extent = self.grid.chunk_extent(chunk);
        let inside = region
            .iter()
            .zip(&extent)
            .all(|(&(start, step, count), &e)| count == 0 || start + (count - 1) * step < e);
        let convert = self.swap || self.meta.dtype == DType::Bool;
        if inside
            && !convert
            && let Some((pos, range)) = self.one_run(chunk, region, at)
        {
            // One file run (an element, part of a row): a positioned read
            // costs less than a page fault and leaves nothing mapped; see
            // docs/benchmarks.md#element-reads-by-pread.
            #[cfg(test)]
            self.io_calls.fetch_add(1, Ordering::Relaxed);
            self.file
                .read_exact_at(&mut out[range], pos)
                .map_err(|e| Error::io(&self.path, e))?;
            return Ok(true);
        }
        match &self.map {
            Some(map) if inside && !convert => {
                self.copy_from_map(map, chunk, region, out, at)?;
            }
            _ => {
                let data = self.dense_region(chunk, region)?.expect("npy chunks exist");
                crate::store::place_region("npy", chunk, region, elem, &data, out, at)?;
            }
        }
        Ok(true)
    }

    fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        self.check_chunk(chunk)?;
        self.check_len(chunk, data)?;
        self.check_writable()?;
        let elem = self.meta.dtype.size();
        let chunk_strides = c_strides(&self.meta.chunks);
        let (counts, offset) = self.geometry(chunk);
        if self.direct(&counts) {
            if self.swap {
                let mut copy = data.to_vec();
                swap_bytes_in_place(&mut copy, elem);
                self.write_runs(&counts, offset, &copy, &chunk_strides)
            } else {
                self.write_runs(&counts, offset, data, &chunk_strides)
            }
        } else {
            let dense = self.dense_strides(&counts);
            let mut scratch = vec![0u8; counts.iter().product::<usize>() * elem];
            copy_region(
                &counts,
                elem,
                data,
                Strided {
                    offset: 0,
                    strides: &chunk_strides,
                },
                &mut scratch,
                Strided {
                    offset: 0,
                    strides: &dense,
                },
            );
            if self.swap {
                swap_bytes_in_place(&mut scratch, elem);
            }
            self.write_runs(&counts, offset, &scratch, &dense)
        }
    }

    fn erase_chunk(&self, chunk: &[u64]) -> Result<()> {
        self.check_chunk(chunk)?;
        self.check_writable()?;
        let (counts, offset) = self.geometry(chunk);
        let dense = self.dense_strides(&counts);
        let zeros = vec![0u8; counts.iter().product::<usize>() * self.meta.dtype.size()];
        self.write_runs(&counts, offset, &zeros, &dense)
    }

    fn flush(&self) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }

    fn stored_bytes(&self) -> Result<u64> {
        let m = self.file.metadata().map_err(|e| Error::io(&self.path, e))?;
        Ok(m.blocks().saturating_mul(512))
    }
}

impl NpyFile {
    pub(super) fn write_buffer_bytes(&self) -> usize {
        // Whole C-order rows of a native-order file go straight from the
        // cache's buffer; otherwise a byte-swapped or reordered copy of
        // the chunk is made (edge chunks short along a trailing axis too).
        if !self.writable {
            return 0;
        }
        let ragged = self
            .meta
            .shape
            .iter()
            .zip(&self.meta.chunks)
            .skip(1)
            .any(|(&n, &c)| n % c != 0);
        if self.swap || self.fortran() || ragged {
            self.meta.chunk_bytes()
        } else {
            0
        }
    }
}

impl NpyFile {
    pub(super) fn dense_region(
        &self,
        chunk: &[u64],
        region: ChunkRegion<'_>,
    ) -> Result<Option<Vec<u8>>> {
        self.check_chunk(chunk)?;
        self.check_region(chunk, region)?;
        let Some(map) = &self.map else {
            let Some(data) = self.read_chunk(chunk)? else {
                return Ok(None);
            };
            return Ok(Some(extract_region(&self.meta, &data, region)));
        };
        let elem = self.meta.dtype.size();
        let out_shape: Vec<u64> = region.iter().map(|r| r.2).collect();
        let out_strides = c_strides(&out_shape);
        let mut out = vec![0u8; out_shape.iter().product::<u64>() as usize * elem];
        // Positions past the array's edge stay zero.
        self.copy_from_map(
            map,
            chunk,
            region,
            &mut out,
            Strided {
                offset: 0,
                strides: &out_strides,
            },
        )?;
        self.to_native(&mut out);
        Ok(Some(out))
    }
}
