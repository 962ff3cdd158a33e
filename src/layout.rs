//! Strided N-dimensional copies of fixed-size elements between byte
//! buffers. This is the one kernel behind cache merges, reads into output
//! arrays, and the npy store's gathers; it merges contiguous axes so that a
//! whole-chunk copy is a single `memcpy`.
//!
//! Offsets and strides are in elements, not bytes.

/// C-order (row-major) strides, in elements, of `shape`.
pub fn c_strides(shape: &[u64]) -> Vec<usize> {
    small_c_strides(shape).to_vec()
}

/// [`c_strides`] without a heap allocation for up to [`INLINE_AXES`]
/// axes, for per-read bookkeeping.
pub(crate) fn small_c_strides(shape: &[u64]) -> Small<usize> {
    let mut strides = Small::filled(shape.len(), 1usize);
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1] as usize;
    }
    strides
}

/// Fortran-order (column-major) strides, in elements, of `shape`.
pub(crate) fn f_strides(shape: &[u64]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for i in 1..shape.len() {
        strides[i] = strides[i - 1] * shape[i - 1] as usize;
    }
    strides
}

/// One side of a strided copy: where the first element is and how far apart
/// neighbours are along each axis (both in elements).
#[derive(Debug, Clone, Copy)]
pub struct Strided<'a> {
    /// Element offset of the region's first element.
    pub offset: usize,
    /// Element distance between neighbours, one per axis.
    pub strides: &'a [usize],
}

/// Axes held on the stack up to this many (every array chunkyard has met;
/// more spill to the heap): the copy kernels run once per chunk piece of
/// every read, so a heap allocation per call is a visible share of a
/// small read's work; see `docs/benchmarks.md#stack-bookkeeping`.
pub(crate) const INLINE_AXES: usize = 8;

/// A short list of `T` (one per axis, say), on the stack up to
/// [`INLINE_AXES`] items and on the heap beyond: per-read bookkeeping on
/// hot paths (chunk coordinates, regions, strides) without an allocation
/// each. Use it as a slice.
#[derive(Clone)]
pub struct Small<T: Copy + Default>(Repr<T>);

#[derive(Clone)]
enum Repr<T: Copy + Default> {
    Inline([T; INLINE_AXES], usize),
    Heap(Vec<T>),
}

impl<T: Copy + Default> Small<T> {
    /// An empty list with room for `n` items.
    #[inline]
    pub fn with_capacity(n: usize) -> Self {
        Small(if n <= INLINE_AXES {
            Repr::Inline([T::default(); INLINE_AXES], 0)
        } else {
            Repr::Heap(Vec::with_capacity(n))
        })
    }

    /// `n` copies of `v`.
    #[inline]
    pub fn filled(n: usize, v: T) -> Self {
        Small(if n <= INLINE_AXES {
            Repr::Inline([v; INLINE_AXES], n)
        } else {
            Repr::Heap(vec![v; n])
        })
    }

    /// Appends `v`.
    #[inline]
    pub fn push(&mut self, v: T) {
        match &mut self.0 {
            Repr::Inline(a, n) if *n < INLINE_AXES => {
                a[*n] = v;
                *n += 1;
            }
            Repr::Inline(..) => self.spill(v),
            Repr::Heap(h) => h.push(v),
        }
    }

    /// Moves a full inline list to the heap and appends `v`.
    #[cold]
    fn spill(&mut self, v: T) {
        let mut h = self.to_vec();
        h.push(v);
        self.0 = Repr::Heap(h);
    }
}

impl<T: Copy + Default> FromIterator<T> for Small<T> {
    #[inline]
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut s = Self::with_capacity(iter.size_hint().0);
        for v in iter {
            s.push(v);
        }
        s
    }
}

impl<T: Copy + Default> From<&[T]> for Small<T> {
    #[inline]
    fn from(v: &[T]) -> Self {
        v.iter().copied().collect()
    }
}

impl<T: Copy + Default> std::ops::Deref for Small<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        match &self.0 {
            Repr::Inline(a, n) => &a[..*n],
            Repr::Heap(h) => h,
        }
    }
}

