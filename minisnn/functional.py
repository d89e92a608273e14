"""The ops of :mod:`minisnn.ops` lifted to Tensors (LEVEL 2).

Each function here takes and returns :class:`~minisnn.autodiff.Tensor` objects and records
one :class:`~minisnn.autodiff.Function` node, whose backward is the op's ``*_backward``.
Layers call these; so can you, to write a network or a loss by hand.
"""

from __future__ import annotations

from . import ops
from .autodiff import Tensor, op_function

Conv2dFn = op_function("Conv2dFn", ops.conv2d_forward, ops.conv2d_backward, skips_dx=True)
ConvTranspose2dFn = op_function(
    "ConvTranspose2dFn", ops.conv_transpose2d_forward, ops.conv_transpose2d_backward, skips_dx=True
)
DenseFn = op_function("DenseFn", ops.dense_forward, ops.dense_backward, skips_dx=True)
AvgPool2dFn = op_function("AvgPool2dFn", ops.avg_pool2d_forward, ops.avg_pool2d_backward)
MSEFn = op_function("MSEFn", ops.mse_forward, ops.mse_backward)
BCEFn = op_function("BCEFn", ops.bce_forward, ops.bce_backward)
BCEWithLogitsFn = op_function("BCEWithLogitsFn", ops.bce_with_logits_forward, ops.bce_with_logits_backward)
DiceFn = op_function("DiceFn", ops.dice_forward, ops.dice_backward)


def conv2d(x, w, b=None, stride=1, padding=0, rectify=None) -> Tensor:
    """Tensor version of :func:`minisnn.ops.conv2d_forward`; ``rectify=(gain, amplitude)``
    puts a rectified-linear neuron layer after it, in the same node."""
    return Conv2dFn.apply(x, w, b, stride=stride, padding=padding, rectify=rectify)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0) -> Tensor:
    """Tensor version of :func:`minisnn.ops.conv_transpose2d_forward`."""
    return ConvTranspose2dFn.apply(x, w, b, stride=stride, padding=padding, output_padding=output_padding)


def dense(x, w, b=None) -> Tensor:
    """Tensor version of :func:`minisnn.ops.dense_forward`: ``x @ w.T + b``."""
    return DenseFn.apply(x, w, b)


def avg_pool2d(x, kernel, stride=None) -> Tensor:
    """Tensor version of :func:`minisnn.ops.avg_pool2d_forward`."""
    return AvgPool2dFn.apply(x, kernel=kernel, stride=stride)


def mse_loss(pred, target) -> Tensor:
    """``mean((pred - target)^2)``."""
    return MSEFn.apply(pred, target)


def bce_loss(p, target) -> Tensor:
    """Binary cross-entropy on probabilities (logs clamped at -100, as PyTorch)."""
    return BCEFn.apply(p, target)


def bce_with_logits_loss(z, target) -> Tensor:
    """Binary cross-entropy on logits, numerically stable for any ``z``."""
    return BCEWithLogitsFn.apply(z, target)


def dice_loss(p, target, smooth=1.0) -> Tensor:
    """Soft Dice loss per sample, averaged over the batch (axis 0)."""
    return DiceFn.apply(p, target, smooth=smooth)


__all__ = [
    "conv2d", "conv_transpose2d", "dense", "avg_pool2d",
    "mse_loss", "bce_loss", "bce_with_logits_loss", "dice_loss",
]
