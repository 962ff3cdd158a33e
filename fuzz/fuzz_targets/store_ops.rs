//! Arbitrary sequences of write, fill, read, get, resize, flush, evict and
//! reopen on an array over the in-memory store, with a cache as small as half a chunk,
//! compared with a dense model after every step; `FailAfter` makes the
//! store fail every operation after the next N (an I/O failure).
//!
//! Checked, through the public API only:
//! - without an injected failure every operation succeeds and every read
//!   equals the model;
//! - with one, a read that succeeds still equals the model (elements a
//!   failed write may or may not have reached are not compared);
//! - after a failed flush or resize every write and resize is refused
//!   (fail closed);
//! - a flush that returns `Ok` made the whole model durable: a crash right
//!   after it (`MemoryStore::reopen`) shows exactly the model;
//! - reopening shows what the last successful flush covered, except that an
//!   element written since may hold any value written to it since: a flush
//!   that fails (or reports an earlier failure) may still have written
//!   back and synced part or all of the dirty data;
//! - a resize that returns `Ok` keeps the rows both shapes share, shows
//!   new rows as the fill value (also after a shrink and a regrow), and
//!   is durable at once.
#![no_main]

use std::sync::{Arc, OnceLock};

use chunkyard::store::{ChunkStore, MemoryStore, StoreMeta};
use chunkyard::{ArrayHandle, ChunkCache, DType};
use chunkyard::{AxisSel, ResolvedSelection};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

type Region = [(u8, u8, u8); 4];

#[derive(Arbitrary, Debug)]
enum Op {
    Write(Region, u32),
    Fill(Region, i32),
    Read(Region),
    Get([u8; 4]),
    Flush,
    /// Read another array sharing the cache, pushing this one's chunks out
    /// (dirty ones are written back).
    Evict,
    /// Flush, drop the handle and open what was durable.
    Reopen,
    /// The store fails every operation after the next `n % 16`.
    FailAfter(u8),
    /// Resize the first axis to `1 + n % 8`.
    Resize(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    ndim: u8,
    shape: [u8; 4],
    chunks: [u8; 4],
    budget: u8,
    ops: Vec<Op>,
}

/// Dense row-major model: values, and whether each value is known (a write
/// that failed half way leaves its elements either old or new).
struct Model {
    shape: Vec<u64>,
    values: Vec<i32>,
    known: Vec<bool>,
}

/// `values` of an array of `shape` with its first axis cut or extended to
/// `len` (new rows `fill`).
fn reshape<T: Clone>(values: &mut Vec<T>, shape: &[u64], len: u64, fill: T) {
    let row = shape[1..].iter().product::<u64>() as usize;
    values.truncate(row * (len.min(shape[0]) as usize));
    values.resize(row * len as usize, fill);
}

impl Model {
    fn linear(&self, coord: &[u64]) -> usize {
        coord
            .iter()
            .zip(&self.shape)
            .fold(0u64, |acc, (&i, &n)| acc * n + i) as usize
    }

