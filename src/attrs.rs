//! User attributes and dimension names: the JSON-like map chunkyard
//! passes between formats, and what each format can hold of it (so that
//! `convert` says what it drops instead of dropping it silently).
//!
//! Zarr (v2 `.zattrs`, v3 `zarr.json`) holds any JSON object and v3 also
//! dimension names. HDF5 holds a dataset attribute of numbers, booleans or
//! strings, as a scalar or a 1-D array of one kind ([`hdf5_unsupported`]
//! says why anything else is not written), and dimension names as the
//! Dimension Scales convention's `DIMENSION_LABELS` (what h5py's
//! `dset.dims[i].label` reads; chunkyard makes no scale datasets, so
//! readers that name axes from scales only, such as netCDF, h5netcdf and
//! xarray, do not see them). `.npy` holds neither.

use crate::open::Format;
use crate::store::Labels;

/// Attributes: a JSON object (`serde_json`'s map), as in Zarr metadata.
pub type Attrs = serde_json::Map<String, serde_json::Value>;

/// One attribute's value.
pub use serde_json::Value as AttrValue;

/// The attributes of `labels` as a map (`{}` for unparsable text, which
/// chunkyard never makes).
pub(crate) fn parse(labels: &Labels) -> Attrs {
    match serde_json::from_str(&labels.attributes) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => Attrs::new(),
    }
}

/// Why an HDF5 attribute cannot hold `v` (`None`: it can): HDF5
/// attributes are typed arrays, so chunkyard writes numbers, booleans and
/// strings, alone or in a flat list of one kind.
#[cfg(any(feature = "hdf5", test))]
pub(crate) fn hdf5_unsupported(v: &AttrValue) -> Option<&'static str> {
    use serde_json::Value as V;
    match v {
        V::Null => Some("null has no HDF5 type"),
        V::Object(_) => Some("a JSON object has no HDF5 attribute type"),
        V::String(s) if s.contains('\0') => Some("a string with a NUL byte"),
        V::Bool(_) | V::Number(_) | V::String(_) => None,
        V::Array(a) if a.is_empty() => Some("an empty list has no element type"),
        V::Array(a) => {
            let all = |f: fn(&V) -> bool| a.iter().all(f);
            if all(V::is_number) || all(V::is_boolean) {
                None
            } else if all(V::is_string) {
                a.iter()
                    .any(|s| s.as_str().is_some_and(|s| s.contains('\0')))
                    .then_some("a string with a NUL byte")
            } else {
                Some("a list of mixed or nested values has no HDF5 attribute type")
            }
        }
    }
}

/// Attribute names the HDF5 Dimension Scales convention owns: chunkyard
/// writes `DIMENSION_LABELS` itself from the dimension names, and never a
/// user attribute of these names (a reader would take it for the
/// convention's).
#[cfg(feature = "hdf5")]
pub(crate) fn hdf5_reserved(key: &str) -> bool {
    matches!(
        key,
        "DIMENSION_LABELS" | "DIMENSION_LIST" | "REFERENCE_LIST"
    )
}

/// What a new array of `format` would drop of `labels`, one line each
/// (empty: it keeps them all).
///
/// HDF5 keeps dimension names as `DIMENSION_LABELS` only (no dimension
/// scale datasets): h5py (`dset.dims[i].label`), the `H5DS` API and
/// chunkyard read them; netCDF, h5netcdf and xarray, which name axes from
/// attached scales, do not. This is not reported as a drop.
pub fn dropped_by(format: Format, labels: &Labels) -> Vec<String> {
    let attrs = parse(labels);
    let named = labels
        .dimension_names
        .as_ref()
        .is_some_and(|n| n.iter().any(Option::is_some));
    let mut out = Vec::new();
    match format {
        #[cfg(feature = "zarr")]
        Format::Zarr => {}
        Format::Npy => {
            if !attrs.is_empty() {
                let keys: Vec<&str> = attrs.keys().map(String::as_str).collect();
                out.push(format!("attributes {} (.npy holds none)", keys.join(", ")));
            }
            if named {
                out.push("dimension names (.npy holds none)".into());
            }
        }
        #[cfg(feature = "hdf5")]
        Format::Hdf5 => {
            for (k, v) in &attrs {
                if let Some(why) = hdf5_unsupported(v) {
                    out.push(format!("attribute {k}: {why}"));
                } else if hdf5_reserved(k) {
                    out.push(format!(
                        "attribute {k}: the name is HDF5's dimension scale convention's"
                    ));
                }
            }
            if named && hdf5_bad_names(labels) {
                out.push("dimension names (a name with a NUL byte)".into());
            }
        }
    }
    out
}

