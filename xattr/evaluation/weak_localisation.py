"""Weakly supervised object localisation from saliency, as Simonyan, Vedaldi & Zisserman (2014, "Deep inside
convolutional networks", §3.1) did it for ILSVRC-2013, and its top-5 protocol.

For an image and a class saliency map:

1. **Seeds** from the saliency: pixels whose saliency is at least the 95 % quantile of the image's map are
   foreground, pixels at most at the 30 % quantile are background (the paper's quantiles; "higher
   than" / "smaller than" are read as ``>=`` / ``<=`` so that ties at zero still seed).
2. **GraphCut colour segmentation** (Boykov & Jolly 2001, "Interactive graph cuts"): colour models
   of the foreground and the background are Gaussian mixtures fitted on the seeds' colours (the
   paper: "foreground and background colour models were set to be the Gaussian Mixture Models");
   the energy ``E(L) = Σ_p −log p(I_p | GMM_{L_p}) + γ Σ_{p~q} [L_p ≠ L_q] exp(−β |I_p − I_q|²) / d(p, q)``
   over the 8-neighbourhood, with the seeds as hard constraints, is minimised exactly by a minimum
   s–t cut.  The choices the paper leaves open follow GrabCut (Rother, Kolmogorov & Blake 2004):
   ``K = 5`` full-covariance components per model, ``γ = 50``, ``β = 1 / (2 ⟨|I_p − I_q|²⟩)`` over
   neighbouring pairs.  The cut is computed by PyMaxflow (the Boykov–Kolmogorov algorithm, the
   implementation behind GraphCut; optional extra ``localisation``), the mixtures by scikit-learn's
   ``GaussianMixture`` (EM, k-means initialisation seeded from ``rng``).
3. **Box**: the bounding box of the largest 8-connected foreground component.

Top-5 protocol (ILSVRC localisation, as the paper's 46.4 % top-5 *error*): a box for each of the five
highest-scoring classes, each from that class's saliency map; an image counts as localised when one of
the five guesses has the true class and a box with IoU ``>= 0.5`` with the ground truth.

Boxes are ``(top, left, bottom, right)``, bottom/right exclusive (as :mod:`xattr.evaluation.localisation`).
Each image is segmented on its own (a max-flow problem per image: the loop over images is inherent).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._conventions import as_float_array, as_rng, check_image_batch
from ._common import maps2d
from .localisation import bounding_box, box_iou, largest_component

__all__ = ["graphcut_energy", "graphcut_segment", "graphcut_localisation", "top5_localisation",
           "GraphCutLocalisation", "TopKLocalisation"]

#: the paper's seed quantiles: foreground >= 95 %, background <= 30 % of the image's saliency.
FG_QUANTILE, BG_QUANTILE = 0.95, 0.30
#: GrabCut's choices (Rother et al. 2004): mixture components per colour model, smoothness weight γ.
N_COMPONENTS, SMOOTHNESS = 5, 50.0
#: the 8-neighbourhood as the four forward offsets (the other four are the same edges reversed).
OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _require():
    try:
        import maxflow  # noqa: F401
        from sklearn.mixture import GaussianMixture  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "GraphCut localisation needs PyMaxflow and scikit-learn (the optional extra 'localisation': "
            "pip install 'xattr-ref[localisation]')"
        ) from exc


def _shifted(a, dy, dx):
    """``(nb, valid)``: ``nb[..., p] = a[..., p + (dy, dx)]`` where that pixel exists (``valid (H, W)``), else 0."""
    H, W = a.shape[-2:]
    r0, r1, c0, c1 = max(0, -dy), H - max(0, dy), max(0, -dx), W - max(0, dx)
    nb = np.zeros_like(a)
    nb[..., r0:r1, c0:c1] = a[..., r0 + dy:r1 + dy, c0 + dx:c1 + dx]
    valid = np.zeros((H, W), dtype=bool)
    valid[r0:r1, c0:c1] = True
    return nb, valid


def _seeds(saliency, fg_quantile, bg_quantile):
    q_fg, q_bg = np.quantile(saliency, [fg_quantile, bg_quantile])
    if not q_bg < q_fg:
        raise ValueError(
            f"the saliency map's {bg_quantile:.0%} and {fg_quantile:.0%} quantiles coincide ({q_fg:g}): "
            "no foreground and background seeds can be told apart"
        )
    return saliency >= q_fg, saliency <= q_bg


def graphcut_energy(image, fg, bg, n_components=N_COMPONENTS, smoothness=SMOOTHNESS, rng=None):
    """The GraphCut energy's terms for one image and its seeds.

    Parameters
    ----------
    image : ``(C, H, W)`` colours
    fg, bg : boolean ``(H, W)``: the hard foreground and background seeds (disjoint, both non-empty)
    n_components : int
        Gaussian mixture components per colour model (fewer if a seed set has fewer distinct colours).
    smoothness : float
        ``γ``.
    rng : Generator or int (required): seeds the mixtures' initialisation.

    Returns
    -------
    unary : ``(2, H, W)`` float64
        ``−log p(I_p | GMM_bg)`` and ``−log p(I_p | GMM_fg)`` (index = label: 0 background, 1 foreground),
        shifted per pixel so the smaller is 0 (the argmin is unchanged).
    pairwise : list of ``((dy, dx), weights (H, W))``
        ``γ exp(−β |I_p − I_{p+(dy,dx)}|²) / |(dy, dx)|`` for the edge from ``p`` to ``p + (dy, dx)``
        (0 where the neighbour is outside).
    """
    _require()
    from sklearn.mixture import GaussianMixture

    img = as_float_array(image, "image", ndim=3).astype(np.float64)
    C, H, W = img.shape
    fg, bg = np.asarray(fg, dtype=bool), np.asarray(bg, dtype=bool)
    if fg.shape != (H, W) or bg.shape != (H, W):
        raise ValueError(f"seed masks must have the image's shape {(H, W)}, got {fg.shape} and {bg.shape}")
    if not fg.any() or not bg.any():
        raise ValueError("GraphCut needs at least one foreground and one background seed pixel")
    if (fg & bg).any():
        raise ValueError("a pixel cannot be both a foreground and a background seed")
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    gen = as_rng(rng)
    colours = img.reshape(C, -1).T  # (H W, C)
    unary = np.empty((2, H * W))
    for label, seeds in ((0, bg), (1, fg)):
        pts = colours[seeds.ravel()]
        if len(pts) == 1:  # one seed pixel: one Gaussian at its colour with scikit-learn's reg_covar (1e-6) as variance
            pts = np.repeat(pts, 2, axis=0)
        k = int(min(n_components, len(np.unique(pts, axis=0))))
        gmm = GaussianMixture(k, covariance_type="full", random_state=int(gen.integers(2**31 - 1)))
        with threadpool_limits(1):  # a few hundred 3-D points: threads only contend (10x slower on 2 busy cores)
            unary[label] = -gmm.fit(pts).score_samples(colours)
    unary -= unary.min(axis=0)
    # β from the mean squared colour difference over the 8-neighbourhood's pairs (GrabCut)
    diffs, valids = [], []
    for dy, dx in OFFSETS:
        nb, valid = _shifted(img, dy, dx)
        diffs.append(((img - nb) ** 2).sum(0))
        valids.append(valid)
    mean_sq = np.mean(np.concatenate([d[v] for d, v in zip(diffs, valids)]))
    beta = 1.0 / (2 * mean_sq) if mean_sq > 0 else 0.0
    pairwise = [((dy, dx), np.where(v, smoothness * np.exp(-beta * d) / np.hypot(dy, dx), 0.0))
                for (dy, dx), d, v in zip(OFFSETS, diffs, valids)]
    return unary.reshape(2, H, W), pairwise


def _hard_capacity(pairwise):
    """Boykov & Jolly's ``K = 1 + max_p Σ_q w_pq``: a t-link no cut can afford to sever."""
    total = np.zeros(pairwise[0][1].shape)
    for (dy, dx), w in pairwise:  # each edge counts at both of its ends
        total += w
        nb, _ = _shifted(w, -dy, -dx)
        total += nb
    return 1.0 + total.max()


