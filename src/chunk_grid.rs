//! The regular chunk grid and the chunk index: which chunks a selection
//! touches, and for each one the region inside the chunk and the region in
//! the output.
//!
//! Decomposition works axis by axis: along one axis a strided range touches
//! at most `min(count, chunks along the axis)` chunks, and each is found in
//! O(1) from the previous one, so `a[::1000]` over a million chunks visits
//! only the thousand it needs. The pieces are the cartesian product of the
//! per-axis lists.

use crate::error::{Error, Result};
use crate::layout::Small;
use crate::selection::{AxisSel, ResolvedSelection};

/// Largest decoded chunk chunkyard accepts (2 GiB): a header that asks for
/// more is rejected instead of allocated.
pub(crate) const MAX_CHUNK_BYTES: u64 = 1 << 31;

/// Chunk size chunkyard aims for when none is given: large enough that a
/// chunk costs one big sequential I/O, small enough that a 256 MiB cache
/// holds sixteen of them.
pub(crate) const DEFAULT_CHUNK_TARGET_BYTES: u64 = 16 << 20;

/// A chunk shape for `shape` when the caller gives none: whole trailing
/// axes (the fastest-varying ones in storage order) while the chunk stays
/// under `target` bytes, then as many rows of the next axis as fit, then
/// length 1. With `fortran` the leading axes vary fastest and are taken
/// first. For a 500 x 2000 x 2000 `f32` array this is `[1, 2000, 2000]`.
/// An empty first axis (an array made to be appended to) counts as
/// unbounded: `[0, 2000]` of `f32` gets chunks of 2097 rows, not one.
pub(crate) fn default_chunks(
    shape: &[u64],
    elem_size: usize,
    fortran: bool,
    target: u64,
) -> Vec<u64> {
    let mut chunks = vec![1u64; shape.len()];
    let mut bytes = elem_size.max(1) as u64;
    let order: Vec<usize> = if fortran {
        (0..shape.len()).collect()
    } else {
        (0..shape.len()).rev().collect()
    };
    for ax in order {
        let n = match shape[ax] {
            0 if ax == 0 => u64::MAX,
            n => n.max(1),
        };
        match bytes.checked_mul(n) {
            Some(b) if b <= target => {
                chunks[ax] = n;
                bytes = b;
            }
            _ => {
                chunks[ax] = (target / bytes).clamp(1, n);
                break;
            }
        }
    }
    chunks
}

/// A regular grid of equally shaped chunks over an array shape. Edge chunks
/// extend past the array; their out-of-bounds part holds the fill value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkGrid {
    shape: Vec<u64>,
    chunks: Vec<u64>,
    /// Number of chunks along each axis: `ceil(shape / chunks)`.
    grid: Vec<u64>,
}

impl ChunkGrid {
    /// Validates the chunk shape against the array shape and element size.
    pub fn new(shape: &[u64], chunks: &[u64], elem_size: usize) -> Result<Self> {
        if chunks.len() != shape.len() {
            return Err(Error::invalid(format!(
                "chunk shape {chunks:?} has {} axes, the array shape {shape:?} has {}",
                chunks.len(),
                shape.len()
            )));
        }
        if let Some(axis) = chunks.iter().position(|&c| c == 0) {
            return Err(Error::invalid(format!(
                "chunk shape {chunks:?} is zero along axis {axis}"
            )));
        }
        let elems = shape
            .iter()
            .try_fold(1u64, |acc, &n| acc.checked_mul(n))
            .and_then(|n| n.checked_mul(elem_size as u64));
        if elems.is_none() {
            return Err(Error::invalid(format!(
                "array shape {shape:?} holds more bytes than fit in 64 bits"
            )));
        }
        let chunk_bytes = chunks
            .iter()
            .try_fold(elem_size as u64, |acc, &n| acc.checked_mul(n));
        match chunk_bytes {
            Some(b) if b <= MAX_CHUNK_BYTES => {}
            _ => {
                return Err(Error::invalid(format!(
                    "chunk shape {chunks:?} is larger than the {} GiB limit per chunk",
                    MAX_CHUNK_BYTES >> 30
                )));
            }
        }
        let grid = shape
            .iter()
            .zip(chunks)
            .map(|(&n, &c)| n.div_ceil(c))
            .collect();
        Ok(ChunkGrid {
            shape: shape.to_vec(),
            chunks: chunks.to_vec(),
            grid,
        })
    }

    /// The array shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// The chunk shape.
    pub fn chunk_shape(&self) -> &[u64] {
        &self.chunks
    }

