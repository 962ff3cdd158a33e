//! The `.npy` header: what it says ([`NpyHeader`]), parsing it from a
//! file's first bytes, and encoding it as `np.save` does.

use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::Order;
use super::literal::{Lit, LitParser};
use crate::dtype::{DType, Endian};
use crate::error::{Error, Result};

/// The magic string every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Largest header chunkyard reads (the header length field is refused
/// above this, before anything is allocated).
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// NumPy aligns the start of the data to this many bytes.
const ARRAY_ALIGN: usize = 64;

/// NumPy leaves room for this many digits in the growth axis so that the
/// shape can be rewritten in place (`numpy.lib.format.GROWTH_AXIS_MAX_DIGITS`).
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// What a `.npy` header says (or, for raw files, what the caller said).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// Format version; `(0, 0)` for a raw file.
    pub version: (u8, u8),
    /// Element type.
    pub dtype: DType,
    /// Byte order of the data (native for one-byte types).
    pub endian: Endian,
    /// Element order.
    pub order: Order,
    /// Array shape.
    pub shape: Vec<u64>,
    /// Byte position of the first element.
    pub data_offset: u64,
}

impl NpyHeader {
    /// Bytes of array data; `None` if they do not fit in 64 bits.
    pub(super) fn data_bytes(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(self.dtype.size() as u64, |acc, &n| acc.checked_mul(n))
    }
}

// ---------------------------------------------------------------------------
// Header parsing

/// Why a header was refused: malformed, or well-formed but asking for
/// something chunkyard does not do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HeaderError {
    Format(String),
    Unsupported(String),
}

impl HeaderError {
    fn message(self) -> String {
        match self {
            HeaderError::Format(m) | HeaderError::Unsupported(m) => m,
        }
    }

    fn into_error(self, path: &Path) -> Error {
        match self {
            HeaderError::Format(m) => Error::format(path, m),
            HeaderError::Unsupported(m) => Error::Unsupported(format!("{}: {m}", path.display())),
        }
    }
}

pub(super) fn bad(msg: impl Into<String>) -> HeaderError {
    HeaderError::Format(msg.into())
}

/// The fixed part in front of the header text.
#[derive(Debug, Clone, Copy)]
struct Preamble {
    version: (u8, u8),
    /// Where the header text starts (10 for version 1.0, else 12).
    text_start: usize,
    /// Length of the header text (padding and newline included).
    text_len: usize,
}

impl Preamble {
    /// Where the data starts: the whole header's length.
    fn data_offset(&self) -> usize {
        // Cannot overflow: text_len <= MAX_HEADER_BYTES.
        self.text_start + self.text_len
    }
}

/// Reads magic, version and header length from the first bytes of a file.
fn parse_preamble(bytes: &[u8]) -> std::result::Result<Preamble, HeaderError> {
    let head = &bytes[..bytes.len().min(MAGIC.len())];
    if !MAGIC.starts_with(head) {
        return Err(bad(
            "not a .npy file: it does not start with the magic string \\x93NUMPY",
        ));
    }
    if bytes.len() < MAGIC.len() + 2 {
        return Err(bad(format!(
            "truncated header: {} bytes, too short for the magic string and version",
            bytes.len()
        )));
    }
    let version = (bytes[6], bytes[7]);
    let len_bytes = match version {
        (1, 0) => 2,
        (2, 0) | (3, 0) => 4,
        (major, minor) => {
            return Err(HeaderError::Unsupported(format!(
                "unsupported .npy format version {major}.{minor} (chunkyard reads 1.0, 2.0 and 3.0)"
            )));
        }
    };
    let text_start = 8 + len_bytes;
    let Some(field) = bytes.get(8..text_start) else {
        return Err(bad(format!(
            "truncated header: {} bytes, too short for the header length field",
            bytes.len()
        )));
    };
    let text_len = if len_bytes == 2 {
        u64::from(u16::from_le_bytes([field[0], field[1]]))
    } else {
        u64::from(u32::from_le_bytes([field[0], field[1], field[2], field[3]]))
    };
    if text_len > MAX_HEADER_BYTES {
        return Err(bad(format!(
            "header length field says {text_len} bytes, more than the {} MiB limit",
            MAX_HEADER_BYTES >> 20
        )));
    }
    Ok(Preamble {
        version,
        text_start,
        text_len: text_len as usize,
    })
}