def graphcut_segment(unary, pairwise, fg, bg):
    """The labelling ``(H, W)`` (True = foreground) of minimum energy, with the seeds as hard constraints.

    ``E(L) = Σ_p unary[L_p, p] + Σ_edges w_pq [L_p ≠ L_q]``, minimised exactly by a minimum s–t cut
    (PyMaxflow): the source side is the foreground; the t-link to the sink carries the cost of
    labelling a pixel foreground, the t-link from the source the cost of background.

    Parameters
    ----------
    unary : ndarray ``(2, H, W)``
        ``unary[0]``: the cost of background, ``unary[1]``: of foreground, per pixel.
    pairwise : list of ((int, int), ndarray ``(H, W)``)
        ``((dy, dx), w)``: the neighbour offset and the edge weights.
    fg, bg : bool array ``(H, W)``
        The seeds.

    Returns
    -------
    bool array ``(H, W)``
    """
    _require()
    import maxflow

    H, W = unary.shape[1:]
    g = maxflow.Graph[float]()
    nodes = g.add_grid_nodes((H, W))
    for (dy, dx), w in pairwise:
        structure = np.zeros((3, 3))
        structure[1 + dy, 1 + dx] = 1.0
        g.add_grid_edges(nodes, weights=w, structure=structure, symmetric=True)
    K = _hard_capacity(pairwise)
    cost_bg = np.where(fg, K, np.where(bg, 0.0, unary[0]))
    cost_fg = np.where(bg, K, np.where(fg, 0.0, unary[1]))
    g.add_grid_tedges(nodes, cost_bg, cost_fg)  # source capacity: paid if p ends on the sink (background) side
    g.maxflow()
    return ~g.get_grid_segments(nodes)  # get_grid_segments: True on the sink side


