"""ANN -> SNN conversion and hybrid fine-tuning: spikes forward, rate gradient backward (LEVEL 3).

The paper's method in three functions:

* :func:`convert` turns a trained rate network (a :class:`~minisnn.layers.Sequential` whose
  :class:`~minisnn.layers.Neurons` layers hold rate models) into a :class:`SpikingNet`: a deep
  copy whose neuron layers hold the spiking twins (SoftLIFRate / LIFRate -> LIF,
  RectifiedLinear -> SpikingRectifiedLinear), plus the simulation settings (synapse, steps,
  readout window, dt, seed) and, per neuron layer, the **gradient model**: the rate model whose
  derivative the backward pass uses (for a LIF converted from ``SoftLIFRate(sigma)`` it is that
  SoftLIFRate, not LIFRate).
* :func:`hybrid_loss` with ``method="mean"`` (the default, the paper's method):

  1. simulate the SNN on the batch (:func:`minisnn.simulate.simulate`, no graph) and keep every
     neuron layer's mean filtered output over the readout window;
  2. **replay** the network as a graph in which every neuron layer *outputs the measured mean*
     but *back-propagates* ``gain * r'(gain * x)`` of its gradient model at the replayed input
     ``x = W (measured mean of the layer below) + b`` (:class:`HybridNeuronsFn`);
  3. the loss is taken on the replay's output, which *is* the SNN readout (the layers after the
     last neuron layer are affine, so applying them to the mean is the mean of their output).

  The replay is an ANN-sized graph: peak memory is that of an ANN step, whatever ``T``.
* :func:`hybrid_loss` with ``method="per-step"`` is KerasSpiking's spiking-aware training: the
  network is unrolled over all ``T`` steps as a graph, every neuron layer spikes forward
  (one Nengo ``step`` per time step) and back-propagates its rate derivative at that step's
  current, and the gradient flows exactly through the linear Lowpass synapses and layers over
  time.  Memory grows with ``T``; it is the reference the mean method is checked against.  It
  runs layer-major (each layer once over all steps stacked on the batch axis:
  :class:`SpikingScanFn`): on the segmentation CAE at T = 30, batch 16,
  one forward + backward took 1.2-2.6 s against 4.7-5.0 s for the time-major reference
  (:class:`SpikingStepFn`, ``order="time"``), quiet machine.

A firing-rate regularizer (:class:`minisnn.train.RateRegularizer`) can be added to either method:
it sees the replayed neuron outputs (the measured SNN rates), which carry the rate gradient.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .autodiff import Function, Tensor, no_grad
from .kernels.elementwise import multiply
from .kernels.lowpass import lowpass_scan, lowpass_scan_grad
from .layers import Neurons, Sequential
from .neurons import NeuronType, resolve_precision
from .simulate import SimResult, initial_state, simulate
from .synapses import synapse_coefficient

__all__ = [
    "SpikingNet",
    "convert",
    "HybridNeuronsFn",
    "SpikingStepFn",
    "SpikingScanFn",
    "TimeWindowMeanFn",
    "measure",
    "replay",
    "per_step_forward",
    "hybrid_loss",
]


# ----------------------------------------------------------------------------- conversion


@dataclass
class SpikingNet:
    """A converted network: weights (a :class:`Sequential` with spiking neuron layers), the
    gradient model of each neuron layer and the simulation settings.

    Attributes
    ----------
    net : Sequential whose Neurons layers hold spiking models
    grad_models : {layer name: rate model (amplitude already divided by the layer's gain)}
        whose ``rate_grad`` the backward pass uses; names are layer indices as strings
    synapse : Lowpass time constant (s) on every spiking layer's output, or None
    steps, dt : presentation length and step (s)
    readout_steps : readout window (last steps); None = the second half, as :func:`simulate`
    seed : seeds the initial voltages
    precision : the LIF steps' arithmetic, "float64" (exact) or "float32" (NengoDL's, vectorised);
        None: the net's (float32 for float32 weights)
    """

    net: Sequential
    grad_models: dict
    synapse: float | None = 0.005
    steps: int = 100
    dt: float = 0.001
    readout_steps: int | None = None
    seed: int = 0
    time_chunk: int = 50
    batch_chunk: int | None = None
    precision: str | None = None
    extra: dict = field(default_factory=dict)

    # -- evaluation
    def run(self, x, steps: int | None = None, *, keep_layer_means: bool = False, seed: int | None = None,
            readout_steps: int | None = None, also_at=(), first_index: int = 0) -> SimResult:
        """Simulate on ``x (B, ...)`` (spikes, no graph); see :func:`minisnn.simulate.simulate`
        (``also_at``: shorter presentation lengths whose readouts the same run also returns;
        ``first_index``: where ``x`` starts in a set simulated batch by batch)."""
        steps = self.steps if steps is None else steps
        window = self.readout_steps if readout_steps is None else readout_steps
        if window is not None and steps is not None and window > steps:
            window = steps
        return simulate(
            self.net, x, steps, dt=self.dt, synapse=self.synapse, readout_steps=window,
            seed=self.seed if seed is None else seed, time_chunk=self.time_chunk,
            batch_chunk=self.batch_chunk, keep_layer_means=keep_layer_means, also_at=also_at,
            first_index=first_index, precision=self.precision,
        )

    def window(self, steps: int | None = None) -> int:
        """Readout window in steps: ``readout_steps`` (at most ``steps``), else ``ceil(steps / 2)``."""
        steps = self.steps if steps is None else steps
        w = (steps + 1) // 2 if self.readout_steps is None else min(self.readout_steps, steps)
        return int(w)

    # -- parameters and saving (same keys as the ANN's state_dict)
    def parameters(self):
        return self.net.parameters()

    def named_parameters(self):
        return self.net.named_parameters()

    def zero_grad(self):
        self.net.zero_grad()

    def state_dict(self):
        return self.net.state_dict()

    def load_state_dict(self, state, strict: bool = True):
        self.net.load_state_dict(state, strict=strict)

    @property
    def settings(self) -> dict:
        """The simulation settings and neuron models as plain data (for a results file)."""
        return {
            "synapse": self.synapse, "steps": self.steps, "dt": self.dt,
            "readout_steps": self.readout_steps, "seed": self.seed,
            "neurons": {name: repr(layer.model) for name, layer in self.neuron_layers()},
            "gain": {name: layer.gain for name, layer in self.neuron_layers()},
            "grad_models": {name: repr(m) for name, m in self.grad_models.items()},
        }

    def neuron_layers(self):
        """``[(layer name, Neurons layer), ...]`` in network order; names are indices as strings."""
        return [(str(i), layer) for i, layer in enumerate(self.net) if isinstance(layer, Neurons)]


def _lookup(mapping, index: int, model: NeuronType):
    """``neuron_map`` entry for a layer: by index (int or str), by model instance, or by class."""
    if not mapping:
        return None
    for key in (index, str(index)):
        if key in mapping:
            return mapping[key]
    for key, value in mapping.items():
        if isinstance(key, NeuronType) and key == model:
            return value
    for key, value in mapping.items():
        if isinstance(key, type) and isinstance(model, key):
            return value
    return None


def convert(
    ann: Sequential,
    synapse: float | None = 0.005,
    scale_firing_rates=None,
    neuron_map: dict | None = None,
    *,
    steps: int = 100,
    dt: float = 0.001,
    readout_steps: int | None = None,
    seed: int = 0,
    time_chunk: int = 50,
    batch_chunk: int | None = None,
    precision: str | None = None,
) -> SpikingNet:
    """Convert a rate network to a :class:`SpikingNet` (the ANN is left untouched).

    Parameters
    ----------
    ann : Sequential with at least one Neurons layer
    synapse : Lowpass tau (s) on every spiking layer's output (0.005 in the paper), or None
    scale_firing_rates : None, a float ``s`` for every neuron layer, or ``{layer index: s}``.
        It *multiplies* the layer's own ``scale_firing_rates`` (current times ``s``, amplitude
        divided by ``s``: NengoDL's convention); layers not in a dict keep theirs.
    neuron_map : overrides of the default swap (``model.spiking_twin()``), keyed by layer
        index, by a neuron model instance or by a neuron class; values are spiking models.
    steps, dt, readout_steps, seed, time_chunk, batch_chunk, precision : simulation settings
        (see :func:`minisnn.simulate.simulate`)

    The gradient model of each layer is the ANN layer's rate twin (e.g. the ``SoftLIFRate``
    it was trained with) with the amplitude of the chosen spiking model divided by the new gain.
    """
    if not isinstance(ann, Sequential):
        raise ValueError(f"convert: ann must be a Sequential, got {type(ann).__name__}")
    neuron_idx = [i for i, layer in enumerate(ann) if isinstance(layer, Neurons)]
    if not neuron_idx:
        raise ValueError("convert: the network has no Neurons layer")
    if isinstance(scale_firing_rates, dict):
        scales = {}
        for k, v in scale_firing_rates.items():
            i = int(k)
            if i not in neuron_idx:
                raise ValueError(f"convert: scale_firing_rates key {k!r} is not a Neurons layer "
                                 f"(neuron layers: {neuron_idx})")
            scales[i] = float(v)
    elif scale_firing_rates is None:
        scales = {}
    else:
        scales = {i: float(scale_firing_rates) for i in neuron_idx}
    for i, s in scales.items():
        if not np.isfinite(s) or s <= 0:
            raise ValueError(f"convert: scale_firing_rates for layer {i} must be > 0, got {s}")
    if synapse is not None:
        synapse_coefficient(synapse, dt, "convert")  # validates
    precision = resolve_precision(precision, next((p.dtype for p in ann.parameters()), np.float32))

    net = copy.deepcopy(ann)
    net.zero_grad()  # gradients are not part of the conversion
    grad_models = {}
    for i in neuron_idx:
        layer = net[i]
        s = layer.scale_firing_rates * scales.get(i, 1.0)
        spk = _lookup(neuron_map, i, layer.model)
        if spk is None:
            spk = layer.model.spiking_twin()
        if not isinstance(spk, NeuronType) or not spk.spiking:
            raise ValueError(f"convert: layer {i} maps to {spk!r}, which is not a spiking neuron model")
        rate = layer.model.rate_twin()
        grad_models[str(i)] = rate.with_amplitude(spk.amplitude / s)
        setattr(net, str(i), Neurons(spk, s))
    net.train(ann.training)
    return SpikingNet(net=net, grad_models=grad_models, synapse=synapse, steps=steps, dt=dt,
                      readout_steps=readout_steps, seed=seed, time_chunk=time_chunk,
                      batch_chunk=batch_chunk, precision=precision)


# ----------------------------------------------------------------------------- autodiff nodes


class HybridNeuronsFn(Function):
    """Outputs the *measured* mean of a spiking layer; back-propagates the rate derivative.

    ``forward(x, measured, model, gain) = measured`` (a constant: the SNN's value) and
    ``backward(dout) = dout * gain * model.rate_grad(gain * x)``, ``x`` being the layer's input
    in the replay.  With ``measured = model.rate(gain * x)`` this is exactly
    :class:`~minisnn.layers.NeuronsFn` (the ANN).
    """

    def forward(self, x, measured, model, gain):
        measured = np.asarray(measured)
        if measured.shape != x.shape:
            raise ValueError(f"HybridNeuronsFn: measured has shape {measured.shape}, the input {x.shape}")
        self.model, self.gain = model, gain
        self.J = x * gain if gain != 1 else x
        return measured.astype(x.dtype, copy=False)

    def backward(self, dout):
        return dout * (self.gain * self.model.rate_grad(self.J))

    def release(self):
        super().release()
        self.J = None


class SpikingStepFn(Function):
    """One time step of a neuron layer: ``model.step`` forward (spikes, state updated in place),
    ``gain * grad_model.rate_grad(gain * x)`` backward (KerasSpiking's spiking-aware training).

    A rate ``model`` works too (its step outputs ``rate(J)``).
    """

    def forward(self, x, model, grad_model, gain, dt, state):
        self.grad_model, self.gain = grad_model, gain
        self.J = x * gain if gain != 1 else x
        out = np.empty(x.size, dtype=x.dtype)
        model.step(dt, self.J.reshape(-1), out, **state)
        return out.reshape(x.shape)

    def backward(self, dout):
        return dout * (self.gain * self.grad_model.rate_grad(self.J))

    def release(self):
        super().release()
        self.J = None


# ----------------------------------------------------------------------------- the mean-rate method


def measure(snet: SpikingNet, x, *, spiking: bool = True, steps: int | None = None, seed: int | None = None,
            first_index: int = 0):
    """The measured quantities a replay needs: ``(readout, {layer name: mean output}, sim)``.

    ``spiking=True`` simulates the SNN (``sim`` is the :class:`SimResult`; ``first_index``:
    where ``x`` starts in a larger batch, see :func:`minisnn.simulate.simulate`);
    ``spiking=False`` runs the gradient (rate) models instead, no time, no synapse
    (``sim`` is None): the replay then equals the ANN exactly.
    """
    if spiking:
        sim = snet.run(x, steps, keep_layer_means=True, seed=seed, first_index=first_index)
        return sim.readout, sim.layer_means, sim
    means = {}
    dtype = next((p.dtype for p in snet.parameters()), np.asarray(x).dtype)
    with no_grad():
        cur = Tensor(np.asarray(x, dtype=dtype))
        for i, layer in enumerate(snet.net):
            if isinstance(layer, Neurons):
                name = str(i)
                J = cur.data * layer.gain if layer.gain != 1 else cur.data
                cur = Tensor(snet.grad_models[name].rate(J))
                means[name] = cur.data
            else:
                cur = layer(cur)
    return cur.data, means, None


def replay(snet: SpikingNet, x, means: dict):
    """The replay graph: ``(output Tensor, {layer name: neuron-layer output Tensor})``.

    Every neuron layer outputs ``means[name]`` and back-propagates its gradient model's
    derivative at the replayed input (:class:`HybridNeuronsFn`).
    """
    acts = {}
    dtype = next((p.dtype for p in snet.parameters()), np.asarray(x).dtype)
    cur = Tensor(np.asarray(x, dtype=dtype))
    for i, layer in enumerate(snet.net):
        if isinstance(layer, Neurons):
            name = str(i)
            cur = HybridNeuronsFn.apply(cur, measured=means[name], model=snet.grad_models[name], gain=layer.gain)
            acts[name] = cur
        else:
            cur = layer(cur)
    return cur, acts


# ----------------------------------------------------------------------------- the per-step method


class SpikingScanFn(Function):
    """A neuron layer and its Lowpass synapse stepped through all ``steps`` time steps in one
    node (layer-major).

    ``x`` holds the input current of every step stacked on the batch axis, ``(steps*B, ...)``
    with step ``t`` in rows ``t*B .. (t+1)*B``; with ``static=True`` it is one ``(B, ...)``
    current held for every step (a layer fed by the static input image).  Forward runs a
    spiking model's scan (``model.run``, in ``precision``; a rate model's ``step`` once per
    step) on the layer's ``state`` (updated in place), then the synapse over the outputs, in
    place: ``y_t = a y_(t-1) + (1 - a) u_t`` from ``y_(-1) = 0`` (``syn_a = a``; 0: none), and
    returns ``y (steps*B, ...)``.  The spikes are never kept: the synapse's backward does not
    need them.

    Backward is the synapse run backwards in time, ``g_t = dy_t + a g_(t+1)``,
    ``du_t = (1 - a) g_t``, then :class:`SpikingStepFn`'s at every step,
    ``gain * grad_model.rate_grad(gain * x_t) * du_t``, summed over the steps when ``static``
    (otherwise the scan multiplies each ``du_t`` by the derivative as it writes it, into the
    derivative's array: no ``steps x n`` array in between).
    The derivative is taken in ``precision`` too: with "float32" a SoftLIF derivative is
    computed in float32 arithmetic, as NengoDL trains (this node evaluates it at ``steps``
    currents per neuron, where the mean-rate replay evaluates it once).
    """

    def forward(self, x, model, grad_model, gain, dt, state, steps, static, precision="float64", syn_a=0.0):
        self.grad_model, self.gain, self.steps, self.static, self.syn_a = grad_model, gain, steps, static, syn_a
        self.precision = precision
        self.J = J = x * gain if gain != 1 else x
        B = J.shape[0] if static else J.shape[0] // steps
        n = B * int(np.prod(J.shape[1:]))
        J2 = np.ascontiguousarray(J).reshape(1 if static else steps, n)
        out = np.empty((steps, n), dtype=x.dtype)
        if model.spiking:  # the simulator's scan: the same spikes as `steps` calls of model.step
            model.run(dt, J2, out, state, precision=precision)
        else:
            for t in range(steps):
                model.step(dt, J2[0 if static else t], out[t], **state)
        if syn_a != 0.0:
            lowpass_scan(out, syn_a, out)  # in place: step t reads u_t before it writes y_t
        return out.reshape((steps * B,) + J.shape[1:])

    def backward(self, dout):
        g = self.grad_model.rate_grad(self.J, self.precision)  # new (the products below go into it)
        if self.gain != 1:
            g *= self.gain  # a Python float: rounded to g's dtype, as in gain * g
        if self.syn_a != 0.0:
            d2 = dout.reshape(self.steps, -1)
            if not self.static and g.dtype == dout.dtype:
                # the synapse's adjoint times the derivative, in one pass, into g
                g2 = g.reshape(self.steps, -1)
                return lowpass_scan_grad(d2, self.syn_a, g2, scale=g2).reshape(g.shape)
            dout = lowpass_scan_grad(d2, self.syn_a, np.empty_like(d2)).reshape(dout.shape)
        if self.static:  # the same derivative at every step: sum the upstream over time first
            dout = dout.reshape((self.steps,) + g.shape).sum(axis=0)
        return multiply(dout, g, out=g if dout.dtype == g.dtype else None)  # on all threads

    def release(self):
        super().release()
        self.J = None


class TimeWindowMeanFn(Function):
    """Mean over the last ``window`` of ``steps`` time steps: ``(steps*B, ...) -> (B, ...)``."""

    def forward(self, y, steps, window):
        self.shape, self.steps, self.window = y.shape, steps, window
        y3 = y.reshape((steps, -1) + y.shape[1:])
        return y3[steps - window :].sum(axis=0) / float(window)

    def backward(self, dout):
        dy = np.zeros((self.steps,) + dout.shape, dtype=dout.dtype)
        dy[self.steps - self.window :] = dout / float(self.window)
        return dy.reshape(self.shape)


def per_step_forward(snet: SpikingNet, x, *, steps: int | None = None, seed: int | None = None,
                     spiking: bool = True, order: str = "layer", first_index: int = 0):
    """Unrolled-in-time graph: ``(readout Tensor, {layer name: mean output Tensor over the window})``.

    Every neuron layer takes one step per time step (spikes of its spiking model forward,
    initial states drawn exactly as :func:`~minisnn.simulate.simulate` does, so the spikes are
    the simulator's; its rate derivative backward), its output passes through the Lowpass
    ``y = a y_prev + (1 - a) u``, and the readout is the mean network output over the readout
    window.  ``spiking=False`` steps the gradient (rate) models instead.  Memory grows with
    ``steps``.  ``first_index``: where ``x`` starts in a larger batch (input ``i`` draws its
    initial state as input ``first_index + i``, as in :func:`~minisnn.simulate.simulate`).

    ``order="layer"`` (the fast path) runs each layer once over all steps: the steps are stacked
    on the batch axis, so a weight layer is one large matrix product instead of ``steps`` small
    ones, the first layer sees the static input once, and the neurons and the synapse are scans
    over time (:class:`SpikingScanFn`).  ``order="time"`` is the obvious
    reference: every step the input runs through the whole network (:class:`SpikingStepFn`).
    The two compute the same sums in other orders (tested to agree).
    """
    if order not in ("layer", "time"):
        raise ValueError(f"per_step_forward: order must be 'layer' or 'time', got {order!r}")
    steps = snet.steps if steps is None else int(steps)
    seed = snet.seed if seed is None else seed
    window = snet.window(steps)
    a = synapse_coefficient(snet.synapse, snet.dt)
    dtype = next((p.dtype for p in snet.parameters()), np.asarray(x).dtype)
    x = np.asarray(x, dtype=dtype)
    if order == "time":
        return _per_step_time_major(snet, x, steps, seed, spiking, window, a, dtype, first_index)
    B = x.shape[0]
    samples = range(first_index, first_index + B)
    cur, static, k, acts = Tensor(x), True, 0, {}
    for i, layer in enumerate(snet.net):
        if not isinstance(layer, Neurons):
            cur = layer(cur)  # (B, ...) while static, else (steps*B, ...): one product for all steps
            continue
        name = str(i)
        model = layer.spiking_model if spiking else snet.grad_models[name]
        state = initial_state(model, k, int(np.prod(cur.shape[1:])), samples, seed, dtype)
        k += 1
        cur = SpikingScanFn.apply(cur, model=model, grad_model=snet.grad_models[name], gain=layer.gain,
                                  dt=snet.dt, state=state, steps=steps, static=static,
                                  precision=resolve_precision(snet.precision, dtype), syn_a=a)
        static = False
        acts[name] = TimeWindowMeanFn.apply(cur, steps=steps, window=window)
    readout = cur if static else TimeWindowMeanFn.apply(cur, steps=steps, window=window)
    return readout, acts


def _per_step_time_major(snet, x, steps, seed, spiking, window, a, dtype, first_index=0):
    """:func:`per_step_forward` with ``order="time"``: the reference, one step at a time."""
    B = x.shape[0]
    samples = range(first_index, first_index + B)
    layers = list(snet.net)
    states, syn = {}, {}
    outs, act_sums = [], {}
    for t in range(steps):
        cur = Tensor(x)
        k = 0
        for i, layer in enumerate(layers):
            if not isinstance(layer, Neurons):
                cur = layer(cur)
                continue
            name = str(i)
            model = layer.spiking_model if spiking else snet.grad_models[name]
            if name not in states:
                n = int(np.prod(cur.shape[1:]))
                states[name] = initial_state(model, k, n, samples, seed, dtype)
            k += 1
            u = SpikingStepFn.apply(cur, model=model, grad_model=snet.grad_models[name], gain=layer.gain,
                                    dt=snet.dt, state=states[name])
            if a == 0.0:
                y = u
            elif name not in syn:
                y = (1.0 - a) * u
            else:
                y = a * syn[name] + (1.0 - a) * u
            syn[name] = y
            cur = y
            if t >= steps - window:
                act_sums[name] = y if name not in act_sums else act_sums[name] + y
        if t >= steps - window:
            outs.append(cur)
    readout = outs[0]
    for o in outs[1:]:
        readout = readout + o
    readout = readout / float(window)
    acts = {name: s / float(window) for name, s in act_sums.items()}
    return readout, acts


# ----------------------------------------------------------------------------- the hybrid loss


def hybrid_loss(snet: SpikingNet, x, y, loss_fn, *, method: str = "mean", regularizer=None,
                steps: int | None = None, seed: int | None = None, spiking: bool = True, first_index: int = 0):
    """Build the graph of one hybrid step; returns ``(loss Tensor, info dict)``.

    Call ``loss.backward()`` and an optimizer step on ``snet.parameters()`` afterwards
    (:func:`minisnn.train.fit` does).

    Parameters
    ----------
    snet : SpikingNet
    x, y : a batch of inputs and targets
    loss_fn : ``loss_fn(prediction Tensor, y) -> scalar Tensor`` on the SNN readout
    method : ``"mean"`` (mean-rate replay, memory of an ANN step) or ``"per-step"`` (unrolled)
    regularizer : optional ``regularizer(net, {layer name: output Tensor}) -> Tensor`` (e.g.
        :class:`minisnn.train.RateRegularizer`), applied to the measured SNN outputs
    steps, seed : override the SpikingNet's settings for this batch
    spiking : False runs the gradient (rate) models forward instead of spikes (a check: the
        mean method then reproduces the ANN gradient exactly)
    first_index : where ``x`` starts in a larger batch: input ``i`` draws its initial state as
        input ``first_index + i`` does (a process's share of a global batch then spikes as it
        would in one process)

    ``info``: ``task_loss``, ``reg_loss`` (floats), ``readout`` (array), ``sim`` (SimResult,
    mean method with spikes only).
    """
    sim = None
    if method == "mean":
        readout, means, sim = measure(snet, x, spiking=spiking, steps=steps, seed=seed, first_index=first_index)
        out, acts = replay(snet, x, means)
    elif method in ("per-step", "per_step"):
        out, acts = per_step_forward(snet, x, steps=steps, seed=seed, spiking=spiking, first_index=first_index)
    else:
        raise ValueError(f"hybrid_loss: method must be 'mean' or 'per-step', got {method!r}")
    task = loss_fn(out, y)
    loss = task
    reg_value = 0.0
    if regularizer is not None:
        reg = regularizer(snet.net, acts)
        reg_value = float(reg.item())
        loss = loss + reg
    info = {"task_loss": float(task.item()), "reg_loss": reg_value, "readout": out.data, "sim": sim}
    return loss, info
