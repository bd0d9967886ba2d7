"""xattr.genomics: one-hot DNA, dinucleotide shuffles, DeepLIFT / IG averaged over shuffled references.

Oracles: counting dinucleotides by hand (string slices); enumeration of every sequence with the same dinucleotide
counts (uniformity of the shuffle, against a twin that keeps the input's last edges and so cannot reach them all);
``str``-based motif counting; the library's ``deeplift`` and ``integrated_gradients`` run pair by pair; the
hypothetical-contribution formula evaluated with explicit hypothetical one-hot inputs; closed forms of the motif-count
model (a matched window contributes exactly 1, every other position exactly 0).
"""
import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xattr
from xattr import genomics as g
from xattr.nn import Conv2D, Dense, GlobalAvgPool2D, ReLU, Sequential

MOTIFS = ["GATAAG", "CAGCTG"]
dna = st.text(alphabet="ACGT", min_size=1, max_size=40)


def _pairs(s):
    return Counter(s[i:i + 2] for i in range(len(s) - 1))


def test_one_hot_round_trip_and_layout():
    x = g.one_hot(["ACGT", "ttga"])
    assert x.shape == (2, 4, 1, 4) and x.dtype == np.float64
    assert np.array_equal(x[0, :, 0, :], np.eye(4))  # A, C, G, T are channels 0..3
    assert g.to_strings(x) == ["ACGT", "TTGA"]
    assert g.one_hot("AC", dtype=np.float32).dtype == np.float32


def test_bad_sequences_are_refused_with_the_place():
    with pytest.raises(ValueError, match="sequence 1 has 'N' at position 2"):
        g.one_hot(["ACGT", "ACNT"])
    with pytest.raises(ValueError, match="one length"):
        g.one_hot(["ACG", "AC"])
    with pytest.raises(TypeError, match="DNA string"):
        g.one_hot([1, 2])
    x = g.one_hot(["ACGT"])
    y = x.copy()
    y[0, :, 0, 2] = [0.5, 0.5, 0, 0]
    with pytest.raises(ValueError, match="sequence 0 position 2 holds"):
        g.dinucleotide_shuffle(y, 2, 0)
    with pytest.raises(ValueError, match=r"shape \(N, 4, 1, L\)"):
        g.dinucleotide_shuffle(np.zeros((1, 3, 1, 5)), 2, 0)
    with pytest.raises(ValueError, match="n_shuffles must be a positive int"):
        g.dinucleotide_shuffle(x, 0, 0)
    with pytest.raises(TypeError, match="rng must be"):
        g.dinucleotide_shuffle(x, 2, None)


@given(st.lists(dna, min_size=1, max_size=3).flatmap(
    lambda seqs: st.just([s[:min(map(len, seqs))] for s in seqs])), st.integers(0, 2**32 - 1))
def test_shuffles_keep_dinucleotide_counts_ends_and_are_deterministic_per_rng(seqs, seed):
    x = g.one_hot(seqs)
    before = x.copy()
    s = g.dinucleotide_shuffle(x, 3, np.random.default_rng(seed))
    assert s.shape == (len(seqs), 3) + x.shape[1:]
    assert np.array_equal(x, before)  # the caller's array is untouched
    for n, seq in enumerate(seqs):
        for out in g.to_strings(s[n]):
            assert _pairs(out) == _pairs(seq), (seq, out)  # the oracle: dinucleotides counted by slicing
            assert Counter(out) == Counter(seq) and out[0] == seq[0] and out[-1] == seq[-1]
    assert np.array_equal(g.dinucleotide_counts(s), np.repeat(g.dinucleotide_counts(x)[:, None], 3, axis=1))
    assert np.array_equal(s, g.dinucleotide_shuffle(x, 3, np.random.default_rng(seed)))  # same rng state, same draw
    assert np.array_equal(s, g.dinucleotide_shuffle(x, 3, seed))


