//! The Blosc codec (Zarr v3 `blosc`, numcodecs' v2 compressor `blosc`) in
//! Rust: Blosc 1 frames, with LZ4 blocks through `lz4_flex`, Zstandard
//! through `zstd` and zlib through `flate2`. No C Blosc library.
//!
//! # The frame (c-blosc 1.x, format version 2)
//!
//! A 16-byte header: format version (2), compressor version (1), flags,
//! type size, then little-endian `i32`s: decoded bytes, block size, frame
//! bytes. Flags: bit 0 byte shuffle, bit 1 "memcpyed" (the decoded bytes
//! follow the header as they are: small or incompressible buffers), bit 2
//! bit shuffle, bit 4 "do not split", bits 5-7 the compressor (0 blosclz,
//! 1 lz4 and lz4hc, 2 snappy, 3 zlib, 4 zstd).
//!
//! Unless memcpyed, the header is followed by one `i32` start offset per
//! block (decoded size / block size, rounded up; the last block is the
//! leftover). A block is shuffled (bytes or bits, per type size) as a
//! whole, then cut into `typesize` equal splits (each compressed on its
//! own) when it is split, else kept as one; each split is an `i32` length
//! and that many bytes, stored as they are when the length equals the
//! split's decoded size. A block is split when the flags allow it, it is
//! not the leftover, the type size is at most 16 and the block holds at
//! least 128 elements (c-blosc's `blosc_d`, which reads frames written
//! before the flag existed the same way).
//!
//! The encoder writes what c-blosc 1.21 writes with its default split mode
//! (`FORWARD_COMPAT`) and automatic block size, for LZ4, zstd and zlib;
//! every field is read back from the header, so a reader needs no
//! agreement beyond the format. The decoder never trusts a header field:
//! every size is checked against the frame and the chunk's decoded size
//! before anything is read or allocated.

use std::borrow::Cow;
use std::io::Read;
use std::sync::{Arc, Once};

use zarrs::array::codec::api::{
    CodecRuntimePluginV2, CodecRuntimePluginV3, PartialDecoderCapability, PartialEncoderCapability,
    register_codec_v2, register_codec_v3,
};
use zarrs::array::{
    ArrayBytesRaw, BytesRepresentation, BytesToBytesCodecTraits, Codec, CodecError,
    CodecMetadataOptions, CodecOptions, CodecTraits, RecommendedConcurrency,
};
use zarrs::metadata::Configuration;
use zarrs::metadata::v2::MetadataV2;
use zarrs::metadata::v3::MetadataV3;
use zarrs::plugin::{ExtensionAliases, PluginCreateError, ZarrVersion, ZarrVersion2, ZarrVersion3};

/// The codec's name in Zarr v3 metadata and its v2 compressor id.
pub const NAME: &str = "blosc";

/// The frame header's length.
pub const HEADER: usize = 16;
const FORMAT_VERSION: u8 = 2;
const DOSHUFFLE: u8 = 0x1;
const MEMCPYED: u8 = 0x2;
const DOBITSHUFFLE: u8 = 0x4;
const FUTURE_FLAGS: u8 = 0x8;
const DONT_SPLIT: u8 = 0x10;
/// Below this many bytes a buffer is stored memcpyed.
const MIN_BUFFERSIZE: usize = 128;
const MAX_SPLITS: usize = 16;
const L1: usize = 32 * 1024;
/// c-blosc's largest block (`BLOSC_MAX_BLOCKSIZE`).
const MAX_BLOCKSIZE: usize = (i32::MAX as usize - HEADER) / 4 * 4;

/// The shuffle applied to each block before it is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shuffle {
    /// Bytes as they are.
    No,
    /// Byte `j` of every element together (`shuffle`).
    Byte,
    /// Bit `k` of byte `j` of every element together (`bitshuffle`).
    Bit,
}

impl Shuffle {
    /// zarr-python's default for a type size (its `BloscCodec`'s
    /// `evolve_from_array_spec`): bit shuffle for one-byte types, byte
    /// shuffle otherwise.
    pub fn default_for(typesize: usize) -> Shuffle {
        if typesize == 1 {
            Shuffle::Bit
        } else {
            Shuffle::Byte
        }
    }

    fn v3_name(self) -> &'static str {
        match self {
            Shuffle::No => "noshuffle",
            Shuffle::Byte => "shuffle",
            Shuffle::Bit => "bitshuffle",
        }
    }

    fn v2_number(self) -> i64 {
        match self {
            Shuffle::No => 0,
            Shuffle::Byte => 1,
            Shuffle::Bit => 2,
        }
    }

    fn from_json(v: &serde_json::Value) -> Result<Shuffle, String> {
        match (v.as_str(), v.as_i64()) {
            (Some("noshuffle"), _) | (_, Some(0)) => Ok(Shuffle::No),
            (Some("shuffle"), _) | (_, Some(1)) => Ok(Shuffle::Byte),
            (Some("bitshuffle"), _) | (_, Some(2)) => Ok(Shuffle::Bit),
            // numcodecs' AUTOSHUFFLE (-1): bit shuffle for one-byte
            // types, else byte shuffle; decided at encoding.
            (_, Some(-1)) => Ok(Shuffle::Byte),
            _ => Err(format!("blosc codec: unknown shuffle {v}")),
        }
    }
}

