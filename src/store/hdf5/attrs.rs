//! A dataset's attributes as chunkyard's JSON map, both ways: numbers,
//! booleans and strings, as scalars or 1-D arrays (what h5py writes for
//! `ds.attrs["units"] = "mV"`, `= 3`, `= [1.0, 2.0]`). Anything else
//! (compound, enum, reference, multi-dimensional, NaN) is reported as
//! dropped rather than guessed at.

use hdf5_metno::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5_metno::{Attribute, Dataset, H5Type};
use serde_json::Value;

use crate::attrs::{Attrs, hdf5_reserved, hdf5_unsupported};

/// Fixed-length strings longer than this are dropped (their reading
/// buffer is sized by it).
const MAX_FIXED: usize = 4096;

/// The dataset's attributes that JSON holds, and a line for each one it
/// does not.
pub(super) fn read_attrs(ds: &Dataset) -> (Attrs, Vec<String>) {
    let mut attrs = Attrs::new();
    let mut dropped = Vec::new();
    let names = match ds.attr_names() {
        Ok(n) => n,
        Err(e) => return (attrs, vec![format!("attributes: {e}")]),
    };
    for name in names {
        // Dimension names, read by `dims::read_names`.
        if name == super::dims::LABELS || name == super::dims::LIST {
            continue;
        }
        match ds
            .attr(&name)
            .map_err(|e| e.to_string())
            .and_then(|a| read_value(&a))
        {
            Ok(v) => {
                attrs.insert(name, v);
            }
            Err(why) => dropped.push(format!("attribute {name}: {why}")),
        }
    }
    (attrs, dropped)
}

/// One attribute as JSON, or why it cannot be.
pub(super) fn read_value(a: &Attribute) -> Result<Value, String> {
    let shape = a.shape();
    if shape.len() > 1 {
        return Err(format!(
            "a {}-d array (chunkyard keeps scalars and 1-D)",
            shape.len()
        ));
    }
    let desc = a
        .dtype()
        .and_then(|t| t.to_descriptor())
        .map_err(|e| e.to_string())?;
    let e = |e: hdf5_metno::Error| e.to_string();
    let values: Vec<Value> = match &desc {
        TypeDescriptor::Integer(_) => a
            .read_raw::<i64>()
            .map_err(e)?
            .into_iter()
            .map(Value::from)
            .collect(),
        TypeDescriptor::Unsigned(_) => a
            .read_raw::<u64>()
            .map_err(e)?
            .into_iter()
            .map(Value::from)
            .collect(),
        TypeDescriptor::Float(_) => {
            let v = a.read_raw::<f64>().map_err(e)?;
            if v.iter().any(|x| !x.is_finite()) {
                return Err("NaN or infinity (JSON has neither)".into());
            }
            v.into_iter().map(Value::from).collect()
        }
        TypeDescriptor::Boolean => a
            .read_raw::<bool>()
            .map_err(e)?
            .into_iter()
            .map(Value::from)
            .collect(),
        TypeDescriptor::VarLenUnicode => strings(a.read_raw::<VarLenUnicode>().map_err(e)?, |s| {
            s.as_str().to_owned()
        }),
        // ASCII strings hold whatever bytes their writer put there (h5py
        // puts UTF-8): decoded, not taken as `str` unchecked.
        TypeDescriptor::VarLenAscii => strings(a.read_raw::<VarLenAscii>().map_err(e)?, |s| {
            String::from_utf8_lossy(s.as_bytes()).into_owned()
        }),
        TypeDescriptor::FixedAscii(n) if *n <= MAX_FIXED => {
            strings(a.read_raw::<FixedAscii<MAX_FIXED>>().map_err(e)?, |s| {
                String::from_utf8_lossy(s.as_bytes()).into_owned()
            })
        }
        TypeDescriptor::FixedUnicode(n) if *n <= MAX_FIXED => {
            strings(a.read_raw::<FixedUnicode<MAX_FIXED>>().map_err(e)?, |s| {
                s.as_str().to_owned()
            })
        }
        other => {
            return Err(format!(
                "type {other} (chunkyard keeps numbers, booleans and strings)"
            ));
        }
    };
    if shape.is_empty() {
        values
            .into_iter()
            .next()
            .ok_or_else(|| "an empty scalar".to_string())
    } else {
        Ok(Value::Array(values))
    }
}

fn strings<T>(v: Vec<T>, f: impl Fn(&T) -> String) -> Vec<Value> {
    v.iter().map(|s| Value::String(f(s))).collect()
}

/// Writes the attributes HDF5 can hold ([`hdf5_unsupported`] says which:
/// the caller reported the others as dropped) to the dataset.
pub(super) fn write_attrs(ds: &Dataset, attrs: &Attrs) -> hdf5_metno::Result<()> {
    for (name, v) in attrs {
        if hdf5_unsupported(v).is_some() || hdf5_reserved(name) {
            continue;
        }
        let (items, scalar) = match v {
            Value::Array(a) => (a.as_slice(), false),
            one => (std::slice::from_ref(one), true),
        };
        if items.iter().all(Value::is_boolean) {
            let v: Vec<bool> = items.iter().filter_map(Value::as_bool).collect();
            write(ds, name, &v, scalar)?;
        } else if items.iter().all(Value::is_string) {
            let v: Vec<VarLenUnicode> = items
                .iter()
                .filter_map(|s| s.as_str()?.parse().ok())
                .collect();
            write(ds, name, &v, scalar)?;
        } else if items.iter().all(Value::is_i64) {
            let v: Vec<i64> = items.iter().filter_map(Value::as_i64).collect();
            write(ds, name, &v, scalar)?;
        } else if items.iter().all(Value::is_u64) {
            let v: Vec<u64> = items.iter().filter_map(Value::as_u64).collect();
            write(ds, name, &v, scalar)?;
        } else {
            let v: Vec<f64> = items.iter().filter_map(Value::as_f64).collect();
            write(ds, name, &v, scalar)?;
        }
    }
    Ok(())
}

fn write<T: H5Type>(ds: &Dataset, name: &str, v: &[T], scalar: bool) -> hdf5_metno::Result<()> {
    if scalar {
        let a = ds.new_attr::<T>().shape(()).create(name)?;
        a.write_scalar(&v[0])
    } else {
        let a = ds.new_attr::<T>().shape(v.len()).create(name)?;
        a.write_raw(v)
    }
}
