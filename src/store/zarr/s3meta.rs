//! Zarr metadata on object storage (feature `s3`): `create` writes
//! `zarr.json` with a conditional create, `open` reads it and writes
//! nothing, `resize` and `update_attributes` update it conditionally on
//! the version they read and retry on a conflict.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::PutMode;
use zarrs::array::{Array as ZArray, ArrayBuilder, ArrayCreateError, ArrayMetadataOptions};
use zarrs::storage::StorageError;

use super::metadata::create_error;
use super::s3::{METADATA_LIMIT, S3Storage};
use super::s3options::S3Options;
use super::{Storage, ZarrInner};
use crate::chunk_grid::ChunkGrid;
use crate::error::{Error, Result};

/// The v3 metadata key (chunkyard creates v3 arrays at the root of the
/// prefix).
const META: &str = "zarr.json";

/// Conflicting metadata updates are retried this many times (with a short
/// growing pause) before `resize` gives up with an error.
const METADATA_ATTEMPTS: u32 = 20;

fn url_of(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

fn exists(path: &Path, why: &str) -> Error {
    Error::io(
        path,
        std::io::Error::new(std::io::ErrorKind::AlreadyExists, why.to_string()),
    )
}

/// Maps zarrs' errors for an array on object storage: our storage's own
/// errors already name the object and the fix.
fn array_error(path: &Path, e: ArrayCreateError) -> Error {
    match e {
        ArrayCreateError::StorageError(StorageError::Other(message)) => Error::Store {
            backend: "zarr",
            message,
        },
        other => create_error(path, other),
    }
}

/// Creates the array: refuses a prefix that holds objects (unless
/// `overwrite`, which removes them first), then writes `zarr.json` with
/// `If-None-Match: *`, so of two creators racing for one URL exactly one
/// succeeds and the other gets `AlreadyExists`.
pub(super) fn create(
    path: &Path,
    builder: &ArrayBuilder,
    grid: ChunkGrid,
    overwrite: bool,
    opts: &S3Options,
) -> Result<ZarrInner> {
    let s3 = S3Storage::new(url_of(path), true, opts)?;
    let url = s3.url().to_string();
    if overwrite {
        s3.erase_all().map_err(|e| s3.error(&url, &e))?;
    } else if s3.any_object().map_err(|e| s3.error(&url, &e))? {
        return Err(exists(
            path,
            "already exists: there are objects under this prefix (set overwrite to replace them)",
        ));
    }
    let storage = Arc::new(Storage::S3(s3));
    let s3 = storage.s3().expect("just made");
    let array = builder
        .build(storage.clone(), "/")
        .map_err(|e| array_error(path, e))?;
    let metadata =
        array.metadata_opt(&ArrayMetadataOptions::default().with_include_zarrs_metadata(false));
    let json = serde_json::to_vec_pretty(&metadata)
        .map_err(|e| Error::invalid(format!("{url}: metadata: {e}")))?;
    let mode = if overwrite {
        PutMode::Overwrite
    } else {
        PutMode::Create
    };
    match s3.put(META, json.into(), mode) {
        Ok(_) => {}
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => {
            return Err(exists(
                path,
                "already exists: another writer created it first (set overwrite to replace it)",
            ));
        }
        Err(e) => return Err(s3.error(&format!("{url}/{META}"), &e)),
    }
    ZarrInner::build(path, storage, array, grid, true)
}

/// Opens the array: one GET of its metadata (v3, else v2), no write even
/// when `writable`.
pub(super) fn open(
    path: &Path,
    writable: bool,
    opts: &S3Options,
) -> Result<(Arc<Storage>, ZArray<Storage>)> {
    let storage = Arc::new(Storage::S3(S3Storage::new(url_of(path), writable, opts)?));
    let s3 = storage.s3().expect("just made");
    match ZArray::open(storage.clone(), "/") {
        Ok(array) => Ok((storage, array)),
        Err(ArrayCreateError::MissingMetadata) => {
            // A missing bucket answers GETs with 404 too: listing tells it
            // apart (and costs a request only on this failure).
            let url = s3.url();
            let any = s3.any_object().map_err(|e| s3.error(url, &e))?;
            Err(Error::format(
                path,
                if any {
                    "not a Zarr array: objects under this prefix but no zarr.json or .zarray"
                } else {
                    "not a Zarr array: nothing under this prefix (create it first)"
                },
            ))
        }
        Err(e) => Err(array_error(path, e)),
    }
}

/// Reads `zarr.json`, lets `edit` change it (the URL for its errors),
/// and writes it back on the condition that it is still the version read
/// (`If-Match`); on a conflict (another writer changed it meanwhile)
/// reads it again and calls `edit` on the newer version. `edit` returns
/// its result and whether the metadata needs writing (if not, the result
/// is returned at once). `what` names the operation in the error after
/// too many conflicts.
fn update_metadata<R>(
    s3: &S3Storage,
    what: &str,
    edit: impl Fn(&mut serde_json::Value, &str) -> Result<(R, bool)>,
) -> Result<R> {
    let url = format!("{}/{META}", s3.url());
    for attempt in 0..METADATA_ATTEMPTS {
        let (bytes, version) = s3
            .get_versioned(META, METADATA_LIMIT)
            .map_err(|e| s3.error(&url, &e))?
            .ok_or_else(|| Error::format(&url, "the metadata was removed by another writer"))?;
        let mut json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::format(&url, e.to_string()))?;
        let (done, write) = edit(&mut json, &url)?;
        if !write {
            return Ok(done);
        }
        let body =
            serde_json::to_vec_pretty(&json).map_err(|e| Error::invalid(format!("{url}: {e}")))?;
        match s3.put(META, body.into(), PutMode::Update(version)) {
            Ok(_) => return Ok(done),
            Err(object_store::Error::Precondition { .. }) => {
                std::thread::sleep(Duration::from_millis(10 << attempt.min(6)));
            }
            Err(e) => return Err(s3.error(&url, &e)),
        }
    }
    Err(store_conflict(&url, what))
}

