"""Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2019) with composites.

The relevance of the explained output, ``R = seed ⊙ scores`` (the target's score; ``output="one"``:
the seed itself, 1 for a class), is propagated layer by layer with the ``lrp*`` columns of the rule
table (:func:`xattr.rule_table`).  Layers with weights (dense, conv) take the rule a *composite*
assigns them; the others have one cell for every LRP column:

* ReLU, flatten, dropout: relevance passes unchanged;
* average pools and global average pool: LRP-0 on their (positive) linear map;
* max-pool: winner-take-all (``maxpool="winner_take_all"``, the default, as Montavon et al. 2019
  §10.3 and Zennit), or ``maxpool="proportional"``: ``R_i = x_i R / Σ_window x``.

Batch-norm is folded into the preceding conv first (:func:`xattr.nn.fold_batchnorm`), a
canonicalisation that keeps the function and lets the conv's rule see the effective weights (as Zennit's
canonizers); a batch-norm that does not follow a conv (a pre-activation ``bn-relu-conv`` block, a batch-norm
after a sum) takes the z-rule on its own affine map, its shift absorbing relevance as a bias does.

A composite is a plain mapping from layer *type* (``Dense``, ``Conv2D``: any class whose ``weighted``
trait is set, matched with ``isinstance``), *node name* (``"layer3.1.conv2"``) or *position* (``"first"``:
the weighted nodes with no weighted node before them) to a rule, given as a name or ``(name, {options})``; ``"first"``
wins
over the type.  Rule names: ``"0"``, ``"epsilon"``, ``"gamma"``, ``"alphabeta"``, ``"zplus"``,
``"zbox"``, ``"flat"``, ``"w2"``.  Presets (:data:`COMPOSITES`) and any single rule name (applied to
every layer with weights) may be passed by name.

Defaults and peers: ``ε = 1e-6`` (Zennit's; Captum's ``LRP`` uses 1e-9), ``γ = 0.25`` (Zennit's), αβ
``α = 2, β = 1``.  Biases take part in the rules' denominators (Montavon et al. 2019; Zennit, Captum),
so they absorb relevance; ``return_totals=True`` shows how much at each layer.
"""
from __future__ import annotations

import numpy as np

from .. import _targets
from .._conventions import as_float_array
from ..inputs import completeness_gap
from ..nn import INPUT, Conv2D, Dense, Layer
from ..nn.norm import BatchNorm2D, fold_batchnorm
from ..nn.pool import LRP_MAXPOOL_MODES
from ..nn.relevance import LRP_ALPHA, LRP_BETA, LRP_EPSILON, LRP_GAMMA, check_alpha_beta, check_epsilon, check_gamma
from .deeplift import require_layered
from .registry import MethodSpec, register

#: short rule name -> (column of the rule table, the options it takes)
LRP_RULE_NAMES = {
    "0": ("lrp0", ()),
    "epsilon": ("lrp_epsilon", ("epsilon",)),
    "gamma": ("lrp_gamma", ("gamma",)),
    "alphabeta": ("lrp_alphabeta", ("alpha", "beta")),
    "zplus": ("lrp_zplus", ()),
    "zbox": ("lrp_zbox", ("low", "high")),
    "flat": ("lrp_flat", ()),
    "w2": ("lrp_w2", ()),
}

#: layer types that take an LRP rule from a composite (the others have fixed cells).
WEIGHTED = (Dense, Conv2D)

#: common composites (Montavon et al. 2019 §10.3; Kohlbrenner et al. 2020; Zennit's names).
COMPOSITES = {
    # ε everywhere
    "epsilon": {Dense: "epsilon", Conv2D: "epsilon"},
    # ε for dense, z⁺ for conv (Zennit EpsilonPlus; Kohlbrenner et al. 2020)
    "epsilon_plus": {Dense: "epsilon", Conv2D: "zplus"},
    # ε for dense, z⁺ for conv, flat at the input (Zennit EpsilonPlusFlat)
    "epsilon_plus_flat": {"first": "flat", Dense: "epsilon", Conv2D: "zplus"},
    # ε for dense, γ for conv, z^B at the input (Montavon et al. 2019 §10.3; Zennit EpsilonGammaBox)
    "epsilon_gamma_box": {"first": "zbox", Dense: "epsilon", Conv2D: "gamma"},
    # ε for dense, α2β1 for conv (Zennit EpsilonAlpha2Beta1)
    "epsilon_alpha2_beta1": {Dense: "epsilon", Conv2D: ("alphabeta", {"alpha": 2.0, "beta": 1.0})},
}

OUTPUT_RELEVANCE = ("score", "one")