/// The compressor inside the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compressor {
    /// LZ4 (`lz4_flex`).
    Lz4,
    /// LZ4HC: the LZ4 format; written with LZ4's fast compressor.
    Lz4hc,
    /// zlib (`flate2`).
    Zlib,
    /// Zstandard (`zstd`).
    Zstd,
}

impl Compressor {
    fn name(self) -> &'static str {
        match self {
            Compressor::Lz4 => "lz4",
            Compressor::Lz4hc => "lz4hc",
            Compressor::Zlib => "zlib",
            Compressor::Zstd => "zstd",
        }
    }

    fn from_name(s: &str) -> Result<Compressor, String> {
        match s {
            "lz4" => Ok(Compressor::Lz4),
            "lz4hc" => Ok(Compressor::Lz4hc),
            "zlib" => Ok(Compressor::Zlib),
            "zstd" => Ok(Compressor::Zstd),
            other => Err(format!(
                "blosc codec: compressor {other:?} (chunkyard's Blosc has lz4, lz4hc, zlib and \
                 zstd; not blosclz or snappy)"
            )),
        }
    }

    /// The compressor's format number in the flags' bits 5-7.
    fn format(self) -> u8 {
        match self {
            Compressor::Lz4 | Compressor::Lz4hc => 1,
            Compressor::Zlib => 3,
            Compressor::Zstd => 4,
        }
    }

    /// High-compression-ratio codecs get bigger blocks (c-blosc's `HCR`).
    fn hcr(self) -> bool {
        !matches!(self, Compressor::Lz4)
    }
}

/// The Blosc codec: the compressor, level, shuffle and type size that
/// encoding uses (decoding reads them from each frame's header).
#[derive(Debug, Clone)]
pub struct BloscCodec {
    cname: Compressor,
    clevel: u8,
    shuffle: Shuffle,
    /// The element size shuffles work on; `None` only without shuffle.
    typesize: Option<usize>,
    /// A forced block size; 0 chooses one as c-blosc does.
    blocksize: usize,
}

zarrs::plugin::impl_extension_aliases!(BloscCodec, v3: NAME, v2: NAME);

impl BloscCodec {
    /// LZ4 at level 5 with zarr-python's default shuffle for elements of
    /// `typesize` bytes: what `--codec lz4` writes.
    pub fn lz4(typesize: usize) -> BloscCodec {
        BloscCodec {
            cname: Compressor::Lz4,
            clevel: 5,
            shuffle: Shuffle::default_for(typesize),
            typesize: Some(typesize),
            blocksize: 0,
        }
    }

    /// A codec from v3 (`typesize` given) or v2 (`typesize`, when absent,
    /// from the data type: `dtype_size`) configuration.
    fn from_configuration(
        c: Option<&Configuration>,
        dtype_size: Option<usize>,
    ) -> Result<BloscCodec, String> {
        let get = |k: &str| c.and_then(|c| c.get(k));
        let cname = match get("cname") {
            Some(v) => Compressor::from_name(
                v.as_str()
                    .ok_or_else(|| format!("blosc codec: cname {v} is not a string"))?,
            )?,
            None => return Err("blosc codec: no cname".into()),
        };
        let clevel = match get("clevel") {
            None => 5,
            Some(v) => v
                .as_u64()
                .filter(|&l| l <= 9)
                .ok_or_else(|| format!("blosc codec: clevel {v} is not in 0..=9"))?
                as u8,
        };
        let shuffle = match get("shuffle") {
            None => Shuffle::No,
            Some(v) => Shuffle::from_json(v)?,
        };
        let typesize = match get("typesize") {
            None | Some(serde_json::Value::Null) => dtype_size,
            Some(v) => Some(
                v.as_u64()
                    .filter(|&t| (1..=255).contains(&t))
                    .ok_or_else(|| format!("blosc codec: typesize {v} is not in 1..=255"))?
                    as usize,
            ),
        };
        if shuffle != Shuffle::No && typesize.is_none() {
            return Err("blosc codec: shuffling needs a typesize".into());
        }
        let blocksize = match get("blocksize") {
            None | Some(serde_json::Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .and_then(|b| usize::try_from(b).ok())
                .ok_or_else(|| format!("blosc codec: blocksize {v} is not a size"))?,
        };
        Ok(BloscCodec {
            cname,
            clevel,
            shuffle,
            typesize,
            blocksize,
        })
    }

    /// Encodes `data` into one Blosc frame.
    pub fn encode(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let typesize = self.typesize.unwrap_or(1);
        encode(
            data,
            typesize,
            self.shuffle,
            self.cname,
            self.clevel,
            self.blocksize,
        )
    }
}

/// Makes zarrs read and write `blosc` (v3 and v2) with this codec. It
/// takes precedence over any compiled-in one. Idempotent.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        register_codec_v3(CodecRuntimePluginV3::new(
            <BloscCodec as ExtensionAliases<ZarrVersion3>>::matches_name,
            |m: &MetadataV3| {
                let c = BloscCodec::from_configuration(m.configuration(), None)
                    .map_err(PluginCreateError::Other)?;
                Ok(Codec::BytesToBytes(Arc::new(c)))
            },
        ));
        register_codec_v2(CodecRuntimePluginV2::new(
            <BloscCodec as ExtensionAliases<ZarrVersion2>>::matches_name,
            |m: &MetadataV2| {
                // v2 metadata has no typesize: a shuffled chunk's header
                // has it, and encoding takes the element size from the
                // dtype (zarrs converts v2 filters and compressors without
                // the dtype, so a v2 array written to uses the frame's
                // typesize 1 unless numcodecs' config names one).
                let c = BloscCodec::from_configuration(Some(m.configuration()), Some(1))
                    .map_err(PluginCreateError::Other)?;
                Ok(Codec::BytesToBytes(Arc::new(c)))
            },
        ));
    });
}

