//! `chunkyard convert`: an array copied chunk by chunk into a new file,
//! optionally in another format, dtype, chunk shape or codec.

use std::path::Path;

use chunkyard::format_bytes;
use chunkyard::{ArrayHandle, ChunkCache, Codec, Error, Format, Result, dropped_by};

use crate::args::{array_options, open_read, parse_shape};
use crate::print::tuple;
use crate::progress::copy_blocks;

/// `chunkyard convert SRC DST [--dtype] [--chunks] [--shards] [--codec]
/// [--overwrite]`.
pub(crate) fn run(
    src: &Path,
    dst: &Path,
    dtype: Option<String>,
    (chunks, shards): (Option<String>, Option<String>),
    codec: Codec,
    overwrite: bool,
    cache: ChunkCache,
) -> Result<()> {
    let a = open_read(src, cache.clone())?;
    let dtype = match dtype {
        Some(d) => d.parse()?,
        None => a.dtype(),
    };
    if src
        .canonicalize()
        .ok()
        .is_some_and(|s| dst.canonicalize().ok().is_some_and(|d| d == s))
    {
        return Err(Error::invalid(format!(
            "{}: source and destination are the same file",
            dst.display()
        )));
    }
    let mut opts = array_options(a.shape())
        .cache(cache)
        .codec(codec)
        .overwrite(overwrite);
    if let Some(c) = chunks {
        opts = opts.chunks(parse_shape(&c, "--chunks")?);
    }
    if let Some(s) = shards {
        opts = opts.shards(parse_shape(&s, "--shards")?);
    }
    // Attributes and dimension names go where the destination holds
    // them; what the source could not express, or the destination cannot
    // hold, is said after the copy (the data is copied regardless).
    let mut dropped = Vec::new();
    if let Some(labels) = a.store().labels() {
        dropped.extend(labels.dropped.iter().cloned());
        dropped.extend(dropped_by(Format::from_path(dst)?, &labels));
        opts = opts.labels(labels);
    }
    // Keep a fill value where the destination has one (.npy has none; there
    // the copied elements carry it).
    if a.fill_value().iter().any(|&b| b != 0) && matches!(Format::from_path(dst), Ok(Format::Zarr))
    {
        let mut fill = vec![0; dtype.size()];
        chunkyard::cast_bytes(a.dtype(), a.fill_value(), dtype, &mut fill);
        opts = opts.fill_bytes(dtype, fill);
    }
    let b = ArrayHandle::create(dst, dtype, &opts)?;
    let (s, d) = (a.resolve("...")?, b.resolve("...")?);
    copy_blocks(&a, &s, &b, &d, "convert")?;
    b.flush()?;
    println!(
        "{} -> {}: {} {} -> {}, {} -> {} on disk",
        src.display(),
        dst.display(),
        tuple(&a.shape()),
        a.dtype(),
        b.dtype(),
        format_bytes(a.memory_report().stored_bytes.unwrap_or(0)),
        format_bytes(b.memory_report().stored_bytes.unwrap_or(0)),
    );
    for d in dropped {
        println!("dropped {d}");
    }
    Ok(())
}
