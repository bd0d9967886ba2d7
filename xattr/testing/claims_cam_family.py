"""Claims of the CAM family (Grad-CAM++, Score-CAM, Faster Score-CAM, LayerCAM, XGrad-CAM, HiResCAM,
Eigen-CAM and Ablation-CAM of xattr/methods/cam_family.py), merged into :data:`CLAIMS`.

Measured with every check of :data:`xattr.testing.checks.CHECKS` on the default cases; each violation says why.
"""
from __future__ import annotations

from .claims import _COARSE, _NOT_SUM, _core

#: the rescaled twin multiplies the explained node's output by c (on the ResNet both inputs of the residual Add)
#: and the next weighted layer by 1/c: the same function, activations c·A at the node
_TIMES_C = ("on the rescaled twin (the node's output times c, the next weighted layer times 1/c: the same function) "
            "the map comes out multiplied by c: ")
_SUM_OF_A = (_TIMES_C + "the weights are scores of masked inputs, and the masks s(Up(A_k)) are min-max normalised "
             "(Wang et al. 2020), so the weights stay, while M = Σ_k w_k A_k sums the activations, now c·A_k "
             "(Grad-CAM's gradient weights scale by 1/c and cancel it)")
_MASKS_SHIFT = ("the masks multiply the input: (x + c) ∘ H_k is not (x ∘ H_k) + c, so the twin that absorbs the "
                "shift in its first bias scores other masked images (Kindermans et al. 2019)")
_SCORES_NOT_LINEAR = ("the weights are scores of masked inputs (through a softmax by default), and the masks change "
                      "every score the combined model reads: not linear in f")
_NO_RELU = {"method_kwargs": {"relu": False}}
_RELU_CLIPS = "the final ReLU clips the map; without it (relu=False) the map is linear in f"

CAM_FAMILY_CLAIMS = {
    "grad_cam_plus_plus": _core(
        {"implementation_invariance": {}, "sensitivity": {}, "symmetry": {}, "input_shift_invariance": {}},
        {"completeness": _NOT_SUM, "dummy": _COARSE,
         "linearity": "α = g²/(2g² + ΣA·g³) is not linear in the gradient, and exp(S) scales each image's map "
                      "(Chattopadhay et al. 2018, Eq. 19), with or without the final ReLU"},
    ),
    "score_cam": _core(
        {"sensitivity": {}, "symmetry": {}},
        {"completeness": _NOT_SUM, "dummy": _COARSE, "implementation_invariance": _SUM_OF_A,
         "linearity": _SCORES_NOT_LINEAR, "input_shift_invariance": _MASKS_SHIFT},
    ),
    "faster_score_cam": _core(
        {"sensitivity": {}, "symmetry": {}},
        {"completeness": _NOT_SUM, "dummy": _COARSE,
         "implementation_invariance": _SUM_OF_A + "; the top-k by spatial std stay the same (every std is c times)",
         "linearity": _SCORES_NOT_LINEAR, "input_shift_invariance": _MASKS_SHIFT},
        method_kwargs={"k": 1},  # the top channel only: the selection is exercised on every case
    ),
    "layer_cam": _core(
        {"implementation_invariance": {}, "sensitivity": {}, "symmetry": {}, "input_shift_invariance": {}},
        {"completeness": _NOT_SUM, "dummy": _COARSE,
         "linearity": "ReLU(∂S/∂A) clips the gradient before weighting (Jiang et al. 2021): not linear in f, "
                      "with or without the final ReLU"},
    ),
    "xgrad_cam": _core(
        {"implementation_invariance": {}, "sensitivity": {}, "symmetry": {}, "input_shift_invariance": {},
         "linearity:no_relu": _NO_RELU},
        {"completeness": _NOT_SUM, "dummy": _COARSE, "linearity": _RELU_CLIPS},
    ),
    "hires_cam": _core(
        {"implementation_invariance": {}, "sensitivity": {}, "symmetry": {}, "input_shift_invariance": {},
         "linearity:no_relu": _NO_RELU},
        {"completeness": "the map is Σ_k ∂S/∂A_k ⊙ A_k at a hidden node: it sums to S − b only when the layers "
                         "after the node are linear (Draelos & Carin 2020), not to f(x) − f(baseline)",
         "dummy": _COARSE, "linearity": _RELU_CLIPS},
    ),
    "eigen_cam": _core(
        {"sensitivity": {}, "symmetry": {}, "input_shift_invariance": {}},
        {"completeness": _NOT_SUM, "dummy": _COARSE,
         "implementation_invariance": _TIMES_C + "M = F v₁ projects the activations themselves (Muhammad & Yeasin "
                                      "2020): F becomes c·F, v₁ stays and nothing cancels c (a twin that scaled "
                                      "channels unequally would also turn v₁)",
         "linearity": "a principal direction of the activations: class-agnostic, it does not depend on the "
                      "explained function at all (Muhammad & Yeasin 2020)"},
    ),
    "ablation_cam": _core(
        {"sensitivity": {}, "symmetry": {}, "input_shift_invariance": {}},
        {"completeness": _NOT_SUM, "dummy": _COARSE,
         "implementation_invariance": _TIMES_C + "the slopes w_k = (y − y_k)/y are the same (same function; the "
                                      "ablated value 0 stays 0), but M = Σ_k w_k A_k sums the activations, now c·A_k "
                                      "(Desai & Ramaswamy 2020, Eq. 3: no gradient to cancel c)",
         "linearity": "w_k = (y − y_k)/y divides by the score (Desai & Ramaswamy 2020, Eq. 3): A(2f) = A(f)"},
    ),
}
