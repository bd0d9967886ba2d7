"""xattr: the reference implementation of pixel-attribution methods, in plain NumPy.

Quick start::

    import numpy as np, xattr
    from xattr.nn import Sequential, Conv2D, ReLU, MaxPool2D, GlobalAvgPool2D, Dense
    model = Sequential(Conv2D(3, 8, 3, padding=1, rng=0), ReLU(), MaxPool2D(2),
                       Conv2D(8, 16, 3, padding=1, rng=1), ReLU(), GlobalAvgPool2D(), Dense(16, 10, rng=2))
    x = np.random.default_rng(0).random((2, 3, 32, 32))
    saliency = xattr.gradient(model, x, target=3)          # (2, 3, 32, 32)
    heat = xattr.grad_cam(model, x, target=3)              # (2, 1, 32, 32)
"""
from . import nn
from ._conventions import KINK_POLICY, MAXPOOL_TIE_POLICY, RELU_GRAD_AT_ZERO
from ._errors import XattrError
from .methods import (
    ablation_cam,
    activation_maximisation,
    backprop,
    cam,
    class_model_visualisation,
    deconvnet,
    deeplift,
    deepshap,
    eigen_cam,
    exact_integrated_gradients,
    expected_gradients,
    expected_gradients_exact,
    faster_score_cam,
    grad_cam,
    grad_cam_plus_plus,
    gradient,
    gradient_x_input,
    grid_segments,
    guided_backprop,
    guided_grad_cam,
    hires_cam,
    integrated_gradients,
    kernel_shap,
    layer_cam,
    lime,
    lrp,
    occlusion,
    reduce_channels,
    saturation,
    score_cam,
    shapley,
    slic_segments,
    smoothgrad,
    xgrad_cam,
)
from .methods.prediction_difference import prediction_difference
from .methods.registry import available_methods, get_method
from .model import FunctionModel, check_model, from_function
from .nn import rule_table

__version__ = "0.1.0"

#: Subpackages and modules reachable from ``xattr`` without importing them first (``xattr.io.from_torch``).
#: Each is imported on first access (PEP 562): importing them all up front would make ``import xattr``
#: several times slower (``xattr.evaluation`` alone loads scipy.stats).
_LAZY_SUBMODULES = ("batch", "cli", "conformance", "data", "evaluation", "genomics", "io", "models", "testing",
                    "text", "viz")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")  # also binds it here: later accesses are plain
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))


__all__ = [
    "nn", "XattrError", "from_function", "FunctionModel", "check_model", "rule_table",
    "backprop", "gradient", "gradient_x_input", "deconvnet", "guided_backprop", "reduce_channels",
    "cam", "grad_cam", "guided_grad_cam", "deeplift", "deepshap", "lrp", "available_methods", "get_method",
    "MAXPOOL_TIE_POLICY", "RELU_GRAD_AT_ZERO", "KINK_POLICY",
    "occlusion", "lime", "kernel_shap", "shapley", "grid_segments", "slic_segments", "prediction_difference",
    "integrated_gradients", "exact_integrated_gradients", "expected_gradients", "expected_gradients_exact",
    "saturation", "smoothgrad", "class_model_visualisation", "activation_maximisation",
    "grad_cam_plus_plus", "score_cam", "faster_score_cam", "layer_cam", "xgrad_cam", "hires_cam", "eigen_cam",
    "ablation_cam",
]
