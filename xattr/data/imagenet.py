"""The 1000 ImageNet (ILSVRC-2012) class names, in the standard index order, shipped as data.

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


def _from_torchvision():
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return tuple(_IMAGENET_CATEGORIES)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write (or check) xattr's ImageNet class names from torchvision's list.")
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
