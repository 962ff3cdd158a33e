//! `chunkyard`: look inside, convert, slice and reduce arrays larger than
//! memory from the shell. A thin layer over the library: parse, call,
//! print. Every error is one line on stderr and a non-zero exit.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use chunkyard::bench::{
    BuildOptions, BuildReport, GeneratorReport, ReadReport, WarmCold, Workloads, build,
    generate_only, remove_built, run_workloads, workload_steps,
};
use chunkyard::open::{ArrayOptions, Format, OpenOptions};
use chunkyard::ops::copy_selection;
use chunkyard::reduce::{Reduction, reduce, reduce_axis, reduce_axis_steps};
use chunkyard::selection::{AxisSel, ResolvedSelection};
use chunkyard::store::Order;
use chunkyard::units::{format_bytes, parse_size};
use chunkyard::{ArrayHandle, ChunkCache, Codec, DType, Element, Endian, Error, Result, dispatch};

/// Out-of-core chunked arrays: .npy files larger than memory, a chunk at a
/// time.
#[derive(Parser, Debug)]
#[command(name = "chunkyard", version, about, max_term_width = 100)]
struct Cli {
    /// Chunk cache budget, like 64MiB or 1GiB.
    #[arg(long, global = true, default_value = "256MiB", value_name = "SIZE")]
    cache: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OrderArg {
    C,
    F,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EndianArg {
    Little,
    Big,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create an array (a sparse file: no data is written).
    Create {
        /// Path of the new array (*.npy, or a *.zarr directory).
        path: PathBuf,
        /// Shape, comma-separated: 500,2000,2000.
        #[arg(long)]
        shape: String,
        /// Element type: bool, i8..i64, u8..u64, f32, f64 (or NumPy names).
        #[arg(long)]
        dtype: String,
        /// Chunk shape (the unit of caching), comma-separated.
        #[arg(long)]
        chunks: Option<String>,
        /// Compression: none, lz4, zstd[:LEVEL], gzip[:LEVEL] (npy: none).
        #[arg(long, default_value = "none")]
        codec: String,
        /// Value never-written elements read as (npy: only 0).
        #[arg(long, allow_hyphen_values = true)]
        fill: Option<String>,
        /// Element order in the file.
        #[arg(long, value_enum, default_value = "c")]
        order: OrderArg,
        /// Byte order in the file.
        #[arg(long, value_enum, default_value = "little")]
        endian: EndianArg,
        /// Replace an existing file.
        #[arg(long)]
        overwrite: bool,
    },
    /// Show dtype, shape, chunks and sizes.
    Info {
        path: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print a selection, or write it to a .npy file.
    Get {
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
        src: PathBuf,
        dst: PathBuf,
        /// Element type of the copy (NumPy astype semantics).
        #[arg(long)]
        dtype: Option<String>,
        /// Chunk shape of the copy.
        #[arg(long)]
        chunks: Option<String>,
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
    /// Build a depth x rows x cols f32 volume plane by plane and report
    /// time, memory and size.
    Bench {
        #[arg(long, default_value_t = 500)]
        depth: u64,
        #[arg(long, default_value_t = 2000)]
        rows: u64,
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
        /// Folder for the files.
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
        #[arg(long)]
        plot: Option<PathBuf>,
    },
}

/// What `bench` builds unless told otherwise: every format built in.
#[cfg(not(feature = "hdf5"))]
const DEFAULT_FORMATS: &str = "npy,zarr";
#[cfg(feature = "hdf5")]
const DEFAULT_FORMATS: &str = "npy,zarr,hdf5";

fn main() -> ExitCode {
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
    let budget = parse_size(&cli.cache)?;
    let cache = ChunkCache::new(usize::try_from(budget).unwrap_or(usize::MAX));
    match cli.command {
        Command::Create {
            path,
            shape,
            dtype,
            chunks,
            codec,
            fill,
            order,
            endian,
            overwrite,
        } => {
            let dtype: DType = dtype.parse()?;
            let mut opts = ArrayOptions::new(parse_shape(&shape, "--shape")?)
                .codec(codec.parse()?)
                .cache(cache)
                .overwrite(overwrite)
                .order(match order {
                    OrderArg::C => Order::C,
                    OrderArg::F => Order::Fortran,
                })
                .endian(match endian {
                    EndianArg::Little => Endian::Little,
                    EndianArg::Big => Endian::Big,
                });
            if let Some(c) = chunks {
                opts = opts.chunks(parse_shape(&c, "--chunks")?);
            }
            if let Some(f) = fill {
                opts = opts.fill_bytes(dtype, dtype.parse_value(&f)?);
            }
            let a = ArrayHandle::create(&path, dtype, &opts)?;
            a.flush()?;
            println!(
                "created {}: {} {}, chunks {}",
                path.display(),
                dtype,
                tuple(&a.shape()),
                tuple(a.chunks())
            );
            Ok(())
        }
        Command::Info { path, json } => info(&path, json, cache),
        Command::Get {
            path,
            selection,
            json,
            out,
        } => get(&path, &selection, json, out.as_deref(), cache),
        Command::Put {
            path,
            selection,
            from,
            value: _,
            append: true,
        } => match (selection, from) {
            (None, Some(from)) => append(&path, &from, cache),
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
        } => put(
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
            codec,
            overwrite,
        } => convert(&src, &dst, dtype, chunks, codec.parse()?, overwrite, cache),
        Command::Reduce {
            path,
            op,
            selection,
            axis,
            out,
        } => {
            let op: Reduction = op.parse()?;
            let a = open_read(&path, cache.clone())?;
            let sel = a.resolve(selection.as_deref().unwrap_or("..."))?;
            match axis {
                None => {
                    let bar = progress_bar(chunkyard::reduce::reduce_steps(&a, &sel), "reduce");
                    let r = reduce(&a, &sel, op, &|n| bar.inc(n))?;
                    bar.finish_and_clear();
                    println!("{r}");
                    Ok(())
                }
                Some(axis) => reduce_along(&a, &sel, axis, op, out.as_deref(), cache),
            }
        }
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
            bench(
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
                    formats: bench_formats(formats.as_deref(), codec)?,
                    workloads: workload.parse()?,
                    keep,
                    json,
                    plot,
                },
            )
        }
    }
}

fn parse_shape(text: &str, what: &str) -> Result<Vec<u64>> {
    let t = text.trim().trim_start_matches('(').trim_end_matches(')');
    if t.trim().is_empty() {
        return Ok(Vec::new());
    }
    t.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.trim().parse::<u64>().map_err(|_| {
                Error::invalid(format!(
                    "{what} {text:?}: {p:?} is not a non-negative integer"
                ))
            })
        })
        .collect()
}

