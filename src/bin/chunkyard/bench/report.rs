//! What `chunkyard bench` prints: tables of the build and read figures,
//! or one JSON object per format.

use std::time::Duration;

use chunkyard::Codec;
use chunkyard::format_bytes;

use super::build::{BuildReport, GeneratorReport};
use super::reads::{RANDOM_TILES, ReadReport, WarmCold};
use crate::procmem::MemoryTrace;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn warm_cold_json(w: Option<WarmCold>) -> serde_json::Value {
    match w {
        None => serde_json::Value::Null,
        Some(w) => serde_json::json!({"warm": w.warm, "cold": w.cold}),
    }
}

fn reads_json(r: &ReadReport) -> serde_json::Value {
    serde_json::json!({
        "element_cached_us": r.element_cached_us,
        "element_us": warm_cold_json(r.element_us),
        "tile_64x64_us": warm_cold_json(r.tile_us),
        "tile_64x64_floor_us": r.tile_floor.map(|f| serde_json::json!({
            "bounded": f.bounded_us,
            "unbounded": f.unbounded_us,
            "unbounded_resident_bytes": f.unbounded_resident,
        })),
        "sum_gb_per_s": warm_cold_json(r.sum_gb_per_s),
        "sum": r.sum_value,
        "strided_3_7_k_ms": warm_cold_json(r.strided_a_ms),
        "strided_k_2_2_ms": warm_cold_json(r.strided_b_ms),
        "peak_rss_bytes": r.memory.peak_total,
        "peak_anon_bytes": r.memory.peak_anon,
        "peak_file_bytes": r.memory.peak_file,
    })
}

pub(crate) fn report_json(
    r: &BuildReport,
    g: &GeneratorReport,
    reads: Option<&ReadReport>,
) -> serde_json::Value {
    let gb = r.logical_bytes as f64 / 1e9;
    serde_json::json!({
        "reads": reads.map(reads_json),
        "format": r.format,
        "elapsed_s": secs(r.elapsed),
        "generator_floor_s": secs(g.elapsed),
        "elapsed_minus_generator_s": secs(r.elapsed.saturating_sub(g.elapsed)),
        "storing_s": secs(r.storing),
        "waiting_for_generator_s": secs(r.waiting),
        "storing_gb_per_s": gb / secs(r.storing).max(1e-9),
        "end_to_end_gb_per_s": gb / secs(r.elapsed).max(1e-9),
        "logical_bytes": r.logical_bytes,
        "file_bytes": r.file_bytes,
        "codec": r.codec.to_string(),
        "compression_ratio": r.logical_bytes as f64 / r.file_bytes.max(1) as f64,
        "peak_rss_bytes": r.memory.peak_total,
        "peak_anon_bytes": r.memory.peak_anon,
        "peak_file_bytes": r.memory.peak_file,
        "baseline_rss_bytes": r.baseline.total(),
        "generator_peak_rss_bytes": g.memory.peak_total,
        "cache_budget_bytes": r.cache.budget_bytes,
        "evictions": r.cache.evictions,
        "writebacks": r.cache.writebacks,
        "threads": rayon::current_num_threads(),
    })
}

fn peak_text(m: &MemoryTrace) -> String {
    format!(
        "{} ({} / {})",
        format_bytes(m.peak_total),
        format_bytes(m.peak_anon),
        format_bytes(m.peak_file)
    )
}

