//! The `chunkyard` command on Zarr arrays end to end: create with a fill
//! value, info, put/get, convert between .npy and .zarr both ways (codec,
//! chunks, dtype), the Zarr bad-input corpus, and a process killed in the
//! middle of writing.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[cfg(feature = "interop")]
use crate::common::python;
use crate::common::{child_guard, fails, ok, p};

#[test]
fn create_fill_info_put_get() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.zarr");
    let a = p(&a);
    ok(&[
        "create", a, "--shape", "5,6", "--dtype", "i16", "--chunks", "2,4", "--fill", "5",
        "--codec", "zstd:7",
    ]);
    let info = ok(&["info", a]);
    assert!(
        info.contains("zstd") && info.contains("\"level\":7"),
        "{info}"
    );
    assert!(info.contains("fill value:  5"), "{info}");
    let json = ok(&["info", a, "--json"]);
    assert!(json.contains("\"format\": \"zarr\""), "{json}");
    assert!(json.contains("\"fill_value\": \"5\""), "{json}");
    assert_eq!(ok(&["get", a, "4,5"]).trim(), "5");
    ok(&["put", a, "1:3, 2:", "--value", "-3"]);
    assert_eq!(ok(&["get", a, "2, 1:4"]).trim(), "[5, -3, -3]");
    assert_eq!(
        ok(&["reduce", a, "sum"]).trim(),
        (5 * 22 - 3 * 8).to_string()
    );
    // Chunks never touched are not on disk.
    assert!(!dir.path().join("a.zarr/c/2/0").exists());
    // Relative paths (the directory's parent is the current one).
    let out = Command::new(env!("CARGO_BIN_EXE_chunkyard"))
        .current_dir(dir.path())
        .args(["convert", "a.zarr", "rel.zarr", "--codec", "lz4"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ok(&["get", p(&dir.path().join("rel.zarr")), "2,2"]).trim(),
        "-3"
    );
    // A directory without an extension is recognised by its metadata.
    let bare = dir.path().join("bare");
    std::fs::rename(dir.path().join("a.zarr"), &bare).unwrap();
    assert_eq!(ok(&["get", p(&bare), "2,2"]).trim(), "-3");
}

#[test]
fn convert_between_npy_and_zarr_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.npy");
    let z = dir.path().join("z.zarr");
    let z2 = dir.path().join("z2.zarr");
    let back = dir.path().join("back.npy");
    // The source: a file numpy wrote, or without numpy one the library
    // wrote, holding the same values.
    #[cfg(feature = "interop")]
    python(&format!(
        "import numpy as np; np.save({:?}, np.arange(9 * 11 * 5, dtype=np.float64).reshape(9, 11, 5) / 4)",
        p(&src)
    ));
    #[cfg(not(feature = "interop"))]
    chunkyard::create::<f64>(&src, chunkyard::ArrayOptions::new([9, 11, 5]))
        .and_then(|a| {
            a.write(
                chunkyard::s![.., .., ..],
                &ndarray::Array1::from_shape_fn(9 * 11 * 5, |i| i as f64 / 4.0)
                    .into_shape_with_order((9, 11, 5))
                    .unwrap(),
            )
        })
        .expect("write src.npy");
    // What comes back after the trip through float32 Zarr arrays.
    let want: Vec<f64> = (0..9 * 11 * 5)
        .map(|i| f64::from((f64::from(i) / 4.0) as f32))
        .collect();
    for codec in ["none", "lz4", "zstd", "gzip:2"] {
        ok(&[
            "--cache",
            "4KiB",
            "convert",
            p(&src),
            p(&z),
            "--dtype",
            "f32",
            "--chunks",
            "4,3,5",
            "--codec",
            codec,
            "--overwrite",
        ]);
        ok(&[
            "--cache",
            "4KiB",
            "convert",
            p(&z),
            p(&z2),
            "--codec",
            "lz4",
            "--overwrite",
        ]);
        ok(&[
            "--cache",
            "4KiB",
            "convert",
            p(&z2),
            p(&back),
            "--dtype",
            "f64",
            "--overwrite",
        ]);
        let back_a: chunkyard::Array<f64> = chunkyard::open(&back).expect("open back.npy");
        let got = back_a
            .read(chunkyard::s![.., .., ..])
            .expect("read back.npy");
        assert_eq!(got.shape(), [9, 11, 5], "{codec}");
        assert!(got.iter().copied().eq(want.iter().copied()), "{codec}");
        drop(back_a);
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(z.join("zarr.json")).unwrap()).unwrap();
        assert_eq!(meta["data_type"], "float32", "{meta}");
        assert_eq!(
            meta["chunk_grid"]["configuration"]["chunk_shape"],
            serde_json::json!([4, 3, 5]),
            "{meta}"
        );
        let names: Vec<&str> = meta["codecs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        let compressor = match codec {
            "none" => vec![],
            "lz4" => vec!["blosc"],
            other => vec![other.split(':').next().unwrap()],
        };
        assert_eq!(names, [vec!["bytes"], compressor].concat(), "{meta}");
        #[cfg(feature = "interop")]
        python(&format!(
            r#"
import numpy as np, json
src = np.load({src:?})
back = np.load({back:?})
assert back.dtype == np.float64 and (back == src.astype(np.float32)).all()
meta = json.load(open({z:?} + "/zarr.json"))
assert meta["data_type"] == "float32" and meta["chunk_grid"]["configuration"]["chunk_shape"] == [4, 3, 5], meta
names = [c["name"] for c in meta["codecs"]]
assert names == ["bytes"] + {{"none": [], "lz4": ["blosc"]}}.get({codec:?}, [{codec:?}.split(":")[0]]), names
"#,
            src = p(&src),
            back = p(&back),
            z = p(&z),
        ));
    }
    // Refusals: an existing destination, F order, a non-Zarr directory.
    fails(&["convert", p(&src), p(&z)]);
    let e = fails(&[
        "create",
        p(&z2),
        "--shape",
        "3",
        "--dtype",
        "u8",
        "--order",
        "f",
        "--overwrite",
    ]);
    assert!(e.contains("C order"), "{e}");
    let plain = dir.path().join("plain.zarr");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("keep.txt"), "mine").unwrap();
    let e = fails(&["convert", p(&src), p(&plain), "--overwrite"]);
    assert!(e.contains("not a Zarr array"), "{e}");
    assert!(plain.join("keep.txt").exists());
}

