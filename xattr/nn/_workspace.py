"""Per-thread scratch buffers that the convolution kernels borrow instead of allocating.

Why: on machines where fresh memory is expensive, a chunked method (IG, SmoothGrad) paid more for
the kernel's first touch of each new im2col buffer than for the copies into it.  glibc returns the
freed top of the heap to the OS after every chunk (its trim threshold follows the largest freed
block), so every chunk faulted its buffers in again: ~100 MB of 4 KiB page faults per IG-50 call at
32x32 batch 16, 3.8 µs each here (``resource.getrusage`` minor faults around one call).  See
benchmarks/README.md for the numbers before and after.

Contract: an array returned by :func:`borrow` is valid until the same thread borrows the same
``tag`` again; it must never escape the function that borrowed it (copy what you return).  Each
thread has its own buffers (``threading.local``), so threads and dask workers never share one.
Buffers only grow, one per tag per thread; a request above :data:`MAX_KEPT_BYTES` gets a fresh array
that is not kept, so a thread holds at most that much per tag.  :func:`release` drops this thread's
buffers.
"""
from __future__ import annotations

import math
import threading

import numpy as np

_local = threading.local()

#: larger scratch requests are allocated for the call and not kept (bounds what a thread retains).
MAX_KEPT_BYTES = 256 * 2**20


def borrow(tag, shape, dtype):
    """An uninitialised C-contiguous array of ``shape`` and ``dtype`` on this thread's ``tag`` buffer."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: exact, and ~10x cheaper than np.prod per call
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    if nbytes > MAX_KEPT_BYTES:
        return np.empty(shape, dtype=dtype)
    buf = buffers.get(tag)
    if buf is None or buf.nbytes < nbytes:
        buf = buffers[tag] = np.empty(max(nbytes, 1), dtype=np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def release():
    """Drop this thread's scratch buffers (their memory goes back to the allocator)."""
    _local.buffers = {}


def held_bytes():
    """Bytes this thread's scratch buffers hold."""
    return sum(b.nbytes for b in getattr(_local, "buffers", {}).values())
