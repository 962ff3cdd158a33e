//! The `chunkyard` command end to end: create -> put -> get -> reduce ->
//! convert, checked by numpy (feature `interop`); and every kind of bad
//! input exits non-zero with one clear line on stderr, never a panic.

use std::path::Path;

#[cfg(feature = "interop")]
use crate::common::python;
use crate::common::{fails, ok, p};

#[test]
fn create_put_get_reduce_convert_checked_by_numpy() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.npy");
    let row = dir.path().join("row.npy");
    let sub = dir.path().join("sub.npy");
    let wide = dir.path().join("wide.npy");
    let a = p(&a);
    let out = ok(&[
        "--cache", "1KiB", "create", a, "--shape", "6,7", "--dtype", "f32", "--chunks", "4,3",
    ]);
    assert!(out.contains("(6, 7)"), "{out}");
    // The row to put: a file numpy wrote, or without numpy one the library
    // wrote.
    #[cfg(feature = "interop")]
    python(&format!(
        "import numpy as np; np.save({:?}, (np.arange(7, dtype=np.float64) * 1.5))",
        p(&row)
    ));
    #[cfg(not(feature = "interop"))]
    chunkyard::create::<f64>(&row, chunkyard::ArrayOptions::new([7]))
        .and_then(|r| {
            r.write(
                chunkyard::s![..],
                &ndarray::Array1::from_shape_fn(7, |i| i as f64 * 1.5),
            )
        })
        .expect("write row.npy");
    ok(&["--cache", "1KiB", "put", a, "1:3, ::2", "--value", "2.5"]);
    ok(&["--cache", "1KiB", "put", a, "5", "--from", p(&row)]);
    ok(&["put", a, "-1,-1", "--value", "-7"]);
    assert_eq!(ok(&["get", a, "1,::2"]).trim(), "[2.5, 2.5, 2.5, 2.5]");
    assert_eq!(ok(&["get", a, "5,1:3", "--json"]).trim(), "[1.5, 3.0]");
    assert_eq!(ok(&["get", a, "0,0"]).trim(), "0.0");
    ok(&["get", a, "::2, 1:", "--out", p(&sub)]);
    // sum = 2 rows x 4 x 2.5 + (1.5 * (0+..+5)) - 7 = 20 + 22.5 - 7
    assert_eq!(ok(&["reduce", a, "sum"]).trim(), "35.5");
    assert_eq!(ok(&["reduce", a, "max", "5"]).trim(), "7.5");
    assert_eq!(ok(&["reduce", a, "min"]).trim(), "-7.0");
    assert_eq!(ok(&["reduce", a, "count", "1:3"]).trim(), "14");
    assert_eq!(
        ok(&["reduce", a, "max", "4:, ::3", "--axis", "0"]).trim(),
        "[0.0, 4.5, 0.0]"
    );
    let ax = dir.path().join("ax.npy");
    ok(&[
        "--cache",
        "1KiB",
        "reduce",
        a,
        "sum",
        "--axis",
        "1",
        "--out",
        p(&ax),
    ]);
    ok(&[
        "--cache",
        "2KiB",
        "convert",
        a,
        p(&wide),
        "--dtype",
        "f64",
        "--chunks",
        "2,2",
    ]);
    #[cfg(feature = "interop")]
    python(&format!(
        r#"
import numpy as np
a = np.load({a:?}, mmap_mode="r")
want = np.zeros((6, 7), np.float32)
want[1:3, ::2] = 2.5
want[5] = np.arange(7) * 1.5
want[-1, -1] = -7
assert a.dtype == np.float32 and a.shape == (6, 7), (a.dtype, a.shape)
assert (a == want).all(), a
sub = np.load({sub:?})
assert (sub == want[::2, 1:]).all(), sub
wide = np.load({wide:?}, mmap_mode="r")
assert wide.dtype == np.float64 and (wide == want.astype(np.float64)).all()
ax = np.load({ax:?})
assert ax.dtype == np.float64 and np.allclose(ax, want.astype(np.float64).sum(axis=1)), ax
"#,
        sub = p(&sub),
        wide = p(&wide),
        ax = p(&ax)
    ));
    let info = ok(&["info", a, "--json"]);
    let d: serde_json::Value = serde_json::from_str(&info).expect("info --json");
    assert!(
        d["shape"] == serde_json::json!([6, 7]) && d["dtype"] == "f32" && d["nbytes"] == 168,
        "{d}"
    );
    assert!(
        d["cache_resident_bytes"] == 0 && d["cache_budget_bytes"].as_u64() > Some(0),
        "{d}"
    );
    let anon = d["resident_anon_bytes"]
        .as_u64()
        .expect("resident_anon_bytes");
    assert!(0 < anon && anon < 64 << 20, "{d}");
    assert!(d["resident_file_bytes"].as_u64().is_some(), "{d}");
    let text = ok(&["info", a]);
    assert!(text.contains("numpy nbytes"), "{text}");
    assert!(
        text.contains("resident:") && text.contains("in this process after opening"),
        "{text}"
    );
}

