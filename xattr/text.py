"""Text: token ids through an embedding, attributions per token computed in embedding space.

Token ids are integers, so no gradient reaches them: the attribution methods run on the *embedded* input, and a
token's score is the sum of its embedding coordinates' scores.  Sundararajan, Taly & Yan (2017, §3 and §6.3) do this
for text models with integrated gradients from the **zero embedding vector** as baseline: ``IG`` then satisfies
completeness, ``Σ_t A_t = F(e) − F(0)``.

Layout: an embedded batch is ``(N, E, 1, T)`` (embedding coordinates as channels, tokens along the width), so a text
CNN (Kim 2014: ``Conv2D`` with ``(1, k)`` kernels over the tokens, pooling, dense) is an ordinary
:class:`xattr.nn.Sequential`; a model written as an autograd function (:func:`xattr.from_function`) takes the same
array.  One-hot DNA (:mod:`xattr.genomics`) is the same layout with the identity as embedding.
"""
from __future__ import annotations

import numpy as np

from ._conventions import as_float_array, as_rng, count

__all__ = ["Embedding", "token_attributions"]


class Embedding:
    """A lookup table ``(V, E)``: token ids ``(N, T)`` -> vectors ``(N, E, 1, T)``.

    Not a layer of the stack: ids are not differentiable, so methods run on its output (:func:`token_attributions`).

    Parameters
    ----------
    weight : ndarray ``(V, E)``, optional
        The table (row ``v`` is token ``v``'s vector); copied.
    vocab_size, dim : int, optional
        ``V`` and ``E`` of a random table ``N(0, 1)`` when ``weight`` is not given.
    rng : numpy.random.Generator or int, optional
        For the random table (default seed 0).
    """

    def __init__(self, weight=None, vocab_size=None, dim=None, rng=None):
        if weight is None:
            if vocab_size is None or dim is None:
                raise TypeError("Embedding needs weight (V, E) or both vocab_size and dim")
            v, e = count(vocab_size, "vocab_size"), count(dim, "dim")
            weight = as_rng(0 if rng is None else rng).normal(size=(v, e))
        w = as_float_array(weight, "Embedding.weight", ndim=2)
        if w.shape[0] < 1 or w.shape[1] < 1:
            raise ValueError(f"Embedding.weight must have shape (V, E) with V, E >= 1, got {w.shape}")
        self.weight = np.array(w, copy=True)

    @property
    def vocab_size(self):
        return self.weight.shape[0]

    @property
    def dim(self):
        return self.weight.shape[1]

    def __repr__(self):
        return f"Embedding(vocab_size={self.vocab_size}, dim={self.dim})"

    def check_ids(self, ids):
        """``ids`` as an int array ``(N, T)``; ``TypeError`` for a non-integer dtype, ``ValueError`` for another rank,
        an empty batch or an id outside ``0 .. V − 1`` (naming the first such id and where it is)."""
        a = np.asarray(ids)
        if a.dtype.kind not in "iu":
            raise TypeError(f"token ids must be integers (an int array (N, T)), got dtype {a.dtype}")
        if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
            raise ValueError(f"token ids must have shape (N, T) with N, T >= 1, got shape {a.shape}")
        bad = np.argwhere((a < 0) | (a >= self.vocab_size))
        if len(bad):
            n, t = bad[0]
            raise ValueError(f"token id {a[n, t]} at (sequence {n}, position {t}) is out of the vocabulary of "
                             f"{self.vocab_size} tokens (ids 0..{self.vocab_size - 1}); {len(bad)} such id(s) in all")
        return a.astype(np.intp, copy=False)

    def __call__(self, ids):
        """Embedded batch ``(N, E, 1, T)``, float64 (the table's dtype)."""
        a = self.check_ids(ids)
        return np.ascontiguousarray(self.weight[a].transpose(0, 2, 1)[:, :, None, :])


def token_attributions(model, embedding, ids, target, method="integrated_gradients", return_delta=False, **options):
    """One score per token: an attribution method run on the embedded input, summed over the embedding coordinates.

    ``A_t = Σ_e A[e, t]`` where ``A`` is the method's attribution of ``model`` at ``embedding(ids)``.  With
    ``"integrated_gradients"`` (the default) and its default baseline 0, the baseline is the zero embedding vector, as
    Sundararajan et al. (2017, §3) take for text, and ``Σ_t A_t = F(e) − F(0)``; ``"gradient_x_input"`` gives
    ``Σ_e e_{e,t} ∂F/∂e_{e,t}``.  Any method of :func:`xattr.available_methods` that returns the input's shape works.

    Parameters
    ----------
    model : model protocol object
        Takes ``(N, E, 1, T)`` (a layered model or :func:`xattr.from_function`).
    embedding : Embedding
    ids : int array ``(N, T)``
    target : int, int array ``(N,)``, callable or ``(classes, transform)``
    method : str
        A registered method name.
    return_delta : bool
        Also return the method's completeness gap (methods with ``return_delta``).
    **options
        Passed to the method (``baseline=``, ``steps=``, ``quadrature=``, ...).

    Returns
    -------
    ndarray ``(N, T)`` (and the gap ``(N,)`` with ``return_delta``)
    """
    from .methods.registry import get_method

    if not isinstance(embedding, Embedding):
        raise TypeError(f"embedding must be an xattr.text.Embedding, got {type(embedding).__name__}")
    fn = get_method(method) if isinstance(method, str) else None
    if fn is None:
        raise TypeError(f"method must be a registered method name, got {method!r}")
    e = embedding(ids)
    out = fn(model, e, target, return_delta=True, **options) if return_delta else fn(model, e, target, **options)
    attr, delta = out if return_delta else (out, None)
    attr = np.asarray(attr)
    if attr.shape != e.shape:
        raise ValueError(f"method {method!r} returned shape {attr.shape}; token scores need the input's {e.shape}")
    per_token = attr.sum(axis=(1, 2))
    return (per_token, delta) if return_delta else per_token