def _rule_spec(spec, where):
    """``(column, options)`` from a rule name or ``(name, {options})``."""
    name, opts = (
        (spec, {}) if isinstance(spec, str) else tuple(spec) if isinstance(spec, (tuple, list)) else (None, None)
    )
    if name not in LRP_RULE_NAMES or not isinstance(opts, dict):
        raise ValueError(
            f"{where}: an LRP rule is a name in {sorted(LRP_RULE_NAMES)} or (name, {{options}}), got {spec!r}"
        )
    column, allowed = LRP_RULE_NAMES[name]
    unknown = set(opts) - set(allowed)
    if unknown:
        raise ValueError(f"{where}: rule {name!r} takes options {allowed or '()'}, got {sorted(unknown)}")
    return name, column, dict(opts)


def resolve_composite(composite):
    """A composite as ``{key: (short name, column, options)}``; keys ``"first"`` or weighted layer types."""
    if isinstance(composite, str):
        if composite in COMPOSITES:
            composite = COMPOSITES[composite]
        elif composite in LRP_RULE_NAMES:
            composite = {Dense: composite, Conv2D: composite}
        else:
            raise ValueError(
                f"unknown composite {composite!r}; presets: {sorted(COMPOSITES)}; or a rule name: "
                f"{sorted(LRP_RULE_NAMES)}"
            )
    if not isinstance(composite, dict):
        raise TypeError(f"a composite is a preset name, a rule name or a dict, got {type(composite).__name__}")
    out = {}
    for key, spec in composite.items():
        if not (isinstance(key, str) or isinstance(key, type) and issubclass(key, Layer) and key.weighted):
            name = key.__name__ if isinstance(key, type) else repr(key)
            raise ValueError(
                f"composite key {name} is not supported: keys are 'first', a node name, or a layer type with "
                f"weights (e.g. {', '.join(t.__name__ for t in WEIGHTED)}); ReLU/flatten/dropout/pools/merges have "
                "fixed LRP cells (max-pool: maxpool=...) and batch-norm is folded into its conv where it follows one"
            )
        out[key] = _rule_spec(spec, f"composite entry {getattr(key, '__name__', key)}")
    return out


def _defaults(epsilon, gamma, alpha, beta, low, high):
    return {"epsilon": epsilon, "gamma": gamma, "alpha": alpha, "beta": beta, "low": low, "high": high}


def _validate(name, opts):
    if name == "epsilon":
        check_epsilon(opts["epsilon"])
    elif name == "gamma":
        check_gamma(opts["gamma"])
    elif name == "alphabeta":
        check_alpha_beta(opts["alpha"], opts["beta"])
    elif name == "zbox" and (opts.get("low") is None or opts.get("high") is None):
        raise ValueError("the z^B rule needs the input's box bounds: pass low= and high= (e.g. the data range)")


def _first_weighted(model):
    """Weighted nodes with no weighted node before them on any path from the input (the ``"first"`` key)."""
    first, seen_weighted = [], set()
    for name in model.order:
        before = any(i in seen_weighted for i in model.inputs_of(name))
        if model[name].weighted:
            if not before:
                first.append(name)
            seen_weighted.add(name)
        elif before:
            seen_weighted.add(name)  # a weighted node lies upstream
    return set(first)


def layer_rules(model, composite, defaults, maxpool):
    """``{node name: (column, options)}`` for a model (batch-norms folded where they follow a conv).

    A weighted node takes its rule from the composite: by node name first, then ``"first"``, then its
    layer type (the most specific class in the composite that it is an instance of).

    Parameters
    ----------
    model : Graph or Sequential
    composite : str or dict
        A named composite or ``{node name | "first" | layer type: rule}`` (see :func:`resolve_composite`).
    defaults : dict str -> float
        The rules' options not set by the composite (``epsilon``, ``gamma``, ``alpha``, ...).
    maxpool : str
        The max-pool cell of the unweighted layers' ``lrp0`` rule.

    Returns
    -------
    dict str -> (str, dict)
    """
    comp = resolve_composite(composite)
    for key in comp:
        if isinstance(key, str) and key != "first":
            if key not in model:
                raise ValueError(f"composite key {key!r} is not a node of the model; nodes: {', '.join(model.order)}")
            if not model[key].weighted:
                raise ValueError(f"composite key {key!r} names {model[key].describe()}, which has fixed LRP cells")
    first = _first_weighted(model) if "first" in comp else set()
    cells = {}
    for name in model.order:
        layer = model[name]
        if layer.weighted:
            key = name if name in comp else "first" if name in first else None
            if key is None:
                types = [t for t in comp if isinstance(t, type) and isinstance(layer, t)]
                key = next((t for t in types if all(issubclass(t, u) for u in types)), None)
            if key is None:
                raise ValueError(f"the composite has no rule for {layer.describe()} (keys: {list(comp)})")
            short, column, opts = comp[key]
            allowed = LRP_RULE_NAMES[short][1]
            opts = {**{k: defaults[k] for k in allowed}, **opts}
            _validate(short, opts)
            cells[name] = (column, opts)
        else:
            if not layer.has_rule("lrp0"):
                raise ValueError(f"{layer.describe()} has no LRP rule; LRP supports {_supported()}")
            cells[name] = ("lrp0", {"maxpool": maxpool})
    return cells