def _same_counts(seq):
    """Every sequence of seq's length with seq's dinucleotide counts and first base (enumeration of all 4^(L-1))."""
    tails = np.stack(np.unravel_index(np.arange(4 ** (len(seq) - 1)), (4,) * (len(seq) - 1)), axis=1)
    tok = np.concatenate([np.full((len(tails), 1), "ACGT".index(seq[0])), tails], axis=1)
    pairs = 4 * tok[:, :-1] + tok[:, 1:]
    counts = np.bincount((pairs + 16 * np.arange(len(pairs))[:, None]).ravel(), minlength=16 * len(pairs))
    counts = counts.reshape(len(pairs), 16)
    want = np.bincount([4 * "ACGT".index(a) + "ACGT".index(b) for a, b in zip(seq, seq[1:])], minlength=16)
    keep = tok[(counts == want).all(axis=1)]
    return ["".join("ACGT"[i] for i in row) for row in keep]


def _keep_last_edges(seq, rng):
    """A twin of the shortcut that skips the random last-edge tree: each base's last successor stays where it is."""
    nxt = {b: [seq[i + 1] for i in range(len(seq) - 1) if seq[i] == b] for b in sorted(set(seq))}
    for lst in nxt.values():
        if len(lst) > 1:
            head = lst[:-1]
            lst[:-1] = [head[i] for i in rng.permutation(len(head))]
    used = Counter()
    out = seq[0]
    for _ in range(len(seq) - 1):
        b = out[-1]
        out += nxt[b][used[b]]
        used[b] += 1
    return out


def test_shuffle_is_uniform_over_all_sequences_with_the_counts():
    """Kandel et al. 1996: the Altschul-Erickson walk reaches every arrangement with equal probability (chi-square on
    3000 draws over the enumerated set); the last-edge shortcut's twin misses arrangements."""
    from scipy.stats import chisquare

    seq = "ACAGATCAGC"
    support = _same_counts(seq)
    assert len(support) == 18
    draws = g.to_strings(g.dinucleotide_shuffle(g.one_hot([seq]), 3000, 7)[0])
    freq = Counter(draws)
    assert set(freq) == set(support)
    p = chisquare([freq[s] for s in support]).pvalue
    assert p > 1e-3, p
    rng = np.random.default_rng(0)
    twin = Counter(_keep_last_edges(seq, rng) for _ in range(3000))
    assert set(twin) < set(support)  # a strict subset: the shortcut is not uniform
    assert all(_pairs(s) == _pairs(seq) for s in twin)


def test_long_runs_and_short_sequences():
    s = g.dinucleotide_shuffle(g.one_hot("A" * 30 + "C"), 4, 1)
    assert g.to_strings(s[0]) == ["A" * 30 + "C"] * 4  # the only arrangement (the last-edge draw is redrawn ~30 times)
    for seq in ["AC", "G", "TT"]:
        assert g.to_strings(g.dinucleotide_shuffle(g.one_hot(seq), 3, 1)[0]) == [seq] * 3


def _count(seq, motif):
    return len(re.findall(f"(?={motif})", seq))


def test_motif_count_model_counts_occurrences():
    d = g.embed_motifs(12, 40, MOTIFS, rng=3)
    model = g.motif_count_model(MOTIFS, 40)
    want = np.array([[_count(s, m) for m in MOTIFS] for s in g.to_strings(d.x)])
    assert np.array_equal(model.forward(d.x), want)
    assert (want >= d.labels).all() and d.labels.sum() > 0
    for n, s in enumerate(g.to_strings(d.x)):  # the masks cover the embedded copies
        for j, m in enumerate(MOTIFS):
            idx = np.flatnonzero(d.masks[n, j])
            assert (len(idx) == 6) == bool(d.labels[n, j])
            if len(idx):
                assert s[idx[0]:idx[-1] + 1] == m


def _random_stack(length, rng=0):
    return Sequential(Conv2D(4, 6, (1, 5), padding=(0, 2), rng=rng), ReLU(), Conv2D(6, 5, (1, 3), rng=rng + 1),
                      ReLU(), GlobalAvgPool2D(), Dense(5, 3, rng=rng + 2))


