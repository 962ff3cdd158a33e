//! Turning command-line arguments into library values: shapes, and
//! arrays opened read-only.

use std::path::Path;

use chunkyard::{ArrayHandle, ArrayOptions, ChunkCache, Error, OpenOptions, Result};

/// `500,2000,2000` (or `(500, 2000, 2000)`) as a shape; `what` names the
/// option in the error.
pub(crate) fn parse_shape(text: &str, what: &str) -> Result<Vec<u64>> {
    let t = text.trim().trim_start_matches('(').trim_end_matches(')');
    if t.trim().is_empty() {
        return Ok(Vec::new());
    }
    t.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.trim().parse::<u64>().map_err(|_| {
                Error::invalid(format!(
                    "{what} {text:?}: {p:?} is not a non-negative integer"
                ))
            })
        })
        .collect()
}

/// The S3 client's options of this run (`--s3-option`), set once by
/// `main` before any command runs: a process-wide setting of the command
/// line, as `AWS_*` variables are of its environment.
#[cfg(feature = "s3")]
static S3: std::sync::OnceLock<chunkyard::S3Options> = std::sync::OnceLock::new();

/// Takes the `--s3-option KEY=VALUE` pairs; without the `s3` feature any
/// pair is an error saying how to get it.
pub(crate) fn set_s3_options(pairs: &[String]) -> Result<()> {
    #[cfg(feature = "s3")]
    {
        let _ = S3.set(chunkyard::S3Options::from_pairs(pairs)?);
        Ok(())
    }
    #[cfg(not(feature = "s3"))]
    match pairs.first() {
        None => Ok(()),
        Some(p) => Err(Error::Unsupported(format!(
            "--s3-option {p}: object storage needs chunkyard built with the `s3` feature \
             (cargo build --features s3)"
        ))),
    }
}

/// Whether `path` is an object storage URL (`s3://...`).
pub(crate) fn is_object_url(path: &Path) -> bool {
    path.to_str().is_some_and(|s| s.starts_with("s3://"))
}

/// The run's S3 options.
#[cfg(feature = "s3")]
pub(crate) fn s3_options() -> chunkyard::S3Options {
    S3.get().cloned().unwrap_or_default()
}

/// Open options carrying the run's S3 options.
pub(crate) fn open_options() -> OpenOptions {
    let opts = OpenOptions::new();
    #[cfg(feature = "s3")]
    let opts = opts.s3(s3_options());
    opts
}

/// Creation options for `shape` carrying the run's S3 options.
pub(crate) fn array_options(shape: impl chunkyard::Dims) -> ArrayOptions {
    let opts = ArrayOptions::new(shape);
    #[cfg(feature = "s3")]
    let opts = opts.s3(s3_options());
    opts
}

/// `path` opened read-only with `cache`.
pub(crate) fn open_read(path: &Path, cache: ChunkCache) -> Result<ArrayHandle> {
    ArrayHandle::open(path, open_options().read_only(true).cache(cache))
}
