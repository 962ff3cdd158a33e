//! Interoperability with zarr-python 3, numcodecs and TensorStore, in
//! both directions: zarr-python (every warning an error) and TensorStore
//! read every codec chunkyard writes, sharded or not, element for element;
//! chunkyard reads what TensorStore writes; Blosc frames match c-blosc's;
//! chunkyard reads v3 and v2 arrays zarr-python wrote (partly written ones
//! too); the LZ4 framing matches numcodecs' own bytes. Feature `interop`:
//! these tests need `python3` with `numpy`, `zarr` (3.x), `numcodecs` and
//! `tensorstore`,
//! and fail, not skip, without them (`pip install -r requirements-dev.txt`).

use std::path::Path;

use chunkyard::internals::{blosc, lz4};
use chunkyard::{ArrayHandle, ArrayOptions, ChunkCache, Codec, DType, OpenOptions};

/// Runs Python with zarr and numcodecs; fails the test if they are missing.
fn zpython(code: &str) -> String {
    let check = {
        let _children = crate::common::child_guard();
        std::process::Command::new("python3")
            .args([
                "-c",
                "import zarr, numcodecs; assert zarr.__version__ >= '3'",
            ])
            .output()
    };
    match check {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "zarr-python 3 and numcodecs are required (feature interop): {}",
            crate::common::PIP_INSTALL
        ),
    }
    let prelude = "import warnings; warnings.filterwarnings('ignore')\n\
                   import numpy as np, zarr, numcodecs, numcodecs.zarr3, json\n";
    crate::common::python(&format!("{prelude}{code}"))
}

/// Runs Python with zarr and TensorStore, every warning an error.
fn strict_python(code: &str) -> String {
    let prelude = "import warnings; warnings.simplefilter('error')\n\
                   import numpy as np, zarr, tensorstore as ts\n";
    crate::common::python_with(
        &["numpy", "zarr", "tensorstore"],
        &format!("{prelude}{code}"),
        &[],
    )
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The value chunkyard and Python both compute for flat index `i`.
const FORMULA: &str = "(i * 7 + 3) % 120";

fn values(dtype: DType, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * dtype.size());
    for i in 0..n {
        let v = ((i * 7 + 3) % 120) as f64;
        let text = if dtype == DType::Bool {
            if v as u64 % 2 == 1 { "true" } else { "false" }.to_string()
        } else {
            format!("{v}")
        };
        out.extend(dtype.parse_value(&text).unwrap());
    }
    out
}

fn py_values(dtype: DType) -> String {
    let i = "np.arange(n)";
    let base = FORMULA.replace('i', i);
    if dtype == DType::Bool {
        format!("(({base}) % 2 == 1)")
    } else {
        format!("({base}).astype('{}')", dtype.numpy_name())
    }
}

