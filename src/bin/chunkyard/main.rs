//! `chunkyard`: look inside, convert, slice and reduce arrays larger than
//! memory from the shell. A thin layer over the library: parse, call,
//! print. Every error is one line on stderr and a non-zero exit.
//!
//! This file holds the command line (clap) and the dispatch; each command
//! lives in its own module, the `bench` workload under [`bench`].

mod args;
mod bench;
mod convert;
mod create;
mod get;
mod info;
mod print;
mod procmem;
mod progress;
mod put;
mod reduce;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use chunkyard::parse_size;
use chunkyard::{ChunkCache, Codec, Error, Result};

use bench::{BenchArgs, BuildOptions, bench_formats};

/// What every command's PATH may name, after `chunkyard --help`.
#[cfg(feature = "hdf5")]
const ARRAYS: &str = "An array is a .npy file, a .zarr directory, or a dataset of an HDF5 \
     file (file.h5:/group/dataset). Opening one reads only its metadata; commands read and \
     write chunks as they need them, through a cache of --cache bytes.";
#[cfg(not(feature = "hdf5"))]
const ARRAYS: &str = "An array is a .npy file, a .zarr directory, or a dataset of an HDF5 \
     file (file.h5:/group/dataset; HDF5 needs a build with --features hdf5). Opening one \
     reads only its metadata; commands read and write chunks as they need them, through a \
     cache of --cache bytes.";

