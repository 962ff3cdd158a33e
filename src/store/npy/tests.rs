//! Tests of the `.npy` store: the conformance suite in every order and
//! byte order, opening and creating files, partial reads through the map,
//! one system call per file run, and raw files.

use std::fs::OpenOptions;

use crate::store::ChunkStoreExt as _;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tempfile::TempDir;

use super::header::tests::framed;
use super::*;
use crate::buffer::ChunkBuf;
use crate::chunk_grid::ChunkGrid;
use crate::dtype::DType;
use crate::error::Error;
use crate::layout::{c_strides, f_strides};
use crate::store::{ChunkStore, StoreMeta, conformance, extract_region};

fn run_conformance(opts: NpyOptions) {
    let dir = TempDir::new().unwrap();
    let n = AtomicUsize::new(0);
    conformance::run_all(&conformance::Harness {
        create: &|m: &StoreMeta| {
            let path = dir
                .path()
                .join(format!("a{}.npy", n.fetch_add(1, Ordering::Relaxed)));
            let s = NpyStore::create(&path, m.dtype, &m.shape, &m.chunks, &opts)?;
            assert_eq!(&s.meta(), m);
            let chunks = m.chunks.clone();
            let reopen: conformance::Reopen = Box::new(move || {
                Ok(Arc::new(NpyStore::open(&path, Some(&chunks), true)?) as Arc<dyn ChunkStore>)
            });
            Ok((Arc::new(s) as Arc<dyn ChunkStore>, reopen))
        },
    });
}

#[test]
fn conformance_c_order_little_endian() {
    run_conformance(NpyOptions::default());
}

#[test]
fn conformance_fortran_order() {
    run_conformance(NpyOptions {
        order: Order::Fortran,
        ..NpyOptions::default()
    });
}

#[test]
fn conformance_big_endian() {
    run_conformance(NpyOptions {
        endian: Endian::Big,
        ..NpyOptions::default()
    });
}

#[test]
fn conformance_fortran_big_endian() {
    run_conformance(NpyOptions {
        order: Order::Fortran,
        endian: Endian::Big,
        overwrite: false,
    });
}
// -- files --------------------------------------------------------------

#[test]
fn open_names_the_file_and_the_problem() {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("bad.npy");
    std::fs::write(&p, b"hello").unwrap();
    let e = NpyStore::open(&p, None, false).unwrap_err();
    assert!(matches!(e, Error::Format { .. }), "{e}");
    assert!(
        e.to_string().contains("bad.npy") && e.to_string().contains("magic"),
        "{e}"
    );

    // Header length beyond the end of the file.
    let mut h = framed(
        (1, 0),
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }",
    );
    h.truncate(40);
    std::fs::write(&p, &h).unwrap();
    let e = NpyStore::open(&p, None, false).unwrap_err().to_string();
    assert!(e.contains("truncated header"), "{e}");

    // Data shorter than the shape says.
    let mut h = framed(
        (1, 0),
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }",
    );
    h.extend_from_slice(&[0; 12]);
    std::fs::write(&p, &h).unwrap();
    let e = NpyStore::open(&p, None, false).unwrap_err().to_string();
    assert!(
        e.contains("truncated: expected 20 data bytes, found 12"),
        "{e}"
    );
    assert!(e.contains("bad.npy"), "{e}");

    // Unsupported dtype.
    let mut h = framed(
        (1, 0),
        b"{'descr': '<c8', 'fortran_order': False, 'shape': (5,), }",
    );
    h.extend_from_slice(&[0; 40]);
    std::fs::write(&p, &h).unwrap();
    let e = NpyStore::open(&p, None, false).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    assert!(
        e.to_string().contains("bad.npy") && e.to_string().contains("<c8"),
        "{e}"
    );

    // Raw file shorter than its layout.
    std::fs::write(&p, [0u8; 30]).unwrap();
    let layout = RawLayout {
        dtype: DType::F32,
        endian: Endian::Little,
        shape: vec![2, 4],
        offset: 3,
        order: Order::C,
    };
    let e = NpyStore::open_raw(&p, &layout, None, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("truncated: expected 32 data bytes, found 27"),
        "{e}"
    );

    // Missing file.
    let e = NpyStore::open(&dir.path().join("none.npy"), None, false).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

