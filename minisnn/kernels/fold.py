"""Folding the batch into the columns and back, with the bias fused in (LEVEL 1b).

A convolution over small planes runs as *one* GEMM for the whole batch, its columns laid out
``(K, N*P)`` (see :data:`minisnn.ops.conv.FOLD_BELOW`).  Its result comes out ``(M, N*P)``
and must become ``(N, M, P)`` (NCHW) plus the bias, and in the backward pass the upstream
gradient must go the other way, with the bias gradient being its sum per channel.  In NumPy
that is a transposing copy and a separate pass for the bias or the sum, each on one thread.
These kernels do each direction in one parallel pass::

    unfold(r (M, N*P), bias) -> out (N, M, P):  out[n, m, p] = r[m, n*P + p] + bias[m]
    fold(a (N, M, P))        -> out (M, N*P):   out[m, n*P + p] = a[n, m, p]
                                 and sums[m] = sum over (n, p) of a[n, m, p]

``unfold`` does NumPy's arithmetic (one float add per element), so kernel and reference agree
bit for bit.  ``fold``'s sums add each (channel, image) row in float64, then the rows in
image order: a fixed order whatever the thread count, but not NumPy's pairwise one, so the
two agree to rounding.  Parallel over (image, channel) rows; each writes its own output.
"""

from __future__ import annotations

import numpy as np

from ._jit import pjit, prange


def unfold_numpy(r, bias, out):
    """Reference: ``out (N, M, P)`` <- ``r (M, N*P)`` with the batch taken out of the columns,
    plus ``bias (M,)`` (an empty array: no bias).  Returns ``out``."""
    N, M, P = out.shape
    out[...] = r.reshape(M, N, P).transpose(1, 0, 2)
    if bias.size:
        out += bias[:, None]
    return out


@pjit
def unfold_numba(r, bias, out):
    """Numba twin of :func:`unfold_numpy` (same signature, same numbers)."""
    N, M, P = out.shape
    has_bias = bias.size > 0
    for item in prange(N * M):
        n = item // M
        m = item % M
        src = r[m, n * P : (n + 1) * P]
        dst = out[n, m]
        if has_bias:
            b = bias[m]
            for p in range(P):
                dst[p] = src[p] + b
        else:
            dst[:] = src
    return out


def fold_numpy(a, out, sums):
    """Reference: ``out (M, N*P)`` <- ``a (N, M, P)`` with the batch put into the columns, and
    ``sums (M,)`` <- the sum of each channel over images and positions (an empty ``sums``:
    not wanted).  Returns ``(out, sums)``."""
    N, M, P = a.shape
    out.reshape(M, N, P)[...] = a.transpose(1, 0, 2)
    if sums.size:
        sums[...] = a.astype(np.float64).sum(axis=2).sum(axis=0)
    return out, sums


@pjit
def fold_numba(a, out, sums):
    """Numba twin of :func:`fold_numpy` (sums in another order: equal to rounding)."""
    N, M, P = a.shape
    want_sums = sums.size > 0
    row_sums = np.zeros((M, N))
    for item in prange(N * M):
        n = item // M
        m = item % M
        src = a[n, m]
        out[m, n * P : (n + 1) * P] = src
        if want_sums:
            s = 0.0
            for p in range(P):
                s += src[p]
            row_sums[m, n] = s
    if want_sums:
        for m in range(M):
            s = 0.0
            for n in range(N):
                s += row_sums[m, n]
            sums[m] = s
    return out, sums


def _unfold_example(rng):
    N, M, P = 3, 5, 7
    return rng.standard_normal((M, N * P)), rng.standard_normal(M), np.empty((N, M, P))


def _unfold_no_bias_example(rng):
    r, _, out = _unfold_example(rng)
    return r, np.empty(0), out


def _fold_example(rng):
    N, M, P = 3, 5, 7
    return rng.standard_normal((N, M, P)), np.empty((M, N * P)), np.empty(M)


from . import register  # noqa: E402

register("unfold", unfold_numpy, unfold_numba, _unfold_example)
register("unfold_no_bias", unfold_numpy, unfold_numba, _unfold_no_bias_example)
register("fold", fold_numpy, fold_numba, _fold_example)
