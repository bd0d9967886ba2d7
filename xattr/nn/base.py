"""Layer protocol, the rule registry and the ``Sequential`` container.

Layer protocol (stateless, CS231n style)::

    y, cache = layer.forward(x)                       # cache: what the backward rules need
    gx = layer.backward(g, cache, rule="gradient", **options)
    grads = layer.param_grads(g, cache)               # {"weight": dW, "bias": db} for conv/dense

The backward of a layer is indexed by *rule*: each cell of the table (layer type x rule)
is one small function registered with :func:`defrule`, next to the layer it belongs to.
A missing cell raises :class:`RuleNotDefined` naming the layer and the rule.
:func:`rule_table` renders the registry (formula and citation come from each rule's
docstring), so the documentation cannot drift from the code.
"""
from __future__ import annotations

from collections import OrderedDict
from types import SimpleNamespace
from typing import Callable, ClassVar

import numpy as np

from .._conventions import as_float_array

Cache = SimpleNamespace

#: rules that every layer of the stack implements (the seed's DeconvNet/backprop table).
CORE_RULES = ("gradient", "deconvnet", "guided")


class RuleNotDefined(NotImplementedError):
    """A layer has no backward rule of the requested name."""


class Layer:
    """Base class of every layer.

    Subclasses implement ``forward(x) -> (y, cache)`` and register their backward rules
    with :func:`defrule`.  ``rules`` is a per-subclass registry ``{rule name: function}``.
    """

    rules: ClassVar[dict] = {}
    #: True for layers whose map is piecewise linear in the input (used by exact IG).
    piecewise_linear: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.rules = {}  # each subclass owns its table row

    name: str | None = None

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)[0]

    def backward(self, g, cache, rule="gradient", **options):
        """Propagate ``g`` (shaped like this layer's output) back to its input with ``rule``."""
        fn = self.rules.get(rule)
        if fn is None:
            known = ", ".join(sorted(self.rules)) or "none"
            raise RuleNotDefined(
                f"layer {self.describe()} has no backward rule {rule!r}; its rules are: {known}"
            )
        return fn(self, g, cache, **options)

    def param_grads(self, g, cache):
        """Gradients of ``<g, layer(x)>`` with respect to the parameters (none by default)."""
        return {}

    def jvp(self, dx, cache):
        """Forward-mode derivative along ``dx`` at the point whose forward ``cache`` is given.

        For a piecewise-linear layer this is its linear part at the cached pattern (no bias,
        the cached ReLU mask / max-pool switches).  Registered per exact layer type with
        :func:`defjvp`; exact integrated gradients walks the path with it.
        """
        fn = _JVP_RULES.get(type(self))
        if fn is None:
            raise RuleNotDefined(
                f"layer {self.describe()} has no forward-mode derivative (jvp); "
                f"layers with one: {', '.join(sorted(t.__name__ for t in _JVP_RULES)) or 'none'}"
            )
        return fn(self, dx, cache)

    @property
    def params(self):
        """Names of the trainable parameters (``weight``, ``bias``) that are set."""
        return [p for p in ("weight", "bias") if getattr(self, p, None) is not None]

    def describe(self):
        label = type(self).__name__
        return f"{label} {self.name!r}" if self.name else label

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        return ""


def defrule(layer_types, *rule_names):
    """Register the decorated function as the backward rule(s) ``rule_names`` of ``layer_types``.

    The function has the signature ``fn(layer, g, cache, **options) -> grad_input``.
    The first line of its docstring is the formula; the second names the paper.
    """
    if not rule_names:
        raise TypeError("defrule needs at least one rule name")
    types = layer_types if isinstance(layer_types, (tuple, list)) else (layer_types,)

    def register(fn: Callable):
        for t in types:
            for r in rule_names:
                t.rules[r] = fn
        return fn

    return register


#: forward-mode derivatives by exact layer type (subclasses do not inherit them: a subclass may
#: change the forward pass).
_JVP_RULES = {}


def defjvp(layer_type):
    """Register ``fn(layer, dx, cache) -> dy`` as the forward-mode derivative of ``layer_type``."""

    def register(fn: Callable):
        _JVP_RULES[layer_type] = fn
        return fn

    return register


def _registered_layer_types():
    seen, stack = [], list(Layer.__subclasses__())
    while stack:
        t = stack.pop(0)
        if t not in seen:
            seen.append(t)
            stack.extend(t.__subclasses__())
    return seen


