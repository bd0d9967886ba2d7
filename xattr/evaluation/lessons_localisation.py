"""The measurements behind notebook 11 (localisation and class models on the trained shapes network), each with
the check that the notebook's text states.

* Weakly supervised localisation (Simonyan, Vedaldi & Zisserman 2014, §3.1): saliency seeds, GraphCut colour
  segmentation, the largest component's box, scored by the top-1 localisation error (IoU ≥ 0.5, ILSVRC's rule)
  against the ground-truth masks of :func:`xattr.data.make_shapes`, next to a box that ignores the image (the
  centre half).
* Class model visualisation (§2): gradient ascent on the class score from the default start gives each class an
  image the network assigns to it; ascending the softmax probability instead can win by pushing the other classes
  down, which is why the paper ascends the score.
"""
from __future__ import annotations

import numpy as np

from .lessons import LessonClaimFailed
from .localisation import bounding_box, box_iou
from .weak_localisation import top5_localisation

#: a saliency box must beat the image-blind centre box's mean IoU by this much.
LOCALISATION_MARGIN = 0.1


def centre_boxes(n, hw):
    """``(n, 4)`` boxes of the centre half of an ``(H, W)`` image: ``(H/4, W/4, 3H/4, 3W/4)``.

    Parameters
    ----------
    n : int
        The number of boxes.
    hw : (int, int)
        The image's ``(H, W)``.

    Returns
    -------
    float64 ndarray ``(n, 4)``
        Every row ``(H // 4, W // 4, 3H // 4, 3W // 4)``: a guess that never looks at the image.
    """
    H, W = hw
    return np.tile(np.array([H // 4, W // 4, 3 * H // 4, 3 * W // 4], dtype=np.float64), (n, 1))


def localisation_table(model, images, labels, masks, methods, rng=0):
    """``{name: {"error", "iou"}}``: top-1 localisation error and mean IoU per saliency method, and ``"centre box"``.

    Parameters
    ----------
    model : a classifier with ``forward``
    images : ndarray ``(N, C, H, W)``
    labels : int ndarray ``(N,)``
    masks : bool ndarray ``(N, H, W)``, the objects
    methods : dict ``{name: fn(model, x, target) -> maps}``
    rng : int or Generator, the GraphCut colour models' EM start

    Returns
    -------
    dict
    """
    out = {}
    for name, fn in methods.items():
        r = top5_localisation(model, images, labels, masks, method=fn, k=1, rng=rng)
        out[name] = {"error": r.error, "iou": float(r.iou[:, 0].mean())}
    truth = np.array([bounding_box(m) for m in masks], dtype=np.float64)
    iou = box_iou(centre_boxes(len(images), images.shape[2:]), truth)
    out["centre box"] = {"error": float(np.mean(iou < 0.5)), "iou": float(iou.mean())}
    return out


def check_localisation(table, better="Grad-CAM", worse="gradient", margin=LOCALISATION_MARGIN):
    """``better``'s mean IoU beats the centre box's by ``margin`` and its localisation error is below ``worse``'s.

    ``worse``, the paper's gradient, is not held to the margin: on the shapes network its boxes are barely better
    than the centre box.

    Parameters
    ----------
    table : dict ``{name: {"error", "iou"}}``
        As :func:`localisation_table` gives it, with a ``"centre box"`` row.
    better, worse : str
        Method names, rows of ``table``.
    margin : float
        How much ``better``'s mean IoU must exceed the centre box's (default ``LOCALISATION_MARGIN``).

    Raises
    ------
    LessonClaimFailed
        With the numbers, when either part fails (:class:`~xattr.evaluation.lessons.LessonClaimFailed`).
    """
    base = table["centre box"]["iou"]
    if table[better]["iou"] < base + margin:
        raise LessonClaimFailed(f"{better}'s boxes have mean IoU {table[better]['iou']:.3f}, not above the centre "
                                f"box's {base:.3f} + {margin}")
    if not table[better]["error"] < table[worse]["error"]:
        raise LessonClaimFailed(f"{better}'s localisation error {table[better]['error']:.3f} is not below {worse}'s "
                                f"{table[worse]['error']:.3f}")


def check_class_models(model, images, classes):
    """Each visualised image is assigned its class: ``argmax f(image_c) = c``; raises otherwise.

    Parameters
    ----------
    model : a classifier with ``forward``
    images : ndarray ``(N, C, H, W)``
        The class images.
    classes : int sequence ``(N,)``
        The class each image was made for.

    Returns
    -------
    int ndarray ``(N,)``
        The predicted classes (equal to ``classes``).

    Raises
    ------
    LessonClaimFailed
        When any image is assigned another class.
    """
    pred = np.asarray(model.forward(images)).argmax(axis=1)
    if not np.array_equal(pred, np.asarray(classes)):
        raise LessonClaimFailed(f"the class images are assigned {pred.tolist()}, not {list(classes)}")
    return pred


def softmax_against_score(model, cls, shape, steps=30, lr=0.01):
    """Scores of the default start and of the softmax-objective ascent for ``cls`` (no prior, ``lam = 0``).

    Parameters
    ----------
    model : a classifier with ``forward``
    cls : int
        The class ascended.
    shape : tuple ``(C, H, W)``
        One image's shape.
    steps : int
        Ascent steps.
    lr : float
        Step size.

    Returns
    -------
    dict
        ``"start"`` and ``"softmax"``: the scores ``(K,)`` of the default start and of the ascended image;
        ``"log_p"``: the final log-probability of ``cls`` (float).
    """
    from ..methods.class_visualisation import class_model_visualisation

    start = class_model_visualisation(model, cls, shape, steps=0).image
    res = class_model_visualisation(model, cls, shape, steps=steps, softmax=True, lam=0.0, lr=lr)
    return {"start": np.asarray(model.forward(start))[0], "softmax": np.asarray(model.forward(res.image))[0],
            "log_p": float(np.ravel(res.values)[-1])}


def check_softmax_lowers_the_others(m, cls):
    """Under the softmax objective ``cls`` wins (log P > −0.1) while its own score falls below its start.

    The others fell further (Simonyan et al. 2014, §2).

    Parameters
    ----------
    m : dict
        As :func:`softmax_against_score` gives it: ``"start"``, ``"softmax"`` scores ``(K,)`` and ``"log_p"``.
    cls : int
        The class ascended.

    Raises
    ------
    LessonClaimFailed
        Unless ``log_p > −0.1``, ``cls`` is the softmax image's top class and its score fell below its start.
    """
    own0, own1 = m["start"][cls], m["softmax"][cls]
    if not (m["log_p"] > -0.1 and int(np.argmax(m["softmax"])) == cls and own1 < own0):
        raise LessonClaimFailed(f"class {cls}: log P {m['log_p']:.3f}, score {own0:.2f} -> {own1:.2f}: the softmax "
                                f"objective did not win by lowering the others")
