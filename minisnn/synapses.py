"""Synapse models: the first-order lowpass filter (LEVEL 2: models).

A synapse smooths the spike trains of a layer before the next layer sees them.  Nengo's default
connection synapse is ``Lowpass(tau=0.005)``; the paper's "synapse 0.005" is that filter.

Continuous time: impulse response ``h(t) = exp(-t / tau) / tau`` (unit DC gain).  Discretised
with zero-order hold at step ``dt`` (what Nengo does):

    y[n] = a * y[n-1] + (1 - a) * u[n],     a = exp(-dt / tau)

What we found in ``nengo.Lowpass(tau).filt(u, dt=dt, y0=0)`` (nengo 4.1), and match:

* **No delay**: the first output is ``y[0] = a * y0 + (1 - a) * u[0]`` (Nengo steps its
  one-state ``LinearFilter.OneX``: ``X = a X + b u; return X``).  The one-step delay of a
  Nengo *connection* synapse comes from the simulator's update order, not from the filter.
* ``y0`` is the output before the first step (Nengo sets the state to the steady state that
  outputs ``y0``; for a lowpass that is ``y0`` itself).
* Nengo's ``b`` comes from ``cont2discrete`` (a matrix exponential) and differs from
  ``1 - a`` by about one ulp; results agree to ~1e-15 relative.
* ``tau = 0`` is a passthrough in Nengo (``Lowpass(0)`` has only a ``D = 1`` term) and here
  (``a = 0``, ``y = u`` exactly).  A tiny positive ``tau`` (e.g. 1e-9) gives NaN in Nengo (the
  matrix exponential overflows); here ``a`` underflows to 0 and the filter is a passthrough.
* Nengo returns float64 whatever the input dtype (``rc.float_dtype``) and its ``filt`` fails on
  a 1-D signal in nengo 4.1 (``ValueError: setting an array element with a sequence``).
  Here float32 input stays float32 (integer input gives float64) and 1-D input works.

Inside the simulator the filter is fused into the neuron time scans
(:func:`minisnn.kernels.lif.lif_run_numba` with ``syn_a = Lowpass(tau).coefficient(dt)``).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .kernels import lowpass as _lowpass_kernels

__all__ = ["Lowpass", "synapse_coefficient"]


class Lowpass:
    """First-order lowpass synapse (Nengo ``Lowpass``).

    .. math::  y[n] = a\\,y[n-1] + (1 - a)\\,u[n], \\qquad a = e^{-dt/\\tau}

    Parameters
    ----------
    tau : float
        Time constant in seconds, >= 0.  ``tau = 0`` means no filtering (passthrough), as in
        Nengo.
    """

    def __init__(self, tau):
        try:
            t = float(tau)
        except (TypeError, ValueError):
            raise ValueError(f"Lowpass: tau must be a number, got {tau!r}") from None
        if isinstance(tau, bool) or not math.isfinite(t) or t < 0:
            raise ValueError(f"Lowpass: tau must be a finite number >= 0, got {tau!r}")
        self.tau = t

    def __repr__(self):
        return f"Lowpass(tau={self.tau!r})"

    def __eq__(self, other):
        return type(other) is type(self) and other.tau == self.tau

    def __hash__(self):
        return hash(("Lowpass", self.tau))

    def coefficient(self, dt=0.001):
        """The decay per step ``a = exp(-dt / tau)`` (0.0 for ``tau == 0``).

        Parameters
        ----------
        dt : float, default 0.001
            Time step in seconds, > 0.

        Returns
        -------
        a : float in [0, 1)
        """
        dt = _check_dt(dt)
        if self.tau == 0.0:
            return 0.0
        return math.exp(-dt / self.tau)  # math.exp underflows quietly to 0.0

    def filt(self, u, dt=0.001, y0=0.0):
        """Filter a signal along axis 0 (time), like ``nengo.Lowpass(tau).filt(u, dt, y0=y0)``.

        Parameters
        ----------
        u : array_like, shape (T, ...)
            Input signal, one entry per time step.
        dt : float, default 0.001
            Time step in seconds, > 0.
        y0 : float or array_like broadcastable to ``u.shape[1:]``, default 0
            Filter output before the first step.

        Returns
        -------
        y : ndarray, shape (T, ...)
            A new array with ``y[n] = a y[n-1] + (1 - a) u[n]``, ``y[-1] = y0``; u's float
            dtype (float64 for integer input).
        """
        a = self.coefficient(dt)
        u = np.asarray(u)
        dtype = u.dtype if u.dtype.kind == "f" else np.dtype(np.float64)
        if u.ndim == 0:
            raise ValueError("Lowpass.filt: u must have a time axis (axis 0)")
        shape = u.shape
        u2 = np.ascontiguousarray(u.reshape(shape[0], -1), dtype=dtype)
        state = np.empty(u2.shape[1], dtype=np.float64)
        state[...] = np.broadcast_to(np.asarray(y0, dtype=np.float64), shape[1:]).reshape(-1)
        out = np.empty_like(u2)
        _lowpass_kernels.lowpass_run_numba(u2, state, a, out)
        return out.reshape(shape)


def synapse_coefficient(synapse, dt, where: str = "simulate") -> float:
    """The filter coefficient ``a`` of a synapse given as a user may give it: ``None`` (no
    filter, ``a = 0``), a time constant in seconds (``Lowpass(tau)``) or a :class:`Lowpass`.
    Anything else is a ValueError that names ``where`` (the function the user called)."""
    if synapse is None:
        return 0.0
    if isinstance(synapse, numbers.Real):
        synapse = Lowpass(synapse)
    if not isinstance(synapse, Lowpass):
        raise ValueError(f"{where}: synapse must be None, a time constant (s) or a Lowpass, got {synapse!r}")
    return float(synapse.coefficient(dt))


def _check_dt(dt):
    try:
        x = float(dt)
    except (TypeError, ValueError):
        raise ValueError(f"Lowpass: dt must be a number, got {dt!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"Lowpass: dt must be > 0, got {dt!r}")
    return x
