//! The HDF5 bad-input corpus (`tests/bad_input/hdf5/`, made by its
//! `make.py`): truncated and garbage files, element types chunkyard does not
//! read, headers claiming huge chunks or shapes, a corrupt gzip chunk, a
//! gzip bomb and a filter nobody here can run. Every command fails with one
//! typed error line naming the file, never a panic or an HDF5 error stack;
//! `meta_*` files fail when opened, `chunk_*` ones open and fail on read.
use std::path::Path;

use crate::common::{fails, ok};

#[test]
fn bad_hdf5_files_fail_cleanly() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input/hdf5");
    let mut n = 0;
    let mut names: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "h5"))
        .collect();
    names.sort();
    for path in names {
        n += 1;
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let ds = format!("{}:/x", path.to_str().unwrap());
        let mut commands = vec![vec!["get", ds.as_str(), "0,0"], vec!["reduce", &ds, "sum"]];
        if name.starts_with("meta_") {
            commands.push(vec!["info", &ds]);
        } else {
            ok(&["info", &ds]);
        }
        for args in commands {
            let err = fails(&args);
            assert!(
                err.contains(&name),
                "{args:?}: does not name the file: {err}"
            );
        }
    }
    assert!(n >= 12, "corpus has only {n} files");
}
