"""The seeds' failure modes, measured: class sensitivity (mode collapse), fragility
(Ghorbani et al. 2019) and input-shift sensitivity (Kindermans et al. 2019).

Fragility comes in two searches for a label-preserving ``δ`` with ``||δ||∞ <= ε``: :func:`fragility`, a
random local search (cheap, any method), and :func:`fragility_attack`, the paper's iterative attack on
the interpretation (top-k and centre-of-mass objectives, projected sign steps, directions from a
softplus surrogate of the map: :mod:`xattr.evaluation._surrogate` says which surrogate stands in for
each method), with the paper's random-step baseline as ``objective="random"``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _targets
from .._conventions import as_rng, check_image_batch
from ..testing import twins
from .similarity import compare_maps, pixel_magnitude, topk_intersection

__all__ = ["class_sensitivity", "fragility", "Fragility", "input_shift_sensitivity", "fragility_attack",
           "FragilityAttack"]


def _predicted(model, x):
    return np.argmax(np.asarray(model.forward(x)), axis=1)


def class_sensitivity(method, model, x, target=None, other=None, metrics=("spearman", "spearman_abs"),
                      method_kwargs=None):
    """Similarity between the maps for two classes of the same image (seed 002: mode collapse).

    A method that explains the class gives different maps for the predicted class and for a
    class that is not in the image; guided backprop and DeconvNet are known to return
    nearly the same map for every class (Nie et al. 2018; Adebayo et al. 2018).

    Parameters
    ----------
    target : int or int array ``(N,)``, optional
        Default: the predicted class.
    other : int or int array ``(N,)``, optional
        Default: the lowest-scoring class (the one least present).
    metrics : see :func:`xattr.evaluation.similarity.compare_maps`

    Returns
    -------
    dict ``{metric: (N,)}`` plus ``"target"`` and ``"other"`` (the classes compared)
    """
    x = check_image_batch(x)
    s = np.asarray(model.forward(x))
    t = np.argmax(s, axis=1) if target is None else np.broadcast_to(np.asarray(target), (len(x),))
    o = np.argmin(s, axis=1) if other is None else np.broadcast_to(np.asarray(other), (len(x),))
    if np.any(t == o):
        raise ValueError("class_sensitivity compares two different classes; target and other coincide")
    kw = dict(method_kwargs or {})
    out = compare_maps(method(model, x, np.asarray(t), **kw), method(model, x, np.asarray(o), **kw), metrics)
    out.update(target=np.asarray(t), other=np.asarray(o))
    return out


@dataclass
class Fragility:
    """Result of :func:`fragility`.

    ``intersection (N,)``: top-k intersection after the search; ``random_intersection (N,)``:
    after the search's first random proposal (a random sign perturbation of size ``step``);
    ``perturbation``: the best ``δ`` found, ``|δ| <= epsilon``; ``label_kept (N,)``: the
    predicted label of ``x + δ`` equals that of ``x`` (always True: proposals that change it
    are rejected).
    """

    intersection: np.ndarray
    random_intersection: np.ndarray
    perturbation: np.ndarray
    label_kept: np.ndarray


def fragility(method, model, x, target=None, k=None, epsilon=0.05, step=None, n_iter=20, rng=None,
              clip=None, method_kwargs=None):
    """Fragility of interpretation (Ghorbani et al. 2019), with a simple random local search
    (the paper's gradient attack: :func:`fragility_attack`).

    The paper's measure: the top-``k`` intersection between the map of ``x`` and the map of
    ``x + δ``, for a perturbation ``||δ||∞ <= epsilon`` that keeps the predicted label.  The
    paper finds ``δ`` by gradient steps on a dissimilarity (which needs second derivatives);
    here each iteration proposes ``δ' = clip(δ + step · sign(N(0, 1)), -ε, ε)`` for every
    image and keeps it where the label is kept and the intersection drops.  Maps are
    compared per pixel as ``Σ_c |A|`` (the paper's saliency).

    Parameters
    ----------
    target : int or int array, optional
        Class explained; default the predicted class.
    k : int, optional
        Top-k size; default 10% of the pixels.
    epsilon, step : float
        L∞ radius; proposal size (default ``epsilon / 2``).
    n_iter : int
    rng : Generator or int (required)
    clip : (low, high), optional
        Valid data range of ``x + δ``.

    Returns
    -------
    Fragility
    """
    if rng is None:
        raise TypeError("fragility searches randomly: pass rng (a Generator or an int seed)")
    gen = as_rng(rng)
    x = check_image_batch(x)
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    step = epsilon / 2 if step is None else float(step)
    if clip is not None and (np.any(x < clip[0]) or np.any(x > clip[1])):
        raise ValueError(f"x must lie inside the data range clip={tuple(clip)} to be perturbed within it")
    kw = dict(method_kwargs or {})
    label = _predicted(model, x)
    t = label if target is None else np.broadcast_to(np.asarray(target), (len(x),))
    m0 = pixel_magnitude(method(model, x, np.asarray(t), **kw))
    k = max(1, m0[0].size // 10) if k is None else int(k)
    delta = np.zeros_like(x)
    best = np.ones(len(x))
    first = None
    for _ in range(int(n_iter)):
        prop = np.clip(delta + step * np.sign(gen.normal(size=x.shape)), -epsilon, epsilon).astype(x.dtype)
        xp = x + prop
        if clip is not None:
            xp = np.clip(xp, *clip)
            prop = xp - x
        kept = _predicted(model, xp) == label
        inter = topk_intersection(m0, pixel_magnitude(method(model, xp, np.asarray(t), **kw)), k)
        if first is None:
            first = np.where(kept, inter, 1.0)
        better = kept & (inter < best)
        delta[better] = prop[better]
        best[better] = inter[better]
    label_kept = _predicted(model, x + delta) == label
    return Fragility(best, first if first is not None else best.copy(), delta, label_kept)


def input_shift_sensitivity(method, model, x, target, shift=1.0, baseline_arg=None, baseline=0.0,
                            shift_baseline=True, method_kwargs=None):
    """How much a map changes under Kindermans et al.'s constant input shift (0 = invariant).

    Compares ``A(f, x)`` with ``A(g, x + shift)`` where ``g(x + shift) = f(x)``
    (:func:`xattr.testing.twins.shifted_input_twin`).  For methods with a baseline
    (``baseline_arg``), the baseline moves with the input when ``shift_baseline``.

    Parameters
    ----------
    method : callable ``(model, x, target, **method_kwargs) -> (N, ...)``
        The explanation method.
    model : model protocol object (``forward``, ``vjp``)
    x : ndarray ``(N, C, H, W)``
    target : int, int array ``(N,)`` or callable on the scores ``(N, K)``
    shift : float or ndarray ``(C,)``
        The constant added to the input (per channel).
    baseline_arg : str, optional
        The name of ``method``'s baseline option, if it has one.
    baseline : float or ndarray
        The baseline for the original model.
    shift_baseline : bool
    method_kwargs : dict, optional
        Options passed to ``method``.

    Returns
    -------
    dict with ``"relative_l2"`` ``(N,)`` (``||A' - A|| / ||A||``, refused if ``A`` is 0) and
    ``"max_abs"`` ``(N,)`` (``max |A' - A|``)
    """
    x = check_image_batch(x)
    g = twins.shifted_input_twin(model, shift, in_channels=x.shape[1])
    c = np.asarray(shift, dtype=x.dtype)
    c = c.reshape((1, -1, 1, 1)) if c.ndim == 1 else c
    kw1 = dict(method_kwargs or {})
    kw2 = dict(kw1)
    if baseline_arg is not None:
        kw1[baseline_arg] = baseline
        kw2[baseline_arg] = np.asarray(baseline) + c if shift_baseline else baseline
    a = np.asarray(method(model, x, target, **kw1), dtype=np.float64).reshape(len(x), -1)
    b = np.asarray(method(g, x + c, target, **kw2), dtype=np.float64).reshape(len(x), -1)
    ref = np.linalg.norm(a, axis=1)
    if np.any(ref == 0):
        raise ValueError(f"the map of image {int(np.flatnonzero(ref == 0)[0])} is zero: relative change undefined")
    return {"relative_l2": np.linalg.norm(b - a, axis=1) / ref, "max_abs": np.abs(b - a).max(axis=1)}


# -- Ghorbani et al.'s iterative attack on the interpretation ------------------------------------------
OBJECTIVES = ("topk", "center_of_mass", "random")
LABEL_POLICIES = ("reject", "select")


@dataclass
class FragilityAttack:
    """Result of :func:`fragility_attack`, measured on the true maps (xattr) at the selected perturbation.

    ``intersection (N,)``: top-``k`` intersection of ``Σ_c |A|`` of ``x`` and ``x + δ``; ``spearman (N,)``:
    their Spearman rank correlation; ``center_shift (N,)``: the distance in pixels between their centres
    of mass; ``perturbation``: ``δ`` (``|δ| <= epsilon``; 0 for an image where no step kept the label and
    changed the map); ``label_kept (N,)``: the predicted label of ``x + δ`` is that of ``x`` (always True);
    ``label_changes (N,)``: steps whose iterate changed the predicted label (rejected, or excluded from
    the selection); ``surrogate``: what chose the steps.
    """

    intersection: np.ndarray
    spearman: np.ndarray
    center_shift: np.ndarray
    perturbation: np.ndarray
    label_kept: np.ndarray
    label_changes: np.ndarray
    objective: str
    surrogate: str


def _method_surrogate(method):
    """The surrogate name for one of xattr's methods (see :mod:`xattr.evaluation._surrogate`), or None."""
    from .. import methods as m

    table = {m.gradient: "gradient", m.gradient_x_input: "gradient_x_input",
             m.integrated_gradients: "integrated_gradients", m.deeplift: "deeplift",
             m.guided_backprop: "guided_backprop", m.grad_cam: "grad_cam"}
    if method is m.deconvnet:
        raise ValueError(
            "DeconvNet has no gradient attack: its map depends on x only through the max-pool switches (piecewise "
            "constant; a softplus twin does not change that); use objective='random' or pass surrogate="
        )
    return table.get(method)


def _centre(s):
    """Centres of mass ``(N, 2)`` (row, column) of non-negative maps ``(N, H, W)``."""
    H, W = s.shape[1:]
    tot = s.sum(axis=(1, 2))
    return np.stack([(s.sum(2) * np.arange(H)).sum(1), (s.sum(1) * np.arange(W)).sum(1)], 1) / tot[:, None]


def _topk_mask(s, k):
    from .similarity import top_k

    flat = s.reshape(len(s), -1)
    mask = np.zeros(flat.shape, dtype=bool)
    mask[np.arange(len(s))[:, None], top_k(flat, k)] = True
    return mask.reshape(s.shape)


def fragility_attack(method, model, x, target=None, objective="topk", k=None, epsilon=0.05, step=None, n_iter=20,
                     beta=1.0, surrogate=None, surrogate_steps=16, label_policy="reject", rng=None, clip=None,
                     method_kwargs=None):
    """Ghorbani, Abid & Zou's iterative attack on the interpretation (AAAI 2019, Algorithm 1).

    Projected sign steps in the ``L∞`` ball: ``x_{t+1} = Π(x_t + step · sign(∇_x D(x_t)))`` with
    ``Π`` the projection onto ``||x' − x||∞ <= epsilon`` (and onto ``clip``), where ``D`` measures how far
    the map has moved:

    * ``"topk"``: ``D = −Σ_{i ∈ T} s_i(x') / Σ_i s_i(x')``, the share of the saliency still on ``T``,
      the top-``k`` pixels of the original map (the paper's top-k attack, normalised so that shrinking
      the whole map does not count);
    * ``"center_of_mass"``: ``D = |C(x') − C(x)|²`` with ``C`` the centre of mass of ``s`` (the paper's
      mass-centre attack); at ``x' = x`` its gradient is 0, so the first step follows the direction in
      which ``C`` moves fastest (the top singular vector of its 2-row Jacobian);
    * ``"random"``: ``sign(N(0, 1))`` steps (the paper's random baseline, same budget and selection).

    ``s = Σ_c |A|`` is the per-pixel saliency (the paper's).  ``∇D`` comes from a *surrogate* map on a
    softplus twin of the model (:mod:`xattr.evaluation._surrogate`, which says what stands in for each
    method: the gradient map of a ReLU network is piecewise constant, so its own ``∇D`` is 0); every
    iterate is then measured with the true ``method``.  The label is checked after every step with the
    true model.  The result is the iterate (label kept, map not constant) that changed the map most:
    lowest top-``k`` intersection for ``"topk"``/``"random"``, largest centre shift for
    ``"center_of_mass"``; the original ``x`` (no change) if none qualifies.

    Parameters
    ----------
    method : callable ``(model, x, target, **method_kwargs) -> maps``
    model : xattr.nn.Sequential (any model with ``forward`` for ``"random"`` or a callable ``surrogate``)
    target : int or int array ``(N,)``, optional (default: the predicted class)
    objective : ``"topk"``, ``"center_of_mass"`` or ``"random"``
    k : int, optional
        Top-``k`` size; default 10 % of the pixels.
    epsilon, step : float
        ``L∞`` budget and step size (default ``epsilon / 4``).
    n_iter : int
    beta : float
        Softplus sharpness of the twin (``β = 1``: the plain softplus, as the authors' surrogate networks).
    surrogate : None, a name in ``xattr.evaluation._surrogate.SURROGATES``, or a callable
        ``(x, classes) -> maps`` written with autograd.numpy.  None: the surrogate of ``method`` (gradient,
        gradient × input, integrated gradients, DeepLIFT, guided backprop, Grad-CAM).
    surrogate_steps : int
        Gauss–Legendre nodes of the integrated-gradients surrogate.
    label_policy : ``"reject"`` or ``"select"``
        ``"reject"``: a step that changes the predicted label is not taken and that image's step size is
        halved; ``"select"`` (the authors' code): the walk goes on through such steps, which are only
        excluded from the selection.
    rng : Generator or int; required for ``"random"``
    clip : (low, high), optional
        Valid data range.

    Returns
    -------
    FragilityAttack
    """
    from .similarity import pixel_magnitude, spearman, topk_intersection

    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if label_policy not in LABEL_POLICIES:
        raise ValueError(f"label_policy must be one of {LABEL_POLICIES}, got {label_policy!r}")
    x = check_image_batch(x)
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    step = epsilon / 4 if step is None else float(step)
    if not step > 0:
        raise ValueError(f"step must be positive, got {step}")
    if clip is not None and (np.any(x < clip[0]) or np.any(x > clip[1])):
        raise ValueError(f"x must lie inside the data range clip={tuple(clip)} to be perturbed within it")
    kw = dict(method_kwargs or {})
    N = len(x)
    scores = np.asarray(model.forward(x))
    label = np.argmax(scores, axis=1)
    cls = label if target is None else _targets._classes(target, N, scores.shape[1])

    def true_map(z):
        return pixel_magnitude(method(model, z, cls.copy(), **kw))

    m0 = true_map(x)
    flat0 = m0.reshape(N, -1)
    const = np.flatnonzero(np.ptp(flat0, axis=1) == 0)
    if const.size:
        raise ValueError(f"the map of image {int(const[0])} is constant: it has no top-k set or ranking to attack")
    k = max(1, m0[0].size // 10) if k is None else int(k)
    c0 = _centre(m0)

    # the direction finder
    gen = None
    if objective == "random":
        if rng is None:
            raise TypeError("objective='random' draws its steps: pass rng (a Generator or an int seed)")
        gen = as_rng(rng)
        described = "random sign steps"
    else:
        from autograd import grad

        from . import _surrogate

        if callable(surrogate):
            smap, described = (lambda z: surrogate(z, cls)), f"user surrogate {getattr(surrogate, '__name__', '')}"
        else:
            name = surrogate if surrogate is not None else _method_surrogate(method)
            if name is None:
                raise ValueError(
                    f"no surrogate is known for {getattr(method, '__name__', method)!r}: pass surrogate= (one of "
                    f"{', '.join(_surrogate.SURROGATES)} or a callable (x, classes) -> maps in autograd.numpy)"
                )
            twin = _surrogate.SoftplusTwin(model, beta)
            smap = lambda z: _surrogate.surrogate_map(twin, name, z, cls, kw, surrogate_steps)  # noqa: E731
            described = f"{name} on the softplus(beta={beta:g}) twin"

        def sal(z):
            import autograd.numpy as anp

            a = smap(z)
            return anp.sum(anp.abs(a), axis=1) if len(np.shape(a)) == 4 else anp.abs(a)

        if objective == "topk":
            T = _topk_mask(m0, k)

            def d_topk(z):
                import autograd.numpy as anp

                s = sal(z)
                return -anp.sum(anp.sum(s * T, axis=(1, 2)) / anp.sum(s, axis=(1, 2)))

            grad_topk = grad(d_topk)
        else:
            H, W = x.shape[2:]

            def centre_coord(axis):
                import autograd.numpy as anp

                def f(z):
                    s = sal(z)
                    w = (np.arange(H)[None, :, None] if axis == 0 else np.arange(W)[None, None, :])
                    return anp.sum(anp.sum(s * w, axis=(1, 2)) / anp.sum(s, axis=(1, 2)))
                return f

            grad_r, grad_c = grad(centre_coord(0)), grad(centre_coord(1))
            c0_sur = _centre(np.asarray(sal(np.array(x, dtype=np.float64))))

    def direction(z):
        if objective == "random":
            return np.sign(gen.normal(size=x.shape))
        import warnings

        with warnings.catch_warnings():  # a map that does not depend on x (a linear model's gradient): ∇D = 0
            warnings.filterwarnings("ignore", "Output seems independent of input", UserWarning)
            return _direction(np.asarray(z, dtype=np.float64))

    def _direction(z64):
        if objective == "topk":
            return np.sign(grad_topk(z64))
        gr, gc = grad_r(z64), grad_c(z64)  # rows of the Jacobian of C, per image
        u = _centre(np.asarray(sal(z64))) - c0_sur  # (N, 2)
        flat_r, flat_c = gr.reshape(N, -1), gc.reshape(N, -1)
        gram = np.stack([np.stack([(flat_r * flat_r).sum(1), (flat_r * flat_c).sum(1)], -1),
                         np.stack([(flat_c * flat_r).sum(1), (flat_c * flat_c).sum(1)], -1)], 1)  # (N, 2, 2)
        v = np.linalg.eigh(gram)[1][:, :, -1]  # the top singular direction of each Jacobian
        v = v * np.where(v[:, :1] < 0, -1.0, 1.0)  # a fixed sign
        still = np.linalg.norm(u, axis=1) <= 1e-12 * max(H, W)
        w = np.where(still[:, None], v, u)  # at the start: the fastest direction; then grad |u|^2 = 2 J^T u
        shape = (N,) + (1,) * (x.ndim - 1)
        return np.sign(w[:, 0].reshape(shape) * gr + w[:, 1].reshape(shape) * gc)

    def measures(z):
        m = true_map(z)
        ok = np.ptp(m.reshape(N, -1), axis=1) > 0
        inter = np.ones(N)
        shift = np.zeros(N)
        if ok.any():
            inter[ok] = topk_intersection(m0[ok], m[ok], k)
            shift[ok] = np.linalg.norm(_centre(m[ok]) - c0[ok], axis=1)
        return inter, shift, ok, m

    xt = x.copy()
    steps = np.full(N, step)
    best_x = x.copy()
    best_inter, best_shift = np.ones(N), np.zeros(N)
    changes = np.zeros(N, dtype=np.int64)
    shape = (N,) + (1,) * (x.ndim - 1)
    for _ in range(int(n_iter)):
        prop = xt + steps.reshape(shape).astype(x.dtype) * direction(xt).astype(x.dtype)
        prop = x + np.clip(prop - x, -epsilon, epsilon).astype(x.dtype)
        if clip is not None:
            prop = np.clip(prop, *clip).astype(x.dtype)
        kept = _predicted(model, prop) == label
        changes += ~kept
        if label_policy == "reject":
            xt = np.where(kept.reshape(shape), prop, xt)
            steps = np.where(kept, steps, steps / 2)
        else:
            xt = prop
        inter, shift, ok, _ = measures(prop)
        better = (inter < best_inter) if objective != "center_of_mass" else (shift > best_shift)
        better &= kept & ok
        best_x[better] = prop[better]
        best_inter[better], best_shift[better] = inter[better], shift[better]

    inter, shift, ok, m1 = measures(best_x)
    rho = np.ones(N)
    rho[ok] = spearman(m0[ok], m1[ok])
    return FragilityAttack(inter, rho, shift, best_x - x, _predicted(model, best_x) == label, changes, objective,
                           described)
