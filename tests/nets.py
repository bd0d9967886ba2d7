"""Small random networks for the core tests (the public strategies live in xattr.testing)."""
import numpy as np
from hypothesis import strategies as st

from xattr.nn import AvgPool2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential


@st.composite
def networks(draw, relu=True, max_pool=True):
    """``(model, x)``: conv blocks with random kernels/strides/paddings/dilations, pools, a GAP or flatten head."""
    seed = draw(st.integers(0, 2**20))
    rng = np.random.default_rng(seed)
    c = draw(st.integers(1, 3))
    H = W = draw(st.integers(6, 10))
    x = rng.normal(size=(draw(st.integers(1, 2)), c, H, W))
    layers, size = [], H
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(1, 3))
        d = draw(st.integers(1, 2))
        s = draw(st.integers(1, 2))
        p = draw(st.integers(0, 1))
        if size + 2 * p - d * (k - 1) < 1:
            continue
        out = draw(st.integers(1, 4))
        conv = Conv2D(c, out, k, stride=s, padding=p, dilation=d, rng=rng)
        conv.bias = rng.normal(scale=0.1, size=out)
        layers.append(conv)
        size = (size + 2 * p - d * (k - 1) - 1) // s + 1
        c = out
        if relu:
            layers.append(ReLU())
        pool = draw(st.sampled_from(["none", "max", "avg"] if max_pool else ["none", "avg"]))
        if pool != "none" and size >= 2:
            layers.append(MaxPool2D(2) if pool == "max" else AvgPool2D(2, 1))
            size = size // 2 if pool == "max" else size - 1
    if draw(st.booleans()):
        layers += [GlobalAvgPool2D()]
        feat = c
    else:
        layers += [Flatten()]
        feat = c * size * size
    k_out = draw(st.integers(1, 4))
    layers.append(Dense(feat, k_out, rng=rng))
    return Sequential(*layers), x


class Opaque:
    """A model behind the bare protocol (``forward``, ``vjp``): methods cannot see its layers, so they
    take no layer-aware shortcut; the twin against which those shortcuts are tested."""

    def __init__(self, model):
        self.model = model

    def forward(self, x):
        return self.model.forward(x)

    def vjp(self, x, g, rule="gradient", **options):
        return self.model.vjp(x, g, rule, **options)
