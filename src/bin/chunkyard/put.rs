//! `chunkyard put`: a selection written from another array or a scalar,
//! or rows appended along the first axis.

use std::path::Path;

use chunkyard::{ArrayHandle, ChunkCache, Error, Result};
use chunkyard::{AxisSel, ResolvedSelection};

use crate::args::{open_options, open_read};
use crate::print::tuple;
use crate::progress::copy_blocks;

/// `chunkyard put PATH SELECTION (--from FILE | --value V)`.
pub(crate) fn run(
    path: &Path,
    selection: &str,
    from: Option<&Path>,
    value: Option<&str>,
    cache: ChunkCache,
) -> Result<()> {
    let a = ArrayHandle::open(path, open_options().cache(cache.clone()))?;
    let sel = a.resolve(selection)?;
    match (from, value) {
        (Some(from), _) => {
            let src = open_read(from, cache)?;
            if src.shape() != sel.out_shape().as_slice() {
                return Err(Error::ShapeMismatch {
                    message: format!(
                        "{} has shape {}, the selection {selection:?} has shape {}",
                        from.display(),
                        tuple(&src.shape()),
                        tuple(&sel.out_shape())
                    ),
                });
            }
            let all = src.resolve("...")?;
            copy_blocks(&src, &all, &a, &sel, "put")?;
        }
        (None, Some(v)) => {
            let bytes = a.dtype().parse_value(v)?;
            a.fill_bytes(&sel, &bytes)?;
        }
        (None, None) => return Err(Error::invalid("put needs --from FILE.npy or --value V")),
    }
    // `close`, not `flush`: a failed flush is reported once, by the
    // error, not again by the drop's flush.
    a.close()
}

/// `put PATH --append --from FILE`: grows the first axis by FILE's rows
/// and copies them in. If the copy fails, the array is cut back to its old
/// length, so a failed append leaves no rows of fill values behind.
pub(crate) fn append(path: &Path, from: &Path, cache: ChunkCache) -> Result<()> {
    let a = ArrayHandle::open(path, open_options().cache(cache.clone()))?;
    let src = open_read(from, cache)?;
    let (shape, rows_shape) = (a.shape(), src.shape());
    // A source of one axis less is a single row.
    let one_row = rows_shape.len() + 1 == shape.len();
    let rows_shape = if one_row {
        [&[1], &rows_shape[..]].concat()
    } else {
        rows_shape
    };
    if shape.is_empty() || rows_shape.len() != shape.len() || rows_shape[1..] != shape[1..] {
        return Err(Error::ShapeMismatch {
            message: format!(
                "cannot append {} of shape {} to {} of shape {}: every axis but the first must match",
                from.display(),
                tuple(&src.shape()),
                path.display(),
                tuple(&shape)
            ),
        });
    }
    let rows = rows_shape[0];
    let start = a.reserve_rows(rows)?;
    let mut axes = ResolvedSelection::full(&a.shape()).axes().to_vec();
    axes[0] = if one_row {
        AxisSel::Index(start)
    } else {
        AxisSel::Range {
            start,
            step: 1,
            count: rows,
        }
    };
    let dst = ResolvedSelection::from_axes(axes);
    let copied = src
        .resolve("...")
        .and_then(|all| copy_blocks(&src, &all, &a, &dst, "append"));
    if let Err(e) = copied {
        let _ = a.resize(start);
        return Err(e);
    }
    let shape = tuple(&a.shape());
    a.close()?;
    println!(
        "{}: appended {rows} row{} at {start}, shape {shape}",
        path.display(),
        if rows == 1 { "" } else { "s" },
    );
    Ok(())
}
