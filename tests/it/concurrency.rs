//! Concurrency: many threads writing and reading the same chunks through a
//! cache smaller than the data, on every backend.
//!
//! What the cache promises (src/cache/): every access to a chunk runs
//! under that chunk's lock, loads and write-backs included, and an evicted
//! dirty chunk stays findable until its write-back is done. So a write
//! call is atomic per chunk: the part of one `write`/`fill` that falls in
//! one chunk is applied as a whole, and a reader's copy out of one chunk
//! sees it all or none of it. A write that spans several chunks is
//! applied chunk by chunk: it is not atomic across chunks, and a read that
//! spans several chunks is not a snapshot across them. The tests check
//! exactly that, not more.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::{Backend, TestStore, backends};
use chunkyard::{Array, ChunkCache, DType, s};
use ndarray::{Array1, Array2};

const ROWS: u64 = 16;
const COLS: u64 = 512;
const CHUNKS: [u64; 2] = [4, 128];
const CHUNK_BYTES: usize = 4 * 128 * 8;
const WRITERS: u64 = 8;
const ROUNDS: u64 = 4;

/// A value that names its writer, round and element, with a check byte, so
/// that a torn element (bytes of two values) or a misplaced one shows.
/// Zero (the fill value) means never written.
fn encode(writer: u64, round: u64, index: u64) -> u64 {
    let body = (round + 1) << 48 | writer << 40 | index << 8;
    body | check_byte(body)
}

/// Eight bits that depend on every bit of `body` (splitmix64's finaliser).
fn check_byte(body: u64) -> u64 {
    let mut h = body;
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (h ^ (h >> 31)) & 0xff
}

/// (writer, round, index) of a value, or `None` if it is not one `encode`
/// made.
fn decode(v: u64) -> Option<(u64, u64, u64)> {
    let body = v & !0xff;
    if v & 0xff != check_byte(body) || body >> 48 == 0 {
        return None;
    }
    Some((body >> 40 & 0xff, (body >> 48) - 1, body >> 8 & 0xffff_ffff))
}

fn open(t: &TestStore, cache: &ChunkCache) -> Array<u64> {
    Array::from_store(t.store.clone(), cache.clone()).unwrap()
}

