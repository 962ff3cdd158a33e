//! `chunkyard._chunkyard`: the Rust half of the Python package.
//!
//! Thin by design: numpy-style indices become a [`Selection`], the bytes
//! cross as native-order numpy buffers, and every call into the library
//! runs with the GIL released and inside `catch_unwind` ([`guarded`]), so
//! a panic in the library becomes a `RuntimeError`, never pyo3's
//! `PanicException` (a `BaseException` that `except Exception` misses).
//! Argument normalisation that numpy does best (dtypes, fill values,
//! shapes) lives in `chunkyard/__init__.py`.

mod work;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, sync_channel};

use chunkyard::{
    ArrayHandle, ArrayOptions, AxisSel, ChunkCache, ChunkGrid, Codec, DType, Error, Format,
    OpenOptions, Reduction, ResolvedSelection, Scalar, SelItem, Selection, SelectionError,
};
use numpy::{PyArray1, PyArrayDescr, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods};
use parking_lot::Mutex;
use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyIndexError, PyOSError, PyPermissionError,
    PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::import_exception;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyList, PySlice, PyTuple, PyType};

import_exception!(io, UnsupportedOperation);

/// Maps the library's error onto the Python exception a numpy, h5py or
/// file-object user expects: an OS error as Python's own `OSError(errno,
/// strerror, filename)` (which Python turns into `FileNotFoundError`,
/// `PermissionError`, `IsADirectoryError`...), selections as numpy's
/// `IndexError`/`TypeError`, bad arguments as `ValueError`, and the
/// failures only chunkyard has as its classes in `chunkyard/_errors.py`.
fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match &e {
        Error::Io { path, source } => match source.raw_os_error() {
            Some(code) => {
                let text = std::io::Error::from_raw_os_error(code).to_string();
                let strerror = text.split(" (os error").next().unwrap_or(&text).to_string();
                PyOSError::new_err((code, strerror, path.display().to_string()))
            }
            // An error the library made up (no errno): by its kind.
            None => match source.kind() {
                std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
                std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
                std::io::ErrorKind::AlreadyExists => PyFileExistsError::new_err(msg),
                _ => PyOSError::new_err(msg),
            },
        },
        Error::Selection(s) => selection_error(s, msg),
        Error::Format { .. } => chunkyard_error("FormatError", msg),
        Error::DTypeMismatch { .. } => PyTypeError::new_err(msg),
        Error::ShapeMismatch { .. } | Error::InvalidArgument(_) | Error::Unsupported(_) => {
            PyValueError::new_err(msg)
        }
        Error::Store { .. } => chunkyard_error("StoreError", msg),
        Error::Poisoned(_) => chunkyard_error("PoisonedError", msg),
        // Only `work::interruptible` stops a job, and it raises the
        // signal handler's exception instead; this is the fallback.
        Error::Interrupted => pyo3::exceptions::PyKeyboardInterrupt::new_err(msg),
        // Variants added to the library later.
        _ => chunkyard_error("ChunkyardError", msg),
    }
}

/// An exception of `chunkyard._errors` (classes with two bases, which
/// PyO3's `create_exception!` cannot make). Takes the GIL: errors are
/// converted inside `Python::detach` too, and this is the rare path.
fn chunkyard_error(class: &str, msg: String) -> PyErr {
    Python::attach(|py| {
        let ty = py
            .import("chunkyard._errors")
            .and_then(|m| m.getattr(class))
            .and_then(|t| t.cast_into::<PyType>().map_err(PyErr::from));
        match ty {
            Ok(t) => PyErr::from_type(t, msg),
            Err(e) => e,
        }
    })
}

fn selection_error(e: &SelectionError, msg: String) -> PyErr {
    match e {
        SelectionError::NegativeStep { .. } | SelectionError::NewAxis => PyTypeError::new_err(msg),
        SelectionError::ZeroStep { .. } | SelectionError::Parse { .. } => {
            PyValueError::new_err(msg)
        }
        // OutOfBounds, TooManyIndices, MultipleEllipsis: numpy's IndexError.
        _ => PyIndexError::new_err(msg),
    }
}

/// Runs a library call, turning its error into a Python exception and a
/// panic into `RuntimeError`. Needs no GIL (a `PyErr` is built lazily), so
/// it runs inside `Python::detach`.
fn guarded<T>(f: impl FnOnce() -> chunkyard::Result<T>) -> PyResult<T> {
    match catch_panic(f) {
        Ok(r) => r.map_err(to_py),
        Err(what) => Err(panic_error(what)),
    }
}

/// Runs `f`, turning a panic into its message.
fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string())
    })
}

fn panic_error(what: String) -> PyErr {
    PyRuntimeError::new_err(format!(
        "chunkyard internal error (a bug, please report it): {what}"
    ))
}

/// One item of a Python index: an int, a slice with step >= 1, or `...`.
fn parse_item(item: &Bound<'_, PyAny>) -> PyResult<SelItem> {
    let py = item.py();
    if item.is(py.Ellipsis()) {
        return Ok(SelItem::Ellipsis);
    }
    if item.is_none() {
        return Err(PyTypeError::new_err(
            "chunkyard indices do not support None (np.newaxis); add the axis to the result instead",
        ));
    }
    if let Ok(s) = item.cast::<PySlice>() {
        let start = slice_bound(&s.getattr("start")?)?;
        let stop = slice_bound(&s.getattr("stop")?)?;
        let step = slice_bound(&s.getattr("step")?)?;
        return match step {
            Some(0) => Err(PyValueError::new_err("slice step cannot be zero")),
            Some(k) if k < 0 => Err(PyTypeError::new_err(format!(
                "chunkyard indices do not support negative slice steps (step {k}); \
                 read with a positive step and reverse the numpy result"
            ))),
            _ => Ok(SelItem::Slice { start, stop, step }),
        };
    }
    // numpy reads a bool as a mask, not as 0 or 1.
    let is_np_bool = item
        .get_type()
        .name()
        .is_ok_and(|n| n.to_str().is_ok_and(|n| n == "bool" || n == "bool_"));
    if item.is_instance_of::<PyBool>() || is_np_bool {
        return Err(PyTypeError::new_err(
            "chunkyard indices do not support booleans (boolean mask indexing)",
        ));
    }
    match item.extract::<i64>() {
        Ok(i) => Ok(SelItem::Index(i)),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(py) => Err(
            PyIndexError::new_err(format!("index {item} is out of bounds")),
        ),
        Err(_) => {
            let fancy = item.is_instance_of::<PyList>() || item.hasattr("__array__")?;
            let kind = item.get_type().name()?;
            Err(PyTypeError::new_err(if fancy {
                format!(
                    "chunkyard indices do not support fancy indexing (a {kind}); \
                     use integers, slices with step >= 1 and ..."
                )
            } else {
                format!("chunkyard indices are integers, slices with step >= 1 and ...; got {kind}")
            }))
        }
    }
}

/// A slice's start, stop or step: `None`, or an integer (clamped, as
/// numpy clamps, when it does not fit in an i64).
fn slice_bound(v: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    if v.is_none() {
        return Ok(None);
    }
    match v.extract::<i64>() {
        Ok(i) => Ok(Some(i)),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(v.py()) => {
            Ok(Some(if v.lt(0)? { i64::MIN + 1 } else { i64::MAX }))
        }
        Err(_) => Err(PyTypeError::new_err(format!(
            "slice indices must be integers or None, not {}",
            v.get_type().name()?
        ))),
    }
}

fn parse_index(key: &Bound<'_, PyAny>) -> PyResult<Selection> {
    let items = match key.cast::<PyTuple>() {
        Ok(t) => t.iter().map(|i| parse_item(&i)).collect::<PyResult<_>>()?,
        Err(_) => vec![parse_item(key)?],
    };
    Ok(Selection::new(items))
}

/// Whether numpy gives a scalar for `key`: an integer for every axis and
/// no `...` (`x[...]` of a 0-d array, or `x[1, 2, ...]` of a 2-d one, is
/// a 0-d array).
fn is_scalar_index(key: &Bound<'_, PyAny>, sel: &ResolvedSelection) -> bool {
    let py = key.py();
    let has_ellipsis = match key.cast::<PyTuple>() {
        Ok(t) => t.iter().any(|i| i.is(py.Ellipsis())),
        Err(_) => key.is(py.Ellipsis()),
    };
    sel.is_point() && !has_ellipsis
}

/// The element `key` names when it is an exact Python `int` for every
/// axis (a tuple of them, or one for a 1-d array), each within the shape
/// (negatives from the end, as numpy): the common `a[i, j, k]` in a loop,
/// which takes the short way of [`read_element`]. Anything else, out of
/// bounds included, is `None` and takes the general path, which parses it
/// in full and raises the right error. `bool` is an `int` subclass but an
/// index of another kind in numpy: not taken.
fn point_in_bounds(key: &Bound<'_, PyAny>, shape: &[u64]) -> Option<Vec<u64>> {
    let one = |item: &Bound<'_, PyAny>, n: u64| -> Option<u64> {
        if !item.is_exact_instance_of::<pyo3::types::PyInt>() {
            return None;
        }
        let i: i64 = item.extract().ok()?;
        let n = i64::try_from(n).ok()?;
        let i = if i < 0 { i.checked_add(n)? } else { i };
        (0..n).contains(&i).then_some(i as u64)
    };
    match key.cast::<PyTuple>() {
        Ok(t) if t.len() == shape.len() => t
            .iter()
            .zip(shape)
            .map(|(item, &n)| one(&item, n))
            .collect(),
        Ok(_) => None,
        Err(_) if shape.len() == 1 => Some(vec![one(key, shape[0])?]),
        Err(_) => None,
    }
}