    /// Linear indices of the selection's elements, in output order.
    fn indices(&self, sel: &ResolvedSelection) -> Vec<usize> {
        let axes: Vec<(u64, u64, u64)> = sel.axes().iter().map(AxisSel::as_range).collect();
        if axes.iter().any(|a| a.2 == 0) {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(axes.iter().map(|a| a.2 as usize).product());
        // At most 4 axes (`run`); no vector per element.
        let mut idx = [0u64; 4];
        let idx = &mut idx[..axes.len()];
        loop {
            let coord = idx.iter().zip(&axes).map(|(&i, a)| a.0 + i * a.1);
            let linear = coord
                .zip(&self.shape)
                .fold(0u64, |acc, (i, &n)| acc * n + i) as usize;
            out.push(linear);
            let mut k = idx.len();
            loop {
                if k == 0 {
                    return out;
                }
                k -= 1;
                idx[k] += 1;
                if idx[k] < axes[k].2 {
                    break;
                }
                idx[k] = 0;
            }
        }
    }
}

fn region(shape: &[u64], r: &Region) -> ResolvedSelection {
    ResolvedSelection::from_axes(
        shape
            .iter()
            .zip(r)
            .map(|(&n, &(a, b, s))| {
                let a = u64::from(a) % (n + 1);
                let b = u64::from(b) % (n + 1);
                let (lo, hi) = (a.min(b), a.max(b));
                let step = 1 + u64::from(s) % 3;
                AxisSel::Range {
                    start: lo,
                    step,
                    count: (hi - lo).div_ceil(step),
                }
            })
            .collect(),
    )
}

/// The values the log says were written to element `i`.
fn written_since(since: &[(usize, i32)], i: usize) -> Vec<i32> {
    since.iter().filter(|e| e.0 == i).map(|e| e.1).collect()
}

fn to_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

fn from_bytes(b: &[u8]) -> Vec<i32> {
    b.chunks_exact(4)
        .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

/// Everything a store holds durably (what a crash now would leave), chunk
/// by chunk straight from the store (not through an array: the oracle
/// shares no code with what it checks, and costs a copy per row, not a
/// cache and an array per call).
fn contents(store: &MemoryStore) -> Vec<i32> {
    let meta = store.meta();
    let (shape, chunks) = (&meta.shape, &meta.chunks);
    let last = shape.len() - 1;
    // Never-written chunks read as the fill value, 0.
    let mut out = vec![0i32; shape.iter().product::<u64>() as usize];
    store.for_each_durable(|k, buf| {
        // The part of the chunk inside the array (the store may keep rows
        // past a shrunk end in the last chunk). At most 4 axes (`run`):
        // fixed arrays, no vector per chunk or row.
        let mut ext = [0u64; 4];
        for d in 0..=last {
            ext[d] = chunks[d].min(shape[d] - k[d] * chunks[d]);
        }
        let run = ext[last] as usize;
        let mut r = [0u64; 4];
        loop {
            let (mut src, mut dst) = (0u64, 0u64);
            for d in 0..last {
                src = src * chunks[d] + r[d];
                dst = dst * shape[d] + k[d] * chunks[d] + r[d];
            }
            let src = (src * chunks[last]) as usize * 4;
            let dst = (dst * shape[last] + k[last] * chunks[last]) as usize;
            for (o, b) in out[dst..dst + run]
                .iter_mut()
                .zip(buf[src..src + run * 4].chunks_exact(4))
            {
                *o = i32::from_ne_bytes(b.try_into().unwrap());
            }
            let mut d = last;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                r[d] += 1;
                if r[d] < ext[d] {
                    break;
                }
                r[d] = 0;
            }
        }
    });
    out
}

/// One worker thread runs every input: the library's parallel flush then
/// runs its write-backs in order on that thread, so `FailAfter` fails the
/// same write-back on every run of an input (a crash reproduces), and no
/// idle workers spin after each flush (they took a sixth of the CPU).
fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("a one-thread pool")
    })
}

fuzz_target!(|input: Input| pool().install(|| run(input)));