#[test]
fn create_refuses_existing_files_unless_overwrite() {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("a.npy");
    std::fs::write(&p, b"precious").unwrap();
    let e = NpyStore::create(&p, DType::U8, &[4], &[2], &NpyOptions::default()).unwrap_err();
    assert!(e.to_string().contains("overwrite"), "{e}");
    assert_eq!(std::fs::read(&p).unwrap(), b"precious");
    let opts = NpyOptions {
        overwrite: true,
        ..NpyOptions::default()
    };
    let s = NpyStore::create(&p, DType::U8, &[4], &[2], &opts).unwrap();
    assert_eq!(
        s.read_chunk(&[1]).unwrap(),
        Some(ChunkBuf::from(vec![0, 0]))
    );
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 128 + 4);
}

#[test]
fn bad_chunk_shapes_are_errors() {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("a.npy");
    let o = NpyOptions::default();
    assert!(NpyStore::create(&p, DType::U8, &[4, 4], &[2], &o).is_err());
    assert!(NpyStore::create(&p, DType::U8, &[4, 4], &[2, 0], &o).is_err());
    let e =
        NpyStore::create(&p, DType::F64, &[1 << 20, 1 << 20], &[1 << 16, 1 << 16], &o).unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("a.npy"),
        "{e}"
    );
    assert!(!p.exists(), "nothing created for a refused chunk shape");
    // Too large for any file system: refused, and nothing left behind.
    let e = NpyStore::create(&p, DType::F64, &[1 << 58], &[1 << 20], &o).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(!p.exists(), "a failed create leaves no file");
    let e = NpyStore::create(&p, DType::F64, &[1 << 61], &[1 << 20], &o).unwrap_err();
    assert!(e.to_string().contains("64 bits"), "{e}");
    let e = NpyStore::create(&p, DType::U8, &[u64::MAX - 10], &[1 << 20], &o).unwrap_err();
    assert!(e.to_string().contains("does not fit in a file"), "{e}");
    assert!(!p.exists());
    NpyStore::create(&p, DType::U8, &[4, 4], &[2, 2], &o).unwrap();
    assert!(NpyStore::open(&p, Some(&[5]), false).is_err());
}

