"""How the command line calls a method: the options it fills in (from each method's spec, by parameter name,
baselines as pictures), the call itself with its completeness gap, the maps as shown, progress and BLAS threads."""
from __future__ import annotations

import contextlib
import inspect
import numbers
import sys
import time

import numpy as np

from ..data import make_shapes
from ..methods.gradient import reduce_channels
from ..methods.registry import available_methods, get_method, get_spec
from ..models._inputs import picture, to_model_input

#: per-method keyword arguments used by the demo and ``xattr explain`` beside each method's spec ``demo`` (cheap
#: settings that keep the demo short).  Only the options a method's signature accepts are passed.  Numbers given for the
#: options in
#: :data:`PICTURE_OPTIONS` are gray levels of a picture (0 black, 1 white), not model-input values.
METHOD_OPTIONS = {}  # each method's own are its MethodSpec's ``demo`` (declared beside the function)


#: options filled by parameter name: always when the method requires them, and also when they default to
#: ``None`` for the names in :data:`FILL_WHEN_NONE` (a stochastic method's ``rng``; DeepSHAP's background).
#: Values are callables ``ctx -> value`` (ctx: :class:`_Context`).
BY_PARAMETER = {
    "rng": lambda ctx: ctx.seed,
    "baseline": lambda ctx: 0.0,
    "reference": lambda ctx: 0.0,
    "baselines": lambda ctx: ctx.references(),
    "references": lambda ctx: ctx.references(),
    "segments": lambda ctx: ctx.segments(),
    "low": lambda ctx: ctx.picture(0.0),  # LRP z^B box: the declared input range, in model space
    "high": lambda ctx: ctx.picture(1.0),
}


FILL_WHEN_NONE = {"rng", "baselines", "references", "low", "high"}


#: options that are pictures: a number (or one per channel) is a gray level in [0, 1] of the image,
#: 0 black, built in the model's declared input range and normalised like the image
#: (:func:`xattr.models._inputs.picture`); a method whose parameter defaults to a number gets the black
#: image.  Strings ("blur", "mean") and arrays are passed as they are.
PICTURE_OPTIONS = ("baseline", "reference")


#: how each family of maps is shown: ``(channel reduction, colormap)``.  Sensitivity maps (gradients and
#: their guided variants) show Simonyan et al.'s ``max |.|`` over channels; attributions that sum to a
#: score difference (gradient×input, IG, DeepLIFT, LRP, SHAP, ...) keep their sign.
SENSITIVITY = {
    "gradient",
    "deconvnet",
    "guided_backprop",
    "guided_grad_cam",
    "smoothgrad",
    "smoothgrad_squared",
    "vargrad",
}


def _display(name, a):
    if name in SENSITIVITY:
        return "max_abs", "magnitude"
    if a.shape[1] == 1 and np.all(a >= 0):
        return "sum", "magnitude"
    return "sum", "signed"


_VIEWS = {  # view -> viz.Column settings
    "sensitivity": dict(method="heat_map", sign="absolute", reduce="max_abs"),
    "cam": dict(method="blended_heat_map", sign="positive", reduce="sum"),
    "signed": dict(method="heat_map", sign="all", reduce="sum"),
}


def _view(name, a):
    """The viz view of a method's map in the shapes sheets (as :func:`_display`)."""
    how, cmap = _display(name, a)
    if cmap == "signed":
        return "signed"
    return "sensitivity" if how == "max_abs" else "cam"


