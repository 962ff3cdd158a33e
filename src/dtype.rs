//! Element types: the run-time [`DType`] and the sealed compile-time
//! [`Element`] trait implemented for the eleven types chunkyard stores.
//!
//! In memory (in the chunk cache, in ndarray results) elements are always in
//! native byte order; stores swap bytes at the file boundary when a file is
//! big-endian.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The element type of an array, known at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// `bool`, one byte, 0 or 1.
    Bool,
    /// `i8`
    I8,
    /// `i16`
    I16,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `u8`
    U8,
    /// `u16`
    U16,
    /// `u32`
    U32,
    /// `u64`
    U64,
    /// `f32`
    F32,
    /// `f64`
    F64,
}

/// Byte order of data on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Least significant byte first.
    Little,
    /// Most significant byte first.
    Big,
}

impl Endian {
    /// The byte order of this machine.
    pub const NATIVE: Endian = if cfg!(target_endian = "little") {
        Endian::Little
    } else {
        Endian::Big
    };
}

impl DType {
    /// Every dtype, in a stable order.
    pub const ALL: [DType; 11] = [
        DType::Bool,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::F32,
        DType::F64,
    ];

    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
        }
    }

    /// Short name used by the CLI and in messages (`f32`, `u8`, `bool`).
    pub const fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "i8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::U16 => "u16",
            DType::U32 => "u32",
            DType::U64 => "u64",
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }

    /// NumPy's name (`float32`, `uint8`, `bool`).
    pub const fn numpy_name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    /// The NumPy type character and size as in an array-protocol type
    /// string without the byte-order prefix: `f4`, `u1`, `b1`.
    pub const fn numpy_kind(self) -> &'static str {
        match self {
            DType::Bool => "b1",
            DType::I8 => "i1",
            DType::I16 => "i2",
            DType::I32 => "i4",
            DType::I64 => "i8",
            DType::U8 => "u1",
            DType::U16 => "u2",
            DType::U32 => "u4",
            DType::U64 => "u8",
            DType::F32 => "f4",
            DType::F64 => "f8",
        }
    }

    /// Whether the dtype is a floating-point type.
    pub const fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// Parses an array-protocol type string (`<f4`, `>i2`, `|u1`, `b1`) into
    /// the dtype and the byte order of the data. One-byte types report the
    /// native order.
    pub fn from_numpy_descr(descr: &str) -> Option<(DType, Endian)> {
        let (order, kind) = match descr.as_bytes().first()? {
            b'<' => (Some(Endian::Little), &descr[1..]),
            b'>' => (Some(Endian::Big), &descr[1..]),
            b'=' | b'|' => (None, &descr[1..]),
            _ => (None, descr),
        };
        let dtype = DType::ALL.into_iter().find(|d| d.numpy_kind() == kind)?;
        let endian = if dtype.size() == 1 {
            Endian::NATIVE
        } else {
            order.unwrap_or(Endian::NATIVE)
        };
        Some((dtype, endian))
    }

    /// The array-protocol type string for data in `endian` order.
    pub fn numpy_descr(self, endian: Endian) -> String {
        let prefix = if self.size() == 1 {
            '|'
        } else if endian == Endian::Little {
            '<'
        } else {
            '>'
        };
        format!("{prefix}{}", self.numpy_kind())
    }

    /// Parses the text of one value of this dtype into native-order bytes
    /// (used for `--value` and `--fill` on the command line).
    pub fn parse_value(self, text: &str) -> Result<Vec<u8>> {
        macro_rules! parse {
            ($t:ty) => {
                <$t as Element>::parse_text(text).map(|v| Element::to_ne_vec(&[v]))
            };
        }
        dispatch!(self, T => parse!(T))
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = Error;

    /// Accepts chunkyard names (`f32`), NumPy names (`float32`), and
    /// array-protocol strings (`<f4`).
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        if let Some(d) = DType::ALL
            .into_iter()
            .find(|d| d.name() == t || d.numpy_name() == t)
        {
            return Ok(d);
        }
        if let Some((d, _)) = DType::from_numpy_descr(t) {
            return Ok(d);
        }
        Err(Error::invalid(format!(
            "unknown dtype {s:?} (expected one of: {})",
            DType::ALL.map(|d| d.name()).join(", ")
        )))
    }
}