def _supported():
    from ..nn.base import _registered_layer_types, find_rule

    return ", ".join(t.__name__ for t in _registered_layer_types() if find_rule(t, "lrp0") is not None)


def lrp(model, x, target, composite="epsilon", *, epsilon=LRP_EPSILON, gamma=LRP_GAMMA, alpha=LRP_ALPHA,
        beta=LRP_BETA, low=None, high=None, maxpool="winner_take_all", output="score", return_totals=False,
        return_delta=False):
    """Layer-wise relevance propagation.

    Parameters
    ----------
    model : xattr.nn.Graph or Sequential
    x : ndarray ``(N, C, H, W)`` (or any ``(N, ...)`` the model takes)
    target : int, int array ``(N,)`` or callable on the scores
    composite : str or dict
        A preset of :data:`COMPOSITES`, a rule name for every dense/conv layer, or a dict
        ``{"first" | node name | Dense | Conv2D: rule name or (name, {options})}``.
    epsilon, gamma, alpha, beta, low, high : float or ndarray
        Defaults of the rules' options (a composite entry's own options win).  ``low``/``high``: the
        input's box for z^B (scalars or arrays broadcastable to one sample).
    maxpool : ``"winner_take_all"`` (default) or ``"proportional"``
    output : ``"score"`` (default: the relevance at the output is the target score) or ``"one"``
        The output relevance is ``seed ⊙ scores`` (or ``seed``), ``seed`` the target's one-hot row or, for
        a callable target, its derivative with respect to the scores: the explained value itself when
        the callable is linear in the scores (e.g. a difference of two classes).
    return_totals : bool
        Also return the total relevance ``(N, L + 1)``: column 0 at the model input, column ``i + 1`` at the
        output of node ``i`` (topological order of the batch-norm-folded model; for a chain: column ``i`` is
        the input of layer ``i`` and column ``L`` the output), so that what each node's biases and ε absorb
        can be read off (a node feeding several others shows the sum of what comes back to it).

    return_delta : bool
        Also return the conservation gap ``Σ_i R_i − Σ R_output`` ``(N,)`` float64, the relevance the input
        receives minus what was put at the output (:func:`xattr.inputs.completeness_gap` with ``F(x)`` the
        output relevance and ``F(x') = 0``): what biases, stabilisers and dropped 0/0 quotients absorbed.

    Returns
    -------
    ndarray ``x.shape``, then the totals if ``return_totals``, then the gap if ``return_delta``
    """
    require_layered(model, "lrp")
    if maxpool not in LRP_MAXPOOL_MODES:
        raise ValueError(f"maxpool must be one of {LRP_MAXPOOL_MODES}, got {maxpool!r}")
    if output not in OUTPUT_RELEVANCE:
        raise ValueError(f"output must be one of {OUTPUT_RELEVANCE}, got {output!r}")
    x = as_float_array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must be a batch of shape (N, ...), got shape {x.shape}")
    if any(isinstance(layer, BatchNorm2D) for layer in model):
        model = fold_batchnorm(model, strict=False)
    cells = layer_rules(model, composite, _defaults(epsilon, gamma, alpha, beta, low, high), maxpool)
    tape = model.trace(x)
    scores = tape.output
    seed = _targets.seed(target, scores)
    R = seed * scores if output == "score" else seed
    totals = {}

    def total(name, rec, g):
        totals[name] = g.reshape(g.shape[0], -1).sum(axis=1)

    def rule(name, layer):
        column, opts = cells[name]
        return column, {"inp": tape[name], **opts}

    put = R.reshape(R.shape[0], -1).sum(axis=1, dtype=np.float64)
    R = tape.pull(R, rule, taps={n: total for n in model.order + [INPUT]} if return_totals else None)
    extra = ()
    if return_totals:
        cols = [totals.get(n, np.zeros(len(x))) for n in [INPUT] + model.order]
        extra += (np.stack(cols, axis=1),)
    if return_delta:
        extra += (completeness_gap(R, put, 0.0),)
    return (R,) + extra if extra else R


# -- the registry -------------------------------------------------------------------------------------
register(
    MethodSpec("lrp", lrp, "relevance", paper="Bach et al. 2015; Montavon et al. 2019", needs=("layered", "rule:lrp0"))
)
