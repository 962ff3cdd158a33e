//! Which elements of a chunk one process wrote since the chunk was last
//! written back ([`Written`]), so that a store that finds the chunk
//! changed under it (another process wrote it) can re-apply exactly
//! those elements onto the newer copy instead of overwriting it.

/// One strided box of a chunk, in elements of the chunk's C-order layout:
/// the elements at `offset + sum(i[k] * strides[k])` for `i[k] <
/// counts[k]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Region {
    offset: usize,
    counts: Vec<usize>,
    strides: Vec<usize>,
}

/// The elements of one chunk a process wrote: a list of boxes, or past
/// [`Written::MAX_REGIONS`] boxes a bit per element (so many small writes
/// into one chunk cost at most a bit per element). The cache keeps one
/// per dirty chunk of a store that
/// [merges writes](crate::store::ChunkStore::merges_writes), counted in
/// its budget ([`bytes`](Self::bytes)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    regions: Vec<Region>,
    /// One bit per element of the chunk, once the boxes were too many.
    mask: Option<Vec<u64>>,
    /// Every element (a write that covered the chunk).
    all: bool,
}

/// Calls `f` with the element offset of every element of a strided box.
fn for_each_offset(offset: usize, counts: &[usize], strides: &[usize], f: &mut impl FnMut(usize)) {
    match counts.split_first() {
        None => f(offset),
        Some((&n, rest)) => {
            for i in 0..n {
                for_each_offset(offset + i * strides[0], rest, &strides[1..], f);
            }
        }
    }
}

impl Written {
    /// Boxes kept as a list before they turn into a bit mask.
    pub const MAX_REGIONS: usize = 32;

    /// Nothing written.
    pub fn is_empty(&self) -> bool {
        !self.all && self.regions.is_empty() && self.mask.is_none()
    }

    /// Every element written.
    pub fn is_all(&self) -> bool {
        self.all
    }

    /// Memory this record holds (what the cache counts in its budget).
    pub fn bytes(&self) -> usize {
        let boxes: usize = self
            .regions
            .iter()
            .map(|r| std::mem::size_of::<Region>() + 8 * (r.counts.len() + r.strides.len()))
            .sum();
        boxes + self.mask.as_ref().map_or(0, |m| 8 * m.len())
    }

    /// Forgets everything (the chunk was written back).
    pub fn clear(&mut self) {
        *self = Written::default();
    }

    /// Records the whole chunk as written.
    pub fn mark_all(&mut self) {
        self.clear();
        self.all = true;
    }

    /// Records a strided box of a chunk of `chunk_elems` elements.
    pub fn push(&mut self, offset: usize, counts: &[usize], strides: &[usize], chunk_elems: usize) {
        if self.all || counts.contains(&0) {
            return;
        }
        if let Some(mask) = &mut self.mask {
            for_each_offset(offset, counts, strides, &mut |o| {
                mask[o / 64] |= 1 << (o % 64)
            });
            return;
        }
        let r = Region {
            offset,
            counts: counts.to_vec(),
            strides: strides.to_vec(),
        };
        if self.regions.contains(&r) {
            return;
        }
        self.regions.push(r);
        if self.regions.len() > Self::MAX_REGIONS {
            let mut mask = vec![0u64; chunk_elems.div_ceil(64)];
            for r in self.regions.drain(..) {
                for_each_offset(r.offset, &r.counts, &r.strides, &mut |o| {
                    mask[o / 64] |= 1 << (o % 64)
                });
            }
            self.mask = Some(mask);
        }
    }

    /// Copies the written elements (`elem` bytes each) from `from` into
    /// `to`, two buffers of the same chunk.
    pub fn apply(&self, from: &[u8], to: &mut [u8], elem: usize) {
        debug_assert_eq!(from.len(), to.len());
        if self.all {
            to.copy_from_slice(from);
            return;
        }
        let mut copy = |o: usize| {
            let at = o * elem;
            to[at..at + elem].copy_from_slice(&from[at..at + elem]);
        };
        if let Some(mask) = &self.mask {
            for (w, &bits) in mask.iter().enumerate() {
                let mut b = bits;
                while b != 0 {
                    let i = b.trailing_zeros() as usize;
                    copy(w * 64 + i);
                    b &= b - 1;
                }
            }
        }
        for r in &self.regions {
            for_each_offset(r.offset, &r.counts, &r.strides, &mut copy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_and_masks_apply_the_same_elements() {
        // A 10x10 chunk of u16: column 1 (a strided box), then single
        // elements, more than the list holds.
        let from: Vec<u8> = (0..200).map(|b| b as u8).collect();
        let check = |w: &Written, want: &dyn Fn(usize) -> bool| {
            let mut to = vec![0xff; 200];
            w.apply(&from, &mut to, 2);
            for e in 0..100 {
                let expect = if want(e) {
                    [from[2 * e], from[2 * e + 1]]
                } else {
                    [0xff; 2]
                };
                assert_eq!(to[2 * e..2 * e + 2], expect, "element {e}");
            }
        };
        let mut w = Written::default();
        w.push(1, &[10], &[10], 100);
        w.push(1, &[10], &[10], 100);
        assert_eq!(w.regions.len(), 1);
        check(&w, &|e| e % 10 == 1);
        for e in (0..100).step_by(3) {
            w.push(e, &[], &[], 100);
        }
        assert!(w.mask.is_some() && w.regions.is_empty());
        check(&w, &|e| e % 10 == 1 || e % 3 == 0);
        assert_eq!(w.bytes(), 16);
        w.mark_all();
        check(&w, &|_| true);
        w.clear();
        assert!(w.is_empty());
    }
}