def _softmax(scores):
    p = np.exp(scores - scores.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


class _Context:
    """What option builders may need: the seed, the model's input size, reference images, pictures."""
    def __init__(self, seed, size, info=None, n_references=8, shape=None, references=None):
        self.seed, self.size, self.info, self.n_references = seed, size, info, n_references
        self.shape = tuple(shape) if shape is not None else None  # (C, H, W) of the model input
        self._references = references

    def references(self):
        """The reference images given (``explain --references``), else ``K`` from the shapes generator (own
        seed; the demo's shapes model was trained on them), scaled and normalised as the model declares."""
        if self._references is not None:
            return self._references

        imgs = make_shapes(self.n_references, rng=self.seed + 1000, size=self.size).images
        return to_model_input(imgs, self.info) if self.info is not None else imgs

    def picture(self, level):
        """The uniform picture of gray ``level`` (0 black) ``(C, H, W)`` in model space; ``level`` itself
        when the model declares no input (a factory model: its inputs are what it takes)."""
        if self.info is None or self.shape is None:
            return level

        return picture(self.info, self.shape, level)

    def segments(self):
        """A grid segmentation ``(H, W)`` of 4×4 = 16 cells (small enough for exact Shapley), at the input's size."""
        h, w = self.shape[-2:] if self.shape is not None else (self.size, self.size)
        rows = np.arange(h) // max(1, -(-h // 4))
        cols = np.arange(w) // max(1, -(-w // 4))
        return (rows[:, None] * 4 + cols[None, :]).astype(np.int64)


def methods_table():
    """``{name: function}`` of every registered method, in registration order."""
    return {name: get_method(name) for name in available_methods()}


def _spec_demo(name):
    try:
        return dict(get_spec(name).demo)
    except ValueError:  # not a registered name (a function given directly)
        return {}


def method_kwargs(name, fn, ctx, extra=None):
    """Keyword arguments for ``fn(model, x, target, **kwargs)``.

    From the method's :attr:`~xattr.methods.registry.MethodSpec.demo` options (over :data:`METHOD_OPTIONS`; only
    those the signature accepts), then :data:`BY_PARAMETER` for
    parameters that are required or default to ``None``, then ``extra`` (e.g. ``layer``).  Raises
    ``ValueError`` naming a required parameter nobody can fill.

    Parameters
    ----------
    name : str
    fn : callable
    ctx : dict
        What the command knows (model, references, ...), for :data:`BY_PARAMETER`.
    extra : dict, optional

    Returns
    -------
    dict
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict(extra or {})
    names = list(params)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = {
        k: v for k, v in {**METHOD_OPTIONS.get(name, {}), **_spec_demo(name)}.items() if accepts_any or k in params
    }
    for k, v in (extra or {}).items():
        if not (accepts_any or k in params):
            raise ValueError(f"method {name!r} takes no option {k!r}")
        kwargs[k] = v
    for pname in names[3:]:
        p = params[pname]
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or pname in kwargs:
            continue
        if pname in BY_PARAMETER and (p.default is p.empty or (p.default is None and pname in FILL_WHEN_NONE)):
            kwargs[pname] = BY_PARAMETER[pname](ctx)
        elif pname in PICTURE_OPTIONS and _is_level(p.default):
            kwargs[pname] = 0.0  # the method's numeric default is a value in model space: use the black image
        elif p.default is p.empty:
            raise ValueError(f"method {name!r} needs the argument {pname!r}, which the command cannot choose")
    for pname in PICTURE_OPTIONS:
        if pname in kwargs and _is_level(kwargs[pname]):
            kwargs[pname] = ctx.picture(kwargs[pname])
    return kwargs


def _is_level(v):
    """A gray level (a number, or a list of numbers per channel), as opposed to a string or an array."""
    if isinstance(v, bool):
        return False
    if isinstance(v, numbers.Real):
        return True
    return (
        isinstance(v, (list, tuple))
        and len(v) > 0
        and all(isinstance(a, numbers.Real) and not isinstance(a, bool) for a in v)
    )


def run_method(name, fn, model, x, target, ctx, extra=None):
    """Run one method; returns ``(attribution, seconds, completeness gap or None)``.

    A method that accepts ``return_delta`` is asked for it: its completeness gap
    ``Σ attribution − (f(x) − f(reference))`` per image, signed (IG, DeepLIFT, ...;
    :func:`xattr.inputs.completeness_gap`).

    Parameters
    ----------
    name : str
    fn : callable ``(model, x, target, **kwargs)``
    model : model protocol object
    x : ndarray ``(N, C, H, W)``
    target : int or int array ``(N,)``
    ctx : dict
    extra : dict, optional

    Returns
    -------
    attribution : ndarray ``(N, C, H, W)`` (or ``(N, 1, H, W)``)
    seconds : float
    gap : ndarray ``(N,)`` or None
    """
    kwargs = method_kwargs(name, fn, ctx, extra)
    try:
        takes_delta = "return_delta" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_delta = False
    t0 = time.perf_counter()
    out = fn(model, x, target, **({**kwargs, "return_delta": True} if takes_delta else kwargs))
    dt = time.perf_counter() - t0
    gap = None
    if takes_delta and isinstance(out, tuple):
        out, delta = out[0], out[-1]  # the gap is the last element of the returned tuple
        gap = np.asarray(delta, dtype=np.float64).reshape(len(x))
    if isinstance(out, tuple):  # methods returning (map, extras): keep the map
        out = out[0]
    a = np.asarray(out, dtype=np.float64)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or a.shape[0] != len(x) or a.shape[2:] != x.shape[2:]:
        raise ValueError(f"returned shape {a.shape}, not a per-pixel map of the input {x.shape}")
    return a, dt, gap


def to_maps(name, a):
    """``(N, C, H, W)`` attribution -> ``(N, H, W)`` map as shown, and its colormap.

    Parameters
    ----------
    name : str
        The method's name (it chooses the reduction and colormap).
    a : ndarray ``(N, C, H, W)``

    Returns
    -------
    maps : ndarray ``(N, H, W)``
    cmap : str
    """
    how, cmap = _display(name, a)
    m = a[:, 0] if a.shape[1] == 1 else reduce_channels(a, how)
    return m, cmap


def _progress(i, total, label, quiet, unit=""):
    """A one-line progress bar on a terminal; one line per step otherwise (logs, CI)."""
    if quiet:
        return
    width = 20
    done = int(width * i / max(total, 1))
    line = f"[{'#' * done}{'.' * (width - done)}] {i}/{total}{unit} {label}"
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{line:<72}" + ("\n" if i == total else ""))
    else:
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


#: BLAS threads of ``demo`` and ``explain`` (``--threads``).  xattr's GEMMs are small (one layer of a few images);
#: OpenBLAS's second thread mostly waits for them, and on shared cores it spins: measured on this project's 2-core
#: machine under load, SmoothGrad (8 samples, 3 photos at 128²) took 18.4 s of CPU and 38 s with 2 threads, 3.7 s
#: and 7.4 s with 1.
BLAS_THREADS = 1


def blas_threads(n):
    """A context limiting BLAS to ``n`` threads (threadpoolctl, when installed; else nothing changes)."""
    if n is None or n < 1:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=int(n), user_api="blas")


class _Passes:
    """A progress bar for one method call, counting the images the model is run on.

    Methods without their own bar (integrated gradients, SmoothGrad, DeepLIFT, ...) run the model through
    ``trace`` (forward + backward) and ``forward``; for the duration of the call both are wrapped on the model
    *instance* (the class is untouched, the wrappers are removed afterwards) to count ``len(x)`` per call
    against ``total``, the passes the method's options imply (:func:`expected_passes`).  On a terminal the bar
    is redrawn in place; in a log it prints at most every 10 %.
    """
    def __init__(self, model, label, total, quiet):
        self.model, self.label, self.total, self.quiet = model, label, max(1, int(total)), quiet
        self.seen, self.shown, self.patched = 0, -1, []

    def _wrap(self, fn):
        def counted(x, *args, **kwargs):
            out = fn(x, *args, **kwargs)
            self.seen += len(x)
            self._draw(min(self.seen, self.total - 1))
            return out
        return counted

    def _draw(self, k):
        step = k if sys.stderr.isatty() else (10 * k // self.total)
        if step != self.shown:
            self.shown = step
            _progress(k, self.total, self.label, self.quiet, " passes")

    def __enter__(self):
        if not self.quiet:
            for attr in ("trace", "forward"):
                fn = getattr(self.model, attr, None)
                if callable(fn) and attr not in vars(self.model):
                    setattr(self.model, attr, self._wrap(fn))
                    self.patched.append(attr)
            self._draw(0)
        return self

    def __exit__(self, *exc):
        for attr in self.patched:
            delattr(self.model, attr)
        if not self.quiet and exc[0] is None:
            _progress(self.total, self.total, self.label, self.quiet, " passes")
        elif not self.quiet and sys.stderr.isatty():
            sys.stderr.write("\n")
        return False


def expected_passes(name, kwargs, x):
    """Images the model is run on by method ``name`` with ``kwargs`` on ``x`` ``(N, C, H, W)``: the bar's length.

    Parameters
    ----------
    name : str
    kwargs : dict
    x : ndarray ``(N, C, H, W)``

    Returns
    -------
    int
    """
    n, h, w = len(x), x.shape[-2], x.shape[-1]
    if name in ("smoothgrad", "smoothgrad_squared", "vargrad"):
        return n * int(kwargs.get("n", 50))
    if name in ("integrated_gradients", "expected_gradients"):
        return n * (int(kwargs.get("steps", kwargs.get("n_samples", 50))) + 1)
    if name == "occlusion":
        win, st = kwargs.get("window", 8), kwargs.get("stride", 4)
        wh, ww = (win, win) if np.isscalar(win) else win
        sh, sw = (st, st) if np.isscalar(st) else st
        return n * ((-(-(h - wh) // sh) + 1) * (-(-(w - ww) // sw) + 1) + 1)
    if name in ("deeplift", "guided_grad_cam"):
        return 2 * n
    if name == "deepshap":
        refs = kwargs.get("references")
        return n * (1 + (len(refs) if refs is not None and np.ndim(refs) == 4 else 1))
    return n
