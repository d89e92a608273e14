"""Parallel elementwise kernels: a product, and Adam's step (LEVEL 1b).

NumPy's ufuncs run on one thread.  The backward pass of every neuron layer is one product of
two activation-sized arrays (``dout * r'``), which a training step does a dozen times; this
kernel splits it over the threads.  One multiply per element in the arrays' dtype, so kernel
and reference agree bit for bit.

Adam's step, written with NumPy, is a dozen passes over each parameter (every ``*`` and ``+``
makes a new array): 12.5-14.4 ms a step for the 4.2 M parameters of the hybrid benchmark's net,
~2 % of its hybrid step.  :func:`adam_step_numba` makes one pass, with the same operations in
the same order in the parameter's dtype (each scalar rounded to it first, as NumPy does with a
Python float), so the two agree bit for bit: 3.0-4.1 ms.
"""

from __future__ import annotations

import numpy as np

from ._jit import compiled_for, jit, pjit, prange

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


def multiply(a, b, out=None):
    """``a * b`` for two arrays of the same shape and dtype, in parallel when both are
    C-contiguous float32 or float64 (otherwise, or without the compiler, NumPy's product,
    broadcasting and all).  ``out``: where to write it (may be ``a`` or ``b``), else a new array."""
    same = a.shape == b.shape and a.dtype == b.dtype
    if not (same and compiled_for(a.dtype) and a.flags.c_contiguous and b.flags.c_contiguous
            and (out is None or (out.shape == a.shape and out.dtype == a.dtype and out.flags.c_contiguous))):
        return np.multiply(a, b, out=out)
    out = np.empty_like(a) if out is None else out
    multiply_numba(a.reshape(-1), b.reshape(-1), out.reshape(-1))
    return out


def adam_step_numpy(p, g, m, v, b1, b2, lr_t, bc2, eps, wd, scale, out):
    """Reference: one step of :class:`minisnn.optim.Adam` for one parameter ``p`` (1-D, float)
    with gradient ``g``: the moments ``m``, ``v`` updated in place, the new parameter into
    ``out``.  ``lr_t = lr / (1 - beta1^t)``, ``bc2 = 1 - beta2^t``; ``wd`` the weight decay,
    ``scale`` the parameter's ``lr_scale``.  Python-float scalars: NumPy rounds each to ``p``'s
    dtype before the operation."""
    if wd:
        g = g + wd * p
    m[...] = b1 * m + (1 - b1) * g
    v[...] = b2 * v + (1 - b2) * g * g
    step = lr_t * m / (np.sqrt(v / bc2) + eps)
    if scale != 1.0:
        step = step * p.dtype.type(scale)
    np.subtract(p, step, out=out)
    return out


def adam_step_numba(p, g, m, v, b1, b2, lr_t, bc2, eps, wd, scale, out):
    """Numba twin of :func:`adam_step_numpy` (same signature): one pass, the scalars rounded to
    ``p``'s dtype here, as NumPy rounds them."""
    f = p.dtype.type
    kernel = _adam_step if out.size > BLOCK else _adam_step_serial
    kernel(p, g, m, v, f(b1), f(1 - b1), f(b2), f(1 - b2), f(lr_t), f(bc2), f(eps), f(wd), bool(wd), f(scale),
           scale != 1.0, out)
    return out


def _adam_kernel(p, g, m, v, b1, c1, b2, c2, lr_t, bc2, eps, wd, decay, scale, scaled, out):
    """The kernel of :func:`adam_step_numba`, a block of :data:`BLOCK` elements per work item."""
    n = out.size
    for block in prange((n + BLOCK - 1) // BLOCK):
        s = block * BLOCK
        e = min(n, s + BLOCK)
        pb, gb, mb, vb, ob = p[s:e], g[s:e], m[s:e], v[s:e], out[s:e]
        for i in range(e - s):
            gi = gb[i] + wd * pb[i] if decay else gb[i]
            mi = b1 * mb[i] + c1 * gi
            vi = b2 * vb[i] + c2 * gi * gi
            mb[i] = mi
            vb[i] = vi
            step = lr_t * mi / (np.sqrt(vi / bc2) + eps)
            ob[i] = pb[i] - (step * scale if scaled else step)


_adam_step = pjit(_adam_kernel)
#: the same code on the calling thread, for a parameter of one block or less: a parallel
#: region costs more than the block itself (the CAE's 20 parameters, 91 473 values, took
#: 2.2 ms a step in parallel regions; most of them have a few thousand values)
_adam_step_serial = jit(_adam_kernel)


def adam_step(p, g, m, v, b1, b2, lr_t, bc2, eps, wd, scale, out):
    """:func:`adam_step_numba` where it applies (C-contiguous arrays of a compiled dtype), else
    the reference; any shapes of one size (they are flattened)."""
    arrays = (p, g, m, v, out)
    flat = [a.reshape(-1) for a in arrays]
    fast = compiled_for(p.dtype) and all(a.dtype == p.dtype and a.flags.c_contiguous for a in arrays)
    (adam_step_numba if fast else adam_step_numpy)(*flat[:4], b1, b2, lr_t, bc2, eps, wd, scale, flat[4])
    return out


def _example(rng):
    n = 3 * BLOCK + 5  # a partial last block
    return rng.standard_normal(n), rng.standard_normal(n), np.empty(n)


def _adam_example(rng, dtype=np.float32, wd=0.0, scale=1.0):
    """Step 7 of Adam on a partial last block, gradients of very different sizes."""
    n = 2 * BLOCK + 3
    g = (rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 2, n)).astype(dtype)
    m = (rng.standard_normal(n) * 0.1).astype(dtype)
    v = (rng.uniform(0, 1, n) ** 4).astype(dtype)
    b1, b2, lr, t = 0.9, 0.999, 1e-3, 7
    return (rng.standard_normal(n).astype(dtype), g, m, v, b1, b2, lr / (1 - b1**t), 1 - b2**t, 1e-8, wd, scale,
            np.empty(n, dtype))


from . import register  # noqa: E402

register("multiply", multiply_numpy, multiply_numba, _example)
register("adam_step", adam_step_numpy, adam_step_numba, _adam_example)
register("adam_step64_decay_scale", adam_step_numpy, adam_step_numba,
         lambda rng: _adam_example(rng, np.float64, wd=0.01, scale=0.3))
register("adam_step32_decay_scale", adam_step_numpy, adam_step_numba,
         lambda rng: _adam_example(rng, np.float32, wd=0.01, scale=0.3))
