//! Unit tests of the array API: round trips, read-only arrays, fills,
//! memory reports, flush on drop.

use super::*;
use crate::store::{MemoryStore, StoreMeta};
use crate::testutil::mem_array;
use ndarray::{Array2, arr1, s};

#[test]
fn write_read_round_trip_with_steps() {
    let a = mem_array::<i32>(&[7, 9], &[3, 4], 1 << 20);
    let data = Array2::from_shape_fn((7, 9), |(i, j)| (i * 100 + j) as i32);
    a.write(.., &data).unwrap();
    assert_eq!(a.read(..).unwrap(), data.clone().into_dyn());
    let got = a.read(s![1..;2, 3]).unwrap();
    assert_eq!(got, data.slice(s![1..;2, 3]).to_owned().into_dyn());
    assert_eq!(
        a.read("-1,::4").unwrap(),
        data.slice(s![6, ..;4]).to_owned().into_dyn()
    );
    assert_eq!(a.get([6, 8]).unwrap(), 608);
    let mut buf = vec![0i32; 4];
    a.read_into("2:4,7:9", &mut buf).unwrap();
    assert_eq!(buf, vec![207, 208, 307, 308]);
}

/// An array over a store opened read-only refuses writes before they
/// reach the cache (nothing dirty, flush succeeds), and its partial
/// reads still find chunks the cache holds.
#[test]
fn read_only_arrays_refuse_writes_up_front() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "a.npy",
        #[cfg(feature = "zarr")]
        "a.zarr",
    ] {
        let p = dir.path().join(name);
        let shape = [3u64, 40, 50];
        let w =
            crate::create::<i32>(&p, crate::ArrayOptions::new(shape).chunks([1, 40, 50])).unwrap();
        let data = ndarray::Array3::from_shape_fn((3, 40, 50), |(z, y, x)| {
            (z * 10_000 + y * 100 + x) as i32
        });
        w.write(.., &data).unwrap();
        w.flush().unwrap();
        drop(w);
        let cache = ChunkCache::new(1 << 20);
        let r = crate::open_with::<i32>(
            &p,
            &crate::OpenOptions::new()
                .read_only(true)
                .chunks([1, 40, 50])
                .cache(cache.clone()),
        )
        .unwrap();
        assert!(r.handle().store().capabilities().read_only, "{name}");
        for err in [
            r.write(s![0, 0, 0], &ndarray::arr0(1)).unwrap_err(),
            r.fill(.., 7).unwrap_err(),
            r.resize(5).unwrap_err(),
        ] {
            assert!(
                err.to_string().contains("opened read-only"),
                "{name}: {err}"
            );
        }
        assert_eq!(r.memory_report().dirty_bytes, 0, "{name}");
        r.flush().unwrap();
        // A whole plane read once goes straight from the file; read
        // again it goes through the cache, and a tile of it is then
        // copied from there (a hit), a tile of another plane is read
        // from the file (no hit).
        let plane = data.slice(s![1, .., ..]).into_dyn();
        assert_eq!(r.read(s![1, .., ..]).unwrap(), plane);
        assert_eq!(cache.stats().entries, 0, "{name}: {:?}", cache.stats());
        assert_eq!(r.read(s![1, .., ..]).unwrap(), plane);
        assert_eq!(cache.stats().entries, 1, "{name}: {:?}", cache.stats());
        let hits = cache.stats().hits;
        let tile = s![1, 3..9, 4..20];
        assert_eq!(r.read(tile).unwrap(), data.slice(tile).into_dyn());
        assert_eq!(cache.stats().hits, hits + 1, "{name}");
        let tile = s![2, 30..40, 0..5];
        assert_eq!(r.read(tile).unwrap(), data.slice(tile).into_dyn());
        assert_eq!(cache.stats().hits, hits + 1, "{name}");
        assert_eq!(r.get([2, 39, 49]).unwrap(), 23_949);
        // Writable again, the same file takes writes.
        drop(r);
        let w = crate::open::<i32>(&p).unwrap();
        assert!(!w.handle().store().capabilities().read_only);
        w.write(s![0, 0, 0], &ndarray::arr0(-1)).unwrap();
        w.flush().unwrap();
        assert_eq!(crate::open::<i32>(&p).unwrap().get([0, 0, 0]).unwrap(), -1);
    }
}

