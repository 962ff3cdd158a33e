//! Crash trials: a child process writes generation after generation of an
//! array, flushing after each, and the parent kills it with SIGKILL at a
//! random moment, reopens the array and checks what survived.
//!
//! # The child
//!
//! The child is `examples/crash_child`, built for this test run's profile
//! and features by `cargo build --example crash_child` (see `child_exe`),
//! which shares the array, the value pattern and the backends with the
//! checker below (`examples/crash_child/pattern.rs`). It is a helper, not a
//! test: `cargo test -- --ignored` does not run it. (A `[[bin]]` target
//! would give it `CARGO_BIN_EXE_*`, but would ship as an installed
//! command.)
//!
//! # What is checked, and why exactly this
//!
//! Generation `g` stores `value(g, i) = g << 40 | i` at linear index `i`.
//! The child writes a generation in slabs of three planes (chunks are four
//! planes deep, so slabs cut through chunks), through a cache of two
//! chunks (so dirty chunks reach the store before the flush, by eviction),
//! calls `flush()`, and only after it returned prints `flushed g` on its
//! stdout, a pipe the parent drains. The parent kills it, reopens, and reads
//! every chunk. With `L` the last generation the child reported flushed
//! (or the generation the array held before the child started), every
//! element must decode to its own index `i` and to a generation in
//! `L ..= L + 2`:
//!
//! - `< L` would be data a successful flush covered and that was lost.
//! - `L + 1` and `L + 2`: the child may have flushed `L + 1` and died
//!   before printing it, and then written part of `L + 2`. Data written
//!   after the last flush may or may not be on disk: evicted chunks are
//!   written back before any flush, and npy writes in place (`pwrite`), so
//!   a chunk can legitimately hold a mix of generations, element by
//!   element. The guarantee is about flushed data only: every element
//!   holds the last flushed generation or a later one.
//! - A wrong index (or a generation beyond `L + 2`) would be a torn or
//!   foreign element: bytes that no write put there.
//! - If the child reported no flush, `L` is what the array held before
//!   it started, and the child's first two generations may be present.
//!
//! The parent kills the child after it reported 0, 1 or 2 flushes (chosen
//! at random), plus a random delay up to the time one generation took, so
//! kills land in writes, evictions, flushes and between them.
//!
//! Zarr replaces chunk files atomically (temporary file, fdatasync,
//! rename), so any chunk is additionally either a whole old or a whole new
//! file; a chunk can still mix generations because the cache writes back
//! a chunk whose slabs were only partly rewritten. After each reopen there
//! must be no temporary file left in the Zarr directory: opening an array
//! read-write removes those a killed writer left.
//!
//! HDF5 promises nothing about a file whose writer died (`docs/hdf5.md`);
//! its trials count outcomes (file does not open, chunk does not decode,
//! element lost or foreign) instead of failing, and print them. HDF5
//! rewrites a chunk in place when its compressed size is unchanged, so a
//! kill can tear a chunk that was flushed before; the next writer then
//! stops at that chunk with a format error. After such a damaged file the
//! trials go on with a new one.
//!
//! The short trials run in `cargo test`; the long ones:
//! `cargo test --release --features hdf5 --test external crash -- --ignored --nocapture`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use chunkyard::{Array, ArrayOptions, ChunkCache, Codec, s};

use crate::common::child_guard;
use crate::crash_pattern::{CHUNKS, Kind, SHAPE, write_generation};

/// One crash-trial run at a time in this process: the kill timing adapts
/// to how long one generation takes, and with the `hdf5` feature the trials
/// open HDF5 files here between children (see `common::hdf5_files`).
static SERIAL: Mutex<()> = Mutex::new(());

/// The crash child, built by cargo (once per process) for the profile and
/// the features of this test binary, so that it is never stale and never
/// missing, whichever targets `cargo test` was asked to build.
fn child_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        // This binary is `<target dir>/<profile dir>/deps/external-<hash>`.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        let target_dir = profile_dir.parent().unwrap();
        let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
            "debug" => "dev",
            other => other,
        };
        let features: Vec<&str> = [
            ("cli", cfg!(feature = "cli")),
            ("interop", cfg!(feature = "interop")),
            ("hdf5", cfg!(feature = "hdf5")),
            ("hdf5-static", cfg!(feature = "hdf5-static")),
            ("s3", cfg!(feature = "s3")),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        let out = {
            let _children = child_guard();
            Command::new(env!("CARGO"))
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .args(["build", "--quiet", "--example", "crash_child"])
                .args(["--profile", profile, "--no-default-features"])
                .args(["--features", &features.join(",")])
                .arg("--target-dir")
                .arg(target_dir)
                .output()
                .expect("run cargo build --example crash_child")
        };
        assert!(
            out.status.success(),
            "cargo build --example crash_child failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        profile_dir
            .join("examples")
            .join(format!("crash_child{}", std::env::consts::EXE_SUFFIX))
    })
}

