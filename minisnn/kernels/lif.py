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
from .lowpass import BLOCK, f8, lowpass_block, lowpass_step_numpy
from .simd import MASK_WIDTH, nonzero_mask, trailing_zeros

#: The C library's ``expm1`` and ``log1p`` elementwise over float64 arrays: the very functions the
#: Numba kernel calls (see "Transcendentals" above), where NumPy's ufuncs may not be.
libm_expm1 = np.vectorize(math.expm1, otypes=[np.float64])
libm_log1p = np.vectorize(math.log1p, otypes=[np.float64])


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
            lowpass_block(ob, sb, ob, syn_a)
    return counts


# ---------------------------------------------------------------------------------------------
# the float32 scan: NengoDL's arithmetic precision, vectorised across neurons
# ---------------------------------------------------------------------------------------------
#
# The same step in float32 arithmetic, as NengoDL computes it with its default float32 dtype:
# state, current, the voltage update, the spike time and the synapse are float32 operations,
# with the constants ``dt``, ``expm1(-dt / tau_rc)``, ``-1 / tau_rc``, ``tau_rc``, ``tau_ref``,
# ``amplitude / dt``, ``syn_a`` and ``1 - syn_a`` rounded to float32 once.  The two
# transcendentals are float32 polynomials where their argument is small - always, with the
# usual ``dt / tau_rc <= 0.3``: the partial step's ``x = -dlt / tau_rc`` lies in
# ``[-dt / tau_rc, 0]`` and the spike time's ``u = (1 - v) / (J - 1)`` in
# ``[expm1(-dt / tau_rc), 0]`` - so every neuron runs the same branch-free code and the loop
# is vectorised (16 neurons per AVX-512 instruction).  Elsewhere the C library's float64
# functions, rounded to float32, take over, neuron by neuron.  Step for step:
#
#     ref  = ref - dt
#     dlt  = min(max(dt - ref, 0), dt)
#     x    = dlt * (-1 / tau_rc)
#     e    = e_full if dlt == dt else EXPM1(x)
#     v    = v - (J - v) * e
#     spike where v > 1:
#         u = (1 - v) / (J - 1)
#         t = dt + tau_rc * LOG1P(u)   if J > 1 and v < J   (else the degenerate t = dt - dlt)
#         v = 0, ref = tau_ref + t
#     else v = max(v, min_voltage)
#     y    = syn_a * y + (1 - syn_a) * out   (out = spike * amplitude / dt; syn_a == 0: y = out)
#
#     EXPM1(x) = x (1 + x (1/2 + x (1/6 + x (1/24 + x (1/120 + x (1/720 + x/5040))))))
#                                                   (|x| <= POLY_MAX; Taylor, error < 1e-8)
#     LOG1P(u) = s (2 + z (2/3 + z (2/5 + z (2/7 + z 2/9)))),  s = u / (2 + u), z = s s
#                                                   (|u| <= POLY_MAX; 2 atanh(s), error < 3e-9)
#     otherwise f32(math.expm1(f64(x))), f32(math.log1p(f64(u)))
#
# Every operation is a correctly rounded float32 operation (no fused multiply-adds: fastmath is
# off), so the NumPy reference and the kernel agree bit for bit on any host.

#: The float32 polynomials cover arguments up to this size (``dt / tau_rc = 0.05`` by default).
POLY_MAX = 0.3

_F4 = np.float32
_E = tuple(_F4(1.0 / math.factorial(n)) for n in range(1, 8))      # 1, 1/2, ..., 1/5040
_L = tuple(_F4(2.0 / (2 * n + 1)) for n in range(5))                # 2, 2/3, 2/5, 2/7, 2/9
E1, E2, E3, E4, E5, E6, E7 = _E
L0, L1, L2, L3, L4 = _L


def _f32_constants(dt, tau_rc, tau_ref, min_voltage, amplitude, syn_a):
    """The constants of the float32 step, each rounded to float32 once (NumPy scalars):
    ``dt, e_full, -1/tau_rc, tau_rc, tau_ref, min_voltage, amplitude/dt, syn_a, 1 - syn_a``."""
    f4 = np.float32
    dt32 = f4(dt)
    e_full = f4(math.expm1(-float(dt32) / tau_rc))
    vmin = f4(max(float(min_voltage), -float(np.finfo(f4).max)))  # "no floor" (-1e300) -> float32 lowest
    return (dt32, e_full, f4(-1.0 / tau_rc), f4(tau_rc), f4(tau_ref), vmin, spike_height32(amplitude, dt),
            f4(syn_a), f4(1.0 - syn_a))


