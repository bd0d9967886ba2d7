"""Attribution methods: one file per family, one function per method."""
from .cam import cam, grad_cam, guided_grad_cam, upsample_bilinear
from .gradient import backprop, deconvnet, gradient, gradient_x_input, guided_backprop, reduce_channels
from .deeplift import deeplift, deepshap
from .lrp import COMPOSITES, lrp
from .registry import available_methods, get_method, register_method

for _name, _fn in [
    ("gradient", gradient), ("gradient_x_input", gradient_x_input), ("deconvnet", deconvnet),
    ("guided_backprop", guided_backprop), ("cam", cam), ("grad_cam", grad_cam), ("guided_grad_cam", guided_grad_cam),
]:
    register_method(_name, _fn, "gradient" if "cam" not in _name else "cam")
for _name, _fn in [("deeplift", deeplift), ("deepshap", deepshap), ("lrp", lrp)]:
    register_method(_name, _fn, "relevance")

__all__ = [
    "backprop", "gradient", "gradient_x_input", "deconvnet", "guided_backprop", "reduce_channels",
    "cam", "grad_cam", "guided_grad_cam", "upsample_bilinear",
    "deeplift", "deepshap", "lrp", "COMPOSITES",
    "available_methods", "get_method", "register_method",
]
