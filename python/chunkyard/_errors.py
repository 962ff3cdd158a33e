"""chunkyard's own exceptions. Everything else it raises is a builtin that
numpy, h5py and file-object users already catch (FileNotFoundError,
PermissionError, FileExistsError, IndexError, TypeError, ValueError,
io.UnsupportedOperation); these are for the failures only chunkyard has,
and each is also the builtin it is closest to."""


class ChunkyardError(Exception):
    """Base of chunkyard's own exceptions."""


class FormatError(ChunkyardError, ValueError):
    """A file that is not a valid array of its format (corrupt or
    truncated)."""


class StoreError(ChunkyardError, OSError):
    """A storage backend failed (an I/O error inside the npy, Zarr or HDF5
    store that is not about one named file)."""


class PoisonedError(StoreError):
    """The array refuses writes after an earlier write-back or flush
    failed (fail closed): reopen it to go on."""
