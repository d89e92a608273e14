"""Average pooling, forward and backward, in one parallel pass each (LEVEL 1b).

``y[n, c, i, j] = mean of x[n, c, i*sh : i*sh + kh, j*sw : j*sw + kw]`` (no padding), and its
adjoint, which spreads ``dy / (kh * kw)`` evenly over each window.  The references are
:mod:`minisnn.ops.pool`'s original code: one strided slice per kernel tap, added up in tap
order, each on one thread.  The kernels add in the same order, in the array's own dtype, so
the two agree bit for bit; they are parallel over (image, channel) planes, each iteration
writing only its own plane.
"""

from __future__ import annotations

import numpy as np

from ._jit import pjit, prange


def avg_pool_numpy(x, kh, kw, sh, sw, out):
    """Reference: ``out (N, C, Ho, Wo)`` <- the window means of ``x (N, C, H, W)``."""
    Ho, Wo = out.shape[2:]
    out[...] = 0
    for ky in range(kh):
        for kx in range(kw):
            out += x[:, :, ky : ky + sh * Ho : sh, kx : kx + sw * Wo : sw]
    out *= out.dtype.type(1.0 / (kh * kw))
    return out


@pjit
def avg_pool_numba(x, kh, kw, sh, sw, out):
    """Numba twin of :func:`avg_pool_numpy` (same signature, same numbers)."""
    N, C, Ho, Wo = out.shape
    scale = out.dtype.type(1.0 / (kh * kw))
    for plane in prange(N * C):
        src = x[plane // C, plane % C]
        dst = out[plane // C, plane % C]
        dst[:, :] = 0
        for ky in range(kh):
            for kx in range(kw):
                for i in range(Ho):
                    row = src[i * sh + ky]
                    for j in range(Wo):
                        dst[i, j] += row[j * sw + kx]
        for i in range(Ho):
            for j in range(Wo):
                dst[i, j] *= scale
    return out


def avg_pool_grad_numpy(dy, kh, kw, sh, sw, out):
    """Reference adjoint: ``out (N, C, H, W)`` <- ``dy / (kh * kw)`` added onto every window."""
    Ho, Wo = dy.shape[2:]
    out[...] = 0
    share = dy / out.dtype.type(kh * kw)
    for ky in range(kh):
        for kx in range(kw):
            out[:, :, ky : ky + sh * Ho : sh, kx : kx + sw * Wo : sw] += share
    return out


@pjit
def avg_pool_grad_numba(dy, kh, kw, sh, sw, out):
    """Numba twin of :func:`avg_pool_grad_numpy` (same signature, same numbers)."""
    N, C, Ho, Wo = dy.shape
    count = out.dtype.type(kh * kw)
    for plane in prange(N * C):
        src = dy[plane // C, plane % C]
        dst = out[plane // C, plane % C]
        dst[:, :] = 0
        for ky in range(kh):
            for kx in range(kw):
                for i in range(Ho):
                    row = dst[i * sh + ky]
                    for j in range(Wo):
                        row[j * sw + kx] += src[i, j] / count
    return out


def _example_pool(rng):
    # overlapping windows (stride 1 < kernel 2 down) and a remainder row and column left out
    return rng.standard_normal((2, 3, 6, 7)), 2, 3, 1, 2, np.empty((2, 3, 5, 3))


def _example_pool_grad(rng):
    return rng.standard_normal((2, 3, 5, 3)), 2, 3, 1, 2, np.empty((2, 3, 6, 7))


from . import register  # noqa: E402

register("avg_pool", avg_pool_numpy, avg_pool_numba, _example_pool)
register("avg_pool_grad", avg_pool_grad_numpy, avg_pool_grad_numba, _example_pool_grad)
