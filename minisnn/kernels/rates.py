"""Firing rates of the LIF rate neurons and their derivatives, elementwise (LEVEL 1b).

Each kernel has a NumPy reference (``*_numpy``) and a Numba kernel (``*_numba``) with the same
signature; the pairs are registered in :data:`minisnn.kernels.KERNELS` at the bottom.
:class:`minisnn.neurons.LIFRate` / :class:`~minisnn.neurons.SoftLIFRate` (and ``LIF``) call
them from ``rate``, ``rate_grad`` and ``rate_and_grad``: the Numba kernels for float32 and
float64 currents of any size (they are faster even for one element), the references for other
dtypes and under ``NUMBA_DISABLE_JIT=1`` (:func:`~minisnn.kernels._jit.compiled_for`).

The kernels, for ``J`` a 1-D float32 or float64 array::

    lif_rate(J, tau_rc, tau_ref, amplitude)                    -> (r, n_nan)
    lif_rate_grad(J, tau_rc, tau_ref, amplitude)               -> (dr, n_nan)
    lif_rate_and_grad(J, tau_rc, tau_ref, amplitude)           -> (r, dr, n_nan)
    softlif_rate(J, sigma, tau_rc, tau_ref, amplitude)         -> (r, n_nan)
    softlif_rate_grad(J, sigma, tau_rc, tau_ref, amplitude)    -> (dr, n_nan)
    softlif_rate_grad32(J, sigma, tau_rc, tau_ref, amplitude)  -> (dr, n_nan)   float32 J, float32 arithmetic
    softlif_rate_and_grad(J, sigma, tau_rc, tau_ref, amplitude) -> (r, dr, n_nan)

``r`` and ``dr`` have J's shape and dtype (computed in float64, then clipped to the dtype's
range and rounded once; ``softlif_rate_grad32`` computes in float32, see its section below); ``n_nan`` is the number of NaN currents (the model raises
``ValueError`` if it is not 0; the outputs at NaN currents are unspecified).  The formulas are
those documented in :mod:`minisnn.neurons`; every intermediate is finite for every finite
``J`` (``J - 1`` is clamped to ``+-J_CLAMP``), so there are no NaN, inf or floating-point
warnings.

**NumPy references.**  The rate formulas as NumPy array expressions, float64, 65,536 elements
at a time (``np.where`` evaluates every branch, so each element pays for up to 6
transcendental functions and ~30 temporaries: 40-150 ns per element, one thread).

**Numba kernels.**  Parallel over blocks of :data:`BLOCK` elements; each block is computed in a
few branch-free passes over small float64 scratch rows, which LLVM vectorises (4 doubles per
AVX2 instruction).  Scalar ``math.exp`` / ``math.log1p`` calls do not vectorise, so the passes
use :func:`_exp_block` and :func:`_log1p_block`, branch-free ports of fdlibm's ``exp`` and
musl's ``log1p`` (< 1 ulp); arithmetic division is ``np.divide`` (the ``/`` operator of Numba's
Python error model checks for zero and stops vectorisation).  The same formulas, with two
rearrangements that change the result by a few ulp at most:

* ``log(1 + 1/z)`` is ``log1p(1 / z)`` for every ``z >= 2**-960`` (the reference uses
  ``log1p(z) - log(z)`` below ``z = 1``, which is the same number to ~1e-16 relative; it only
  matters where ``1 / z`` would overflow, and there the kernel uses the reference's expression
  ``log1p(z) - log z = z - log z`` with ``log z`` computed from ``x``);
* ``exp(-|x|)`` is taken as 0 below ``exp(-708)`` (subnormal numbers are slow on x86 and
  below it ``e`` changes nothing in double precision).

So kernel and reference agree to ~1e-15 relative (the tests require 1e-12; float32 outputs
are the same float64 values rounded once), and each output element depends only on its own
``J``: the result does not depend on the number of threads.  Cost on one thread (AVX2),
including the new output arrays: 6-9 ns per element for LIF, 12-15 ns for SoftLIF, and
``rate_and_grad`` about 1.3x ``rate`` (vs 2x for two calls).  The SoftLIF kernels need
``sigma >= SIGMA_MIN_FAST`` (1e-270; smaller ones are absurd, the model uses the reference).
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit, pjit, prange

f8 = np.float64  # numba's float(x) keeps float32 as float32; np.float64(x) widens

#: ``J - 1`` is clamped to ``+-J_CLAMP`` inside the rate formulas.  Beyond it the LIF rates
#: equal their limits to double precision (with ``tau_ref > 0``); it only keeps intermediate
#: values finite for absurd inputs (e.g. ``J = 1e300`` with ``tau_ref = 0``).
J_CLAMP = 1e100

#: Elements per chunk in the NumPy references: float64 temporaries stay in cache and the
#: extra memory is bounded whatever the size of ``J``.
CHUNK = 1 << 16

#: Elements per parallel work item of the Numba kernels (scratch: 6 float64 rows of BLOCK).
BLOCK = 2048

#: Smallest ``sigma`` the SoftLIF kernels accept (then ``z = sigma * softplus(x) >= 2**-960``
#: wherever ``x >= -30``).
SIGMA_MIN_FAST = 1e-270

_ZMIN = 2.0 ** -960          # 1 / z is finite (and log1p(1 / z) exact enough) for z >= _ZMIN
_TWOM53 = 2.0 ** -53         # log1p(x) == x below it
_EXP_MIN = -708.0            # exp(x) is normal for x >= _EXP_MIN; the kernels flush below

# Rounding to an integer without a float -> int conversion (AVX2 has none for int64):
# x + 1.5 * 2**52 rounds x to the nearest integer k (|x| < 2**51) and its bit pattern is
# _MAGIC_BITS + k.
_MAGIC = 6755399441055744.0
_MAGIC_BITS = 0x4338000000000000

# fdlibm e_exp.c
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08

# musl log1p.c
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT2M1 = float(np.int64(0x3fda827a << 32).view(np.float64))  # musl's "1 + x < sqrt(2)"


# ---------------------------------------------------------------------------------------------
# NumPy references (the formulas of minisnn.neurons)
# ---------------------------------------------------------------------------------------------


def lif_q_numpy(j):
    """``log1p(1 / j)`` for ``j > 0`` without overflow for tiny ``j`` (float64 array)."""
    jj = np.maximum(j, np.finfo(np.float64).tiny)
    big = jj >= 1.0
    return np.where(big, np.log1p(1.0 / np.where(big, jj, 1.0)), np.log1p(jj) - np.log(jj))


def lif_rate64_numpy(J, tau_rc, tau_ref, amplitude, grad):
    """LIF rate of float64 currents ``J``; with ``grad`` the pair ``(r, dr/dJ)``."""
    j = np.clip(J - 1.0, -J_CLAMP, J_CLAMP)
    on = j > 0
    r = np.where(on, amplitude / (tau_ref + tau_rc * lif_q_numpy(j)), 0.0)
    if not grad:
        return r
    jj = np.where(on, j, 1.0)
    return r, np.where(on, (r / jj) * (r / (jj + 1.0)) * (tau_rc / amplitude), 0.0)


def softlif_rate64_numpy(J, sigma, tau_rc, tau_ref, amplitude, grad):
    """SoftLIF rate of float64 currents ``J``; with ``grad`` the pair ``(r, dr/dJ)``."""
    j = np.clip(J - 1.0, -J_CLAMP, J_CLAMP)
    with np.errstate(over="ignore"):      # j / sigma may overflow for tiny sigma: clipped
        x = np.clip(j / sigma, -1e300, 1e300)
    e = np.exp(-np.abs(x))                # in (0, 1]; underflows harmlessly to 0
    big = x > 30.0                        # softplus(x) = x to double precision
    very_neg = x < -30.0                  # softplus(x) = e to double precision
    sp = np.maximum(x, 0.0) + np.log1p(e)                       # softplus(x), stable
    z = np.where(big, np.where(big, j, 1.0), sigma * sp)         # = sigma * softplus(x)
    # log z without log(0): log softplus(x) = x - e/2 + O(e^2) far below threshold
    log_sp = np.where(very_neg, x - 0.5 * e, np.log(np.where(very_neg, 1.0, sp)))
    log_z = np.where(big, np.log(np.maximum(z, np.finfo(np.float64).tiny)),
                     math.log(sigma) + log_sp)
    zbig = z >= 1.0
    q = np.where(zbig, np.log1p(1.0 / np.where(zbig, z, 1.0)), np.log1p(z) - log_z)
    r = amplitude / (tau_ref + tau_rc * q)
    if not grad:
        return r
    s = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))       # sigmoid(x), stable
    # s / z without 0/0 far below threshold: s / softplus(x) -> 1 - e/2 as x -> -inf
    ratio = np.where(very_neg, 1.0 - 0.5 * e, s / np.where(very_neg, 1.0, sp))
    s_over_z = np.where(big, s / np.where(big, z, 1.0), ratio / sigma)
    return r, (r * s_over_z) * (r / (1.0 + z)) * (tau_rc / amplitude)


def _cast_numpy(x, dtype):
    """Cast a float64 result to ``dtype`` without overflow (values are clipped to its range)."""
    if dtype == np.float64:
        return x
    fmax = np.finfo(dtype).max
    with np.errstate(under="ignore"):
        return np.clip(x, -fmax, fmax).astype(dtype)


def _chunked_numpy(J, fn, want):
    """``fn(J64, grad)`` over 1-D float ``J`` chunk by chunk -> (r?, dr?, n_nan) per ``want``.

    ``want`` 0: rate, 1: derivative, 2: both.  Results are in J's float dtype.
    """
    J = np.asarray(J)
    dtype = J.dtype
    n_nan = int(np.count_nonzero(np.isnan(J)))
    outs = [np.empty(J.shape, dtype=dtype) for _ in range(2 if want == 2 else 1)]
    ignore = {"under": "ignore", "invalid": "ignore"} if n_nan else {"under": "ignore"}
    with np.errstate(**ignore):
        for lo in range(0, J.size, CHUNK):
            res = fn(J[lo:lo + CHUNK].astype(np.float64), want != 0)
            if want == 0:
                res = (res,)
            elif want == 1:
                res = (res[1],)
            for out, x in zip(outs, res):
                out[lo:lo + CHUNK] = _cast_numpy(x, dtype)
    return (*outs, n_nan)


def lif_rate_numpy(J, tau_rc, tau_ref, amplitude):
    """LIF rate of a 1-D float array ``J`` (NumPy reference).

    Parameters
    ----------
    J : ndarray, shape (n,), float32 or float64
        Input current (threshold 1).
    tau_rc, tau_ref, amplitude : float
        As validated by :class:`minisnn.neurons.LIFRate`.

    Returns
    -------
    r : ndarray, shape (n,), J's dtype
    n_nan : int
        Number of NaN in ``J``.
    """
    return _chunked_numpy(J, lambda x, g: lif_rate64_numpy(x, tau_rc, tau_ref, amplitude, g), 0)


def lif_rate_grad_numpy(J, tau_rc, tau_ref, amplitude):
    """``dr/dJ`` of :func:`lif_rate_numpy` -> ``(dr, n_nan)`` (NumPy reference)."""
    return _chunked_numpy(J, lambda x, g: lif_rate64_numpy(x, tau_rc, tau_ref, amplitude, g), 1)


def lif_rate_and_grad_numpy(J, tau_rc, tau_ref, amplitude):
    """Rate and derivative in one call -> ``(r, dr, n_nan)`` (NumPy reference)."""
    return _chunked_numpy(J, lambda x, g: lif_rate64_numpy(x, tau_rc, tau_ref, amplitude, g), 2)


def softlif_rate_numpy(J, sigma, tau_rc, tau_ref, amplitude):
    """SoftLIF rate of a 1-D float array ``J`` -> ``(r, n_nan)`` (NumPy reference).

    ``sigma`` > 0 is the smoothing width; the other arguments as in :func:`lif_rate_numpy`.
    """
    return _chunked_numpy(
        J, lambda x, g: softlif_rate64_numpy(x, sigma, tau_rc, tau_ref, amplitude, g), 0)


def softlif_rate_grad_numpy(J, sigma, tau_rc, tau_ref, amplitude):
    """``dr/dJ`` of :func:`softlif_rate_numpy` -> ``(dr, n_nan)`` (NumPy reference)."""
    return _chunked_numpy(
        J, lambda x, g: softlif_rate64_numpy(x, sigma, tau_rc, tau_ref, amplitude, g), 1)


def softlif_rate_and_grad_numpy(J, sigma, tau_rc, tau_ref, amplitude):
    """Rate and derivative in one call -> ``(r, dr, n_nan)`` (NumPy reference)."""
    return _chunked_numpy(
        J, lambda x, g: softlif_rate64_numpy(x, sigma, tau_rc, tau_ref, amplitude, g), 2)


# ---------------------------------------------------------------------------------------------
# vectorisable exp and log1p (Numba helpers, one block at a time)
# ---------------------------------------------------------------------------------------------


@jit
def _exp_block(a, out):
    """``out[i] = exp(a[i])`` for ``a[i] <= 0``, and 0 where ``a[i] < -708`` (fdlibm, < 1 ulp).

    Branch-free (LLVM vectorises it): ``k = round(a / ln 2)``, ``r = a - k ln 2`` in two
    parts, fdlibm's rational approximation of ``exp(r)``, times ``2**k`` built from bits.
    ``out`` must not overlap ``a`` (an overlap makes LLVM fall back to scalar code).
    """
    for i in range(a.shape[0]):
        x0 = a[i]
        x = max(x0, _EXP_MIN)
        k = (x * _INV_LN2 + _MAGIC) - _MAGIC
        hi = x - k * _LN2_HI
        lo = k * _LN2_LO
        r = hi - lo
        t = r * r
        c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
        y = 1.0 - ((lo - np.divide(r * c, 2.0 - c)) - hi)
        scale = (np.float64(k + _MAGIC).view(np.int64) - _MAGIC_BITS + 1023) << 52
        y = y * np.int64(scale).view(np.float64)
        out[i] = y if x0 >= _EXP_MIN else 0.0


@jit
def _log1p_block(a, out):
    """``out[i] = log1p(a[i])`` for ``0 <= a[i] < 2**1000`` (musl's log1p, < 1 ulp).

    Branch-free port: ``1 + x = 2**k (1 + f)`` with ``1 + f`` in ``[sqrt(2)/2, sqrt(2))`` and a
    correction ``c`` for the rounding of ``1 + x``, then ``log(1 + f)`` from
    ``s = f / (2 + f)`` and a polynomial in ``s**2``; ``x`` itself below ``2**-53``.
    ``out`` must not overlap ``a``.
    """
    for i in range(a.shape[0]):
        x0 = a[i]
        x = x0 if x0 >= _TWOM53 else _TWOM53   # keeps f * f normal (subnormals are slow)
        u = 1.0 + x
        ub = np.float64(u).view(np.int64)
        hu = (ub >> 32) + (0x3ff00000 - 0x3fe6a09e)
        kf = np.int64(((hu >> 20) - 0x3ff) + _MAGIC_BITS).view(np.float64) - _MAGIC
        c = (1.0 - (u - x)) if kf >= 2.0 else (x - (u - 1.0))
        c = np.divide(c, u) if kf < 54.0 else 0.0
        hu = (hu & 0x000fffff) + 0x3fe6a09e
        f = np.int64((hu << 32) | (ub & 0xffffffff)).view(np.float64) - 1.0
        if x < _SQRT2M1:                       # 1 + x < sqrt(2): k = 0, no rounding of 1 + x
            f = x
            c = 0.0
            kf = 0.0
        hfsq = 0.5 * f * f
        s = np.divide(f, 2.0 + f)
        z = s * s
        w = z * z
        t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
        t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
        R = t2 + t1
        y = s * (hfsq + R) + (kf * _LN2_LO + c) - hfsq + f + kf * _LN2_HI
        out[i] = x0 if x0 < _TWOM53 else y


# ---------------------------------------------------------------------------------------------
# LIF rate kernels
# ---------------------------------------------------------------------------------------------


@jit
def _lif_block(Jb, rb, db, tau_rc, tau_ref, amplitude, c, lim, want, buf):
    """Numba helper: one block of currents -> ``rb`` (want 0, 2) / ``db`` (want 1, 2).

    Returns the number of NaN in ``Jb``.  ``c = tau_rc / amplitude``; ``lim`` is the largest
    value of the output dtype (``inf`` for float64).  ``buf``: scratch, 2 rows >= len(Jb).
    """
    n = Jb.shape[0]
    w = buf[0, :n]
    q = buf[1, :n]
    n_nan = 0
    for i in range(n):
        J = f8(Jb[i])
        n_nan += J != J
        j = min(J - 1.0, J_CLAMP)                    # j > 0 means j >= 2**-52
        w[i] = np.divide(1.0, j if j > 0.0 else 1.0)
    _log1p_block(w, q)                               # q = log(1 + 1/j)
    if want == 0:
        for i in range(n):
            j = min(f8(Jb[i]) - 1.0, J_CLAMP)
            r = np.divide(amplitude, tau_ref + tau_rc * q[i])
            rb[i] = min(r, lim) if j > 0.0 else 0.0
    else:
        for i in range(n):
            j = min(f8(Jb[i]) - 1.0, J_CLAMP)
            jj = j if j > 0.0 else 1.0
            r = np.divide(amplitude, tau_ref + tau_rc * q[i])
            dr = np.divide(r, jj) * np.divide(r, jj + 1.0) * c
            db[i] = min(dr, lim) if j > 0.0 else 0.0
            if want == 2:
                rb[i] = min(r, lim) if j > 0.0 else 0.0
    return n_nan


@pjit
def _lif_rates(J, tau_rc, tau_ref, amplitude, want):
    """Numba kernel behind the ``lif_*_numba`` functions -> ``(r, dr, n_nan)``.

    ``want`` 0: rate only (``dr`` is empty), 1: derivative only (``r`` is empty), 2: both.
    """
    n = J.shape[0]
    r = np.empty(n if want != 1 else 0, dtype=J.dtype)
    dr = np.empty(n if want != 0 else 0, dtype=J.dtype)
    fmax = f8(np.finfo(J.dtype).max)
    lim = fmax if fmax < 1e300 else np.inf          # float32: clip; float64: nothing to clip
    c = tau_rc / amplitude
    nblocks = (n + BLOCK - 1) // BLOCK
    nans = np.zeros(nblocks, dtype=np.int64)
    for blk in prange(nblocks):
        lo = blk * BLOCK
        hi = min(lo + BLOCK, n)
        buf = np.empty((2, BLOCK))
        nans[blk] = _lif_block(J[lo:hi], r[lo:hi], dr[lo:hi], tau_rc, tau_ref, amplitude, c,
                               lim, want, buf)
    return r, dr, nans.sum()


def lif_rate_numba(J, tau_rc, tau_ref, amplitude):
    """Numba twin of :func:`lif_rate_numpy` -> ``(r, n_nan)``."""
    r, _, n_nan = _lif_rates(J, float(tau_rc), float(tau_ref), float(amplitude), 0)
    return r, int(n_nan)


def lif_rate_grad_numba(J, tau_rc, tau_ref, amplitude):
    """Numba twin of :func:`lif_rate_grad_numpy` -> ``(dr, n_nan)``."""
    _, dr, n_nan = _lif_rates(J, float(tau_rc), float(tau_ref), float(amplitude), 1)
    return dr, int(n_nan)


def lif_rate_and_grad_numba(J, tau_rc, tau_ref, amplitude):
    """Numba twin of :func:`lif_rate_and_grad_numpy` -> ``(r, dr, n_nan)`` in one pass."""
    r, dr, n_nan = _lif_rates(J, float(tau_rc), float(tau_ref), float(amplitude), 2)
    return r, dr, int(n_nan)


# ---------------------------------------------------------------------------------------------
# SoftLIF rate kernels
# ---------------------------------------------------------------------------------------------


@jit
def _softlif_block(Jb, rb, db, sigma, log_sigma, tau_rc, tau_ref, amplitude, c, lim, want,
                   buf):
    """Numba helper: one block of currents -> ``rb`` (want 0, 2) / ``db`` (want 1, 2).

    Returns the number of NaN in ``Jb``.  Passes (each a vectorised loop): ``x = j / sigma``;
    ``e = exp(-|x|)``; ``log1p(e)``; softplus ``sp``, ``z`` and ``1 / z``; ``log1p(1 / z)``;
    the rate and its derivative.  ``buf``: scratch, 6 rows >= len(Jb).
    """
    n = Jb.shape[0]
    xs = buf[0, :n]
    es = buf[1, :n]
    ts = buf[2, :n]      # -|x|, then log1p(e), then softplus(x)
    zs = buf[3, :n]
    ws = buf[4, :n]      # 1 / z
    qs = buf[5, :n]      # log1p(1 / z)
    n_nan = 0
    for i in range(n):
        J = f8(Jb[i])
        n_nan += J != J
        j = min(max(J - 1.0, -J_CLAMP), J_CLAMP)
        x = min(max(np.divide(j, sigma), -1e300), 1e300)
        xs[i] = x
        ts[i] = -abs(x)
    _exp_block(ts, es)
    _log1p_block(es, ts)
    for i in range(n):
        x = xs[i]
        sp = max(x, 0.0) + ts[i]
        z = min(max(f8(Jb[i]) - 1.0, -J_CLAMP), J_CLAMP) if x > 30.0 else sigma * sp
        ts[i] = sp
        zs[i] = z
        ws[i] = np.divide(1.0, max(z, _ZMIN))
    _log1p_block(ws, qs)
    if want == 0:
        for i in range(n):
            x = xs[i]
            z = zs[i]
            # z < _ZMIN only where x < -30 (sigma >= SIGMA_MIN_FAST): log1p(z) - log z
            q = z - (log_sigma + (x - 0.5 * es[i])) if z < _ZMIN else qs[i]
            r = np.divide(amplitude, tau_ref + tau_rc * q)
            rb[i] = min(r, lim)
    else:
        for i in range(n):
            x = xs[i]
            e = es[i]
            sp = ts[i]
            z = zs[i]
            q = z - (log_sigma + (x - 0.5 * e)) if z < _ZMIN else qs[i]
            r = np.divide(amplitude, tau_ref + tau_rc * q)
            big = x > 30.0
            very_neg = x < -30.0
            s = np.divide(1.0 if x >= 0.0 else e, 1.0 + e)            # sigmoid(x)
            ratio = 1.0 - 0.5 * e if very_neg else np.divide(s, 1.0 if very_neg else sp)
            s_over_z = np.divide(s, z if big else 1.0) if big else np.divide(ratio, sigma)
            dr = (r * s_over_z) * np.divide(r, 1.0 + z) * c
            db[i] = min(dr, lim)
            if want == 2:
                rb[i] = min(r, lim)
    return n_nan


@pjit
def _softlif_rates(J, sigma, tau_rc, tau_ref, amplitude, want):
    """Numba kernel behind the ``softlif_*_numba`` functions -> ``(r, dr, n_nan)``.

    ``want`` 0: rate only (``dr`` is empty), 1: derivative only (``r`` is empty), 2: both.
    """
    if not sigma >= SIGMA_MIN_FAST:
        raise ValueError("softlif kernels need sigma >= SIGMA_MIN_FAST (1e-270)")
    n = J.shape[0]
    r = np.empty(n if want != 1 else 0, dtype=J.dtype)
    dr = np.empty(n if want != 0 else 0, dtype=J.dtype)
    fmax = f8(np.finfo(J.dtype).max)
    lim = fmax if fmax < 1e300 else np.inf
    c = tau_rc / amplitude
    log_sigma = math.log(sigma)
    nblocks = (n + BLOCK - 1) // BLOCK
    nans = np.zeros(nblocks, dtype=np.int64)
    for blk in prange(nblocks):
        lo = blk * BLOCK
        hi = min(lo + BLOCK, n)
        buf = np.empty((6, BLOCK))
        nans[blk] = _softlif_block(J[lo:hi], r[lo:hi], dr[lo:hi], sigma, log_sigma, tau_rc,
                                   tau_ref, amplitude, c, lim, want, buf)
    return r, dr, nans.sum()


def softlif_rate_numba(J, sigma, tau_rc, tau_ref, amplitude):
    """Numba twin of :func:`softlif_rate_numpy` -> ``(r, n_nan)``."""
    r, _, n_nan = _softlif_rates(J, float(sigma), float(tau_rc), float(tau_ref),
                                 float(amplitude), 0)
    return r, int(n_nan)


def softlif_rate_grad_numba(J, sigma, tau_rc, tau_ref, amplitude):
    """Numba twin of :func:`softlif_rate_grad_numpy` -> ``(dr, n_nan)``."""
    _, dr, n_nan = _softlif_rates(J, float(sigma), float(tau_rc), float(tau_ref),
                                  float(amplitude), 1)
    return dr, int(n_nan)


def softlif_rate_and_grad_numba(J, sigma, tau_rc, tau_ref, amplitude):
    """Numba twin of :func:`softlif_rate_and_grad_numpy` -> ``(r, dr, n_nan)`` in one pass."""
    r, dr, n_nan = _softlif_rates(J, float(sigma), float(tau_rc), float(tau_ref),
                                  float(amplitude), 2)
    return r, dr, int(n_nan)


# ---------------------------------------------------------------------------------------------
# The SoftLIF derivative in float32 arithmetic (the unrolled hybrid step's backward pass)
# ---------------------------------------------------------------------------------------------
#
# The unrolled hybrid step (:class:`minisnn.hybrid.SpikingScanFn`) evaluates the derivative at
# every step's current of every neuron: T times the values an ANN step does.  There, with the
# float32 arithmetic NengoDL trains in, it is the formula of ``softlif_rate64_numpy`` with
# every operation in float32: twice the lanes per AVX2 instruction, and float32 division is
# faster.  ``exp`` is Cephes' ``expf`` (a degree-5 polynomial after ``x = k ln 2 + r``) and
# ``log1p`` musl's ``log1pf``, both branch-free as their float64 twins above.  The NumPy
# reference makes the same float32 operations in the same order (no libm call), so kernel and
# reference agree bit for bit on any host; against the float64 formula the result is within
# 16 ulp (at most 9.2 measured over the test's currents and parameters, 7.5 at the paper's
# ``sigma = 0.005``; the median 0.4-1.5 ulp), see ``tests/test_neurons.py``.
#
# Far below threshold (``x < -30``) it uses the float64 formula's asymptote
# ``log(1 + 1/z) = -(log sigma + x)``; ``exp`` is flushed to 0 below ``-87`` (float32's
# subnormals).  It needs ``SIGMA_MIN_FAST32 <= sigma`` (so that ``z >= 1e-30`` wherever
# ``x >= -30``), ``tau_ref > 0`` and parameters whose float32 roundings are normal numbers
# (:func:`float32_params_ok`); :class:`minisnn.neurons.SoftLIFRate` falls back to the float64
# kernel otherwise.

f4 = np.float32
#: smallest ``sigma`` of the float32 derivative (z = sigma * softplus(x) >= 9e-29 for x >= -30)
SIGMA_MIN_FAST32 = 1e-15
_ONE32, _TWO32, _HALF32, _ZERO32 = f4(1.0), f4(2.0), f4(0.5), f4(0.0)
_ZMIN32 = f4(1e-30)
_XMAX32 = f4(1e30)
_THIRTY32 = f4(30.0)
_FMAX32 = np.finfo(np.float32).max
# Cephes expf: exp(x) = 2**k exp(r), x = k ln 2 + r, ln 2 in two parts
_E_MIN32 = f4(-87.0)                     # exp(x) is normal above; flushed to 0 below
_E_LOG2E = f4(1.44269504088896341)
_E_LN2_HI = f4(0.693359375)
_E_LN2_LO = f4(-2.12194440e-4)
_E_P0, _E_P1, _E_P2 = f4(1.9875691500e-4), f4(1.3981999507e-3), f4(8.3334519073e-3)
_E_P3, _E_P4, _E_P5 = f4(4.1665795894e-2), f4(1.6666665459e-1), f4(5.0000001201e-1)
_MAGIC32 = f4(12582912.0)                # 1.5 * 2**23: x + it rounds x to an integer k
_MAGIC32_BITS = np.int32(0x4B400000)     # ... and its bit pattern is this + k
# musl log1pf
_L_LN2_HI = f4(6.9313812256e-01)
_L_LN2_LO = f4(9.0580006145e-06)
_LG1_32, _LG2_32 = f4(0.66666662693), f4(0.40000972152)
_LG3_32, _LG4_32 = f4(0.28498786688), f4(0.24279078841)
_SQRT2M1_32 = np.int32(0x3ED413D0).view(np.float32)   # musl's "1 + x < sqrt(2)"
_TWOM24 = f4(2.0 ** -24)                 # log1p(x) == x below it (in float32)
_L_SHIFT = np.int32(0x3F800000 - 0x3F3504F3)
_L_MANT = np.int32(0x007FFFFF)
_L_SQRT2_HALF = np.int32(0x3F3504F3)
_I23, _I127, _I25 = np.int32(23), np.int32(127), f4(25.0)


def float32_params_ok(sigma, tau_rc, tau_ref, amplitude) -> bool:
    """Whether the float32 derivative takes these SoftLIF parameters: ``sigma`` at least
    :data:`SIGMA_MIN_FAST32`, ``tau_ref > 0``, every constant it uses a normal float32 number,
    and ``amplitude / (tau_ref sigma)`` (a bound on ``r s / z``) at most 1e30, so that no
    intermediate overflows (the result itself is clipped to float32's range)."""
    if not (sigma >= SIGMA_MIN_FAST32 and tau_ref > 0.0):
        return False
    consts = (sigma, 1.0 / sigma, tau_rc, tau_ref, amplitude, tau_rc / amplitude, amplitude / (tau_ref * sigma))
    tiny, big = float(np.finfo(np.float32).tiny), 1e30
    return all(tiny <= abs(c) <= big for c in consts)


def _exp32_numpy(a):
    """``exp(a)`` for float32 ``a <= 0`` (Cephes expf), 0 below -87: the kernel's operations."""
    x = np.maximum(a, _E_MIN32)
    k = (x * _E_LOG2E + _MAGIC32) - _MAGIC32
    r = (x - k * _E_LN2_HI) - k * _E_LN2_LO
    z = r * r
    y = (((((_E_P0 * r + _E_P1) * r + _E_P2) * r + _E_P3) * r + _E_P4) * r + _E_P5) * z + r + _ONE32
    scale = (((k + _MAGIC32).view(np.int32) - _MAGIC32_BITS) + _I127) << _I23
    return np.where(a >= _E_MIN32, y * scale.view(np.float32), _ZERO32)


def _log1p32_numpy(a):
    """``log1p(a)`` for float32 ``a >= 0`` (musl log1pf): the kernel's operations."""
    x = np.maximum(a, _TWOM24)
    u = _ONE32 + x
    iu = u.view(np.int32) + _L_SHIFT
    kf = ((iu >> _I23) - _I127).astype(np.float32)
    c = np.where(kf >= _TWO32, _ONE32 - (u - x), x - (u - _ONE32))
    c = np.where(kf < _I25, c / u, _ZERO32)
    f = ((iu & _L_MANT) + _L_SQRT2_HALF).view(np.float32) - _ONE32
    small = x < _SQRT2M1_32                     # 1 + x < sqrt(2): k = 0, no rounding to correct
    f = np.where(small, x, f)
    c = np.where(small, _ZERO32, c)
    kf = np.where(small, _ZERO32, kf)
    s = f / (_TWO32 + f)
    z = s * s
    w = z * z
    R = z * (_LG1_32 + w * _LG3_32) + w * (_LG2_32 + w * _LG4_32)
    hfsq = _HALF32 * f * f
    y = s * (hfsq + R) + (kf * _L_LN2_LO + c) - hfsq + f + kf * _L_LN2_HI
    return np.where(a < _TWOM24, a, y)


def _softlif32_constants(sigma, tau_rc, tau_ref, amplitude):
    """``sigma, 1 / sigma, log sigma, tau_rc, tau_ref, amplitude, tau_rc / amplitude`` in float32."""
    return (f4(sigma), f4(1.0 / sigma), f4(math.log(sigma)), f4(tau_rc), f4(tau_ref), f4(amplitude),
            f4(tau_rc / amplitude))


def softlif_rate_grad32_numpy(J, sigma, tau_rc, tau_ref, amplitude):
    """``dr/dJ`` of SoftLIF for float32 currents, in float32 arithmetic -> ``(dr, n_nan)``
    (NumPy reference of :func:`softlif_rate_grad32_numba`; see the section's comment)."""
    J = np.asarray(J)
    if J.dtype != np.float32:
        raise ValueError(f"softlif_rate_grad32: J must be float32, got {J.dtype}")
    sig, inv_sig, log_sig, trc, tref, amp, c = _softlif32_constants(sigma, tau_rc, tau_ref, amplitude)
    n_nan = int(np.count_nonzero(np.isnan(J)))
    with np.errstate(all="ignore"):
        x = np.minimum(np.maximum((J - _ONE32) * inv_sig, -_XMAX32), _XMAX32)
        e = _exp32_numpy(-np.abs(x))
        sp = np.maximum(x, _ZERO32) + _log1p32_numpy(e)
        big = x > _THIRTY32
        very_neg = x < -_THIRTY32
        z = np.where(big, J - _ONE32, sig * sp)
        q = np.where(very_neg, -(log_sig + x), _log1p32_numpy(_ONE32 / np.maximum(z, _ZMIN32)))
        r = amp / (tref + trc * q)
        s = np.where(x >= _ZERO32, _ONE32, e) / (_ONE32 + e)
        s_over_z = np.where(big, s / np.where(big, z, _ONE32), np.where(very_neg, _ONE32, s / sp) / sig)
        dr = np.minimum((r * s_over_z) * (r / (_ONE32 + z)) * c, _FMAX32)
    return dr, n_nan


@jit
def _exp32_block(a, out):
    """:func:`_exp32_numpy` on a block (``out`` must not overlap ``a``)."""
    for i in range(a.shape[0]):
        x0 = a[i]
        x = max(x0, _E_MIN32)
        k = (x * _E_LOG2E + _MAGIC32) - _MAGIC32
        r = (x - k * _E_LN2_HI) - k * _E_LN2_LO
        z = r * r
        y = (((((_E_P0 * r + _E_P1) * r + _E_P2) * r + _E_P3) * r + _E_P4) * r + _E_P5) * z + r + _ONE32
        scale = np.int32(np.int32(np.float32(k + _MAGIC32).view(np.int32) - _MAGIC32_BITS) + _I127) << _I23
        out[i] = y * np.int32(scale).view(np.float32) if x0 >= _E_MIN32 else _ZERO32


@jit
def _log1p32_block(a, out):
    """:func:`_log1p32_numpy` on a block (``out`` must not overlap ``a``)."""
    for i in range(a.shape[0]):
        x0 = a[i]
        x = max(x0, _TWOM24)
        u = _ONE32 + x
        iu = np.int32(np.float32(u).view(np.int32) + _L_SHIFT)
        kf = np.float32(np.int32(iu >> _I23) - _I127)
        c = (_ONE32 - (u - x)) if kf >= _TWO32 else (x - (u - _ONE32))
        c = np.divide(c, u) if kf < _I25 else _ZERO32
        f = np.int32(np.int32(iu & _L_MANT) + _L_SQRT2_HALF).view(np.float32) - _ONE32
        if x < _SQRT2M1_32:
            f = x
            c = _ZERO32
            kf = _ZERO32
        s = np.divide(f, _TWO32 + f)
        z = s * s
        w = z * z
        R = z * (_LG1_32 + w * _LG3_32) + w * (_LG2_32 + w * _LG4_32)
        hfsq = _HALF32 * f * f
        y = s * (hfsq + R) + (kf * _L_LN2_LO + c) - hfsq + f + kf * _L_LN2_HI
        out[i] = x0 if x0 < _TWOM24 else y


@pjit
def _softlif_grad32(J, sig, inv_sig, log_sig, trc, tref, amp, c):
    """The kernel of :func:`softlif_rate_grad32_numba`: blocks of :data:`BLOCK` currents in
    parallel, each in a few vectorised passes over float32 scratch rows."""
    n = J.shape[0]
    dr = np.empty(n, np.float32)
    nblocks = (n + BLOCK - 1) // BLOCK
    nans = np.zeros(nblocks, dtype=np.int64)
    for blk in prange(nblocks):
        lo = blk * BLOCK
        m = min(lo + BLOCK, n) - lo
        Jb, db = J[lo : lo + m], dr[lo : lo + m]
        buf = np.empty((5, BLOCK), np.float32)
        xs, es, ts, ws, qs = buf[0, :m], buf[1, :m], buf[2, :m], buf[3, :m], buf[4, :m]
        n_nan = 0
        for i in range(m):
            Ji = Jb[i]
            n_nan += Ji != Ji
            x = min(max((Ji - _ONE32) * inv_sig, -_XMAX32), _XMAX32)
            xs[i] = x
            ts[i] = -abs(x)
        _exp32_block(ts, es)
        _log1p32_block(es, ts)                 # ts: log1p(e)
        for i in range(m):
            x = xs[i]
            sp = max(x, _ZERO32) + ts[i]
            z = (Jb[i] - _ONE32) if x > _THIRTY32 else sig * sp
            ts[i] = sp                         # ts: softplus(x)
            ws[i] = np.divide(_ONE32, max(z, _ZMIN32))
        _log1p32_block(ws, qs)
        for i in range(m):
            x = xs[i]
            e = es[i]
            sp = ts[i]
            big = x > _THIRTY32
            very_neg = x < -_THIRTY32
            z = (Jb[i] - _ONE32) if big else sig * sp
            q = -(log_sig + x) if very_neg else qs[i]
            r = np.divide(amp, tref + trc * q)
            s = np.divide(_ONE32 if x >= _ZERO32 else e, _ONE32 + e)
            s_over_z = np.divide(s, z) if big else np.divide(_ONE32 if very_neg else np.divide(s, sp), sig)
            db[i] = min((r * s_over_z) * np.divide(r, _ONE32 + z) * c, _FMAX32)
        nans[blk] = n_nan
    return dr, nans.sum()


def softlif_rate_grad32_numba(J, sigma, tau_rc, tau_ref, amplitude):
    """Numba twin of :func:`softlif_rate_grad32_numpy` -> ``(dr, n_nan)`` (the same bits)."""
    if J.dtype != np.float32:
        raise ValueError(f"softlif_rate_grad32: J must be float32, got {J.dtype}")
    # (errstate has no effect on compiled code; as plain Python, NUMBA_DISABLE_JIT=1, the
    # kernel's (J - 1) / sigma overflows for huge currents before it is clipped)
    with np.errstate(all="ignore"):
        dr, n_nan = _softlif_grad32(J, *_softlif32_constants(sigma, tau_rc, tau_ref, amplitude))
    return dr, int(n_nan)


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------


def example_currents(rng, n=BLOCK + 301, dtype=np.float64, sigma=0.005):
    """Currents for the tests: random over [-3, 12], around threshold (``1 +- 40 sigma``),
    exactly 1, and extremes (``+-1e30``, ``+-J_CLAMP``-sized, the dtype's max)."""
    J = rng.uniform(-3.0, 12.0, size=n)
    J[::3] = 1.0 + sigma * rng.uniform(-40.0, 40.0, size=J[::3].shape)
    one, fmax = dtype(1.0), float(np.finfo(dtype).max)
    J[:12] = [1.0, np.nextafter(one, dtype(2)), np.nextafter(one, dtype(0)), 0.0, -1e30, 1e30,
              fmax, -fmax, 1.0 + 30 * sigma, 1.0 - 30 * sigma, 1.0 - 708 * sigma, 1e-30]
    return J.astype(dtype)


def _lif_example(rng):
    return (example_currents(rng, dtype=np.float32), 0.02, 0.002, 1.0)


def _softlif_example(rng):
    return (example_currents(rng), 0.005, 0.02, 0.002, 1.0)


from . import register  # noqa: E402

register("lif_rate", lif_rate_numpy, lif_rate_numba, _lif_example)
register("lif_rate_grad", lif_rate_grad_numpy, lif_rate_grad_numba, _lif_example)
register("lif_rate_and_grad", lif_rate_and_grad_numpy, lif_rate_and_grad_numba, _lif_example)
register("softlif_rate", softlif_rate_numpy, softlif_rate_numba, _softlif_example)
register("softlif_rate_grad", softlif_rate_grad_numpy, softlif_rate_grad_numba, _softlif_example)
register("softlif_rate_grad32", softlif_rate_grad32_numpy, softlif_rate_grad32_numba,
         lambda rng: (example_currents(rng, dtype=np.float32), 0.005, 0.02, 0.002, 1.0))
register("softlif_rate_and_grad", softlif_rate_and_grad_numpy, softlif_rate_and_grad_numba,
         _softlif_example)
