"""Attribution methods: one file per family, one function per method, each registered beside its function by a
:class:`~xattr.methods.registry.MethodSpec` (importing a module registers its methods; the order below is the
registry's)."""
# importing a method's module registers it: this order is the registry's (xattr.available_methods)
# isort: off
from .gradient import backprop, deconvnet, gradient, gradient_x_input, guided_backprop, reduce_channels
from .cam import cam, grad_cam, guided_grad_cam, upsample_bilinear
from .cam_family import (
    ablation_cam, eigen_cam, faster_score_cam, grad_cam_plus_plus, hires_cam, layer_cam, score_cam, xgrad_cam,
)
from .deeplift import deeplift, deepshap
from .lrp import COMPOSITES, lrp
from .perturbation import kernel_shap, lime, occlusion, shapley
from . import prediction_difference as _prediction_difference  # noqa: F401  (registers it; the module keeps its name)
from .registry import MethodSpec, available_methods, get_method, get_spec, register, register_method, specs
from .segments import grid_segments, slic_segments
from .class_visualisation import class_model_visualisation
from .activation_maximisation import activation_maximisation
from .path import (
    exact_integrated_gradients, expected_gradients, expected_gradients_exact, integrated_gradients, quadrature_rule,
    saturation,
)
from .smoothing import noise_scale, smoothgrad, smoothgrad_gradient, smoothgrad_squared_gradient, vargrad_gradient
# isort: on

# Every other module or package here registers its methods when imported: a new method is one new file (its
# function and its MethodSpec), found without a line added here; registered after the ones above, by file name.
import importlib as _importlib  # noqa: E402  (after the ordered imports above, on purpose)
import pkgutil as _pkgutil  # noqa: E402

for _module in _pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "backprop", "gradient", "gradient_x_input", "deconvnet", "guided_backprop", "reduce_channels",
    "cam", "grad_cam", "guided_grad_cam", "upsample_bilinear",
    "grad_cam_plus_plus", "score_cam", "faster_score_cam", "layer_cam", "xgrad_cam", "hires_cam", "eigen_cam",
    "ablation_cam",
    "deeplift", "deepshap", "lrp", "COMPOSITES",
    "available_methods", "get_method", "register_method", "register", "get_spec", "specs", "MethodSpec",
    "occlusion", "lime", "kernel_shap", "shapley", "grid_segments", "slic_segments",
    "integrated_gradients", "exact_integrated_gradients", "quadrature_rule", "expected_gradients",
    "expected_gradients_exact", "saturation", "smoothgrad", "noise_scale", "class_model_visualisation",
    "activation_maximisation", "smoothgrad_gradient", "smoothgrad_squared_gradient", "vargrad_gradient",
]