#[test]
fn read_only_stores_refuse_writes() {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("a.npy");
    let s = NpyStore::create(&p, DType::I32, &[4], &[2], &NpyOptions::default()).unwrap();
    s.write_chunk(&[1], &[1, 0, 0, 0, 2, 0, 0, 0]).unwrap();
    drop(s);
    let r = NpyStore::open(&p, Some(&[2]), false).unwrap();
    for e in [
        r.write_chunk(&[0], &[0; 8]).unwrap_err(),
        r.erase_chunk(&[1]).unwrap_err(),
    ] {
        match e {
            Error::Store { backend, message } => {
                assert_eq!(backend, "npy");
                assert!(message.contains("read-only"), "{message}");
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(
        r.read_chunk(&[1]).unwrap(),
        Some(ChunkBuf::from(vec![1, 0, 0, 0, 2, 0, 0, 0]))
    );
    r.flush().unwrap();
}

#[test]
fn bad_regions_are_errors() {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("a.npy");
    let s = NpyStore::create(&p, DType::U8, &[5, 5], &[2, 3], &NpyOptions::default()).unwrap();
    assert!(s.read_region(&[0, 0], &[(0, 1, 2)]).is_err());
    assert!(s.read_region(&[0, 0], &[(0, 1, 3), (0, 1, 1)]).is_err());
    assert!(s.read_region(&[0, 0], &[(1, 1, 1), (0, 2, 3)]).is_err());
    assert!(s.read_region(&[0, 0], &[(1, 1, 1), (0, 2, 2)]).is_ok());
    assert!(s.read_region(&[0, 0], &[(0, 0, 2), (0, 1, 1)]).is_err());
    assert!(s.read_region(&[3, 0], &[(0, 1, 1), (0, 1, 1)]).is_err());
    assert!(
        s.read_region(&[0, 0], &[(0, u64::MAX, 2), (0, 1, 1)])
            .is_err()
    );
    assert_eq!(
        s.read_region(&[0, 0], &[(0, 1, 0), (0, 1, 3)]).unwrap(),
        Some(vec![])
    );
    // Past the array's edge inside an edge chunk: zeros.
    s.write_chunk(&[2, 1], &[9; 6]).unwrap();
    assert_eq!(
        s.read_region(&[2, 1], &[(0, 1, 2), (0, 1, 3)]).unwrap(),
        Some(vec![9, 9, 0, 0, 0, 0])
    );
}

#[test]
fn zero_d_and_empty_arrays() {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("scalar.npy");
    let s = NpyStore::create(&p, DType::F64, &[], &[], &NpyOptions::default()).unwrap();
    s.write_chunk(&[], &2.5f64.to_ne_bytes()).unwrap();
    drop(s);
    let s = NpyStore::open(&p, None, false).unwrap();
    assert_eq!(
        s.read_chunk(&[]).unwrap(),
        Some(ChunkBuf::from(2.5f64.to_ne_bytes().to_vec()))
    );
    assert_eq!(
        s.read_region(&[], &[]).unwrap(),
        Some(2.5f64.to_ne_bytes().to_vec())
    );

    let p = dir.path().join("empty.npy");
    let s = NpyStore::create(
        &p,
        DType::I16,
        &[0, 1 << 40, 1 << 40],
        &[1, 1, 1],
        &NpyOptions::default(),
    )
    .unwrap();
    assert_eq!(s.inner.read().grid.num_chunks(), 0);
    assert!(s.read_chunk(&[0, 0, 0]).is_err());
    drop(s);
    let s = NpyStore::open(&p, None, true).unwrap();
    assert_eq!(s.meta().shape, vec![0, 1 << 40, 1 << 40]);
}

#[test]
fn default_chunks_follow_the_file_order() {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("f.npy");
    let opts = NpyOptions {
        order: Order::Fortran,
        ..NpyOptions::default()
    };
    NpyStore::create(&p, DType::F32, &[2000, 2000, 500], &[1, 1, 1], &opts).unwrap();
    let s = NpyStore::open(&p, None, false).unwrap();
    assert_eq!(s.meta().chunks, vec![2000, 2000, 1]);
    assert_eq!(s.header().order, Order::Fortran);
}

#[test]
fn new_files_are_sparse() {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("big.npy");
    let s = NpyStore::create(
        &p,
        DType::F32,
        &[256, 1024, 1024],
        &[1, 1024, 1024],
        &NpyOptions::default(),
    )
    .unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().len(), (1 << 30) + 128);
    let stored = s.stored_bytes().unwrap();
    assert!(stored < 1 << 20, "a new 1 GiB file occupies {stored} bytes");
    // Reading chunks does not allocate blocks either.
    assert_eq!(s.read_chunk(&[100, 0, 0]).unwrap().unwrap().len(), 4 << 20);
    s.flush().unwrap();
    assert!(s.stored_bytes().unwrap() < 1 << 20);
    // Writing one chunk allocates about one chunk.
    s.write_chunk(&[7, 0, 0], &vec![1; 4 << 20]).unwrap();
    s.flush().unwrap();
    let stored = s.stored_bytes().unwrap();
    assert!((4 << 20..6 << 20).contains(&stored), "{stored}");
}

/// Resident bytes of this process's mapping of `path`, from
/// `/proc/self/smaps`.
fn mapped_rss(path: &Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
    let name = path.to_str().unwrap();
    let mut in_map = false;
    let mut total = 0;
    let mut found = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            in_map = line.trim_end().ends_with(name);
            found |= in_map;
        } else if in_map && let Some(kb) = line.strip_prefix("Rss:") {
            total += kb
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap()
                * 1024;
        }
    }
    assert!(found, "no mapping of {name}");
    total
}

