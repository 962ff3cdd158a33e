//! Arbitrary `zarr.json` (v3) or `.zarray` (v2) text, optionally with
//! arbitrary bytes as the first chunk, opened through the Zarr store and
//! read: every outcome is a value or a typed error, never a panic or an
//! allocation of what the metadata claims.
//!
//! Input: one flag byte (bit 0: v2), then the metadata text, then
//! optionally `SEPARATOR` and the chunk file's bytes.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chunkyard::store::{ChunkStore, ZarrStore};
use chunkyard::{ArrayHandle, ChunkCache, OpenOptions};
use chunkyard::{AxisSel, ResolvedSelection};
use libfuzzer_sys::fuzz_target;

const SEPARATOR: &[u8] = b"\n--chunk--\n";

/// Chunks larger than this are not read (a legal but costly allocation).
const MAX_READ_CHUNK: u64 = 64 << 20;

fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        std::env::temp_dir().join(format!("chunkyard-fuzz-zarr-{}.zarr", std::process::id()))
    })
}

fn read_some(a: &ArrayHandle) {
    let elem = a.dtype().size();
    let chunk_bytes = a
        .chunks()
        .iter()
        .product::<u64>()
        .saturating_mul(elem as u64);
    if a.is_empty() || chunk_bytes > MAX_READ_CHUNK {
        return;
    }
    let mut out = vec![0u8; elem];
    let _ = a.get_bytes(&vec![0; a.ndim()], &mut out);
    let corner = ResolvedSelection::from_axes(
        a.shape()
            .iter()
            .map(|&n| AxisSel::Range {
                start: 0,
                step: 1,
                count: n.min(4),
            })
            .collect(),
    );
    let mut out = vec![0u8; corner.num_elements() as usize * elem];
    let _ = a.read_bytes(&corner, &mut out);
}

fn open(dir: &Path) -> Option<ArrayHandle> {
    let opts = OpenOptions::new()
        .read_only(true)
        .cache(ChunkCache::new(1 << 20));
    ArrayHandle::open(dir, &opts).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (meta, chunk) = match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        Some(i) => (&rest[..i], Some(&rest[i + SEPARATOR.len()..])),
        None => (rest, None),
    };
    let dir = scratch();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let name = if flags & 1 == 1 {
        ".zarray"
    } else {
        "zarr.json"
    };
    std::fs::write(dir.join(name), meta).unwrap();

    let Some(a) = open(dir) else {
        return;
    };
    read_some(&a);
    let Some(chunk) = chunk else {
        return;
    };
    // The first chunk's file, where the metadata says it lives.
    let Ok(store) = ZarrStore::open(dir, false) else {
        return;
    };
    let file = store.chunk_path(&vec![0; store.meta().shape.len()]);
    drop(store);
    if !file.starts_with(dir) {
        return;
    }
    if let Some(parent) = file.parent() {
        if std::fs::create_dir_all(parent).is_err() {
            return;
        }
    }
    if std::fs::write(&file, chunk).is_err() {
        return;
    }
    if let Some(a) = open(dir) {
        read_some(&a);
    }
});
