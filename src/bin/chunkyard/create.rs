//! `chunkyard create`: a new array file with a shape, dtype, chunks, codec,
//! fill value and layout; no data is written.

use chunkyard::store::Order;
use chunkyard::{ArrayHandle, ChunkCache, DType, Endian, Result};

use crate::args::{array_options, parse_shape};
use crate::print::tuple;
use crate::{CreateArgs, EndianArg, OrderArg};

/// `chunkyard create PATH --shape --dtype [...]`.
pub(crate) fn run(args: CreateArgs, cache: ChunkCache) -> Result<()> {
    let CreateArgs {
        path,
        shape,
        dtype,
        chunks,
        shards,
        codec,
        fill,
        order,
        endian,
        overwrite,
    } = args;
    let dtype: DType = dtype.parse()?;
    let mut opts = array_options(parse_shape(&shape, "--shape")?)
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
    if let Some(s) = shards {
        opts = opts.shards(parse_shape(&s, "--shards")?);
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