/// Runs `$body` with the type alias `$t` bound to the Rust type of `$dtype`.
///
/// ```
/// use chunkyard::{dispatch, DType, Element};
/// let size = dispatch!(DType::F64, T => std::mem::size_of::<T>());
/// assert_eq!(size, 8);
/// ```
#[macro_export]
macro_rules! dispatch {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            $crate::DType::Bool => {
                type $t = bool;
                $body
            }
            $crate::DType::I8 => {
                type $t = i8;
                $body
            }
            $crate::DType::I16 => {
                type $t = i16;
                $body
            }
            $crate::DType::I32 => {
                type $t = i32;
                $body
            }
            $crate::DType::I64 => {
                type $t = i64;
                $body
            }
            $crate::DType::U8 => {
                type $t = u8;
                $body
            }
            $crate::DType::U16 => {
                type $t = u16;
                $body
            }
            $crate::DType::U32 => {
                type $t = u32;
                $body
            }
            $crate::DType::U64 => {
                type $t = u64;
                $body
            }
            $crate::DType::F32 => {
                type $t = f32;
                $body
            }
            $crate::DType::F64 => {
                type $t = f64;
                $body
            }
            // `DType` is non-exhaustive for other crates; every variant is
            // listed above.
            #[allow(unreachable_patterns)]
            _ => unreachable!("every DType variant is dispatched"),
        }
    };
}
pub(crate) use dispatch;

mod sealed {
    pub trait Sealed {}
}

/// A type chunkyard can store. Sealed: implemented for `bool`, the signed
/// and unsigned integers of 8 to 64 bits, `f32` and `f64`.
pub trait Element:
    sealed::Sealed
    + Copy
    + Default
    + PartialEq
    + PartialOrd
    + fmt::Debug
    + fmt::Display
    + Send
    + Sync
    + 'static
{
    /// The run-time dtype of this type.
    const DTYPE: DType;

    /// The elements' bytes in native order.
    fn as_bytes(values: &[Self]) -> &[u8];

    /// Lets `fill` write native-order bytes into `dst`. For every type but
    /// `bool` this is a zero-copy view; for `bool` the bytes go through a
    /// scratch buffer and any non-zero byte reads as `true`.
    fn with_bytes_mut<R>(dst: &mut [Self], fill: impl FnOnce(&mut [u8]) -> R) -> R;

    /// Reads one element from native-order bytes (`bytes.len()` is the
    /// element size).
    fn from_ne_slice(bytes: &[u8]) -> Self;

    /// `bytes` viewed as elements, if it is aligned for `Self`, a whole
    /// number of elements long and (for `bool`) every byte is 0 or 1.
    fn view_mut(bytes: &mut [u8]) -> Option<&mut [Self]>;

    /// Native-order bytes of `values`, as an owned buffer.
    fn to_ne_vec(values: &[Self]) -> Vec<u8> {
        Self::as_bytes(values).to_vec()
    }

    /// The value as `f64` (for reductions and printing). `bool` is 0 or 1.
    fn to_f64(self) -> f64;

    /// Parses decimal text (`1.5`, `-3`, `nan`, `true`).
    fn parse_text(text: &str) -> Result<Self>;

    /// The value as an integer: exact for integer types and bool,
    /// truncated toward zero and saturated for floats (NaN is 0).
    fn to_i128(self) -> i128;

    /// From an integer, like NumPy's `astype` between integer types: wraps
    /// modulo the type's range. Floats round to nearest; bool is `v != 0`.
    fn from_i128(v: i128) -> Self;

    /// From a float, like NumPy's `astype`: truncation toward zero for
    /// integers, saturating at the type's range (NaN becomes 0, where NumPy
    /// leaves it undefined); bool is `v != 0` (NaN is true).
    fn from_f64(v: f64) -> Self;
}

