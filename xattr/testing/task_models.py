"""Models with structured outputs for Grad-CAM beyond one class score: a captioner and a policy/value network.

Selvaraju et al. (2017) apply Grad-CAM to any differentiable output of a CNN: on image captioning, to the gradient of a
given caption's log-probability with respect to the last convolutional layer; the same map explains one word of it.
In reinforcement learning the maps explain an agent's action or its value estimate (Joo & Kim 2019 apply Grad-CAM to
deep RL agents playing Atari games; Greydanus et al. 2018 map actor and critic separately; Wang et al. 2016 the value
and advantage streams).  Both are graphs of the layer stack (:class:`xattr.nn.Graph`), so
``xattr.grad_cam`` reads them as any model:

* :func:`captioner`: a CNN encoder and a recurrent decoder unrolled over a given caption (teacher forcing), output
  ``(N, T·V)`` = the word logits of every step; :func:`caption_log_likelihood` is the target (a word's
  log-probability, or the caption's).
* :func:`policy_value_net`: a stack of ``F`` frames as channels (Mnih et al. 2015), a convolutional trunk, and two
  heads concatenated, output ``(N, A + 1)`` = ``A`` action logits and the value (target ``A``).
"""
from __future__ import annotations

import copy

import numpy as np

from .._conventions import count
from ..nn import Add, Concat, Conv2D, Dense, Flatten, GlobalAvgPool2D, Graph, ReLU, Tanh

__all__ = ["captioner", "caption_log_likelihood", "policy_value_net"]


def _check_caption(caption, vocab_size):
    c = np.asarray(caption)
    if c.dtype.kind not in "iu" or c.ndim != 1 or c.size == 0:
        raise ValueError(f"caption must be a non-empty 1-D int array of word ids, got {caption!r}")
    if (c < 0).any() or (c >= vocab_size).any():
        raise ValueError(f"caption ids must lie in 0..{vocab_size - 1}, got {c.tolist()}")
    return c.astype(np.intp)


def captioner(caption, vocab_size, channels=3, features=8, hidden=8, bos=0, rng=0):
    """A captioning model for one given caption: ``(N, C, H, W) -> (N, T·V)`` word logits of every step.

    Encoder: ``Conv2D(C, K, 3, padding=1)`` → ReLU (node ``"features"``, the Grad-CAM layer) → global average pool →
    ``h`` (``K``).  Decoder (an Elman RNN, unrolled for the ``T`` words, its weights shared by every step; the previous
    word comes from the given caption, as a captioning model scores a caption, with ``bos`` before the first)::

        s_t = tanh(U s_{t−1} + V h + E[y_{t−1}]),  s_{−1} = 0,      logits_t = W s_t + b

    The word embedding ``E[y_{t−1}]`` enters as the bias of step ``t``'s ``U`` layer, so the model is a deterministic
    function of the image for this caption.  Nodes: ``"step{t}"`` (``s_t``), ``"logits{t}"``, output ``"words"``.

    Parameters
    ----------
    caption : int array ``(T,)``
    vocab_size : int
    channels, features, hidden : int
        ``C``, ``K`` and the state size.
    bos : int
        The start token.
    rng : int or numpy.random.Generator

    Returns
    -------
    xattr.nn.Graph
    """
    V = count(vocab_size, "vocab_size")
    cap = _check_caption(caption, V)
    gen = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    K, H = count(features, "features"), count(hidden, "hidden")
    emb = gen.normal(0.0, 1.0, (V, H))
    U = Dense(H, H, rng=gen)
    W = Dense(H, V, rng=gen)
    W.bias = gen.normal(0.0, 0.1, V)
    prev = np.r_[bos, cap[:-1]]
    nodes = [("conv", Conv2D(channels, K, 3, padding=1, rng=gen), "input"), ("features", ReLU(), "conv"),
             ("pool", GlobalAvgPool2D(), "features"), ("Vh", Dense(K, H, rng=gen), "pool")]
    state = None
    for t, word in enumerate(prev):
        u = copy.deepcopy(U)
        if state is None:  # s_{-1} = 0: U s_{-1} vanishes; the embedding is added to V h by a fixed identity layer
            u = Dense(H, H)
            u.weight = np.eye(H)
            u.bias = emb[word]
            nodes.append((f"pre{t}", u, "Vh"))
        else:
            u.bias = emb[word]
            nodes += [(f"U{t}", u, state), (f"pre{t}", Add(), (f"U{t}", "Vh"))]
        nodes += [(f"step{t}", Tanh(), f"pre{t}"), (f"logits{t}", copy.deepcopy(W), f"step{t}")]
        state = f"step{t}"
    T = len(cap)
    out = [f"logits{t}" for t in range(T)]
    nodes.append(("words", Concat(axis=1), out) if T > 1 else ("words", Flatten(), out[0]))
    return Graph(nodes, output="words")


