//! Whole-array operations that stream block by block with bounded memory:
//! block plans, and copying a selection into another array (with a dtype
//! cast). Blocks run in parallel on rayon's pool; each job holds one
//! block-sized buffer, so memory stays at the cache budget plus a few
//! blocks. Reductions live in [`crate::reduce`].

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

use rayon::prelude::*;

use ndarray::ArrayD;

use crate::array::{Array, ArrayHandle};
use crate::buffer::ScratchPool;
use crate::dtype::{Element, cast_bytes};
use crate::error::{Error, Result};
use crate::selection::{AxisSel, ResolvedSelection, SelItem, Selection};
use crate::view::View;

/// The output space of a selection cut into blocks, each aligned to about
/// one chunk of an array the selection addresses.
#[derive(Debug, Clone)]
pub(crate) struct BlockPlan {
    out_shape: Vec<u64>,
    block: Vec<u64>,
    grid: Vec<u64>,
}

impl BlockPlan {
    /// Plans blocks over `sel`'s output so that each block touches about one
    /// chunk of shape `chunks` (the chunk shape of the array `sel` indexes):
    /// along a kept axis with step `s` and chunk length `c`, blocks are
    /// `max(1, c / s)` long.
    pub(crate) fn new(sel: &ResolvedSelection, chunks: &[u64]) -> Self {
        let mut block = Vec::new();
        for (a, &c) in sel.axes().iter().zip(chunks) {
            if let AxisSel::Range { step, count, .. } = *a {
                block.push((c / step).clamp(1, count.max(1)));
            }
        }
        let out_shape = sel.out_shape();
        let grid = out_shape
            .iter()
            .zip(&block)
            .map(|(&n, &b)| n.div_ceil(b))
            .collect();
        BlockPlan {
            out_shape,
            block,
            grid,
        }
    }

    /// Halves the longest block side until a block holds at most `max`
    /// elements (to give parallel workers enough blocks).
    pub(crate) fn split_to(mut self, max: u64) -> Self {
        loop {
            let n: u64 = self.block.iter().product();
            let Some((i, &b)) = self.block.iter().enumerate().max_by_key(|(_, b)| **b) else {
                break;
            };
            if n <= max.max(1) || b <= 1 {
                break;
            }
            self.block[i] = b.div_ceil(2);
        }
        self.regrid();
        self
    }

    /// Recomputes the number of blocks along each axis after `block`
    /// changed.
    fn regrid(&mut self) {
        self.grid = self
            .out_shape
            .iter()
            .zip(&self.block)
            .map(|(&n, &b)| n.div_ceil(b))
            .collect();
    }

    /// Halves the outermost block side longer than 1 until a block holds
    /// at most `max` elements: blocks stay whole along the inner axes, so
    /// that a block of a C-order chunk is one contiguous run (one `pread`
    /// on stores with partial reads) and small enough to stay in the CPU's
    /// cache between being read and being used.
    pub(crate) fn split_outer_to(mut self, max: u64) -> Self {
        loop {
            let n: u64 = self.block.iter().product();
            let Some(i) = self.block.iter().position(|&b| b > 1) else {
                break;
            };
            if n <= max.max(1) {
                break;
            }
            self.block[i] = self.block[i].div_ceil(2);
        }
        self.regrid();
        self
    }

    /// Elements of the largest block.
    pub(crate) fn max_block_elements(&self) -> usize {
        self.block.iter().product::<u64>() as usize
    }

    /// Number of blocks.
    pub(crate) fn len(&self) -> u64 {
        if self.out_shape.contains(&0) {
            return 0;
        }
        self.grid.iter().product()
    }

    /// Block number `i` (row-major): its first output position and counts.
    pub(crate) fn block(&self, mut i: u64) -> (Vec<u64>, Vec<u64>) {
        let n = self.grid.len();
        let mut lo = vec![0; n];
        let mut cnt = vec![0; n];
        for ax in (0..n).rev() {
            let k = i % self.grid[ax];
            i /= self.grid[ax];
            lo[ax] = k * self.block[ax];
            cnt[ax] = self.block[ax].min(self.out_shape[ax] - lo[ax]);
        }
        (lo, cnt)
    }
}