/// One element as the numpy scalar numpy and h5py return (`np.float32`
/// and so on), without the array the general path builds and indexes:
/// about half the cost of `a[i, j, k]` from Python. The GIL is released
/// for the read (it may go to the disk). The value travels as a Python
/// `int`, `float` or `bool`, which holds each dtype's values exactly.
fn read_element<'py>(
    py: Python<'py>,
    h: &ArrayHandle,
    index: &[u64],
    dtype: &Bound<'py, PyArrayDescr>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut buf = [0u8; 8];
    let n = h.dtype().size();
    let bytes = buf.get_mut(..n).ok_or_else(|| {
        PyValueError::new_err(format!(
            "dtype {} is not supported by the Python package yet",
            h.dtype()
        ))
    })?;
    py.detach(|| guarded(|| h.get_bytes(index, bytes)))?;
    // The element's bytes as a `$t`, then a Python object (`f32` through
    // `f64`, exact: Python has one float type).
    macro_rules! num {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            let mut a = [0u8; N];
            a.copy_from_slice(&buf[..N]);
            <$t>::from_ne_bytes(a).into_pyobject(py)?.into_any()
        }};
    }
    let value: Bound<'py, PyAny> = match h.dtype() {
        DType::I8 => num!(i8),
        DType::I16 => num!(i16),
        DType::I32 => num!(i32),
        DType::I64 => num!(i64),
        DType::U8 => num!(u8),
        DType::U16 => num!(u16),
        DType::U32 => num!(u32),
        DType::U64 => num!(u64),
        DType::F32 => {
            let mut a = [0u8; 4];
            a.copy_from_slice(&buf[..4]);
            f64::from(f32::from_ne_bytes(a))
                .into_pyobject(py)?
                .into_any()
        }
        DType::F64 => num!(f64),
        DType::Bool => PyBool::new(py, buf[0] != 0).to_owned().into_any(),
        other => {
            return Err(PyValueError::new_err(format!(
                "dtype {other} is not supported by the Python package yet"
            )));
        }
    };
    dtype.typeobj().call1((value,))
}

fn usize_shape(shape: &[u64]) -> PyResult<Vec<usize>> {
    shape
        .iter()
        .map(|&n| {
            usize::try_from(n)
                .map_err(|_| PyValueError::new_err("selection too large for this machine"))
        })
        .collect()
}

/// Reads `sel` into a new numpy array of `shape` that numpy allocated and
/// owns (bool: a `bool` view of a numpy-owned `uint8` array), with the GIL
/// released during the read. `once`: a read that will not come back
/// (`Array._read_once`), with chunks not in the cache read past it.
fn read_numpy<'py>(
    py: Python<'py>,
    h: &ArrayHandle,
    sel: &ResolvedSelection,
    shape: &[usize],
    once: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let np = py.import("numpy")?;
    let dims = PyTuple::new(py, shape)?;
    macro_rules! read_as {
        ($t:ty) => {{
            // numpy.empty, not rust-numpy's, whose failed allocation is a
            // panic: numpy raises MemoryError. Not numpy.zeros: the read
            // writes every byte (`read_bytes` fills what no chunk holds
            // with the fill value), and calloc clears memory glibc reuses
            // from its heap, a second pass over a plane (a third of a
            // warm plane read's time: docs/benchmarks.md).
            let arr = np
                .call_method1("empty", (&dims, numpy::dtype::<$t>(py)))?
                .cast_into::<PyArrayDyn<$t>>()?;
            {
                let mut rw = arr.try_readwrite().map_err(borrow_error)?;
                let slice = rw
                    .as_slice_mut()
                    .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(slice);
                read_pieces(py, h, sel, bytes, once)?;
            }
            arr.into_any()
        }};
    }
    Ok(match h.dtype() {
        DType::I8 => read_as!(i8),
        DType::I16 => read_as!(i16),
        DType::I32 => read_as!(i32),
        DType::I64 => read_as!(i64),
        DType::U8 => read_as!(u8),
        DType::U16 => read_as!(u16),
        DType::U32 => read_as!(u32),
        DType::U64 => read_as!(u64),
        DType::F32 => read_as!(f32),
        DType::F64 => read_as!(f64),
        // A Rust `bool` may hold only 0 or 1, so the bytes land in a uint8
        // array that numpy then views as bool.
        DType::Bool => read_as!(u8).call_method1("view", (numpy::dtype::<bool>(py),))?,
        other => {
            return Err(PyValueError::new_err(format!(
                "dtype {other} is not supported by the Python package yet"
            )));
        }
    })
}

/// Reads `sel` into `out` with the GIL released, in pieces with a check
/// for Ctrl-C between them (`work::pieces`); `once` as for `read_numpy`.
fn read_pieces(
    py: Python<'_>,
    h: &ArrayHandle,
    sel: &ResolvedSelection,
    out: &mut [u8],
    once: bool,
) -> PyResult<()> {
    let parts = work::pieces(sel, h.chunks(), h.dtype().size());
    let many = parts.len() > 1;
    for (sub, range) in parts {
        let part = &mut out[range];
        py.detach(|| {
            guarded(|| {
                if once {
                    h.read_bytes_streaming(&sub, part)
                } else {
                    h.read_bytes(&sub, part)
                }
            })
        })?;
        if many {
            py.check_signals()?;
        }
    }
    Ok(())
}

/// Writes `data` (the C-order bytes of `sel`, or one element when
/// `fill`) with the GIL released, in pieces with a check for Ctrl-C
/// between them. An interrupted write leaves the pieces before the
/// interrupt written.
fn write_pieces(
    py: Python<'_>,
    h: &ArrayHandle,
    sel: &ResolvedSelection,
    data: &[u8],
    fill: bool,
) -> PyResult<()> {
    let parts = work::pieces(sel, h.chunks(), h.dtype().size());
    let many = parts.len() > 1;
    for (sub, range) in parts {
        if fill {
            py.detach(|| guarded(|| h.fill_bytes(&sub, data)))?;
        } else {
            let part = &data[range];
            py.detach(|| guarded(|| h.write_bytes(&sub, part)))?;
        }
        if many {
            py.check_signals()?;
        }
    }
    Ok(())
}

/// rust-numpy refuses a borrow that conflicts with another extension's
/// (its `readonly()`/`readwrite()` would panic instead).
fn borrow_error(e: numpy::BorrowError) -> PyErr {
    PyValueError::new_err(format!("the numpy array is in use elsewhere: {e}"))
}

/// A byte budget of decoded chunks, shared by the arrays given it
/// (`chunkyard::ChunkCache`).
#[pyclass(module = "chunkyard", name = "Cache", frozen)]
struct PyCache {
    cache: ChunkCache,
}

/// Write-behind writers of a Python cache unless told otherwise (the
/// process-wide one included). On by default in Python, where Rust keeps
/// it off: the package's users write the article's loop, `a[i] = plane`
/// with numpy computing the next plane, and write-behind overlaps the two.
/// The threads start at the first whole-chunk write (none at import, none
/// for readers) and again in a forked child; pickled arrays flush every
/// write (`sync_writes`), so a dask task's writes stay durable when it
/// ends. Two writers keep up with one stream of planes
/// (`docs/benchmarks.md`, write-behind).
const DEFAULT_WRITE_BEHIND: usize = 2;

/// The Python object of the process-wide cache, made once, so that every
/// array opened without `cache=` gives the same object back. It is the
/// package's own (256 MiB, `DEFAULT_WRITE_BEHIND` writers), not the
/// library's `ChunkCache::global()`, which has no write-behind.
static GLOBAL_CACHE: PyOnceLock<Py<PyCache>> = PyOnceLock::new();

fn global_cache(py: Python<'_>) -> PyResult<Py<PyCache>> {
    GLOBAL_CACHE
        .get_or_try_init(py, || {
            Py::new(
                py,
                PyCache {
                    cache: ChunkCache::with_write_behind(global_budget()?, DEFAULT_WRITE_BEHIND),
                },
            )
        })
        .map(|c| c.clone_ref(py))
}

/// The process-wide cache's budget: the environment variable
/// `CHUNKYARD_CACHE` (a size, as `Cache` takes it) when the package is
/// imported, else `DEFAULT_CACHE_BYTES`. An environment variable because
/// the arrays a dask worker unpickles go to its process-wide cache, and
/// worker processes inherit their nanny's environment (dask's
/// `distributed.nanny.pre-spawn-environ`). A value that is not a size
/// fails the import: a misspelt budget silently ignored would surface only
/// as memory use.
fn global_budget() -> PyResult<usize> {
    const VAR: &str = "CHUNKYARD_CACHE";
    let text = match std::env::var(VAR) {
        Err(std::env::VarError::NotPresent) => return Ok(chunkyard::DEFAULT_CACHE_BYTES),
        Err(std::env::VarError::NotUnicode(v)) => {
            return Err(PyValueError::new_err(format!(
                "{VAR}={v:?} is not a size such as \"1GiB\""
            )));
        }
        Ok(t) => t,
    };
    let bytes = chunkyard::parse_size(text.trim())
        .map_err(|e| PyValueError::new_err(format!("{VAR}={text:?}: {e}")))?;
    usize::try_from(bytes)
        .map_err(|_| PyValueError::new_err(format!("{VAR}={text:?} is too large for this machine")))
}

