//! The bench's value generator: planes of standard normal `f32` values,
//! the same for the same (seed, plane) whatever the thread scheduling.

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// Rows generated per task: each task has its own seeded generator, so the
/// values depend only on (seed, plane, task), not on thread scheduling.
const ROWS_PER_TASK: usize = 64;

/// Fills one plane with standard normal values, in parallel over row
/// blocks, each block from its own generator seeded by (seed, plane,
/// block).
pub fn fill_plane(seed: u64, plane: u64, cols: usize, out: &mut [f32]) {
    out.par_chunks_mut(ROWS_PER_TASK * cols.max(1))
        .enumerate()
        .for_each(|(task, rows)| {
            let s = seed
                ^ plane.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (task as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
            let mut rng = SmallRng::seed_from_u64(s);
            for v in rows {
                *v = StandardNormal.sample(&mut rng);
            }
        });
}

#[cfg(test)]
mod tests {
    // The import is inside the test: benches/io.rs includes this file, and
    // a bench build keeps `cfg(test)` modules but drops `#[test]` functions.
    #[test]
    fn planes_are_reproducible_and_normal() {
        use super::fill_plane;
        let mut a = vec![0f32; 300 * 100];
        let mut b = vec![0f32; 300 * 100];
        fill_plane(7, 3, 100, &mut a);
        fill_plane(7, 3, 100, &mut b);
        assert_eq!(a, b, "same seed, same plane");
        fill_plane(7, 4, 100, &mut b);
        assert_ne!(a, b, "planes differ");
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }
}
