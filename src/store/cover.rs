//! Cold reads of dense regions: one covering read of the region's span,
//! in bounded pieces, instead of a page fault per run.
//!
//! A region of many small runs (`a[z, ::2, ::2]` of a 2000 x 2000 float32
//! plane is a million one-element runs over 16 MB) is copied out of a file
//! map advised `MADV_RANDOM` ([`super::filemap`]). When the file's pages
//! are not in the page cache, each page the copy touches is a 4 KiB read
//! from the disk, one after the other. `MADV_WILLNEED` of the span helps
//! only up to the device's read-ahead window: Linux reads at most
//! `max(read_ahead_kb, max_sectors_kb)` per call (`force_page_cache_ra`),
//! so a 16 MB span advised at once with an 8 MiB window left its second
//! half to 1,397 serial page faults
//! (`docs/benchmarks.md#issue-21-cold-and-strided-reads`).
//!
//! When the runs cover their span densely enough ([`plan`]), reading the
//! whole span with `pread`s is faster: sequential reads at the disk's
//! speed, with the kernel's own read-ahead, whatever the window. The span
//! is read a piece of at most [`PIECE_BYTES`] at a time into one buffer
//! and the region's elements copied out of each piece, so the memory the
//! read holds stays bounded whatever the span, and no page of the file
//! becomes resident in the process (the map is not touched). When the
//! runs are sparse, reading their span would read far more than the runs'
//! pages: they stay page faults (or `pread`s) each.
//!
//! Warm, the map is cheaper (no copy of the span), so a store asks
//! [`is_cold`] first: a probe of the page cache that costs two system
//! calls, paid only by regions whose span is at least [`COVER_MIN_SPAN`].

use std::fs::File;

use crate::buffer::ChunkBuf;
use crate::error::Result;
use crate::layout::{Small, Strided, copy_region};

/// Bytes of the file a piece of a covering read spans at most: the one
/// buffer the read holds. Each piece is one or a few `pread`s of this
/// size, long enough for the kernel's sequential read-ahead to keep the
/// disk busy.
pub(crate) const PIECE_BYTES: usize = 1 << 20;

/// Regions whose span is shorter are never read covering: the map's
/// read-ahead (`MADV_WILLNEED`, up to the device's window) serves them,
/// and the probe's two system calls would be a sizeable part of a warm
/// tile.
pub(crate) const COVER_MIN_SPAN: usize = 1 << 20;

/// A page read on its own when cold costs about as much as this many
/// bytes read sequentially: a cold 4 KiB fault took 25-50 µs on the
/// development machine, where sequential reads ran at 1.2-2 GB/s (50-100
/// KB in that time); the figure is the low end, so a covering read is
/// chosen only where it reads at most about half as long as the faults
/// would wait.
pub(crate) const COVER_BYTES_PER_PAGE: usize = 32 << 10;

/// `read(buf, pos)`: fills `buf` from byte `pos` (counted from a base the
/// caller knows), naming the file in its errors.
pub(crate) type ReadAt<'a> = dyn FnMut(&mut [u8], usize) -> Result<()> + 'a;

/// Page size the plan counts in.
const PAGE: usize = 4096;

/// How a region whose first bytes are not in the page cache is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// One covering read of the span, in pieces ([`read_covering`]).
    Cover,
    /// The runs one by one (page faults of the map, or `pread`s).
    Runs,
}

/// Picks how to read, when cold, `runs` file runs of `run_bytes` each
/// spread over `span` bytes from the first byte to the last: covering
/// when the span is at least [`COVER_MIN_SPAN`] and reading it costs no
/// more than [`COVER_BYTES_PER_PAGE`] per page the runs would read on
/// their own (a run reads its pages, at most every page of the span).
pub(crate) fn plan(runs: u64, run_bytes: usize, span: usize) -> Plan {
    if runs < 2 || span < COVER_MIN_SPAN {
        return Plan::Runs;
    }
    let pages = runs
        .saturating_mul((run_bytes / PAGE + 1) as u64)
        .min((span / PAGE + 1) as u64);
    if span as u64 <= pages.saturating_mul(COVER_BYTES_PER_PAGE as u64) {
        Plan::Cover
    } else {
        Plan::Runs
    }
}