@dataclass
class GraphCutLocalisation:
    """Boxes ``(N, 4)``, their IoU ``(N,)`` with the truth (None without one), the foreground
    segmentations ``(N, H, W)``, the largest components ``(N, H, W)`` and the seeds ``(N, H, W)``."""

    boxes: np.ndarray
    iou: np.ndarray
    segmentation: np.ndarray
    components: np.ndarray
    fg_seeds: np.ndarray
    bg_seeds: np.ndarray

    def accuracy(self, iou_threshold=0.5):
        if self.iou is None:
            raise ValueError("no ground truth was given")
        return float(np.mean(self.iou >= iou_threshold))


def _truth_boxes(truth, n, hw):
    t = np.asarray(truth)
    if t.ndim == 2 and t.shape == (n, 4):
        return t.astype(np.float64)
    if t.shape != (n,) + tuple(hw) or t.dtype != bool:
        raise ValueError(f"truth must be boxes (N, 4) or boolean masks (N, H, W) = {(n,) + tuple(hw)}, got {t.shape}")
    return np.array([bounding_box(k) for k in t], dtype=np.float64)


def graphcut_localisation(maps, images, truth=None, fg_quantile=FG_QUANTILE, bg_quantile=BG_QUANTILE,
                          n_components=N_COMPONENTS, smoothness=SMOOTHNESS, rng=None):
    """Simonyan et al.'s localisation: saliency seeds, GraphCut colour segmentation, largest component's box.

    Parameters
    ----------
    maps : ``(N, H, W)`` or ``(N, 1, H, W)`` saliency (reduce channels first; the paper's is
        ``max_c |∂S/∂x|``, ``xattr.reduce_channels(g, "max_abs")``)
    images : ``(N, C, H, W)``, the colours segmented
    truth : boxes ``(N, 4)`` or boolean masks ``(N, H, W)``, optional
    fg_quantile, bg_quantile, n_components, smoothness : see the module docstring
    rng : Generator or int (required): the mixtures' initialisation

    Returns
    -------
    GraphCutLocalisation
    """
    m = maps2d(maps)
    x = check_image_batch(images, "images")
    if x.shape[0] != m.shape[0] or x.shape[2:] != m.shape[1:]:
        raise ValueError(f"images {x.shape} and maps {m.shape} must hold the same number of (H, W) pictures")
    if not 0 <= bg_quantile < fg_quantile <= 1:
        raise ValueError(f"need 0 <= bg_quantile < fg_quantile <= 1, got {bg_quantile}, {fg_quantile}")
    if rng is None:
        raise TypeError("the colour models are fitted by EM from a random start: pass rng (a Generator or an int seed)")
    gen = as_rng(rng)
    N = len(m)
    segs, comps, fgs, bgs, boxes = [], [], [], [], []
    for n in range(N):  # one max-flow problem per image
        fg, bg = _seeds(m[n], fg_quantile, bg_quantile)
        unary, pairwise = graphcut_energy(x[n], fg, bg, n_components, smoothness, gen)
        seg = graphcut_segment(unary, pairwise, fg, bg)
        comp = largest_component(seg, connectivity=2)
        segs.append(seg), comps.append(comp), fgs.append(fg), bgs.append(bg)
        boxes.append(bounding_box(comp))
    boxes = np.array(boxes)
    iou = None if truth is None else box_iou(boxes, _truth_boxes(truth, N, m.shape[1:]))
    return GraphCutLocalisation(boxes, iou, np.stack(segs), np.stack(comps), np.stack(fgs), np.stack(bgs))


