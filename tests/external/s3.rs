//! Zarr on S3-compatible object storage against a real server (feature
//! `s3`). `.ci/with-s3` starts moto's server, creates the bucket and
//! exports the AWS_* variables and `CHUNKYARD_S3_BUCKET`:
//! `.ci/with-s3 cargo test --features s3 --test external s3`. Without
//! them these tests fail (they never skip).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use chunkyard::{ArrayOptions, Codec, Error, OpenOptions};

/// The bucket `.ci/with-s3` made; panics with how to get one.
fn bucket() -> String {
    std::env::var("CHUNKYARD_S3_BUCKET").unwrap_or_else(|_| {
        panic!(
            "the s3 tests need a server: run them under .ci/with-s3 (moto), or export \
             AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP and \
             CHUNKYARD_S3_BUCKET"
        )
    })
}

/// A URL no other test (or earlier run against the same server) uses.
fn fresh(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "s3://{}/t{}-{nanos}-{}/{name}",
        bucket(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The server `.ci/with-s3` started (`http://127.0.0.1:PORT`).
fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL (run under .ci/with-s3)")
}

/// `/bucket/prefix/key` of `key` in the array at `url`, for raw requests.
fn object_path(url: &str, key: &str) -> String {
    format!("/{}/{key}", url.strip_prefix("s3://").unwrap())
}

/// Replaces an object behind chunkyard's back (moto checks no signatures).
fn plant(url: &str, key: &str, bytes: &[u8]) {
    let (status, body) =
        crate::flaky_proxy::raw_request(&endpoint(), "PUT", &object_path(url, key), bytes);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

fn fetch_object(url: &str, key: &str) -> Vec<u8> {
    let (status, body) =
        crate::flaky_proxy::raw_request(&endpoint(), "GET", &object_path(url, key), &[]);
    assert_eq!(status, 200, "{url}/{key}");
    body
}

/// Every read of a damaged chunk object is a format error that names the
/// object, on one line; no panic, and the undamaged chunk still reads. An
/// oversized object is refused from its length (`s3::chunk_object_limit`).
#[test]
fn corrupt_truncated_and_oversized_chunk_objects_are_typed_errors() {
    for codec in [Codec::None, Codec::Zstd { level: 3 }, Codec::Lz4] {
        let url = fresh("bad.zarr");
        let a =
            chunkyard::create::<i32>(&url, ArrayOptions::new([8, 8]).chunks([4, 4]).codec(codec))
                .unwrap();
        let data = ndarray::Array2::from_shape_fn((8, 8), |(i, j)| (i * 8 + j) as i32 + 1);
        a.write(ndarray::s![.., ..], data.view()).unwrap();
        a.flush().unwrap();
        drop(a);
        let good = fetch_object(&url, "c/0/1");
        plant(&url, "c/0/0", b"this is not a chunk");
        plant(&url, "c/0/1", &good[..good.len() / 2]);
        plant(&url, "c/1/0", &vec![7u8; 4 << 20]);
        let b = chunkyard::open::<i32>(&url).unwrap();
        for (key, rows, cols) in [
            ("c/0/0", 0..4, 0..4),
            ("c/0/1", 0..4, 4..8),
            ("c/1/0", 4..8, 0..4),
        ] {
            let (r, c) = (rows.start as isize, cols.start as isize);
            let whole = b.read(ndarray::s![r..r + 4, c..c + 4]);
            let one = b.get([rows.start, cols.start + 1]);
            for (how, e) in [("whole", whole.map(|_| ())), ("one", one.map(|_| ()))] {
                let e = e.expect_err(&format!("{codec:?} {key} {how}: read a damaged chunk"));
                let msg = e.to_string();
                assert!(
                    matches!(e, Error::Format { .. }),
                    "{codec:?} {key} {how}: {e:?}"
                );
                assert!(
                    msg.contains(&format!("{url}/{key}")),
                    "{codec:?} {key} {how}: {msg}"
                );
                assert!(!msg.contains('\n'), "{msg}");
                if key == "c/1/0" && how == "whole" {
                    assert!(msg.contains("not read") || codec == Codec::None, "{msg}");
                }
            }
        }
        assert_eq!(b.get([5, 6]).unwrap(), 47, "{codec:?}: the good chunk");
    }
}

/// A `zarr.json` that is not JSON (or not an array's metadata): open
/// fails with one line naming it.
#[test]
fn garbage_metadata_is_a_typed_error() {
    for garbage in [
        &b"\x00\x01 not json"[..],
        b"{\"zarr_format\": 3}",
        b"[1, 2]",
    ] {
        let url = fresh("meta.zarr");
        chunkyard::create::<u8>(&url, ArrayOptions::new([4]).chunks([2])).unwrap();
        plant(&url, "zarr.json", garbage);
        for writable in [false, true] {
            let e = chunkyard::open_with::<u8>(&url, OpenOptions::new().read_only(!writable))
                .expect_err("opened garbage metadata");
            let msg = e.to_string();
            assert!(
                matches!(e, Error::Format { .. } | Error::Store { .. }),
                "{e:?}"
            );
            assert!(msg.contains(&url) && !msg.contains('\n'), "{msg}");
        }
    }
}

#[test]
fn create_write_reopen_read_back() {
    for codec in [Codec::None, Codec::Zstd { level: 3 }] {
        let url = fresh("a.zarr");
        let a =
            chunkyard::create::<f32>(&url, ArrayOptions::new([6, 10]).chunks([4, 4]).codec(codec))
                .unwrap();
        let data = ndarray::Array2::from_shape_fn((6, 10), |(i, j)| (i * 10 + j) as f32);
        a.write(ndarray::s![.., ..], data.view()).unwrap();
        a.flush().unwrap();
        drop(a);
        let b = chunkyard::open::<f32>(&url).unwrap();
        assert_eq!(b.shape(), &[6, 10]);
        assert_eq!(b.read(ndarray::s![.., ..]).unwrap(), data.into_dyn());
        // One element (a ranged GET when uncompressed), a strided tile.
        assert_eq!(b.get([5, 9]).unwrap(), 59.0);
        let t = b.read(ndarray::s![1..6;2, 3..8]).unwrap();
        assert_eq!(t[[2, 4]], 57.0);
    }
}

/// The suite every store runs, on arrays in the bucket: uncompressed
/// (ranged GETs for partial reads) and compressed.
#[test]
fn conformance_suite() {
    use chunkyard::store::conformance::{self, Harness, Reopen};
    use chunkyard::store::{ChunkStore, StoreMeta, ZarrOptions, ZarrStore};
    for codec in [Codec::None, Codec::Lz4] {
        let create = |m: &StoreMeta| -> chunkyard::Result<(Arc<dyn ChunkStore>, Reopen)> {
            let url = fresh("conformance.zarr");
            let opts = ZarrOptions {
                codec,
                ..ZarrOptions::default()
            };
            let path = std::path::PathBuf::from(url);
            let s = ZarrStore::create(&path, m.dtype, &m.shape, &m.chunks, &m.fill, &opts)?;
            let reopen: Reopen = Box::new(move || Ok(Arc::new(ZarrStore::open(&path, true)?) as _));
            Ok((Arc::new(s) as _, reopen))
        };
        conformance::run_all(&Harness { create: &create });
    }
}

#[test]
fn chunks_of_fill_are_not_stored_and_open_does_not_write() {
    let url = fresh("f.zarr");
    let a = chunkyard::create::<i32>(&url, ArrayOptions::new([4, 4]).chunks([2, 2])).unwrap();
    let meta_only = a.memory_report().stored_bytes.unwrap();
    a.write(
        ndarray::s![0..2, 0..2],
        ndarray::arr2(&[[1, 2], [3, 4]]).view(),
    )
    .unwrap();
    a.flush().unwrap();
    let one = a.memory_report().stored_bytes.unwrap();
    assert_eq!(one, meta_only + 16, "one raw chunk of 4 i32");
    // Written back as all fill value: the object is deleted.
    a.write(
        ndarray::s![0..2, 0..2],
        ndarray::Array2::<i32>::zeros((2, 2)).view(),
    )
    .unwrap();
    a.flush().unwrap();
    assert_eq!(a.memory_report().stored_bytes.unwrap(), meta_only);
    drop(a);
    let w = chunkyard::open_with::<i32>(&url, OpenOptions::new()).unwrap();
    assert_eq!(w.memory_report().stored_bytes.unwrap(), meta_only);
}

#[test]
fn two_racing_creators_exactly_one_wins() {
    // Losers see the other's objects when listing the prefix, or lose
    // the conditional PUT of zarr.json when both listed an empty prefix.
    let mut by_put = 0;
    for round in 0..16 {
        let url = fresh(&format!("race{round}.zarr"));
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|k| {
                let (url, barrier) = (url.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    chunkyard::create::<u8>(&url, ArrayOptions::new([4 + k]).chunks([2]))
                        .map(|a| a.shape()[0])
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "round {round}: {results:?}");
        let lost = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(lost.to_string().contains("already exists"), "{lost}");
        if lost.to_string().contains("created it first") {
            by_put += 1;
        }
        // The metadata is the winner's.
        assert_eq!(chunkyard::open::<u8>(&url).unwrap().shape()[0], *won[0]);
    }
    eprintln!("{by_put} of 16 races were decided by the conditional PUT");
}

#[test]
fn create_refuses_an_existing_array_unless_overwrite() {
    let url = fresh("o.zarr");
    chunkyard::create::<u8>(&url, ArrayOptions::new([4]).chunks([2])).unwrap();
    let e = chunkyard::create::<u8>(&url, ArrayOptions::new([4]).chunks([2])).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    let a =
        chunkyard::create::<u8>(&url, ArrayOptions::new([7]).chunks([2]).overwrite(true)).unwrap();
    assert_eq!(a.shape(), &[7]);
}

#[test]
fn resize_is_a_conditional_update_that_keeps_the_longest_growth() {
    let url = fresh("r.zarr");
    chunkyard::create::<i16>(&url, ArrayOptions::new([4, 3]).chunks([2, 3])).unwrap();
    let a = chunkyard::open::<i16>(&url).unwrap();
    let b = chunkyard::open::<i16>(&url).unwrap();
    a.resize(10).unwrap();
    // b still believes 4 rows: its growth to 6 must not undo a's to 10.
    b.resize(6).unwrap();
    assert_eq!(chunkyard::open::<i16>(&url).unwrap().shape(), &[10, 3]);
    // A shrink sets the length it asks for.
    a.resize(3).unwrap();
    assert_eq!(chunkyard::open::<i16>(&url).unwrap().shape(), &[3, 3]);
    // Many growers at once: every update lands on the latest version.
    // Each opens before any resizes (the barrier): a handle opened after
    // another's growth to 23 would see 23, and its resize to 20 would be
    // the shrink it asked for (a race of the test, seen in CI).
    four_at_once(&url, |k, h| {
        assert_eq!(h.shape(), &[3, 3]);
        h.resize(20 + k).unwrap();
    });
    assert_eq!(chunkyard::open::<i16>(&url).unwrap().shape(), &[23, 3]);
}

/// Four threads each open the array at `url`, wait until all have
/// opened it, then run `f(k, handle)` (`k` = 0..4) at once.
fn four_at_once(url: &str, f: impl Fn(u64, chunkyard::Array<i16>) + Send + Sync + 'static) {
    let opened = std::sync::Arc::new(std::sync::Barrier::new(4));
    let f = std::sync::Arc::new(f);
    let threads: Vec<_> = (0..4u64)
        .map(|k| {
            let (url, opened, f) = (url.to_string(), opened.clone(), f.clone());
            std::thread::spawn(move || {
                let h = chunkyard::open::<i16>(&url).unwrap();
                opened.wait();
                f(k, h);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Changes of attributes are conditional updates of `zarr.json`: handles
/// opened before any change (each with the attributes of its open) that
/// set different keys at once all land, and removing one key keeps the
/// others.
#[test]
fn attribute_changes_from_many_writers_all_land() {
    let url = fresh("attrs.zarr");
    chunkyard::create::<i16>(&url, ArrayOptions::new([4, 3]).attr("origin", "test")).unwrap();
    four_at_once(&url, |k, h| {
        h.update_attrs(|a| {
            a.insert(format!("k{k}"), k.into());
            Ok(())
        })
        .unwrap();
        // This handle's own view follows its change.
        assert_eq!(h.attrs()[&format!("k{k}")], k);
    });
    let a = chunkyard::open::<i16>(&url).unwrap();
    let mut keys: Vec<String> = a.attrs().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["k0", "k1", "k2", "k3", "origin"]);
    a.update_attrs(|m| {
        m.remove("origin");
        Ok(())
    })
    .unwrap();
    let b = chunkyard::open::<i16>(&url).unwrap();
    assert_eq!(b.attrs().len(), 4);
    assert!(!b.attrs().contains_key("origin"));
    // A change that fails writes nothing.
    let err = b
        .update_attrs(|m| {
            m.clear();
            Err(chunkyard::Error::invalid("no"))
        })
        .unwrap_err();
    assert!(err.to_string().contains("no"), "{err}");
    assert_eq!(chunkyard::open::<i16>(&url).unwrap().attrs().len(), 4);
}

#[test]
fn works_when_called_from_inside_a_tokio_runtime() {
    let url = fresh("rt.zarr");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let shape = rt.block_on(async {
        let a = chunkyard::create::<u8>(&url, ArrayOptions::new([5]).chunks([2])).unwrap();
        a.write(ndarray::s![..], ndarray::arr1(&[1u8, 2, 3, 4, 5]).view())
            .unwrap();
        a.flush().unwrap();
        chunkyard::open::<u8>(&url)
            .unwrap()
            .read(ndarray::s![..])
            .unwrap()
    });
    assert_eq!(shape.as_slice().unwrap(), &[1, 2, 3, 4, 5]);
}

#[test]
fn missing_arrays_and_bad_urls_are_typed_errors() {
    let e = chunkyard::open::<u8>(fresh("nothing.zarr")).unwrap_err();
    assert!(e.to_string().contains("nothing under this prefix"), "{e}");
    for bad in ["s3://", "s3://just-a-bucket", "s3://b/x.npy"] {
        let e = chunkyard::open::<u8>(bad).unwrap_err();
        assert!(
            e.to_string().contains(bad.trim_end_matches('/')),
            "{bad}: {e}"
        );
    }
}

/// Explicit options win over the variables: an endpoint where nothing
/// listens fails to reach it though `AWS_ENDPOINT_URL` names a live
/// server, and the message names the option, not the variable; an
/// explicit `allow_http(false)` refuses the http endpoint the environment
/// allows; explicit options naming the live server work.
#[test]
fn explicit_options_override_the_variables() {
    use chunkyard::S3Options;
    let url = fresh("opts.zarr");
    let dead = S3Options::new()
        .endpoint("http://127.0.0.1:9")
        .allow_http(true)
        .retries(0);
    let e = chunkyard::create::<u8>(&url, ArrayOptions::new([4]).s3(dead.clone())).unwrap_err();
    let e = e.to_string();
    assert!(
        e.contains("cannot reach the endpoint http://127.0.0.1:9")
            && e.contains("the endpoint_url option"),
        "{e}"
    );
    let e = chunkyard::open_with::<u8>(&url, OpenOptions::new().s3(dead)).unwrap_err();
    assert!(e.to_string().contains("http://127.0.0.1:9"), "{e}");
    let e = chunkyard::create::<u8>(
        &url,
        ArrayOptions::new([4]).s3(S3Options::new().allow_http(false)),
    )
    .unwrap_err();
    assert!(e.to_string().contains("plain http"), "{e}");
    let live = S3Options::new()
        .endpoint(endpoint())
        .allow_http(true)
        .region("us-east-1")
        .credentials("testing", "testing")
        .timeout(std::time::Duration::from_secs(20))
        .retries(2);
    let a =
        chunkyard::create::<u8>(&url, ArrayOptions::new([4]).chunks([2]).s3(live.clone())).unwrap();
    a.write(ndarray::s![1..3], ndarray::arr1(&[7u8, 8]).view())
        .unwrap();
    a.close().unwrap();
    let b = chunkyard::open_with::<u8>(&url, OpenOptions::new().read_only(true).s3(live)).unwrap();
    assert_eq!(
        b.read(ndarray::s![..]).unwrap().as_slice().unwrap(),
        &[0, 7, 8, 0]
    );
    // One of the key and the secret alone is a mistake, not half a
    // credential mixed with the environment's.
    let mut half = S3Options::new();
    half.set("key", "testing").unwrap();
    let e = chunkyard::open_with::<u8>(&url, OpenOptions::new().s3(half)).unwrap_err();
    assert!(e.to_string().contains("go together"), "{e}");
}

/// The CLI on S3 URLs, and each configuration mistake as one line that
/// names the URL and the fix.
#[cfg(feature = "cli")]
mod cli {
    use super::fresh;
    use crate::common::{fails, ok};

    #[test]
    fn create_info_put_get_reduce_convert() {
        let a = fresh("cli.zarr");
        ok(&[
            "create", &a, "--shape", "5,6", "--dtype", "i16", "--chunks", "2,4", "--fill", "5",
            "--codec", "zstd:3",
        ]);
        let info = ok(&["info", &a]);
        assert!(info.contains("zstd") && info.contains(&a), "{info}");
        ok(&["put", &a, "1:3, 2:", "--value", "-3"]);
        assert_eq!(ok(&["get", &a, "2, 1:4"]).trim(), "[5, -3, -3]");
        assert_eq!(
            ok(&["reduce", &a, "sum"]).trim(),
            (5 * 22 - 3 * 8).to_string()
        );
        // S3 to a local file and back to S3.
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("l.npy");
        let local = local.to_str().unwrap();
        ok(&["convert", &a, local]);
        let b = fresh("b.zarr");
        ok(&["convert", local, &b, "--codec", "lz4"]);
        assert_eq!(ok(&["get", &b, "2, 1:4"]).trim(), "[5, -3, -3]");
        let json = ok(&["info", &b, "--json"]);
        // `--codec lz4` is the spec's blosc codec with LZ4 inside.
        assert!(
            json.contains("blosc") && json.contains(r#"\"cname\":\"lz4\""#),
            "{json}"
        );
    }

    /// Four processes at once each write their own columns of every row,
    /// a row per `chunkyard put` (a process each: open, write, flush),
    /// all into the one chunk: every put reads the chunk, changes a few
    /// elements and writes it back. Without conditional writes most of
    /// them would be lost (the last writer's copy wins).
    #[test]
    fn four_processes_writing_parts_of_one_chunk_lose_nothing() {
        crate::zarr_cli::four_puts_into_one_chunk_lose_nothing(&fresh("lost.zarr"));
    }

    /// Four processes at once, each writing its own chunks (two `put`s
    /// of a whole chunk each, so no chunk is shared): everything lands,
    /// as chunkyard and zarr-python (through obstore) read it back.
    #[test]
    fn four_processes_writing_disjoint_chunks_all_land() {
        let url = fresh("disjoint.zarr");
        ok(&[
            "create", &url, "--shape", "16,12", "--dtype", "i32", "--chunks", "4,6", "--codec",
            "lz4",
        ]);
        let writers: Vec<_> = (0..4u64)
            .map(|k| {
                let url = url.clone();
                std::thread::spawn(move || {
                    for j in 0..2u64 {
                        let sel = format!("{}:{}, {}:{}", 4 * k, 4 * k + 4, 6 * j, 6 * j + 6);
                        ok(&["put", &url, &sel, "--value", &(k * 10 + j + 1).to_string()]);
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let got: Vec<Vec<i64>> =
            serde_json::from_str(ok(&["get", &url, "...", "--json"]).trim()).unwrap();
        for (r, row) in got.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                assert_eq!(v, (r / 4 * 10 + c / 6 + 1) as i64, "[{r}, {c}]: {got:?}");
            }
        }
        #[cfg(feature = "interop")]
        {
            let out = super::interop::zpython(
                &url,
                "a = zarr.open_array(store, mode='r')\n\
                 r, c = np.indices((16, 12))\n\
                 want = (r // 4) * 10 + c // 6 + 1\n\
                 assert (a[...] == want).all(), a[...]\n\
                 print('ok')",
            );
            assert_eq!(out.trim(), "ok");
        }
    }

    /// Runs the CLI against another endpoint (the flaky proxy).
    fn run_via(endpoint: &str, args: &[&str]) -> std::process::Output {
        let _children = crate::common::child_guard();
        std::process::Command::new(env!("CARGO_BIN_EXE_chunkyard"))
            .env("AWS_ENDPOINT_URL", endpoint)
            .args(args)
            .output()
            .unwrap()
    }

    fn ok_via(endpoint: &str, args: &[&str]) -> String {
        let out = run_via(endpoint, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// A chunk object far larger than any encoding of its chunk is refused
    /// from its length: the reader does not download it (the proxy passes
    /// on a small part of it at most, what socket buffers take before the
    /// client hangs up).
    #[test]
    fn an_oversized_chunk_object_is_refused_unread() {
        use crate::flaky_proxy::{Faults, FlakyProxy};
        let url = fresh("big.zarr");
        ok(&[
            "create", &url, "--shape", "8", "--dtype", "u8", "--chunks", "4", "--codec", "zstd:1",
        ]);
        const BIG: usize = 48 << 20;
        super::plant(&url, "c/0", &vec![1u8; BIG]);
        let proxy = FlakyProxy::start(&super::endpoint(), 1, Faults::default());
        let out = run_via(&proxy.url(), &["get", &url, "0"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("{url}/c/0")) && stderr.contains("not read"),
            "{stderr}"
        );
        let relayed = proxy
            .stats
            .bytes_to_clients
            .load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            relayed < (BIG / 2) as u64,
            "{relayed} bytes of a {BIG}-byte object went to the client"
        );
    }

    /// `get ... --json` of a 2-d i32 array, read straight from the server.
    fn all_of(url: &str) -> Vec<Vec<i64>> {
        serde_json::from_str(ok(&["get", url, "...", "--json"]).trim()).unwrap()
    }

    /// Writes through a proxy that answers 503, drops the connection
    /// before forwarding, or forwards and drops the answer (each for 5%
    /// of requests, by seed) complete after retries, and what is read
    /// back straight from the server is exactly what was written: whole
    /// chunks (plain PUTs), and four processes' overlapping partial writes
    /// into shared chunks (conditional PUTs, whose lost answers come back
    /// as 412 on the retry and are merged again).
    #[test]
    fn writes_through_a_flaky_proxy_complete_and_lose_nothing() {
        use crate::flaky_proxy::{Faults, FlakyProxy, Stats};
        let proxy = FlakyProxy::start(
            &super::endpoint(),
            19,
            Faults {
                unavailable: 0.05,
                drop_before: 0.05,
                drop_after: 0.05,
                ..Faults::default()
            },
        );
        let ep = proxy.url();
        let url = fresh("flaky.zarr");
        ok(&[
            "create", &url, "--shape", "24,16", "--dtype", "i32", "--chunks", "4,8", "--codec",
            "zstd:1",
        ]);
        ok_via(&ep, &["put", &url, "...", "--value", "3"]);
        let writers: Vec<_> = (0..4i64)
            .map(|k| {
                let (url, ep) = (url.clone(), ep.clone());
                std::thread::spawn(move || {
                    for r in 0..6i64 {
                        let v = (100 * k + r + 10).to_string();
                        ok_via(&ep, &["put", &url, &format!("{r}, {k}::4"), "--value", &v]);
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let got = all_of(&url);
        for (r, row) in got.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                let want = if r < 6 {
                    (c % 4) as i64 * 100 + r as i64 + 10
                } else {
                    3
                };
                assert_eq!(v, want, "[{r}, {c}] lost: {got:?}");
            }
        }
        let st = &proxy.stats;
        let n = Stats::get;
        eprintln!("flaky proxy: {st:?}");
        assert!(
            n(&st.unavailable) > 0 && n(&st.dropped_before) > 0 && n(&st.dropped_after) > 0,
            "every kind of fault happened: {st:?}"
        );
    }

    /// A server that stops answering in the middle of a flush (the proxy
    /// forwards four requests, then answers 503 to all): the write fails
    /// with one line naming the array, each chunk is all old or all new
    /// (an object is replaced whole or not at all), and the array opens
    /// and takes writes again.
    #[test]
    fn a_flush_cut_short_fails_clearly_and_leaves_each_chunk_old_or_new() {
        use crate::flaky_proxy::{Faults, FlakyProxy};
        let url = fresh("cut.zarr");
        ok(&[
            "create", &url, "--shape", "32,8", "--dtype", "i32", "--chunks", "4,8", "--codec",
            "zstd:1",
        ]);
        ok(&["put", &url, "...", "--value", "1"]);
        let proxy = FlakyProxy::start(
            &super::endpoint(),
            7,
            Faults {
                forward_at_most: Some(4),
                ..Faults::default()
            },
        );
        let out = run_via(&proxy.url(), &["put", &url, "...", "--value", "2"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&url) && !stderr.contains("panicked"),
            "{stderr}"
        );
        let got = all_of(&url);
        let mut new = 0;
        for (k, rows) in got.chunks(4).enumerate() {
            let first = rows[0][0];
            assert!(
                (first == 1 || first == 2) && rows.iter().flatten().all(|&v| v == first),
                "chunk {k} is neither old nor new: {rows:?}"
            );
            new += (first == 2) as usize;
        }
        assert!(new < 8, "the cut flush wrote every chunk");
        eprintln!("{new} of 8 chunks new after the cut flush: {stderr}");
        ok(&["put", &url, "...", "--value", "2"]);
        assert!(all_of(&url).iter().flatten().all(|&v| v == 2));
    }

    /// A flush keeps at least 32 chunk writes in flight (not one per
    /// rayon thread): the proxy holds each request until 32 are in flight
    /// at once (or 3 s passed) and counts the most it saw.
    #[test]
    fn a_flush_keeps_32_requests_in_flight() {
        use crate::flaky_proxy::{Faults, FlakyProxy, Stats};
        let url = fresh("wide.zarr");
        ok(&[
            "create", &url, "--shape", "64,1024", "--dtype", "f32", "--chunks", "1,1024",
            "--codec", "zstd:1",
        ]);
        let proxy = FlakyProxy::start(
            &super::endpoint(),
            5,
            Faults {
                hold_until_in_flight: Some(32),
                ..Faults::default()
            },
        );
        ok_via(&proxy.url(), &["put", &url, "...", "--value", "1.5"]);
        let most = Stats::get(&proxy.stats.max_in_flight);
        assert!(
            most >= 32,
            "at most {most} requests in flight during the flush"
        );
        assert_eq!(ok(&["reduce", &url, "sum"]).trim(), "98304.0");
    }

    /// Scans keep at least 32 chunk reads in flight: `reduce` and
    /// `convert` (to a local file) of an array of 64 compressed chunks,
    /// through the proxy that holds each request until 32 are in flight.
    #[test]
    fn a_scan_keeps_32_requests_in_flight() {
        use crate::flaky_proxy::{Faults, FlakyProxy, Stats};
        let url = fresh("scan.zarr");
        ok(&[
            "create", &url, "--shape", "64,1024", "--dtype", "f32", "--chunks", "1,1024",
            "--codec", "zstd:1",
        ]);
        ok(&["put", &url, "...", "--value", "0.5"]);
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("copy.npy");
        let local = local.to_str().unwrap();
        for (args, out) in [
            (&["reduce", url.as_str(), "sum"][..], Some("32768.0")),
            (&["convert", url.as_str(), local][..], None),
        ] {
            let proxy = FlakyProxy::start(
                &super::endpoint(),
                11,
                Faults {
                    hold_until_in_flight: Some(32),
                    ..Faults::default()
                },
            );
            let got = ok_via(&proxy.url(), args);
            if let Some(want) = out {
                assert_eq!(got.trim(), want);
            }
            let most = Stats::get(&proxy.stats.max_in_flight);
            assert!(most >= 32, "{args:?}: at most {most} requests in flight");
        }
        assert_eq!(ok(&["reduce", local, "sum"]).trim(), "32768.0");
    }

    /// Runs the CLI with changed environment; must fail with one line.
    fn fails_with(env: &[(&str, Option<&str>)], args: &[&str]) -> String {
        let _children = crate::common::child_guard();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chunkyard"));
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let out = cmd.args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }

    /// A second moto server that checks credentials (the shared one
    /// accepts any), killed when dropped.
    struct AuthServer(std::process::Child, String);

    impl Drop for AuthServer {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn auth_server() -> AuthServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (pip install 'moto[server]')");
        let server = AuthServer(child, format!("http://127.0.0.1:{port}"));
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("moto's server did not start on port {port}");
    }

    #[test]
    fn bad_credentials_are_one_clear_line() {
        let server = auth_server();
        let url = fresh("cred.zarr");
        let env = [
            ("AWS_ENDPOINT_URL", Some(server.1.as_str())),
            ("AWS_ACCESS_KEY_ID", Some("AKIANOTAKEY")),
        ];
        for args in [
            &["create", url.as_str(), "--shape", "4", "--dtype", "u8"][..],
            &["info", url.as_str()][..],
        ] {
            let e = fails_with(&env, args);
            assert!(
                e.contains(&url)
                    && e.contains("access denied")
                    && e.contains("AWS_ACCESS_KEY_ID")
                    && e.contains("InvalidAccessKeyId"),
                "{e}"
            );
        }
    }

    /// The keys under `prefix` (`bucket/...`, no scheme), by a raw LIST.
    fn keys_under(prefix: &str) -> Vec<String> {
        let (bucket, prefix) = prefix.split_once('/').unwrap();
        let (status, body) = crate::flaky_proxy::raw_request(
            &super::endpoint(),
            "GET",
            &format!("/{bucket}?list-type=2&prefix={prefix}/"),
            &[],
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let body = String::from_utf8(body).unwrap();
        body.split("<Key>")
            .skip(1)
            .map(|k| k.split("</Key>").next().unwrap().to_string())
            .collect()
    }

    /// `bench --dir s3://...` builds the volume into the bucket, sums it
    /// (the same sum as a local Zarr build of the same seed), reads the
    /// strided selections, reports no cold passes, and removes its objects
    /// (kept with --keep); npy in object storage is a clear error.
    #[test]
    fn bench_builds_and_scans_in_object_storage_and_cleans_up() {
        let dir = fresh("bench");
        let small = ["--depth", "2", "--rows", "64", "--cols", "64", "--json"];
        let run = |dir: &str, extra: &[&str]| -> serde_json::Value {
            let mut args = vec!["bench", "--dir", dir, "--workload", "scan,strided"];
            args.extend(small);
            args.extend(extra);
            serde_json::from_str(ok(&args).trim()).unwrap()
        };
        let remote = run(&dir, &[]);
        assert_eq!(remote["format"], "zarr");
        let reads = &remote["reads"];
        assert!(
            reads["sum_gb_per_s"]["warm"].as_f64().unwrap() > 0.0,
            "{remote}"
        );
        assert!(reads["sum_gb_per_s"]["cold"].is_null(), "{remote}");
        assert!(
            reads["strided_k_2_2_ms"]["warm"].as_f64().is_some(),
            "{remote}"
        );
        assert!(
            remote["file_bytes"].as_u64().unwrap() >= 2 * 64 * 64 * 4,
            "{remote}"
        );
        let prefix = dir.strip_prefix("s3://").unwrap();
        assert_eq!(keys_under(prefix), Vec::<String>::new());
        let local = tempfile::tempdir().unwrap();
        let here = run(local.path().to_str().unwrap(), &["--formats", "zarr"]);
        assert_eq!(reads["sum"], here["reads"]["sum"], "{remote} {here}");
        run(&dir, &["--keep"]);
        let kept = keys_under(prefix);
        assert!(
            kept.iter().any(|k| k.ends_with(".zarr/zarr.json")) && kept.len() == 3,
            "{kept:?}"
        );
        let e = fails(&[
            "bench",
            "--dir",
            &dir,
            "--formats",
            "npy,zarr",
            "--depth",
            "2",
        ]);
        assert!(e.contains("Zarr arrays only"), "{e}");
    }

    /// The variables `.ci/with-s3` exports, all unset in a child.
    const AWS_VARS: [&str; 5] = [
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_ALLOW_HTTP",
    ];

    /// `--s3-option` pairs alone configure the client: every command of a
    /// create, put, get, reduce and convert round trip works with the
    /// variables unset; without the options the same command fails.
    #[test]
    fn s3_options_on_the_command_line_work_without_the_variables() {
        let url = fresh("flags.zarr");
        let endpoint = super::endpoint();
        let flags = [
            format!("--s3-option=endpoint_url={endpoint}"),
            "--s3-option=allow_http=true".into(),
            "--s3-option=key=testing".into(),
            "--s3-option=secret=testing".into(),
            "--s3-option=region=us-east-1".into(),
            "--s3-option=retries=2".into(),
            "--s3-option=timeout=20".into(),
        ];
        let run = |args: &[&str]| {
            let _children = crate::common::child_guard();
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chunkyard"));
            for k in AWS_VARS {
                cmd.env_remove(k);
            }
            let out = cmd.args(args).args(&flags).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{args:?}: {stderr}");
            String::from_utf8(out.stdout).unwrap()
        };
        run(&[
            "create", &url, "--shape", "4,3", "--dtype", "i32", "--chunks", "2,3",
        ]);
        run(&["put", &url, "1:3, 1", "--value", "9"]);
        assert_eq!(run(&["get", &url, "..., 1"]).trim(), "[0, 9, 9, 0]");
        assert_eq!(run(&["reduce", &url, "sum"]).trim(), "18");
        let copy = fresh("flags-copy.zarr");
        run(&["convert", &url, &copy, "--codec", "lz4"]);
        assert_eq!(run(&["reduce", &copy, "sum"]).trim(), "18");
        // The same endpoint without allow_http: refused before any request.
        let unset: Vec<_> = AWS_VARS.iter().map(|&k| (k, None)).collect();
        let e = fails_with(&unset, &["info", &url, &flags[0]]);
        assert!(
            e.contains(&url) && e.contains("plain http") && e.contains("allow_http"),
            "{e}"
        );
        // A mistyped key names the valid ones.
        let e = fails_with(&[], &["info", &url, "--s3-option", "endpoint=http://x"]);
        assert!(
            e.contains("unknown S3 option") && e.contains("endpoint_url"),
            "{e}"
        );
    }

    /// A wrong key given as an option is the credentials error, naming the
    /// options (not the variables) as the thing to check.
    #[test]
    fn a_wrong_explicit_key_is_the_credentials_error() {
        let server = auth_server();
        let url = fresh("cred-opt.zarr");
        let unset: Vec<_> = AWS_VARS.iter().map(|&k| (k, None)).collect();
        let endpoint = format!("endpoint_url={}", server.1);
        let args = [
            "info",
            url.as_str(),
            "--s3-option",
            &endpoint,
            "--s3-option",
            "allow_http=true",
            "--s3-option",
            "key=AKIANOTAKEY",
            "--s3-option",
            "secret=nope",
        ];
        let e = fails_with(&unset, &args);
        assert!(
            e.contains(&url)
                && e.contains("access denied")
                && e.contains("the key, secret and token options")
                && e.contains("InvalidAccessKeyId"),
            "{e}"
        );
    }

    #[test]
    fn configuration_mistakes_are_one_clear_line() {
        let url = fresh("e.zarr");
        let create = ["create", url.as_str(), "--shape", "4", "--dtype", "u8"];
        // A bucket that does not exist.
        let nobucket = url.replacen(&super::bucket(), "no-such-bucket-chunkyard", 1);
        let e = fails(&["create", &nobucket, "--shape", "4", "--dtype", "u8"]);
        assert!(
            e.contains(&nobucket) && e.contains("does not exist") && e.contains("aws s3 mb"),
            "{e}"
        );
        let e = fails(&["info", &nobucket]);
        assert!(e.contains("does not exist"), "{e}");
        // Nothing listening.
        let e = fails_with(&[("AWS_ENDPOINT_URL", Some("http://127.0.0.1:9"))], &create);
        assert!(
            e.contains(&url) && e.contains("cannot reach") && e.contains("AWS_ENDPOINT_URL"),
            "{e}"
        );
        // Plain http without allowing it.
        let e = fails_with(&[("AWS_ALLOW_HTTP", None)], &create);
        assert!(e.contains(&url) && e.contains("AWS_ALLOW_HTTP=true"), "{e}");
        // Not an array.
        let e = fails(&["get", &url, "0"]);
        assert!(e.contains(&url) && e.contains("not a Zarr array"), "{e}");
    }
}

/// zarr-python (through obstore) and chunkyard on the same server, both
/// ways.
#[cfg(feature = "interop")]
mod interop {
    use super::fresh;
    use chunkyard::{ArrayOptions, Codec};

    /// Python with zarr opening `url` through obstore's S3 store, which
    /// reads the same AWS_* variables. The script ends with `os._exit`:
    /// obstore's runtime sometimes aborts the interpreter's shutdown
    /// (SIGABRT after the script's last line ran).
    pub(super) fn zpython(url: &str, code: &str) -> String {
        let (bucket, prefix) = url.strip_prefix("s3://").unwrap().split_once('/').unwrap();
        let script = format!(
            "import warnings; warnings.filterwarnings('ignore')\n\
             import os, numpy as np, zarr, numcodecs.zarr3\n\
             from obstore.store import S3Store\n\
             from zarr.storage import ObjectStore\n\
             s = S3Store({bucket:?}, prefix={prefix:?}, endpoint=os.environ['AWS_ENDPOINT_URL'],\n\
                 client_options={{'allow_http': True}}, virtual_hosted_style_request=False)\n\
             store = ObjectStore(s)\n{code}\n\
             import sys; sys.stdout.flush(); os._exit(0)\n"
        );
        crate::common::python_with(&["numpy", "zarr", "obstore"], &script, &[])
    }

    #[test]
    fn zarr_python_reads_what_chunkyard_wrote() {
        for codec in [Codec::None, Codec::Lz4, Codec::Gzip { level: 5 }] {
            let url = fresh("w.zarr");
            let a = chunkyard::create::<i32>(
                &url,
                ArrayOptions::new([7, 9])
                    .chunks([3, 4])
                    .codec(codec)
                    .fill_value(-1),
            )
            .unwrap();
            let data = ndarray::Array2::from_shape_fn((5, 9), |(i, j)| (i * 9 + j) as i32);
            a.write(ndarray::s![0..5, ..], data.view()).unwrap();
            a.flush().unwrap();
            let out = zpython(
                &url,
                "a = zarr.open_array(store, mode='r')\n\
                 want = np.full((7, 9), -1, 'i4'); want[:5] = np.arange(45).reshape(5, 9)\n\
                 assert a.dtype == np.int32 and a.shape == (7, 9), (a.dtype, a.shape)\n\
                 assert (a[...] == want).all(), a[...]\n\
                 print('ok')",
            );
            assert_eq!(out.trim(), "ok", "{codec:?}");
        }
    }

    #[test]
    fn chunkyard_reads_what_zarr_python_wrote() {
        let url = fresh("z.zarr");
        zpython(
            &url,
            "a = zarr.create_array(store, shape=(6, 5), chunks=(4, 2), dtype='f8', fill_value=0.5)\n\
             a[1:6, :4] = np.arange(20, dtype='f8').reshape(5, 4)",
        );
        let a = chunkyard::open::<f64>(&url).unwrap();
        let got = a.read(ndarray::s![.., ..]).unwrap();
        for i in 0..6 {
            for j in 0..5 {
                let want = if i >= 1 && j < 4 {
                    ((i - 1) * 4 + j) as f64
                } else {
                    0.5
                };
                assert_eq!(got[[i, j]], want, "[{i}, {j}]");
            }
        }
        // And chunkyard's write into it is what zarr-python then sees.
        a.write(ndarray::s![0, ..], ndarray::arr1(&[9.0; 5]).view())
            .unwrap();
        a.flush().unwrap();
        let out = zpython(
            &url,
            "a = zarr.open_array(store, mode='r'); assert (a[0] == 9).all(), a[0]; print(a[5, 3])",
        );
        assert_eq!(out.trim(), "19.0");
    }
}
