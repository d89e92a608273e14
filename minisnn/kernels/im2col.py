"""im2col / col2im: the data movement behind convolution as a matrix product (LEVEL 1b).

A 2-D convolution of one image ``x (C, H, W)`` with ``w (C_out, C, kH, kW)`` is one matrix
product once every receptive field is laid out as a column::

    cols[c*kH*kW + ky*kW + kx, oy*Wo + ox] = x_padded[c, oy*sH + ky, ox*sW + kx]
    y (C_out, Ho*Wo) = w.reshape(C_out, C*kH*kW) @ cols

``im2col`` builds ``cols`` for a batch, reading zeros where the window hangs over the
padding; ``col2im`` is its adjoint: it *adds* every column entry back onto the pixel it came
from (so overlapping windows accumulate).  The pair is the whole difference between a
convolution, its gradients and the transposed convolution.

Each function exists twice with the same signature: a short NumPy reference written with
strided views, and a Numba kernel that is parallel over (image, channel) planes - each
iteration owns its output plane, so results do not depend on the thread count.  The same
kernel code is also compiled serially (``*_serial``) for small inputs, where starting a
parallel region costs more than the copy itself.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, pjit, prange


def _padded(x, ph, pw):
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def im2col_numpy(x, kh, kw, sh, sw, ph, pw, Ho, Wo, out, fold=False):
    """Reference: ``out (N, C*kh*kw, Ho*Wo)`` <- the (zero-padded) windows of ``x (N, C, H, W)``.

    With ``fold`` the output is laid out ``(C*kh*kw, N, Ho*Wo)`` instead (the batch folded
    into the columns, for one GEMM over the whole batch).
    """
    if fold:
        im2col_numpy(x, kh, kw, sh, sw, ph, pw, Ho, Wo, out.transpose(1, 0, 2))
        return out
    N, C = x.shape[:2]
    xp = _padded(x, ph, pw)
    s0, s1, s2, s3 = xp.strides
    windows = np.lib.stride_tricks.as_strided(
        xp, (N, C, kh, kw, Ho, Wo), (s0, s1, s2, s3, s2 * sh, s3 * sw), writeable=False
    )
    out.reshape(N, C, kh, kw, Ho, Wo)[...] = windows
    return out


def _im2col(x, kh, kw, sh, sw, ph, pw, Ho, Wo, out, fold=False):
    N, C, H, W = x.shape
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        xc = x[n, c]
        for ky in range(kh):
            for kx in range(kw):
                row_index = (c * kh + ky) * kw + kx
                o = out[row_index, n] if fold else out[n, row_index]
                # output columns whose input column ix = ox*sw - pw + kx lies inside [0, W)
                ox_lo = min(Wo, max(0, (pw - kx + sw - 1) // sw))
                ox_hi = max(ox_lo, min(Wo, (W - 1 + pw - kx) // sw + 1))
                ix0 = ox_lo * sw - pw + kx
                for oy in range(Ho):
                    row = o[oy * Wo : (oy + 1) * Wo]
                    iy = oy * sh - ph + ky
                    if iy < 0 or iy >= H:
                        row[:] = 0
                        continue
                    row[:ox_lo] = 0
                    row[ox_hi:] = 0
                    if sw == 1:  # a contiguous run: a vectorised copy
                        row[ox_lo:ox_hi] = xc[iy, ix0 : ix0 + ox_hi - ox_lo]
                    else:
                        src = xc[iy]
                        for k in range(ox_hi - ox_lo):
                            row[ox_lo + k] = src[ix0 + k * sw]
    return out


im2col_numba = pjit(_im2col)
im2col_numba_serial = jit(_im2col)  # the same code on one thread, for small inputs


def col2im_numpy(cols, kh, kw, sh, sw, ph, pw, Ho, Wo, out, fold=False):
    """Reference adjoint of im2col: ``out (N, C, H, W)`` <- sum of ``cols`` entries per pixel.

    ``cols`` is ``(N, C*kh*kw, Ho*Wo)``, or ``(C*kh*kw, N, Ho*Wo)`` with ``fold``.
    """
    if fold:
        cols = cols.transpose(1, 0, 2)
    N, C, H, W = out.shape
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=out.dtype)
    c6 = cols.reshape(N, C, kh, kw, Ho, Wo)
    for ky in range(kh):
        for kx in range(kw):
            xp[:, :, ky : ky + sh * Ho : sh, kx : kx + sw * Wo : sw] += c6[:, :, ky, kx]
    out[...] = xp[:, :, ph : ph + H, pw : pw + W]
    return out


def _col2im(cols, kh, kw, sh, sw, ph, pw, Ho, Wo, out, fold=False):
    N, C, H, W = out.shape
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        dst = out[n, c]
        dst[:, :] = 0
        for ky in range(kh):
            for kx in range(kw):
                row_index = (c * kh + ky) * kw + kx
                src = cols[row_index, n] if fold else cols[n, row_index]
                ox_lo = min(Wo, max(0, (pw - kx + sw - 1) // sw))
                ox_hi = max(ox_lo, min(Wo, (W - 1 + pw - kx) // sw + 1))
                ix0 = ox_lo * sw - pw + kx
                for oy in range(Ho):
                    iy = oy * sh - ph + ky
                    if iy < 0 or iy >= H:
                        continue
                    base = oy * Wo
                    if sw == 1:  # contiguous runs: a vectorised add
                        dst[iy, ix0 : ix0 + ox_hi - ox_lo] += src[base + ox_lo : base + ox_hi]
                    else:
                        d = dst[iy]
                        for k in range(ox_hi - ox_lo):
                            d[ix0 + k * sw] += src[base + ox_lo + k]
    return out


col2im_numba = pjit(_col2im)
col2im_numba_serial = jit(_col2im)


def _example_im2col(rng):
    x = rng.standard_normal((2, 3, 7, 6))
    kh, kw, sh, sw, ph, pw = 3, 2, 2, 1, 1, 2
    Ho, Wo = (7 + 2 - 3) // 2 + 1, (6 + 4 - 2) // 1 + 1
    return x, kh, kw, sh, sw, ph, pw, Ho, Wo, np.empty((2, 3 * kh * kw, Ho * Wo))


def _example_col2im(rng):
    kh, kw, sh, sw, ph, pw = 3, 2, 2, 1, 1, 2
    Ho, Wo = (7 + 2 - 3) // 2 + 1, (6 + 4 - 2) // 1 + 1
    cols = rng.standard_normal((2, 3 * kh * kw, Ho * Wo))
    return cols, kh, kw, sh, sw, ph, pw, Ho, Wo, np.empty((2, 3, 7, 6))


from . import register  # noqa: E402

def _folded(example):
    def make(rng):
        args = list(example(rng))
        args[9] = np.ascontiguousarray(args[9].transpose(1, 0, 2)) if args[9].ndim == 3 else args[9]
        if args[0].ndim == 3:  # col2im: the columns are the folded input
            args[0] = np.ascontiguousarray(args[0].transpose(1, 0, 2))
        return (*args, True)

    return make


register("im2col", im2col_numpy, im2col_numba, _example_im2col)
register("im2col_serial", im2col_numpy, im2col_numba_serial, _example_im2col)
register("im2col_folded", im2col_numpy, im2col_numba, _folded(_example_im2col))
register("col2im", col2im_numpy, col2im_numba, _example_col2im)
register("col2im_serial", col2im_numpy, col2im_numba_serial, _example_col2im)
register("col2im_folded", col2im_numpy, col2im_numba, _folded(_example_col2im))