#[test]
fn one_element_of_a_64_mib_file() {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("f.npy");
    let s = NpyStore::create(
        &p,
        DType::F32,
        &[4096, 4096],
        &[64, 64],
        &NpyOptions::default(),
    )
    .unwrap();
    let values: Vec<f32> = (0..64 * 64).map(|i| i as f32 * 0.5).collect();
    s.write_chunk(&[37, 11], bytemuck::cast_slice(&values))
        .unwrap();
    s.flush().unwrap();
    drop(s);
    let s = NpyStore::open(&p, Some(&[64, 64]), false).unwrap();
    // Element (37 * 64 + 5, 11 * 64 + 9) is element (5, 9) of the chunk.
    let got = s
        .read_region(&[37, 11], &[(5, 1, 1), (9, 1, 1)])
        .unwrap()
        .unwrap();
    assert_eq!(got, (((5 * 64 + 9) as f32) * 0.5).to_ne_bytes());
    let zero = s
        .read_region(&[0, 63], &[(63, 1, 1), (63, 1, 1)])
        .unwrap()
        .unwrap();
    assert_eq!(zero, 0f32.to_ne_bytes());
    let rss = mapped_rss(&p);
    assert!(
        rss <= 256 << 10,
        "two one-element reads made {rss} bytes resident"
    );
}

#[test]
fn map_pages_are_released_after_the_threshold() {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("f.npy");
    let s = NpyStore::create(
        &p,
        DType::U8,
        &[96, 1 << 20],
        &[1, 1 << 20],
        &NpyOptions::default(),
    )
    .unwrap();
    for i in 0..96u64 {
        s.write_chunk(&[i, 0], &vec![i as u8 + 1; 1 << 20]).unwrap();
    }
    let mut max_rss = 0;
    for i in 0..96u64 {
        let got = s
            // A byte of every page: many runs, so the read goes through
            // the map (one run would be a single `pread`), and the row's
            // pages are all faulted in.
            .read_region(&[i, 0], &[(0, 1, 1), (0, 4096, 256)])
            .unwrap()
            .unwrap();
        assert!(got.iter().all(|&b| b == i as u8 + 1), "row {i}");
        max_rss = max_rss.max(mapped_rss(&p));
    }
    let limit = crate::store::filemap::RELEASE_AFTER_BYTES;
    // The release estimate counts a fault-around window per run, more
    // than a byte a page faults in, so strided reads are released before
    // the map holds the whole threshold: some rows' worth, not all.
    assert!(
        max_rss > limit / 8,
        "reads went through the map ({max_rss})"
    );
    assert!(
        max_rss <= limit + (6 << 20),
        "resident map grew to {max_rss} bytes"
    );
}

#[test]
fn fortran_and_c_files_hold_the_same_elements() {
    // The same values stored in C and Fortran order read as the same
    // chunks, edge chunks included.
    let dir = TempDir::new().unwrap();
    let shape = [7u64, 10, 3];
    let chunks = [3u64, 4, 2];
    let mut stores = Vec::new();
    for (i, order) in [Order::C, Order::Fortran].into_iter().enumerate() {
        let opts = NpyOptions {
            order,
            endian: if i == 0 { Endian::Little } else { Endian::Big },
            overwrite: false,
        };
        let p = dir.path().join(format!("{i}.npy"));
        stores.push(NpyStore::create(&p, DType::U16, &shape, &chunks, &opts).unwrap());
    }
    let grid = ChunkGrid::new(&shape, &chunks, 2).unwrap();
    for c in grid.chunk_coords() {
        let data: Vec<u8> = (0..grid.chunk_elements() * 2)
            .map(|k| (k as u64 * 7 + grid.linear_index(&c) * 13) as u8)
            .collect();
        for s in &stores {
            s.write_chunk(&c, &data).unwrap();
        }
    }
    // Whole file, element by element, in each order.
    let c_file = std::fs::read(stores[0].path()).unwrap();
    let f_file = std::fs::read(stores[1].path()).unwrap();
    let (cs, fs) = (c_strides(&shape), f_strides(&shape));
    for i in 0..7 {
        for j in 0..10 {
            for k in 0..3 {
                let a = 128 + 2 * (i * cs[0] + j * cs[1] + k * cs[2]);
                let b = 128 + 2 * (i * fs[0] + j * fs[1] + k * fs[2]);
                assert_eq!(c_file[a], f_file[b + 1], "({i}, {j}, {k})");
                assert_eq!(c_file[a + 1], f_file[b], "({i}, {j}, {k})");
            }
        }
    }
    for c in grid.chunk_coords() {
        let a = stores[0].read_chunk(&c).unwrap().unwrap();
        let b = stores[1].read_chunk(&c).unwrap().unwrap();
        let m = &stores[0].meta();
        let ext: Vec<(u64, u64, u64)> = grid.chunk_extent(&c).iter().map(|&n| (0, 1, n)).collect();
        assert_eq!(
            extract_region(m, &a, &ext),
            extract_region(m, &b, &ext),
            "{c:?}"
        );
    }
}

