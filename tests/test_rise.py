"""RISE (Petsiuk et al. 2018): the masks against the reference code's upsampling, the map against a naive loop."""
import numpy as np
import pytest

import xattr
from xattr.methods.rise import _interpolation_matrix, rise, rise_masks
from xattr.nn import Conv2D, Dense, Flatten, GlobalAvgPool2D, ReLU, Sequential

from extras import need  # tests/extras.py: optional packages of the test suite


def _model():
    return Sequential(Conv2D(3, 4, 3, padding=1, rng=0), ReLU(), GlobalAvgPool2D(), Flatten(), Dense(4, 3, rng=1))


def _x(n=2, h=10, w=12):
    return np.random.default_rng(5).random((n, 3, h, w))


def _draws(seed, n_masks, cells, keep, hw):
    """The grids and shifts rise() draws from ``seed``, in its order."""
    gen = np.random.default_rng(seed)
    (sh, sw), (H, W) = cells, hw
    grids = (gen.random((n_masks, sh, sw)) < keep).astype(np.float64)
    shifts = np.stack([gen.integers(0, -(-H // sh), n_masks), gen.integers(0, -(-W // sw), n_masks)], 1)
    return grids, shifts


def test_masks_are_the_reference_codes_upsampling_and_crop():
    """Each mask is ``skimage.transform.resize(grid, ((s+1)C_H, (s+1)C_W), order=1, mode="reflect",
    anti_aliasing=False)`` cut at its shift, as the paper's reference code makes them."""
    resize = need("skimage.transform", "the RISE mask oracle").resize
    H, W, cells = 10, 12, (3, 4)
    grids, shifts = _draws(0, 6, cells, 0.5, (H, W))
    ours = rise_masks(grids, shifts, (H, W))
    ch, cw = -(-H // cells[0]), -(-W // cells[1])
    for m, g, (dy, dx) in zip(ours, grids, shifts):
        up = resize(g, ((cells[0] + 1) * ch, (cells[1] + 1) * cw), order=1, mode="reflect", anti_aliasing=False,
                    preserve_range=True)
        np.testing.assert_allclose(m, up[dy : dy + H, dx : dx + W], rtol=0, atol=1e-12)


def test_every_mask_pixel_is_a_convex_combination_of_cells_so_the_mean_mask_is_keep():
    """Interpolation rows sum to 1 with non-negative weights: ``E[M(λ)] = p`` exactly, the paper's normaliser."""
    for n_in, n_out in [(1, 5), (2, 9), (7, 64), (7, 256)]:
        A = _interpolation_matrix(n_in, n_out)
        assert A.min() >= 0 and np.allclose(A.sum(1), 1, rtol=0, atol=1e-15)
    grids, shifts = _draws(1, 4000, (7, 7), 0.3, (16, 16))
    m = rise_masks(grids, shifts, (16, 16))
    assert m.min() >= 0 and m.max() <= 1
    assert abs(m.mean() - 0.3) < 3 * m.mean(axis=(1, 2)).std() / np.sqrt(4000)


@pytest.mark.parametrize("baseline", [0.0, 0.25])
def test_map_equals_the_naive_loop_over_masks(baseline):
    """``S = Σ_i f(x ⊙ M_i + b (1 − M_i)) M_i / (N p)``, one mask at a time, with the same draws."""
    model, x, t = _model(), _x(), np.array([0, 2])
    got = rise(model, x, t, n_masks=40, cells=(3, 4), keep=0.4, rng=7, baseline=baseline, batch_size=7)
    grids, shifts = _draws(7, 40, (3, 4), 0.4, x.shape[2:])
    want = np.zeros((2, 1) + x.shape[2:])
    for g, sh in zip(grids, shifts):
        m = rise_masks(g[None], sh[None], x.shape[2:])[0]
        f = model(x * m + baseline * (1 - m))[np.arange(2), t]
        want += f[:, None, None, None] * m
    np.testing.assert_allclose(got, want / (40 * 0.4), rtol=1e-12, atol=1e-12)


def test_chunking_determinism_and_dtype():
    model, x = _model(), _x()
    a = rise(model, x, 1, n_masks=30, cells=3, rng=0)
    np.testing.assert_allclose(rise(model, x, 1, n_masks=30, cells=3, rng=0, batch_size=1), a, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(rise(model, x, 1, n_masks=30, cells=3, rng=np.random.default_rng(0)), a)
    assert not np.array_equal(rise(model, x, 1, n_masks=30, cells=3, rng=1), a)
    assert rise(model, x.astype(np.float32), 1, n_masks=8, cells=3, rng=0).dtype == np.float32


def test_a_constant_model_gets_the_mean_mask_over_keep():
    """With ``f ≡ c`` the map is ``c · mean_i M_i / p``: 1 where the masks kept a pixel as often as expected."""
    class Constant:
        def forward(self, x):
            return np.full((len(x), 2), 3.0)

    x = _x(1)
    got = rise(Constant(), x, 0, n_masks=50, cells=2, keep=0.5, rng=3)
    grids, shifts = _draws(3, 50, (2, 2), 0.5, x.shape[2:])
    np.testing.assert_allclose(got[0, 0], 3.0 * rise_masks(grids, shifts, x.shape[2:]).mean(0) / 0.5, rtol=1e-12)


def test_class_targets_are_fixed_at_the_unmasked_image():
    model, x = _model(), _x()
    pred = model(x).argmax(1)
    np.testing.assert_array_equal(rise(model, x, lambda s: s.argmax(1), n_masks=20, cells=2, rng=0),
                                  rise(model, x, pred, n_masks=20, cells=2, rng=0))


def test_registered_with_its_spec():
    spec = xattr.methods.get_spec("rise")
    assert spec.fn is rise and spec.paper == "Petsiuk et al. 2018" and "rng" in spec.needs
    assert xattr.get_method("rise") is rise


@pytest.mark.parametrize("kwargs, match", [
    ({"n_masks": 0}, "n_masks must be a positive int"),
    ({"n_masks": 2.5}, "n_masks must be a positive int"),
    ({"keep": 1.0}, r"keep must be a probability in \(0, 1\)"),
    ({"cells": 0}, r"cells must be between 1 and the image size \(10, 12\)"),
    ({"cells": (3, 13)}, r"cells must be between 1 and the image size \(10, 12\)"),
])
def test_bad_options_are_refused(kwargs, match):
    opts = {"n_masks": 4, "cells": 2, "rng": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        rise(_model(), _x(), 0, **opts)


def test_randomness_must_be_given():
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator or an integer seed"):
        rise(_model(), _x(), 0, n_masks=4, cells=2)