#[test]
fn fill_broadcast_and_errors() {
    let a = mem_array::<f64>(&[4, 5], &[2, 2], 64);
    a.fill("1:3, ::2", 2.5).unwrap();
    a.write("0", &arr1(&[1.0, 2.0, 3.0, 4.0, 5.0])).unwrap();
    a.write("3, 1:4", &ndarray::arr0(7.0)).unwrap();
    let r = a.read(..).unwrap();
    assert_eq!(r[[1, 2]], 2.5);
    assert_eq!(r[[1, 1]], 0.0);
    assert_eq!(r[[0, 4]], 5.0);
    assert_eq!(r[[3, 2]], 7.0);
    let err = a.write("0", &arr1(&[1.0, 2.0])).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    let err = a.get([4, 0]).unwrap_err().to_string();
    assert!(err.contains("axis 0"), "{err}");
    assert!(a.get([1]).is_err());
    assert!(a.read("0,0,0").is_err());
    let h = a.handle().clone();
    assert!(matches!(h.typed::<f32>(), Err(Error::DTypeMismatch { .. })));
}

#[test]
fn memory_report_counts_the_cache() {
    let a = mem_array::<u16>(&[100, 100], &[10, 10], 1 << 20);
    a.fill("0:20, 0:10", 3).unwrap();
    let r = a.memory_report();
    assert_eq!(r.logical_bytes, 20_000);
    assert_eq!(r.resident_bytes, 2 * 200);
    assert_eq!(r.dirty_bytes, 400);
    assert!(r.overhead_bytes > 0);
    a.flush().unwrap();
    assert_eq!(a.memory_report().dirty_bytes, 0);
    let text = r.to_string();
    assert!(text.contains("logical size"), "{text}");
}

#[test]
fn drop_flushes() {
    let meta = StoreMeta {
        dtype: DType::U8,
        shape: vec![10],
        chunks: vec![5],
        fill: vec![0],
    };
    let store = Arc::new(MemoryStore::new(meta));
    {
        let a: Array<u8> = Array::from_store(store.clone(), ChunkCache::new(1 << 20)).unwrap();
        a.fill("3:7", 1).unwrap();
    }
    let r = store.reopen();
    assert_eq!(r.read_chunk(&[0]).unwrap().unwrap(), vec![0, 0, 0, 1, 1]);
    assert_eq!(r.read_chunk(&[1]).unwrap().unwrap(), vec![1, 1, 0, 0, 0]);
}

#[test]
fn bool_arrays() {
    let a = mem_array::<bool>(&[6], &[4], 1 << 20);
    a.write("1:4", &arr1(&[true, false, true])).unwrap();
    assert_eq!(
        a.read(..).unwrap().into_raw_vec_and_offset().0,
        vec![false, true, false, true, false, false]
    );
}

