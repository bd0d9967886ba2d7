"""BatchNorm2D at inference, folding into the conv, Dropout."""
import numpy as np
import pytest

from xattr.nn import BatchNorm2D, Conv2D, Dropout, Flatten, ReLU, Sequential, fold_batchnorm


def _bn(c, seed=0):
    rng = np.random.default_rng(seed)
    bn = BatchNorm2D(c, eps=1e-3)
    bn.weight, bn.bias = rng.normal(size=c), rng.normal(size=c)
    bn.running_mean, bn.running_var = rng.normal(size=c), rng.uniform(0.5, 2, size=c)
    return bn


def test_batchnorm_formula_and_gradient():
    bn = _bn(3)
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 4))
    y, cache = bn.forward(x)
    def r(v):
        return v[None, :, None, None]

    expect = (x - r(bn.running_mean)) / np.sqrt(r(bn.running_var) + bn.eps) * r(bn.weight) + r(bn.bias)
    np.testing.assert_allclose(y, expect, rtol=1e-13)
    u, v = np.random.default_rng(2).normal(size=(2,) + x.shape)
    h = 1e-6
    fd = np.sum(u * (bn(x + h * v) - bn(x - h * v))) / (2 * h)
    assert np.isclose(fd, np.sum(bn.backward(u, cache) * v), rtol=1e-8)


def test_fold_batchnorm_computes_the_same_function_and_leaves_model_alone():
    model = Sequential(
        Conv2D(2, 3, 3, padding=1, rng=0), _bn(3), ReLU(), Conv2D(3, 2, 3, bias=False, rng=1), _bn(2, 5), Flatten()
    )
    folded = fold_batchnorm(model)
    assert [type(layer).__name__ for layer in folded] == ["Conv2D", "ReLU", "Conv2D", "Flatten"]
    assert folded.names == ["conv1", "relu1", "conv2", "flatten1"]
    x = np.random.default_rng(3).normal(size=(2, 2, 6, 6))
    np.testing.assert_allclose(folded(x), model(x), rtol=1e-12, atol=1e-12)
    assert len(model) == 6  # untouched


def test_fold_refuses_a_lonely_batchnorm():
    with pytest.raises(ValueError, match="does not follow a Conv2D"):
        fold_batchnorm(Sequential(ReLU(), BatchNorm2D(2)))


def test_batchnorm_errors():
    with pytest.raises(ValueError, match="3 channel"):
        BatchNorm2D(3).forward(np.zeros((1, 2, 4, 4)))
    with pytest.raises(ValueError, match="running_var must have shape"):
        BatchNorm2D(3).running_var = np.ones(2)
    with pytest.raises(ValueError, match="eps"):
        BatchNorm2D(3, eps=0)


