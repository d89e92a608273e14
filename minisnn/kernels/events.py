"""Event-driven convolution: add weights only where a spike occurred (LEVEL 1b).

A convolution of a spike map ``s (N, C, H, W)`` - mostly zeros - can be computed the other way
round from im2col + GEMM: instead of every output summing its whole receptive field, every
*nonzero input* adds its value times the weights it touches onto the outputs it reaches::

    for each (n, c, y, x) with s[n, c, y, x] != 0, each tap (ky, kx) with
        oy = (y + ph - ky) / sh  and  ox = (x + pw - kx) / sw  whole numbers inside the output:
            y[n, :, oy, ox] += s[n, c, y, x] * w[:, c, ky, kx]

The work is proportional to the number of spikes, not to the size of the input.  This is
the same cross-correlation as :func:`minisnn.ops.conv.conv2d_forward` (PyTorch semantics,
no bias here); only the order of the additions differs, so results agree to rounding.

The spike map may also be a ``uint8`` map of spike *counts*, with ``scale`` the value of one
spike (``amplitude / dt``): a quarter of the memory of a float32 map to write and to scan,
and each event adds ``(count * scale) * w`` - the same products as the float map
``count * scale`` would give.  For a float map ``scale`` is 1.

The weights are passed pre-arranged as ``wt (C, kh, kw, Cout)`` so that one tap of one input
channel is a contiguous row of ``Cout`` values: a spike costs a few short vector additions.
The Numba kernel is parallel over the ``N`` images (each owns its output; the result does not
depend on the thread count) and walks each image row by row, so the output rows it updates
stay in cache.  Which path is faster depends on the spike density: see
:mod:`minisnn.simulate` (``path="auto"``) and ``benchmarks/bench_snn.py``.
"""

from __future__ import annotations

import numpy as np

from ._jit import pjit, prange


def conv_events_numpy(s, scale, wt, sh, sw, ph, pw, Ho, Wo, out):
    """Reference: ``out (N, Cout, Ho, Wo)`` <- the convolution of ``s (N, C, H, W)`` (times
    ``scale``, a scalar of ``out``'s dtype) computed spike by spike, in the kernel's order
    (row ``y``, channel ``c``, tap row ``ky``, column ``x``, tap column ``kx``).  ``wt`` is
    ``(C, kh, kw, Cout)``.  Returns ``out``."""
    N, C, H, W = s.shape
    _, kh, kw, Cout = wt.shape
    acc = np.zeros((N, Ho, Wo, Cout), dtype=out.dtype)  # channels last: one tap = one row
    for n in range(N):
        for y in range(H):
            for c in range(C):
                for ky in range(kh):
                    oy, ry = divmod(y + ph - ky, sh)
                    if ry != 0 or not 0 <= oy < Ho:
                        continue
                    for x in np.flatnonzero(s[n, c, y]):
                        v = out.dtype.type(s[n, c, y, x]) * scale
                        for kx in range(kw):
                            ox, rx = divmod(x + pw - kx, sw)
                            if rx == 0 and 0 <= ox < Wo:
                                acc[n, oy, ox] += v * wt[c, ky, kx]
    out[...] = acc.transpose(0, 3, 1, 2)
    return out


@pjit
def conv_events_numba(s, scale, wt, sh, sw, ph, pw, Ho, Wo, out):
    """Numba twin of :func:`conv_events_numpy` (same signature, same order of additions).

    Each input row is scanned once for its events (their columns listed in ``nz``); every
    kernel row ``ky`` then walks that list, so a row is not re-read ``kh`` times."""
    N, C, H, W = s.shape
    kh, kw, Cout = wt.shape[1], wt.shape[2], wt.shape[3]
    rows = wt.reshape(C * kh * kw, Cout)
    for n in prange(N):
        acc = np.zeros((Ho * Wo, Cout), dtype=out.dtype)
        nz = np.empty(W, dtype=np.int64)  # the columns of one input row that hold an event
        for y in range(H):
            for c in range(C):
                m = 0
                for x in range(W):  # branch-free: one pass over the row, however many taps read it
                    nz[m] = x
                    m += s[n, c, y, x] != 0
                if m == 0:
                    continue
                for ky in range(kh):
                    oyn = y + ph - ky
                    if oyn < 0 or oyn % sh != 0 or oyn // sh >= Ho:
                        continue
                    oy = oyn // sh
                    for j in range(m):
                        x = nz[j]
                        v = s[n, c, y, x] * scale
                        for kx in range(kw):
                            oxn = x + pw - kx
                            if oxn < 0 or oxn % sw != 0 or oxn // sw >= Wo:
                                continue
                            a = acc[oy * Wo + oxn // sw]
                            r = rows[(c * kh + ky) * kw + kx]
                            for k in range(Cout):
                                a[k] += v * r[k]
        for p in range(Ho * Wo):  # channels last -> NCHW
            for k in range(Cout):
                out[n, k, p // Wo, p % Wo] = acc[p, k]
    return out


def _conv_events_example(rng):
    """Small fresh arguments: a sparse spike map, stride 2 x 1, padding 1 x 0."""
    N, C, H, W, Cout, kh, kw = 3, 4, 9, 8, 5, 3, 2
    sh, sw, ph, pw = 2, 1, 1, 0
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    s = (rng.uniform(size=(N, C, H, W)) < 0.2) * 1000.0
    s[0, 1, 2, 3] = -3.5  # any nonzero value is an event, not only spikes
    wt = rng.standard_normal((C, kh, kw, Cout))
    return s, 1.0, wt, sh, sw, ph, pw, Ho, Wo, np.empty((N, Cout, Ho, Wo))


def _conv_events_counts_example(rng):
    """:func:`_conv_events_example` with a uint8 map of spike counts and float32 weights."""
    s, _, wt, *geometry, out = _conv_events_example(rng)
    counts = (s != 0).astype(np.uint8)
    counts[1, 2, 3, 4] = 3  # several spikes in one step (e.g. SpikingRectifiedLinear)
    return counts, np.float32(1000.0), wt.astype(np.float32), *geometry, np.empty(out.shape, np.float32)


from . import register  # noqa: E402

register("conv_events", conv_events_numpy, conv_events_numba, _conv_events_example)
register("conv_events_counts", conv_events_numpy, conv_events_numba, _conv_events_counts_example)
