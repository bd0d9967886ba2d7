"""Reading files in bounded memory."""
from __future__ import annotations

import hashlib


def sha256_of_file(path, block=1 << 20):
    """SHA-256 hex digest of a file's content, read in ``block``-byte pieces (bounded memory for any size).

    Parameters
    ----------
    path : str or os.PathLike
    block : int
        Bytes per read (default 1 MiB).

    Returns
    -------
    str, 64 hex digits
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(block), b""):
            h.update(piece)
    return h.hexdigest()