/// Whether bytes `first` and `last` of `file` are missing from the page
/// cache: `Some(true)` if either is, `Some(false)` if both are there,
/// `None` if the kernel cannot say (no `RWF_NOWAIT` for this file).
/// One-byte `preadv2(RWF_NOWAIT)` reads, which fail with `EAGAIN` instead
/// of waiting for the disk.
pub(crate) fn is_cold(file: &File, first: u64, last: u64) -> Option<bool> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::io::{Errno, ReadWriteFlags, preadv2};
        let mut cold = false;
        for pos in [first, last] {
            let mut byte = [0u8; 1];
            match preadv2(
                file,
                &mut [std::io::IoSliceMut::new(&mut byte)],
                pos,
                ReadWriteFlags::NOWAIT,
            ) {
                Ok(1) => {}
                Err(Errno::AGAIN) => cold = true,
                _ => return None,
            }
        }
        Some(cold)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (file, first, last);
        None
    }
}

/// Bytes of the file one read-ahead request ([`read_ahead`]) asks for:
/// at most what Linux reads per `POSIX_FADV_WILLNEED` call with the
/// smallest usual read-ahead window and request size (it reads
/// `max(read_ahead_kb, max_sectors_kb)` per call and cuts that into 2 MiB
/// pieces itself).
const READ_AHEAD_PIECE: u64 = 2 << 20;

/// Asks the kernel to start reading bytes `start..start + len` of `file`
/// into the page cache (`POSIX_FADV_WILLNEED`, a request per
/// [`READ_AHEAD_PIECE`]), without waiting for them: the covering read's
/// `pread`s then find the disk already busy with the whole span, rather
/// than a read-ahead window that grows from the first `pread`. Failures
/// cost speed only and are ignored.
pub(crate) fn read_ahead(file: &File, start: u64, len: u64) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let end = start.saturating_add(len);
        let mut pos = start;
        while pos < end {
            let n = READ_AHEAD_PIECE.min(end - pos);
            let _ = rustix::fs::fadvise(
                file,
                pos,
                std::num::NonZeroU64::new(n),
                rustix::fs::Advice::WillNeed,
            );
            pos += n;
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (file, start, len);
}

/// Copies the `counts` elements of `elem` bytes at `src` (element offset
/// and strides from byte 0 of what `read` reads) into `out` at `at`, by
/// reading their span a piece of at most `piece_bytes` at a time
/// (`read(buf, pos)` fills `buf` from byte `pos`). Every element lies in
/// the span and `at` in `out` (checked by the caller).
///
/// Pieces follow the region's axes from the outermost in the file (the
/// largest stride) in: a piece is as many consecutive indices of an axis
/// as fit, each with the whole of the inner axes; an axis one index of
/// which spans more than a piece is walked an index at a time, and its
/// inner axes cut in turn. A piece spans at least one element and at most
/// `piece_bytes` (or one element, if an element is longer), so the buffer
/// is bounded whatever the region.
pub(crate) fn read_covering(
    counts: &[usize],
    elem: usize,
    src: Strided<'_>,
    out: &mut [u8],
    at: Strided<'_>,
    piece_bytes: usize,
    read: &mut ReadAt<'_>,
) -> Result<()> {
    if counts.contains(&0) {
        return Ok(());
    }
    // Axes of more than one index, outermost in the file first.
    let mut axes: Small<usize> = (0..counts.len()).filter(|&a| counts[a] > 1).collect();
    axes.sort_by(|&a, &b| src.strides[b].cmp(&src.strides[a]));
    let n: Small<usize> = axes.iter().map(|&a| counts[a]).collect();
    let ss: Small<usize> = axes.iter().map(|&a| src.strides[a]).collect();
    let ds: Small<usize> = axes.iter().map(|&a| at.strides[a]).collect();
    // inner[k]: elements one index of axis k spans, with its inner axes.
    let mut inner: Small<usize> = Small::with_capacity(n.len());
    let mut acc = 1usize;
    for k in (0..n.len()).rev() {
        inner.push(acc);
        acc += (n[k] - 1) * ss[k];
    }
    inner.reverse();
    let span = acc;
    let cap = (piece_bytes / elem).max(1);
    let mut buf = ChunkBuf::zeroed(span.min(cap) * elem);
    let mut cut = Cut {
        n: &n,
        ss: &ss,
        ds: &ds,
        inner: &inner,
        cap,
        elem,
        buf: &mut buf,
        out,
        read,
    };
    cut.axis(0, src.offset, at.offset)
}

