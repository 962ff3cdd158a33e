use super::*;
use crate::store::conformance::{self, Harness, Reopen};

fn run_conformance(opts: ZarrOptions) {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    let create = |m: &StoreMeta| -> Result<(Arc<dyn ChunkStore>, Reopen)> {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.path().join(format!("a{i}.zarr"));
        let s = ZarrStore::create(&path, m.dtype, &m.shape, &m.chunks, &m.fill, &opts)?;
        let reopen: Reopen = Box::new(move || Ok(Arc::new(ZarrStore::open(&path, true)?) as _));
        Ok((Arc::new(s) as _, reopen))
    };
    conformance::run_all(&Harness { create: &create });
}

#[test]
fn conformance_uncompressed() {
    run_conformance(ZarrOptions::default());
}

#[test]
fn conformance_every_codec() {
    for codec in [
        Codec::Lz4,
        Codec::Zstd { level: 3 },
        Codec::Gzip { level: 1 },
    ] {
        run_conformance(ZarrOptions {
            codec,
            ..ZarrOptions::default()
        });
    }
}

#[test]
fn conformance_big_endian() {
    run_conformance(ZarrOptions {
        endian: Endian::Big,
        ..ZarrOptions::default()
    });
}

#[test]
fn opening_read_write_removes_temporaries_of_dead_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zarr");
    let fill = [0u8; 4];
    let s = ZarrStore::create(
        &path,
        DType::U32,
        &[8, 8],
        &[4, 4],
        &fill,
        &ZarrOptions::default(),
    )
    .unwrap();
    s.write_chunk(&[1, 0], &[7u8; 64]).unwrap();
    s.flush().unwrap();
    drop(s);
    let chunk_dir = dir.path().join("a.zarr/c/1");
    assert!(chunk_dir.is_dir());
    // What a writer killed between write and rename leaves (its pid can
    // never be alive: above Linux's largest pid_max), plus a file beside
    // the array that is not ours.
    let stale = chunk_dir.join(format!("{}0.999999999.3.tmp", fs::TMP_PREFIX));
    std::fs::write(&stale, [1u8; 10]).unwrap();
    let outside = dir
        .path()
        .join(format!("{}0.999999999.3.tmp", fs::TMP_PREFIX));
    std::fs::write(&outside, [1u8; 10]).unwrap();
    drop(ZarrStore::open(&path, false).unwrap());
    assert!(stale.exists(), "a read-only open changes nothing");
    let s = ZarrStore::open(&path, true).unwrap();
    assert!(!stale.exists(), "a read-write open removes it");
    assert!(outside.exists(), "only inside the array's directory");
    assert_eq!(s.read_chunk(&[1, 0]).unwrap().unwrap().as_ref(), &[7u8; 64]);
}

#[test]
fn the_locked_wrapper_reports_the_write_buffer() {
    // `locked_store!` must delegate every method, defaulted ones too: the
    // trait's default of 0 would let encoded copies escape the budget.
    let dir = tempfile::tempdir().unwrap();
    let s = ZarrStore::create(
        &dir.path().join("a.zarr"),
        DType::F32,
        &[8, 8],
        &[4, 4],
        &[0; 4],
        &ZarrOptions::default(),
    )
    .unwrap();
    assert!(ChunkStore::write_buffer_bytes(&s) >= 64);
}
