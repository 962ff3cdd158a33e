//! Zarr arrays in S3-compatible object storage (`s3://bucket/prefix`),
//! feature `s3`: zarrs storage over `object_store`'s S3 client.
//!
//! Why not `zarrs_object_store`: its adapter maps zarrs' storage traits
//! onto `object_store` one to one, which leaves no way to make the writes
//! this store needs conditional (`zarr.json` created with
//! `If-None-Match: *`, metadata updated with `If-Match`) or to name the URL
//! and the fix in errors. The same client, driven directly, does both.
//!
//! # The runtime
//!
//! `object_store` is async; chunkyard's API is not. One process-wide tokio
//! runtime (two worker threads, built on first use) runs every request:
//! a caller's thread spawns the request onto it and waits on the join
//! handle with a plain executor, never with tokio's `block_on`. So a call
//! from inside another tokio runtime (even on one of its worker threads)
//! works instead of panicking ("cannot start a runtime from within a
//! runtime"); it blocks that thread like any synchronous I/O would. The
//! runtime's own threads only run requests, which never call back into
//! chunkyard, so they cannot deadlock waiting on themselves.
//!
//! # Configuration
//!
//! The standard AWS variables, read by `AmazonS3Builder::from_env`:
//! `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION` (default `us-east-1`),
//! `AWS_ALLOW_HTTP`, each overridden by [`S3Options`] when set there.
//! Requests are retried ([`retry_config`]: 6 times,
//! backoff from 50 ms, 30 s in all).

use std::cell::RefCell;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, AwsCredential};
use object_store::path::Path as ObjPath;
use object_store::{
    BackoffConfig, ClientConfigKey, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig, StaticCredentialProvider, UpdateVersion,
};
use zarrs::storage::byte_range::{ByteRange, ByteRangeIterator};
use zarrs::storage::{
    Bytes, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits, StorageError, StoreKey,
    StorePrefix, WritableStorageTraits,
};

use super::s3options::S3Options;
use crate::error::{Error, Result};

/// How object_store retries a request that failed with a 5xx, 429 or 408
/// answer or a connection error (a lost connection too, even for a
/// conditional PUT: its retry that finds its own earlier attempt landed
/// gets 412, and the merging write path then re-reads and re-applies,
/// which changes nothing). Six retries with jittered backoff from 50 ms,
/// at most 1 s apart, 30 s in all: a request survives a server that
/// drops or refuses one request in four with probability 1 - 0.25^7
/// (about 0.99994), and an unreachable endpoint fails within about three
/// seconds rather than object_store's default three minutes. Timeouts
/// are object_store's: 5 s to connect, 30 s per request.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 6,
        retry_timeout: Duration::from_secs(30),
    }
}

/// Chunk writes a flush keeps in flight at once (each blocks a thread of
/// the flush on a request the shared runtime drives).
pub(crate) const CONCURRENT_REQUESTS: usize = 32;

/// The scheme chunkyard accepts for object storage.
pub(crate) const SCHEME: &str = "s3://";

/// The process-wide runtime, built on first use in each process. A child
/// made by `fork` has a copy of the parent's runtime but none of its
/// threads (a fork copies only the calling thread), so a request spawned
/// onto it would wait forever: the child builds a runtime of its own.
/// Runtimes are leaked, never dropped: dropping the child's copy of the
/// parent's would wait for worker threads that do not exist there, and a
/// runtime lives as long as the process anyway.
fn runtime() -> std::result::Result<&'static tokio::runtime::Runtime, String> {
    static RT: parking_lot::Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> =
        parking_lot::Mutex::new(None);
    let pid = std::process::id();
    let mut slot = RT.lock();
    if let Some((owner, rt)) = *slot
        && owner == pid
    {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("chunkyard-s3")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the S3 client's runtime: {e}"))?;
    let rt: &'static tokio::runtime::Runtime = Box::leak(Box::new(rt));
    *slot = Some((pid, rt));
    Ok(rt)
}

