"""xattr.data.imagenet: the shipped ImageNet class names.

Oracles: the standard ILSVRC-2012 index order at known indices (the classes the pretrained
network's tests rely on), and torchvision's list itself when torchvision is installed.
"""
import numpy as np
import pytest

from xattr.data import imagenet

from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)


def test_standard_index_order():
    names = imagenet.imagenet_classes()
    assert len(names) == 1000 and len(set(names)) == 1000
    assert names[285] == "Egyptian cat" and names[967] == "espresso"
    assert names[281] == "tabby" and names[282] == "tiger cat" and names[0] == "tench"
    assert names[999] == "toilet tissue" and names[134] == "crane bird" and names[517] == "crane"


def test_file_equals_torchvision_list():
    need("torchvision", reason="torchvision (the list's source) is not installed")
    assert imagenet.main(["--check"]) == 0


def test_malformed_file_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "classes.txt"
    bad.write_text("a\nb\na\n")
    monkeypatch.setattr(imagenet, "CLASSES_PATH", str(bad))
    imagenet.imagenet_classes.cache_clear()
    try:
        with pytest.raises(ValueError, match="1000 distinct non-empty names.*found 3 lines, 2 distinct"):
            imagenet.imagenet_classes()
    finally:
        imagenet.imagenet_classes.cache_clear()


def test_skimage_photos_are_the_evaluation_crops():
    data = pytest.importorskip("skimage.data", reason="scikit-image is in the 'imagenet' extra")
    from xattr.data.imagenet import eval_transform, skimage_photos

    px, names = skimage_photos(["chelsea", "camera", "stereo_motorcycle"], size=64)
    assert px.shape == (3, 3, 64, 64) and names == ["chelsea", "camera", "stereo_motorcycle"]
    np.testing.assert_array_equal(px[0], eval_transform(data.chelsea(), size=64, resize=73))  # round(64·256/224)
    np.testing.assert_array_equal(px[1][0], px[1][2])  # a gray photo replicated to RGB
    with pytest.raises(ValueError, match="no photograph 'nope'"):
        skimage_photos(["nope"])