pub(crate) fn print_table(reports: &[(BuildReport, Option<ReadReport>)], g: &GeneratorReport) {
    println!(
        "{:<15} | {:>12} | {:>18} | {:>36} | {:>12}",
        "Example",
        "Elapsed time",
        "Calculated storage",
        "Peak memory (anon / file)",
        "File storage"
    );
    println!("{}", "-".repeat(105));
    println!(
        "{:<15} | {:>10.2} s | {:>18} | {:>36} | {:>12}",
        "generator alone",
        secs(g.elapsed),
        "-",
        peak_text(&g.memory),
        "-"
    );
    for (r, _) in reports {
        println!(
            "{:<15} | {:>10.2} s | {:>15.2} GB | {:>36} | {:>9.2} GB",
            r.format,
            secs(r.elapsed),
            r.logical_bytes as f64 / 1e9,
            peak_text(&r.memory),
            r.file_bytes as f64 / 1e9,
        );
    }
    for r in reports
        .iter()
        .map(|(r, _)| r)
        .filter(|r| r.codec != Codec::None)
    {
        println!(
            "{}: {} compresses the data {:.3}x (calculated storage / file storage)",
            r.format,
            r.codec,
            r.logical_bytes as f64 / r.file_bytes.max(1) as f64
        );
    }
    println!();
    println!(
        "{:<15} | {:>12} | {:>16} | {:>12} | {:>12} | {:>12}",
        "Where the time went", "elapsed", "minus generator", "storing", "waiting", "storing rate"
    );
    println!("{}", "-".repeat(95));
    for (r, _) in reports {
        println!(
            "{:<19} | {:>10.2} s | {:>14.2} s | {:>10.2} s | {:>10.2} s | {:>7.2} GB/s",
            r.format,
            secs(r.elapsed),
            secs(r.elapsed.saturating_sub(g.elapsed)),
            secs(r.storing),
            secs(r.waiting),
            r.logical_bytes as f64 / 1e9 / secs(r.storing).max(1e-9),
        );
    }
    if let Some((r, _)) = reports.first() {
        println!(
            "(storing: the storing thread's time inside write() and the final flush(), while the \
             generator runs beside it; waiting: its time waiting for the next plane; minus \
             generator: elapsed minus the generator-alone run. Peak memory is the whole \
             process's resident set, {} before the build; 1 GB = 1e9 bytes as in the article.)",
            format_bytes(r.baseline.total())
        );
    }
    print_reads(reports);
}

fn print_reads(reports: &[(BuildReport, Option<ReadReport>)]) {
    if reports.iter().all(|(_, w)| w.is_none()) {
        return;
    }
    let wc = |w: Option<WarmCold>, digits: usize| match w {
        None => "-".to_string(),
        Some(w) => match w.cold {
            Some(c) => format!("{:.*} / {:.*}", digits, w.warm, digits, c),
            None => format!("{:.*} / -", digits, w.warm),
        },
    };
    println!();
    println!(
        "{:<8} | {:>9} | {:>15} | {:>15} | {:>13} | {:>15} | {:>15} | {:>26}",
        "Reads",
        "element",
        "element",
        "64x64 tile",
        "sum",
        "a[::3,::7,5]",
        "a[50,::2,::2]",
        "peak memory (anon / file)"
    );
    println!(
        "{:<8} | {:>9} | {:>15} | {:>15} | {:>13} | {:>15} | {:>15} | {:>26}",
        "",
        "cached µs",
        "warm / cold µs",
        "warm / cold µs",
        "warm / cold GB/s",
        "warm / cold ms",
        "warm / cold ms",
        ""
    );
    println!("{}", "-".repeat(140));
    for (r, w) in reports {
        let Some(w) = w else { continue };
        println!(
            "{:<8} | {:>9} | {:>15} | {:>15} | {:>13} | {:>15} | {:>15} | {:>26}",
            r.format,
            w.element_cached_us
                .map_or("-".into(), |v| format!("{v:.3}")),
            wc(w.element_us, 2),
            wc(w.tile_us, 1),
            wc(w.sum_gb_per_s, 2),
            wc(w.strided_a_ms, 1),
            wc(w.strided_b_ms, 1),
            peak_text(&w.memory),
        );
    }
    for (r, w) in reports {
        if let Some(f) = w.as_ref().and_then(|w| w.tile_floor) {
            println!(
                "tile floor ({}, warm): {} other random tiles copied out of memmap2 maps of {} \
                 without chunkyard: {:.1} µs with the maps released every 32 MiB as chunkyard \
                 does, {:.1} µs with every page kept mapped ({} MiB resident)",
                r.format,
                RANDOM_TILES,
                if r.format == "zarr" {
                    "its chunk files"
                } else {
                    "the file"
                },
                f.bounded_us,
                f.unbounded_us,
                f.unbounded_resident >> 20
            );
        }
    }
    println!(
        "(each pass reopens the file with a fresh cache of the same budget; cold: the file's pages \
         dropped from the OS page cache first (posix_fadvise DONTNEED), warm: the same pass \
         after the pages were dropped and the whole file read once into the page cache; element/tile reads are not in chunkyard's cache, cached: elements of \
         one plane read into it first; 20,000 elements, 2,000 tiles at random)"
    );
}