#[pymethods]
impl PyCache {
    /// `Cache("256MiB")`, `Cache("1GiB")`, `Cache("500MB")` or
    /// `Cache(268435456)` (bytes); `write_behind` writer threads (0: off,
    /// every whole-chunk write goes to its store before it returns).
    #[new]
    #[pyo3(signature = (budget, write_behind=None))]
    fn new(budget: &Bound<'_, PyAny>, write_behind: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let writers = match write_behind {
            None => DEFAULT_WRITE_BEHIND,
            Some(w) if w.is_instance_of::<PyBool>() || w.extract::<i128>().is_err() => {
                return Err(PyTypeError::new_err(format!(
                    "write_behind is a number of writer threads (0: off), not {}",
                    w.get_type().name()?
                )));
            }
            Some(w) => {
                let n = w.extract::<i128>()?;
                match usize::try_from(n) {
                    Ok(n) if n <= 64 => n,
                    _ => {
                        return Err(PyValueError::new_err(format!(
                            "write_behind must be between 0 (off) and 64 writer threads, got {n}"
                        )));
                    }
                }
            }
        };
        let bytes = if budget.is_instance_of::<PyBool>() {
            return Err(PyTypeError::new_err(
                "the cache budget is a size such as \"256MiB\" or a number of bytes, not a bool",
            ));
        } else if let Ok(text) = budget.extract::<String>() {
            chunkyard::parse_size(&text).map_err(to_py)?
        } else if let Ok(n) = budget.extract::<i128>() {
            u64::try_from(n).map_err(|_| {
                PyValueError::new_err(format!(
                    "the cache budget must be a non-negative number of bytes, got {n}"
                ))
            })?
        } else {
            return Err(PyTypeError::new_err(format!(
                "the cache budget is a size such as \"256MiB\" or a number of bytes, not {}",
                budget.get_type().name()?
            )));
        };
        let bytes = usize::try_from(bytes)
            .map_err(|_| PyValueError::new_err("the cache budget is too large for this machine"))?;
        Ok(PyCache {
            cache: if writers == 0 {
                ChunkCache::new(bytes)
            } else {
                ChunkCache::with_write_behind(bytes, writers)
            },
        })
    }

    /// The byte budget.
    #[getter]
    fn budget(&self) -> usize {
        self.cache.budget()
    }

    /// Write-behind writer threads, 0 if off.
    #[getter]
    fn write_behind(&self) -> usize {
        self.cache.write_behind()
    }

    /// Counters and gauges, a dict: hits, misses, evictions, writebacks,
    /// write_throughs, background_writes, queued_writes, resident_bytes,
    /// dirty_bytes, in_flight_bytes, budget_bytes, entries.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = py.detach(|| self.cache.stats());
        let d = PyDict::new(py);
        d.set_item("hits", s.hits)?;
        d.set_item("misses", s.misses)?;
        d.set_item("evictions", s.evictions)?;
        d.set_item("writebacks", s.writebacks)?;
        d.set_item("write_throughs", s.write_throughs)?;
        d.set_item("background_writes", s.background_writes)?;
        d.set_item("queued_writes", s.queued_writes)?;
        d.set_item("resident_bytes", s.resident_bytes)?;
        d.set_item("dirty_bytes", s.dirty_bytes)?;
        d.set_item("in_flight_bytes", s.in_flight_bytes)?;
        d.set_item("budget_bytes", s.budget_bytes)?;
        d.set_item("entries", s.entries)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let s = self.cache.stats();
        format!(
            "<chunkyard.Cache budget={} resident={} write_behind={}>",
            chunkyard::format_bytes(s.budget_bytes as u64),
            chunkyard::format_bytes(s.resident_bytes as u64),
            self.cache.write_behind()
        )
    }
}

/// The cache a `cache=` argument names: the process-wide one for `None`.
fn cache_arg(py: Python<'_>, cache: Option<Py<PyCache>>) -> PyResult<Py<PyCache>> {
    match cache {
        Some(c) => Ok(c),
        None => global_cache(py),
    }
}

/// `value` as a C-contiguous numpy array of `dtype`: itself when it is
/// one, else a copy made by numpy's assignment (its casting rules).
fn native_contiguous<'py>(
    py: Python<'py>,
    value: &Bound<'py, PyAny>,
    dtype: &Bound<'py, PyArrayDescr>,
) -> PyResult<Bound<'py, PyAny>> {
    let np = py.import("numpy")?;
    if value.getattr("dtype")?.eq(dtype)? {
        return np.call_method1("ascontiguousarray", (value,));
    }
    let tmp = np.call_method1("empty", (value.getattr("shape")?, dtype))?;
    tmp.set_item(py.Ellipsis(), value)?;
    Ok(tmp)
}

/// A C-contiguous numpy array's bytes as a flat `uint8` array (a view).
fn as_byte_array<'py>(
    py: Python<'py>,
    arr: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<u8>>> {
    Ok(arr
        .call_method1("reshape", (-1,))?
        .call_method1("view", (numpy::dtype::<u8>(py),))?
        .cast_into::<PyArray1<u8>>()?)
}

/// An `axis=` argument: an int in `-ndim..ndim`, as numpy checks it
/// (`numpy.exceptions.AxisError`, a `ValueError` and an `IndexError`).
fn normalize_axis(py: Python<'_>, axis: &Bound<'_, PyAny>, ndim: usize) -> PyResult<usize> {
    if axis.is_instance_of::<PyBool>() || axis.is_instance_of::<PyTuple>() {
        return Err(PyTypeError::new_err(format!(
            "axis must be None or an int (chunkyard reduces along one axis), got {axis}"
        )));
    }
    let k: i64 = axis.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "axis must be None or an int, got {}",
            axis.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    let n = ndim as i64;
    if k < -n || k >= n {
        let err = py
            .import("numpy")?
            .getattr("exceptions")?
            .getattr("AxisError")?
            .call1((k, ndim))?;
        return Err(PyErr::from_value(err));
    }
    Ok(if k < 0 { (k + n) as usize } else { k as usize })
}

/// A block read ahead: its origin, its extent and its native-order bytes.
type RawBlock = (Vec<u64>, Vec<u64>, Vec<u8>);

/// What the reader thread of `iter_blocks` sends: a block, the library's
/// error, or a panic's message (`Err`).
type BlockMsg = Result<chunkyard::Result<RawBlock>, String>;

/// Reads the box at `origin` of `extent` into a new buffer, straight from
/// the store where the cache does not hold it (a scan's read). Runs on the
/// iterator's reader thread, so it catches a panic itself.
fn read_block(h: &ArrayHandle, origin: &[u64], extent: &[u64]) -> BlockMsg {
    catch_panic(|| {
        let sel = box_selection(origin, extent);
        let n: u64 = extent.iter().product();
        let mut buf = vec![0u8; n as usize * h.dtype().size()];
        h.read_bytes_streaming(&sel, &mut buf)?;
        Ok((origin.to_vec(), extent.to_vec(), buf))
    })
}

/// The selection of the box at `lo` with `counts`, unit steps.
fn box_selection(lo: &[u64], counts: &[u64]) -> ResolvedSelection {
    ResolvedSelection::from_axes(
        lo.iter()
            .zip(counts)
            .map(|(&start, &count)| AxisSel::Range {
                start,
                step: 1,
                count,
            })
            .collect(),
    )
}

/// A numpy dtype argument as the library's dtype and numpy's descriptor
/// (native byte order only, as in `create`).
fn numpy_dtype(py: Python<'_>, dtype: &Bound<'_, PyAny>) -> PyResult<(DType, Py<PyArrayDescr>)> {
    let descr = py
        .import("numpy")?
        .call_method1("dtype", (dtype,))
        .map_err(|e| {
            if e.is_instance_of::<PyTypeError>(py) {
                PyValueError::new_err(format!("not a numpy dtype: {dtype}"))
            } else {
                e
            }
        })?
        .cast_into::<PyArrayDescr>()?;
    let name: String = descr.getattr("name")?.extract()?;
    let dt = DType::ALL
        .into_iter()
        .find(|d| d.numpy_name() == name)
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "dtype {name} is not supported; chunkyard stores bool, int8-int64, \
                 uint8-uint64, float32 and float64"
            ))
        })?;
    if !descr.getattr("isnative")?.is_truthy()? {
        return Err(PyValueError::new_err(format!(
            "dtype {} is not in this machine's byte order; non-native byte orders are not \
             supported yet",
            descr.getattr("str")?
        )));
    }
    Ok((dt, descr.unbind()))
}

