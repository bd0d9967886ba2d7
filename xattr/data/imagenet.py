"""ImageNet (ILSVRC-2012): the 1000 class names in the standard index order, shipped as data, and the evaluation crop.

The names live in ``xattr/models/imagenet_classes.txt``, one per line, line ``i`` (from 0) naming
class ``i``: the order of the sorted WordNet ids of ILSVRC-2012, which every ImageNet classifier
trained on the standard labels uses (class 281 "tabby", 282 "tiger cat", 285 "Egyptian cat",
967 "espresso"). The text comes from torchvision's list of category names
(``torchvision.models._meta._IMAGENET_CATEGORIES``: one short name per class, made unique where
WordNet repeats a word: 134 "crane bird" / 517 "crane", 638 "maillot" / 639 "maillot tank suit"),
so that xattr does not need torchvision at run time. It was written, and is re-checked, by::

    python -m xattr.data.imagenet            # rewrite the file from the installed torchvision
    python -m xattr.data.imagenet --check    # exit 1 if the file differs from torchvision's list
"""
from __future__ import annotations

import argparse
import os
import sys
from functools import lru_cache

import numpy as np

#: the shipped file (package data of ``xattr.models``).
CLASSES_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models",
                            "imagenet_classes.txt")
N_CLASSES = 1000


@lru_cache(maxsize=1)
def imagenet_classes():
    """The 1000 ImageNet class names as a tuple, index ``i`` naming class ``i``.

    Raises
    ------
    ValueError
        If the shipped file does not hold exactly 1000 distinct non-empty names.
    """
    with open(CLASSES_PATH, encoding="utf-8") as f:
        names = tuple(line.rstrip("\n") for line in f)
    if len(names) != N_CLASSES or len(set(names)) != N_CLASSES or not all(n.strip() == n and n for n in names):
        raise ValueError(f"{CLASSES_PATH} must hold {N_CLASSES} distinct non-empty names, one per line; "
                         f"found {len(names)} lines, {len(set(names))} distinct")
    return names


