"""Shared helpers of the importers."""
from __future__ import annotations

import inspect

import numpy as np

from .._errors import XattrError


class ConversionError(XattrError, ValueError):
    """A model (layer, operator, attribute or graph shape) that xattr cannot represent exactly."""


def f64(a):
    """A float64 copy of a weight array."""
    return np.array(a, dtype=np.float64, copy=True)


def require(module_name, extra):
    """Import an optional dependency or raise ``ImportError`` naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"this function needs the optional package {module_name!r}: pip install 'xattr-ref[{extra}]'"
        ) from exc


#: how a refusal names a layer the importers map to but this ``xattr.nn`` lacks
PENDING = "which this version of xattr.nn does not have"


def optional_layer(name, where):
    """``xattr.nn.<name>``, or a :class:`ConversionError` saying that ``where`` needs it and it is not there yet."""
    from .. import nn

    cls = getattr(nn, name, None)
    if cls is None:
        raise ConversionError(f"{where}: needs xattr.nn.{name}, {PENDING}")
    return cls


def layer_takes(cls, keyword):
    """True if ``cls(...)`` accepts the keyword ``keyword`` (a feature that may not have landed yet)."""
    return keyword in inspect.signature(cls.__init__).parameters


def pool_layer(cls, where, kernel_size, stride, padding, ceil_mode=False, **extra):
    """``MaxPool2D``/``AvgPool2D`` with ``ceil_mode`` and ``count_include_pad`` only where they are set.

    A setting this version's pool does not take is a :class:`ConversionError` naming it.
    """
    kwargs = {}
    if ceil_mode:
        kwargs["ceil_mode"] = True
    for key, value in extra.items():
        kwargs[key] = value
    for key in kwargs:
        if not layer_takes(cls, key):
            raise ConversionError(f"{where}: {key}={kwargs[key]!r} needs xattr.nn.{cls.__name__}({key}=...), {PENDING}")
    return cls(kernel_size, stride=stride, padding=padding, **kwargs)


def unique_name(name, taken, start=2):
    """``name``, or ``name_<start>``, ``name_<start + 1>``, ... : the first not in ``taken`` (which gains it)."""
    out, k = name, start
    while out in taken or out == "input":
        out = f"{name}_{k}"
        k += 1
    taken.add(out)
    return out


def dense_layer(w, b=None):
    """``xattr.nn.Dense`` holding ``w (out, in)`` and ``b (out,)`` (copied by the layer's setters).

    Built at size 1 and then given its geometry, so that no random initial weights of the full size are
    drawn (VGG's 25088 x 4096 classifier would cost seconds).
    """
    from ..nn import Dense

    layer = Dense(1, 1, bias=b is not None)
    layer.in_features, layer.out_features = int(w.shape[1]), int(w.shape[0])
    layer.weight = w
    if b is not None:
        layer.bias = b
    return layer


def conv_layer(w, b, stride=1, padding=0, dilation=1, groups=1):
    """``xattr.nn.Conv2D`` holding ``w (O, I/G, kH, kW)`` and ``b (O,)``, built without full-size random weights."""
    from ..nn import Conv2D

    groups = int(groups)
    layer = Conv2D(groups, groups, w.shape[2:], stride=stride, padding=padding, dilation=dilation,
                   bias=b is not None, groups=groups)
    layer.in_channels, layer.out_channels = int(w.shape[1]) * groups, int(w.shape[0])
    if layer.out_channels % groups:
        raise ConversionError(f"groups={groups} does not divide the {layer.out_channels} output channels")
    layer.weight = w
    if b is not None:
        layer.bias = b
    return layer


def ancestors(triples, output):
    """Names of ``output`` and every node it depends on, from ``(name, layer, inputs)`` triples (the graph input
    excluded): what an importer keeps before it builds the graph."""
    from ..nn import INPUT

    ins = {n: i for n, _, i in triples}
    out, stack = set(), [output]
    while stack:
        n = stack.pop()
        if n in out or n == INPUT:
            continue
        out.add(n)
        stack.extend(ins[n])
    return out
