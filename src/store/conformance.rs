//! The conformance suite every [`ChunkStore`] runs. A backend's test module
//! calls [`run_all`] with a factory that creates a fresh store for a
//! [`StoreMeta`] and a closure that reopens it from its storage.
//!
//! Checks compare only the part of edge chunks that lies inside the array:
//! dense stores (`.npy`) cannot keep bytes outside it.

use std::sync::Arc;

use rayon::prelude::*;

use super::{ChunkStore, ChunkStoreExt, StoreMeta, extract_region};
use crate::dtype::DType;
use crate::error::Result;
use crate::layout::{Strided, c_strides, copy_region};

/// Reopens the store just created from its storage (a new handle).
pub type Reopen = Box<dyn Fn() -> Result<Arc<dyn ChunkStore>>>;

/// Creates a fresh store for a layout, plus a way to reopen it.
pub type Create<'a> = &'a dyn Fn(&StoreMeta) -> Result<(Arc<dyn ChunkStore>, Reopen)>;

/// How the suite creates and reopens a backend's stores.
pub struct Harness<'a> {
    /// Fresh store factory.
    pub create: Create<'a>,
}

/// Runs every check; panics (test failure) on the first violation.
pub fn run_all(h: &Harness<'_>) {
    round_trip_every_dtype(h);
    never_written_reads_as_fill(h);
    overwrite_and_erase(h);
    partial_reads_match_full_reads(h);
    flush_then_reopen_persists(h);
    parallel_writes(h);
    bad_calls_are_errors(h);
    resize_first_axis(h);
}

fn meta(dtype: DType, shape: &[u64], chunks: &[u64]) -> StoreMeta {
    StoreMeta {
        dtype,
        shape: shape.to_vec(),
        chunks: chunks.to_vec(),
        fill: vec![0; dtype.size()],
    }
}

/// A random region of a chunk of shape `chunks`: per axis a start, a
/// step of 1 to 3 and any count that fits (zero included), for tests that
/// compare read paths. Test builds only: `rand` is a dev-dependency of
/// the library (the `cli` feature's otherwise).
#[cfg(test)]
pub fn random_region(rng: &mut impl rand::Rng, chunks: &[u64]) -> Vec<(u64, u64, u64)> {
    use rand::RngExt;
    chunks
        .iter()
        .map(|&c| {
            let start = rng.random_range(0..c);
            let step = rng.random_range(1..=3);
            let count = rng.random_range(0..=(c - 1 - start) / step + 1);
            (start, step, count)
        })
        .collect()
}

/// Deterministic chunk contents; bools hold 0 or 1.
pub fn pattern(m: &StoreMeta, chunk: &[u64], salt: u8) -> Vec<u8> {
    let seed = chunk.iter().fold(salt as usize, |a, &c| {
        a.wrapping_mul(31).wrapping_add(c as usize)
    });
    (0..m.chunk_bytes())
        .map(|i| {
            let b = (i.wrapping_mul(131).wrapping_add(seed * 7 + 1) % 251) as u8;
            if m.dtype == DType::Bool { b & 1 } else { b }
        })
        .collect()
}

fn extent(m: &StoreMeta, chunk: &[u64]) -> Vec<(u64, u64, u64)> {
    chunk
        .iter()
        .zip(m.chunks.iter().zip(&m.shape))
        .map(|(&k, (&c, &n))| (0, 1, c.min(n - k * c)))
        .collect()
}

fn chunks_of(m: &StoreMeta) -> Vec<Vec<u64>> {
    let grid: Vec<u64> = m
        .shape
        .iter()
        .zip(&m.chunks)
        .map(|(&n, &c)| n.div_ceil(c))
        .collect();
    let total: u64 = grid.iter().product();
    (0..total)
        .map(|mut lin| {
            let mut c = vec![0; grid.len()];
            for i in (0..grid.len()).rev() {
                c[i] = lin % grid[i];
                lin /= grid[i];
            }
            c
        })
        .collect()
}

/// The inside-the-array part of a chunk's bytes.
fn inside(m: &StoreMeta, chunk: &[u64], data: &[u8]) -> Vec<u8> {
    extract_region(m, data, &extent(m, chunk))
}

