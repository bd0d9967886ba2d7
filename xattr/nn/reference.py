"""Naive loop twins of the fast kernels, written straight from the definitions.

Used only by the tests: slow, obvious, independent of the im2col/offset-loop code.
Every function takes and returns arrays in the layouts of :mod:`xattr._conventions`.
"""
from __future__ import annotations

import math

import numpy as np


def _pad(x, pads, value=0.0):
    (t, b), (l, r) = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def conv2d_forward(x, w, b, stride, pads, dilation, groups=1):
    """``y[n,o,h,v] = b[o] + Σ_{c,i,j} w[o,c,i,j] xp[n, g·Cg + c, h s + i d, v s + j d]`` by loops.

    ``g = o // (O/groups)`` is output channel ``o``'s group and ``Cg = C/groups`` its input channels.

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    w : ndarray ``(O, C/groups, kh, kw)``
    b : ndarray ``(O,)`` or None
    stride, dilation : (int, int)
    pads : ((int, int), (int, int))
        ``((top, bottom), (left, right))``.
    groups : int

    Returns
    -------
    ndarray ``(N, O, Ho, Wo)``, float64
    """
    xp = _pad(x, pads)
    N, C, Hp, Wp = xp.shape
    O, Cg, kh, kw = w.shape
    Og = O // groups
    (sh, sw), (dh, dw) = stride, dilation
    Ho = (Hp - dh * (kh - 1) - 1) // sh + 1
    Wo = (Wp - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((N, O, Ho, Wo))
    for n in range(N):
        for o in range(O):
            first = (o // Og) * Cg
            for h in range(Ho):
                for v in range(Wo):
                    s = 0.0 if b is None else b[o]
                    for c in range(Cg):
                        for i in range(kh):
                            for j in range(kw):
                                s += w[o, c, i, j] * xp[n, first + c, h * sh + i * dh, v * sw + j * dw]
                    y[n, o, h, v] = s
    return y


def conv2d_backward(g, x_shape, w, stride, pads, dilation, groups=1):
    """Input gradient of :func:`conv2d_forward` by loops.

    Parameters
    ----------
    g : ndarray ``(N, O, Ho, Wo)``
    x_shape : tuple of int ``(N, C, H, W)``
    w : ndarray ``(O, C/groups, kh, kw)``
    stride, dilation : (int, int)
    pads : ((int, int), (int, int))
    groups : int

    Returns
    -------
    ndarray ``(N, C, H, W)``, float64
    """
    (t, b_), (l, r) = pads
    N, C, H, W = x_shape
    O, Cg, kh, kw = w.shape
    Og = O // groups
    (sh, sw), (dh, dw) = stride, dilation
    _, _, Ho, Wo = g.shape
    dxp = np.zeros((N, C, H + t + b_, W + l + r))
    for n in range(N):
        for o in range(O):
            first = (o // Og) * Cg
            for h in range(Ho):
                for v in range(Wo):
                    for c in range(Cg):
                        for i in range(kh):
                            for j in range(kw):
                                dxp[n, first + c, h * sh + i * dh, v * sw + j * dw] += w[o, c, i, j] * g[n, o, h, v]
    return dxp[:, :, t : t + H, l : l + W]


def conv2d_weight_grad(g, x, w_shape, stride, pads, dilation, groups=1):
    """``dw[o,c,i,j] = Σ_{n,h,v} g[n,o,h,v] xp[n, g·Cg + c, h s + i d, v s + j d]`` by loops.

    Parameters
    ----------
    g : ndarray ``(N, O, Ho, Wo)``
    x : ndarray ``(N, C, H, W)``
    w_shape : tuple of int ``(O, C/groups, kh, kw)``
    stride, dilation : (int, int)
    pads : ((int, int), (int, int))
    groups : int

    Returns
    -------
    ndarray ``w_shape``, float64
    """
    xp = _pad(x, pads)
    O, Cg, kh, kw = w_shape
    Og = O // groups
    (sh, sw), (dh, dw) = stride, dilation
    N, _, Ho, Wo = g.shape
    dw_ = np.zeros(w_shape)
    for o in range(O):
        first = (o // Og) * Cg
        for c in range(Cg):
            for i in range(kh):
                for j in range(kw):
                    s = 0.0
                    for n in range(N):
                        for h in range(Ho):
                            for v in range(Wo):
                                s += g[n, o, h, v] * xp[n, first + c, h * sh + i * dh, v * sw + j * dw]
                    dw_[o, c, i, j] = s
    return dw_


def _pool_len(n, k, s, p, ceil_mode):
    """PyTorch's output length: floor or ceil of ``(n + 2p - k) / s``, plus one; in ceil mode the last window
    must start inside the input or its left padding."""
    o = (math.ceil if ceil_mode else math.floor)((n + 2 * p - k) / s) + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    return o


def _pool_windows(x, kernel, stride, padding, ceil_mode=False):
    """Each window as PyTorch's pooling kernels walk it: ``(index, (h0, h1, w0, w1))`` in input coordinates,
    ``h0 = h s - p`` and ``h1 = min(h0 + k, H + p)`` (the ceil-mode overhang cut off at the padding's end)."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    Ho, Wo = _pool_len(H, kh, sh, ph, ceil_mode), _pool_len(W, kw, sw, pw, ceil_mode)
    for n in range(N):
        for c in range(C):
            for h in range(Ho):
                for v in range(Wo):
                    h0, w0 = h * sh - ph, v * sw - pw
                    yield (n, c, h, v), (h0, min(h0 + kh, H + ph), w0, min(w0 + kw, W + pw)), (Ho, Wo)


def maxpool2d_forward_backward(x, g, kernel, stride, padding, ceil_mode=False):
    """Max-pool output and the routed signal ``g`` by loops; ties go to the first maximum (row-major).

    Each window is cut to the input (padding never wins); ``argmax`` returns the first maximum.

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    g : ndarray ``(N, C, Ho, Wo)`` or None
    kernel, stride, padding : (int, int)
    ceil_mode : bool

    Returns
    -------
    y : ndarray ``(N, C, Ho, Wo)``
    gx : ndarray ``(N, C, H, W)`` (zeros when ``g`` is None)
    """
    N, C, H, W = x.shape
    y, gx = None, np.zeros(x.shape)
    for (n, c, h, v), (h0, h1, w0, w1), out_hw in _pool_windows(x, kernel, stride, padding, ceil_mode):
        y = np.zeros((N, C) + out_hw) if y is None else y
        r0, r1, q0, q1 = max(h0, 0), min(h1, H), max(w0, 0), min(w1, W)
        win = x[n, c, r0:r1, q0:q1]
        flat = int(np.argmax(win))
        y[n, c, h, v] = win.flat[flat]
        if g is not None:
            gx[n, c, r0 + flat // win.shape[1], q0 + flat % win.shape[1]] += g[n, c, h, v]
    return y, gx


def avgpool2d_forward_backward(x, g, kernel, stride, padding, ceil_mode=False, count_include_pad=True):
    """Average-pool output and the spread signal ``g`` by loops, PyTorch's divisor: the window's size within the
    input and its padding (``count_include_pad``) or within the input only.

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    g : ndarray ``(N, C, Ho, Wo)`` or None
    kernel, stride, padding : (int, int)
    ceil_mode, count_include_pad : bool

    Returns
    -------
    y : ndarray ``(N, C, Ho, Wo)``
    gx : ndarray ``(N, C, H, W)`` (zeros when ``g`` is None)
    """
    N, C, H, W = x.shape
    y, gx = None, np.zeros(x.shape)
    for (n, c, h, v), (h0, h1, w0, w1), out_hw in _pool_windows(x, kernel, stride, padding, ceil_mode):
        y = np.zeros((N, C) + out_hw) if y is None else y
        r0, r1, q0, q1 = max(h0, 0), min(h1, H), max(w0, 0), min(w1, W)
        div = (h1 - h0) * (w1 - w0) if count_include_pad else (r1 - r0) * (q1 - q0)
        y[n, c, h, v] = x[n, c, r0:r1, q0:q1].sum() / div
        if g is not None:
            gx[n, c, r0:r1, q0:q1] += g[n, c, h, v] / div
    return y, gx


def adaptive_pool2d_forward_backward(x, g, out_hw, kind):
    """Adaptive max (``kind="max"``, first maximum) or average pool and its routed/spread ``g`` by loops over
    PyTorch's bins ``[floor(i H / Ho), ceil((i + 1) H / Ho))``.

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)``
    g : ndarray ``(N, C, Ho, Wo)`` or None
    out_hw : (int, int)
    kind : ``"max"`` or ``"avg"``

    Returns
    -------
    y : ndarray ``(N, C, Ho, Wo)``
    gx : ndarray ``(N, C, H, W)`` (zeros when ``g`` is None)
    """
    N, C, H, W = x.shape
    Ho, Wo = out_hw
    y, gx = np.zeros((N, C, Ho, Wo)), np.zeros(x.shape)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                r0, r1 = math.floor(i * H / Ho), math.ceil((i + 1) * H / Ho)
                for j in range(Wo):
                    q0, q1 = math.floor(j * W / Wo), math.ceil((j + 1) * W / Wo)
                    win = x[n, c, r0:r1, q0:q1]
                    if kind == "max":
                        k = int(np.argmax(win))
                        y[n, c, i, j] = win.flat[k]
                        if g is not None:
                            gx[n, c, r0 + k // win.shape[1], q0 + k % win.shape[1]] += g[n, c, i, j]
                    else:
                        y[n, c, i, j] = win.mean()
                        if g is not None:
                            gx[n, c, r0:r1, q0:q1] += g[n, c, i, j] / win.size
    return y, gx


def bilinear_resize(a, out_hw):
    """Bilinear resize of ``(N, C, h, w)`` with half-pixel centres (``align_corners=False``) by loops.

    Parameters
    ----------
    a : ndarray ``(N, C, h, w)``
    out_hw : (int, int)

    Returns
    -------
    ndarray ``(N, C, H, W)``, float64
    """
    N, C, h, w = a.shape
    H, W = out_hw
    y = np.zeros((N, C, H, W))
    for r in range(H):
        sy = max((r + 0.5) * h / H - 0.5, 0.0)
        y0 = min(int(np.floor(sy)), h - 1)
        y1 = min(y0 + 1, h - 1)
        fy = sy - y0
        for q in range(W):
            sx = max((q + 0.5) * w / W - 0.5, 0.0)
            x0 = min(int(np.floor(sx)), w - 1)
            x1 = min(x0 + 1, w - 1)
            fx = sx - x0
            y[:, :, r, q] = (
                (1 - fy) * (1 - fx) * a[:, :, y0, x0] + (1 - fy) * fx * a[:, :, y0, x1]
                + fy * (1 - fx) * a[:, :, y1, x0] + fy * fx * a[:, :, y1, x1]
            )
    return y