#[test]
fn one_system_call_per_file_run() {
    let dir = TempDir::new().unwrap();
    let calls = |s: &NpyStore| s.inner.read().io_calls.swap(0, Ordering::Relaxed);
    let fortran = NpyOptions {
        order: Order::Fortran,
        ..NpyOptions::default()
    };
    let c = NpyOptions::default();
    /// Shape, chunk shape, options, chunk, runs expected.
    type Case<'a> = (&'a [u64], &'a [u64], &'a NpyOptions, &'a [u64], u64);
    let cases: [Case<'_>; 8] = [
        // Whole trailing axes: one run per chunk, edge or not.
        (&[7, 10], &[3, 10], &c, &[0, 0], 1),
        (&[7, 10], &[3, 10], &c, &[2, 0], 1),
        // Padding in a trailing axis: rows are still contiguous in the file.
        (&[7, 10], &[3, 12], &c, &[2, 0], 1),
        // Cut trailing axis: one run per row.
        (&[7, 10], &[3, 4], &c, &[1, 1], 3),
        (&[7, 10], &[3, 4], &c, &[2, 2], 1),
        // Fortran: leading axes are the contiguous ones.
        (&[7, 10, 3], &[7, 10, 1], &fortran, &[0, 0, 2], 1),
        (&[7, 10, 3], &[7, 4, 2], &fortran, &[0, 2, 1], 1),
        (&[7, 10, 3], &[3, 4, 2], &fortran, &[1, 1, 0], 8),
    ];
    for (i, (shape, chunks, opts, chunk, runs)) in cases.into_iter().enumerate() {
        let p = dir.path().join(format!("{i}.npy"));
        let s = NpyStore::create(&p, DType::U8, shape, chunks, opts).unwrap();
        let data = vec![1u8; s.meta().chunk_bytes()];
        s.write_chunk(chunk, &data).unwrap();
        assert_eq!(calls(&s), runs, "write {shape:?} {chunks:?} {chunk:?}");
        s.read_chunk(chunk).unwrap();
        assert_eq!(calls(&s), runs, "read {shape:?} {chunks:?} {chunk:?}");
        s.erase_chunk(chunk).unwrap();
        assert_eq!(calls(&s), runs, "erase {shape:?} {chunks:?} {chunk:?}");
    }
}

#[test]
fn bools_read_as_zero_or_one() {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("b.npy");
    let s = NpyStore::create(&p, DType::Bool, &[4], &[4], &NpyOptions::default()).unwrap();
    drop(s);
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(&[0, 2, 255, 1], 128).unwrap();
    let s = NpyStore::open(&p, None, false).unwrap();
    assert_eq!(
        s.read_chunk(&[0]).unwrap(),
        Some(ChunkBuf::from(vec![0, 1, 1, 1]))
    );
    assert_eq!(s.read_region(&[0], &[(1, 1, 2)]).unwrap(), Some(vec![1, 1]));
}