    /// Chunks along each axis.
    pub fn grid_shape(&self) -> &[u64] {
        &self.grid
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Total number of chunks (saturating).
    pub fn num_chunks(&self) -> u64 {
        self.grid.iter().fold(1u64, |acc, &n| acc.saturating_mul(n))
    }

    /// Elements in one (full) chunk.
    pub fn chunk_elements(&self) -> usize {
        self.chunks.iter().product::<u64>() as usize
    }

    /// Elements in the array.
    pub fn num_elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Row-major linear number of a chunk.
    pub fn linear_index(&self, coord: &[u64]) -> u64 {
        coord
            .iter()
            .zip(&self.grid)
            .fold(0u64, |acc, (&c, &g)| acc.wrapping_mul(g).wrapping_add(c))
    }

    /// Chunk coordinate from a row-major linear number.
    pub fn coord_of(&self, mut linear: u64) -> Vec<u64> {
        let mut coord = vec![0; self.grid.len()];
        for i in (0..self.grid.len()).rev() {
            coord[i] = linear % self.grid[i];
            linear /= self.grid[i];
        }
        coord
    }

    /// The array position of a chunk's first element (no heap allocation
    /// up to `INLINE_AXES` axes).
    pub fn chunk_origin(&self, coord: &[u64]) -> Small<u64> {
        coord
            .iter()
            .zip(&self.chunks)
            .map(|(&k, &c)| k * c)
            .collect()
    }

    /// The part of a chunk that lies inside the array (smaller than the
    /// chunk shape for edge chunks).
    pub fn chunk_extent(&self, coord: &[u64]) -> Small<u64> {
        coord
            .iter()
            .zip(&self.chunks)
            .zip(&self.shape)
            .map(|((&k, &c), &n)| c.min(n - k * c))
            .collect()
    }

    /// Whether `coord` is a chunk of this grid.
    pub fn contains_chunk(&self, coord: &[u64]) -> bool {
        coord.len() == self.grid.len() && coord.iter().zip(&self.grid).all(|(&k, &g)| k < g)
    }

    /// Iterates over every chunk coordinate in row-major order.
    pub fn chunk_coords(&self) -> impl Iterator<Item = Vec<u64>> + '_ {
        let n = if self.grid.contains(&0) {
            0
        } else {
            self.num_chunks()
        };
        (0..n).map(|i| self.coord_of(i))
    }

    /// Decomposes a selection (resolved against this grid's shape) into
    /// per-chunk pieces. Visits only chunks the selection touches.
    pub fn pieces(&self, sel: &ResolvedSelection) -> Pieces {
        debug_assert_eq!(sel.axes().len(), self.ndim());
        // An empty selection touches nothing: do not list the chunks of its
        // other axes, which may be billions (found by fuzz/chunk_index).
        let empty = sel.axes().iter().any(|a| a.as_range().2 == 0);
        let n = sel.axes().len();
        let mut pieces = Vec::new();
        let mut bounds = Small::with_capacity(n);
        for (a, &c) in sel.axes().iter().zip(&self.chunks) {
            let start = pieces.len();
            if !empty {
                push_axis_pieces(a, c, &mut pieces);
            }
            bounds.push((start, pieces.len()));
        }
        Pieces {
            idx: bounds.iter().map(|&(s, _)| s).collect(),
            pieces,
            bounds,
            done: empty,
        }
    }
}

/// One chunk's share of a selection along one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AxisPiece {
    /// Chunk number along the axis.
    pub chunk: u64,
    /// First position inside the chunk.
    pub start: u64,
    /// Step inside the chunk (the selection's step).
    pub step: u64,
    /// Positions selected in this chunk.
    pub count: u64,
    /// Position of the first of them in the output along this axis (0 for
    /// an integer-indexed axis).
    pub out_start: u64,
}

/// Splits one axis' selection at chunk boundaries, appending to `out`.
fn push_axis_pieces(sel: &AxisSel, chunk: u64, out: &mut Vec<AxisPiece>) {
    let (start, step, count) = sel.as_range();
    let (mut i, mut j) = (start, 0u64);
    while j < count {
        let k = i / chunk;
        // Saturating: the last chunk of an axis near 2^64 long ends past
        // u64::MAX, and every position selected in it lies below
        // u64::MAX anyway (found by fuzz/chunk_index).
        let end = (k + 1).saturating_mul(chunk);
        let n = (count - j).min((end - i).div_ceil(step));
        out.push(AxisPiece {
            chunk: k,
            start: i - k * chunk,
            step,
            count: n,
            out_start: j,
        });
        j += n;
        // Past the array after the last piece: saturate, it is not used.
        i = i.saturating_add(n.saturating_mul(step));
    }
}

/// One chunk's share of a selection, over all axes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The chunk's coordinate in the grid.
    pub chunk: Small<u64>,
    /// Per axis: (first position in the chunk, step, count).
    pub region: Small<(u64, u64, u64)>,
    /// Per axis: first position in the output. The output is addressed
    /// with full rank: integer-indexed axes have length 1 and start 0.
    pub out_start: Small<u64>,
}

