//! The NumPy `.npy` backend: one dense array in one file, in C or Fortran
//! order, little- or big-endian; also headerless raw files laid out as
//! `numpy.memmap` opens them.
//!
//! # I/O
//!
//! Whole chunks move with positioned I/O (`pread`/`pwrite`), one system
//! call per run that is contiguous in the file, so reading or writing
//! chunks never maps pages into the process. Partial reads
//! ([`ChunkStore::read_region`]) go through a read-only memory map of the
//! file and copy only the elements asked for; the map's pages are handed
//! back to the kernel (`MADV_DONTNEED`) after every 32 MiB or so that reads
//! may have touched, so the process's file-backed resident memory stays
//! bounded while the data stays in the page cache.
//!
//! A `.npy` file has no notion of a missing chunk: every chunk reads as
//! `Some`, never-written parts read as zeros (new files are sparse), and
//! [`erase_chunk`](ChunkStore::erase_chunk) writes zeros.
//!
//! # Limits
//!
//! Another process truncating or rewriting the file while a store has it
//! open is outside what this store can guard against: reads through the
//! map of a truncated file raise `SIGBUS`, and data changed underneath
//! reads as whatever the file holds at that moment.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use super::filemap::{FileMap, Touched};
use super::{Capabilities, ChunkRegion, ChunkStore, StoreMeta, extract_region};
use crate::buffer::ChunkBuf;
use crate::chunk_grid::{ChunkGrid, DEFAULT_CHUNK_TARGET_BYTES, default_chunks};
use crate::dtype::{DType, Endian, normalize_bools, swap_bytes_in_place};
use crate::error::{Error, Result};
use crate::layout::{
    Small, Strided, c_strides, copy_region, f_strides, for_each_file_run, single_run,
};

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

/// Runs written at least this long start their write-back at once
/// (`start_writeback`).
const WRITEBACK_MIN_RUN: usize = 1 << 20;

/// Deepest nesting the header parser follows (a valid header needs 3).
const MAX_NESTING: usize = 16;

/// Element order of the array in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Row-major: the last axis varies fastest.
    #[default]
    C,
    /// Column-major: the first axis varies fastest.
    Fortran,
}

/// How [`NpyStore::create`] lays out a new file.
#[derive(Debug, Clone)]
pub struct NpyOptions {
    /// Element order in the file.
    pub order: Order,
    /// Byte order of the data (default little-endian, as NumPy writes on
    /// every common machine).
    pub endian: Endian,
    /// Replace an existing file instead of refusing.
    pub overwrite: bool,
}

impl Default for NpyOptions {
    fn default() -> Self {
        NpyOptions {
            order: Order::C,
            endian: Endian::Little,
            overwrite: false,
        }
    }
}

/// A headerless file as `numpy.memmap(path, dtype, mode, offset, shape,
/// order)` opens it: `offset` bytes of anything, then the dense array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLayout {
    /// Element type.
    pub dtype: DType,
    /// Byte order of the data.
    pub endian: Endian,
    /// Array shape.
    pub shape: Vec<u64>,
    /// Byte position of the first element.
    pub offset: u64,
    /// Element order.
    pub order: Order,
}

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
    fn data_bytes(&self) -> Option<u64> {
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
enum HeaderError {
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

fn bad(msg: impl Into<String>) -> HeaderError {
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

/// A Python literal as it can appear in a header.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Lit>),
    List(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

impl Lit {
    fn describe(&self) -> &'static str {
        match self {
            Lit::Str(_) => "a string",
            Lit::Int(_) => "an integer",
            Lit::Bool(_) => "a bool",
            Lit::None => "None",
            Lit::Tuple(_) => "a tuple",
            Lit::List(_) => "a list",
            Lit::Dict(_) => "a dict",
        }
    }

    /// Python-like text for messages.
    fn repr(&self) -> String {
        fn join(items: &[Lit]) -> String {
            items.iter().map(Lit::repr).collect::<Vec<_>>().join(", ")
        }
        match self {
            Lit::Str(s) => format!("{s:?}"),
            Lit::Int(i) => i.to_string(),
            Lit::Bool(b) => if *b { "True" } else { "False" }.into(),
            Lit::None => "None".into(),
            Lit::Tuple(v) if v.len() == 1 => format!("({},)", v[0].repr()),
            Lit::Tuple(v) => format!("({})", join(v)),
            Lit::List(v) => format!("[{}]", join(v)),
            Lit::Dict(v) => {
                let items: Vec<String> = v
                    .iter()
                    .map(|(k, x)| format!("{}: {}", k.repr(), x.repr()))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
        }
    }
}

/// A recursive-descent parser for the Python literals NumPy writes in
/// headers. It works on bytes; `latin1` says how string contents decode
/// (versions 1.0 and 2.0 are Latin-1, 3.0 is UTF-8, checked beforehand).
struct LitParser<'a> {
    s: &'a [u8],
    pos: usize,
    latin1: bool,
}

impl LitParser<'_> {
    fn skip_ws(&mut self) {
        while let Some(&c) = self.s.get(self.pos) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn unexpected(&self) -> HeaderError {
        match self.peek() {
            None => bad("header dictionary ends too early"),
            Some(c) if c.is_ascii_graphic() => bad(format!(
                "unexpected character {:?} at byte {} of the header dictionary",
                c as char, self.pos
            )),
            Some(c) => bad(format!(
                "unexpected byte 0x{c:02x} at byte {} of the header dictionary",
                self.pos
            )),
        }
    }

    fn value(&mut self, depth: usize) -> std::result::Result<Lit, HeaderError> {
        if depth > MAX_NESTING {
            return Err(bad("header dictionary is nested too deeply"));
        }
        self.skip_ws();
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(b'0'..=b'9' | b'-' | b'+') => self.int(),
            Some(b'(') => {
                self.pos += 1;
                let (items, comma) = self.sequence(b')', depth)?;
                // `(x)` is x in parentheses; only `(x,)` is a tuple.
                if items.len() == 1 && !comma {
                    Ok(items.into_iter().next().expect("one item"))
                } else {
                    Ok(Lit::Tuple(items))
                }
            }
            Some(b'[') => {
                self.pos += 1;
                Ok(Lit::List(self.sequence(b']', depth)?.0))
            }
            Some(b'{') => {
                self.pos += 1;
                self.dict(depth)
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.pos += 1;
                }
                match &self.s[start..self.pos] {
                    b"True" => Ok(Lit::Bool(true)),
                    b"False" => Ok(Lit::Bool(false)),
                    b"None" => Ok(Lit::None),
                    w => Err(bad(format!(
                        "unexpected name {:?} at byte {start} of the header dictionary",
                        String::from_utf8_lossy(w)
                    ))),
                }
            }
            _ => Err(self.unexpected()),
        }
    }

    /// Items up to `close`; also says whether a comma was seen.
    fn sequence(
        &mut self,
        close: u8,
        depth: usize,
    ) -> std::result::Result<(Vec<Lit>, bool), HeaderError> {
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok((items, comma));
            }
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    comma = true;
                }
                Some(c) if c == close => {
                    self.pos += 1;
                    return Ok((items, comma));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn dict(&mut self, depth: usize) -> std::result::Result<Lit, HeaderError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Lit::Dict(items));
            }
            let key = self.value(depth + 1)?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.unexpected());
            }
            self.pos += 1;
            let value = self.value(depth + 1)?;
            items.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Lit::Dict(items));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn string(&mut self, quote: u8) -> std::result::Result<Lit, HeaderError> {
        let start = self.pos;
        self.pos += 1;
        let mut raw = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\n') => {
                    return Err(bad(format!(
                        "unterminated string starting at byte {start} of the header dictionary"
                    )));
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let Some(&next) = self.s.get(self.pos + 1) else {
                        return Err(self.unexpected());
                    };
                    match next {
                        b'\\' | b'\'' | b'"' => raw.push(next),
                        b'n' => raw.push(b'\n'),
                        b't' => raw.push(b'\t'),
                        other => raw.extend_from_slice(&[b'\\', other]),
                    }
                    self.pos += 2;
                }
                Some(c) => {
                    raw.push(c);
                    self.pos += 1;
                }
            }
        }
        let text = if self.latin1 {
            raw.iter().map(|&b| b as char).collect()
        } else {
            String::from_utf8_lossy(&raw).into_owned()
        };
        Ok(Lit::Str(text))
    }

    fn int(&mut self) -> std::result::Result<Lit, HeaderError> {
        let start = self.pos;
        let negative = match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                true
            }
            Some(b'+') => {
                self.pos += 1;
                false
            }
            _ => false,
        };
        self.skip_ws();
        let digits_start = self.pos;
        let mut value: i128 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(c - b'0')))
                .ok_or_else(|| {
                    bad(format!(
                        "integer at byte {start} of the header dictionary is too large"
                    ))
                })?;
            self.pos += 1;
        }
        if self.pos == digits_start {
            return Err(self.unexpected());
        }
        // Python 2 wrote long integers with an `L` suffix.
        if matches!(self.peek(), Some(b'L' | b'l')) {
            self.pos += 1;
        }
        if self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.')
        {
            return Err(self.unexpected());
        }
        Ok(Lit::Int(if negative { -value } else { value }))
    }
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
fn encode_header(dtype: DType, endian: Endian, order: Order, shape: &[u64]) -> Vec<u8> {
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
fn rewrite_header(h: &NpyHeader) -> Option<Vec<u8>> {
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

// ---------------------------------------------------------------------------
// The store

/// A [`ChunkStore`] over one `.npy` (or raw) file. See the [module
/// docs](self).
///
/// The file stays memory-mapped while the store is open: another process
/// truncating it meanwhile is outside what the store can guard against
/// (partial reads would then fault with `SIGBUS`).
#[derive(Debug)]
pub struct NpyStore {
    /// The file's state; a resize replaces it while no call runs.
    inner: RwLock<NpyFile>,
    path: PathBuf,
}

#[derive(Debug)]
struct NpyFile {
    path: PathBuf,
    file: File,
    header: NpyHeader,
    meta: StoreMeta,
    grid: ChunkGrid,
    /// Element strides of the array in the file (C or Fortran order).
    file_strides: Vec<usize>,
    /// The file is in the other byte order than this machine.
    swap: bool,
    writable: bool,
    /// Read-only map of the whole file, for `read_region`; `None` when the
    /// array holds no data or the map could not be made.
    map: Option<FileMap>,
    /// What reads through the map may have made resident.
    touched: Touched,
    /// Positioned reads and writes issued (tests check the run count).
    #[cfg(test)]
    io_calls: AtomicU64,
}

fn store_error(message: String) -> Error {
    Error::Store {
        backend: "npy",
        message,
    }
}

/// Maps `ChunkGrid::new` errors so that they name the file.
fn grid_for(path: &Path, shape: &[u64], chunks: &[u64], dtype: DType) -> Result<ChunkGrid> {
    ChunkGrid::new(shape, chunks, dtype.size()).map_err(|e| match e {
        Error::InvalidArgument(m) => Error::invalid(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Opens a new file for writing, refusing an existing one unless
/// `overwrite`.
fn create_file(path: &Path, overwrite: bool) -> Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true);
    if overwrite {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    o.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Error::io(
                path,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "file already exists (set overwrite to replace it)",
                ),
            )
        } else {
            Error::io(path, e)
        }
    })
}

fn open_file(path: &Path, writable: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

impl NpyStore {
    fn wrap(file: NpyFile) -> Self {
        NpyStore {
            path: file.path.clone(),
            inner: RwLock::new(file),
        }
    }

    /// Creates a new `.npy` file holding zeros (sparse: only the header is
    /// written) and opens it for writing.
    pub fn create(
        path: &Path,
        dtype: DType,
        shape: &[u64],
        chunks: &[u64],
        opts: &NpyOptions,
    ) -> Result<NpyStore> {
        NpyFile::create(path, dtype, shape, chunks, opts).map(Self::wrap)
    }

    /// Creates a headerless file laid out as `layout` says (the first
    /// `layout.offset` bytes read as zeros) and opens it for writing.
    pub fn create_raw(
        path: &Path,
        layout: &RawLayout,
        chunks: &[u64],
        overwrite: bool,
    ) -> Result<NpyStore> {
        NpyFile::create_raw(path, layout, chunks, overwrite).map(Self::wrap)
    }

    /// Opens an existing `.npy` file. Without `chunks`, the chunk shape is
    /// [`default_chunks`] for the file's order.
    pub fn open(path: &Path, chunks: Option<&[u64]>, writable: bool) -> Result<NpyStore> {
        NpyFile::open(path, chunks, writable).map(Self::wrap)
    }

    /// Opens an existing headerless file laid out as `layout` says, as
    /// `numpy.memmap` would.
    pub fn open_raw(
        path: &Path,
        layout: &RawLayout,
        chunks: Option<&[u64]>,
        writable: bool,
    ) -> Result<NpyStore> {
        NpyFile::open_raw(path, layout, chunks, writable).map(Self::wrap)
    }

    /// What the header says now; for raw files version `(0, 0)` and the
    /// layout's offset.
    pub fn header(&self) -> NpyHeader {
        self.inner.read().header.clone()
    }

    /// The file this store reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

super::locked_store!(NpyStore, inner);

impl super::ResizeInPlace for NpyFile {
    /// Grows or shrinks the first axis: a longer file gets its new bytes
    /// as a hole (zeros, NumPy's fill) before the header says so; a
    /// shorter one gets its header first and is cut after. Either way the
    /// file is valid at every step, and both steps are synced.
    fn resize_in_place(&mut self, len: u64) -> Result<()> {
        self.check_writable()?;
        let path = self.path.clone();
        if self.header.shape.is_empty() {
            return Err(Error::invalid(format!(
                "{}: a 0-d array has no axis to resize",
                path.display()
            )));
        }
        if self.fortran() {
            return Err(Error::Unsupported(format!(
                "{}: a Fortran-order file can only grow along its last axis without \
                 moving its data; chunkyard resizes the first",
                path.display()
            )));
        }
        let mut header = self.header.clone();
        header.shape[0] = len;
        let file_len = header
            .data_bytes()
            .and_then(|n| n.checked_add(header.data_offset))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: shape {:?} holds more bytes than fit in a file",
                    path.display(),
                    header.shape
                ))
            })?;
        let grid = grid_for(&path, &header.shape, self.grid.chunk_shape(), header.dtype)?;
        let text = if header.version == (0, 0) {
            None
        } else {
            Some(rewrite_header(&header).ok_or_else(|| {
                Error::Unsupported(format!(
                    "{}: the header has no room for shape {:?} (it was written without \
                     NumPy's growth padding); copy the array with `convert` first",
                    path.display(),
                    header.shape
                ))
            })?)
        };
        let io = |e| Error::io(&path, e);
        let write_header = |file: &File| -> Result<()> {
            if let Some(t) = &text {
                file.write_all_at(t, 0).map_err(io)?;
            }
            file.sync_all().map_err(io)
        };
        let grows = len >= self.header.shape[0];
        // Unmap before the file can get shorter than the map.
        self.map = None;
        if grows {
            self.file.set_len(file_len).map_err(io)?;
            write_header(&self.file)?;
        } else {
            write_header(&self.file)?;
            self.file.set_len(file_len).map_err(io)?;
            self.file.sync_all().map_err(io)?;
        }
        let file = self.file.try_clone().map_err(io)?;
        *self = NpyFile::build(&path, file, header, grid, true)?;
        Ok(())
    }
}

