"""``xattr batch``: the command line of a batch job (model files, method arguments, baseline pictures, the
summary printed at the end)."""
from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import sys

import numpy as np

from .. import models
from ..io.images import ImageFileError, probe_image
from ..methods.registry import get_method
from ..models._inputs import check_model_space, picture, to_model_input
from .errors import BatchError
from .run import attribute_dataset
from .schedule import _check_scheduler
from .source import _folder_files
from .store import verify_store


def load_model(spec):
    """``(model, info)`` from a saved model (``NAME``/``NAME.json``/``NAME.npz`` or a shipped name, read by
    :func:`xattr.models.load_with_info`), or ``(model, None)`` from a ``module:function`` factory."""
    looks_like_file = os.path.exists(spec) or spec.endswith((".json", ".npz")) or "/" in spec or os.sep in spec
    if ":" in spec and not looks_like_file:
        module, _, name = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import model factory {spec!r}: {exc}") from None
        return factory(), None
    return models.load_with_info(spec)  # ModelFileError (a ValueError) names the file and the problem


def model_input(pixels, spec):
    """Pixels in [0, 1] ``(N, C, H, W)`` -> the model's input, as the model file's input ``spec`` declares.

    Scaled to the declared ``range`` then normalised (:func:`xattr.models._inputs.to_model_input`, what
    ``xattr explain`` does for one image).  ``spec``: ``ModelInfo.input`` (a dict).

    Parameters
    ----------
    pixels : ndarray ``(N, C, H, W)``
        In ``[0, 1]``.
    spec : dict
        ``ModelInfo.input``.

    Returns
    -------
    ndarray ``(N, C, H, W)``
    """
    return to_model_input(pixels, spec)


# The command line's transform is recorded in the job description by its qualified name: keep the one stores
# written before the package split hold ("xattr.batch.model_input"), so that they resume; pickling finds it there.
model_input.__module__ = "xattr.batch"


def _picture_options(methods, info, shape):
    """The CLI's rule for baselines: ``baseline``/``reference`` given as numbers are gray levels
    of a picture in [0, 1]; a method whose such parameter defaults to a number gets the black picture.
    Both are built in the model's declared range and normalised like the images, ``(C, H, W)``."""
    from ..cli.options import PICTURE_OPTIONS, _is_level

    out = []
    for name, options in methods:
        options = dict(options)
        try:
            params = inspect.signature(get_method(name)).parameters
        except ValueError:
            params = {}  # an unknown name: refused with the list of known names by attribute_dataset
        for pname in PICTURE_OPTIONS:
            if pname in params and pname not in options and _is_level(params[pname].default):
                options[pname] = 0.0
            if pname in options and _is_level(options[pname]):
                options[pname] = picture(info, shape, options[pname])
        out.append((name, options))
    return out


def _parse_method_arg(text):
    """``NAME`` or ``NAME:key=value,key=value`` (values as JSON, else strings) -> (name, options)."""
    name, _, rest = text.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"method options must look like NAME:key=value,key=value, got {text!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return name.strip(), options


