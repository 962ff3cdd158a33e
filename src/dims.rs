//! [`Dims`]: what shapes, chunk shapes and element indices accept — `u64`
//! (the on-disk width), `usize` (what ndarray uses) and plain integer
//! literals (`[4, 300, 200]`, which Rust types as `i32` when more than one
//! integer type would fit).

use crate::error::{Error, Result};

/// Axes this long or shorter are converted on the stack: an element index
/// is the hot path of random reads, where an allocation is a large share of
/// the work.
const STACK_AXES: usize = 16;

/// A list of non-negative axis lengths or positions: `[u64; N]`,
/// `[usize; N]`, `[i32; N]` (integer literals), their slices, `Vec`s and
/// references to any of these.
///
/// ```
/// use chunkyard::ArrayOptions;
/// let n: usize = 1000;
/// let a = ArrayOptions::new([n, n]);        // usize, like ndarray
/// let b = ArrayOptions::new([1000u64, 1000]); // u64, like the file
/// let c = ArrayOptions::new([1000, 1000]);    // literals
/// assert_eq!(a.shape(), b.shape());
/// assert_eq!(b.shape(), c.shape());
/// ```
pub trait Dims {
    /// Calls `f` with the values as `u64`; fails on a negative value.
    fn with_u64<R>(&self, f: impl FnOnce(&[u64]) -> Result<R>) -> Result<R>;

    /// The values as a `Vec<u64>`.
    fn to_u64_vec(&self) -> Result<Vec<u64>> {
        self.with_u64(|d| Ok(d.to_vec()))
    }
}

/// Converts `values` into `u64`s on the stack (or the heap past
/// [`STACK_AXES`]) and calls `f` with them.
fn convert<V: Copy, R>(
    values: &[V],
    conv: impl Fn(V) -> Option<u64>,
    show: impl Fn(&[V]) -> String,
    f: impl FnOnce(&[u64]) -> Result<R>,
) -> Result<R> {
    let mut small = [0u64; STACK_AXES];
    let mut heap = Vec::new();
    let out: &mut [u64] = if values.len() <= STACK_AXES {
        &mut small[..values.len()]
    } else {
        heap.resize(values.len(), 0);
        &mut heap
    };
    for (o, &v) in out.iter_mut().zip(values) {
        *o = conv(v).ok_or_else(|| {
            Error::invalid(format!(
                "{}: axis lengths and indices cannot be negative",
                show(values)
            ))
        })?;
    }
    f(out)
}

impl Dims for [u64] {
    fn with_u64<R>(&self, f: impl FnOnce(&[u64]) -> Result<R>) -> Result<R> {
        f(self)
    }
}

impl Dims for [usize] {
    fn with_u64<R>(&self, f: impl FnOnce(&[u64]) -> Result<R>) -> Result<R> {
        convert(self, |v| Some(v as u64), |v| format!("{v:?}"), f)
    }
}

impl Dims for [i32] {
    fn with_u64<R>(&self, f: impl FnOnce(&[u64]) -> Result<R>) -> Result<R> {
        convert(self, |v| u64::try_from(v).ok(), |v| format!("{v:?}"), f)
    }
}

impl<const N: usize> Dims for [u64; N] {
    fn with_u64<R>(&self, f: impl FnOnce(&[u64]) -> Result<R>) -> Result<R> {
        f(self)
    }
}

impl<const N: usize> Dims for [usize; N] {
    fn with_u64<R>(&self, f: impl FnOnce(&[u64]) -> Result<R>) -> Result<R> {
        self[..].with_u64(f)
    }
}

impl<const N: usize> Dims for [i32; N] {
    fn with_u64<R>(&self, f: impl FnOnce(&[u64]) -> Result<R>) -> Result<R> {
        self[..].with_u64(f)
    }
}

impl<D> Dims for Vec<D>
where
    [D]: Dims,
{
    fn with_u64<R>(&self, f: impl FnOnce(&[u64]) -> Result<R>) -> Result<R> {
        self[..].with_u64(f)
    }
}

impl<D: Dims + ?Sized> Dims for &D {
    fn with_u64<R>(&self, f: impl FnOnce(&[u64]) -> Result<R>) -> Result<R> {
        (**self).with_u64(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_gives_the_same_values() {
        let want = vec![3u64, 0, 7];
        assert_eq!([3u64, 0, 7].to_u64_vec().unwrap(), want);
        assert_eq!([3usize, 0, 7].to_u64_vec().unwrap(), want);
        assert_eq!([3, 0, 7].to_u64_vec().unwrap(), want);
        assert_eq!(vec![3usize, 0, 7].to_u64_vec().unwrap(), want);
        assert_eq!(Dims::to_u64_vec(&&want).unwrap(), want);
        assert_eq!(want[..].to_u64_vec().unwrap(), want);
        let long: Vec<usize> = (0..40).collect();
        assert_eq!(long.to_u64_vec().unwrap(), (0..40u64).collect::<Vec<_>>());
    }

    #[test]
    fn negative_values_are_errors_naming_what_was_passed() {
        let e = [2, -1].to_u64_vec().unwrap_err().to_string();
        assert!(e.contains("[2, -1]"), "{e}");
        assert!(e.contains("negative"), "{e}");
    }
}
