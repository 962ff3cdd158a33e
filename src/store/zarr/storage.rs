//! Where a Zarr array's keys live: a local directory ([`DirStorage`]) or,
//! with the `s3` feature, a prefix in an S3 bucket ([`S3Storage`]). One
//! enum rather than a trait object so that `zarrs::Array` keeps one
//! concrete storage type and the directory's extra duties (syncing
//! directories, stale temporaries) stay plain method calls.

use std::io;
use std::path::PathBuf;

use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    Bytes, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits, StorageError, StoreKey,
    StorePrefix, WritableStorageTraits,
};

use super::fs::DirStorage;
#[cfg(feature = "s3")]
use super::s3::S3Storage;

#[derive(Debug)]
pub(crate) enum Storage {
    Dir(DirStorage),
    #[cfg(feature = "s3")]
    S3(S3Storage),
}

/// Calls the same method on whichever storage this is.
macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Storage::Dir($s) => $e,
            #[cfg(feature = "s3")]
            Storage::S3($s) => $e,
        }
    };
}

impl Storage {
    /// The file (or object URL) that holds `key`.
    pub(crate) fn key_path(&self, key: &StoreKey) -> PathBuf {
        each!(self, s => s.key_path(key))
    }

    /// Makes what was written durable: directories fsynced; objects are
    /// durable once their PUT returned.
    pub(crate) fn sync(&self) -> io::Result<()> {
        match self {
            Storage::Dir(d) => d.sync(),
            #[cfg(feature = "s3")]
            Storage::S3(_) => Ok(()),
        }
    }

    /// The directory storage, if this is one.
    pub(crate) fn dir(&self) -> Option<&DirStorage> {
        match self {
            Storage::Dir(d) => Some(d),
            #[cfg(feature = "s3")]
            Storage::S3(_) => None,
        }
    }

    /// The object storage, if this is one.
    #[cfg(feature = "s3")]
    pub(crate) fn s3(&self) -> Option<&S3Storage> {
        match self {
            Storage::S3(s) => Some(s),
            Storage::Dir(_) => None,
        }
    }
}

impl ReadableStorageTraits for Storage {
    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, StorageError> {
        each!(self, s => s.get_partial_many(key, byte_ranges))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        each!(self, s => s.size_key(key))
    }

    fn supports_get_partial(&self) -> bool {
        each!(self, s => s.supports_get_partial())
    }
}

impl WritableStorageTraits for Storage {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        each!(self, s => s.set(key, value))
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        offset_values: OffsetBytesIterator,
    ) -> Result<(), StorageError> {
        each!(self, s => s.set_partial_many(key, offset_values))
    }

    fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        each!(self, s => s.erase(key))
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
        each!(self, s => s.erase_prefix(prefix))
    }

    fn supports_set_partial(&self) -> bool {
        each!(self, s => s.supports_set_partial())
    }
}