fn tuple(v: &[u64]) -> String {
    match v.len() {
        1 => format!("({},)", v[0]),
        _ => format!(
            "({})",
            v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn open_read(path: &Path, cache: ChunkCache) -> Result<ArrayHandle> {
    ArrayHandle::open(path, &OpenOptions::new().read_only(true).cache(cache))
}

/// A progress bar on stderr when both stdout and stderr are terminals;
/// hidden otherwise.
fn progress_bar(len: u64, what: &str) -> ProgressBar {
    if !(std::io::stdout().is_terminal() && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn fill_text(a: &ArrayHandle) -> String {
    dispatch!(a.dtype(), T => format_elem(T::from_ne_slice(a.fill_value())))
}

fn info(path: &Path, json: bool, cache: ChunkCache) -> Result<()> {
    #[cfg(feature = "hdf5")]
    if let Some((file, None)) = chunkyard::open::split_hdf5_path(path) {
        return list_hdf5(&file, json);
    }
    let a = open_read(path, cache)?;
    let report = a.memory_report();
    // What opening cost this process: metadata only, whatever the size.
    let rss = chunkyard::procmem::Rss::now();
    let store = a.store();
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
             \"cache_resident_bytes\": {}, \"cache_budget_bytes\": {}}}",
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
        );
    } else {
        println!("path:        {}", path.display());
        println!("format:      {}", store.describe());
        println!("dtype:       {}", a.dtype());
        println!("shape:       {}", tuple(&a.shape()));
        println!("chunks:      {} ({grid_chunks} chunks)", tuple(a.chunks()));
        println!("fill value:  {}", fill_text(&a));
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
    let list = chunkyard::store::hdf5::list_datasets(file)?;
    let dtype = |d: &chunkyard::store::hdf5::DatasetSummary| match &d.dtype {
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

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Elements beyond which `get` refuses to print and asks for `--out`.
const PRINT_LIMIT: u64 = 1 << 24;

fn get(
    path: &Path,
    selection: &str,
    json: bool,
    out: Option<&Path>,
    cache: ChunkCache,
) -> Result<()> {
    let a = open_read(path, cache.clone())?;
    let sel = a.resolve(selection)?;
    if let Some(out) = out {
        let shape = sel.out_shape();
        let dst = ArrayHandle::create(
            out,
            a.dtype(),
            &ArrayOptions::new(&shape).cache(cache).overwrite(true),
        )?;
        let full = dst.resolve("...")?;
        copy_blocks(&a, &sel, &dst, &full, "get")?;
        dst.flush()?;
        return Ok(());
    }
    if sel.num_elements() > PRINT_LIMIT {
        return Err(Error::invalid(format!(
            "the selection has {} elements, too many to print; write it with --out FILE.npy",
            sel.num_elements()
        )));
    }
    let mut bytes = vec![0u8; sel.num_elements() as usize * a.dtype().size()];
    a.read_bytes(&sel, &mut bytes)?;
    let text = dispatch!(a.dtype(), T => render::<T>(&bytes, &sel.out_shape(), json));
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").map_err(|e| Error::io("<stdout>", e))
}

fn format_elem<T: Element>(v: T) -> String {
    match T::DTYPE {
        DType::Bool => (if v.to_i128() != 0 { "true" } else { "false" }).into(),
        DType::F32 | DType::F64 => {
            let x = v.to_f64();
            if x.is_nan() {
                "nan".into()
            } else if x.is_infinite() {
                (if x > 0.0 { "inf" } else { "-inf" }).into()
            } else {
                format!("{v:?}")
            }
        }
        _ => v.to_string(),
    }
}

fn format_json_elem<T: Element>(v: T) -> String {
    match format_elem(v).as_str() {
        // Python's json module reads and writes these.
        "nan" => "NaN".into(),
        "inf" => "Infinity".into(),
        "-inf" => "-Infinity".into(),
        s => s.into(),
    }
}

/// Nested-list text of a C-order buffer.
fn render<T: Element>(bytes: &[u8], shape: &[u64], json: bool) -> String {
    let size = T::DTYPE.size();
    let vals: Vec<String> = bytes
        .chunks_exact(size)
        .map(|b| {
            let v = T::from_ne_slice(b);
            if json {
                format_json_elem(v)
            } else {
                format_elem(v)
            }
        })
        .collect();
    fn nest(vals: &[String], shape: &[u64]) -> String {
        match shape.split_first() {
            None => vals.first().cloned().unwrap_or_default(),
            Some((&n, rest)) => {
                let stride: usize = rest.iter().product::<u64>() as usize;
                let parts: Vec<String> = (0..n as usize)
                    .map(|i| nest(&vals[i * stride..(i + 1) * stride], rest))
                    .collect();
                format!("[{}]", parts.join(", "))
            }
        }
    }
    nest(&vals, shape)
}

fn reduce_along(
    a: &ArrayHandle,
    sel: &ResolvedSelection,
    axis: usize,
    op: Reduction,
    out: Option<&Path>,
    cache: ChunkCache,
) -> Result<()> {
    let bar = progress_bar(reduce_axis_steps(a, sel, axis), "reduce");
    let r = reduce_axis(a, sel, axis, op, &|n| bar.inc(n));
    bar.finish_and_clear();
    let r = r?;
    match out {
        Some(out) => {
            let dst = ArrayHandle::create(
                out,
                r.dtype,
                &ArrayOptions::new(&r.shape).cache(cache).overwrite(true),
            )?;
            let all = dst.resolve("...")?;
            dst.write_bytes(&all, &r.data)?;
            dst.flush()
        }
        None => {
            let n: u64 = r.shape.iter().product();
            if n > PRINT_LIMIT {
                return Err(Error::invalid(format!(
                    "the result has {n} elements, too many to print; write it with --out FILE.npy"
                )));
            }
            let text = dispatch!(r.dtype, T => render::<T>(&r.data, &r.shape, false));
            println!("{text}");
            Ok(())
        }
    }
}

fn copy_blocks(
    src: &ArrayHandle,
    src_sel: &ResolvedSelection,
    dst: &ArrayHandle,
    dst_sel: &ResolvedSelection,
    what: &str,
) -> Result<()> {
    let blocks = chunkyard::ops::BlockPlan::new(dst_sel, dst.chunks()).len();
    let bar = progress_bar(blocks, what);
    let r = copy_selection(src, src_sel, dst, dst_sel, &|n| bar.inc(n));
    bar.finish_and_clear();
    r
}

fn put(
    path: &Path,
    selection: &str,
    from: Option<&Path>,
    value: Option<&str>,
    cache: ChunkCache,
) -> Result<()> {
    let a = ArrayHandle::open(path, &OpenOptions::new().cache(cache.clone()))?;
    let sel = a.resolve(selection)?;
    match (from, value) {
        (Some(from), _) => {
            let src = open_read(from, cache)?;
            if src.shape() != sel.out_shape().as_slice() {
                return Err(Error::ShapeMismatch {
                    message: format!(
                        "{} has shape {}, the selection {selection:?} has shape {}",
                        from.display(),
                        tuple(&src.shape()),
                        tuple(&sel.out_shape())
                    ),
                });
            }
            let all = src.resolve("...")?;
            copy_blocks(&src, &all, &a, &sel, "put")?;
        }
        (None, Some(v)) => {
            let bytes = a.dtype().parse_value(v)?;
            a.fill_bytes(&sel, &bytes)?;
        }
        (None, None) => return Err(Error::invalid("put needs --from FILE.npy or --value V")),
    }
    a.flush()
}

/// `put PATH --append --from FILE`: grows the first axis by FILE's rows
/// and copies them in. If the copy fails, the array is cut back to its old
/// length, so a failed append leaves no rows of fill values behind.
fn append(path: &Path, from: &Path, cache: ChunkCache) -> Result<()> {
    let a = ArrayHandle::open(path, &OpenOptions::new().cache(cache.clone()))?;
    let src = open_read(from, cache)?;
    let (shape, rows_shape) = (a.shape(), src.shape());
    // A source of one axis less is a single row.
    let one_row = rows_shape.len() + 1 == shape.len();
    let rows_shape = if one_row {
        [&[1], &rows_shape[..]].concat()
    } else {
        rows_shape
    };
    if shape.is_empty() || rows_shape.len() != shape.len() || rows_shape[1..] != shape[1..] {
        return Err(Error::ShapeMismatch {
            message: format!(
                "cannot append {} of shape {} to {} of shape {}: every axis but the first must match",
                from.display(),
                tuple(&src.shape()),
                path.display(),
                tuple(&shape)
            ),
        });
    }
    let rows = rows_shape[0];
    let start = a.reserve_rows(rows)?;
    let mut axes = ResolvedSelection::full(&a.shape()).axes().to_vec();
    axes[0] = if one_row {
        AxisSel::Index(start)
    } else {
        AxisSel::Range {
            start,
            step: 1,
            count: rows,
        }
    };
    let dst = ResolvedSelection::from_axes(axes);
    let copied = src
        .resolve("...")
        .and_then(|all| copy_blocks(&src, &all, &a, &dst, "append"));
    if let Err(e) = copied {
        let _ = a.resize(start);
        return Err(e);
    }
    a.flush()?;
    println!(
        "{}: appended {rows} row{} at {start}, shape {}",
        path.display(),
        if rows == 1 { "" } else { "s" },
        tuple(&a.shape())
    );
    Ok(())
}

fn convert(
    src: &Path,
    dst: &Path,
    dtype: Option<String>,
    chunks: Option<String>,
    codec: Codec,
    overwrite: bool,
    cache: ChunkCache,
) -> Result<()> {
    let a = open_read(src, cache.clone())?;
    let dtype = match dtype {
        Some(d) => d.parse()?,
        None => a.dtype(),
    };
    if src
        .canonicalize()
        .ok()
        .is_some_and(|s| dst.canonicalize().ok().is_some_and(|d| d == s))
    {
        return Err(Error::invalid(format!(
            "{}: source and destination are the same file",
            dst.display()
        )));
    }
    let mut opts = ArrayOptions::new(a.shape())
        .cache(cache)
        .codec(codec)
        .overwrite(overwrite);
    if let Some(c) = chunks {
        opts = opts.chunks(parse_shape(&c, "--chunks")?);
    }
    if let Some(labels) = a.store().labels() {
        opts = opts.labels(labels);
    }
    // Keep a fill value where the destination has one (.npy has none; there
    // the copied elements carry it).
    if a.fill_value().iter().any(|&b| b != 0) && matches!(Format::from_path(dst), Ok(Format::Zarr))
    {
        let mut fill = vec![0; dtype.size()];
        chunkyard::dtype::cast_bytes(a.dtype(), a.fill_value(), dtype, &mut fill);
        opts = opts.fill_bytes(dtype, fill);
    }
    let b = ArrayHandle::create(dst, dtype, &opts)?;
    let (s, d) = (a.resolve("...")?, b.resolve("...")?);
    copy_blocks(&a, &s, &b, &d, "convert")?;
    b.flush()?;
    println!(
        "{} -> {}: {} {} -> {}, {} -> {} on disk",
        src.display(),
        dst.display(),
        tuple(&a.shape()),
        a.dtype(),
        b.dtype(),
        format_bytes(a.memory_report().stored_bytes.unwrap_or(0)),
        format_bytes(b.memory_report().stored_bytes.unwrap_or(0)),
    );
    Ok(())
}

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
/// (without npy when compressing, since .npy files cannot be). A named
/// npy with a codec is an error, not a silent skip.
fn bench_formats(named: Option<&str>, codec: Codec) -> Result<Vec<Format>> {
    let compressing = codec != Codec::None;
    let formats = match named {
        Some(f) => parse_formats(f)?,
        None => parse_formats(DEFAULT_FORMATS)?
            .into_iter()
            .filter(|&f| !(compressing && f == Format::Npy))
            .collect(),
    };
    if compressing && formats.contains(&Format::Npy) {
        return Err(Error::invalid(format!(
            ".npy files cannot be compressed (codec {codec}): leave npy out of --formats"
        )));
    }
    Ok(formats)
}

struct BenchArgs {
    formats: Vec<Format>,
    workloads: Workloads,
    keep: bool,
    json: bool,
    plot: Option<PathBuf>,
}

fn bench(opts: BuildOptions, args: &BenchArgs) -> Result<()> {
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

fn report_json(
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

fn peak_text(m: &chunkyard::procmem::MemoryTrace) -> String {
    format!(
        "{} ({} / {})",
        format_bytes(m.peak_total),
        format_bytes(m.peak_anon),
        format_bytes(m.peak_file)
    )
}

fn print_table(reports: &[(BuildReport, Option<ReadReport>)], g: &GeneratorReport) {
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
                chunkyard::bench::RANDOM_TILES,
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

/// Resident memory over time, one colour per run (like `mprof plot`): the
/// total resident set as a thick line and its file-backed part as a thin
/// one, in MiB against seconds since each run started.
fn plot_memory(
    svg: &Path,
    reports: &[(BuildReport, Option<ReadReport>)],
    g: &GeneratorReport,
) -> Result<()> {
    use plotters::prelude::*;
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let mut runs: Vec<(String, &chunkyard::procmem::MemoryTrace)> =
        vec![("generator alone".to_string(), &g.memory)];
    for (r, w) in reports {
        runs.push((format!("{} build", r.format), &r.memory));
        if let Some(w) = w {
            runs.push((format!("{} reads", r.format), &w.memory));
        }
    }
    let t_max = runs
        .iter()
        .filter_map(|(_, m)| m.samples.last().map(|s| s.0))
        .fold(1e-3, f64::max);
    let y_max = runs
        .iter()
        .map(|(_, m)| mib(m.peak_total))
        .fold(1.0, f64::max)
        * 1.1;
    let err = |e: &dyn std::fmt::Display| Error::io(svg, std::io::Error::other(e.to_string()));
    let root = SVGBackend::new(svg, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("chunkyard bench: resident memory", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..t_max, 0f64..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("time since the run started (s)")
        .y_desc("resident memory (MiB)")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (name, m)) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                m.samples.iter().map(|(t, r)| (*t, mib(r.total()))),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(format!("{name}: total (peak {:.0} MiB)", mib(m.peak_total)))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(LineSeries::new(
                m.samples.iter().map(|(t, r)| (*t, mib(r.file))),
                color.stroke_width(1),
            ))
            .map_err(|e| err(&e))?
            .label(format!(
                "{name}: file-backed (peak {:.0} MiB)",
                mib(m.peak_file)
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
