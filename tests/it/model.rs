//! Property test: random sequences of writes, fills, reads, flushes,
//! reopens and crashes over random shapes (1-4 axes), chunk shapes and cache
//! budgets (down to less than one chunk), checked against a dense in-memory
//! model after every step.

use crate::common::{Backend, Dense, TestStore};
use chunkyard::store::{ChunkStore, MemoryStore, StoreMeta};
use chunkyard::{Array, ChunkCache, DType};
use ndarray::ArrayD;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Write `seed`-derived values into a selection.
    Write(Vec<(u64, u64, u64)>, u32),
    /// Fill a selection with a value.
    Fill(Vec<(u64, u64, u64)>, i32),
    /// Write into a selection with an integer index on one axis.
    WritePoint(Vec<u64>, i32),
    /// Read a selection and compare.
    Read(Vec<(u64, u64, u64)>),
    /// Read one element.
    Get(Vec<u64>),
    Flush,
    /// Drop the handle (which flushes) and open the store again.
    Reopen,
    /// Lose the handle without flushing and reopen what was durable
    /// (in-memory store only).
    Crash,
}

/// (start, stop, step) per axis, within `shape`.
fn region(shape: &[u64]) -> impl Strategy<Value = Vec<(u64, u64, u64)>> + use<> {
    shape
        .iter()
        .map(|&n| {
            (0..=n, 0..=n, 1u64..4).prop_map(|(a, b, step)| {
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                (lo, hi, step)
            })
        })
        .collect::<Vec<_>>()
}

fn point(shape: &[u64]) -> impl Strategy<Value = Vec<u64>> + use<> {
    shape.iter().map(|&n| 0..n).collect::<Vec<_>>()
}

fn ops(shape: Vec<u64>, crash: bool) -> impl Strategy<Value = Vec<Op>> {
    let s = shape.clone();
    let op = prop_oneof![
        4 => (region(&s), any::<u32>()).prop_map(|(r, seed)| Op::Write(r, seed)),
        2 => (region(&s), any::<i32>()).prop_map(|(r, v)| Op::Fill(r, v)),
        2 => (point(&s), any::<i32>()).prop_map(|(p, v)| Op::WritePoint(p, v)),
        3 => region(&s).prop_map(Op::Read),
        2 => point(&s).prop_map(Op::Get),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => Just(if crash { Op::Crash } else { Op::Flush }),
    ];
    proptest::collection::vec(op, 1..25)
}