/// The longest frame [`encode`] makes of `decoded` bytes: the header and
/// the bytes (an incompressible buffer is stored memcpyed).
pub fn encoded_bound(decoded: usize) -> usize {
    decoded + HEADER
}

/// c-blosc's `split_block` in its default mode (`FORWARD_COMPAT`).
fn split_block(cname: Compressor, typesize: usize, blocksize: usize) -> bool {
    cname != Compressor::Zstd && typesize <= MAX_SPLITS && blocksize / typesize >= MIN_BUFFERSIZE
}

/// c-blosc's `compute_blocksize` with no forced size.
fn compute_blocksize(
    cname: Compressor,
    clevel: u8,
    typesize: usize,
    nbytes: usize,
    forced: usize,
) -> usize {
    if nbytes < typesize {
        return 1;
    }
    let mut b = nbytes;
    if forced > 0 {
        b = forced.clamp(MIN_BUFFERSIZE, MAX_BLOCKSIZE);
    } else if nbytes >= L1 {
        b = L1;
        if cname.hcr() {
            b *= 2;
        }
        match clevel {
            0 => b /= 4,
            1 => b /= 2,
            2 => {}
            3 => b *= 2,
            4 | 5 => b *= 4,
            6..=8 => b *= 8,
            _ => {
                b *= 8;
                if cname.hcr() {
                    b *= 2;
                }
            }
        }
    }
    if clevel > 0 && split_block(cname, typesize, b) {
        b = b.min(1 << 18) * typesize;
        b = b.clamp(1 << 16, 1 << 20);
    }
    b = b.min(nbytes);
    if b > typesize {
        b = b / typesize * typesize;
    }
    b
}

