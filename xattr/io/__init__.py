"""Bring models from other frameworks into xattr (float64 weights, same function).

* :func:`from_torch` — a ``torch.nn.Module`` (torchvision's ResNet, MobileNet, DenseNet, ...) traced with
  torch.fx (needs the ``xattr-ref[torch]`` extra; torch is imported only inside the function).
* :func:`from_onnx` — an ONNX file (or bytes / ``ModelProto``) of the supported operators, from either of
  torch's exporters (needs the ``xattr-ref[onnx]`` extra).

Both return an :class:`xattr.nn.Graph` (a :class:`xattr.nn.Sequential` for a chain) whose nodes keep the
source's names (the torch module path such as ``"features.3"`` or ``"layer3.1.conv2"``), so a layer
chosen in the source (e.g. Captum's ``LayerGradCam`` layer) is found under the same name in xattr.
Anything that cannot be represented exactly raises :class:`ConversionError` naming the
layer or operator; nothing is approximated silently.

* :func:`from_keras` — a Keras 3 ``.keras`` file (Sequential or functional), read with h5py alone: no TensorFlow
  (needs the ``xattr-ref[keras]`` extra); channels-last weights transposed to xattr's layouts.

* :func:`read_state_dict` — a ``torch.save``-d state dict (zip or legacy layout) as NumPy arrays,
  **without torch**, through an unpickler that only knows the globals a state dict needs
  (:mod:`xattr.io.torchfile`).
"""
from ._common import ConversionError
from ._keras import from_keras
from ._onnx import from_onnx
from ._torch import from_torch
from .torchfile import TorchFileError, read_state_dict

__all__ = ["ConversionError", "from_torch", "from_onnx", "from_keras", "read_state_dict", "TorchFileError"]