/// What one reopen found.
#[derive(Debug, Default, Clone)]
struct Outcome {
    /// The array did not open (message).
    open_error: Option<String>,
    /// Chunks that failed to read.
    chunk_errors: Vec<String>,
    /// Elements holding a generation older than the last flushed one.
    lost: u64,
    /// Elements holding bytes no write put there.
    foreign: u64,
    /// Highest generation seen.
    max_generation: u64,
    /// Lowest generation seen.
    min_generation: u64,
    /// Temporary files left in a Zarr directory.
    temp_files: usize,
}

impl Outcome {
    fn clean(&self) -> bool {
        self.open_error.is_none()
            && self.chunk_errors.is_empty()
            && self.lost == 0
            && self.foreign == 0
            && self.temp_files == 0
    }
}

/// Zarr temporary files (`.chunkyard-*.tmp`) anywhere under `dir`.
fn temp_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if name.starts_with(".chunkyard-") && name.ends_with(".tmp") {
                n += 1;
            }
        }
    }
    n
}

/// Reopens the array (read-write, as a writer restarting would) and checks
/// every chunk against `lower ..= upper`.
fn check(kind: Kind, dir: &Path, lower: u64, upper: u64) -> Outcome {
    let mut out = Outcome {
        min_generation: u64::MAX,
        ..Outcome::default()
    };
    let path = kind.path(dir);
    let a: Array<u64> = match chunkyard::open_with(&path, kind.open_opts(ChunkCache::new(1 << 20)))
    {
        Ok(a) => a,
        Err(e) => {
            out.open_error = Some(e.to_string());
            return out;
        }
    };
    if matches!(kind, Kind::Zarr | Kind::ZarrRaw) {
        out.temp_files = temp_files(&dir.join("a.zarr"));
    }
    let [d, r, c] = SHAPE;
    for z in (0..d).step_by(CHUNKS[0] as usize) {
        for y in (0..r).step_by(CHUNKS[1] as usize) {
            let (z1, y1) = (z + CHUNKS[0], y + CHUNKS[1]);
            let got = match a.read(s![z as isize..z1 as isize, y as isize..y1 as isize, ..]) {
                Ok(x) => x,
                Err(e) => {
                    out.chunk_errors
                        .push(format!("chunk at [{z}, {y}, 0]: {e}"));
                    continue;
                }
            };
            for ((i, j, k), &v) in got
                .into_dimensionality::<ndarray::Ix3>()
                .unwrap()
                .indexed_iter()
            {
                let index = ((z + i as u64) * r + y + j as u64) * c + k as u64;
                let (g, low) = (v >> 40, v & ((1 << 40) - 1));
                if low != index || g > upper {
                    out.foreign += 1;
                } else if g < lower {
                    out.lost += 1;
                } else {
                    out.max_generation = out.max_generation.max(g);
                    out.min_generation = out.min_generation.min(g);
                }
            }
        }
    }
    out
}

/// Creates the array holding generation 0, flushed and closed.
fn create(kind: Kind, dir: &Path) {
    let opts = ArrayOptions::new(SHAPE)
        .chunks(CHUNKS)
        .cache(ChunkCache::new(8 << 20));
    let opts = match kind {
        #[cfg(feature = "hdf5")]
        Kind::Hdf5 => opts.codec(Codec::Lz4),
        Kind::Zarr => opts.codec(Codec::Lz4),
        Kind::ZarrRaw => opts.codec(Codec::None),
        #[cfg(feature = "s3")]
        Kind::S3 => opts.codec(Codec::Lz4),
        Kind::Npy => opts.codec(Codec::None),
    };
    let a = chunkyard::create::<u64>(kind.path(dir), opts).unwrap();
    write_generation(&a, 0).unwrap();
    a.flush().unwrap();
}