/// Encodes `data` as c-blosc 1 does (`blosc_compress` with the default
/// split mode and block size): a frame any Blosc 1 or 2 reader decodes.
pub fn encode(
    data: &[u8],
    typesize: usize,
    shuffle: Shuffle,
    cname: Compressor,
    clevel: u8,
    forced_blocksize: usize,
) -> Result<Vec<u8>, String> {
    let nbytes = data.len();
    if nbytes > i32::MAX as usize - HEADER {
        return Err(format!(
            "blosc: {nbytes} bytes do not fit one frame (at most {} bytes)",
            i32::MAX as usize - HEADER
        ));
    }
    let typesize = if (1..=255).contains(&typesize) {
        typesize
    } else {
        1
    };
    let blocksize = compute_blocksize(cname, clevel, typesize, nbytes, forced_blocksize);
    let mut flags = cname.format() << 5;
    match shuffle {
        Shuffle::No => {}
        Shuffle::Byte => flags |= DOSHUFFLE,
        Shuffle::Bit => flags |= DOBITSHUFFLE,
    }
    if !split_block(cname, typesize, blocksize) {
        flags |= DONT_SPLIT;
    }
    let header = |flags: u8, cbytes: usize| {
        let mut h = [0u8; HEADER];
        h[0] = FORMAT_VERSION;
        h[1] = 1;
        h[2] = flags;
        h[3] = typesize as u8;
        h[4..8].copy_from_slice(&(nbytes as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(blocksize as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(cbytes as u32).to_le_bytes());
        h
    };
    let memcpyed = |flags: u8| {
        let mut out = Vec::with_capacity(HEADER + nbytes);
        out.extend_from_slice(&header(flags | MEMCPYED, HEADER + nbytes));
        out.extend_from_slice(data);
        out
    };
    if clevel == 0 || nbytes < MIN_BUFFERSIZE {
        return Ok(memcpyed(flags));
    }
    let nblocks = nbytes.div_ceil(blocksize);
    let mut out = vec![0u8; HEADER + 4 * nblocks];
    // The frame may not grow past the memcpyed frame (c-blosc's destsize
    // in numcodecs): then it is stored memcpyed.
    let most = nbytes + HEADER;
    let mut shuffled = vec![0u8; blocksize];
    let mut scratch = vec![0u8; blocksize];
    for (j, block) in data.chunks(blocksize).enumerate() {
        let start = out.len() as u32;
        out[HEADER + 4 * j..HEADER + 4 * j + 4].copy_from_slice(&start.to_le_bytes());
        let leftover = block.len() < blocksize;
        let src: &[u8] = match shuffle {
            Shuffle::Byte if typesize > 1 => {
                shuffle_bytes(typesize, block, &mut shuffled[..block.len()]);
                &shuffled[..block.len()]
            }
            Shuffle::Bit if block.len() >= typesize => {
                bitshuffle(typesize, block, &mut shuffled[..block.len()], &mut scratch);
                &shuffled[..block.len()]
            }
            _ => block,
        };
        let nsplits = if flags & DONT_SPLIT == 0 && !leftover {
            typesize
        } else {
            1
        };
        let neblock = block.len() / nsplits;
        for split in src.chunks_exact(neblock).take(nsplits) {
            let compressed = compress(cname, clevel, split)?;
            let stored: &[u8] = if compressed.is_empty() || compressed.len() >= neblock {
                split
            } else {
                &compressed
            };
            if out.len() + 4 + stored.len() > most {
                return Ok(memcpyed(flags));
            }
            out.extend_from_slice(&(stored.len() as u32).to_le_bytes());
            out.extend_from_slice(stored);
        }
    }
    let cbytes = out.len();
    out[..HEADER].copy_from_slice(&header(flags, cbytes));
    Ok(out)
}

fn compress(cname: Compressor, clevel: u8, split: &[u8]) -> Result<Vec<u8>, String> {
    match cname {
        Compressor::Lz4 | Compressor::Lz4hc => Ok(lz4_flex::block::compress(split)),
        Compressor::Zstd => {
            zstd::bulk::compress(split, i32::from(clevel)).map_err(|e| format!("blosc: zstd: {e}"))
        }
        Compressor::Zlib => {
            use std::io::Write;
            let mut e = flate2::write::ZlibEncoder::new(
                Vec::new(),
                flate2::Compression::new(u32::from(clevel)),
            );
            e.write_all(split)
                .and_then(|()| e.finish())
                .map_err(|e| format!("blosc: zlib: {e}"))
        }
    }
}

/// The header fields of a frame, checked against the frame's length.
#[derive(Debug, Clone, Copy)]
struct Header {
    flags: u8,
    typesize: usize,
    nbytes: usize,
    blocksize: usize,
    cbytes: usize,
}

fn read_header(frame: &[u8]) -> Result<Header, String> {
    let Some(h) = frame.first_chunk::<HEADER>() else {
        return Err(format!(
            "blosc: {} bytes, too short for the 16-byte header",
            frame.len()
        ));
    };
    let field = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    if h[0] != FORMAT_VERSION {
        return Err(format!(
            "blosc: format version {} (chunkyard reads Blosc 1 frames, version 2)",
            h[0]
        ));
    }
    let header = Header {
        flags: h[2],
        typesize: usize::from(h[3]),
        nbytes: field(4) as usize,
        blocksize: field(8) as usize,
        cbytes: field(12) as usize,
    };
    if header.flags & FUTURE_FLAGS != 0 {
        return Err(format!("blosc: unknown flags {:#04x}", header.flags));
    }
    if header.cbytes != frame.len() {
        return Err(format!(
            "blosc: the header says {} frame bytes, the chunk holds {}",
            header.cbytes,
            frame.len()
        ));
    }
    Ok(header)
}

/// The decoded size a frame's header states, not yet checked further.
pub fn decoded_len(frame: &[u8]) -> Result<usize, String> {
    read_header(frame).map(|h| h.nbytes)
}

/// Decodes one frame into `out`, which it must fill exactly.
pub fn decode_into(frame: &[u8], out: &mut [u8]) -> Result<(), String> {
    let h = read_header(frame)?;
    if h.nbytes != out.len() {
        return Err(format!(
            "blosc: the header says {} decoded bytes, the chunk holds {}",
            h.nbytes,
            out.len()
        ));
    }
    if h.nbytes == 0 {
        return Ok(());
    }
    if h.flags & MEMCPYED != 0 {
        if h.cbytes != HEADER + h.nbytes {
            return Err(format!(
                "blosc: a stored (memcpyed) frame of {} bytes for {} decoded bytes",
                h.cbytes, h.nbytes
            ));
        }
        out.copy_from_slice(&frame[HEADER..]);
        return Ok(());
    }
    if h.blocksize == 0 || h.blocksize > h.nbytes || h.blocksize > MAX_BLOCKSIZE {
        return Err(format!("blosc: block size {} is invalid", h.blocksize));
    }
    if h.typesize == 0 {
        return Err("blosc: type size 0".into());
    }
    let cname = match h.flags >> 5 {
        1 => Compressor::Lz4,
        3 => Compressor::Zlib,
        4 => Compressor::Zstd,
        0 => return Err("blosc: the frame is compressed with blosclz, which chunkyard does not decode (it decodes lz4, lz4hc, zlib and zstd)".into()),
        2 => return Err("blosc: the frame is compressed with snappy, which chunkyard does not decode (it decodes lz4, lz4hc, zlib and zstd)".into()),
        n => return Err(format!("blosc: unknown compressor format {n}")),
    };
    let nblocks = h.nbytes.div_ceil(h.blocksize);
    if nblocks > (h.cbytes - HEADER) / 4 {
        return Err(format!(
            "blosc: {nblocks} blocks do not fit a frame of {} bytes",
            h.cbytes
        ));
    }
    let shuffled = h.flags & (DOSHUFFLE | DOBITSHUFFLE) != 0;
    let mut tmp = if shuffled {
        vec![0u8; h.blocksize]
    } else {
        Vec::new()
    };
    let mut scratch = if h.flags & DOBITSHUFFLE != 0 {
        vec![0u8; h.blocksize]
    } else {
        Vec::new()
    };
    for (j, dest) in out.chunks_mut(h.blocksize).enumerate() {
        let at = HEADER + 4 * j;
        let start =
            u32::from_le_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]) as usize;
        decode_block(frame, &h, cname, start, dest, &mut tmp, &mut scratch)
            .map_err(|m| format!("blosc: block {j}: {m}"))?;
    }
    Ok(())
}