def test_dropout_is_identity_at_inference():
    x = np.random.default_rng(0).normal(size=(2, 3))
    layer = Dropout(0.3)
    y, cache = layer.forward(x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(layer.backward(x, cache, "guided"), x)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(1.0)


# -- the execution plan of the input-gradient walks ---------------------------------------------------
def _graph_nets():
    from xattr.testing.networks import dense_block_net, inverted_residual_net, small_resnet

    return [small_resnet(bias_scale=0.3), inverted_residual_net(bias_scale=0.3), dense_block_net(bias_scale=0.3)]


@pytest.mark.parametrize("k", range(3))
def test_gradient_plan_folds_conv_batchnorm_pairs_and_keeps_the_rest(k):
    from xattr.nn import gradient_plan
    from xattr.nn.norm import _conv_bn_pairs

    model = _graph_nets()[k]
    weights = {n: layer.weight.copy() for n, layer in zip(model.order, model.layers) if hasattr(layer, "weight")}
    plan = gradient_plan(model)
    pairs = _conv_bn_pairs(model, strict=False)
    kept = [n for n, layer in zip(model.order, model.layers) if isinstance(layer, BatchNorm2D)
            and n not in dict(pairs)]
    if not pairs:  # DenseNet's pre-activation batch-norms follow a concat or a conv that feeds two nodes
        assert kept and plan is model
        return
    assert plan.order == [n for n in model.order if n not in dict(pairs)]
    for n in kept:  # a batch-norm after a sum, a concat or a conv that feeds two nodes stays
        assert plan[n] is model[n]
    for n, layer in zip(plan.order, plan.layers):  # shared, not copied, unless folded
        assert (layer is model[n]) == (n not in dict((c, b) for b, c in pairs))
    x = np.random.default_rng(1).normal(size=(2, 3, 12, 12))
    np.testing.assert_allclose(plan(x), model(x), rtol=1e-12, atol=1e-12)
    seed = np.random.default_rng(2).normal(size=model(x).shape)
    for rule in ("gradient", "deconvnet", "guided"):
        np.testing.assert_allclose(plan.trace(x).pull(seed, rule), model.trace(x).pull(seed, rule), rtol=1e-11,
                                   atol=1e-13)
    assert len(model) == len(plan) + len(pairs)  # the model as given is untouched
    for n, w in weights.items():
        np.testing.assert_array_equal(model[n].weight, w)


def test_gradient_plan_is_the_model_itself_without_pairs_or_when_turned_off(monkeypatch):
    from xattr.nn import gradient_plan, norm

    chain = Sequential(Conv2D(2, 3, 3, rng=0), ReLU(), Flatten())
    assert gradient_plan(chain) is chain
    model = _graph_nets()[0]
    monkeypatch.setattr(norm, "FOLD_FOR_GRADIENTS", False)
    assert gradient_plan(model) is model


def test_gradient_plan_keeps_float32_weights_float32():
    from xattr.nn import gradient_plan

    model = Sequential(Conv2D(2, 3, 3, rng=0), _bn(3), ReLU(), Flatten())
    model[0].weight, model[0].bias = model[0].weight.astype(np.float32), model[0].bias.astype(np.float32)
    for name in ("weight", "bias", "running_mean", "running_var"):
        setattr(model[1], name, getattr(model[1], name).astype(np.float32))
    plan = gradient_plan(model)
    assert plan[0].weight.dtype == np.float32 and plan[0].bias.dtype == np.float32
    x = np.random.default_rng(0).normal(size=(1, 2, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(plan(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["integrated_gradients", "smoothgrad", "expected_gradients", "saturation"])
def test_the_planned_methods_equal_their_walks_on_the_model_as_given(method, monkeypatch):
    """IG, SmoothGrad, expected gradients and the saturation curves run on the plan: the same numbers (float64)."""
    import xattr
    from xattr.methods.path import saturation
    from xattr.nn import norm

    model = _graph_nets()[1]
    x = np.random.default_rng(4).normal(size=(2, 3, 12, 12))
    refs = np.random.default_rng(5).normal(size=(3, 3, 12, 12))
    run = {
        "integrated_gradients": lambda: xattr.integrated_gradients(model, x, 1, steps=8),
        "smoothgrad": lambda: xattr.smoothgrad(xattr.gradient, model, x, 1, n=6, rng=0),
        "expected_gradients": lambda: xattr.expected_gradients(model, x, 1, refs, n_samples=5, rng=0),
        "saturation": lambda: saturation(model, x, 1, alphas=np.linspace(0, 1, 5)).gradient_norm,
    }[method]
    planned = run()
    monkeypatch.setattr(norm, "FOLD_FOR_GRADIENTS", False)
    np.testing.assert_allclose(planned, run(), rtol=1e-11, atol=1e-13)


def test_gradient_plan_leaves_a_model_without_layers_alone():
    """A plain function model (no graph, nothing to fold) is returned as it is, by the plan and by the methods."""
    import xattr
    from xattr.methods._chunks import planned
    from xattr.nn import gradient_plan

    f = xattr.from_function(lambda x: x.reshape(len(x), -1)[:, :3] * 2.0)
    x = np.ones((2, 1, 2, 2))
    assert gradient_plan(f) is f and planned(f, x[:1], 100) is f
    expect = np.broadcast_to([0.0, 2.0, 0.0, 0.0], (2, 4)).reshape(x.shape)  # d(2 x_1)/dx
    np.testing.assert_array_equal(xattr.gradient(f, x, 1), expect)