def _expm1_poly(x):
    """EXPM1 above, on a float32 array or scalar (the reference's; the kernels call its
    compiled twin :func:`_expm1_poly_jit`, the same operations)."""
    return x * (E1 + x * (E2 + x * (E3 + x * (E4 + x * (E5 + x * (E6 + x * E7))))))


def _log1p_poly(u):
    """LOG1P above, on a float32 array or scalar (compiled twin :func:`_log1p_poly_jit`)."""
    s = u / (_F4(2.0) + u)
    z = s * s
    return s * (L0 + z * (L1 + z * (L2 + z * (L3 + z * L4))))


_expm1_poly_jit = jit(_expm1_poly)
_log1p_poly_jit = jit(_log1p_poly)


def lif_run32_numpy(J, voltage, refractory_time, out, dt, tau_rc, tau_ref, min_voltage, amplitude,
                    syn_a, syn_state, in_a=0.0, in_state=None, bias=None, gain=1.0, window_sum=None, window=(0, 0)):
    """:func:`lif_run_numpy` in float32 arithmetic (NumPy reference of :func:`lif_run32_numba`).

    Every array is float32; the steps are written out above ("the float32 scan").  ``out`` may
    instead be uint8: it then receives the spikes, 1 for each ``amplitude / dt`` of the output
    (the synapse, if any, still filters into ``syn_state``).  With ``window_sum`` (shape
    ``(M,)``) the (filtered) output of the steps ``window[0] <= t < window[1]`` is added to it,
    step by step: a layer's mean over a readout window without writing its float output.

    With ``in_state`` (shape ``(M,)``, updated in place) the current is first filtered, in
    float32: ``s = in_a * s + (1 - in_a) * J[t]``, and the neurons see ``(s + bias) * gain``
    (``bias`` per neuron, zeros if None).  This is the Lowpass of an event-driven layer below,
    which filters its output instead of its input spikes, with that layer's bias and this
    layer's gain: fused here, they cost no passes over the block of their own.
    """
    T, M = out.shape
    TJ = J.shape[0]
    if TJ != 1 and TJ != T:
        raise ValueError("J must have 1 or T = out.shape[0] rows")
    dt32, e_full, nit, tau32, ref32, vmin32, amp_dt, a32, b32 = _f32_constants(
        dt, tau_rc, tau_ref, min_voltage, amplitude, syn_a)
    bits = _bits(out)
    w0, w1 = window
    fa, fb, bias, gain = _filter_constants(in_a, in_state, bias, gain, M)
    zero, one, big = np.float32(0.0), np.float32(1.0), np.float32(POLY_MAX)
    libm = lambda f, a: f(a.astype(np.float64)).astype(np.float32)  # noqa: E731
    counts = np.zeros(M, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for t in range(T):
            j = J[0 if TJ == 1 else t]
            if in_state is not None:
                in_state[...] = fa * in_state + fb * j
                j = (in_state + bias) * gain
            ref = refractory_time - dt32
            dlt = np.minimum(np.maximum(dt32 - ref, zero), dt32)
            x = dlt * nit
            e = _expm1_poly(x)
            e[np.abs(x) > big] = libm(libm_expm1, x[np.abs(x) > big])
            e[dlt == dt32] = e_full
            v = voltage - (j - voltage) * e
            spiked = v > one
            u = (one - v) / (j - one)
            ok = (j > one) & (v < j)        # then 1 < v < J: u in (-1, 0)
            lg = _log1p_poly(u)
            far = spiked & ok & (np.abs(u) > big)
            lg[far] = libm(libm_log1p, u[far])
            t_spike = np.where(ok, dt32 + tau32 * lg, dt32 - dlt)
            voltage[...] = np.where(spiked, zero, np.where(v < vmin32, vmin32, v))
            refractory_time[...] = np.where(spiked, ref32 + t_spike, ref)
            counts += spiked
            o = np.where(spiked, amp_dt, zero)
            y = o if a32 == zero else a32 * syn_state + b32 * o
            syn_state[...] = y
            out[t] = spiked if bits else y
            if window_sum is not None and w0 <= t < w1:
                window_sum += y
    return counts


def _filter_constants(in_a, in_state, bias, gain, M):
    """The current filter's float32 constants ``(a, 1 - a, bias (M,), gain)``."""
    f4 = np.float32
    if in_state is None:
        return f4(0.0), f4(1.0), np.zeros(0, f4), f4(1.0)
    return f4(in_a), f4(1.0 - in_a), np.zeros(M, f4) if bias is None else bias, f4(gain)


def _bits(out) -> bool:
    """Whether ``out`` is a uint8 spike map (0 / 1 per neuron and step): a quarter of the
    memory of the float32 output ``spike * amplitude / dt`` (see :func:`spike_height32`).  A
    synapse then filters into ``syn_state`` (and ``window_sum``) only."""
    return out.dtype == np.uint8


def spike_height32(amplitude, dt):
    """The float32 output of a spike, ``amplitude / dt``, as the float32 scan writes it: the
    value of each 1 in a uint8 spike map of that scan."""
    return np.float32(amplitude / dt)


@jit
def _lif32_scalar(j, v, ref, y, dt, e_full, nit, tau, tau_ref, min_voltage, amp_dt, a, b, big):
    """One neuron, one float32 step, with the C library where an argument exceeds ``big``:
    returns ``(v, ref, y, spiked)`` (the full definition; :func:`_lif32_block` runs the
    polynomial-only part of it vectorised and hands the other neurons to this)."""
    zero = np.float32(0.0)
    one = np.float32(1.0)
    ref = ref - dt
    dlt = dt - ref
    dlt = zero if dlt < zero else (dt if dlt > dt else dlt)
    x = dlt * nit
    if dlt == dt:
        e = e_full
    elif abs(x) <= big:
        e = _expm1_poly_jit(x)
    else:
        e = np.float32(math.expm1(f8(x)))
    v = v - (j - v) * e
    spiked = v > one
    o = zero
    if spiked:
        if j > one and v < j:
            u = (one - v) / (j - one)
            if abs(u) <= big:
                lg = _log1p_poly_jit(u)
            else:
                lg = np.float32(math.log1p(f8(u)))
            t_spike = dt + tau * lg
        else:                                # degenerate (see module docstring)
            t_spike = dt - dlt
        v = zero
        ref = tau_ref + t_spike
        o = amp_dt
    elif v < min_voltage:
        v = min_voltage
    y = o if a == zero else a * y + b * o
    return v, ref, y, spiked


@jit
def _lif32_block(jb, vb, rb, ob, sb, cnt8, slow, dt, e_full, nit, tau, tau_ref, min_voltage, amp_dt, a, b, big,
                 bits, ebuf, ubuf, lbuf, current_filter=None):
    """One block of neurons, one float32 step, branch-free (LLVM vectorises each loop): every
    neuron whose arguments are within ``big`` is stepped and its spike added to its counter
    ``cnt8`` (uint8); the others keep their state and are flagged in ``slow``, and the return
    value says whether there is any (the caller finishes them with :func:`_lif32_scalar`).
    ``bits``: ``ob`` is a uint8 array and receives the spikes (0 or 1), not the output.
    ``a is None``: no synapse (``y = o``); a separate compilation, with no test of ``a`` left in
    the loop.

    The step is split in four loops over the block, through the scratch arrays ``ebuf``,
    ``ubuf``, ``lbuf`` (the block's ``e``, ``u`` and ``LOG1P(u)``).  Each polynomial is a chain
    of dependent operations (~40 cycles for the Horner form of EXPM1, ~60 for the two
    divisions and LOG1P); in one long loop body only a few iterations fit in the core's
    out-of-order window, so the chains' latency, not the arithmetic, set the pace.  In short
    loops many iterations overlap: 1.2-1.3x faster, with every value computed by the same
    operations as before (the last loop recomputes the cheap ones rather than storing them).

    The last loop keeps its bookkeeping narrow: uint8 counters (an int64 counter took eight
    bytes, two vector registers' worth of 16 neurons, and a widening per step), an "any slow"
    flag rather than a count, and no synapse test.  Each alone was worth 1.05-1.1x on that
    loop, the three together 1.57-1.67x (1.13-1.18x on the whole scan, the same bits).

    ``current_filter = (raw, state, bias, fa, fb, gain)``: the current filter of
    :func:`lif_run32_numpy` first, ``state = fa * state + fb * raw`` and ``jb = (state + bias) *
    gain`` (``jb`` is then scratch that receives the current).  It runs in the first loop, which
    reads only ``rb`` otherwise: as a loop of its own per step it cost 1.06x on the scans that
    filter (``docs/results.md``).  None: a separate compilation without it.
    """
    zero = np.float32(0.0)
    one = np.float32(1.0)
    n = vb.shape[0]
    for k in range(n):                       # e: e_full for a full step, else EXPM1(x)
        if current_filter is not None:
            raw, state, bias, fa, fb, gain = current_filter
            f = fa * state[k] + fb * raw[k]
            state[k] = f
            jb[k] = (f + bias[k]) * gain
        ref = rb[k] - dt
        dlt = dt - ref
        dlt = zero if dlt < zero else (dt if dlt > dt else dlt)
        ep = _expm1_poly_jit(dlt * nit)
        ebuf[k] = ep if dlt != dt else e_full
    for k in range(n):                       # u = (1 - v) / (J - 1) for the new voltage v
        j = jb[k]
        v0 = vb[k]
        v = v0 - (j - v0) * ebuf[k]
        ubuf[k] = (one - v) / (j - one)
    for k in range(n):
        lbuf[k] = _log1p_poly_jit(ubuf[k])
    any_slow = False
    for k in range(n):                       # the rest of the step
        j = jb[k]
        v0 = vb[k]
        r0 = rb[k]
        y0 = sb[k]
        ref = r0 - dt
        dlt = dt - ref
        dlt = zero if dlt < zero else (dt if dlt > dt else dlt)
        x = dlt * nit
        partial = dlt != dt
        v = v0 - (j - v0) * ebuf[k]
        spiked = v > one
        u = ubuf[k]
        ok = (j > one) & (v < j)
        t_spike = dt + tau * lbuf[k] if ok else dt - dlt
        slow_k = (partial & (abs(x) > big)) | (spiked & ok & (abs(u) > big))
        o = amp_dt if spiked else zero
        if a is None:
            y = o
        else:
            y = a * y0 + b * o
        v_new = zero if spiked else (min_voltage if v < min_voltage else v)
        r_new = tau_ref + t_spike if spiked else ref
        vb[k] = v0 if slow_k else v_new
        rb[k] = r0 if slow_k else r_new
        sb[k] = y0 if slow_k else y
        if bits:
            ob[k] = spiked
        else:
            ob[k] = y
        cnt8[k] += np.uint8(spiked & (not slow_k))
        slow[k] = slow_k
        any_slow |= slow_k
    return any_slow


def lif_run32_numba(J, voltage, refractory_time, out, dt, tau_rc, tau_ref, min_voltage, amplitude,
                    syn_a, syn_state, in_a=0.0, in_state=None, bias=None, gain=1.0, window_sum=None, window=(0, 0)):
    """Numba twin of :func:`lif_run32_numpy` (same signature, same results, float32 arrays):
    :func:`_lif_run32_fused`, or for a first layer - a current constant in time, a uint8 map, no
    current filter - with enough neurons that cannot spike, :func:`_lif_run32_constant`."""
    T = out.shape[0]
    if J.shape[0] != 1 and J.shape[0] != T:
        raise ValueError("J must have 1 or T = out.shape[0] rows")
    fa, fb, bias, gain = _filter_constants(in_a, in_state, bias, gain, out.shape[1])
    filt = in_state is not None
    w0, w1 = (0, 0) if window_sum is None else window
    constants = _f32_constants(dt, tau_rc, tau_ref, min_voltage, amplitude, syn_a)
    # (errstate: no effect on compiled code; as plain Python, with NUMBA_DISABLE_JIT=1, the
    # branch-free polynomials overflow on values whose results the scan then discards)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if (J.shape[0] == 1 and not filt and _bits(out) and constants[5] <= QUIET
                and _quiet_share(J[0], voltage, refractory_time, syn_state) >= QUIET_SHARE):
            return _lif_run32_constant(J[0], voltage, refractory_time, out, syn_state, np.float32(POLY_MAX),
                                       np.zeros(0, np.float32) if window_sum is None else window_sum, w0, w1,
                                       *constants)
        return _lif_run32_fused(J, voltage, refractory_time, out, syn_state, np.float32(POLY_MAX), _bits(out),
                                filt, fa, fb, in_state if filt else bias, bias, gain,
                                syn_state if window_sum is None else window_sum, w0, w1, *constants)


