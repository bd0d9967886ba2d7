"""Scratch buffers of the conv kernels: grow-only, one per tag, one set per thread."""
import threading

import numpy as np

from xattr.nn import Conv2D, _workspace


def test_borrow_reuses_and_grows_one_buffer_per_tag():
    _workspace.release()
    a = _workspace.borrow("t", (4, 5), np.float32)
    assert a.shape == (4, 5) and a.dtype == np.float32 and a.flags.c_contiguous
    b = _workspace.borrow("t", (2, 3), np.float64)  # smaller: the same memory
    assert np.shares_memory(a, b)
    c = _workspace.borrow("u", (2, 3), np.float64)  # another tag: other memory
    assert not np.shares_memory(b, c)
    d = _workspace.borrow("t", (100, 100), np.float64)  # larger: a new buffer
    assert d.shape == (100, 100) and _workspace.held_bytes() == 100 * 100 * 8 + 2 * 3 * 8
    _workspace.release()
    assert _workspace.held_bytes() == 0


def test_large_requests_are_not_kept(monkeypatch):
    _workspace.release()
    monkeypatch.setattr(_workspace, "MAX_KEPT_BYTES", 1000)
    a = _workspace.borrow("t", (200,), np.float64)  # 1600 bytes
    b = _workspace.borrow("t", (200,), np.float64)
    assert not np.shares_memory(a, b) and _workspace.held_bytes() == 0
    c = _workspace.borrow("t", (100,), np.float64)  # 800 bytes: kept
    assert _workspace.held_bytes() == 800 and np.shares_memory(c, _workspace.borrow("t", (10,), np.float64))
    _workspace.release()


def test_threads_have_their_own_buffers_and_results():
    """Layers shared by threads (dask's threaded scheduler) give each thread the serial result."""
    layer = Conv2D(3, 8, 3, padding=1, rng=0)
    xs = [np.random.default_rng(i).normal(size=(4, 3, 12, 12)) for i in range(6)]

    def run(x):
        y, cache = layer.forward(x)
        return y, layer.backward(np.cos(y), cache)

    expected = [run(x) for x in xs]
    got = [None] * len(xs)
    mine = {}

    def worker(i):
        for _ in range(5):
            got[i] = run(xs[i])
        mine[i] = _workspace._local.buffers["conv.cols"]  # kept alive: ids stay distinct

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (y, gx), (ye, gxe) in zip(got, expected):
        np.testing.assert_array_equal(y, ye)
        np.testing.assert_array_equal(gx, gxe)
    assert len({id(b) for b in mine.values()}) == len(xs)
