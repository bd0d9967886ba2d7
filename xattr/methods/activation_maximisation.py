"""Activation maximisation: find an input that drives one output, class or hidden channel up.

Maximise, by a named step rule from a named start image::

    J(I) = f(I) − λ_2 ‖I‖₂² − λ_TV TV_β(I) − λ_N N_p(I)

over images ``I`` of shape ``(N, C, H, W)`` (each image of the batch independently), where ``f`` is one of

* :func:`class_score`: ``S_c(I)``, the class score before the softmax (Simonyan, Vedaldi & Zisserman 2014,
  "Deep inside convolutional networks", section 2);
* :func:`class_log_probability`: ``log P_c(I) = S_c(I) − log Σ_k exp S_k(I)``.  Simonyan et al. maximise the
  unnormalised score on purpose: ``P_c`` (and ``log P_c``) can be raised by *lowering the other classes'*
  scores, so its ascent spends effort on what ``c`` is not.  Its gradient ``∂S_c/∂I − Σ_k P_k ∂S_k/∂I`` has
  every direction shared by all classes removed (for a linear model ``S_k = (w_k + u)·I``, ``u`` cancels: the
  test suite pins this);
* :func:`channel_mean`: the mean over positions of channel ``k`` of a named layer's output (any hidden unit,
  as tf-keras-vis' ``ActivationMaximization`` visualises filters; Erhan et al. 2009).  For now a layer of a
  layered model (:class:`xattr.nn.Graph` or ``Sequential``); a plain function model offers class objectives only.

and the regularisers (priors) are small named functions, each returning its value per image and its
gradient, tested against finite differences:

* :func:`l2`: ``‖I‖₂² = Σ I²`` (Simonyan et al. 2014, the ``λ ‖I‖₂²`` of their eq. 1);
* :func:`total_variation`: ``TV_β(I) = Σ_{c,i,j} ((I_{c,i+1,j} − I_{c,i,j})² + (I_{c,i,j+1} − I_{c,i,j})²)^{β/2}``
  (Mahendran & Vedaldi 2015, "Understanding deep image representations by inverting them", eq. for
  ``R_{V^β}``), ``β >= 1``; ``anisotropic=True`` gives ``Σ |ΔI|^β`` per direction instead, which at ``β = 1``
  is ``tf.image.total_variation`` (tf-keras-vis' ``TotalVariation2D``, which divides by ``C·H·W``);
* :func:`norm`: ``N_p(I) = ‖vec I‖_p / n^{1/p}`` with ``n = C·H·W`` (tf-keras-vis' ``Norm``).

Input modifiers, all drawn from an explicit ``rng``:

* ``jitter``: before each gradient the image is rolled by ``(dy, dx)``, each uniform on ``{−j, …, j}``, and
  the gradient rolled back (as the DeepDream code of Mordvintsev, Olah & Tyka 2015, "Inceptionism", shifts
  and unshifts the image).  The image stays registered.  tf-keras-vis' ``Jitter`` draws from ``{−j, …, j−1}`` and keeps
  the rolled image as the new
  iterate, so its result drifts by the random walk of the shifts;
* ``rotate`` / ``scale``: before each gradient the (rolled) image is resampled by a random rotation of
  ``U(−rotate, rotate)`` degrees and zoom ``U(scale)`` about its centre (bilinear, coordinates clamped to the
  image: replicate boundary), and the gradient is pulled back through the exact adjoint of that resampling
  (:func:`similarity_warp`): the "transformation robustness" of Olah, Mordvintsev & Schubert 2017 ("Feature
  visualization", Distill).  tf-keras-vis' ``Rotate2D``/``Scale`` instead resample the iterate itself each
  step (``scipy.ndimage``, reflect boundary) and keep it, so its image accumulates the interpolation blur;
* ``blur_sigma`` / ``blur_every``: every ``blur_every`` steps the iterate is smoothed by a Gaussian of
  ``blur_sigma`` pixels (Yosinski et al. 2015, "Understanding neural networks through deep visualization").

Clipping: with ``input_range=(lo, hi)`` and ``clip="step"`` every iterate is projected onto the box
(projected gradient ascent), so the image is always a valid input; ``clip="end"`` clips only the returned
image, as tf-keras-vis does (its iterate is unconstrained and the history is taken on the unclipped iterates).

Step rules (:class:`GradientAscent`, :class:`Adam`, :class:`RMSprop`) are small named objects: Simonyan et
al. use plain gradient ascent; tf-keras-vis 0.8.7 uses Keras' ``RMSprop(learning_rate=1.0, rho=0.999)`` for
images in ``[0, 255]`` (so ``lr = 1/255`` for images in ``[0, 1]``); Adam (Kingma & Ba 2015) is what Lucid and
most notebooks use (Lucid/Lucent render with ``Adam(lr=0.05)``, the default here for images in ``[0, 1]``).

tf-keras-vis 0.8.7's ``ActivationMaximization`` defaults in these terms, for a model with inputs in ``[0, 255]``
of shape ``(C, H, W)``: ``start="uniform"``, ``optimiser=RMSprop(lr=1.0, rho=0.999)``, ``tv_weight=1/(C·H·W)``
with ``tv_beta=1, tv_anisotropic=True``, ``norm_weight=0.3, norm_p=1``, ``jitter=4``, ``rotate=1.0``,
``input_range=(0, 255), clip="end"``, ``steps=200``; its score is summed over the batch and its loss is
``−score + regularisers``, the same ascent.  What still differs: its jitter and rotation act on the iterate
(above), its draws come from NumPy's global generator, and it works in float32.

Defaults, measured on the shipped shapes model (``xattr.models.load("shapes")``, scores in the hundreds; run
with ``OPENBLAS_NUM_THREADS=1``).  At the zero image every first-layer ReLU is off (all ``conv1`` biases are
negative), the gradient is exactly 0 and nothing moves; from the default ``"centre"`` start, 200 Adam steps at
``lr = 0.05`` with the default TV prior (``λ_TV = 0.3``, ``β = 2``), clipped to ``[0, 1]``, raise the class scores
(square, disk, triangle, cross) from ``[15.1, 50.6, −73.1, −83.0]`` to ``[155, 445, 394, 1106]``, each class top-1
with a margin of ``[22, 349, 425, 1332]`` over the runner-up.  Without the TV prior the "square" ascent ends with
"disk" ahead (margin −2.4): both scores rise along what squares and disks share.  The log-probability objective
makes every class top-1 in 20 steps, "square" by *lowering* the others (its own score falls from 15.1 to −0.3).

Hidden channels are another matter (same model, defaults, 200 steps).  The centre image leaves some channels
off everywhere (``relu1`` 2, 4, 5; ``relu2`` 0, 1, 2, 10, 15; ``relu3`` 2, 6, 24, 27): their gradient is exactly 0
and the ascent returns the start, as the zero image did for the classes.  A noise start wakes them
(``start="uniform"``, tf-keras-vis' default, with an ``rng``), but the default TV weight, sized for class scores
in the hundreds, outweighs first-layer channels whose mean activation is about 1: from uniform noise the TV
prior smooths away what ``relu1`` responds to and 0 of its 8 channels rise, against 15/16 for ``relu2`` and 32/32
for ``relu3``.  With ``tv_weight=0`` from uniform noise: 8/8, 12/16 (4 switch off on the way), 32/32.  Choose the
prior's weight against the objective's scale.
"""
from __future__ import annotations

