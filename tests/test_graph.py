"""The graph container, its tape and the merge layers: construction, every rule on DAGs, and the oracles."""
import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import xattr
from xattr.nn import (
    INPUT,
    Add,
    Concat,
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool2D,
    Graph,
    GraphError,
    MaxPool2D,
    Multiply,
    ReLU,
    RuleNotDefined,
    Sequential,
)
from xattr.testing import strategies as xst
from xattr.testing.gradcheck import check_model_gradient
from xattr.testing.networks import dense_block_net, inverted_residual_net, small_resnet

from autograd_twins import graph_function, vjp

RULES = ("gradient", "deconvnet", "guided")


def _residual(rng=0, bias=0.2):
    """conv -> relu -> [conv a, conv b] -> add (+ skip) -> relu -> maxpool -> concat with a 1x1 branch -> gap ->
    dense."""
    g = np.random.default_rng(rng)

    def conv(cin, cout, k):
        c = Conv2D(cin, cout, k, padding=k // 2, rng=g)
        c.bias = g.normal(0, bias, cout)
        return c

    dense = Dense(5, 3, rng=g)
    dense.bias = g.normal(0, bias, 3)
    return Graph([
        ("stem", conv(2, 3, 3), INPUT),
        ("relu0", ReLU(), "stem"),
        ("a", conv(3, 3, 3), "relu0"),
        ("b", conv(3, 3, 1), "relu0"),
        ("sum", Add(), ("a", "b", "relu0")),
        ("relu1", ReLU(), "sum"),
        ("pool", MaxPool2D(2), "relu1"),
        ("side", conv(3, 2, 1), "pool"),
        ("cat", Concat(), ("pool", "side")),
        ("gap", GlobalAvgPool2D(), "cat"),
        ("fc", dense, "gap"),
    ])


def _x(shape=(2, 2, 6, 6), rng=1):
    return np.random.default_rng(rng).normal(size=shape)


# -- construction --------------------------------------------------------------------------------------
def test_construction_errors_name_the_node():
    r, c = ReLU(), Conv2D(1, 1, 1)
    with pytest.raises(GraphError, match="node 'b' takes input 'nope', which is not a node"):
        Graph([("a", ReLU(), INPUT), ("b", ReLU(), "nope")])
    with pytest.raises(GraphError, match="cycle through node.*'a'.*'b'"):
        Graph([("a", ReLU(), "b"), ("b", ReLU(), "a"), ("c", Add(), (INPUT, "b"))])
    with pytest.raises(GraphError, match="node 'm': Add merges two or more inputs"):
        Graph([("m", Add(), INPUT)])
    with pytest.raises(GraphError, match="node 'r': ReLU takes one input, got 2"):
        Graph([("r", ReLU(), (INPUT, INPUT))])
    with pytest.raises(GraphError, match="node 'm': Multiply takes 2 inputs, got 3"):
        Graph([("m", Multiply(), (INPUT, INPUT, INPUT))])
    with pytest.raises(GraphError, match=r"node\(s\) 'side' do not lead to the output 'out' \(dangling\)"):
        Graph([("side", ReLU(), INPUT), ("out", ReLU(), INPUT)])
    with pytest.raises(GraphError, match="duplicate node name 'a'"):
        Graph([("a", ReLU(), INPUT), ("a", ReLU(), "a")])
    with pytest.raises(GraphError, match="'input' is the name of the model's input"):
        Graph([("input", ReLU(), INPUT)])
    with pytest.raises(GraphError, match="share one layer object"):
        Graph([("a", r, INPUT), ("b", r, "a")])
    with pytest.raises(GraphError, match="output 'zz' is not a node"):
        Graph([("a", c, INPUT)], output="zz")
    with pytest.raises(ValueError, match=r"Add 'sum' adds inputs of one shape, got \[\(1, 2, 4, 4\), \(1, 3, 4, 4\)\]"):
        Graph([("a", Conv2D(2, 3, 1), INPUT), ("sum", Add(), (INPUT, "a"))], input_shape=(2, 4, 4))
    with pytest.raises(KeyError, match="no layer named 'x9'"):
        _residual()["x9"]


def test_nodes_are_sorted_topologically_and_reachable_by_name():
    m = Graph([("b", ReLU(), "a"), ("a", Conv2D(2, 2, 1), INPUT), ("out", Add(), ("a", "b"))])
    assert m.order == ["a", "b", "out"]
    assert m.consumers("a") == ["b", "out"] and m.inputs_of("out") == ("a", "b")
    assert m["a"].name == "a" and m[0] is m["a"]


def test_a_graph_built_as_a_chain_equals_the_sequential():
    from xattr.testing.cases import small_cnn

    seq = small_cnn(3)
    graph = Graph([(n, copy.deepcopy(layer), seq.inputs_of(n)[0]) for n, layer in zip(seq.names, seq.layers)])
    x = np.random.default_rng(3).random((2, 3, 8, 8))
    np.testing.assert_array_equal(seq(x), graph(x))
    for rule in RULES:
        np.testing.assert_array_equal(xattr.backprop(seq, x, 1, rule), xattr.backprop(graph, x, 1, rule))
    np.testing.assert_array_equal(xattr.lrp(seq, x, 1, "epsilon_plus"), xattr.lrp(graph, x, 1, "epsilon_plus"))
    np.testing.assert_array_equal(xattr.deeplift(seq, x, 1, rule="revealcancel"),
                                  xattr.deeplift(graph, x, 1, rule="revealcancel"))
    np.testing.assert_array_equal(xattr.grad_cam(seq, x, 1), xattr.grad_cam(graph, x, 1))


# -- gradients: autograd and central differences -----------------------------------------------------
def _dag_case(arch, seed):
    """A random DAG and a Gaussian input (no exact ties: autograd splits max-pool ties evenly, xattr picks one)."""
    model = xst.build_graph(arch, rng=seed)
    g = np.random.default_rng(seed)
    x = g.normal(size=(2, arch["in_channels"]) + tuple(arch["hw"]))
    return model, x, int(g.integers(arch["n_classes"]))


@settings(max_examples=25, deadline=None)
@given(xst.graph_architectures(), st.integers(0, 2**16))
def test_random_dag_gradient_equals_autograd(arch, seed):
    model, x, t = _dag_case(arch, seed)
    model.arch = arch
    f = graph_function(model)
    np.testing.assert_allclose(f(x), model(x), rtol=1e-10, atol=1e-12)
    u = np.zeros((len(x), model.arch["n_classes"]))
    u[:, t] = 1.0
    np.testing.assert_allclose(xattr.gradient(model, x, t), vjp(f, x, u), rtol=1e-8, atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(xst.graph_architectures(pool=False), st.integers(0, 2**16))
def test_random_dag_gradient_equals_central_differences(arch, seed):
    model, x, _ = _dag_case(arch, seed)
    check_model_gradient(model, x, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("make", [small_resnet, dense_block_net, inverted_residual_net])
def test_reference_networks_gradient_equals_autograd(make):
    model = make(rng=4)
    x = _x((2, 3, 9, 9), rng=4)
    f = graph_function(model)
    np.testing.assert_allclose(f(x), model(x), rtol=1e-10, atol=1e-12)
    u = np.random.default_rng(5).normal(size=model(x).shape)
    np.testing.assert_allclose(model.vjp(x, u), vjp(f, x, u), rtol=1e-8, atol=1e-10)


def test_merge_layers_adjoint_and_product_rule():
    g = np.random.default_rng(6)
    a, b = g.normal(size=(2, 3, 4, 4)), g.normal(size=(2, 3, 4, 4))
    gate = g.normal(size=(2, 3, 1, 1))
    for layer, xs in [(Add(), (a, b, a)), (Concat(), (a, b[:, :2]))]:
        y, cache = layer.forward(xs)
        u = g.normal(size=y.shape)
        back = layer.backward(u, cache)
        # <A x, u> = <x, Aᵀ u> for a linear merge
        assert np.isclose((y * u).sum(), sum((xi * bi).sum() for xi, bi in zip(xs, back)))
    y, cache = Multiply().forward((a, gate))
    u = g.normal(size=y.shape)
    ga, gg = Multiply().backward(u, cache)
    np.testing.assert_allclose(ga, u * gate)
    np.testing.assert_allclose(gg, (u * a).sum(axis=(2, 3), keepdims=True))
    with pytest.raises(ValueError, match="the gate .* must broadcast to the signal's shape"):
        Multiply().forward((gate, a))


def test_fan_out_sums_what_comes_back_for_every_rule():
    """relu0 feeds a, b and the sum: its gradient is the sum of the three parts (checked through a twin where the
    three paths are separate copies of the input)."""
    m = _residual(7)
    x = _x(rng=7)
    tape = m.trace(x)
    seed = np.eye(3)[[0, 2]]
    for rule in RULES:
        seen = {}
        tape.pull(seed, rule, taps={"relu0": lambda n, rec, g, seen=seen: seen.setdefault(n, g)})
        parts = tape.pull(seed, rule, to=["a", "b", "sum"])
        a_in = m["a"].backward(parts["a"], tape["a"].cache, rule)
        b_in = m["b"].backward(parts["b"], tape["b"].cache, rule)
        np.testing.assert_allclose(seen["relu0"], a_in + b_in + parts["sum"], rtol=1e-12, atol=1e-14)


# -- the same rule on a graph and on its hand-unrolled chain -------------------------------------------
def _unrolled_pair(rng):
    """A graph with two parallel convs merged (Concat; Add) and the chains with one conv doing both."""
    g = np.random.default_rng(rng)
    ca, cb = Conv2D(2, 3, 3, padding=1, rng=g), Conv2D(2, 2, 3, padding=1, rng=g)
    ca.bias, cb.bias = g.normal(0, 0.2, 3), g.normal(0, 0.2, 2)
    both = Conv2D(2, 5, 3, padding=1)
    both.weight, both.bias = np.concatenate([ca.weight, cb.weight]), np.concatenate([ca.bias, cb.bias])
    tail = lambda c: [ReLU(), MaxPool2D(2), Flatten(), Dense(c * 9, 3, rng=np.random.default_rng(rng + 1))]  # noqa: E731
    cat = Graph([("a", ca, INPUT), ("b", cb, INPUT), ("cat", Concat(), ("a", "b"))]
                + [(f"t{k}", la, "cat" if k == 0 else f"t{k - 1}") for k, la in enumerate(tail(5))])
    cat_chain = Sequential(both, *tail(5))
    cb3 = Conv2D(2, 3, 3, padding=1, rng=g)
    cb3.bias = g.normal(0, 0.2, 3)
    summed = Conv2D(2, 3, 3, padding=1)
    summed.weight, summed.bias = ca.weight + cb3.weight, ca.bias + cb3.bias
    add = Graph([("a", copy.deepcopy(ca), INPUT), ("b", cb3, INPUT), ("sum", Add(), ("a", "b"))]
                + [(f"t{k}", la, "sum" if k == 0 else f"t{k - 1}") for k, la in enumerate(tail(3))])
    add_chain = Sequential(summed, *tail(3))
    return (cat, cat_chain), (add, add_chain)


@pytest.mark.parametrize("rng", [0, 1])
def test_every_rule_on_a_concat_equals_the_stacked_conv_chain(rng):
    (cat, chain), _ = _unrolled_pair(rng)
    x = _x((2, 2, 6, 6), rng)
    for rule in RULES:
        np.testing.assert_allclose(xattr.backprop(cat, x, 2, rule), xattr.backprop(chain, x, 2, rule), rtol=1e-12,
                                   atol=1e-13)
    for comp in ("epsilon", "zplus", "alphabeta", "w2", "flat", "gamma"):
        np.testing.assert_allclose(xattr.lrp(cat, x, 2, comp), xattr.lrp(chain, x, 2, comp), rtol=1e-10, atol=1e-13)
    for rule in ("rescale", "revealcancel"):
        np.testing.assert_allclose(xattr.deeplift(cat, x, 2, rule=rule), xattr.deeplift(chain, x, 2, rule=rule),
                                   rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("rng", [0, 1])
def test_linear_rules_on_an_add_equal_the_summed_conv_chain(rng):
    _, (add, chain) = _unrolled_pair(rng)
    x = _x((2, 2, 6, 6), rng)
    np.testing.assert_allclose(add(x), chain(x), rtol=1e-12)
    for rule in RULES:
        np.testing.assert_allclose(xattr.backprop(add, x, 1, rule), xattr.backprop(chain, x, 1, rule), rtol=1e-11,
                                   atol=1e-13)
    np.testing.assert_allclose(xattr.deeplift(add, x, 1), xattr.deeplift(chain, x, 1), rtol=1e-10, atol=1e-13)


# -- completeness and conservation on residual nets ------------------------------------------------------
@pytest.mark.parametrize("make", [_residual, small_resnet, dense_block_net, inverted_residual_net])
def test_exact_ig_and_deeplift_complete_on_residual_nets(make):
    model = make(rng=8)
    shape = (2, 2, 6, 6) if make is _residual else (2, 3, 9, 9)
    x = _x(shape, rng=8)
    res = xattr.exact_integrated_gradients(model, x, 1)
    np.testing.assert_allclose(res.delta, 0, atol=1e-10)
    assert res.segments.min() > 1  # the path crosses kinks in several branches
    for rule in ("rescale", "revealcancel"):
        _, gap = xattr.deeplift(model, x, 1, rule=rule, maxpool="rescale", return_delta=True)
        np.testing.assert_allclose(gap, 0, atol=1e-10)


def test_exact_ig_equals_a_fine_quadrature_on_a_residual_net():
    model, x = _residual(9), _x(rng=9)
    exact = xattr.exact_integrated_gradients(model, x, 0).attributions
    fine = xattr.integrated_gradients(model, x, 0, steps=4000, quadrature="riemann_middle")
    np.testing.assert_allclose(fine, exact, atol=2e-3 * np.abs(exact).max())


def test_lrp_conservation_through_add_and_concat_with_the_stabiliser_in_closed_form():
    """Without biases LRP-0 conserves through every node but the sum, whose rule returns Σ R · z/stab(z) in total
    (z the sum's output, stab(z) = z + 1e-6 sign z: Zennit's Norm); the concat splits relevance exactly."""
    model = _residual(10, bias=0.0)
    x = np.abs(_x(rng=10))
    R, totals = xattr.lrp(model, x, 2, "0", return_totals=True)
    col = {n: k + 1 for k, n in enumerate(model.order)}
    col[INPUT] = 0
    tape = model.trace(x)
    seen = {}
    xattr.lrp(model, x, 2, "0")  # the same walk, with a tap on the sum's output relevance:
    cells = lambda n, layer: ("lrp0", {"inp": tape[n]})  # noqa: E731
    tape.pull(np.eye(3)[[2, 2]] * tape.output, cells, taps={"sum": lambda n, rec, g: seen.setdefault(n, g)})
    z = tape["sum"].y
    keep = (seen["sum"] * z / (z + 1e-6 * np.where(z >= 0, 1, -1))).reshape(2, -1).sum(1)
    np.testing.assert_allclose(seen["sum"].reshape(2, -1).sum(1), totals[:, col["sum"]], rtol=1e-12)
    np.testing.assert_allclose(totals[:, col["relu0"]], keep, rtol=1e-10)  # a, b (LRP-0, no bias) and the skip
    np.testing.assert_allclose(totals[:, col["pool"]], totals[:, col["cat"]], rtol=1e-10)  # concat + side conv
    np.testing.assert_allclose(totals[:, col["cat"]], totals[:, col["fc"]], rtol=1e-10)  # gap and dense conserve
    np.testing.assert_allclose(totals[:, 0], keep, rtol=1e-10)
    np.testing.assert_allclose(R.reshape(2, -1).sum(1), totals[:, 0], rtol=1e-12)
    assert np.all(keep < totals[:, col["sum"]])  # the stabiliser does absorb a little


def test_multiply_deeplift_is_exact_and_lrp_gives_the_gate_nothing():
    g = np.random.default_rng(11)
    c1, c2 = Conv2D(2, 3, 3, padding=1, rng=g), Conv2D(2, 3, 1, rng=g)
    c1.bias, c2.bias = g.normal(0, .3, 3), g.normal(0, .3, 3)
    model = Graph([("sig", c1, INPUT), ("r", ReLU(), "sig"), ("gate", c2, INPUT), ("g", ReLU(), "gate"),
                   ("m", Multiply(), ("r", "g")), ("gap", GlobalAvgPool2D(), "m"), ("fc", Dense(3, 2, rng=g), "gap")])
    x = _x((3, 2, 5, 5), 11)
    _, gap = xattr.deeplift(model, x, 1, return_delta=True)
    np.testing.assert_allclose(gap, 0, atol=1e-12)
    tape = model.trace(x)
    parts = tape.pull(tape.output * np.eye(2)[[1, 1, 1]], lambda n, layer: ("lrp0", {"inp": tape[n]}), to=["r", "g"])
    assert np.all(parts["g"] == 0) and np.abs(parts["r"]).sum() > 0
    with pytest.raises(ValueError, match="Multiply 'm' is not one"):
        xattr.exact_integrated_gradients(model, x, 1)


# -- CAM family at any node -------------------------------------------------------------------------------
def test_grad_cam_at_any_node_reads_activations_and_gradients_from_the_tape():
    model, x = small_resnet(rng=12), _x((2, 3, 9, 9), 12)
    for node in ("layer1.0.add", "layer2.0.conv1", "relu"):
        m = xattr.grad_cam(model, x, 3, layer=node, relu=False, upsample=False)
        tape = model.trace(x)
        a = tape.value(node)
        g = tape.pull(np.eye(5)[[3, 3]], to=node)
        np.testing.assert_allclose(m[:, 0], np.einsum("nk,nkhw->nhw", g.mean(axis=(2, 3)), a), rtol=1e-12)
    assert xattr.grad_cam(model, x, 3).shape == (2, 1, 9, 9)
    cam_map = xattr.cam(model, x, 3, upsample=False)
    gc = xattr.grad_cam(model, x, 3, layer="layer2.0.relu2", relu=False, upsample=False)
    h, w = cam_map.shape[2:]
    np.testing.assert_allclose(gc * (h * w), cam_map, rtol=1e-10, atol=1e-12)  # Grad-CAM ∝ CAM on GAP -> dense
    with pytest.raises(KeyError, match="no layer named 'nope'"):
        xattr.grad_cam(model, x, 3, layer="nope")


# -- incremental occlusion --------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [_residual, small_resnet, dense_block_net, inverted_residual_net])
def test_incremental_occlusion_on_graphs_equals_full_recomputation(make):
    """Equal up to the summation order of the GEMMs (a conv on a box and on the whole image sum in other
    orders), as on chains: 1e-13 of the largest drop."""
    model = make(rng=13)
    shape = (2, 2, 10, 10) if make is _residual else (2, 3, 12, 12)
    x = _x(shape, 13)
    full = xattr.occlusion(model, x, 1, window=3, stride=2, incremental=False)
    inc = xattr.occlusion(model, x, 1, window=3, stride=2, incremental=True)
    np.testing.assert_allclose(inc, full, rtol=0, atol=1e-13 * np.abs(full).max())
    assert np.abs(full).max() > 0


# -- rules, facts and options ------------------------------------------------------------------------------
def test_layer_subclasses_keep_every_rule_and_fact():
    class MyConv(Conv2D):
        pass

    class MyReLU(ReLU):
        pass

    g = np.random.default_rng(14)
    mc = MyConv(2, 3, 3, padding=1, rng=g)
    ref = Sequential(Conv2D(2, 3, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Dense(27, 2, rng=g))
    ref[0].weight = mc.weight
    sub = Sequential(copy.deepcopy(mc), MyReLU(), MaxPool2D(2), Flatten(), copy.deepcopy(ref[4]))
    x = _x((2, 2, 6, 6), 14)
    for name, fn in [("gradient", xattr.gradient), ("guided", xattr.guided_backprop),
                     ("lrp", lambda m, x, t: xattr.lrp(m, x, t, "epsilon_plus")),
                     ("deeplift", xattr.deeplift), ("grad_cam", xattr.grad_cam),
                     ("exact_ig", lambda m, x, t: xattr.exact_integrated_gradients(m, x, t).attributions),
                     ("occlusion", lambda m, x, t: xattr.occlusion(m, x, t, window=2, incremental=True))]:
        np.testing.assert_array_equal(fn(sub, x, 1), fn(ref, x, 1), err_msg=name)


def test_unknown_options_are_refused_naming_what_the_rules_take():
    model, x = _residual(15), _x(rng=15)
    with pytest.raises(TypeError, match="'epsilonn'"):
        xattr.backprop(model, x, 0, "gradient", epsilonn=0.1)
    with pytest.raises(TypeError, match="takes no option 'epsilonn'"):
        model["stem"].backward(np.ones((2, 3, 6, 6)), model.trace(x)["stem"].cache, "gradient", epsilonn=1)
    with pytest.raises(RuleNotDefined, match="Dense 'fc' has no backward rule 'nonsense'"):
        model.trace(x).pull(np.ones((2, 3)), "nonsense")


# -- files ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [small_resnet, dense_block_net])
def test_graphs_save_and_load_exactly(make, tmp_path):
    model = make(rng=16)
    import xattr.models as xm

    path = xm.save(model, tmp_path / "net")
    back = xm.load(path)
    assert isinstance(back, Graph) and back.order == model.order and back.output == model.output
    x = _x((2, 3, 9, 9), 16)
    np.testing.assert_array_equal(back(x), model(x))
    np.testing.assert_array_equal(xattr.lrp(back, x, 0), xattr.lrp(model, x, 0))