/// c-blosc's `blosc_d`: one block's splits, then its unshuffle.
fn decode_block(
    frame: &[u8],
    h: &Header,
    cname: Compressor,
    mut at: usize,
    dest: &mut [u8],
    tmp: &mut [u8],
    scratch: &mut [u8],
) -> Result<(), String> {
    let bsize = dest.len();
    let leftover = bsize < h.blocksize;
    let ts = h.typesize;
    let doshuffle = h.flags & DOSHUFFLE != 0 && ts > 1;
    let dobitshuffle = h.flags & DOBITSHUFFLE != 0 && bsize >= ts;
    let nsplits = if h.flags & DONT_SPLIT == 0
        && ts <= MAX_SPLITS
        && bsize / ts >= MIN_BUFFERSIZE
        && !leftover
    {
        ts
    } else {
        1
    };
    let neblock = bsize / nsplits;
    if neblock * nsplits != bsize {
        return Err(format!(
            "{bsize} bytes do not split into {nsplits} equal parts"
        ));
    }
    let target: &mut [u8] = if doshuffle || dobitshuffle {
        &mut tmp[..bsize]
    } else {
        dest
    };
    for part in target.chunks_exact_mut(neblock) {
        let len = frame
            .get(at..at + 4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("a split's length at byte {at} lies past the frame"))?;
        at += 4;
        let src = usize::try_from(len)
            .ok()
            .and_then(|n| frame.get(at..at + n))
            .ok_or_else(|| format!("a split of {len} bytes at byte {at} lies past the frame"))?;
        at += src.len();
        if src.len() == neblock {
            part.copy_from_slice(src);
        } else {
            decompress(cname, src, part)?;
        }
    }
    if doshuffle {
        unshuffle_bytes(ts, &tmp[..bsize], dest);
    } else if dobitshuffle {
        bitunshuffle(ts, &tmp[..bsize], dest, scratch);
    }
    Ok(())
}

fn decompress(cname: Compressor, src: &[u8], out: &mut [u8]) -> Result<(), String> {
    let n = match cname {
        Compressor::Lz4 | Compressor::Lz4hc => lz4_flex::block::decompress_into(src, out)
            .map_err(|e| format!("corrupt lz4 data: {e}"))?,
        Compressor::Zstd => zstd::bulk::Decompressor::new()
            .and_then(|mut d| d.decompress_to_buffer(src, out))
            .map_err(|e| format!("corrupt zstd data: {e}"))?,
        Compressor::Zlib => {
            let mut d = flate2::read::ZlibDecoder::new(src);
            d.read_exact(out)
                .map_err(|e| format!("corrupt zlib data: {e}"))?;
            let mut extra = [0u8; 1];
            match d.read(&mut extra) {
                Ok(0) => out.len(),
                _ => out.len() + 1,
            }
        }
    };
    if n != out.len() {
        return Err(format!("a split decodes to {n} bytes, not {}", out.len()));
    }
    Ok(())
}