/// A shape-like argument (`chunks=`): an int or a sequence of ints >= 0.
fn dims_arg(v: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u64>> {
    let dims: Vec<i64> = match v.extract::<i64>() {
        Ok(n) => vec![n],
        Err(_) => v.extract().map_err(|_| {
            PyValueError::new_err(format!("{what} must be a tuple of integers, got {v}"))
        })?,
    };
    dims.iter()
        .map(|&n| {
            u64::try_from(n).map_err(|_| {
                PyValueError::new_err(format!("{what} must not be negative, got {dims:?}"))
            })
        })
        .collect()
}

/// `storage_options={...}`: the S3 client's options by fsspec's names
/// (`chunkyard::S3Options::KEYS`), parsed once, and the dict itself (a
/// copy) for the pickles of the arrays opened with it.
#[derive(Default)]
struct StorageOptions {
    dict: Option<Py<PyDict>>,
    #[cfg(feature = "s3")]
    s3: chunkyard::S3Options,
}

impl StorageOptions {
    /// Checks and takes a mapping of option names to str, bool or number
    /// values; `None` (or an empty mapping) is no option. An unknown name
    /// is a `ValueError` listing the valid ones; in a build without S3
    /// any option is a `ValueError` saying how to get S3.
    fn parse(arg: Option<&Bound<'_, PyAny>>) -> PyResult<StorageOptions> {
        let Some(arg) = arg.filter(|a| !a.is_none()) else {
            return Ok(StorageOptions::default());
        };
        let py = arg.py();
        let dict = PyDict::new(py);
        dict.call_method1("update", (arg,)).map_err(|_| {
            PyTypeError::new_err(format!(
                "storage_options must be a dict of option names to values, got {}",
                arg.get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ))
        })?;
        if dict.is_empty() {
            return Ok(StorageOptions::default());
        }
        #[cfg(not(feature = "s3"))]
        return Err(PyValueError::new_err(
            "storage_options: this chunkyard was built without S3 support; install it with \
             pip install ./python --config-settings=build-args=\"--features s3\" \
             (docs/python.md, \"S3\")",
        ));
        #[cfg(feature = "s3")]
        {
            let mut s3 = chunkyard::S3Options::new();
            for (k, v) in dict.iter() {
                let key: String = k.extract().map_err(|_| {
                    PyTypeError::new_err(format!("storage_options keys must be str, got {k}"))
                })?;
                if !chunkyard::S3Options::KEYS.contains(&key.as_str()) {
                    // The library's error names the valid keys.
                    s3.set(&key, "").map_err(to_py)?;
                }
                let text = if v.is_instance_of::<PyBool>() {
                    v.extract::<bool>()?.to_string()
                } else if let Ok(t) = v.extract::<String>() {
                    t
                } else if v.is_instance_of::<pyo3::types::PyInt>()
                    || v.is_instance_of::<pyo3::types::PyFloat>()
                {
                    v.str()?.to_string()
                } else {
                    return Err(PyTypeError::new_err(format!(
                        "storage_options[{key:?}] must be a str, bool or number, got {}",
                        v.get_type().name()?
                    )));
                };
                s3.set(&key, &text).map_err(to_py)?;
            }
            Ok(StorageOptions {
                dict: Some(dict.unbind()),
                s3,
            })
        }
    }

    fn open(&self, opts: OpenOptions) -> OpenOptions {
        #[cfg(feature = "s3")]
        let opts = opts.s3(self.s3.clone());
        opts
    }

    fn create(&self, opts: ArrayOptions) -> ArrayOptions {
        #[cfg(feature = "s3")]
        let opts = opts.s3(self.s3.clone());
        opts
    }
}

/// `save_as` of an array or of a cast view: a new array at `path` of
/// `dt`, the source's shape, written chunk by chunk in parallel by the
/// library's `copy_selection` (casting as `View::save_as` does) with the
/// GIL released, flushed. As the Rust `save_as`: the copy uses the
/// source's cache unless given one, keeps its axis names and attributes,
/// and a Zarr copy keeps its fill value (cast) unless given one.
#[allow(clippy::too_many_arguments)] // save_as()'s keywords, one each
fn save_copy(
    py: Python<'_>,
    src: &PyArrayObj,
    dt: DType,
    path: PathBuf,
    chunks: Option<&Bound<'_, PyAny>>,
    codec: Option<&str>,
    fill_value: Option<&Bound<'_, PyAny>>,
    overwrite: bool,
    cache: Option<Py<PyCache>>,
    storage_options: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArrayObj> {
    let storage = StorageOptions::parse(storage_options)?;
    let h = src.handle()?;
    let cache = cache.unwrap_or_else(|| src.cache.clone_ref(py));
    let codec = match codec {
        None => Codec::None,
        Some(text) => text.parse::<Codec>().map_err(to_py)?,
    };
    let mut opts = storage
        .create(ArrayOptions::new(h.shape()))
        .overwrite(overwrite)
        .codec(codec)
        .cache(cache.get().cache.clone());
    if let Some(c) = chunks.filter(|c| !c.is_none()) {
        opts = opts.chunks(dims_arg(c, "chunks")?);
    }
    match fill_value.filter(|f| !f.is_none()) {
        Some(f) => {
            let np = py.import("numpy")?;
            let descr = np.call_method1("dtype", (dt.numpy_name(),))?;
            let bytes: Vec<u8> = np
                .call_method1("asarray", (f, descr))?
                .call_method1("reshape", (PyTuple::empty(py),))?
                .call_method0("tobytes")?
                .extract()?;
            opts = opts.fill_bytes(dt, bytes);
        }
        None if h.fill_value().iter().any(|&b| b != 0)
            && matches!(Format::from_path(&path), Ok(Format::Zarr)) =>
        {
            let mut fill = vec![0; dt.size()];
            chunkyard::cast_bytes(h.dtype(), h.fill_value(), dt, &mut fill);
            opts = opts.fill_bytes(dt, fill);
        }
        None => {}
    }
    if let Some(labels) = h.store().labels() {
        opts = opts.labels(labels);
    }
    let shown = path.display().to_string();
    // On the pool, interruptible by Ctrl-C (an interrupted copy leaves a
    // partial file behind, as an interrupted `chunkyard convert` does).
    let dst = work::interruptible(py, move |stop| {
        if same_file(h.path(), &path) {
            return Err(Error::invalid(format!(
                "{}: source and destination are the same file",
                path.display()
            )));
        }
        let dst = ArrayHandle::create(&path, dt, &opts)?;
        let all = ResolvedSelection::full(&h.shape());
        chunkyard::copy_selection_interruptible(&h, &all, &dst, &all, &|_| (), stop)?;
        dst.flush()?;
        Ok(dst)
    })?;
    let mut a = PyArrayObj::new(py, dst, false, cache, shown)?;
    a.storage_options = storage.dict;
    Ok(a)
}

fn same_file(src: Option<&Path>, dst: &Path) -> bool {
    match (src.map(Path::canonicalize), dst.canonicalize()) {
        (Some(Ok(s)), Ok(d)) => s == d,
        _ => false,
    }
}

/// `Array.astype(dtype)`: the array seen as another dtype.
#[pyclass(module = "chunkyard", name = "AsType", frozen)]
struct PyCastView {
    array: Py<PyArrayObj>,
    dt: DType,
    dtype: Py<PyArrayDescr>,
}

#[pymethods]
impl PyCastView {
    /// The dtype cast to.
    #[getter]
    fn dtype(&self, py: Python<'_>) -> Py<PyArrayDescr> {
        self.dtype.clone_ref(py)
    }

    /// The array's shape.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        self.array.get().shape(py)
    }

    /// The array's number of axes.
    #[getter]
    fn ndim(&self) -> PyResult<usize> {
        self.array.get().ndim()
    }

    fn __len__(&self) -> PyResult<usize> {
        self.array.get().__len__()
    }

    /// `a.astype(dt)[idx]`: `a[idx]` cast to `dt` by the library's cast
    /// (the one `save_as` uses), with the GIL released.
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let base = self.array.get();
        let h = base.handle()?;
        let sel = base.resolve(&h, key)?;
        let shape = usize_shape(&sel.out_shape())?;
        let raw = read_numpy(py, &h, &sel, &shape, false)?;
        let out = py
            .import("numpy")?
            .call_method1("empty", (PyTuple::new(py, &shape)?, self.dtype.bind(py)))?;
        {
            let src = as_byte_array(py, &raw)?;
            let dst = as_byte_array(py, &out)?;
            let ro = src.try_readonly().map_err(borrow_error)?;
            let mut rw = dst.try_readwrite().map_err(borrow_error)?;
            let from = ro
                .as_slice()
                .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
            let to = rw
                .as_slice_mut()
                .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
            let (sd, dd) = (h.dtype(), self.dt);
            py.detach(|| chunkyard::cast_bytes(sd, from, dd, to));
        }
        if is_scalar_index(key, &sel) {
            return out.get_item(PyTuple::empty(py));
        }
        Ok(out)
    }

    /// `np.asarray(a.astype(dt))`: the whole array, cast.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        slf: &Bound<'py, Self>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if copy == Some(false) {
            return Err(PyValueError::new_err(
                "a chunkyard array cannot be used without a copy (its data is on disk); \
                 pass copy=None or copy=True",
            ));
        }
        let whole = slf.as_any().get_item(slf.py().Ellipsis())?;
        match dtype {
            Some(d) if !d.is_none() => whole.call_method1("astype", (d,)),
            _ => Ok(whole),
        }
    }

    /// Writes the cast array to a new array at `path` (format from the
    /// extension: `.npy`, `.zarr`) and returns it open for reading and
    /// writing, flushed. `chunks` (default: about 16 MiB), `codec`
    /// (Zarr), `fill_value` (default: the source's, cast, for Zarr),
    /// `overwrite`, `cache` (default: the source's) as in `create`.
    /// Streams chunk by chunk in parallel within the cache budget.
    #[pyo3(signature = (path, chunks=None, codec=None, fill_value=None, overwrite=false, cache=None, storage_options=None))]
    #[allow(clippy::too_many_arguments)] // save_as()'s keywords, one each
    fn save_as(
        &self,
        py: Python<'_>,
        path: PathBuf,
        chunks: Option<&Bound<'_, PyAny>>,
        codec: Option<&str>,
        fill_value: Option<&Bound<'_, PyAny>>,
        overwrite: bool,
        cache: Option<Py<PyCache>>,
        storage_options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyArrayObj> {
        save_copy(
            py,
            self.array.get(),
            self.dt,
            path,
            chunks,
            codec,
            fill_value,
            overwrite,
            cache,
            storage_options,
        )
    }

    /// Pickled as its array (which reopens) and its dtype.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let astype = self.array.bind(py).getattr("astype")?;
        let args = PyTuple::new(py, [self.dt.numpy_name()])?;
        PyTuple::new(py, [astype, args.into_any()])
    }

    /// dask's name: the array's and the dtype cast to.
    fn __dask_tokenize__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let base = self.array.get().__dask_tokenize__(py)?;
        PyTuple::new(
            py,
            [
                "chunkyard.AsType".into_pyobject(py)?.into_any(),
                base.into_any(),
                self.dt.numpy_name().into_pyobject(py)?.into_any(),
            ],
        )
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<chunkyard.AsType {} of {}>",
            self.dt.numpy_name(),
            self.array.bind(py).get().__repr__()
        )
    }
}

/// `Array.iter_blocks()`: chunks in storage order, read ahead by a thread.
#[pyclass(module = "chunkyard", name = "BlockIterator", frozen)]
struct PyBlockIter {
    /// `None` once exhausted or failed.
    rx: Mutex<Option<Receiver<BlockMsg>>>,
    dtype: Py<PyArrayDescr>,
}

impl Drop for PyBlockIter {
    fn drop(&mut self) {
        // Closing the channel stops the reader at its next send. It is not
        // joined (its handle was dropped at the spawn): that would wait,
        // holding the GIL, for the read under way; the thread ends on its
        // own, its handle clone keeping the store open until then.
        self.rx.lock().take();
    }
}

#[pymethods]
impl PyBlockIter {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        // Taken out while waiting: `recv` runs without the GIL, and the
        // lock is never held across it.
        let Some(rx) = self.rx.lock().take() else {
            return Ok(None);
        };
        let (rx, got) = py.detach(move || {
            let got = rx.recv();
            (rx, got)
        });
        let (origin, extent, bytes) = match got {
            Err(_) => return Ok(None), // the reader is done
            Ok(Err(what)) => return Err(panic_error(what)),
            Ok(Ok(Err(e))) => return Err(to_py(e)),
            Ok(Ok(Ok(b))) => {
                *self.rx.lock() = Some(rx);
                b
            }
        };
        let shape = usize_shape(&extent)?;
        let out = py
            .import("numpy")?
            .call_method1("empty", (PyTuple::new(py, &shape)?, self.dtype.bind(py)))?;
        {
            let flat = as_byte_array(py, &out)?;
            let mut rw = flat.try_readwrite().map_err(borrow_error)?;
            rw.as_slice_mut()
                .map_err(|e| PyRuntimeError::new_err(e.to_string()))?
                .copy_from_slice(&bytes);
        }
        let slices = origin
            .iter()
            .zip(&extent)
            .map(|(&o, &n)| PySlice::new(py, o as isize, (o + n) as isize, 1))
            .collect::<Vec<_>>();
        Ok(Some(PyTuple::new(
            py,
            [PyTuple::new(py, slices)?.into_any(), out],
        )?))
    }
}