/// Runs `f`, whose parallel loops use rayon, on a pool wide enough to keep
/// the requests of a store that waits on the network in flight
/// ([`Capabilities::concurrent_requests`](crate::store::Capabilities)),
/// or on rayon's own pool when no array's store asks for more threads
/// than it has. Each worker holds about `block_bytes` of buffers beside
/// the cache, so the pool is narrowed to fit them in half the smallest
/// cache budget of `arrays` (never below rayon's width). If the pool
/// cannot be built, `f` runs on rayon's.
pub(crate) fn on_io_threads<R: Send>(
    arrays: &[&ArrayHandle],
    block_bytes: usize,
    f: impl FnOnce() -> R + Send,
) -> R {
    let cores = rayon::current_num_threads();
    let want = arrays
        .iter()
        .map(|a| a.store().capabilities().concurrent_requests)
        .max()
        .unwrap_or(0);
    let budget = arrays.iter().map(|a| a.cache().budget()).min().unwrap_or(0);
    let fit = budget / 2 / block_bytes.max(1);
    let threads = want.min(fit).max(cores);
    if threads <= cores {
        return f();
    }
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("chunkyard-io-{i}"))
        .build()
    {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// The part of `sel` whose output is the box at `lo` with `counts`
/// (both over the output axes).
pub(crate) fn sub_selection(
    sel: &ResolvedSelection,
    lo: &[u64],
    counts: &[u64],
) -> ResolvedSelection {
    let mut k = 0;
    let axes = sel
        .axes()
        .iter()
        .map(|a| match *a {
            AxisSel::Index(i) => AxisSel::Index(i),
            AxisSel::Range { start, step, .. } => {
                let r = AxisSel::Range {
                    start: start + lo[k] * step,
                    step,
                    count: counts[k],
                };
                k += 1;
                r
            }
        })
        .collect();
    ResolvedSelection::from_axes(axes)
}

/// How many blocks [`copy_selection`] writes into `dst` for `dst_sel`:
/// the total its `progress` callback counts up to.
pub fn copy_selection_steps(dst_sel: &ResolvedSelection, dst: &ArrayHandle) -> u64 {
    BlockPlan::new(dst_sel, dst.chunks()).len()
}

/// Copies `src_sel` of `src` into `dst_sel` of `dst`, casting elements to
/// `dst`'s dtype with NumPy `astype` semantics. Both selections must have
/// the same output shape. Streams block by block in parallel; `progress`
/// is called with the number of blocks done after each.
pub fn copy_selection(
    src: &ArrayHandle,
    src_sel: &ResolvedSelection,
    dst: &ArrayHandle,
    dst_sel: &ResolvedSelection,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    copy_selection_interruptible(
        src,
        src_sel,
        dst,
        dst_sel,
        progress,
        &AtomicBool::new(false),
    )
}

/// [`copy_selection`] that stops with [`Error::Interrupted`] at the next
/// block once `stop` is set (by another thread); the blocks written
/// before stay written.
pub fn copy_selection_interruptible(
    src: &ArrayHandle,
    src_sel: &ResolvedSelection,
    dst: &ArrayHandle,
    dst_sel: &ResolvedSelection,
    progress: &(dyn Fn(u64) + Sync),
    stop: &AtomicBool,
) -> Result<()> {
    if src_sel.out_shape() != dst_sel.out_shape() {
        return Err(Error::ShapeMismatch {
            message: format!(
                "source selection has shape {:?}, destination {:?}",
                src_sel.out_shape(),
                dst_sel.out_shape()
            ),
        });
    }
    // Blocks follow the destination's chunks so that writes replace whole
    // chunks and never read them.
    // From object storage to a local store, though, the reads are what
    // wait: blocks then follow the source's chunks, so that the pool of
    // `on_io_threads` has a block per request to keep in flight (the
    // destination's chunks are written in parts).
    let wide = |a: &ArrayHandle| {
        a.store().capabilities().concurrent_requests > rayon::current_num_threads()
    };
    let by_dst = BlockPlan::new(dst_sel, dst.chunks());
    let plan = if wide(src) && !wide(dst) {
        BlockPlan::new(src_sel, src.chunks())
    } else {
        by_dst.clone()
    };
    // Progress stays in the destination's blocks (`copy_selection_steps`):
    // block `i` of `n` reports its share of the `m` steps.
    let (n, m) = (plan.len(), by_dst.len());
    let step = |i: u64| ((i + 1) * m / n) - (i * m / n);
    let (sd, dd) = (src.dtype(), dst.dtype());
    // One pair of block buffers per worker, reused across blocks and
    // unmapped when the copy ends (`buffer::Scratch`).
    let (pool, out_pool) = (ScratchPool::<u8>::new(), ScratchPool::<u8>::new());
    let block_bytes = plan.max_block_elements() * (sd.size() + dd.size());
    on_io_threads(&[src, dst], block_bytes, || {
        (0..plan.len()).into_par_iter().try_for_each_init(
            || (pool.take(), out_pool.take()),
            |(buf, out), i| -> Result<()> {
                // An error ends `try_for_each` early: later blocks are skipped.
                if stop.load(Relaxed) {
                    return Err(Error::Interrupted);
                }
                let (lo, counts) = plan.block(i);
                let n = counts.iter().product::<u64>() as usize;
                let s = sub_selection(src_sel, &lo, &counts);
                let d = sub_selection(dst_sel, &lo, &counts);
                let buf = buf.reset(n * sd.size());
                src.read_bytes_streaming(&s, buf)?;
                if sd == dd {
                    dst.write_bytes(&d, buf)?;
                } else {
                    let out = out.reset(n * dd.size());
                    cast_bytes(sd, buf, dd, out);
                    dst.write_bytes(&d, out)?;
                }
                progress(step(i));
                Ok(())
            },
        )
    })
}

/// The selection of the box at `lo` with `counts` (unit steps).
pub(crate) fn box_selection(lo: &[u64], counts: &[u64]) -> Selection {
    Selection::new(
        lo.iter()
            .zip(counts)
            .map(|(&l, &c)| SelItem::Slice {
                start: Some(l as i64),
                stop: Some((l + c) as i64),
                step: Some(1),
            })
            .collect(),
    )
}

fn check_same_shape(what: &str, got: &[u64], dst: &[u64]) -> Result<()> {
    if got != dst {
        return Err(Error::ShapeMismatch {
            message: format!("{what} has shape {got:?}, the destination {dst:?}"),
        });
    }
    Ok(())
}

impl<T: Element> View<T> {
    /// Writes this view (a slice, a permutation, a cast, or the whole
    /// array) to a new array at `path` (format from the extension) of
    /// element type `T`, and returns it flushed: the library's `convert`.
    /// Streams block by block in parallel, so memory stays at the cache
    /// budget plus a block per worker.
    ///
    /// The shape is the view's: `opts` gives chunks, codec, overwrite and
    /// so on (`ArrayOptions::default()` for the defaults), and options
    /// that name another shape are an error. Unless `opts` say otherwise,
    /// the copy uses the source's cache, keeps its axis names and
    /// attributes (when the view keeps the array's axes in order) and, in
    /// Zarr, its fill value: what `chunkyard convert` does.
    ///
    /// ```
    /// # #[cfg(not(feature = "zarr"))] fn main() {}
    /// # #[cfg(feature = "zarr")]
    /// # fn main() -> chunkyard::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use chunkyard::{ArrayOptions, s};
    /// let a = chunkyard::create::<f32>(dir.path().join("a.zarr"), ArrayOptions::new([4, 30, 20]))?;
    /// a.fill(s![1, .., ..], 1.5)?;
    /// let b = a.cast::<f64>().save_as(dir.path().join("b.npy"), ArrayOptions::default())?;
    /// assert_eq!(b.get([1, 29, 19])?, 1.5f64);
    /// # Ok(()) }
    /// ```
    pub fn save_as(
        &self,
        path: impl AsRef<std::path::Path>,
        opts: impl std::borrow::Borrow<crate::open::ArrayOptions>,
    ) -> Result<Array<T>> {
        self.save_as_with_progress(path, opts, &|_| ())
    }

    /// [`save_as`](Self::save_as), calling `progress` with the number of
    /// blocks written after each.
    pub fn save_as_with_progress(
        &self,
        path: impl AsRef<std::path::Path>,
        opts: impl std::borrow::Borrow<crate::open::ArrayOptions>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Array<T>> {
        let path = path.as_ref();
        let base = self.base();
        if let Some(src) = base.path()
            && let (Ok(s), Ok(d)) = (src.canonicalize(), path.canonicalize())
            && s == d
        {
            return Err(Error::invalid(format!(
                "{}: source and destination are the same file",
                path.display()
            )));
        }
        let (src_sel, perm) = self.as_base_selection();
        let in_order = perm.iter().enumerate().all(|(k, &p)| k == p);
        let same_axes = in_order && self.ndim() == base.ndim();
        let opts = opts
            .borrow()
            .for_copy(base, &self.shape(), same_axes, T::DTYPE, path)?;
        let dst = ArrayHandle::create(path, T::DTYPE, &opts)?;
        if in_order {
            // The view is one selection of the array in its own axis
            // order: a straight chunk-aligned copy with the cast.
            let all = ResolvedSelection::full(&dst.shape());
            copy_selection(base, &src_sel, &dst, &all, progress)?;
        } else {
            let typed = dst.typed::<T>()?;
            for_each_block(&typed, |sel| {
                let block = self.read_streaming(sel)?;
                progress(1);
                Ok(block)
            })?;
        }
        dst.flush()?;
        dst.typed()
    }
}

/// Writes `f(x)` for every element `x` of `src` into `dst` (same shape),
/// streaming block by block in parallel (`b = a + 1` style). `src` may be
/// any view: a slice, a permutation, a cast.
pub fn map_into<T: Element, U: Element>(
    src: &View<T>,
    dst: &Array<U>,
    f: impl Fn(T) -> U + Sync,
) -> Result<()> {
    check_same_shape("the source", &src.shape(), &dst.shape())?;
    for_each_block(dst, |sel| {
        let x = src.read_streaming(sel)?;
        Ok(x.mapv(&f))
    })
}

/// Writes `f(x, y)` for the elements of `a` and `b` (same shape as `dst`)
/// into `dst` (`c = a * b` style), streaming block by block in parallel.
pub fn zip_map_into<A: Element, B: Element, U: Element>(
    a: &View<A>,
    b: &View<B>,
    dst: &Array<U>,
    f: impl Fn(A, B) -> U + Sync,
) -> Result<()> {
    check_same_shape("the first source", &a.shape(), &dst.shape())?;
    check_same_shape("the second source", &b.shape(), &dst.shape())?;
    for_each_block(dst, |sel| {
        let x = a.read_streaming(sel)?;
        let y = b.read_streaming(sel)?;
        Ok(ndarray::Zip::from(&x).and(&y).map_collect(|&p, &q| f(p, q)))
    })
}

/// Fills `dst` block by block (aligned to its chunks, in parallel) with
/// what `make` returns for each block's selection.
fn for_each_block<U: Element>(
    dst: &Array<U>,
    make: impl Fn(&Selection) -> Result<ArrayD<U>> + Sync,
) -> Result<()> {
    let all = ResolvedSelection::full(&dst.shape());
    let plan = BlockPlan::new(&all, dst.chunks());
    (0..plan.len()).into_par_iter().try_for_each(|i| {
        let (lo, counts) = plan.block(i);
        let sel = box_selection(&lo, &counts);
        let block = make(&sel)?;
        dst.write(&sel, &block)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::mem_array;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn copy_with_cast_and_steps() {
        let a = mem_array::<f64>(&[9, 10], &[4, 3], 1 << 16);
        let data = ArrayD::from_shape_fn(IxDyn(&[9, 10]), |i| (i[0] * 10 + i[1]) as f64 + 0.7);
        a.write(.., &data).unwrap();
        let b = mem_array::<i16>(&[3, 5], &[2, 2], 1 << 16);
        let ssel = a.handle().resolve("1::3,::2").unwrap();
        let dsel = b.handle().resolve(..).unwrap();
        copy_selection(a.handle(), &ssel, b.handle(), &dsel, &|_| ()).unwrap();
        let got = b.read(..).unwrap();
        let want = data.slice(ndarray::s![1..;3, ..;2]).mapv(|v| v as i16);
        assert_eq!(got, want.into_dyn());
        let bad = b.handle().resolve("0").unwrap();
        assert!(copy_selection(a.handle(), &ssel, b.handle(), &bad, &|_| ()).is_err());
    }

    #[test]
    fn a_set_stop_flag_interrupts_a_copy_between_blocks() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
        let a = mem_array::<i32>(&[40, 4], &[1, 4], 1 << 16);
        a.fill(.., 7).unwrap();
        let b = mem_array::<i32>(&[40, 4], &[1, 4], 1 << 16);
        let all = a.handle().resolve(..).unwrap();
        let stop = AtomicBool::new(false);
        let done = AtomicU64::new(0);
        let stop_after_one = |n| {
            done.fetch_add(n, Relaxed);
            stop.store(true, Relaxed);
        };
        let err = copy_selection_interruptible(
            a.handle(),
            &all,
            b.handle(),
            &all,
            &stop_after_one,
            &stop,
        )
        .unwrap_err();
        assert!(matches!(err, Error::Interrupted), "{err}");
        let ran = done.load(Relaxed);
        assert!(
            ran >= 1 && ran <= rayon::current_num_threads() as u64,
            "{ran}"
        );
        // The blocks copied before the stop are written; the rest are not.
        let got = b.read(..).unwrap();
        let rows = got
            .outer_iter()
            .filter(|r| r.iter().all(|&v| v == 7))
            .count();
        assert_eq!(rows as u64, ran);
    }

    #[test]
    fn maps_stream_into_new_arrays() {
        let a = mem_array::<i32>(&[7, 9], &[3, 4], 1 << 16);
        let data = ArrayD::from_shape_fn(IxDyn(&[7, 9]), |i| (i[0] * 9 + i[1]) as i32 - 20);
        a.write(.., &data).unwrap();
        // b = a + 1, as f64
        let b = mem_array::<f64>(&[7, 9], &[2, 5], 1 << 16);
        map_into(&a.view(), &b, |x| x as f64 + 1.0).unwrap();
        assert_eq!(b.read(..).unwrap(), data.mapv(|x| x as f64 + 1.0));
        // c = a.T[::2] * b.T[::2] through views
        let c = mem_array::<f64>(&[5, 7], &[4, 4], 1 << 16);
        let at = a.t().slice("::2").unwrap();
        let bt = b.t().slice("::2").unwrap();
        zip_map_into(&at, &bt, &c, |x, y| x as f64 * y).unwrap();
        let want = ndarray::Zip::from(data.t().slice(ndarray::s![..;2, ..]))
            .map_collect(|&x| x as f64 * (x as f64 + 1.0));
        assert_eq!(c.read(..).unwrap(), want.into_dyn());
        let wrong = mem_array::<f64>(&[9, 7], &[2, 2], 1 << 16);
        assert!(map_into(&a.view(), &wrong, |x| x as f64).is_err());
    }
}

// Zarr keeps labels and fill values and compresses: what these convert to.
#[cfg(all(test, feature = "zarr"))]
mod save_as_tests {
    use crate::{ArrayOptions, ChunkCache, Codec, OpenOptions, s};
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn save_as_converts_slices_permutations_and_casts() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ChunkCache::new(1 << 20);
        let opts = ArrayOptions::new([6usize, 9, 7])
            .chunks([2usize, 4, 3])
            .codec(Codec::Lz4)
            .cache(cache.clone());
        let a = crate::create::<f32>(dir.path().join("a.zarr"), opts).unwrap();
        let d = ArrayD::from_shape_fn(IxDyn(&[6, 9, 7]), |i| {
            (i[0] * 100 + i[1] * 10 + i[2]) as f32 + 0.5
        });
        a.write(.., &d).unwrap();

        // The whole array, cast, into .npy: the cache is the source's.
        let b = a
            .cast::<f64>()
            .save_as(dir.path().join("b.npy"), ArrayOptions::default())
            .unwrap();
        assert_eq!(b.read(..).unwrap(), d.mapv(f64::from));
        assert_eq!(b.memory_report().cache_budget_bytes, 1 << 20);
        b.close().unwrap();
        let reopened =
            crate::open_with::<f64>(dir.path().join("b.npy"), OpenOptions::new().read_only(true))
                .unwrap();
        assert_eq!(reopened.get([5usize, 8, 6]).unwrap(), 586.5);

        // A permuted slice, with options of its own.
        let v = a.t().slice(s![..;2, 1.., 3]).unwrap();
        let c = v
            .cast::<i32>()
            .save_as(
                dir.path().join("c.zarr"),
                ArrayOptions::default().chunks([2, 3]),
            )
            .unwrap();
        let want = d.t().slice(s![..;2, 1.., 3]).mapv(|x| x as i32);
        assert_eq!(c.read(..).unwrap(), want.into_dyn());
        assert_eq!(c.chunks(), &[2, 3]);

        // Options that name another shape, and the source itself.
        let e = a
            .view()
            .save_as(dir.path().join("d.npy"), ArrayOptions::new([2, 2]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[2, 2]") && e.contains("[6, 9, 7]"), "{e}");
        let e = a
            .view()
            .save_as(
                dir.path().join("a.zarr"),
                ArrayOptions::default().overwrite(true),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("same file"), "{e}");
    }

    #[test]
    fn save_as_with_progress_counts_every_block() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let a = crate::create::<u8>(
            dir.path().join("a.npy"),
            ArrayOptions::new([8, 6]).chunks([2, 6]),
        )
        .unwrap();
        a.fill(s![3, ..], 9).unwrap();
        let done = AtomicU64::new(0);
        let count = |n: u64| {
            done.fetch_add(n, Ordering::Relaxed);
        };
        let b = a
            .cast::<u16>()
            .save_as_with_progress(
                dir.path().join("b.zarr"),
                ArrayOptions::default().chunks([4, 3]),
                &count,
            )
            .unwrap();
        assert_eq!(done.load(Ordering::Relaxed), 4); // 8 x 6 in 4 x 3 blocks
        assert_eq!(b.sum().unwrap(), 54.0);
        // Through a permutation, the other path.
        done.store(0, Ordering::Relaxed);
        let c = a
            .t()
            .save_as_with_progress(
                dir.path().join("c.npy"),
                ArrayOptions::default().chunks([3, 8]),
                &count,
            )
            .unwrap();
        assert_eq!(done.load(Ordering::Relaxed), 2);
        assert_eq!(c.get([5, 3]).unwrap(), 9);
    }

    #[test]
    fn save_as_keeps_labels_and_fill_like_convert() {
        use crate::store::Labels;
        let dir = tempfile::tempdir().unwrap();
        let labels = Labels {
            dimension_names: Some(vec![Some("z".into()), Some("y".into())]),
            attributes: r#"{"units":"K"}"#.into(),
            dropped: Vec::new(),
        };
        let a = crate::create::<f32>(
            dir.path().join("a.zarr"),
            ArrayOptions::new([4, 5])
                .fill_value(-1.0f32)
                .labels(labels.clone()),
        )
        .unwrap();
        a.fill(s![0, ..], 2.0).unwrap();
        let b = a
            .cast::<f64>()
            .save_as(dir.path().join("b.zarr"), ArrayOptions::default())
            .unwrap();
        assert_eq!(b.fill_value(), -1.0);
        assert_eq!(b.get([3, 4]).unwrap(), -1.0);
        let got = b.handle().store().labels().unwrap();
        assert_eq!(got.dimension_names, labels.dimension_names);
        assert!(got.attributes.contains("units"), "{}", got.attributes);
        // A transposed copy has other axes: no names carried over.
        let t = a
            .t()
            .save_as(dir.path().join("t.zarr"), ArrayOptions::default())
            .unwrap();
        assert!(
            t.handle()
                .store()
                .labels()
                .is_none_or(|l| l.dimension_names.is_none())
        );
        assert_eq!(t.get([4, 0]).unwrap(), 2.0);
    }
}
