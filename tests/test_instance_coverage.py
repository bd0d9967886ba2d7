"""make_shapes(instances=2) output goes into multi_instance_coverage as it is."""
import numpy as np
import pytest

from xattr.data import make_shapes
from xattr.evaluation import multi_instance_coverage


def test_instance_masks_of_make_shapes_are_accepted_as_they_are():
    b = make_shapes(5, rng=3, size=24, instances=2)
    inst = b.instance_masks  # (N, 2, H, W) bool
    # relevance 3 on every pixel of the first object, 1 on the second, 0 elsewhere: shares 3a / (3a + b)
    maps = 3.0 * inst[:, 0] + 1.0 * inst[:, 1]
    area = inst.sum(axis=(2, 3)).astype(float)
    want = np.stack([3 * area[:, 0], area[:, 1]], 1) / (3 * area[:, 0] + area[:, 1])[:, None]
    cov = multi_instance_coverage(maps, inst, min_share=0.2)
    np.testing.assert_allclose(cov.mass, want, rtol=1e-12)
    np.testing.assert_array_equal(cov.present, True)
    np.testing.assert_array_equal(cov.found, want >= 0.2)
    # the same answer as the label-image form (0 background, 1 and 2 the instances)
    labels = inst[:, 0].astype(int) + 2 * inst[:, 1]
    same = multi_instance_coverage(maps[:, None], labels, min_share=0.2)  # (N, 1, H, W) maps too
    for a, c in [(cov.mass, same.mass), (cov.present, same.present), (cov.n_found, same.n_found)]:
        np.testing.assert_array_equal(a, c)


def test_instance_masks_with_a_wrong_shape_or_no_object_are_refused():
    b = make_shapes(2, rng=0, size=16, instances=2)
    maps = np.ones((2, 16, 16))
    with pytest.raises(ValueError, match=r"\(N, K, H, W\) with \(N, H, W\) = \(2, 16, 16\)"):
        multi_instance_coverage(maps, b.instance_masks[:, :, :8])
    with pytest.raises(ValueError, match="every instance mask is empty"):
        multi_instance_coverage(maps, np.zeros_like(b.instance_masks))