/// An array on disk (npy or Zarr), read and written with numpy indexing.
#[pyclass(module = "chunkyard", name = "Array", frozen)]
struct PyArrayObj {
    /// `None` once closed. Calls clone the handle out (an `Arc` clone) and
    /// never hold this lock while the GIL is released.
    handle: Mutex<Option<ArrayHandle>>,
    read_only: bool,
    /// The `Cache` object the array was given (or the global one's).
    cache: Py<PyCache>,
    dtype: Py<PyArrayDescr>,
    path: String,
    /// `repr(path)`, for `__repr__`.
    path_repr: String,
    /// Every write (`a[idx] = v`, `append`) is flushed, durable, before it
    /// returns: arrays unpickled in another process (dask's workers,
    /// multiprocessing) are made so, so that a task's writes survive the
    /// task.
    sync_writes: bool,
    /// Writes, appends and resizes through this object: part of
    /// `__dask_tokenize__`, so a token changes when the data may have.
    writes: AtomicU64,
    /// The `storage_options` it was opened with (a copy), carried by its
    /// pickles so that a worker reopens it the same way.
    storage_options: Option<Py<PyDict>>,
}

impl Drop for PyArrayObj {
    fn drop(&mut self) {
        // The last handle's drop flushes dirty chunks in parallel: on the
        // package's pool, not rayon's global one (which a forked child
        // does not have; see `work`).
        // The GIL is let go meanwhile: that flush may write a cache's
        // worth of chunks, and a thread waiting on the pool checks signals
        // with the GIL.
        if let Some(h) = self.handle.get_mut().take() {
            match work::pool() {
                // (Without a Python thread state, `try_attach` drops the closure
                // and so `h` here.)
                Ok(p) => {
                    Python::try_attach(|py| py.detach(|| p.install(move || drop(h))));
                }
                Err(_) => drop(h),
            }
        }
    }
}

impl PyArrayObj {
    fn new(
        py: Python<'_>,
        h: ArrayHandle,
        read_only: bool,
        cache: Py<PyCache>,
        path: String,
    ) -> PyResult<Self> {
        let np = py.import("numpy")?;
        let dtype = np
            .call_method1("dtype", (h.dtype().numpy_name(),))?
            .cast_into::<PyArrayDescr>()?
            .unbind();
        let path_repr = path.as_str().into_pyobject(py)?.repr()?.to_string();
        Ok(PyArrayObj {
            handle: Mutex::new(Some(h)),
            read_only,
            cache,
            dtype,
            path,
            path_repr,
            sync_writes: false,
            writes: AtomicU64::new(0),
            storage_options: None,
        })
    }

    /// After a write through this object (counted before it started, so
    /// that a failed or interrupted one counts too): flushed when
    /// `sync_writes`.
    fn wrote(&self, py: Python<'_>, h: &ArrayHandle) -> PyResult<()> {
        if self.sync_writes {
            work::on_pool(py, || h.flush())?;
        }
        Ok(())
    }

    /// The path as an absolute one (without resolving links): what a
    /// pickle carries to a process that may have another working
    /// directory.
    fn absolute_path(&self) -> PyResult<String> {
        if is_url(Path::new(&self.path)) {
            return Ok(self.path.clone());
        }
        std::path::absolute(&self.path)
            .map(|p| p.display().to_string())
            .map_err(|e| PyOSError::new_err(format!("{}: {e}", self.path)))
    }

    /// `a[key]` (`once`: `_read_once`'s read past the cache).
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        once: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let h = self.handle()?;
        if let Some(index) = point_in_bounds(key, &h.shape()) {
            return read_element(py, &h, &index, self.dtype.bind(py));
        }
        let sel = self.resolve(&h, key)?;
        let shape = usize_shape(&sel.out_shape())?;
        let arr = read_numpy(py, &h, &sel, &shape, once)?;
        if is_scalar_index(key, &sel) {
            // An element is a numpy scalar, as numpy and h5py return it.
            return arr.get_item(PyTuple::empty(py));
        }
        Ok(arr)
    }

    fn handle(&self) -> PyResult<ArrayHandle> {
        self.handle
            .lock()
            .clone()
            .ok_or_else(|| PyValueError::new_err("I/O operation on a closed chunkyard array"))
    }

    fn check_writable(&self) -> PyResult<()> {
        if self.read_only {
            return Err(UnsupportedOperation::new_err(format!(
                "{}: the array is open read-only (mode='r'); open it with mode='r+' to write",
                self.path
            )));
        }
        Ok(())
    }

    /// A reduction through the library's parallel engine, with the GIL
    /// released: over everything (`axis=None`) to a numpy scalar, or along
    /// one axis to a numpy array (a scalar for a 1-d array, as numpy).
    fn reduce_py<'py>(
        &self,
        py: Python<'py>,
        op: Reduction,
        axis: Option<&Bound<'py, PyAny>>,
        keepdims: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let r = self.reduce_raw(py, op, axis)?;
        if !keepdims {
            return Ok(r);
        }
        // numpy's keepdims: the reduced axes stay, with length 1.
        let np = py.import("numpy")?;
        let ndim = self.handle()?.ndim();
        let kept = match axis.filter(|a| !a.is_none()) {
            None => vec![1usize; ndim],
            Some(a) => {
                let k = normalize_axis(py, a, ndim)?;
                let mut shape: Vec<usize> =
                    self.handle()?.shape().iter().map(|&n| n as usize).collect();
                shape[k] = 1;
                shape
            }
        };
        np.call_method1("asarray", (r,))?
            .call_method1("reshape", (PyTuple::new(py, kept)?,))
    }

    fn reduce_raw<'py>(
        &self,
        py: Python<'py>,
        op: Reduction,
        axis: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let h = self.handle()?;
        let all = ResolvedSelection::full(&h.shape());
        let np = py.import("numpy")?;
        let rdt = op.result_dtype(h.dtype());
        let rdtype = np.call_method1("dtype", (rdt.numpy_name(),))?;
        let axis = match axis {
            Some(a) if !a.is_none() => Some(normalize_axis(py, a, h.ndim())?),
            _ => None,
        };
        let Some(axis) = axis else {
            let v = work::interruptible(py, move |stop| {
                chunkyard::reduce_interruptible(&h, &all, op, &|_| (), stop)
            })?;
            let scalar = rdtype.getattr("type")?;
            return match v {
                Scalar::Bool(b) => scalar.call1((b,)),
                // Exact in 128 bits; numpy's int64/uint64 result wraps, and
                // so does this one (two's complement: the low 64 bits).
                Scalar::Int(i) if rdt == DType::U64 => scalar.call1((i as u64,)),
                // int64 sums wrap the same way; min/max of a narrower
                // integer type are in range.
                Scalar::Int(i) => scalar.call1((i as i64,)),
                Scalar::Float(x) => scalar.call1((x,)),
            };
        };
        let r = work::interruptible(py, move |stop| {
            chunkyard::reduce_axis_interruptible(&h, &all, axis, op, &|_| (), stop)
        })?;
        let shape = usize_shape(&r.shape)?;
        let rdtype = np.call_method1("dtype", (r.dtype.numpy_name(),))?;
        let out = np.call_method1("empty", (PyTuple::new(py, &shape)?, &rdtype))?;
        {
            let flat = as_byte_array(py, &out)?;
            let mut rw = flat.try_readwrite().map_err(borrow_error)?;
            rw.as_slice_mut()
                .map_err(|e| PyRuntimeError::new_err(e.to_string()))?
                .copy_from_slice(&r.data);
        }
        if shape.is_empty() {
            // numpy reduces a 1-d array along its axis to a scalar.
            return out.get_item(PyTuple::empty(py));
        }
        Ok(out)
    }

    fn resolve(&self, h: &ArrayHandle, key: &Bound<'_, PyAny>) -> PyResult<ResolvedSelection> {
        let sel = parse_index(key)?;
        sel.resolve(&h.shape())
            .map_err(|e| selection_error(&e, e.to_string()))
    }
}

