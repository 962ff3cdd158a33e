//! The tile floor: random tiles copied straight out of maps of a built
//! file, without chunkyard, the maps released as chunkyard's are: what the
//! machine allows for the bench's tile reads.

use std::path::Path;
use std::time::Instant;

use chunkyard::{Error, Format, Result};

/// µs per random tile copied row by row out of maps of the file's data,
/// page cache warm, with no chunkyard code in the way: the floor under
/// [`ReadReport::tile_us`](crate::bench::reads::ReadReport::tile_us). Measured for `.npy` files (one map of the
/// file) and for Zarr arrays whose chunks are whole planes stored raw
/// (one map per chunk file, as chunkyard's Zarr store keeps them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TileFloor {
    /// The maps' pages released (`MADV_DONTNEED`) whenever the reads may
    /// have made 32 MiB resident, by the estimate chunkyard's own maps use:
    /// the resident bound chunkyard keeps. Each tile then faults its rows'
    /// pages into the process again.
    pub bounded_us: f64,
    /// Never released, and the same tiles read a second time: every page
    /// they touch is mapped already, as in a `numpy.memmap` that has
    /// touched them before, at the price of `unbounded_resident` bytes.
    pub unbounded_us: f64,
    /// File-backed resident bytes after the unbounded pass.
    pub unbounded_resident: u64,
}

/// [`TileFloor::bounded_us`] on a float32 `[depth, rows, cols]` volume
/// the bench built (`path`: an `.npy` file, or a Zarr array of raw
/// `(1, rows, cols)` chunks), page cache warm: `tiles` (corners) of `tr`
/// x `tc` elements, on fresh maps released as chunkyard's are. `None`
/// for a file whose planes are not stored raw (a compressed Zarr array,
/// HDF5).
pub fn tile_floor_bounded(
    path: &Path,
    dims: [u64; 3],
    tile: [u64; 2],
    tiles: &[[u64; 3]],
) -> Result<Option<f64>> {
    let Some(planes) = PlaneMaps::open(path, dims)? else {
        return Ok(None);
    };
    Ok(Some(floor_passes(&planes, dims, tile, tiles, true, 1).0))
}

/// [`TileFloor::unbounded_us`] and [`TileFloor::unbounded_resident`], as
/// [`tile_floor_bounded`]: the tiles read twice on maps never released,
/// the second pass timed.
pub fn tile_floor_unbounded(
    path: &Path,
    dims: [u64; 3],
    tile: [u64; 2],
    tiles: &[[u64; 3]],
) -> Result<Option<(f64, u64)>> {
    let Some(planes) = PlaneMaps::open(path, dims)? else {
        return Ok(None);
    };
    Ok(Some(floor_passes(&planes, dims, tile, tiles, false, 2)))
}

/// Read-only maps of a volume's planes for the tile floor: where plane `z`
/// starts (a map and a byte offset in it).
struct PlaneMaps {
    maps: Vec<memmap2::Mmap>,
    /// Per plane: (index into `maps`, byte offset).
    planes: Vec<(usize, usize)>,
}

impl PlaneMaps {
    fn open(path: &Path, [depth, rows, cols]: [u64; 3]) -> Result<Option<PlaneMaps>> {
        let plane_bytes = (rows * cols) as usize * std::mem::size_of::<f32>();
        let map = |p: &Path| -> Result<memmap2::Mmap> {
            let file = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
            // SAFETY: the bench's own file, built and flushed before the
            // floor runs; nothing writes or truncates it while it is
            // mapped, and the map is only read.
            let m = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(p, e))?;
            // As the stores map files: no read-ahead, a fault maps a page.
            m.advise(memmap2::Advice::Random)
                .map_err(|e| Error::io(p, e))?;
            Ok(m)
        };
        match Format::from_path(path)? {
            Format::Npy => {
                let m = map(path)?;
                let Some(data) = m.len().checked_sub(depth as usize * plane_bytes) else {
                    return Err(Error::format(path, "shorter than its data"));
                };
                let planes = (0..depth as usize)
                    .map(|z| (0, data + z * plane_bytes))
                    .collect();
                Ok(Some(PlaneMaps {
                    maps: vec![m],
                    planes,
                }))
            }
            Format::Zarr => {
                let store = chunkyard::store::ZarrStore::open(path, false)?;
                let meta = chunkyard::store::ChunkStore::meta(&store);
                if meta.shape != [depth, rows, cols] {
                    return Err(Error::format(path, "not the shape asked for"));
                }
                if meta.chunks != [1, rows, cols] {
                    return Ok(None);
                }
                let mut maps = Vec::with_capacity(depth as usize);
                for z in 0..depth {
                    let p = store.chunk_path(&[z, 0, 0]);
                    let m = map(&p)?;
                    // A compressed chunk is not a plane of raw floats.
                    if m.len() != plane_bytes {
                        return Ok(None);
                    }
                    maps.push(m);
                }
                let planes = (0..maps.len()).map(|z| (z, 0)).collect();
                Ok(Some(PlaneMaps { maps, planes }))
            }
            // HDF5, and any other format: planes not known to be raw.
            _ => Ok(None),
        }
    }
}

