"""A parallel elementwise product (LEVEL 1b).

NumPy's ufuncs run on one thread.  The backward pass of every neuron layer is one product of
two activation-sized arrays (``dout * r'``), which a training step does a dozen times; this
kernel splits it over the threads.  One multiply per element in the arrays' dtype, so kernel
and reference agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from ._jit import compiled_for, pjit, prange

#: elements per parallel work item
BLOCK = 1 << 14


def multiply_numpy(a, b, out):
    """Reference: ``out[...] = a * b`` for 1-D arrays of one length and dtype."""
    np.multiply(a, b, out=out)
    return out


@pjit
def multiply_numba(a, b, out):
    """Numba twin of :func:`multiply_numpy`, a block of :data:`BLOCK` elements per work item."""
    n = out.size
    for block in prange((n + BLOCK - 1) // BLOCK):
        # each block through views indexed from 0: with the absolute index ``block * BLOCK + i``
        # the compiler cannot rule out a negative index (wraparound), and the loop ran scalar,
        # ~9x slower than NumPy's one-thread product on a CAE activation
        s = block * BLOCK
        e = min(n, s + BLOCK)
        ab, bb, ob = a[s:e], b[s:e], out[s:e]
        for i in range(e - s):
            ob[i] = ab[i] * bb[i]
    return out


def multiply(a, b):
    """``a * b`` for two arrays of the same shape and dtype, in parallel when both are
    C-contiguous float32 or float64 (otherwise, or without the compiler, NumPy's product,
    broadcasting and all)."""
    same = a.shape == b.shape and a.dtype == b.dtype
    if not (same and compiled_for(a.dtype) and a.flags.c_contiguous and b.flags.c_contiguous):
        return a * b
    out = np.empty_like(a)
    multiply_numba(a.reshape(-1), b.reshape(-1), out.reshape(-1))
    return out


def _example(rng):
    n = 3 * BLOCK + 5  # a partial last block
    return rng.standard_normal(n), rng.standard_normal(n), np.empty(n)


from . import register  # noqa: E402

register("multiply", multiply_numpy, multiply_numba, _example)
