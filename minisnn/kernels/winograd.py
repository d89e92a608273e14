"""Winograd F(2x2, 3x3): a 3x3 stride-1 convolution with 2.25x fewer multiplications (LEVEL 1b).

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016).  Cut the
output into 2x2 tiles; tile ``t`` of output channel ``o`` needs the 4x4 input patch ``d``
(channel ``c``) that starts at the tile's corner in the zero-padded input, and::

    y_tile = A^T [ sum_c (G g[o, c] G^T) * (B^T d[c] B) ] A        (* elementwise, 4x4)

with ``g`` the 3x3 weights and the constant matrices :data:`BT`, :data:`G`, :data:`AT` below.
The sum over ``c`` at each of the 16 positions ``xi`` of the 4x4 transform is a matrix
product, so a convolution becomes::

    V[xi, c, t] = (B^T d B)[xi]          input transform
    U[xi, o, c] = (G g G^T)[xi]          weight transform
    M[xi]       = U[xi] @ V[xi]          16 GEMMs, (Cout x Cin) @ (Cin x tiles)
    y           = A^T M A per tile       output transform  (this module), plus the bias

16 GEMMs of ``Cin*Cout*tiles`` multiply-adds each are ``4*Cin*Cout`` per output pixel
against im2col's ``9*Cin*Cout``, and ``V`` is 4x the input where im2col's columns are 9x.

The backward pass is the adjoint of each linear step, in reverse order::

    Mg[xi] = (A dy A^T)[xi] per tile    grad-output transform (this module), and the bias
                                         gradient from the same pass
    dU[xi] = Mg[xi] @ V[xi]^T -> dw = G^T dU G     weight-gradient transform
    dV[xi] = U[xi]^T @ Mg[xi] -> dx = B dV B^T per tile, overlapping tiles added up
                                         grad-input transform

(the GEMMs live in :mod:`minisnn.ops.conv`, every transform in this module).

A rectified-linear neuron layer after the convolution (``r = amplitude * max(gain * y, 0)``,
:class:`minisnn.neurons.RectifiedLinear`) can run inside the output transform, on each output
plane while it is in the L1 cache, and its derivative ``amplitude * gain * [r > 0]`` inside the
grad-output transform: one pass over the layer's activations less each way, and no array of
derivatives.  The arithmetic is :mod:`minisnn.kernels.relu`'s, value for value.

All the transforms are exact in real arithmetic; in float32 they round differently from a
direct sum (relative error ~1e-6 on the CAE's layers, tested against the naive loops).

Layout.  ``V``, ``M``, ``Mg`` and ``dV`` are ``(16, C, T)`` with ``T = N * th * tw`` tiles,
tile ``t = (n * th + ty) * tw + tx``.  The 16 ``xi`` planes are written (or read) together,
one element each per tile, so when their distance in memory is a multiple of 4 KiB all 16
streams fall into the same set of the L1 cache and evict each other: ``T`` is a multiple of
1024 for the CAE's batch of 64, and the input transform ran 3x slower.  The buffers therefore
leave a gap of 16 elements between planes (:func:`planes`); the GEMMs see ordinary strided
matrices.

The kernels run on the calling thread, one (image, channel) plane after the other (the
grad-input transform adds the overlapping tiles of a plane in a fixed order).
:mod:`minisnn.ops.conv` cuts the batch into blocks of images and runs each block's transforms
and GEMMs on one thread, the blocks shared by the threads, so that a block's ``V`` and ``M``
stay in that core's caches from the transform that writes them to the product that reads
them (:data:`minisnn.ops.conv.WINOGRAD_BLOCK_TILES`).  The NumPy references are written with
``einsum`` over strided tile views: the formulas above, nearly verbatim.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

#: input transform ``B^T`` (4x4): ``V = B^T d B``
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
#: weight transform ``G`` (4x3): ``U = G g G^T``
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
#: output transform ``A^T`` (2x4): ``y = A^T M A``
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

#: elements left free between two of the 16 planes (see the module docstring)
PLANE_GAP = 16


def tiles(Ho: int, Wo: int) -> tuple[int, int]:
    """Tiles down and across an ``Ho x Wo`` output: ``(ceil(Ho / 2), ceil(Wo / 2))``."""
    return (Ho + 1) // 2, (Wo + 1) // 2


def planes(C: int, T: int, dtype, buffer=None) -> np.ndarray:
    """A ``(16, C, T)`` array whose planes are ``PLANE_GAP`` elements apart, made in
    ``buffer`` (1-D, at least :func:`planes_size` elements) or a new one."""
    dtype = np.dtype(dtype)
    stride = C * T + PLANE_GAP
    if buffer is None:
        buffer = np.empty(planes_size(C, T), dtype)
    assert buffer.ndim == 1 and buffer.dtype == dtype and buffer.size >= planes_size(C, T)
    item = dtype.itemsize
    return np.lib.stride_tricks.as_strided(buffer, (16, C, T), (stride * item, T * item, item))


def planes_size(C: int, T: int) -> int:
    """Elements behind :func:`planes` ``(C, T)``."""
    return 16 * (C * T + PLANE_GAP)


# ----------------------------------------------------------------------------- references


def _tile_views(a, rows, cols, size, step):
    """``a (N, C, H, W)`` -> ``(N, C, rows, cols, size, size)`` windows ``step`` apart (a view)."""
    s0, s1, s2, s3 = a.strides
    N, C = a.shape[:2]
    return np.lib.stride_tricks.as_strided(
        a, (N, C, rows, cols, size, size), (s0, s1, s2 * step, s3 * step, s2, s3), writeable=False
    )


def _grid(shape, a, top, left, dtype):
    """A zero array ``shape (N, C, Hg, Wg)`` holding ``a`` at offset ``(top, left)``."""
    out = np.zeros(shape, dtype)
    out[:, :, top : top + a.shape[2], left : left + a.shape[3]] = a
    return out


def input_numpy(x, ph, pw, th, tw, V):
    """Reference: ``V (16, C, T)`` <- ``B^T d B`` for every 4x4 patch ``d`` of the input
    ``x (N, C, H, W)`` zero-padded by ``(ph, pw)``; patch ``(ty, tx)`` starts at ``(2 ty, 2 tx)``."""
    N, C = x.shape[:2]
    xp = _grid((N, C, 2 * th + 2, 2 * tw + 2), x, ph, pw, x.dtype)
    d = _tile_views(xp, th, tw, 4, 2)  # (N, C, th, tw, 4, 4)
    v = np.einsum("ai,ncyxij,bj->abcnyx", BT, d, BT)
    V[...] = v.reshape(16, C, N * th * tw)
    return V


def output_numpy(M, bias, th, tw, y, rectify, gain, amplitude):
    """Reference: ``y (N, Co, Ho, Wo)`` <- ``A^T m A`` for every tile's 4x4 ``m`` of
    ``M (16, Co, T)``, cropped to ``Ho x Wo``, plus ``bias (Co,)`` (empty: no bias); with
    ``rectify``, then ``amplitude * max(gain * y, 0)`` in place (``gain``, ``amplitude`` of
    y's dtype).  Returns ``(y, n_nan, lost)``: the number of outputs that were NaN before
    the rectifier, and whether any ``gain * y > 0`` became 0 (an underflow: ``r > 0`` then no
    longer tells where the derivative is nonzero); 0 and False without ``rectify``."""
    N, Co, Ho, Wo = y.shape
    m = M.reshape(4, 4, Co, N, th, tw)
    t = np.einsum("ai,ijonyx,bj->noyaxb", AT, m, AT).reshape(N, Co, 2 * th, 2 * tw)
    y[...] = t[:, :, :Ho, :Wo]
    if bias.size:
        y += bias[:, None, None]
    if not rectify:
        return y, 0, False
    with np.errstate(over="ignore", under="ignore"):
        J = y * gain
        r = np.where(J > 0, J * amplitude, y.dtype.type(0))
    n_nan, lost = np.count_nonzero(np.isnan(y)), bool(np.any((J > 0) & (r == 0)))
    y[...] = r
    return y, n_nan, lost


def grad_output_numpy(dy, th, tw, Mg, sums, r, slope):
    """Reference adjoint of :func:`output_numpy`: ``Mg (16, Co, T)`` <- ``A g A^T`` for every
    2x2 tile ``g`` of ``dy (N, Co, Ho, Wo)`` (zeros past the edge); ``sums (N, Co)`` (float64)
    <- each plane's sum of ``dy`` (the bias gradient, before the sum over images).  With a
    rectified output ``r`` (the forward pass's; empty: none), ``dy`` is first multiplied by
    the rectifier's derivative, ``slope`` (``amplitude * gain``) where ``r > 0`` and 0 elsewhere."""
    N, Co = dy.shape[:2]
    if r.size:
        dy = dy * np.where(r > 0, slope, dy.dtype.type(0))
    grid = _grid((N, Co, 2 * th, 2 * tw), dy, 0, 0, dy.dtype)
    g = _tile_views(grid, th, tw, 2, 2)  # (N, Co, th, tw, 2, 2)
    z = np.einsum("ai,noyxab,bj->ijonyx", AT, g, AT)  # A = AT.T
    Mg[...] = z.reshape(16, Co, N * th * tw)
    sums[...] = dy.sum(axis=(2, 3), dtype=np.float64)
    return Mg, sums


def grad_input_numpy(dV, ph, pw, th, tw, dx):
    """Reference adjoint of :func:`input_numpy`: every tile's ``B dv B^T`` added back onto the
    4x4 patch it came from, the padding cut off: ``dx (N, C, H, W)``."""
    N, C, H, W = dx.shape
    v = dV.reshape(4, 4, C, N, th, tw)
    d = np.einsum("ai,abcnyx,bj->ncyxij", BT, v, BT)  # B = BT.T
    grid = np.zeros((N, C, 2 * th + 2, 2 * tw + 2), dx.dtype)
    for i in range(4):
        for j in range(4):
            grid[:, :, i : i + 2 * th : 2, j : j + 2 * tw : 2] += d[..., i, j]
    dx[...] = grid[:, :, ph : ph + H, pw : pw + W]
    return dx


def weights_numpy(w, U):
    """Reference: ``U (16, Cout, Cin)`` <- ``G w[o, c] G^T`` for every channel pair of
    ``w (Cout, Cin, 3, 3)``, computed in float64."""
    Cout, Cin = w.shape[:2]
    u = np.einsum("ik,ockl,jl->ijoc", G, w.astype(np.float64), G)
    U[...] = u.reshape(16, Cout, Cin)
    return U


def weights_grad_numpy(dU, dw):
    """Reference adjoint of :func:`weights_numpy`: ``dw (Cout, Cin, 3, 3)`` <- ``G^T dU G``
    for every channel pair of ``dU (16, Cout, Cin)``, computed in float64."""
    Cout, Cin = dw.shape[:2]
    d = dU.astype(np.float64).reshape(4, 4, Cout, Cin)
    dw[...] = np.einsum("ik,ijoc,jl->ockl", G, d, G)
    return dw


# ----------------------------------------------------------------------------- kernels


@jit
def input_numba(x, ph, pw, th, tw, V):
    """Numba twin of :func:`input_numpy`: one zero-padded copy of each plane, then each
    patch's ``B^T d B`` written out as the 32 additions it is."""
    N, C, H, W = x.shape
    xp = np.zeros((2 * th + 2, 2 * tw + 2), x.dtype)  # its border stays zero
    for n in range(N):
        for c in range(C):
            xp[ph : ph + H, pw : pw + W] = x[n, c]
            for ty in range(th):
                r0, r1, r2, r3 = xp[2 * ty], xp[2 * ty + 1], xp[2 * ty + 2], xp[2 * ty + 3]
                t0 = (n * th + ty) * tw
                for tx in range(tw):
                    t, j = t0 + tx, 2 * tx
                    # B^T d: the four rows combined, column by column
                    a0, a1, a2, a3 = r0[j] - r2[j], r0[j + 1] - r2[j + 1], r0[j + 2] - r2[j + 2], r0[j + 3] - r2[j + 3]
                    b0, b1, b2, b3 = r1[j] + r2[j], r1[j + 1] + r2[j + 1], r1[j + 2] + r2[j + 2], r1[j + 3] + r2[j + 3]
                    c0, c1, c2, c3 = r2[j] - r1[j], r2[j + 1] - r1[j + 1], r2[j + 2] - r1[j + 2], r2[j + 3] - r1[j + 3]
                    d0, d1, d2, d3 = r1[j] - r3[j], r1[j + 1] - r3[j + 1], r1[j + 2] - r3[j + 2], r1[j + 3] - r3[j + 3]
                    # (B^T d) B: the same combination along each row
                    V[0, c, t], V[1, c, t], V[2, c, t], V[3, c, t] = a0 - a2, a1 + a2, a2 - a1, a1 - a3
                    V[4, c, t], V[5, c, t], V[6, c, t], V[7, c, t] = b0 - b2, b1 + b2, b2 - b1, b1 - b3
                    V[8, c, t], V[9, c, t], V[10, c, t], V[11, c, t] = c0 - c2, c1 + c2, c2 - c1, c1 - c3
                    V[12, c, t], V[13, c, t], V[14, c, t], V[15, c, t] = d0 - d2, d1 + d2, d2 - d1, d1 - d3
    return V


@jit
def output_numba(M, bias, th, tw, y, rectify, gain, amplitude):
    """Numba twin of :func:`output_numpy`: each plane's tiles, then (``rectify``) the
    rectifier over the plane, which is still in the L1 cache."""
    N, Co, Ho, Wo = y.shape
    has_bias = bias.size > 0
    n_nan = 0
    lost = False
    for plane in range(N * Co):
        n = plane // Co
        o = plane % Co
        b = bias[o] if has_bias else 0.0
        for ty in range(th):
            t0, i = (n * th + ty) * tw, 2 * ty
            for tx in range(tw):
                t, j = t0 + tx, 2 * tx
                # A^T m: rows 0+1+2 and 1-2-3, column by column
                p0 = M[0, o, t] + M[4, o, t] + M[8, o, t]
                p1 = M[1, o, t] + M[5, o, t] + M[9, o, t]
                p2 = M[2, o, t] + M[6, o, t] + M[10, o, t]
                p3 = M[3, o, t] + M[7, o, t] + M[11, o, t]
                q0 = M[4, o, t] - M[8, o, t] - M[12, o, t]
                q1 = M[5, o, t] - M[9, o, t] - M[13, o, t]
                q2 = M[6, o, t] - M[10, o, t] - M[14, o, t]
                q3 = M[7, o, t] - M[11, o, t] - M[15, o, t]
                # (A^T m) A, cropped at the right and bottom edges
                y[n, o, i, j] = p0 + p1 + p2 + b
                if j + 1 < Wo:
                    y[n, o, i, j + 1] = p1 - p2 - p3 + b
                if i + 1 < Ho:
                    y[n, o, i + 1, j] = q0 + q1 + q2 + b
                    if j + 1 < Wo:
                        y[n, o, i + 1, j + 1] = q1 - q2 - q3 + b
        if rectify:
            zero = gain - gain  # (a 0 of y's dtype: with a literal 0 the loop ran in float64)
            flat = y[n, o].reshape(Ho * Wo)
            for k in range(Ho * Wo):
                v = flat[k]
                n_nan += v != v
                J = v * gain
                rv = J * amplitude if J > 0 else zero
                lost |= (J > 0) & (rv == zero)  # (an "or": a second count cost ~30 % of the pass)
                flat[k] = rv
    return y, n_nan, lost


@jit
def grad_output_numba(dy, th, tw, Mg, sums, r, slope):
    """Numba twin of :func:`grad_output_numpy`: with ``r``, each plane of ``dy`` times the
    derivative goes into a plane-sized buffer first, which the tiles then read."""
    N, Co, Ho, Wo = dy.shape
    rectified = r.size > 0
    masked = np.empty((Ho, Wo), dy.dtype)
    for plane in range(N * Co):
        n = plane // Co
        o = plane % Co
        g = dy[n, o]
        if rectified:
            zero = slope - slope
            gf, rf, mf = dy[n, o].reshape(Ho * Wo), r[n, o].reshape(Ho * Wo), masked.reshape(Ho * Wo)
            for k in range(Ho * Wo):
                mf[k] = gf[k] * (slope if rf[k] > 0 else zero)
            g = masked
        total = 0.0
        for ty in range(th):
            t0, i = (n * th + ty) * tw, 2 * ty
            for tx in range(tw):
                t, j = t0 + tx, 2 * tx
                g00 = g[i, j]
                g01 = g[i, j + 1] if j + 1 < Wo else 0.0
                g10 = g[i + 1, j] if i + 1 < Ho else 0.0
                g11 = g[i + 1, j + 1] if i + 1 < Ho and j + 1 < Wo else 0.0
                total += g00 + g01 + g10 + g11
                # A g: the two rows (r0, r1) become (r0, r0 + r1, r0 - r1, -r1) ...
                a0, a1 = g00, g01
                b0, b1 = g00 + g10, g01 + g11
                c0, c1 = g00 - g10, g01 - g11
                d0, d1 = -g10, -g11
                # ... and (A g) A^T does the same along each of the four rows
                Mg[0, o, t], Mg[1, o, t], Mg[2, o, t], Mg[3, o, t] = a0, a0 + a1, a0 - a1, -a1
                Mg[4, o, t], Mg[5, o, t], Mg[6, o, t], Mg[7, o, t] = b0, b0 + b1, b0 - b1, -b1
                Mg[8, o, t], Mg[9, o, t], Mg[10, o, t], Mg[11, o, t] = c0, c0 + c1, c0 - c1, -c1
                Mg[12, o, t], Mg[13, o, t], Mg[14, o, t], Mg[15, o, t] = d0, d0 + d1, d0 - d1, -d1
        sums[n, o] = total
    return Mg, sums


@jit
def grad_input_numba(dV, ph, pw, th, tw, dx):
    """Numba twin of :func:`grad_input_numpy`: the tiles of each plane are added onto a padded
    copy in tile order, which is then cut to size."""
    N, C, H, W = dx.shape
    grid = np.empty((2 * th + 2, 2 * tw + 2), dx.dtype)
    for plane in range(N * C):
        n = plane // C
        c = plane % C
        grid[:, :] = 0
        for ty in range(th):
            t0, i = (n * th + ty) * tw, 2 * ty
            for tx in range(tw):
                t, j = t0 + tx, 2 * tx
                # v B^T along each row: (v0, v1, v2, v3) -> (v0, v1 - v2 + v3, v1 + v2 - v0, -v3)
                v0, v1, v2, v3 = dV[0, c, t], dV[1, c, t], dV[2, c, t], dV[3, c, t]
                s0, s1, s2, s3 = v0, v1 - v2 + v3, v1 + v2 - v0, -v3
                v0, v1, v2, v3 = dV[4, c, t], dV[5, c, t], dV[6, c, t], dV[7, c, t]
                w0, w1, w2, w3 = v0, v1 - v2 + v3, v1 + v2 - v0, -v3
                v0, v1, v2, v3 = dV[8, c, t], dV[9, c, t], dV[10, c, t], dV[11, c, t]
                z0, z1, z2, z3 = v0, v1 - v2 + v3, v1 + v2 - v0, -v3
                v0, v1, v2, v3 = dV[12, c, t], dV[13, c, t], dV[14, c, t], dV[15, c, t]
                h0, h1, h2, h3 = v0, v1 - v2 + v3, v1 + v2 - v0, -v3
                # then B (...) down each column, added onto the patch
                grid[i, j] += s0
                grid[i, j + 1] += s1
                grid[i, j + 2] += s2
                grid[i, j + 3] += s3
                grid[i + 1, j] += w0 - z0 + h0
                grid[i + 1, j + 1] += w1 - z1 + h1
                grid[i + 1, j + 2] += w2 - z2 + h2
                grid[i + 1, j + 3] += w3 - z3 + h3
                grid[i + 2, j] += w0 + z0 - s0
                grid[i + 2, j + 1] += w1 + z1 - s1
                grid[i + 2, j + 2] += w2 + z2 - s2
                grid[i + 2, j + 3] += w3 + z3 - s3
                grid[i + 3, j] -= h0
                grid[i + 3, j + 1] -= h1
                grid[i + 3, j + 2] -= h2
                grid[i + 3, j + 3] -= h3
        dx[n, c] = grid[ph : ph + H, pw : pw + W]
    return dx


@jit
def weights_numba(w, U):
    """Numba twin of :func:`weights_numpy`: ``G x`` of a 3-vector is ``(x0, (x0 + x1 + x2) / 2,
    (x0 - x1 + x2) / 2, x2)``, applied down the columns of each 3x3 kernel, then along its rows."""
    Cout, Cin = w.shape[:2]
    gw = np.empty((4, 3))
    for o in range(Cout):
        for c in range(Cin):
            g = w[o, c]
            for j in range(3):
                x0, x1, x2 = float(g[0, j]), float(g[1, j]), float(g[2, j])
                gw[0, j], gw[1, j], gw[2, j], gw[3, j] = x0, (x0 + x1 + x2) / 2, (x0 - x1 + x2) / 2, x2
            for i in range(4):
                x0, x1, x2 = gw[i, 0], gw[i, 1], gw[i, 2]
                U[4 * i, o, c] = x0
                U[4 * i + 1, o, c] = (x0 + x1 + x2) / 2
                U[4 * i + 2, o, c] = (x0 - x1 + x2) / 2
                U[4 * i + 3, o, c] = x2
    return U


@jit
def weights_grad_numba(dU, dw):
    """Numba twin of :func:`weights_grad_numpy`: ``G^T x`` of a 4-vector is
    ``(x0 + (x1 + x2) / 2, (x1 - x2) / 2, (x1 + x2) / 2 + x3)``, down the columns, then the rows."""
    Cout, Cin = dw.shape[:2]
    t = np.empty((3, 4))
    for o in range(Cout):
        for c in range(Cin):
            for j in range(4):
                x0, x1 = float(dU[j, o, c]), float(dU[4 + j, o, c])
                x2, x3 = float(dU[8 + j, o, c]), float(dU[12 + j, o, c])
                t[0, j], t[1, j], t[2, j] = x0 + (x1 + x2) / 2, (x1 - x2) / 2, (x1 + x2) / 2 + x3
            for i in range(3):
                x0, x1, x2, x3 = t[i, 0], t[i, 1], t[i, 2], t[i, 3]
                dw[o, c, i, 0] = x0 + (x1 + x2) / 2
                dw[o, c, i, 1] = (x1 - x2) / 2
                dw[o, c, i, 2] = (x1 + x2) / 2 + x3
    return dw


# ----------------------------------------------------------------------------- registry


def _example_shapes():
    # odd output sizes (5 x 7 with padding 1 on 5 x 7): the last tiles are cropped
    return 2, 3, 4, 5, 7, 1, 1


def _example_input(rng):
    N, C, _, H, W, ph, pw = _example_shapes()
    th, tw = tiles(H + 2 * ph - 2, W + 2 * pw - 2)
    return rng.standard_normal((N, C, H, W)), ph, pw, th, tw, planes(C, N * th * tw, np.float64)


def _example_output(rng, rectify=False):
    N, _, Co, H, W, ph, pw = _example_shapes()
    Ho, Wo = H + 2 * ph - 2, W + 2 * pw - 2
    th, tw = tiles(Ho, Wo)
    M = planes(Co, N * th * tw, np.float64)
    M[...] = rng.standard_normal(M.shape)
    # (gain, amplitude): seg's scale_firing_rates of 500, neither exact in binary
    return M, rng.standard_normal(Co), th, tw, np.empty((N, Co, Ho, Wo)), rectify, 500.0, 1 / 500


def _example_output_rectified(rng):
    return _example_output(rng, rectify=True)


def _example_grad_output(rng, rectify=False):
    N, _, Co, H, W, ph, pw = _example_shapes()
    Ho, Wo = H + 2 * ph - 2, W + 2 * pw - 2
    th, tw = tiles(Ho, Wo)
    dy = rng.standard_normal((N, Co, Ho, Wo))
    r = np.maximum(rng.standard_normal(dy.shape), 0) if rectify else np.empty((0, 0, 0, 0))
    return dy, th, tw, planes(Co, N * th * tw, np.float64), np.empty((N, Co)), r, 0.3


def _example_grad_output_rectified(rng):
    return _example_grad_output(rng, rectify=True)


def _example_grad_input(rng):
    N, C, _, H, W, ph, pw = _example_shapes()
    th, tw = tiles(H + 2 * ph - 2, W + 2 * pw - 2)
    dV = planes(C, N * th * tw, np.float64)
    dV[...] = rng.standard_normal(dV.shape)
    return dV, ph, pw, th, tw, np.empty((N, C, H, W))


def _example_weights(rng):
    return rng.standard_normal((3, 2, 3, 3)), np.empty((16, 3, 2))


def _example_weights_grad(rng):
    return rng.standard_normal((16, 3, 2)), np.empty((3, 2, 3, 3))


from . import register  # noqa: E402

register("winograd_weights", weights_numpy, weights_numba, _example_weights)
register("winograd_weights_grad", weights_grad_numpy, weights_grad_numba, _example_weights_grad)
register("winograd_input", input_numpy, input_numba, _example_input)
register("winograd_output", output_numpy, output_numba, _example_output)
register("winograd_output_rectified", output_numpy, output_numba, _example_output_rectified)
register("winograd_grad_output", grad_output_numpy, grad_output_numba, _example_grad_output)
register("winograd_grad_output_rectified", grad_output_numpy, grad_output_numba, _example_grad_output_rectified)
register("winograd_grad_input", grad_input_numpy, grad_input_numba, _example_grad_input)
