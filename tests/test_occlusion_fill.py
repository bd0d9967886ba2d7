"""Occlusion with the seed's alternative fills and the inverse (xattr/methods/occlusion_fill.py, occlusion(fill=,
invert=)).  Oracle: a naive loop over images and window positions that builds every occluded image by hand."""
import numpy as np
import pytest

import xattr
from xattr.methods import occlusion_fill as of
from xattr.methods.segments import blur
from xattr.testing import cases


def naive_occlusion(model, x, cls, fill, window, stride, invert):
    """Per image, per window position: score, credit every covered pixel, average the overlaps."""
    N, _, H, W = x.shape
    out = np.zeros((N, 1, H, W))
    for n in range(N):
        def f(img, c=cls[n]):
            return model.forward(img[None])[0, c]
        total, count = np.zeros((H, W)), np.zeros((H, W))
        r = 0
        while True:
            c = 0
            while True:
                r1, c1 = min(r + window, H), min(c + window, W)
                if invert:
                    img = fill[n].copy()
                    img[:, r:r1, c:c1] = x[n, :, r:r1, c:c1]
                    d = f(img) - f(fill[n])
                else:
                    img = x[n].copy()
                    img[:, r:r1, c:c1] = fill[n, :, r:r1, c:c1]
                    d = f(x[n]) - f(img)
                total[r:r1, c:c1] += d
                count[r:r1, c:c1] += 1
                if c1 == W:
                    break
                c += stride
            if r1 == H:
                break
            r += stride
        out[n, 0] = total / count
    return out


def test_fill_images():
    x = cases.images(n=3, size=6)
    np.testing.assert_allclose(of.fill_image(x, "image_mean"), np.broadcast_to(x.mean(axis=(2, 3), keepdims=True),
                                                                              x.shape), rtol=1e-14)
    np.testing.assert_array_equal(of.fill_image(x, "swap"), x[[1, 2, 0]])
    np.testing.assert_array_equal(of.fill_image(x, "blur", sigma=1.5), blur(x, 1.5))
    np.testing.assert_array_equal(of.fill_image(x, 0.25), np.full(x.shape, 0.25))
    s = of.fill_image(x, "shuffle", rng=0)
    for n in range(3):  # the same pixels (all channels moved together), in another order
        pix = lambda a: a.reshape(3, -1).T  # noqa: E731  (H*W, C)
        assert sorted(map(tuple, pix(s[n]))) == sorted(map(tuple, pix(x[n])))
        assert not np.array_equal(s[n], x[n])
    np.testing.assert_array_equal(s, of.fill_image(x, "shuffle", rng=0))  # the rng decides
    assert x.tobytes() == cases.images(n=3, size=6).tobytes()  # the caller's array is untouched


@pytest.mark.parametrize("fill", [0.5, "image_mean", "blur", "shuffle", "swap"])
@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize("incremental", [False, True])
def test_occlusion_with_each_fill_equals_the_naive_loop(fill, invert, incremental):
    m, x = cases.small_cnn(size=12), cases.images(n=2, size=12)
    cls = np.array([0, 2])
    got = xattr.occlusion(m, x, cls, window=4, stride=3, fill=fill, invert=invert, incremental=incremental, rng=7,
                          sigma=2.0, batch_size=5)
    want = naive_occlusion(m, x, cls, of.fill_image(x, fill, rng=7, sigma=2.0), 4, 3, invert)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_inverse_of_a_linear_model_is_the_window_contribution():
    """On an additive model f(x) = Σ w x + b both views agree: each window's credit is Σ_window w (x − fill)."""
    from xattr.nn import Dense, Flatten, Sequential

    x = cases.images(n=2, channels=1, size=6)
    m = Sequential(Flatten(), Dense(36, 2, rng=0))
    kw = dict(window=2, stride=2, fill="image_mean")
    a = xattr.occlusion(m, x, 1, **kw)
    b = xattr.occlusion(m, x, 1, invert=True, **kw)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    w = m[1].weight[1].reshape(6, 6)
    d = (w * (x - x.mean(axis=(2, 3), keepdims=True))[:, 0]).reshape(2, 3, 2, 3, 2).sum(axis=(2, 4))
    np.testing.assert_allclose(a[:, 0], np.repeat(np.repeat(d, 2, 1), 2, 2), rtol=1e-10, atol=1e-12)


def test_bad_fill_options_are_refused():
    m, x = cases.small_cnn(size=8), cases.images(n=2, size=8)
    with pytest.raises(ValueError, match="one of"):
        xattr.occlusion(m, x, 0, window=4, fill="noise")
    with pytest.raises(TypeError, match="pass rng"):
        xattr.occlusion(m, x, 0, window=4, fill="shuffle")
    with pytest.raises(ValueError, match="at least 2 images"):
        xattr.occlusion(m, x[:1], 0, window=4, fill="swap")
    with pytest.raises(ValueError, match="give the occluding values once"):
        xattr.occlusion(m, x, 0, window=4, fill="swap", baseline="blur")
    with pytest.raises(ValueError, match="invert must be"):
        xattr.occlusion(m, x, 0, window=4, invert="yes")
    with pytest.raises(ValueError, match="broadcastable"):
        xattr.occlusion(m, x, 0, window=4, fill=np.zeros((3, 3)))
