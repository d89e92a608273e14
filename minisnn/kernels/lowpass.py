"""First-order lowpass synapse, scanned over time (LEVEL 1b).

Each kernel has a readable NumPy reference (``*_numpy``) and a Numba kernel (``*_numba``) with
the same signature; the pair is registered in :data:`minisnn.kernels.KERNELS` at the bottom.

The filter is Nengo's ``Lowpass(tau)`` discretised with zero-order hold::

    y[t] = a * y[t-1] + (1 - a) * u[t],     a = exp(-dt / tau)

with no extra delay: the input of step ``t`` already reaches the output of step ``t``
(this is ``nengo.Lowpass(tau).filt``; inside a Nengo *simulation* a connection synapse adds
one step of delay on top, which the simulator handles, not this kernel).  ``a = 0`` is a
passthrough (``y = u`` exactly).  In the simulator's scan (:func:`lowpass_run_numba`) each step
is computed in float64 and ``y`` is stored in the state's dtype, so chunked runs equal one run
exactly.  The hybrid step's unrolled graph filters a whole presentation from rest in the
arrays' own dtype instead, forward and backward (:func:`lowpass_scan_numba`,
:func:`lowpass_scan_grad_numba`), parallel over blocks of columns, where the NumPy loops run
on one thread and make a temporary array per operation and step.
"""

from __future__ import annotations

import numpy as np

from ._jit import compiled_for, jit, pjit, prange

f8 = np.float64  # numba's float(x) keeps float32 as float32; np.float64(x) widens

#: Neurons (columns) per parallel work item in the Numba time scans, here and in
#: :mod:`~minisnn.kernels.lif` and :mod:`~minisnn.kernels.relu`: one item is a contiguous block
#: of columns; within a block the loop runs over time, then over the block's columns, so the
#: writes to ``out[t, lo:hi]`` are contiguous and the block's state stays in cache.
BLOCK = 1024


def lowpass_step_numpy(u, y_state, a):
    """One step of the Lowpass, in place: ``y = a y + (1 - a) u`` in float64, written to both
    ``y_state`` and ``u``; ``a = 0`` passes ``u`` through (``y_state = u``, ``u`` unchanged)."""
    if a == 0.0:
        y_state[...] = u
        return
    y = a * y_state.astype(np.float64) + (1.0 - a) * u.astype(np.float64)
    y_state[...] = y
    u[...] = y


@jit
def lowpass_block(ub, yb, ob, a):
    """:func:`lowpass_step_numpy` on one block of columns, compiled: ``yb`` and ``ob`` receive
    ``a yb + (1 - a) ub`` (``ob`` may be ``ub``: the neuron scans filter their output in place).
    LLVM vectorises the loop."""
    if a != 0.0:
        b = 1.0 - a
        for k in range(yb.shape[0]):
            y = a * f8(yb[k]) + b * f8(ub[k])
            yb[k] = y
            ob[k] = y
    else:
        for k in range(yb.shape[0]):
            yb[k] = ub[k]
            ob[k] = ub[k]


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


@pjit
def lowpass_run_numba(u, y_state, a, out):
    """Numba twin of :func:`lowpass_run_numpy` (parallel over column blocks, serial in time)."""
    T = u.shape[0]
    M = u.shape[1]
    a = f8(a)
    nblocks = (M + BLOCK - 1) // BLOCK
    for blk in prange(nblocks):
        lo = blk * BLOCK
        hi = min(lo + BLOCK, M)
        yb = y_state[lo:hi]
        for t in range(T):
            lowpass_block(u[t, lo:hi], yb, out[t, lo:hi], a)
    return out


def lowpass_scan_numpy(u, a, y):
    """The Lowpass over a whole presentation from rest, in the arrays' own dtype (the hybrid
    step's unrolled graph, :class:`minisnn.hybrid.SpikingScanFn`): ``u, y (T, M)``,
    ``y[0] = (1 - a) u[0]``, ``y[t] = a y[t-1] + (1 - a) u[t]``; ``a`` and ``1 - a`` are rounded
    to that dtype first (as NumPy rounds a Python float).  ``y`` may be ``u`` (filtered in
    place: step ``t`` reads ``u[t]`` before it writes ``y[t]``).  Returns ``y``."""
    a, b = u.dtype.type(a), u.dtype.type(1.0 - a)
    y[0] = b * u[0]
    for t in range(1, u.shape[0]):
        y[t] = a * y[t - 1] + b * u[t]
    return y


def lowpass_scan_grad_numpy(d, a, du, scale=None):
    """The adjoint of :func:`lowpass_scan_numpy`, the same filter run backwards in time:
    ``g[T-1] = d[T-1]``, ``g[t] = d[t] + a g[t+1]``, ``du[t] = (1 - a) g[t]``, times
    ``scale[t]`` if ``scale`` (``(T, M)``, of d's dtype; it may be ``du`` itself) is given:
    the hybrid step multiplies the synapse's input gradient by the neurons' derivative so,
    with no ``(T, M)`` array in between.  Returns ``du``."""
    a, b = d.dtype.type(a), d.dtype.type(1.0 - a)
    g = d[-1].copy()
    du[-1] = b * g if scale is None else (b * g) * scale[-1]
    for t in range(d.shape[0] - 2, -1, -1):
        g = d[t] + a * g
        du[t] = b * g if scale is None else (b * g) * scale[t]
    return du


