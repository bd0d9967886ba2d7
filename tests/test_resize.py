"""xattr.methods._resize: the interpolation matrices against each library whose resize they reproduce."""
import numpy as np
import pytest

from xattr.methods._resize import EDGES, linear_interpolation_matrix

from extras import need

SIZES = [(1, 1), (1, 4), (4, 1), (2, 2), (3, 7), (7, 3), (5, 16), (16, 5), (7, 224), (224, 14)]


@pytest.mark.parametrize("edges", sorted(EDGES))
@pytest.mark.parametrize("n_in, n_out", SIZES)
def test_rows_are_convex_combinations_of_two_neighbours(edges, n_in, n_out):
    """Every row: non-negative, sums to 1, at most two neighbouring inputs; the identity when the sizes agree."""
    m = linear_interpolation_matrix(n_out, n_in, edges)
    assert m.shape == (n_out, n_in) and m.min() >= 0
    np.testing.assert_allclose(m.sum(1), 1, rtol=0, atol=1e-15)
    nz = [np.flatnonzero(r) for r in m]
    assert all(len(c) <= 2 and (len(c) < 2 or c[1] == c[0] + 1) for c in nz)
    if n_in == n_out:
        np.testing.assert_array_equal(m, np.eye(n_in))


@pytest.mark.parametrize("n_in, n_out", SIZES)
def test_clamp_and_corners_are_torch_bilinear(n_in, n_out):
    """``"clamp"`` is ``F.interpolate(align_corners=False)``, ``"corners"`` ``align_corners=True`` (float64 round-off:
    torch forms the weights in another order, 1.2e-14 apart at 224 -> 14)."""
    torch = need("torch", "PyTorch's interpolate as the oracle")
    F = torch.nn.functional
    a = np.random.default_rng(n_in * 31 + n_out).normal(size=(n_in, 3))
    t = torch.from_numpy(a.T[None])  # (1, 3, n_in): 1-D linear interpolation along the last axis
    for edges, corners in (("clamp", False), ("corners", True)):
        ref = F.interpolate(t, size=n_out, mode="linear", align_corners=corners)[0].numpy().T
        np.testing.assert_allclose(linear_interpolation_matrix(n_out, n_in, edges) @ a, ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("n_in, n_out", SIZES)
def test_reflect_is_skimage_resize(n_in, n_out):
    """``"reflect"`` is ``skimage.transform.resize(order=1, mode="reflect")`` without anti-aliasing (1e-12)."""
    transform = need("skimage.transform", "scikit-image's resize as the oracle")
    a = np.random.default_rng(n_in * 17 + n_out).normal(size=(n_in, 2))
    ref = transform.resize(a, (n_out, 2), order=1, mode="reflect", anti_aliasing=False, preserve_range=True)
    np.testing.assert_allclose(linear_interpolation_matrix(n_out, n_in, "reflect") @ a, ref, rtol=0, atol=1e-12)


def test_dtype_and_errors():
    assert linear_interpolation_matrix(4, 3, "clamp", np.float32).dtype == np.float32
    with pytest.raises(ValueError, match="edges must be one of"):
        linear_interpolation_matrix(4, 3, "wrap")