fn run(input: Input) {
    let ndim = 1 + usize::from(input.ndim) % 4;
    let shape: Vec<u64> = input.shape[..ndim]
        .iter()
        .map(|&n| 1 + u64::from(n) % 8)
        .collect();
    let chunks: Vec<u64> = input.chunks[..ndim]
        .iter()
        .map(|&c| 1 + u64::from(c) % 4)
        .collect();
    let chunk_bytes = chunks.iter().product::<u64>() as usize * 4;
    let budget = match input.budget % 4 {
        0 => chunk_bytes / 2,
        1 => chunk_bytes,
        2 => 3 * chunk_bytes,
        _ => 16 * chunk_bytes,
    };
    let meta = StoreMeta {
        dtype: DType::I32,
        shape: shape.clone(),
        chunks: chunks.clone(),
        fill: vec![0; 4],
    };
    let cache = ChunkCache::new(budget);
    // A second array sharing the cache; reading it evicts the first's chunks.
    let scratch_len = (budget / chunk_bytes + 2) as u64;
    let scratch = ArrayHandle::from_store(
        Arc::new(MemoryStore::new(StoreMeta {
            dtype: DType::I32,
            shape: vec![scratch_len * chunk_bytes as u64 / 4],
            chunks: vec![chunk_bytes as u64 / 4],
            fill: vec![1; 4],
        })),
        cache.clone(),
    )
    .unwrap();

    let mut shape = shape;
    let n: usize = shape.iter().product::<u64>() as usize;
    let mut store = Arc::new(MemoryStore::new(meta));
    let mut a = ArrayHandle::from_store(store.clone(), cache.clone()).unwrap();
    let mut model = Model {
        shape: shape.clone(),
        values: vec![0; n],
        known: vec![true; n],
    };
    let mut durable = model.values.clone();
    // Every (element, value) written since the last successful flush (also
    // by writes that failed): what a failed flush may have made durable
    // instead of `durable`. Sorted and searched only when an element
    // differs from `durable`; clearing it costs nothing per element.
    let mut since: Vec<(usize, i32)> = Vec::new();
    // The store was told to fail (it may not have yet).
    let mut injecting = false;
    // A flush or resize failed: the array must refuse writes until
    // reopened.
    let mut closed = false;
    // No resize failed since the last reopen: `durable` has the store's
    // durable shape.
    let mut shape_known = true;

    // A flush that returned Ok made everything durable.
    let flushed = |store: &MemoryStore,
                   model: &mut Model,
                   durable: &mut Vec<i32>,
                   since: &mut Vec<(usize, i32)>| {
        let now = contents(store);
        assert_eq!(now.len(), model.values.len(), "durable shape differs");
        for (i, (&got, &want)) in now.iter().zip(&model.values).enumerate() {
            assert!(
                !model.known[i] || got == want,
                "flush returned Ok but element {i} is durable as {got}, not {want}"
            );
        }
        model.known = vec![true; now.len()];
        model.values = now.clone();
        since.clear();
        *durable = now;
    };

    for op in input.ops.iter().take(64) {
        match op {
            Op::Write(r, _) | Op::Fill(r, _) => {
                let sel = region(&shape, r);
                let idx = model.indices(&sel);
                let vals: Vec<i32> = match op {
                    Op::Write(_, seed) => (0..idx.len())
                        .map(|i| (*seed as i32).wrapping_add(i as i32 * 7919))
                        .collect(),
                    Op::Fill(_, v) => vec![*v; idx.len()],
                    _ => unreachable!(),
                };
                for (&i, &v) in idx.iter().zip(&vals) {
                    since.push((i, v));
                }
                let res = match op {
                    Op::Write(..) => a.write_bytes(&sel, &to_bytes(&vals)),
                    Op::Fill(_, v) => a.fill_bytes(&sel, &v.to_ne_bytes()),
                    _ => unreachable!(),
                };
                match res {
                    Ok(()) => {
                        assert!(!closed, "a write succeeded after a failed flush or resize");
                        for (&i, &v) in idx.iter().zip(&vals) {
                            model.values[i] = v;
                            model.known[i] = true;
                        }
                    }
                    Err(e) => {
                        assert!(injecting, "write failed without a failure injected: {e}");
                        for &i in &idx {
                            model.known[i] = false;
                        }
                    }
                }
            }
            Op::Read(r) => {
                let sel = region(&shape, r);
                let idx = model.indices(&sel);
                let mut out = vec![0u8; idx.len() * 4];
                match a.read_bytes(&sel, &mut out) {
                    Ok(()) => {
                        for (&i, got) in idx.iter().zip(from_bytes(&out)) {
                            assert!(
                                !model.known[i] || got == model.values[i],
                                "read {got} at {i}, model has {}",
                                model.values[i]
                            );
                        }
                    }
                    Err(e) => assert!(injecting, "read failed without a failure injected: {e}"),
                }
            }
            Op::Get(p) => {
                let coord: Vec<u64> = p[..ndim]
                    .iter()
                    .zip(&shape)
                    .map(|(&i, &n)| u64::from(i) % n)
                    .collect();
                let i = model.linear(&coord);
                let mut out = [0u8; 4];
                match a.get_bytes(&coord, &mut out) {
                    Ok(()) => {
                        let got = i32::from_ne_bytes(out);
                        assert!(!model.known[i] || got == model.values[i], "get {coord:?}");
                    }
                    Err(e) => assert!(injecting, "get failed without a failure injected: {e}"),
                }
            }
            Op::Evict => {
                let all = ResolvedSelection::full(&scratch.shape());
                let mut out = vec![0u8; scratch.len() as usize * 4];
                scratch.read_bytes(&all, &mut out).unwrap();
                assert!(out.iter().all(|&b| b == 1), "scratch array reads wrong");
            }
            Op::Flush | Op::Reopen => {
                match a.flush() {
                    Ok(()) => flushed(&store, &mut model, &mut durable, &mut since),
                    Err(e) => {
                        assert!(injecting, "flush failed without a failure injected: {e}");
                        closed = true;
                        // Fail closed: writes are refused from now on.
                        let one = region(&shape, &[(0, 1, 0); 4]);
                        assert!(a.write_bytes(&one, &[0; 4]).is_err());
                    }
                }
                if matches!(op, Op::Reopen) {
                    drop(a);
                    store = Arc::new(store.reopen());
                    let now = contents(&store);
                    if shape_known {
                        assert_eq!(now.len(), durable.len(), "durable shape differs");
                        if now != durable {
                            since.sort_unstable();
                        }
                        for (i, (&got, &want)) in now.iter().zip(&durable).enumerate() {
                            assert!(
                                got == want || since.binary_search(&(i, got)).is_ok(),
                                "reopening lost what the last successful flush covered: \
                                 element {i} is {got}, flushed {want}, written since {:?}",
                                written_since(&since, i)
                            );
                        }
                    }
                    durable = now;
                    a = ArrayHandle::from_store(store.clone(), cache.clone()).unwrap();
                    shape = a.shape().to_vec();
                    model.shape = shape.clone();
                    model.values = durable.clone();
                    model.known = vec![true; durable.len()];
                    since.clear();
                    shape_known = true;
                    injecting = false;
                    closed = false;
                }
            }
            Op::Resize(k) => {
                let len = 1 + u64::from(*k % 8);
                match a.resize(len) {
                    Ok(()) => {
                        assert!(!closed, "a resize succeeded after a failed flush or resize");
                        assert_eq!(a.shape()[0], len);
                        let shrink = len < shape[0];
                        reshape(&mut model.values, &shape, len, 0);
                        reshape(&mut model.known, &shape, len, true);
                        reshape(&mut durable, &shape, len, 0);
                        let kept = model.values.len();
                        since.retain(|&(i, _)| i < kept);
                        shape[0] = len;
                        model.shape = shape.clone();
                        // Durable at once: new rows the fill value; the
                        // rows kept as last flushed, or after a shrink
                        // (which flushes first) as the model; an element
                        // a failed write left unknown holds its flushed
                        // value or one written since.
                        let now = contents(&store);
                        assert_eq!(now.len(), durable.len(), "durable shape after resize");
                        if now != durable {
                            since.sort_unstable();
                        }
                        for (i, (&got, &want)) in now.iter().zip(&durable).enumerate() {
                            let ok = if model.known[i] {
                                got == model.values[i] || (!shrink && got == want)
                            } else {
                                got == want || since.binary_search(&(i, got)).is_ok()
                            };
                            assert!(
                                ok,
                                "after resize to {len}, element {i} is durable as {got} \
                                 (flushed {want}, model {} known {}, written since {:?})",
                                model.values[i],
                                model.known[i],
                                written_since(&since, i)
                            );
                        }
                        if shrink {
                            // Everything was flushed: the store and the
                            // cache now hold `now`.
                            model.values = now.clone();
                            model.known = vec![true; now.len()];
                            since.clear();
                        }
                        durable = now;
                    }
                    Err(e) => {
                        assert!(injecting, "resize failed without a failure injected: {e}");
                        // Old shape or new, contents unknown; the array
                        // is closed (a store failing halfway poisons it).
                        closed = true;
                        let now_len = a.shape()[0];
                        reshape(&mut model.values, &shape, now_len, 0);
                        model.known = vec![false; model.values.len()];
                        reshape(&mut durable, &shape, now_len, 0);
                        let kept = model.values.len();
                        since.retain(|&(i, _)| i < kept);
                        shape[0] = now_len;
                        model.shape = shape.clone();
                        shape_known = false;
                    }
                }
            }
            Op::FailAfter(k) => {
                store.fail_after(u64::from(k % 16));
                injecting = true;
            }
        }
        let stats = cache.stats();
        assert!(
            stats.resident_bytes <= budget.max(chunk_bytes),
            "cache over budget: {stats:?}"
        );
    }
    // Without a failure pending, everything reads back and survives a
    // final flush.
    if !injecting {
        a.flush().unwrap();
        flushed(&store, &mut model, &mut durable, &mut since);
    }
}