/// Whether a dimension name cannot be an HDF5 string (it holds a NUL):
/// then no names are written.
#[cfg(feature = "hdf5")]
pub(crate) fn hdf5_bad_names(labels: &Labels) -> bool {
    labels
        .dimension_names
        .iter()
        .flatten()
        .flatten()
        .any(|n| n.contains('\0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(attrs: serde_json::Value, names: Option<Vec<Option<&str>>>) -> Labels {
        Labels {
            dimension_names: names.map(|v| v.into_iter().map(|n| n.map(String::from)).collect()),
            attributes: attrs.to_string(),
            dropped: Vec::new(),
        }
    }

    #[cfg(feature = "zarr")]
    #[test]
    fn arrays_take_attributes_and_names_from_options_and_show_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.zarr");
        let opts = crate::ArrayOptions::new([2, 3])
            .attr("units", "mV")
            .attr("n", 3)
            .dimension_names([Some("t"), None]);
        crate::create::<f32>(&path, opts).unwrap().close().unwrap();
        let a = crate::open::<f32>(&path).unwrap();
        assert_eq!(a.attrs()["units"], "mV");
        assert_eq!(a.attrs()["n"], 3);
        assert_eq!(a.dimension_names(), Some(vec![Some("t".into()), None]));
        // Names alone leave the attributes an empty object.
        let p2 = dir.path().join("b.zarr");
        crate::create::<u8>(
            &p2,
            crate::ArrayOptions::new([2]).dimension_names([Some("x")]),
        )
        .unwrap()
        .close()
        .unwrap();
        assert!(crate::open::<u8>(&p2).unwrap().attrs().is_empty());
        // .npy holds none.
        let p3 = dir.path().join("c.npy");
        crate::create::<u8>(&p3, crate::ArrayOptions::new([2]))
            .unwrap()
            .close()
            .unwrap();
        let c = crate::open::<u8>(&p3).unwrap();
        assert!(c.attrs().is_empty() && c.dimension_names().is_none());
    }

    /// `update_attrs` on Zarr: set and removed keys are in the metadata
    /// file when it returns (a fresh open sees them), a change that fails
    /// writes nothing, an array opened read-only refuses, `.npy` holds
    /// none.
    #[test]
    fn attributes_change_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let npy = dir.path().join("c.npy");
        crate::create::<u8>(&npy, crate::ArrayOptions::new([2]))
            .unwrap()
            .close()
            .unwrap();
        let err = crate::open::<u8>(&npy)
            .unwrap()
            .update_attrs(|_| Ok(()))
            .unwrap_err();
        assert!(
            matches!(err, crate::Error::Unsupported(_))
                && err.to_string().contains("no attributes"),
            "{err}"
        );
        #[cfg(feature = "zarr")]
        {
            let path = dir.path().join("a.zarr");
            let opts = crate::ArrayOptions::new([2, 3])
                .attr("units", "mV")
                .attr("n", 3);
            let a = crate::create::<f32>(&path, opts).unwrap();
            a.update_attrs(|m| {
                m.insert("scale".into(), json!([0.5, 2]));
                m.remove("n");
                Ok(())
            })
            .unwrap();
            let want = json!({"units": "mV", "scale": [0.5, 2]});
            assert_eq!(serde_json::Value::Object(a.attrs()), want);
            let b = crate::open::<f32>(&path).unwrap();
            assert_eq!(serde_json::Value::Object(b.attrs()), want);
            let err = b
                .update_attrs(|m| {
                    m.clear();
                    Err(crate::Error::invalid("refused"))
                })
                .unwrap_err();
            assert!(err.to_string().contains("refused"), "{err}");
            assert_eq!(serde_json::Value::Object(b.attrs()), want);
            assert_eq!(
                serde_json::Value::Object(crate::open::<f32>(&path).unwrap().attrs()),
                want
            );
            let r =
                crate::open_with::<f32>(&path, &crate::OpenOptions::new().read_only(true)).unwrap();
            let err = r.update_attrs(|m| {
                m.clear();
                Ok(())
            });
            assert!(
                err.unwrap_err().to_string().contains("opened read-only"),
                "read-only"
            );
            assert_eq!(serde_json::Value::Object(r.attrs()), want);
        }
    }

    #[test]
    fn hdf5_holds_scalars_and_flat_lists_of_one_kind() {
        for ok in [
            json!(1),
            json!(-2.5),
            json!(true),
            json!("mV"),
            json!([1, 2]),
            json!([1, 2.5]),
            json!(["a", "b"]),
            json!([true]),
        ] {
            assert_eq!(hdf5_unsupported(&ok), None, "{ok}");
        }
        for bad in [
            json!(null),
            json!({"a": 1}),
            json!([]),
            json!([1, "a"]),
            json!([[1]]),
            json!("a\u{0}b"),
        ] {
            assert!(hdf5_unsupported(&bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn each_format_says_what_it_drops() {
        let l = labels(
            json!({"units": "mV", "meta": {"a": 1}}),
            Some(vec![Some("t"), None]),
        );
        #[cfg(feature = "zarr")]
        assert!(dropped_by(Format::Zarr, &l).is_empty());
        let npy = dropped_by(Format::Npy, &l);
        assert_eq!(npy.len(), 2, "{npy:?}");
        assert!(
            npy[0].contains("meta") && npy[0].contains("units"),
            "{npy:?}"
        );
        assert!(dropped_by(Format::Npy, &labels(json!({}), Some(vec![None, None]))).is_empty());
        #[cfg(feature = "hdf5")]
        {
            // Names are kept (as DIMENSION_LABELS); the nested value is not.
            let h5 = dropped_by(Format::Hdf5, &l);
            assert_eq!(h5.len(), 1, "{h5:?}");
            assert!(h5[0].starts_with("attribute meta"), "{h5:?}");
            let bad = labels(
                json!({"DIMENSION_LIST": "x", "units": "mV"}),
                Some(vec![Some("a\u{0}b"), None]),
            );
            let h5 = dropped_by(Format::Hdf5, &bad);
            assert_eq!(h5.len(), 2, "{h5:?}");
            assert!(h5[0].starts_with("attribute DIMENSION_LIST"), "{h5:?}");
            assert!(h5[1].contains("NUL"), "{h5:?}");
        }
    }
}