import numbers
from collections import namedtuple

import numpy as np

from .. import _targets
from .._conventions import as_float_array, as_rng
from ..model import check_model, trace

# -- objectives -----------------------------------------------------------------------------------------

Objective = namedtuple("Objective", "kind target layer")
Objective.__doc__ = """What is maximised: ``kind`` in ``("score", "log_softmax", "channel")``, ``target`` a class
or channel index (an int, or an int array ``(N,)``: one per image), ``layer`` the layer's name (``channel`` only).
Make one with :func:`class_score`, :func:`class_log_probability` or :func:`channel_mean`."""


def _index(value, what):
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int or an int array of shape (N,), got bool")
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" or arr.ndim > 1:
        raise TypeError(f"{what} must be an int or an int array of shape (N,), got {value!r}")
    return value if arr.ndim == 0 else arr.astype(np.intp)


def class_score(c):
    """``f(I) = S_c(I)``, the score of class ``c`` before the softmax (Simonyan et al. 2014)."""
    return Objective("score", _index(c, "class"), None)


def class_log_probability(c):
    """``f(I) = log P_c(I) = S_c(I) − log Σ_k exp S_k(I)``: the log-softmax of class ``c``.

    Its gradient is ``Σ_k (δ_ck − P_k) ∂S_k/∂I``: what separates ``c`` from the classes the model currently
    prefers.  Simonyan et al. 2014 maximise ``S_c`` instead, because ``P_c`` also rises when the other classes'
    scores fall.
    """
    return Objective("log_softmax", _index(c, "class"), None)


def channel_mean(layer, channel):
    """``f(I) = mean_{i,j} A^layer_{channel,i,j}(I)``: the mean activation of one channel of a layer's output.

    For a layer whose output is ``(N, F)`` (dense) the unit ``channel`` itself.

    Parameters
    ----------
    layer : str or int
        The name (or index) of a node of a layered model (:class:`xattr.nn.Graph` or ``Sequential``).
    channel : int or int array ``(N,)``
        One channel (unit) for all images, or one per image.

    Returns
    -------
    Objective
        ``Objective("channel", channel, layer)``.
    """
    if not isinstance(layer, (str, numbers.Integral, np.integer)) or isinstance(layer, bool):
        raise TypeError(f"layer must be a layer's name (str) or index (int), got {type(layer).__name__}")
    return Objective("channel", _index(channel, "channel"), layer)


