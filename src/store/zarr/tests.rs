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