#[pymethods]
impl PyArrayObj {
    /// The shape, a tuple of ints.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.handle()?.shape())
    }

    /// The element type, a `numpy.dtype` (native byte order).
    #[getter]
    fn dtype(&self, py: Python<'_>) -> Py<PyArrayDescr> {
        self.dtype.clone_ref(py)
    }

    /// Number of axes.
    #[getter]
    fn ndim(&self) -> PyResult<usize> {
        Ok(self.handle()?.ndim())
    }

    /// The chunk shape, a tuple of ints.
    #[getter]
    fn chunks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.handle()?.chunks())
    }

    /// Number of elements (numpy's `size`).
    #[getter]
    fn size(&self) -> PyResult<u64> {
        Ok(self.handle()?.len())
    }

    /// Bytes of all elements (numpy's `nbytes`): the logical size, not
    /// what the file holds or what is in memory.
    #[getter]
    fn nbytes(&self) -> PyResult<u64> {
        Ok(self.handle()?.nbytes())
    }

    /// What never-written elements read as: a numpy scalar of the array's
    /// dtype (0 for `.npy` files, which have no fill value).
    #[getter]
    fn fill_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let h = self.handle()?;
        let bytes = PyBytes::new(py, h.fill_value());
        py.import("numpy")?
            .call_method1("frombuffer", (bytes, self.dtype.clone_ref(py)))?
            .get_item(0)
    }

    /// The array's attributes, a mapping (`chunkyard.Attributes`) of JSON
    /// values: Zarr's (v3 `zarr.json`, v2 `.zattrs`, as read at open or
    /// last changed here), an HDF5 dataset's numbers, booleans and
    /// strings; empty for `.npy`. Item assignment and deletion change them
    /// in the file (`_update_attrs`).
    #[getter]
    fn attrs<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let h = slf.borrow().handle()?;
        let text = py
            .detach(|| guarded(|| Ok(h.store().labels().map(|l| l.attributes))))?
            .unwrap_or_else(|| "{}".into());
        let dict = py.import("json")?.call_method1("loads", (text,))?;
        py.import("chunkyard")?
            .getattr("Attributes")?
            .call1((dict, slf))
    }

    /// Sets the attributes of `set` (a JSON object's text, checked and
    /// made by `chunkyard.Attributes`) and removes the keys of `remove`
    /// (absent ones are no error), durably, with the GIL released; returns
    /// the attributes afterwards as a JSON object's text.
    fn _update_attrs(&self, py: Python<'_>, set: &str, remove: Vec<String>) -> PyResult<String> {
        self.check_writable()?;
        let h = self.handle()?;
        let set: chunkyard::Attrs = serde_json::from_str(set)
            .map_err(|e| PyValueError::new_err(format!("attributes: {e}")))?;
        py.detach(|| {
            guarded(|| {
                h.update_attrs(|attrs| {
                    for k in &remove {
                        attrs.remove(k);
                    }
                    attrs.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
                    Ok(())
                })?;
                Ok(h.store()
                    .labels()
                    .map(|l| l.attributes)
                    .unwrap_or_else(|| "{}".into()))
            })
        })
    }

    /// One name (or `None`) per axis, as a tuple, or `None` when the array
    /// names none (always for `.npy`): Zarr v3's `dimension_names`, HDF5's
    /// `DIMENSION_LABELS` or attached dimension scales' names.
    #[getter]
    fn dimension_names<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let h = self.handle()?;
        let names = py.detach(|| guarded(|| Ok(h.dimension_names())))?;
        names.map(|n| PyTuple::new(py, n)).transpose()
    }

    /// The path the array was opened or created at.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Whether the array was opened read-only (`mode="r"`).
    #[getter]
    fn read_only(&self) -> bool {
        self.read_only
    }

    /// Whether this array's writes merge with other processes' writes to
    /// the same chunk (writable Zarr, on disk or on object storage: a
    /// chunk is written back conditionally on the version read, or under
    /// a lock after a fresh read), so that writers in several processes
    /// may share a chunk and lose nothing. `chunkyard.dask.store` accepts
    /// blocks that cut chunks when it is true.
    #[getter]
    fn _merges_writes(&self) -> PyResult<bool> {
        Ok(self.handle()?.store().merges_writes())
    }

    /// The `Cache` holding the array's chunks: the one given to
    /// `create`/`open`, or `chunkyard.global_cache()`.
    #[getter]
    fn cache(&self, py: Python<'_>) -> Py<PyCache> {
        self.cache.clone_ref(py)
    }

    /// numpy's array protocol: the whole array read into a new numpy array
    /// (`np.asarray(a)`), cast to `dtype` if given. `copy=False` is refused
    /// with `ValueError`, as h5py and zarr do: the data is on disk, so
    /// there is no view to give.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        slf: &Bound<'py, Self>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if copy == Some(false) {
            return Err(PyValueError::new_err(
                "a chunkyard array cannot be used without a copy (its data is on disk); \
                 pass copy=None or copy=True",
            ));
        }
        let whole = slf.get_item(slf.py().Ellipsis())?;
        match dtype {
            Some(d) if !d.is_none() => whole.call_method1("astype", (d,)),
            _ => Ok(whole),
        }
    }

    fn __len__(&self) -> PyResult<usize> {
        let shape = self.handle()?.shape();
        match shape.first() {
            Some(&n) => usize::try_from(n).map_err(|_| PyValueError::new_err("length too large")),
            None => Err(PyTypeError::new_err("len() of a 0-d array")),
        }
    }

    fn __repr__(&self) -> String {
        match self.handle.lock().as_ref() {
            None => format!("<closed chunkyard.Array {}>", self.path_repr),
            Some(h) => {
                let tuple = |v: &[u64]| match v {
                    [one] => format!("({one},)"),
                    _ => format!(
                        "({})",
                        v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
                    ),
                };
                format!(
                    "<chunkyard.Array {} shape={} dtype={} chunks={} mode='{}'>",
                    self.path_repr,
                    tuple(&h.shape()),
                    h.dtype().numpy_name(),
                    tuple(h.chunks()),
                    if self.read_only { "r" } else { "r+" },
                )
            }
        }
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, key, false)
    }

    /// `a[key]` for a read that will not come back (a dask task's block):
    /// chunks in the cache are copied from it, the others are read past
    /// it, a whole chunk straight into the result, as reductions read
    /// (`ArrayHandle::read_bytes_streaming`). The same values as
    /// `a[key]`; the cache is left as it was. Used by `chunkyard.dask`
    /// and the xarray backend (`_Reopen`).
    fn _read_once<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, key, true)
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.check_writable()?;
        let h = self.handle()?;
        let sel = self.resolve(&h, key)?;
        let np = py.import("numpy")?;
        let dtype = self.dtype.bind(py);
        let shape = usize_shape(&sel.out_shape())?;
        let given = np.call_method1("asarray", (value,))?;
        let given_ndim: usize = given.getattr("ndim")?.extract()?;
        // numpy does the conversion, so `a[idx] = v` casts and broadcasts
        // exactly as numpy's own assignment: into a scratch array of the
        // array's dtype (one element for a scalar, the selection's shape
        // otherwise), unless `value` already is that array.
        let (src, scalar) = if given_ndim == 0 {
            let one = np.call_method1("empty", (PyTuple::empty(py), dtype))?;
            one.set_item(PyTuple::empty(py), value)?;
            (one, true)
        } else {
            let ready = given.is(value)
                && given.getattr("dtype")?.eq(dtype)?
                && given.getattr("shape")?.extract::<Vec<usize>>()? == shape
                && given
                    .getattr("flags")?
                    .getattr("c_contiguous")?
                    .is_truthy()?;
            if ready {
                (given, false)
            } else {
                let tmp = np.call_method1("empty", (PyTuple::new(py, &shape)?, dtype))?;
                tmp.set_item(py.Ellipsis(), value)?;
                (tmp, false)
            }
        };
        let flat = as_byte_array(py, &src)?;
        let ro = flat.try_readonly().map_err(borrow_error)?;
        let bytes = ro
            .as_slice()
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        // The GIL is released while the library copies out of `bytes`: a
        // caller's array written by another Python thread meanwhile gives
        // a torn copy, as it would in h5py; never a crash.
        self.writes.fetch_add(1, Relaxed);
        write_pieces(py, &h, &sel, bytes, scalar)?;
        self.wrote(py, &h)
    }

    /// Changes the shape. chunkyard grows and shrinks the first axis only:
    /// `resize(n)` sets its length, `resize((n, ...))` or `resize(n, ...)`
    /// (zarr's spellings) name the whole shape, whose other axes must stay
    /// as they are. New rows read as the fill value; the new shape is
    /// durable on return.
    #[pyo3(signature = (*shape))]
    fn resize(&self, py: Python<'_>, shape: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.check_writable()?;
        let h = self.handle()?;
        let old = h.shape();
        // (the numbers, whether they name the whole shape)
        let (given, whole): (Vec<i64>, bool) = match shape.len() {
            0 => return Err(PyTypeError::new_err("resize() needs the new shape")),
            1 => {
                let one = shape.get_item(0)?;
                match one.extract::<i64>() {
                    Ok(n) => (vec![n], false),
                    Err(_) => one.extract::<Vec<i64>>().map(|v| (v, true)).map_err(|_| {
                        PyTypeError::new_err(format!(
                            "resize() takes a shape (a tuple of ints) or a length, not {}",
                            one.get_type()
                                .name()
                                .map(|n| n.to_string())
                                .unwrap_or_default()
                        ))
                    })?,
                }
            }
            _ => shape
                .extract::<Vec<i64>>()
                .map(|v| (v, true))
                .map_err(|_| {
                    PyTypeError::new_err("resize() takes a shape (a tuple of ints) or a length")
                })?,
        };
        if old.is_empty() {
            return Err(PyValueError::new_err("a 0-d array cannot be resized"));
        }
        if given.is_empty() {
            return Err(PyValueError::new_err("resize() needs a non-empty shape"));
        }
        if given.iter().any(|&n| n < 0) {
            return Err(PyValueError::new_err(format!(
                "a shape cannot be negative, got {given:?}"
            )));
        }
        let len = given[0] as u64;
        let trailing_kept = !whole
            || (given.len() == old.len()
                && given[1..]
                    .iter()
                    .zip(&old[1..])
                    .all(|(&g, &o)| g as u64 == o));
        if !trailing_kept {
            return Err(PyValueError::new_err(format!(
                "cannot resize an array of shape {old:?} to {given:?}: chunkyard changes the \
                 first axis only (the new shape must be ({len}, {}))",
                old[1..]
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        self.writes.fetch_add(1, Relaxed);
        py.detach(|| guarded(|| h.resize(len)))
    }

    /// Appends `data` along the first axis and returns the new shape (as
    /// zarr's `append`). `data` has the array's axes after the first, with
    /// any first length, or is one row (one axis less); it is cast to the
    /// array's dtype as numpy's assignment casts. `axis` must be 0 (the
    /// axis chunkyard can grow). Appends from several threads get
    /// disjoint rows.
    #[pyo3(signature = (data, axis=0))]
    fn append<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        axis: i64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        self.check_writable()?;
        let h = self.handle()?;
        let shape = h.shape();
        let ndim = shape.len() as i64;
        if ndim == 0 {
            return Err(PyValueError::new_err(
                "a 0-d array has no axis to append along",
            ));
        }
        if axis != 0 && axis != -ndim {
            return Err(PyValueError::new_err(format!(
                "chunkyard appends along axis 0 only (the axis it can grow), got axis={axis}"
            )));
        }
        let np = py.import("numpy")?;
        let given = np.call_method1("asarray", (data,))?;
        let given_shape: Vec<usize> = given.getattr("shape")?.extract()?;
        let trailing = &shape[1..];
        let rows = if given_shape.len() == shape.len()
            && given_shape[1..]
                .iter()
                .zip(trailing)
                .all(|(&g, &t)| g as u64 == t)
        {
            given_shape[0] as u64
        } else if given_shape.len() + 1 == shape.len()
            && given_shape
                .iter()
                .zip(trailing)
                .all(|(&g, &t)| g as u64 == t)
        {
            1
        } else {
            return Err(PyValueError::new_err(format!(
                "cannot append data of shape {given_shape:?} to an array of shape {shape:?}: \
                 the data needs the array's trailing axes {trailing:?} with any first length, \
                 or is one row of shape {trailing:?}"
            )));
        };
        let src = native_contiguous(py, &given, self.dtype.bind(py))?;
        let flat = as_byte_array(py, &src)?;
        let ro = flat.try_readonly().map_err(borrow_error)?;
        let bytes = ro
            .as_slice()
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        self.writes.fetch_add(1, Relaxed);
        let new_shape = py.detach(|| {
            guarded(|| {
                let start = h.reserve_rows(rows)?;
                let mut axes = ResolvedSelection::full(&h.shape()).axes().to_vec();
                axes[0] = AxisSel::Range {
                    start,
                    step: 1,
                    count: rows,
                };
                h.write_bytes(&ResolvedSelection::from_axes(axes), bytes)?;
                Ok(h.shape())
            })
        })?;
        self.wrote(py, &h)?;
        PyTuple::new(py, new_shape)
    }

    /// How much memory the array costs, a dict: `logical_bytes` (numpy's
    /// nbytes), `resident_bytes` (its chunks in the cache),
    /// `dirty_bytes` (of those, not yet written), `overhead_bytes`
    /// (bookkeeping), `stored_bytes` (on disk; None if unknown),
    /// `cache_budget_bytes` and `cache_resident_bytes` (the shared cache).
    fn memory_report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let h = self.handle()?;
        let r = py.detach(|| h.memory_report());
        let d = PyDict::new(py);
        d.set_item("logical_bytes", r.logical_bytes)?;
        d.set_item("resident_bytes", r.resident_bytes)?;
        d.set_item("dirty_bytes", r.dirty_bytes)?;
        d.set_item("overhead_bytes", r.overhead_bytes)?;
        d.set_item("stored_bytes", r.stored_bytes)?;
        d.set_item("cache_budget_bytes", r.cache_budget_bytes)?;
        d.set_item("cache_resident_bytes", r.cache_resident_bytes)?;
        Ok(d)
    }

    /// Sum (NaN propagates). Integers and bools give an `int64` (unsigned:
    /// `uint64`) that wraps as numpy's; floats a `float64`, summed in
    /// `float64`. `axis`: None (all elements) or an int (negative counts
    /// from the end) giving a numpy array without that axis; `keepdims`
    /// keeps the reduced axes with length 1, as numpy.
    #[pyo3(signature = (axis=None, keepdims=false))]
    fn sum<'py>(
        &self,
        py: Python<'py>,
        axis: Option<&Bound<'py, PyAny>>,
        keepdims: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.reduce_py(py, Reduction::Sum, axis, keepdims)
    }

    /// Sum skipping NaN (0 for none), as `numpy.nansum`.
    #[pyo3(signature = (axis=None, keepdims=false))]
    fn nansum<'py>(
        &self,
        py: Python<'py>,
        axis: Option<&Bound<'py, PyAny>>,
        keepdims: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.reduce_py(py, Reduction::NanSum, axis, keepdims)
    }

    /// Arithmetic mean, `float64` (NaN propagates; NaN for no elements).
    #[pyo3(signature = (axis=None, keepdims=false))]
    fn mean<'py>(
        &self,
        py: Python<'py>,
        axis: Option<&Bound<'py, PyAny>>,
        keepdims: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.reduce_py(py, Reduction::Mean, axis, keepdims)
    }

    /// Mean of the elements that are not NaN, as `numpy.nanmean`.
    #[pyo3(signature = (axis=None, keepdims=false))]
    fn nanmean<'py>(
        &self,
        py: Python<'py>,
        axis: Option<&Bound<'py, PyAny>>,
        keepdims: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.reduce_py(py, Reduction::NanMean, axis, keepdims)
    }

    /// Smallest element, of the array's dtype (NaN propagates); no
    /// elements is a `ValueError`, as in numpy.
    #[pyo3(signature = (axis=None, keepdims=false))]
    fn min<'py>(
        &self,
        py: Python<'py>,
        axis: Option<&Bound<'py, PyAny>>,
        keepdims: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.reduce_py(py, Reduction::Min, axis, keepdims)
    }

    /// Smallest element that is not NaN (NaN if all are), as `numpy.nanmin`.
    #[pyo3(signature = (axis=None, keepdims=false))]
    fn nanmin<'py>(
        &self,
        py: Python<'py>,
        axis: Option<&Bound<'py, PyAny>>,
        keepdims: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.reduce_py(py, Reduction::NanMin, axis, keepdims)
    }

    /// Largest element, of the array's dtype (NaN propagates).
    #[pyo3(signature = (axis=None, keepdims=false))]
    fn max<'py>(
        &self,
        py: Python<'py>,
        axis: Option<&Bound<'py, PyAny>>,
        keepdims: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.reduce_py(py, Reduction::Max, axis, keepdims)
    }

    /// Largest element that is not NaN (NaN if all are), as `numpy.nanmax`.
    #[pyo3(signature = (axis=None, keepdims=false))]
    fn nanmax<'py>(
        &self,
        py: Python<'py>,
        axis: Option<&Bound<'py, PyAny>>,
        keepdims: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.reduce_py(py, Reduction::NanMax, axis, keepdims)
    }

    /// Number of elements that are not NaN, `int64` (numpy:
    /// `np.count_nonzero(~np.isnan(x), axis=axis)`).
    #[pyo3(signature = (axis=None, keepdims=false))]
    fn count<'py>(
        &self,
        py: Python<'py>,
        axis: Option<&Bound<'py, PyAny>>,
        keepdims: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.reduce_py(py, Reduction::Count, axis, keepdims)
    }

    /// A view of the array cast to `dtype` (numpy's `astype` rules, NaN to
    /// an integer gives 0): index it, `np.asarray` it, or `save_as` it to a
    /// new file. No I/O until then.
    fn astype(slf: &Bound<'_, Self>, dtype: &Bound<'_, PyAny>) -> PyResult<PyCastView> {
        let py = slf.py();
        slf.get().handle()?;
        let (dt, descr) = numpy_dtype(py, dtype)?;
        Ok(PyCastView {
            array: slf.clone().unbind(),
            dt,
            dtype: descr,
        })
    }

    /// Writes a copy of the array to `path` (format from the extension)
    /// and returns it open for reading and writing (see `AsType.save_as`).
    #[pyo3(signature = (path, chunks=None, codec=None, fill_value=None, overwrite=false, cache=None, storage_options=None))]
    #[allow(clippy::too_many_arguments)] // save_as()'s keywords, one each
    fn save_as(
        &self,
        py: Python<'_>,
        path: PathBuf,
        chunks: Option<&Bound<'_, PyAny>>,
        codec: Option<&str>,
        fill_value: Option<&Bound<'_, PyAny>>,
        overwrite: bool,
        cache: Option<Py<PyCache>>,
        storage_options: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyArrayObj> {
        let dt = self.handle()?.dtype();
        save_copy(
            py,
            self,
            dt,
            path,
            chunks,
            codec,
            fill_value,
            overwrite,
            cache,
            storage_options,
        )
    }

    /// Iterates over the array's chunks in storage order (row-major over
    /// the chunk grid), yielding `(selection, block)`: a tuple of slices
    /// and the numpy array `a[selection]`. A background thread reads up to
    /// two blocks ahead with the GIL released, so work on one block
    /// overlaps the reading of the next; blocks bypass the cache.
    fn iter_blocks(&self, py: Python<'_>) -> PyResult<PyBlockIter> {
        let h = self.handle()?;
        let grid = ChunkGrid::new(&h.shape(), h.chunks(), h.dtype().size()).map_err(to_py)?;
        let (tx, rx) = sync_channel::<BlockMsg>(2);
        // Builder, not thread::spawn: a thread the OS refuses is an
        // OSError, not a panic.
        let spawned = std::thread::Builder::new()
            .name("chunkyard-blocks".into())
            .spawn(move || {
                for coord in grid.chunk_coords() {
                    let origin = grid.chunk_origin(&coord).to_vec();
                    let extent = grid.chunk_extent(&coord).to_vec();
                    let block = read_block(&h, &origin, &extent);
                    let failed = !matches!(block, Ok(Ok(_)));
                    if tx.send(block).is_err() || failed {
                        return;
                    }
                }
            });
        spawned.map_err(|e| PyOSError::new_err(format!("cannot start the block reader: {e}")))?;
        Ok(PyBlockIter {
            rx: Mutex::new(Some(rx)),
            dtype: self.dtype.clone_ref(py),
        })
    }

    /// Pickling reopens: the array is flushed (if writable) and pickled as
    /// its absolute path, mode, chunk shape and storage options; unpickling opens it again in the
    /// process's global cache (a `Cache` is not carried), with every write
    /// there durable on return (`sync_writes`), so that a dask task's
    /// writes survive the task.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let h = self.handle()?;
        if !self.read_only {
            work::on_pool(py, || h.flush())?;
        }
        let reopen = py.import("chunkyard")?.getattr("_unpickle")?;
        let mode = if self.read_only { "r" } else { "r+" };
        // The chunk shape travels too: a `.npy` file stores none, and
        // processes that disagree on it would each rewrite whole chunks of
        // their own over the others' blocks.
        // The storage options travel too, secrets included (docs/s3.md):
        // a worker must reach the same server the same way.
        let options = self
            .storage_options
            .as_ref()
            .map(|d| d.bind(py).copy())
            .transpose()?;
        let args = (
            self.absolute_path()?,
            mode,
            PyTuple::new(py, h.chunks())?,
            options,
        );
        PyTuple::new(py, [reopen, args.into_pyobject(py)?.into_any()])
    }

    /// dask's name for the array, without pickling it: the absolute path,
    /// the mode, shape, dtype and chunks, the file's modification time and
    /// size (for a Zarr directory also its metadata file's), and the count
    /// of writes through this object. Writes through another object or
    /// process that do not change those file times (a Zarr chunk
    /// rewritten in place) are not seen.
    fn __dask_tokenize__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let h = self.handle()?;
        let path = self.absolute_path()?;
        let stamp = |p: &Path| -> (i128, u64) {
            std::fs::metadata(p).map_or((0, 0), |m| {
                let t = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as i128);
                (t, m.len())
            })
        };
        let root = on_disk(Path::new(&path));
        let root = root.as_path();
        let mut stamps = vec![stamp(root)];
        for meta in ["zarr.json", ".zarray"] {
            if root.join(meta).exists() {
                stamps.push(stamp(&root.join(meta)));
            }
        }
        let items: Vec<Bound<'py, PyAny>> = vec![
            "chunkyard.Array".into_pyobject(py)?.into_any(),
            path.into_pyobject(py)?.into_any(),
            self.read_only.into_pyobject(py)?.to_owned().into_any(),
            PyTuple::new(py, h.shape())?.into_any(),
            h.dtype().numpy_name().into_pyobject(py)?.into_any(),
            PyTuple::new(py, h.chunks())?.into_any(),
            stamps.into_pyobject(py)?.into_any(),
            self.writes.load(Relaxed).into_pyobject(py)?.into_any(),
            // One URL on two servers is two arrays. Only the options that
            // say where the data is, not the credentials.
            match &self.storage_options {
                Some(d) => {
                    let d = d.bind(py);
                    PyTuple::new(py, [d.get_item("endpoint_url")?, d.get_item("region")?])?
                        .into_any()
                }
                None => py.None().into_bound(py),
            },
        ];
        PyTuple::new(py, items)
    }

    /// Whether every write is flushed before it returns (true for an array
    /// unpickled from another process).
    #[getter]
    fn sync_writes(&self) -> bool {
        self.sync_writes
    }

    /// Writes every dirty chunk to disk and makes it durable: when this
    /// returns, the writes before it survive a crash.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let h = self.handle()?;
        if self.read_only {
            return Ok(());
        }
        work::on_pool(py, || h.flush())
    }

    /// Flushes (read-write arrays) and closes; later calls raise
    /// `ValueError`. Closing twice is allowed.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(h) = self.handle.lock().take() else {
            return Ok(());
        };
        if self.read_only {
            return Ok(());
        }
        work::on_pool(py, move || h.flush())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }
}