impl<T: Copy + Default> std::ops::DerefMut for Small<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.0 {
            Repr::Inline(a, n) => &mut a[..*n],
            Repr::Heap(h) => h,
        }
    }
}

impl<'a, T: Copy + Default> IntoIterator for &'a Small<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    #[inline]
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Copy + Default + std::fmt::Debug> std::fmt::Debug for Small<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Copy + Default + PartialEq> PartialEq for Small<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Copy + Default + Eq> Eq for Small<T> {}

/// Axes after dropping length-1 axes and merging contiguous neighbours:
/// (count, src stride, dst stride), outermost first.
fn simplify(counts: &[usize], a: &[usize], b: &[usize]) -> Small<(usize, usize, usize)> {
    // Merge from the innermost outwards, collecting innermost first.
    let mut merged: Small<(usize, usize, usize)> = Small::with_capacity(counts.len());
    for i in (0..counts.len()).rev() {
        if counts[i] == 1 {
            continue;
        }
        let ax = (counts[i], a[i], b[i]);
        if let Some(inner) = merged.last_mut()
            && ax.1 == inner.1 * inner.0
            && ax.2 == inner.2 * inner.0
        {
            inner.0 *= ax.0;
            continue;
        }
        merged.push(ax);
    }
    merged.reverse();
    merged
}

/// If copying the region is one contiguous run on both sides, its source
/// offset, destination offset and length, in elements.
pub(crate) fn single_run(
    counts: &[usize],
    src: Strided<'_>,
    dst: Strided<'_>,
) -> Option<(usize, usize, usize)> {
    let axes = simplify(counts, src.strides, dst.strides);
    match &*axes {
        [] => Some((src.offset, dst.offset, usize::from(!counts.contains(&0)))),
        [(n, 1, 1)] => Some((src.offset, dst.offset, *n)),
        _ => None,
    }
}

/// Calls `f(src_offset, dst_offset, len)` for every innermost run, in
/// elements. Runs are contiguous on both sides when `len > 1`; otherwise
/// `len == 1` and `inner_strides` gives the step along the innermost axis.
fn for_each_run(
    counts: &[usize],
    src: Strided<'_>,
    dst: Strided<'_>,
    f: impl FnMut(usize, usize, usize, usize, usize),
) {
    debug_assert_eq!(counts.len(), src.strides.len());
    debug_assert_eq!(counts.len(), dst.strides.len());
    if counts.contains(&0) {
        return;
    }
    let axes = simplify(counts, src.strides, dst.strides);
    for_each_run_of(&axes, src.offset, dst.offset, f);
}

/// [`for_each_run`] over axes [`simplify`] returned, from element offsets
/// `src` and `dst`.
fn for_each_run_of(
    axes: &[(usize, usize, usize)],
    src: usize,
    dst: usize,
    mut f: impl FnMut(usize, usize, usize, usize, usize),
) {
    let Some(&(inner_n, inner_s, inner_d)) = axes.last() else {
        f(src, dst, 1, 1, 1);
        return;
    };
    let outer = &axes[..axes.len() - 1];
    let mut idx = Small::filled(outer.len(), 0usize);
    let idx: &mut [usize] = &mut idx;
    let (mut so, mut dof) = (src, dst);
    loop {
        f(so, dof, inner_n, inner_s, inner_d);
        // Odometer over the outer axes.
        let mut k = outer.len();
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            so += outer[k].1;
            dof += outer[k].2;
            if idx[k] < outer[k].0 {
                break;
            }
            so -= outer[k].1 * outer[k].0;
            dof -= outer[k].2 * outer[k].0;
            idx[k] = 0;
        }
    }
}