#[test]
fn bad_files_fail_cleanly() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input");
    let mut n = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "npy") {
            continue;
        }
        n += 1;
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        for args in [
            vec!["info", p(&path)],
            vec!["get", p(&path), "0"],
            vec!["reduce", p(&path), "sum"],
        ] {
            let err = fails(&args);
            assert!(
                err.contains(&name),
                "{args:?}: error does not name the file: {err}"
            );
        }
    }
    assert!(n >= 15, "corpus has only {n} files");
}

#[test]
fn bad_arguments_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.npy");
    let a = p(&a);
    let other = dir.path().join("o.npy");
    ok(&["create", a, "--shape", "4,5", "--dtype", "i16"]);
    ok(&["create", p(&other), "--shape", "3", "--dtype", "i16"]);
    let missing = dir.path().join("missing.npy");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["create", "x.npy", "--shape", "4", "--dtype", "f16"],
            "unknown dtype",
        ),
        (
            vec!["create", a, "--shape", "4", "--dtype", "f32"],
            "exists",
        ),
        (
            vec!["create", "y.npy", "--shape", "4,x", "--dtype", "f32"],
            "--shape",
        ),
        (
            vec![
                "create", "y.npy", "--shape", "4", "--dtype", "f32", "--chunks", "0",
            ],
            "zero",
        ),
        (
            vec![
                "create", "y.npy", "--shape", "4", "--dtype", "f32", "--codec", "lz4",
            ],
            "compressed",
        ),
        (
            vec![
                "create", "y.npy", "--shape", "4", "--dtype", "f32", "--codec", "brotli",
            ],
            "unknown codec",
        ),
        (
            vec!["create", "y.txt", "--shape", "4", "--dtype", "f32"],
            "extension",
        ),
        (vec!["get", a, "4,0"], "axis 0"),
        (vec!["get", a, "0,-6"], "axis 1"),
        (vec!["get", a, "0,0,0"], "too many indices"),
        (vec!["get", a, "::0"], "zero"),
        (vec!["get", a, "::-1"], "negative"),
        (vec!["get", a, "a:b"], "parse"),
        (vec!["get", p(&missing), "0"], "missing.npy"),
        (vec!["put", a, "0", "--value", "x"], "cannot parse"),
        (vec!["put", a, "0", "--value", "40000"], "cannot parse"),
        (vec!["put", a, "0", "--from", p(&other)], "shape"),
        (vec!["reduce", a, "median"], "unknown reduction"),
        (vec!["reduce", a, "sum", "--axis", "2"], "axis 2"),
        (vec!["--cache", "lots", "info", a], "size"),
        (vec!["convert", a, a, "--overwrite"], "same file"),
        (vec!["convert", a, p(&other)], "exists"),
        (
            vec!["bench", "--formats", "parquet", "--depth", "1"],
            "unknown format",
        ),
    ];
    for (args, needle) in cases {
        let err = fails(&args);
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "{args:?}: expected {needle:?} in: {err}"
        );
    }
    // Usage errors (clap) exit with 2.
    fails(&["put", a, "0"]);
    fails(&["frobnicate"]);
}

/// Output into a pipe nobody reads any more (`chunkyard info a.zarr |
/// head` after head has exited): the command ends as `cat` does, killed
/// by SIGPIPE with nothing on stderr, where Rust's default (SIGPIPE
/// ignored) made `println!` panic.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.zarr");
    ok(&["create", p(&a), "--shape", "10", "--dtype", "i32"]);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chunkyard"))
        .args(["info", p(&a)])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "stderr: {stderr}");
    // 13: SIGPIPE.
    assert_eq!(out.status.signal(), Some(13), "{:?}", out.status);
}