def eval_transform(image, size=224, resize=256):
    """ImageNet evaluation crop of one RGB photo: ``(H, W, 3)`` uint8 -> ``(3, size, size)`` float64 in ``[0, 1]``.

    The shorter side is resized to ``resize`` (the other to ``int(resize · long / short)``) with
    Pillow's bilinear filter (antialiased when shrinking), then the centre ``size × size`` is cut
    (top-left at ``round((H' - size) / 2)``): torchvision's ``Resize(256)``, ``CenterCrop(224)``,
    ``ToTensor()`` on a PIL image, pixel for pixel. The crop keeps ``size / resize = 0.875`` of
    the shorter side, the fraction of TensorFlow's EfficientNet evaluation (``CROP_PADDING = 32``),
    which crops first and then resizes bicubically.

    Parameters
    ----------
    image : ndarray ``(H, W, 3)`` uint8, or a Pillow image in mode ``"RGB"``
    size, resize : int
        Crop side and the shorter side after resizing (``resize >= size``).
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            raise ValueError(
                f"eval_transform takes an RGB image, got Pillow mode {image.mode!r} (convert('RGB') first)"
            )
        pil = image
    else:
        a = np.asarray(image)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ValueError(f"eval_transform takes an RGB image (H, W, 3) uint8, got shape {a.shape} {a.dtype}")
        pil = Image.fromarray(a, "RGB")
    size, resize = int(size), int(resize)
    if not 1 <= size <= resize:
        raise ValueError(f"need 1 <= size <= resize, got size={size}, resize={resize}")
    w, h = pil.size
    if min(w, h) < 1:
        raise ValueError(f"empty image {w}x{h}")
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(resize * long / short)
    nw, nh = (resize, new_long) if w <= h else (new_long, resize)
    if (nw, nh) != (w, h):
        pil = pil.resize((nw, nh), Image.BILINEAR)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    crop = np.asarray(pil, dtype=np.uint8)[top:top + size, left:left + size]
    return np.moveaxis(crop, -1, 0).astype(np.float64) / 255.0


#: scikit-image's colour photographs (``skimage.data``), shipped with the package (no download).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina", "rocket",
                  "stereo_motorcycle")


def skimage_photos(names=("chelsea", "coffee"), size=224, resize=None):
    """scikit-image's photographs as ImageNet evaluation crops: ``(pixels (N, 3, size, size) in [0, 1], names)``.

    Each ``skimage.data.NAME()`` (the left view for ``stereo_motorcycle``; a gray image replicated to RGB;
    RGBA composited on white) goes through :func:`eval_transform` with the shorter side resized to
    ``resize`` (default ``round(size · 256 / 224)``, the 0.875 crop of the 224 evaluation) and the centre
    ``size × size`` cut.

    Raises
    ------
    ImportError
        scikit-image is not installed (it comes with ``pip install 'xattr-ref[imagenet]'``).
    ValueError
        ``NAME`` is not a photograph of ``skimage.data``.

    Parameters
    ----------
    names : iterable of str
    size : int
    resize : int, optional

    Returns
    -------
    pixels : ndarray ``(N, 3, size, size)`` in ``[0, 1]``
    names : list of str
    """
    import importlib

    try:
        data = importlib.import_module("skimage.data")
    except ImportError as exc:
        raise ImportError(
            "the photographs come from scikit-image (skimage.data): pip install 'xattr-ref[imagenet]'"
        ) from exc
    size = int(size)
    resize = max(size, round(size * 256 / 224)) if resize is None else int(resize)
    out = []
    for name in names:
        fn = getattr(data, name, None) if isinstance(name, str) and not name.startswith("_") else None
        if fn is None or not callable(fn):
            raise ValueError(
                f"skimage.data has no photograph {name!r}; its colour photographs: {', '.join(SKIMAGE_PHOTOS)}"
            )
        img = fn()
        img = np.asarray(img[0] if isinstance(img, tuple) else img)  # stereo_motorcycle: (left, right, disparity)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        if img.ndim != 3 or img.shape[2] not in (3, 4) or img.dtype != np.uint8:
            raise ValueError(f"skimage.data.{name}() is not an 8-bit RGB photograph (shape {img.shape}, {img.dtype})")
        if img.shape[2] == 4:  # RGBA: composited on white, as xattr.io.images reads transparent files
            alpha = img[..., 3:] / 255.0
            img = np.round(img[..., :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
        out.append(eval_transform(img, size=size, resize=resize))
    return np.stack(out), list(names)


def _from_torchvision():
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return tuple(_IMAGENET_CATEGORIES)


def main(argv=None):
    """``python -m xattr.data.imagenet``: write (or, with ``--check``, compare) xattr's ImageNet class names from
    torchvision's list.

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    int
        The exit status (``--check``: 1 if the shipped file differs).
    """
    parser = argparse.ArgumentParser(
        description="Write (or check) xattr's ImageNet class names from torchvision's list."
    )
    parser.add_argument("--check", action="store_true", help="compare the shipped file with torchvision's list")
    args = parser.parse_args(argv)
    names = _from_torchvision()
    if len(names) != N_CLASSES or len(set(names)) != N_CLASSES or any("\n" in n for n in names):
        raise SystemExit(f"torchvision's list has {len(names)} names ({len(set(names))} distinct), expected 1000")
    if args.check:
        imagenet_classes.cache_clear()
        same = imagenet_classes() == names
        print(f"{CLASSES_PATH}: {'matches' if same else 'DIFFERS FROM'} torchvision's list")
        return 0 if same else 1
    with open(CLASSES_PATH, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(n + "\n" for n in names))
    imagenet_classes.cache_clear()
    print(f"wrote {len(names)} names to {CLASSES_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
