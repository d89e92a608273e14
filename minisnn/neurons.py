"""Neuron models with Nengo / NengoDL semantics (LEVEL 2: models).

A neuron model maps an input current ``J`` (normalised: the LIF threshold is 1) to an output:

* **rate models** (``spiking = False``) output a firing rate ``r(J)`` in Hz (times
  ``amplitude``): :class:`RectifiedLinear`, :class:`LIFRate`, :class:`SoftLIFRate`;
* **spiking models** (``spiking = True``) keep a state (membrane voltage, ...) and output, at
  each step of length ``dt``, impulses of height ``amplitude / dt``:
  :class:`SpikingRectifiedLinear`, :class:`LIF`.  Averaged over time they fire at the rate of
  their *rate twin*, so ``LIF.rate`` is the ``LIFRate`` formula.

Every model has ``rate(J)``, its exact derivative ``rate_grad(J) = dr/dJ`` (used by the
autodiff and by hybrid fine-tuning) and both at once, ``rate_and_grad(J) -> (r, dr)``;
``rate_twin()`` / ``spiking_twin()`` to move between a trained rate network and the spiking
network it becomes, and ``with_amplitude(amp)`` for ``scale_firing_rates = s`` (current times
``s``, amplitude divided by ``s``).

The rate functions are safe for every finite current (no NaN, inf, overflow or division
warnings, also with ``np.errstate(all="raise")``): they compute in float64 and return the
input's float dtype (float32 stays float32; integer input gives float64).  A NaN current is a
bug upstream and raises ``ValueError``.

The LIF rates are computed by :mod:`minisnn.kernels.rates`: fused, parallel Numba kernels for
float32 / float64 currents (one pass, no temporaries; ``rate_and_grad`` costs little more than
``rate``), the NumPy reference for other dtypes or when Numba is disabled
(:func:`~minisnn.kernels._jit.compiled_for`, as everywhere).  Both agree to ~1e-15 relative.
The rectified-linear rate and its derivative have the same arrangement in
:mod:`minisnn.kernels.relu` (bit for bit equal to NumPy there), with ``scaled_rate_and_grad``
folding a layer's gain into the same pass.

The per-step update of the spiking models is written once, in :mod:`minisnn.kernels.lif` and
:mod:`minisnn.kernels.relu` (NumPy reference and Numba time scan side by side); ``step`` calls
the reference, ``run`` the Numba scan.

Sources: ``nengo/neurons.py`` (nengo 4.1) and ``nengo_dl/neurons.py`` (``SoftLIFRate``);
Hunsberger & Eliasmith 2015, arXiv:1510.08829.
"""

from __future__ import annotations

from typing import NamedTuple

import math

import numpy as np

from .kernels import lif as _lif_kernels
from .kernels._jit import compiled_for
from .kernels import rates as _rate_kernels
from .kernels import relu as _relu_kernels

__all__ = [
    "NeuronType",
    "RectifiedLinear",
    "SpikingRectifiedLinear",
    "IntegrateAndFire",
    "LIFRate",
    "SoftLIFRate",
    "LIF",
]