def add_batch_command(subparsers):
    """Add ``xattr batch`` to the ``xattr`` command's subparsers (handler in ``func``)."""
    p = subparsers.add_parser(
        "batch", help="attribution maps for a whole image set on Dask, into a Zarr store",
        description="Run attribution methods over a folder of images (or an .npy array (N, C, H, W)) on Dask "
                    "and write the maps into a chunked Zarr store, with a JSON summary beside it. Image files are "
                    "read by the rule of 'xattr explain' (8/16-bit, float in [0, 1], palette, CMYK, alpha on "
                    "--background, EXIF rotation), scaled to the model file's declared range and normalised; an "
                    ".npy holds model inputs as they are, which must lie in the declared range after "
                    "normalisation. Baselines are pictures: a number given as baseline= or reference= is a gray "
                    "level in [0, 1] (0 black), built in the declared range and normalised like the images; "
                    "methods with a numeric default baseline get the black image. Every finished chunk carries a "
                    "checksum: --resume recomputes chunks whose data no longer match it; --verify STORE only "
                    "checks them.",
    )
    p.add_argument("images", nargs="?", help="folder of image files, or an .npy file holding (N, C, H, W)")
    p.add_argument("--model",
                   help="saved model (NAME.json + NAME.npz, or a shipped name such as 'shapes'), or module:function")
    p.add_argument("--method", action="append", metavar="NAME[:key=value,...]",
                   help="registered method (repeatable); options as JSON values, e.g. grad_cam:relu=false, "
                        "integrated_gradients:baseline=0.5 (a gray picture)")
    p.add_argument("--out", help="Zarr store to write (a folder, e.g. maps.zarr)")
    p.add_argument("--verify", metavar="STORE", default=None,
                   help="check every finished chunk of STORE against its checksum and report (read-only; "
                        "exit 0 when all are verified, 1 otherwise); rerun the job with --resume to recompute them")
    p.add_argument("--scheduler", default=None,
                   help="threads (default), processes, sync, or a Dask scheduler address tcp://host:port")
    p.add_argument("--resume", action="store_true",
                   help="continue an existing store of the same job; damaged chunks are found and recomputed")
    p.add_argument("--chunk", type=int, default=64, help="images per task and per Zarr chunk (default 64)")
    p.add_argument("--batch-size", type=int, default=None, help="images per method call (default 16)")
    p.add_argument("--target", default="predicted", help="'predicted' (default) or a class index")
    p.add_argument("--seed", type=int, default=0, help="job seed for stochastic methods (default 0)")
    p.add_argument("--on-error", choices=("stop", "continue"), default="stop",
                   help="unreadable image: stop the job (default) or skip it and report it")
    p.add_argument("--background", type=float, default=None, metavar="LEVEL",
                   help="gray level in [0, 1] under transparent pixels of image files (default 1: white)")
    p.add_argument("--workers", type=int, default=None, help="local threads/processes (default: cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_batch_command)
    return p


def _print_summary(result):
    s = result.summary
    print(f"store: {result.store}  summary: {result.summary_path}")
    c = s["chunks"]
    print(f"images: {s['n_images']} ({s['n_verified']} in verified chunks, {s['n_valid']} valid); chunks: "
          f"{c['total']} total, {c['run']} run now, {c['skipped']} already done, {c['verified']} verified")
    for i, why in c.get("recomputed_damaged", {}).items():
        print(f"chunk {i} was damaged ({why}): recomputed")
    for i, why in c.get("unverified", {}).items():
        print(f"chunk {i} is not verified: {why}")
    for label, entry in s["methods"].items():
        ms = entry["map_sum"]
        line = f"{label:>20}: map sum mean {ms.get('mean', float('nan')):+.4e}"
        gap = entry.get("completeness_gap")
        if gap and gap.get("count"):
            worst = max(abs(gap["min"]), abs(gap["max"]))
            line += f", completeness gap |mean| {gap['mean_abs']:.3e}, max |gap| {worst:.3e}"
        print(line)
    for b in s["bad_images"]:
        print(f"unreadable image {b['index']} {b['file']}: {b['error']}")


def _run_verify(args):
    given = [f for f in ("images", "model", "method", "out") if getattr(args, f)]
    if given or args.resume:
        raise ValueError(
            f"--verify STORE takes no job arguments (got {', '.join(given + (['--resume'] if args.resume else []))}); "
            "to recompute damaged chunks, rerun the job with --resume"
        )
    r = verify_store(args.verify)
    for i, why in sorted(r["damaged"].items()):
        print(f"chunk {i}: damaged: {why}")
    print(f"store {args.verify}: {r['chunks']} chunks, {len(r['verified'])} verified ({r['images_verified']} images), "
          f"{len(r['damaged'])} damaged, {len(r['unfinished'])} unfinished"
          + ("; rerun the job with --resume to recompute them" if r["damaged"] or r["unfinished"] else ""))
    return 0 if not (r["damaged"] or r["unfinished"]) else 1


def _npy_inputs(path, info):
    """An .npy of model inputs, memory-mapped; with a model file, its values must lie in the declared range
    after normalisation."""
    try:
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{path!r} is not a numeric .npy array ({exc})".splitlines()[0]) from None
    if info is not None and images.ndim == 4 and images.dtype.kind in "fiub" and images.size:

        check_model_space(images, info, f"the model inputs in {os.path.basename(path)!r}")
    return images


def _input_shape(args, info, images, folder_options):
    """``(C, H, W)`` of the model inputs the job will see (for baseline pictures)."""
    if not isinstance(images, str):
        return tuple(images.shape[1:])
    spec = info.input
    if folder_options.get("image_size"):
        return (spec.get("channels", 3),) + tuple(folder_options["image_size"])

    for f in _folder_files(images):
        try:
            return (spec.get("channels", 3),) + tuple(probe_image(f)[1])
        except ImageFileError:
            continue
    raise BatchError(f"none of the image files in {images!r} can be read")


def run_batch_command(args):
    """Handler of ``xattr batch``; returns the exit code (2 with one line on stderr for any failure)."""
    try:
        if args.verify is not None:
            return _run_verify(args)
        missing = [n for n, v in (("IMAGES", args.images), ("--model", args.model), ("--method", args.method),
                                  ("--out", args.out)) if not v]
        if missing:
            raise ValueError(f"batch needs {', '.join(missing)} (or --verify STORE alone)")
        for name in ("chunk", "batch_size", "workers"):
            v = getattr(args, name)
            if v is not None and v < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive int, got {v}")
        _check_scheduler(args.scheduler, args.workers, 2)
        methods = [_parse_method_arg(m) for m in args.method]
        target = None if args.target == "predicted" else _int_target(args.target)
        model, info = load_model(args.model)
        folder_options = {}
        if os.path.isfile(args.images) and args.images.endswith(".npy"):
            images = _npy_inputs(args.images, info)
            if args.background is not None:
                raise ValueError("--background applies to image files, not to an .npy of model inputs")
        else:
            images = args.images
            if info is not None:  # read as the model file declares: channels, size, range, normalisation
                spec = info.input
                folder_options = dict(
                    image_mode="L" if spec.get("channels", 3) == 1 else "RGB",
                    image_size=(spec["height"], spec["width"]) if spec.get("height") and spec.get("width") else None,
                    transform=functools.partial(model_input, spec=spec),  # described by value: path-independent
                )
            if args.background is not None:
                folder_options["image_background"] = args.background
        if info is not None and (not isinstance(images, str) or os.path.isdir(images)):
            methods = _picture_options(methods, info, _input_shape(args, info, images, folder_options))
        result = attribute_dataset(
            model, images, target, methods=methods, chunk=args.chunk, out=args.out, scheduler=args.scheduler,
            resume=args.resume, on_error=args.on_error, seed=args.seed, batch_size=args.batch_size,
            workers=args.workers, progress=not args.no_progress, model_source=args.model, **folder_options,
        )
    except KeyboardInterrupt:
        print("xattr: interrupted; finished chunks are kept: rerun with --resume", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure is one line (set XATTR_DEBUG=1 for the traceback)
        from ..cli import error_line

        print(error_line(exc), file=sys.stderr)
        return 2
    _print_summary(result)
    return 0


def _int_target(text):
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--target must be 'predicted' or a class index, got {text!r}") from None