/// Byte shuffle (c-blosc's `shuffle_generic`): byte `j` of element `i`
/// goes to `j * n + i`; the bytes past the last whole element stay put.
fn shuffle_bytes(ts: usize, src: &[u8], dest: &mut [u8]) {
    let n = src.len() / ts;
    match ts {
        2 => shuffle_n::<2>(src, dest, n),
        4 => shuffle_n::<4>(src, dest, n),
        8 => shuffle_n::<8>(src, dest, n),
        _ => {
            for (i, e) in src.chunks_exact(ts).enumerate() {
                for (j, &b) in e.iter().enumerate() {
                    dest[j * n + i] = b;
                }
            }
        }
    }
    dest[n * ts..].copy_from_slice(&src[n * ts..]);
}

/// [`shuffle_bytes`] for a type size known at compile time: the element
/// loop has no bounds checks left (every plane is cut to `n` first).
fn shuffle_n<const N: usize>(src: &[u8], dest: &mut [u8], n: usize) {
    let src = &src[..n * N];
    let mut planes: Vec<&mut [u8]> = dest[..n * N].chunks_exact_mut(n.max(1)).collect();
    if n == 0 {
        return;
    }
    let planes: &mut [&mut [u8]; N] = (&mut planes[..]).try_into().expect("N planes");
    for (i, e) in src.chunks_exact(N).enumerate() {
        let e: &[u8; N] = e.try_into().expect("N bytes");
        for j in 0..N {
            planes[j][i] = e[j];
        }
    }
}

/// The inverse of [`shuffle_bytes`].
fn unshuffle_bytes(ts: usize, src: &[u8], dest: &mut [u8]) {
    let n = src.len() / ts;
    match ts {
        2 => unshuffle_n::<2>(src, dest, n),
        4 => unshuffle_n::<4>(src, dest, n),
        8 => unshuffle_n::<8>(src, dest, n),
        _ => {
            for (i, e) in dest.chunks_exact_mut(ts).enumerate() {
                for (j, b) in e.iter_mut().enumerate() {
                    *b = src[j * n + i];
                }
            }
        }
    }
    dest[n * ts..].copy_from_slice(&src[n * ts..]);
}

/// [`unshuffle_bytes`] for a type size known at compile time.
fn unshuffle_n<const N: usize>(src: &[u8], dest: &mut [u8], n: usize) {
    if n == 0 {
        return;
    }
    let planes: [&[u8]; N] = std::array::from_fn(|j| &src[j * n..(j + 1) * n]);
    for (i, e) in dest[..n * N].chunks_exact_mut(N).enumerate() {
        for j in 0..N {
            e[j] = planes[j][i];
        }
    }
}