#[inline]
fn copy_elems<const N: usize>(
    src: &[u8],
    dst: &mut [u8],
    s: usize,
    d: usize,
    n: usize,
    ss: usize,
    ds: usize,
) {
    if n > 1 && ds == 1 {
        // Contiguous output from a strided source: with the stride known
        // at compile time the loop can vectorize, which the general loop
        // below, whose stride is only known at run time, cannot. Strides
        // 2, 3 and 4 cover `a[z, ::2, ::2]`-style reads; see
        // docs/benchmarks.md#strided-reads-and-the-copy-kernel
        // (examples/strided_floor with FLOOR_KERNEL=1 times this function).
        let src = &src[s * N..(s + (n - 1) * ss) * N + N];
        let dst = &mut dst[d * N..(d + n) * N];
        match ss {
            2 => return copy_every::<N, 2>(src, dst),
            3 => return copy_every::<N, 3>(src, dst),
            4 => return copy_every::<N, 4>(src, dst),
            _ => {}
        }
    }
    for i in 0..n {
        let so = (s + i * ss) * N;
        let dof = (d + i * ds) * N;
        let v: [u8; N] = src[so..so + N].try_into().expect("N bytes");
        dst[dof..dof + N].copy_from_slice(&v);
    }
}

/// Copies every `S`th `N`-byte element of `src` (which starts with one
/// and ends with one) into consecutive elements of `dst`.
#[inline]
fn copy_every<const N: usize, const S: usize>(src: &[u8], dst: &mut [u8]) {
    let (head, last) = dst.split_at_mut(dst.len() - N);
    for (o, i) in head.chunks_exact_mut(N).zip(src.chunks_exact(S * N)) {
        o.copy_from_slice(&i[..N]);
    }
    last.copy_from_slice(&src[src.len() - N..]);
}

/// Copies a `counts`-shaped region of `elem`-byte elements from `src` to
/// `dst`. Panics if a region exceeds its buffer (a caller bug: callers
/// validate selections first).
pub fn copy_region(
    counts: &[usize],
    elem: usize,
    src: &[u8],
    src_at: Strided<'_>,
    dst: &mut [u8],
    dst_at: Strided<'_>,
) {
    debug_assert_eq!(counts.len(), src_at.strides.len());
    debug_assert_eq!(counts.len(), dst_at.strides.len());
    if counts.contains(&0) {
        return;
    }
    let axes = simplify(counts, src_at.strides, dst_at.strides);
    // A tile's shape: rows contiguous on both sides along one outer axis,
    // copied in a plain loop over byte offsets.
    if let [(rows, s_step, d_step), (n, 1, 1)] = *axes {
        let len = n * elem;
        let (mut s, mut d) = (src_at.offset * elem, dst_at.offset * elem);
        for _ in 0..rows {
            dst[d..d + len].copy_from_slice(&src[s..s + len]);
            s += s_step * elem;
            d += d_step * elem;
        }
        return;
    }
    for_each_run_of(&axes, src_at.offset, dst_at.offset, |s, d, n, ss, ds| {
        if ss == 1 && ds == 1 {
            dst[d * elem..(d + n) * elem].copy_from_slice(&src[s * elem..(s + n) * elem]);
        } else {
            match elem {
                1 => copy_elems::<1>(src, dst, s, d, n, ss, ds),
                2 => copy_elems::<2>(src, dst, s, d, n, ss, ds),
                4 => copy_elems::<4>(src, dst, s, d, n, ss, ds),
                8 => copy_elems::<8>(src, dst, s, d, n, ss, ds),
                _ => {
                    for i in 0..n {
                        let so = (s + i * ss) * elem;
                        let dof = (d + i * ds) * elem;
                        dst[dof..dof + elem].copy_from_slice(&src[so..so + elem]);
                    }
                }
            }
        }
    });
}

#[inline]
fn fill_elems<const N: usize>(dst: &mut [u8], value: &[u8], d: usize, n: usize, ds: usize) {
    let v: [u8; N] = value.try_into().expect("N bytes");
    for i in 0..n {
        let o = (d + i * ds) * N;
        dst[o..o + N].copy_from_slice(&v);
    }
}

