//! Compression codecs a store may apply to chunks, named the same way on
//! the command line (`--codec lz4`, `--codec zstd:5`) and in the builder.
//! Each backend maps them to its format's own spelling (Zarr codec
//! metadata, HDF5 filters); `.npy` files cannot be compressed.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A chunk compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Codec {
    /// Stored as is.
    #[default]
    None,
    /// LZ4 (fast; `lz4_flex`): in Zarr v3 the `blosc` codec with LZ4
    /// inside (byte or bit shuffle per dtype), in HDF5 the LZ4 filter.
    Lz4,
    /// Zstandard at a level (1-22; default 3).
    Zstd {
        /// Compression level.
        level: i32,
    },
    /// Deflate / gzip at a level (0-9; default 6).
    Gzip {
        /// Compression level.
        level: u32,
    },
}

impl Codec {
    /// The codec's name without its level.
    pub fn name(&self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Lz4 => "lz4",
            Codec::Zstd { .. } => "zstd",
            Codec::Gzip { .. } => "gzip",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Codec::Zstd { level } => write!(f, "zstd:{level}"),
            Codec::Gzip { level } => write!(f, "gzip:{level}"),
            c => f.write_str(c.name()),
        }
    }
}

impl FromStr for Codec {
    type Err = Error;

    /// `none`, `lz4`, `zstd`, `zstd:LEVEL`, `gzip`, `gzip:LEVEL`.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        let (name, level) = match t.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (t.as_str(), None),
        };
        let bad_level = |range: &str| {
            Error::invalid(format!(
                "codec {s:?}: the level must be an integer in {range}"
            ))
        };
        match (name, level) {
            ("none", None) => Ok(Codec::None),
            ("lz4", None) => Ok(Codec::Lz4),
            ("zstd", None) => Ok(Codec::Zstd { level: 3 }),
            ("zstd", Some(l)) => match l.parse::<i32>() {
                Ok(level) if (1..=22).contains(&level) => Ok(Codec::Zstd { level }),
                _ => Err(bad_level("1..=22")),
            },
            ("gzip", None) => Ok(Codec::Gzip { level: 6 }),
            ("gzip", Some(l)) => match l.parse::<u32>() {
                Ok(level) if level <= 9 => Ok(Codec::Gzip { level }),
                _ => Err(bad_level("0..=9")),
            },
            ("none" | "lz4", Some(_)) => Err(Error::invalid(format!(
                "codec {s:?}: {name} takes no level"
            ))),
            _ => Err(Error::invalid(format!(
                "unknown codec {s:?} (expected none, lz4, zstd[:LEVEL] or gzip[:LEVEL])"
            ))),
        }
    }
}

/// An upper bound of a chunk's encoded size: lz4, zstd and deflate add at
/// most a few bytes per 128 input bytes plus a small header.
#[cfg(any(feature = "zarr", feature = "hdf5"))]
pub(crate) fn encoded_bound(n: usize) -> usize {
    n + n / 128 + 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, c) in [
            ("none", Codec::None),
            ("LZ4", Codec::Lz4),
            ("zstd", Codec::Zstd { level: 3 }),
            ("zstd:19", Codec::Zstd { level: 19 }),
            ("gzip", Codec::Gzip { level: 6 }),
            ("gzip:1", Codec::Gzip { level: 1 }),
        ] {
            let parsed: Codec = text.parse().unwrap();
            assert_eq!(parsed, c, "{text}");
            assert_eq!(parsed.to_string().parse::<Codec>().unwrap(), c);
        }
        for bad in ["brotli", "zstd:0", "zstd:x", "gzip:10", "lz4:3", ""] {
            let e = bad.parse::<Codec>().unwrap_err().to_string();
            assert!(e.contains("codec"), "{bad}: {e}");
        }
    }
}
