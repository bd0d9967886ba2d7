"""Genomic sequences: one-hot DNA, dinucleotide-shuffled references, and DeepLIFT / IG averaged over them.

A DNA sequence of length ``L`` is a one-hot array ``(4, 1, L)`` over the bases ``A, C, G, T`` (:data:`BASES`):
channels are bases and the sequence runs along the width, so a batch ``(N, 4, 1, L)`` goes through the layer stack's
``Conv2D`` with ``(1, k)`` kernels (a motif scanner of width ``k``) as an image batch does.

References (Shrikumar, Greenside & Kundaje 2017, §3.4 and the genomics experiments of §4.2): an all-zero or
base-frequency reference is off the data, so DeepLIFT on DNA is run against several **dinucleotide-shuffled**
copies of the input, which keep its base and dinucleotide composition and break its motifs, and the scores are
averaged over them.  :func:`dinucleotide_shuffle` draws the shuffles as Altschul & Erickson (1985) do: a random
Eulerian walk through the graph whose edges are the sequence's dinucleotides, uniform over every sequence with the
same dinucleotide counts, first and last base (Kandel et al. 1996).

**Hypothetical contributions** (kundajelab's ``get_hypothetical_contribs_func_onehot``, used by TF-MoDISco): with
the multipliers ``m`` of the input against reference ``r``, the contribution base ``b`` would have at position ``l``
is ``h[b, l] = Σ_{b'} m[b', l] (e_b[b'] − r[b', l]) = m[b, l] − Σ_{b'} m[b', l] r[b', l]``; averaged over the
references.  Its **projection onto the observed base**, ``h ⊙ x`` (the multiplier-like score times the one-hot
input), is nonzero only at the input's bases, and its sum over the bases at each position equals the DeepLIFT (or IG)
contributions ``Σ_{b'} m (x − r)`` summed over the channels there.

:func:`embed_motifs` and :func:`motif_count_model` are a synthetic task whose answer is known (as the simulated
genomics data of Shrikumar et al. 2017, §4.2: motifs embedded in random background): the model's score ``j`` is the
number of exact occurrences of motif ``j``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _targets
from ._conventions import as_float_array, as_rng
from .inputs import check_batch_size, rows_per_call

__all__ = ["BASES", "one_hot", "to_strings", "dinucleotide_counts", "dinucleotide_shuffle", "ShuffleAttributions",
           "shuffled_reference_attributions", "hypothetical_contributions", "embed_motifs", "motif_count_model",
           "MotifData"]

#: the alphabet, in channel order.
BASES = "ACGT"

#: the methods :func:`shuffled_reference_attributions` runs per reference.
SHUFFLE_METHODS = ("deeplift", "integrated_gradients")


def one_hot(sequences, dtype=np.float64):
    """One-hot encode DNA strings of one length: ``(N, 4, 1, L)`` (channels ``A, C, G, T``).

    Parameters
    ----------
    sequences : str or sequence of str
        Upper or lower case (soft-masked lower case is read as the base).  Any other letter (``N``, IUPAC codes) is
        refused: a position must be one base.
    dtype : float32 or float64

    Returns
    -------
    ndarray ``(N, 4, 1, L)``
    """
    seqs = [sequences] if isinstance(sequences, str) else list(sequences)
    if not seqs or not all(isinstance(s, str) for s in seqs):
        raise TypeError(f"sequences must be a DNA string or a non-empty list of them, got {sequences!r}")
    lengths = {len(s) for s in seqs}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"sequences must be non-empty and of one length, got lengths {sorted(lengths)}")
    codes = np.frombuffer("".join(seqs).upper().encode("ascii", errors="replace"), dtype=np.uint8)
    lut = np.full(256, -1, dtype=np.intp)
    lut[np.frombuffer(BASES.encode(), dtype=np.uint8)] = np.arange(4)
    tokens = lut[codes].reshape(len(seqs), -1)
    bad = np.argwhere(tokens < 0)
    if len(bad):
        n, i = bad[0]
        raise ValueError(f"sequence {n} has {seqs[n][i]!r} at position {i}: one-hot DNA takes only {BASES} "
                         f"({len(bad)} such position(s) in all)")
    return _from_tokens(tokens, np.dtype(dtype))


def _from_tokens(tokens, dtype):
    out = np.zeros((tokens.shape[0], 4, 1, tokens.shape[1]), dtype=dtype)
    np.put_along_axis(out, tokens[:, None, None, :], 1, axis=1)
    return out


def _tokens(x, name="x"):
    """Base indices ``(N, L)`` of a one-hot batch ``(N, 4, 1, L)``; refuses anything that is not exactly one-hot."""
    x = as_float_array(x, name, ndim=4)
    if x.shape[1] != 4 or x.shape[2] != 1 or x.shape[0] == 0 or x.shape[3] == 0:
        raise ValueError(f"{name} must be one-hot DNA of shape (N, 4, 1, L) (bases {BASES} as channels), "
                         f"got shape {x.shape}")
    v = x[:, :, 0, :]
    ones = (v == 1).sum(axis=1)
    bad = np.argwhere((ones != 1) | ((v != 0) & (v != 1)).any(axis=1))
    if len(bad):
        n, i = bad[0]
        raise ValueError(f"{name} must be one-hot (a single 1 per position, 0 elsewhere); sequence {n} position {i} "
                         f"holds {v[n, :, i].tolist()} ({len(bad)} such position(s) in all)")
    return v.argmax(axis=1)


def to_strings(x):
    """The DNA strings of a one-hot batch ``(N, 4, 1, L)`` (inverse of :func:`one_hot`).

    Parameters
    ----------
    x : ndarray ``(N, 4, 1, L)``

    Returns
    -------
    list of str
    """
    letters = np.frombuffer(BASES.encode(), dtype=np.uint8)
    return [bytes(letters[t]).decode() for t in _tokens(x)]


def dinucleotide_counts(x):
    """Counts of the 16 dinucleotides ``(N, 4, 4)``: ``[n, a, b]`` = occurrences of base ``a`` followed by ``b``.

    Parameters
    ----------
    x : ndarray ``(N, 4, 1, L)``, one-hot (or ``(N, K, 4, 1, L)``: counts ``(N, K, 4, 4)``)

    Returns
    -------
    ndarray of int64
    """
    arr = np.asarray(x)
    lead = arr.shape[:-3]
    t = _tokens(arr.reshape((-1,) + arr.shape[-3:]))
    pair = 4 * t[:, :-1] + t[:, 1:]
    counts = np.zeros((t.shape[0], 16), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(t.shape[0]), pair.shape[1]), pair.ravel()), 1)
    return counts.reshape(lead + (4, 4))


def _last_edge_trees(succ, start, count, last, rng):
    """Altschul & Erickson's (1985) random last-edge tree of each row (one shuffle of one sequence), vectorised.

    For every base ``v`` present other than the row's last base, one of its out-edges (an occurrence of ``v`` and the
    base after it) is drawn uniformly; the draw is kept when following the chosen edges from every base reaches the
    last base (the choice is a spanning arborescence), else the row is redrawn.  Accepted draws are distributed as
    ``∏_v m(v, next(v))``, which is what a uniform Eulerian walk needs (Kandel et al. 1996).

    Parameters
    ----------
    succ : ndarray ``(R, E)``
        Each row's edges' successor bases, grouped by source base.
    start, count : ndarray ``(R, 4)``
        Where each base's block starts in ``succ`` and its length.
    last : ndarray ``(R,)``
        The last base of each row.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray ``(R, 4)``: the rank of the chosen edge within each base's block (``-1`` for the last base and for bases
    that do not occur)
    """
    R = succ.shape[0]
    choice = np.full((R, 4), -1, dtype=np.intp)
    todo = np.arange(R)
    while len(todo):
        m, ar = len(todo), np.arange(len(todo))
        draw = np.floor(rng.random((m, 4)) * np.maximum(count[todo], 1)).astype(np.intp)
        draw[count[todo] == 0] = -1
        draw[ar, last[todo]] = -1
        idx = np.minimum(start[todo] + np.maximum(draw, 0), succ.shape[1] - 1)
        nxt = np.where(draw >= 0, np.take_along_axis(succ[todo], idx, axis=1), last[todo][:, None])
        cur = np.tile(np.arange(4), (m, 1))
        for _ in range(3):  # a tree on at most 4 vertices: every path to its root has at most 3 edges
            cur = np.take_along_axis(nxt, cur, axis=1)
        ok = ((cur == last[todo][:, None]) | (draw < 0)).all(axis=1)
        choice[todo[ok]] = draw[ok]
        todo = todo[~ok]
    return choice


def dinucleotide_shuffle(x, n_shuffles, rng):
    """Dinucleotide-preserving shuffles of each sequence (Altschul & Erickson 1985): ``(N, K, 4, 1, L)``.

    Each shuffle has exactly the input's dinucleotide counts (hence its base counts), first and last base, and is
    drawn uniformly among all such sequences (Kandel et al. 1996): the dinucleotides are the edges of a multigraph on
    the bases, a sequence with these counts is an Eulerian walk through it from the first base to the last, and such a
    walk is drawn by (1) a random *last-edge tree* (for each base but the last, the edge it leaves by for the last
    time; drawn uniformly and redrawn until it reaches the last base, Altschul & Erickson's construction), (2) a random
    order of every base's other out-edges, and (3) the walk that takes each base's edges in that order.

    kundajelab's ``deeplift.dinuc_shuffle`` keeps each base's last edge as it is in the input (step 1 skipped): its
    shuffles keep the counts too but are not uniform.  Vectorised over sequences and shuffles; the walk is a loop over
    the ``L`` positions (each step depends on the previous one).

    Parameters
    ----------
    x : ndarray ``(N, 4, 1, L)``
        One-hot DNA (:func:`one_hot`).
    n_shuffles : int
        ``K`` shuffles per sequence.
    rng : numpy.random.Generator or int
        The only source of randomness: the same ``rng`` state gives the same shuffles.

    Returns
    -------
    ndarray ``(N, K, 4, 1, L)``, ``x``'s dtype
    """
    xf = as_float_array(x, "x")
    t = _tokens(xf)
    if isinstance(n_shuffles, bool) or not isinstance(n_shuffles, (int, np.integer)) or n_shuffles < 1:
        raise ValueError(f"n_shuffles must be a positive int, got {n_shuffles!r}")
    gen = as_rng(rng)
    N, L = t.shape
    K = int(n_shuffles)
    if L < 3:  # at most one dinucleotide: the sequence is its only arrangement
        return np.repeat(xf[:, None], K, axis=1).copy()
    R = N * K
    row_seq = np.repeat(np.arange(N), K)
    src, dst = t[:, :-1], t[:, 1:]  # (N, L-1): the edges (dinucleotides) of each sequence
    # each sequence's edges grouped by source base: base v's block is [start[v], start[v] + count[v])
    order = np.argsort(src, axis=1, kind="stable")
    block = np.take_along_axis(src, order, axis=1)[row_seq]  # (R, L-1) source base of each grouped edge
    succ = np.take_along_axis(dst, order, axis=1)[row_seq]  # (R, L-1) its successor base
    count = np.stack([(src == v).sum(axis=1) for v in range(4)], axis=1)[row_seq]  # (R, 4)
    start = np.concatenate([np.zeros((R, 1), dtype=np.intp), np.cumsum(count, axis=1)[:, :-1]], axis=1)
    # (1) the last-edge trees
    tree = _last_edge_trees(succ, start, count, t[row_seq, -1], gen)
    # (2) a random order of each base's edges with its tree edge last: sort each block by a key, U(0, 1) for the
    # free edges and 2 for the tree edge (blocks are kept apart by the offset 4 · base)
    rank = np.arange(L - 1)[None, :] - np.take_along_axis(start, block, axis=1)
    is_tree = rank == np.take_along_axis(tree, block, axis=1)
    key = np.where(is_tree, 2.0, gen.random((R, L - 1)))
    succ = np.take_along_axis(succ, np.argsort(4.0 * block + key, axis=1, kind="stable"), axis=1)
    # (3) the walk: from the first base, take each base's next unused edge
    out = np.empty((R, L), dtype=np.intp)
    out[:, 0] = t[row_seq, 0]
    used = np.zeros((R, 4), dtype=np.intp)
    ar = np.arange(R)
    for i in range(1, L):
        cur = out[:, i - 1]
        out[:, i] = succ[ar, start[ar, cur] + used[ar, cur]]
        used[ar, cur] += 1
    return _from_tokens(out, xf.dtype).reshape((N, K, 4, 1, L))



def hypothetical_contributions(multipliers, references):
    """Hypothetical contributions ``h[b, l] = m[b, l] − Σ_{b'} m[b', l] r[b', l]``: what base ``b`` at position ``l``
    would contribute, with the multipliers ``m`` computed for the actual input (kundajelab's
    ``get_hypothetical_contribs_func_onehot``: ``Σ_{b'} m[b', l] (e_b − r)[b', l]``).

    Parameters
    ----------
    multipliers, references : ndarray ``(..., 4, 1, L)``, one shape

    Returns
    -------
    ndarray ``(..., 4, 1, L)``
    """
    m = np.asarray(multipliers)
    r = np.asarray(references)
    if m.shape != r.shape or m.ndim < 3 or m.shape[-3] != 4:
        raise ValueError(f"multipliers and references must have one shape (..., 4, 1, L), got {m.shape} and {r.shape}")
    return m - (m * r).sum(axis=-3, keepdims=True)


@dataclass
class ShuffleAttributions:
    """What :func:`shuffled_reference_attributions` returns.

    Attributes
    ----------
    contributions : ndarray ``(N, 4, 1, L)``
        ``mean_k m_k ⊙ (x − r_k)``: DeepLIFT's (or IG's) scores averaged over the references.
    hypothetical : ndarray ``(N, 4, 1, L)``
        ``mean_k h_k`` (:func:`hypothetical_contributions`).
    projected : ndarray ``(N, 4, 1, L)``
        ``hypothetical ⊙ x``: the hypothetical contributions at the observed bases (zero elsewhere); per position its
        sum over the bases equals ``contributions``'s.
    delta : ndarray ``(N, K)`` float64
        The completeness gap per reference, ``Σ_i m_k (x − r_k) − (F(x) − F(r_k))``
        (:func:`xattr.inputs.completeness_gap`): round-off for DeepLIFT-Rescale on ReLU/conv/dense/average-pool
        stacks, the quadrature error for IG.
    references : ndarray ``(N, K, 4, 1, L)``
        The shuffled references used.
    """

    contributions: np.ndarray
    hypothetical: np.ndarray
    projected: np.ndarray
    delta: np.ndarray
    references: np.ndarray


def _rows_target(target, scores, K):
    """The target resolved at the inputs' scores ``(N, K')`` and repeated for the ``K`` references of each input."""
    tgt = _targets.resolve(target, scores)
    return tgt if callable(tgt) and not isinstance(tgt, _targets.ClassOf) else tgt.repeat(K)


def _ig_multipliers(model, x, ref, target, steps, quadrature, batch_size):
    """``Σ_k w_k ∂F/∂x (r + α_k (x − r))`` per row (IG's path-averaged gradient), float64."""
    from .methods.path._common import _accumulate
    from .methods.path.quadratures import quadrature_rule

    alphas, weights = quadrature_rule(quadrature, steps)
    B, n = x.shape[0], len(alphas)
    img, node = np.repeat(np.arange(B), n), np.tile(np.arange(n), B)
    d = x - ref
    a = alphas.astype(x.dtype)

    def points(sl):
        return ref[img[sl]] + a[node[sl]].reshape((-1,) + (1,) * (x.ndim - 1)) * d[img[sl]]

    rows = rows_per_call(batch_size, model, x[:1], len(img))
    return _accumulate(model, img, np.tile(weights, B), points, target, rows, B)


def shuffled_reference_attributions(model, x, target, n_shuffles=10, rng=0, method="deeplift", steps=50,
                                    quadrature="gausslegendre", batch_size=None, references=None):
    """DeepLIFT (Rescale) or integrated gradients of one-hot DNA against dinucleotide-shuffled references, averaged.

    As Shrikumar et al. (2017, §3.4 and §4.2) do on genomic data: each sequence ``x`` is explained against ``K``
    shuffles ``r_k`` of itself (:func:`dinucleotide_shuffle`), and the scores are averaged,
    ``C = mean_k m_k ⊙ (x − r_k)``, with ``m_k`` DeepLIFT's multipliers (or IG's path-averaged gradient) for the pair
    ``(x, r_k)``.  The hypothetical contributions and their projection onto the observed bases are returned too
    (see the module docstring).  Every (sequence, reference) pair goes through the model in one batch.

    Parameters
    ----------
    model : model protocol object
        DeepLIFT needs a layered model (:class:`xattr.nn.Graph` or ``Sequential``); IG any model.
    x : ndarray ``(N, 4, 1, L)``
        One-hot DNA.
    target : int, int array ``(N,)``, callable on the scores or ``(classes, transform)``
        Resolved at ``x``'s scores, then the same for each of its references.
    n_shuffles : int
        ``K``, the references per sequence (ignored when ``references`` is given).
    rng : numpy.random.Generator or int
        For the shuffles.
    method : ``"deeplift"`` or ``"integrated_gradients"``
        DeepLIFT with the Rescale rule (the paper's choice on genomics), max-pools in the reference code's
        ``"gradient"`` mode and the default near-zero threshold (:func:`xattr.deeplift`).
    steps, quadrature : IG's nodes (:func:`xattr.integrated_gradients`)
    batch_size : int, optional
        IG: model input rows per call.
    references : ndarray ``(N, K, 4, 1, L)``, optional
        Use these references instead of drawing shuffles (any references, e.g. from another shuffler).

    Returns
    -------
    ShuffleAttributions
    """
    from .methods.deeplift import _multipliers, require_layered
    from .nn.relevance import DEEPLIFT_NEAR_ZERO

    if method not in SHUFFLE_METHODS:
        raise ValueError(f"method must be one of {SHUFFLE_METHODS}, got {method!r}")
    xf = as_float_array(x, "x")
    _tokens(xf)
    if references is None:
        refs = dinucleotide_shuffle(xf, n_shuffles, rng)
    else:
        refs = as_float_array(references, "references")
        if refs.ndim != 5 or refs.shape[0] != xf.shape[0] or refs.shape[2:] != xf.shape[1:] or refs.shape[1] < 1:
            raise ValueError(f"references must have shape (N, K) + {xf.shape[1:]} = ({xf.shape[0]}, K, ...) with "
                             f"K >= 1, got {refs.shape}")
        refs = refs.astype(xf.dtype, copy=False)
    batch_size = check_batch_size(batch_size)
    N, K = refs.shape[:2]
    xs = np.repeat(xf, K, axis=0)  # row n*K + k: sequence n against its reference k
    rs = refs.reshape((N * K,) + xf.shape[1:])
    scores = np.asarray(model.forward(xf))
    tgt = _rows_target(target, scores, K)
    if method == "deeplift":
        require_layered(model, "shuffled_reference_attributions(method='deeplift')")
        m, sx, sr = _multipliers(model, xs, rs, lambda s: _targets.seed(tgt, s), "rescale", "gradient",
                                 DEEPLIFT_NEAR_ZERO)
        f_x, f_r = _targets.selected(tgt, sx), _targets.selected(tgt, sr)
    else:
        m = _ig_multipliers(model, xs, rs, tgt, steps, quadrature, batch_size)
        f_x, f_r = _targets.selected(tgt, np.asarray(model.forward(xs))), _targets.selected(tgt, model.forward(rs))
    m = np.asarray(m, dtype=np.float64)
    contrib = m * (xs - rs)
    from .inputs import completeness_gap

    delta = completeness_gap(contrib, f_x, f_r).reshape(N, K)
    hyp = hypothetical_contributions(m, rs)
    shape = (N, K) + xf.shape[1:]
    contrib = contrib.reshape(shape).mean(axis=1)
    hyp = hyp.reshape(shape).mean(axis=1)
    return ShuffleAttributions(contrib.astype(xf.dtype, copy=False), hyp.astype(xf.dtype, copy=False),
                               (hyp * xf).astype(xf.dtype, copy=False), delta, refs)


@dataclass
class MotifData:
    """What :func:`embed_motifs` returns.

    Attributes
    ----------
    x : ndarray ``(N, 4, 1, L)``
        One-hot sequences.
    labels : ndarray ``(N, M)`` int64
        How many times motif ``j`` was embedded in sequence ``n``.
    masks : ndarray ``(N, M, L)`` bool
        The positions the embedded copies of motif ``j`` cover.
    """

    x: np.ndarray
    labels: np.ndarray
    masks: np.ndarray


def _motif_tokens(motifs):
    if isinstance(motifs, str):
        motifs = [motifs]
    motifs = list(motifs)
    if not motifs:
        raise ValueError("motifs must be one or more DNA strings")
    tok = [_tokens(one_hot(m))[0] for m in motifs]
    if len({len(t) for t in tok}) != 1:
        raise ValueError(f"motifs must have one length (one Conv2D scans them), got lengths {[len(t) for t in tok]}")
    return np.stack(tok)


def embed_motifs(n, length, motifs, rng, p=0.5, background=(0.25, 0.25, 0.25, 0.25)):
    """Random background sequences with motifs embedded at known places (the simulated data of Shrikumar et al. 2017,
    §4.2, with exact motifs instead of sampled PWMs).

    Each sequence holds each motif once with probability ``p`` (independently), at non-overlapping random positions.
    The background may create an extra chance occurrence; :func:`motif_count_model` counts every occurrence, so the
    labels here are the embedded copies only.

    Parameters
    ----------
    n, length : int
        Sequences and their length ``L`` (room for every motif: ``L >= M · k``).
    motifs : str or list of str
        ``M`` motifs of one length ``k``.
    rng : numpy.random.Generator or int
    p : float
        Probability of embedding each motif in a sequence.
    background : 4 floats
        Base frequencies of the background (``A, C, G, T``).

    Returns
    -------
    MotifData
    """
    gen = as_rng(rng)
    mt = _motif_tokens(motifs)
    M, k = mt.shape
    if length < M * k:
        raise ValueError(f"length {length} leaves no room for {M} motifs of length {k}")
    bg = np.asarray(background, dtype=np.float64)
    if bg.shape != (4,) or (bg < 0).any() or not np.isclose(bg.sum(), 1):
        raise ValueError(f"background must be 4 base frequencies summing to 1, got {background!r}")
    tokens = gen.choice(4, size=(n, length), p=bg)
    present = gen.random((n, M)) < p
    # non-overlapping slots: cut the sequence into M segments of equal length and place motif j in segment σ(j)
    seg = length // M
    slot = np.argsort(gen.random((n, M)), axis=1)  # motif j goes to segment slot[:, j]
    offset = np.floor(gen.random((n, M)) * (seg - k + 1)).astype(np.intp)
    pos = slot * seg + offset  # (n, M) start positions
    masks = np.zeros((n, M, length), dtype=bool)
    cols = pos[:, :, None] + np.arange(k)  # (n, M, k)
    rows = np.broadcast_to(np.arange(n)[:, None, None], cols.shape)
    sel = np.broadcast_to(present[:, :, None], cols.shape)
    tokens[rows[sel], cols[sel]] = np.broadcast_to(mt[None], cols.shape)[sel]
    masks[rows[sel], np.broadcast_to(np.arange(M)[None, :, None], cols.shape)[sel], cols[sel]] = True
    return MotifData(_from_tokens(tokens, np.dtype(np.float64)), present.astype(np.int64), masks)


def motif_count_model(motifs, length):
    """A model whose score ``j`` is the number of exact occurrences of motif ``j`` in a one-hot sequence.

    ``Conv2D(4, M, (1, k))`` with weight 1 on motif ``j``'s base at each offset and bias ``−(k − 1)``, so its output is
    ``1`` at a full match and ``≤ 0`` elsewhere; ``ReLU``; ``GlobalAvgPool2D`` (the mean over the ``L − k + 1``
    windows); ``Dense`` with weight ``(L − k + 1)·I`` (the count).  The ground truth of the synthetic task of
    :func:`embed_motifs`: every occurrence is made of its ``k`` bases, nothing else matters.

    Parameters
    ----------
    motifs : str or list of str
        ``M`` motifs of one length ``k``.
    length : int
        The sequence length ``L``.

    Returns
    -------
    xattr.nn.Sequential ``(N, 4, 1, L) -> (N, M)``
    """
    from .nn import Conv2D, Dense, GlobalAvgPool2D, ReLU, Sequential

    mt = _motif_tokens(motifs)
    M, k = mt.shape
    if length < k:
        raise ValueError(f"length {length} is shorter than the motifs ({k})")
    conv = Conv2D(4, M, (1, k))
    w = np.zeros((M, 4, 1, k))
    w[np.arange(M)[:, None], mt, 0, np.arange(k)[None, :]] = 1.0
    conv.weight, conv.bias = w, np.full(M, -(k - 1.0))
    dense = Dense(M, M)
    dense.weight, dense.bias = (length - k + 1.0) * np.eye(M), np.zeros(M)
    return Sequential(("scan", conv), ("match", ReLU()), ("mean", GlobalAvgPool2D()), ("count", dense))