macro_rules! impl_numeric {
    ($($t:ty => $d:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$d;

            fn as_bytes(values: &[Self]) -> &[u8] {
                bytemuck::cast_slice(values)
            }

            fn with_bytes_mut<R>(dst: &mut [Self], fill: impl FnOnce(&mut [u8]) -> R) -> R {
                fill(bytemuck::cast_slice_mut(dst))
            }

            fn view_mut(bytes: &mut [u8]) -> Option<&mut [Self]> {
                bytemuck::try_cast_slice_mut(bytes).ok()
            }

            fn from_ne_slice(bytes: &[u8]) -> Self {
                let mut raw = [0u8; std::mem::size_of::<$t>()];
                raw.copy_from_slice(bytes);
                <$t>::from_ne_bytes(raw)
            }

            fn to_f64(self) -> f64 {
                self as f64
            }

            fn parse_text(text: &str) -> Result<Self> {
                text.trim().parse::<$t>().map_err(|e| {
                    Error::invalid(format!("cannot parse {text:?} as {}: {e}", DType::$d))
                })
            }

            fn to_i128(self) -> i128 {
                self as i128
            }

            fn from_i128(v: i128) -> Self {
                v as $t
            }

            fn from_f64(v: f64) -> Self {
                v as $t
            }
        }
    )*};
}

impl_numeric!(
    i8 => I8, i16 => I16, i32 => I32, i64 => I64,
    u8 => U8, u16 => U16, u32 => U32, u64 => U64,
    f32 => F32, f64 => F64
);

impl sealed::Sealed for bool {}
impl Element for bool {
    const DTYPE: DType = DType::Bool;

    fn as_bytes(values: &[Self]) -> &[u8] {
        bytemuck::cast_slice(values)
    }

    fn with_bytes_mut<R>(dst: &mut [Self], fill: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut scratch = vec![0u8; dst.len()];
        let r = fill(&mut scratch);
        for (d, s) in dst.iter_mut().zip(&scratch) {
            *d = *s != 0;
        }
        r
    }

    fn from_ne_slice(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }

    fn view_mut(bytes: &mut [u8]) -> Option<&mut [Self]> {
        bytemuck::checked::try_cast_slice_mut(bytes).ok()
    }

    fn to_f64(self) -> f64 {
        if self { 1.0 } else { 0.0 }
    }

    fn to_i128(self) -> i128 {
        self as i128
    }

    fn from_i128(v: i128) -> Self {
        v != 0
    }

    fn from_f64(v: f64) -> Self {
        v != 0.0
    }

    fn parse_text(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(Error::invalid(format!(
                "cannot parse {text:?} as bool (expected true, false, 1 or 0)"
            ))),
        }
    }
}

/// Converts one element to another type with NumPy `astype` semantics
/// (see [`Element::from_f64`] and [`Element::from_i128`]).
pub fn cast<S: Element, D: Element>(v: S) -> D {
    if S::DTYPE.is_float() {
        D::from_f64(v.to_f64())
    } else {
        D::from_i128(v.to_i128())
    }
}

/// Converts native-order elements of `from` in `src` into elements of `to`
/// in `dst` (`dst.len() / to.size() == src.len() / from.size()`).
pub fn cast_bytes(from: DType, src: &[u8], to: DType, dst: &mut [u8]) {
    if from == to {
        dst.copy_from_slice(src);
        return;
    }
    dispatch!(from, S => dispatch!(to, D => {
        let (ss, ds) = (S::DTYPE.size(), D::DTYPE.size());
        debug_assert_eq!(src.len() / ss, dst.len() / ds);
        for (s, d) in src.chunks_exact(ss).zip(dst.chunks_exact_mut(ds)) {
            let v: D = cast(S::from_ne_slice(s));
            d.copy_from_slice(D::as_bytes(&[v]));
        }
    }))
}

/// Reverses the byte order of every `size`-byte element of `buf` in place.
pub(crate) fn swap_bytes_in_place(buf: &mut [u8], size: usize) {
    if size > 1 {
        for e in buf.chunks_exact_mut(size) {
            e.reverse();
        }
    }
}

