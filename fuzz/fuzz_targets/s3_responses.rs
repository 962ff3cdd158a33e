//! A Zarr array on object storage whose server lies: every GET, HEAD,
//! LIST and PUT chunkyard's S3 storage sends goes to an in-process store
//! (`object_store`'s `InMemory` behind `Lying`) that answers as the input
//! says: object sizes (`Content-Length`) and byte ranges that do not match
//! the body, bodies shorter or longer than they claim, split into parts,
//! any ETag or none, listings with any sizes, and failures (not found,
//! precondition failed, already exists, a server error). Before the lies
//! start, the array's `zarr.json` and chunk objects may be edited too.
//!
//! Checked:
//! - every outcome of open, read, get, write, flush, resize, a change of
//!   attributes and the memory report is a value or a typed error, never
//!   a panic;
//! - nothing allocates what a response claims (run.sh's
//!   `-malloc_limit_mb`); in particular an object whose claimed size is
//!   over any limit chunkyard reads (64 MiB for metadata, a chunk's bound
//!   for chunks) never has its body read: `Lying` panics if one is
//!   polled (for a whole GET or an open-ended range; a bounded range
//!   asks for a few bytes of an object of any size);
//! - an array opened read-only with no edit and no lie told reads back
//!   exactly what was written.
//!
//! The seam: `chunkyard::internals::with_object_store`, which puts the
//! store in place of the S3 client for arrays opened on this thread.
#![no_main]

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chunkyard::ResolvedSelection;
use chunkyard::internals::object_store::memory::InMemory;
use chunkyard::internals::object_store::path::Path;
use chunkyard::internals::object_store::{
    self as os, CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions,
    PutPayload, PutResult,
};
use chunkyard::internals::with_object_store;
use chunkyard::{ArrayHandle, ArrayOptions, AxisSel, ChunkCache, Codec, DType, OpenOptions};
use futures::stream::{BoxStream, StreamExt};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const URL: &str = "s3://fuzz/a.zarr";

/// No body of an object claiming more than this is ever read: it is over
/// `METADATA_LIMIT` (64 MiB) and every chunk bound of the small arrays
/// made here (`chunk_object_limit`: a chunk plus an eighth plus 64 KiB).
const NEVER_READ: u64 = 65 << 20;

#[derive(Arbitrary, Debug, Clone)]
enum Size {
    True,
    Plus(u16),
    Minus(u16),
    Huge(u64),
}

#[derive(Arbitrary, Debug, Clone)]
enum RangeLie {
    True,
    /// The whole object, whatever was asked.
    Whole,
    Reversed,
    Shift(i16),
    Any(u64, u64),
}

#[derive(Arbitrary, Debug, Clone)]
enum Body {
    True,
    Truncate(u16),
    Extend(Vec<u8>),
    /// The true body in parts of this many bytes (at least 1).
    Split(u8),
    Replace(Vec<u8>),
}

#[derive(Arbitrary, Debug, Clone)]
enum Fail {
    NotFound,
    Precondition,
    AlreadyExists,
    Server,
}

/// What the store answers to the next request.
#[derive(Arbitrary, Debug, Clone)]
struct Lie {
    size: Size,
    range: RangeLie,
    body: Body,
    /// `Some(None)`: no ETag.
    etag: Option<Option<String>>,
    fail: Option<Fail>,
}

impl Lie {
    fn is_truthful(&self) -> bool {
        matches!(
            self,
            Lie {
                size: Size::True,
                range: RangeLie::True,
                body: Body::True,
                etag: None,
                fail: None,
            }
        )
    }
}

/// The in-memory store, answering with the lies in `script`, one per
/// request, then truthfully.
#[derive(Debug)]
struct Lying {
    inner: InMemory,
    script: Mutex<VecDeque<Lie>>,
    /// Whether any answer was not the truth.
    lied: AtomicBool,
}

impl std::fmt::Display for Lying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lying")
    }
}

impl Lying {
    fn next(&self) -> Option<Lie> {
        let lie = self.script.lock().unwrap().pop_front()?;
        if lie.is_truthful() {
            return None;
        }
        self.lied.store(true, Ordering::Relaxed);
        Some(lie)
    }
}