@pytest.mark.parametrize("method", ["deeplift", "integrated_gradients"])
def test_each_reference_is_the_library_method_on_the_pair_and_completeness_holds(method):
    rng = np.random.default_rng(0)
    x = g.one_hot(["".join(rng.choice(list("ACGT"), 30)) for _ in range(3)])
    model = _random_stack(30)
    res = g.shuffled_reference_attributions(model, x, 1, n_shuffles=4, rng=5, method=method, steps=32)
    refs = res.references
    assert refs.shape == (3, 4, 4, 1, 30)
    assert np.array_equal(refs, g.dinucleotide_shuffle(x, 4, 5))  # the same rng gives the same references
    xs, rs = np.repeat(x, 4, axis=0), refs.reshape(12, 4, 1, 30)
    if method == "deeplift":
        each, gap = xattr.deeplift(model, xs, 1, reference=rs, return_delta=True)
        assert np.abs(res.delta).max() < 1e-12  # summation-to-delta per reference (conv/ReLU/GAP/dense)
    else:
        each, gap = xattr.integrated_gradients(model, xs, 1, baseline=rs, steps=32, return_delta=True)
    np.testing.assert_allclose(res.delta.ravel(), gap, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.contributions, each.reshape(3, 4, 4, 1, 30).mean(axis=1), rtol=0, atol=1e-12)


def test_hypothetical_contributions_by_explicit_hypothetical_inputs():
    rng = np.random.default_rng(1)
    x = g.one_hot(["".join(rng.choice(list("ACGT"), 25)) for _ in range(2)])
    model = _random_stack(25, rng=3)
    res = g.shuffled_reference_attributions(model, x, 0, n_shuffles=3, rng=2)
    xs, rs = np.repeat(x, 3, axis=0), res.references.reshape(6, 4, 1, 25)
    # multipliers m = C / Δx are not needed: rebuild them with DeepLIFT on each hypothetical base
    from xattr.methods.deeplift import _multipliers
    from xattr.nn.relevance import DEEPLIFT_NEAR_ZERO

    seed = np.zeros((6, 3))
    seed[:, 0] = 1
    m = _multipliers(model, xs, rs, seed, "rescale", "gradient", DEEPLIFT_NEAR_ZERO)[0]
    want = np.zeros_like(xs)
    for b in range(4):  # kundajelab's recipe: a hypothetical one-hot input per base, its difference times m
        hyp_input = np.zeros_like(xs)
        hyp_input[:, b] = 1
        want[:, b] = ((hyp_input - rs) * m).sum(axis=1)
    np.testing.assert_allclose(res.hypothetical, want.reshape(2, 3, 4, 1, 25).mean(axis=1), rtol=0, atol=1e-13)
    # projection onto the observed base: zero off the input's bases, and per position the DeepLIFT total
    assert np.all(res.projected[x == 0] == 0)
    np.testing.assert_allclose(res.projected.sum(axis=1), res.contributions.sum(axis=1), rtol=0, atol=1e-13)


@pytest.mark.parametrize("method", ["deeplift", "integrated_gradients"])
def test_scores_sit_on_the_embedded_motif_exactly_when_the_references_hold_none(method):
    """Closed form of the count model: a matched window changes the score by 1, every other window by 0, so against a
    reference without the motif the contributions are 0 off the motif and sum to 1 on it (DeepLIFT exactly; IG up to its
    quadrature error at the ReLU's kink)."""
    d = g.embed_motifs(10, 48, MOTIFS, rng=4, p=1.0)
    model = g.motif_count_model(MOTIFS, 48)
    keep = (model.forward(d.x) == 1).all(axis=1)  # exactly one occurrence of each motif (no chance copies)
    x, masks = d.x[keep], d.masks[keep]
    refs = g.dinucleotide_shuffle(x, 6, 9)
    clean = (model.forward(refs.reshape((-1,) + x.shape[1:])) == 0).all(axis=1).reshape(len(x), 6).all(axis=1)
    x, masks, refs = x[clean], masks[clean], refs[clean]
    assert len(x) >= 3
    for j in range(2):
        res = g.shuffled_reference_attributions(model, x, j, method=method, references=refs, steps=64)
        per_pos = res.projected[:, :, 0].sum(axis=1)  # (N, L)
        assert np.all(per_pos[~masks[:, j]] == 0)  # nothing off the motif j (including the other motif's sites)
        tol = 1e-12 if method == "deeplift" else 0.05
        np.testing.assert_allclose(per_pos.sum(axis=1), 1.0, atol=tol)
        assert (per_pos[masks[:, j]] > 0).all()