/// Rewrites every byte of a bool buffer to 0 or 1 (files may hold other
/// non-zero bytes for `true`).
pub(crate) fn normalize_bools(buf: &mut [u8]) {
    for b in buf {
        *b = (*b != 0) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descr_round_trip() {
        for d in DType::ALL {
            for e in [Endian::Little, Endian::Big] {
                let s = d.numpy_descr(e);
                let (d2, e2) = DType::from_numpy_descr(&s).unwrap();
                assert_eq!(d, d2, "{s}");
                if d.size() > 1 {
                    assert_eq!(e, e2, "{s}");
                }
            }
        }
        assert_eq!(
            DType::from_numpy_descr(">f8"),
            Some((DType::F64, Endian::Big))
        );
        assert_eq!(DType::from_numpy_descr("<c8"), None);
        assert_eq!(DType::from_numpy_descr(""), None);
    }

    #[test]
    fn parse_names() {
        assert_eq!("f32".parse::<DType>().unwrap(), DType::F32);
        assert_eq!("float64".parse::<DType>().unwrap(), DType::F64);
        assert_eq!("<u2".parse::<DType>().unwrap(), DType::U16);
        let err = "f16".parse::<DType>().unwrap_err().to_string();
        assert!(err.contains("unknown dtype"), "{err}");
    }

    #[test]
    fn parse_values() {
        assert_eq!(DType::I16.parse_value("-3").unwrap(), (-3i16).to_ne_bytes());
        assert_eq!(DType::Bool.parse_value("true").unwrap(), vec![1]);
        assert!(DType::U8.parse_value("256").is_err());
        assert!(DType::F32.parse_value("abc").is_err());
        let nan = DType::F64.parse_value("nan").unwrap();
        assert!(f64::from_ne_slice(&nan).is_nan());
    }

    #[test]
    fn dispatch_binds_type() {
        for d in DType::ALL {
            let size = dispatch!(d, T => std::mem::size_of::<T>());
            assert_eq!(size, d.size());
            let dt = dispatch!(d, T => <T as Element>::DTYPE);
            assert_eq!(dt, d);
        }
    }

    #[test]
    fn casts_like_numpy_astype() {
        // np.array([300, -1]).astype(np.uint8) -> [44, 255]
        assert_eq!(cast::<i32, u8>(300), 44);
        assert_eq!(cast::<i32, u8>(-1), 255);
        // np.array([-2.7, 2.7]).astype(np.int32) -> [-2, 2]
        assert_eq!(cast::<f64, i32>(-2.7), -2);
        assert_eq!(cast::<f32, i32>(2.7), 2);
        assert_eq!(cast::<f64, u8>(1e9), 255, "saturates");
        assert_eq!(cast::<f64, i16>(f64::NAN), 0);
        assert!(cast::<f64, bool>(f64::NAN));
        assert!(!cast::<f32, bool>(0.0));
        assert_eq!(cast::<bool, f32>(true), 1.0);
        assert_eq!(cast::<u64, f64>(u64::MAX), u64::MAX as f64);
        assert_eq!(cast::<i64, i64>(i64::MIN), i64::MIN);
        let x = 0.1f64;
        assert_eq!(cast::<f64, f32>(x), 0.1f32);
        let src = f64::as_bytes(&[1.5, -2.5, 1e300]).to_vec();
        let mut dst = vec![0u8; 12];
        cast_bytes(DType::F64, &src, DType::F32, &mut dst);
        let got: Vec<f32> = dst.chunks(4).map(f32::from_ne_slice).collect();
        assert_eq!(got, vec![1.5, -2.5, f32::INFINITY]);
    }

    #[test]
    fn bool_bytes() {
        let mut v = [false; 3];
        bool::with_bytes_mut(&mut v, |b| b.copy_from_slice(&[0, 7, 1]));
        assert_eq!(v, [false, true, true]);
        assert_eq!(bool::as_bytes(&v), &[0, 1, 1]);
    }
}