#: Neurons per work item of the float32 scan: twice the float64 scan's :data:`BLOCK`.  Each step
#: of a block runs :func:`_lif32_block`'s four short loops over it, so a longer block spreads
#: their set-up over more neurons: 1.04-1.06x on the protocol net's scans at ~40 Hz
#: (``docs/results.md``); 512 ran 0.9x, and 4096 no faster than 2048.
BLOCK32 = 2048


@pjit
def _lif_run32_fused(J, voltage, refractory_time, out, syn_state, big, bits, filt, fa, fb, in_state, bias, gain,
                     window_sum, w0, w1, dt, e_full, nit, tau, tau_ref, min_voltage, amp_dt, a, b):
    """The float32 scan: parallel over blocks of :data:`BLOCK32` neurons, sequential over time,
    the Lowpass fused into each step (as :func:`lif_run_numba`).  A block counts its spikes
    in uint8 counters and adds them into ``counts`` every 255 steps and at the end."""
    T = out.shape[0]
    M = out.shape[1]
    TJ = J.shape[0]
    counts = np.zeros(M, dtype=np.int64)
    nblocks = (M + BLOCK32 - 1) // BLOCK32
    for blk in prange(nblocks):
        lo = blk * BLOCK32
        hi = min(lo + BLOCK32, M)
        vb = voltage[lo:hi]
        rb = refractory_time[lo:hi]
        sb = syn_state[lo:hi]
        cb = counts[lo:hi]
        slow = np.empty(hi - lo, dtype=np.bool_)
        cnt8 = np.zeros(hi - lo, dtype=np.uint8)  # spikes since the last flush into cb
        jf = np.empty(hi - lo, dtype=np.float32)
        ebuf = np.empty(hi - lo, dtype=np.float32)
        ubuf = np.empty(hi - lo, dtype=np.float32)
        lbuf = np.empty(hi - lo, dtype=np.float32)
        for t in range(T):
            jb = J[0 if TJ == 1 else t, lo:hi]
            ob = out[t, lo:hi]
            # (None, not a, for no synapse, and None for no filter: separate compilations, where
            # an Optional would be tested in the loops)
            if filt:
                current = (jb, in_state[lo:hi], bias[lo:hi], fa, fb, gain)
                jb = jf  # the filtered current, as _lif32_block writes it
                if a == 0.0:
                    any_slow = _lif32_block(jb, vb, rb, ob, sb, cnt8, slow, dt, e_full, nit, tau, tau_ref,
                                            min_voltage, amp_dt, None, b, big, bits, ebuf, ubuf, lbuf, current)
                else:
                    any_slow = _lif32_block(jb, vb, rb, ob, sb, cnt8, slow, dt, e_full, nit, tau, tau_ref,
                                            min_voltage, amp_dt, a, b, big, bits, ebuf, ubuf, lbuf, current)
            elif a == 0.0:
                any_slow = _lif32_block(jb, vb, rb, ob, sb, cnt8, slow, dt, e_full, nit, tau, tau_ref, min_voltage,
                                        amp_dt, None, b, big, bits, ebuf, ubuf, lbuf)
            else:
                any_slow = _lif32_block(jb, vb, rb, ob, sb, cnt8, slow, dt, e_full, nit, tau, tau_ref, min_voltage,
                                        amp_dt, a, b, big, bits, ebuf, ubuf, lbuf)
            if t % 255 == 254 or t == T - 1:
                for k in range(hi - lo):
                    cb[k] += cnt8[k]
                    cnt8[k] = 0
            if any_slow:
                for k in range(hi - lo):
                    if slow[k]:
                        vb[k], rb[k], sb[k], spiked = _lif32_scalar(
                            jb[k], vb[k], rb[k], sb[k], dt, e_full, nit, tau, tau_ref, min_voltage, amp_dt,
                            a, b, big)
                        if bits:
                            ob[k] = spiked
                        else:
                            ob[k] = sb[k]
                        cb[k] += spiked
            if w0 <= t < w1:  # (an empty window without window_sum)
                ws = window_sum[lo:hi]
                for k in range(hi - lo):
                    ws[k] += sb[k]
    return counts


