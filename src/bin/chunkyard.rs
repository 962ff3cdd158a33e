//! `chunkyard`: look inside, convert, slice and reduce arrays larger than
//! memory from the shell. A thin layer over the library: parse, call,
//! print. Every error is one line on stderr and a non-zero exit.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use chunkyard::bench::{BuildOptions, BuildReport, build};
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
        /// Formats to build, comma-separated (npy, zarr, hdf5).
        #[arg(long, default_value = DEFAULT_FORMATS)]
        formats: String,
        /// Folder for the files.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Keep the files.
        #[arg(long)]
        keep: bool,
        /// Seed of the value generator.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Print one JSON object per format.
        #[arg(long)]
        json: bool,
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
                    let bar = progress_bar(
                        chunkyard::ops::BlockPlan::new(&sel, a.chunks()).len(),
                        "reduce",
                    );
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
            dir,
            keep,
            seed,
            json,
        } => bench(
            BuildOptions {
                depth,
                rows,
                cols,
                dir,
                keep,
                cache,
                seed,
            },
            &formats,
            json,
        ),
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
             \"stored_bytes\": {}}}",
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
            Some(b) => println!("on disk:     {} ({b} bytes)", format_bytes(b)),
            None => println!("on disk:     unknown"),
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

fn bench(opts: BuildOptions, formats: &str, json: bool) -> Result<()> {
    let formats: Vec<Format> = formats
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
        .collect::<Result<_>>()?;
    if !json {
        println!(
            "chunkyard bench: {} x {} x {} float32 ({}), chunks (1, {}, {}), cache {}",
            opts.depth,
            opts.rows,
            opts.cols,
            format_bytes(opts.depth * opts.rows * opts.cols * 4),
            opts.rows,
            opts.cols,
            format_bytes(opts.cache.budget() as u64)
        );
    }
    let mut reports = Vec::new();
    for f in formats {
        let bar = progress_bar(opts.depth, &format!("{f:?}").to_lowercase());
        let r = build(f, &opts, &|n| bar.inc(n));
        bar.finish_and_clear();
        let r = r?;
        if json {
            println!("{}", report_json(&r));
        }
        reports.push(r);
    }
    if !json {
        print_table(&reports);
    }
    Ok(())
}

fn report_json(r: &BuildReport) -> String {
    format!(
        "{{\"format\": {}, \"elapsed_s\": {:.3}, \"logical_bytes\": {}, \"file_bytes\": {}, \
         \"end_to_end_gb_per_s\": {:.3}, \"peak_rss_bytes\": {}, \"peak_anon_bytes\": {}, \
         \"peak_file_bytes\": {}, \"baseline_rss_bytes\": {}, \"cache_budget_bytes\": {}, \
         \"evictions\": {}, \"writebacks\": {}}}",
        json_str(r.format),
        r.elapsed.as_secs_f64(),
        r.logical_bytes,
        r.file_bytes,
        r.logical_bytes as f64 / 1e9 / r.elapsed.as_secs_f64(),
        r.memory.peak_total,
        r.memory.peak_anon,
        r.memory.peak_file,
        r.baseline.total(),
        r.cache.budget_bytes,
        r.cache.evictions,
        r.cache.writebacks,
    )
}

fn print_table(reports: &[BuildReport]) {
    println!(
        "{:<8} | {:>12} | {:>18} | {:>36} | {:>12}",
        "Example",
        "Elapsed time",
        "Calculated storage",
        "Peak memory (anon / file)",
        "File storage"
    );
    println!("{}", "-".repeat(98));
    for r in reports {
        println!(
            "{:<8} | {:>10.2} s | {:>15.2} GB | {:>36} | {:>9.2} GB",
            r.format,
            r.elapsed.as_secs_f64(),
            r.logical_bytes as f64 / 1e9,
            format!(
                "{} ({} / {})",
                format_bytes(r.memory.peak_total),
                format_bytes(r.memory.peak_anon),
                format_bytes(r.memory.peak_file)
            ),
            r.file_bytes as f64 / 1e9,
        );
    }
    if let Some(r) = reports.first() {
        println!(
            "(peak memory is the whole process's resident set; it was {} before the build; \
             1 GB = 1e9 bytes as in the article)",
            format_bytes(r.baseline.total())
        );
    }
}