#: Currents are clamped to ``1 +- J_CLAMP`` inside the rate formulas.  Beyond it the LIF rates
#: equal their limits to double precision (with ``tau_ref > 0``); it only keeps intermediate
#: values finite for absurd inputs (e.g. ``J = 1e300`` with ``tau_ref = 0``).
J_CLAMP = _rate_kernels.J_CLAMP


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _param(cls_name, name, value, *, low=None, strict=False, high=None):
    """Return ``float(value)`` after checking it is a finite number within bounds."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{cls_name}: {name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(x):
        raise ValueError(f"{cls_name}: {name} must be a finite number, got {value!r}")
    if low is not None and (x <= low if strict else x < low):
        op = ">" if strict else ">="
        raise ValueError(f"{cls_name}: {name} must be {op} {low:g}, got {value!r}")
    if high is not None and x > high:
        raise ValueError(f"{cls_name}: {name} must be <= {high:g}, got {value!r}")
    return x


def _current(cls_name, J, scan_nan=True):
    """``J`` as an array, rejecting NaN (returns the array and the float dtype of results)."""
    J = np.asarray(J)
    if J.dtype.kind not in "biuf":
        raise ValueError(f"{cls_name}: J must be a real numeric array, got dtype {J.dtype}")
    if scan_nan and J.dtype.kind == "f" and np.isnan(J).any():
        raise ValueError(f"{cls_name}: J (input current) contains NaN")
    dtype = J.dtype if J.dtype.kind == "f" else np.dtype(np.float64)
    return J, dtype


def _apply_rate_kernel(cls_name, J, fast, reference, params, use_fast=True):
    """A rate kernel of :mod:`minisnn.kernels.rates` or :mod:`minisnn.kernels.relu` applied to
    ``J`` of any shape.

    ``fast`` / ``reference`` take ``(flat J, *params)`` and return ``(*outputs, n_nan)``.  The
    Numba kernel is used where :func:`~minisnn.kernels._jit.compiled_for` says so (float32 /
    float64 currents, Numba enabled) and ``use_fast``; the NumPy reference otherwise.  The
    kernels are faster at every size (~10 us for one element against ~50-100 us): no size
    threshold.  Returns the output (or the tuple of outputs) with J's shape, in J's float
    dtype (float64 for integer input); NaN in ``J`` raises ValueError (counted by the kernel
    itself: no extra pass over ``J``).
    """
    J = np.asarray(J)
    if J.dtype.kind not in "biuf":
        raise ValueError(f"{cls_name}: J must be a real numeric array, got dtype {J.dtype}")
    if J.dtype.kind != "f":
        J = J.astype(np.float64)
    flat = J.reshape(-1)
    if use_fast and compiled_for(J.dtype):
        with np.errstate(all="ignore"):   # (no effect on compiled code; plain-Python mode)
            *outs, n_nan = fast(flat, *params)
    else:
        *outs, n_nan = reference(flat, *params)
    if n_nan:
        raise ValueError(f"{cls_name}: J (input current) contains NaN")
    outs = [out.reshape(J.shape) for out in outs]
    return outs[0] if len(outs) == 1 else tuple(outs)


#: The arithmetic of a spiking step: ``"float64"`` computes every step in float64 from the
#: stored state (exactly Nengo's with float64 arrays), ``"float32"`` in float32 throughout, as
#: NengoDL's default dtype does (:func:`minisnn.kernels.lif.lif_run32_numba`): twice the SIMD
#: lanes, the same spike trains up to float32 rounding.
PRECISIONS = ("float64", "float32")


class CurrentFilter(NamedTuple):
    """A Lowpass on a spiking layer's input current, then a bias and a gain, run inside the
    layer's scan (:func:`minisnn.kernels.lif.lif_run32_numpy`): the current the neurons see is
    ``(s + bias) * gain`` with ``s = a * s + (1 - a) * J``.  ``state`` and ``bias`` are (M,)
    arrays of the current's dtype; ``state`` is updated in place."""

    a: float
    state: np.ndarray
    bias: np.ndarray
    gain: float


def check_precision(precision, allow_none: bool = False) -> str | None:
    """``precision`` if it is one of :data:`PRECISIONS` (or None, where ``allow_none``), else
    ValueError naming them."""
    if precision not in PRECISIONS and not (allow_none and precision is None):
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    return precision


def resolve_precision(precision, dtype) -> str:
    """The precision a simulation runs in: ``precision`` itself, or for None the network's own
    - ``"float32"`` for float32 weights (NengoDL's arithmetic, vectorised), ``"float64"`` else."""
    if check_precision(precision, allow_none=True) is None:
        return "float32" if np.dtype(dtype) == np.float32 else "float64"
    return precision


def _check_dt(cls_name, dt):
    return _param(cls_name, "dt", dt, low=0.0, strict=True)


def _rng(rng):
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    return rng


#: ``log1p(1 / j)`` for ``j > 0`` without overflow for tiny ``j`` (float64 array).
_lif_q = _rate_kernels.lif_q_numpy


# ---------------------------------------------------------------------------------------------
# base class
# ---------------------------------------------------------------------------------------------


