"""xattr.text: per-token attributions in embedding space with the zero-embedding baseline.

Oracles: closed forms of bag-of-words models, ``F(e) = Σ_t g(v·e_t + c)``: integrated gradients from the zero
embedding gives token ``t`` exactly ``g(v·e_t + c) − g(c)`` (the path integral of a separable function), gradient×input
gives ``g'(v·e_t + c) v·e_t``; completeness ``Σ_t A_t = F(e) − F(0)`` on a random text CNN.
"""
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xattr
from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential, Tanh
from xattr.text import Embedding, token_attributions

V, E, T = 12, 5, 7


def _bow_tanh(v, c, length):
    """``F(e) = Σ_t tanh(v·e_t + c)`` as a layered model: 1×1 conv, tanh, mean over tokens, × T."""
    conv = Conv2D(len(v), 1, 1)
    conv.weight, conv.bias = np.asarray(v, dtype=float).reshape(1, -1, 1, 1), np.array([c])
    dense = Dense(1, 1)
    dense.weight, dense.bias = np.array([[float(length)]]), np.zeros(1)
    return Sequential(conv, Tanh(), GlobalAvgPool2D(), dense)


@given(st.lists(st.integers(0, V - 1), min_size=T, max_size=T), st.integers(0, 2**16))
def test_bag_of_words_ig_from_the_zero_embedding_is_the_closed_form(tokens, seed):
    rng = np.random.default_rng(seed)
    emb = Embedding(rng.normal(size=(V, E)))
    v, c = rng.normal(size=E), float(rng.normal())
    ids = np.array([tokens])
    model = _bow_tanh(v, c, T)
    s = emb.weight[ids[0]] @ v + c  # (T,) each token's pre-activation
    ig, delta = token_attributions(model, emb, ids, 0, steps=64, return_delta=True)
    np.testing.assert_allclose(ig[0], np.tanh(s) - np.tanh(c), rtol=0, atol=1e-9)  # Gauss-Legendre, 64 nodes
    assert abs(delta[0]) < 1e-9
    gxi = token_attributions(model, emb, ids, 0, method="gradient_x_input")
    np.testing.assert_allclose(gxi[0], (1 - np.tanh(s) ** 2) * (s - c), rtol=1e-12, atol=1e-14)
    same = ids[0][:, None] == ids[0][None, :]  # symmetry: one token, one score wherever it stands
    assert np.allclose(ig[0][:, None] * same, ig[0][None, :] * same, atol=1e-12)


def test_linear_bag_of_words_through_from_function_scores_each_token_v_dot_e():
    rng = np.random.default_rng(3)
    emb = Embedding(vocab_size=V, dim=E, rng=4)
    v = rng.normal(size=E)

    def bow(e):  # e (N, E, 1, T): F = Σ_t v·e_t
        return anp.einsum("e,nest->n", v, e)[:, None]

    model = xattr.from_function(bow, "bag_of_words")
    ids = rng.integers(0, V, size=(3, T))
    want = emb.weight[ids] @ v  # (N, T)
    for method in ("integrated_gradients", "gradient_x_input"):
        np.testing.assert_allclose(token_attributions(model, emb, ids, 0, method=method), want, rtol=1e-12, atol=1e-14)


def test_text_cnn_completeness_against_the_zero_embedding():
    """Kim 2014-style CNN: 1×3 convolution over tokens, ReLU, max-pool over time, dense; exact IG (piecewise linear)."""
    emb = Embedding(vocab_size=30, dim=6, rng=1)
    model = Sequential(Conv2D(6, 8, (1, 3), padding=(0, 1), rng=2), ReLU(), MaxPool2D((1, 10)), GlobalAvgPool2D(),
                       Dense(8, 3, rng=3))
    ids = np.random.default_rng(5).integers(0, 30, size=(4, 10))
    a, delta = token_attributions(model, emb, ids, 2, quadrature="exact", return_delta=True)
    assert a.shape == (4, 10)
    e = emb(ids)
    want = model.forward(e)[:, 2] - model.forward(np.zeros_like(e))[:, 2]
    np.testing.assert_allclose(a.sum(axis=1), want, rtol=0, atol=1e-10)
    assert np.abs(delta).max() < 1e-10


def test_embedding_layout_and_errors():
    emb = Embedding(np.arange(12.0).reshape(4, 3))
    e = emb(np.array([[1, 3]]))
    assert e.shape == (1, 3, 1, 2) and np.array_equal(e[0, :, 0, 1], [9.0, 10.0, 11.0])
    with pytest.raises(ValueError, match=r"token id 7 at \(sequence 0, position 1\) is out of the vocabulary of 4"):
        emb(np.array([[0, 7], [1, 9]]))
    with pytest.raises(ValueError, match="out of the vocabulary"):
        emb(np.array([[-1]]))
    with pytest.raises(TypeError, match="token ids must be integers.*float64"):
        emb(np.array([[0.0, 1.0]]))
    with pytest.raises(TypeError, match="token ids must be integers.*bool"):
        emb(np.array([[True]]))
    with pytest.raises(ValueError, match=r"shape \(N, T\)"):
        emb(np.array([0, 1]))
    with pytest.raises(TypeError, match="vocab_size and dim"):
        Embedding()
    with pytest.raises(ValueError, match="must be finite"):
        Embedding(np.array([[np.nan]]))
    model = xattr.from_function(lambda v: v.reshape(v.shape[0], -1)[:, :1], "first")
    with pytest.raises(TypeError, match="xattr.text.Embedding"):
        token_attributions(model, emb.weight, np.array([[0]]), 0)
    with pytest.raises(ValueError, match="unknown method|not registered|Unknown"):
        token_attributions(model, emb, np.array([[0]]), 0, method="nonsense")
