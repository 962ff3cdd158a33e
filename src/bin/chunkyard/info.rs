//! `chunkyard info`: an array's dtype, shape, chunks, sizes on disk and in
//! memory (or the datasets of an HDF5 file), as text or JSON.

use std::path::Path;

use chunkyard::format_bytes;
use chunkyard::{ChunkCache, Result};

use crate::args::open_read;
use crate::print::{fill_text, json_str, tuple};

/// `chunkyard info PATH [--json]`.
pub(crate) fn run(path: &Path, json: bool, cache: ChunkCache) -> Result<()> {
    #[cfg(feature = "hdf5")]
    if let Some((file, None)) = chunkyard::split_hdf5_path(path) {
        return list_hdf5(&file, json);
    }
    let a = open_read(path, cache)?;
    let report = a.memory_report();
    // What opening cost this process: metadata only, whatever the size.
    let rss = crate::procmem::Rss::now();
    let store = a.store();
    let labels = store.labels();
    let attrs = labels
        .as_ref()
        .map_or_else(String::new, |l| l.attributes.clone());
    let attrs = if attrs.is_empty() {
        "{}".to_string()
    } else {
        attrs
    };
    let names = labels.as_ref().and_then(|l| l.dimension_names.clone());
    let dropped = labels.map(|l| l.dropped).unwrap_or_default();
    let grid_chunks: u64 = a
        .shape()
        .iter()
        .zip(a.chunks())
        .map(|(&n, &c)| n.div_ceil(c))
        .product();
    if json {
        let list = |v: &[u64]| {
            format!(
                "[{}]",
                v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            )
        };
        println!(
            "{{\"path\": {}, \"format\": {}, \"layout\": {}, \"dtype\": {}, \"shape\": {}, \
             \"chunks\": {}, \"num_chunks\": {}, \"fill_value\": {}, \"nbytes\": {}, \
             \"stored_bytes\": {}, \"resident_anon_bytes\": {}, \"resident_file_bytes\": {}, \
             \"cache_resident_bytes\": {}, \"cache_budget_bytes\": {}, \
             \"dimension_names\": {}, \"attributes\": {}, \"attributes_dropped\": [{}]}}",
            json_str(&path.display().to_string()),
            json_str(store.backend()),
            json_str(&store.describe()),
            json_str(a.dtype().name()),
            list(&a.shape()),
            list(a.chunks()),
            grid_chunks,
            json_str(&fill_text(&a)),
            a.nbytes(),
            report
                .stored_bytes
                .map_or_else(|| "null".to_string(), |b| b.to_string()),
            rss.map_or_else(|| "null".to_string(), |r| r.anon.to_string()),
            rss.map_or_else(|| "null".to_string(), |r| r.file.to_string()),
            report.resident_bytes,
            report.cache_budget_bytes,
            names.as_ref().map_or_else(
                || "null".to_string(),
                |n| format!(
                    "[{}]",
                    n.iter()
                        .map(|x| x.as_deref().map_or_else(|| "null".to_string(), json_str))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            ),
            attrs,
            dropped
                .iter()
                .map(|d| json_str(d))
                .collect::<Vec<_>>()
                .join(", "),
        );
    } else {
        println!("path:        {}", path.display());
        println!("format:      {}", store.describe());
        println!("dtype:       {}", a.dtype());
        println!("shape:       {}", tuple(&a.shape()));
        println!("chunks:      {} ({grid_chunks} chunks)", tuple(a.chunks()));
        println!("fill value:  {}", fill_text(&a));
        if let Some(n) = &names {
            let n: Vec<&str> = n.iter().map(|x| x.as_deref().unwrap_or("-")).collect();
            println!("dimensions:  ({})", n.join(", "));
        }
        if attrs != "{}" {
            println!("attributes:  {attrs}");
        }
        for d in &dropped {
            println!("unread:      {d}");
        }
        println!(
            "logical:     {} ({} bytes, numpy nbytes)",
            format_bytes(a.nbytes()),
            a.nbytes()
        );
        match report.stored_bytes {
            Some(b) if a.nbytes() > 0 => println!(
                "on disk:     {} ({b} bytes, {:.2}x logical)",
                format_bytes(b),
                b as f64 / a.nbytes() as f64
            ),
            Some(b) => println!("on disk:     {} ({b} bytes)", format_bytes(b)),
            None => println!("on disk:     unknown"),
        }
        match rss {
            Some(r) => println!(
                "resident:    {} in this process after opening ({} anonymous, {} file-backed); \
                 {} of chunks cached, budget {}",
                format_bytes(r.anon + r.file + r.shmem),
                format_bytes(r.anon),
                format_bytes(r.file),
                format_bytes(report.resident_bytes),
                format_bytes(report.cache_budget_bytes)
            ),
            None => println!(
                "resident:    {} of chunks cached, budget {}",
                format_bytes(report.resident_bytes),
                format_bytes(report.cache_budget_bytes)
            ),
        }
    }
    Ok(())
}

/// `info file.h5` without a dataset: one line (or JSON object) per dataset.
#[cfg(feature = "hdf5")]
fn list_hdf5(file: &Path, json: bool) -> Result<()> {
    let list = chunkyard::store::list_datasets(file)?;
    let dtype = |d: &chunkyard::store::DatasetSummary| match &d.dtype {
        Ok(t) => t.name().to_string(),
        Err(other) => format!("unsupported: {other}"),
    };
    let nums = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    if json {
        let items: Vec<String> = list
            .iter()
            .map(|d| {
                format!(
                    "{{\"name\": {}, \"dtype\": {}, \"shape\": [{}], \"chunks\": {}}}",
                    json_str(&d.name),
                    json_str(&dtype(d)),
                    nums(&d.shape),
                    d.chunks
                        .as_ref()
                        .map_or_else(|| "null".to_string(), |c| format!("[{}]", nums(c)))
                )
            })
            .collect();
        println!(
            "{{\"path\": {}, \"format\": \"hdf5\", \"datasets\": [{}]}}",
            json_str(&file.display().to_string()),
            items.join(", ")
        );
        return Ok(());
    }
    println!("{}: {} datasets", file.display(), list.len());
    for d in &list {
        let chunks = d.chunks.as_ref().map_or_else(
            || "contiguous".to_string(),
            |c| format!("chunks {}", tuple(c)),
        );
        println!("  {}  {}  {}  {chunks}", d.name, dtype(d), tuple(&d.shape));
    }
    Ok(())
}