class NeuronType:
    """Base class of the neuron models: parameters, equality, copies and twins.

    Subclasses list their constructor parameters in ``_params`` (in constructor order) and
    implement ``rate(J)`` and ``rate_grad(J)`` (and ``rate_and_grad(J)`` when both together
    are cheaper); spiking ones also ``make_state``, ``step`` and ``run``.
    """

    _params: tuple = ()
    spiking: bool = False

    # --- identity -------------------------------------------------------------------------

    @property
    def params(self) -> dict:
        """The constructor parameters as a dict (``type(self)(**self.params)`` is a copy)."""
        return {name: getattr(self, name) for name in self._params}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.params == other.params

    def __hash__(self):
        return hash((type(self).__name__, tuple(self.params.items())))

    def replace(self, **changes):
        """A copy with some parameters changed (validated again)."""
        params = self.params
        unknown = set(changes) - set(params)
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown parameter(s) {sorted(unknown)}")
        params.update(changes)
        return type(self)(**params)

    def with_amplitude(self, amplitude):
        """A copy with another ``amplitude``.

        ``scale_firing_rates = s`` is applied by the layer code as ``J -> s * J`` and
        ``model.with_amplitude(model.amplitude / s)``.
        """
        return self.replace(amplitude=amplitude)

    # --- twins ----------------------------------------------------------------------------

    def rate_twin(self):
        """The rate model this model is trained with (a rate model is its own twin)."""
        return self

    def spiking_twin(self):
        """The spiking model this model becomes in the SNN (a spiking model is its own)."""
        return self

    # --- rate interface -------------------------------------------------------------------

    def rate(self, J):  # pragma: no cover - abstract
        raise NotImplementedError

    def rate_grad(self, J, precision="float64"):  # pragma: no cover - abstract
        """``dr/dJ``.  ``precision="float32"`` lets a model compute a float32 ``J``'s derivative
        in float32 arithmetic (:class:`SoftLIFRate`; the others compute as for "float64")."""
        raise NotImplementedError

    def rate_and_grad(self, J):
        """``(rate(J), rate_grad(J))``; models override it with a single pass."""
        return self.rate(J), self.rate_grad(J)

    def scaled_rate_and_grad(self, x, gain):
        """``(rate(gain * x), gain * rate_grad(gain * x))``: the rate and its derivative with
        respect to ``x`` of a layer that scales its input current (``scale_firing_rates``).
        Computed in x's dtype, in this order; models may fuse it."""
        J = x * gain if gain != 1 else x
        r, dr = self.rate_and_grad(J)
        if gain != 1:
            dr *= gain  # in place: rate_and_grad returns new arrays
        return r, dr

    def make_state(self, shape, rng=None, dtype=np.float32):
        """State arrays of a population of ``shape`` neurons (rate models have none)."""
        return {}

    def step(self, dt, J, output):
        """Rate models: ``output[...] = rate(J)`` (no state; same call as Nengo's)."""
        _check_dt(type(self).__name__, dt)
        output[...] = self.rate(J)

    def run(self, dt, J, out, state, syn_a=0.0, syn_state=None, precision="float64", current_filter=None,
            window_sum=None, window=None):
        """Spiking models: run ``T = out.shape[0]`` steps with their Numba scan (optional
        fused Lowpass).

        Parameters
        ----------
        dt : float
        J : ndarray, shape (1, M) or (T, M)
            Current, constant over time if it has one row.
        out : ndarray, shape (T, M)
            Receives the (filtered) output.
        state : dict
            From :meth:`make_state` with shape ``(M,)``; updated in place.
        syn_a : float
            Lowpass coefficient (:meth:`minisnn.synapses.Lowpass.coefficient`), 0 = none.
        syn_state : ndarray, shape (M,), optional
            Synapse state (updated in place); zeros if not given.
        precision : "float64" or "float32"
            The arithmetic of the step (see :data:`PRECISIONS`); ``"float32"`` needs float32
            arrays.  Models without a float32 scan (all but :class:`LIF`) ignore it.
        current_filter : CurrentFilter, optional
            Filter ``J`` first (Lowpass, bias, gain; in the scan, no pass of its own).
        window_sum, window : ndarray (M,) and (start, end), optional
            Add the (filtered) output of steps ``start <= t < end`` to ``window_sum``.  With
            ``out`` a uint8 spike map (see :meth:`spike_map_height`) this is the only place the
            filtered output goes.  Both only where :meth:`filters_current` says the scan can.

        Returns
        -------
        counts : ndarray of int64, shape (M,)
            Spikes per neuron during this run.
        """
        name = type(self).__name__
        if not self.spiking:
            raise ValueError(f"{name} is a rate model: it has no spiking run")
        dt = _check_dt(name, dt)
        check_precision(precision)
        later = self._nan_reaches_voltage(precision)
        J, out, syn_a, syn_state = _check_run(name, J, out, state["voltage"], syn_a, syn_state, scan_nan=not later)
        fused = {}
        if current_filter is not None:
            fused.update(zip(("in_a", "in_state", "bias", "gain"), current_filter))
        if window_sum is not None:
            fused.update(window_sum=window_sum, window=tuple(window))
        if fused and not self.filters_current(precision):
            raise ValueError(f"{name}: the {precision} scan cannot filter its current or sum a window")
        counts = self._run_kernel(J, out, state, dt, syn_a, syn_state, precision, **fused)
        if later and np.isnan(state["voltage"]).any():
            raise ValueError(f"{name}: J (input current) contains NaN")
        return counts

    def filters_current(self, precision) -> bool:
        """Whether :meth:`run` in ``precision`` takes a :class:`CurrentFilter` and a
        ``window_sum``."""
        return False

    def spike_map_height(self, dt, precision):
        """The value of one spike if :meth:`run` in ``precision`` can write its output as a
        uint8 map of spikes (``out`` of dtype uint8; a synapse then filters into the state and
        ``window_sum`` only), else None."""
        return None

    def _nan_reaches_voltage(self, precision) -> bool:
        """Whether the scan in ``precision`` turns a NaN current into a NaN voltage at every
        step (refractory or not): then :meth:`run` checks the M final voltages for NaN
        instead of scanning the T x M currents first."""
        return False

    def _run_kernel(self, J, out, state, dt, syn_a, syn_state, precision):  # pragma: no cover - abstract
        """The model's Numba time scan, called by :meth:`run` after the checks."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# rectified linear
# ---------------------------------------------------------------------------------------------


#: the rectified-linear rate kernels (Numba, NumPy reference) by what they return
_RELU_KERNELS = {
    "rate": (_relu_kernels.relu_rate_numba, _relu_kernels.relu_rate_numpy),
    "grad": (_relu_kernels.relu_rate_grad_numba, _relu_kernels.relu_rate_grad_numpy),
    "both": (_relu_kernels.relu_rate_and_grad_numba, _relu_kernels.relu_rate_and_grad_numpy),
}


class RectifiedLinear(NeuronType):
    """Rectified-linear rate neuron (Nengo ``RectifiedLinear``).

    .. math::  r(J) = \\mathrm{amplitude} \\cdot \\max(J, 0), \\qquad
               r'(J) = \\mathrm{amplitude} \\cdot [J > 0]

    (the derivative at the kink ``J = 0`` is taken as 0).

    Parameters
    ----------
    amplitude : float, default 1
        Output scale (> 0).
    """

    _params = ("amplitude",)
    spiking = False

    def __init__(self, amplitude=1.0):
        self.amplitude = _param(type(self).__name__, "amplitude", amplitude, low=0.0, strict=True)

    # The fused kernels of minisnn.kernels.relu: one pass over J (the NaN check included),
    # arithmetic in J's dtype; the same numbers as the NumPy expressions, bit for bit.

    def _kernel(self, J, gain, which):
        fast, reference = _RELU_KERNELS[which]
        return _apply_rate_kernel(type(self).__name__, J, fast, reference, (gain, self.amplitude))

    def rate(self, J):
        """``amplitude * max(J, 0)``; ``J`` any shape, result in J's float dtype."""
        return self._kernel(J, 1.0, "rate")

    def rate_grad(self, J, precision="float64"):
        """``amplitude * (J > 0)``, same shape and float dtype as ``J`` (exact in any
        ``precision``)."""
        check_precision(precision)
        return self._kernel(J, 1.0, "grad")

    def rate_and_grad(self, J):
        """``(rate(J), rate_grad(J))`` in one pass."""
        return self._kernel(J, 1.0, "both")

    def scaled_rate_and_grad(self, x, gain):
        """:meth:`NeuronType.scaled_rate_and_grad` in one pass (``gain`` folded into the kernel)."""
        return self._kernel(x, float(gain), "both")

    def spiking_twin(self):
        """:class:`SpikingRectifiedLinear` with the same amplitude."""
        return SpikingRectifiedLinear(amplitude=self.amplitude)


