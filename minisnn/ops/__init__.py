"""LEVEL 1a: differentiable math on arrays, as forward/backward pairs.

Every op is a pair of plain functions in one file: ``name_forward(...) -> (out, cache)`` and
``name_backward(dout, cache) -> grads`` (one per differentiable input, in input order).
No state, no classes: call a pair in a REPL, or check it with :mod:`minisnn.gradcheck`.
(``conv2d_events`` is the one forward-only op: conv2d computed spike by spike, for inference.)
Layout is NCHW; float32 by default, float64 in gradient checks.
"""

from .conv import (
    conv2d_backward,
    conv2d_events,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from .dense import dense_backward, dense_forward
from .losses import (
    bce_backward,
    bce_forward,
    bce_with_logits_backward,
    bce_with_logits_forward,
    dice_backward,
    dice_forward,
    mse_backward,
    mse_forward,
)
from .pool import avg_pool2d_backward, avg_pool2d_forward
from .windows import Geometry, col2im, geometry, im2col, output_size

__all__ = [
    "conv2d_forward", "conv2d_backward", "conv2d_events",
    "conv_transpose2d_forward", "conv_transpose2d_backward",
    "dense_forward", "dense_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "mse_forward", "mse_backward",
    "bce_forward", "bce_backward",
    "bce_with_logits_forward", "bce_with_logits_backward",
    "dice_forward", "dice_backward",
    "Geometry", "geometry", "output_size", "im2col", "col2im",
]
