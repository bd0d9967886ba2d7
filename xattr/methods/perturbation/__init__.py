"""Perturbation methods: occlusion (full or incremental), LIME, KernelSHAP and exact Shapley values.

They need only ``model.forward(x) -> scores (N, K)``, so they work on any forward-only model.
Every map is ``(N, 1, H, W)`` in ``x``'s dtype (the occluding window and the segments cover all
channels at once).

===========  ============================================  ==============================
method       what is computed                              paper
===========  ============================================  ==============================
occlusion    drop of the target when a window is hidden    Zeiler & Fergus 2014
incremental  only the patch's projective field recomputed  Nakandala et al. 2019 (SIGMOD)
lime         weighted ridge on random binary masks         Ribeiro et al. 2016
kernel_shap  Shapley-kernel weighted least squares         Lundberg & Lee 2017
shapley      exact, all 2^M coalitions                     Shapley 1953
===========  ============================================  ==============================

Coalition values for LIME, KernelSHAP and exact Shapley come either from batched model evaluations
or, for an :class:`xattr.nn.Sequential` whose local layers end in global average pooling, from
receptive-field tables (``locality="auto"``): each position of the last local activation depends
only on the segments its receptive field touches, so its contribution to the pooled vector is
tabulated over the subsets of those few segments; the values are the same up to summation order.
The same region maps (projective fields) drive incremental occlusion.

Numerical choices, named (see each function for details):

* occlusion overlaps are **averaged** (``aggregate="mean"``, as Captum); PAIR saliency **sums**
  (``aggregate="sum"``); windows at the bottom/right border are clipped to the image, as Captum.
* LIME: the paper's kernel ``exp(-d^2 / sigma^2)`` with cosine distance ``d`` to the all-present
  mask and ``sigma = 0.25`` (the ``lime`` package computes ``sqrt(exp(-d^2 / sigma^2))``, i.e. the
  paper's kernel with ``sigma * sqrt(2)``), masks uniform on ``{0, 1}^M`` with the first sample
  all-present, ridge ``alpha = 1`` with an unpenalised intercept (both as the ``lime`` package).
* KernelSHAP: ``n_samples="auto"`` is ``2 M + 2048`` (the ``shap`` package's default); when that
  reaches ``2^M - 2`` every coalition is enumerated with its exact kernel weight and the result is
  the exact Shapley values.
* Hidden segments (LIME, SHAP) and occluded windows take the ``baseline``: a number (0 by
  default), an array, ``"mean"`` (segment means; LIME/SHAP only) or ``"blur"``
  (:mod:`xattr.methods.segments`).

One file per method, each with its :class:`~xattr.methods.registry.MethodSpec` beside the function:
:mod:`.occlusion`, :mod:`.lime`, :mod:`.kernel_shap`, :mod:`.shapley`; the coalition games they share (segments,
batched coalition values, receptive-field tables) are in ``_coalitions.py``, the model plumbing in ``_common.py``.
"""
from ...inputs import DEFAULT_BATCH_SIZE
from ._coalitions import DEFAULT_GRID, MAX_EXACT_SHAPLEY_SEGMENTS

# importing a method's file registers it: this order is the registry's (xattr.available_methods)
# isort: off
from .occlusion import occluded_scores, occlusion
from .lime import lime
from .kernel_shap import kernel_shap
from .shapley import DEFAULT_GRID_EXACT, shapley, shapley_from_values
# isort: on

__all__ = ["occlusion", "occluded_scores", "lime", "kernel_shap", "shapley", "shapley_from_values",
           "DEFAULT_GRID", "DEFAULT_GRID_EXACT", "MAX_EXACT_SHAPLEY_SEGMENTS", "DEFAULT_BATCH_SIZE"]