/// Runs one request on the shared runtime and waits for it on this
/// thread (see the module docs: safe inside another runtime).
fn run<T: Send + 'static>(
    fut: impl Future<Output = object_store::Result<T>> + Send + 'static,
) -> object_store::Result<T> {
    let rt = runtime().map_err(|e| object_store::Error::Generic {
        store: "S3",
        source: e.into(),
    })?;
    let handle = rt.spawn(fut);
    match futures::executor::block_on(handle) {
        Ok(r) => r,
        Err(source) => Err(object_store::Error::JoinError { source }),
    }
}

/// A parsed `s3://bucket/prefix` URL (no trailing slash on the prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct S3Url {
    pub(crate) bucket: String,
    pub(crate) prefix: String,
}

impl S3Url {
    pub(crate) fn parse(url: &str) -> Result<S3Url> {
        let rest = url.strip_prefix(SCHEME).ok_or_else(|| {
            Error::invalid(format!("{url}: an object storage URL starts with {SCHEME}"))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_end_matches('/');
        if bucket.is_empty() || prefix.is_empty() {
            return Err(Error::invalid(format!(
                "{url}: expected s3://BUCKET/PREFIX/NAME.zarr (an array needs its own prefix)"
            )));
        }
        if prefix
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(Error::invalid(format!(
                "{url}: empty, '.' or '..' parts in the object prefix"
            )));
        }
        Ok(S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// The largest object a whole GET reads before the array's chunk size is
/// known (metadata: `zarr.json`, `.zarray`, `.zattrs`).
pub(crate) const METADATA_LIMIT: u64 = 64 << 20;

/// The largest object that can hold a chunk of `n` decoded bytes: more
/// than any codec chunkyard reads makes of it (zstd, gzip and LZ4 add a
/// few bytes per 128, Blosc a 16-byte header). A larger object is corrupt
/// and is refused from its `Content-Length`, before its body is read, so
/// an object that claims gigabytes costs nothing.
pub(crate) fn chunk_object_limit(n: usize) -> u64 {
    n as u64 + n as u64 / 8 + (64 << 10)
}

/// An object larger than the reader will hold in memory (see
/// [`chunk_object_limit`]).
#[derive(Debug)]
pub(crate) struct TooLarge {
    pub(crate) size: u64,
    pub(crate) limit: u64,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the object holds {} bytes, more than a chunk of this array can be ({} at most): \
             corrupt or not this array's; not read",
            self.size, self.limit
        )
    }
}

impl std::error::Error for TooLarge {}

fn too_large(size: u64, limit: u64) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: Box::new(TooLarge { size, limit }),
    }
}

/// The [`TooLarge`] an error carries, if it is one.
pub(crate) fn as_too_large(e: &object_store::Error) -> Option<&TooLarge> {
    match e {
        object_store::Error::Generic { source, .. } => source.downcast_ref::<TooLarge>(),
        _ => None,
    }
}

/// An object whose size is not the one its reader needs exactly (a raw
/// chunk: its decoded size), from its `Content-Length` or its body.
#[derive(Debug)]
pub(crate) struct WrongSize {
    pub(crate) size: u64,
    pub(crate) want: u64,
}

impl std::fmt::Display for WrongSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the object holds {} bytes where an uncompressed chunk of this array holds {}: \
             truncated, corrupt or not this array's",
            self.size, self.want
        )
    }
}

impl std::error::Error for WrongSize {}

fn wrong_size(size: u64, want: u64) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: Box::new(WrongSize { size, want }),
    }
}

/// The [`WrongSize`] an error carries, if it is one.
pub(crate) fn as_wrong_size(e: &object_store::Error) -> Option<&WrongSize> {
    match e {
        object_store::Error::Generic { source, .. } => source.downcast_ref::<WrongSize>(),
        _ => None,
    }
}

/// The version of an object a conditional write expects.
pub(crate) type Version = UpdateVersion;

thread_local! {
    /// The store [`with_object_store`] put in place of the S3 client.
    static INJECTED: RefCell<Option<Arc<dyn ObjectStore>>> = const { RefCell::new(None) };
}

