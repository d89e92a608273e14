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
    softlif_rate_and_grad(J, sigma, tau_rc, tau_ref, amplitude) -> (r, dr, n_nan)

``r`` and ``dr`` have J's shape and dtype (computed in float64, then clipped to the dtype's
range and rounded once); ``n_nan`` is the number of NaN currents (the model raises
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
register("softlif_rate_and_grad", softlif_rate_and_grad_numpy, softlif_rate_and_grad_numba,
         _softlif_example)
