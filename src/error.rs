//! The public error type and the crate's `Result` alias.
//!
//! Errors are `Clone` (I/O errors sit behind an `Arc`) so that one failed
//! chunk load can be handed to every thread waiting on that chunk.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::dtype::DType;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in chunkyard.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error on a named file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file the operation was on.
        path: PathBuf,
        /// The underlying error.
        source: Arc<io::Error>,
    },
    /// A selection that does not fit the array (bad syntax, out of bounds,
    /// wrong rank, zero or negative step).
    #[error(transparent)]
    Selection(#[from] SelectionError),
    /// A file whose contents are not a valid array of the claimed format.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file that is malformed.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// An error reported by a storage backend, with the backend's name.
    #[error("{backend} store: {message}")]
    Store {
        /// Backend name (`npy`, `memory`, `zarr`, `hdf5`).
        backend: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The element type asked for is not the array's.
    #[error("dtype mismatch: the array holds {actual}, the caller asked for {expected}")]
    DTypeMismatch {
        /// The dtype of the typed handle.
        expected: DType,
        /// The dtype stored in the array.
        actual: DType,
    },
    /// Data whose shape does not match the selection it is written to.
    #[error("shape mismatch: {message}")]
    ShapeMismatch {
        /// Human-readable description naming both shapes.
        message: String,
    },
    /// Invalid options (shape, chunk shape, cache size, value text...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A feature of a file or an option that chunkyard does not support.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The array refuses writes after an earlier write-back or flush failed.
    #[error("array is closed for writing after an earlier failure: {0}")]
    Poisoned(String),
    /// A long operation stopped early because its caller asked it to (the
    /// `stop` flag of [`reduce_interruptible`](crate::reduce_interruptible)
    /// and friends): what it wrote before stopping stays written.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// Wraps an `io::Error` with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// A format error on `path`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An invalid-argument error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }
}

/// A selection that cannot be applied to an array. Every variant that
/// concerns one axis names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectionError {
    /// Text that is not NumPy selection syntax.
    #[error("cannot parse selection {text:?}: {reason}")]
    Parse {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// More indices than the array has axes.
    #[error("too many indices: the selection has {given} axes, the array has {ndim}")]
    TooManyIndices {
        /// Axes named by the selection.
        given: usize,
        /// Axes of the array.
        ndim: usize,
    },
    /// A resolved selection reused on an array with another number of
    /// axes.
    #[error("the selection has {given} axes, the array has {ndim}")]
    Rank {
        /// Axes of the selection.
        given: usize,
        /// Axes of the array.
        ndim: usize,
    },
    /// An element index with a different number of integers than the
    /// array or view has axes.
    #[error(
        "index {index} has {given} integers, the array has {ndim} axes: an element index needs one per axis"
    )]
    IndexRank {
        /// The index as given.
        index: String,
        /// Integers in it.
        given: usize,
        /// Axes of the array or view.
        ndim: usize,
    },
    /// An integer index outside the axis.
    #[error("index {index} is out of bounds for axis {axis} with size {size}")]
    OutOfBounds {
        /// Axis number (0-based).
        axis: usize,
        /// The index as given (may be negative).
        index: i64,
        /// Length of the axis.
        size: u64,
    },
    /// A slice with step 0.
    #[error("slice step cannot be zero (axis {axis})")]
    ZeroStep {
        /// Axis number.
        axis: usize,
    },
    /// A slice with a negative step.
    #[error("negative slice steps are not supported (axis {axis}, step {step})")]
    NegativeStep {
        /// Axis number.
        axis: usize,
        /// The step given.
        step: i64,
    },
    /// More than one `...`.
    #[error("a selection can only have a single ellipsis ('...')")]
    MultipleEllipsis,
    /// `np.newaxis` / `None` is not supported.
    #[error("new axes are not supported in selections")]
    NewAxis,
}
