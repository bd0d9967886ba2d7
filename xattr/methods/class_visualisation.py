"""Class model visualisation (Simonyan, Vedaldi & Zisserman 2014, "Deep inside convolutional networks").

Find an image that the network finds typical of class ``c``::

    I* = argmax_I  S_c(I) − λ ‖I‖₂²

by plain gradient ascent, ``S_c`` the class score *before* the softmax.  The paper explains the choice: the
softmax output ``P_c`` can be raised by lowering the other classes' scores, and maximising it visualised
worse; ``softmax=True`` maximises ``log P_c`` instead, to show the difference (on the shipped shapes model the
log-probability ascent makes "square" the top class while *lowering* its score: it pushes the others down).
The regulariser's gradient is ``2 λ I``, so a step is ``I ← I + lr (∂S_c/∂I − 2 λ I)``.  For a linear score
``S_c = w_c·I + b_c`` the optimum is ``I* = w_c / (2 λ)`` (a test pins this).

The start.  The paper starts from the zero image of a network trained on mean-subtracted images, that is
from the mean image.  xattr's models take raw pixels (the shipped ones in ``[0, 1]``), and there the zero
image is far from the data: on the shipped shapes model every first-layer ReLU is off at the zero image
(its first-layer biases are all negative), the gradient is exactly zero and the ascent never moves.  The
default start is therefore the image at the centre of the input range (``0.5``: the shapes data's mean pixel
is 0.497); ``start="zeros"`` gives the literal zero start, ``"uniform"``/``"normal"`` noise from ``rng``, or
pass an array (a data set's mean image).

Optional priors beside the paper's L2, all off by default: total variation (Mahendran & Vedaldi 2015),
jitter and blur (Yosinski et al. 2015).  This is :func:`~xattr.methods.activation_maximisation.\
activation_maximisation` with Simonyan et al.'s choices (class score, plain gradient ascent, L2, no clipping);
use that function for hidden channels, Adam/RMSprop, tf-keras-vis' norm prior and clipping.
"""
from __future__ import annotations

import numbers

import numpy as np

from .activation_maximisation import (
    ActivationMaximisation,
    GradientAscent,
    _positive,
    activation_maximisation,
    class_log_probability,
    class_score,
)

#: the result type (``image``, ``values``, ``objective``, ``penalty``); see :class:`ActivationMaximisation`.
ClassVisualisation = ActivationMaximisation


def class_model_visualisation(
    model, target_class, shape, lam=0.1, lr=0.1, steps=200, start="centre", softmax=False, tv_weight=0.0,
    tv_beta=2.0, jitter=0, blur_sigma=0.0, blur_every=0, input_range=None, rng=None, dtype=np.float64,
):
    """Gradient ascent on ``S_c(I) − λ ‖I‖²`` (Simonyan et al. 2014) from a start that moves.

    Parameters
    ----------
    model : model protocol object
    target_class : int or int array ``(N,)``
        ``c``; one image per class when an array.
    shape : tuple ``(C, H, W)``
        One image's shape.
    lam : float
        ``λ >= 0``, the L2 weight.
    lr : float
        Step size (plain gradient ascent; for a linear model it converges when ``lr · 2λ < 2``).
    steps : int
        Number of ascent steps.
    start : ``"centre"`` (default), ``"zeros"``, ``"uniform"``, ``"normal"`` or an array
        See :func:`~xattr.methods.activation_maximisation.start_image`; the named starts are drawn on
        ``input_range`` (``[0, 1]`` when None).
    softmax : bool
        Maximise ``log P_c`` instead of ``S_c`` (see the module docstring).
    tv_weight, tv_beta : float
        Total-variation prior ``λ_TV TV_β(I)`` (Mahendran & Vedaldi 2015; 0: off).
    jitter : int
        Random roll of up to ``jitter`` pixels per step (0: off).  Needs ``rng``.
    blur_sigma, blur_every : float, int
        Gaussian blur of ``blur_sigma`` pixels every ``blur_every`` steps (0: off).
    input_range : (lo, hi), optional
        Clip every iterate to the model's input range (the paper does not clip: default None).
    rng : numpy.random.Generator or int, optional
        Needed for the noise starts and for ``jitter``.
    dtype : float32 or float64

    Returns
    -------
    ClassVisualisation
        ``(image (N, C, H, W), values (steps + 1, N), objective (steps + 1, N), penalty (steps + 1, N))``:
        ``values`` is ``S_c`` (or ``log P_c``) at every iterate, ``objective`` is ``values − penalty``.
    """
    if isinstance(target_class, bool) or not (
        isinstance(target_class, (numbers.Integral, np.integer))
        or (isinstance(target_class, np.ndarray) and target_class.dtype.kind in "iu")
    ):
        raise TypeError(f"target_class must be an int or an int array (N,), got {type(target_class).__name__}")
    _positive(lam, "lam", allow_zero=True)
    objective = (class_log_probability if softmax else class_score)(target_class)
    return activation_maximisation(
        model, objective, shape, start, steps=steps, optimiser=GradientAscent(lr), l2_weight=lam,
        tv_weight=tv_weight, tv_beta=tv_beta, jitter=jitter, blur_sigma=blur_sigma, blur_every=blur_every,
        input_range=input_range, clip=None if input_range is None else "step", rng=rng, dtype=dtype,
    )
