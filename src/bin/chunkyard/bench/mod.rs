//! `chunkyard bench`: builds a depth x rows x cols `f32` volume plane by
//! plane in each format, runs read workloads on it, and reports time,
//! memory and size (a table, JSON lines, an SVG plot).
//!
//! The generator ([`plane`]), the build ([`build`]), the reads
//! ([`reads`], with the page cache handled in [`pagecache`] and the floor
//! under the tile reads in [`floor`]), and the output ([`report`],
//! [`plot`]) each have their module; this one parses the formats and runs
//! them in order.

pub(crate) mod build;
pub(crate) mod floor;
pub(crate) mod pagecache;
pub(crate) mod plane;
mod plot;
pub(crate) mod reads;
mod report;

use std::path::PathBuf;

use chunkyard::format_bytes;
use chunkyard::{Codec, Error, Format, Result};

pub(crate) use build::BuildOptions;
use build::{build, generate_only, remove_built};
use plot::plot_memory;
use reads::{Workloads, run_workloads, workload_steps};
use report::{print_table, report_json};

use crate::progress::progress_bar;

/// What `bench` builds unless told otherwise: every format built in.
#[cfg(not(feature = "hdf5"))]
const DEFAULT_FORMATS: &str = "npy,zarr";
#[cfg(feature = "hdf5")]
const DEFAULT_FORMATS: &str = "npy,zarr,hdf5";

fn parse_formats(formats: &str) -> Result<Vec<Format>> {
    formats
        .split(',')
        .map(|f| match f.trim() {
            "npy" => Ok(Format::Npy),
            "zarr" => Ok(Format::Zarr),
            #[cfg(feature = "hdf5")]
            "hdf5" | "h5" => Ok(Format::Hdf5),
            #[allow(unreachable_patterns)] // hdf5 and h5 when built without it
            "hdf5" | "h5" => Err(Error::Unsupported(format!(
                "format {f:?} is not built into this version (available: {DEFAULT_FORMATS})"
            ))),
            other => Err(Error::invalid(format!(
                "unknown format {other:?} (available: {DEFAULT_FORMATS})"
            ))),
        })
        .collect()
}

/// The formats `bench` builds: those named, or every format built in
/// (without npy when compressing, since .npy files cannot be; Zarr alone
/// in object storage, `object`). A named npy with a codec, or a named
/// format other than Zarr in object storage, is an error, not a silent
/// skip.
pub(crate) fn bench_formats(
    named: Option<&str>,
    codec: Codec,
    object: bool,
) -> Result<Vec<Format>> {
    let compressing = codec != Codec::None;
    let formats = match named {
        Some(f) => parse_formats(f)?,
        None if object => vec![Format::Zarr],
        None => parse_formats(DEFAULT_FORMATS)?
            .into_iter()
            .filter(|&f| !(compressing && f == Format::Npy))
            .collect(),
    };
    if object && formats.iter().any(|&f| f != Format::Zarr) {
        return Err(Error::Unsupported(
            "--dir s3://...: object storage holds Zarr arrays only; use --formats zarr".into(),
        ));
    }
    if compressing && formats.contains(&Format::Npy) {
        return Err(Error::invalid(format!(
            ".npy files cannot be compressed (codec {codec}): leave npy out of --formats"
        )));
    }
    Ok(formats)
}

/// How `chunkyard bench` runs, besides what it builds.
pub(crate) struct BenchArgs {
    pub(crate) formats: Vec<Format>,
    pub(crate) workloads: Workloads,
    pub(crate) keep: bool,
    pub(crate) json: bool,
    pub(crate) plot: Option<PathBuf>,
}

/// Runs `chunkyard bench`: the generator alone, then a build (and the read
/// workloads) per format, then the report.
pub(crate) fn run(opts: BuildOptions, args: &BenchArgs) -> Result<()> {
    let json = args.json;
    let logical = opts.depth * opts.rows * opts.cols * 4;
    if !json {
        println!(
            "chunkyard bench: {} x {} x {} float32 ({}), chunks (1, {}, {}), codec {}, cache {}, \
             {} threads",
            opts.depth,
            opts.rows,
            opts.cols,
            format_bytes(logical),
            opts.rows,
            opts.cols,
            opts.codec,
            format_bytes(opts.cache.budget() as u64),
            rayon::current_num_threads(),
        );
        if crate::args::is_object_url(&opts.dir) {
            println!(
                "object storage at {}: no page cache to drop, so no cold passes (every pass \
                 reads from the server) and no tile floor",
                opts.dir.display()
            );
        }
    }
    let bar = progress_bar(opts.depth, "generator alone");
    let generator = generate_only(&opts, &|n| bar.inc(n));
    bar.finish_and_clear();
    let generator = generator?;
    let mut reports = Vec::new();
    for &f in &args.formats {
        let name = format!("{f:?}").to_lowercase();
        let bar = progress_bar(opts.depth, &name);
        let r = build(f, &opts, &|n| bar.inc(n));
        bar.finish_and_clear();
        let r = r?;
        let reads = if args.workloads.none() {
            None
        } else {
            let bar = progress_bar(workload_steps(args.workloads), &format!("{name} reads"));
            let w = run_workloads(&r, &opts, args.workloads, &|n| bar.inc(n));
            bar.finish_and_clear();
            Some(w)
        };
        // Delete the file even when a read workload failed.
        if !args.keep {
            remove_built(&r.path)?;
        }
        let reads = reads.transpose()?;
        if json {
            println!("{}", report_json(&r, &generator, reads.as_ref()));
        }
        reports.push((r, reads));
    }
    if !json {
        print_table(&reports, &generator);
    }
    if let Some(svg) = &args.plot {
        plot_memory(svg, &reports, &generator)?;
        if !json {
            println!("memory plot: {}", svg.display());
        }
    }
    Ok(())
}