#[test]
fn create_and_convert_sharded_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let src = d("src.zarr");
    ok(&[
        "create", &src, "--shape", "6,8", "--dtype", "f32", "--chunks", "3,4", "--fill", "1.5",
    ]);
    ok(&["put", &src, "0:4, 1:7", "--value", "2"]);
    let sh = d("sh.zarr");
    ok(&[
        "convert", &src, &sh, "--chunks", "1,4", "--shards", "3,8", "--codec", "lz4",
    ]);
    let info = ok(&["info", &sh]);
    assert!(
        info.contains("sharding_indexed") && info.contains("chunks:      (3, 8)"),
        "{info}"
    );
    // Shards of three rows: rows 0-2 and 3-5, two files.
    assert!(Path::new(&sh).join("c/0/0").is_file() && Path::new(&sh).join("c/1/0").is_file());
    assert_eq!(ok(&["get", &sh, "3,6"]).trim(), "2.0");
    assert_eq!(ok(&["get", &sh, "5,7"]).trim(), "1.5");
    let e = fails(&[
        "convert",
        &src,
        &d("bad.zarr"),
        "--chunks",
        "2,4",
        "--shards",
        "3,8",
    ]);
    assert!(e.contains("must divide"), "{e}");
    let e = fails(&[
        "convert",
        &src,
        &d("x.npy"),
        "--chunks",
        "1,4",
        "--shards",
        "3,8",
    ]);
    assert!(e.contains("only Zarr"), "{e}");
    let e = fails(&[
        "create",
        &d("y.zarr"),
        "--shape",
        "4",
        "--dtype",
        "u8",
        "--shards",
        "4",
    ]);
    assert!(e.contains("inner chunk shape"), "{e}");
}

#[test]
fn bad_zarr_arrays_fail_cleanly() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input/zarr");
    let mut n = 0;
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".zarr") {
            continue;
        }
        n += 1;
        let mut commands = vec![
            vec!["get", p(&path), "0,0"],
            vec!["reduce", p(&path), "sum"],
        ];
        if name.starts_with("meta_") {
            commands.push(vec!["info", p(&path)]);
        } else {
            // Good metadata: info works, reading the chunk does not.
            ok(&["info", p(&path)]);
        }
        for args in commands {
            let err = fails(&args);
            assert!(
                err.contains(&name),
                "{args:?}: does not name the array: {err}"
            );
        }
    }
    assert!(n >= 25, "corpus has only {n} arrays");
}