def rule_table(rules=None, fmt="markdown"):
    """Render the registry as a table: rows are layer types, columns rules.

    Each cell is the first docstring line of the rule's function (the formula), followed by
    the citation in its second line; a cell that reuses the function of an earlier column of its row
    says so ("same as gradient", "same as lrp0"), and a missing cell is "—".  ``rules`` selects and
    orders the columns (default: all registered, the core ones first, then the others in registration
    order).  ``fmt``: ``"markdown"`` or ``"dict"``.
    """
    types = [t for t in _registered_layer_types() if t.rules]
    if rules is None:
        extra = []
        for t in types:
            extra += [r for r in t.rules if r not in CORE_RULES and r not in extra]
        rules = list(CORE_RULES) + extra
    table = OrderedDict()
    for t in types:
        row = OrderedDict()
        for k, r in enumerate(rules):
            fn = t.rules.get(r)
            earlier = [e for e in rules[:k] if t.rules.get(e) is fn]
            if fn is None:
                row[r] = None
            elif earlier:
                row[r] = f"same as {earlier[0]}"
            else:
                lines = [ln.strip() for ln in (fn.__doc__ or "").strip().splitlines() if ln.strip()]
                formula = lines[0] if lines else fn.__name__
                row[r] = f"`{formula}` — {lines[1]}" if len(lines) > 1 else f"`{formula}`"
        table[t.__name__] = row
    if fmt == "dict":
        return table
    if fmt != "markdown":
        raise ValueError(f"fmt must be 'markdown' or 'dict', got {fmt!r}")
    out = ["| layer | " + " | ".join(rules) + " |", "|---" * (len(rules) + 1) + "|"]
    for name, row in table.items():
        cells = [(c if c is not None else "—").replace("|", "\\|") for c in row.values()]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


