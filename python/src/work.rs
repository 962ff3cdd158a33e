//! Where the library's work runs, so that a forked child and Ctrl-C both
//! work.
//!
//! Fork: rayon's global pool is made once per process and its threads are
//! not copied by `fork()`; a child that hands it work waits forever. Every
//! call into the library that may go parallel (reductions, copies,
//! flushes, the flush of a dropped array) therefore runs on [`pool`], a
//! pool this module owns and makes again when the process id has changed.
//! The parent's pool is leaked in the child (dropping it would signal
//! threads that do not exist there).
//!
//! Ctrl-C: Python runs its signal handlers only on the main thread and
//! only when the interpreter gets control. Long reductions and copies run
//! as a job on the pool while the calling thread waits in slices of
//! [`POLL`], checking signals in between; a `KeyboardInterrupt` sets the
//! job's stop flag (the library's `*_interruptible` functions), which ends
//! it at its next block. Reads and writes run on the calling thread in
//! pieces of about [`PIECE_BYTES`], with a signal check between pieces.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

use chunkyard::{AxisSel, ResolvedSelection};
use parking_lot::Mutex;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

use crate::{catch_panic, panic_error, to_py};

/// How long a waiting caller goes between signal checks.
const POLL: Duration = Duration::from_millis(50);

/// Reads and writes larger than this are split into pieces of about this
/// size, with a signal check between pieces (a piece takes a few
/// milliseconds from the page cache, well under a second from a disk).
pub(crate) const PIECE_BYTES: u64 = 32 << 20;

/// The pool and the process that made it.
static POOL: Mutex<Option<(u32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);

/// The library's thread pool for this process (made on first use, and
/// again in a forked child).
pub(crate) fn pool() -> PyResult<Arc<rayon::ThreadPool>> {
    let pid = std::process::id();
    let mut slot = POOL.lock();
    if let Some((owner, p)) = slot.as_ref()
        && *owner == pid
    {
        return Ok(p.clone());
    }
    if let Some((_, inherited)) = slot.take() {
        // Made by the parent: its threads are not in this process.
        std::mem::forget(inherited);
    }
    let p = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("chunkyard-{i}"))
        .build()
        .map_err(|e| PyOSError::new_err(format!("cannot start chunkyard's thread pool: {e}")))?;
    let p = Arc::new(p);
    *slot = Some((pid, p.clone()));
    Ok(p)
}

/// Runs `f` on [`pool`] and waits for it, with the GIL released (for the
/// short parallel calls: `flush`, `close`).
pub(crate) fn on_pool<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> chunkyard::Result<T> + Send,
) -> PyResult<T> {
    let p = pool()?;
    py.detach(|| crate::guarded(|| p.install(f)))
}

/// Runs `job` on [`pool`] while this thread waits without the GIL,
/// checking Python's signals every [`POLL`]. On a `KeyboardInterrupt` (or
/// any exception a signal handler raises) the job's stop flag is set; the
/// job is then waited for (it stops at its next block) and the exception
/// raised. Without a signal, `job`'s result.
pub(crate) fn interruptible<T: Send + 'static>(
    py: Python<'_>,
    job: impl FnOnce(&AtomicBool) -> chunkyard::Result<T> + Send + 'static,
) -> PyResult<T> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = channel();
    let flag = stop.clone();
    pool()?.spawn(move || {
        let _ = tx.send(catch_panic(|| job(&flag)));
    });
    let mut raised: Option<PyErr> = None;
    let mut rx = rx;
    loop {
        // The receiver is moved in and out: it is `Send`, not `Sync`.
        let (back, got) = py.detach(move || {
            let got = rx.recv_timeout(POLL);
            (rx, got)
        });
        rx = back;
        match got {
            Ok(done) => {
                if let Some(e) = raised {
                    return Err(e);
                }
                return match done {
                    Ok(r) => r.map_err(to_py),
                    Err(what) => Err(panic_error(what)),
                };
            }
            Err(RecvTimeoutError::Timeout) => {
                if raised.is_none()
                    && let Err(e) = py.check_signals()
                {
                    stop.store(true, Relaxed);
                    raised = Some(e);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(raised.unwrap_or_else(|| {
                    panic_error("a job on chunkyard's pool ended without a result".into())
                }));
            }
        }
    }
}

/// Splits `sel` into pieces of about [`PIECE_BYTES`] of the array they
/// span (a strided read touches far more than it returns) along its first
/// axis with more than one position, each with the byte range it covers in
/// the C-order output of `sel` (the axes before that one have one position,
/// so each piece's output is contiguous). With unit steps the cuts fall on
/// chunk boundaries (`chunks`), so a write of whole chunks stays one. A
/// selection spanning at most `PIECE_BYTES` is one piece.
pub(crate) fn pieces(
    sel: &ResolvedSelection,
    chunks: &[u64],
    itemsize: usize,
) -> Vec<(ResolvedSelection, Range<usize>)> {
    let out_total = sel.out_shape().iter().product::<u64>() * itemsize as u64;
    let whole = || vec![(sel.clone(), 0..out_total as usize)];
    let axes = sel.axes();
    let Some(k) = axes
        .iter()
        .position(|a| matches!(a, AxisSel::Range { count, .. } if *count > 1))
    else {
        return whole();
    };
    let AxisSel::Range { start, step, count } = axes[k] else {
        return whole();
    };
    // Per position along axis k: output bytes, and array bytes spanned
    // (the box from the first to the last position of the later axes,
    // times the step).
    let rest = &axes[k + 1..];
    let out_unit = rest.iter().map(|a| a.as_range().2).product::<u64>() * itemsize as u64;
    let span_unit = rest
        .iter()
        .map(|a| {
            let (_, st, n) = a.as_range();
            if n == 0 { 0 } else { (n - 1) * st + 1 }
        })
        .product::<u64>()
        .saturating_mul(step)
        .saturating_mul(itemsize as u64);
    if span_unit.saturating_mul(count) <= PIECE_BYTES || out_unit == 0 {
        return whole();
    }
    let per_piece = (PIECE_BYTES / span_unit.max(1)).max(1);
    let chunk = chunks.get(k).copied().unwrap_or(1).max(1);
    let mut out = Vec::new();
    let mut done = 0u64;
    while done < count {
        let mut end = (done + per_piece).min(count);
        if step == 1 && chunk <= per_piece && end < count {
            // Down to the chunk boundary at or before `end` (if past `done`).
            let aligned = (start + end) / chunk * chunk;
            if aligned > start + done {
                end = aligned - start;
            }
        }
        let mut piece = axes.to_vec();
        piece[k] = AxisSel::Range {
            start: start + done * step,
            step,
            count: end - done,
        };
        out.push((
            ResolvedSelection::from_axes(piece),
            (done * out_unit) as usize..(end * out_unit) as usize,
        ));
        done = end;
    }
    out
}
