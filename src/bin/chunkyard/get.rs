//! `chunkyard get`: a selection printed as nested lists or JSON, or
//! streamed into a new `.npy` file.

use std::io::Write;
use std::path::Path;

use chunkyard::{ArrayHandle, ChunkCache, Error, Result, dispatch};

use crate::args::{array_options, open_read};
use crate::print::{PRINT_LIMIT, render};
use crate::progress::copy_blocks;

/// `chunkyard get PATH SELECTION [--json | --out FILE]`.
pub(crate) fn run(
    path: &Path,
    selection: &str,
    json: bool,
    out: Option<&Path>,
    cache: ChunkCache,
) -> Result<()> {
    let a = open_read(path, cache.clone())?;
    let sel = a.resolve(selection)?;
    if let Some(out) = out {
        let shape = sel.out_shape();
        let dst = ArrayHandle::create(
            out,
            a.dtype(),
            array_options(&shape).cache(cache).overwrite(true),
        )?;
        let full = dst.resolve("...")?;
        copy_blocks(&a, &sel, &dst, &full, "get")?;
        dst.flush()?;
        return Ok(());
    }
    if sel.num_elements() > PRINT_LIMIT {
        return Err(Error::invalid(format!(
            "the selection has {} elements, too many to print; write it with --out FILE.npy",
            sel.num_elements()
        )));
    }
    let mut bytes = vec![0u8; sel.num_elements() as usize * a.dtype().size()];
    a.read_bytes(&sel, &mut bytes)?;
    let text = dispatch!(a.dtype(), T => render::<T>(&bytes, &sel.out_shape(), json));
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").map_err(|e| Error::io("<stdout>", e))
}