fn assert_chunk(s: &dyn ChunkStore, chunk: &[u64], want: &[u8], what: &str) {
    let m = &s.meta();
    let got = s
        .read_chunk(chunk)
        .unwrap_or_else(|e| panic!("{}: {what}: read {chunk:?}: {e}", s.backend()))
        .unwrap_or_else(|| panic!("{}: {what}: chunk {chunk:?} missing", s.backend()));
    assert_eq!(
        got.len(),
        m.chunk_bytes(),
        "{}: {what}: chunk size",
        s.backend()
    );
    assert!(
        inside(m, chunk, &got) == inside(m, chunk, want),
        "{}: {what}: chunk {chunk:?} differs",
        s.backend()
    );
}

fn assert_fill(s: &dyn ChunkStore, chunk: &[u64], what: &str) {
    let m = &s.meta();
    match s.read_chunk(chunk).unwrap() {
        None => assert!(
            s.capabilities().tracks_missing,
            "{}: {what}: store does not track missing chunks but returned None for {chunk:?}",
            s.backend()
        ),
        Some(d) => {
            let fill: Vec<u8> = m.fill.iter().copied().cycle().take(d.len()).collect();
            assert!(
                inside(m, chunk, &d) == inside(m, chunk, &fill),
                "{}: {what}: chunk {chunk:?} is not the fill value",
                s.backend()
            );
            assert!(
                !s.capabilities().tracks_missing,
                "{}: {what}: store tracks missing chunks but returned Some for {chunk:?}",
                s.backend()
            );
        }
    }
}

fn round_trip_every_dtype(h: &Harness<'_>) {
    for dtype in DType::ALL {
        let m = meta(dtype, &[5, 7], &[2, 3]);
        let (s, _) = (h.create)(&m).expect("create");
        assert_eq!(s.meta().dtype, dtype);
        assert_eq!(s.meta().shape, m.shape);
        for c in chunks_of(&m) {
            s.write_chunk(&c, &pattern(&m, &c, 1)).expect("write");
        }
        for c in chunks_of(&m) {
            assert_chunk(&*s, &c, &pattern(&m, &c, 1), &format!("round trip {dtype}"));
        }
    }
}

fn never_written_reads_as_fill(h: &Harness<'_>) {
    let m = meta(DType::F32, &[6, 4], &[3, 4]);
    let (s, _) = (h.create)(&m).expect("create");
    s.write_chunk(&[0, 0], &pattern(&m, &[0, 0], 2)).unwrap();
    assert_fill(&*s, &[1, 0], "never written");
    assert_chunk(&*s, &[0, 0], &pattern(&m, &[0, 0], 2), "written beside");
}

fn overwrite_and_erase(h: &Harness<'_>) {
    let m = meta(DType::I16, &[4, 4, 3], &[2, 3, 3]);
    let (s, _) = (h.create)(&m).expect("create");
    let c = [1, 1, 0];
    s.write_chunk(&c, &pattern(&m, &c, 3)).unwrap();
    s.write_chunk(&c, &pattern(&m, &c, 4)).unwrap();
    assert_chunk(&*s, &c, &pattern(&m, &c, 4), "overwrite");
    s.erase_chunk(&c).unwrap();
    assert_fill(&*s, &c, "erased");
    // Erasing a chunk never written is not an error.
    s.erase_chunk(&[0, 0, 0]).unwrap();
}