/// `create` of `chunkyard/__init__.py`, after it normalised the arguments:
/// `dtype` is a numpy type name (`float32`), `fill` native-order bytes.
#[pyfunction]
#[pyo3(signature = (path, shape, dtype, chunks, fill, codec, overwrite, cache, attrs=None, dimension_names=None, shards=None, storage_options=None))]
#[allow(clippy::too_many_arguments)] // create()'s keywords, one each
fn _create(
    py: Python<'_>,
    path: PathBuf,
    shape: Vec<u64>,
    dtype: &str,
    chunks: Option<Vec<u64>>,
    fill: Option<Vec<u8>>,
    codec: Option<&str>,
    overwrite: bool,
    cache: Option<Py<PyCache>>,
    attrs: Option<String>,
    dimension_names: Option<Vec<Option<String>>>,
    shards: Option<Vec<u64>>,
    storage_options: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArrayObj> {
    check_url(&path)?;
    let storage = StorageOptions::parse(storage_options)?;
    let dt = dtype_named(dtype)?;
    let cache = cache_arg(py, cache)?;
    let codec = match codec {
        None => Codec::None,
        Some(text) => text.parse::<Codec>().map_err(to_py)?,
    };
    let mut opts = storage
        .create(ArrayOptions::new(&shape))
        .overwrite(overwrite)
        .codec(codec)
        .cache(cache.get().cache.clone());
    if let Some(c) = chunks {
        opts = opts.chunks(c);
    }
    if let Some(f) = fill {
        opts = opts.fill_bytes(dt, f);
    }
    if let Some(s) = shards {
        opts = opts.shards(s);
    }
    if attrs.is_some() || dimension_names.is_some() {
        // `attrs` is a JSON object's text (chunkyard/__init__.py made it
        // with json.dumps of a dict).
        let labels = chunkyard::store::Labels {
            dimension_names,
            attributes: attrs.unwrap_or_else(|| "{}".into()),
            dropped: Vec::new(),
        };
        // A format that cannot hold them (`.npy`, HDF5 for nested values)
        // is an error here, not a silent loss; an unknown extension is
        // left to `create`'s own error.
        if let Ok(format) = Format::from_path(&path) {
            let dropped = chunkyard::dropped_by(format, &labels);
            if !dropped.is_empty() {
                return Err(PyValueError::new_err(format!(
                    "{}: cannot store {}",
                    path.display(),
                    dropped.join("; ")
                )));
            }
        }
        opts = opts.labels(labels);
    }
    let shown = path.display().to_string();
    let h = py.detach(|| guarded(|| ArrayHandle::create(&path, dt, &opts)))?;
    let mut a = PyArrayObj::new(py, h, false, cache, shown)?;
    a.storage_options = storage.dict;
    Ok(a)
}

/// The library's dtype of a numpy type name (`float32`).
fn dtype_named(name: &str) -> PyResult<DType> {
    DType::ALL
        .into_iter()
        .find(|d| d.numpy_name() == name)
        .ok_or_else(|| PyValueError::new_err(format!("unsupported dtype {name:?}")))
}

/// `open` of `chunkyard/__init__.py`.
#[pyfunction]
#[pyo3(signature = (path, read_only, cache, sync_writes=false, chunks=None, storage_options=None))]
fn _open(
    py: Python<'_>,
    path: PathBuf,
    read_only: bool,
    cache: Option<Py<PyCache>>,
    sync_writes: bool,
    chunks: Option<Vec<u64>>,
    storage_options: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyArrayObj> {
    let shown = path.display().to_string();
    check_url(&path)?;
    let storage = StorageOptions::parse(storage_options)?;
    if !is_url(&path) && !on_disk(&path).exists() {
        // Format::from_path looks at a directory's metadata before the
        // backend opens anything: say "not found" for a missing path, not
        // "cannot tell the format".
        return Err(PyFileNotFoundError::new_err((
            2,
            "No such file or directory",
            shown,
        )));
    }
    let cache = cache_arg(py, cache)?;
    let mut opts = storage
        .open(OpenOptions::new())
        .read_only(read_only)
        .cache(cache.get().cache.clone());
    // Only a `.npy` file takes a chunk shape (it stores none); the others
    // keep the one they store.
    if let Some(c) = chunks
        && matches!(Format::from_path(&path), Ok(Format::Npy))
    {
        opts = opts.chunks(c);
    }
    let h = py.detach(|| guarded(|| ArrayHandle::open(&path, &opts)))?;
    let mut a = PyArrayObj::new(py, h, read_only, cache, shown)?;
    a.sync_writes = sync_writes && !read_only;
    a.storage_options = storage.dict;
    Ok(a)
}

/// Whether `path` is an object storage URL (`s3://bucket/prefix`), which
/// has no local file to look at (or make absolute): the library opens it,
/// or says to rebuild with the `s3` feature.
fn is_url(path: &Path) -> bool {
    path.to_str().is_some_and(|s| s.starts_with("s3://"))
}

/// Refuses a URL in a build without the `s3` feature, saying how to get
/// one from pip (the library's message names cargo's flag).
fn check_url(path: &Path) -> PyResult<()> {
    if is_url(path) && !cfg!(feature = "s3") {
        return Err(PyValueError::new_err(format!(
            "{}: this chunkyard was built without S3 support; install it with \
             pip install ./python --config-settings=build-args=\"--features s3\" \
             (docs/python.md, \"S3\")",
            path.display()
        )));
    }
    Ok(())
}

/// The file or directory an array path names: the file of an HDF5
/// `file.h5:/dataset` path, else the path itself.
fn on_disk(path: &Path) -> PathBuf {
    chunkyard::split_hdf5_path(path).map_or_else(|| path.to_path_buf(), |(file, _)| file)
}

/// Panics inside [`guarded`]: lets the tests check that a panic in the
/// library arrives as `RuntimeError`, not as pyo3's `PanicException`.
#[pyfunction]
fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    py.detach(|| guarded(|| -> chunkyard::Result<()> { panic!("a panic for the tests") }))
}

/// Raises the Python exception of one library error kind: lets the tests
/// check the mapping of kinds they cannot provoke through a file (a store
/// failure, a poisoned array, an errno only a non-root user gets).
#[pyfunction]
fn _raise_for_tests(py: Python<'_>, kind: &str) -> PyResult<()> {
    let path = std::path::PathBuf::from("some/file.npy");
    let errno = |code| Error::io(&path, std::io::Error::from_raw_os_error(code));
    let e = match kind {
        "enoent" => errno(2),
        "eacces" => errno(13),
        "eexist" => errno(17),
        "eisdir" => errno(21),
        "eio" => errno(5),
        "enospc" => errno(28),
        "kind_permission" => Error::io(
            &path,
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "made up"),
        ),
        "kind_eof" => Error::io(
            &path,
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "made up"),
        ),
        "format" => Error::format(&path, "not a .npy file"),
        "store" => Error::Store {
            backend: "zarr",
            message: "the store failed".into(),
        },
        "poisoned" => Error::Poisoned("an earlier write-back failed".into()),
        "dtype" => Error::DTypeMismatch {
            expected: DType::F32,
            actual: DType::I16,
        },
        "shape" => Error::ShapeMismatch {
            message: "[2, 3] vs [3, 2]".into(),
        },
        "invalid" => Error::invalid("a bad option"),
        "unsupported" => Error::Unsupported("a feature".into()),
        other => {
            return Err(PyValueError::new_err(format!("unknown kind {other:?}")));
        }
    };
    py.detach(|| guarded(|| -> chunkyard::Result<()> { Err(e) }))
}

#[pymodule]
fn _chunkyard(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyArrayObj>()?;
    m.add_class::<PyCache>()?;
    m.add_class::<PyCastView>()?;
    m.add_class::<PyBlockIter>()?;
    m.add("_global_cache", global_cache(m.py())?)?;
    // Whether this build reads and writes HDF5 (the `hdf5` feature).
    m.add("_has_hdf5", cfg!(feature = "hdf5"))?;
    // Whether this build opens `s3://` URLs (the `s3` feature).
    m.add("_has_s3", cfg!(feature = "s3"))?;
    m.add_function(wrap_pyfunction!(_create, m)?)?;
    m.add_function(wrap_pyfunction!(_open, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(_raise_for_tests, m)?)?;
    Ok(())
}
