//! NumPy-style selections: parsing (`10,0:64,::2`, `...,3`), conversion from
//! ndarray's `s![]`, and resolution against a shape into per-axis
//! [`AxisSel`]s with every bound checked.
//!
//! Semantics follow NumPy basic indexing: an integer picks one position and
//! drops the axis (negative counts from the end; out of range is an error);
//! a slice `start:stop:step` keeps the axis, with `start` and `stop` clamped
//! to the axis like NumPy does; `...` stands for as many full slices as
//! needed; missing trailing axes are full slices. Steps must be positive:
//! a negative step is an explicit "not supported" error, never a wrong
//! answer.

use std::fmt;
use std::ops::RangeFull;

use ndarray::{SliceInfo, SliceInfoElem};

use crate::error::SelectionError;

/// One item of an unresolved selection, as written by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelItem {
    /// A single position (negative counts from the end). Drops the axis.
    Index(i64),
    /// `start:stop:step`, each part optional.
    Slice {
        /// First position (default 0).
        start: Option<i64>,
        /// One past the last position (default: the axis length).
        stop: Option<i64>,
        /// Step (default 1; must be >= 1).
        step: Option<i64>,
    },
    /// `...`: full slices for every axis not otherwise named.
    Ellipsis,
    /// `np.newaxis`: rejected at resolution (kept so the error is clear).
    NewAxis,
}

impl SelItem {
    /// The full slice `:`.
    pub const FULL: SelItem = SelItem::Slice {
        start: None,
        stop: None,
        step: None,
    };
}

/// An unresolved selection: a list of [`SelItem`]s.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    items: Vec<SelItem>,
}

impl Selection {
    /// The whole array (`...`).
    pub fn all() -> Self {
        Selection { items: Vec::new() }
    }

    /// A selection from items.
    pub fn new(items: Vec<SelItem>) -> Self {
        Selection { items }
    }

    /// One element at `index` (all axes given as non-negative integers).
    pub fn point(index: &[u64]) -> Self {
        Selection {
            items: index
                .iter()
                .map(|&i| SelItem::Index(i.min(i64::MAX as u64) as i64))
                .collect(),
        }
    }

    /// The items.
    pub fn items(&self) -> &[SelItem] {
        &self.items
    }

