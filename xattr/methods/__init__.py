"""Attribution methods: one file per family, one function per method."""
from .cam import cam, grad_cam, guided_grad_cam, upsample_bilinear
from .cam_family import (
    ablation_cam, eigen_cam, faster_score_cam, grad_cam_plus_plus, hires_cam, layer_cam, score_cam, xgrad_cam,
)
from .gradient import backprop, deconvnet, gradient, gradient_x_input, guided_backprop, reduce_channels
from .deeplift import deeplift, deepshap
from .lrp import COMPOSITES, lrp
from .perturbation import kernel_shap, lime, occlusion, shapley
from .prediction_difference import _registered as _prediction_difference_entry  # the module keeps its name
from .registry import available_methods, get_method, register_method
from .segments import grid_segments, slic_segments
from .class_visualisation import class_model_visualisation
from .activation_maximisation import activation_maximisation
from .path import (
    exact_integrated_gradients, expected_gradients, expected_gradients_exact, integrated_gradients, quadrature_rule,
    saturation,
)
from .smoothing import noise_scale, smoothgrad, smoothgrad_gradient, smoothgrad_squared_gradient, vargrad_gradient

for _name, _fn in [
    ("gradient", gradient), ("gradient_x_input", gradient_x_input), ("deconvnet", deconvnet),
    ("guided_backprop", guided_backprop), ("cam", cam), ("grad_cam", grad_cam), ("guided_grad_cam", guided_grad_cam),
]:
    register_method(_name, _fn, "gradient" if "cam" not in _name else "cam")
# the CAM family (xattr/methods/cam_family.py), one line each
register_method("grad_cam_plus_plus", grad_cam_plus_plus, "cam")
register_method("score_cam", score_cam, "cam")
register_method("faster_score_cam", faster_score_cam, "cam")
register_method("layer_cam", layer_cam, "cam")
register_method("xgrad_cam", xgrad_cam, "cam")
register_method("hires_cam", hires_cam, "cam")
register_method("eigen_cam", eigen_cam, "cam")
register_method("ablation_cam", ablation_cam, "cam")
for _name, _fn in [("deeplift", deeplift), ("deepshap", deepshap), ("lrp", lrp)]:
    register_method(_name, _fn, "relevance")
for _name, _fn in [("occlusion", occlusion), ("lime", lime), ("kernel_shap", kernel_shap), ("shapley", shapley)]:
    register_method(_name, _fn, "perturbation")
register_method("prediction_difference", _prediction_difference_entry, "perturbation")  # stated default seed 0
# path and noise methods; expected gradients needs references and is not registered (every registry entry
# must run as fn(model, x, target)); the SmoothGrad entries wrap the gradient with a stated default seed 0.
register_method("integrated_gradients", integrated_gradients, "path")
for _name, _fn in [("smoothgrad", smoothgrad_gradient), ("smoothgrad_squared", smoothgrad_squared_gradient),
                   ("vargrad", vargrad_gradient)]:
    register_method(_name, _fn, "smoothing")

__all__ = [
    "backprop", "gradient", "gradient_x_input", "deconvnet", "guided_backprop", "reduce_channels",
    "cam", "grad_cam", "guided_grad_cam", "upsample_bilinear",
    "grad_cam_plus_plus", "score_cam", "faster_score_cam", "layer_cam", "xgrad_cam", "hires_cam", "eigen_cam",
    "ablation_cam",
    "deeplift", "deepshap", "lrp", "COMPOSITES",
    "available_methods", "get_method", "register_method",
    "occlusion", "lime", "kernel_shap", "shapley", "grid_segments", "slic_segments",
    "integrated_gradients", "exact_integrated_gradients", "quadrature_rule", "expected_gradients",
    "expected_gradients_exact", "saturation", "smoothgrad", "noise_scale", "class_model_visualisation",
    "activation_maximisation",
]