/// 8 writers write interleaved elements (writer `w` owns the columns
/// `w::8`) of every chunk, round after round, through a cache of 3 of the
/// 16 chunks, while 2 readers read rows; then everything is flushed and
/// reopened.
fn interleaved_writers(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore::create(backend, dir.path(), DType::U64, &[ROWS, COLS], &CHUNKS);
    let cache = ChunkCache::new(3 * CHUNK_BYTES);
    let a = open(&t, &cache);
    let done = AtomicBool::new(false);
    let reads = std::thread::scope(|sc| {
        let readers: Vec<_> = (0..2u64)
            .map(|r| {
                let (a, done) = (&a, &done);
                sc.spawn(move || {
                    // Last round seen per element: never goes back.
                    let mut seen = vec![0u64; (ROWS * COLS) as usize];
                    let mut n = 0u64;
                    let mut row = r;
                    while !done.load(Ordering::Relaxed) {
                        row = (row * 7 + 3) % ROWS;
                        let got = a.read(s![row as isize, ..]).unwrap();
                        for (c, &v) in got.iter().enumerate() {
                            let index = row * COLS + c as u64;
                            if v == 0 {
                                assert_eq!(
                                    seen[index as usize], 0,
                                    "element {index} went back to fill"
                                );
                                continue;
                            }
                            let (w, round, i) = decode(v)
                                .unwrap_or_else(|| panic!("element {index}: torn value {v:#x}"));
                            assert_eq!((w, i), (index % WRITERS, index), "element {index}: {v:#x}");
                            assert!(
                                round + 1 >= seen[index as usize],
                                "element {index}: round {round} after {}",
                                seen[index as usize] - 1
                            );
                            seen[index as usize] = round + 1;
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let a = &a;
                sc.spawn(move || {
                    for round in 0..ROUNDS {
                        for row in 0..ROWS {
                            let vals = Array1::from_shape_fn((COLS / WRITERS) as usize, |k| {
                                encode(w, round, row * COLS + w + k as u64 * WRITERS)
                            });
                            a.write(s![row as isize, w as isize..;WRITERS as isize], &vals)
                                .unwrap();
                        }
                    }
                })
            })
            .collect();
        // Stop the readers before a writer's panic is passed on: the
        // scope waits for every thread, and readers spin until `done`.
        let written: Vec<_> = writers.into_iter().map(|h| h.join()).collect();
        done.store(true, Ordering::Relaxed);
        for w in written {
            if let Err(panic) = w {
                std::panic::resume_unwind(panic);
            }
        }
        readers.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert!(reads > 0);
    let stats = cache.stats();
    assert!(
        stats.evictions > 0,
        "the cache was smaller than the data: {stats:?}"
    );
    a.flush().unwrap();
    drop(a);
    let t = t.reopen();
    let a = open(&t, &ChunkCache::new(1 << 20));
    let got = a.read(..).unwrap();
    for ((row, c), &v) in got
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap()
        .indexed_iter()
    {
        let index = row as u64 * COLS + c as u64;
        assert_eq!(
            v,
            encode(index % WRITERS, ROUNDS - 1, index),
            "{backend:?}: element ({row}, {c}) after reopen: {:?}",
            decode(v)
        );
    }
}

/// Every element of `tile` holds the same writer's value from the same
/// round; returns that (writer, round).
fn uniform(tile: &[u64], what: &str) -> (u64, u64) {
    if tile.iter().all(|&v| v == 0) {
        return (u64::MAX, u64::MAX); // not written yet
    }
    let first = decode(tile[0]).unwrap_or_else(|| panic!("{what}: torn value {:#x}", tile[0]));
    for &v in tile {
        let (w, round, _) = decode(v).unwrap_or_else(|| panic!("{what}: torn value {v:#x}"));
        assert_eq!((w, round), (first.0, first.1), "{what}: two writes mixed");
    }
    (first.0, first.1)
}

/// 8 writers overwrite the same tiles with their own values: tile A is
/// 2 x 2 whole chunks, tile B a part of one chunk. Readers and the final
/// state see each chunk's part of a tile from exactly one write (tile B,
/// inside one chunk, wholly from one write); tile A's four chunks may come
/// from different writers, which is all a multi-chunk write promises.
fn overlapping_tiles(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore::create(backend, dir.path(), DType::U64, &[ROWS, COLS], &CHUNKS);
    let cache = ChunkCache::new(3 * CHUNK_BYTES);
    let a = open(&t, &cache);
    // (rows, cols) of the tiles; A covers chunks (1..3, 1..3), B lies
    // inside chunk (3, 3).
    let tile_a = (4u64..12, 128u64..384);
    let tile_b = (13u64..15, 400u64..470);
    let tile_values =
        |w: u64, round: u64, (r, c): &(std::ops::Range<u64>, std::ops::Range<u64>)| {
            Array2::from_shape_fn(
                ((r.end - r.start) as usize, (c.end - c.start) as usize),
                |_| encode(w, round, 0),
            )
        };
    // The chunks of tile A, in tile coordinates.
    let a_chunks = [
        (0..4, 0..128),
        (0..4, 128..256),
        (4..8, 0..128),
        (4..8, 128..256),
    ];
    let check_a = |got: &Array2<u64>, what: &str| {
        for (r, c) in &a_chunks {
            let part: Vec<u64> = got
                .slice(s![
                    r.start as usize..r.end as usize,
                    c.start as usize..c.end as usize
                ])
                .iter()
                .copied()
                .collect();
            uniform(&part, what);
        }
    };
    let done = AtomicBool::new(false);
    std::thread::scope(|sc| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (a, done) = (&a, &done);
                sc.spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        let ga = a.read(s![4..12, 128..384]).unwrap();
                        let ga = ga.into_dimensionality::<ndarray::Ix2>().unwrap();
                        if ga[[0, 0]] != 0 {
                            check_a(&ga, "tile A while written");
                        }
                        let gb = a.read(s![13..15, 400..470]).unwrap();
                        let gb: Vec<u64> = gb.iter().copied().collect();
                        if gb[0] != 0 {
                            uniform(&gb, "tile B while written");
                        }
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (a, tile_a, tile_b, tile_values) = (&a, &tile_a, &tile_b, &tile_values);
                sc.spawn(move || {
                    for round in 0..ROUNDS * 4 {
                        a.write(s![4..12, 128..384], &tile_values(w, round, tile_a))
                            .unwrap();
                        a.write(s![13..15, 400..470], &tile_values(w, round, tile_b))
                            .unwrap();
                        // Other chunks (rows 0..4: four chunks), to push
                        // the tiles out of the cache.
                        let row = (w % 4) as isize;
                        a.fill(s![row, ..], encode(w, round, 0)).unwrap();
                    }
                })
            })
            .collect();
        // Stop the readers before a writer's panic is passed on: the
        // scope waits for every thread, and readers spin until `done`.
        let written: Vec<_> = writers.into_iter().map(|h| h.join()).collect();
        done.store(true, Ordering::Relaxed);
        for w in written {
            if let Err(panic) = w {
                std::panic::resume_unwind(panic);
            }
        }
        for h in readers {
            h.join().unwrap();
        }
    });
    a.flush().unwrap();
    drop(a);
    let t = t.reopen();
    let a = open(&t, &ChunkCache::new(1 << 20));
    let ga = a.read(s![4..12, 128..384]).unwrap();
    check_a(
        &ga.into_dimensionality::<ndarray::Ix2>().unwrap(),
        &format!("{backend:?}: tile A after reopen"),
    );
    let gb: Vec<u64> = a
        .read(s![13..15, 400..470])
        .unwrap()
        .iter()
        .copied()
        .collect();
    let (_, round) = uniform(&gb, &format!("{backend:?}: tile B after reopen"));
    assert_eq!(round, ROUNDS * 4 - 1, "the last write of some writer wins");
}

#[test]
fn interleaved_writers_lose_nothing_on_every_backend() {
    for b in backends() {
        interleaved_writers(b);
    }
}

#[test]
fn overlapping_tiles_are_atomic_per_chunk_on_every_backend() {
    for b in backends() {
        overlapping_tiles(b);
    }
}

#[test]
fn encoding_detects_tearing() {
    let (x, y) = (encode(3, 1, 77), encode(5, 2, 77));
    assert_eq!(decode(x), Some((3, 1, 77)));
    // Any mix of the two values' bytes that differs from both is caught.
    let (xb, yb) = (x.to_le_bytes(), y.to_le_bytes());
    let (mut caught, mut mixes) = (0, 0);
    for mask in 1..255u32 {
        let mut m = [0u8; 8];
        for i in 0..8 {
            m[i] = if mask >> i & 1 == 1 { yb[i] } else { xb[i] };
        }
        let v = u64::from_le_bytes(m);
        if v != x && v != y {
            mixes += 1;
            caught += decode(v).is_none() as u32;
        }
    }
    // The check byte is 8 bits: about 1 in 256 mixes passes it by chance.
    assert!(mixes > 0 && caught + 2 >= mixes, "{caught} of {mixes}");
}