def test_concentration_on_motifs_measured_against_random_shuffles():
    """With chance motif copies in some shuffles, most of |projected| still lies on the embedded motif: measured."""
    d = g.embed_motifs(40, 60, MOTIFS, rng=11)
    model = g.motif_count_model(MOTIFS, 60)
    res = g.shuffled_reference_attributions(model, d.x, 0, n_shuffles=10, rng=12)
    per_pos = np.abs(res.projected[:, :, 0].sum(axis=1))
    has = d.labels[:, 0] == 1
    frac = (per_pos * d.masks[:, 0])[has].sum() / per_pos[has].sum()
    assert frac > 0.9, frac
    other = (per_pos * d.masks[:, 1])[has].sum() / per_pos[has].sum()
    assert other < 0.02, other


def test_options_and_errors():
    x = g.one_hot(["ACGTACGTAC"])
    model = g.motif_count_model(["ACG"], 10)
    with pytest.raises(ValueError, match="method must be one of"):
        g.shuffled_reference_attributions(model, x, 0, method="lrp")
    with pytest.raises(ValueError, match="references must have shape"):
        g.shuffled_reference_attributions(model, x, 0, references=np.zeros((1, 4, 1, 10)))
    fmodel = xattr.from_function(lambda v: v.reshape(v.shape[0], -1)[:, :1], "first")
    with pytest.raises(TypeError, match="layered model"):
        g.shuffled_reference_attributions(fmodel, x, 0, method="deeplift")
    res = g.shuffled_reference_attributions(fmodel, x, 0, method="integrated_gradients", n_shuffles=2, steps=4)
    assert np.abs(res.delta).max() < 1e-12  # linear model: IG is exact
    with pytest.raises(ValueError, match="one length"):
        g.motif_count_model(["ACG", "AC"], 10)
    with pytest.raises(ValueError, match="no room"):
        g.embed_motifs(2, 5, ["ACG", "TTT"], rng=0)


def test_the_docs_example_runs_and_gives_the_shapes():
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "input_kinds.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    scope = {}
    exec(next(b for b in blocks if "genomics.embed_motifs" in b), scope)  # noqa: S102 - the page's own example
    assert scope["res"].projected.shape == (40, 4, 1, 60) and scope["res"].delta.shape == (40, 10)


def test_one_target_per_sequence_and_float32():
    rng = np.random.default_rng(8)
    x = g.one_hot(["".join(rng.choice(list("ACGT"), 20)) for _ in range(3)])
    model = _random_stack(20, rng=6)
    both = g.shuffled_reference_attributions(model, x, np.array([0, 2, 1]), n_shuffles=3, rng=4)
    for n, t in enumerate([0, 2, 1]):
        one = g.shuffled_reference_attributions(model, x[n:n + 1], t, references=both.references[n:n + 1])
        np.testing.assert_allclose(one.contributions[0], both.contributions[n], rtol=0, atol=1e-13)
        np.testing.assert_allclose(one.delta[0], both.delta[n], rtol=0, atol=1e-13)
    r32 = g.shuffled_reference_attributions(model, x.astype(np.float32), 0, n_shuffles=3, rng=4)
    assert r32.contributions.dtype == r32.projected.dtype == np.float32
    assert r32.references.dtype == np.float32
