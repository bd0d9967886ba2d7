"""EfficientNet-Lite0 in torch (functional, float64), for tests only: the oracle the xattr graph is checked against.

Written from the paper's block (MobileNetV2's inverted residual, Sandler et al. 2018, as used by
Tan & Le 2019) and TF's "SAME" padding, reading only the block list (kernel, stride, expansion) of
:data:`xattr.models.efficientnet_lite0.BLOCKS`; the shapes of the state dict and the photographs'
classes in tests/test_efficientnet_lite0.py check that list.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from xattr.models.efficientnet_lite0 import BLOCKS, BN_EPS


def _same(x, k, s):
    """Pad ``x`` ``(N, C, H, W)`` as TF "SAME": output ceil(H/s), the odd pixel after."""
    h, w = x.shape[-2:]
    ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
    pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class TorchEfficientNetLite0:
    """``model(x)`` -> logits ``(N, 1000)`` for inputs ``(N, 3, H, W)`` already normalised ((255x - 127) / 128)."""

    def __init__(self, state_dict, dtype=torch.float64):
        self.p = {k: torch.from_numpy(np.asarray(v)).to(dtype) for k, v in state_dict.items()
                  if not k.endswith("num_batches_tracked")}
        self.dtype = dtype

    def _conv(self, x, key, stride=1, groups=1):
        w = self.p[key]
        return F.conv2d(_same(x, w.shape[-1], stride), w, stride=stride, groups=groups)

    def _bn(self, x, prefix):
        p = self.p
        return F.batch_norm(x, p[f"{prefix}.running_mean"], p[f"{prefix}.running_var"], p[f"{prefix}.weight"],
                            p[f"{prefix}.bias"], training=False, eps=BN_EPS)

    @staticmethod
    def _relu6(x):
        return torch.clamp(x, 0.0, 6.0)

    def features(self, x):
        """The head's activations ``(N, 1280, 7, 7)`` (after its ReLU6) at 224×224."""
        x = self._relu6(self._bn(self._conv(x, "_conv_stem.weight", stride=2), "_bn0"))
        for b in BLOCKS:
            p, inp = f"_blocks.{b.index}", x
            if b.expand != 1:
                x = self._relu6(self._bn(self._conv(x, f"{p}._expand_conv.weight"), f"{p}._bn0"))
            x = self._relu6(self._bn(self._conv(x, f"{p}._depthwise_conv.weight", b.stride, groups=x.shape[1]),
                                     f"{p}._bn1"))
            x = self._bn(self._conv(x, f"{p}._project_conv.weight"), f"{p}._bn2")
            if b.stride == 1 and inp.shape[1] == x.shape[1]:
                x = x + inp
        return self._relu6(self._bn(self._conv(x, "_conv_head.weight"), "_bn1"))

    def __call__(self, x):
        x = torch.as_tensor(x, dtype=self.dtype)
        return F.linear(self.features(x).mean(dim=(2, 3)), self.p["_fc.weight"], self.p["_fc.bias"])