impl NpyFile {
    /// Creates a new `.npy` file holding zeros (sparse: only the header is
    /// written) and opens it for writing.
    pub fn create(
        path: &Path,
        dtype: DType,
        shape: &[u64],
        chunks: &[u64],
        opts: &NpyOptions,
    ) -> Result<NpyFile> {
        let grid = grid_for(path, shape, chunks, dtype)?;
        // One-byte types have no byte order; this is what reopening reports.
        let endian = if dtype.size() == 1 {
            Endian::NATIVE
        } else {
            opts.endian
        };
        let bytes = encode_header(dtype, endian, opts.order, shape);
        if bytes.len() as u64 > MAX_HEADER_BYTES {
            return Err(Error::Unsupported(format!(
                "{}: a shape with {} axes needs a header of {} bytes, more than the {} MiB limit",
                path.display(),
                shape.len(),
                bytes.len(),
                MAX_HEADER_BYTES >> 20
            )));
        }
        let header = NpyHeader {
            version: (bytes[6], bytes[7]),
            dtype,
            endian,
            order: opts.order,
            shape: shape.to_vec(),
            data_offset: bytes.len() as u64,
        };
        Self::create_with(path, header, grid, opts.overwrite, &bytes)
    }

    /// Creates a headerless file laid out as `layout` says (the first
    /// `layout.offset` bytes read as zeros) and opens it for writing.
    pub fn create_raw(
        path: &Path,
        layout: &RawLayout,
        chunks: &[u64],
        overwrite: bool,
    ) -> Result<NpyFile> {
        let grid = grid_for(path, &layout.shape, chunks, layout.dtype)?;
        Self::create_with(path, raw_header(layout), grid, overwrite, &[])
    }

