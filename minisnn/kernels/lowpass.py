"""First-order lowpass synapse, scanned over time (LEVEL 1b).

Each kernel has a readable NumPy reference (``*_numpy``) and a Numba kernel (``*_numba``) with
the same signature; the pair is registered in :data:`minisnn.kernels.KERNELS` at the bottom.

The filter is Nengo's ``Lowpass(tau)`` discretised with zero-order hold::

    y[t] = a * y[t-1] + (1 - a) * u[t],     a = exp(-dt / tau)

with no extra delay: the input of step ``t`` already reaches the output of step ``t``
(this is ``nengo.Lowpass(tau).filt``; inside a Nengo *simulation* a connection synapse adds
one step of delay on top, which the simulator handles, not this kernel).  ``a = 0`` is a
passthrough (``y = u`` exactly).  Each step is computed in float64 and ``y`` is stored in the
state's dtype, so chunked runs equal one run exactly.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, pjit, prange

from .lif import BLOCK, f8, lowpass_step_numpy


def lowpass_run_numpy(u, y_state, a, out):
    """Filter ``u`` along axis 0 (time) with a first-order lowpass (NumPy reference).

    Parameters
    ----------
    u : ndarray, shape (T, M)
        Input signal, one row per time step.
    y_state : ndarray, shape (M,)
        Filter output of the step before ``u[0]``; updated in place to the last output.
    a : float
        Filter coefficient ``exp(-dt / tau)`` in [0, 1).
    out : ndarray, shape (T, M)
        Receives the filtered signal.  May be ``u`` itself (in-place filtering).

    Returns
    -------
    out : ndarray, shape (T, M)
    """
    for t in range(u.shape[0]):
        out[t] = u[t]
        lowpass_step_numpy(out[t], y_state, a)
    return out


@jit
def _lowpass_block(ub, yb, ob, a, b):
    """Numba helper: one step of one block of columns (vectorised by LLVM)."""
    for k in range(yb.shape[0]):
        y = a * f8(yb[k]) + b * f8(ub[k])
        yb[k] = y
        ob[k] = y


@pjit
def lowpass_run_numba(u, y_state, a, out):
    """Numba twin of :func:`lowpass_run_numpy` (parallel over column blocks, serial in time)."""
    T = u.shape[0]
    M = u.shape[1]
    a = f8(a)
    b = 1.0 - a
    nblocks = (M + BLOCK - 1) // BLOCK
    for blk in prange(nblocks):
        lo = blk * BLOCK
        hi = min(lo + BLOCK, M)
        yb = y_state[lo:hi]
        for t in range(T):
            _lowpass_block(u[t, lo:hi], yb, out[t, lo:hi], a, b)
    return out


def _lowpass_run_example(rng):
    """Small fresh arguments for :func:`lowpass_run_numba`."""
    T, M = 23, BLOCK + 77  # two blocks
    u = rng.uniform(-1.0, 1.0, size=(T, M)) * (rng.uniform(size=(T, M)) < 0.3) * 1000.0
    y_state = rng.uniform(-5.0, 5.0, size=M)
    out = np.empty((T, M))
    return (u, y_state, 0.8187307530779818, out)


from . import register  # noqa: E402

register("lowpass_run", lowpass_run_numpy, lowpass_run_numba, _lowpass_run_example)
