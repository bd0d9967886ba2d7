"""Does multi-label prediction degrade the maps?  The seed's claim, measured on pictures of two labelled objects.

Seed 002 says saliency methods work for one class and one instance, but "their performance worsens when dealing
with multi-class prediction".  Here each picture holds two objects of two different classes in opposite halves
(masks known by construction, :func:`label_pairs`), drawn on the same background also alone, so every label's map
on the two-object picture has a twin on its object's one-object picture.  A map is scored by the share of its
magnitude ``Σ_c |A|`` on its own object (:func:`~xattr.evaluation.lessons.mass_shares`), for three heads:

* ``"logit"``: the class score itself;
* ``"sigmoid"``: an independent sigmoid per class, ``σ(s_c)`` (a multi-label head);
* ``"softmax"``: the coupled probability ``p_c = e^{s_c} / Σ_j e^{s_j}``, whose gradient
  ``p_c (∇s_c − Σ_j p_j ∇s_j)`` carries every other present class's gradient with weight ``−p_c p_j``.

Two models:

* :func:`colour_label_model`, exact by construction: class ``c`` is an object of primary colour ``e_c`` on a gray
  background, detected by a 1×1 convolution and a ReLU (``d_c = ReLU(2x_c − Σ_{j≠c} x_j − 1)``: 1 on the object,
  0 elsewhere), global average pooling and one output per class.  A class's features live on its object only, so
  the logit and sigmoid maps of a two-object picture *equal* the one-object maps (the claim does not show), while
  the softmax gradient puts the closed-form share ``p_j |A_j| / ((1 − p_c) |A_c| + p_j |A_j|)`` on the other
  object (:func:`softmax_leak_share`), which Grad-CAM's final ReLU removes again.
* the shipped shapes CNN (trained with a softmax on one object per picture), on two shapes of different classes:
  its features are shared between classes, and what its maps do is measured (:func:`label_table`), not assumed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._conventions import as_rng
from .lessons import LessonClaimFailed, mass_shares


def _gradient(model, x, target):
    from ..methods import gradient

    return gradient(model, x, target)


def _grad_cam(model, x, target):
    from ..methods import grad_cam

    return grad_cam(model, x, target)


def _grad_cam_no_relu(model, x, target):
    from ..methods import grad_cam

    return grad_cam(model, x, target, relu=False)


def _integrated_gradients(model, x, target, steps=16):
    from ..methods import integrated_gradients

    return integrated_gradients(model, x, target, steps=steps)


#: the maps measured: the gradient, Grad-CAM with its final ReLU (the paper's) and without (Captum's default),
#: integrated gradients (black baseline, 16 Gauss–Legendre nodes).
METHODS = {
    "gradient": _gradient, "Grad-CAM": _grad_cam, "Grad-CAM (no ReLU)": _grad_cam_no_relu,
    "IG": _integrated_gradients,
}

__all__ = [
    "PRIMARIES", "LabelPairs", "label_pairs", "colour_label_model", "sigmoid", "HEADS", "label_shares",
    "label_table", "softmax_leak_share", "check_independent_heads", "check_softmax_coupling", "check_shared_features",
    "METHODS", "main",
]

#: the classes of :func:`colour_label_model`: red, green, blue objects.
PRIMARIES = np.eye(3)


def sigmoid(s):
    """Row-wise ``σ(s) = 1 / (1 + e^{−s})`` ``(B, K) -> (B, K)`` (autograd): independent per-class heads.

    Parameters
    ----------
    s : ndarray ``(B, K)``

    Returns
    -------
    ndarray ``(B, K)``
    """
    import autograd.numpy as anp

    return 0.5 * (1 + anp.tanh(0.5 * s))


#: the heads a label is explained through: a target ``(classes, transform)`` builder per name.
HEADS = {
    "logit": lambda classes: classes,
    "sigmoid": lambda classes: (classes, sigmoid),
    "softmax": lambda classes: (classes, "softmax"),
}


@dataclass
class LabelPairs:
    """What :func:`label_pairs` returns.

    Attributes
    ----------
    both : ndarray ``(N, 3, H, W)``
        The two objects on the background.
    alone : ndarray ``(N, 2, 3, H, W)``
        Object ``k`` alone on the same background (``alone[:, k]``).
    labels : int ndarray ``(N, 2)``
        The two classes, different in every picture.
    masks : bool ndarray ``(N, 2, H, W)``
        The pixels of object ``k``; the two never overlap.
    """

    both: np.ndarray
    alone: np.ndarray
    labels: np.ndarray
    masks: np.ndarray


def label_pairs(n, rng, size=32, n_classes=4, colours="random"):
    """Pictures of two objects of two different classes in opposite halves, and each object alone.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator or int
    size : int
        Image side (at least 16).  Radii ``U(0.14, 0.20) · size``.
    n_classes : int
        Classes drawn from (at least 2).  With ``colours="random"`` they are the shapes of
        :data:`xattr.data.SHAPES` (at most 4), on :func:`xattr.data.make_shapes`' textured background, each object
        in its own colour contrasting with the background; with ``colours="primary"`` class ``c`` is an object of
        colour ``PRIMARIES[c]`` (at most 3) of a random shape on a gray background (level ``U(0.3, 0.7)``, pixel
        noise 0.03), which :func:`colour_label_model` detects exactly.
    colours : ``"random"`` or ``"primary"``

    Returns
    -------
    LabelPairs
    """
    from ..data import SHAPES, _background, _contrasting_colors, shape_mask

    gen = as_rng(rng)
    n, size, n_classes = int(n), int(size), int(n_classes)
    if colours not in ("random", "primary"):
        raise ValueError(f"colours must be 'random' or 'primary', got {colours!r}")
    limit = len(SHAPES) if colours == "random" else len(PRIMARIES)
    if not 2 <= n_classes <= limit:
        raise ValueError(f"n_classes must be in [2, {limit}] for colours={colours!r}, got {n_classes}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    # two different classes per picture: the first uniform, the second uniform among the others
    first = gen.integers(0, n_classes, n)
    labels = np.stack([first, (first + gen.integers(1, n_classes, n)) % n_classes], 1)
    kinds = labels if colours == "random" else gen.integers(0, len(SHAPES), (n, 2))
    if colours == "random":
        img, base = _background(gen, n, size)
        img = np.clip(img, 0, 1)
        colour = np.stack([_contrasting_colors(gen, n, base) for _ in range(2)], 1)  # (n, 2, 3)
    else:
        level = gen.uniform(0.3, 0.7, (n, 1, 1, 1))
        img = np.clip(level + gen.normal(0, 0.03, (n, 3, size, size)), 0, 1)
        colour = PRIMARIES[labels]
    radius = gen.uniform(0.14, 0.20, (n, 2)) * size
    half = size / 2.0
    along = np.stack([radius[:, 0] + 1.0 + gen.random(n) * (half - 2 * radius[:, 0] - 1.0),
                      half + radius[:, 1] + gen.random(n) * (half - 2 * radius[:, 1] - 1.0)], 1)
    across = radius + 1.0 + gen.random((n, 2)) * (size - 2 * radius - 2.0)
    vertical = gen.random(n) < 0.5
    centre = np.where(vertical[:, None, None], np.stack([along, across], 2), np.stack([across, along], 2))
    angle = gen.uniform(0, 2 * np.pi, (n, 2))
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    masks = np.zeros((n, 2, size, size), dtype=bool)
    for k in range(2):  # two objects; each kind vectorised over the pictures that draw it
        for kind_id, kind in enumerate(SHAPES):
            sel = kinds[:, k] == kind_id
            if sel.any():
                masks[sel, k] = shape_mask(kind, rows, cols, centre[sel, k], radius[sel, k], angle[sel, k])
    paint = [np.where(masks[:, k, None], colour[:, k, :, None, None], img) for k in range(2)]
    both = np.where(masks[:, 1, None], colour[:, 1, :, None, None], paint[0])
    return LabelPairs(both=both, alone=np.stack(paint, 1), labels=labels.astype(np.int64), masks=masks)


def colour_label_model(gain=60.0, bias=-2.0):
    """The exact multi-label model of :data:`PRIMARIES`: ``Conv1×1 → ReLU → GAP → Dense`` with logits
    ``s_c = gain · mean_{hw} d_c + bias``, ``d_c = ReLU(2x_c − Σ_{j≠c} x_j − 1)``.

    On :func:`label_pairs` pictures with ``colours="primary"``, ``d_c`` is 1 on the pixels of a class-``c`` object
    and 0 everywhere else (gray ± noise gives ``−1 + O(0.1)``, another primary ``−2``), so ``s_c`` reads the area of
    class ``c``'s object only.  With the defaults a present class (area share ≈ 0.07) scores ≈ +2, an absent one
    −2.

    Parameters
    ----------
    gain, bias : float

    Returns
    -------
    Sequential
    """
    from ..nn import Conv2D, Dense, GlobalAvgPool2D, ReLU, Sequential

    conv = Conv2D(3, 3, 1)
    conv.weight = (3 * np.eye(3) - 1.0)[:, :, None, None]  # 2 on the own channel, −1 on the others
    conv.bias = -np.ones(3)
    dense = Dense(3, 3)
    dense.weight = float(gain) * np.eye(3)
    dense.bias = np.full(3, float(bias))
    return Sequential(conv, ReLU(), GlobalAvgPool2D(), dense)


def label_shares(model, pairs, method, head):
    """Share of each label's map on its own and on the other object, on the two-object picture and alone.

    Parameters
    ----------
    model : model protocol object
    pairs : LabelPairs
    method : callable ``(model, x, target) -> maps (N, C', H, W)``
    head : str, a key of :data:`HEADS`

    Returns
    -------
    dict with ``"own"``, ``"other"`` (two-object picture) and ``"alone"`` (own share of the map of the object alone),
    each ndarray ``(N, 2)``: label ``k`` of every picture.
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {sorted(HEADS)}, got {head!r}")
    own, other, alone = (np.empty(pairs.labels.shape) for _ in range(3))
    instances = pairs.masks[:, 0] + 2 * pairs.masks[:, 1].astype(np.int64)  # 0 background, k + 1 object k
    for k in range(2):
        target = HEADS[head](pairs.labels[:, k])
        s = mass_shares(method(model, pairs.both, target), instances)
        own[:, k], other[:, k] = s[:, k], s[:, 1 - k]
        alone[:, k] = mass_shares(method(model, pairs.alone[:, k], target), instances)[:, k]
    return {"own": own, "other": other, "alone": alone}


def label_table(model, pairs, methods, heads=("logit", "sigmoid", "softmax")):
    """``{(method, head): {"own", "other", "alone"}}`` mean shares over pictures and labels (floats).

    Parameters
    ----------
    model : model protocol object
    pairs : LabelPairs
    methods : dict ``{name: fn(model, x, target) -> maps}``
    heads : iterable of str

    Returns
    -------
    dict
    """
    return {(name, head): {key: float(v.mean()) for key, v in label_shares(model, pairs, fn, head).items()}
            for name, fn in methods.items() for head in heads}


def softmax_leak_share(model, pairs):
    """The closed-form share of the softmax gradient map of each label on the *other* object, for
    :func:`colour_label_model` on ``colours="primary"`` pairs: ``p_j |A_j| / ((1 − p_c) |A_c| + p_j |A_j|)``.

    ``∂p_c/∂x = p_c (∇s_c − Σ_j p_j ∇s_j)``; the ``∇s_j`` live on disjoint objects and have the same magnitude per
    pixel (``gain · Σ_i |W_ji| / HW``), so the magnitudes on the two objects are ``p_c (1 − p_c) |A_c|`` and
    ``p_c p_j |A_j|`` (``|A|``: object areas, ``j`` the other present class; absent classes have ``∇s = 0``).

    Parameters
    ----------
    model : Sequential, :func:`colour_label_model`
    pairs : LabelPairs

    Returns
    -------
    ndarray ``(N, 2)``
    """
    s = model.forward(pairs.both)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    area = pairs.masks.sum(axis=(2, 3)).astype(np.float64)  # (N, 2)
    rows = np.arange(len(p))[:, None]
    pc = p[rows, pairs.labels]                               # (N, 2): p of label k
    own, other = (1 - pc) * area, pc[:, ::-1] * area[:, ::-1]
    return other / (own + other)


def _claim(ok, message):
    if not ok:
        raise LessonClaimFailed(message)


#: maps count as unchanged by the second object when their own-object shares agree to this.
SAME_SHARE_TOL = 1e-9


def check_independent_heads(table, methods, heads=("logit", "sigmoid")):
    """On the exact colour model: every named method's logit and sigmoid maps hold all their mass on the own
    object, on the two-object picture as alone (the claim does not show without shared features or coupling).

    Parameters
    ----------
    table : dict, as :func:`label_table` returns it
    methods, heads : iterables of str

    Returns
    -------
    None
        Raises :class:`~xattr.evaluation.lessons.LessonClaimFailed` naming the first failure.
    """
    for m in methods:
        for h in heads:
            row = table[(m, h)]
            _claim(abs(row["own"] - 1) < SAME_SHARE_TOL and abs(row["alone"] - 1) < SAME_SHARE_TOL,
                   f"{m} / {h}: own-object share {row['own']:.6f} with two objects, {row['alone']:.6f} alone")


def check_softmax_coupling(table, leak, method="gradient", relu_method="Grad-CAM"):
    """On the exact colour model: the softmax head's gradient map puts the closed-form share ``leak`` (from
    :func:`softmax_leak_share`) on the other object, and Grad-CAM's final ReLU removes it (own share 1).

    Parameters
    ----------
    table : dict, as :func:`label_table` returns it
    leak : ndarray ``(N, 2)``
    method, relu_method : str

    Returns
    -------
    None
        Raises :class:`~xattr.evaluation.lessons.LessonClaimFailed` naming the first failure.
    """
    row = table[(method, "softmax")]
    want = float(np.mean(leak))
    _claim(abs(row["other"] - want) < 1e-9 and want > 0.05,
           f"{method} / softmax: {row['other']:.6f} on the other object, closed form {want:.6f}")
    _claim(abs(row["alone"] - 1) < SAME_SHARE_TOL, f"{method} / softmax alone: own share {row['alone']:.6f}")
    cam = table[(relu_method, "softmax")]
    _claim(abs(cam["own"] - 1) < SAME_SHARE_TOL, f"{relu_method} / softmax: own share {cam['own']:.6f}")


#: the trained CNN: a label's gradient map loses at least this own-object share on the two-object picture, and
#: Grad-CAM's map holds more than GRAD_CAM_RATIO times as much on its own object as on the other.
GRADIENT_DROP_MIN, GRAD_CAM_RATIO = 0.02, 2.0


def check_shared_features(table):
    """On the trained shapes CNN (shared features), what the measurements show, as claims:

    * the gradient degrades: its own-object share on the two-object picture is lower than alone by more than
      ``GRADIENT_DROP_MIN``, and the other object holds at least 0.8 times as much (not class-discriminative);
    * Grad-CAM with its ReLU stays class-discriminative: own share above ``GRAD_CAM_RATIO`` times the other's;
    * the softmax head sharpens Grad-CAM: it leaves less on the other object than the logit does (below 0.75×),
      since the other class's evidence enters its weights with a negative sign and the ReLU cuts it.

    Parameters
    ----------
    table : dict, as :func:`label_table` returns it, with the methods ``"gradient"`` and ``"Grad-CAM"`` and the
        heads ``"logit"`` and ``"softmax"``

    Returns
    -------
    None
        Raises :class:`~xattr.evaluation.lessons.LessonClaimFailed` naming the first failure.
    """
    g = table[("gradient", "logit")]
    _claim(g["alone"] - g["own"] > GRADIENT_DROP_MIN,
           f"gradient: own-object share {g['own']:.3f} with two objects, {g['alone']:.3f} alone")
    _claim(g["other"] > 0.8 * g["own"], f"gradient: {g['other']:.3f} on the other object, {g['own']:.3f} on its own")
    c = table[("Grad-CAM", "logit")]
    _claim(c["own"] > GRAD_CAM_RATIO * c["other"],
           f"Grad-CAM: {c['own']:.3f} on its own object, {c['other']:.3f} on the other")
    cs = table[("Grad-CAM", "softmax")]
    _claim(cs["other"] < 0.75 * c["other"],
           f"Grad-CAM on the other object: softmax {cs['other']:.3f}, logit {c['other']:.3f}")


def main(argv=None):
    """``python -m xattr.evaluation.lessons_multilabel``: the tables of both models, and the claims checked.

    Parameters
    ----------
    argv : list of str, optional
        ``--n`` pictures (default 64), ``--seed`` (default 1), ``--steps`` IG nodes (default 16).

    Returns
    -------
    int
        The exit status.
    """
    import argparse
    import functools

    from ..models import load

    p = argparse.ArgumentParser(prog="python -m xattr.evaluation.lessons_multilabel", description=main.__doc__)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=16)
    a = p.parse_args(argv)
    methods = dict(METHODS, IG=functools.partial(_integrated_gradients, steps=a.steps))
    for title, model, pairs in [
        ("exact colour model (colour_label_model)", colour_label_model(),
         label_pairs(a.n, a.seed, n_classes=3, colours="primary")),
        ("shipped shapes CNN (softmax-trained, shared features)", load("shapes"), label_pairs(a.n, a.seed)),
    ]:
        table = label_table(model, pairs, methods)
        print(f"{title}: {a.n} pictures (seed {a.seed}), object area share {pairs.masks.mean(axis=(0, 2, 3))}")
        print("| method | head | own (two objects) | other | own (alone) |\n|---|---|---|---|---|")
        for (m, h), row in table.items():
            print(f"| {m} | {h} | {row['own']:.3f} | {row['other']:.3f} | {row['alone']:.3f} |")
        if "colour" in title:
            leak = softmax_leak_share(model, pairs)
            print(f"closed-form softmax leak {leak.mean():.4f}")
            check_independent_heads(table, list(methods))
            check_softmax_coupling(table, leak)
        else:
            top2 = np.argsort(-model.forward(pairs.both), axis=1)[:, :2]
            hit = np.mean(np.sort(top2, axis=1) == np.sort(pairs.labels, axis=1), axis=1) == 1
            print(f"both labels in the top 2: {hit.mean():.3f}")
            check_shared_features(table)
    print("claims hold")
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main())
