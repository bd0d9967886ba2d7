"""The ``xattr`` command.

``xattr demo [--out DIR]``: the main job — builds a small CNN (fixed seed), draws a
synthetic image, runs every available method, prints each map's statistics and writes a
PNG grid.  (Until the trained model ships, the network has random weights.)
``xattr methods``: the methods and the rendered rule table.
"""
from __future__ import annotations

import argparse
import inspect
import os
import sys
import time

import numpy as np


def demo_model(rng=0):
    """The benchmark CNN shape, small: conv-relu-pool ×2, conv-relu, GAP, dense (10 classes)."""
    from .nn import Conv2D, Dense, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential

    gen = np.random.default_rng(rng)
    return Sequential(
        Conv2D(3, 16, 3, padding=1, rng=gen), ReLU(), MaxPool2D(2),
        Conv2D(16, 32, 3, padding=1, rng=gen), ReLU(), MaxPool2D(2),
        Conv2D(32, 64, 3, padding=1, rng=gen), ReLU(), GlobalAvgPool2D(), Dense(64, 10, rng=gen),
    )


def demo_image(size=64, rng=0):
    """A square of colour on a noisy background, ``(1, 3, size, size)`` in [0, 1]."""
    gen = np.random.default_rng(rng)
    x = 0.2 * gen.random((1, 3, size, size))
    a, b = size // 4, size // 2
    x[0, :, a : a + b, a : a + b] += np.array([0.8, 0.3, 0.1])[:, None, None]
    return x


def methods_table():
    from .methods.registry import available_methods, get_method

    return {name: get_method(name) for name in available_methods()}


def run_demo(out_dir, size=64):
    from . import viz
    from .methods.gradient import reduce_channels

    os.makedirs(out_dir, exist_ok=True)
    model, x = demo_model(), demo_image(size)
    scores = model(x)
    target = int(scores[0].argmax())
    print(f"model: {len(model)} layers, input {x.shape}, predicted class {target} (score {scores[0, target]:.4f})")
    tiles, titles = [viz.image_to_rgb(x[0])], ["input"]
    for name, fn in methods_table().items():
        opts = {"rng": 0} if "rng" in inspect.signature(fn).parameters else {}
        t0 = time.perf_counter()
        a = fn(model, x, target, **opts)
        dt = time.perf_counter() - t0
        m = a[:, 0] if a.shape[1] == 1 else reduce_channels(a, "sum")
        print(
            f"{name:>17}: shape {a.shape}, min {a.min():+.3e}, max {a.max():+.3e}, "
            f"sum {a.sum():+.3e}, |.|_1 {np.abs(a).sum():.3e}, {dt * 1e3:.1f} ms"
        )
        cmap = "magnitude" if name in ("cam", "grad_cam") else "signed"
        tiles.append(viz.to_rgb(m[0], cmap))
        titles.append(name)
    path = viz.save_grid(os.path.join(out_dir, "demo.png"), [tiles], titles)
    print(f"wrote {path}")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="xattr", description="Reference pixel-attribution methods in NumPy")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run every method on an example and write a PNG grid")
    d.add_argument("--out", default="xattr-demo", help="output folder (default: ./xattr-demo)")
    d.add_argument("--size", type=int, default=64, help="image size (default 64)")
    sub.add_parser("methods", help="list the methods and print the rule table")
    from .batch import add_batch_command; add_batch_command(sub)  # noqa: E702  `xattr batch` (xattr/batch.py)
    args = parser.parse_args(argv)
    if getattr(args, "func", None): return args.func(args)  # noqa: E701  handler in the command's module
    try:
        if args.command == "demo":
            if args.size < 8:
                raise ValueError(f"--size must be at least 8, got {args.size}")
            run_demo(args.out, args.size)
        elif args.command == "methods":
            from .nn import rule_table

            print("methods: " + ", ".join(methods_table()))
            print(rule_table())
    except (ValueError, TypeError, OSError) as exc:
        print(f"xattr: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
