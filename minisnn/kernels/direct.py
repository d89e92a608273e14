"""Direct convolution for few channels: no column matrix at all (LEVEL 1b).

im2col + GEMM (:mod:`minisnn.kernels.im2col`) copies every input pixel ``kh*kw`` times into a
column matrix before the matrix product can start. With many channels the product dominates
and the copy is cheap beside it; with very few (the CAE's last layer maps 16 channels to 1)
the copy, and its adjoint ``col2im`` in the backward pass, *are* the convolution: each
column entry is used for only ``Cout`` multiply-adds. This kernel computes a stride-1
convolution straight from the zero-padded image instead.

The trick that makes it fast is to compute the output on the *padded* grid. Flatten one
padded plane ``xp (Hp, Wp)`` and one output plane laid out with row length ``Wp`` (not
``Wo``): then tap ``(u, v)`` of every output pixel reads the input at one fixed offset,
``u*Wp + v``, so the whole tap is a single long ``acc += w * xp_flat[offset : offset + L]``
over ``L = (Ho - 1)*Wp + Wo`` positions, which LLVM vectorises. The ``Wp - Wo`` extra
columns per row are computed and thrown away (4 % for the CAE's 24x56 planes, 14 % for
6x14). Four output channels share each load of the input (:data:`OUT_BLOCK`).

The input is passed channel-major, ``xcm (Cin, N, Hp, Wp)``, already padded: in that layout
the weight gradient of the same convolution is one GEMM per tap over the whole batch (see
:func:`minisnn.ops.conv.conv2d_backward`), so one copy of the input serves both passes. The
input gradient of a stride-1 convolution is again a stride-1 convolution (of ``dy`` with
the weights flipped and transposed), so this kernel does that pass too.

Parallel over (image, block of output channels); every iteration owns its output planes and
sums in a fixed order, so the result does not depend on the thread count. Which path a
convolution takes is decided in :mod:`minisnn.ops.conv`.
"""

from __future__ import annotations

import numpy as np

from ._jit import pjit, prange

#: output channels per work item: each input element loaded feeds this many accumulators
OUT_BLOCK = 4


def conv_direct_numpy(xcm, w, out):
    """Reference: ``out (N, Cout, Ho, Wo)`` <- the stride-1 cross-correlation of the padded,
    channel-major input ``xcm (Cin, N, Hp, Wp)`` with ``w (Cout, Cin, kh, kw)``
    (``Ho = Hp - kh + 1``), as one product per tap over the shifted input. Returns ``out``."""
    kh, kw = w.shape[2:]
    Ho, Wo = out.shape[2:]
    out[...] = 0
    for u in range(kh):
        for v in range(kw):
            out += np.einsum("oc,cnhw->nohw", w[:, :, u, v], xcm[:, :, u : u + Ho, v : v + Wo])
    return out


@pjit
def conv_direct_numba(xcm, w, out):
    """Numba twin of :func:`conv_direct_numpy` (same signature; the sums run in another
    order, so the two agree to rounding)."""
    C, N, Hp, Wp = xcm.shape
    O, kh, kw = w.shape[0], w.shape[2], w.shape[3]
    Ho, Wo = out.shape[2], out.shape[3]
    L = (Ho - 1) * Wp + Wo  # first to last output pixel on the padded grid
    n_blocks = (O + OUT_BLOCK - 1) // OUT_BLOCK
    for item in prange(N * n_blocks):
        n = item // n_blocks
        o0 = (item % n_blocks) * OUT_BLOCK
        nb = min(OUT_BLOCK, O - o0)
        acc = np.zeros((OUT_BLOCK, L), dtype=out.dtype)
        a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
        for c in range(C):
            plane = xcm[c, n].ravel()
            for u in range(kh):
                for v in range(kw):
                    xs = plane[u * Wp + v : u * Wp + v + L]
                    # an unsigned trip count: Numba then drops its negative-index check, and
                    # only then does LLVM vectorise the loop (9x faster in a micro-benchmark)
                    if nb == OUT_BLOCK:
                        w0, w1, w2, w3 = w[o0, c, u, v], w[o0 + 1, c, u, v], w[o0 + 2, c, u, v], w[o0 + 3, c, u, v]
                        for j in range(np.uint64(L)):
                            t = xs[j]
                            a0[j] += w0 * t
                            a1[j] += w1 * t
                            a2[j] += w2 * t
                            a3[j] += w3 * t
                    else:
                        for b in range(nb):
                            wb = w[o0 + b, c, u, v]
                            a = acc[b]
                            for j in range(np.uint64(L)):
                                a[j] += wb * xs[j]
        for b in range(nb):
            for i in range(Ho):
                out[n, o0 + b, i, :] = acc[b, i * Wp : i * Wp + Wo]
    return out


def _conv_direct_example(rng):
    """Small fresh arguments: a 3x2 kernel over a 7x5 plane padded by (1, 0), 6 output
    channels (one full block of 4 and a partial one)."""
    Cin, N, H, W, O, kh, kw, ph, pw = 4, 3, 7, 5, 6, 3, 2, 1, 0
    xcm = np.zeros((Cin, N, H + 2 * ph, W + 2 * pw))
    xcm[:, :, ph : ph + H, pw : pw + W] = rng.standard_normal((Cin, N, H, W))
    w = rng.standard_normal((O, Cin, kh, kw))
    return xcm, w, np.empty((N, O, H + 2 * ph - kh + 1, W + 2 * pw - kw + 1))


from . import register  # noqa: E402

register("conv_direct", conv_direct_numpy, conv_direct_numba, _conv_direct_example)
