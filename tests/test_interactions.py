"""Shapley interaction index and SHAP interaction values: against a naive sum over subsets, the AND and OR games,
efficiency, and on a model through the coalition machinery of exact Shapley values."""
import itertools
from math import factorial

import numpy as np
import pytest

import xattr
from xattr.methods.interactions import interaction_index_from_values, shap_interaction_from_values, shapley_interactions
from xattr.methods.perturbation.shapley import shapley_from_values


def _values(M, fn):
    """``v`` ``(2^M,)`` of a set function ``fn(frozenset) -> float``, coalition ``S`` at ``Σ_{j∈S} 2^j``."""
    return np.array([fn(frozenset(j for j in range(M) if k >> j & 1)) for k in range(2**M)])


def _naive_index(M, fn):
    """Grabisch & Roubens (1999), term by term over the subsets of the other players."""
    out = np.zeros((M, M))
    for i, j in itertools.combinations(range(M), 2):
        rest = [p for p in range(M) if p not in (i, j)]
        for r in range(len(rest) + 1):
            for S in itertools.combinations(rest, r):
                S = frozenset(S)
                w = factorial(len(S)) * factorial(M - len(S) - 2) / factorial(M - 1)
                out[i, j] += w * (fn(S | {i, j}) - fn(S | {i}) - fn(S | {j}) + fn(S))
        out[j, i] = out[i, j]
    return out


@pytest.mark.parametrize("M", [2, 3, 5])
def test_index_equals_the_naive_sum_on_a_random_game(M):
    table = dict(zip(range(2**M), np.random.default_rng(M).normal(size=2**M)))

    def fn(S):
        return table[sum(1 << j for j in S)]

    np.testing.assert_allclose(interaction_index_from_values(_values(M, fn)), _naive_index(M, fn), rtol=1e-12,
                               atol=1e-12)


def test_and_is_positive_or_is_negative_and_an_additive_game_has_none():
    """Two players: AND (both needed) I = +1, OR (either suffices) I = −1, v(S) = Σ w_j: I = 0."""
    assert interaction_index_from_values(_values(2, lambda S: float(S == {0, 1})))[0, 1] == 1.0
    assert interaction_index_from_values(_values(2, lambda S: float(bool(S))))[0, 1] == -1.0
    w = np.array([0.3, -1.2, 2.0, 0.5])
    np.testing.assert_allclose(interaction_index_from_values(_values(4, lambda S: w[list(S)].sum())), 0, atol=1e-15)


def test_shap_interaction_values_rows_sum_to_shapley_values_and_the_whole_to_the_difference():
    v = np.random.default_rng(0).normal(size=2**5)
    phi = shap_interaction_from_values(v)
    np.testing.assert_allclose(phi, phi.T, rtol=0, atol=0)
    np.testing.assert_allclose(phi.sum(axis=1), shapley_from_values(v), rtol=1e-12, atol=1e-12)
    assert phi.sum() == pytest.approx(v[-1] - v[0], rel=1e-12)
    # the OR of two players: each Shapley value 1/2 = main effect 1 + interaction −1/2
    np.testing.assert_allclose(shap_interaction_from_values(np.array([0.0, 1, 1, 1])), [[1, -0.5], [-0.5, 1]])


class _OrModel:
    """Scores ``[max(s_left, s_right), 0]`` with ``s`` a half's mean: either half lit gives the class (an OR)."""

    def forward(self, x):
        left, right = x[:, :, :, :4].mean(axis=(1, 2, 3)), x[:, :, :, 4:].mean(axis=(1, 2, 3))
        return np.stack([np.maximum(left, right), np.zeros(len(x))], axis=1)


def test_on_a_model_the_halves_of_an_or_interact_negatively():
    """Segments = the two halves of an image with both lit: occlusion and a saliency map cannot see that they
    stand in for each other; the index is −1 and each half's SHAP main effect is 1."""
    x = np.ones((1, 1, 4, 8))
    halves = np.repeat((np.arange(8) // 4)[None, :], 4, axis=0)
    idx = shapley_interactions(_OrModel(), x, 0, segments=halves, kind="index")
    np.testing.assert_allclose(idx[0], [[0, -1], [-1, 0]], atol=1e-15)
    np.testing.assert_allclose(shapley_interactions(_OrModel(), x, 0, segments=halves)[0], [[1, -0.5], [-0.5, 1]],
                               atol=1e-15)


def test_rows_sum_to_the_shapley_method_on_a_cnn():
    from xattr.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential

    model = Sequential(Conv2D(2, 3, 3, padding=1, rng=0), ReLU(), MaxPool2D(2), Flatten(), Dense(3 * 3 * 3, 2, rng=1))
    x = np.random.default_rng(2).random((2, 2, 6, 6))
    seg = (np.arange(36).reshape(6, 6) % 6 // 2) + 3 * (np.arange(36).reshape(6, 6) // 18)
    phi = shapley_interactions(model, x, 1, segments=seg)
    _, values = xattr.shapley(model, x, 1, segments=seg, return_values=True)
    assert phi.shape == (2, 6, 6)
    np.testing.assert_allclose(phi.sum(axis=2), values, rtol=1e-12, atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="M >= 2 players"):
        interaction_index_from_values(np.zeros(2))
    with pytest.raises(ValueError, match="kind must be 'shap'"):
        shapley_interactions(_OrModel(), np.ones((1, 1, 4, 8)), 0, kind="nonsense")
    with pytest.raises(ValueError, match="interactions need 2 to"):
        shapley_interactions(_OrModel(), np.ones((1, 1, 4, 8)), 0, segments=np.zeros((4, 8), int))