/// Errors name what the caller passed: the data's own shape, the index as
/// given, and a wrong rank as a wrong rank (not a parse error).
#[test]
fn errors_name_what_the_caller_passed() {
    let a = mem_array::<f32>(&[2, 4, 7], &[1, 4, 7], 1 << 20);
    let e = a
        .append(&Array2::<f32>::zeros((3, 7)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[3, 7]") && !e.contains("[1, 3, 7]"), "{e}");
    assert!(e.contains("[4, 7]"), "{e}");
    for e in [
        a.get([1, 2]).unwrap_err().to_string(),
        a.view().get([1usize, 2]).unwrap_err().to_string(),
        a.get([0, 1, 2, 3]).unwrap_err().to_string(),
    ] {
        assert!(e.contains("3 axes") && !e.contains("parse"), "{e}");
    }
    assert!(a.get([1, 2]).unwrap_err().to_string().contains("[1, 2]"));
    let e = a.get([0, -1, 0]).unwrap_err().to_string();
    assert!(e.contains("negative"), "{e}");
    // usize, u64 and literal indices read the same element.
    a.fill(s![1, 3, 6], 2.5).unwrap();
    assert_eq!(a.get([1usize, 3, 6]).unwrap(), 2.5);
    assert_eq!(a.get([1u64, 3, 6]).unwrap(), 2.5);
    assert_eq!(a.get(vec![1usize, 3, 6]).unwrap(), 2.5);
}

/// `close` returns the flush's result: Ok with the data durable, or the
/// store's failure (which a plain drop could only print).
#[test]
fn close_returns_the_flush_error() {
    let meta = StoreMeta {
        dtype: DType::U8,
        shape: vec![10],
        chunks: vec![5],
        fill: vec![0],
    };
    let store = Arc::new(MemoryStore::new(meta.clone()));
    let a: Array<u8> = Array::from_store(store.clone(), ChunkCache::new(1 << 20)).unwrap();
    a.fill("3:7", 1).unwrap();
    a.close().unwrap();
    let r = store.reopen();
    assert_eq!(r.read_chunk(&[0]).unwrap().unwrap(), vec![0, 0, 0, 1, 1]);

    let store = Arc::new(MemoryStore::new(meta));
    let a: Array<u8> = Array::from_store(store.clone(), ChunkCache::new(1 << 20)).unwrap();
    a.fill("3:7", 1).unwrap();
    store.fail_after(0);
    assert!(a.close().is_err());
}

/// Reads into ndarray views of any layout, and resolved selections used
/// again; shapes that do not match are errors.
#[test]
fn reads_into_array_views_and_resolved_selections() {
    let a = mem_array::<i32>(&[7, 9], &[3, 4], 1 << 20);
    let data = Array2::from_shape_fn((7, 9), |(i, j)| (i * 100 + j) as i32);
    a.write(.., &data).unwrap();
    let mut out = Array2::<i32>::zeros((3, 4));
    a.read_into_view(s![1..4, 2..6], out.view_mut()).unwrap();
    assert_eq!(out, data.slice(s![1..4, 2..6]));
    let mut t = Array2::<i32>::zeros((4, 3));
    a.read_into_view(s![1..4, 2..6], t.view_mut().reversed_axes())
        .unwrap();
    assert_eq!(t, data.slice(s![1..4, 2..6]).t());
    let mut wide = Array2::<i32>::zeros((6, 8));
    a.read_into_view(s![1..4, 2..6], wide.slice_mut(s![..;2, ..;2]))
        .unwrap();
    assert_eq!(wide[[4, 6]], data[[3, 5]]);
    let e = a
        .read_into_view(s![1..4, 2..6], out.slice_mut(s![.., 1..]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[3, 3]") && e.contains("[3, 4]"), "{e}");
    let mut v = Array2::<f64>::zeros((2, 3));
    a.cast::<f64>()
        .read_into_view("5:, 6:", v.view_mut())
        .unwrap();
    assert_eq!(v[[1, 2]], 608.0);

    let sel = a.resolve(s![1..;3, 2]).unwrap();
    assert_eq!(sel.out_shape(), vec![2]);
    assert_eq!(a.read(&sel).unwrap(), data.slice(s![1..;3, 2]).into_dyn());
    let empty = a.resolve(s![3..3, ..]).unwrap();
    assert_eq!(a.read(&empty).unwrap().shape(), &[0, 9]);
    a.resize(2).unwrap();
    assert!(a.read(&sel).is_err());
}

/// What the docs say of caches at reopen: the cache is the handle's, not
/// the file's; options are taken by value or by reference alike.
#[test]
fn a_reopen_uses_the_cache_it_is_given_or_the_global_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    let c = ChunkCache::new(3 << 20);
    let opts = crate::ArrayOptions::new([4usize, 8]).cache(c.clone());
    let a = crate::create::<u16>(&p, &opts).unwrap();
    assert_eq!(a.memory_report().cache_budget_bytes, 3 << 20);
    a.close().unwrap();
    let plain = crate::open::<u16>(&p).unwrap();
    assert_eq!(
        plain.memory_report().cache_budget_bytes,
        crate::DEFAULT_CACHE_BYTES as u64
    );
    let given = crate::open_with::<u16>(&p, crate::OpenOptions::new().cache(c)).unwrap();
    assert_eq!(given.memory_report().cache_budget_bytes, 3 << 20);
}

/// An i32 store of `rows` x 8 in 2 x 2 chunks, fill value 7, nothing
/// written (the resize tests below).
fn i32_store_of_7s(rows: u64) -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new(StoreMeta {
        dtype: DType::I32,
        shape: vec![rows, 8],
        chunks: vec![2, 2],
        fill: 7i32.to_ne_bytes().to_vec(),
    }))
}

fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

/// The whole of an i32 array, C order.
fn read_all_i32(a: &ArrayHandle) -> Vec<i32> {
    let all = ResolvedSelection::full(&a.shape());
    let mut out = vec![0u8; all.num_elements() as usize * 4];
    a.read_bytes(&all, &mut out).unwrap();
    out.chunks_exact(4)
        .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
        .collect()
}

/// A shrink clears the part of the new last chunk row past the end, so
/// that a later grow shows the fill value there: only in chunks whose
/// cut rows hold data; the others are neither written nor stored.
#[test]
fn shrinking_rewrites_only_chunks_whose_cut_rows_hold_data() {
    let store = i32_store_of_7s(4);
    let chunk = |v: [i32; 4]| i32_bytes(&v);
    // Chunk (1, 0): data in row 2 only (kept); (1, 1): data in row 3 (cut).
    store.write_chunk(&[1, 0], &chunk([20, 21, 7, 7])).unwrap();
    store.write_chunk(&[1, 1], &chunk([7, 7, 32, 33])).unwrap();
    store.flush().unwrap();
    let cache = ChunkCache::new(1 << 20);
    let a = ArrayHandle::from_store(store.clone(), cache.clone()).unwrap();
    a.resize(3).unwrap();
    assert_eq!(store.chunk_count(), 2, "a shrink stored fill chunks");
    assert_eq!(cache.stats().entries, 1, "{:?}", cache.stats());
    let after = MemoryStore::reopen(&store);
    let c = after.read_chunk(&[1, 1]).unwrap().unwrap();
    assert_eq!(&c[..], &chunk([7, 7, 7, 7])[..], "the cut rows are cleared");
    let c = after.read_chunk(&[1, 0]).unwrap().unwrap();
    assert_eq!(&c[..], &chunk([20, 21, 7, 7])[..]);
    a.resize(4).unwrap();
    let got = read_all_i32(&a);
    let mut want = vec![7; 32];
    want[2 * 8] = 20;
    want[2 * 8 + 1] = 21;
    assert_eq!(got, want, "row 3 reads as fill after the grow");
}

/// Growing checks the old last chunk row's tail by reading it: chunks
/// whose tail already holds the fill value are neither written back nor
/// (if never written) stored, and a stale tail (rows past the end that a
/// shrink cut short left in a chunk) is still cleared.
#[test]
fn growing_rewrites_only_chunks_whose_tail_is_stale() {
    let store = i32_store_of_7s(3);
    // Chunk (1, 1) holds row 2 (inside) and row 3 (past the end: stale).
    store
        .write_chunk(&[1, 1], &i32_bytes(&[20, 21, 30, 31]))
        .unwrap();
    store.flush().unwrap();
    let cache = ChunkCache::new(1 << 20);
    let a = ArrayHandle::from_store(store.clone(), cache.clone()).unwrap();
    a.resize(4).unwrap();
    assert_eq!(store.chunk_count(), 1, "a grow stored fill chunks");
    // Checked without loading the row into the cache: only the chunk
    // cleared is there.
    assert_eq!(cache.stats().entries, 1, "{:?}", cache.stats());
    let got = read_all_i32(&a);
    let mut want = vec![7; 32];
    want[2 * 8 + 2] = 20;
    want[2 * 8 + 3] = 21;
    assert_eq!(got, want, "the stale tail shows after the grow");
    // Durable at once: a crash now leaves the cleared tail.
    let after = MemoryStore::reopen(&store);
    let chunk = after.read_chunk(&[1, 1]).unwrap().unwrap();
    assert_eq!(&chunk[8..], &[7, 0, 0, 0, 7, 0, 0, 0]);
}
