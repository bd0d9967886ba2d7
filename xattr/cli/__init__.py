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

The package: the parser and :func:`main` here; :mod:`.demo`, :mod:`.explain` and :mod:`.options` (how a method is
called: its options, the maps as shown); ``xattr batch`` in :mod:`xattr.batch.command`.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from PIL import Image

from ..batch import add_batch_command
from ..methods.registry import _METHODS
from ..nn import rule_table
from .demo import (
    DEMO_PHOTOS,
    PHOTO_LAYER,
    PHOTO_SIZE,
    PHOTOS_HINT,
    POINTING_TOLERANCE,
    black_reference,
    demo_model,
    load_photos,
    pick_examples,
    pointing_hits,
    relevance_masses,
    run_demo,
    run_photo_demo,
    summary_markdown,
)
from .explain import EXPLAIN_DIR, MAX_REFERENCES, load_image, load_references, run_explain
from .options import (
    BLAS_THREADS,
    METHOD_OPTIONS,
    PICTURE_OPTIONS,
    SENSITIVITY,
    blas_threads,
    expected_passes,
    method_kwargs,
    methods_table,
    run_method,
    to_maps,
)


def method_claims():
    """``{method: [axioms it claims]}`` from the registered methods' specs and the claims table."""
    from ..testing.claims import all_claims

    return {k: list(v.claims) for k, v in all_claims().items()}


def run_methods():
    """``xattr methods``: print the methods table (name, family, function, axioms claimed) and the rule table.

    Returns
    -------
    None
    """
    claims = method_claims()
    print("| method | family | function | axioms claimed |")
    print("|---|---|---|---|")
    for name, (fn, family) in _METHODS.items():
        ax = "(xattr.testing declares no claims yet)" if claims is None else ", ".join(claims.get(name, [])) or "–"
        print(f"| {name} | {family} | `{fn.__module__}.{fn.__name__}` | {ax} |")
    print()
    print(rule_table())


def build_parser():
    """The ``xattr`` command line: the sub-commands ``demo``, ``explain``, ``methods`` and ``batch`` with their options.

    Returns
    -------
    argparse.ArgumentParser
    """
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
    e.add_argument(
        "--model", required=True, metavar="FILE", help="saved model (NAME.json + NAME.npz) or a shipped name"
    )
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
                        "at most --n-references drawn with --seed")
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
    # the reader refuses files above Pillow's limit itself, in one line; Pillow's own warning would be a second
    """The ``xattr`` command: parse ``argv`` and run the sub-command.

    Every failure is reported in one line on stderr.

    Parameters
    ----------
    argv : list of str, optional
        Default: ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, 2 on an error, 130 when interrupted.
    """
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


__all__ = [
    "main", "build_parser", "error_line", "method_claims", "run_methods",
    "run_demo", "run_photo_demo", "summary_markdown", "demo_model", "pick_examples", "load_photos", "black_reference",
    "pointing_hits", "relevance_masses", "run_explain", "load_image", "load_references",
    "methods_table", "method_kwargs", "run_method", "to_maps", "blas_threads", "expected_passes",
    "METHOD_OPTIONS", "PICTURE_OPTIONS", "SENSITIVITY", "BLAS_THREADS", "POINTING_TOLERANCE", "DEMO_PHOTOS",
    "PHOTO_SIZE", "PHOTO_LAYER", "PHOTOS_HINT", "EXPLAIN_DIR", "MAX_REFERENCES",
]
