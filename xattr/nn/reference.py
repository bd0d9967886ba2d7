"""Naive loop twins of the fast kernels, written straight from the definitions.

Used only by the tests: slow, obvious, independent of the im2col/offset-loop code.
Every function takes and returns arrays in the layouts of :mod:`xattr._conventions`.
"""
from __future__ import annotations

import numpy as np


def _pad(x, pads, value=0.0):
    (t, b), (l, r) = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def conv2d_forward(x, w, b, stride, pads, dilation, groups=1):
    """``y[n,o,h,v] = b[o] + Σ_{c,i,j} w[o,c,i,j] xp[n, g·Cg + c, h s + i d, v s + j d]`` by loops.

    ``g = o // (O/groups)`` is output channel ``o``'s group and ``Cg = C/groups`` its input channels.
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
    """Input gradient of :func:`conv2d_forward` by loops."""
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
    """``dw[o,c,i,j] = Σ_{n,h,v} g[n,o,h,v] xp[n, g·Cg + c, h s + i d, v s + j d]`` by loops."""
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


def _pool_windows(x, kernel, stride, padding, fill):
    xp = _pad(x, ((padding[0],) * 2, (padding[1],) * 2), fill)
    N, C, Hp, Wp = xp.shape
    kh, kw = kernel
    sh, sw = stride
    Ho, Wo = (Hp - kh) // sh + 1, (Wp - kw) // sw + 1
    for n in range(N):
        for c in range(C):
            for h in range(Ho):
                for v in range(Wo):
                    yield (n, c, h, v), xp[n, c, h * sh : h * sh + kh, v * sw : v * sw + kw], (h * sh, v * sw)


def maxpool2d_forward_backward(x, g, kernel, stride, padding):
    """Max-pool output and the routed signal ``g`` by loops; ties go to the first maximum (row-major)."""
    N, C, H, W = x.shape
    ph, pw = padding
    out, gx = {}, np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    for idx, win, (h0, v0) in _pool_windows(x, kernel, stride, padding, -np.inf):
        flat = int(np.argmax(win))  # argmax returns the first maximum
        out[idx] = win.flat[flat]
        if g is not None:
            gx[idx[0], idx[1], h0 + flat // kernel[1], v0 + flat % kernel[1]] += g[idx]
    y = np.zeros((N, C, max(k[2] for k in out) + 1, max(k[3] for k in out) + 1))
    for k, v in out.items():
        y[k] = v
    return y, gx[:, :, ph : ph + H, pw : pw + W]


def avgpool2d_forward_backward(x, g, kernel, stride, padding):
    """Average-pool output (zeros counted) and the spread signal ``g`` by loops."""
    N, C, H, W = x.shape
    ph, pw = padding
    kh, kw = kernel
    out, gx = {}, np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    for idx, win, (h0, v0) in _pool_windows(x, kernel, stride, padding, 0.0):
        out[idx] = win.sum() / (kh * kw)
        if g is not None:
            gx[idx[0], idx[1], h0 : h0 + kh, v0 : v0 + kw] += g[idx] / (kh * kw)
    y = np.zeros((N, C, max(k[2] for k in out) + 1, max(k[3] for k in out) + 1))
    for k, v in out.items():
        y[k] = v
    return y, gx[:, :, ph : ph + H, pw : pw + W]


def bilinear_resize(a, out_hw):
    """Bilinear resize of ``(N, C, h, w)`` with half-pixel centres (``align_corners=False``) by loops."""
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