class _Integrator(RectifiedLinear):
    """The spiking models whose rate twin is :class:`RectifiedLinear`: one state, ``voltage``
    (U(0, 1) at the start, Nengo's), advanced by a step and a scan of
    :mod:`minisnn.kernels.relu` (``_kernels = (step reference, Numba scan)``), in float64
    arithmetic whatever the simulation's ``precision``."""

    spiking = True
    _kernels: tuple = ()

    def rate_twin(self):
        """:class:`RectifiedLinear` with the same amplitude."""
        return RectifiedLinear(amplitude=self.amplitude)

    def spiking_twin(self):
        return self

    def make_state(self, shape, rng=None, dtype=np.float32):
        """``{"voltage": U(0, 1) samples}`` of ``shape`` (Nengo's initial state).

        Parameters
        ----------
        shape : int or tuple of int
        rng : numpy.random.Generator, RandomState, int seed or None
        dtype : float dtype, default float32
        """
        rng = _rng(rng)
        # rng.random: Nengo's rng.uniform(0, 1, shape) draws, 30 % faster (uniform is 0 + 1 * random)
        return {"voltage": np.asarray(rng.random(shape), dtype=dtype)}

    def step(self, dt, J, output, voltage):
        """One time step; writes ``output`` and ``voltage`` in place.

        Parameters
        ----------
        dt : float
            Time step (s), > 0.
        J : ndarray, shape (...)
            Input current, same shape as ``voltage``; NaN raises ValueError.
        output, voltage : ndarray, shape (...)

        Returns
        -------
        The spikes of the step: counts (float64, :class:`SpikingRectifiedLinear`) or the
        boolean mask of the neurons that fired (:class:`IntegrateAndFire`).
        """
        name = type(self).__name__
        dt = _check_dt(name, dt)
        J, _ = _current(name, J)
        _check_shapes(name, J, output, voltage)
        return self._kernels[0](dt, J, output, voltage, self.amplitude)

    def _run_kernel(self, J, out, state, dt, syn_a, syn_state, precision):
        return self._kernels[1](J, state["voltage"], out, dt, self.amplitude, syn_a, syn_state)


