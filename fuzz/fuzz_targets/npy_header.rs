//! Arbitrary bytes as a `.npy` header (`parse_npy_header`) and as a whole
//! file opened through `ArrayHandle::open` and read: every outcome is a
//! value or a typed error; no panic, no allocation of what a header claims
//! (run.sh sets libFuzzer's -malloc_limit_mb and -rss_limit_mb).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use chunkyard::store::parse_npy_header;
use chunkyard::{ArrayHandle, ChunkCache, OpenOptions};
use chunkyard::{AxisSel, ResolvedSelection};
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("chunkyard-fuzz-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("a.npy")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = parse_npy_header(data) {
        // A header that parses describes an array whose byte size fits.
        let elems = h
            .shape
            .iter()
            .try_fold(1u64, |a, &n| a.checked_mul(n))
            .expect("parsed shape overflows");
        assert!(elems.checked_mul(h.dtype.size() as u64).is_some());
    }

    let path = scratch();
    std::fs::write(path, data).unwrap();
    for read_only in [true, false] {
        let opts = OpenOptions::new()
            .read_only(read_only)
            .cache(ChunkCache::new(1 << 20));
        let Ok(a) = ArrayHandle::open(path, &opts) else {
            continue;
        };
        let elem = a.dtype().size();
        // The first and the last element, and a small corner.
        if !a.is_empty() {
            let mut out = vec![0u8; elem];
            let first = vec![0u64; a.ndim()];
            let last: Vec<u64> = a.shape().iter().map(|&n| n - 1).collect();
            let _ = a.get_bytes(&first, &mut out);
            let _ = a.get_bytes(&last, &mut out);
            let corner = ResolvedSelection::from_axes(
                a.shape()
                    .iter()
                    .map(|&n| AxisSel::Range {
                        start: 0,
                        step: 1,
                        count: n.min(3),
                    })
                    .collect(),
            );
            let n = corner.num_elements() as usize;
            let mut out = vec![0u8; n * elem];
            let _ = a.read_bytes(&corner, &mut out);
            if !read_only {
                let _ = a.write_bytes(&corner, &out);
                let _ = a.flush();
            }
        }
    }
});