fn failure(f: &Fail, path: &Path) -> os::Error {
    let path = path.to_string();
    let source = "the server says no".into();
    match f {
        Fail::NotFound => os::Error::NotFound { path, source },
        Fail::Precondition => os::Error::Precondition { path, source },
        Fail::AlreadyExists => os::Error::AlreadyExists { path, source },
        Fail::Server => os::Error::Generic {
            store: "Lying",
            source,
        },
    }
}

fn lie_size(size: u64, s: &Size) -> u64 {
    match s {
        Size::True => size,
        Size::Plus(n) => size.saturating_add(u64::from(*n)),
        Size::Minus(n) => size.saturating_sub(u64::from(*n)),
        Size::Huge(n) => n | 1 << 40,
    }
}

fn lie_range(r: Range<u64>, size: u64, l: &RangeLie) -> Range<u64> {
    match l {
        RangeLie::True => r,
        RangeLie::Whole => 0..size,
        RangeLie::Reversed => r.end..r.start,
        RangeLie::Shift(d) => {
            let d = i64::from(*d);
            let f = |x: u64| x.saturating_add_signed(d);
            f(r.start)..f(r.end)
        }
        RangeLie::Any(a, b) => *a..*b,
    }
}

fn lie_body(body: bytes::Bytes, l: &Body) -> Vec<bytes::Bytes> {
    match l {
        Body::True => vec![body],
        Body::Truncate(n) => vec![body.slice(..body.len().saturating_sub(usize::from(*n)))],
        Body::Extend(more) => vec![body, bytes::Bytes::from(more.clone())],
        Body::Split(n) => body
            .chunks(usize::from(*n).max(1))
            .map(bytes::Bytes::copy_from_slice)
            .collect(),
        Body::Replace(b) => vec![bytes::Bytes::from(b.clone())],
    }
}