/// Writes everything but the last chunk along axis 0 (which stays
/// missing) and checks zarr-python sees the data, the fill value and the
/// codec.
/// With `sharded`: shards (4, 4, 6) of inner chunks (2, 2, 3), the last
/// shard along each axis partial, some inner chunks never written.
fn write_and_check(dir: &Path, dtype: DType, codec: Codec, fill: &str, sharded: bool) {
    let path = dir.join(format!(
        "{}-{}-{fill}{}.zarr",
        dtype.name(),
        codec.name(),
        if sharded { "-sharded" } else { "" }
    ));
    let shape = [7u64, 5, 6];
    let (chunks, shards) = if sharded {
        ([2u64, 2, 3], "(4, 4, 6)")
    } else {
        ([3u64, 2, 4], "None")
    };
    let fill_bytes = dtype.parse_value(fill).unwrap();
    let mut opts = ArrayOptions::new(shape)
        .chunks(chunks)
        .codec(codec)
        .fill_bytes(dtype, fill_bytes)
        .cache(ChunkCache::new(1 << 20));
    if sharded {
        opts = opts.shards([4u64, 4, 6]);
    }
    let a = ArrayHandle::create(&path, dtype, &opts).unwrap();
    let sel = a.resolve("0:6").unwrap();
    let n = sel.num_elements() as usize;
    a.write_bytes(&sel, &values(dtype, n)).unwrap();
    a.flush().unwrap();
    drop(a);
    let codec_name = match codec {
        Codec::None => "None",
        Codec::Lz4 => "'blosc'",
        Codec::Zstd { .. } => "'zstd'",
        Codec::Gzip { .. } => "'gzip'",
        _ => unreachable!(),
    };
    // Any warning is an error: zarr-python must read the array as a
    // plain Zarr v3 array (numcodecs' codecs warn that they are not in
    // the specification). TensorStore, which knows only the
    // specification's codecs, reads the same elements.
    strict_python(&format!(
        r#"
a = zarr.open_array({path:?}, mode="r")
assert a.metadata.zarr_format == 3
assert a.dtype == np.dtype('{np}'), a.dtype
assert a.shape == (7, 5, 6) and a.chunks == {chunks:?} and a.shards == {shards}, (a.shape, a.chunks, a.shards)
n = 6 * 5 * 6
want = np.full((7, 5, 6), {fillpy}, dtype='{np}')
want[0:6] = {vals}.reshape(6, 5, 6)
got = a[...]
assert (got == want).all(), (got, want)
assert a.fill_value == want[6, 0, 0], a.fill_value
codecs = [c.to_dict() for c in a.metadata.codecs]
if {shards} is not None:
    assert len(codecs) == 1 and codecs[0]["name"] == "sharding_indexed", codecs
    conf = codecs[0]["configuration"]
    assert conf["index_location"] == "end", conf
    assert [c["name"] for c in conf["index_codecs"]] == ["bytes", "crc32c"], conf
    codecs = conf["codecs"]
names = [c["name"] for c in codecs]
assert names[0] == "bytes", names
assert (names[1] if len(names) > 1 else None) == {codec_name}, names
if names[-1] == "blosc":
    # zarr-python's BloscCodec defaults for the dtype: typesize = item
    # size, bit shuffle for one-byte types, byte shuffle otherwise.
    c = codecs[1]["configuration"]
    size = np.dtype('{np}').itemsize
    want_c = dict(cname="lz4", clevel=5, typesize=size, blocksize=0,
                  shuffle="bitshuffle" if size == 1 else "shuffle")
    assert c == want_c, c
t = ts.open({{"driver": "zarr3", "kvstore": {{"driver": "file", "path": {path:?}}}}},
            open=True, read=True).result()
assert t.dtype.numpy_dtype == np.dtype('{np}'), t.dtype
got = t.read().result()
assert (got == want).all(), ("tensorstore", got, want)
"#,
        path = p(&path),
        chunks = (chunks[0], chunks[1], chunks[2]),
        np = dtype.numpy_name(),
        vals = py_values(dtype),
        fillpy = if dtype == DType::Bool {
            if fill == "true" { "True" } else { "False" }.to_string()
        } else {
            fill.to_string()
        },
    ));
    // The missing chunks are not on disk (never written, not zero-filled).
    assert!(!path.join("c/2/0/0").exists());
    if sharded {
        // One element of an uncached shard: its index and one inner
        // chunk, not the shard.
        let a = ArrayHandle::open(&path, OpenOptions::new().read_only(true)).unwrap();
        assert!(a.store().capabilities().partial_reads);
        let mut e = vec![0u8; dtype.size()];
        a.get_bytes(&[5, 4, 5], &mut e).unwrap();
        let i = (5 * 5 + 4) * 6 + 5;
        assert_eq!(e, values(dtype, i + 1)[i * dtype.size()..]);
    }
}

