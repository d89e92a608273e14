"""Leaky integrate-and-fire neuron: Nengo's step and a time scan (LEVEL 1b).

Each kernel has a readable NumPy reference (``*_numpy``) and a Numba kernel (``*_numba``) with
the same signature; the pair is registered in :data:`minisnn.kernels.KERNELS` at the bottom.

The neuron (Nengo's ``LIF``, normalised so that the threshold is 1 and the reset is 0), for one
time step of length ``dt`` with input current ``J`` held constant over the step::

    refractory_time -= dt
    delta_t = clip(dt - refractory_time, 0, dt)       # time spent out of refractoriness
    voltage -= (J - voltage) * expm1(-delta_t / tau_rc)
    spiked  = voltage > 1
    output  = spiked * amplitude / dt                  # a spike is an impulse of area amplitude
    t_spike = dt + tau_rc * log1p(-(voltage - 1) / (J - 1))   # (spiked neurons only)
    voltage[voltage < min_voltage] = min_voltage
    voltage[spiked] = 0
    refractory_time[spiked] = tau_ref + t_spike

This is, operation for operation, ``nengo.LIF.step`` (nengo 4.1, ``nengo/neurons.py``).
``t_spike`` is the interpolated crossing time of ``v = 1`` measured from the start of the
step, so the part of the step after the spike is credited to the refractory period and the
long-run rate equals the ``LIFRate`` formula.

Transcendentals (both the reference and the kernel): ``expm1`` and ``log1p`` are the C
library's (``math.expm1`` / ``math.log1p``, which Numba compiles to calls of the same C
functions), applied elementwise in the reference.  NumPy's own float64 ``np.expm1`` /
``np.log1p`` take SIMD code paths on some CPUs (AVX-512) that can differ from the C library's
in the last bit, so a reference written with them would equal the kernel on some hosts only;
with the same functions on both sides the two agree bit for bit on every host.  (Nengo itself
calls NumPy's: on such a host this step and ``nengo.LIF.step`` can differ in the last bit of the
state, see ``tests/test_neurons.py``.)

Precision rule (both the reference and the kernel): every step is computed in float64 from
the stored state and the result is stored back in the arrays' own dtype.  With float64 arrays
this is exactly Nengo's arithmetic; with float32 arrays the state is rounded once per step, so
running ``T`` steps in several chunks gives exactly the same result as one run.  (In Numba,
``float(x)`` of a float32 stays float32, hence the explicit ``np.float64(x)`` widening.)

The Numba scan splits each step of a block of neurons in two passes: a branch-free pass
that LLVM vectorises and that handles the common case (a full step without a spike, or a
whole step in the refractory period), and a scalar pass over the few neurons flagged by it
(spike or partial step), which need ``log1p`` / ``expm1``.  Both passes use the arithmetic
above, so the results equal the reference.  With the defaults and ~150 Hz firing this is
~2x faster than one scalar loop.

One deliberate difference from Nengo, in a degenerate case only: if a neuron spikes while
``J <= 1`` (possible only from an initial voltage above 1) or with ``voltage == J`` after
rounding, Nengo's ``t_spike`` is ``-inf`` or NaN (and a NaN refractory time freezes the neuron
forever).  Here ``t_spike = dt - delta_t`` instead: the crossing is placed at the start of the
integrated part of the step.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit, pjit, prange

f8 = np.float64  # numba's float(x) keeps float32 as float32; np.float64(x) widens

#: The C library's ``expm1`` and ``log1p`` elementwise over float64 arrays: the very functions the
#: Numba kernel calls (see "Transcendentals" above), where NumPy's ufuncs may not be.
libm_expm1 = np.vectorize(math.expm1, otypes=[np.float64])
libm_log1p = np.vectorize(math.log1p, otypes=[np.float64])

#: Neurons per parallel work item in the Numba scans (one item = a contiguous block of
#: columns; within a block the loop runs over time, then over the block's neurons, so the
#: writes to ``out[t, lo:hi]`` are contiguous and the block's state stays in cache).
BLOCK = 1024


# ---------------------------------------------------------------------------------------------
# one step (used by minisnn.neurons.LIF.step)
# ---------------------------------------------------------------------------------------------


def lif_step_numpy(dt, J, output, voltage, refractory_time, tau_rc, tau_ref, min_voltage,
                   amplitude):
    """One Nengo LIF step, vectorised over neurons (NumPy reference).

    Parameters
    ----------
    dt : float
        Time step in seconds (> 0).
    J : ndarray, shape (...)
        Input current (normalised: threshold 1).  Same shape as ``voltage``.
    output : ndarray, shape (...)
        Receives ``spiked * amplitude / dt`` (written in place).
    voltage, refractory_time : ndarray, shape (...)
        Neuron state, updated in place.
    tau_rc, tau_ref, min_voltage, amplitude : float
        Membrane time constant (s), refractory period (s), voltage floor, spike area.

    Returns
    -------
    spiked : ndarray of bool, shape (...)
    """
    f8 = np.float64
    J = np.asarray(J, dtype=f8)
    v = voltage.astype(f8)
    ref = refractory_time.astype(f8)

    ref -= dt
    delta_t = np.clip(dt - ref, 0, dt)
    v -= (J - v) * libm_expm1(-delta_t / tau_rc)

    spiked = v > 1
    output[...] = spiked * (amplitude / dt)

    vs = v[spiked]
    js = J[spiked]
    ok = (js > 1) & (vs < js)             # Nengo's formula is finite here (non-degenerate)
    t_spike = dt - delta_t[spiked]        # degenerate case: crossing at the start
    t_spike[ok] = dt + tau_rc * libm_log1p(-(vs[ok] - 1) / (js[ok] - 1))

    v[v < min_voltage] = min_voltage
    v[spiked] = 0
    ref[spiked] = tau_ref + t_spike

    voltage[...] = v
    refractory_time[...] = ref
    return spiked


# ---------------------------------------------------------------------------------------------
# time scan for the layer-major simulator
# ---------------------------------------------------------------------------------------------


def lowpass_step_numpy(u, y_state, a):
    """One step of the Lowpass, in place: ``y = a y + (1 - a) u`` in float64, written to both
    ``y_state`` and ``u`` (``a = 0`` passes ``u`` through exactly)."""
    y = a * y_state.astype(np.float64) + (1.0 - a) * u.astype(np.float64)
    y_state[...] = y
    u[...] = y


def lif_run_numpy(J, voltage, refractory_time, out, dt, tau_rc, tau_ref, min_voltage, amplitude,
                  syn_a, syn_state):
    """Run ``T = out.shape[0]`` LIF steps, with an optional fused Lowpass (NumPy reference).

    Parameters
    ----------
    J : ndarray, shape (TJ, M)
        Input current; ``TJ == 1`` means constant over time (first layer), else ``TJ == T``.
    voltage, refractory_time : ndarray, shape (M,)
        Neuron state, updated in place (so a run can be continued in later chunks).
    out : ndarray, shape (T, M)
        Receives the output: spikes * amplitude / dt, then filtered if ``syn_a != 0``.
    dt, tau_rc, tau_ref, min_voltage, amplitude : float
        As in :func:`lif_step_numpy`.
    syn_a : float
        Lowpass coefficient ``exp(-dt / tau)``; ``0.0`` means no synapse (``out`` = spikes).
        The filter is ``y = syn_a * y + (1 - syn_a) * u`` applied to ``u`` as stored in
        ``out``'s dtype, so fused == unfused (:func:`minisnn.kernels.lowpass.lowpass_run_numpy`).
    syn_state : ndarray, shape (M,)
        Synapse output ``y`` of the previous step, updated in place (set to the last neuron
        output when ``syn_a == 0``).

    Returns
    -------
    counts : ndarray of int64, shape (M,)
        Number of spikes of each neuron in this run.
    """
    T, M = out.shape
    TJ = J.shape[0]
    if TJ != 1 and TJ != T:
        raise ValueError("J must have 1 or T = out.shape[0] rows")
    counts = np.zeros(M, dtype=np.int64)
    for t in range(T):
        spiked = lif_step_numpy(dt, J[0 if TJ == 1 else t], out[t], voltage, refractory_time,
                                tau_rc, tau_ref, min_voltage, amplitude)
        counts += spiked
        lowpass_step_numpy(out[t], syn_state, syn_a)
    return counts


@jit
def _lif_common(jb, vb, rb, ob, dt, e_full, min_voltage, v_old, r_new, rare):
    """Numba helper, one block of neurons, one step: the common case, branch-free.

    Handles neurons that integrate a full step without spiking and neurons that stay
    refractory for the whole step (their voltage does not change: Nengo's
    ``expm1(-0 / tau_rc) = -0``).  A neuron whose step is partial (it leaves refractoriness
    during the step) or that spikes is only flagged in ``rare`` (with its old voltage and new
    refractory time saved) and finished by :func:`_lif_rare`.  Written without calls or
    early exits so that LLVM vectorises it.  Returns the number of flagged neurons.
    """
    n_rare = 0
    for k in range(vb.shape[0]):
        j = f8(jb[k])
        v = f8(vb[k])
        ref = f8(rb[k]) - dt
        dlt = dt - ref                       # Nengo clips this to [0, dt]
        v_full = v - (j - v) * e_full        # Nengo's update when dlt >= dt
        v_new = v_full if dlt >= dt else v   # dlt <= 0: refractory, v unchanged
        flag = ((dlt > 0.0) & (dlt < dt)) | (v_new > 1.0)
        v_old[k] = v
        r_new[k] = ref
        rare[k] = flag
        n_rare += flag
        vb[k] = min_voltage if v_new < min_voltage else v_new
        rb[k] = ref
        ob[k] = 0.0
    return n_rare


@jit
def _lif_rare(jb, vb, rb, ob, cb, dt, tau_rc, tau_ref, min_voltage, amp_dt, e_full, v_old, r_new,
              rare):
    """Numba helper: finish the flagged neurons of :func:`_lif_common` with Nengo's exact
    scalar arithmetic (partial step, spike, interpolated spike time, reset)."""
    for k in range(vb.shape[0]):
        if not rare[k]:
            continue
        j = f8(jb[k])
        v = v_old[k]
        ref = r_new[k]
        dlt = dt - ref
        if dlt < 0.0:
            dlt = 0.0
        elif dlt > dt:
            dlt = dt
        e = e_full if dlt == dt else math.expm1(-dlt / tau_rc)
        v -= (j - v) * e
        if v > 1.0:
            if j > 1.0 and v < j:
                t_spike = dt + tau_rc * math.log1p(-(v - 1.0) / (j - 1.0))
            else:                            # degenerate (see module docstring)
                t_spike = dt - dlt
            v = 0.0
            ref = tau_ref + t_spike
            cb[k] += 1
            ob[k] = amp_dt
        elif v < min_voltage:
            v = min_voltage
        vb[k] = v
        rb[k] = ref


@jit
def _synapse_block(ob, sb, syn_a):
    """Numba helper: fused Lowpass on one block, one step (``syn_a == 0``: passthrough)."""
    if syn_a != 0.0:
        b = 1.0 - syn_a
        for k in range(ob.shape[0]):
            y = syn_a * f8(sb[k]) + b * f8(ob[k])
            sb[k] = y
            ob[k] = y
    else:
        for k in range(ob.shape[0]):
            sb[k] = ob[k]


@pjit
def lif_run_numba(J, voltage, refractory_time, out, dt, tau_rc, tau_ref, min_voltage, amplitude,
                  syn_a, syn_state):
    """Numba twin of :func:`lif_run_numpy` (same signature, same results).

    Parallel over blocks of :data:`BLOCK` neurons (each block owns its columns, so the result
    does not depend on the number of threads), sequential over time.  Each step of a block
    runs in two passes: :func:`_lif_common` (vectorised; most neurons) and :func:`_lif_rare`
    (scalar; only the neurons that spike or leave refractoriness mid-step).  Both use
    exactly the arithmetic of :func:`lif_step_numpy`.
    """
    T = out.shape[0]
    M = out.shape[1]
    TJ = J.shape[0]
    if TJ != 1 and TJ != T:
        raise ValueError("J must have 1 or T = out.shape[0] rows")
    dt = f8(dt)
    tau_rc = f8(tau_rc)
    tau_ref = f8(tau_ref)
    min_voltage = f8(min_voltage)
    syn_a = f8(syn_a)
    e_full = math.expm1(-dt / tau_rc)
    amp_dt = f8(amplitude) / dt
    counts = np.zeros(M, dtype=np.int64)
    nblocks = (M + BLOCK - 1) // BLOCK
    for blk in prange(nblocks):
        lo = blk * BLOCK
        hi = min(lo + BLOCK, M)
        vb = voltage[lo:hi]
        rb = refractory_time[lo:hi]
        sb = syn_state[lo:hi]
        cb = counts[lo:hi]
        v_old = np.empty(hi - lo, dtype=np.float64)
        r_new = np.empty(hi - lo, dtype=np.float64)
        rare = np.empty(hi - lo, dtype=np.bool_)
        for t in range(T):
            jb = J[0 if TJ == 1 else t, lo:hi]
            ob = out[t, lo:hi]
            if _lif_common(jb, vb, rb, ob, dt, e_full, min_voltage, v_old, r_new, rare) > 0:
                _lif_rare(jb, vb, rb, ob, cb, dt, tau_rc, tau_ref, min_voltage, amp_dt, e_full,
                          v_old, r_new, rare)
            _synapse_block(ob, sb, syn_a)
    return counts


# ---------------------------------------------------------------------------------------------
# the float32 scan: NengoDL's arithmetic precision, twice the SIMD lanes
# ---------------------------------------------------------------------------------------------
#
# The same step in float32 arithmetic, as NengoDL computes it with its default float32 dtype:
# state, current, the voltage update and the synapse are float32 operations (the constants
# ``dt``, ``expm1(-dt / tau_rc)``, ``tau_ref``, ``amplitude / dt``, ``syn_a`` and ``1 - syn_a``
# rounded to float32 once).  The two transcendentals of the rare pass are evaluated in float64
# with the C library (as in the exact scan) and rounded to float32, so the NumPy reference and
# the kernel share every operation and agree bit for bit on any host.  Step for step:
#
#     ref  = ref - dt                              (float32)
#     dlt  = min(max(dt - ref, 0), dt)             (float32)
#     e    = e_full if dlt == dt else f32(expm1(-f64(dlt) / tau_rc))
#     v    = v - (J - v) * e                       (float32)
#     spike where v > 1: t = f32(dt + tau_rc * log1p(-(f64(v) - 1) / (f64(J) - 1)))
#                        (degenerate case as above: t = dt - dlt), v = 0, ref = tau_ref + t
#     else v = max(v, min_voltage)
#     y    = syn_a * y + (1 - syn_a) * out         (float32)


def _f32_constants(dt, tau_rc, tau_ref, min_voltage, amplitude, syn_a):
    """The constants of the float32 step, each rounded to float32 once (NumPy scalars)."""
    f4 = np.float32
    dt32 = f4(dt)
    e_full = f4(math.expm1(-float(dt32) / tau_rc))
    return (dt32, e_full, f4(tau_ref), f4(min_voltage), f4(amplitude / dt), f4(syn_a),
            f4(1.0 - syn_a))


def lif_run32_numpy(J, voltage, refractory_time, out, dt, tau_rc, tau_ref, min_voltage, amplitude,
                    syn_a, syn_state):
    """:func:`lif_run_numpy` in float32 arithmetic (NumPy reference of :func:`lif_run32_numba`).

    Every array is float32; the steps are written out above ("the float32 scan").
    """
    T, M = out.shape
    TJ = J.shape[0]
    if TJ != 1 and TJ != T:
        raise ValueError("J must have 1 or T = out.shape[0] rows")
    dt32, e_full, ref32, vmin32, amp_dt, a32, b32 = _f32_constants(dt, tau_rc, tau_ref, min_voltage,
                                                                     amplitude, syn_a)
    zero = np.float32(0.0)
    counts = np.zeros(M, dtype=np.int64)
    for t in range(T):
        j = J[0 if TJ == 1 else t]
        ref = refractory_time - dt32
        dlt = np.minimum(np.maximum(dt32 - ref, zero), dt32)
        e = np.full(M, e_full, dtype=np.float32)
        partial = dlt != dt32
        e[partial] = libm_expm1(-dlt[partial].astype(np.float64) / tau_rc).astype(np.float32)
        v = voltage - (j - voltage) * e
        spiked = v > np.float32(1.0)
        vs = v[spiked].astype(np.float64)
        js = j[spiked].astype(np.float64)
        ok = (js > 1) & (vs < js)
        t_spike = (dt32 - dlt[spiked]).astype(np.float32)
        t_spike[ok] = (float(dt32) + tau_rc * libm_log1p(-(vs[ok] - 1) / (js[ok] - 1))).astype(np.float32)
        v = np.where(v < vmin32, vmin32, v)
        v[spiked] = zero
        ref[spiked] = ref32 + t_spike
        voltage[...] = v
        refractory_time[...] = ref
        counts += spiked
        o = np.where(spiked, amp_dt, zero)
        if syn_a != 0.0:
            y = a32 * syn_state + b32 * o
            syn_state[...] = y
            out[t] = y
        else:
            syn_state[...] = o
            out[t] = o
    return counts


@jit
def _lif32_common(jb, vb, rb, ob, dt, e_full, min_voltage, v_old, r_new, rare):
    """:func:`_lif_common` in float32 arithmetic (all arguments float32)."""
    n_rare = 0
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for k in range(vb.shape[0]):
        j = jb[k]
        v = vb[k]
        ref = rb[k] - dt
        dlt = dt - ref
        v_full = v - (j - v) * e_full
        v_new = v_full if dlt >= dt else v
        flag = ((dlt > zero) & (dlt < dt)) | (v_new > one)
        v_old[k] = v
        r_new[k] = ref
        rare[k] = flag
        n_rare += flag
        vb[k] = min_voltage if v_new < min_voltage else v_new
        rb[k] = ref
        ob[k] = zero
    return n_rare


@jit
def _lif32_rare(jb, vb, rb, ob, cb, dt, tau_rc, tau_ref, min_voltage, amp_dt, e_full, v_old, r_new,
                rare):
    """:func:`_lif_rare` in float32 arithmetic; the transcendentals in float64, rounded."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for k in range(vb.shape[0]):
        if not rare[k]:
            continue
        j = jb[k]
        v = v_old[k]
        ref = r_new[k]
        dlt = dt - ref
        if dlt < zero:
            dlt = zero
        elif dlt > dt:
            dlt = dt
        e = e_full if dlt == dt else np.float32(math.expm1(-f8(dlt) / tau_rc))
        v = v - (j - v) * e
        if v > one:
            if j > one and v < j:
                t_spike = np.float32(f8(dt) + tau_rc * math.log1p(-(f8(v) - 1.0) / (f8(j) - 1.0)))
            else:                            # degenerate (see module docstring)
                t_spike = dt - dlt
            v = zero
            ref = tau_ref + t_spike
            cb[k] += 1
            ob[k] = amp_dt
        elif v < min_voltage:
            v = min_voltage
        vb[k] = v
        rb[k] = ref