#: With a current constant in time (a first layer: the image is held for the whole run), a
#: neuron that is not refractory, has no synapse state, and whose current and voltage are at
#: most QUIET never spikes: a full step moves the voltage toward the current
#: (``v - (J - v) e_full`` with ``-1 <= e_full < 0`` lies between ``v`` and ``J``, up to rounding,
#: which cannot cross the margin to 1).  Such a neuron's step is ``v = max(v - (J - v) e_full,
#: min_voltage)``, ``ref -= dt``, no output; the scan below gives it only that.
QUIET = np.float32(0.999)

#: Neurons per work item of the constant-current scan.
STATIC_BLOCK = 2048

#: The constant-current scan pays for gathering the other neurons and scattering their spikes,
#: so it is taken from this share of quiet neurons up.  On the protocol net's first layer
#: (``benchmarks/bench_snn.py``, 2 threads) it took 0.78x the general scan's time with 54 %
#: quiet, 0.97x with 30 %, 1.1x with 20 %, 1.3x with 1 % (at ~150 Hz).
QUIET_SHARE = 0.35


def _quiet_share(j0, voltage, refractory_time, syn_state, run=64, every=17):
    """The share of quiet neurons (:data:`QUIET`) in a sample: ``run`` consecutive neurons out of
    every ``every * run`` (17: prime to the channel counts of a channels-last map, whose
    neighbours are one pixel's channels), all of them in a layer of fewer.  Runs, not every
    17th neuron: a stride of 17 floats reads every cache line of the four arrays."""
    n = j0.shape[0]
    step = every * run
    if n < step:
        sample = [a.reshape(1, -1) for a in (j0, voltage, refractory_time, syn_state)]
    else:
        sample = [a[: n - n % step].reshape(-1, step)[:, :run] for a in (j0, voltage, refractory_time, syn_state)]
    j, v, r, y = sample
    quiet = (j <= QUIET) & (v <= QUIET) & (r <= 0) & (y == 0)
    return np.count_nonzero(quiet) / max(1, quiet.size)


