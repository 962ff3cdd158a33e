//! `chunkyard bench`: the JSON report, the read workloads, the memory plot
//! and clean-up, on a tiny volume.

mod common;

use common::{fails, ok};

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
        sums.push(r["sum"].as_f64().unwrap());
    }
    // Same seed, same values, whatever the format.
    assert_eq!(sums[0], sums[1]);
    // The sum is the one of the generated values.
    let mut plane = vec![0f32; 96 * 80];
    let mut expect = 0f64;
    for z in 0..6 {
        chunkyard::bench::fill_plane(42, z, 80, &mut plane);
        expect += plane.iter().map(|&x| x as f64).sum::<f64>();
    }
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
    let out = ok(&[
        "bench",
        "--depth",
        "3",
        "--rows",
        "64",
        "--cols",
        "64",
        "--dir",
        d,
        "--formats",
        "npy",
        "--keep",
    ]);
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

#[test]
fn unknown_workload_is_an_error() {
    let err = fails(&["bench", "--depth", "1", "--workload", "random,bogus"]);
    assert!(err.contains("unknown workload"), "{err}");
}