/// Whether every element of a region of `src` equals `value` (a resize
/// checks that the rows it would clear hold the fill value already).
pub(crate) fn region_holds(
    counts: &[usize],
    value: &[u8],
    src: &[u8],
    src_at: Strided<'_>,
) -> bool {
    let elem = value.len();
    let zeros = vec![0usize; counts.len()];
    let other = Strided {
        offset: 0,
        strides: &zeros,
    };
    let mut all = true;
    for_each_run(counts, other, src_at, |_, d, n, _, ds| {
        all = all
            && (0..n).all(|i| {
                let o = (d + i * ds) * elem;
                &src[o..o + elem] == value
            });
    });
    all
}

/// Writes `value` (one element's bytes) into every element of a
/// `counts`-shaped region of `dst`.
pub(crate) fn fill_region(counts: &[usize], value: &[u8], dst: &mut [u8], dst_at: Strided<'_>) {
    let elem = value.len();
    let zeros = vec![0usize; counts.len()];
    let src_at = Strided {
        offset: 0,
        strides: &zeros,
    };
    for_each_run(counts, src_at, dst_at, |_, d, n, _, ds| {
        if ds == 1 && value.iter().all(|&b| b == value[0]) {
            dst[d * elem..(d + n) * elem].fill(value[0]);
        } else {
            match elem {
                2 => fill_elems::<2>(dst, value, d, n, ds),
                4 => fill_elems::<4>(dst, value, d, n, ds),
                8 => fill_elems::<8>(dst, value, d, n, ds),
                _ => {
                    for i in 0..n {
                        let o = (d + i * ds) * elem;
                        dst[o..o + elem].copy_from_slice(value);
                    }
                }
            }
        }
    });
}