/// The 8x8 bit transpose of bitshuffle (`TRANS_BIT_8X8`, little-endian).
fn trans_bit_8x8(mut x: u64) -> u64 {
    let mut t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x = x ^ t ^ (t << 7);
    t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x = x ^ t ^ (t << 14);
    t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

fn load_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// c-blosc's `bitshuffle`: when the block's element count is a multiple
/// of 8, bitshuffle's `bshuf_trans_bit_elem` over the whole elements (the
/// bytes past them stay put); otherwise the block as it is.
fn bitshuffle(ts: usize, src: &[u8], dest: &mut [u8], scratch: &mut [u8]) {
    let size = src.len() / ts;
    if !size.is_multiple_of(8) {
        dest.copy_from_slice(src);
        return;
    }
    let nbyte = size * ts;
    let tmp = &mut scratch[..nbyte];
    // Bytes within elements (the byte shuffle), into `dest`.
    for (i, e) in src[..nbyte].chunks_exact(ts).enumerate() {
        for (j, &b) in e.iter().enumerate() {
            dest[j * size + i] = b;
        }
    }
    // Bits within bytes: row k holds bit k of every byte, into `tmp`.
    let rows = nbyte / 8;
    for ii in 0..rows {
        let mut x = trans_bit_8x8(load_u64(&dest[ii * 8..]));
        for kk in 0..8 {
            tmp[kk * rows + ii] = x as u8;
            x >>= 8;
        }
    }
    // Rows regrouped per element byte: (bit, byte) -> (byte, bit).
    let row = size / 8;
    for ii in 0..8 {
        for jj in 0..ts {
            let from = (ii * ts + jj) * row;
            let to = (jj * 8 + ii) * row;
            dest[to..to + row].copy_from_slice(&tmp[from..from + row]);
        }
    }
    dest[nbyte..].copy_from_slice(&src[nbyte..]);
}

/// The inverse of [`bitshuffle`] (`bshuf_untrans_bit_elem`).
fn bitunshuffle(ts: usize, src: &[u8], dest: &mut [u8], scratch: &mut [u8]) {
    let size = src.len() / ts;
    if !size.is_multiple_of(8) {
        dest.copy_from_slice(src);
        return;
    }
    let nbyte = size * ts;
    let tmp = &mut scratch[..nbyte];
    // `bshuf_trans_byte_bitrow`: eight bytes per (element group, byte).
    let row = size / 8;
    for jj in 0..ts {
        for ii in 0..row {
            for kk in 0..8 {
                tmp[ii * 8 * ts + jj * 8 + kk] = src[(jj * 8 + kk) * row + ii];
            }
        }
    }
    // `bshuf_shuffle_bit_eightelem`: transpose the bits back.
    for jj in (0..8 * ts).step_by(8) {
        for ii in (0..nbyte).step_by(8 * ts) {
            let mut x = trans_bit_8x8(load_u64(&tmp[ii + jj..]));
            for kk in 0..8 {
                dest[ii + jj / 8 + kk * ts] = x as u8;
                x >>= 8;
            }
        }
    }
    dest[nbyte..].copy_from_slice(&src[nbyte..]);
}

impl CodecTraits for BloscCodec {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn configuration(
        &self,
        version: ZarrVersion,
        _options: &CodecMetadataOptions,
    ) -> Option<Configuration> {
        let mut m = serde_json::Map::new();
        m.insert("cname".into(), self.cname.name().into());
        m.insert("clevel".into(), self.clevel.into());
        match version {
            ZarrVersion::V2 => {
                m.insert("shuffle".into(), self.shuffle.v2_number().into());
            }
            ZarrVersion::V3 => {
                m.insert("shuffle".into(), self.shuffle.v3_name().into());
                if let Some(t) = self.typesize {
                    m.insert("typesize".into(), t.into());
                }
            }
        }
        m.insert("blocksize".into(), self.blocksize.into());
        Some(Configuration::from(m))
    }

    fn partial_decoder_capability(&self) -> PartialDecoderCapability {
        PartialDecoderCapability {
            partial_read: false,
            partial_decode: false,
        }
    }

    fn partial_encoder_capability(&self) -> PartialEncoderCapability {
        PartialEncoderCapability {
            partial_encode: false,
        }
    }
}

impl BytesToBytesCodecTraits for BloscCodec {
    fn into_dyn(self: Arc<Self>) -> Arc<dyn BytesToBytesCodecTraits> {
        self
    }

    fn recommended_concurrency(
        &self,
        _decoded_representation: &BytesRepresentation,
    ) -> Result<RecommendedConcurrency, CodecError> {
        Ok(RecommendedConcurrency::new_maximum(1))
    }

    fn encoded_representation(
        &self,
        decoded_representation: &BytesRepresentation,
    ) -> BytesRepresentation {
        decoded_representation
            .size()
            .map_or(BytesRepresentation::UnboundedSize, |n| {
                BytesRepresentation::BoundedSize(n + HEADER as u64)
            })
    }

    fn encode<'a>(
        &self,
        decoded_value: ArrayBytesRaw<'a>,
        _options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        BloscCodec::encode(self, &decoded_value)
            .map(Cow::Owned)
            .map_err(CodecError::Other)
    }

    fn decode<'a>(
        &self,
        encoded_value: ArrayBytesRaw<'a>,
        decoded_representation: &BytesRepresentation,
        _options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        let claimed = decoded_len(&encoded_value).map_err(CodecError::Other)?;
        let len = match decoded_representation.size() {
            Some(n) => n as usize,
            // Without a known size (never for chunkyard's arrays), a
            // header claiming more than a generous ratio is refused
            // rather than allocated.
            None if claimed > encoded_value.len().saturating_mul(1 << 12) => {
                return Err(CodecError::Other(format!(
                    "blosc: the header says {claimed} decoded bytes, more than {} bytes hold",
                    encoded_value.len()
                )));
            }
            None => claimed,
        };
        let mut out = vec![0u8; len];
        decode_into(&encoded_value, &mut out).map_err(CodecError::Other)?;
        Ok(Cow::Owned(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        // Smooth values: compressible once shuffled.
        (0..n as u32).flat_map(|i| (i / 3).to_le_bytes()).collect()
    }

    #[test]
    fn round_trips_every_shuffle_compressor_and_size() {
        for cname in [
            Compressor::Lz4,
            Compressor::Lz4hc,
            Compressor::Zstd,
            Compressor::Zlib,
        ] {
            for shuffle in [Shuffle::No, Shuffle::Byte, Shuffle::Bit] {
                for ts in [1, 2, 4, 8, 3] {
                    for n in [0, 5, 127, 128, 1000, 70_001, 300_000] {
                        let d = data(n);
                        let d = &d[..n];
                        let enc = encode(d, ts, shuffle, cname, 5, 0).unwrap();
                        assert!(enc.len() <= encoded_bound(n));
                        let mut out = vec![0u8; n];
                        decode_into(&enc, &mut out).unwrap();
                        assert_eq!(out, d, "{cname:?} {shuffle:?} ts {ts} n {n}");
                    }
                }
            }
        }
    }

    #[test]
    fn forced_block_sizes_leave_leftover_blocks() {
        let d = data(10_000);
        for blocksize in [128, 1000, 4096] {
            let enc = encode(&d, 4, Shuffle::Bit, Compressor::Lz4, 5, blocksize).unwrap();
            let mut out = vec![0u8; d.len()];
            decode_into(&enc, &mut out).unwrap();
            assert_eq!(out, d);
        }
    }

    #[test]
    fn shuffles_invert_and_bitshuffle_groups_bits() {
        // Eight one-byte elements 0b1, 0, 0, ...: bit 0 of element 0 is
        // the first bit of row 0.
        let src = [1u8, 0, 0, 0, 0, 0, 0, 0x80];
        let mut dest = [0u8; 8];
        let mut scratch = [0u8; 8];
        bitshuffle(1, &src, &mut dest, &mut scratch);
        assert_eq!(dest, [1, 0, 0, 0, 0, 0, 0, 0x80]);
        let src: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
        for ts in [1, 2, 4, 8] {
            let (mut s, mut back, mut scratch) = (vec![0; 64], vec![0; 64], vec![0; 64]);
            bitshuffle(ts, &src, &mut s, &mut scratch);
            bitunshuffle(ts, &s, &mut back, &mut scratch);
            assert_eq!(back, src, "bit ts {ts}");
            shuffle_bytes(ts, &src, &mut s);
            unshuffle_bytes(ts, &s, &mut back);
            assert_eq!(back, src, "byte ts {ts}");
        }
    }

    #[test]
    fn incompressible_data_is_stored_memcpyed() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let d: Vec<u8> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let enc = encode(&d, 1, Shuffle::No, Compressor::Lz4, 5, 0).unwrap();
        assert_eq!(enc[2] & MEMCPYED, MEMCPYED);
        assert_eq!(enc.len(), d.len() + HEADER);
        let mut out = vec![0u8; d.len()];
        decode_into(&enc, &mut out).unwrap();
        assert_eq!(out, d);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Any data, type size, shuffle and forced block size round-trip.
        #[test]
        fn any_data_round_trips(
            data in proptest::collection::vec(0u8..4, 0..3000),
            ts in 1usize..12,
            shuffle in 0u8..3,
            blocksize in proptest::prop_oneof![proptest::strategy::Just(0usize), 1usize..2000],
        ) {
            let shuffle = [Shuffle::No, Shuffle::Byte, Shuffle::Bit][usize::from(shuffle)];
            let enc = encode(&data, ts, shuffle, Compressor::Lz4, 5, blocksize).unwrap();
            let mut out = vec![0u8; data.len()];
            decode_into(&enc, &mut out).unwrap();
            proptest::prop_assert_eq!(out, data);
        }

        /// Arbitrary bytes behind a plausible header never panic: every
        /// field is checked before it is used.
        #[test]
        fn arbitrary_frames_never_panic(
            flags in 0u8..=255,
            ts in 0u8..=255,
            nbytes in 0u32..5000,
            blocksize in 0u32..6000,
            body in proptest::collection::vec(0u8..=255, 0..600),
        ) {
            let mut frame = vec![2u8, 1, flags, ts];
            frame.extend_from_slice(&nbytes.to_le_bytes());
            frame.extend_from_slice(&blocksize.to_le_bytes());
            frame.extend_from_slice(&((HEADER + body.len()) as u32).to_le_bytes());
            frame.extend_from_slice(&body);
            let mut out = vec![0u8; nbytes as usize];
            let _ = decode_into(&frame, &mut out);
        }
    }

    #[test]
    fn corrupt_frames_are_errors_not_panics() {
        let d = data(50_000);
        let enc = encode(&d, 4, Shuffle::Byte, Compressor::Lz4, 5, 0).unwrap();
        let mut out = vec![0u8; d.len()];
        assert!(
            decode_into(&enc[..10], &mut out)
                .unwrap_err()
                .contains("too short")
        );
        assert!(
            decode_into(&enc[..enc.len() - 1], &mut out)
                .unwrap_err()
                .contains("frame bytes")
        );
        assert!(
            decode_into(&enc, &mut out[1..])
                .unwrap_err()
                .contains("decoded bytes")
        );
        // Every single-byte change either decodes to something or fails
        // with a message; none panics.
        for i in 0..enc.len().min(400) {
            for v in [0u8, 0xff, 0x7f] {
                let mut bad = enc.clone();
                bad[i] = v;
                let _ = decode_into(&bad, &mut out);
            }
        }
        let mut blosclz = enc.clone();
        blosclz[2] &= 0x1f;
        assert!(
            decode_into(&blosclz, &mut out)
                .unwrap_err()
                .contains("blosclz")
        );
    }
}