class SpikingRectifiedLinear(_Integrator):
    """Integrate-and-fire neuron whose rate is the rectified-linear one (Nengo
    ``SpikingRectifiedLinear``).

    Per step of length ``dt`` (state ``voltage`` in [0, 1), no leak, no refractory period,
    reset by subtraction, several spikes per step allowed; exactly Nengo's step)::

        voltage += max(J, 0) * dt
        n_spikes = floor(voltage)
        output   = n_spikes * amplitude / dt
        voltage -= n_spikes

    ``rate`` and ``rate_grad`` are those of :class:`RectifiedLinear`.

    Parameters
    ----------
    amplitude : float, default 1
        Area of one spike (> 0).
    """

    _kernels = (_relu_kernels.relu_step_numpy, _relu_kernels.relu_run_numba)


class IntegrateAndFire(_Integrator):
    """Integrate-and-fire neuron that resets to zero: NIR's ``IF`` at step ``dt``.

    Per step of length ``dt`` (state ``voltage``, threshold 1, no leak, no floor, no
    refractory period; see :mod:`minisnn.kernels.relu`)::

        voltage += J * dt
        spiked   = voltage > 1
        output   = spiked * amplitude / dt
        voltage[spiked] = 0

    Unlike :class:`SpikingRectifiedLinear` it integrates negative currents, fires at most once
    per step and loses the voltage above threshold at a reset.  It is what
    :func:`minisnn.interchange.from_nir` runs for a NIR ``IF`` node; its rate twin (used for
    the gradient and the simulator's path choice) is :class:`RectifiedLinear`.

    Parameters
    ----------
    amplitude : float, default 1
        Area of one spike (> 0).
    """

    _kernels = (_relu_kernels.if_step_numpy, _relu_kernels.if_run_numba)



# ---------------------------------------------------------------------------------------------
# leaky integrate-and-fire
# ---------------------------------------------------------------------------------------------