    /// Parses NumPy text: comma-separated integers, `start:stop:step`
    /// slices and at most one `...`. The empty string and `...` select
    /// everything.
    pub fn parse(text: &str) -> Result<Self, SelectionError> {
        let err = |reason: String| SelectionError::Parse {
            text: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        let inner = trimmed
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(trimmed);
        if inner.trim().is_empty() {
            return Ok(Selection::all());
        }
        let mut items = Vec::new();
        let parts: Vec<&str> = inner.split(',').collect();
        for (n, raw) in parts.iter().enumerate() {
            let part = raw.trim();
            if part.is_empty() {
                // NumPy allows one trailing comma: `a[3,]`.
                if n == parts.len() - 1 && n > 0 {
                    continue;
                }
                return Err(err(format!("empty item at position {n}")));
            }
            if part == "..." || part == "Ellipsis" {
                items.push(SelItem::Ellipsis);
            } else if part == "None" || part == "np.newaxis" || part == "newaxis" {
                items.push(SelItem::NewAxis);
            } else if part.contains(':') {
                let fields: Vec<&str> = part.split(':').collect();
                if fields.len() > 3 {
                    return Err(err(format!("too many ':' in {part:?}")));
                }
                let num = |f: &str| -> Result<Option<i64>, SelectionError> {
                    let f = f.trim();
                    if f.is_empty() {
                        Ok(None)
                    } else {
                        f.parse::<i64>()
                            .map(Some)
                            .map_err(|_| err(format!("{f:?} is not an integer")))
                    }
                };
                items.push(SelItem::Slice {
                    start: num(fields[0])?,
                    stop: num(fields[1])?,
                    step: match fields.get(2) {
                        Some(f) => num(f)?,
                        None => None,
                    },
                });
            } else {
                let i = part
                    .parse::<i64>()
                    .map_err(|_| err(format!("{part:?} is not an integer, slice or '...'")))?;
                items.push(SelItem::Index(i));
            }
        }
        Ok(Selection { items })
    }

    /// Resolves against `shape`: checks bounds, rank and steps, expands
    /// `...` and missing trailing axes.
    pub fn resolve(&self, shape: &[u64]) -> Result<ResolvedSelection, SelectionError> {
        let ndim = shape.len();
        let ellipses = self
            .items
            .iter()
            .filter(|i| **i == SelItem::Ellipsis)
            .count();
        if ellipses > 1 {
            return Err(SelectionError::MultipleEllipsis);
        }
        if self.items.contains(&SelItem::NewAxis) {
            return Err(SelectionError::NewAxis);
        }
        let named = self.items.len() - ellipses;
        if named > ndim {
            return Err(SelectionError::TooManyIndices { given: named, ndim });
        }
        let mut expanded = Vec::with_capacity(ndim);
        for item in &self.items {
            if *item == SelItem::Ellipsis {
                expanded.extend(std::iter::repeat_n(SelItem::FULL, ndim - named));
            } else {
                expanded.push(*item);
            }
        }
        expanded.resize(ndim, SelItem::FULL);

        let mut axes = Vec::with_capacity(ndim);
        for (axis, (item, &size)) in expanded.iter().zip(shape).enumerate() {
            axes.push(resolve_axis(axis, *item, size)?);
        }
        Ok(ResolvedSelection { axes })
    }
}

fn resolve_axis(axis: usize, item: SelItem, size: u64) -> Result<AxisSel, SelectionError> {
    // i128 holds every u64 size and every i64 index: negative positions
    // count from the real end even on axes longer than i64::MAX.
    let n = i128::from(size);
    match item {
        SelItem::Index(i) => {
            let p = if i < 0 {
                i128::from(i) + n
            } else {
                i128::from(i)
            };
            if (0..n).contains(&p) {
                Ok(AxisSel::Index(p as u64))
            } else {
                Err(SelectionError::OutOfBounds {
                    axis,
                    index: i,
                    size,
                })
            }
        }
        SelItem::Slice { start, stop, step } => {
            let step = step.unwrap_or(1);
            if step == 0 {
                return Err(SelectionError::ZeroStep { axis });
            }
            if step < 0 {
                return Err(SelectionError::NegativeStep { axis, step });
            }
            // NumPy clamps slice bounds into [0, size].
            let clamp = |v: i64| -> u64 {
                let v = i128::from(v);
                let v = if v < 0 { v + n } else { v };
                v.clamp(0, n) as u64
            };
            let start = start.map_or(0, clamp);
            let stop = stop.map_or(size, clamp);
            let step = step as u64;
            let count = if stop > start {
                (stop - start).div_ceil(step)
            } else {
                0
            };
            Ok(AxisSel::Range { start, step, count })
        }
        SelItem::Ellipsis | SelItem::NewAxis => unreachable!("expanded or rejected above"),
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .items
            .iter()
            .map(|i| match i {
                SelItem::Index(i) => i.to_string(),
                SelItem::Slice { start, stop, step } => {
                    let o = |v: &Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
                    match step {
                        Some(s) => format!("{}:{}:{s}", o(start), o(stop)),
                        None => format!("{}:{}", o(start), o(stop)),
                    }
                }
                SelItem::Ellipsis => "...".into(),
                SelItem::NewAxis => "None".into(),
            })
            .collect();
        if parts.is_empty() {
            f.write_str("...")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// One axis of a resolved selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AxisSel {
    /// One position; the axis is dropped from the output.
    Index(u64),
    /// `count` positions `start, start + step, ...`; the axis is kept.
    Range {
        /// First position.
        start: u64,
        /// Distance between positions (>= 1).
        step: u64,
        /// Number of positions (may be 0).
        count: u64,
    },
}

impl AxisSel {
    /// (first position, step, number of positions).
    pub fn as_range(&self) -> (u64, u64, u64) {
        match *self {
            AxisSel::Index(i) => (i, 1, 1),
            AxisSel::Range { start, step, count } => (start, step, count),
        }
    }

    /// Whether this axis appears in the output.
    pub fn is_kept(&self) -> bool {
        matches!(self, AxisSel::Range { .. })
    }
}

/// A selection checked against a shape: one [`AxisSel`] per axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSelection {
    axes: Vec<AxisSel>,
}

impl ResolvedSelection {
    /// Builds directly from per-axis selections (already in bounds).
    pub fn from_axes(axes: Vec<AxisSel>) -> Self {
        ResolvedSelection { axes }
    }

    /// The whole of `shape`.
    pub fn full(shape: &[u64]) -> Self {
        ResolvedSelection {
            axes: shape
                .iter()
                .map(|&n| AxisSel::Range {
                    start: 0,
                    step: 1,
                    count: n,
                })
                .collect(),
        }
    }

    /// Per-axis selections.
    pub fn axes(&self) -> &[AxisSel] {
        &self.axes
    }

    /// Shape of the result (integer-indexed axes dropped), like NumPy.
    pub fn out_shape(&self) -> Vec<u64> {
        self.axes
            .iter()
            .filter(|a| a.is_kept())
            .map(|a| a.as_range().2)
            .collect()
    }

    /// Number of elements the selection covers, saturating on overflow.
    pub fn num_elements(&self) -> u64 {
        self.axes
            .iter()
            .map(|a| a.as_range().2)
            .fold(1u64, |acc, c| acc.saturating_mul(c))
    }

    /// Whether every axis is an integer index.
    pub fn is_point(&self) -> bool {
        self.axes.iter().all(|a| !a.is_kept())
    }
}

/// Anything that can be turned into a [`Selection`]: text in NumPy syntax,
/// ndarray's `s![]`, `..` (everything), or a `Selection`.
pub trait IntoSelection: Sized {
    /// Converts, reporting syntax errors.
    fn into_selection(self) -> Result<Selection, SelectionError>;

    /// Resolves against `shape` (NumPy rules: slices clamp to the axis).
    fn resolve_in(self, shape: &[u64]) -> Result<ResolvedSelection, SelectionError> {
        self.into_selection()?.resolve(shape)
    }
}

impl IntoSelection for Selection {
    fn into_selection(self) -> Result<Selection, SelectionError> {
        Ok(self)
    }
}

impl IntoSelection for &Selection {
    fn into_selection(self) -> Result<Selection, SelectionError> {
        Ok(self.clone())
    }
}

/// A resolved selection used again (from `Array::resolve`). It is checked
/// against the shape once more, which may have changed since, and must
/// still fit exactly: unlike NumPy text, it does not clamp.
impl IntoSelection for &ResolvedSelection {
    fn resolve_in(self, shape: &[u64]) -> Result<ResolvedSelection, SelectionError> {
        if self.axes().len() != shape.len() {
            return Err(SelectionError::Rank {
                given: self.axes().len(),
                ndim: shape.len(),
            });
        }
        for (axis, (a, &n)) in self.axes().iter().zip(shape).enumerate() {
            let (start, step, count) = a.as_range();
            let last = if count == 0 {
                start
            } else {
                start + (count - 1) * step
            };
            let fits = if count == 0 { start <= n } else { last < n };
            if !fits {
                return Err(SelectionError::OutOfBounds {
                    axis,
                    index: last.min(i64::MAX as u64) as i64,
                    size: n,
                });
            }
        }
        Ok(self.clone())
    }

    fn into_selection(self) -> Result<Selection, SelectionError> {
        let pos = |axis: usize, v: u64| {
            i64::try_from(v).map_err(|_| SelectionError::OutOfBounds {
                axis,
                index: i64::MAX,
                size: v,
            })
        };
        let items = self
            .axes()
            .iter()
            .enumerate()
            .map(|(axis, a)| match *a {
                AxisSel::Index(i) => Ok(SelItem::Index(pos(axis, i)?)),
                AxisSel::Range { start, step, count } => {
                    let stop = if count == 0 {
                        start
                    } else {
                        start + (count - 1) * step + 1
                    };
                    Ok(SelItem::Slice {
                        start: Some(pos(axis, start)?),
                        stop: Some(pos(axis, stop)?),
                        step: Some(pos(axis, step)?),
                    })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Selection::new(items))
    }
}

impl IntoSelection for ResolvedSelection {
    fn into_selection(self) -> Result<Selection, SelectionError> {
        (&self).into_selection()
    }

    fn resolve_in(self, shape: &[u64]) -> Result<ResolvedSelection, SelectionError> {
        (&self).resolve_in(shape)
    }
}

impl IntoSelection for &str {
    fn into_selection(self) -> Result<Selection, SelectionError> {
        Selection::parse(self)
    }
}

impl IntoSelection for &String {
    fn into_selection(self) -> Result<Selection, SelectionError> {
        Selection::parse(self)
    }
}

impl IntoSelection for RangeFull {
    fn into_selection(self) -> Result<Selection, SelectionError> {
        Ok(Selection::all())
    }
}

fn from_slice_info_elems(elems: &[SliceInfoElem]) -> Selection {
    Selection::new(
        elems
            .iter()
            .map(|e| match *e {
                SliceInfoElem::Index(i) => SelItem::Index(i as i64),
                SliceInfoElem::Slice { start, end, step } => SelItem::Slice {
                    start: Some(start as i64),
                    stop: end.map(|e| e as i64),
                    step: Some(step as i64),
                },
                SliceInfoElem::NewAxis => SelItem::NewAxis,
            })
            .collect(),
    )
}

impl<T, Din, Dout> IntoSelection for SliceInfo<T, Din, Dout>
where
    T: AsRef<[SliceInfoElem]>,
    Din: ndarray::Dimension,
    Dout: ndarray::Dimension,
{
    fn into_selection(self) -> Result<Selection, SelectionError> {
        Ok(from_slice_info_elems(self.as_ref()))
    }
}

impl<T, Din, Dout> IntoSelection for &SliceInfo<T, Din, Dout>
where
    T: AsRef<[SliceInfoElem]>,
    Din: ndarray::Dimension,
    Dout: ndarray::Dimension,
{
    fn into_selection(self) -> Result<Selection, SelectionError> {
        Ok(from_slice_info_elems(self.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::s;

    fn res(text: &str, shape: &[u64]) -> Result<ResolvedSelection, SelectionError> {
        Selection::parse(text)?.resolve(shape)
    }

    /// Found by fuzz/chunk_index: on an axis longer than i64::MAX (a 1-byte
    /// dtype allows it), negative positions counted from i64::MAX, not
    /// from the axis' end.
    #[test]
    fn negative_positions_on_axes_longer_than_i64() {
        let n = u64::MAX - 5;
        let r = res("-1, -3:", &[n, n]).unwrap();
        assert_eq!(r.axes()[0], AxisSel::Index(n - 1));
        assert_eq!(
            r.axes()[1],
            AxisSel::Range {
                start: n - 3,
                step: 1,
                count: 3
            }
        );
        let r = res(":", &[n]).unwrap();
        assert_eq!(r.axes()[0].as_range(), (0, 1, n));
    }

    #[test]
    fn parses_numpy_forms() {
        let r = res("10,0:64,::2", &[20, 100, 9]).unwrap();
        assert_eq!(
            r.axes(),
            &[
                AxisSel::Index(10),
                AxisSel::Range {
                    start: 0,
                    step: 1,
                    count: 64
                },
                AxisSel::Range {
                    start: 0,
                    step: 2,
                    count: 5
                },
            ]
        );
        assert_eq!(r.out_shape(), vec![64, 5]);
        let r = res("...,3", &[4, 5, 6]).unwrap();
        assert_eq!(r.out_shape(), vec![4, 5]);
        assert_eq!(r.axes()[2], AxisSel::Index(3));
        let r = res("-1", &[7, 2]).unwrap();
        assert_eq!(r.axes()[0], AxisSel::Index(6));
        assert_eq!(r.out_shape(), vec![2]);
        assert_eq!(res("", &[3, 3]).unwrap().out_shape(), vec![3, 3]);
        assert_eq!(
            res("[1, 2]", &[3, 3]).unwrap().out_shape(),
            Vec::<u64>::new()
        );
        assert_eq!(res("1,", &[3, 3]).unwrap().out_shape(), vec![3]);
    }

    #[test]
    fn slices_clamp_like_numpy() {
        // numpy: np.arange(10)[-100:100:3] -> [0, 3, 6, 9]
        let r = res("-100:100:3", &[10]).unwrap();
        assert_eq!(
            r.axes()[0],
            AxisSel::Range {
                start: 0,
                step: 3,
                count: 4
            }
        );
        // np.arange(10)[7:2] -> []
        assert_eq!(res("7:2", &[10]).unwrap().out_shape(), vec![0]);
        // np.arange(10)[-3:] -> [7, 8, 9]
        assert_eq!(
            res("-3:", &[10]).unwrap().axes()[0],
            AxisSel::Range {
                start: 7,
                step: 1,
                count: 3
            }
        );
    }

    #[test]
    fn errors_name_the_axis() {
        assert_eq!(
            res("0,5", &[3, 5]),
            Err(SelectionError::OutOfBounds {
                axis: 1,
                index: 5,
                size: 5
            })
        );
        assert_eq!(
            res("-4", &[3]),
            Err(SelectionError::OutOfBounds {
                axis: 0,
                index: -4,
                size: 3
            })
        );
        assert_eq!(
            res(":,::0", &[3, 3]),
            Err(SelectionError::ZeroStep { axis: 1 })
        );
        assert_eq!(
            res("::-1", &[3]),
            Err(SelectionError::NegativeStep { axis: 0, step: -1 })
        );
        assert_eq!(
            res("1,1,1", &[3, 3]),
            Err(SelectionError::TooManyIndices { given: 3, ndim: 2 })
        );
        assert_eq!(res("...,...", &[3]), Err(SelectionError::MultipleEllipsis));
        assert!(matches!(res("a", &[3]), Err(SelectionError::Parse { .. })));
        assert!(matches!(
            res("1:2:3:4", &[3]),
            Err(SelectionError::Parse { .. })
        ));
        assert!(matches!(res(",1", &[3]), Err(SelectionError::Parse { .. })));
        let msg = res("0,5", &[3, 5]).unwrap_err().to_string();
        assert!(msg.contains("axis 1"), "{msg}");
    }

    #[test]
    fn from_ndarray_s_macro() {
        let sel = s![2, 1..;3, ..].into_selection().unwrap();
        let r = sel.resolve(&[4, 10, 6]).unwrap();
        assert_eq!(r.axes()[0], AxisSel::Index(2));
        assert_eq!(
            r.axes()[1],
            AxisSel::Range {
                start: 1,
                step: 3,
                count: 3
            }
        );
        assert_eq!(r.out_shape(), vec![3, 6]);
        let neg = s![..;-1].into_selection().unwrap().resolve(&[4]);
        assert_eq!(neg, Err(SelectionError::NegativeStep { axis: 0, step: -1 }));
    }

    #[test]
    fn display_round_trips() {
        for t in ["1,2:5,::3", "...,-1", "1:,:4"] {
            let s = Selection::parse(t).unwrap();
            assert_eq!(Selection::parse(&s.to_string()).unwrap(), s);
        }
    }
}