/// One trial: start a child writing from `start`, let it report 0, 1 or 2
/// flushed generations, kill it after a further random delay up to
/// `*period` (the time one generation takes, updated from what the child
/// reports), and return the last generation it reported flushed; or, if
/// the child stopped by itself before that (a write or flush failed), what
/// it printed on stderr.
fn trial(kind: Kind, dir: &Path, start: u64, period: &mut Duration) -> Result<Option<u64>, String> {
    let exe = child_exe();
    let _children = child_guard();
    let mut child = Command::new(exe)
        .arg(kind.name())
        .arg(start.to_string())
        .arg(kind.path(dir))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut last = None;
    // Wait until the child has the array open and has flushed `wait`
    // generations, then kill it at a random moment of the next one.
    let wait = rand::random_range(0..3u32);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut seen, mut at) = (0, None);
    loop {
        if at.is_some() && seen == wait {
            break;
        }
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line == "ready" => at = Some(Instant::now()),
            Ok(line) => {
                if let Some(g) = line.strip_prefix("flushed ") {
                    last = Some(g.parse().unwrap());
                    seen += 1;
                    let now = Instant::now();
                    if let Some(t) = at {
                        *period = now - t;
                    }
                    at = Some(now);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The child closed its stdout: it stopped by itself.
                let out = child.wait_with_output().unwrap();
                reader.join().unwrap();
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "child never got ready: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            }
        }
    }
    let delay = Duration::from_micros(rand::random_range(0..period.as_micros().max(1) as u64));
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL the child");
    let status = child.wait().unwrap();
    reader.join().unwrap();
    for line in rx.try_iter() {
        if let Some(g) = line.strip_prefix("flushed ") {
            last = Some(g.parse().unwrap());
        }
    }
    if status.success() {
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        panic!("the child finished before it was killed: {err}");
    }
    Ok(last)
}

/// Summary of a run of trials.
#[derive(Debug, Default)]
struct Tally {
    trials: u32,
    /// Trials where the child had flushed nothing new when it died.
    no_new_flush: u32,
    /// Trials that found elements newer than the last reported flush.
    newer_than_flushed: u32,
    unopenable: u32,
    with_chunk_errors: u32,
    with_lost: u32,
    with_foreign: u32,
    with_temp_files: u32,
    /// Trials whose kill left a temporary Zarr file (removed by the
    /// reopen; `with_temp_files` counts those still there after it).
    temp_files_left_by_kill: u32,
    generations: u64,
    /// Longest time one generation took (write and flush).
    max_period: Duration,
    /// Trials whose child stopped by itself before it was killed (a write
    /// or flush returned an error).
    child_failed: u32,
    /// Files the trials ran on: a new one after each damaged file.
    files: u32,
    first_bad: Vec<String>,
}

fn run_trials(kind: Kind, n: u32) -> Tally {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    #[cfg(feature = "hdf5")]
    let _hdf5_files = crate::common::hdf5_files();
    let mut tally = Tally::default();
    let mut period = Duration::from_millis(50);
    while tally.trials < n {
        tally.files += 1;
        trials_on_one_file(kind, n, &mut tally, &mut period);
    }
    tally
}

/// Runs trials on a new file until `tally` holds `n` or the file is
/// damaged: it does not open, a chunk does not decode (a restarted writer
/// would stop at that chunk with the same error), or a child stopped by
/// itself.
fn trials_on_one_file(kind: Kind, n: u32, tally: &mut Tally, period: &mut Duration) {
    let dir = tempfile::tempdir().unwrap();
    create(kind, dir.path());
    let mut lower = 0u64; // the generation every element must have at least
    let mut next = 1u64; // the next generation a child writes
    while tally.trials < n {
        let t = tally.trials;
        tally.trials += 1;
        let flushed = match trial(kind, dir.path(), next, period) {
            Ok(flushed) => flushed,
            Err(stderr) => {
                tally.child_failed += 1;
                if tally.first_bad.len() < 5 {
                    tally
                        .first_bad
                        .push(format!("trial {t}: the child stopped by itself: {stderr}"));
                }
                return;
            }
        };
        // Generations a child may have put on disk: up to two past the
        // last one it reported (it may have flushed one more without
        // reporting it, then written part of the next); or, if it reported
        // none, `next` (flushed unreported) and `next + 1`.
        let upper = match flushed {
            Some(g) => {
                lower = g;
                g + 2
            }
            None => {
                tally.no_new_flush += 1;
                next + 1
            }
        };
        tally.max_period = tally.max_period.max(*period);
        if matches!(kind, Kind::Zarr | Kind::ZarrRaw) {
            tally.temp_files_left_by_kill += (temp_files(&dir.path().join("a.zarr")) > 0) as u32;
        }
        let o = check(kind, dir.path(), lower, upper);
        tally.unopenable += o.open_error.is_some() as u32;
        tally.with_chunk_errors += !o.chunk_errors.is_empty() as u32;
        tally.with_lost += (o.lost > 0) as u32;
        tally.with_foreign += (o.foreign > 0) as u32;
        tally.with_temp_files += (o.temp_files > 0) as u32;
        tally.newer_than_flushed += (o.open_error.is_none() && o.max_generation > lower) as u32;
        if !o.clean() && tally.first_bad.len() < 5 {
            tally
                .first_bad
                .push(format!("trial {t} (last flushed {lower}): {o:?}"));
        }
        if o.open_error.is_some() || !o.chunk_errors.is_empty() {
            // Nothing more can be learned from this file: start over.
            return;
        }
        tally.generations = tally.generations.max(o.max_generation);
        // Every later generation is newer than anything on disk now.
        next = o.max_generation.max(next) + 1;
    }
}

