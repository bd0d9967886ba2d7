"""Attribution methods: one file per family, one function per method."""
from .cam import cam, grad_cam, guided_grad_cam, upsample_bilinear
from .gradient import backprop, deconvnet, gradient, gradient_x_input, guided_backprop, reduce_channels

__all__ = [
    "backprop", "gradient", "gradient_x_input", "deconvnet", "guided_backprop", "reduce_channels",
    "cam", "grad_cam", "guided_grad_cam", "upsample_bilinear",
]