class LIFRate(NeuronType):
    """Rate of a leaky integrate-and-fire neuron (Nengo ``LIFRate``).

    With ``j = J - 1`` (threshold 1):

    .. math::
        r(J) = \\frac{\\mathrm{amplitude}}{\\tau_{ref} + \\tau_{rc} \\log(1 + 1/j)}
        \\quad (j > 0), \\qquad r(J) = 0 \\quad (j \\le 0)

    .. math::
        \\frac{dr}{dJ} = \\frac{r^2 \\, \\tau_{rc}}{\\mathrm{amplitude} \\; j \\,(j + 1)}
        \\quad (j > 0), \\qquad 0 \\quad (j \\le 0)

    The slope is unbounded as ``J -> 1+`` (hence :class:`SoftLIFRate` for training); at
    ``J = 1`` exactly both are 0.  Maximum rate ``amplitude / tau_ref`` as ``J -> inf``;
    250 Hz needs ``J = 10.508`` with the defaults.

    Parameters
    ----------
    tau_rc : float, default 0.02
        Membrane time constant in seconds (> 0).
    tau_ref : float, default 0.002
        Refractory period in seconds (>= 0).
    amplitude : float, default 1
        Output scale (> 0).
    """

    _params = ("tau_rc", "tau_ref", "amplitude")
    spiking = False

    def __init__(self, tau_rc=0.02, tau_ref=0.002, amplitude=1.0):
        name = type(self).__name__
        self.tau_rc = _param(name, "tau_rc", tau_rc, low=0.0, strict=True)
        self.tau_ref = _param(name, "tau_ref", tau_ref, low=0.0)
        self.amplitude = _param(name, "amplitude", amplitude, low=0.0, strict=True)

    #: (fast, reference) kernel pairs of :mod:`minisnn.kernels.rates` for rate, rate_grad and
    #: rate_and_grad, and the model parameters they take after ``J``.
    _kernels = (
        (_rate_kernels.lif_rate_numba, _rate_kernels.lif_rate_numpy),
        (_rate_kernels.lif_rate_grad_numba, _rate_kernels.lif_rate_grad_numpy),
        (_rate_kernels.lif_rate_and_grad_numba, _rate_kernels.lif_rate_and_grad_numpy),
    )

    def _kernel_params(self):
        return (self.tau_rc, self.tau_ref, self.amplitude)

    def _use_fast(self):
        return True

    def _rates(self, J, which):
        fast, reference = self._kernels[which]
        return _apply_rate_kernel(type(self).__name__, J, fast, reference,
                                  self._kernel_params(), self._use_fast())

    def rate(self, J):
        """Firing rate (Hz times amplitude); ``J`` any shape, result in J's float dtype."""
        return self._rates(J, 0)

    def rate_grad(self, J, precision="float64"):
        """Exact ``dr/dJ`` (0 for ``J <= 1``); same shape and float dtype as ``J``, computed in
        float64 whatever ``precision``.

        Computed as ``(r / j) * (r / (j + 1)) * (tau_rc / amplitude)`` so that no
        intermediate overflows for tiny or huge ``j``.
        """
        check_precision(precision)
        return self._rates(J, 1)

    def rate_and_grad(self, J):
        """``(rate(J), rate_grad(J))`` in one pass (about the cost of ``rate`` alone)."""
        return self._rates(J, 2)

    def spiking_twin(self):
        """:class:`LIF` with the same ``tau_rc``, ``tau_ref`` and ``amplitude``."""
        return LIF(tau_rc=self.tau_rc, tau_ref=self.tau_ref, amplitude=self.amplitude)