def caption_log_likelihood(caption, vocab_size, step=None):
    """The target ``log p(caption)`` (``Σ_t log softmax(logits_t)[y_t]``) or, with ``step``, ``log p(y_step | …)``.

    A callable on the scores ``(N, T·V)`` of :func:`captioner` (written with ``autograd.numpy``), returning ``(N,)``.

    Parameters
    ----------
    caption : int array ``(T,)``
    vocab_size : int
    step : int, optional
        One word's log-probability instead of the whole caption's.

    Returns
    -------
    callable
    """
    import autograd.numpy as anp

    V = count(vocab_size, "vocab_size")
    cap = _check_caption(caption, V)
    T = len(cap)
    if step is not None and not (isinstance(step, (int, np.integer)) and 0 <= step < T):
        raise ValueError(f"step must be an int in 0..{T - 1}, got {step!r}")
    steps = np.arange(T) if step is None else np.array([step])

    def log_likelihood(scores):
        if scores.ndim != 2 or scores.shape[1] != T * V:
            raise ValueError(f"scores must be (N, T·V) = (N, {T * V}) for a caption of {T} words, got {scores.shape}")
        z = anp.reshape(scores, (scores.shape[0], T, V))
        z = z - anp.max(z, axis=2, keepdims=True)
        logp = z - anp.log(anp.sum(anp.exp(z), axis=2, keepdims=True))
        return anp.sum(logp[:, steps, cap[steps]], axis=1)

    return log_likelihood


def policy_value_net(frames=4, actions=3, size=12, channels=8, hidden=16, rng=0):
    """An actor-critic network: ``F`` stacked frames ``(N, F, S, S)`` → ``(N, A + 1)`` (``A`` action logits, then the
    value).

    ``Conv2D(F, c, 3, padding=1)`` → ReLU → ``Conv2D(c, c, 3, padding=1)`` → ReLU (node ``"features"``) → Flatten →
    ``Dense`` → ReLU (node ``"trunk"``) → the heads ``"policy"`` ``Dense(hidden, A)`` and ``"value"``
    ``Dense(hidden, 1)``, concatenated (node ``"out"``).  ``grad_cam(model, x, target=a)`` explains action ``a``'s
    logit, ``target=A`` the value.

    Parameters
    ----------
    frames, actions, size, channels, hidden : int
    rng : int or numpy.random.Generator

    Returns
    -------
    xattr.nn.Graph
    """
    F, A, S = count(frames, "frames"), count(actions, "actions"), count(size, "size")
    c, h = count(channels, "channels"), count(hidden, "hidden")
    gen = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    return Graph([
        ("conv1", Conv2D(F, c, 3, padding=1, rng=gen), "input"), ("relu1", ReLU(), "conv1"),
        ("conv2", Conv2D(c, c, 3, padding=1, rng=gen), "relu1"), ("features", ReLU(), "conv2"),
        ("flat", Flatten(), "features"), ("fc", Dense(c * S * S, h, rng=gen), "flat"), ("trunk", ReLU(), "fc"),
        ("policy", Dense(h, A, rng=gen), "trunk"), ("value", Dense(h, 1, rng=gen), "trunk"),
        ("out", Concat(axis=1), ("policy", "value")),
    ], output="out")