fn i32s(b: &[u8]) -> Vec<i32> {
    b.chunks_exact(4)
        .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn raw_files_round_trip() {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("r.bin");
    let layout = RawLayout {
        dtype: DType::I32,
        endian: Endian::Big,
        shape: vec![3, 5],
        offset: 7,
        order: Order::Fortran,
    };
    let s = NpyStore::create_raw(&p, &layout, &[2, 2], false).unwrap();
    assert_eq!(s.header().version, (0, 0));
    assert_eq!(s.header().data_offset, 7);
    let grid = ChunkGrid::new(&[3, 5], &[2, 2], 4).unwrap();
    for c in grid.chunk_coords() {
        let o = grid.chunk_origin(&c);
        let vals: Vec<i32> = (0..4)
            .map(|k| ((o[0] + k / 2) * 10 + o[1] + k % 2) as i32 - 20)
            .collect();
        s.write_chunk(&c, bytemuck::cast_slice(&vals)).unwrap();
    }
    drop(s);
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(bytes.len(), 7 + 60);
    // Fortran, big-endian: element (i, j) at 7 + 4 * (i + 3 j).
    for i in 0..3 {
        for j in 0..5 {
            let at = 7 + 4 * (i + 3 * j);
            let v = i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
            assert_eq!(v, (i * 10 + j) as i32 - 20);
        }
    }
    let r = NpyStore::open_raw(&p, &layout, Some(&[3, 5]), false).unwrap();
    let all = i32s(&r.read_chunk(&[0, 0]).unwrap().unwrap());
    let want: Vec<i32> = (0..15).map(|k| (k / 5 * 10 + k % 5) - 20).collect();
    assert_eq!(all, want);
    let col = r
        .read_region(&[0, 0], &[(0, 1, 3), (4, 1, 1)])
        .unwrap()
        .unwrap();
    assert_eq!(i32s(&col), vec![-16, -6, 4]);
}

/// A dense strided region of a chunk whose pages are not in the page
/// cache is read with `pread`s of its span in bounded pieces
/// (`store::cover`), the same values as through the map once warm.
#[test]
fn cold_dense_regions_read_their_span_in_pieces() {
    use crate::store::Strided;
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("cold.npy");
    let (planes, side) = (3u64, 1024u64);
    let s = NpyStore::create(
        &p,
        DType::F32,
        &[planes, side, side],
        &[1, side, side],
        &NpyOptions::default(),
    )
    .unwrap();
    let plane = (side * side) as usize;
    for z in 0..planes {
        let data: Vec<u8> = (0..plane)
            .flat_map(|i| ((z as usize * plane + i) as f32).to_ne_bytes())
            .collect();
        s.write_chunk(&[z, 0, 0], &data).unwrap();
    }
    s.flush().unwrap();
    let calls = |s: &NpyStore| s.inner.read().io_calls.swap(0, Ordering::Relaxed);
    calls(&s);
    // a[1, ::2, 1::2]: 512 x 512 one-element runs over 4 MiB.
    let region = [(0, 1, 1), (0, 2, side / 2), (1, 2, side / 2)];
    let want: Vec<f32> = (0..side as usize / 2)
        .flat_map(|r| {
            (0..side as usize / 2).map(move |c| (plane + 2 * r * 1024 + 2 * c + 1) as f32)
        })
        .collect();
    let read = |s: &NpyStore| {
        let mut out = vec![0u8; want.len() * 4];
        let at = [side / 2 * side / 2, side / 2, 1].map(|x| x as usize);
        assert!(
            s.read_region_into(
                &[1, 0, 0],
                &region,
                &mut out,
                Strided {
                    offset: 0,
                    strides: &at
                }
            )
            .unwrap()
        );
        let got: Vec<f32> = out
            .chunks_exact(4)
            .map(|b| f32::from_ne_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(got, want);
    };
    // Drop the file's (clean, synced) pages from the page cache.
    let f = std::fs::File::open(&p).unwrap();
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    let data = s.inner.read().header.data_offset;
    let first = data + (plane * 4 + 4) as u64;
    let cold = crate::store::cover::is_cold(&f, first, first + (4 << 20) - 16) == Some(true);
    read(&s);
    if cold {
        // 512 rows of the selection, 128 to a 1 MiB piece.
        assert_eq!(calls(&s), 4);
    }
    // Warm now: through the map, no read.
    read(&s);
    assert_eq!(calls(&s), 0);
    // A sparse region of a cold chunk, a[2, ::64, 5] (16 elements 256 KiB
    // apart over 4 MiB), is not read covering: through the map.
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    let mut col = vec![0u8; 16 * 4];
    let at = [0usize, 1, 1];
    assert!(
        s.read_region_into(
            &[2, 0, 0],
            &[(0, 1, 1), (0, 64, 16), (5, 1, 1)],
            &mut col,
            Strided {
                offset: 0,
                strides: &at
            }
        )
        .unwrap()
    );
    let got: Vec<f32> = col
        .chunks_exact(4)
        .map(|b| f32::from_ne_bytes(b.try_into().unwrap()))
        .collect();
    let want_col: Vec<f32> = (0..16)
        .map(|r| (2 * plane + r * 64 * 1024 + 5) as f32)
        .collect();
    assert_eq!(got, want_col);
    assert_eq!(calls(&s), 0, "sparse: no covering read");
}