#[test]
fn zarr_python_and_tensorstore_read_every_codec_dtype_and_shards_chunkyard_writes() {
    let dir = tempfile::tempdir().unwrap();
    for codec in [
        Codec::None,
        Codec::Lz4,
        Codec::Zstd { level: 3 },
        Codec::Gzip { level: 5 },
    ] {
        for sharded in [false, true] {
            write_and_check(dir.path(), DType::F32, codec, "-1.5", sharded);
            write_and_check(dir.path(), DType::I16, codec, "7", sharded);
        }
    }
    for dtype in DType::ALL {
        let fill = if dtype == DType::Bool { "true" } else { "9" };
        write_and_check(dir.path(), dtype, Codec::Lz4, fill, false);
        write_and_check(dir.path(), dtype, Codec::Lz4, fill, true);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn lz4_frames_match_numcodecs_both_ways() {
    // numcodecs encodes; we decode. And the frame header is numcodecs'.
    let out = zpython(
        r#"
data = (np.arange(5000, dtype='<u4') * 2654435761 % 1000).astype('<u4').tobytes()
enc = numcodecs.LZ4().encode(data)
print(data.hex()); print(bytes(enc).hex())
"#,
    );
    let mut lines = out.lines();
    let data = unhex(lines.next().unwrap());
    let theirs = unhex(lines.next().unwrap());
    assert_eq!(&theirs[..4], &(data.len() as u32).to_le_bytes());
    assert_eq!(lz4::decode(&theirs, Some(data.len() as u64)).unwrap(), data);
    // We encode; numcodecs decodes.
    let ours = lz4::encode(&data).unwrap();
    assert_eq!(&ours[..4], &theirs[..4], "same length header");
    zpython(&format!(
        r#"
dec = numcodecs.LZ4().decode(bytes.fromhex("{}"))
assert bytes(dec) == bytes.fromhex("{}"), "numcodecs decodes our frame"
"#,
        hex(&ours),
        hex(&data)
    ));
}

#[test]
fn blosc_frames_match_numcodecs_both_ways() {
    // numcodecs (c-blosc) encodes every shuffle, type size and compressor
    // chunkyard decodes, with one block or several (a forced block size,
    // leaving a leftover block, elements not a multiple of 8 in it), split
    // or not (zstd never splits), compressible or not; we decode. Then we
    // encode the same data and numcodecs decodes it.
    let out = zpython(
        r#"
import numcodecs.blosc as nb
rng = np.random.default_rng(5)
for n in [0, 100, 1000, 5003, 40000, 300001]:
    smooth = ((np.arange(n) // 3) % 251).astype('u1').tobytes()
    noise = rng.integers(0, 256, n, dtype='u1').tobytes()
    for data in [smooth, noise]:
        for cname in ["lz4", "lz4hc", "zstd", "zlib"]:
            for shuffle in [0, 1, 2]:
                for ts in [1, 2, 4, 8]:
                    for bs in [0, 256, 6000]:
                        if bs and n < 1000: continue
                        enc = numcodecs.Blosc(cname=cname, clevel=5, shuffle=shuffle, blocksize=bs, typesize=ts).encode(data)
                        print(cname, shuffle, ts, bs, data.hex(), bytes(enc).hex())
"#,
    );
    let mut cases = 0;
    let mut ours_all = String::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (cname, shuffle, ts, bs) = (f[0], f[1], f[2], f[3]);
        let (data, theirs) = (unhex(f[4]), unhex(f[5]));
        let mut got = vec![0u8; data.len()];
        blosc::decode_into(&theirs, &mut got)
            .unwrap_or_else(|e| panic!("{cname} shuffle {shuffle} ts {ts} bs {bs}: {e}"));
        assert!(
            got == data,
            "{cname} shuffle {shuffle} ts {ts} bs {bs} n {}",
            data.len()
        );
        let sh = match shuffle {
            "0" => blosc::Shuffle::No,
            "1" => blosc::Shuffle::Byte,
            _ => blosc::Shuffle::Bit,
        };
        let c = match cname {
            "lz4" => blosc::Compressor::Lz4,
            "lz4hc" => blosc::Compressor::Lz4hc,
            "zstd" => blosc::Compressor::Zstd,
            _ => blosc::Compressor::Zlib,
        };
        let ours =
            blosc::encode(&data, ts.parse().unwrap(), sh, c, 5, bs.parse().unwrap()).unwrap();
        // Same header fields as c-blosc (flags, type size, sizes), bar
        // the frame length: lz4_flex and LZ4 compress differently.
        if cname == "lz4" {
            assert_eq!(
                ours[..12],
                theirs[..12],
                "{cname} {shuffle} {ts} {bs} header"
            );
        }
        ours_all.push_str(&format!("{};{}\n", hex(&data), hex(&ours)));
        cases += 1;
    }
    assert!(cases > 500, "{cases} cases");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ours.txt");
    std::fs::write(&file, ours_all).unwrap();
    zpython(&format!(
        r#"
n = 0
for line in open({file:?}):
    data, ours = line.strip().split(';')
    if not data:
        continue  # numcodecs refuses to decode empty frames, even its own
    dec = numcodecs.Blosc().decode(bytes.fromhex(ours))
    assert bytes(dec) == bytes.fromhex(data), n
    n += 1
assert n > 500
"#,
        file = p(&file)
    ));
}

/// Opens a zarr-python array and its expected contents (saved by numpy)
/// through chunkyard and compares them element for element.
fn assert_same(zarr: &Path, npy: &Path) {
    let cache = ChunkCache::new(1 << 20);
    let opts = OpenOptions::new().read_only(true).cache(cache);
    let a = ArrayHandle::open(zarr, &opts).unwrap_or_else(|e| panic!("{}: {e}", zarr.display()));
    let b = ArrayHandle::open(npy, &opts).unwrap();
    assert_eq!(a.dtype(), b.dtype(), "{}", zarr.display());
    assert_eq!(a.shape(), b.shape(), "{}", zarr.display());
    let all = a.resolve("...").unwrap();
    let mut x = vec![0u8; a.nbytes() as usize];
    let mut y = x.clone();
    a.read_bytes(&all, &mut x).unwrap();
    b.read_bytes(&all, &mut y).unwrap();
    assert!(x == y, "{}: contents differ", zarr.display());
    // Single elements (partial reads where the codecs allow them).
    let last: Vec<u64> = a.shape().iter().map(|&n| n - 1).collect();
    let mut e1 = vec![0u8; a.dtype().size()];
    let mut e2 = e1.clone();
    a.get_bytes(&last, &mut e1).unwrap();
    b.get_bytes(&last, &mut e2).unwrap();
    assert_eq!(e1, e2, "{}: last element", zarr.display());
}

#[test]
fn chunkyard_reads_v3_and_v2_arrays_zarr_python_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = p(dir.path());
    let listing = zpython(&format!(
        r#"
import os
d = {d:?}
cases = []
def case(name, dtype, fill, chunks=(4, 3, 5), **kw):
    path = os.path.join(d, name + ".zarr")
    shape = (9, 10, 7)
    a = zarr.create_array(path, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill, **kw)
    n = 8 * 10 * 7
    v = (np.arange(n) * 7 + 3) % 120
    v = (v % 2 == 1) if dtype == "bool" else v.astype(dtype)
    # Rows 0..8 only: the chunks of row 8 are never written.
    a[0:8] = v.reshape(8, 10, 7)
    want = np.full(shape, fill, dtype=dtype)
    want[0:8] = v.reshape(8, 10, 7)
    want = want.astype(want.dtype.newbyteorder("="))
    np.save(path[:-5] + ".npy", want)
    cases.append(name)

for dt in ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
           "uint64", "float32", "float64"]:
    case("v3-" + dt, dt, 1 if dt != "bool" else True)
case("v3-nocodec", "float32", 2.5, compressors=None)
case("v3-lz4", "int32", -4, compressors=numcodecs.zarr3.LZ4())
case("v3-gzip", "uint16", 3, compressors=zarr.codecs.GzipCodec(level=4))
case("v3-sharded", "float64", 0.5, shards=(8, 6, 5))
case("v3-bigendian", "int32", 6, serializer=zarr.codecs.BytesCodec(endian="big"))
case("v2-default", "float64", 1.25, zarr_format=2)
case("v2-none", "int16", -2, zarr_format=2, compressors=None)
case("v2-lz4", "int32", 5, zarr_format=2, compressors=numcodecs.LZ4())
case("v2-blosc", "uint8", 3, zarr_format=2, compressors=numcodecs.Blosc(cname="lz4"))
B = zarr.codecs.BloscCodec
# Blosc with LZ4 as zarr-python writes it: its defaults per dtype (bit
# shuffle for one byte, byte shuffle otherwise), each shuffle explicitly,
# blocks too small to split and whole chunks that split (630 elements,
# typesize <= 16), several blocks (a forced block size), zstd and zlib
# inside, and v2 (numcodecs' Blosc) with bit shuffle.
for dt in ["uint8", "bool", "int16", "float32", "float64"]:
    case("v3-blosc-lz4-" + dt, dt, 1, compressors=B(cname="lz4"))
    case("v3-blosc-lz4-split-" + dt, dt, 1, chunks=(9, 10, 7), compressors=B(cname="lz4"))
for sh in ["noshuffle", "shuffle", "bitshuffle"]:
    for ch in [(4, 3, 5), (9, 10, 7)]:
        case("v3-blosc-" + sh + "-" + str(ch[0]), "int32", 2, chunks=ch, compressors=B(cname="lz4", shuffle=sh))
case("v3-blosc-blocks", "float64", 2, chunks=(9, 10, 7), compressors=B(cname="lz4", blocksize=1024))
case("v3-blosc-zstd", "uint16", 2, chunks=(9, 10, 7), compressors=B())
case("v3-blosc-zlib", "int64", 2, chunks=(9, 10, 7), compressors=B(cname="zlib"))
case("v3-blosc-lz4hc", "float32", 2, chunks=(9, 10, 7), compressors=B(cname="lz4hc"))
case("v2-blosc-bit", "int16", 3, chunks=(9, 10, 7), zarr_format=2,
     compressors=numcodecs.Blosc(cname="lz4", shuffle=numcodecs.Blosc.BITSHUFFLE))
case("v2-zstd", "float32", 0.0, zarr_format=2, compressors=numcodecs.Zstd(level=1))
case("v2-bigendian", ">i4", 8, zarr_format=2)
case("v2-forder", "float32", 1.0, zarr_format=2, order="F")
print(" ".join(cases))
"#
    ));
    let cases: Vec<&str> = listing.split_whitespace().collect();
    assert!(cases.len() >= 20, "{cases:?}");
    for c in cases {
        assert_same(
            &dir.path().join(format!("{c}.zarr")),
            &dir.path().join(format!("{c}.npy")),
        );
    }
    // Uncompressed and sharded arrays read single elements partially.
    let cache = ChunkCache::new(1 << 20);
    let opts = OpenOptions::new().read_only(true).cache(cache);
    for (name, partial) in [
        ("v3-nocodec", true),
        ("v3-sharded", true),
        ("v3-float32", false),
        ("v2-none", true),
    ] {
        let a = ArrayHandle::open(dir.path().join(format!("{name}.zarr")), &opts).unwrap();
        assert_eq!(a.store().capabilities().partial_reads, partial, "{name}");
    }
}

#[test]
fn chunkyard_reads_arrays_tensorstore_writes() {
    // TensorStore writes each codec of the specification chunkyard
    // reads, every dtype, sharded (crc32c index at the end, as
    // zarr-python's default) and not, and Zarr v2 arrays with its v2
    // compressors; rows 0..8 of 9 written.
    let dir = tempfile::tempdir().unwrap();
    let listing = strict_python(&format!(
        r#"
import os
d = {d:?}
B = lambda cname, shuffle: {{"name": "blosc", "configuration": {{"cname": cname, "clevel": 5,
     "shuffle": shuffle, "typesize": 4, "blocksize": 0}}}}
BYTES = {{"name": "bytes", "configuration": {{"endian": "little"}}}}
cases = []
def case(name, dtype, fill, codecs, grid=(4, 3, 5)):
    path = os.path.join(d, name + ".zarr")
    shape = (9, 10, 7)
    t = ts.open({{"driver": "zarr3", "kvstore": {{"driver": "file", "path": path}},
                 "metadata": {{"shape": shape, "data_type": dtype, "fill_value": fill,
                              "chunk_grid": {{"name": "regular", "configuration": {{"chunk_shape": grid}}}},
                              "codecs": codecs}}}}, create=True).result()
    n = 8 * 10 * 7
    v = (np.arange(n) * 7 + 3) % 120
    v = (v % 2 == 1) if dtype == "bool" else v.astype(dtype)
    t[0:8] = v.reshape(8, 10, 7)
    want = np.full(shape, fill, dtype=dtype)
    want[0:8] = v.reshape(8, 10, 7)
    np.save(path[:-5] + ".npy", want)
    cases.append(name)

for dt in ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
           "uint64", "float32", "float64"]:
    fill = True if dt == "bool" else 1
    case("ts-none-" + dt, dt, fill, [BYTES])
    case("ts-blosc-" + dt, dt, fill, [BYTES, {{"name": "blosc", "configuration": {{"cname": "lz4", "clevel": 5,
         "shuffle": "bitshuffle" if np.dtype(dt).itemsize == 1 else "shuffle",
         "typesize": np.dtype(dt).itemsize, "blocksize": 0}}}}])
case("ts-blosc-noshuffle", "int32", 2, [BYTES, B("lz4", "noshuffle")], grid=(9, 10, 7))
case("ts-blosc-bitshuffle", "int32", 2, [BYTES, B("lz4", "bitshuffle")], grid=(9, 10, 7))
case("ts-blosc-zstd", "int32", 2, [BYTES, B("zstd", "shuffle")], grid=(9, 10, 7))
case("ts-zstd", "float64", 0.5, [BYTES, {{"name": "zstd", "configuration": {{"level": 3, "checksum": False}}}}])
case("ts-gzip", "uint16", 3, [BYTES, {{"name": "gzip", "configuration": {{"level": 5}}}}])
case("ts-crc32c", "int16", 3, [BYTES, {{"name": "crc32c"}}])
for inner in [[BYTES], [BYTES, B("lz4", "shuffle")]]:
    case("ts-sharded-" + str(len(inner)), "float32", 0.25,
         [{{"name": "sharding_indexed", "configuration": {{"chunk_shape": [2, 3, 5],
           "codecs": inner, "index_codecs": [BYTES, {{"name": "crc32c"}}]}}}}], grid=(4, 6, 5))

# Zarr v2 through TensorStore's "zarr" driver: its compressors and "/".
def case_v2(name, dtype, fill, compressor, sep="."):
    path = os.path.join(d, name + ".zarr")
    shape = (9, 10, 7)
    t = ts.open({{"driver": "zarr", "kvstore": {{"driver": "file", "path": path}},
                 "metadata": {{"shape": shape, "chunks": [4, 3, 5], "dtype": np.dtype(dtype).str,
                              "fill_value": fill, "compressor": compressor, "order": "C",
                              "filters": None, "dimension_separator": sep}}}}, create=True).result()
    n = 8 * 10 * 7
    v = ((np.arange(n) * 7 + 3) % 120).astype(dtype)
    t[0:8] = v.reshape(8, 10, 7)
    want = np.full(shape, fill, dtype=dtype)
    want[0:8] = v.reshape(8, 10, 7)
    np.save(path[:-5] + ".npy", want)
    cases.append(name)

for dt in ["int8", "uint16", "int32", "int64", "float32", "float64"]:
    case_v2("ts-v2-none-" + dt, dt, 1, None)
case_v2("ts-v2-blosc", "float32", 0.5, {{"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}})
case_v2("ts-v2-zlib", "int16", 3, {{"id": "zlib", "level": 5}})
case_v2("ts-v2-zstd", "uint32", 3, {{"id": "zstd", "level": 3}})
case_v2("ts-v2-slash", "float64", 0.25, None, sep="/")
print(" ".join(cases))
"#,
        d = p(dir.path())
    ));
    let cases: Vec<&str> = listing.split_whitespace().collect();
    assert!(cases.len() >= 39, "{cases:?}");
    for c in cases {
        assert_same(
            &dir.path().join(format!("{c}.zarr")),
            &dir.path().join(format!("{c}.npy")),
        );
    }
}

#[test]
fn writes_into_zarr_python_arrays_stay_readable_by_zarr_python() {
    let dir = tempfile::tempdir().unwrap();
    let v3 = dir.path().join("v3.zarr");
    let v2 = dir.path().join("v2.zarr");
    zpython(&format!(
        r#"
for path, fmt in [({v3:?}, 3), ({v2:?}, 2)]:
    a = zarr.create_array(path, shape=(6, 8), chunks=(4, 3), dtype="int32", fill_value=-1,
                          zarr_format=fmt, attributes={{"units": "m"}})
    a[0, 0] = 5
"#,
        v3 = p(&v3),
        v2 = p(&v2)
    ));
    for path in [&v3, &v2] {
        let a = chunkyard::open::<i32>(path).unwrap();
        // v3 zarr.json and v2 .zattrs alike.
        assert_eq!(a.attrs()["units"], "m", "{}", path.display());
        assert_eq!(a.get([0, 0]).unwrap(), 5);
        assert_eq!(a.get([5, 7]).unwrap(), -1, "fill value");
        a.fill("1:3, 2:7", 9).unwrap();
        a.flush().unwrap();
    }
    zpython(&format!(
        r#"
for path in [{v3:?}, {v2:?}]:
    a = zarr.open_array(path, mode="r")
    want = np.full((6, 8), -1, dtype="int32")
    want[0, 0] = 5
    want[1:3, 2:7] = 9
    assert (a[...] == want).all(), (path, a[...])
    assert a.attrs["units"] == "m", dict(a.attrs)
"#,
        v3 = p(&v3),
        v2 = p(&v2)
    ));
}

#[test]
fn convert_keeps_dimension_names_and_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.zarr");
    let dst = dir.path().join("dst.zarr");
    zpython(&format!(
        r#"
a = zarr.create_array({src:?}, shape=(4, 6), chunks=(2, 3), dtype="float32", fill_value=0.5,
                      dimension_names=["y", None], attributes={{"units": "m", "scale": [1, 2]}})
a[1] = np.arange(6)
"#,
        src = p(&src)
    ));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chunkyard"))
        .args([
            "convert",
            p(&src),
            p(&dst),
            "--codec",
            "zstd",
            "--chunks",
            "4,4",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    zpython(&format!(
        r#"
a = zarr.open_array({dst:?}, mode="r")
assert a.metadata.dimension_names == ("y", None), a.metadata.dimension_names
assert dict(a.attrs) == {{"units": "m", "scale": [1, 2]}}, dict(a.attrs)
assert a.fill_value == 0.5 and a.chunks == (4, 4)
want = np.full((4, 6), 0.5, dtype="float32"); want[1] = np.arange(6)
assert (a[...] == want).all()
"#,
        dst = p(&dst)
    ));
}
