//! The numcodecs LZ4 codec as a zarrs bytes-to-bytes codec, on `lz4_flex`.
//!
//! zarrs has no LZ4 codec; zarr-python reads and writes one through
//! numcodecs: `numcodecs.lz4` in Zarr v3 metadata, compressor id `lz4` in
//! v2. numcodecs frames a chunk as a 4-byte little-endian length of the
//! uncompressed data followed by one LZ4 block (`numcodecs/lz4.pyx`:
//! `store_le32(dest, source_size)` then `LZ4_compress_fast`), which is
//! exactly `lz4_flex::block::compress_prepend_size`.
//!
//! Decoding never trusts the length field: it must equal the decoded size
//! the array's metadata implies, and the output is allocated from that.

use std::borrow::Cow;
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

/// Zarr v3 codec name (numcodecs' zarr3 entry point).
pub const NAME_V3: &str = "numcodecs.lz4";
/// Zarr v2 compressor id.
pub const ID_V2: &str = "lz4";

/// numcodecs' default acceleration.
const DEFAULT_ACCELERATION: i64 = 1;

/// The numcodecs LZ4 codec. `lz4_flex` has one speed; `acceleration` is
/// kept only so that metadata round-trips.
#[derive(Debug, Clone)]
pub struct Lz4Codec {
    acceleration: i64,
}

zarrs::plugin::impl_extension_aliases!(Lz4Codec, v3: NAME_V3, v2: ID_V2);

impl Default for Lz4Codec {
    fn default() -> Self {
        Lz4Codec {
            acceleration: DEFAULT_ACCELERATION,
        }
    }
}

impl Lz4Codec {
    fn from_configuration(c: Option<&Configuration>) -> Result<Self, PluginCreateError> {
        let acceleration = match c.and_then(|c| c.get("acceleration")) {
            None => DEFAULT_ACCELERATION,
            Some(v) => v.as_i64().ok_or_else(|| {
                PluginCreateError::Other(format!("lz4 codec: acceleration {v} is not an integer"))
            })?,
        };
        Ok(Lz4Codec { acceleration })
    }
}

/// Makes zarrs understand `numcodecs.lz4` (v3) and `lz4` (v2). Idempotent.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        register_codec_v3(CodecRuntimePluginV3::new(
            <Lz4Codec as ExtensionAliases<ZarrVersion3>>::matches_name,
            |m: &MetadataV3| {
                let c = Lz4Codec::from_configuration(m.configuration())?;
                Ok(Codec::BytesToBytes(Arc::new(c)))
            },
        ));
        register_codec_v2(CodecRuntimePluginV2::new(
            <Lz4Codec as ExtensionAliases<ZarrVersion2>>::matches_name,
            |m: &MetadataV2| {
                let c = Lz4Codec::from_configuration(Some(m.configuration()))?;
                Ok(Codec::BytesToBytes(Arc::new(c)))
            },
        ));
    });
}

/// numcodecs' framing: little-endian u32 length, then an LZ4 block.
pub fn encode(data: &[u8]) -> Result<Vec<u8>, String> {
    if u32::try_from(data.len()).is_err() {
        return Err(format!(
            "lz4: {} bytes do not fit numcodecs' 32-bit length field",
            data.len()
        ));
    }
    Ok(lz4_flex::block::compress_prepend_size(data))
}

/// The longest a chunk of `decoded` bytes can be once encoded: the
/// header and LZ4's worst case.
pub fn encoded_bound(decoded: usize) -> usize {
    4 + lz4_flex::block::get_maximum_output_size(decoded)
}

/// Decodes numcodecs' framing into exactly `expected` bytes (when known);
/// a length field that disagrees is an error, not an allocation.
pub fn decode(encoded: &[u8], expected: Option<u64>) -> Result<Vec<u8>, String> {
    let claimed = claimed_len(encoded)?;
    let len = match expected {
        Some(n) => n,
        // Without a known size, LZ4's maximum ratio (255:1) bounds it.
        None if claimed > (encoded.len() as u64 - 4).saturating_mul(255) + 16 => {
            return Err(format!(
                "lz4: the header says {claimed} decoded bytes, more than {} bytes can hold",
                encoded.len() - 4
            ));
        }
        None => claimed,
    };
    let len = usize::try_from(len).map_err(|_| format!("lz4: {len} decoded bytes"))?;
    let mut out = vec![0u8; len];
    decode_into(encoded, &mut out)?;
    Ok(out)
}

/// Decodes numcodecs' framing into `out`, which the decoded chunk must
/// fill exactly: a header or block that says otherwise is an error.
pub fn decode_into(encoded: &[u8], out: &mut [u8]) -> Result<(), String> {
    let claimed = claimed_len(encoded)?;
    if claimed != out.len() as u64 {
        return Err(format!(
            "lz4: the header says {claimed} decoded bytes, the chunk holds {}",
            out.len()
        ));
    }
    let n = lz4_flex::block::decompress_into(&encoded[4..], out)
        .map_err(|e| format!("lz4: corrupt block: {e}"))?;
    if n != out.len() {
        return Err(format!(
            "lz4: the block decodes to {n} bytes, the header says {claimed}"
        ));
    }
    Ok(())
}

/// The decoded length numcodecs' 4-byte header states.
fn claimed_len(encoded: &[u8]) -> Result<u64, String> {
    match encoded.first_chunk::<4>() {
        Some(head) => Ok(u64::from(u32::from_le_bytes(*head))),
        None => Err(format!(
            "lz4: {} bytes, too short for the 4-byte length header",
            encoded.len()
        )),
    }
}

impl CodecTraits for Lz4Codec {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn configuration(
        &self,
        _version: ZarrVersion,
        _options: &CodecMetadataOptions,
    ) -> Option<Configuration> {
        let mut m = serde_json::Map::new();
        m.insert("acceleration".into(), self.acceleration.into());
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

impl BytesToBytesCodecTraits for Lz4Codec {
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
                // lz4_flex::block::get_maximum_output_size, plus the header.
                BytesRepresentation::BoundedSize(16 + 4 + n * 110 / 100)
            })
    }

    fn encode<'a>(
        &self,
        decoded_value: ArrayBytesRaw<'a>,
        _options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        encode(&decoded_value)
            .map(Cow::Owned)
            .map_err(CodecError::Other)
    }

    fn decode<'a>(
        &self,
        encoded_value: ArrayBytesRaw<'a>,
        decoded_representation: &BytesRepresentation,
        _options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        decode(&encoded_value, decoded_representation.size())
            .map(Cow::Owned)
            .map_err(CodecError::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_the_numcodecs_frame() {
        let data: Vec<u8> = (0..10u32).flat_map(|i| (i as i32).to_le_bytes()).collect();
        let enc = encode(&data).unwrap();
        assert_eq!(&enc[..4], &40u32.to_le_bytes(), "length prefix");
        assert_eq!(decode(&enc, Some(40)).unwrap(), data);
        assert_eq!(decode(&enc, None).unwrap(), data);
    }

    #[test]
    fn corrupt_frames_are_errors_not_allocations() {
        let enc = encode(&[7u8; 1000]).unwrap();
        assert!(
            decode(&enc[..3], Some(1000))
                .unwrap_err()
                .contains("too short")
        );
        assert!(decode(&enc, Some(999)).unwrap_err().contains("header says"));
        let mut huge = enc.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge, None).unwrap_err().contains("more than"));
        assert!(decode(&huge, Some(1000)).is_err());
        let mut cut = enc.clone();
        cut.truncate(enc.len() - 2);
        assert!(decode(&cut, Some(1000)).is_err());
    }
}