fn report(kind: Kind, t: &Tally) {
    eprintln!("crash trials {}: {t:#?}", kind.name());
}

/// npy and Zarr lose nothing a flush covered, tear nothing, and leave no
/// temporary file behind a reopen.
fn assert_no_loss(kind: Kind, n: u32) {
    let t = run_trials(kind, n);
    report(kind, &t);
    assert_eq!(t.trials, n);
    assert_eq!(
        (
            t.unopenable,
            t.child_failed,
            t.with_chunk_errors,
            t.with_lost,
            t.with_foreign,
            t.with_temp_files
        ),
        (0, 0, 0, 0, 0, 0),
        "{}: {:#?}",
        kind.name(),
        t.first_bad
    );
}

const SHORT_TRIALS: u32 = 6;
const LONG_TRIALS: u32 = 200;

#[test]
fn npy_survives_kill_9() {
    assert_no_loss(Kind::Npy, SHORT_TRIALS);
}

#[cfg(feature = "zarr")]
#[test]
fn zarr_survives_kill_9() {
    assert_no_loss(Kind::Zarr, SHORT_TRIALS);
}

/// Uncompressed Zarr, whose whole chunks are synced and renamed in the
/// background: a kill before the rename leaves the old chunk (and a
/// temporary file the reopen removes), never a torn or empty one.
#[cfg(feature = "zarr")]
#[test]
fn zarr_raw_survives_kill_9() {
    assert_no_loss(Kind::ZarrRaw, SHORT_TRIALS);
}

#[cfg(feature = "zarr")]
#[test]
#[ignore = "200 trials, about a minute: cargo test --release --test external crash -- --ignored --nocapture"]
fn zarr_raw_survives_kill_9_long() {
    assert_no_loss(Kind::ZarrRaw, LONG_TRIALS);
}

/// Zarr on S3 (moto, `.ci/with-s3`): a chunk is one PUT, so a kill
/// leaves each object old or new; what a flush covered is all there and
/// the metadata opens.
#[cfg(feature = "s3")]
#[test]
fn zarr_on_s3_survives_kill_9() {
    assert_no_loss(Kind::S3, SHORT_TRIALS);
}

#[cfg(feature = "s3")]
#[test]
#[ignore = "200 trials: .ci/with-s3 cargo test --release --features s3 --test external crash -- --ignored --nocapture"]
fn zarr_on_s3_survives_kill_9_long() {
    assert_no_loss(Kind::S3, LONG_TRIALS);
}

#[test]
#[ignore = "200 trials, about a minute: cargo test --release --test external crash -- --ignored --nocapture"]
fn npy_survives_kill_9_long() {
    assert_no_loss(Kind::Npy, LONG_TRIALS);
}

#[cfg(feature = "zarr")]
#[test]
#[ignore = "200 trials, about a minute: cargo test --release --test external crash -- --ignored --nocapture"]
fn zarr_survives_kill_9_long() {
    assert_no_loss(Kind::Zarr, LONG_TRIALS);
}

/// HDF5: the file must open after every kill (chunkyard creates files that
/// never reuse freed space, `docs/hdf5.md`); chunk errors, lost elements
/// and children stopped by such a chunk are counted and printed, not
/// asserted: HDF5 does not promise them away.
#[cfg(feature = "hdf5")]
fn hdf5_trials(n: u32) {
    let t = run_trials(Kind::Hdf5, n);
    report(Kind::Hdf5, &t);
    assert_eq!(t.unopenable, 0, "{:#?}", t.first_bad);
    assert_eq!(t.trials, n);
}

#[cfg(feature = "hdf5")]
#[test]
fn hdf5_kill_9_outcomes() {
    hdf5_trials(SHORT_TRIALS);
}

#[cfg(feature = "hdf5")]
#[test]
#[ignore = "200 trials: cargo test --release --features hdf5 --test external crash -- --ignored --nocapture"]
fn hdf5_kill_9_outcomes_long() {
    hdf5_trials(LONG_TRIALS);
}