def _as_objective(objective):
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, (numbers.Integral, np.integer, np.ndarray, list)) and not isinstance(objective, bool):
        return class_score(objective)
    raise TypeError(
        "objective must be class_score(c), class_log_probability(c), channel_mean(layer, k) or an int class, "
        f"got {type(objective).__name__}"
    )


def _channels(target, n, k, layer):
    t = np.asarray(target)
    t = np.full(n, int(t), dtype=np.intp) if t.ndim == 0 else t
    if t.shape != (n,):
        raise ValueError(f"channel array must have shape (N,) = ({n},), got {t.shape}")
    bad = (t < 0) | (t >= k)
    if bad.any():
        raise ValueError(
            f"channel {t[bad][0]} out of range for layer {layer!r} with {k} channels (expected 0 <= channel < {k})"
        )
    return t


def _objective_and_grad(model, x, objective, need_grad=True):
    """``f(x)`` per image ``(N,)`` and ``∂f/∂x`` (``x.shape``, or None): the one place that touches the model.

    A channel objective traces the model up to the node (``model.trace(x, stop=node)``) and pulls the seed
    ``1[channel]/(H·W)`` from there to the input.  Class objectives use one trace and one pull on any model
    (:func:`xattr.model.trace`: a layered model, a function model, or any object with ``forward``/``vjp``).
    """
    n = x.shape[0]
    rows = np.arange(n)
    if objective.kind == "channel":
        if not hasattr(model, "node"):
            raise TypeError(
                f"a channel objective needs a layered model (xattr.nn.Graph or Sequential: nodes by name); "
                f"{type(model).__name__} offers class objectives only (class_score, class_log_probability)"
            )
        node = model.name_of(objective.layer)
        tape = model.trace(x, stop=node)
        out = tape.output
        ch = _channels(objective.target, n, out.shape[1], node)
        values = out[rows, ch].reshape(n, -1).mean(axis=1)
        if not need_grad:
            return values, None
        seed = np.zeros_like(out)
        seed[rows, ch] = 1.0 / float(np.prod(out.shape[2:], dtype=np.int64))
        return values, tape.pull(seed, "gradient")
    tape = trace(model, x)  # one forward pass serves the value and the gradient
    scores = tape.output
    values = _targets.selected(objective.target, scores)  # checks that the classes exist
    seed = _targets.seed(objective.target, scores)
    if objective.kind == "log_softmax":
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        values = (shifted - log_z)[rows, seed.argmax(axis=1)]
        seed = seed - np.exp(shifted - log_z)  # ∂ log P_c / ∂S = e_c − P
    if not need_grad:
        return values, None
    return values, np.asarray(tape.pull(seed.astype(scores.dtype, copy=False), "gradient"), dtype=x.dtype)


# -- regularisers: value (N,) and gradient (x.shape) -------------------------------------------------------

def _per_image(v):
    return v.reshape(v.shape[0], -1).sum(axis=1)


def l2(x):
    """``‖I‖₂² = Σ I²`` per image; gradient ``2 I`` (Simonyan et al. 2014, eq. 1's ``λ‖I‖₂²``).

    Returns ``(value (N,), gradient x.shape)``.
    """
    return _per_image(x * x), 2 * x


def _forward_diff(x, axis):
    """``x[i+1] − x[i]`` along ``axis``, zero past the last index (replicate boundary)."""
    d = np.zeros_like(x)
    src = [slice(None)] * x.ndim
    lo, hi = list(src), list(src)
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    d[tuple(lo)] = x[tuple(hi)] - x[tuple(lo)]
    return d


def _forward_diff_adjoint(g, axis):
    """Adjoint of :func:`_forward_diff`: ``−g[i] + g[i−1]`` (``g`` is zero past the last index)."""
    out = -g
    src = [slice(None)] * g.ndim
    lo, hi = list(src), list(src)
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    out[tuple(hi)] += g[tuple(lo)]
    return out


