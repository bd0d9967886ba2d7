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
from .._errors import XattrError

Cache = SimpleNamespace

#: rules that every layer of the stack implements (the seed's DeconvNet/backprop table).
CORE_RULES = ("gradient", "deconvnet", "guided")


class RuleNotDefined(XattrError, NotImplementedError):
    """A layer has no backward rule (or no per-layer fact) of the requested name."""


def _mro_lookup(cls, table, key):
    """``(owner class, value)`` of ``key`` in the per-class ``table`` attribute, following the MRO.

    This is the one lookup rule for every per-layer fact and rule: a subclass inherits what its
    bases registered and may override it by registering its own.
    """
    for klass in cls.__mro__:
        own = klass.__dict__.get(table)
        if own is not None and key in own:
            return klass, own[key]
    return None, None


class Layer:
    """Base class of every layer.

    Subclasses implement ``forward(x) -> (y, cache)`` and register their backward rules
    with :func:`defrule` and their other facts (forward-mode derivative, region map, kink finder)
    with :func:`deffact`.  ``rules`` and ``facts`` are per-class tables; lookups follow the class
    hierarchy (:func:`find_rule`, :func:`find_fact`), so ``class MyConv(Conv2D): pass`` keeps every
    rule and fact of ``Conv2D``.

    Class attributes (plain facts, inherited as Python attributes are):

    ``kind``
        ``"linear"`` (dense, conv, average pools, batch-norm, reshapes), ``"pointwise"`` (activations),
        ``"window"`` (max-pool), ``"global"``, or ``"merge"`` (several inputs).
    ``weighted``
        True for layers with a weight that relevance rules modify (dense, conv): LRP composites
        assign them a rule.
    ``affine``
        True when ``forward(x) = L x + b`` with ``L`` the ``jvp`` and ``Lᵀ`` the gradient rule
        (the IG and SmoothGrad shortcuts move ``Lᵀ`` out of the sum).
    ``piecewise_linear``
        True when the map is piecewise linear in the input (exact integrated gradients).
    ``arity``
        Number of inputs: 1 for ordinary layers, ``None`` (any number ≥ 2) or an int for merges.
    """

    rules: ClassVar[dict] = {}
    facts: ClassVar[dict] = {}
    kind: ClassVar[str] = "linear"
    weighted: ClassVar[bool] = False
    affine: ClassVar[bool] = False
    piecewise_linear: ClassVar[bool] = True
    arity: ClassVar = 1

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.rules = {}  # each subclass owns its table row; lookups fall back to the bases
        cls.facts = {}

    name: str | None = None

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)[0]

    def rule(self, rule):
        """The function registered for ``rule`` on this layer's class or its bases; :class:`RuleNotDefined`
        otherwise."""
        fn = find_rule(type(self), rule)
        if fn is None:
            known = ", ".join(sorted(rules_of(type(self)))) or "none"
            raise RuleNotDefined(
                f"layer {self.describe()} has no backward rule {rule!r}; its rules are: {known}"
            )
        return fn

    def has_rule(self, rule):
        return find_rule(type(self), rule) is not None

    def backward(self, g, cache, rule="gradient", **options):
        """Propagate ``g`` (shaped like this layer's output) back to its input with ``rule``.

        ``options`` the rule's function does not name raise a ``TypeError`` naming them and the ones it takes.
        """
        fn = self.rule(rule)
        return fn(self, g, cache, **checked_options(fn, options, f"rule {rule!r} of {self.describe()}"))

    def param_grads(self, g, cache):
        """Gradients of ``<g, layer(x)>`` with respect to the parameters (none by default)."""
        return {}

    def jvp(self, dx, cache):
        """Forward-mode derivative along ``dx`` at the point whose forward ``cache`` is given.

        For a piecewise-linear layer this is its linear part at the cached pattern (no bias,
        the cached ReLU mask / max-pool switches).  Registered with :func:`defjvp`; exact
        integrated gradients walks the path with it.
        """
        fn = find_fact(type(self), "jvp")
        if fn is None:
            have = sorted(t.__name__ for t in _registered_layer_types() if find_fact(t, "jvp") is not None)
            raise RuleNotDefined(
                f"layer {self.describe()} has no forward-mode derivative (jvp); layers with one: {', '.join(have)}"
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


def find_rule(layer_type, rule):
    """The function of ``rule`` for ``layer_type`` (its own or inherited), or None.

    Parameters
    ----------
    layer_type : type
        A layer class.
    rule : str
        A column of the rule table.

    Returns
    -------
    callable or None
    """
    return _mro_lookup(layer_type, "rules", rule)[1]


def rules_of(layer_type):
    """Every rule name ``layer_type`` has, own or inherited."""
    names = set()
    for klass in layer_type.__mro__:
        names.update(klass.__dict__.get("rules", {}) or {})
    return names


def find_fact(layer_type, name):
    """A per-layer fact (``"jvp"``, ``"region"``, ``"kinks"``, ...) of ``layer_type``, own or inherited, or None.

    Parameters
    ----------
    layer_type : type
    name : str

    Returns
    -------
    object or None
    """
    return _mro_lookup(layer_type, "facts", name)[1]


def defrule(layer_types, *rule_names):
    """Register the decorated function as the backward rule(s) ``rule_names`` of ``layer_types``.

    The function has the signature ``fn(layer, g, cache, *, option=default, ...) -> grad_input``.
    The first line of its docstring is the formula; the second names the paper.  Its keyword
    parameters are the options it takes (:func:`checked_options`).

    Parameters
    ----------
    layer_types : type or tuple/list of types
    *rule_names : str
        At least one.

    Returns
    -------
    callable
        The decorator; it returns the function unchanged.
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


def deffact(layer_types, name):
    """Register the decorated object as the fact ``name`` of ``layer_types`` (looked up along the MRO).

    Parameters
    ----------
    layer_types : type or tuple/list of types
    name : str

    Returns
    -------
    callable
        The decorator; it returns the object unchanged.
    """
    types = layer_types if isinstance(layer_types, (tuple, list)) else (layer_types,)

    def register(value):
        for t in types:
            t.facts[name] = value
        return value

    return register


def defjvp(layer_type):
    """Register ``fn(layer, dx, cache) -> dy`` as the forward-mode derivative of ``layer_type``."""
    return deffact(layer_type, "jvp")


#: options every rule walk may hand to a cell that names them (the layer's records of a forward pass)
CONTEXT_OPTIONS = ("inp", "ref", "split")


def option_names(fn):
    """``(names, takes_any)``: the keyword options ``fn(layer, g, cache, ...)`` names, and whether it has ``**kw``."""
    cached = getattr(fn, "_xattr_options", None)
    if cached is None:
        import inspect

        params = list(inspect.signature(fn).parameters.values())[3:]
        names = tuple(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
        anyk = any(p.kind is p.VAR_KEYWORD and p.name != "_" for p in params)
        cached = (names, anyk)
        try:
            fn._xattr_options = cached
        except AttributeError:  # builtins, bound methods
            pass
    return cached


def checked_options(fn, options, what):
    """The ``options`` ``fn`` takes; a ``TypeError`` naming any it does not take (context options excepted).

    Parameters
    ----------
    fn : callable
        A rule (or method) function; its keyword parameters are the options it takes.
    options : dict
    what : str
        What ``fn`` is, for the error message.

    Returns
    -------
    dict
        ``options`` restricted to the ones ``fn`` takes (all of them if it takes ``**kwargs``).
    """
    names, anyk = option_names(fn)
    if anyk:
        return options
    unknown = [k for k in options if k not in names and k not in CONTEXT_OPTIONS]
    if unknown:
        takes = ", ".join(n for n in names if n not in CONTEXT_OPTIONS) or "none"
        raise TypeError(f"{what} takes no option {', '.join(map(repr, unknown))}; its options: {takes}")
    return {k: v for k, v in options.items() if k in names}


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
    order).  ``fmt``: ``"markdown"`` or ``"dict"``.  Rows are the layer types that register rules of
    their own (a subclass that only inherits is not a new row).

    Parameters
    ----------
    rules : list of str, optional
    fmt : ``"markdown"`` or ``"dict"``

    Returns
    -------
    str or OrderedDict
        The Markdown table, or ``{layer type name: {rule: cell text or None}}``.
    """
    types = [t for t in _registered_layer_types() if t.rules and not t.__name__.startswith("_")]
    if rules is None:
        extra = []
        for t in types:
            extra += [r for r in t.rules if r not in CORE_RULES and r not in extra]
        rules = list(CORE_RULES) + extra
    table = OrderedDict()
    for t in types:
        row = OrderedDict()
        for k, r in enumerate(rules):
            fn = find_rule(t, r)
            earlier = [e for e in rules[:k] if find_rule(t, e) is fn]
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


def checked_param(value, name, shape, owner):
    """Validate a parameter assignment: a finite float array of exactly ``shape`` (or None for a bias).

    Parameters
    ----------
    value : array_like or None
    name : str
        The parameter's name (for messages).
    shape : tuple of int
    owner : str
        The layer type's name (for messages).

    Returns
    -------
    ndarray of ``shape`` (a copy) or None
    """
    if value is None:
        return None
    arr = as_float_array(value, f"{owner}.{name}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{owner}.{name} must have shape {tuple(shape)}, got {arr.shape}")
    return np.array(arr, dtype=np.float64 if arr.dtype == np.float64 else arr.dtype, copy=True)


def param_property(name, shape_of):
    """A plain assignable attribute whose setter checks the shape (``shape_of(layer) -> tuple``).

    Parameters
    ----------
    name : str
    shape_of : callable ``layer -> tuple of int``

    Returns
    -------
    property
    """
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

    Parameters
    ----------
    layer : Layer
    **params
        ``weight=`` and/or ``bias=`` (arrays of the layer's shapes; ``bias=None`` drops the bias).

    Returns
    -------
    Layer
    """
    import copy

    out = copy.copy(layer)
    for name, value in params.items():
        if name not in ("weight", "bias"):
            raise TypeError(f"replaced() takes weight= and bias=, got {name}=")
        setattr(out, name, value)
    return out


# a real cycle (graph.py imports this module): the container lives in graph.py and stays importable from here
from .graph import Graph, Sequential  # noqa: E402, F401