fn partial_reads_match_full_reads(h: &Harness<'_>) {
    let m = meta(DType::U32, &[9, 10, 11], &[4, 5, 6]);
    let (s, _) = (h.create)(&m).expect("create");
    for c in chunks_of(&m) {
        s.write_chunk(&c, &pattern(&m, &c, 5)).unwrap();
    }
    let regions: [[(u64, u64, u64); 3]; 4] = [
        [(0, 1, 4), (0, 1, 5), (0, 1, 6)],
        [(1, 1, 1), (2, 1, 1), (3, 1, 1)],
        [(0, 2, 2), (1, 3, 2), (0, 5, 2)],
        [(3, 1, 1), (0, 1, 5), (1, 2, 3)],
    ];
    let regions_and_runs = regions.iter().chain(&[
        [(2, 1, 1), (3, 1, 1), (0, 1, 6)], // one row: one run in C order
        [(0, 1, 4), (3, 1, 1), (2, 1, 1)], // one run in Fortran order
    ]);
    for c in [[0u64, 0, 0], [1, 1, 0], [0, 1, 1]] {
        let full = s.read_chunk(&c).unwrap().expect("written");
        for r in regions_and_runs.clone() {
            let got = s.read_region(&c, r).unwrap().expect("written");
            let want = extract_region(&m, &full, r);
            assert_eq!(got, want, "{}: region {r:?} of {c:?}", s.backend());
            assert_region_into(&*s, &c, r, &want);
        }
    }
    // Partial read of an edge chunk, inside the array only.
    let edge = [2u64, 1, 1];
    let r = [(0, 1, 1), (1, 2, 2), (0, 1, 5)];
    let full = s.read_chunk(&edge).unwrap().expect("written");
    let want = extract_region(&m, &full, &r);
    assert_eq!(s.read_region(&edge, &r).unwrap().expect("written"), want);
    assert_region_into(&*s, &edge, &r, &want);
    // An output position past the buffer is an error, not a panic.
    let mut small = vec![0u8; 4];
    let st = [30usize, 6, 1];
    let at = Strided {
        offset: 0,
        strides: &st,
    };
    assert!(
        s.read_region_into(&[0, 0, 0], &regions[0], &mut small, at)
            .is_err(),
        "{}: output too small",
        s.backend()
    );
    // A never-written chunk leaves the output alone.
    if s.capabilities().tracks_missing {
        let (fresh, _) = (h.create)(&m).expect("create");
        let mut out = vec![0xAB_u8; 4];
        let none = [0usize; 3];
        let at = Strided {
            offset: 0,
            strides: &none,
        };
        let wrote = fresh
            .read_region_into(&[0, 0, 0], &[(1, 1, 1), (1, 1, 1), (1, 1, 1)], &mut out, at)
            .unwrap();
        assert!(!wrote && out == [0xAB; 4], "{}", fresh.backend());
    }
}

/// `read_region_into` a padded output (each axis one longer than the
/// region, starting one element in) puts `want` (the region, dense) at
/// its positions and leaves every other byte alone.
fn assert_region_into(s: &dyn ChunkStore, chunk: &[u64], r: &[(u64, u64, u64)], want: &[u8]) {
    let elem = s.meta().dtype.size();
    let counts: Vec<usize> = r.iter().map(|x| x.2 as usize).collect();
    let padded: Vec<u64> = r.iter().map(|x| x.2 + 1).collect();
    let st = c_strides(&padded);
    let len = padded.iter().product::<u64>() as usize * elem;
    let at = Strided {
        offset: 1,
        strides: &st,
    };
    let mut expect = vec![0xAB_u8; len];
    let dense_shape: Vec<u64> = r.iter().map(|x| x.2).collect();
    let dense = c_strides(&dense_shape);
    copy_region(
        &counts,
        elem,
        want,
        Strided {
            offset: 0,
            strides: &dense,
        },
        &mut expect,
        at,
    );
    let mut out = vec![0xAB_u8; len];
    assert!(s.read_region_into(chunk, r, &mut out, at).unwrap());
    assert_eq!(
        out,
        expect,
        "{}: read_region_into {r:?} of {chunk:?}",
        s.backend()
    );
}

fn flush_then_reopen_persists(h: &Harness<'_>) {
    let m = meta(DType::F64, &[7, 3], &[3, 2]);
    let (s, reopen) = (h.create)(&m).expect("create");
    let chunks = chunks_of(&m);
    for c in &chunks {
        s.write_chunk(c, &pattern(&m, c, 6)).unwrap();
    }
    s.flush().expect("flush");
    drop(s);
    let r = reopen().expect("reopen");
    assert_eq!(r.meta().shape, m.shape);
    assert_eq!(r.meta().dtype, m.dtype);
    for c in &chunks {
        assert_chunk(&*r, c, &pattern(&m, c, 6), "after reopen");
    }
    assert!(
        r.stored_bytes().unwrap() > 0,
        "{}: stored bytes",
        r.backend()
    );
}

