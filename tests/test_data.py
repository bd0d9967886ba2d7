"""xattr.data: the synthetic shapes generator.

Oracles: masks are re-derived pixel by pixel from the returned object parameters with a naive
loop written from the shape definitions (not from the vectorized code); the object's pixels must
carry exactly its colour; the same seed must give the same bits.
"""
import math

import numpy as np
import pytest

from xattr.data import SHAPES, ShapesBatch, make_shapes, shape_mask


def naive_inside(kind, r, c, center, radius, angle):
    """One pixel, written directly from the definitions in the docstring of ``shape_mask``."""
    dr, dc = r - center[0], c - center[1]
    u = (math.cos(angle) * dc + math.sin(angle) * dr) / radius
    v = (-math.sin(angle) * dc + math.cos(angle) * dr) / radius
    if kind == "square":
        return max(abs(u), abs(v)) <= 0.8
    if kind == "disk":
        return u * u + v * v <= 1.0
    if kind == "triangle":  # equilateral, circumradius 1: inradius 0.5, normals 120° apart
        return all(math.cos(t) * u + math.sin(t) * v <= 0.5 for t in (math.pi / 2, math.pi * 7 / 6, math.pi * 11 / 6))
    if kind == "cross":
        return (abs(u) <= 0.3 and abs(v) <= 1) or (abs(v) <= 0.3 and abs(u) <= 1)
    raise AssertionError(kind)


@pytest.mark.parametrize("instances", [1, 2])
def test_masks_match_the_drawn_objects(instances):
    b = make_shapes(6, rng=3, size=24, instances=instances)
    p = b.params
    for i in range(len(b)):
        kind = SHAPES[b.labels[i]]
        for k in range(instances):
            want = np.array(
                [[naive_inside(kind, r, c, p["center"][i, k], p["radius"][i, k], p["angle"][i, k]) for c in range(24)]
                 for r in range(24)]
            )
            np.testing.assert_array_equal(b.instance_masks[i, k], want)
        # the object is drawn opaque and last: its pixels carry exactly its colour
        assert b.masks[i].sum() > 10
        np.testing.assert_array_equal(
            b.images[i][:, b.masks[i]], np.repeat(p["color"][i][:, None], b.masks[i].sum(), 1)
        )


def test_object_stands_out_from_its_background():
    """Outside the mask no pixel has the object's exact colour (texture noise makes a match improbable),
    so the mask is exactly the set of object-coloured pixels."""
    b = make_shapes(20, rng=5)
    for i in range(len(b)):
        same = np.all(b.images[i] == b.params["color"][i][:, None, None], axis=0)
        np.testing.assert_array_equal(same, b.masks[i])


def test_two_instances_do_not_overlap_and_stay_inside():
    b = make_shapes(50, rng=1, instances=2)
    assert b.instance_masks.shape == (50, 2, 32, 32)
    assert not np.any(b.instance_masks[:, 0] & b.instance_masks[:, 1])
    assert np.all(b.instance_masks.sum(axis=(2, 3)) > 0)
    np.testing.assert_array_equal(b.masks, b.instance_masks.any(axis=1))
    # whole objects: the bounding circle (radius * 1, centre) lies inside the image
    r, c = b.params["radius"], b.params["center"]
    assert np.all(c - r[..., None] >= 0) and np.all(c + r[..., None] <= 32)


def test_same_seed_same_bits_and_different_seed_differs():
    a, b, c = make_shapes(8, rng=11), make_shapes(8, rng=11), make_shapes(8, rng=12)
    for x, y in [(a.images, b.images), (a.labels, b.labels), (a.masks, b.masks)]:
        assert x.tobytes() == y.tobytes()
    assert not np.array_equal(a.images, c.images)
    g1, g2 = np.random.default_rng(4), np.random.default_rng(4)
    assert make_shapes(3, rng=g1).images.tobytes() == make_shapes(3, rng=g2).images.tobytes()


def test_shapes_dtypes_and_range():
    b = make_shapes(10, rng=0, size=20, dtype=np.float32)
    assert isinstance(b, ShapesBatch)
    assert b.images.shape == (10, 3, 20, 20) and b.images.dtype == np.float32
    assert b.labels.shape == (10,) and b.labels.dtype == np.int64
    assert b.masks.shape == (10, 20, 20) and b.masks.dtype == bool
    assert b.images.min() >= 0 and b.images.max() <= 1
    images, labels, masks = make_shapes(2, rng=0)  # unpacks as a triple
    assert images.shape[0] == labels.shape[0] == masks.shape[0] == 2


def test_labels_cover_all_classes_and_subsets():
    b = make_shapes(200, rng=2)
    assert set(np.unique(b.labels)) == set(range(len(SHAPES)))
    sub = make_shapes(20, rng=2, classes=("disk", "cross"))
    assert set(np.unique(sub.labels)) <= {0, 1} and sub.classes == ("disk", "cross")


def test_shape_mask_is_rotation_consistent():
    """A disk does not change under rotation; a square rotated by 90° is the same square."""
    rows, cols = np.mgrid[0:21, 0:21].astype(float)
    ctr, rad = np.array([[10.0, 10.0]]), np.array([6.0])
    for kind, turn in [("disk", 0.7), ("square", np.pi / 2), ("cross", np.pi / 2), ("triangle", 2 * np.pi / 3)]:
        m0 = shape_mask(kind, rows, cols, ctr, rad, np.array([0.0]))
        m1 = shape_mask(kind, rows, cols, ctr, rad, np.array([turn]))
        # rotation about a pixel centre maps the grid onto itself only for 90° turns; compare areas otherwise
        if kind in ("square", "cross"):
            np.testing.assert_array_equal(m0, m1)
        else:
            assert abs(int(m0.sum()) - int(m1.sum())) <= 0.1 * m0.sum()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=-1), "n must be"),
        (dict(size=8), "size must be at least 16"),
        (dict(instances=3), "instances must be 1 or 2"),
        (dict(distractors=-2), "distractors"),
        (dict(classes=("hexagon",)), "subset of"),
        (dict(dtype=np.int32), "float32 or float64"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(n=2, rng=0)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        make_shapes(**args)


def test_rng_is_required():
    with pytest.raises(TypeError, match="rng"):
        make_shapes(2, rng=None)