/// Visits the runs of a region that are contiguous on the `file` side,
/// calling `f(file_offset, buf_offset, len, buf_stride)` in elements:
/// the run covers `len` elements at `file_offset..file_offset + len` and
/// at `buf_offset + i * buf_stride` in the buffer. Stores that do
/// positioned I/O use this to read or write one run per system call.
pub(crate) fn for_each_file_run(
    counts: &[usize],
    file: Strided<'_>,
    buf: Strided<'_>,
    mut f: impl FnMut(usize, usize, usize, usize),
) {
    for_each_run(counts, file, buf, |fo, bo, n, fs, bs| {
        if fs == 1 {
            f(fo, bo, n, bs);
        } else {
            for i in 0..n {
                f(fo + i * fs, bo + i * bs, 1, 1);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: element-by-element copy via explicit index arithmetic.
    fn naive(
        counts: &[usize],
        elem: usize,
        src: &[u8],
        sa: Strided<'_>,
        dst: &mut [u8],
        da: Strided<'_>,
    ) {
        let total: usize = counts.iter().product();
        for lin in 0..total {
            let mut rem = lin;
            let (mut so, mut dof) = (sa.offset, da.offset);
            for ax in (0..counts.len()).rev() {
                let i = rem % counts[ax];
                rem /= counts[ax];
                so += i * sa.strides[ax];
                dof += i * da.strides[ax];
            }
            dst[dof * elem..(dof + 1) * elem].copy_from_slice(&src[so * elem..(so + 1) * elem]);
        }
    }

    #[test]
    fn strides() {
        assert_eq!(c_strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(f_strides(&[2, 3, 4]), vec![1, 2, 6]);
        assert_eq!(c_strides(&[]), Vec::<usize>::new());
    }

    #[test]
    fn matches_naive_copy_on_many_shapes() {
        let shape = [5u64, 6, 7];
        let cs = c_strides(&shape);
        let fs = f_strides(&shape);
        for elem in [1usize, 2, 4, 8, 3] {
            let src: Vec<u8> = (0..5 * 6 * 7 * elem).map(|i| (i * 7 + 3) as u8).collect();
            for (counts, starts, steps) in [
                ([5usize, 6, 7], [0usize, 0, 0], [1usize, 1, 1]),
                ([2, 3, 4], [1, 2, 3], [1, 1, 1]),
                ([3, 2, 2], [0, 1, 0], [2, 2, 3]),
                ([1, 6, 1], [4, 0, 6], [1, 1, 1]),
                // Two axes after merging, rows contiguous on both sides:
                // copy_region's tile branch.
                ([1, 3, 4], [2, 1, 2], [1, 1, 1]),
                ([0, 3, 3], [0, 0, 0], [1, 1, 1]),
                // Every 2nd, 3rd and 4th element of a row into a dense
                // output: copy_every's kernels (C order).
                ([2, 3, 4], [0, 1, 0], [1, 2, 2]),
                ([2, 2, 2], [1, 0, 1], [2, 1, 3]),
                ([1, 6, 2], [0, 0, 2], [1, 1, 4]),
            ] {
                for src_strides in [&cs, &fs] {
                    let off = starts
                        .iter()
                        .zip(src_strides.iter())
                        .map(|(a, b)| a * b)
                        .sum();
                    let st: Vec<usize> =
                        src_strides.iter().zip(steps).map(|(s, k)| s * k).collect();
                    let sa = Strided {
                        offset: off,
                        strides: &st,
                    };
                    let out_shape: Vec<u64> = counts.iter().map(|&c| c as u64).collect();
                    let ds = c_strides(&out_shape);
                    let da = Strided {
                        offset: 0,
                        strides: &ds,
                    };
                    let n: usize = counts.iter().product();
                    let mut a = vec![0u8; n * elem];
                    let mut b = vec![0u8; n * elem];
                    copy_region(&counts, elem, &src, sa, &mut a, da);
                    naive(&counts, elem, &src, sa, &mut b, da);
                    assert_eq!(a, b, "elem {elem} counts {counts:?} steps {steps:?}");
                }
            }
        }
    }

    #[test]
    fn more_axes_than_fit_on_the_stack_copy_like_the_naive_copy() {
        // Ten axes of 2 with strides that do not merge (every other
        // element of the source): the kernels' axis lists spill to the heap.
        let counts = [2usize; 10];
        let shape = [4u64; 10];
        let cs = c_strides(&shape);
        let st: Vec<usize> = cs.iter().map(|s| 2 * s).collect();
        let src: Vec<u8> = (0..4usize.pow(10) * 2)
            .map(|i| (i * 13 + 1) as u8)
            .collect();
        let sa = Strided {
            offset: 1,
            strides: &st,
        };
        let ds = c_strides(&[2u64; 10]);
        let da = Strided {
            offset: 0,
            strides: &ds,
        };
        let (mut a, mut b) = (vec![0u8; 1024 * 2], vec![0u8; 1024 * 2]);
        copy_region(&counts, 2, &src, sa, &mut a, da);
        naive(&counts, 2, &src, sa, &mut b, da);
        assert_eq!(a, b);
        assert!(a.iter().any(|&x| x != 0));
    }

    #[test]
    fn fill_writes_only_the_region() {
        let mut buf = vec![0u8; 4 * 4 * 2];
        let st = c_strides(&[4, 4]);
        fill_region(
            &[2, 2],
            &[1, 2],
            &mut buf,
            Strided {
                offset: 5,
                strides: &st,
            },
        );
        let vals: Vec<u16> = buf
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let want = u16::from_le_bytes([1, 2]);
        for (i, v) in vals.iter().enumerate() {
            let inside = [5, 6, 9, 10].contains(&i);
            assert_eq!(*v, if inside { want } else { 0 }, "at {i}");
        }
    }

    #[test]
    fn file_runs_cover_region_once() {
        // A 3x4 region of a 6x8 C-order file into a C-order 3x4 buffer.
        let fst = c_strides(&[6, 8]);
        let bst = c_strides(&[3, 4]);
        let mut seen = Vec::new();
        for_each_file_run(
            &[3, 4],
            Strided {
                offset: 8 + 2,
                strides: &fst,
            },
            Strided {
                offset: 0,
                strides: &bst,
            },
            |fo, bo, n, bs| seen.push((fo, bo, n, bs)),
        );
        assert_eq!(seen, vec![(10, 0, 4, 1), (18, 4, 4, 1), (26, 8, 4, 1)]);
    }
}