@jit
def _quiet_steps(jb, vb, rb, dt, e_full, min_voltage):
    """One full silent step of quiet neurons (see :data:`QUIET`): the step of
    :func:`_lif32_block` for a neuron that neither spikes nor is refractory, operation for operation."""
    for k in range(vb.shape[0]):
        v0 = vb[k]
        v = v0 - (jb[k] - v0) * e_full
        vb[k] = min_voltage if v < min_voltage else v
        rb[k] = rb[k] - dt


@jit
def _put_spikes(spikes, where, row):
    """``row[where[k]] = spikes[k]`` for the nonzero ``spikes`` (``row`` zeroed before), read
    :data:`~minisnn.kernels.simd.MASK_WIDTH` at a time as the bits of one integer."""
    n = spikes.shape[0]
    full = n - n % MASK_WIDTH
    for c0 in range(0, full, MASK_WIDTH):
        bits = nonzero_mask(spikes, c0)
        while bits != 0:
            k = c0 + trailing_zeros(bits)
            row[where[k]] = spikes[k]
            bits &= bits - 1
    for k in range(full, n):
        if spikes[k] != 0:
            row[where[k]] = spikes[k]


@pjit
def _lif_run32_constant(j0, voltage, refractory_time, out, syn_state, big, window_sum, w0, w1,
                        dt, e_full, nit, tau, tau_ref, min_voltage, amp_dt, a, b):
    """The float32 scan of :func:`lif_run32_numba` for a current ``j0 (M,)`` constant in time,
    a uint8 spike map ``out`` and no current filter: the first layer's case.  About half of
    such a layer's neurons are quiet (:data:`QUIET`); each block of :data:`STATIC_BLOCK` neurons
    gathers the others into contiguous arrays, steps them as :func:`_lif_run32_fused` does
    (:func:`_lif32_block`, then :func:`_lif32_scalar` for the flagged ones), gives the quiet
    ones :func:`_quiet_steps`, and scatters the spikes back into the map.  Every neuron gets
    the same operations as in :func:`_lif_run32_fused`: the results are the same, bit for bit."""
    T = out.shape[0]
    M = out.shape[1]
    zero = np.float32(0.0)
    counts = np.zeros(M, dtype=np.int64)
    windowed = window_sum.shape[0] == M and max(w0, 0) < min(w1, T)  # a window_sum and steps in it
    nblocks = (M + STATIC_BLOCK - 1) // STATIC_BLOCK
    for blk in prange(nblocks):
        lo = blk * STATIC_BLOCK
        n = min(lo + STATIC_BLOCK, M) - lo
        order = np.empty(n, dtype=np.int64)  # the stepped neurons first, the quiet ones from the end
        na = 0
        nq = 0
        for k in range(n):
            g = lo + k
            if (j0[g] <= QUIET and voltage[g] <= QUIET and refractory_time[g] <= zero
                    and syn_state[g] == zero):
                nq += 1
                order[n - nq] = k
            else:
                order[na] = k
                na += 1
        na = min(n, (na + 31) // 32 * 32)  # whole vectors: a quiet neuron stepped in full is the same
        jb = np.empty(n, dtype=np.float32)
        vb = np.empty(n, dtype=np.float32)
        rb = np.empty(n, dtype=np.float32)
        sb = np.empty(n, dtype=np.float32)
        wb = np.empty(n, dtype=np.float32)
        for i in range(n):
            g = lo + order[i]
            jb[i] = j0[g]
            vb[i] = voltage[g]
            rb[i] = refractory_time[g]
            sb[i] = syn_state[g]
            if windowed:
                wb[i] = window_sum[g]
        spikes = np.empty(na, dtype=np.uint8)
        slow = np.empty(na, dtype=np.bool_)
        cnt8 = np.zeros(na, dtype=np.uint8)
        cb = np.zeros(na, dtype=np.int64)
        ebuf = np.empty(na, dtype=np.float32)
        ubuf = np.empty(na, dtype=np.float32)
        lbuf = np.empty(na, dtype=np.float32)
        ja, va, ra, sa = jb[:na], vb[:na], rb[:na], sb[:na]
        for t in range(T):  # the step of _lif_run32_fused, written out (as a shared helper it cost 5 % there)
            if a == 0.0:  # (None: the block compiled without the synapse, as in _lif_run32_fused)
                any_slow = _lif32_block(ja, va, ra, spikes, sa, cnt8, slow, dt, e_full, nit, tau, tau_ref,
                                        min_voltage, amp_dt, None, b, big, True, ebuf, ubuf, lbuf)
            else:
                any_slow = _lif32_block(ja, va, ra, spikes, sa, cnt8, slow, dt, e_full, nit, tau, tau_ref,
                                        min_voltage, amp_dt, a, b, big, True, ebuf, ubuf, lbuf)
            if t % 255 == 254 or t == T - 1:
                for k in range(na):
                    cb[k] += cnt8[k]
                    cnt8[k] = 0
            if any_slow:
                for k in range(na):
                    if slow[k]:
                        va[k], ra[k], sa[k], spiked = _lif32_scalar(
                            ja[k], va[k], ra[k], sa[k], dt, e_full, nit, tau, tau_ref, min_voltage, amp_dt,
                            a, b, big)
                        spikes[k] = spiked
                        cb[k] += spiked
            _quiet_steps(jb[na:], vb[na:], rb[na:], dt, e_full, min_voltage)
            row = out[t, lo : lo + n]
            row[:] = 0
            _put_spikes(spikes, order, row)
            if windowed and w0 <= t < w1:
                for k in range(na):
                    wb[k] += sb[k]
        for i in range(n):
            g = lo + order[i]
            voltage[g] = vb[i]
            refractory_time[g] = rb[i]
            if i < na:
                syn_state[g] = sb[i]
            elif T > 0:
                syn_state[g] = zero  # a quiet neuron's synapse output: +0 from the first step on
            if windowed:
                window_sum[g] = wb[i] if i < na else wb[i] + zero  # (+ 0: -0 becomes +0, as in the scan)
        for k in range(na):
            counts[lo + order[k]] = cb[k]
    return counts


def _lif_run_example(rng, M=BLOCK + 77):
    """Small fresh arguments for :func:`lif_run_numba` (currents away from threshold; by
    default two blocks)."""
    T = 23
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
    """:func:`_lif_run_example` with float32 arrays, for :func:`lif_run32_numba` (two of its blocks)."""
    J, voltage, refractory_time, out, *scalars, syn_state = _lif_run_example(rng, BLOCK32 + 77)
    f4 = np.float32
    return (J.astype(f4), voltage.astype(f4), refractory_time.astype(f4), np.empty(out.shape, f4), *scalars,
            syn_state.astype(f4))


def _lif_run32_filter_example(rng):
    """:func:`_lif_run32_libm_example` with the current filter, a bias, a gain and a uint8 output."""
    args = list(_lif_run32_libm_example(rng))
    M = args[1].shape[0]
    args[0] = args[0] / 3  # raw currents of both signs: the filter state starts away from them
    args[3] = np.empty(args[3].shape, np.uint8)
    args[9] = 0.0
    in_state = rng.uniform(-3.0, 12.0, size=M).astype(np.float32)
    bias = rng.uniform(-0.5, 1.5, size=M).astype(np.float32)
    return (*args, 0.8187308, in_state, bias, 1.25)


def _lif_run32_bits_example(rng):
    """:func:`_lif_run32_example` writing a uint8 spike map (no synapse)."""
    args = list(_lif_run32_example(rng))
    args[3] = np.empty(args[3].shape, np.uint8)
    args[9] = 0.0
    return tuple(args)


def _lif_run32_window_example(rng):
    """A uint8 spike map with a synapse: the filtered output summed over steps 5..16 only."""
    args = list(_lif_run32_example(rng))
    args[3] = np.empty(args[3].shape, np.uint8)
    window_sum = rng.uniform(0.0, 50.0, size=args[1].shape[0]).astype(np.float32)
    return (*args, 0.0, None, None, 1.0, window_sum, (5, 17))


def _lif_run32_libm_example(rng):
    """:func:`_lif_run32_example` where the polynomials do not reach: ``tau_rc = 2 dt`` (partial
    steps with ``|x|`` up to 0.5) and start voltages above 1 (spike times with ``|u|`` near 1,
    and the degenerate case), so neurons take the C library's functions."""
    args = list(_lif_run32_example(rng))
    args[5] = 0.002
    args[1][::5] = rng.uniform(1.0, 3.0, size=args[1][::5].shape).astype(np.float32)
    return tuple(args)


def _lif_run32_constant_example(rng):
    """The first layer's case (:func:`_lif_run32_constant`): a current constant in time (one row),
    a uint8 spike map, a synapse and a window, over three blocks, the last cut short.  Half
    the neurons are quiet; among the rest are neurons quiet but for their voltage (some above
    1: the degenerate spike time), their refractory time or their synapse state, and -0 in
    the synapse state and the window's sums."""
    f4 = np.float32
    T, M = 23, 2 * STATIC_BLOCK + 77
    J = rng.uniform(-2.0, float(QUIET), size=M).astype(f4)
    J[::2] = rng.uniform(1.0, 12.0, size=J[::2].shape)
    voltage = rng.uniform(0.0, 1.0, size=M).astype(f4)
    voltage[1::22] = rng.uniform(float(QUIET), 3.0, size=voltage[1::22].shape)
    refractory_time = np.zeros(M, f4)
    refractory_time[1::26] = rng.uniform(0.0, 0.003, size=refractory_time[1::26].shape)
    syn_state = np.zeros(M, f4)
    syn_state[1::34] = rng.uniform(0.0, 100.0, size=syn_state[1::34].shape)
    syn_state[3::38] = -0.0
    window_sum = rng.uniform(0.0, 50.0, size=M).astype(f4)
    window_sum[5::46] = -0.0
    out = np.empty((T, M), np.uint8)
    return (J[None], voltage, refractory_time, out, 0.001, 0.02, 0.002, 0.0, 1.0, 0.8187308, syn_state,
            0.0, None, None, 1.0, window_sum, (5, 17))


def _lif_run32_constant_libm_example(rng):
    """:func:`_lif_run32_constant_example` without the synapse and the window, and with
    ``tau_rc = 2 dt``: the partial steps and spike times take the C library's functions."""
    args = list(_lif_run32_constant_example(rng))[:11]
    args[5], args[9] = 0.002, 0.0
    return tuple(args)


register("lif_run", lif_run_numpy, lif_run_numba, _lif_run_example)
register("lif_run32", lif_run32_numpy, lif_run32_numba, _lif_run32_example)
register("lif_run32_libm", lif_run32_numpy, lif_run32_numba, _lif_run32_libm_example)
register("lif_run32_filter", lif_run32_numpy, lif_run32_numba, _lif_run32_filter_example)
register("lif_run32_bits", lif_run32_numpy, lif_run32_numba, _lif_run32_bits_example)
register("lif_run32_window", lif_run32_numpy, lif_run32_numba, _lif_run32_window_example)
register("lif_run32_constant", lif_run32_numpy, lif_run32_numba, _lif_run32_constant_example)
register("lif_run32_constant_libm", lif_run32_numpy, lif_run32_numba, _lif_run32_constant_libm_example)