def total_variation(x, beta=2.0, anisotropic=False):
    """``TV_β(I) = Σ_{c,i,j} (ΔᵢI² + ΔⱼI²)^{β/2}`` per image (Mahendran & Vedaldi 2015, ``R_{V^β}``).

    ``ΔᵢI = I_{c,i+1,j} − I_{c,i,j}`` and ``ΔⱼI = I_{c,i,j+1} − I_{c,i,j}`` over the last two axes, zero past the
    last row/column (a replicate boundary: the paper does not state one), summed over channels.
    ``anisotropic=True``: ``Σ |ΔᵢI|^β + |ΔⱼI|^β``; at ``β = 1`` this is ``tf.image.total_variation``, at
    ``β = 2`` both forms coincide.

    ``β >= 1``.  Where the difference is zero and ``β < 2`` the function has a kink (``β = 1``) or a zero
    derivative (``1 < β < 2``); the gradient there is taken as 0, the derivative for ``β > 1`` and the
    minimum-norm subgradient for ``β = 1`` (for ``β < 1`` there is none, hence the bound).

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)`` (any rank >= 3; the last two axes are spatial)
    beta : float >= 1
    anisotropic : bool

    Returns
    -------
    value : ndarray ``(N,)``
    gradient : ndarray ``x.shape``
    """
    beta = float(beta)
    if not np.isfinite(beta) or beta < 1:
        raise ValueError(f"beta must be >= 1 and finite (Mahendran & Vedaldi's V^beta), got {beta}")
    if x.ndim < 3:
        raise ValueError(f"total variation needs images (N, C, H, W) with two spatial axes, got shape {x.shape}")
    di, dj = _forward_diff(x, -2), _forward_diff(x, -1)
    if anisotropic:
        ai, aj = np.abs(di), np.abs(dj)
        value = _per_image(ai**beta + aj**beta)
        # ∂|d|^β/∂d = β |d|^{β−1} sign d  (0 at d = 0: sign 0)
        gi, gj = beta * ai ** (beta - 1) * np.sign(di), beta * aj ** (beta - 1) * np.sign(dj)
    else:
        v = di * di + dj * dj
        value = _per_image(v ** (beta / 2))
        # ∂v^{β/2}/∂d = β v^{β/2−1} d; zero where v = 0 (see the docstring)
        pos = v > 0
        a = np.zeros_like(v)
        a[pos] = beta * v[pos] ** (beta / 2 - 1)
        gi, gj = a * di, a * dj
    return value, _forward_diff_adjoint(gi, -2) + _forward_diff_adjoint(gj, -1)


def norm(x, p=2.0):
    """``N_p(I) = ‖vec I‖_p / n^{1/p}``, ``n = C·H·W``, per image (tf-keras-vis' ``Norm``).

    Gradient ``sign(I) |I|^{p−1} / ‖I‖_p^{p−1} / n^{1/p}``; 0 at ``I = 0`` (the minimum-norm subgradient).

    Parameters
    ----------
    x : ndarray ``(N, C, H, W)`` (any ``(N, ...)``)
    p : float
        ``p >= 1``, finite.

    Returns
    -------
    value : ndarray ``(N,)``
    gradient : ndarray, ``x.shape``
    """
    p = float(p)
    if not np.isfinite(p) or p < 1:
        raise ValueError(f"p must be >= 1 and finite, got {p}")
    flat = np.abs(x.reshape(x.shape[0], -1))
    n = flat.shape[1]
    scale = float(n) ** (1.0 / p)
    nrm = (flat**p).sum(axis=1) ** (1.0 / p)
    shape = (-1,) + (1,) * (x.ndim - 1)
    denom = np.where(nrm > 0, nrm, 1.0) ** (p - 1)
    grad = np.sign(x) * np.abs(x) ** (p - 1) / denom.reshape(shape) / scale
    return nrm / scale, grad


# -- step rules ----------------------------------------------------------------------------------------------

class GradientAscent:
    """``I ← I + lr · g`` (plain gradient ascent, Simonyan et al. 2014)."""

    name = "gradient"

    def __init__(self, lr=0.1):
        self.lr = float(_positive(lr, "lr"))

    def init(self, x):
        return None

    def step(self, g, state, t):
        return self.lr * g, state

    def __repr__(self):
        return f"GradientAscent(lr={self.lr})"


class Adam:
    """Adam (Kingma & Ba 2015, Algorithm 1) for ascent: ``I ← I + lr · m̂ / (√v̂ + ε)``.

    ``m ← β₁ m + (1 − β₁) g``, ``v ← β₂ v + (1 − β₂) g²``, ``m̂ = m/(1 − β₁ᵗ)``, ``v̂ = v/(1 − β₂ᵗ)``.
    The paper's defaults ``β₁ = 0.9``, ``β₂ = 0.999``, ``ε = 1e-8`` (Keras uses ``ε = 1e-7``, PyTorch ``1e-8``);
    the paper's ``lr = 0.001`` is for weights: :func:`activation_maximisation` uses ``lr = 0.05`` for images in
    ``[0, 1]`` (each step moves a pixel by at most about ``lr``).
    """

    name = "adam"

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr = float(_positive(lr, "lr"))
        for value, label in ((beta1, "beta1"), (beta2, "beta2")):
            if not 0 <= float(value) < 1:
                raise ValueError(f"{label} must be in [0, 1), got {value}")
        self.beta1, self.beta2 = float(beta1), float(beta2)
        self.eps = float(_positive(eps, "eps"))

    def init(self, x):
        return np.zeros_like(x), np.zeros_like(x)

    def step(self, g, state, t):
        m, v = state
        m = self.beta1 * m + (1 - self.beta1) * g
        v = self.beta2 * v + (1 - self.beta2) * g * g
        m_hat = m / (1 - self.beta1**t)
        v_hat = v / (1 - self.beta2**t)
        return self.lr * m_hat / (np.sqrt(v_hat) + self.eps), (m, v)

    def __repr__(self):
        return f"Adam(lr={self.lr}, beta1={self.beta1}, beta2={self.beta2}, eps={self.eps})"


