//! `chunkyard bench`: the JSON report, the read workloads, the memory plot
//! and clean-up, on a tiny volume.

use crate::common::{fails, ok};

// The bench's value generator, from the binary's sources.
#[path = "../../src/bin/chunkyard/bench/plane.rs"]
mod plane;

#[test]
fn json_reports_every_format_with_reads_and_removes_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let svg = dir.path().join("mem.svg");
    let out = ok(&[
        "--cache",
        "1MiB",
        "bench",
        "--depth",
        "6",
        "--rows",
        "96",
        "--cols",
        "80",
        "--dir",
        d,
        "--formats",
        "npy,zarr",
        "--workload",
        "all",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    let mut sums = Vec::new();
    for (v, format) in lines.iter().zip(["npy", "zarr"]) {
        assert_eq!(v["format"], format);
        assert_eq!(v["logical_bytes"], 6 * 96 * 80 * 4);
        let elapsed = v["elapsed_s"].as_f64().unwrap();
        let storing = v["storing_s"].as_f64().unwrap();
        let waiting = v["waiting_for_generator_s"].as_f64().unwrap();
        assert!(storing > 0.0 && storing + waiting <= elapsed, "{v}");
        assert!(v["generator_floor_s"].as_f64().unwrap() > 0.0);
        assert!(v["peak_anon_bytes"].as_u64().unwrap() > 0);
        assert!(v["peak_rss_bytes"].as_u64() >= v["peak_anon_bytes"].as_u64());
        let r = &v["reads"];
        for key in [
            "element_us",
            "tile_64x64_us",
            "sum_gb_per_s",
            "strided_3_7_k_ms",
            "strided_k_2_2_ms",
        ] {
            assert!(r[key]["warm"].as_f64().unwrap() > 0.0, "{key}: {r}");
            // Linux: the page cache can be dropped, so there is a cold figure.
            assert!(r[key]["cold"].as_f64().unwrap() > 0.0, "{key}: {r}");
        }
        assert!(r["element_cached_us"].as_f64().unwrap() > 0.0);
        // Raw planes (the npy file's, the Zarr array's chunk files): the
        // tile floor is measured on both, bounded and unbounded.
        let floor = &r["tile_64x64_floor_us"];
        assert!(floor["bounded"].as_f64().unwrap() > 0.0, "{format}: {r}");
        assert!(floor["unbounded"].as_f64().unwrap() > 0.0, "{format}: {r}");
        assert_eq!(v["codec"], "none");
        // Headers and metadata only: a little less than 1.
        let ratio = v["compression_ratio"].as_f64().unwrap();
        assert!(ratio > 0.9 && ratio <= 1.0, "{format}: {ratio}");
        sums.push(r["sum"].as_f64().unwrap());
    }
    // Same seed, same values, whatever the format.
    assert_eq!(sums[0], sums[1]);
    // The sum is the one of the generated values.
    let expect = generated_sum(6, 96, 80);
    assert!(
        (sums[0] - expect).abs() < 1e-6 * expect.abs().max(1.0),
        "{sums:?} vs {expect}"
    );
    // Nothing left behind but the plot.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, vec!["mem.svg".to_string()]);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..80.min(text.len())]);
    for label in [
        "generator alone",
        "npy build",
        "zarr build",
        "npy reads",
        "zarr reads",
    ] {
        assert!(text.contains(label), "plot has no {label:?}");
    }
}

#[test]
fn table_has_the_article_columns_and_keep_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = bench_small(d, 3, 64, &["--formats", "npy", "--keep"]);
    for col in [
        "Example",
        "Elapsed time",
        "Calculated storage",
        "Peak memory",
        "File storage",
        "generator alone",
        "storing rate",
    ] {
        assert!(out.contains(col), "no {col:?} in:\n{out}");
    }
    assert!(
        !out.contains("Reads"),
        "no read workload was asked for:\n{out}"
    );
    let kept: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(kept.len(), 1);
}

/// `chunkyard bench` on a `depth` x `side` x `side` volume in `dir`,
/// with `extra` arguments; its standard output.
fn bench_small(dir: &str, depth: u32, side: u32, extra: &[&str]) -> String {
    let (depth, side) = (depth.to_string(), side.to_string());
    let mut args = vec![
        "bench", "--depth", &depth, "--rows", &side, "--cols", &side, "--dir", dir,
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

/// The sum of the values the bench generates with its default seed.
fn generated_sum(depth: u64, rows: usize, cols: usize) -> f64 {
    let mut plane = vec![0f32; rows * cols];
    (0..depth)
        .map(|z| {
            plane::fill_plane(42, z, cols, &mut plane);
            plane.iter().map(|&x| x as f64).sum::<f64>()
        })
        .sum()
}

/// `--codec lz4` builds the formats that compress (not npy), states the
/// ratio, reads the same values back, and measures no tile floor: the
/// planes are not raw bytes in the files.
#[test]
fn codec_builds_compressed_formats_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = bench_small(
        d,
        3,
        64,
        &["--codec", "lz4", "--workload", "random,scan", "--json"],
    );
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let formats: Vec<&str> = lines
        .iter()
        .map(|v| v["format"].as_str().unwrap())
        .collect();
    let want: &[&str] = if cfg!(feature = "hdf5") {
        &["zarr", "h5"]
    } else {
        &["zarr"]
    };
    assert_eq!(formats, want, "{out}");
    let expect = generated_sum(3, 64, 64);
    for v in &lines {
        assert_eq!(v["codec"], "lz4");
        let (logical, file) = (
            v["logical_bytes"].as_f64().unwrap(),
            v["file_bytes"].as_f64().unwrap(),
        );
        let ratio = v["compression_ratio"].as_f64().unwrap();
        assert!((ratio - logical / file).abs() < 1e-9, "{v}");
        let r = &v["reads"];
        assert!(r["tile_64x64_us"]["warm"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["tile_64x64_floor_us"].is_null(), "{r}");
        let sum = r["sum"].as_f64().unwrap();
        assert!(
            (sum - expect).abs() < 1e-6 * expect.abs().max(1.0),
            "{sum} vs {expect}"
        );
    }
    // Table output names the codec and the ratio.
    let out = bench_small(d, 2, 32, &["--codec", "lz4", "--formats", "zarr"]);
    assert!(out.contains("codec lz4"), "{out}");
    assert!(out.contains("zarr: lz4 compresses the data"), "{out}");
    // npy named with a codec is refused, and nothing is built.
    let err = fails(&[
        "bench",
        "--depth",
        "1",
        "--dir",
        d,
        "--codec",
        "lz4",
        "--formats",
        "npy,zarr",
    ]);
    assert!(err.contains(".npy files cannot be compressed"), "{err}");
    let err = fails(&["bench", "--depth", "1", "--dir", d, "--codec", "lz5"]);
    assert!(err.contains("lz5"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn unknown_workload_is_an_error() {
    let err = fails(&["bench", "--depth", "1", "--workload", "random,bogus"]);
    assert!(err.contains("unknown workload"), "{err}");
}
