//! Formats left out of the build (Cargo features `zarr`, `hdf5`, `s3`):
//! a path that names one is refused with an error that names the feature
//! to build with, and nothing is created.

use chunkyard::{ArrayOptions, Error};
use std::path::Path;

/// `create` and `open` of `path` both fail with `Unsupported` naming
/// `feature`, and `create` leaves nothing at the path.
#[allow(dead_code)]
fn refused(path: &Path, feature: &str) {
    let made = chunkyard::create::<f32>(path, ArrayOptions::new([4, 4]));
    match made {
        Err(Error::Unsupported(m)) => assert!(m.contains(feature), "{m}"),
        other => panic!("{}: {other:?}", path.display()),
    }
    assert!(!path.exists(), "{} was created", path.display());
    match chunkyard::open::<f32>(path) {
        Err(Error::Unsupported(m)) => assert!(m.contains(feature), "{m}"),
        other => panic!("{}: {other:?}", path.display()),
    }
}

#[cfg(not(feature = "zarr"))]
#[test]
fn zarr_without_the_feature_names_it() {
    let dir = tempfile::tempdir().unwrap();
    refused(&dir.path().join("a.zarr"), "--features zarr");
    // A directory that holds Zarr metadata, whatever its name.
    let d = dir.path().join("volume");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("zarr.json"), "{}").unwrap();
    match chunkyard::open::<f32>(&d) {
        Err(Error::Unsupported(m)) => assert!(m.contains("--features zarr"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[cfg(not(feature = "hdf5"))]
#[test]
fn hdf5_without_the_feature_names_it() {
    let dir = tempfile::tempdir().unwrap();
    refused(&dir.path().join("a.h5"), "--features hdf5");
}

#[cfg(not(feature = "s3"))]
#[test]
fn object_storage_without_the_feature_names_it() {
    refused(Path::new("s3://bucket/a.zarr"), "--features s3");
}