@jit
def _synapse32_block(ob, sb, a, b):
    """Numba helper: fused float32 Lowpass on one block, one step (``a == 0``: passthrough)."""
    if a != np.float32(0.0):
        for k in range(ob.shape[0]):
            y = a * sb[k] + b * ob[k]
            sb[k] = y
            ob[k] = y
    else:
        for k in range(ob.shape[0]):
            sb[k] = ob[k]


def lif_run32_numba(J, voltage, refractory_time, out, dt, tau_rc, tau_ref, min_voltage, amplitude,
                    syn_a, syn_state):
    """Numba twin of :func:`lif_run32_numpy` (same signature, same results, float32 arrays)."""
    T = out.shape[0]
    if J.shape[0] != 1 and J.shape[0] != T:
        raise ValueError("J must have 1 or T = out.shape[0] rows")
    dt32, e_full, ref32, vmin32, amp_dt, a32, b32 = _f32_constants(dt, tau_rc, tau_ref, min_voltage,
                                                                     amplitude, syn_a)
    return _lif_run32_fused(J, voltage, refractory_time, out, syn_state, f8(tau_rc), dt32, e_full, ref32,
                            vmin32, amp_dt, a32, b32)


@pjit
def _lif_run32_fused(J, voltage, refractory_time, out, syn_state, tau_rc, dt, e_full, tau_ref, min_voltage,
                     amp_dt, a, b):
    """The float32 scan: parallel over blocks of :data:`BLOCK` neurons, sequential over time,
    the Lowpass fused into each step (as :func:`lif_run_numba`)."""
    T = out.shape[0]
    M = out.shape[1]
    TJ = J.shape[0]
    counts = np.zeros(M, dtype=np.int64)
    nblocks = (M + BLOCK - 1) // BLOCK
    for blk in prange(nblocks):
        lo = blk * BLOCK
        hi = min(lo + BLOCK, M)
        vb = voltage[lo:hi]
        rb = refractory_time[lo:hi]
        sb = syn_state[lo:hi]
        cb = counts[lo:hi]
        v_old = np.empty(hi - lo, dtype=np.float32)
        r_new = np.empty(hi - lo, dtype=np.float32)
        rare = np.empty(hi - lo, dtype=np.bool_)
        for t in range(T):
            jb = J[0 if TJ == 1 else t, lo:hi]
            ob = out[t, lo:hi]
            if _lif32_common(jb, vb, rb, ob, dt, e_full, min_voltage, v_old, r_new, rare) > 0:
                _lif32_rare(jb, vb, rb, ob, cb, dt, tau_rc, tau_ref, min_voltage, amp_dt, e_full,
                            v_old, r_new, rare)
            _synapse32_block(ob, sb, a, b)
    return counts


