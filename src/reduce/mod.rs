//! Reductions over an array, a selection, or along one axis: sum, mean,
//! min, max, count, and the NaN-skipping `nan*` variants, computed block by
//! block in parallel with memory bounded by the cache budget plus one block
//! of accumulators per worker.
//!
//! Accuracy and NaN follow NumPy: integer sums are exact (128-bit
//! accumulators; results along an axis wrap to 64 bits like NumPy's
//! `int64`), float sums are `f64`: pairwise within a block for whole
//! reductions, compensated (Neumaier) along an axis and across blocks.
//! `sum`, `mean`, `min`, `max` propagate NaN; `nansum`, `nanmean`,
//! `nanmin`, `nanmax` skip it (all-NaN gives NaN, and `nansum` 0); `count`
//! counts the elements that are not NaN.

// This file: what a reduction is (`Reduction`) and what a whole one
// returns (`Scalar`). The rest: `sum` (the summation kernels both paths
// share), `whole` (a selection to one value), `axis` (a selection along one
// axis to an array).
mod axis;
mod sum;
#[cfg(test)]
mod tests;
mod typed;
mod whole;

pub use axis::{Reduced, reduce_axis, reduce_axis_interruptible, reduce_axis_steps};
pub use whole::{reduce, reduce_interruptible, reduce_steps};

use std::fmt;
use std::str::FromStr;

use crate::dtype::DType;
use crate::error::{Error, Result};

/// A reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Sum; NaN propagates.
    Sum,
    /// Sum skipping NaN.
    NanSum,
    /// Arithmetic mean as `f64`; NaN propagates; NaN for no elements.
    Mean,
    /// Mean of the elements that are not NaN.
    NanMean,
    /// Smallest element; NaN propagates.
    Min,
    /// Smallest element that is not NaN.
    NanMin,
    /// Largest element; NaN propagates.
    Max,
    /// Largest element that is not NaN.
    NanMax,
    /// Number of elements that are not NaN.
    Count,
}

impl Reduction {
    /// Every reduction, in a stable order.
    pub const ALL: [Reduction; 9] = [
        Reduction::Sum,
        Reduction::NanSum,
        Reduction::Mean,
        Reduction::NanMean,
        Reduction::Min,
        Reduction::NanMin,
        Reduction::Max,
        Reduction::NanMax,
        Reduction::Count,
    ];

    /// The name used on the command line (`nansum`).
    pub fn name(self) -> &'static str {
        match self {
            Reduction::Sum => "sum",
            Reduction::NanSum => "nansum",
            Reduction::Mean => "mean",
            Reduction::NanMean => "nanmean",
            Reduction::Min => "min",
            Reduction::NanMin => "nanmin",
            Reduction::Max => "max",
            Reduction::NanMax => "nanmax",
            Reduction::Count => "count",
        }
    }

    fn skips_nan(self) -> bool {
        matches!(
            self,
            Reduction::NanSum | Reduction::NanMean | Reduction::NanMin | Reduction::NanMax
        )
    }

    /// Element type of the result for input of type `input` (NumPy's:
    /// sums of integers are 64-bit integers, of floats `f64` here; means
    /// `f64`; min and max keep the type; counts `i64`).
    pub fn result_dtype(self, input: DType) -> DType {
        match self {
            Reduction::Sum | Reduction::NanSum => match input {
                DType::F32 | DType::F64 => DType::F64,
                DType::U8 | DType::U16 | DType::U32 | DType::U64 => DType::U64,
                _ => DType::I64,
            },
            Reduction::Mean | Reduction::NanMean => DType::F64,
            Reduction::Min | Reduction::NanMin | Reduction::Max | Reduction::NanMax => input,
            Reduction::Count => DType::I64,
        }
    }
}

impl FromStr for Reduction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Reduction::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown reduction {s:?} (expected one of: {})",
                    Reduction::ALL.map(|r| r.name()).join(", ")
                ))
            })
    }
}

impl fmt::Display for Reduction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A whole reduction's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    /// A boolean (min/max of a bool array).
    Bool(bool),
    /// An exact integer.
    Int(i128),
    /// A float.
    Float(f64),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) if x.is_nan() => write!(f, "nan"),
            Scalar::Float(x) if x.is_infinite() => {
                write!(f, "{}", if *x > 0.0 { "inf" } else { "-inf" })
            }
            Scalar::Float(x) => write!(f, "{x:?}"),
        }
    }
}
