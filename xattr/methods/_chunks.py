"""How many rows one forward–backward call of a chunked method takes (IG's path points, SmoothGrad's noisy images).

One place, one unit: every cost below is in **bytes** of memory traffic per row, and the limit is a stated
memory budget in bytes.  A chunk of ``r`` rows costs, per row (Williams, Waterman & Patterson 2009, the roofline
model, summed per layer rather than maxed, so never optimistic)::

    cost(r) = Σ_layers [ flops_l / B  +  weight_bytes_l / r ]  +  activation_bytes

* ``flops_l``: the layer's multiply-adds ×2 per row (``2 · weight.size · positions``: a conv's weight is applied
  at each of its ``Ho·Wo`` outputs, a dense layer's once), forward and backward;
  ``B = GEMM_FLOPS_PER_BYTE`` converts them to bytes: the single-thread GEMM rate over the memory bandwidth.
* ``weight_bytes_l / r``: each chunk reads every weight once forward and once backward, shared by its ``r``
  rows.  At ``r = 1`` a dense layer is a matrix–vector product that streams all its weights per row (AlexNet's
  and VGG's 9216×4096 and 25088×4096 heads: 151 and 411 MB in float32, 23-40 and 60-100 ms per row and pass
  here, as long as 15 rows of AlexNet's 2.6 GFLOP forward and backward through its convolutions).
* ``activation_bytes``: what one row's trace holds (every node's output and cache) plus the gradients in flight.

The chunk is the smallest ``r`` with ``cost(r) ≤ (1 + WEIGHT_OVERHEAD) · cost(∞)``, raised to fill
``TARGET_BYTES`` of activations (small models: fewer Python calls while the chunk still fits in cache; the
measured optimum at 32×32 and 64×64, benchmarks/README.md), then capped so that the chunk's largest layer
output stays within ``CACHE_BYTES`` (the element-wise passes over it — ReLU, pooling, im2col — run from
cache; past it they stream from memory, which outweighed the weight traffic on VGG-11: IG-50 at 224 float32,
1 row per call 26.0 s, 2 rows 26.7, 4 rows 28.3, 8 rows 29.9; AlexNet, whose largest output after its
first layer is 0.8 MB: 10 rows 2.39 s, 17 rows 2.11, 25 rows 2.04, 50 rows 2.26), that
``r · activation_bytes ≤ MEMORY_BUDGET``
and ``r ≤ MAX_ROWS``; at least one row, at most the rows there are; then evened out over the calls it takes
(50 rows at most 43 per call: two calls of 25, not 43 and 7).  The chunk size only
decides how the same sums are grouped: results agree with the unchunked computation to round-off (float64,
1e-13; tests/test_path.py).

The same unit decides which ``Conv2D -> BatchNorm2D`` pairs the gradient walks fold for a call (:func:`planned`,
:func:`xattr.nn.gradient_plan`): a pair is folded when the batch-norm passes it saves, ``rows × positions`` values
per output channel, reach ``FOLD_COST_RATIO`` times the weights it copies, the conv's fan-in.

The model's profile (activation bytes, flops, weights and output positions per layer) comes from a one-row
trace, cached per model object and input shape (a layer changed in place afterwards only makes the chunk choice
stale, never the result).  Models without layers (a plain function, the bare protocol) keep the older rule: chunks of
``VALUES_PER_CHUNK`` input values.
"""
from __future__ import annotations

import math
import weakref
from collections import namedtuple

import numpy as np

#: bytes of activations one chunk may hold (forward values, caches, gradients): the memory budget.
MEMORY_BUDGET = 2**30
#: at least this many bytes of activations per chunk (small models: fewer calls, still cache-sized).
TARGET_BYTES = 16 * 2**20
#: weight re-reads may add at most this fraction to the per-row cost.
WEIGHT_OVERHEAD = 0.1
#: single-thread GEMM flops per byte read from memory, by itemsize: the machine balance (measured on the
#: benchmark machine, benchmarks/README.md: float32 sgemm 100-135 GFLOP/s, float64 ~50, one core reads
#: ~4-6 GB/s; AlexNet's 9216×4096 head at 15 rows streams its weights at ~5 GB/s).
GEMM_FLOPS_PER_BYTE = {4: 24.0, 8: 12.0}
#: bytes a chunk's largest layer output may take (the caches of one core; the knee measured on VGG-11 above).
CACHE_BYTES = 24 * 2**20
#: most rows in one call.
MAX_ROWS = 128
#: models without layers: input values per chunk (the rule before the cost model: 32 rows of 3x32x32).
VALUES_PER_CHUNK = 32 * 3 * 32 * 32

Profile = namedtuple("Profile", "activation_bytes largest_bytes flops weight_bytes positions")
Profile.__doc__ = """Per row of one input shape: ``activation_bytes`` (int), ``largest_bytes`` (the largest layer
output),
per weighted layer ``flops`` and ``weight_bytes`` (forward + backward: flops ×2, each weight read twice), and
``positions`` ``{node name: output positions}`` of the weighted layers (a conv's ``Ho·Wo``, a dense layer's 1)."""

