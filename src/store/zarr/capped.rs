//! `gzip`, `zlib` and `zstd` with decoding capped at the chunk's decoded
//! size.
//!
//! zarrs' own decoders inflate a chunk to whatever it holds (gzip:
//! `read_to_end`) or to what the frame header claims (zstd: a buffer of the
//! declared content size), so a small corrupt or hostile chunk file could
//! make the reader allocate gigabytes before the size check. These wrappers
//! keep zarrs' codecs for metadata and encoding and decode themselves,
//! streaming into a buffer that never grows past the size the array's
//! metadata implies for the chunk; one byte more is an error.
//!
//! [`register`] makes them the codecs every opened array gets (zarrs lets
//! runtime-registered plugins take precedence over its built-in ones).

use std::borrow::Cow;
use std::io::Read;
use std::sync::{Arc, Once};

use zarrs::array::codec::api::{
    CodecRuntimePluginV2, CodecRuntimePluginV3, CodecTraitsV2, CodecTraitsV3,
    PartialDecoderCapability, PartialEncoderCapability, register_codec_v2, register_codec_v3,
};
use zarrs::array::codec::{GzipCodec, ZlibCodec, ZstdCodec};
use zarrs::array::{
    ArrayBytesRaw, BytesRepresentation, BytesToBytesCodecTraits, Codec, CodecError,
    CodecMetadataOptions, CodecOptions, CodecTraits, RecommendedConcurrency,
};
use zarrs::metadata::Configuration;
use zarrs::plugin::{
    ExtensionAliases, ExtensionName, PluginCreateError, ZarrVersion, ZarrVersion2, ZarrVersion3,
};

use crate::chunk_grid::MAX_CHUNK_BYTES;

/// Which decoder a [`CappedCodec`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// gzip (one member, as zarrs and numcodecs write it).
    Gzip,
    /// zlib (Zarr v2's `zlib` compressor, v3's `numcodecs.zlib`; read
    /// only: chunkyard writes gzip).
    Zlib,
    /// zstd (one or more frames).
    Zstd,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gzip => "gzip",
            Kind::Zlib => "zlib",
            Kind::Zstd => "zstd",
        }
    }
}

/// A zarrs bytes-to-bytes codec whose decoding is capped (see the module
/// docs); everything else is the wrapped codec's.
#[derive(Debug, Clone)]
pub(crate) struct CappedCodec {
    inner: Arc<dyn BytesToBytesCodecTraits>,
    kind: Kind,
}

impl CappedCodec {
    /// Wraps zarrs' `gzip` codec.
    pub(crate) fn gzip(inner: GzipCodec) -> Self {
        CappedCodec {
            inner: Arc::new(inner),
            kind: Kind::Gzip,
        }
    }

    /// Wraps zarrs' `zstd` codec.
    pub(crate) fn zstd(inner: ZstdCodec) -> Self {
        CappedCodec {
            inner: Arc::new(inner),
            kind: Kind::Zstd,
        }
    }

    fn wrap(codec: Codec, kind: Kind) -> Result<Codec, PluginCreateError> {
        match codec {
            Codec::BytesToBytes(inner) => {
                Ok(Codec::BytesToBytes(Arc::new(CappedCodec { inner, kind })))
            }
            _ => Err(PluginCreateError::Other(format!(
                "{}: not a bytes-to-bytes codec",
                kind.name()
            ))),
        }
    }
}

/// Makes every array opened afterwards decode `gzip`, `zlib` and `zstd`
/// through [`CappedCodec`]. Idempotent.
pub(crate) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        register_codec_v3(CodecRuntimePluginV3::new(
            <GzipCodec as ExtensionAliases<ZarrVersion3>>::matches_name,
            |m| CappedCodec::wrap(<GzipCodec as CodecTraitsV3>::create(m)?, Kind::Gzip),
        ));
        register_codec_v2(CodecRuntimePluginV2::new(
            <GzipCodec as ExtensionAliases<ZarrVersion2>>::matches_name,
            |m| CappedCodec::wrap(<GzipCodec as CodecTraitsV2>::create(m)?, Kind::Gzip),
        ));
        register_codec_v3(CodecRuntimePluginV3::new(
            <ZlibCodec as ExtensionAliases<ZarrVersion3>>::matches_name,
            |m| CappedCodec::wrap(<ZlibCodec as CodecTraitsV3>::create(m)?, Kind::Zlib),
        ));
        register_codec_v2(CodecRuntimePluginV2::new(
            <ZlibCodec as ExtensionAliases<ZarrVersion2>>::matches_name,
            |m| CappedCodec::wrap(<ZlibCodec as CodecTraitsV2>::create(m)?, Kind::Zlib),
        ));
        register_codec_v3(CodecRuntimePluginV3::new(
            <ZstdCodec as ExtensionAliases<ZarrVersion3>>::matches_name,
            |m| CappedCodec::wrap(<ZstdCodec as CodecTraitsV3>::create(m)?, Kind::Zstd),
        ));
        register_codec_v2(CodecRuntimePluginV2::new(
            <ZstdCodec as ExtensionAliases<ZarrVersion2>>::matches_name,
            |m| CappedCodec::wrap(<ZstdCodec as CodecTraitsV2>::create(m)?, Kind::Zstd),
        ));
    });
}