/// The region of [`read_covering`], its axes sorted, being read.
struct Cut<'a> {
    n: &'a [usize],
    ss: &'a [usize],
    ds: &'a [usize],
    inner: &'a [usize],
    /// Elements a piece spans at most.
    cap: usize,
    elem: usize,
    buf: &'a mut [u8],
    out: &'a mut [u8],
    read: &'a mut ReadAt<'a>,
}

impl Cut<'_> {
    /// Reads the sub-region of axes `k..` at element offsets `s` (file) and
    /// `d` (output).
    fn axis(&mut self, k: usize, s: usize, d: usize) -> Result<()> {
        let elem = self.elem;
        if k == self.n.len() {
            // A single element (every axis had one index).
            (self.read)(&mut self.buf[..elem], s * elem)?;
            self.out[d * elem..(d + 1) * elem].copy_from_slice(&self.buf[..elem]);
            return Ok(());
        }
        let (n, ss, ds, inner) = (self.n[k], self.ss[k], self.ds[k], self.inner[k]);
        if inner > self.cap {
            for i in 0..n {
                self.axis(k + 1, s + i * ss, d + i * ds)?;
            }
            return Ok(());
        }
        // Indices of axis k per piece: (per - 1) * ss + inner <= cap.
        let per = ((self.cap - inner) / ss + 1).min(n);
        let mut counts: Small<usize> = self.n[k..].iter().copied().collect();
        let mut i = 0;
        while i < n {
            let m = per.min(n - i);
            let len = ((m - 1) * ss + inner) * elem;
            let pos = (s + i * ss) * elem;
            (self.read)(&mut self.buf[..len], pos)?;
            counts[0] = m;
            copy_region(
                &counts,
                elem,
                &self.buf[..len],
                Strided {
                    offset: 0,
                    strides: &self.ss[k..],
                },
                self.out,
                Strided {
                    offset: d + i * ds,
                    strides: &self.ds[k..],
                },
            );
            i += m;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::c_strides;

    #[test]
    fn plan_covers_dense_strided_planes_and_not_sparse_rows() {
        let plane = 2000 * 2000 * 4;
        // a[z, ::2, ::2]: a million one-element runs over the plane.
        assert_eq!(plan(1_000_000, 4, plane - 8004), Plan::Cover);
        // a[z, ::2, :]: whole rows every other row.
        assert_eq!(plan(1000, 8000, plane - 8000), Plan::Cover);
        // a[::3, ::7, 5] in one plane: 286 elements 56 KB apart.
        assert_eq!(plan(286, 4, 285 * 7 * 8000 + 1), Plan::Runs);
        // a[z, ::16, :]: whole rows 128 KB apart.
        assert_eq!(plan(125, 8000, 124 * 16 * 8000 + 8000), Plan::Runs);
        // Short spans (a 64 x 64 tile) and single runs: never.
        assert_eq!(plan(64, 256, 63 * 8000 + 256), Plan::Runs);
        assert_eq!(plan(1, plane, plane), Plan::Runs);
        // Two elements at either end of a large span: sparse.
        assert_eq!(plan(2, 4, 64 << 20), Plan::Runs);
    }

    /// Reads `region` (start, step, count per axis) of a C-order array of
    /// `shape` both ways: covering (pieces of `piece` bytes) and by the
    /// plain copy kernel; compares, and checks that every read stays in
    /// the array, is at most `piece` bytes (or one element) and that the
    /// reads together cover no byte twice.
    fn check(shape: &[usize], region: &[(usize, usize, usize)], piece: usize) {
        let elem = 4;
        let total: usize = shape.iter().product();
        let file: Vec<u8> = (0..total as u32).flat_map(|v| v.to_le_bytes()).collect();
        let fs = c_strides(&shape.iter().map(|&n| n as u64).collect::<Vec<_>>());
        let counts: Vec<usize> = region.iter().map(|r| r.2).collect();
        let offset: usize = region.iter().zip(&fs).map(|(r, s)| r.0 * s).sum();
        let strides: Vec<usize> = region.iter().zip(&fs).map(|(r, s)| r.1 * s).collect();
        let src = Strided {
            offset,
            strides: &strides,
        };
        let os = c_strides(&counts.iter().map(|&n| n as u64).collect::<Vec<_>>());
        let n: usize = counts.iter().product();
        let at = Strided {
            offset: 0,
            strides: &os,
        };
        let mut want = vec![0u8; n * elem];
        copy_region(&counts, elem, &file, src, &mut want, at);
        let mut got = vec![0xAAu8; n * elem];
        let mut reads: Vec<(usize, usize)> = Vec::new();
        read_covering(&counts, elem, src, &mut got, at, piece, &mut |buf, pos| {
            assert!(buf.len() <= piece.max(elem), "read of {} bytes", buf.len());
            buf.copy_from_slice(&file[pos..pos + buf.len()]);
            reads.push((pos, buf.len()));
            Ok(())
        })
        .expect("reads");
        assert_eq!(got, want, "shape {shape:?} region {region:?} piece {piece}");
        reads.sort_unstable();
        for w in reads.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "overlapping reads {w:?}");
        }
    }

    #[test]
    fn covering_reads_match_the_copy_kernel_on_many_shapes_and_steps() {
        let shapes: [&[usize]; 4] = [&[50], &[9, 13], &[4, 7, 11], &[3, 5, 4, 6]];
        for shape in shapes {
            // Every start in {0, 1}, step in {1, 2, 3, 5}, count as many as
            // fit, per axis; pieces from one element to the whole array.
            let rank = shape.len();
            for combo in 0..(8usize.pow(rank as u32)) {
                let mut c = combo;
                let region: Vec<(usize, usize, usize)> = shape
                    .iter()
                    .map(|&len| {
                        let (start, step) = (c % 2, [1, 2, 3, 5][(c / 2) % 4]);
                        c /= 8;
                        (start, step, (len - start).div_ceil(step))
                    })
                    .collect();
                for piece in [4, 12, 40, 256, 1 << 20] {
                    check(shape, &region, piece);
                }
            }
        }
    }

    #[test]
    fn covering_reads_a_strided_plane_in_bounded_pieces() {
        // a[1, ::2, ::2] of a 3 x 200 x 300 array: 100 x 150 elements.
        let mut reads = 0;
        let shape = [3usize, 200, 300];
        check(&shape, &[(1, 1, 1), (0, 2, 100), (0, 2, 150)], 64 << 10);
        let fs = [60_000usize, 300, 1];
        let strides = [60_000, 600, 2];
        let mut out = vec![0u8; 100 * 150 * 4];
        read_covering(
            &[1, 100, 150],
            4,
            Strided {
                offset: fs[0],
                strides: &strides,
            },
            &mut out,
            Strided {
                offset: 0,
                strides: &[15_000, 150, 1],
            },
            64 << 10,
            &mut |buf, _| {
                assert!(buf.len() <= 64 << 10);
                reads += 1;
                Ok(())
            },
        )
        .expect("reads");
        // The span is 99 * 600 + 299 elements (about 239 KB): four pieces
        // of at most 27 selected rows (at most 64 KiB each).
        assert_eq!(reads, 4);
    }

    #[test]
    fn covering_read_errors_stop_the_read() {
        let mut calls = 0;
        let r = read_covering(
            &[10, 10],
            4,
            Strided {
                offset: 0,
                strides: &[20, 2],
            },
            &mut [0u8; 400],
            Strided {
                offset: 0,
                strides: &[10, 1],
            },
            100,
            &mut |_, _| {
                calls += 1;
                Err(crate::error::Error::invalid("disk gone"))
            },
        );
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn is_cold_tells_cached_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 1 << 16]).expect("write");
        let f = File::open(&path).expect("open");
        // Just written: in the page cache (or the probe is not supported).
        assert_ne!(is_cold(&f, 0, (1 << 16) - 1), Some(true));
    }
}