    /// Creates the file: `prefix` at the start, then a hole up to the end
    /// of the data. A file this call created is removed again if a later
    /// step fails, so a retry is not refused as "already exists".
    fn create_with(
        path: &Path,
        header: NpyHeader,
        grid: ChunkGrid,
        overwrite: bool,
        prefix: &[u8],
    ) -> Result<Self> {
        let len = header
            .data_bytes()
            .and_then(|n| n.checked_add(header.data_offset))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: an array of shape {:?} and {} bytes of header does not fit in a file",
                    path.display(),
                    header.shape,
                    header.data_offset
                ))
            })?;
        let file = create_file(path, overwrite)?;
        let made = file
            .write_all_at(prefix, 0)
            .and_then(|()| file.set_len(len))
            .map_err(|e| Error::io(path, e))
            .and_then(|()| Self::build(path, file, header, grid, true));
        if made.is_err() {
            let _ = std::fs::remove_file(path);
        }
        made
    }

    /// Opens an existing `.npy` file. Without `chunks`, the chunk shape is
    /// [`default_chunks`] for the file's order.
    pub fn open(path: &Path, chunks: Option<&[u64]>, writable: bool) -> Result<NpyFile> {
        let file = open_file(path, writable)?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let header = read_header(path, &file, file_len)?;
        Self::open_with(path, file, file_len, header, chunks, writable)
    }

    /// Opens an existing headerless file laid out as `layout` says, as
    /// `numpy.memmap` would.
    pub fn open_raw(
        path: &Path,
        layout: &RawLayout,
        chunks: Option<&[u64]>,
        writable: bool,
    ) -> Result<NpyFile> {
        let file = open_file(path, writable)?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Self::open_with(path, file, file_len, raw_header(layout), chunks, writable)
    }

    fn open_with(
        path: &Path,
        file: File,
        file_len: u64,
        header: NpyHeader,
        chunks: Option<&[u64]>,
        writable: bool,
    ) -> Result<Self> {
        let nbytes = header.data_bytes().ok_or_else(|| {
            Error::format(
                path,
                format!(
                    "shape {:?} of {} holds more bytes than fit in 64 bits",
                    header.shape, header.dtype
                ),
            )
        })?;
        let found = file_len.saturating_sub(header.data_offset);
        if found < nbytes {
            return Err(Error::format(
                path,
                format!(
                    "truncated: expected {nbytes} data bytes, found {found} (shape {:?}, {}, data at byte {})",
                    header.shape, header.dtype, header.data_offset
                ),
            ));
        }
        let chunks = match chunks {
            Some(c) => c.to_vec(),
            None => default_chunks(
                &header.shape,
                header.dtype.size(),
                header.order == Order::Fortran,
                DEFAULT_CHUNK_TARGET_BYTES,
            ),
        };
        let grid = grid_for(path, &header.shape, &chunks, header.dtype)?;
        Self::build(path, file, header, grid, writable)
    }

    fn build(
        path: &Path,
        file: File,
        header: NpyHeader,
        grid: ChunkGrid,
        writable: bool,
    ) -> Result<Self> {
        let nbytes = header.data_bytes().unwrap_or(u64::MAX);
        if usize::try_from(nbytes).is_err() || usize::try_from(header.data_offset).is_err() {
            return Err(Error::Unsupported(format!(
                "{}: {nbytes} bytes of data do not fit in this machine's address space",
                path.display()
            )));
        }
        let fortran = header.order == Order::Fortran;
        // With no elements there are no chunks and strides are never used
        // (and could overflow for shapes like (0, 2**40, 2**40)).
        let file_strides = if nbytes == 0 {
            vec![0; header.shape.len()]
        } else if fortran {
            f_strides(&header.shape)
        } else {
            c_strides(&header.shape)
        };
        // A map that cannot be made (address space) only costs partial
        // reads their efficiency: they fall back to whole-chunk reads.
        let map = if nbytes == 0 {
            None
        } else {
            FileMap::new(&file).ok()
        };
        let meta = StoreMeta {
            dtype: header.dtype,
            shape: header.shape.clone(),
            chunks: grid.chunk_shape().to_vec(),
            fill: vec![0; header.dtype.size()],
        };
        Ok(NpyFile {
            path: path.to_path_buf(),
            file,
            swap: header.dtype.size() > 1 && header.endian != Endian::NATIVE,
            header,
            meta,
            grid,
            file_strides,
            writable,
            map,
            touched: Touched::default(),
            #[cfg(test)]
            io_calls: AtomicU64::new(0),
        })
    }

    fn fortran(&self) -> bool {
        self.header.order == Order::Fortran && self.header.shape.len() > 1
    }

    fn check_chunk(&self, chunk: &[u64]) -> Result<()> {
        if self.grid.contains_chunk(chunk) {
            Ok(())
        } else {
            Err(store_error(format!(
                "{}: chunk {chunk:?} is outside the chunk grid {:?}",
                self.path.display(),
                self.grid.grid_shape()
            )))
        }
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(store_error(format!(
                "{}: cannot write, the file was opened read-only",
                self.path.display()
            )))
        }
    }

    /// Per-axis counts of the chunk's part inside the array, and the
    /// element offset in the file of its first element.
    fn geometry(&self, chunk: &[u64]) -> (Vec<usize>, usize) {
        let origin = self.grid.chunk_origin(chunk);
        let counts = self
            .grid
            .chunk_extent(chunk)
            .iter()
            .map(|&n| n as usize)
            .collect();
        let offset = origin
            .iter()
            .zip(&self.file_strides)
            .map(|(&o, &s)| o as usize * s)
            .sum();
        (counts, offset)
    }

    /// Whether the chunk buffer (C order over the chunk shape) holds the
    /// chunk's inside part densely in file order, so that runs go straight
    /// between file and buffer: C order and every axis but the first
    /// complete.
    fn direct(&self, counts: &[usize]) -> bool {
        !self.fortran()
            && counts
                .iter()
                .skip(1)
                .zip(self.meta.chunks.iter().skip(1))
                .all(|(&n, &c)| n as u64 == c)
    }

    /// Strides of a dense buffer over `counts` in the file's order.
    fn dense_strides(&self, counts: &[usize]) -> Vec<usize> {
        let shape: Vec<u64> = counts.iter().map(|&n| n as u64).collect();
        if self.fortran() {
            f_strides(&shape)
        } else {
            c_strides(&shape)
        }
    }

    /// Axes in file order (fastest-varying last), as `for_each_file_run`
    /// wants them to find the longest file-contiguous runs.
    fn file_order(&self, v: &[usize]) -> Vec<usize> {
        if self.fortran() {
            v.iter().rev().copied().collect()
        } else {
            v.to_vec()
        }
    }

    /// Calls `io(file_position, buffer_range)` for every file-contiguous
    /// run of a `counts` region at `file_offset`, with the buffer laid out
    /// by `buf_strides`. Stops at the first error.
    fn for_each_run(
        &self,
        counts: &[usize],
        file_offset: usize,
        buf_strides: &[usize],
        mut io: impl FnMut(u64, std::ops::Range<usize>, usize) -> io::Result<()>,
    ) -> Result<()> {
        let elem = self.meta.dtype.size();
        let counts = self.file_order(counts);
        let fs = self.file_order(&self.file_strides);
        let bs = self.file_order(buf_strides);
        let mut result = Ok(());
        for_each_file_run(
            &counts,
            Strided {
                offset: file_offset,
                strides: &fs,
            },
            Strided {
                offset: 0,
                strides: &bs,
            },
            |fo, bo, n, stride| {
                if result.is_err() {
                    return;
                }
                // In range: the file holds data_offset + nbytes bytes
                // (checked at open), and fo + n <= the element count.
                let pos = self.header.data_offset + (fo * elem) as u64;
                #[cfg(test)]
                self.io_calls.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = io(pos, bo * elem..(bo + n) * elem, stride) {
                    result = Err(Error::io(&self.path, e));
                }
            },
        );
        result
    }

    /// Reads a region into `buf` (laid out by `buf_strides`).
    fn read_runs(
        &self,
        counts: &[usize],
        file_offset: usize,
        buf: &mut [u8],
        buf_strides: &[usize],
    ) -> Result<()> {
        let elem = self.meta.dtype.size();
        let mut tmp = Vec::new();
        self.for_each_run(counts, file_offset, buf_strides, |pos, range, stride| {
            if stride == 1 || range.len() == elem {
                return self.file.read_exact_at(&mut buf[range], pos);
            }
            // File-contiguous, buffer-strided: read, then scatter. The
            // callers lay buffers out so that this does not happen; it is
            // here for correctness, not speed.
            tmp.resize(range.len(), 0);
            self.file.read_exact_at(&mut tmp, pos)?;
            for (i, e) in tmp.chunks_exact(elem).enumerate() {
                let at = range.start + i * stride * elem;
                buf[at..at + elem].copy_from_slice(e);
            }
            Ok(())
        })
    }

    /// Writes a region from `buf` (laid out by `buf_strides`).
    fn write_runs(
        &self,
        counts: &[usize],
        file_offset: usize,
        buf: &[u8],
        buf_strides: &[usize],
    ) -> Result<()> {
        let elem = self.meta.dtype.size();
        let mut tmp = Vec::new();
        self.for_each_run(counts, file_offset, buf_strides, |pos, range, stride| {
            if stride == 1 || range.len() == elem {
                let len = range.len();
                self.file.write_all_at(&buf[range], pos)?;
                self.start_writeback(pos, len);
                return Ok(());
            }
            tmp.clear();
            for i in 0..range.len() / elem {
                let at = range.start + i * stride * elem;
                tmp.extend_from_slice(&buf[at..at + elem]);
            }
            self.file.write_all_at(&tmp, pos)
        })
    }

    /// Starts writing a long run just written to disk without waiting
    /// for it, so that the disk works while the caller computes and the
    /// next `flush` has less left to sync (the bench's 1.6 GB build
    /// spent 0.88 s of its 2.3 s storing in the final `fdatasync`
    /// without this). `POSIX_FADV_DONTNEED` on pages just written starts
    /// their write-back (`WB_SYNC_NONE`) and drops none of them: they
    /// are dirty or under write-back, and stay cached once clean. Like
    /// `sync_file_range(SYNC_FILE_RANGE_WRITE)`, without `unsafe`. Short
    /// runs are left to the kernel: a system call each would cost more
    /// than it saves. A failure costs speed only and is ignored.
    fn start_writeback(&self, pos: u64, len: usize) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if len >= WRITEBACK_MIN_RUN {
            let _ = rustix::fs::fadvise(
                &self.file,
                pos,
                std::num::NonZeroU64::new(len as u64),
                rustix::fs::Advice::DontNeed,
            );
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = (pos, len);
    }

    fn check_len(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        let want = self.meta.chunk_bytes();
        if data.len() == want {
            Ok(())
        } else {
            Err(store_error(format!(
                "{}: chunk {chunk:?}: {} bytes given, {want} expected",
                self.path.display(),
                data.len()
            )))
        }
    }

    /// Checks a region against the chunk shape.
    fn check_region(&self, chunk: &[u64], region: ChunkRegion<'_>) -> Result<()> {
        if super::region_fits(&self.meta.chunks, region) {
            Ok(())
        } else {
            Err(store_error(format!(
                "{}: region {region:?} does not fit chunk {chunk:?} of shape {:?}",
                self.path.display(),
                self.meta.chunks
            )))
        }
    }

    /// If `region` is one contiguous run in the file and lands as one
    /// contiguous run of the output at `at`: the run's file position and
    /// its byte range in the output.
    fn one_run(
        &self,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        at: Strided<'_>,
    ) -> Option<(u64, std::ops::Range<usize>)> {
        let elem = self.meta.dtype.size();
        let origin = self.grid.chunk_origin(chunk);
        let offset: usize = region
            .iter()
            .zip(&origin)
            .zip(&self.file_strides)
            .map(|((r, &o), &fs)| (o + r.0) as usize * fs)
            .sum();
        let pos = |s: usize| self.header.data_offset + (s * elem) as u64;
        // An element or part of a row, checked without allocating: the
        // random element's path.
        let inner = if self.fortran() {
            0
        } else {
            region.len().saturating_sub(1)
        };
        let row = region.iter().enumerate().all(|(axis, &(_, step, count))| {
            if axis == inner {
                count <= 1 || (step == 1 && at.strides[axis] == 1)
            } else {
                count == 1
            }
        });
        if row {
            let len = region.get(inner).map_or(1, |r| r.2 as usize);
            return Some((pos(offset), at.offset * elem..(at.offset + len) * elem));
        }
        // Whole rows, contiguous in the file and in the output (a scan's
        // block of a C-order chunk): one long read, which the kernel's
        // read-ahead serves well when cold.
        let counts: Small<usize> = region.iter().map(|r| r.2 as usize).collect();
        let strides: Small<usize> = region
            .iter()
            .zip(&self.file_strides)
            .map(|(r, &fs)| r.1 as usize * fs)
            .collect();
        let src = Strided {
            offset,
            strides: &strides,
        };
        let (s, d, n) = single_run(&counts, src, at)?;
        Some((pos(s), d * elem..(d + n) * elem))
    }

    /// Copies the part of `region` inside the array from the map into
    /// `out` at `at`, in file byte order; positions past the array's edge
    /// are left as they are. The region fits the chunk (checked).
    fn copy_from_map(
        &self,
        map: &FileMap,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        out: &mut [u8],
        at: Strided<'_>,
    ) {
        let elem = self.meta.dtype.size();
        // Per axis: the elements of the region inside the array, and the
        // file stride of a step (no heap: this runs on every partial read).
        let origin = self.grid.chunk_origin(chunk);
        let extent = self.grid.chunk_extent(chunk);
        let mut inside: Small<usize> = Small::with_capacity(region.len());
        let mut strides: Small<usize> = Small::with_capacity(region.len());
        let mut offset = 0usize;
        for (i, &(start, step, count)) in region.iter().enumerate() {
            inside.push(if count == 0 || start >= extent[i] {
                0
            } else {
                count.min((extent[i] - 1 - start) / step + 1) as usize
            });
            offset += (origin[i] + start) as usize * self.file_strides[i];
            strides.push(step as usize * self.file_strides[i]);
        }
        let n: usize = inside.iter().product();
        if n == 0 {
            return;
        }
        // Elements from the first to the last.
        let span = 1 + inside
            .iter()
            .zip(strides.iter())
            .map(|(&k, &s)| (k - 1) * s)
            .sum::<usize>();
        let inner = if self.fortran() {
            0
        } else {
            inside.len().saturating_sub(1)
        };
        let run = match region.get(inner) {
            Some(&(_, 1, _)) => inside[inner].max(1),
            _ => 1,
        };
        let runs = (n / run) as u64;
        let touched = map.copy(
            self.header.data_offset as usize,
            &inside,
            elem,
            Strided {
                offset,
                strides: &strides,
            },
            out,
            at,
            (runs, run * elem, span * elem),
        );
        if self.touched.note(touched) {
            map.release();
        }
    }

    fn to_native(&self, buf: &mut [u8]) {
        if self.swap {
            swap_bytes_in_place(buf, self.meta.dtype.size());
        }
        if self.meta.dtype == DType::Bool {
            normalize_bools(buf);
        }
    }
}