class Sequential:
    """A chain of named layers; also the model protocol's reference implementation.

    Parameters
    ----------
    *layers : Layer, or (str, Layer) pairs
        Unnamed layers are named ``<type><k>`` (``conv1``, ``relu1``, ``dense1``, ...).

    Notes
    -----
    The model protocol that methods rely on::

        scores = model.forward(x)                    # (N, C, H, W) -> (N, K)
        gx = model.vjp(x, grad_scores, rule="gradient", **options)   # (N, K) -> x.shape

    Layers are reached by name (``model["conv3"]``) or index (``model[0]``).
    """

    def __init__(self, *layers):
        self._layers = OrderedDict()
        counters = {}
        for item in layers:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                name, layer = item
            else:
                layer = item
                if not isinstance(layer, Layer):
                    raise TypeError(f"Sequential takes Layer objects or (name, Layer) pairs, got {item!r}")
                prefix = getattr(type(layer), "short_name", type(layer).__name__.lower())
                counters[prefix] = counters.get(prefix, 0) + 1
                name = f"{prefix}{counters[prefix]}"
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {name!r} is not a Layer: {layer!r}")
            if name in self._layers:
                raise ValueError(f"duplicate layer name {name!r}")
            layer.name = name
            self._layers[name] = layer

    # -- container ---------------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers.values())

    @property
    def names(self):
        return list(self._layers)

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers.values())

    def __getitem__(self, key):
        return self.layers[self.index(key)]

    def index(self, key):
        """Position of a layer given by name, index or the layer object itself."""
        if isinstance(key, Layer):
            for i, layer in enumerate(self._layers.values()):
                if layer is key:
                    return i
            raise KeyError(f"layer {key!r} is not in this model")
        if isinstance(key, str):
            if key not in self._layers:
                raise KeyError(f"no layer named {key!r}; layers are: {', '.join(self._layers)}")
            return list(self._layers).index(key)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            n = len(self._layers)
            if not -n <= key < n:
                raise IndexError(f"layer index {key} out of range for a model of {n} layers")
            return int(key) % n
        raise TypeError(f"layers are indexed by name or int, got {type(key).__name__}")

    def __repr__(self):
        inner = ",\n".join(f"  ({n}): {layer!r}" for n, layer in self._layers.items())
        return f"Sequential(\n{inner}\n)"

    # -- forward -----------------------------------------------------------------
    def forward_all(self, x, stop=None):
        """Run the layers ``[0, stop)`` and keep what every backward rule needs.

        Returns
        -------
        out : ndarray
            Output of the last layer run.
        caches : list
            One cache per layer run.
        """
        x = as_float_array(x, "x")
        stop = len(self) if stop is None else stop
        caches = []
        for layer in self.layers[:stop]:
            x, cache = layer.forward(x)
            caches.append(cache)
        return x, caches

    def forward(self, x):
        """Scores ``(N, K)`` for images ``(N, C, H, W)``."""
        return self.forward_all(x)[0]

    __call__ = forward

    def activations(self, x, layer):
        """Output of the named layer for input ``x``."""
        return self.forward_all(x, stop=self.index(layer) + 1)[0]

    # -- backward ----------------------------------------------------------------
    def backward(self, g, caches, rule="gradient", start=None, stop=0, **options):
        """Propagate ``g`` from the output of layer ``start - 1`` to the input of layer ``stop``.

        ``start`` defaults to the number of cached layers.  ``rule`` is a rule name or a
        callable ``(index, layer) -> (rule name, options dict)`` (a composite, as LRP uses).
        """
        start = len(caches) if start is None else start
        for i in range(start - 1, stop - 1, -1):
            layer = self.layers[i]
            if callable(rule):
                name, opts = rule(i, layer)
                opts = {**options, **opts}
            else:
                name, opts = rule, options
            g = layer.backward(g, caches[i], name, **opts)
        return g

    def vjp(self, x, grad_scores, rule="gradient", **options):
        """Vector-Jacobian product (generalised by ``rule``): ``(N, K)`` -> ``x.shape``."""
        scores, caches = self.forward_all(x)
        g = as_float_array(grad_scores, "grad_scores").astype(scores.dtype, copy=False)
        if g.shape != scores.shape:
            raise ValueError(f"grad_scores must have the scores' shape {scores.shape}, got {g.shape}")
        return self.backward(g, caches, rule, **options)

    def param_grads(self, x, grad_scores):
        """Input gradient and parameter gradients of ``<grad_scores, model(x)>``.

        Returns ``(grad_x, {layer name: {"weight": dW, "bias": db}})`` (the gradient rule).
        """
        scores, caches = self.forward_all(x)
        g = as_float_array(grad_scores, "grad_scores").astype(scores.dtype, copy=False)
        grads = {}
        for i in range(len(self) - 1, -1, -1):
            layer = self.layers[i]
            pg = layer.param_grads(g, caches[i])
            if pg:
                grads[layer.name] = pg
            g = layer.backward(g, caches[i], "gradient")
        return g, grads

    def supports(self, rule):
        """True if every layer implements ``rule``."""
        return all(rule in type(layer).rules for layer in self)


def checked_param(value, name, shape, owner):
    """Validate a parameter assignment: a finite float array of exactly ``shape`` (or None for a bias)."""
    if value is None:
        return None
    arr = as_float_array(value, f"{owner}.{name}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{owner}.{name} must have shape {tuple(shape)}, got {arr.shape}")
    return np.array(arr, dtype=np.float64 if arr.dtype == np.float64 else arr.dtype, copy=True)


def param_property(name, shape_of):
    """A plain assignable attribute whose setter checks the shape (``shape_of(layer) -> tuple``)."""
    attr = "_" + name

    def get(self):
        return getattr(self, attr)

    def set_(self, value):
        setattr(self, attr, checked_param(value, name, shape_of(self), type(self).__name__))

    return property(get, set_, doc=f"The layer's {name} (shape checked on assignment).")


def default_rng(rng):
    """Generator for weight initialisation: ``rng`` if given, else a fixed seed 0 (documented default)."""
    if rng is None:
        return np.random.default_rng(0)
    from .._conventions import as_rng

    return as_rng(rng)


def replaced(layer, **params):
    """A shallow copy of ``layer`` with some parameters replaced (``weight=..., bias=None``).

    Used by relevance rules that run a layer with modified weights (LRP's ``ρ(w)``, DeepLIFT's
    positive/negative weight parts).  The copy shares everything else (geometry, name); the
    original layer is not changed.  Shapes are checked by the parameters' setters.
    """
    import copy

    out = copy.copy(layer)
    for name, value in params.items():
        if name not in ("weight", "bias"):
            raise TypeError(f"replaced() takes weight= and bias=, got {name}=")
        setattr(out, name, value)
    return out