#[async_trait::async_trait]
impl ObjectStore for Lying {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> os::Result<PutResult> {
        let lie = self.next();
        if let Some(f) = lie.as_ref().and_then(|l| l.fail.as_ref()) {
            return Err(failure(f, location));
        }
        let mut r = self.inner.put_opts(location, payload, opts).await?;
        if let Some(Lie { etag: Some(e), .. }) = lie {
            r.e_tag = e;
        }
        Ok(r)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> os::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> os::Result<GetResult> {
        let lie = self.next();
        if let Some(f) = lie.as_ref().and_then(|l| l.fail.as_ref()) {
            return Err(failure(f, location));
        }
        let head = options.head;
        let asked = options.range.clone();
        let r = self.inner.get_opts(location, options).await?;
        let Some(lie) = lie else {
            return Ok(r);
        };
        let GetResult {
            payload,
            mut meta,
            range,
            attributes,
            extensions,
        } = r;
        let true_size = meta.size;
        let mut body = Vec::new();
        // Irrefutable unless object_store's `fs` feature is on.
        #[allow(irrefutable_let_patterns)]
        if let GetResultPayload::Stream(mut s) = payload {
            while let Some(b) = s.next().await {
                body.extend_from_slice(&b?);
            }
        }
        meta.size = lie_size(true_size, &lie.size);
        if let Some(e) = lie.etag {
            meta.e_tag = e;
        }
        let range = lie_range(range, true_size, &lie.range);
        let parts = if head {
            Vec::new()
        } else {
            lie_body(body.into(), &lie.body)
        };
        // What the response says the body holds: the object for a whole
        // GET, from the offset to the claimed end for an open range (a
        // bounded or suffix range asks for a few bytes whatever the
        // object's size, and may be read).
        let claimed = match asked {
            None => meta.size,
            Some(GetRange::Offset(o)) => meta.size.saturating_sub(o),
            Some(GetRange::Bounded(_) | GetRange::Suffix(_)) => 0,
        };
        let stream = futures::stream::iter(parts).map(move |b| {
            // The oversized-object refusal: decided from the claimed size
            // before the body is read.
            assert!(
                claimed <= NEVER_READ,
                "the body of a response claiming {claimed} bytes was read"
            );
            Ok(b)
        });
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream.boxed()),
            meta,
            range,
            attributes,
            extensions,
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, os::Result<Path>>,
    ) -> BoxStream<'static, os::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, os::Result<ObjectMeta>> {
        let lie = self.next();
        let inner = self.inner.list(prefix);
        match lie {
            None => inner,
            Some(lie) => match lie.fail {
                Some(f) => {
                    let e = failure(&f, prefix.unwrap_or(&Path::from("")));
                    futures::stream::iter([Err(e)]).boxed()
                }
                None => inner
                    .map(move |m| {
                        m.map(|mut m| {
                            m.size = lie_size(m.size, &lie.size);
                            m
                        })
                    })
                    .boxed(),
            },
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> os::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> os::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[derive(Arbitrary, Debug)]
enum Edit {
    /// Replace bytes `at..at + remove` of the metadata with `insert`.
    Meta {
        at: u16,
        remove: u8,
        insert: Vec<u8>,
    },
    /// The same in chunk object number `which` (of those stored).
    Chunk {
        which: u8,
        at: u16,
        remove: u8,
        insert: Vec<u8>,
    },
    /// Remove an object.
    Remove(u8),
}

type Region = [(u8, u8); 2];

#[derive(Arbitrary, Debug)]
enum Op {
    Read(Region),
    Get([u8; 2]),
    Write(Region, u8),
    Flush,
    Resize(u8),
    Report,
    /// Sets attribute `k{n % 4}` to `n` (a conditional update of
    /// `zarr.json`), or removes it when `n` is odd.
    Attrs(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Axis lengths and chunk lengths (1-8), one or two axes.
    shape: [u8; 2],
    chunks: [u8; 2],
    two_axes: bool,
    dtype: u8,
    codec: u8,
    /// Shards of two chunks along the first axis.
    sharded: bool,
    edits: Vec<Edit>,
    writable: bool,
    lies: Vec<Lie>,
    ops: Vec<Op>,
}

fn splice(b: &[u8], at: u16, remove: u8, insert: &[u8]) -> Vec<u8> {
    let at = usize::from(at).min(b.len());
    let end = (at + usize::from(remove)).min(b.len());
    [&b[..at], insert, &b[end..]].concat()
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    futures::executor::block_on(f)
}

fn selection(shape: &[u64], r: &Region) -> ResolvedSelection {
    ResolvedSelection::from_axes(
        shape
            .iter()
            .zip(r)
            .map(|(&n, &(start, count))| {
                let start = u64::from(start) % n.max(1);
                let count = u64::from(count).min(n - start.min(n));
                AxisSel::Range {
                    start,
                    step: 1,
                    count,
                }
            })
            .collect(),
    )
}

/// The bytes of `sel` (one or two axes, unit steps) of the C-order
/// array `data` of `shape`.
fn expected(data: &[u8], shape: &[u64], sel: &ResolvedSelection, elem: usize) -> Vec<u8> {
    let range = |a: &AxisSel| match *a {
        AxisSel::Range { start, count, .. } => start..start + count,
        _ => unreachable!("selection() makes ranges"),
    };
    let axes = sel.axes();
    let (rows, cols, ncols) = match axes {
        [r] => (0..1, range(r), shape[0]),
        [r, c] => (range(r), range(c), shape[1]),
        _ => unreachable!("one or two axes"),
    };
    let mut out = Vec::new();
    for i in rows {
        for j in cols.clone() {
            let at = (i * ncols + j) as usize * elem;
            out.extend_from_slice(&data[at..at + elem]);
        }
    }
    out
}

fn open(writable: bool) -> chunkyard::Result<ArrayHandle> {
    let opts = OpenOptions::new()
        .read_only(!writable)
        .cache(ChunkCache::new(256));
    ArrayHandle::open(URL, &opts)
}

fuzz_target!(|input: Input| {
    let ndim = if input.two_axes { 2 } else { 1 };
    let shape: Vec<u64> = input.shape[..ndim]
        .iter()
        .map(|&n| u64::from(n % 8 + 1))
        .collect();
    let dtype = [DType::U8, DType::I32, DType::F64][usize::from(input.dtype % 3)];
    let codec = [
        Codec::None,
        Codec::Lz4,
        Codec::Zstd { level: 1 },
        Codec::Gzip { level: 1 },
    ][usize::from(input.codec % 4)];
    let chunks: Vec<u64> = input.chunks[..ndim]
        .iter()
        .map(|&n| u64::from(n % 8 + 1))
        .collect();
    let mut options = ArrayOptions::new(shape.clone())
        .chunks(chunks.clone())
        .codec(codec);
    if input.sharded {
        let mut shards = chunks.clone();
        shards[0] *= 2;
        options = options.shards(shards);
    }

    let store = Arc::new(Lying {
        inner: InMemory::new(),
        script: Mutex::new(VecDeque::new()),
        lied: AtomicBool::new(false),
    });
    let elem = dtype.size();
    let n: u64 = shape.iter().product();
    let data: Vec<u8> = (0..n as usize * elem).map(|i| (i * 7 + 3) as u8).collect();
    let all = selection(&shape, &[(0, 255), (0, 255)]);

    // The array as an honest server holds it.
    let made = with_object_store(store.clone(), || -> chunkyard::Result<()> {
        let a = ArrayHandle::create(URL, dtype, &options)?;
        a.write_bytes(&all, &data)?;
        a.flush()
    });
    made.expect("an honest in-memory store");

    // Edits to the stored objects.
    let objects: Vec<Path> = block_on(
        store
            .inner
            .list(None)
            .map(|m| m.unwrap().location)
            .collect(),
    );
    let meta_path = Path::from("a.zarr/zarr.json");
    let chunk_paths: Vec<&Path> = objects.iter().filter(|p| **p != meta_path).collect();
    for e in &input.edits {
        let (path, at, remove, insert) = match e {
            Edit::Meta { at, remove, insert } => (&meta_path, at, remove, insert),
            Edit::Chunk {
                which,
                at,
                remove,
                insert,
            } => {
                if chunk_paths.is_empty() {
                    continue;
                }
                let p = chunk_paths[usize::from(*which) % chunk_paths.len()];
                (p, at, remove, insert)
            }
            Edit::Remove(which) => {
                let p = &objects[usize::from(*which) % objects.len()];
                let _ = block_on(store.inner.delete(p));
                continue;
            }
        };
        let Ok(old) = block_on(async { store.inner.get(path).await?.bytes().await }) else {
            continue;
        };
        let new = splice(&old, *at, *remove, insert);
        block_on(store.inner.put(path, new.into())).unwrap();
    }
    let edited = !input.edits.is_empty();

    // The lies, then the operations.
    store
        .script
        .lock()
        .unwrap()
        .extend(input.lies.iter().take(16).cloned());
    with_object_store(store.clone(), || {
        let Ok(a) = open(input.writable) else {
            return;
        };
        let mut shape = a.shape().to_vec();
        if shape.len() != ndim || a.dtype() != dtype {
            assert!(edited, "an unedited array opened as another");
            return;
        }
        for op in input.ops.iter().take(16) {
            match op {
                Op::Read(r) => {
                    let sel = selection(&shape, r);
                    let mut out = vec![0u8; sel.num_elements() as usize * elem];
                    let got = a.read_bytes(&sel, &mut out);
                    let honest = !edited && !input.writable && !store.lied.load(Ordering::Relaxed);
                    if honest && shape[..] == a.shape()[..] {
                        got.expect("an honest read");
                        assert_eq!(out, expected(&data, &shape, &sel, elem), "{sel:?}");
                    }
                }
                Op::Get(i) => {
                    let index: Vec<u64> = shape
                        .iter()
                        .zip(i)
                        .map(|(&n, &i)| u64::from(i) % n.max(1))
                        .collect();
                    let mut out = vec![0u8; elem];
                    let _ = a.get_bytes(&index, &mut out);
                }
                Op::Write(r, v) => {
                    let sel = selection(&shape, r);
                    let buf = vec![*v; sel.num_elements() as usize * elem];
                    let _ = a.write_bytes(&sel, &buf);
                }
                Op::Flush => {
                    let _ = a.flush();
                }
                Op::Resize(len) => {
                    if a.resize(u64::from(*len % 12)).is_ok() {
                        shape = a.shape().to_vec();
                    }
                }
                Op::Report => {
                    let _ = a.memory_report().to_string();
                }
                Op::Attrs(n) => {
                    let key = format!("k{}", n % 4);
                    let set = a.update_attrs(|m| {
                        if n % 2 == 1 {
                            m.remove(&key);
                        } else {
                            m.insert(key.clone(), (*n).into());
                        }
                        Ok(())
                    });
                    // What this handle shows follows a change that landed.
                    if set.is_ok() && n % 2 == 0 {
                        assert_eq!(a.attrs().get(&key), Some(&(*n).into()));
                    }
                }
            }
        }
        // Not a drop: that would print its failure to stderr.
        let _ = a.close();
    });
});