_profiles = weakref.WeakKeyDictionary()


def _array_bytes(obj, seen):
    """Bytes of the distinct ndarrays in ``obj`` (an array, a tuple/list, a Cache namespace), by memory block."""
    if isinstance(obj, np.ndarray):
        base = obj if obj.base is None else obj.base
        if isinstance(base, np.ndarray) and id(base) not in seen:
            seen.add(id(base))
            return base.nbytes
        return 0
    if isinstance(obj, (tuple, list)):
        return sum(_array_bytes(o, seen) for o in obj)
    if hasattr(obj, "__dict__"):
        return sum(_array_bytes(o, seen) for o in vars(obj).values())
    return 0


def profile(model, row, start=None):
    """The :class:`Profile` of ``model`` on one row ``(1, ...)`` (traced from node ``start`` if given), or None
    for a model without layers.  Cached per model and shape."""
    if not (hasattr(model, "trace") and hasattr(model, "order")):
        return None
    key = (tuple(row.shape), row.dtype.str, start)
    try:
        cache = _profiles.setdefault(model, {})
    except TypeError:  # not weak-referenceable
        cache = {}
    if key in cache:
        return cache[key]
    tape = model.trace(row, start=start) if start is not None else model.trace(row)
    records = getattr(tape, "records", None)
    if records is None:
        return None
    seen, act, largest = set(), _array_bytes(row, set()), 0
    flops, weights, positions = [], [], {}
    for name, rec in records.items():
        y = np.asarray(rec.y)
        act += _array_bytes(rec.y, seen) + _array_bytes(rec.cache, seen)
        largest = max(largest, y.nbytes)
        w = getattr(model[name], "weight", None)
        if w is not None and w.ndim >= 2:  # conv / dense: the weight applied at every output position
            positions[name] = y.size // max(1, y.shape[1])
            flops.append(2 * 2 * w.size * positions[name])  # forward and backward
            weights.append(2 * w.size * row.itemsize)
    out = Profile(act + 2 * largest, largest, flops, weights, positions)
    cache[key] = out
    return out


def chunk_rows(model, row, total, start=None, budget=None):
    """Rows per forward–backward call for ``total`` rows shaped like ``row`` ``(1, ...)`` (module docstring).

    ``budget``: bytes (default :data:`MEMORY_BUDGET`, read at call time).
    """
    budget = MEMORY_BUDGET if budget is None else budget
    total = max(1, int(total))
    prof = None if model is None else profile(model, row, start)
    if prof is None:
        return values_rule(row, total)
    b = GEMM_FLOPS_PER_BYTE.get(row.itemsize, 24.0)
    compute = sum(prof.flops) / b + prof.activation_bytes  # cost(∞), bytes per row
    w = sum(prof.weight_bytes)
    r_weights = int(np.ceil(w / (WEIGHT_OVERHEAD * compute))) if w else 1
    r_target = int(TARGET_BYTES // max(1, prof.activation_bytes))
    r_memory = int(budget // max(1, prof.activation_bytes))
    r_cache = int(CACHE_BYTES // max(1, prof.largest_bytes))
    r = int(max(1, min(max(r_weights, r_target, 1), r_cache, r_memory, MAX_ROWS, total)))
    return -(-total // -(-total // r))  # the same number of calls, evened out (no small last chunk)


def values_rule(row, total):
    """Chunks of :data:`VALUES_PER_CHUNK` input values (at least one row, at most ``MAX_ROWS`` and ``total``): for
    models without layers and for methods whose cost per row is not one gradient."""
    values = max(1, int(np.prod(row.shape[1:])))
    return int(min(MAX_ROWS, max(1, int(total)), max(1, VALUES_PER_CHUNK // values)))


#: a conv -> batch-norm pair is folded for a call (:func:`planned`) when the rows times the conv's output
#: positions reach this many times its fan-in: folding costs a pass over the ``O × fan-in`` weights (a fresh
#: array each call), and saves the batch-norm's passes over ``O × positions`` values per row, forward and
#: backward; a folded weight cost about two such values (MobileNetV2 and ResNet-18, float32: the plan 9 and
#: 55 ms, the batch-norms ~2.3 ns per value and row).
FOLD_COST_RATIO = 2.0


def planned(model, row, rows):
    """:func:`xattr.nn.gradient_plan` of ``model`` for ``rows`` rows shaped like ``row`` ``(1, ...)``: the pairs
    whose folding pays for itself in this call (:data:`FOLD_COST_RATIO`; the profile is cached per model).

    One gradient of ResNet-18 at 224×224 folds its first two stages only; IG-50 folds every pair.
    """
    from ..nn import gradient_plan

    if getattr(model, "is_gradient_plan", False):
        return model

    positions = []  # the profile's, looked up once and only if the model has a pair to decide

    def worth(name, conv):
        if not positions:
            prof = profile(model, row)
            positions.append({} if prof is None else prof.positions)
        return rows * positions[0].get(name, math.inf) >= FOLD_COST_RATIO * conv.weight[0].size

    return gradient_plan(model, fold=worth)