impl Piece {
    /// Number of elements in the piece.
    pub fn num_elements(&self) -> u64 {
        self.region.iter().map(|r| r.2).product()
    }

    /// Per-axis counts as `usize`.
    pub fn counts(&self) -> Small<usize> {
        self.region.iter().map(|r| r.2 as usize).collect()
    }

    /// Whether the piece covers every element of the chunk that lies
    /// inside the array (`extent` from [`ChunkGrid::chunk_extent`]).
    pub fn covers(&self, extent: &[u64]) -> bool {
        self.region
            .iter()
            .zip(extent)
            .all(|(&(start, step, count), &e)| start == 0 && (count == e) && (step == 1 || e <= 1))
    }
}

/// Iterator over the [`Piece`]s of a selection.
#[derive(Debug)]
pub struct Pieces {
    /// Every axis's pieces, axis after axis: one allocation for all.
    pieces: Vec<AxisPiece>,
    /// Where each axis's pieces start in `pieces`, and where they end.
    bounds: Small<(usize, usize)>,
    /// The current piece of each axis (index into `pieces`).
    idx: Small<usize>,
    done: bool,
}

impl Pieces {
    /// Number of pieces (chunks touched), saturating.
    pub fn len_hint(&self) -> u64 {
        if self.done {
            return 0;
        }
        self.bounds
            .iter()
            .fold(1u64, |a, &(s, e)| a.saturating_mul((e - s) as u64))
    }
}