/// Decodes `encoded` into exactly `expected` bytes when the size is known
/// (else at most [`MAX_CHUNK_BYTES`]), never holding more than that plus one
/// byte of output.
pub(crate) fn decode(kind: Kind, encoded: &[u8], expected: Option<u64>) -> Result<Vec<u8>, String> {
    let limit = expected.unwrap_or(MAX_CHUNK_BYTES).min(MAX_CHUNK_BYTES);
    let reader: Box<dyn Read + '_> = match kind {
        Kind::Gzip => Box::new(flate2::bufread::GzDecoder::new(encoded)),
        Kind::Zlib => Box::new(flate2::bufread::ZlibDecoder::new(encoded)),
        Kind::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(encoded).map_err(|e| format!("zstd: {e}"))?,
        ),
    };
    // Grow with the data, not with a claim: start small, never past limit+1.
    let mut out = Vec::with_capacity(limit.min(1 << 20) as usize);
    reader
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{}: corrupt chunk: {e}", kind.name()))?;
    let n = out.len() as u64;
    if n > limit {
        return Err(format!(
            "{}: the chunk inflates to more than {limit} bytes, the array's chunks hold {}",
            kind.name(),
            expected.map_or_else(|| format!("at most {limit}"), |e| e.to_string())
        ));
    }
    if let Some(e) = expected
        && n != e
    {
        return Err(format!(
            "{}: the chunk inflates to {n} bytes, the array's chunks hold {e}",
            kind.name()
        ));
    }
    Ok(out)
}

impl ExtensionName for CappedCodec {
    fn name(&self, version: ZarrVersion) -> Option<Cow<'static, str>> {
        self.inner.name(version)
    }
}

impl CodecTraits for CappedCodec {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn configuration(
        &self,
        version: ZarrVersion,
        options: &CodecMetadataOptions,
    ) -> Option<Configuration> {
        self.inner.configuration(version, options)
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

impl BytesToBytesCodecTraits for CappedCodec {
    fn into_dyn(self: Arc<Self>) -> Arc<dyn BytesToBytesCodecTraits> {
        self
    }

    fn recommended_concurrency(
        &self,
        decoded_representation: &BytesRepresentation,
    ) -> Result<RecommendedConcurrency, CodecError> {
        self.inner.recommended_concurrency(decoded_representation)
    }

    fn encoded_representation(
        &self,
        decoded_representation: &BytesRepresentation,
    ) -> BytesRepresentation {
        self.inner.encoded_representation(decoded_representation)
    }

    fn encode<'a>(
        &self,
        decoded_value: ArrayBytesRaw<'a>,
        options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        self.inner.encode(decoded_value, options)
    }

    fn decode<'a>(
        &self,
        encoded_value: ArrayBytesRaw<'a>,
        decoded_representation: &BytesRepresentation,
        _options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        decode(self.kind, &encoded_value, decoded_representation.size())
            .map(Cow::Owned)
            .map_err(CodecError::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn round_trips() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(decode(Kind::Gzip, &gz(&data), Some(5000)).unwrap(), data);
        let z = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(decode(Kind::Zstd, &z, Some(5000)).unwrap(), data);
        assert_eq!(decode(Kind::Zstd, &z, None).unwrap(), data);
        assert_eq!(decode(Kind::Zlib, &zl(&data), Some(5000)).unwrap(), data);
    }

    fn zl(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn bombs_stop_at_the_chunk_size() {
        // 64 MiB of zeros packs into ~64 KiB of gzip and ~2 KiB of zstd.
        let zeros = vec![0u8; 64 << 20];
        let e = decode(Kind::Gzip, &gz(&zeros), Some(4096)).unwrap_err();
        assert!(e.contains("more than 4096 bytes"), "{e}");
        let e = decode(Kind::Zlib, &zl(&zeros), Some(4096)).unwrap_err();
        assert!(e.contains("more than 4096 bytes"), "{e}");
        let z = zstd::bulk::compress(&zeros, 3).unwrap();
        let e = decode(Kind::Zstd, &z, Some(4096)).unwrap_err();
        assert!(e.contains("more than 4096 bytes"), "{e}");
    }

    #[test]
    fn short_and_corrupt_chunks_are_errors() {
        let data = vec![7u8; 1000];
        let e = decode(Kind::Gzip, &gz(&data), Some(1001)).unwrap_err();
        assert!(e.contains("inflates to 1000 bytes"), "{e}");
        let mut bad = gz(&data);
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        assert!(decode(Kind::Gzip, &bad, Some(1000)).is_err());
        assert!(decode(Kind::Zstd, b"not zstd at all", Some(1000)).is_err());
    }

    #[test]
    fn a_zstd_header_claiming_a_huge_size_is_not_allocated() {
        // Magic, a single-segment frame header whose 8-byte content size
        // says 2^40 bytes, then one last RLE block of 100 bytes of 7.
        let mut z = vec![0x28, 0xb5, 0x2f, 0xfd, 0xe0];
        z.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let block = 1u32 | (1 << 1) | (100 << 3);
        z.extend_from_slice(&block.to_le_bytes()[..3]);
        z.push(7);
        assert!(decode(Kind::Zstd, &z, Some(100)).is_err());
        assert!(decode(Kind::Zstd, &z, None).is_err());
    }
}
