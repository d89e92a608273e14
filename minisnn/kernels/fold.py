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
from .im2col import im2col_numpy


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
    row_sums = np.zeros((M, N) if want_sums else (0, 0))
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


# ---------------------------------------------------------------------------------------------
# transposed convolution with kernel == stride: the columns are a permutation of the output
# ---------------------------------------------------------------------------------------------


def shuffle_numpy(cols, kh, kw, bias, out, fold):
    """Reference: ``out (N, C, H*kh, W*kw)`` <- the columns of a transposed convolution whose
    kernel equals its stride (no padding), plus ``bias (C,)`` (empty: none).

    Column row ``(c*kh + a)*kw + b`` at position ``i*W + j`` is output pixel
    ``(i*kh + a, j*kw + b)`` of channel ``c``: the windows do not overlap, so ``col2im``'s
    zero fill and additions reduce to this one permutation.  ``cols`` is ``(C*kh*kw, N, H*W)``
    with ``fold``, else ``(N, C*kh*kw, H*W)``.  Returns ``out``."""
    N, C, Ho, Wo = out.shape
    H, W = Ho // kh, Wo // kw
    c6 = (cols.transpose(1, 0, 2) if fold else cols).reshape(N, C, kh, kw, H, W)
    out[...] = c6.transpose(0, 1, 4, 2, 5, 3).reshape(N, C, Ho, Wo)
    if bias.size:
        out += bias[:, None, None]
    return out


@pjit
def shuffle_numba(cols, kh, kw, bias, out, fold):
    """Numba twin of :func:`shuffle_numpy` (same signature, same numbers; parallel over the
    (image, channel) planes of ``out``)."""
    N, C, Ho, Wo = out.shape
    H, W = Ho // kh, Wo // kw
    has_bias = bias.size > 0
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        for a in range(kh):
            for b in range(kw):
                row = (c * kh + a) * kw + b
                src = cols[row, n] if fold else cols[n, row]
                for i in range(H):
                    dst = out[n, c, i * kh + a]
                    s = src[i * W : (i + 1) * W]
                    if has_bias:
                        bc = bias[c]
                        for j in range(W):
                            dst[j * kw + b] = s[j] + bc
                    else:
                        for j in range(W):
                            dst[j * kw + b] = s[j]
    return out


def unshuffle_numpy(dy, kh, kw, cols, fold):
    """Reference adjoint of :func:`shuffle_numpy`: ``cols`` <- the output gradient
    ``dy (N, C, H*kh, W*kw)`` in the columns' layout (``(C*kh*kw, N, H*W)`` with ``fold``, else
    ``(N, C*kh*kw, H*W)``), which is what ``im2col`` makes of ``dy`` for windows of ``kh x kw``
    with stride ``(kh, kw)`` and no padding: :func:`~minisnn.kernels.im2col.im2col_numpy` with
    that geometry.  Returns ``cols``."""
    Ho, Wo = dy.shape[2:]
    return im2col_numpy(dy, kh, kw, kh, kw, 0, 0, Ho // kh, Wo // kw, cols, fold)


@pjit
def unshuffle_numba(dy, kh, kw, cols, fold):
    """Numba twin of :func:`unshuffle_numpy` (same signature, same numbers; parallel over the
    (image, channel) planes of ``dy``: it reads what :func:`shuffle_numba` writes)."""
    N, C, Ho, Wo = dy.shape
    H, W = Ho // kh, Wo // kw
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        for a in range(kh):
            for b in range(kw):
                row = (c * kh + a) * kw + b
                dst = cols[row, n] if fold else cols[n, row]
                for i in range(H):
                    src = dy[n, c, i * kh + a]
                    d = dst[i * W : (i + 1) * W]
                    for j in range(W):
                        d[j] = src[j * kw + b]
    return cols


def _shuffle_example(rng):
    N, C, H, W, kh, kw = 3, 4, 5, 6, 2, 3
    cols = rng.standard_normal((N, C * kh * kw, H * W))
    return cols, kh, kw, rng.standard_normal(C), np.empty((N, C, H * kh, W * kw)), False


def _shuffle_folded_example(rng):
    cols, kh, kw, bias, out, _ = _shuffle_example(rng)
    return np.ascontiguousarray(cols.transpose(1, 0, 2)), kh, kw, np.empty(0), out, True


def _unshuffle_example(rng):
    N, C, H, W, kh, kw = 3, 4, 5, 6, 2, 3
    dy = rng.standard_normal((N, C, H * kh, W * kw))
    return dy, kh, kw, np.empty((N, C * kh * kw, H * W)), False


def _unshuffle_folded_example(rng):
    dy, kh, kw, cols, _ = _unshuffle_example(rng)
    return dy, kh, kw, np.empty((cols.shape[1], cols.shape[0], cols.shape[2])), True


from . import register  # noqa: E402

register("unfold", unfold_numpy, unfold_numba, _unfold_example)
register("unfold_no_bias", unfold_numpy, unfold_numba, _unfold_no_bias_example)
register("fold", fold_numpy, fold_numba, _fold_example)
register("shuffle", shuffle_numpy, shuffle_numba, _shuffle_example)
register("shuffle_folded", shuffle_numpy, shuffle_numba, _shuffle_folded_example)
register("unshuffle", unshuffle_numpy, unshuffle_numba, _unshuffle_example)
register("unshuffle_folded", unshuffle_numpy, unshuffle_numba, _unshuffle_folded_example)