class SoftLIFRate(LIFRate):
    """LIF rate with the rectified current ``max(J - 1, 0)`` smoothed by a softplus (NengoDL
    ``SoftLIFRate``; Hunsberger & Eliasmith 2015).

    With ``j = J - 1``, ``x = j / sigma``, ``s = sigmoid(x)``:

    .. math::
        z = \\sigma \\log(1 + e^{x}), \\qquad
        r(J) = \\frac{\\mathrm{amplitude}}{\\tau_{ref} + \\tau_{rc} \\log(1 + 1/z)},
        \\qquad
        \\frac{dr}{dJ} = \\frac{r^2 \\, \\tau_{rc} \\, s}{\\mathrm{amplitude} \\; z \\,(1 + z)}

    (far below threshold ``dr/dJ -> r^2 tau_rc / (amplitude sigma)``).  ``sigma -> 0`` gives
    :class:`LIFRate`; the paper's "smoothing 0.005" is ``sigma = 0.005``, which equals
    ``LIFRate`` for ``J >= 1.05`` and gives 1.97 Hz at ``J = 0.9``, 8.67 Hz at ``J = 1``.

    NengoDL evaluates the same function piecewise (``z = sigma * x`` for ``x > 30``,
    ``log(1 + 1/z) ~ -x - log(sigma)`` for ``x <= -20``); here every branch is the exact
    expression rearranged to avoid overflow (``log1p(z) - log(z)`` for small ``z``, with
    ``log z`` computed from ``x`` directly), so the function and its derivative are smooth
    and agree with NengoDL to ~1e-9 relative.

    Parameters
    ----------
    sigma : float, default 1.0
        Smoothing width in units of the normalised current (> 0).  NengoDL's default 1.0;
        use 0.005 for the paper.
    tau_rc, tau_ref, amplitude : float
        As in :class:`LIFRate`.
    """

    _params = ("sigma", "tau_rc", "tau_ref", "amplitude")

    def __init__(self, sigma=1.0, tau_rc=0.02, tau_ref=0.002, amplitude=1.0):
        super().__init__(tau_rc=tau_rc, tau_ref=tau_ref, amplitude=amplitude)
        self.sigma = _param(type(self).__name__, "sigma", sigma, low=0.0, strict=True)
        if self.sigma < np.finfo(np.float64).tiny:  # subnormal: 1 / sigma overflows
            raise ValueError(f"{type(self).__name__}: sigma must be >= 2.2e-308, got {sigma!r}")

    # The formulas: minisnn.kernels.rates.softlif_rate64_numpy (reference) and
    # _softlif_block (Numba kernel).
    _kernels = (
        (_rate_kernels.softlif_rate_numba, _rate_kernels.softlif_rate_numpy),
        (_rate_kernels.softlif_rate_grad_numba, _rate_kernels.softlif_rate_grad_numpy),
        (_rate_kernels.softlif_rate_and_grad_numba, _rate_kernels.softlif_rate_and_grad_numpy),
    )

    def _kernel_params(self):
        return (self.sigma, self.tau_rc, self.tau_ref, self.amplitude)

    def _use_fast(self):
        return self.sigma >= _rate_kernels.SIGMA_MIN_FAST   # smaller: absurd, NumPy handles it

    def rate(self, J):
        """Smoothed firing rate; ``J`` any shape, result in J's float dtype."""
        return self._rates(J, 0)

    def rate_grad(self, J, precision="float64"):
        """Exact ``dr/dJ`` (positive everywhere); same shape and float dtype as ``J``.

        Computed as ``(r * s / z) * (r / (1 + z)) * (tau_rc / amplitude)``: in float64 and
        rounded once, or with ``precision="float32"`` for a float32 ``J`` in float32
        arithmetic, as NengoDL trains (:func:`minisnn.kernels.rates.softlif_rate_grad32_numba`:
        1.85x faster, within 16 ulp of the float64 result; the float64 kernel where the
        parameters are out of its range, :func:`~minisnn.kernels.rates.float32_params_ok`).
        """
        if check_precision(precision) == "float32" and np.asarray(J).dtype == np.float32 \
                and _rate_kernels.float32_params_ok(*self._kernel_params()):
            return _apply_rate_kernel(type(self).__name__, J, _rate_kernels.softlif_rate_grad32_numba,
                                      _rate_kernels.softlif_rate_grad32_numpy, self._kernel_params())
        return self._rates(J, 1)