/// Sets the first axis to `shape[0]` in the stored metadata, conditionally
/// on the version read, re-reading and retrying on a conflict
/// ([`update_metadata`]). The other axes must still be those this process
/// knows; a growth never shrinks an array another writer grew further
/// (appenders racing keep the largest length), a shrink sets the length
/// it asks for.
pub(super) fn resize(s3: &S3Storage, shape: &[u64], growing: bool) -> Result<()> {
    update_metadata(s3, "resize", |json, url| {
        let current: Option<Vec<u64>> = json
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|a| a.iter().map(serde_json::Value::as_u64).collect());
        let Some(current) = current else {
            return Err(Error::format(url, "no shape in the metadata"));
        };
        if current.len() != shape.len() || current[1..] != shape[1..] {
            return Err(Error::format(
                url,
                format!(
                    "another writer changed the shape to {current:?}; this process has {shape:?}"
                ),
            ));
        }
        if growing && current[0] >= shape[0] {
            return Ok(((), false));
        }
        json["shape"] = serde_json::json!(shape);
        Ok(((), true))
    })
}

/// Applies `change` to the attributes of `zarr.json` as stored now and
/// writes the result on the condition that `zarr.json` is still the
/// version read; on a conflict (another writer changed the metadata)
/// applies `change` to the newer version ([`update_metadata`]), so that
/// no writer's change of other keys is lost. Returns the attributes
/// written.
pub(super) fn update_attributes(
    s3: &S3Storage,
    change: &dyn Fn(&mut crate::Attrs) -> Result<()>,
) -> Result<crate::Attrs> {
    update_metadata(s3, "change of attributes", |json, url| {
        let Some(object) = json.as_object_mut() else {
            return Err(Error::format(url, "the metadata is not a JSON object"));
        };
        let mut attrs = match object.remove("attributes") {
            None => crate::Attrs::new(),
            Some(serde_json::Value::Object(m)) => m,
            Some(_) => return Err(Error::format(url, "\"attributes\" is not a JSON object")),
        };
        change(&mut attrs)?;
        if !attrs.is_empty() {
            object.insert(
                "attributes".into(),
                serde_json::Value::Object(attrs.clone()),
            );
        }
        Ok((attrs, true))
    })
}

fn store_conflict(url: &str, what: &str) -> Error {
    Error::Store {
        backend: "zarr",
        message: format!(
            "{url}: the metadata kept changing under {METADATA_ATTEMPTS} conditional updates; \
             retry the {what}"
        ),
    }
}