/// Runs `f` with `store` in place of the S3 client: every array opened
/// or created at an `s3://` URL on this thread during `f` sends its
/// requests to `store` (the AWS_* variables are not read). The seam of
/// the `s3_responses` fuzz target, which answers requests with object
/// sizes, ranges, bodies and ETags no well-behaved server sends; nothing
/// else in chunkyard uses it. Not part of the API.
#[doc(hidden)]
pub fn with_object_store<R>(store: Arc<dyn ObjectStore>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<dyn ObjectStore>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            INJECTED.with(|i| *i.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(INJECTED.with(|i| i.borrow_mut().replace(store)));
    f()
}

/// Collects a GET's body, refusing one that is not exactly `want` bytes
/// long. Not `GetResult::bytes`: that reserves the length the response's
/// range claims (and subtracts its ends unchecked), so a lying response
/// could make it allocate what it claims. Here at most `want` bytes (the
/// caller checked it against its limit) are held, whatever the body.
async fn body_of(
    g: object_store::GetResult,
    want: u64,
    what: impl FnOnce(u64) -> String,
) -> object_store::Result<Bytes> {
    let mut stream = g.into_stream();
    let mut parts: Vec<Bytes> = Vec::new();
    let mut got = 0u64;
    while let Some(part) = stream.next().await {
        let part = part?;
        got = got.saturating_add(part.len() as u64);
        if got > want {
            return Err(length_mismatch(what(got)));
        }
        parts.push(part);
    }
    if got != want {
        return Err(length_mismatch(what(got)));
    }
    Ok(match parts.len() {
        0 => Bytes::new(),
        1 => parts.pop().expect("one part"),
        _ => parts.concat().into(),
    })
}

fn length_mismatch(message: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: message.into(),
    }
}

/// zarrs storage over one array's prefix in an S3 bucket.
#[derive(Debug)]
pub(crate) struct S3Storage {
    /// The S3 client (or, in the fuzz target, [`with_object_store`]'s).
    store: Arc<dyn ObjectStore>,
    /// `s3://bucket/prefix`, as the user wrote it (minus a trailing `/`).
    url: String,
    bucket: String,
    prefix: String,
    /// The endpoint requests go to (for error messages).
    endpoint: String,
    /// Where the credentials came from, for "check ..." in errors.
    credentials_hint: &'static str,
    /// Where the endpoint came from, for "check ..." in errors.
    endpoint_hint: &'static str,
    writable: bool,
    /// The largest object a whole (or open-ended ranged) GET through
    /// zarrs' storage traits reads: [`METADATA_LIMIT`] until the array is
    /// open, then also the largest chunk object ([`Self::limit_to_chunks_of`]).
    whole_limit: AtomicU64,
}

/// Environment variables that configure the client, read here only to
/// check them and to name the endpoint in errors.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn truthy(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

