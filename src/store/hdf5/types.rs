//! What chunkyard's element types and filter steps are in HDF5's terms:
//! the type descriptor it writes, the dtype of a dataset it reads, and
//! the filter pipeline it can run itself.

use hdf5_metno::datatype::ByteOrder;
use hdf5_metno::filters::Filter;
use hdf5_metno::types::{FloatSize, IntSize, TypeDescriptor};
use hdf5_metno::{Dataset, H5Type};

use super::filters::{FILTER_LZ4, Step};
use crate::dtype::{DType, Endian};

/// The HDF5 type descriptor chunkyard writes for a dtype (native order).
pub(super) fn descriptor(dtype: DType) -> TypeDescriptor {
    crate::dispatch!(dtype, T => <T as H5Type>::type_descriptor())
}

/// A dataset's element type and byte order, or why chunkyard cannot read it.
pub(super) fn element_type(ds: &Dataset) -> std::result::Result<(DType, Endian), String> {
    let t = ds.dtype().map_err(|e| e.to_string())?;
    let desc = t.to_descriptor().map_err(|e| e.to_string())?;
    let dtype = match &desc {
        TypeDescriptor::Boolean => DType::Bool,
        TypeDescriptor::Integer(IntSize::U1) => DType::I8,
        TypeDescriptor::Integer(IntSize::U2) => DType::I16,
        TypeDescriptor::Integer(IntSize::U4) => DType::I32,
        TypeDescriptor::Integer(IntSize::U8) => DType::I64,
        TypeDescriptor::Unsigned(IntSize::U1) => DType::U8,
        TypeDescriptor::Unsigned(IntSize::U2) => DType::U16,
        TypeDescriptor::Unsigned(IntSize::U4) => DType::U32,
        TypeDescriptor::Unsigned(IntSize::U8) => DType::U64,
        TypeDescriptor::Float(FloatSize::U4) => DType::F32,
        TypeDescriptor::Float(FloatSize::U8) => DType::F64,
        other => return Err(format!("{other}")),
    };
    if t.size() != dtype.size() {
        return Err(format!("{desc} of {} bytes", t.size()));
    }
    let endian = match t.byte_order() {
        ByteOrder::BigEndian => Endian::Big,
        ByteOrder::LittleEndian => Endian::Little,
        _ => Endian::NATIVE,
    };
    Ok((dtype, endian))
}

/// The pipeline as steps chunkyard runs itself, or `None` if a filter is
/// one only HDF5 knows.
pub(super) fn pipeline(ds: &Dataset, elem: usize) -> Option<Vec<Step>> {
    ds.filters()
        .into_iter()
        .map(|f| match f {
            Filter::Shuffle => Some(Step::Shuffle(elem)),
            Filter::Deflate(level) => Some(Step::Deflate(u32::from(level))),
            Filter::User(id, cd) if id == FILTER_LZ4 => {
                Some(Step::Lz4(cd.first().copied().unwrap_or(0) as usize))
            }
            _ => None,
        })
        .collect()
}
