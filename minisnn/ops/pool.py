"""Average pooling (LEVEL 1a), PyTorch's ``avg_pool2d`` with no padding and floor mode.

``y[n, c, i, j] = mean of x[n, c, i*sH : i*sH + kH, j*sW : j*sW + kW]``.  The backward pass
spreads each upstream value evenly over its window: ``dx[window] += dy / (kH * kW)``.
Spiking nets use average pooling because it is linear (a fixed convolution), unlike max
pooling.  Both directions are one parallel pass of :mod:`minisnn.kernels.pool` (whose NumPy
references, used without the compiler, add one strided slice per kernel tap;
``tests/naive.py`` holds the loop oracle).
"""

from __future__ import annotations

import numpy as np

from ..kernels._jit import compiled_for
from ..kernels.pool import avg_pool_grad_numba, avg_pool_grad_numpy, avg_pool_numba, avg_pool_numpy
from ._checks import as_float, pair
from .windows import geometry


def avg_pool2d_forward(x, kernel, stride=None):
    """``x (N, C, H, W)`` -> ``(y (N, C, Ho, Wo), cache)``; ``stride`` defaults to ``kernel``."""
    op = "avg_pool2d"
    x = as_float(x, op, "x", ndim=4)
    k = pair(kernel, op, "kernel", 1)
    s = k if stride is None else pair(stride, op, "stride", 1)
    g = geometry(op, x.shape[2], x.shape[3], k, s, (0, 0))
    y = np.empty((x.shape[0], x.shape[1], g.Ho, g.Wo), dtype=x.dtype)
    (avg_pool_numba if compiled_for(x.dtype) else avg_pool_numpy)(np.ascontiguousarray(x), g.kh, g.kw, g.sh, g.sw, y)
    return y, (x.shape, x.dtype, g)


def avg_pool2d_backward(dy, cache):
    """Gradient of :func:`avg_pool2d_forward` with respect to ``x``."""
    shape, dtype, g = cache
    dy = np.ascontiguousarray(dy, dtype=dtype)
    grad = avg_pool_grad_numba if compiled_for(dtype) else avg_pool_grad_numpy
    return grad(dy, g.kh, g.kw, g.sh, g.sw, np.empty(shape, dtype=dtype))


__all__ = ["avg_pool2d_forward", "avg_pool2d_backward"]
