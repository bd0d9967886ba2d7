"""Methods by name, for the command line, batch jobs, conformance runs and the docs: one :class:`MethodSpec` each.

A method is declared once, beside its function, by a :class:`MethodSpec`::

    register(MethodSpec(
        name="saliency", fn=saliency, family="gradient", paper="Simonyan et al. 2014",
        needs=("rule:gradient",), claims=Claims(...), cases=[{}], demo={},
    ))

and everything that lists methods reads it: :func:`get_method` and :func:`available_methods` (the CLI's
``--methods``, ``xattr batch``), the claims that the conformance runner checks
(:func:`xattr.testing.claims.claims_for`), the option sets of the conformance vectors
(:mod:`xattr.conformance.cases`), the options the demo and ``xattr explain`` pass, and the methods tables of
the README and the docs (``python -m xattr.docs``).  An unknown name gets a clear error listing the known ones.
"""
from __future__ import annotations

import inspect
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

#: what a method may need beyond ``(model, x, target)``, as declared in :attr:`MethodSpec.needs`.
NEEDS = {
    "layered": "a layered model (xattr.nn.Graph or Sequential): it reads activations or walks the rule table",
    "spatial node": "a node with a spatial output (N, C, h, w)",
    "gap head": "a GlobalAvgPool2D -> [Flatten] -> Dense head at the output",
    "piecewise-linear": "piecewise-linear layers only (for the exact solver)",
    "references": "reference images (K, C, H, W): a background distribution",
    "segments": "a segmentation of the image (a grid by default)",
    "rng": "a random generator or seed (stochastic: same seed, same bits)",
}


@dataclass(frozen=True)
class MethodSpec:
    """Everything about one registered method, declared beside its function.

    Attributes
    ----------
    name : str
        The registry name (``xattr.get_method(name)``, ``--methods name``).
    fn : callable
        ``fn(model, x, target, **options) -> (N, ...)`` attributions.
    family : str
        ``"gradient"``, ``"cam"``, ``"relevance"``, ``"path"``, ``"smoothing"``, ``"perturbation"``, ...
    paper : str
        The citation of the method's definition (the methods table's "paper" column).
    needs : tuple of str
        What it needs beyond ``(model, x, target)``: ``"layered"``, ``"rule:<column>"``, ``"spatial node"``,
        ``"gap head"``, ``"piecewise-linear"``, ``"references"``, ``"segments"``, ``"rng"`` (:data:`NEEDS`).
    claims : xattr.testing.Claims or callable, optional
        The axioms it claims and the violations it declares, with reasons (or a function returning them, so that
        importing the method does not import :mod:`xattr.testing`); None: its entry in
        :data:`xattr.testing.claims.CLAIMS`.
    cases : sequence of dicts or callable, optional
        Option sets of its conformance vectors (a callable receives the vector model's spec); None: the
        table in :mod:`xattr.conformance.cases`.
    demo : mapping
        Options for the demo and ``xattr explain`` (cheap settings); merged over the CLI's defaults.
    """

    name: str
    fn: Callable
    family: str
    paper: str = ""
    needs: Sequence[str] = ()
    claims: Any = None
    cases: Optional[Any] = None
    demo: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"a method name is a non-empty identifier, got {self.name!r}")
        if not callable(self.fn):
            raise TypeError(f"method {self.name!r}: fn must be callable, got {type(self.fn).__name__}")
        unknown = [n for n in self.needs if n not in NEEDS and not n.startswith("rule:")]
        if unknown:
            raise ValueError(f"method {self.name!r}: unknown needs {unknown}; known: {', '.join(NEEDS)}, rule:<name>")

    @property
    def summary(self):
        """The first line of the function's docstring."""
        doc = inspect.getdoc(self.fn) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    @property
    def options(self):
        """``{option: default}`` of the function beyond ``(model, x, target)`` (``inspect.Parameter.empty``:
        required)."""
        params = list(inspect.signature(self.fn).parameters.values())[3:]
        return OrderedDict((p.name, p.default) for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


_SPECS: "OrderedDict[str, MethodSpec]" = OrderedDict()


class _Legacy(Mapping):
    """``name -> (fn, family)``: the registry as older callers read it."""

    def __getitem__(self, name):
        spec = _SPECS[name]
        return spec.fn, spec.family

    def __iter__(self):
        return iter(_SPECS)

    def __len__(self):
        return len(_SPECS)

    def pop(self, name, *default):
        spec = _SPECS.pop(name, *default)
        return spec if spec is None or not isinstance(spec, MethodSpec) else (spec.fn, spec.family)


_METHODS = _Legacy()


def register(spec):
    """Register a :class:`MethodSpec`; the same function under the same name again is a no-op."""
    if not isinstance(spec, MethodSpec):
        raise TypeError(f"register takes a MethodSpec, got {type(spec).__name__}")
    old = _SPECS.get(spec.name)
    if old is not None and old.fn is not spec.fn:
        raise ValueError(f"method name {spec.name!r} is already registered")
    _SPECS[spec.name] = spec
    return spec.fn


def register_method(name, fn, family, **spec_fields):
    """Register ``fn(model, x, target, **options) -> ndarray`` under ``name`` (a :class:`MethodSpec` without claims).

    Parameters
    ----------
    name : str
    fn : callable ``(model, x, target, **options) -> ndarray``
    family : str
    **spec_fields
        Further fields of :class:`MethodSpec`.

    Returns
    -------
    callable
        ``fn`` (what :func:`register` returns).
    """
    return register(MethodSpec(name=name, fn=fn, family=family, **spec_fields))


def get_spec(name):
    """The :class:`MethodSpec` registered as ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return _SPECS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(_SPECS)}") from None


def get_method(name):
    """The function registered as ``name``; ``ValueError`` listing the known names otherwise."""
    return get_spec(name).fn


def available_methods(family=None):
    """Names of the registered methods (of one ``family`` if given), in registration order."""
    return [n for n, s in _SPECS.items() if family is None or s.family == family]


def specs(family=None):
    """The registered :class:`MethodSpec` objects (of one ``family`` if given), in registration order."""
    return [s for s in _SPECS.values() if family is None or s.family == family]
