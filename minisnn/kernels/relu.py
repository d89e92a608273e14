"""Spiking rectified-linear neuron: Nengo's step and a time scan (LEVEL 1b).

Each kernel has a readable NumPy reference (``*_numpy``) and a Numba kernel (``*_numba``) with
the same signature; the pair is registered in :data:`minisnn.kernels.KERNELS` at the bottom.

The neuron (Nengo's ``SpikingRectifiedLinear``): an integrator without leak or refractory
period that resets by subtraction and may emit several spikes in one step::

    voltage += max(J, 0) * dt
    n_spikes = floor(voltage)
    output   = n_spikes * amplitude / dt
    voltage -= n_spikes

Its long-run rate is ``max(J, 0)`` spikes per second, the ``RectifiedLinear`` value.

Precision rule (as in :mod:`minisnn.kernels.lif`): each step is computed in float64 from the
stored state and stored back in the arrays' dtype, so chunked runs equal one run exactly.
Only ``+``, ``*`` and ``floor`` are involved, so kernel and reference agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, pjit, prange

from .lowpass import BLOCK, f8, lowpass_block, lowpass_step_numpy


def relu_step_numpy(dt, J, output, voltage, amplitude):
    """One Nengo SpikingRectifiedLinear step, vectorised over neurons (NumPy reference).

    Parameters
    ----------
    dt : float
        Time step in seconds (> 0).
    J : ndarray, shape (...)
        Input current (spikes per second when positive).
    output : ndarray, shape (...)
        Receives ``n_spikes * amplitude / dt`` (in place).
    voltage : ndarray, shape (...)
        Integrator state in [0, 1), updated in place.
    amplitude : float
        Area of one spike.

    Returns
    -------
    n_spikes : ndarray of float64, shape (...)
        Spikes emitted by each neuron in this step (whole numbers).
    """
    v = voltage.astype(np.float64)
    v += np.maximum(np.asarray(J, dtype=np.float64), 0) * dt
    n_spikes = np.floor(v)
    output[...] = (amplitude / dt) * n_spikes
    v -= n_spikes
    voltage[...] = v
    return n_spikes


def relu_run_numpy(J, voltage, out, dt, amplitude, syn_a, syn_state):
    """Run ``T = out.shape[0]`` spiking-ReLU steps with an optional fused Lowpass (reference).

    Parameters
    ----------
    J : ndarray, shape (TJ, M)
        Input current; ``TJ == 1`` means constant over time, else ``TJ == T``.
    voltage : ndarray, shape (M,)
        Integrator state, updated in place.
    out : ndarray, shape (T, M)
        Receives the output: ``n_spikes * amplitude / dt``, then filtered if ``syn_a != 0``.
    dt, amplitude : float
    syn_a : float
        Lowpass coefficient ``exp(-dt / tau)``; ``0.0`` means no synapse.
    syn_state : ndarray, shape (M,)
        Synapse output of the previous step, updated in place.

    Returns
    -------
    counts : ndarray of int64, shape (M,)
        Number of spikes of each neuron in this run.
    """
    return _run_numpy(relu_step_numpy, J, voltage, out, dt, amplitude, syn_a, syn_state)


def _run_numpy(step, J, voltage, out, dt, amplitude, syn_a, syn_state):
    """The time loop of the references: ``step`` (:func:`relu_step_numpy` or
    :func:`if_step_numpy`), then the Lowpass, at every step; returns the spike counts."""
    T, M = out.shape
    TJ = J.shape[0]
    if TJ != 1 and TJ != T:
        raise ValueError("J must have 1 or T = out.shape[0] rows")
    counts = np.zeros(M, dtype=np.int64)
    for t in range(T):
        counts += step(dt, J[0 if TJ == 1 else t], out[t], voltage, amplitude).astype(np.int64)
        lowpass_step_numpy(out[t], syn_state, syn_a)
    return counts


@jit
def _relu_block(jb, vb, ob, cb, dt, amp_dt):
    """Numba helper: one step of one block of neurons (branch-free, vectorised by LLVM)."""
    for k in range(vb.shape[0]):
        j = f8(jb[k])
        v = f8(vb[k]) + (j if j > 0.0 else 0.0) * dt
        n = np.floor(v)
        ob[k] = amp_dt * n
        vb[k] = v - n
        cb[k] += np.int64(n)


def relu_run_numba(J, voltage, out, dt, amplitude, syn_a, syn_state):
    """Numba twin of :func:`relu_run_numpy` (parallel over neuron blocks, serial in time)."""
    return _run_numba(J, voltage, out, dt, amplitude, syn_a, syn_state, False)


@pjit
def _run_numba(J, voltage, out, dt, amplitude, syn_a, syn_state, reset_to_zero):
    """The scan of both integrators: parallel over blocks of :data:`BLOCK` neurons, serial in
    time, each step :func:`_relu_block` (or :func:`_if_block` with ``reset_to_zero``) and the
    fused Lowpass."""
    T = out.shape[0]
    M = out.shape[1]
    TJ = J.shape[0]
    if TJ != 1 and TJ != T:
        raise ValueError("J must have 1 or T = out.shape[0] rows")
    dt = f8(dt)
    syn_a = f8(syn_a)
    amp_dt = f8(amplitude) / dt
    counts = np.zeros(M, dtype=np.int64)
    nblocks = (M + BLOCK - 1) // BLOCK
    for blk in prange(nblocks):
        lo = blk * BLOCK
        hi = min(lo + BLOCK, M)
        vb = voltage[lo:hi]
        sb = syn_state[lo:hi]
        cb = counts[lo:hi]
        for t in range(T):
            ob = out[t, lo:hi]
            jb = J[0 if TJ == 1 else t, lo:hi]
            if reset_to_zero:
                _if_block(jb, vb, ob, cb, dt, amp_dt)
            else:
                _relu_block(jb, vb, ob, cb, dt, amp_dt)
            lowpass_block(ob, sb, ob, syn_a)
    return counts


def _relu_run_example(rng):
    """Small fresh arguments for :func:`relu_run_numba` (up to ~3 spikes per step)."""
    T, M = 23, BLOCK + 77  # two blocks
    J = rng.uniform(-500.0, 3000.0, size=(T, M))
    voltage = rng.uniform(0.0, 1.0, size=M)
    out = np.empty((T, M))
    syn_state = rng.uniform(0.0, 100.0, size=M)
    return (J, voltage, out, 0.001, 1.0, 0.8187307530779818, syn_state)


# ---------------------------------------------------------------------------------------------
# integrate-and-fire with reset to zero (NIR's IF)
# ---------------------------------------------------------------------------------------------
#
# NIR's ``IF`` (``dv/dt = R I``, a spike when ``v > v_threshold``, then ``v = v_reset``) at step
# ``dt`` with ``I`` held over the step, normalised to threshold 1 and reset 0 (``J = R I / v_thr``):
#
#     voltage += J * dt           (negative J lowers it: no rectification, no floor)
#     spiked   = voltage > 1
#     output   = spiked * amplitude / dt
#     voltage[spiked] = 0         (at most one spike per step; the excess is lost)


def if_step_numpy(dt, J, output, voltage, amplitude):
    """One integrate-and-fire step (reset to zero), vectorised over neurons (NumPy reference).

    Returns the boolean array of the neurons that spiked; ``output`` and ``voltage`` are
    written in place (float64 arithmetic, stored in the arrays' dtype).
    """
    v = voltage.astype(np.float64)
    v += np.asarray(J, dtype=np.float64) * dt
    spiked = v > 1.0
    output[...] = spiked * (amplitude / dt)
    v[spiked] = 0.0
    voltage[...] = v
    return spiked


def if_run_numpy(J, voltage, out, dt, amplitude, syn_a, syn_state):
    """Run ``T = out.shape[0]`` integrate-and-fire steps with an optional fused Lowpass
    (reference); the arguments and the returned spike counts are those of :func:`relu_run_numpy`."""
    return _run_numpy(if_step_numpy, J, voltage, out, dt, amplitude, syn_a, syn_state)


@jit
def _if_block(jb, vb, ob, cb, dt, amp_dt):
    """Numba helper: one integrate-and-fire step of one block of neurons."""
    for k in range(vb.shape[0]):
        v = f8(vb[k]) + f8(jb[k]) * dt
        if v > 1.0:
            ob[k] = amp_dt
            vb[k] = 0.0
            cb[k] += 1
        else:
            ob[k] = 0.0
            vb[k] = v


def if_run_numba(J, voltage, out, dt, amplitude, syn_a, syn_state):
    """Numba twin of :func:`if_run_numpy` (parallel over neuron blocks, serial in time)."""
    return _run_numba(J, voltage, out, dt, amplitude, syn_a, syn_state, True)


def _if_run_example(rng):
    """Small fresh arguments for :func:`if_run_numba` (negative currents included)."""
    T, M = 23, BLOCK + 77  # two blocks
    J = rng.uniform(-500.0, 900.0, size=(T, M))
    voltage = rng.uniform(0.0, 1.0, size=M)
    out = np.empty((T, M))
    syn_state = rng.uniform(0.0, 100.0, size=M)
    return (J, voltage, out, 0.001, 1.0, 0.8187307530779818, syn_state)


# ---------------------------------------------------------------------------------------------
# the rectified-linear *rate* and its derivative, fused
# ---------------------------------------------------------------------------------------------
#
# ``RectifiedLinear`` in a network with ``scale_firing_rates`` sees ``J = gain * x`` and needs
# ``r = amplitude * max(J, 0)`` and ``dr/dx = amplitude * gain * [J > 0]``.  In NumPy that is
# a product, a maximum, a comparison, two more products and a NaN scan: six passes over
# ``x`` and three new arrays.  The kernel makes one pass and writes the two outputs.  The
# arithmetic is J's dtype's, in NumPy's order (``gain`` and ``amplitude`` are rounded to that
# dtype first, as NumPy does with a Python float), so kernel and reference agree bit for bit.
#
#     relu_rate(x, gain, amplitude)          -> (r, n_nan)
#     relu_rate_grad(x, gain, amplitude)     -> (dr, n_nan)
#     relu_rate_and_grad(x, gain, amplitude) -> (r, dr, n_nan)
#
# for ``x`` a 1-D float32 or float64 array; ``n_nan`` counts the NaN inputs (the model raises).


def _relu_rates_numpy(x, gain, amplitude, want):
    g, a = x.dtype.type(gain), x.dtype.type(amplitude)
    with np.errstate(over="ignore", under="ignore"):
        J = x * g if gain != 1.0 else x
        r = np.maximum(J, 0) * a if want != 1 else None
        dr = np.where(J > 0, a * g, x.dtype.type(0)) if want != 0 else None
    n_nan = int(np.count_nonzero(np.isnan(x)))
    return tuple(o for o in (r, dr) if o is not None) + (n_nan,)


def relu_rate_numpy(x, gain, amplitude):
    """Reference: ``(amplitude * max(gain * x, 0), n_nan)``."""
    return _relu_rates_numpy(x, gain, amplitude, 0)


def relu_rate_grad_numpy(x, gain, amplitude):
    """Reference: ``(amplitude * gain * [gain * x > 0], n_nan)``."""
    return _relu_rates_numpy(x, gain, amplitude, 1)


def relu_rate_and_grad_numpy(x, gain, amplitude):
    """Reference: both of the above, ``(r, dr, n_nan)``."""
    return _relu_rates_numpy(x, gain, amplitude, 2)


@pjit
def _relu_rates(x, g, a, want):
    """Numba kernel behind the ``relu_rate*_numba`` functions -> ``(r, dr, n_nan)``; ``g`` and
    ``a`` come already in x's dtype.  ``want`` 0: rate only, 1: derivative only, 2: both."""
    n = x.shape[0]
    r = np.empty(n if want != 1 else 0, dtype=x.dtype)
    dr = np.empty(n if want != 0 else 0, dtype=x.dtype)
    ag = a * g
    nblocks = (n + BLOCK - 1) // BLOCK
    nans = np.zeros(nblocks, dtype=np.int64)
    for blk in prange(nblocks):
        # one loop per ``want``, over views indexed from 0: with the absolute index (and the
        # test of ``want`` inside) the loop did not vectorise and ran ~5x slower
        s = blk * BLOCK
        e = min(n, s + BLOCK)
        xb = x[s:e]
        n_nan = 0
        if want == 0:
            rb = r[s:e]
            for i in range(e - s):
                v = xb[i]
                n_nan += v != v
                J = v * g
                rb[i] = J * a if J > 0 else 0
        elif want == 1:
            db = dr[s:e]
            for i in range(e - s):
                v = xb[i]
                n_nan += v != v
                db[i] = ag if v * g > 0 else 0
        else:
            rb, db = r[s:e], dr[s:e]
            for i in range(e - s):
                v = xb[i]
                n_nan += v != v
                J = v * g
                rb[i] = J * a if J > 0 else 0
                db[i] = ag if J > 0 else 0
        nans[blk] = n_nan
    return r, dr, nans.sum()


def _relu_rates_call(x, gain, amplitude, want):
    with np.errstate(over="ignore", under="ignore"):  # (only matters with NUMBA_DISABLE_JIT=1)
        r, dr, n_nan = _relu_rates(x, x.dtype.type(gain), x.dtype.type(amplitude), want)
    return r, dr, int(n_nan)


def relu_rate_numba(x, gain, amplitude):
    """Numba twin of :func:`relu_rate_numpy`."""
    r, _, n_nan = _relu_rates_call(x, gain, amplitude, 0)
    return r, n_nan


def relu_rate_grad_numba(x, gain, amplitude):
    """Numba twin of :func:`relu_rate_grad_numpy`."""
    _, dr, n_nan = _relu_rates_call(x, gain, amplitude, 1)
    return dr, n_nan


def relu_rate_and_grad_numba(x, gain, amplitude):
    """Numba twin of :func:`relu_rate_and_grad_numpy` (one pass)."""
    return _relu_rates_call(x, gain, amplitude, 2)


def _relu_rate_example(rng):
    """Two blocks of float32 inputs around 0, exact zeros, extremes; a gain and an amplitude
    that are not exact in float32."""
    x = rng.uniform(-3.0, 3.0, size=BLOCK + 301).astype(np.float32)
    x[:6] = [0.0, -0.0, 1e-30, -1e-30, 3e38, -3e38]
    return x, 1000.0 / 3.0, 0.001


from . import register  # noqa: E402

register("relu_run", relu_run_numpy, relu_run_numba, _relu_run_example)
register("if_run", if_run_numpy, if_run_numba, _if_run_example)
register("relu_rate", relu_rate_numpy, relu_rate_numba, _relu_rate_example)
register("relu_rate_grad", relu_rate_grad_numpy, relu_rate_grad_numba, _relu_rate_example)
register("relu_rate_and_grad", relu_rate_and_grad_numpy, relu_rate_and_grad_numba, _relu_rate_example)
