"""DeepLIFT through max-pool on VGG-11-like and AlexNet-like chains: xattr's three modes against Captum.

    PYTHONPATH=. python benchmarks/deeplift_maxpool.py [--images 8] [--seed 0]

The nets are torchvision's VGG-11 (configuration "A") and AlexNet with every channel count divided by 8 and a
small classifier (their layer sequence, kernel sizes, strides, paddings, max-pools and adaptive average pool are
kept), PyTorch's default initialisation (uniform biases: zero biases would make the zero reference's activations
all zero, where every mode conserves), float64, in eval mode.  Inputs and random references are N(0, 1) images.

For each net and reference the table gives, for Captum 0.9's DeepLift and xattr's ``maxpool="gradient"``
(default), ``"rescale"`` (exact) and ``"captum"`` (Captum's rule written out):

* gap: the summation-to-delta miss ``|Σ_i C_i − Δt| / |Δt|`` (median and largest over the images);
* scale: the ratio ``max_i |C_i| / max_i |C_i^Captum|`` (median and largest over the images);
* diff: the largest ``max_i |C_i − C_i^Captum| / max_i |C_i^Captum|``;
* m_max: the largest multiplier magnitude any max-pool passes down, over the largest it received (per window a
  secant slope of the max: at most 1 for "captum", where windows overlap a switch sums up to 4 of them;
  unbounded for "rescale").
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np

import xattr
from xattr.nn import AdaptiveAvgPool2D, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential
from xattr.nn.base import Cache

MODES = ("gradient", "rescale", "captum")


def vgg11_like(nn, width=8):
    """torchvision's VGG-11 ("A"): convs 3x3 pad 1, max-pool 2x2, AdaptiveAvgPool2d(7), 3 linear layers."""
    cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    layers, c = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v // width, 3, padding=1), nn.ReLU()]
            c = v // width
    hidden = 4096 // 32
    layers += [nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(c * 49, hidden), nn.ReLU(), nn.Dropout(),
               nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(), nn.Linear(hidden, 10)]
    return nn.Sequential(*layers)


def alexnet_like(nn, width=8):
    """torchvision's AlexNet: conv 11/4, max-pools 3/2 (overlapping), AdaptiveAvgPool2d(6), 3 linear layers."""
    c1, c2, c3, c4 = 64 // width, 192 // width, 384 // width, 256 // width
    hidden = 4096 // 32
    return nn.Sequential(
        nn.Conv2d(3, c1, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.Conv2d(c3, c4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c4, c4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d(6), nn.Flatten(), nn.Dropout(), nn.Linear(c4 * 36, hidden), nn.ReLU(), nn.Dropout(),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10),
    )


def to_xattr(net, torch):
    """The same chain in xattr (the modules these nets use)."""
    nn, out = torch.nn, []
    for m in net:
        if isinstance(m, nn.Conv2d):
            layer = Conv2D(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding)
        elif isinstance(m, nn.Linear):
            layer = Dense(m.in_features, m.out_features)
        elif isinstance(m, nn.MaxPool2d):
            layer = MaxPool2D(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            layer = AdaptiveAvgPool2D(m.output_size)
        else:
            layer = {nn.ReLU: ReLU, nn.Flatten: Flatten, nn.Dropout: Dropout}[type(m)]()
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            layer.weight, layer.bias = m.weight.detach().numpy(), m.bias.detach().numpy()
        out.append(layer)
    return Sequential(*out)


def trace(model, x):
    """Every layer's input, output and cache on a forward pass of the chain."""
    out = []
    for layer in model:
        y, cache = layer.forward(x)
        out.append(Cache(x=x, y=y, cache=cache))
        x = y
    return out


def max_multiplier(model, x, ref, target, mode):
    """``max |m_in| / max |m_out|`` over the max-pools of a DeepLIFT pass (per image, the largest)."""
    tx, tr = trace(model, x), trace(model, ref)
    seed = np.zeros_like(tx[-1].y)
    seed[np.arange(len(x)), target] = 1.0
    g, worst = seed, 0.0
    for i in range(len(model) - 1, -1, -1):
        layer = model[i]
        out = layer.backward(g, tx[i].cache, "rescale", inp=tx[i], ref=Cache(x=tr[i].x, y=tr[i].y, cache=tr[i].cache),
                             maxpool=mode)
        if isinstance(layer, MaxPool2D):
            n = len(x)
            top_in = np.abs(out).reshape(n, -1).max(axis=1)
            top_out = np.maximum(np.abs(g).reshape(n, -1).max(axis=1), 1e-300)
            worst = max(worst, float((top_in / top_out).max()))
        g = out
    return worst


def measure(name, net, x, refs, target, torch):
    from captum.attr import DeepLift

    model = to_xattr(net, torch)
    np.testing.assert_allclose(model(x), net(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
    rows = []
    for ref_name, ref in refs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs, cdelta = DeepLift(net).attribute(
                torch.tensor(x), baselines=torch.tensor(ref), target=target.tolist(), return_convergence_delta=True
            )
        theirs = theirs.detach().numpy()
        dt = model(x)[np.arange(len(x)), target] - model(ref)[np.arange(len(x)), target]
        n = len(x)
        top = np.abs(theirs).reshape(n, -1).max(axis=1)

        def row(label, attr, mmax, n=n, dt=dt, top=top, theirs=theirs, ref_name=ref_name):  # bound now
            gap = np.abs(attr.reshape(n, -1).sum(axis=1) - dt) / np.abs(dt)
            scale = np.abs(attr).reshape(n, -1).max(axis=1) / top
            diff = np.abs(attr - theirs).reshape(n, -1).max(axis=1) / top
            return (f"| {name} | {ref_name} | {label} | {np.median(gap):.3g} / {gap.max():.3g} | "
                    f"{np.median(scale):.3g} / {scale.max():.3g} | {diff.max():.3g} | {mmax} |")

        rows.append(row("Captum DeepLift", theirs, "—"))
        for mode in MODES:
            attr = xattr.deeplift(model, x, target, ref, maxpool=mode)
            rows.append(row(f'xattr maxpool="{mode}"', attr, f"{max_multiplier(model, x, ref, target, mode):.3g}"))
    return rows


def main(argv=None):
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(
        f"captum {__import__('captum').__version__}, torch {torch.__version__}, {args.images} images, seed {args.seed}"
    )
    print("| net | reference | method | gap (median / max) | scale vs Captum (median / max) | diff vs Captum (max) "
          "| max-pool m_max |")
    print("|---|---|---|---|---|---|---|")
    for name, factory, hw in (("VGG-11/8", vgg11_like, 64), ("AlexNet/8", alexnet_like, 127)):
        torch.manual_seed(args.seed)
        net = factory(torch.nn).double().eval()
        gen = np.random.default_rng(args.seed)
        x = gen.normal(size=(args.images, 3, hw, hw))
        refs = {"zero": np.zeros_like(x), "N(0,1)": gen.normal(size=x.shape)}
        target = np.argmax(net(torch.tensor(x)).detach().numpy(), axis=1)
        for r in measure(name, net, x, refs, target, torch):
            print(r)


if __name__ == "__main__":
    main()