class LIF(LIFRate):
    """Spiking leaky integrate-and-fire neuron (Nengo ``LIF``).

    State per neuron: ``voltage`` (threshold 1, reset 0) and ``refractory_time``.
    Per step of length ``dt`` (exactly ``nengo.LIF.step``, see :mod:`minisnn.kernels.lif`)::

        refractory_time -= dt
        delta_t = clip(dt - refractory_time, 0, dt)
        voltage -= (J - voltage) * expm1(-delta_t / tau_rc)
        spiked  = voltage > 1
        output  = spiked * amplitude / dt
        t_spike = dt + tau_rc * log1p(-(voltage - 1) / (J - 1))      # spiked only
        voltage = max(voltage, min_voltage);  voltage[spiked] = 0
        refractory_time[spiked] = tau_ref + t_spike

    The spike time is interpolated within the step, so the long-run rate is exactly
    :class:`LIFRate`'s; ``rate`` and ``rate_grad`` are the :class:`LIFRate` ones.

    Parameters
    ----------
    tau_rc : float, default 0.02
        Membrane time constant (s), > 0.
    tau_ref : float, default 0.002
        Refractory period (s), >= 0.
    min_voltage : float, default 0
        Floor of the voltage (<= 0).
    amplitude : float, default 1
        Area of one spike (> 0).
    """

    _params = ("tau_rc", "tau_ref", "min_voltage", "amplitude")
    spiking = True

    def __init__(self, tau_rc=0.02, tau_ref=0.002, min_voltage=0.0, amplitude=1.0):
        super().__init__(tau_rc=tau_rc, tau_ref=tau_ref, amplitude=amplitude)
        self.min_voltage = _param(type(self).__name__, "min_voltage", min_voltage, high=0.0)

    def rate_twin(self, sigma=None):
        """The rate model to train with: :class:`LIFRate` with the same parameters, or
        :class:`SoftLIFRate` if a smoothing ``sigma`` is given (e.g. 0.005)."""
        if sigma is None:
            return LIFRate(tau_rc=self.tau_rc, tau_ref=self.tau_ref, amplitude=self.amplitude)
        return SoftLIFRate(sigma=sigma, tau_rc=self.tau_rc, tau_ref=self.tau_ref,
                           amplitude=self.amplitude)

    def spiking_twin(self):
        return self

    def make_state(self, shape, rng=None, dtype=np.float32):
        """``{"voltage": U(0, 1), "refractory_time": 0}`` arrays of ``shape`` (Nengo's).

        Parameters
        ----------
        shape : int or tuple of int
        rng : numpy.random.Generator, RandomState, int seed or None
        dtype : float dtype, default float32
        """
        rng = _rng(rng)
        return {  # rng.random: Nengo's rng.uniform(0, 1, shape) draws, 30 % faster (0 + 1 * random)
            "voltage": np.asarray(rng.random(shape), dtype=dtype),
            "refractory_time": np.zeros(shape, dtype=dtype),
        }

    def step(self, dt, J, output, voltage, refractory_time):
        """One time step, exactly Nengo's; writes ``output`` and the state in place.

        Parameters
        ----------
        dt : float
            Time step (s), > 0.
        J : ndarray, shape (...)
            Input current, same shape as the state; NaN raises ValueError.
        output, voltage, refractory_time : ndarray, shape (...)

        Returns
        -------
        spiked : ndarray of bool, shape (...)
        """
        name = type(self).__name__
        dt = _check_dt(name, dt)
        J, _ = _current(name, J)
        _check_shapes(name, J, output, voltage, refractory_time)
        return _lif_kernels.lif_step_numpy(dt, J, output, voltage, refractory_time, self.tau_rc,
                                           self.tau_ref, self.min_voltage, self.amplitude)

    def _run_kernel(self, J, out, state, dt, syn_a, syn_state, precision, **fused):
        args = (J, state["voltage"], state["refractory_time"], out, dt, self.tau_rc, self.tau_ref,
                self.min_voltage, self.amplitude, syn_a, syn_state)
        if precision == "float64":
            return _lif_kernels.lif_run_numba(*args)
        bad = [a.dtype for a in (J, state["voltage"], state["refractory_time"], syn_state) if a.dtype != np.float32]
        if bad or out.dtype not in (np.float32, np.uint8):
            raise ValueError(f"LIF: precision 'float32' needs float32 current, state and output (or a uint8 "
                             f"spike map), got {bad[0] if bad else out.dtype}")
        return _lif_kernels.lif_run32_numba(*args, **fused)

    def filters_current(self, precision) -> bool:
        return precision == "float32"

    def spike_map_height(self, dt, precision):
        # the float32 scan spikes at most once per step: a spike map holds 0 or 1
        return _lif_kernels.spike_height32(self.amplitude, dt) if precision == "float32" else None

    def _nan_reaches_voltage(self, precision) -> bool:
        # the float32 step multiplies J into v even when fully refractory (by e = 0), and a NaN
        # voltage stays NaN; the float64 step leaves a refractory neuron's v untouched
        return precision == "float32"


# ---------------------------------------------------------------------------------------------
# argument checks for step / run
# ---------------------------------------------------------------------------------------------


def _check_shapes(name, J, *arrays):
    for a in arrays:
        if a.shape != J.shape:
            raise ValueError(f"{name}: J has shape {J.shape} but the output/state has {a.shape}")


def _check_run(name, J, out, voltage, syn_a, syn_state, scan_nan=True):
    J, _ = _current(name, J, scan_nan)
    if J.ndim != 2 or out.ndim != 2 or voltage.ndim != 1:
        raise ValueError(f"{name}: run needs J (TJ, M), out (T, M) and a state of shape (M,)")
    T, M = out.shape
    if J.shape[1] != M or J.shape[0] not in (1, T) or voltage.shape[0] != M:
        raise ValueError(f"{name}: J has shape {J.shape}, out {out.shape}, state {voltage.shape};"
                         f" J must be (1, M) or (T, M)")
    syn_a = _param(name, "syn_a", syn_a, low=0.0)
    if syn_a >= 1.0:
        raise ValueError(f"{name}: syn_a must be < 1, got {syn_a}")
    if syn_state is None:
        syn_state = np.zeros(M, dtype=voltage.dtype)
    return J, out, syn_a, syn_state