/// `passes` passes over `tiles` on the maps, releasing the maps read
/// since the last release as chunkyard's are (one [`Touched`]
/// for them all, as a Zarr store keeps) if `release`: µs per tile in the
/// last pass, and file-backed resident bytes after it.
///
/// [`Touched`]: chunkyard::store::Touched
fn floor_passes(
    maps: &PlaneMaps,
    [_, _, cols]: [u64; 3],
    [tr, tc]: [u64; 2],
    tiles: &[[u64; 3]],
    release: bool,
    passes: usize,
) -> (f64, u64) {
    use chunkyard::store::{Touched, release_pages, touched_estimate};
    let elem = std::mem::size_of::<f32>();
    let (row_stride, row_bytes) = (cols as usize * elem, tc as usize * elem);
    let span = (tr as usize - 1) * row_stride + row_bytes;
    let mut out = vec![0u8; tr as usize * row_bytes];
    let mut used = vec![false; maps.maps.len()];
    let mut us = 0.0;
    for _ in 0..passes {
        let touched = Touched::default();
        let t = Instant::now();
        for &[z, r, c] in tiles {
            let (m, at) = maps.planes[z as usize];
            copy_tile(&maps.maps[m][at..], cols, tc, [r, c], &mut out);
            used[m] = true;
            if release && touched.note(touched_estimate(tr, row_bytes, span)) {
                for (m, used) in maps.maps.iter().zip(&mut used) {
                    if std::mem::take(used) {
                        let _ = release_pages(m);
                    }
                }
            }
        }
        std::hint::black_box(&out);
        us = t.elapsed().as_secs_f64() * 1e6 / tiles.len().max(1) as f64;
    }
    let resident = crate::procmem::Rss::now().map_or(0, |r| r.file);
    (us, resident)
}

/// Copies the tile of rows `out.len() / (tc * 4)` and `tc` columns at
/// `[r, c]` out of `plane`, a C-order float32 plane `cols` wide, row by
/// row: the floor's copy.
fn copy_tile(plane: &[u8], cols: u64, tc: u64, [r, c]: [u64; 2], out: &mut [u8]) {
    let elem = std::mem::size_of::<f32>();
    let (row_stride, row_bytes) = (cols as usize * elem, tc as usize * elem);
    let first = (r * cols + c) as usize * elem;
    for (i, dst) in out.chunks_exact_mut(row_bytes).enumerate() {
        let at = first + i * row_stride;
        dst.copy_from_slice(&plane[at..at + row_bytes]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::build::tests::small_build;
    use chunkyard::Codec;

    #[test]
    fn tile_floor_copies_the_tiles_chunkyard_reads() {
        let dir = tempfile::tempdir().unwrap();
        let dims = [3, 96, 80];
        let tiles = [[0, 0, 0], [2, 96 - 64, 80 - 64], [1, 5, 7]];
        for format in [Format::Npy, Format::Zarr] {
            let r = small_build(format, dir.path(), dims, 1 << 20, 2, Codec::None);
            let planes = PlaneMaps::open(&r.path, dims).unwrap().unwrap();
            let a = chunkyard::open::<f32>(&r.path).unwrap();
            for [z, y, x] in tiles {
                let mut got = vec![0u8; 64 * 64 * 4];
                let (m, at) = planes.planes[z as usize];
                copy_tile(&planes.maps[m][at..], 80, 64, [y, x], &mut got);
                let (z, y, x) = (z as isize, y as isize, x as isize);
                let want = a.read(ndarray::s![z, y..y + 64, x..x + 64]).unwrap();
                let want: Vec<u8> = want.iter().flat_map(|v| v.to_ne_bytes()).collect();
                assert_eq!(got, want, "{format:?} tile at {z}, {y}, {x}");
            }
            let bounded = tile_floor_bounded(&r.path, dims, [64, 64], &tiles)
                .unwrap()
                .unwrap();
            let (unbounded, resident) = tile_floor_unbounded(&r.path, dims, [64, 64], &tiles)
                .unwrap()
                .unwrap();
            assert!(bounded > 0.0 && unbounded > 0.0 && resident > 0);
            // A volume other than the one asked for is an error.
            let err = tile_floor_bounded(&r.path, [4, 96, 80], [64, 64], &tiles).unwrap_err();
            assert!(matches!(err, Error::Format { .. }), "{err}");
        }
        // Compressed chunks are not planes of floats: no floor.
        let r = small_build(Format::Zarr, dir.path(), dims, 1 << 20, 3, Codec::Lz4);
        assert_eq!(
            tile_floor_bounded(&r.path, dims, [64, 64], &tiles).unwrap(),
            None
        );
    }
}
