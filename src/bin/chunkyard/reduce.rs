//! `chunkyard reduce`: sum, mean, min, max or count of a selection, whole
//! (a scalar) or along one axis (an array, printed or written to `.npy`).

use std::path::Path;

use chunkyard::ResolvedSelection;
use chunkyard::{ArrayHandle, ChunkCache, Error, Result, dispatch};
use chunkyard::{Reduction, reduce, reduce_axis, reduce_axis_steps};

use crate::args::{array_options, open_read};
use crate::print::{PRINT_LIMIT, render};
use crate::progress::progress_bar;

/// `chunkyard reduce PATH OP [SELECTION] [--axis N [--out FILE]]`.
pub(crate) fn run(
    path: &Path,
    op: &str,
    selection: Option<&str>,
    axis: Option<usize>,
    out: Option<&Path>,
    cache: ChunkCache,
) -> Result<()> {
    let op: Reduction = op.parse()?;
    let a = open_read(path, cache.clone())?;
    let sel = a.resolve(selection.unwrap_or("..."))?;
    match axis {
        None => {
            let bar = progress_bar(chunkyard::reduce_steps(&a, &sel), "reduce");
            let r = reduce(&a, &sel, op, &|n| bar.inc(n))?;
            bar.finish_and_clear();
            println!("{r}");
            Ok(())
        }
        Some(axis) => reduce_along(&a, &sel, axis, op, out, cache),
    }
}

fn reduce_along(
    a: &ArrayHandle,
    sel: &ResolvedSelection,
    axis: usize,
    op: Reduction,
    out: Option<&Path>,
    cache: ChunkCache,
) -> Result<()> {
    let bar = progress_bar(reduce_axis_steps(a, sel, axis), "reduce");
    let r = reduce_axis(a, sel, axis, op, &|n| bar.inc(n));
    bar.finish_and_clear();
    let r = r?;
    match out {
        Some(out) => {
            let dst = ArrayHandle::create(
                out,
                r.dtype,
                array_options(&r.shape).cache(cache).overwrite(true),
            )?;
            let all = dst.resolve("...")?;
            dst.write_bytes(&all, &r.data)?;
            dst.flush()
        }
        None => {
            let n: u64 = r.shape.iter().product();
            if n > PRINT_LIMIT {
                return Err(Error::invalid(format!(
                    "the result has {n} elements, too many to print; write it with --out FILE.npy"
                )));
            }
            let text = dispatch!(r.dtype, T => render::<T>(&r.data, &r.shape, false));
            println!("{text}");
            Ok(())
        }
    }
}
