//! Dimension names, both ways, in the HDF5 Dimension Scales convention
//! (the HDF Group's `H5DS` API, which h5py's `dset.dims` wraps).
//!
//! - Written: the `DIMENSION_LABELS` attribute, one variable-length string
//!   per axis (`""` for an unnamed one), exactly what `H5DSset_label` and
//!   h5py's `dset.dims[i].label = "t"` write (ASCII character set; UTF-8
//!   when a name is not ASCII, which h5py reads the same). No dimension
//!   scale datasets are made: they would be extra datasets in the user's
//!   file, shared by name between arrays of different lengths, and tied to
//!   the axis length through every resize. Readers that name axes from
//!   scales only (netCDF, h5netcdf, xarray) therefore see unnamed axes.
//! - Read: per axis, the label when it is not empty; else the first scale
//!   attached in `DIMENSION_LIST` (object references, which `hdf5-metno`
//!   dereferences): its `NAME` attribute (h5py's `make_scale("t")`), or,
//!   when that is empty or netCDF's placeholder for a dimension without a
//!   coordinate variable, the scale dataset's own name (how netCDF and
//!   h5netcdf name their dimensions).

use hdf5_metno::types::{TypeDescriptor, VarLenArray, VarLenAscii, VarLenUnicode};
use hdf5_metno::{Dataset, ObjectReference1, ReferencedObject};
use serde_json::Value;

/// The attribute `H5DSset_label` writes.
pub(super) const LABELS: &str = "DIMENSION_LABELS";
/// The attribute `H5DSattach_scale` writes: per axis, references to the
/// scale datasets attached to it.
pub(super) const LIST: &str = "DIMENSION_LIST";

/// What netCDF-4 writes as `NAME` of a scale that is a dimension only
/// (followed by padding and a number); the dimension's name is then the
/// scale dataset's name.
const NETCDF_PLACEHOLDER: &str = "This is a netCDF dimension but not a netCDF variable";

/// The names `ds` gives its axes (`None` when it names none), and a line
/// for each convention attribute present but unreadable. Both attributes
/// are left out of the user attributes (`attrs::read_attrs`).
pub(super) fn read_names(ds: &Dataset) -> (Option<Vec<Option<String>>>, Vec<String>) {
    let rank = ds.ndim();
    let mut dropped = Vec::new();
    let mut names: Vec<Option<String>> = vec![None; rank];
    if rank == 0 {
        return (None, dropped);
    }
    if ds.attr(LABELS).is_ok() {
        match read_labels(ds, rank) {
            Ok(labels) => names = labels,
            Err(why) => dropped.push(format!("dimension names from {LABELS}: {why}")),
        }
    }
    if names.iter().any(Option::is_none) && ds.attr(LIST).is_ok() {
        match read_scale_names(ds, rank) {
            Ok(scales) => {
                for (n, s) in names.iter_mut().zip(scales) {
                    if n.is_none() {
                        *n = s;
                    }
                }
            }
            Err(why) => dropped.push(format!("dimension names from {LIST}: {why}")),
        }
    }
    let named = names.iter().any(Option::is_some);
    (named.then_some(names), dropped)
}

fn read_labels(ds: &Dataset, rank: usize) -> Result<Vec<Option<String>>, String> {
    let a = ds.attr(LABELS).map_err(|e| e.to_string())?;
    let desc = a
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| e.to_string())?;
    let e = |e: hdf5_metno::Error| e.to_string();
    // Bytes, not `as_str`: h5py stores UTF-8 under the ASCII character set,
    // and other writers may store anything.
    let labels: Vec<String> = match desc {
        TypeDescriptor::VarLenAscii => a
            .read_raw::<VarLenAscii>()
            .map_err(e)?
            .iter()
            .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
            .collect(),
        TypeDescriptor::VarLenUnicode => a
            .read_raw::<VarLenUnicode>()
            .map_err(e)?
            .iter()
            .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
            .collect(),
        // Fixed-length labels (other writers): read as any string attribute.
        _ => match super::attrs::read_value(&a)? {
            Value::Array(v) => v
                .into_iter()
                .map(|s| s.as_str().map(str::to_owned).ok_or("not strings"))
                .collect::<Result<_, _>>()?,
            _ => return Err("not a list of strings".into()),
        },
    };
    if labels.len() != rank {
        return Err(format!("{} labels for {rank} axes", labels.len()));
    }
    Ok(labels
        .into_iter()
        .map(|s| (!s.is_empty()).then_some(s))
        .collect())
}

fn read_scale_names(ds: &Dataset, rank: usize) -> Result<Vec<Option<String>>, String> {
    let e = |e: hdf5_metno::Error| e.to_string();
    let refs = ds
        .attr(LIST)
        .map_err(e)?
        .read_raw::<VarLenArray<ObjectReference1>>()
        .map_err(e)?;
    if refs.len() != rank {
        return Err(format!("{} entries for {rank} axes", refs.len()));
    }
    refs.iter()
        .map(|axis| {
            let Some(first) = axis.as_slice().first() else {
                return Ok(None);
            };
            match ds.dereference(first).map_err(e)? {
                ReferencedObject::Dataset(scale) => Ok(scale_name(&scale)),
                _ => Err("a reference to something other than a dataset".into()),
            }
        })
        .collect()
}

/// The scale's `NAME`, or its dataset name when `NAME` is missing, empty
/// or netCDF's placeholder.
fn scale_name(scale: &Dataset) -> Option<String> {
    let named = scale
        .attr("NAME")
        .ok()
        .and_then(|a| super::attrs::read_value(&a).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|n| !n.is_empty() && !n.starts_with(NETCDF_PLACEHOLDER));
    named.or_else(|| {
        let path = scale.name();
        let base = path.rsplit('/').next().unwrap_or_default();
        (!base.is_empty()).then(|| base.to_owned())
    })
}

/// Writes `names` as `DIMENSION_LABELS` (nothing when no axis is named).
/// The caller checked that there is one entry per axis.
pub(super) fn write_labels(ds: &Dataset, names: &[Option<String>]) -> hdf5_metno::Result<()> {
    if names.iter().all(Option::is_none) {
        return Ok(());
    }
    let text = |n: &Option<String>| n.clone().unwrap_or_default();
    if names.iter().flatten().all(|n| n.is_ascii()) {
        let v: Vec<VarLenAscii> = names
            .iter()
            .map(|n| VarLenAscii::from_ascii(&text(n)))
            .collect::<Result<_, _>>()
            .map_err(|e| hdf5_metno::Error::from(e.to_string()))?;
        ds.new_attr::<VarLenAscii>()
            .shape(v.len())
            .create(LABELS)?
            .write_raw(&v)
    } else {
        let v: Vec<VarLenUnicode> = names
            .iter()
            .map(|n| text(n).parse())
            .collect::<Result<_, _>>()
            .map_err(|e: hdf5_metno::types::StringError| hdf5_metno::Error::from(e.to_string()))?;
        ds.new_attr::<VarLenUnicode>()
            .shape(v.len())
            .create(LABELS)?
            .write_raw(&v)
    }
}
