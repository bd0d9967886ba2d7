"""The errors of a batch job, and the check that its optional extra is installed."""
from __future__ import annotations

from .._errors import XattrError


class BatchError(XattrError, RuntimeError):
    """A batch job cannot start or continue (store, settings or input problems)."""


class JobMismatchError(BatchError):
    """Resuming a store with a job description different from the stored one."""


class ImageReadError(BatchError):
    """An image file of the input folder cannot be read (``path`` and ``index`` say which)."""
    def __init__(self, message, path=None, index=None):
        super().__init__(message)
        self.path, self.index = path, index

    def __reduce__(self):  # keep path/index through pickling (process and cluster workers)
        return (type(self), (self.args[0], self.path, self.index))


def _require_extra():
    """Import dask and zarr, or explain how to get them."""
    try:
        import dask  # noqa: F401
        import zarr  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"xattr.batch needs the optional extra 'batch' (dask, distributed, zarr): "
            f"pip install 'xattr-ref[batch]'; missing module: {exc.name}"
        ) from exc
