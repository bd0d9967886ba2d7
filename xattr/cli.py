"""The ``xattr`` command.

``xattr demo [--out DIR]``
    The main job: loads the shipped ``shapes`` CNN, draws examples from :func:`xattr.data.make_shapes`,
    runs every registered method on the model's predictions and writes ``demo.png`` (images × methods,
    ground truth beside them), ``summary.json`` and ``summary.md`` (prediction, per-method runtime,
    completeness gap where the method defines one, pointing game against the ground-truth masks).
``xattr explain IMAGE --model FILE --method NAME [--target K] [--layer NAME] [--out FILE]``
    One method on any PNG/JPEG with any saved model; the image is resized and normalised as the
    model file declares.
``xattr methods``
    The registered methods, the axioms each claims (when :mod:`xattr.testing` provides claims) and
    the rule table.

Bad input exits with status 2 and one line ``xattr: error: ...`` on stderr.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time

import numpy as np

#: pointing-game tolerance in pixels.  Zhang et al. (2016, "Top-down neural attention by excitation
#: backprop") count a hit within 15 px of the ground truth on images of a few hundred pixels; on the
#: 32-pixel demo images that scales to about 1-2 px; we use 1.
POINTING_TOLERANCE = 1

#: per-method keyword arguments used by the demo and ``xattr explain`` beside each method's spec ``demo`` (cheap
#: settings that keep the demo short).  Only the options a method's signature accepts are passed.  Numbers given for the options in
#: :data:`PICTURE_OPTIONS` are gray levels of a picture (0 black, 1 white), not model-input values.
METHOD_OPTIONS = {}  # each method's own are its MethodSpec's ``demo`` (declared beside the function)

#: options filled by parameter name: always when the method requires them, and also when they default to
#: ``None`` for the names in :data:`FILL_WHEN_NONE` (a stochastic method's ``rng``; DeepSHAP's background).
#: Values are callables ``ctx -> value`` (ctx: :class:`_Context`).
BY_PARAMETER = {
    "rng": lambda ctx: ctx.seed,
    "baseline": lambda ctx: 0.0,
    "reference": lambda ctx: 0.0,
    "baselines": lambda ctx: ctx.references(),
    "references": lambda ctx: ctx.references(),
    "segments": lambda ctx: ctx.segments(),
    "low": lambda ctx: ctx.picture(0.0),  # LRP z^B box: the declared input range, in model space
    "high": lambda ctx: ctx.picture(1.0),
}
FILL_WHEN_NONE = {"rng", "baselines", "references", "low", "high"}

#: options that are pictures: a number (or one per channel) is a gray level in [0, 1] of the image,
#: 0 black, built in the model's declared input range and normalised like the image
#: (:func:`xattr.models._inputs.picture`); a method whose parameter defaults to a number gets the black
#: image.  Strings ("blur", "mean") and arrays are passed as they are.
PICTURE_OPTIONS = ("baseline", "reference")

#: how each family of maps is shown: ``(channel reduction, colormap)``.  Sensitivity maps (gradients and
#: their guided variants) show Simonyan et al.'s ``max |.|`` over channels; attributions that sum to a
#: score difference (gradient×input, IG, DeepLIFT, LRP, SHAP, ...) keep their sign.
SENSITIVITY = {"gradient", "deconvnet", "guided_backprop", "guided_grad_cam", "smoothgrad", "smoothgrad_squared", "vargrad"}


def _display(name, a):
    if name in SENSITIVITY:
        return "max_abs", "magnitude"
    if a.shape[1] == 1 and np.all(a >= 0):
        return "sum", "magnitude"
    return "sum", "signed"


class _Context:
    """What option builders may need: the seed, the model's input size, reference images, pictures."""

    def __init__(self, seed, size, info=None, n_references=8, shape=None):
        self.seed, self.size, self.info, self.n_references = seed, size, info, n_references
        self.shape = tuple(shape) if shape is not None else None  # (C, H, W) of the model input

    def references(self):
        """``K`` reference images from the generator (own seed), scaled and normalised as the model declares."""
        from .data import make_shapes
        from .models._inputs import to_model_input

        imgs = make_shapes(self.n_references, rng=self.seed + 1000, size=self.size).images
        return to_model_input(imgs, self.info) if self.info is not None else imgs

    def picture(self, level):
        """The uniform picture of gray ``level`` (0 black) ``(C, H, W)`` in model space; ``level`` itself
        when the model declares no input (a factory model: its inputs are what it takes)."""
        if self.info is None or self.shape is None:
            return level
        from .models._inputs import picture

        return picture(self.info, self.shape, level)

    def segments(self):
        """A grid segmentation ``(H, W)`` of 4×4 = 16 square cells (small enough for exact Shapley)."""
        cell = max(1, -(-self.size // 4))
        r = np.arange(self.size) // cell
        return (r[:, None] * 4 + r[None, :]).astype(np.int64)


def demo_model(rng=0):
    """The benchmark CNN with random weights: conv-relu-pool ×2, conv-relu, GAP, dense (10 classes).

    Kept for ``xattr batch`` and ``benchmarks/`` (``module:function`` factory); the demo uses the trained
    ``shapes`` model instead.
    """
    from .nn import Conv2D, Dense, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential

    gen = np.random.default_rng(rng)
    return Sequential(
        Conv2D(3, 16, 3, padding=1, rng=gen), ReLU(), MaxPool2D(2),
        Conv2D(16, 32, 3, padding=1, rng=gen), ReLU(), MaxPool2D(2),
        Conv2D(32, 64, 3, padding=1, rng=gen), ReLU(), GlobalAvgPool2D(), Dense(64, 10, rng=gen),
    )


def methods_table():
    """``{name: function}`` of every registered method, in registration order."""
    from .methods.registry import available_methods, get_method

    return {name: get_method(name) for name in available_methods()}


def _spec_demo(name):
    from .methods.registry import get_spec

    try:
        return dict(get_spec(name).demo)
    except ValueError:  # not a registered name (a function given directly)
        return {}


def method_kwargs(name, fn, ctx, extra=None):
    """Keyword arguments for ``fn(model, x, target, **kwargs)``.

    From the method's :attr:`~xattr.methods.registry.MethodSpec.demo` options (over :data:`METHOD_OPTIONS`; only
    those the signature accepts), then :data:`BY_PARAMETER` for
    parameters that are required or default to ``None``, then ``extra`` (e.g. ``layer``).  Raises
    ``ValueError`` naming a required parameter nobody can fill.
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(extra or {})
    names = list(params)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in {**METHOD_OPTIONS.get(name, {}), **_spec_demo(name)}.items() if accepts_any or k in params}
    for k, v in (extra or {}).items():
        if not (accepts_any or k in params):
            raise ValueError(f"method {name!r} takes no option {k!r}")
        kwargs[k] = v
    for pname in names[3:]:
        p = params[pname]
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or pname in kwargs:
            continue
        if pname in BY_PARAMETER and (p.default is p.empty or (p.default is None and pname in FILL_WHEN_NONE)):
            kwargs[pname] = BY_PARAMETER[pname](ctx)
        elif pname in PICTURE_OPTIONS and _is_level(p.default):
            kwargs[pname] = 0.0  # the method's numeric default is a value in model space: use the black image
        elif p.default is p.empty:
            raise ValueError(f"method {name!r} needs the argument {pname!r}, which the command cannot choose")
    for pname in PICTURE_OPTIONS:
        if pname in kwargs and _is_level(kwargs[pname]):
            kwargs[pname] = ctx.picture(kwargs[pname])
    return kwargs


def _is_level(v):
    """A gray level (a number, or a list of numbers per channel), as opposed to a string or an array."""
    import numbers

    if isinstance(v, bool):
        return False
    if isinstance(v, numbers.Real):
        return True
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(a, numbers.Real) and not isinstance(a, bool) for a in v)


def run_method(name, fn, model, x, target, ctx, extra=None):
    """Run one method; returns ``(attribution, seconds, completeness gap or None)``.

    A method that accepts ``return_delta`` is asked for it: its completeness gap
    ``Σ attribution − (f(x) − f(reference))`` per image, signed (IG, DeepLIFT, ...;
    :func:`xattr.inputs.completeness_gap`).
    """
    kwargs = method_kwargs(name, fn, ctx, extra)
    try:
        takes_delta = "return_delta" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_delta = False
    t0 = time.perf_counter()
    out = fn(model, x, target, **({**kwargs, "return_delta": True} if takes_delta else kwargs))
    dt = time.perf_counter() - t0
    gap = None
    if takes_delta and isinstance(out, tuple):
        out, delta = out[0], out[-1]  # the gap is the last element of the returned tuple
        gap = np.asarray(delta, dtype=np.float64).reshape(len(x))
    if isinstance(out, tuple):  # methods returning (map, extras): keep the map
        out = out[0]
    a = np.asarray(out, dtype=np.float64)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or a.shape[0] != len(x) or a.shape[2:] != x.shape[2:]:
        raise ValueError(f"returned shape {a.shape}, not a per-pixel map of the input {x.shape}")
    return a, dt, gap


def to_maps(name, a):
    """``(N, C, H, W)`` attribution -> ``(N, H, W)`` map as shown, and its colormap."""
    from .methods.gradient import reduce_channels

    how, cmap = _display(name, a)
    m = a[:, 0] if a.shape[1] == 1 else reduce_channels(a, how)
    return m, cmap


def pointing_hits(maps, masks, tolerance=POINTING_TOLERANCE):
    """Pointing game (Zhang et al. 2016) via :func:`xattr.evaluation.pointing_game`, constant maps as misses.

    ``maps (N, H, W)``, ``masks (N, H, W)`` bool -> ``(N,)`` bool: the map's maximum (first in raster
    order) within ``tolerance`` px (Euclidean) of the mask.  A constant map has no maximum to point
    with; ``pointing_game`` refuses it, the demo counts it as a miss.
    """
    from .evaluation.localisation import pointing_game

    maps = np.asarray(maps, dtype=np.float64)
    flat = maps.reshape(len(maps), -1)
    ok = flat.max(axis=1) > flat.min(axis=1)
    hits = np.zeros(len(maps), dtype=bool)
    if ok.any():
        hits[ok] = pointing_game(maps[ok], np.asarray(masks, dtype=bool)[ok], tolerance=tolerance)
    return hits


def relevance_masses(maps, masks):
    """Relevance mass accuracy (Arras et al. 2022) per image, ``None`` where the map has no positive part."""
    from .evaluation.localisation import relevance_mass

    out = []
    for m, k in zip(maps, masks):
        try:
            out.append(float(relevance_mass(m[None], k[None])[0]))
        except ValueError:
            out.append(None)
    return out


def _progress(i, total, label, quiet):
    """A one-line progress bar on a terminal; one line per step otherwise (logs, CI)."""
    if quiet:
        return
    width = 20
    done = int(width * i / max(total, 1))
    line = f"[{'#' * done}{'.' * (width - done)}] {i}/{total} {label}"
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{line:<60}" + ("\n" if i == total else ""))
    else:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


def pick_examples(n, seed, size):
    """``n`` images from the generator, cycling through the classes (one per class for n = 4)."""
    from .data import SHAPES, make_shapes

    pool = make_shapes(max(8 * n, 32), rng=seed, size=size)
    order, by_class = [], [list(np.flatnonzero(pool.labels == c)) for c in range(len(SHAPES))]
    k = 0
    while len(order) < n:
        c = k % len(SHAPES)
        if by_class[c]:
            order.append(by_class[c].pop(0))
        elif not any(by_class):
            break
        k += 1
    idx = np.array(order)
    return pool.images[idx], pool.labels[idx], pool.masks[idx]


def run_demo(out_dir, n=4, seed=0, model_name="shapes", methods=None, scale=4, quiet=False):
    """The main job; returns the summary dict (also written to ``out_dir``)."""
    from . import viz
    from .data import SHAPES
    from .models import load_with_info
    from .models._inputs import to_model_input

    t_start = time.perf_counter()
    model, info = load_with_info(model_name)
    size = info.input.get("height") or 32
    classes = info.classes or [str(k) for k in range(model.layers[-1].out_features)]
    images, labels, masks = pick_examples(n, seed, size)
    x = to_model_input(images, info)  # pixels in [0, 1] -> the declared range, normalised
    scores = model.forward(x)
    probs = np.exp(scores - scores.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    pred = scores.argmax(1)
    ctx = _Context(seed, size, info, shape=x.shape[1:])
    table = methods_table()
    if methods:
        unknown = [m for m in methods if m not in table]
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(unknown)}; known methods: {', '.join(table)}")
        table = {m: table[m] for m in methods}
    os.makedirs(out_dir, exist_ok=True)

    titles = ["input", "ground truth"]
    rows = [[viz.image_to_rgb(img, (0, 1)), viz.outline(viz.mask_to_rgb(m, (90, 90, 90)), m, (0, 220, 0))]
            for img, m in zip(images, masks)]
    results = {}
    for i, (name, fn) in enumerate(table.items()):
        _progress(i, len(table), name, quiet)
        entry = {"status": "ok"}
        try:
            a, dt, gap = run_method(name, fn, model, x, pred, ctx)
            maps, cmap = to_maps(name, a)
            hits = pointing_hits(maps, masks)
            entry.update(
                seconds=round(dt, 4), map_shape=list(a.shape), display=cmap,
                pointing_hits=[bool(h) for h in hits], pointing_accuracy=float(hits.mean()),
                relevance_mass=relevance_masses(maps, masks),
                completeness_gap=None if gap is None else [float(g) for g in gap],
            )
            for r in range(len(images)):
                rows[r].append(viz.overlay(viz.image_to_rgb(images[r], (0, 1)), maps[r], cmap, alpha=0.9, gray=1.0))
            titles.append(name)
        except Exception as exc:  # a method that does not apply to this model: say why, keep going
            entry = {"status": "not applicable", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        results[name] = entry
    _progress(len(table), len(table), "done", quiet)

    row_titles = [
        f"{classes[labels[r]]}->{classes[pred[r]]}" + ("" if labels[r] == pred[r] else " (wrong)") for r in range(len(labels))
    ]
    png = viz.save_grid(os.path.join(out_dir, "demo.png"), rows, titles, scale=scale, row_titles=row_titles)
    summary = {
        "model": {"name": model_name, "file": info.path, "test_accuracy": info.meta.get("test_accuracy"),
                  "classes": classes},
        "data": {"generator": "xattr.data.make_shapes", "seed": seed, "size": size, "n": len(labels)},
        "images": [
            {"label": classes[labels[r]], "predicted": classes[pred[r]], "probability": float(probs[r, pred[r]]),
             "explained_target": int(pred[r])}
            for r in range(len(labels))
        ],
        "pointing_tolerance_px": POINTING_TOLERANCE,
        "methods": results,
        "png": png,
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(out_dir, "summary.md"), "w", encoding="utf-8") as f:
        f.write(summary_markdown(summary))
    if not quiet:
        print(summary_markdown(summary))
        print(f"wrote {png}, {os.path.join(out_dir, 'summary.json')}, {os.path.join(out_dir, 'summary.md')}")
    return summary


def summary_markdown(s):
    """The demo summary as Markdown."""
    acc = s["model"]["test_accuracy"]
    lines = [
        "# xattr demo",
        "",
        f"Model `{s['model']['name']}` (held-out accuracy {acc:.4f})" if acc is not None else f"Model `{s['model']['name']}`",
        f"on {s['data']['n']} images of `{s['data']['generator']}` (seed {s['data']['seed']}, {s['data']['size']}×{s['data']['size']}).",
        "",
        "| image | label | predicted | probability |",
        "|---|---|---|---|",
    ]
    lines += [f"| {k} | {im['label']} | {im['predicted']} | {im['probability']:.3f} |" for k, im in enumerate(s["images"])]
    lines += [
        "",
        f"Each method explains the predicted class.  Pointing game: the map's maximum within "
        f"{s['pointing_tolerance_px']} px of the object (Zhang et al. 2016).  Completeness gap: "
        "max over images of |(f(x) − f(reference)) − Σ attribution|, for methods that define it.  "
        "Relevance mass: the share of the map's positive part on the object (Arras et al. 2022), mean over images.",
        "",
        "| method | seconds | pointing game | relevance mass | completeness gap | note |",
        "|---|---|---|---|---|---|",
    ]
    for name, e in s["methods"].items():
        if e["status"] != "ok":
            lines.append(f"| {name} | – | – | – | – | not applicable: {e['reason'].replace('|', '/')} |")
            continue
        gap = "–" if e["completeness_gap"] is None else f"{max(e['completeness_gap'], key=abs):+.2e}"
        hits = sum(e["pointing_hits"])
        masses = [v for v in e["relevance_mass"] if v is not None]
        mass = f"{np.mean(masses):.2f}" if masses else "–"
        lines.append(f"| {name} | {e['seconds']:.3f} | {hits}/{len(e['pointing_hits'])} | {mass} | {gap} | |")
    lines += ["", f"Total {s['seconds']} s.  Grid: `{os.path.basename(s['png'])}`.", ""]
    return "\n".join(lines)


def load_image(path, info, background=None):
    """Read an image file as the model file declares; returns ``(x (1, C, H, W) model input, Picture)``.

    One reader for every command (:func:`xattr.io.images.read_image`: modes, 16-bit and float files,
    alpha composited on ``background`` (default white), EXIF rotation, channels matched to the model,
    resized to its declared size); then scaled to the declared range and normalised.
    """
    from .io.images import WHITE, read_image
    from .models._inputs import to_model_input

    spec = info.input
    h, w = spec.get("height"), spec.get("width")
    pic = read_image(path, channels=spec.get("channels", 3), size=(h, w) if h and w else None,
                     background=WHITE if background is None else background)
    return to_model_input(pic.pixels[None], info), pic


def run_explain(image, model_path, method, target=None, layer=None, out=None, quiet=False, background=None):
    """``xattr explain``: returns the output path."""
    from . import viz
    from .methods.registry import get_method
    from .models import load_with_info

    fn = get_method(method)
    model, info = load_with_info(model_path)
    x, pic = load_image(image, info, background)
    pixels = pic.pixels
    scores = model.forward(x)
    k = scores.shape[1]
    classes = info.classes or [str(c) for c in range(k)]
    if target is None:
        target = int(scores[0].argmax())
    elif not 0 <= target < k:
        raise ValueError(f"--target must be a class index in [0, {k - 1}], got {target}")
    extra = {"layer": layer} if layer is not None else None
    if layer is not None and layer not in model.names:
        raise ValueError(f"no layer named {layer!r}; layers are: {', '.join(model.names)}")
    ctx = _Context(0, x.shape[2], info, shape=x.shape[1:])
    method_kwargs(method, fn, ctx, extra)  # refuse options the method does not take before any work
    if not quiet and "progress" in inspect.signature(fn).parameters:
        extra = {**(extra or {}), "progress": True}  # long perturbation runs show their own progress bar
    if not quiet:
        print(f"read {pic.describe()}", file=sys.stderr)
        print(f"{method} on {image} ({x.shape[2]}×{x.shape[3]}), target {target} ({classes[target]}); "
              f"predicted {classes[int(scores[0].argmax())]}", file=sys.stderr)
    a, dt, gap = run_method(method, fn, model, x, np.array([target]), ctx, extra)
    if out is None:
        out = os.path.splitext(image)[0] + f"_{method}.png"
    if out.endswith(".npy"):
        np.save(out, a)
    else:
        m, cmap = to_maps(method, a)
        rgb = viz.image_to_rgb(pixels, (0, 1))
        tiles = [[rgb, viz.to_rgb(m[0], cmap), viz.overlay(rgb, m[0], cmap, alpha=0.9, gray=1.0)]]
        scale = max(1, 256 // max(x.shape[2:]))
        viz.grid_image(tiles, ["input", f"{method} ({classes[target]})", "overlay"], scale=scale).save(out, format="PNG")
    print(f"{method}: target {target} ({classes[target]}), score {scores[0, target]:.4f}, {dt:.3f} s"
          + (f", completeness gap {gap[0]:.2e}" if gap is not None else "") + f"; wrote {out}")
    return out


def method_claims():
    """``{method: [axioms it claims]}`` from the registered methods' specs and the claims table."""
    from .testing.claims import all_claims

    return {k: list(v.claims) for k, v in all_claims().items()}


def run_methods():
    from .methods.registry import _METHODS
    from .nn import rule_table

    claims = method_claims()
    print("| method | family | function | axioms claimed |")
    print("|---|---|---|---|")
    for name, (fn, family) in _METHODS.items():
        ax = "(xattr.testing declares no claims yet)" if claims is None else ", ".join(claims.get(name, [])) or "–"
        print(f"| {name} | {family} | `{fn.__module__}.{fn.__name__}` | {ax} |")
    print()
    print(rule_table())


def build_parser():
    parser = _Parser(
        prog="xattr",
        description="Reference pixel-attribution methods in NumPy. Start with: xattr demo --out xattr-demo",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser(
        "demo", help="run every method on the shipped model's predictions; write a PNG grid and a summary",
        description="Load the shipped 'shapes' CNN, draw synthetic images with ground truth, run every "
        "registered method on the predicted class and write demo.png, summary.json and summary.md.",
    )
    d.add_argument("--out", default="xattr-demo", help="output folder (default: ./xattr-demo)")
    d.add_argument("--n", type=int, default=4, help="number of images (default 4: one per class)")
    d.add_argument("--seed", type=int, default=0, help="seed of the drawn images (default 0)")
    d.add_argument("--model", default="shapes", help="shipped model name or saved model file (default: shapes)")
    d.add_argument("--methods", default=None, help="comma-separated subset of methods (default: all registered)")
    d.add_argument("--scale", type=int, default=4, help="upscaling of the grid tiles (default 4)")
    d.add_argument("--quiet", action="store_true", help="no progress or summary on the terminal")
    e = sub.add_parser(
        "explain", help="explain one PNG/JPEG with a saved model and one method",
        description="Run one attribution method on an image file. The image is read by one stated rule per "
        "file kind (8/16-bit, float in [0, 1], palette, CMYK, alpha composited on --background, EXIF rotation, "
        "gray/RGB matched to the model), resized, scaled to the model's declared range and normalised as the "
        "model file declares; the output is a PNG (input, map, overlay) or, for FILE.npy, the raw map. "
        "Baselines and references are pictures: the black image (pixel value 0) in the model's declared range, "
        "normalised like the image (for a model with mean/std this is (lo - mean)/std, not 0).",
    )
    e.add_argument("image", metavar="IMAGE", help="image file (PNG, JPEG, TIFF, BMP, GIF, WebP, PPM)")
    e.add_argument("--model", required=True, metavar="FILE", help="saved model (NAME.json + NAME.npz) or a shipped name")
    e.add_argument("--method", required=True, metavar="NAME", help="method name (see: xattr methods)")
    e.add_argument("--target", type=int, default=None, metavar="K", help="class to explain (default: the prediction)")
    e.add_argument("--layer", default=None, metavar="NAME", help="layer for layer-based methods (e.g. grad_cam)")
    e.add_argument("--out", default=None, metavar="FILE", help="output PNG (or .npy); default IMAGE_METHOD.png")
    e.add_argument("--background", type=float, default=None, metavar="LEVEL",
                   help="gray level in [0, 1] under transparent pixels (default 1: white)")
    e.add_argument("--quiet", action="store_true")
    sub.add_parser("methods", help="list the methods, the axioms each claims, and the rule table",
                   description="List the registered methods, the axioms each claims and the per-layer rule table.")
    from .batch import add_batch_command

    add_batch_command(sub)  # `xattr batch` lives in xattr/batch.py (its handler is args.func)
    return parser


#: failures whose message is for the user as it is (bad input); anything else is named by its type too.
_INPUT_ERRORS = (ValueError, TypeError, OSError, KeyError, NotImplementedError, ImportError)


def error_line(exc):
    """``xattr: error: ...``: one line for any failure (the first line of its message).

    Memory and recursion errors say what they mean; other unexpected exceptions are named by type (set the
    environment variable ``XATTR_DEBUG=1`` to get the traceback instead).
    """
    if os.environ.get("XATTR_DEBUG"):
        raise exc
    if isinstance(exc, MemoryError):
        msg = f"out of memory ({exc or 'MemoryError'}); try smaller inputs, fewer steps/samples or a smaller --chunk"
    elif isinstance(exc, RecursionError):
        msg = "input nested too deeply (RecursionError)"
    elif isinstance(exc, KeyError) and exc.args:
        msg = str(exc.args[0])
    elif isinstance(exc, _INPUT_ERRORS) or type(exc).__module__.startswith("xattr"):
        msg = str(exc) or type(exc).__name__
    else:
        msg = f"{type(exc).__name__}: {exc}"
    lines = [ln.strip() for ln in str(msg).splitlines() if ln.strip()]
    return "xattr: error: " + ("; ".join(lines) if lines else type(exc).__name__)


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (``xattr: error: ...``) and exit status 2."""

    def error(self, message):
        self.exit(2, f"xattr: error: {message} (see: {self.prog} --help)\n")


def main(argv=None):
    import warnings

    from PIL import Image

    # the reader refuses files above Pillow's limit itself, in one line; Pillow's own warning would be a second
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    args = build_parser().parse_args(argv)
    if getattr(args, "func", None):
        return args.func(args)  # a command whose handler lives in its own module (batch)
    try:
        if args.command == "demo":
            if args.n < 1:
                raise ValueError(f"--n must be at least 1, got {args.n}")
            if args.scale < 1:
                raise ValueError(f"--scale must be at least 1, got {args.scale}")
            methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
            run_demo(args.out, n=args.n, seed=args.seed, model_name=args.model, methods=methods,
                     scale=args.scale, quiet=args.quiet)
        elif args.command == "explain":
            run_explain(args.image, args.model, args.method, args.target, args.layer, args.out, args.quiet,
                        args.background)
        elif args.command == "methods":
            run_methods()
    except BrokenPipeError:  # output piped into e.g. `head`: not an error of the input
        return 0
    except KeyboardInterrupt:
        print("xattr: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure: one line, status 2
        print(error_line(exc), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