/// Arrays larger than memory in .npy, Zarr and HDF5 files: create, inspect,
/// slice, convert, reduce and benchmark them a chunk at a time, through a
/// byte-budgeted chunk cache.
#[derive(Parser, Debug)]
#[command(
    name = "chunkyard",
    version,
    about,
    max_term_width = 100,
    after_help = ARRAYS
)]
struct Cli {
    /// Chunk cache budget, like 64MiB or 1GiB.
    #[arg(long, global = true, default_value = "256MiB", value_name = "SIZE")]
    cache: String,
    /// Writer threads that write whole chunks back in the background while
    /// the command goes on (0: off; see ChunkCache::with_write_behind).
    #[arg(long, global = true, default_value_t = 0, value_name = "N")]
    write_behind: usize,
    /// An option of the S3 client for s3:// paths, over the AWS_*
    /// variables; repeat it for several: endpoint_url, region, key,
    /// secret, token, allow_http, timeout (seconds), retries. Secrets on
    /// a command line are visible to other users (ps): prefer the
    /// variables for them.
    #[arg(long, global = true, value_name = "KEY=VALUE")]
    s3_option: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OrderArg {
    C,
    F,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum EndianArg {
    Little,
    Big,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create an array (a sparse file: no data is written).
    Create(CreateArgs),
    /// Show dtype, shape, chunks and sizes.
    Info {
        /// The array: a .npy file, a .zarr directory (or s3://bucket/prefix/name.zarr), or file.h5:/dataset
        /// (file.h5 alone: its datasets).
        path: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print a selection, or write it to a .npy file.
    Get {
        /// The array: a .npy file, a .zarr directory (or s3://bucket/prefix/name.zarr), or file.h5:/dataset.
        path: PathBuf,
        /// NumPy selection: 499,1999,1999 or 10,0:64,::2 or ...,3.
        #[arg(allow_hyphen_values = true)]
        selection: String,
        /// Print as JSON (nested lists).
        #[arg(long, conflicts_with = "out")]
        json: bool,
        /// Write the selection to this .npy file instead (streams).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write into a selection from a .npy file or a scalar, or append rows.
    Put {
        /// The array: a .npy file, a .zarr directory (or s3://bucket/prefix/name.zarr), or file.h5:/dataset.
        path: PathBuf,
        /// NumPy selection (not with --append).
        #[arg(
            allow_hyphen_values = true,
            required_unless_present = "append",
            conflicts_with = "append"
        )]
        selection: Option<String>,
        /// A .npy file (or any array) whose shape is the selection's; with
        /// --append, the rows to add.
        #[arg(long, required_unless_present = "value", conflicts_with = "value")]
        from: Option<PathBuf>,
        /// A scalar written to every selected element.
        #[arg(long, allow_hyphen_values = true)]
        value: Option<String>,
        /// Grow the first axis by the rows of --from and write them there.
        #[arg(long, requires = "from")]
        append: bool,
    },
    /// Copy an array into a new file, chunk by chunk.
    Convert {
        /// The array to copy.
        src: PathBuf,
        /// The copy, its format from the extension: .npy, .zarr, .h5:/dataset.
        dst: PathBuf,
        /// Element type of the copy (NumPy astype semantics).
        #[arg(long)]
        dtype: Option<String>,
        /// Chunk shape of the copy (with --shards: of the inner chunks).
        #[arg(long)]
        chunks: Option<String>,
        /// Zarr shard shape of the copy, a multiple of --chunks: each file
        /// is a shard of inner chunks (the cache's unit is the shard).
        #[arg(long)]
        shards: Option<String>,
        /// Compression of the copy: none, lz4, zstd[:LEVEL], gzip[:LEVEL].
        #[arg(long, default_value = "none")]
        codec: String,
        /// Replace an existing destination.
        #[arg(long)]
        overwrite: bool,
    },
    /// Sum, mean, min, max or count of an array or a selection, whole or
    /// along one axis (nansum, nanmean, nanmin, nanmax skip NaN).
    Reduce {
        /// The array: a .npy file, a .zarr directory (or s3://bucket/prefix/name.zarr), or file.h5:/dataset.
        path: PathBuf,
        /// sum, nansum, mean, nanmean, min, nanmin, max, nanmax or count.
        op: String,
        /// NumPy selection (default: everything).
        #[arg(allow_hyphen_values = true)]
        selection: Option<String>,
        /// Reduce along this axis of the selection; the result is an array.
        #[arg(long)]
        axis: Option<usize>,
        /// Write an array result to this .npy file instead of printing it.
        #[arg(long, requires = "axis")]
        out: Option<PathBuf>,
    },
    /// Build a depth x rows x cols f32 volume plane by plane in each format,
    /// time read workloads on it, and report time, memory and size.
    Bench {
        /// Planes of the volume (axis 0), one chunk each.
        #[arg(long, default_value_t = 500)]
        depth: u64,
        /// Rows per plane.
        #[arg(long, default_value_t = 2000)]
        rows: u64,
        /// Columns per plane.
        #[arg(long, default_value_t = 2000)]
        cols: u64,
        /// Formats to build, comma-separated (npy, zarr, hdf5) [default:
        /// every format built in; with --codec, those that compress].
        #[arg(long)]
        formats: Option<String>,
        /// Chunk compression: none, lz4, zstd[:LEVEL], gzip[:LEVEL] (Zarr
        /// and HDF5; .npy files cannot be compressed).
        #[arg(long, default_value = "none")]
        codec: String,
        /// Folder for the files, or an object storage prefix
        /// (s3://bucket/prefix: Zarr only, removed after unless --keep).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Keep the files.
        #[arg(long)]
        keep: bool,
        /// Seed of the value generator.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Print one JSON object per format (and no table).
        #[arg(long)]
        json: bool,
        /// Read workloads on each built file: build (none), random, scan,
        /// strided, all, or a comma-separated list.
        #[arg(long, default_value = "build")]
        workload: String,
        /// Draw resident memory over time, every format in one chart, into
        /// this SVG file.
        #[arg(long, value_name = "SVG")]
        plot: Option<PathBuf>,
    },
}

/// `chunkyard create`'s arguments.
#[derive(Args, Debug)]
pub(crate) struct CreateArgs {
    /// Path of the new array: *.npy, a *.zarr directory, or file.h5:/dataset.
    pub(crate) path: PathBuf,
    /// Shape, comma-separated: 500,2000,2000.
    #[arg(long)]
    pub(crate) shape: String,
    /// Element type: bool, i8..i64, u8..u64, f32, f64 (or NumPy names).
    #[arg(long)]
    pub(crate) dtype: String,
    /// Chunk shape (the unit of caching), comma-separated; with --shards,
    /// the inner chunk shape.
    #[arg(long)]
    pub(crate) chunks: Option<String>,
    /// Zarr shard shape, a multiple of --chunks: each file is a shard of
    /// inner chunks, and the cache's unit is the shard.
    #[arg(long)]
    pub(crate) shards: Option<String>,
    /// Compression: none, lz4, zstd[:LEVEL], gzip[:LEVEL] (npy: none).
    #[arg(long, default_value = "none")]
    pub(crate) codec: String,
    /// Value never-written elements read as (npy: only 0).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) fill: Option<String>,
    /// Element order in the file.
    #[arg(long, value_enum, default_value = "c")]
    pub(crate) order: OrderArg,
    /// Byte order in the file.
    #[arg(long, value_enum, default_value = "little")]
    pub(crate) endian: EndianArg,
    /// Replace an existing file.
    #[arg(long)]
    pub(crate) overwrite: bool,
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `println!` to a closed pipe panics
    // (`chunkyard info big.zarr | head`). A command-line tool ends there
    // as `cat` does: killed by SIGPIPE, quietly.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_DFL installs no
    // handler, and runs before any thread of this process starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chunkyard: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    args::set_s3_options(&cli.s3_option)?;
    let budget = parse_size(&cli.cache)?;
    let budget = usize::try_from(budget).unwrap_or(usize::MAX);
    if cli.write_behind > 64 {
        return Err(Error::invalid(format!(
            "--write-behind {}: at most 64 writer threads",
            cli.write_behind
        )));
    }
    let cache = match cli.write_behind {
        0 => ChunkCache::new(budget),
        n => ChunkCache::with_write_behind(budget, n),
    };
    match cli.command {
        Command::Create(args) => create::run(args, cache),
        Command::Info { path, json } => info::run(&path, json, cache),
        Command::Get {
            path,
            selection,
            json,
            out,
        } => get::run(&path, &selection, json, out.as_deref(), cache),
        Command::Put {
            path,
            selection,
            from,
            value: _,
            append: true,
        } => match (selection, from) {
            (None, Some(from)) => put::append(&path, &from, cache),
            _ => Err(Error::invalid(
                "put --append takes --from FILE and no selection",
            )),
        },
        Command::Put {
            path,
            selection,
            from,
            value,
            append: false,
        } => put::run(
            &path,
            selection.as_deref().unwrap_or("..."),
            from.as_deref(),
            value.as_deref(),
            cache,
        ),
        Command::Convert {
            src,
            dst,
            dtype,
            chunks,
            shards,
            codec,
            overwrite,
        } => convert::run(
            &src,
            &dst,
            dtype,
            (chunks, shards),
            codec.parse()?,
            overwrite,
            cache,
        ),
        Command::Reduce {
            path,
            op,
            selection,
            axis,
            out,
        } => reduce::run(
            &path,
            &op,
            selection.as_deref(),
            axis,
            out.as_deref(),
            cache,
        ),
        Command::Bench {
            depth,
            rows,
            cols,
            formats,
            codec,
            dir,
            keep,
            seed,
            json,
            workload,
            plot,
        } => {
            let codec: Codec = codec.parse()?;
            let formats = bench_formats(formats.as_deref(), codec, args::is_object_url(&dir))?;
            bench::run(
                BuildOptions {
                    depth,
                    rows,
                    cols,
                    dir,
                    cache,
                    seed,
                    codec,
                },
                &BenchArgs {
                    formats,
                    workloads: workload.parse()?,
                    keep,
                    json,
                    plot,
                },
            )
        }
    }
}
