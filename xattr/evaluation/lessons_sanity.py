"""The measurements behind notebook 09 (*sanity checks for saliency maps*, Adebayo et al. 2018), one code path for
its text and its tests.

As in :mod:`xattr.evaluation.lessons`: each function computes what the notebook states, each ``check_*`` function
asserts one claim with a named margin and raises :class:`~xattr.evaluation.lessons.LessonClaimFailed` naming the
measured value.  The notebook calls both; ``tests/test_lessons_sanity.py`` checks the measurements against oracles
and shows each claim can fail.

* **Model randomisation**: the trained network's parameters are re-drawn from the output down, a group of layers
  (one block) per step (:func:`layer_groups`, :class:`GroupRandomizer`), cumulatively (*cascading*) or one group
  at a time (*independent*), and every method's map is compared with the trained network's map
  (:func:`randomization_curves`, built on :func:`xattr.evaluation.sanity.cascading_randomization` and
  :func:`~xattr.evaluation.sanity.independent_randomization`).
* **Data randomisation**: the same architecture trained on a fixed image set whose labels are permuted
  (:func:`fit_fixed_set`: it can only memorise), its maps compared with those of a network that learned the task
  (:func:`data_randomization_table`, built on :func:`xattr.evaluation.sanity.data_randomization`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._conventions import as_rng, check_image_batch
from .lessons import LessonClaimFailed, _claim

__all__ = [
    "layer_groups", "merge_blocks", "GroupRandomizer", "SanityCurves", "unit_scale", "randomization_curves",
    "check_top_layers", "check_end_points",
    "FitResult", "fit_fixed_set", "data_randomization_table", "check_fit", "check_data_randomization",
    "LessonClaimFailed",
]

METRICS = ("spearman", "spearman_abs", "ssim", "hog")


# -- model randomisation ------------------------------------------------------------------------------------
def _group_key(name):
    """``"_blocks.3._expand_conv" -> "_blocks.3"``; a top-level name is its own group."""
    return name.rsplit(".", 1)[0] if "." in name else name


def layer_groups(model):
    """The model's layers with weights in groups of one block each, in forward order: ``[(label, [names])]``.

    A group is a run of consecutive parametric layers (``Conv2D``, ``Dense``, ``BatchNorm2D``) whose names share
    the prefix before the last dot (``_blocks.3._expand_conv`` and ``_blocks.3._bn0`` are block ``_blocks.3``); a
    top-level ``BatchNorm2D`` joins the layer before it (a convolution and its normalisation are one layer in the
    paper's networks, e.g. ``_conv_stem`` + ``_bn0``).  The label is the prefix, or the first layer's name.
    """
    from ..nn import BatchNorm2D
    from ..testing import twins

    names = twins.parametric_layer_names(model)
    if not names:
        raise ValueError("the model has no layers with weights to randomise")
    groups = []
    for n in names:
        key = _group_key(n)
        joins = groups and (key == groups[-1][0] or ("." not in n and isinstance(model[n], BatchNorm2D)))
        if joins:
            groups[-1][1].append(n)
        else:
            groups.append((key, [n]))
    return groups


def merge_blocks(groups, per_step):
    """Coarser steps: numbered blocks (labels ``<prefix>.<i>``) merged ``per_step`` at a time, counted from the
    top; other groups are kept.  The label of a merged step is ``<prefix>.<first>–<last>``.

    Parameters
    ----------
    groups : list of (str, list of str)
        ``(label, layer names)`` steps.
    per_step : int

    Returns
    -------
    list of (str, list of str)
    """
    per_step = int(per_step)
    if per_step < 1:
        raise ValueError(f"per_step must be a positive int, got {per_step}")

    def block(label):
        head, _, tail = label.rpartition(".")
        return (head, int(tail)) if head and tail.isdigit() else None

    out, run = [], []

    def flush():
        for lo in range(len(run) % per_step - per_step if len(run) % per_step else 0, len(run), per_step):
            part = run[max(lo, 0):lo + per_step]
            first, last = block(part[0][0]), block(part[-1][0])
            label = part[0][0] if len(part) == 1 else f"{first[0]}.{first[1]}–{last[1]}"
            out.append((label, [n for _, names in part for n in names]))
        run.clear()

    for label, names in groups:
        b = block(label)
        if b is not None and (not run or block(run[-1][0])[0] == b[0]):
            run.append((label, names))
            continue
        flush()
        if b is not None:
            run.append((label, names))
        else:
            out.append((label, list(names)))
    flush()
    return out


class GroupRandomizer:
    """A ``randomize=`` callable for :func:`xattr.evaluation.sanity.cascading_randomization` that re-draws a whole
    group of layers per step.

    ``groups``: ``[(label, [layer names])]`` (:func:`layer_groups`).  A step is named by its group's first layer
    (a key of the model, which the randomisation functions need); :attr:`keys` lists them top down (the paper's
    order: logits first) and :meth:`label` gives a step's group label.  Each layer is re-drawn as
    :func:`xattr.evaluation.sanity.redraw` does (``N(0, s²)``, ``s`` the std of the trained weights).
    """

    def __init__(self, groups):
        self.groups = [(str(label), list(names)) for label, names in groups]
        if not self.groups or any(not names for _, names in self.groups):
            raise ValueError("groups must be a non-empty list of (label, [layer names]) with at least one layer each")
        self._by_key = {names[0]: names for _, names in self.groups}
        self._labels = {names[0]: label for label, names in self.groups}

    @property
    def keys(self):
        """The steps, top down: each group's first layer name."""
        return [names[0] for _, names in self.groups][::-1]

    def label(self, key):
        return self._labels[key]

    def __call__(self, model, key, gen):
        from ..testing import twins

        return twins.random_weights_like(model, gen, layers=self._by_key[key])


@dataclass
class SanityCurves:
    """Similarity to the trained network's map after each randomisation step, per method.

    ``steps``: the group labels, top down (step ``i`` randomised ``steps[i]``, with all before it when
    ``cascade``); ``similarity``: ``{method: {metric: (steps, N)}}``, NaN where the randomised network's map is
    constant (every gradient exactly zero: a saturated network has no map to compare); ``constant``:
    ``{method: (steps, N) bool}`` those cases; ``maps``: ``{method: (steps + 1, ...)}`` the first image's map,
    trained first, then after each step.
    """

    steps: list
    cascade: bool
    similarity: dict
    constant: dict
    maps: dict = field(default_factory=dict)

    def mean(self, method, metric):
        """``(steps,)``: the mean over images (NaN if a map of the step was constant)."""
        return self.similarity[method][metric].mean(axis=1)

    def end(self, method, metric):
        """The mean similarity after the last step (cascading: every group randomised)."""
        return float(self.mean(method, metric)[-1])

    def table(self, metric):
        """Rows ``(step, {method: mean similarity})`` for printing."""
        return [(s, {m: float(self.mean(m, metric)[i]) for m in self.similarity}) for i, s in enumerate(self.steps)]


def unit_scale(a):
    """Each map divided by its largest magnitude (``max |A| = 1``; a zero map stays zero).

    SSIM depends on scale (its constants and data range), and the randomised network's gradients are orders of
    magnitude smaller than the trained one's; rank correlations do not change.
    """
    a = np.asarray(a, dtype=np.float64)
    m = np.abs(a).reshape(len(a), -1).max(axis=1).reshape((-1,) + (1,) * (a.ndim - 1))
    return a / np.where(m > 0, m, 1.0)


def _compare(a, b, metrics):
    """``compare_maps`` of the images where ``b`` is not constant, NaN elsewhere: ``({metric: (N,)}, dead (N,))``."""
    from ._common import constant_rows, flat_per_image
    from .similarity import compare_maps

    dead = np.zeros(len(b), dtype=bool)
    dead[constant_rows(flat_per_image(b, "map"))] = True
    live = np.flatnonzero(~dead)
    got = compare_maps(a[live], b[live], metrics) if live.size else {}
    out = {}
    for k in metrics:
        out[k] = np.full(len(b), np.nan)
        if live.size:
            out[k][live] = got[k]
    return out, dead


def randomization_curves(methods, model, x, target, rng, groups=None, cascade=True, metrics=METRICS):
    """Adebayo et al. 2018's model-parameter randomisation test (§3.1) for several methods, block by block.

    The loop of :func:`xattr.evaluation.sanity.cascading_randomization` (``cascade=True``) and
    :func:`~xattr.evaluation.sanity.independent_randomization` (``False``) with ``randomize=GroupRandomizer``
    and the same draws from ``rng``, run once for all methods (one randomised network per step, every method
    sees it), with the maps scaled by :func:`unit_scale` and a constant map recorded as NaN instead of an error.

    Parameters
    ----------
    methods : dict ``name -> callable (model, x, target) -> map``
    model : Graph or Sequential
    x : ndarray ``(N, C, H, W)``
    target : int array ``(N,)``
    rng : int or Generator
        The re-drawn weights.
    groups : list of ``(label, [layer names])``, optional
        Default :func:`layer_groups`; randomised top down.
    cascade : bool
        Cumulative or one group at a time (each step then starts from the trained network).
    metrics : names for :func:`xattr.evaluation.similarity.compare_maps`

    Returns
    -------
    SanityCurves
    """
    from ._common import constant_rows, flat_per_image

    x = check_image_batch(x)
    gen = as_rng(rng)
    randomizer = GroupRandomizer(layer_groups(model) if groups is None else groups)
    metrics = tuple(metrics)
    original = {name: unit_scale(m(model, x, target)) for name, m in methods.items()}
    for name, a in original.items():
        bad = constant_rows(flat_per_image(a, name))
        if bad.size:
            raise ValueError(f"{name}: the trained network's map of image {int(bad[0])} is constant")
    sim = {name: {k: [] for k in metrics} for name in methods}
    const = {name: [] for name in methods}
    maps = {name: [a[0]] for name, a in original.items()}
    current = model
    for key in randomizer.keys:
        current = randomizer(current if cascade else model, key, gen)
        for name, m in methods.items():
            a = unit_scale(m(current, x, target))
            maps[name].append(a[0])
            got, dead = _compare(original[name], a, metrics)
            const[name].append(dead)
            for k in metrics:
                sim[name][k].append(got[k])
    return SanityCurves([randomizer.label(k) for k in randomizer.keys], bool(cascade),
                        {n: {k: np.stack(v) for k, v in d.items()} for n, d in sim.items()},
                        {n: np.stack(v) for n, v in const.items()}, {n: np.stack(v) for n, v in maps.items()})


#: notebook 09's claims on the top of the network: while only the top steps are randomised (down to and including a
#: named step), an *insensitive* method's map keeps a mean ``|Spearman|`` and SSIM above TOP_SIMILAR_MIN; once the
#: logits alone are re-drawn, a *sensitive* method's ``|Spearman|`` is below TOP_CHANGED_MAX.
TOP_SIMILAR_MIN, TOP_CHANGED_MAX = 0.9, 0.6
#: after every group is randomised, a method's mean ``|Spearman|`` with its trained map is below END_CHANGED_MAX.
END_CHANGED_MAX = 0.5


def _cascading(curves):
    if not curves.cascade:
        raise ValueError("the claim is about a cascading randomisation")


def check_top_layers(curves, through, insensitive=(), sensitive=()):
    """Notebook 09's claim (Adebayo et al.'s finding on guided backprop): with the steps down to ``through``
    (a step label) randomised, each ``insensitive`` method's mean ``|Spearman|`` and SSIM stay above
    :data:`TOP_SIMILAR_MIN` at every step; after the first step (the logits) each ``sensitive`` method's mean
    ``|Spearman|`` is below :data:`TOP_CHANGED_MAX`.  For cascading or independent curves (each step alone); a NaN
    (a constant map) fails.  Returns ``({method: lowest similarity}, {method: first step})``.

    Parameters
    ----------
    curves : SanityCurves
        Cascading or independent.
    through : str
        A step label.
    insensitive, sensitive : iterable of str
        Method names.
    """
    if through not in curves.steps:
        raise ValueError(f"no step {through!r}; the steps are {curves.steps}")
    k = curves.steps.index(through) + 1
    low, first = {}, {}
    for m in insensitive:
        lo = low[m] = float(min(np.min(curves.mean(m, "spearman_abs")[:k]), np.min(curves.mean(m, "ssim")[:k])))
        _claim(lo > TOP_SIMILAR_MIN, f"{m}: similarity {lo:.3f} with the steps down to {through} randomised, not "
               f"above {TOP_SIMILAR_MIN}")
    for m in sensitive:
        v = first[m] = float(curves.mean(m, "spearman_abs")[0])
        _claim(v < TOP_CHANGED_MAX, f"{m}: |Spearman| {v:.3f} after randomising {curves.steps[0]}, not below "
               f"{TOP_CHANGED_MAX}")
    return low, first


def check_end_points(curves, changed=(), unchanged=(), tol=1e-12):
    """Notebook 09's claim on the end points (every group randomised): each ``changed`` method's mean ``|Spearman|``
    is below :data:`END_CHANGED_MAX`; each ``unchanged`` one (the edge-detector control) is 1 on every metric and
    step up to ``tol``.  Returns ``{method: end ``|Spearman|``}``.

    Parameters
    ----------
    curves : SanityCurves
        Cascading.
    changed, unchanged : iterable of str
        Method names.
    tol : float
    """
    _cascading(curves)
    out = {}
    for m in changed:
        e = out[m] = curves.end(m, "spearman_abs")
        _claim(e < END_CHANGED_MAX, f"{m}: |Spearman| {e:.3f} with every layer randomised, not below "
               f"{END_CHANGED_MAX}")
    for m in unchanged:
        worst = max(float(np.max(np.abs(v - 1.0))) for v in curves.similarity[m].values())
        _claim(worst <= tol, f"{m}: similarity differs from 1 by {worst:.2e}")
        out[m] = curves.end(m, "spearman_abs")
    return out


# -- data randomisation -------------------------------------------------------------------------------------
@dataclass
class FitResult:
    """:func:`fit_fixed_set`'s result: the ``model``, ``train_accuracy`` (on the labels it was given, after each
    epoch ``(epochs,)``) and ``loss`` (mean per epoch ``(epochs,)``)."""

    model: object
    train_accuracy: np.ndarray
    loss: np.ndarray


def fit_fixed_set(images, labels, epochs, rng, channels=(8, 16, 32), batch=32, lr=0.03):
    """Train :func:`xattr.data.train.shapes_cnn` on a *fixed* set of images (the data randomisation test needs a
    network that memorises permuted labels; :func:`xattr.data.train.train` draws fresh images every epoch).

    The recipe of :func:`xattr.data.train.train`: mean softmax cross-entropy, Adam with a cosine decay of the
    learning rate to 0, the first convolution optimised in the parametrisation of centred inputs
    (:class:`~xattr.data.train.NormalisedConv`), float32.  Minibatches are a fresh permutation of the set each
    epoch; ``rng`` (an int) seeds the initial weights and the order.

    Parameters
    ----------
    images : ndarray ``(N, 3, H, W)`` in ``[0, 1]``
    labels : int array ``(N,)``
    epochs, batch : int
    rng : int
    channels : the three convolution widths
    lr : float

    Returns
    -------
    FitResult (the model takes ``[0, 1]`` pixels)
    """
    from ..data.train import (
        TRAIN_MEAN,
        TRAIN_STD,
        Adam,
        NormalisedConv,
        accuracy,
        model_params,
        shapes_cnn,
        softmax_xent,
    )

    images = check_image_batch(images).astype(np.float32)
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({len(images)},), got {labels.dtype} {labels.shape}")
    if isinstance(rng, bool) or not isinstance(rng, (int, np.integer)):
        raise TypeError(f"rng must be an int seed, got {type(rng).__name__}")
    epochs, batch = int(epochs), int(batch)
    gen = np.random.default_rng([int(rng), 1])
    model = shapes_cnn(tuple(channels), rng=int(rng))
    params = model_params(model)
    conv = model.layers[0]
    pre = NormalisedConv.from_normalised_init(conv, TRAIN_MEAN, TRAIN_STD)
    kw, kb = (conv.name, "weight"), (conv.name, "bias")
    params[kw], params[kb] = pre.w_n, pre.b_n
    opt = Adam(params, lr=lr)
    n = len(images)
    per_epoch = -(-n // batch)
    total = epochs * per_epoch
    acc, losses = [], []
    for epoch in range(epochs):
        order = gen.permutation(n)
        epoch_loss = []
        for s in range(per_epoch):
            idx = order[s * batch:(s + 1) * batch]
            xb = images[idx]
            loss, g = softmax_xent(model.forward(xb).astype(np.float64), labels[idx])
            _, grads = model.param_grads(xb, g.astype(np.float32))
            grads = {(lname, p): gp for lname, pg in grads.items() for p, gp in pg.items()}
            grads[kw], grads[kb] = pre.grads(grads[kw], grads[kb])
            opt.step(grads, lr * 0.5 * (1 + np.cos(np.pi * (epoch * per_epoch + s) / total)))
            pre.apply()
            epoch_loss.append(loss)
        losses.append(float(np.mean(epoch_loss)))
        acc.append(accuracy(model, images, labels))
    return FitResult(model, np.asarray(acc), np.asarray(losses))


def data_randomization_table(methods, model, model_random_labels, x, target, metrics=("spearman", "spearman_abs",
                                                                                      "ssim")):
    """Adebayo et al. 2018's data randomisation test (§3.2) for several methods: ``{method: {metric: (N,)}}``.

    Each method's maps of ``x`` for ``target`` under the two networks, scaled by :func:`unit_scale` and compared
    per image as :func:`xattr.evaluation.sanity.data_randomization` does; NaN where the permuted-label network's
    map is constant.  High similarity means the map does not depend on what the network learned from the labels.

    Parameters
    ----------
    methods : dict str -> callable ``(model, x, target) -> (N, ...)``
    model, model_random_labels : model protocol objects
        The network and the same architecture trained on permuted labels.
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable
    metrics : tuple of str
        Names of :func:`xattr.evaluation.similarity.compare_maps`.

    Returns
    -------
    dict str -> dict str -> ndarray ``(N,)``
    """
    x = check_image_batch(x)
    out = {}
    for name, m in methods.items():
        a = unit_scale(m(model, x, target))
        out[name], _ = _compare(a, unit_scale(m(model_random_labels, x, target)), tuple(metrics))
    return out


#: notebook 09: the permuted-label network fits its training labels to at least FIT_MIN and stays within
#: CHANCE_MARGIN of chance on held-out images.
FIT_MIN, CHANCE_MARGIN = 0.9, 0.15


def check_fit(train_accuracy, heldout_accuracy, n_classes):
    """Notebook 09's claim: the network fitted the permuted labels (training accuracy at least 90 %) and learned
    nothing that generalises (held-out accuracy within 15 points of chance ``1 / n_classes``).

    Parameters
    ----------
    train_accuracy, heldout_accuracy : float
        In ``[0, 1]``.
    n_classes : int

    Returns
    -------
    None
        Raises :class:`~xattr.evaluation.lessons.LessonClaimFailed` (an ``AssertionError``) naming the first
        claim that fails.
    """
    _claim(train_accuracy >= FIT_MIN,
           f"the network fits {train_accuracy:.0%} of the permuted labels, not {FIT_MIN:.0%}")
    chance = 1.0 / n_classes
    _claim(abs(heldout_accuracy - chance) <= CHANCE_MARGIN,
           f"held-out accuracy {heldout_accuracy:.0%} is not within {CHANCE_MARGIN:.0%} of chance {chance:.0%}")


#: notebook 09: a method passes the data randomisation test when its maps for the two networks have a mean
#: ``|Spearman|`` below DATA_PASS_MAX.
DATA_PASS_MAX = 0.5


def check_data_randomization(table, passing=(), failing=(), metric="spearman_abs"):
    """Notebook 09's claim on :func:`data_randomization_table`: each ``passing`` method's mean ``metric`` is below
    :data:`DATA_PASS_MAX` (its maps changed with what the network learned), each ``failing`` one's above it (means over
    the images; a NaN, a constant map, fails both).

    Parameters
    ----------
    table : dict str -> dict str -> ndarray ``(N,)``
        From :func:`data_randomization_table`.
    passing, failing : iterable of str
        Method names.
    metric : str

    Returns
    -------
    dict str -> float
        Each method's mean ``metric``.
    """
    for m in passing:
        v = float(np.mean(table[m][metric]))
        _claim(v < DATA_PASS_MAX, f"{m}: {metric} {v:.3f} between the two networks' maps, not below {DATA_PASS_MAX}")
    for m in failing:
        v = float(np.mean(table[m][metric]))
        _claim(v > DATA_PASS_MAX, f"{m}: {metric} {v:.3f} between the two networks' maps, not above {DATA_PASS_MAX}")
    return {m: float(np.mean(table[m][metric])) for m in (*passing, *failing)}