class RMSprop:
    """RMSprop (Tieleman & Hinton 2012) in Keras' form, for ascent: ``I ← I + lr · g / √(v + ε)``.

    ``v ← ρ v + (1 − ρ) g²``, no bias correction, no momentum; ``ε = 1e-7`` inside the root (Keras).
    tf-keras-vis 0.8.7's default optimiser is ``RMSprop(learning_rate=1.0, rho=0.999)`` for images in
    ``[0, 255]``: its first step moves every pixel by ``lr/√(1 − ρ) ≈ 31.6·lr``.
    """

    name = "rmsprop"

    def __init__(self, lr=1.0, rho=0.999, eps=1e-7):
        self.lr = float(_positive(lr, "lr"))
        if not 0 <= float(rho) < 1:
            raise ValueError(f"rho must be in [0, 1), got {rho}")
        self.rho = float(rho)
        self.eps = float(_positive(eps, "eps"))

    def init(self, x):
        return np.zeros_like(x)

    def step(self, g, v, t):
        v = self.rho * v + (1 - self.rho) * g * g
        return self.lr * g / np.sqrt(v + self.eps), v

    def __repr__(self):
        return f"RMSprop(lr={self.lr}, rho={self.rho}, eps={self.eps})"


#: default learning rates of the named step rules for images in [0, 1] (chosen on the shipped shapes model,
#: see the tests); pass a step-rule object to set every constant.
DEFAULT_LR = {"gradient": 0.1, "adam": 0.05, "rmsprop": 1.0 / 255}
STEP_RULES = {"gradient": GradientAscent, "adam": Adam, "rmsprop": RMSprop}


def _step_rule(optimiser, lr):
    if isinstance(optimiser, str):
        if optimiser not in STEP_RULES:
            raise ValueError(f"unknown optimiser {optimiser!r}; known: {', '.join(STEP_RULES)} (or a step-rule object)")
        return STEP_RULES[optimiser](lr=DEFAULT_LR[optimiser] if lr is None else lr)
    if not (callable(getattr(optimiser, "init", None)) and callable(getattr(optimiser, "step", None))):
        raise TypeError(f"optimiser must be a name ({', '.join(STEP_RULES)}) or a step rule, got {optimiser!r}")
    if lr is not None:
        raise ValueError("lr is set on the step-rule object; pass lr=None with an optimiser object")
    return optimiser


# -- validation helpers ------------------------------------------------------------------------------------

def _positive(value, name, allow_zero=False, integer=False):
    kinds = (numbers.Integral, np.integer) if integer else (numbers.Real, np.floating, np.integer)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise TypeError(f"{name} must be {'an int' if integer else 'a real number'}, got {type(value).__name__}")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value}")
    return value