impl Iterator for Pieces {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        if self.done {
            return None;
        }
        let parts = || self.idx.iter().map(|&i| &self.pieces[i]);
        let piece = Piece {
            chunk: parts().map(|p| p.chunk).collect(),
            region: parts().map(|p| (p.start, p.step, p.count)).collect(),
            out_start: parts().map(|p| p.out_start).collect(),
        };
        // Advance the odometer, last axis fastest (storage order).
        let mut k = self.idx.len();
        loop {
            if k == 0 {
                self.done = true;
                break;
            }
            k -= 1;
            self.idx[k] += 1;
            if self.idx[k] < self.bounds[k].1 {
                break;
            }
            self.idx[k] = self.bounds[k].0;
        }
        Some(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selection::AxisSel;
    use crate::selection::Selection;
    use std::collections::HashMap;

    fn grid(shape: &[u64], chunks: &[u64]) -> ChunkGrid {
        ChunkGrid::new(shape, chunks, 4).unwrap()
    }

    #[test]
    fn empty_selections_list_no_chunks() {
        // 0 x 2^40 with chunks of 1: listing the second axis's chunks
        // would allocate tens of terabytes.
        let grid = ChunkGrid::new(&[4, 1 << 40], &[1, 1], 1).unwrap();
        let sel = ResolvedSelection::from_axes(vec![
            AxisSel::Range {
                start: 0,
                step: 1,
                count: 0,
            },
            AxisSel::Range {
                start: 0,
                step: 1,
                count: 1 << 40,
            },
        ]);
        let pieces = grid.pieces(&sel);
        assert_eq!(pieces.len_hint(), 0);
        assert_eq!(pieces.count(), 0);
    }

    #[test]
    fn the_last_chunk_of_an_axis_near_u64_max_does_not_overflow() {
        // The last chunk's end, (k + 1) * chunk, is past u64::MAX.
        let n = u64::MAX - 5;
        let grid = ChunkGrid::new(&[n], &[1 << 20], 1).unwrap();
        let sel = ResolvedSelection::from_axes(vec![AxisSel::Range {
            start: n - 3,
            step: 2,
            count: 2,
        }]);
        let pieces: Vec<Piece> = grid.pieces(&sel).collect();
        assert_eq!(pieces.len(), 1);
        let p = &pieces[0];
        let k = (n - 3) / (1 << 20);
        assert_eq!(&*p.chunk, &[k]);
        assert_eq!(&*p.region, &[((n - 3) - k * (1 << 20), 2, 2)]);
    }

    #[test]
    fn default_chunk_shapes() {
        let t = DEFAULT_CHUNK_TARGET_BYTES;
        assert_eq!(
            default_chunks(&[500, 2000, 2000], 4, false, t),
            vec![1, 2000, 2000]
        );
        assert_eq!(
            default_chunks(&[500, 2000, 2000], 4, true, t),
            vec![500, 2000, 4]
        );
        assert_eq!(default_chunks(&[10, 20], 8, false, t), vec![10, 20]);
        assert_eq!(default_chunks(&[1 << 30], 1, false, t), vec![t]);
        // An empty first axis is one to append along: as many rows as fit.
        assert_eq!(default_chunks(&[0, 5], 4, false, t), vec![t / 20, 5]);
        assert_eq!(default_chunks(&[], 4, false, t), Vec::<u64>::new());
        // Always a valid grid.
        for shape in [[3u64, 1 << 40, 7], [0, 0, 0], [1, 1, 1]] {
            let c = default_chunks(&shape, 8, false, t);
            assert!(c.iter().all(|&x| x >= 1));
        }
    }

    #[test]
    fn validates() {
        assert!(ChunkGrid::new(&[10], &[0], 4).is_err());
        assert!(ChunkGrid::new(&[10, 10], &[5], 4).is_err());
        assert!(ChunkGrid::new(&[u64::MAX, 4], &[1, 1], 4).is_err());
        assert!(ChunkGrid::new(&[1 << 40], &[1 << 40], 1).is_err());
        let g = grid(&[10, 7], &[4, 3]);
        assert_eq!(g.grid_shape(), &[3, 3]);
        assert_eq!(g.num_chunks(), 9);
        assert_eq!(&*g.chunk_extent(&[2, 2]), &[2, 1]);
        assert_eq!(g.coord_of(g.linear_index(&[2, 1])), vec![2, 1]);
        assert_eq!(g.chunk_coords().count(), 9);
        assert_eq!(grid(&[0, 5], &[2, 2]).chunk_coords().count(), 0);
    }

    /// Every selected element lands exactly once, at the right output
    /// position, checked by brute force.
    #[test]
    fn pieces_cover_selection_exactly_once() {
        let shape = [13u64, 9, 5];
        let g = grid(&shape, &[4, 3, 5]);
        for text in [
            "...",
            "1:12:3,::2,4",
            "-1,2:3,:",
            "::5,::4,::2",
            "3:3",
            "0,0,0",
        ] {
            let sel = Selection::parse(text).unwrap().resolve(&shape).unwrap();
            let mut hits: HashMap<Vec<u64>, Vec<u64>> = HashMap::new();
            for p in g.pieces(&sel) {
                let origin = g.chunk_origin(&p.chunk);
                let counts = p.counts();
                let total: usize = counts.iter().product();
                for lin in 0..total {
                    let mut rem = lin;
                    let mut pos = vec![0u64; 3];
                    let mut out = vec![0u64; 3];
                    for ax in (0..3).rev() {
                        let i = (rem % counts[ax]) as u64;
                        rem /= counts[ax];
                        let (s, st, _) = p.region[ax];
                        pos[ax] = origin[ax] + s + i * st;
                        assert!(s + i * st < 5.max(g.chunk_shape()[ax]));
                        out[ax] = p.out_start[ax] + i;
                    }
                    assert!(hits.insert(pos, out).is_none(), "{text}: duplicate");
                }
            }
            // Brute force: every position the selection names.
            let ranges: Vec<(u64, u64, u64)> = sel.axes().iter().map(|a| a.as_range()).collect();
            let mut expect = 0;
            for a in 0..ranges[0].2 {
                for b in 0..ranges[1].2 {
                    for c in 0..ranges[2].2 {
                        let pos = vec![
                            ranges[0].0 + a * ranges[0].1,
                            ranges[1].0 + b * ranges[1].1,
                            ranges[2].0 + c * ranges[2].1,
                        ];
                        assert_eq!(hits.get(&pos), Some(&vec![a, b, c]), "{text} {pos:?}");
                        expect += 1;
                    }
                }
            }
            assert_eq!(hits.len(), expect, "{text}");
        }
    }

    #[test]
    fn sparse_selection_does_not_visit_untouched_chunks() {
        // a[::1000] over a million chunks of one element: 1000 pieces.
        let g = grid(&[1_000_000], &[1]);
        let sel = Selection::parse("::1000")
            .unwrap()
            .resolve(g.shape())
            .unwrap();
        let pieces = g.pieces(&sel);
        assert_eq!(pieces.len_hint(), 1000);
        assert_eq!(pieces.count(), 1000);
        // Large steps over small chunks along one axis of a 2-D grid.
        let g = grid(&[1_000_000, 1_000_000], &[10, 10]);
        let sel = Selection::parse("5::250000,7")
            .unwrap()
            .resolve(g.shape())
            .unwrap();
        assert_eq!(g.pieces(&sel).count(), 4);
    }

    #[test]
    fn covers_whole_chunk() {
        let g = grid(&[10, 7], &[4, 3]);
        let sel = Selection::parse("8:10,6")
            .unwrap()
            .resolve(g.shape())
            .unwrap();
        let p: Vec<Piece> = g.pieces(&sel).collect();
        assert_eq!(p.len(), 1);
        assert!(p[0].covers(&g.chunk_extent(&p[0].chunk)));
        let sel = Selection::parse("0:4,0:2")
            .unwrap()
            .resolve(g.shape())
            .unwrap();
        let p: Vec<Piece> = g.pieces(&sel).collect();
        assert!(!p[0].covers(&g.chunk_extent(&p[0].chunk)));
    }
}
