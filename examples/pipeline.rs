//! The pipeline of issue 17, small enough for CI: a 3-D f32 lz4 Zarr
//! array written plane by plane from rayon threads, reduced whole, per
//! plane and along an axis, converted to an f64 `.npy` with `save_as`, and
//! closed with its flush error returned. Every value is checked against a
//! closed form, so the example fails loudly if a result is wrong.

use chunkyard::{ArrayOptions, Codec, s};
use ndarray::{Array2, ArrayD};
use rayon::prelude::*;

/// Planes, rows, columns (the is 200 x 1000 x 1000).
const N: [usize; 3] = [20, 100, 100];

fn value(z: usize, y: usize, x: usize) -> f32 {
    (z * 10 + y + x) as f32
}

fn main() -> chunkyard::Result<()> {
    let dir = std::env::temp_dir().join(format!("chunkyard-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| chunkyard::Error::io(&dir, e))?;

    let a = chunkyard::create::<f32>(
        dir.join("vol.zarr"),
        ArrayOptions::new(N)
            .chunks([1, N[1], N[2]])
            .codec(Codec::Lz4),
    )?;
    (0..N[0]).into_par_iter().try_for_each(|z| {
        let plane = Array2::from_shape_fn((N[1], N[2]), |(y, x)| value(z, y, x));
        a.write(s![z, .., ..], &plane)
    })?;

    let total: f64 = a.sum()?; // parallel, bounded memory, f64 accumulator
    let m: f64 = a.mean()?;
    let lo: f32 = a.min()?;
    let hi: f32 = a.max()?;
    let p: f64 = a.slice(s![17, .., ..])?.mean()?; // the same on any view
    let m0: ArrayD<f64> = a.mean_axis(0)?; // along one axis
    let b: chunkyard::Array<f64> = a
        .cast::<f64>()
        .save_as(dir.join("copy.npy"), ArrayOptions::default())?;

    // Closed forms: mean over z of 10 z is 10 (N0 - 1) / 2, and so on.
    let mean_z = 10.0 * (N[0] - 1) as f64 / 2.0;
    let mean_yx = (N[1] - 1) as f64 / 2.0 + (N[2] - 1) as f64 / 2.0;
    let n = (N[0] * N[1] * N[2]) as f64;
    assert_eq!(total, (mean_z + mean_yx) * n);
    assert_eq!(m, mean_z + mean_yx);
    assert_eq!((lo, hi), (0.0, value(N[0] - 1, N[1] - 1, N[2] - 1)));
    assert_eq!(p, 170.0 + mean_yx);
    assert_eq!(m0.shape(), &[N[1], N[2]]);
    assert_eq!(m0[[3, 4]], mean_z + 7.0);
    assert_eq!(b.get([17usize, 99, 99])?, f64::from(value(17, 99, 99)));
    assert_eq!(b.shape(), a.shape());

    println!(
        "sum {total}, mean {m}, min {lo}, max {hi}, plane 17 mean {p}, \
         mean over axis 0 of shape {:?}; copy.npy {:?} f64",
        m0.shape(),
        b.shape()
    );
    b.close()?;
    a.close()?; // flush and release: the error is returned, not printed
    std::fs::remove_dir_all(&dir).map_err(|e| chunkyard::Error::io(&dir, e))?;
    Ok(())
}