def _input_range(input_range):
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise TypeError(f"input_range must be a pair (lo, hi) of numbers, got {input_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"input_range must be finite with lo < hi, got {(lo, hi)}")
    return lo, hi


#: standard deviation of the "normal" start, as a fraction of the input range.
NORMAL_START_SCALE = 0.1
START_KINDS = ("centre", "zeros", "uniform", "normal")


def start_image(start, shape, n=1, input_range=(0.0, 1.0), rng=None, dtype=np.float64):
    """The first iterate ``(N, C, H, W)``.

    Parameters
    ----------
    start : str or ndarray
        * ``"centre"``: every pixel at ``(lo + hi)/2`` of ``input_range``.  Simonyan et al. 2014 start from the zero
          image of a network whose inputs are mean-subtracted, i.e. from the mean image; for a model that takes
          raw pixels in ``[0, 1]`` the constant ``0.5`` is the nearest stand-in (the shapes data's mean pixel is
          0.497) and, unlike the zero image, it does not leave every first-layer ReLU of the shipped model off;
        * ``"zeros"``: the zero image (Simonyan et al.'s start taken literally);
        * ``"uniform"``: ``U(lo, hi)`` per pixel (tf-keras-vis' default seed input), from ``rng``;
        * ``"normal"``: ``centre + 0.1·(hi − lo)·N(0, 1)`` per pixel, from ``rng``;
        * an array ``(N, C, H, W)`` or ``(C, H, W)`` (a data set's mean image, a photo): copied, must be finite.
    shape : tuple of int ``(C, H, W)``
    n : int
        Images ``N`` (for a named start).
    input_range : tuple of float ``(lo, hi)``
    rng : numpy.random.Generator or int, optional
        For ``"uniform"`` and ``"normal"``.
    dtype : numpy dtype
        Of a named start (an array start keeps its own).

    Returns
    -------
    ndarray ``(N, C, H, W)``
    """
    if not isinstance(start, str):
        arr = as_float_array(start, "start")
        if arr.ndim == len(shape):
            arr = arr[None]
        if arr.shape[1:] != tuple(shape):
            raise ValueError(f"start must have shape (N,) + {tuple(shape)} or {tuple(shape)}, got {np.shape(start)}")
        return np.array(arr, dtype=arr.dtype, copy=True)
    lo, hi = input_range
    full = (n,) + tuple(shape)
    if start == "zeros":
        return np.zeros(full, dtype=dtype)
    if start == "centre":
        return np.full(full, (lo + hi) / 2, dtype=dtype)
    if start == "uniform":
        return as_rng(rng).uniform(lo, hi, size=full).astype(dtype)
    if start == "normal":
        return ((lo + hi) / 2 + NORMAL_START_SCALE * (hi - lo) * as_rng(rng).standard_normal(full)).astype(dtype)
    raise ValueError(f"unknown start {start!r}; known: {', '.join(START_KINDS)} or an array")


# -- transformation robustness: a random similarity warp and its adjoint ------------------------------------

def similarity_warp(height, width, angle=0.0, zoom=1.0):
    """The bilinear resampling ``T`` that rotates an image by ``angle`` degrees and zooms it by ``zoom``.

    Output pixel ``p`` (row, column) samples the input at ``c + R(−angle) (p − c) / zoom``, ``c`` the image
    centre, with bilinear weights; sample coordinates are clamped to the image (replicate boundary), so ``T`` is
    linear and every row's weights sum to 1.  ``T x`` is ``x.reshape(-1, H·W) @ T.T`` and the adjoint ``Tᵀ g`` is
    ``g.reshape(-1, H·W) @ T`` (:func:`apply_warp` with ``adjoint``).  ``angle = 0, zoom = 1`` is the identity.

    Parameters
    ----------
    height, width : int
        ``H`` and ``W``.
    angle : float
        Degrees.
    zoom : float
        ``> 0``, finite.

    Returns
    -------
    scipy.sparse.csr_matrix ``(H·W, H·W)``
    """
    from scipy.sparse import csr_matrix

    zoom = float(zoom)
    if not np.isfinite(zoom) or zoom <= 0:
        raise ValueError(f"zoom must be > 0 and finite, got {zoom}")
    theta = np.deg2rad(float(angle))
    cos, sin = np.cos(theta), np.sin(theta)
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    cr, cc = (height - 1) / 2, (width - 1) / 2
    dr, dc = (rows - cr) / zoom, (cols - cc) / zoom
    # rotating the image by +angle samples the input at the point rotated by −angle
    src_r = np.clip(cr + cos * dr + sin * dc, 0, height - 1).ravel()
    src_c = np.clip(cc - sin * dr + cos * dc, 0, width - 1).ravel()
    r0, c0 = np.floor(src_r).astype(np.intp), np.floor(src_c).astype(np.intp)
    fr, fc = src_r - r0, src_c - c0
    r1, c1 = np.minimum(r0 + 1, height - 1), np.minimum(c0 + 1, width - 1)
    out = np.arange(height * width)
    data = np.concatenate([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc])
    src = np.concatenate([r0 * width + c0, r0 * width + c1, r1 * width + c0, r1 * width + c1])
    # duplicate (row, column) entries (at the clamped border) are summed by the constructor
    return csr_matrix((data, (np.tile(out, 4), src)), shape=(height * width, height * width))


def apply_warp(x, warp, adjoint=False):
    """``T x`` (or ``Tᵀ x``) over the last two axes of ``x`` for a :func:`similarity_warp` ``T``.

    Parameters
    ----------
    x : ndarray ``(..., H, W)``
    warp : scipy.sparse.csr_matrix ``(H·W, H·W)``
    adjoint : bool
        Apply ``Tᵀ`` instead of ``T``.

    Returns
    -------
    ndarray, ``x.shape``, ``x.dtype``
    """
    flat = x.reshape(-1, x.shape[-2] * x.shape[-1])
    out = flat @ warp if adjoint else (warp @ flat.T).T
    return np.asarray(out, dtype=x.dtype).reshape(x.shape)


# -- the ascent ----------------------------------------------------------------------------------------------

ActivationMaximisation = namedtuple("ActivationMaximisation", "image values objective penalty")
ActivationMaximisation.__doc__ = """Result of :func:`activation_maximisation`.

image : ndarray ``(N, C, H, W)``, the final iterate (clipped to ``input_range`` unless ``clip=None``)
values : ndarray ``(steps + 1, N)``, ``f`` at every iterate (the first row is the start's)
objective : ndarray ``(steps + 1, N)``, ``J = f − R``, the quantity maximised
penalty : ndarray ``(steps + 1, N)``, ``R = λ_2 ‖I‖² + λ_TV TV_β + λ_N N_p``
"""


def _penalty(x, l2_weight, tv_weight, tv_beta, tv_anisotropic, norm_weight, norm_p):
    value = np.zeros(x.shape[0], dtype=x.dtype)
    grad = np.zeros_like(x)
    for weight, fn in (
        (l2_weight, l2),
        (tv_weight, lambda a: total_variation(a, tv_beta, tv_anisotropic)),
        (norm_weight, lambda a: norm(a, norm_p)),
    ):
        if weight:
            v, g = fn(x)
            value += weight * v
            grad += weight * g
    return value, grad


def activation_maximisation(
    model, objective, shape=None, start="centre", *, steps=200, optimiser="adam", lr=None,
    l2_weight=0.0, tv_weight=0.3, tv_beta=2.0, tv_anisotropic=False, norm_weight=0.0, norm_p=2.0,
    jitter=0, rotate=0.0, scale=None, blur_sigma=0.0, blur_every=0, input_range=(0.0, 1.0), clip="step", rng=None,
    dtype=np.float64,
):
    """Maximise ``J(I) = f(I) − R(I)`` over images by a named step rule (see the module docstring).

    Parameters
    ----------
    model : model protocol object (a layered model for channel objectives)
    objective : Objective or int
        :func:`class_score` (an int ``c`` means ``class_score(c)``), :func:`class_log_probability`,
        :func:`channel_mean`.  Its target may be an int array ``(N,)``: one class/channel per image.
    shape : tuple ``(C, H, W)``, optional
        One image's shape; needed unless ``start`` is an array.
    start : str or ndarray
        See :func:`start_image`; default ``"centre"`` (deterministic).
    steps : int
    optimiser : ``"adam"`` (default), ``"gradient"``, ``"rmsprop"`` or a step-rule object
        (:class:`Adam`, :class:`GradientAscent`, :class:`RMSprop`).
    lr : float, optional
        Learning rate of a named step rule; default :data:`DEFAULT_LR`.
    l2_weight, tv_weight, norm_weight : float >= 0
        ``λ_2``, ``λ_TV``, ``λ_N`` (0: off).  Default: the TV prior alone, ``λ_TV = 0.3`` with ``β = 2`` (like
        tf-keras-vis, a smoothness prior is on by default; the weight is chosen on the shipped shapes model,
        whose scores are in the hundreds: without it the "square" ascent ends with "disk" ahead, with it every
        class ends top-1, see the module docstring).
    tv_beta, tv_anisotropic, norm_p
        Options of :func:`total_variation` and :func:`norm`.
    jitter : int
        Random roll of up to ``jitter`` pixels before each gradient (0: off).  Needs ``rng``.
    rotate : float
        Random rotation of up to ``rotate`` degrees before each gradient (0: off).  Needs ``rng``.
    scale : (lo, hi), optional
        Random zoom factor in ``[lo, hi]`` before each gradient (None: off).  Needs ``rng``.
    blur_sigma, blur_every : float, int
        Gaussian blur of ``blur_sigma`` pixels every ``blur_every`` steps (0: off).
    input_range : (lo, hi) or None
        The model's input range: the box of ``clip`` and of the ``"centre"``/``"uniform"``/``"normal"`` starts.
        None: no clipping, starts drawn on ``[0, 1]``.
    clip : ``"step"`` (default), ``"end"`` or None
        Project every iterate onto ``input_range``, only the result (tf-keras-vis), or never.
    rng : numpy.random.Generator or int, optional
        Needed for the noise starts and for ``jitter``, ``rotate``, ``scale``.  Per step, the draws are the roll
        ``(dy, dx)``, then the angle, then the zoom (those switched on).
    dtype : float32 or float64
        Of the iterate when ``start`` is a name (an array start keeps its dtype).

    Returns
    -------
    ActivationMaximisation
        ``(image (N, C, H, W), values, objective, penalty)``, the histories ``(steps + 1, N)``.
    """
    check_model(model, "gradient")
    objective = _as_objective(objective)
    steps = int(_positive(steps, "steps", allow_zero=True, integer=True))
    weights = {}
    for name, value in (("l2_weight", l2_weight), ("tv_weight", tv_weight), ("norm_weight", norm_weight)):
        weights[name] = float(_positive(value, name, allow_zero=True))
    jitter = int(_positive(jitter, "jitter", allow_zero=True, integer=True))
    rotate = float(_positive(rotate, "rotate", allow_zero=True))
    if scale is not None:
        try:
            zlo, zhi = (float(v) for v in scale)
        except (TypeError, ValueError):
            raise TypeError(f"scale must be a pair (lo, hi) of zoom factors, got {scale!r}") from None
        if not (np.isfinite(zlo) and np.isfinite(zhi) and 0 < zlo <= zhi):
            raise ValueError(f"scale must be finite zoom factors with 0 < lo <= hi, got {(zlo, zhi)}")
    transform = bool(jitter or rotate or scale is not None)
    blur_every = int(_positive(blur_every, "blur_every", allow_zero=True, integer=True))
    blur_sigma = float(_positive(blur_sigma, "blur_sigma", allow_zero=True))
    if clip not in ("step", "end", None):
        raise ValueError(f"clip must be 'step', 'end' or None, got {clip!r}")
    box = None if input_range is None else _input_range(input_range)
    if clip is not None and box is None:
        raise ValueError(f"clip={clip!r} needs an input_range (lo, hi); pass clip=None for an unconstrained ascent")
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    rule = _step_rule(optimiser, lr)
    if weights["tv_weight"]:
        total_variation(np.zeros((1, 1, 2, 2)), tv_beta, tv_anisotropic)  # validate beta before the loop
    if weights["norm_weight"]:
        norm(np.zeros((1, 1)), norm_p)

    # one generator for everything random (the start's noise, then the jitter), made once from rng
    gen = as_rng(rng) if transform or (isinstance(start, str) and start in ("uniform", "normal")) else None

    # the image: shape, batch size, start
    if isinstance(start, str):
        if shape is None:
            raise ValueError(f"shape (C, H, W) is needed with start={start!r}")
        shape = tuple(int(s) for s in shape)
        if len(shape) < 1 or min(shape) < 1:
            raise ValueError(f"shape must be one image's shape, e.g. (C, H, W), with positive sizes, got {shape}")
        t = np.asarray(objective.target)
        n = 1 if t.ndim == 0 else len(t)
        x = start_image(start, shape, n, box or (0.0, 1.0), gen, dtype)
    else:
        arr = as_float_array(start, "start")
        shape = tuple(arr.shape[1:]) if shape is None else tuple(int(s) for s in shape)
        x = start_image(arr, shape)
    if box is not None and clip == "step":
        x = np.clip(x, *box)
    if transform and x.ndim < 4:
        raise ValueError(f"jitter/rotate/scale move the two spatial axes; images must be (N, C, H, W), got {x.shape}")
    blur = None
    if blur_every and blur_sigma > 0:
        from scipy.ndimage import gaussian_filter

        sig = (0,) * (x.ndim - 2) + (blur_sigma, blur_sigma)

        def blur(img):
            return gaussian_filter(img, sigma=sig, mode="nearest").astype(img.dtype, copy=False)

    def penalty(img):
        return _penalty(img, weights["l2_weight"], weights["tv_weight"], tv_beta, tv_anisotropic,
                        weights["norm_weight"], norm_p)

    state = rule.init(x)
    values, penalties = [], []
    for t in range(steps + 1):
        f, g = _objective_and_grad(model, x, objective, need_grad=not transform and t < steps)
        r, gr = penalty(x)
        values.append(f)
        penalties.append(r)
        if t == steps:
            break
        if transform:  # the gradient of f(W(roll(x))) at x: roll⁻¹ Wᵀ ∇f
            dy, dx = (int(d) for d in gen.integers(-jitter, jitter + 1, size=2)) if jitter else (0, 0)
            angle = float(gen.uniform(-rotate, rotate)) if rotate else 0.0
            zoom = float(gen.uniform(zlo, zhi)) if scale is not None else 1.0
            moved = np.roll(x, (dy, dx), axis=(-2, -1))
            warp = similarity_warp(x.shape[-2], x.shape[-1], angle, zoom) if (rotate or scale is not None) else None
            if warp is not None:
                moved = apply_warp(moved, warp)
            _, g = _objective_and_grad(model, moved, objective)
            if warp is not None:
                g = apply_warp(g, warp, adjoint=True)
            g = np.roll(g, (-dy, -dx), axis=(-2, -1))
        delta, state = rule.step((g - gr).astype(x.dtype, copy=False), state, t + 1)
        x = x + delta.astype(x.dtype, copy=False)
        if blur is not None and (t + 1) % blur_every == 0:
            x = blur(x)
        if box is not None and clip == "step":
            x = np.clip(x, *box)
    if box is not None and clip == "end":
        x = np.clip(x, *box)
    values, penalties = np.array(values), np.array(penalties)
    return ActivationMaximisation(x, values, values - penalties, penalties)