@dataclass
class TopKLocalisation:
    """The top-k protocol: ``classes (N, k)`` guessed (best first), ``boxes (N, k, 4)``, ``iou (N, k)``
    with the ground truth, ``correct (N,)`` (some guess has the true class and IoU >= the threshold)."""

    classes: np.ndarray
    boxes: np.ndarray
    iou: np.ndarray
    correct: np.ndarray

    @property
    def error(self):
        """The top-k localisation error (the paper reports 46.4 % top-5 error on ILSVRC-2013 test)."""
        return 1.0 - float(np.mean(self.correct))


def top5_localisation(model, x, labels, truth, method=None, k=5, iou_threshold=0.5, reduce="max_abs",
                      rng=None, method_kwargs=None, **graphcut_options):
    """ILSVRC top-``k`` localisation with saliency boxes (Simonyan et al. 2014, §3.1).

    For each of the ``k`` highest-scoring classes of every image, its saliency map (``method``, default
    the gradient, reduced over channels by ``reduce``, the paper's ``max |.|``) gives a box through
    :func:`graphcut_localisation`; an image is correct when one guess has the true class and a box
    with IoU ``>= iou_threshold`` (0.5, ILSVRC) with the ground truth.

    Parameters
    ----------
    model : anything with ``forward`` (and what ``method`` needs)
    x : ``(N, C, H, W)``
    labels : int ``(N,)``, the true classes
    truth : boxes ``(N, 4)`` or boolean masks ``(N, H, W)``
    method : callable ``(model, x, target) -> maps``, optional (default :func:`xattr.gradient`)
    k : int (5 as ILSVRC; at most the number of classes)
    rng : Generator or int (required)
    graphcut_options : passed to :func:`graphcut_localisation`

    Returns
    -------
    TopKLocalisation
    """
    from ..methods import reduce_channels
    from ..methods.gradient import gradient

    x = check_image_batch(x)
    N = x.shape[0]
    scores = np.asarray(model.forward(x))
    if scores.ndim != 2 or scores.shape[0] != N:
        raise ValueError(f"model.forward must return scores (N, K) = ({N}, K), got {scores.shape}")
    if not 1 <= int(k) <= scores.shape[1]:
        raise ValueError(f"k must be between 1 and the number of classes {scores.shape[1]}, got {k}")
    lab = np.asarray(labels)
    if lab.shape != (N,) or lab.dtype.kind not in "iu":
        raise ValueError(f"labels must be integer classes of shape (N,) = ({N},), got {lab.shape} {lab.dtype}")
    true_boxes = _truth_boxes(truth, N, x.shape[2:])
    if rng is None:
        raise TypeError("pass rng (a Generator or an int seed) for the colour models")
    gen = as_rng(rng)
    method = gradient if method is None else method
    kw = dict(method_kwargs or {})
    top = np.argsort(-scores, axis=1, kind="stable")[:, : int(k)]  # ties: the lower class index first
    boxes = np.empty((N, int(k), 4), dtype=np.int64)
    iou = np.empty((N, int(k)))
    for j in range(int(k)):  # one batched saliency call per rank
        a = np.asarray(method(model, x, top[:, j].copy(), **kw))
        maps = a if a.ndim == 3 or (a.ndim == 4 and a.shape[1] == 1) else reduce_channels(a, reduce)
        res = graphcut_localisation(maps, x, true_boxes, rng=gen, **graphcut_options)
        boxes[:, j], iou[:, j] = res.boxes, res.iou
    correct = ((top == lab[:, None]) & (iou >= iou_threshold)).any(axis=1)
    return TopKLocalisation(top, boxes, iou, correct)
