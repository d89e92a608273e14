"""Average pooling (LEVEL 1a), PyTorch's ``avg_pool2d`` with no padding and floor mode.

``y[n, c, i, j] = mean of x[n, c, i*sH : i*sH + kH, j*sW : j*sW + kW]``.  The backward pass
spreads each upstream value evenly over its window: ``dx[window] += dy / (kH * kW)``.
Spiking nets use average pooling because it is linear (a fixed convolution), unlike max
pooling.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_float, pair
from .windows import geometry


def avg_pool2d_forward(x, kernel, stride=None):
    """``x (N, C, H, W)`` -> ``(y (N, C, Ho, Wo), cache)``; ``stride`` defaults to ``kernel``."""
    op = "avg_pool2d"
    x = as_float(x, op, "x", ndim=4)
    k = pair(kernel, op, "kernel", 1)
    s = k if stride is None else pair(stride, op, "stride", 1)
    g = geometry(op, x.shape[2], x.shape[3], k, s, (0, 0))
    # one strided slice per kernel tap, added up: kH * kW passes of plain array adds, several
    # times faster than a mean over small window axes (the mirror image of the backward pass;
    # tests/naive.py holds the loop reference it is tested against)
    y = np.zeros((x.shape[0], x.shape[1], g.Ho, g.Wo), dtype=x.dtype)
    for ky in range(g.kh):
        for kx in range(g.kw):
            y += x[:, :, ky : ky + g.sh * g.Ho : g.sh, kx : kx + g.sw * g.Wo : g.sw]
    y *= x.dtype.type(1.0 / (g.kh * g.kw))
    return y, (x.shape, x.dtype, g)


def avg_pool2d_backward(dy, cache):
    """Gradient of :func:`avg_pool2d_forward` with respect to ``x``."""
    shape, dtype, g = cache
    dx = np.zeros(shape, dtype=dtype)
    share = (dy / (g.kh * g.kw)).astype(dtype, copy=False)
    for ky in range(g.kh):
        for kx in range(g.kw):
            dx[:, :, ky : ky + g.sh * g.Ho : g.sh, kx : kx + g.sw * g.Wo : g.sw] += share
    return dx


__all__ = ["avg_pool2d_forward", "avg_pool2d_backward"]