fn sel_text(r: &[(u64, u64, u64)]) -> String {
    r.iter()
        .map(|(a, b, s)| format!("{a}:{b}:{s}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn case() -> impl Strategy<Value = (Vec<u64>, Vec<u64>, usize, Backend, Vec<Op>)> {
    (1usize..=4)
        .prop_flat_map(|nd| {
            (
                proptest::collection::vec(1u64..9, nd),
                proptest::collection::vec(1u64..5, nd),
                prop_oneof![Just(0usize), Just(1), Just(3), Just(1000)],
                proptest::sample::select(crate::common::backends()),
            )
        })
        .prop_flat_map(|(shape, chunks, budget_chunks, backend)| {
            let crash = backend == Backend::Memory;
            (
                Just(shape.clone()),
                Just(chunks),
                Just(budget_chunks),
                Just(backend),
                ops(shape, crash),
            )
        })
}

fn run(shape: Vec<u64>, chunks: Vec<u64>, budget_chunks: usize, backend: Backend, ops: Vec<Op>) {
    let chunk_bytes = chunks.iter().product::<u64>() as usize * 4;
    // 0 chunks -> a budget smaller than one chunk.
    let budget = if budget_chunks == 0 {
        chunk_bytes / 2
    } else {
        budget_chunks * chunk_bytes
    };
    let mut cache = ChunkCache::new(budget);
    let dir = tempfile::tempdir().unwrap();
    let mut ts = TestStore::create(backend, dir.path(), DType::I32, &shape, &chunks);
    let mut a: Array<i32> = Array::from_store(ts.store.clone(), cache.clone()).unwrap();
    let mut model = Dense::<i32>::zeros(&shape);
    let mut durable = model.clone();
    for op in ops {
        match op {
            Op::Write(r, seed) => {
                let sel = sel_text(&r);
                let out = model.selection_shape(&r);
                let n: usize = out.iter().product();
                let data: Vec<i32> = (0..n)
                    .map(|i| (seed as i32).wrapping_add(i as i32 * 7919))
                    .collect();
                let arr = ArrayD::from_shape_vec(out, data.clone()).unwrap();
                a.write(sel.as_str(), &arr).unwrap();
                model.assign(&r, &data);
            }
            Op::Fill(r, v) => {
                a.fill(sel_text(&r).as_str(), v).unwrap();
                let n: usize = model.selection_shape(&r).iter().product();
                model.assign(&r, &vec![v; n]);
            }
            Op::WritePoint(p, v) => {
                // Integer index on the first axis, slices elsewhere.
                let mut r: Vec<(u64, u64, u64)> = p.iter().map(|&i| (i, i + 1, 1)).collect();
                r[0] = (p[0], p[0] + 1, 1);
                let text: Vec<String> = std::iter::once(p[0].to_string())
                    .chain(p[1..].iter().map(|i| format!("{i}:{}", i + 1)))
                    .collect();
                let arr = ArrayD::from_elem(vec![1; p.len() - 1], v);
                a.write(text.join(",").as_str(), &arr).unwrap();
                model.assign(&r, &[v]);
            }
            Op::Read(r) => {
                let got = a.read(sel_text(&r).as_str()).unwrap();
                let want = model.read(&r);
                assert_eq!(got.shape(), model.selection_shape(&r).as_slice());
                assert_eq!(got.iter().copied().collect::<Vec<_>>(), want, "read {r:?}");
            }
            Op::Get(p) => {
                let want = model.get(&p);
                assert_eq!(a.get(&p).unwrap(), want, "get {p:?}");
            }
            Op::Flush => {
                a.flush().unwrap();
                durable = model.clone();
            }
            Op::Reopen => {
                drop(a);
                durable = model.clone();
                ts = ts.reopen();
                a = Array::from_store(ts.store.clone(), cache.clone()).unwrap();
            }
            Op::Crash => {
                let survivor = ts
                    .crash()
                    .expect("crash runs only where the store models it");
                // The lost handle and its cache are leaked unwritten, as a
                // killed process would lose them.
                std::mem::forget(a);
                std::mem::forget(cache);
                ts = survivor;
                model = durable.clone();
                cache = ChunkCache::new(budget);
                a = Array::from_store(ts.store.clone(), cache.clone()).unwrap();
            }
        }
        assert!(
            cache.stats().resident_bytes <= budget.max(chunk_bytes),
            "cache over budget: {:?}",
            cache.stats()
        );
    }
    let full = a.read(..).unwrap();
    assert_eq!(full.iter().copied().collect::<Vec<_>>(), model.data);
    drop(a);
    // What reached the store after the final drop equals the model.
    let b: Array<i32> = Array::from_store(ts.reopen().store, ChunkCache::new(1 << 20)).unwrap();
    let full = b.read(..).unwrap();
    assert_eq!(full.iter().copied().collect::<Vec<_>>(), model.data);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn array_matches_dense_model((shape, chunks, budget, backend, ops) in case()) {
        run(shape, chunks, budget, backend, ops);
    }
}

#[test]
fn meta_of_memory_store_is_what_was_asked() {
    let m = StoreMeta {
        dtype: DType::I32,
        shape: vec![3],
        chunks: vec![2],
        fill: vec![0; 4],
    };
    assert_eq!(MemoryStore::new(m.clone()).meta(), m);
}