fn parallel_writes(h: &Harness<'_>) {
    let m = meta(DType::U8, &[64, 64], &[8, 8]);
    let (s, _) = (h.create)(&m).expect("create");
    let chunks = chunks_of(&m);
    if s.capabilities().parallel_writes {
        chunks.par_iter().for_each(|c| {
            s.write_chunk(c, &pattern(&m, c, 7)).unwrap();
        });
    } else {
        for c in &chunks {
            s.write_chunk(c, &pattern(&m, c, 7)).unwrap();
        }
    }
    chunks.par_iter().for_each(|c| {
        assert_chunk(&*s, c, &pattern(&m, c, 7), "parallel");
    });
}

fn bad_calls_are_errors(h: &Harness<'_>) {
    let m = meta(DType::I32, &[4, 4], &[2, 2]);
    let (s, _) = (h.create)(&m).expect("create");
    assert!(s.write_chunk(&[0, 0], &[0u8; 3]).is_err(), "short write");
    assert!(s.read_chunk(&[2, 0]).is_err(), "chunk outside grid");
    assert!(s.read_chunk(&[0]).is_err(), "wrong rank");
    assert!(
        s.write_chunk(&[0, 5], &pattern(&m, &[0, 0], 0)).is_err(),
        "write outside grid"
    );
}

/// Whether a chunk reads as never written: `None`, or the fill value inside
/// the array (dense stores).
fn reads_as_fill(s: &dyn ChunkStore, chunk: &[u64]) -> bool {
    let m = &s.meta();
    match s.read_chunk(chunk).unwrap() {
        None => true,
        Some(d) => inside(m, chunk, &d) == inside(m, chunk, &vec![0; m.chunk_bytes()]),
    }
}

fn resize_first_axis(h: &Harness<'_>) {
    let m = meta(DType::U16, &[5, 3], &[2, 2]);
    let (s, reopen) = (h.create)(&m).expect("create");
    let before = chunks_of(&m);
    for c in &before {
        s.write_chunk(c, &pattern(&m, c, 8)).unwrap();
    }
    s.flush().unwrap();
    // Grow: old chunks keep their data inside the old shape; new chunk
    // rows read as never written.
    match s.resize(9) {
        Ok(()) => {}
        // A store may be unable to change shape (Fortran-order `.npy`); it
        // must say so with a typed error and leave the shape alone.
        Err(crate::error::Error::Unsupported(_)) => {
            assert_eq!(s.meta().shape, m.shape);
            return;
        }
        Err(e) => panic!("{}: grow: {e}", s.backend()),
    }
    let grown = s.meta();
    assert_eq!(grown.shape, vec![9, 3], "{}", s.backend());
    for c in &before {
        let got = s.read_chunk(c).unwrap().expect("written");
        assert_eq!(
            inside(&m, c, &got),
            inside(&m, c, &pattern(&m, c, 8)),
            "{}: chunk {c:?} after growing",
            s.backend()
        );
    }
    for c in chunks_of(&grown).iter().filter(|c| c[0] >= 3) {
        assert!(reads_as_fill(&*s, c), "{}: new chunk {c:?}", s.backend());
        s.write_chunk(c, &pattern(&grown, c, 9)).unwrap();
    }
    s.flush().unwrap();
    drop(s);
    let r = reopen().expect("reopen after growing");
    assert_eq!(r.meta().shape, vec![9, 3], "{}: reopened", r.backend());
    for c in chunks_of(&grown).iter().filter(|c| c[0] >= 3) {
        assert_chunk(&*r, c, &pattern(&grown, c, 9), "grown, reopened");
    }
    // Shrink: chunks past the end are gone, the rest keep their data.
    r.resize(3).expect("shrink");
    let short = r.meta();
    assert_eq!(short.shape, vec![3, 3]);
    assert!(
        r.read_chunk(&[2, 0]).is_err(),
        "{}: past the end",
        r.backend()
    );
    assert_chunk(
        &*r,
        &[0, 1],
        &pattern(&m, &[0, 1], 8),
        "kept after shrinking",
    );
    drop(r);
    let r = reopen().expect("reopen after shrinking");
    assert_eq!(
        r.meta().shape,
        vec![3, 3],
        "{}: reopened short",
        r.backend()
    );
    // Growing again does not bring the dropped chunks back.
    r.resize(8).expect("grow again");
    for c in chunks_of(&r.meta()).iter().filter(|c| c[0] >= 2) {
        assert!(
            reads_as_fill(&*r, c),
            "{}: regrown chunk {c:?}",
            r.backend()
        );
    }
}