fn raw_header(layout: &RawLayout) -> NpyHeader {
    NpyHeader {
        version: (0, 0),
        dtype: layout.dtype,
        endian: layout.endian,
        order: layout.order,
        shape: layout.shape.clone(),
        data_offset: layout.offset,
    }
}

/// Reads and parses the header, reading only as many bytes as the length
/// field says (after checking them against the limit and the file size).
fn read_header(path: &Path, file: &File, file_len: u64) -> Result<NpyHeader> {
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

impl ChunkStore for NpyFile {
    fn backend(&self) -> &'static str {
        "npy"
    }

    fn describe(&self) -> String {
        let h = &self.header;
        let kind = if h.version == (0, 0) {
            format!("raw file, data at byte {}", h.data_offset)
        } else {
            format!("npy {}.{}", h.version.0, h.version.1)
        };
        let order = match h.order {
            Order::C => "C order",
            Order::Fortran => "Fortran order",
        };
        let endian = match h.endian {
            Endian::Little => "little-endian",
            Endian::Big => "big-endian",
        };
        format!("{kind}, {order}, {endian}")
    }

    fn meta(&self) -> StoreMeta {
        self.meta.clone()
    }

    fn capabilities(&self) -> Capabilities {
        // Whole chunks are read straight into the buffer (edge chunks
        // and Fortran order go through a copy).
        Capabilities::new(true, true, false)
            .read_only(!self.writable)
            .reads_into(true)
    }

    fn read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>> {
        self.check_chunk(chunk)?;
        let elem = self.meta.dtype.size();
        let chunk_strides = c_strides(&self.meta.chunks);
        let mut buf = ChunkBuf::zeroed(self.meta.chunk_bytes());
        let (counts, offset) = self.geometry(chunk);
        if self.direct(&counts) {
            self.read_runs(&counts, offset, &mut buf, &chunk_strides)?;
        } else {
            // Read the inside part densely in file order (longest runs),
            // then rearrange into the C-order chunk.
            let dense = self.dense_strides(&counts);
            let mut scratch = vec![0u8; counts.iter().product::<usize>() * elem];
            self.read_runs(&counts, offset, &mut scratch, &dense)?;
            copy_region(
                &counts,
                elem,
                &scratch,
                Strided {
                    offset: 0,
                    strides: &dense,
                },
                &mut buf,
                Strided {
                    offset: 0,
                    strides: &chunk_strides,
                },
            );
        }
        self.to_native(&mut buf);
        Ok(Some(buf))
    }

    fn read_chunk_into(&self, chunk: &[u64], out: &mut [u8]) -> Result<bool> {
        self.check_chunk(chunk)?;
        self.check_len(chunk, out)?;
        let (counts, offset) = self.geometry(chunk);
        let full = counts
            .iter()
            .zip(&self.meta.chunks)
            .all(|(&n, &c)| n as u64 == c);
        if !(full && self.direct(&counts)) {
            // Edge or Fortran chunks: padding and reordering go through
            // the general path.
            let data = self.read_chunk(chunk)?.expect("npy chunks always exist");
            out.copy_from_slice(&data);
            return Ok(true);
        }
        // One positioned read per file run, straight into the caller's
        // buffer: no intermediate chunk.
        self.read_runs(&counts, offset, out, &c_strides(&self.meta.chunks))?;
        self.to_native(out);
        Ok(true)
    }

    fn read_region(&self, chunk: &[u64], region: ChunkRegion<'_>) -> Result<Option<Vec<u8>>> {
        self.check_chunk(chunk)?;
        self.check_region(chunk, region)?;
        let Some(map) = &self.map else {
            let Some(data) = self.read_chunk(chunk)? else {
                return Ok(None);
            };
            return Ok(Some(extract_region(&self.meta, &data, region)));
        };
        let elem = self.meta.dtype.size();
        let out_shape: Vec<u64> = region.iter().map(|r| r.2).collect();
        let out_strides = c_strides(&out_shape);
        let mut out = vec![0u8; out_shape.iter().product::<u64>() as usize * elem];
        // Positions past the array's edge stay zero.
        self.copy_from_map(
            map,
            chunk,
            region,
            &mut out,
            Strided {
                offset: 0,
                strides: &out_strides,
            },
        );
        self.to_native(&mut out);
        Ok(Some(out))
    }

    fn read_region_into(
        &self,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        out: &mut [u8],
        at: Strided<'_>,
    ) -> Result<bool> {
        self.check_chunk(chunk)?;
        self.check_region(chunk, region)?;
        let elem = self.meta.dtype.size();
        super::check_strided_fits(region, elem, out.len(), at)?;
        // Straight from the map when nothing needs converting and the
        // region lies inside the array; else through `read_region`.
        let extent = self.grid.chunk_extent(chunk);
        let inside = region
            .iter()
            .zip(&extent)
            .all(|(&(start, step, count), &e)| count == 0 || start + (count - 1) * step < e);
        let convert = self.swap || self.meta.dtype == DType::Bool;
        if inside
            && !convert
            && let Some((pos, range)) = self.one_run(chunk, region, at)
        {
            // One file run (an element, part of a row): a positioned read
            // costs less than a page fault and leaves nothing mapped.
            #[cfg(test)]
            self.io_calls.fetch_add(1, Ordering::Relaxed);
            self.file
                .read_exact_at(&mut out[range], pos)
                .map_err(|e| Error::io(&self.path, e))?;
            return Ok(true);
        }
        match &self.map {
            Some(map) if inside && !convert => {
                self.copy_from_map(map, chunk, region, out, at);
            }
            _ => {
                let data = self.read_region(chunk, region)?.expect("npy chunks exist");
                super::place_region("npy", chunk, region, elem, &data, out, at)?;
            }
        }
        Ok(true)
    }

    fn write_buffer_bytes(&self) -> usize {
        // Whole C-order rows of a native-order file go straight from the
        // cache's buffer; otherwise a byte-swapped or reordered copy of
        // the chunk is made (edge chunks short along a trailing axis too).
        if !self.writable {
            return 0;
        }
        let ragged = self
            .meta
            .shape
            .iter()
            .zip(&self.meta.chunks)
            .skip(1)
            .any(|(&n, &c)| n % c != 0);
        if self.swap || self.fortran() || ragged {
            self.meta.chunk_bytes()
        } else {
            0
        }
    }

    fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        self.check_chunk(chunk)?;
        self.check_len(chunk, data)?;
        self.check_writable()?;
        let elem = self.meta.dtype.size();
        let chunk_strides = c_strides(&self.meta.chunks);
        let (counts, offset) = self.geometry(chunk);
        if self.direct(&counts) {
            if self.swap {
                let mut copy = data.to_vec();
                swap_bytes_in_place(&mut copy, elem);
                self.write_runs(&counts, offset, &copy, &chunk_strides)
            } else {
                self.write_runs(&counts, offset, data, &chunk_strides)
            }
        } else {
            let dense = self.dense_strides(&counts);
            let mut scratch = vec![0u8; counts.iter().product::<usize>() * elem];
            copy_region(
                &counts,
                elem,
                data,
                Strided {
                    offset: 0,
                    strides: &chunk_strides,
                },
                &mut scratch,
                Strided {
                    offset: 0,
                    strides: &dense,
                },
            );
            if self.swap {
                swap_bytes_in_place(&mut scratch, elem);
            }
            self.write_runs(&counts, offset, &scratch, &dense)
        }
    }

    fn erase_chunk(&self, chunk: &[u64]) -> Result<()> {
        self.check_chunk(chunk)?;
        self.check_writable()?;
        let (counts, offset) = self.geometry(chunk);
        let dense = self.dense_strides(&counts);
        let zeros = vec![0u8; counts.iter().product::<usize>() * self.meta.dtype.size()];
        self.write_runs(&counts, offset, &zeros, &dense)
    }

    fn flush(&self) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }

    fn stored_bytes(&self) -> Result<u64> {
        let m = self.file.metadata().map_err(|e| Error::io(&self.path, e))?;
        Ok(m.blocks().saturating_mul(512))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use proptest::prelude::*;
    use tempfile::TempDir;

    use super::*;
    use crate::store::conformance;

    /// A header as NumPy frames it: magic, version, length, text, padded
    /// with spaces and a newline to a multiple of 64.
    fn framed(version: (u8, u8), dict: &[u8]) -> Vec<u8> {
        let len_bytes = if version == (1, 0) { 2 } else { 4 };
        let total = padded(dict.len() + 1, len_bytes);
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[version.0, version.1]);
        if len_bytes == 2 {
            out.extend_from_slice(&(total as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(total as u32).to_le_bytes());
        }
        out.extend_from_slice(dict);
        out.resize(8 + len_bytes + total - 1, b' ');
        out.push(b'\n');
        out
    }

    fn parse_dict(dict: &str) -> std::result::Result<NpyHeader, String> {
        parse_npy_header(&framed((1, 0), dict.as_bytes()))
    }

    fn err_of(dict: &str) -> String {
        parse_dict(dict).expect_err(dict)
    }

    fn run_conformance(opts: NpyOptions) {
        let dir = TempDir::new().unwrap();
        let n = AtomicUsize::new(0);
        conformance::run_all(&conformance::Harness {
            create: &|m: &StoreMeta| {
                let path = dir
                    .path()
                    .join(format!("a{}.npy", n.fetch_add(1, Ordering::Relaxed)));
                let s = NpyStore::create(&path, m.dtype, &m.shape, &m.chunks, &opts)?;
                assert_eq!(&s.meta(), m);
                let chunks = m.chunks.clone();
                let reopen: conformance::Reopen = Box::new(move || {
                    Ok(Arc::new(NpyStore::open(&path, Some(&chunks), true)?)
                        as Arc<dyn ChunkStore>)
                });
                Ok((Arc::new(s) as Arc<dyn ChunkStore>, reopen))
            },
        });
    }

    #[test]
    fn conformance_c_order_little_endian() {
        run_conformance(NpyOptions::default());
    }

    #[test]
    fn conformance_fortran_order() {
        run_conformance(NpyOptions {
            order: Order::Fortran,
            ..NpyOptions::default()
        });
    }

    #[test]
    fn conformance_big_endian() {
        run_conformance(NpyOptions {
            endian: Endian::Big,
            ..NpyOptions::default()
        });
    }

    #[test]
    fn conformance_fortran_big_endian() {
        run_conformance(NpyOptions {
            order: Order::Fortran,
            endian: Endian::Big,
            overwrite: false,
        });
    }

    // -- header: what NumPy writes ------------------------------------------

    #[test]
    fn encodes_numpy_headers_byte_for_byte() {
        // Captured from `np.save` (NumPy 2.4).
        let cases: [(DType, Endian, Order, &[u64], &str); 4] = [
            (
                DType::F32,
                Endian::Little,
                Order::C,
                &[3, 4],
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
            ),
            (
                DType::I16,
                Endian::Big,
                Order::Fortran,
                &[3, 4],
                "{'descr': '>i2', 'fortran_order': True, 'shape': (3, 4), }",
            ),
            (
                DType::Bool,
                Endian::Little,
                Order::C,
                &[],
                "{'descr': '|b1', 'fortran_order': False, 'shape': (), }",
            ),
            (
                DType::U64,
                Endian::Little,
                Order::C,
                &[5],
                "{'descr': '<u8', 'fortran_order': False, 'shape': (5,), }",
            ),
        ];
        for (dtype, endian, order, shape, dict) in cases {
            let got = encode_header(dtype, endian, order, shape);
            let mut want = b"\x93NUMPY\x01\x00v\x00".to_vec();
            want.extend_from_slice(dict.as_bytes());
            want.resize(127, b' ');
            want.push(b'\n');
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "{dict}"
            );
            let h = parse_npy_header(&got).unwrap();
            assert_eq!(
                (h.dtype, h.order, h.shape.as_slice()),
                (dtype, order, shape)
            );
            assert_eq!(h.data_offset, 128);
        }
    }

    #[test]
    fn header_growth_padding_and_alignment() {
        // (500, 2000, 2000): 21 - 3 growth spaces, total still 128 bytes.
        let h = encode_header(DType::F32, Endian::Little, Order::C, &[500, 2000, 2000]);
        assert_eq!(h.len(), 128);
        assert!(h.ends_with(b" \n"));
        // Exactly on a 64-byte boundary once the growth digits count:
        // NumPy pads with a whole further 64 bytes (182 = 0xb6 header bytes).
        let mut shape = vec![1u64; 14];
        shape.push(3);
        let h = encode_header(DType::F32, Endian::Little, Order::Fortran, &shape);
        assert_eq!(h.len(), 192);
        assert_eq!(&h[8..10], &182u16.to_le_bytes());
        assert_eq!(h[h.len() - 65..h.len() - 1], [b' '; 64]);
        // Data offsets are always a multiple of 64, whatever the shape.
        for ndim in 0..40 {
            // Growth axes of every digit count, the product within 64 bits.
            let mut shape = vec![1u64; ndim as usize];
            if ndim > 0 {
                shape[0] = 10u64.pow(ndim % 10);
                shape[ndim as usize - 1] *= 3 * 10u64.pow((ndim * 3) % 9);
            }
            for order in [Order::C, Order::Fortran] {
                let h = encode_header(DType::F64, Endian::Big, order, &shape);
                assert_eq!(h.len() % 64, 0, "{shape:?}");
                let p = parse_npy_header(&h).unwrap();
                assert_eq!(p.shape, shape);
                assert_eq!(p.order, order);
                assert_eq!(p.version, (1, 0));
            }
        }
    }

    #[test]
    fn header_switches_to_version_2_when_too_long_for_16_bits() {
        let shape = vec![1u64; 30_000];
        let h = encode_header(DType::U8, Endian::Little, Order::C, &shape);
        assert_eq!(&h[6..8], &[2, 0]);
        assert_eq!(h.len() % 64, 0);
        let p = parse_npy_header(&h).unwrap();
        assert_eq!(p.version, (2, 0));
        assert_eq!(p.shape, shape);
        assert_eq!(p.data_offset, h.len() as u64);
    }

    // -- header: good inputs ----------------------------------------------

    #[test]
    fn parses_versions_1_2_and_3() {
        let dict = b"{'descr': '<f4', 'fortran_order': False, 'shape': (500, 2000, 2000), }";
        for v in [(1, 0), (2, 0), (3, 0)] {
            let bytes = framed(v, dict);
            let h = parse_npy_header(&bytes).unwrap();
            assert_eq!(
                h,
                NpyHeader {
                    version: v,
                    dtype: DType::F32,
                    endian: Endian::Little,
                    order: Order::C,
                    shape: vec![500, 2000, 2000],
                    data_offset: bytes.len() as u64,
                }
            );
            // A prefix holding the header is enough; data may follow.
            let mut longer = bytes.clone();
            longer.extend_from_slice(&[7; 100]);
            assert_eq!(parse_npy_header(&longer).unwrap(), h);
        }
    }

    #[test]
    fn parses_header_variations() {
        let h =
            parse_dict("{\"shape\": (5,), \"descr\": \">i8\", \"fortran_order\": True}").unwrap();
        assert_eq!(
            (h.dtype, h.endian, h.order),
            (DType::I64, Endian::Big, Order::Fortran)
        );
        assert_eq!(h.shape, vec![5]);
        let h = parse_dict("{ 'fortran_order' :False ,'shape':( ),'descr':'|u1' , }").unwrap();
        assert_eq!(h.shape, Vec::<u64>::new());
        assert_eq!(h.dtype, DType::U8);
        let h = parse_dict("{'descr':'<b1','fortran_order':False,'shape':(2,\n 3 ,)}").unwrap();
        assert_eq!((h.dtype, h.shape.clone()), (DType::Bool, vec![2, 3]));
        // Python 2 long integers.
        let h =
            parse_dict("{'descr': '<u2', 'fortran_order': False, 'shape': (3L, 4L), }").unwrap();
        assert_eq!(h.shape, vec![3, 4]);
        // Empty arrays and the largest dimension.
        let h = parse_dict(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 18446744073709551615), }",
        )
        .unwrap();
        assert_eq!(h.shape, vec![0, u64::MAX]);
        for d in DType::ALL {
            for e in [Endian::Little, Endian::Big] {
                let dict = format!(
                    "{{'descr': '{}', 'fortran_order': False, 'shape': (2,), }}",
                    d.numpy_descr(e)
                );
                assert_eq!(parse_dict(&dict).unwrap().dtype, d, "{dict}");
            }
        }
    }

    // -- header: bad inputs -------------------------------------------------

    #[test]
    fn rejects_bad_magic_and_versions() {
        let good = framed(
            (1, 0),
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }",
        );
        let mut b = good.clone();
        b[0] = b'P';
        assert!(parse_npy_header(&b).unwrap_err().contains("magic"));
        assert!(
            parse_npy_header(b"PK\x03\x04")
                .unwrap_err()
                .contains("magic")
        );
        assert!(parse_npy_header(b"").unwrap_err().contains("truncated"));
        assert!(
            parse_npy_header(b"\x93NUM")
                .unwrap_err()
                .contains("truncated")
        );
        let mut b = good.clone();
        b[6] = 4;
        let e = parse_npy_header(&b).unwrap_err();
        assert!(e.contains("version 4.0"), "{e}");
        assert!(matches!(
            parse_header_inner(&b),
            Err(HeaderError::Unsupported(_))
        ));
    }

    #[test]
    fn rejects_truncated_headers() {
        let good = framed(
            (1, 0),
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }",
        );
        for len in 0..good.len() {
            let e = parse_npy_header(&good[..len]).unwrap_err();
            assert!(e.contains("truncated"), "{len}: {e}");
        }
        // A length field far larger than what follows.
        let mut b = good.clone();
        b[8..10].copy_from_slice(&60_000u16.to_le_bytes());
        let e = parse_npy_header(&b).unwrap_err();
        assert!(e.contains("truncated") && e.contains("60000"), "{e}");
    }

    #[test]
    fn rejects_header_length_over_the_limit() {
        let mut b = framed(
            (2, 0),
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }",
        );
        b[8..12].copy_from_slice(&(2u32 << 20).to_le_bytes());
        let e = parse_npy_header(&b).unwrap_err();
        assert!(e.contains("1 MiB"), "{e}");
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_npy_header(&b).unwrap_err().contains("1 MiB"));
    }

    #[test]
    fn rejects_garbage_text() {
        // Latin-1 garbage in a version 1.0 header.
        let e = parse_npy_header(&framed((1, 0), b"{'descr': '<f4', \xff\xfe}")).unwrap_err();
        assert!(e.contains("0xff"), "{e}");
        // Invalid UTF-8 in a version 3.0 header, even inside a string.
        let e = parse_npy_header(&framed(
            (3, 0),
            b"{'descr': '<f4\xc3', 'fortran_order': False, 'shape': (5,), }",
        ))
        .unwrap_err();
        assert!(e.contains("UTF-8"), "{e}");
        // Valid UTF-8 that is not a header.
        let e = parse_npy_header(&framed((3, 0), "{'déscr': 1}".as_bytes())).unwrap_err();
        assert!(e.contains("unexpected key"), "{e}");
        for dict in [
            "",
            "{",
            "[1, 2]",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), } x",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (5,)",
            "{'descr': '<f4 , 'fortran_order': False, 'shape': (5,)}",
            "{'descr': '<f4', 'fortran_order': false, 'shape': (5,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (5.0,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (5 6)}",
            "{'descr': '<f4', 'fortran_order': False 'shape': (5,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), \0}",
        ] {
            assert!(parse_dict(dict).is_err(), "{dict:?}");
        }
    }

    #[test]
    fn rejects_bad_keys_and_values() {
        let cases = [
            ("{'descr': '<f4', 'shape': (5,)}", "fortran_order"),
            ("{'descr': '<f4', 'fortran_order': False}", "shape"),
            ("{'fortran_order': False, 'shape': (5,)}", "descr"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), 'extra': 1}",
                "extra",
            ),
            (
                "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (5,)}",
                "twice",
            ),
            (
                "{'descr': '<f4', 'fortran_order': 0, 'shape': (5,)}",
                "True or False",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': [5]}",
                "not a tuple",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (5)}",
                "not a tuple",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': 5}",
                "not a tuple",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 'a')}",
                "integers",
            ),
            (
                "{'descr': 4, 'fortran_order': False, 'shape': (5,)}",
                "dtype string",
            ),
            ("{1: '<f4'}", "not a string"),
        ];
        for (dict, want) in cases {
            let e = err_of(dict);
            assert!(e.contains(want), "{dict}: {e}");
        }
    }

    #[test]
    fn rejects_negative_and_overflowing_shapes() {
        let e = err_of("{'descr': '<f4', 'fortran_order': False, 'shape': (5, -1), }");
        assert!(e.contains("negative dimension -1"), "{e}");
        let e =
            err_of("{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551616,), }");
        assert!(e.contains("too large"), "{e}");
        let e = err_of(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999999999999999999999999999999999999,), }",
        );
        assert!(e.contains("too large"), "{e}");
        // Product overflow: 2**32 * 2**32 elements, and 2**62 f4 elements.
        let e =
            err_of("{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296), }");
        assert!(e.contains("64 bits"), "{e}");
        let e =
            err_of("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }");
        assert!(e.contains("64 bits"), "{e}");
        // Zero anywhere makes the product zero: fine.
        assert!(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 18446744073709551615, 18446744073709551615), }").is_ok());
    }

    #[test]
    fn rejects_unsupported_dtypes_by_name() {
        for descr in ["<c8", "|O", "<U3", "<f2", "|V16", "<M8[ns]", "<i16"] {
            let bytes = framed(
                (1, 0),
                format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (5,), }}")
                    .as_bytes(),
            );
            match parse_header_inner(&bytes) {
                Err(HeaderError::Unsupported(m)) => {
                    assert!(m.contains(descr), "{m}");
                    assert!(m.contains("<f4"), "lists what is supported: {m}");
                }
                other => panic!("{descr}: {other:?}"),
            }
        }
        let bytes = framed(
            (1, 0),
            b"{'descr': [('x', '<f4'), ('y', '<i2', (2,))], 'fortran_order': False, 'shape': (5,), }",
        );
        match parse_header_inner(&bytes) {
            Err(HeaderError::Unsupported(m)) => assert!(m.contains("structured"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let dict = format!("{{'descr': {}", "(".repeat(100_000));
        assert!(err_of(&dict).contains("nested too deeply"));
        let dict = format!("{{'descr': {}", "[{'a': ".repeat(50_000));
        assert!(parse_dict(&dict).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_npy_header(&bytes);
            let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = parse_npy_header(&with_magic);
        }

        #[test]
        fn mutated_headers_never_panic(pos in 0usize..128, byte in any::<u8>(), cut in 0usize..200) {
            let mut h = encode_header(DType::F64, Endian::Big, Order::Fortran, &[3, 70000, 2]);
            let at = pos % h.len();
            h[at] = byte;
            h.truncate(cut.min(h.len()));
            let _ = parse_npy_header(&h);
        }
    }

    // -- files --------------------------------------------------------------

    #[test]
    fn open_names_the_file_and_the_problem() {
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("bad.npy");
        std::fs::write(&p, b"hello").unwrap();
        let e = NpyStore::open(&p, None, false).unwrap_err();
        assert!(matches!(e, Error::Format { .. }), "{e}");
        assert!(
            e.to_string().contains("bad.npy") && e.to_string().contains("magic"),
            "{e}"
        );

        // Header length beyond the end of the file.
        let mut h = framed(
            (1, 0),
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }",
        );
        h.truncate(40);
        std::fs::write(&p, &h).unwrap();
        let e = NpyStore::open(&p, None, false).unwrap_err().to_string();
        assert!(e.contains("truncated header"), "{e}");

        // Data shorter than the shape says.
        let mut h = framed(
            (1, 0),
            b"{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }",
        );
        h.extend_from_slice(&[0; 12]);
        std::fs::write(&p, &h).unwrap();
        let e = NpyStore::open(&p, None, false).unwrap_err().to_string();
        assert!(
            e.contains("truncated: expected 20 data bytes, found 12"),
            "{e}"
        );
        assert!(e.contains("bad.npy"), "{e}");

        // Unsupported dtype.
        let mut h = framed(
            (1, 0),
            b"{'descr': '<c8', 'fortran_order': False, 'shape': (5,), }",
        );
        h.extend_from_slice(&[0; 40]);
        std::fs::write(&p, &h).unwrap();
        let e = NpyStore::open(&p, None, false).unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        assert!(
            e.to_string().contains("bad.npy") && e.to_string().contains("<c8"),
            "{e}"
        );

        // Raw file shorter than its layout.
        std::fs::write(&p, [0u8; 30]).unwrap();
        let layout = RawLayout {
            dtype: DType::F32,
            endian: Endian::Little,
            shape: vec![2, 4],
            offset: 3,
            order: Order::C,
        };
        let e = NpyStore::open_raw(&p, &layout, None, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("truncated: expected 32 data bytes, found 27"),
            "{e}"
        );

        // Missing file.
        let e = NpyStore::open(&dir.path().join("none.npy"), None, false).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }

    #[test]
    fn create_refuses_existing_files_unless_overwrite() {
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("a.npy");
        std::fs::write(&p, b"precious").unwrap();
        let e = NpyStore::create(&p, DType::U8, &[4], &[2], &NpyOptions::default()).unwrap_err();
        assert!(e.to_string().contains("overwrite"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"precious");
        let opts = NpyOptions {
            overwrite: true,
            ..NpyOptions::default()
        };
        let s = NpyStore::create(&p, DType::U8, &[4], &[2], &opts).unwrap();
        assert_eq!(
            s.read_chunk(&[1]).unwrap(),
            Some(ChunkBuf::from(vec![0, 0]))
        );
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 128 + 4);
    }

    #[test]
    fn bad_chunk_shapes_are_errors() {
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("a.npy");
        let o = NpyOptions::default();
        assert!(NpyStore::create(&p, DType::U8, &[4, 4], &[2], &o).is_err());
        assert!(NpyStore::create(&p, DType::U8, &[4, 4], &[2, 0], &o).is_err());
        let e = NpyStore::create(&p, DType::F64, &[1 << 20, 1 << 20], &[1 << 16, 1 << 16], &o)
            .unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("a.npy"),
            "{e}"
        );
        assert!(!p.exists(), "nothing created for a refused chunk shape");
        // Too large for any file system: refused, and nothing left behind.
        let e = NpyStore::create(&p, DType::F64, &[1 << 58], &[1 << 20], &o).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
        assert!(!p.exists(), "a failed create leaves no file");
        let e = NpyStore::create(&p, DType::F64, &[1 << 61], &[1 << 20], &o).unwrap_err();
        assert!(e.to_string().contains("64 bits"), "{e}");
        let e = NpyStore::create(&p, DType::U8, &[u64::MAX - 10], &[1 << 20], &o).unwrap_err();
        assert!(e.to_string().contains("does not fit in a file"), "{e}");
        assert!(!p.exists());
        NpyStore::create(&p, DType::U8, &[4, 4], &[2, 2], &o).unwrap();
        assert!(NpyStore::open(&p, Some(&[5]), false).is_err());
    }

    #[test]
    fn read_only_stores_refuse_writes() {
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("a.npy");
        let s = NpyStore::create(&p, DType::I32, &[4], &[2], &NpyOptions::default()).unwrap();
        s.write_chunk(&[1], &[1, 0, 0, 0, 2, 0, 0, 0]).unwrap();
        drop(s);
        let r = NpyStore::open(&p, Some(&[2]), false).unwrap();
        for e in [
            r.write_chunk(&[0], &[0; 8]).unwrap_err(),
            r.erase_chunk(&[1]).unwrap_err(),
        ] {
            match e {
                Error::Store { backend, message } => {
                    assert_eq!(backend, "npy");
                    assert!(message.contains("read-only"), "{message}");
                }
                other => panic!("{other}"),
            }
        }
        assert_eq!(
            r.read_chunk(&[1]).unwrap(),
            Some(ChunkBuf::from(vec![1, 0, 0, 0, 2, 0, 0, 0]))
        );
        r.flush().unwrap();
    }

    #[test]
    fn bad_regions_are_errors() {
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("a.npy");
        let s = NpyStore::create(&p, DType::U8, &[5, 5], &[2, 3], &NpyOptions::default()).unwrap();
        assert!(s.read_region(&[0, 0], &[(0, 1, 2)]).is_err());
        assert!(s.read_region(&[0, 0], &[(0, 1, 3), (0, 1, 1)]).is_err());
        assert!(s.read_region(&[0, 0], &[(1, 1, 1), (0, 2, 3)]).is_err());
        assert!(s.read_region(&[0, 0], &[(1, 1, 1), (0, 2, 2)]).is_ok());
        assert!(s.read_region(&[0, 0], &[(0, 0, 2), (0, 1, 1)]).is_err());
        assert!(s.read_region(&[3, 0], &[(0, 1, 1), (0, 1, 1)]).is_err());
        assert!(
            s.read_region(&[0, 0], &[(0, u64::MAX, 2), (0, 1, 1)])
                .is_err()
        );
        assert_eq!(
            s.read_region(&[0, 0], &[(0, 1, 0), (0, 1, 3)]).unwrap(),
            Some(vec![])
        );
        // Past the array's edge inside an edge chunk: zeros.
        s.write_chunk(&[2, 1], &[9; 6]).unwrap();
        assert_eq!(
            s.read_region(&[2, 1], &[(0, 1, 2), (0, 1, 3)]).unwrap(),
            Some(vec![9, 9, 0, 0, 0, 0])
        );
    }

    #[test]
    fn zero_d_and_empty_arrays() {
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("scalar.npy");
        let s = NpyStore::create(&p, DType::F64, &[], &[], &NpyOptions::default()).unwrap();
        s.write_chunk(&[], &2.5f64.to_ne_bytes()).unwrap();
        drop(s);
        let s = NpyStore::open(&p, None, false).unwrap();
        assert_eq!(
            s.read_chunk(&[]).unwrap(),
            Some(ChunkBuf::from(2.5f64.to_ne_bytes().to_vec()))
        );
        assert_eq!(
            s.read_region(&[], &[]).unwrap(),
            Some(2.5f64.to_ne_bytes().to_vec())
        );

        let p = dir.path().join("empty.npy");
        let s = NpyStore::create(
            &p,
            DType::I16,
            &[0, 1 << 40, 1 << 40],
            &[1, 1, 1],
            &NpyOptions::default(),
        )
        .unwrap();
        assert_eq!(s.inner.read().grid.num_chunks(), 0);
        assert!(s.read_chunk(&[0, 0, 0]).is_err());
        drop(s);
        let s = NpyStore::open(&p, None, true).unwrap();
        assert_eq!(s.meta().shape, vec![0, 1 << 40, 1 << 40]);
    }

    #[test]
    fn default_chunks_follow_the_file_order() {
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("f.npy");
        let opts = NpyOptions {
            order: Order::Fortran,
            ..NpyOptions::default()
        };
        NpyStore::create(&p, DType::F32, &[2000, 2000, 500], &[1, 1, 1], &opts).unwrap();
        let s = NpyStore::open(&p, None, false).unwrap();
        assert_eq!(s.meta().chunks, vec![2000, 2000, 1]);
        assert_eq!(s.header().order, Order::Fortran);
    }

    #[test]
    fn new_files_are_sparse() {
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("big.npy");
        let s = NpyStore::create(
            &p,
            DType::F32,
            &[256, 1024, 1024],
            &[1, 1024, 1024],
            &NpyOptions::default(),
        )
        .unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), (1 << 30) + 128);
        let stored = s.stored_bytes().unwrap();
        assert!(stored < 1 << 20, "a new 1 GiB file occupies {stored} bytes");
        // Reading chunks does not allocate blocks either.
        assert_eq!(s.read_chunk(&[100, 0, 0]).unwrap().unwrap().len(), 4 << 20);
        s.flush().unwrap();
        assert!(s.stored_bytes().unwrap() < 1 << 20);
        // Writing one chunk allocates about one chunk.
        s.write_chunk(&[7, 0, 0], &vec![1; 4 << 20]).unwrap();
        s.flush().unwrap();
        let stored = s.stored_bytes().unwrap();
        assert!((4 << 20..6 << 20).contains(&stored), "{stored}");
    }

    /// Resident bytes of this process's mapping of `path`, from
    /// `/proc/self/smaps`.
    fn mapped_rss(path: &Path) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
        let name = path.to_str().unwrap();
        let mut in_map = false;
        let mut total = 0;
        let mut found = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                in_map = line.trim_end().ends_with(name);
                found |= in_map;
            } else if in_map && let Some(kb) = line.strip_prefix("Rss:") {
                total += kb
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap()
                    * 1024;
            }
        }
        assert!(found, "no mapping of {name}");
        total
    }

    #[test]
    fn one_element_of_a_64_mib_file() {
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("f.npy");
        let s = NpyStore::create(
            &p,
            DType::F32,
            &[4096, 4096],
            &[64, 64],
            &NpyOptions::default(),
        )
        .unwrap();
        let values: Vec<f32> = (0..64 * 64).map(|i| i as f32 * 0.5).collect();
        s.write_chunk(&[37, 11], bytemuck::cast_slice(&values))
            .unwrap();
        s.flush().unwrap();
        drop(s);
        let s = NpyStore::open(&p, Some(&[64, 64]), false).unwrap();
        // Element (37 * 64 + 5, 11 * 64 + 9) is element (5, 9) of the chunk.
        let got = s
            .read_region(&[37, 11], &[(5, 1, 1), (9, 1, 1)])
            .unwrap()
            .unwrap();
        assert_eq!(got, (((5 * 64 + 9) as f32) * 0.5).to_ne_bytes());
        let zero = s
            .read_region(&[0, 63], &[(63, 1, 1), (63, 1, 1)])
            .unwrap()
            .unwrap();
        assert_eq!(zero, 0f32.to_ne_bytes());
        let rss = mapped_rss(&p);
        assert!(
            rss <= 256 << 10,
            "two one-element reads made {rss} bytes resident"
        );
    }

    #[test]
    fn map_pages_are_released_after_the_threshold() {
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("f.npy");
        let s = NpyStore::create(
            &p,
            DType::U8,
            &[96, 1 << 20],
            &[1, 1 << 20],
            &NpyOptions::default(),
        )
        .unwrap();
        for i in 0..96u64 {
            s.write_chunk(&[i, 0], &vec![i as u8 + 1; 1 << 20]).unwrap();
        }
        let mut max_rss = 0;
        for i in 0..96u64 {
            let got = s
                .read_region(&[i, 0], &[(0, 1, 1), (0, 1, 1 << 20)])
                .unwrap()
                .unwrap();
            assert!(got.iter().all(|&b| b == i as u8 + 1), "row {i}");
            max_rss = max_rss.max(mapped_rss(&p));
        }
        let limit = crate::store::filemap::RELEASE_AFTER_BYTES;
        assert!(
            max_rss > limit / 2,
            "reads went through the map ({max_rss})"
        );
        assert!(
            max_rss <= limit + (6 << 20),
            "resident map grew to {max_rss} bytes"
        );
    }

    #[test]
    fn fortran_and_c_files_hold_the_same_elements() {
        // The same values stored in C and Fortran order read as the same
        // chunks, edge chunks included.
        let dir = TempDir::new().unwrap();
        let shape = [7u64, 10, 3];
        let chunks = [3u64, 4, 2];
        let mut stores = Vec::new();
        for (i, order) in [Order::C, Order::Fortran].into_iter().enumerate() {
            let opts = NpyOptions {
                order,
                endian: if i == 0 { Endian::Little } else { Endian::Big },
                overwrite: false,
            };
            let p = dir.path().join(format!("{i}.npy"));
            stores.push(NpyStore::create(&p, DType::U16, &shape, &chunks, &opts).unwrap());
        }
        let grid = ChunkGrid::new(&shape, &chunks, 2).unwrap();
        for c in grid.chunk_coords() {
            let data: Vec<u8> = (0..grid.chunk_elements() * 2)
                .map(|k| (k as u64 * 7 + grid.linear_index(&c) * 13) as u8)
                .collect();
            for s in &stores {
                s.write_chunk(&c, &data).unwrap();
            }
        }
        // Whole file, element by element, in each order.
        let c_file = std::fs::read(stores[0].path()).unwrap();
        let f_file = std::fs::read(stores[1].path()).unwrap();
        let (cs, fs) = (c_strides(&shape), f_strides(&shape));
        for i in 0..7 {
            for j in 0..10 {
                for k in 0..3 {
                    let a = 128 + 2 * (i * cs[0] + j * cs[1] + k * cs[2]);
                    let b = 128 + 2 * (i * fs[0] + j * fs[1] + k * fs[2]);
                    assert_eq!(c_file[a], f_file[b + 1], "({i}, {j}, {k})");
                    assert_eq!(c_file[a + 1], f_file[b], "({i}, {j}, {k})");
                }
            }
        }
        for c in grid.chunk_coords() {
            let a = stores[0].read_chunk(&c).unwrap().unwrap();
            let b = stores[1].read_chunk(&c).unwrap().unwrap();
            let m = &stores[0].meta();
            let ext: Vec<(u64, u64, u64)> =
                grid.chunk_extent(&c).iter().map(|&n| (0, 1, n)).collect();
            assert_eq!(
                extract_region(m, &a, &ext),
                extract_region(m, &b, &ext),
                "{c:?}"
            );
        }
    }

    #[test]
    fn one_system_call_per_file_run() {
        let dir = TempDir::new().unwrap();
        let calls = |s: &NpyStore| s.inner.read().io_calls.swap(0, Ordering::Relaxed);
        let fortran = NpyOptions {
            order: Order::Fortran,
            ..NpyOptions::default()
        };
        let c = NpyOptions::default();
        /// Shape, chunk shape, options, chunk, runs expected.
        type Case<'a> = (&'a [u64], &'a [u64], &'a NpyOptions, &'a [u64], u64);
        let cases: [Case<'_>; 8] = [
            // Whole trailing axes: one run per chunk, edge or not.
            (&[7, 10], &[3, 10], &c, &[0, 0], 1),
            (&[7, 10], &[3, 10], &c, &[2, 0], 1),
            // Padding in a trailing axis: rows are still contiguous in the file.
            (&[7, 10], &[3, 12], &c, &[2, 0], 1),
            // Cut trailing axis: one run per row.
            (&[7, 10], &[3, 4], &c, &[1, 1], 3),
            (&[7, 10], &[3, 4], &c, &[2, 2], 1),
            // Fortran: leading axes are the contiguous ones.
            (&[7, 10, 3], &[7, 10, 1], &fortran, &[0, 0, 2], 1),
            (&[7, 10, 3], &[7, 4, 2], &fortran, &[0, 2, 1], 1),
            (&[7, 10, 3], &[3, 4, 2], &fortran, &[1, 1, 0], 8),
        ];
        for (i, (shape, chunks, opts, chunk, runs)) in cases.into_iter().enumerate() {
            let p = dir.path().join(format!("{i}.npy"));
            let s = NpyStore::create(&p, DType::U8, shape, chunks, opts).unwrap();
            let data = vec![1u8; s.meta().chunk_bytes()];
            s.write_chunk(chunk, &data).unwrap();
            assert_eq!(calls(&s), runs, "write {shape:?} {chunks:?} {chunk:?}");
            s.read_chunk(chunk).unwrap();
            assert_eq!(calls(&s), runs, "read {shape:?} {chunks:?} {chunk:?}");
            s.erase_chunk(chunk).unwrap();
            assert_eq!(calls(&s), runs, "erase {shape:?} {chunks:?} {chunk:?}");
        }
    }

    #[test]
    fn bools_read_as_zero_or_one() {
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("b.npy");
        let s = NpyStore::create(&p, DType::Bool, &[4], &[4], &NpyOptions::default()).unwrap();
        drop(s);
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(&[0, 2, 255, 1], 128).unwrap();
        let s = NpyStore::open(&p, None, false).unwrap();
        assert_eq!(
            s.read_chunk(&[0]).unwrap(),
            Some(ChunkBuf::from(vec![0, 1, 1, 1]))
        );
        assert_eq!(s.read_region(&[0], &[(1, 1, 2)]).unwrap(), Some(vec![1, 1]));
    }

    fn i32s(b: &[u8]) -> Vec<i32> {
        b.chunks_exact(4)
            .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn raw_files_round_trip() {
        let dir = TempDir::new().unwrap();
        let p = dir.path().join("r.bin");
        let layout = RawLayout {
            dtype: DType::I32,
            endian: Endian::Big,
            shape: vec![3, 5],
            offset: 7,
            order: Order::Fortran,
        };
        let s = NpyStore::create_raw(&p, &layout, &[2, 2], false).unwrap();
        assert_eq!(s.header().version, (0, 0));
        assert_eq!(s.header().data_offset, 7);
        let grid = ChunkGrid::new(&[3, 5], &[2, 2], 4).unwrap();
        for c in grid.chunk_coords() {
            let o = grid.chunk_origin(&c);
            let vals: Vec<i32> = (0..4)
                .map(|k| ((o[0] + k / 2) * 10 + o[1] + k % 2) as i32 - 20)
                .collect();
            s.write_chunk(&c, bytemuck::cast_slice(&vals)).unwrap();
        }
        drop(s);
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 7 + 60);
        // Fortran, big-endian: element (i, j) at 7 + 4 * (i + 3 j).
        for i in 0..3 {
            for j in 0..5 {
                let at = 7 + 4 * (i + 3 * j);
                let v = i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
                assert_eq!(v, (i * 10 + j) as i32 - 20);
            }
        }
        let r = NpyStore::open_raw(&p, &layout, Some(&[3, 5]), false).unwrap();
        let all = i32s(&r.read_chunk(&[0, 0]).unwrap().unwrap());
        let want: Vec<i32> = (0..15).map(|k| (k / 5 * 10 + k % 5) - 20).collect();
        assert_eq!(all, want);
        let col = r
            .read_region(&[0, 0], &[(0, 1, 3), (4, 1, 1)])
            .unwrap()
            .unwrap();
        assert_eq!(i32s(&col), vec![-16, -6, 4]);
    }
}