@pjit
def _lowpass_scan(u, a, b, y):
    T = u.shape[0]
    M = u.shape[1]
    nblocks = (M + BLOCK - 1) // BLOCK
    for blk in prange(nblocks):
        lo = blk * BLOCK
        n = min(lo + BLOCK, M) - lo
        u0, y0 = u[0, lo : lo + n], y[0, lo : lo + n]
        for k in range(np.uint64(n)):  # (an unsigned count: no negative-index checks, a vector loop)
            y0[k] = b * u0[k]
        for t in range(1, T):
            yp, yt, ut = y[t - 1, lo : lo + n], y[t, lo : lo + n], u[t, lo : lo + n]
            for k in range(np.uint64(n)):
                yt[k] = a * yp[k] + b * ut[k]
    return y


@pjit
def _lowpass_scan_grad(d, a, b, du, scale):
    T = d.shape[0]
    M = d.shape[1]
    scaled = scale.shape[0] > 0
    nblocks = (M + BLOCK - 1) // BLOCK
    for blk in prange(nblocks):
        lo = blk * BLOCK
        n = min(lo + BLOCK, M) - lo
        g = np.empty(n, d.dtype)
        dl = d[T - 1, lo : lo + n]
        for k in range(np.uint64(n)):
            g[k] = dl[k]
        for t in range(T - 1, -1, -1):
            drow, durow = d[t, lo : lo + n], du[t, lo : lo + n]
            if t < T - 1:
                for k in range(np.uint64(n)):
                    g[k] = drow[k] + a * g[k]
            if scaled:  # (two loops, not a test per value: each one a vector loop)
                srow = scale[t, lo : lo + n]
                for k in range(np.uint64(n)):
                    durow[k] = (b * g[k]) * srow[k]
            else:
                for k in range(np.uint64(n)):
                    durow[k] = b * g[k]
    return du


def lowpass_scan_numba(u, a, y):
    """Numba twin of :func:`lowpass_scan_numpy` (parallel over column blocks, serial in time;
    the same operations in the same dtype, so the same bits)."""
    dtype = u.dtype.type
    return _lowpass_scan(u, dtype(a), dtype(1.0 - a), y)


def lowpass_scan_grad_numba(d, a, du, scale=None):
    """Numba twin of :func:`lowpass_scan_grad_numpy` (the same bits)."""
    dtype = d.dtype.type
    scale = np.empty((0, 0), d.dtype) if scale is None else scale
    return _lowpass_scan_grad(d, dtype(a), dtype(1.0 - a), du, scale)


def lowpass_scan(u, a, y):
    """:func:`lowpass_scan_numba` for the dtypes it is compiled for, else the reference."""
    return (lowpass_scan_numba if compiled_for(u.dtype) else lowpass_scan_numpy)(u, a, y)


def lowpass_scan_grad(d, a, du, scale=None):
    """:func:`lowpass_scan_grad_numba` for the dtypes it is compiled for, else the reference."""
    return (lowpass_scan_grad_numba if compiled_for(d.dtype) else lowpass_scan_grad_numpy)(d, a, du, scale)


def _lowpass_scan_example(rng):
    """Small fresh arguments for :func:`lowpass_scan_numba`: float32, two blocks of columns."""
    T, M = 13, BLOCK + 77
    u = (rng.uniform(-1.0, 1.0, size=(T, M)) * (rng.uniform(size=(T, M)) < 0.3) * 100.0).astype(np.float32)
    return (u, 0.6065306597126334, np.empty((T, M), np.float32))


def _lowpass_scan_grad_scaled_example(rng):
    """:func:`_lowpass_scan_example` and a derivative-like scale (zeros and values in (0, 1))."""
    d, a, du = _lowpass_scan_example(rng)
    scale = (rng.uniform(size=d.shape) * (rng.uniform(size=d.shape) < 0.7)).astype(d.dtype)
    return d, a, du, scale


def _lowpass_run_example(rng):
    """Small fresh arguments for :func:`lowpass_run_numba`."""
    T, M = 23, BLOCK + 77  # two blocks
    u = rng.uniform(-1.0, 1.0, size=(T, M)) * (rng.uniform(size=(T, M)) < 0.3) * 1000.0
    y_state = rng.uniform(-5.0, 5.0, size=M)
    out = np.empty((T, M))
    return (u, y_state, 0.8187307530779818, out)


from . import register  # noqa: E402

register("lowpass_run", lowpass_run_numpy, lowpass_run_numba, _lowpass_run_example)
register("lowpass_scan", lowpass_scan_numpy, lowpass_scan_numba, _lowpass_scan_example)
register("lowpass_scan_grad", lowpass_scan_grad_numpy, lowpass_scan_grad_numba, _lowpass_scan_example)
register("lowpass_scan_grad_scaled", lowpass_scan_grad_numpy, lowpass_scan_grad_numba,
         _lowpass_scan_grad_scaled_example)