/// The chunk files of a Zarr array with their inode numbers. Zarr replaces
/// a chunk file whole (temporary file, then rename), so a new inode marks a
/// chunk a writer has finished.
fn chunk_inodes(array: &Path) -> HashMap<PathBuf, u64> {
    let mut out = HashMap::new();
    let mut stack = vec![array.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let Ok(e) = e else { continue };
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                // Not the chunks' lock files (.chunkyard-locks).
                if !name.starts_with('.') {
                    stack.push(e.path());
                }
            } else if !name.starts_with('.') && name != "zarr.json" {
                out.insert(e.path(), meta.ino());
            }
        }
    }
    out
}

#[test]
fn a_killed_writer_leaves_every_chunk_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zarr");
    let a = p(&path);
    ok(&[
        "create",
        a,
        "--shape",
        "64,256,256",
        "--dtype",
        "f64",
        "--chunks",
        "1,256,256",
        "--codec",
        "lz4",
    ]);
    ok(&["--cache", "2MiB", "put", a, "...", "--value", "1"]);
    // Rewrite everything with 2, and kill the writer part way through: as
    // soon as it has replaced `k` of the 64 chunk files, so that the kill
    // lands in the middle of the rewrite however fast the machine is.
    let mut mid_write = 0;
    for k in [1, 8, 32] {
        let before = chunk_inodes(&path);
        assert_eq!(before.len(), 64, "{before:?}");
        let replaced = {
            let _children = child_guard();
            let mut child = Command::new(env!("CARGO_BIN_EXE_chunkyard"))
                .args(["--cache", "2MiB", "put", a, "...", "--value", "2"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(120);
            let replaced = loop {
                let now = chunk_inodes(&path);
                let n = now
                    .iter()
                    .filter(|(f, ino)| before.get(*f) != Some(*ino))
                    .count();
                if n >= k || Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                    break n;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            let _ = child.kill();
            child.wait().unwrap();
            replaced
        };
        // Every plane (chunk) reads whole, either all 1 or all 2.
        let mut twos = 0;
        for z in 0..64 {
            let min = ok(&["reduce", a, "min", &z.to_string()]);
            let max = ok(&["reduce", a, "max", &z.to_string()]);
            assert_eq!(min, max, "plane {z} is mixed after a kill at {k} chunks");
            assert!(["1.0", "2.0"].contains(&min.trim()), "plane {z}: {min}");
            twos += usize::from(min.trim() == "2.0");
        }
        assert!(
            twos >= replaced,
            "{replaced} chunk files were replaced, but only {twos} planes hold 2"
        );
        eprintln!(
            "killed after {replaced} chunk files were replaced: {twos} of 64 planes rewritten"
        );
        mid_write += usize::from(0 < twos && twos < 64);
        ok(&["--cache", "2MiB", "put", a, "...", "--value", "1"]);
    }
    assert!(mid_write > 0, "no kill landed in the middle of the rewrite");
}

/// Four processes at once each write their own columns of every row of
/// one chunk, a `chunkyard put` (open, write, flush) per row: each reads
/// the chunk, changes a few elements and writes it back. The chunk's lock
/// and the re-read under it keep every process's elements (without them,
/// the last writer's copy wins and most are lost). The same test runs on
/// S3 in `s3.rs`.
#[test]
fn four_processes_writing_parts_of_one_chunk_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("lost.zarr");
    four_puts_into_one_chunk_lose_nothing(p(&a));
}

/// The body of that test for an array at `a` (a path or an `s3://` URL).
pub(crate) fn four_puts_into_one_chunk_lose_nothing(a: &str) {
    const ROWS: u64 = 6;
    let a = a.to_string();
    ok(&[
        "create",
        &a,
        "--shape",
        &format!("{ROWS},16"),
        "--dtype",
        "i32",
        "--chunks",
        &format!("{ROWS},16"),
        "--codec",
        "zstd:1",
    ]);
    let writers: Vec<_> = (0..4u64)
        .map(|k| {
            let a = a.clone();
            std::thread::spawn(move || {
                for r in 0..ROWS {
                    let value = (k * 100 + r + 1).to_string();
                    ok(&["put", &a, &format!("{r}, {k}::4"), "--value", &value]);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let got: Vec<Vec<i64>> =
        serde_json::from_str(ok(&["get", &a, "...", "--json"]).trim()).unwrap();
    for (r, row) in got.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            assert_eq!(
                v,
                (j % 4) as i64 * 100 + r as i64 + 1,
                "[{r}, {j}] lost: {got:?}"
            );
        }
    }
}