fn supported_descrs() -> String {
    DType::ALL
        .iter()
        .map(|d| d.numpy_descr(Endian::Little))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_header_inner(bytes: &[u8]) -> std::result::Result<NpyHeader, HeaderError> {
    let pre = parse_preamble(bytes)?;
    let data_offset = pre.data_offset();
    let Some(text) = bytes.get(pre.text_start..data_offset) else {
        return Err(bad(format!(
            "truncated header: the header length field says {} bytes, only {} follow",
            pre.text_len,
            bytes.len().saturating_sub(pre.text_start)
        )));
    };
    let latin1 = pre.version != (3, 0);
    if !latin1 && std::str::from_utf8(text).is_err() {
        return Err(bad("header of a version 3.0 file is not valid UTF-8"));
    }
    let mut p = LitParser {
        s: text,
        pos: 0,
        latin1,
    };
    let dict = p.value(0)?;
    p.skip_ws();
    if p.pos != text.len() {
        return Err(bad(format!(
            "unexpected {} after the header dictionary",
            match p.peek() {
                Some(c) if c.is_ascii_graphic() => format!("character {:?}", c as char),
                Some(c) => format!("byte 0x{c:02x}"),
                None => "end".into(),
            }
        )));
    }
    let Lit::Dict(items) = dict else {
        return Err(bad(format!(
            "header is {}, not a dictionary",
            dict.describe()
        )));
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (key, value) in items {
        let Lit::Str(name) = &key else {
            return Err(bad(format!("header key {} is not a string", key.repr())));
        };
        let slot = match name.as_str() {
            "descr" => &mut descr,
            "fortran_order" => &mut fortran,
            "shape" => &mut shape,
            other => {
                return Err(bad(format!(
                    "unexpected key {other:?} in the header (expected 'descr', 'fortran_order' and 'shape')"
                )));
            }
        };
        if slot.replace(value).is_some() {
            return Err(bad(format!("header key {name:?} appears twice")));
        }
    }
    let missing = |k: &str| bad(format!("header has no {k:?} key"));
    let descr = descr.ok_or_else(|| missing("descr"))?;
    let fortran = fortran.ok_or_else(|| missing("fortran_order"))?;
    let shape = shape.ok_or_else(|| missing("shape"))?;

    let (dtype, endian) = match &descr {
        Lit::Str(s) => DType::from_numpy_descr(s).ok_or_else(|| {
            HeaderError::Unsupported(format!(
                "unsupported dtype descr {s:?} (chunkyard reads {}, in either byte order)",
                supported_descrs()
            ))
        })?,
        Lit::List(_) => {
            return Err(HeaderError::Unsupported(format!(
                "structured dtype descr {} is not supported",
                descr.repr()
            )));
        }
        other => {
            return Err(bad(format!(
                "header 'descr' is {}, not a dtype string",
                other.describe()
            )));
        }
    };
    let order = match fortran {
        Lit::Bool(false) => Order::C,
        Lit::Bool(true) => Order::Fortran,
        other => {
            return Err(bad(format!(
                "header 'fortran_order' is {} ({}), not True or False",
                other.describe(),
                other.repr()
            )));
        }
    };
    let Lit::Tuple(dims) = &shape else {
        return Err(bad(format!(
            "header 'shape' is {} ({}), not a tuple",
            shape.describe(),
            shape.repr()
        )));
    };
    let mut out_shape = Vec::with_capacity(dims.len());
    for d in dims {
        match *d {
            Lit::Int(n) if n < 0 => {
                return Err(bad(format!(
                    "negative dimension {n} in shape {}",
                    shape.repr()
                )));
            }
            Lit::Int(n) => out_shape.push(u64::try_from(n).map_err(|_| {
                bad(format!(
                    "dimension {n} in shape {} is too large",
                    shape.repr()
                ))
            })?),
            _ => {
                return Err(bad(format!(
                    "shape {} holds {}, not only integers",
                    shape.repr(),
                    d.describe()
                )));
            }
        }
    }
    let header = NpyHeader {
        version: pre.version,
        dtype,
        endian,
        order,
        shape: out_shape,
        data_offset: data_offset as u64,
    };
    if header.data_bytes().is_none() {
        return Err(bad(format!(
            "shape {:?} of {} holds more bytes than fit in 64 bits",
            header.shape, header.dtype
        )));
    }
    Ok(header)
}

/// Parses the header at the start of `bytes` (a prefix of a file is enough
/// once it holds the header). Never panics, never allocates what a field
/// claims.
pub fn parse_npy_header(bytes: &[u8]) -> std::result::Result<NpyHeader, String> {
    parse_header_inner(bytes).map_err(HeaderError::message)
}

/// The header bytes NumPy writes for an array (`np.save`): magic, version
/// 1.0 if the length fits in 16 bits else 2.0, the dictionary with sorted
/// keys, room for the growth axis to gain digits, and space padding with a
/// final newline up to a multiple of 64 bytes.
pub(super) fn encode_header(dtype: DType, endian: Endian, order: Order, shape: &[u64]) -> Vec<u8> {
    let fortran = order == Order::Fortran;
    let mut dict = header_dict(dtype, endian, order, shape);
    let growth_axis = if fortran { shape.last() } else { shape.first() };
    if let Some(n) = growth_axis {
        let digits = n.to_string().len();
        dict.extend(std::iter::repeat_n(
            ' ',
            GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits),
        ));
    }
    let text_len = dict.len() + 1; // the final newline
    let (version, len_bytes) = if padded(text_len, 2) <= usize::from(u16::MAX) {
        (1u8, 2usize)
    } else {
        (2u8, 4usize)
    };
    let total = padded(text_len, len_bytes);
    let mut out = Vec::with_capacity(8 + len_bytes + total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if len_bytes == 2 {
        out.extend_from_slice(&(total as u16).to_le_bytes());
    } else {
        // Headers over 4 GiB are refused by `create` before this point.
        out.extend_from_slice(&(total as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(8 + len_bytes + total - 1, b' ');
    out.push(b'\n');
    out
}

/// The header's dictionary text, `{'descr': ..., 'shape': (...), }`,
/// without padding or newline.
fn header_dict(dtype: DType, endian: Endian, order: Order, shape: &[u64]) -> String {
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': {}, 'shape': (",
        dtype.numpy_descr(endian),
        if order == Order::Fortran {
            "True"
        } else {
            "False"
        }
    );
    for (i, n) in shape.iter().enumerate() {
        if i > 0 {
            dict.push_str(", ");
        }
        write!(dict, "{n}").expect("writing to a String");
    }
    if shape.len() == 1 {
        dict.push(',');
    }
    dict.push_str("), }");
    dict
}

/// The header of an existing file rewritten for a new shape, with exactly
/// the old header's length (the data cannot move): the old version and
/// length field, the new dictionary, spaces up to the old end and a
/// newline. `None` if the new dictionary does not fit; NumPy leaves room
/// for the growth axis to gain digits, so files it writes always have it.
pub(super) fn rewrite_header(h: &NpyHeader) -> Option<Vec<u8>> {
    let len_bytes = if h.version.0 == 1 { 2 } else { 4 };
    let start = MAGIC.len() + 2 + len_bytes;
    let total = usize::try_from(h.data_offset).ok()?.checked_sub(start)?;
    let dict = header_dict(h.dtype, h.endian, h.order, &h.shape);
    if dict.len() + 1 > total {
        return None;
    }
    let mut out = Vec::with_capacity(start + total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[h.version.0, h.version.1]);
    if len_bytes == 2 {
        out.extend_from_slice(&u16::try_from(total).ok()?.to_le_bytes());
    } else {
        out.extend_from_slice(&u32::try_from(total).ok()?.to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(start + total - 1, b' ');
    out.push(b'\n');
    Some(out)
}

/// Header text length after NumPy's padding (which is never zero: an
/// aligned header still gets 64 spaces).
fn padded(text_len: usize, len_bytes: usize) -> usize {
    let pad = ARRAY_ALIGN - (MAGIC.len() + 2 + len_bytes + text_len) % ARRAY_ALIGN;
    text_len + pad
}

/// Reads and parses the header, reading only as many bytes as the length
/// field says (after checking them against the limit and the file size).
pub(super) fn read_header(path: &Path, file: &File, file_len: u64) -> Result<NpyHeader> {
    let read = |len: usize| -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, 0)
            .map_err(|e| Error::io(path, e))?;
        Ok(buf)
    };
    // 12 bytes hold the preamble of every version.
    let prefix = read(file_len.min(12) as usize)?;
    let pre = parse_preamble(&prefix).map_err(|e| e.into_error(path))?;
    let need = pre.data_offset() as u64;
    if need > file_len {
        return Err(Error::format(
            path,
            format!(
                "truncated header: the header length field says {} bytes, the file holds {file_len} bytes",
                pre.text_len
            ),
        ));
    }
    let bytes = read(need as usize)?;
    parse_header_inner(&bytes).map_err(|e| e.into_error(path))
}

#[cfg(test)]
pub(super) mod tests;