def _lif_run_example(rng):
    """Small fresh arguments for :func:`lif_run_numba` (currents away from threshold)."""
    T, M = 23, BLOCK + 77  # two blocks
    J = rng.uniform(1.2, 12.0, size=(T, M))
    J[:, ::7] = rng.uniform(-2.0, 0.8, size=(T, J[:, ::7].shape[1]))  # some silent neurons
    voltage = rng.uniform(0.0, 1.0, size=M)
    refractory_time = np.zeros(M)
    refractory_time[::3] = rng.uniform(0.0, 0.003, size=refractory_time[::3].shape)
    out = np.empty((T, M))
    syn_state = rng.uniform(0.0, 100.0, size=M)
    return (J, voltage, refractory_time, out, 0.001, 0.02, 0.002, 0.0, 1.0, 0.8187307530779818,
            syn_state)


from . import register  # noqa: E402



def _lif_run32_example(rng):
    """:func:`_lif_run_example` with float32 arrays, for :func:`lif_run32_numba`."""
    J, voltage, refractory_time, out, *scalars, syn_state = _lif_run_example(rng)
    f4 = np.float32
    return (J.astype(f4), voltage.astype(f4), refractory_time.astype(f4), out.astype(f4), *scalars,
            syn_state.astype(f4))


register("lif_run", lif_run_numpy, lif_run_numba, _lif_run_example)
register("lif_run32", lif_run32_numpy, lif_run32_numba, _lif_run32_example)