impl S3Storage {
    /// A client for the array at `url`, configured by `opts` over the
    /// environment (an option set there wins over its variable). Sends no
    /// request.
    pub(crate) fn new(url: &str, writable: bool, opts: &S3Options) -> Result<S3Storage> {
        let parsed = S3Url::parse(url)?;
        let url = format!("{SCHEME}{}/{}", parsed.bucket, parsed.prefix);
        if let Some(store) = INJECTED.with(|i| i.borrow().clone()) {
            return Ok(S3Storage {
                store,
                url,
                bucket: parsed.bucket,
                prefix: parsed.prefix,
                endpoint: "the injected object store".into(),
                credentials_hint: "the injected object store",
                endpoint_hint: "the injected object store",
                writable,
                whole_limit: AtomicU64::new(METADATA_LIMIT),
            });
        }
        let endpoint = opts
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| env("AWS_ENDPOINT"));
        let allow_http = opts
            .allow_http
            .unwrap_or_else(|| env("AWS_ALLOW_HTTP").is_some_and(|v| truthy(&v)));
        if let Some(ep) = &endpoint
            && ep.starts_with("http://")
            && !allow_http
        {
            return Err(Error::invalid(format!(
                "{url}: the endpoint {ep} is plain http; set AWS_ALLOW_HTTP=true (or the \
                 option allow_http) to allow it, or use https"
            )));
        }
        let mut retry = retry_config();
        if let Some(n) = opts.retries {
            retry.max_retries = n;
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&parsed.bucket)
            .with_retry(retry)
            .with_allow_http(allow_http);
        if let Some(ep) = &endpoint {
            // S3-compatible servers (moto, MinIO, Ceph) want path-style
            // requests; virtual-hosted style needs DNS for the bucket.
            builder = builder
                .with_endpoint(ep)
                .with_virtual_hosted_style_request(false);
        }
        match &opts.region {
            Some(r) => builder = builder.with_region(r),
            None if env("AWS_REGION").is_none() && env("AWS_DEFAULT_REGION").is_none() => {
                builder = builder.with_region("us-east-1");
            }
            None => {}
        }
        if let Some(t) = opts.timeout {
            // Through the config key, not `with_client_options`, which
            // would drop the client options read from the environment.
            builder = builder.with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                format!("{}ms", t.as_millis().max(1)),
            );
        }
        match (&opts.access_key_id, &opts.secret_access_key) {
            (Some(id), Some(secret)) => {
                // Explicit credentials replace the environment's as a
                // set: a token from the environment belongs to its key.
                let credential = AwsCredential {
                    key_id: id.clone(),
                    secret_key: secret.clone(),
                    token: opts.session_token.clone(),
                };
                builder =
                    builder.with_credentials(Arc::new(StaticCredentialProvider::new(credential)));
            }
            (None, None) => {
                if let Some(token) = &opts.session_token {
                    builder = builder.with_token(token);
                }
            }
            _ => {
                return Err(Error::invalid(format!(
                    "{url}: the options give an access key id or a secret access key without \
                     the other (key and secret go together)"
                )));
            }
        }
        let explicit = opts.access_key_id.is_some() || opts.session_token.is_some();
        let store = builder.build().map_err(|e| {
            Error::invalid(format!(
                "{url}: cannot configure the S3 client: {e} (check the AWS_* variables and \
                 the S3 options)"
            ))
        })?;
        Ok(S3Storage {
            store: Arc::new(store),
            url,
            bucket: parsed.bucket,
            prefix: parsed.prefix,
            endpoint: endpoint.clone().unwrap_or_else(|| "AWS S3".into()),
            credentials_hint: if explicit {
                "the key, secret and token options"
            } else {
                "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN"
            },
            endpoint_hint: if opts.endpoint.is_some() {
                "the endpoint_url option"
            } else {
                "AWS_ENDPOINT_URL"
            },
            writable,
            whole_limit: AtomicU64::new(METADATA_LIMIT),
        })
    }

    /// From now on whole GETs may read chunk objects of chunks of
    /// `chunk_bytes` decoded bytes, and no larger objects.
    pub(crate) fn limit_to_chunks_of(&self, chunk_bytes: usize) {
        self.whole_limit.store(
            METADATA_LIMIT.max(chunk_object_limit(chunk_bytes)),
            Ordering::Relaxed,
        );
    }

    /// `s3://bucket/prefix`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    fn object(&self, key: &str) -> ObjPath {
        ObjPath::from(format!("{}/{key}", self.prefix))
    }

    /// The URL of a key, for messages (`PathBuf` because the store's error
    /// types carry paths).
    pub(crate) fn key_path(&self, key: &StoreKey) -> PathBuf {
        PathBuf::from(format!("{}/{}", self.url, key.as_str()))
    }

    /// One line that says what went wrong with a request for `what` (a
    /// URL) and how to fix it.
    pub(crate) fn describe(&self, what: &str, e: &object_store::Error) -> String {
        if let Some(t) = as_too_large(e) {
            return format!("{what}: {t}");
        }
        let text = error_chain(e);
        let lower = text.to_ascii_lowercase();
        let has = |s: &str| lower.contains(&s.to_ascii_lowercase());
        if has("NoSuchBucket") || has("bucket does not exist") {
            format!(
                "{what}: the bucket {:?} does not exist at {}; create it (aws s3 mb s3://{}) or fix the URL",
                self.bucket, self.endpoint, self.bucket
            )
        } else if has("InvalidAccessKeyId")
            || has("SignatureDoesNotMatch")
            || has("InvalidToken")
            || has("ExpiredToken")
            || matches!(
                e,
                object_store::Error::Unauthenticated { .. }
                    | object_store::Error::PermissionDenied { .. }
            )
        {
            format!(
                "{what}: access denied by {} (bad or missing credentials: check {}): {}",
                self.endpoint,
                self.credentials_hint,
                s3_error_code(&text).unwrap_or_else(|| first_line(&text))
            )
        } else if has("error sending request")
            || has("connection refused")
            || has("dns error")
            || has("timed out")
            || has("connect error")
        {
            format!(
                "{what}: cannot reach the endpoint {} ({}); check {} and that the server is \
                 running",
                self.endpoint,
                first_line(&root_cause(e)),
                self.endpoint_hint
            )
        } else if has("URL scheme is not allowed") || has("builder error") {
            format!(
                "{what}: the endpoint {} is plain http; set AWS_ALLOW_HTTP=true (or the option \
                 allow_http) to allow it",
                self.endpoint
            )
        } else {
            format!(
                "{what}: {}",
                s3_error_code(&text).unwrap_or_else(|| first_line(&text))
            )
        }
    }

    /// A request error as chunkyard's error for `what`.
    pub(crate) fn error(&self, what: &str, e: &object_store::Error) -> Error {
        Error::Store {
            backend: "zarr",
            message: self.describe(what, e),
        }
    }

    fn storage_error(&self, key: &str, e: &object_store::Error) -> StorageError {
        StorageError::Other(self.describe(&format!("{}/{key}", self.url), e))
    }

    fn check_writable(&self) -> std::result::Result<(), StorageError> {
        if self.writable {
            Ok(())
        } else {
            Err(StorageError::ReadOnly)
        }
    }

    /// The object at `key` with its version, or `None` if there is none.
    /// An object over `limit` bytes is an error ([`TooLarge`]) and its
    /// body is not read.
    pub(crate) fn get_versioned(
        &self,
        key: &str,
        limit: u64,
    ) -> object_store::Result<Option<(Bytes, Version)>> {
        let (store, path) = (self.store.clone(), self.object(key));
        run(async move {
            match store.get_opts(&path, GetOptions::default()).await {
                Ok(r) if r.meta.size > limit => Err(too_large(r.meta.size, limit)),
                Ok(r) => {
                    let version = Version {
                        e_tag: r.meta.e_tag.clone(),
                        version: r.meta.version.clone(),
                    };
                    let size = r.meta.size;
                    let body = body_of(r, size, |got| {
                        format!("the object holds {size} bytes, its body had {got}")
                    })
                    .await?;
                    Ok(Some((body, version)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// Reads the object at `key`, which must hold exactly `out.len()`
    /// bytes, straight into `out`: the body streams from the connection
    /// into the caller's buffer a network read at a time (a few in flight
    /// through a bounded channel), never collected into a buffer of its
    /// own. Returns its version, or `None` if there is no object. A size
    /// other than `out.len()` is [`WrongSize`] (from `Content-Length`,
    /// before the body is read; or a body that ends early or runs over).
    pub(crate) fn get_into(
        &self,
        key: &str,
        out: &mut [u8],
    ) -> object_store::Result<Option<Version>> {
        use futures::SinkExt;
        enum Part {
            Head(Option<Version>),
            Body(Bytes),
        }
        let rt = runtime().map_err(|e| object_store::Error::Generic {
            store: "S3",
            source: e.into(),
        })?;
        let (store, path) = (self.store.clone(), self.object(key));
        let want = out.len() as u64;
        // Four parts in flight: hyper's reads are a few KiB to 64 KiB, so
        // the channel holds at most a few hundred KiB beside `out`.
        let (mut tx, mut rx) = futures::channel::mpsc::channel::<object_store::Result<Part>>(4);
        let task = rt.spawn(async move {
            let got = match store.get_opts(&path, GetOptions::default()).await {
                Ok(r) if r.meta.size != want => Err(wrong_size(r.meta.size, want)),
                Ok(r) => Ok(Some(r)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            };
            let r = match got {
                Ok(Some(r)) => r,
                Ok(None) => return drop(tx.send(Ok(Part::Head(None))).await),
                Err(e) => return drop(tx.send(Err(e)).await),
            };
            let version = Version {
                e_tag: r.meta.e_tag.clone(),
                version: r.meta.version.clone(),
            };
            if tx.send(Ok(Part::Head(Some(version)))).await.is_err() {
                return;
            }
            let mut body = r.into_stream();
            while let Some(part) = body.next().await {
                let failed = part.is_err();
                // The reader hung up (it found a fault): stop reading.
                if tx.send(part.map(Part::Body)).await.is_err() || failed {
                    return;
                }
            }
        });
        let next =
            |rx: &mut futures::channel::mpsc::Receiver<_>| futures::executor::block_on(rx.next());
        let version = match next(&mut rx) {
            Some(Ok(Part::Head(v))) => v,
            Some(Err(e)) => return Err(e),
            Some(Ok(Part::Body(_))) | None => {
                // The task ended without a word: it panicked.
                return Err(match futures::executor::block_on(task) {
                    Err(source) => object_store::Error::JoinError { source },
                    Ok(()) => object_store::Error::Generic {
                        store: "S3",
                        source: "the request ended without an answer".into(),
                    },
                });
            }
        };
        let Some(version) = version else {
            return Ok(None);
        };
        let mut at = 0usize;
        while let Some(part) = next(&mut rx) {
            let Part::Body(bytes) = part? else {
                return Err(object_store::Error::Generic {
                    store: "S3",
                    source: "a second answer to one request".into(),
                });
            };
            let end = at + bytes.len();
            if end > out.len() {
                return Err(wrong_size(end as u64, want));
            }
            out[at..end].copy_from_slice(&bytes);
            at = end;
        }
        if at != out.len() {
            return Err(wrong_size(at as u64, want));
        }
        Ok(Some(version))
    }

    /// Writes `key` with a mode: `Create` fails with `AlreadyExists` if
    /// the object exists, `Update` with `Precondition` if its version
    /// changed. One PUT.
    pub(crate) fn put(
        &self,
        key: &str,
        value: Bytes,
        mode: PutMode,
    ) -> object_store::Result<Version> {
        let (store, path) = (self.store.clone(), self.object(key));
        run(async move {
            let opts = PutOptions {
                mode,
                ..PutOptions::default()
            };
            let r = store.put_opts(&path, PutPayload::from(value), opts).await?;
            Ok(Version {
                e_tag: r.e_tag,
                version: r.version,
            })
        })
    }

    /// Keys under `prefix` (relative to the array), all of them.
    fn list_under(&self, sub: &str) -> object_store::Result<Vec<(ObjPath, u64)>> {
        let store = self.store.clone();
        let path = if sub.is_empty() {
            ObjPath::from(self.prefix.as_str())
        } else {
            self.object(sub.trim_end_matches('/'))
        };
        run(async move {
            let mut out = Vec::new();
            let mut s = store.list(Some(&path));
            while let Some(m) = s.next().await {
                let m = m?;
                out.push((m.location, m.size));
            }
            Ok(out)
        })
    }

    /// Bytes stored under the array's prefix.
    pub(crate) fn stored_bytes(&self) -> object_store::Result<u64> {
        Ok(total_size(self.list_under("")?.iter().map(|&(_, n)| n)))
    }

    /// Whether any object exists under the array's prefix.
    pub(crate) fn any_object(&self) -> object_store::Result<bool> {
        Ok(!self.list_under("")?.is_empty())
    }

    fn delete_all(&self, paths: Vec<ObjPath>) -> object_store::Result<()> {
        let store = self.store.clone();
        run(async move {
            for p in paths {
                match store.delete(&p).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    /// Removes every object under the array's prefix.
    pub(crate) fn erase_all(&self) -> object_store::Result<()> {
        let paths = self.list_under("")?.into_iter().map(|(p, _)| p).collect();
        self.delete_all(paths)
    }
}

/// An error and its sources on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// `Code: Message` of an S3 XML error body quoted in an error's text.
fn s3_error_code(text: &str) -> Option<String> {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let len = text[start..].find(&format!("</{name}>"))?;
        Some(text[start..start + len].trim().to_string())
    };
    let code = tag("Code")?;
    Some(match tag("Message") {
        Some(m) => format!("{code}: {m}"),
        None => code,
    })
}

/// The innermost error's message ("Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        last = inner.to_string();
        src = inner.source();
    }
    // object_store wraps reqwest's errors in its own text: its last line
    // of detail is after the final " - ".
    last.rsplit(" - ").next().unwrap_or(&last).to_string()
}

fn first_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn get_range(r: ByteRange) -> GetRange {
    match r {
        ByteRange::FromStart(o, Some(n)) => GetRange::Bounded(o..o.saturating_add(n)),
        ByteRange::FromStart(o, None) => GetRange::Offset(o),
        ByteRange::Suffix(n) => GetRange::Suffix(n),
    }
}

impl ReadableStorageTraits for S3Storage {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> std::result::Result<MaybeBytesIterator<'a>, StorageError> {
        let ranges: Vec<ByteRange> = byte_ranges.collect();
        let (store, path) = (self.store.clone(), self.object(key.as_str()));
        let whole = matches!(ranges.as_slice(), [ByteRange::FromStart(0, None)]);
        let limit = self.whole_limit.load(Ordering::Relaxed);
        // One GET per range (a whole object is one plain GET); a missing
        // object is `None`, a range past its end an error.
        let got = run(async move {
            let mut out = Vec::with_capacity(ranges.len());
            for r in ranges {
                let opts = GetOptions {
                    range: (!whole).then(|| get_range(r)),
                    ..GetOptions::default()
                };
                match store.get_opts(&path, opts).await {
                    Ok(g) => {
                        let size = g.meta.size;
                        // Not `r.length(size)`: it subtracts, and overflows
                        // for an offset past the end of a corrupt shard.
                        let want = match r {
                            ByteRange::FromStart(o, None) => size.saturating_sub(o),
                            ByteRange::FromStart(_, Some(n)) | ByteRange::Suffix(n) => n,
                        };
                        // Checked from the headers: the body of an
                        // oversized object is never read.
                        if want > limit {
                            return Err(too_large(size, limit));
                        }
                        let bytes = body_of(g, want, |got| {
                            format!(
                                "bytes {r} asked for, the object holds {size}: \
                                 the answer had {got}"
                            )
                        })
                        .await?;
                        out.push(bytes);
                    }
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
            Ok(Some(out))
        })
        .map_err(|e| self.storage_error(key.as_str(), &e))?;
        Ok(got.map(|v| {
            Box::new(v.into_iter().map(Ok))
                as Box<dyn Iterator<Item = std::result::Result<Bytes, StorageError>> + 'a>
        }))
    }

    fn size_key(&self, key: &StoreKey) -> std::result::Result<Option<u64>, StorageError> {
        let (store, path) = (self.store.clone(), self.object(key.as_str()));
        run(async move {
            match store.head(&path).await {
                Ok(m) => Ok(Some(m.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .map_err(|e| self.storage_error(key.as_str(), &e))
    }

    fn supports_get_partial(&self) -> bool {
        true
    }
}

impl WritableStorageTraits for S3Storage {
    /// One unconditional PUT (atomic per object on S3).
    fn set(&self, key: &StoreKey, value: Bytes) -> std::result::Result<(), StorageError> {
        self.check_writable()?;
        self.put(key.as_str(), value, PutMode::Overwrite)
            .map(|_| ())
            .map_err(|e| self.storage_error(key.as_str(), &e))
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        _offset_values: OffsetBytesIterator,
    ) -> std::result::Result<(), StorageError> {
        Err(StorageError::Unsupported(format!(
            "{}: objects are written whole",
            self.key_path(key).display()
        )))
    }

    fn erase(&self, key: &StoreKey) -> std::result::Result<(), StorageError> {
        self.check_writable()?;
        self.delete_all(vec![self.object(key.as_str())])
            .map_err(|e| self.storage_error(key.as_str(), &e))
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> std::result::Result<(), StorageError> {
        self.check_writable()?;
        let paths = self
            .list_under(prefix.as_str())
            .map_err(|e| self.storage_error(prefix.as_str(), &e))?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        self.delete_all(paths)
            .map_err(|e| self.storage_error(prefix.as_str(), &e))
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

/// The sum of sizes a listing claims, saturating: the server's sizes are
/// not trusted (two objects claiming `u64::MAX` bytes overflowed the sum;
/// fuzz target `s3_responses`, `fuzz/regressions/s3_responses/`).
fn total_size(sizes: impl Iterator<Item = u64>) -> u64 {
    sizes.fold(0, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_are_refused() {
        let u = S3Url::parse("s3://bkt/a/b.zarr/").unwrap();
        assert_eq!((u.bucket.as_str(), u.prefix.as_str()), ("bkt", "a/b.zarr"));
        for bad in [
            "s3://",
            "s3://bkt",
            "s3://bkt/",
            "s3:///x.zarr",
            "s3://b/a//x.zarr",
            "s3://b/../x.zarr",
        ] {
            assert!(S3Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn s3_error_bodies_shrink_to_code_and_message() {
        let text = "Generic S3 error: 403 Forbidden: <?xml version=\"1.0\"?> <Error>\
                    <Code>InvalidAccessKeyId</Code><Message>No such key.</Message>\
                    <RequestId>x</RequestId></Error>";
        assert_eq!(
            s3_error_code(text).as_deref(),
            Some("InvalidAccessKeyId: No such key.")
        );
        assert_eq!(s3_error_code("connection refused"), None);
    }

    /// A GET whose body is `parts`, and whose response claims the byte
    /// range `range` (object_store's in-memory store answers, then the
    /// answer is made to lie).
    fn lying_get(
        parts: Vec<&'static [u8]>,
        range: std::ops::Range<u64>,
    ) -> object_store::GetResult {
        let store = object_store::memory::InMemory::new();
        let path = ObjPath::from("k");
        run(async move {
            store.put(&path, PutPayload::from_static(b"abcd")).await?;
            let mut g = store.get_opts(&path, GetOptions::default()).await?;
            g.range = range;
            g.payload = object_store::GetResultPayload::Stream(
                futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p)))).boxed(),
            );
            Ok(g)
        })
        .unwrap()
    }

    /// A response's claimed range is never trusted (`GetResult::bytes`
    /// reserves its length, and subtracts its ends unchecked: a reversed
    /// one panics): the body is taken as it comes, and must be exactly
    /// the length asked.
    #[test]
    fn s3_bodies_are_read_by_their_length_not_by_the_claimed_range() {
        let body = |parts, range, want| {
            let g = lying_get(parts, range);
            run(async move { body_of(g, want, |got| format!("had {got}")).await })
        };
        #[allow(clippy::reversed_empty_ranges)]
        let ok = body(vec![b"ab", b"cd"], 9..0, 4).unwrap();
        assert_eq!(&ok[..], b"abcd");
        let ok = body(vec![b"ab", b"cd"], 0..u64::MAX, 4).unwrap();
        assert_eq!(&ok[..], b"abcd");
        for (parts, want) in [
            (vec![&b"ab"[..], b"cd", b"e"], 4),
            (vec![b"ab"], 4),
            (vec![], 1),
        ] {
            let e = body(parts, 0..4, want).unwrap_err().to_string();
            assert!(e.contains("had"), "{e}");
        }
        assert!(body(vec![], 0..0, 0).unwrap().is_empty());
    }

    #[test]
    fn listed_sizes_add_up_without_overflow() {
        assert_eq!(total_size([3, 4].into_iter()), 7);
        assert_eq!(total_size([u64::MAX - 1, 1, 5].into_iter()), u64::MAX);
        assert_eq!(total_size(std::iter::empty()), 0);
    }

    #[test]
    fn a_request_from_inside_another_runtime_does_not_panic() {
        // From a worker thread of a runtime that is not ours: tokio's
        // own `block_on` would panic here.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(async {
            tokio::spawn(async { run(async { Ok::<_, object_store::Error>(41 + 1) }) })
                .await
                .unwrap()
        });
        assert_eq!(r.unwrap(), 42);
    }
}
