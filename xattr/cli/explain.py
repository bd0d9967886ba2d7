"""``xattr explain``: one method on one image file with any model; the output is a picture (input, map with its
colour bar, overlay) or the raw map."""
from __future__ import annotations

import contextlib
import inspect
import os
import sys

import numpy as np

from .. import viz
from ..batch.command import _parse_method_arg
from ..io.images import WHITE, read_image
from ..methods.registry import get_method
from ..models import load_with_info
from ..models._inputs import to_model_input
from .options import _VIEWS, _Context, _Passes, _softmax, _view, expected_passes, method_kwargs, run_method

#: default folder of ``xattr explain``'s outputs (in the working directory, never beside the input).
EXPLAIN_DIR = "xattr-explain"


#: parameters through which a method takes reference images (DeepSHAP's ``references``, expected gradients'
#: ``baselines``).
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

    Parameters
    ----------
    path : str or path-like
    info : ModelInfo
    background : colour, optional
    fit : ``"crop"`` or ``"stretch"``
    size : (int, int), optional

    Returns
    -------
    x : ndarray ``(1, C, H, W)``
        The model input.
    picture : Picture
    """
    spec = info.input
    h, w = spec.get("height"), spec.get("width")
    hw = tuple(size) if size is not None else ((h, w) if h and w else None)
    pic = read_image(
        path,
        channels=spec.get("channels", 3),
        size=hw,
        background=WHITE if background is None else background,
        fit=fit,
        resize=spec.get("resize") if size is None else None,
    )
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
    and brought to its size ``hw`` (``fit``), at most ``n`` of them drawn without replacement with ``seed``.

    Parameters
    ----------
    paths : list of str
        Files or folders.
    info : ModelInfo
    hw : (int, int)
    background : colour, optional
    fit : ``"crop"`` or ``"stretch"``
    n : int
    seed : int

    Returns
    -------
    ndarray ``(K, C, H, W)``
    """
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

    Parameters
    ----------
    image : str or path-like
    model_path : str or path-like
    method : str
    target : int, optional
    layer : str, optional
    out : str or path-like, optional
    quiet : bool
    background : colour, optional
    fit : ``"crop"`` or ``"stretch"``
    references : list of str, optional
    n_references : int
    seed : int

    Returns
    -------
    str
        The output path.
    """
    name, options = _parse_method_arg(method)
    fn = get_method(name)
    if layer is not None:
        options = {**options, "layer": layer}
    out = (
        out
        if out is not None
        else os.path.join(EXPLAIN_DIR, f"{os.path.splitext(os.path.basename(image))[0]}_{name}.png")
    )
    fmt = _out_format(out)
    if fit not in ("crop", "stretch"):
        raise ValueError(f"--fit must be 'crop' or 'stretch', got {fit!r}")
    model, info = load_with_info(model_path)
    x, pic = load_image(image, info, background, fit)
    pixels = pic.pixels
    try:
        scores = model.forward(x)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"the model does not take this {x.shape[2]}x{x.shape[3]} image ({exc})".splitlines()[0]
        ) from None
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
