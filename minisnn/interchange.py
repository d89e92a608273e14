"""NIR export and import: spiking nets to and from the Neuromorphic Intermediate Representation
(LEVEL 3, beside :mod:`minisnn.io`).

NIR (the ``nir`` package, 1.0.x; ``pip install 'minisnn[nir]'``) is the graph format snnTorch,
Norse, sinabs, Rockpool, SpikingJelly, Lava-DL and Nengo exchange, saved as HDF5 by
``nir.write`` / ``nir.read``.  :func:`to_nir` writes a :class:`~minisnn.hybrid.SpikingNet` (or
a :class:`~minisnn.layers.Sequential` of spiking or rate neuron layers) as a NIR graph;
:func:`from_nir` reads a NIR graph (or file) into a SpikingNet that
:func:`minisnn.simulate.simulate` and ``SpikingNet.run`` run.  ``nir`` is imported by these
two functions only, so ``import minisnn`` never imports it.

**Units**: every time constant is in **seconds** (minisnn's unit and the one NIR's own
examples pass; NIR's tables say milliseconds).  The graph's metadata says so
(``time_unit = "s"``) and carries the simulation step ``dt``.

**What maps** (export; import is the inverse)::

    minisnn                                  NIR
    Conv2d(w, b, stride, padding)            Conv2d(weight=w, bias=b, dilation 1, groups 1)
    Dense(w, b) / Dense(w, no bias)          Affine(w, b) / Linear(w)
    AvgPool2d(k, s)                          AvgPool2d(k, s, padding 0)
    Flatten                                  Flatten(start_dim 0, end_dim -1) of the unbatched shape
    Neurons(LIF(tau_rc), gain s)             LIF(tau=tau_rc, r=s, v_leak=0, v_threshold=1, v_reset=0)
    Neurons(IntegrateAndFire, gain s)        IF(r=s, v_threshold=1, v_reset=0)
    Lowpass(tau) after a spiking layer       LI(tau=tau, r=amplitude, v_leak=0)
    (no synapse)                             Scale(amplitude) after the spiking node (if != 1)
    the input shape (C, H, W)                Input(shape); the net's output shape: Output

The gain ``s`` (``scale_firing_rates``) is the LIF's ``r`` (``J = s x``); the output amplitude
``A`` of a spiking layer (a spike is an impulse of area ``A``) is the ``r`` of the LI that
follows it: ``tau dy/dt = -y + A z(t)`` with ``z`` the unit spike train.  The weights are
written as they are, so an export read back holds the same numbers.

**Discrete and continuous models.**  NIR's LIF is continuous: ``tau dv/dt = (v_leak - v) + r I``,
a spike when ``v > v_threshold``, then ``v = v_reset``.  minisnn (Nengo's ``LIF.step``) advances
it by ``dt`` with ``I`` held constant over the step, exactly (zero-order hold)::

    v[n] = J + (v[n-1] - J) * exp(-dt / tau),   J = r I[n] / v_threshold   (v_leak = 0)

then compares ``v[n] > 1`` at the end of the step: a spike is emitted in that step (an impulse
of area ``A``: ``A / dt`` for one step) and ``v[n] = 0``.  With ``tau_ref = 0`` that is the
whole model: Nengo interpolates the crossing time inside the step only to start a refractory
period.  The LI is advanced the same way, ``y[n] = a y[n-1] + (1 - a) A z[n] / dt`` with
``a = exp(-dt / tau)``: exact for a spike spread evenly over its step.  The IF is
``v[n] = v[n-1] + J dt`` with the same check and reset (:class:`~minisnn.neurons.IntegrateAndFire`).
So the discrete net is NIR's continuous one sampled at ``dt``, with inputs held over each step
and spikes detected (and reset) at the end of each step; as ``dt -> 0`` it converges to it.

**What NIR cannot hold** is refused with one line naming the layer, unless the caller drops
it on purpose (keywords of :func:`to_nir`):

* a LIF refractory period ``tau_ref > 0`` (NIR's LIF has none): ``drop_refractory=True``
  exports the LIF without it;
* the LIF's voltage floor ``min_voltage`` (minisnn and Nengo clip the voltage at 0 from below;
  NIR's LIF is unbounded): ``drop_voltage_floor=True`` exports it without the floor.  The
  floor changes the spikes wherever a neuron's current goes negative (see the README for what
  it cost on LocNet);
* :class:`~minisnn.neurons.SpikingRectifiedLinear` (Nengo's: it ignores negative currents,
  resets by subtracting the threshold and may fire several times per step; NIR's IF
  integrates negative currents and resets to 0): ``drop_subtractive_reset=True`` exports it
  as an IF;
* a ConvTranspose2d (NIR has no transposed convolution) and any other layer: always refused.

**Import**: a chain ``Input -> ... -> Output`` of Affine, Linear, Conv2d, Flatten, AvgPool2d,
SumPool2d (an AvgPool2d times ``k_h k_w``), Scale, LIF, IF, LI (right after a spiking node, as
its synapse) and CubaLIF (see :func:`from_nir`).  The LIF is run with ``tau_ref = 0`` and no
voltage floor (:data:`NO_FLOOR`), the IF as :class:`~minisnn.neurons.IntegrateAndFire`, both as
above.  The initial voltages are minisnn's (Uniform(0, 1), seeded as :func:`simulate` does;
NIR leaves them open).  Anything else (Delay, Threshold, I, CubaLI, Conv1d, nested graphs,
branches, cycles, a primitive minisnn does not know) is refused with a line naming the node.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from .hybrid import SpikingNet
from .layers import AvgPool2d, Conv2d, ConvTranspose2d, Dense, Flatten, Neurons, Sequential
from .neurons import LIF, IntegrateAndFire, SpikingRectifiedLinear
from .simulate import _layer_shapes

__all__ = ["NIRError", "NO_FLOOR", "to_nir", "from_nir", "write_nir", "read_nir"]

#: ``min_voltage`` of an imported LIF: the most negative float, i.e. no floor (NIR's LIF).
NO_FLOOR = -sys.float_info.max

#: The NIR primitives :func:`from_nir` runs.
IMPORTABLE = ("Input", "Output", "Affine", "Linear", "Conv2d", "Flatten", "AvgPool2d", "SumPool2d", "Scale",
              "LIF", "IF", "LI", "CubaLIF")


class NIRError(ValueError):
    """A net NIR cannot hold, or a NIR graph minisnn cannot run (a one-line message)."""


def _nir():
    try:
        import nir
    except ImportError:
        raise ImportError("NIR export and import need the nir package: pip install 'minisnn[nir]'") from None
    return nir


# ----------------------------------------------------------------------------- export


def to_nir(model, input_shape, *, synapse="net", drop_refractory: bool = False, drop_voltage_floor: bool = False,
           drop_subtractive_reset: bool = False, metadata: dict | None = None):
    """A :class:`nir.NIRGraph` of a spiking net (see the module docstring for the mapping).

    Parameters
    ----------
    model : SpikingNet, or a Sequential whose Neurons layers hold spiking or rate models
        (a rate layer is written as its spiking twin, as :func:`~minisnn.hybrid.convert` would run it)
    input_shape : the shape of one input, without the batch axis (e.g. ``(3, 48, 72)``)
    synapse : Lowpass tau in seconds on every spiking layer's output, or None; ``"net"`` (the
        default) takes the SpikingNet's (a Sequential then has none)
    drop_refractory : export LIF layers with ``tau_ref > 0`` without their refractory period
    drop_voltage_floor : export LIF layers without their voltage floor ``min_voltage``
    drop_subtractive_reset : export SpikingRectifiedLinear layers as NIR IF (reset to zero)
    metadata : extra entries for the graph's metadata

    Raises :class:`NIRError` (one line naming the layer) for what NIR cannot hold.
    """
    nir = _nir()
    if isinstance(model, SpikingNet):
        net, dt, settings = model.net, model.dt, {"steps": model.steps, "seed": model.seed}
        syn = model.synapse if synapse == "net" else synapse
    elif isinstance(model, Sequential):
        net, dt, settings = model, None, {}
        syn = None if synapse == "net" else synapse
    else:
        raise NIRError(f"to_nir: expected a SpikingNet or a Sequential, got {type(model).__name__}")
    syn = _synapse_tau(syn)
    layers = list(net)
    for i, layer in enumerate(layers):  # what can never be exported, before anything else
        if isinstance(layer, ConvTranspose2d):
            raise NIRError(f"layer {i} (ConvTranspose2d) has no NIR primitive: NIR has no transposed convolution")
        if not isinstance(layer, (Conv2d, Dense, AvgPool2d, Flatten, Neurons)):
            raise NIRError(f"layer {i} ({type(layer).__name__}) has no NIR primitive")
    try:
        input_shape = tuple(int(n) for n in input_shape)
        shapes = _layer_shapes(net, input_shape)
    except (TypeError, ValueError) as e:
        raise NIRError(f"to_nir: input_shape {input_shape!r} does not fit the net: {e}") from None

    nodes = {"input": nir.Input(input_type=np.array(input_shape))}
    order = ["input"]

    def add(name, node):
        nodes[name] = node
        order.append(name)

    for i, (layer, (in_shape, out_shape)) in enumerate(zip(layers, shapes)):
        if isinstance(layer, Conv2d):
            w = layer.w.data
            b = layer.b.data if layer.b is not None else np.zeros(w.shape[0], w.dtype)
            add(f"{i}_conv2d", nir.Conv2d(input_shape=tuple(in_shape[1:]), weight=w.copy(), stride=_pair(layer.stride),
                                          padding=_pair(layer.padding), dilation=(1, 1), groups=1, bias=b.copy()))
        elif isinstance(layer, Dense):
            if layer.b is None:
                add(f"{i}_linear", nir.Linear(weight=layer.w.data.copy()))
            else:
                add(f"{i}_affine", nir.Affine(weight=layer.w.data.copy(), bias=layer.b.data.copy()))
        elif isinstance(layer, AvgPool2d):
            k = _pair(layer.kernel_size)
            s = k if layer.stride is None else _pair(layer.stride)
            add(f"{i}_avgpool2d", nir.AvgPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array([0, 0])))
        elif isinstance(layer, Flatten):
            add(f"{i}_flatten", nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1))
        else:
            for name, node in _neuron_nodes(nir, i, layer, tuple(out_shape), syn, drop_refractory, drop_voltage_floor,
                                            drop_subtractive_reset):
                add(name, node)
    nodes["output"] = nir.Output(output_type=np.array(shapes[-1][1]))
    order.append("output")
    meta = {"producer": "minisnn", "time_unit": "s", "synapse_s": -1.0 if syn is None else syn}
    if dt is not None:
        meta["dt"] = float(dt)
    meta.update({k: v for k, v in settings.items()})
    meta.update(metadata or {})
    edges = list(zip(order[:-1], order[1:]))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def _synapse_tau(syn):
    if syn is None:
        return None
    tau = getattr(syn, "tau", syn)
    try:
        tau = float(tau)
    except (TypeError, ValueError):
        raise NIRError(f"to_nir: synapse must be None, a time constant (s) or a Lowpass, got {syn!r}") from None
    if not math.isfinite(tau) or tau < 0:
        raise NIRError(f"to_nir: synapse must be a time constant >= 0 (s), got {syn!r}")
    return tau or None  # tau = 0 is a passthrough: no LI


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(a) for a in v)


def _neuron_nodes(nir, i, layer: Neurons, shape, syn, drop_refractory, drop_voltage_floor, drop_subtractive_reset):
    """The NIR nodes of one neuron layer: the spiking node, then its synapse (LI) or its
    amplitude (Scale, when there is no synapse and the amplitude is not 1)."""
    model, gain = layer.spiking_model, float(layer.gain)
    full = lambda value: np.full(shape, float(value))  # noqa: E731
    if isinstance(model, LIF):
        if model.tau_ref > 0 and not drop_refractory:
            raise NIRError(f"layer {i} (LIF) has a refractory period tau_ref = {model.tau_ref:g} s, which NIR's LIF "
                           f"cannot hold (export with --drop-refractory / drop_refractory=True, or train with "
                           f"tau_ref 0)")
        if model.min_voltage > NO_FLOOR and not drop_voltage_floor:
            raise NIRError(f"layer {i} (LIF) floors its voltage at min_voltage = {model.min_voltage:g}, which NIR's "
                           f"LIF cannot hold (export with --drop-voltage-floor / drop_voltage_floor=True)")
        spiking = nir.LIF(tau=full(model.tau_rc), r=full(gain), v_leak=full(0.0), v_threshold=full(1.0),
                          v_reset=full(0.0))
        kind = "lif"
    elif isinstance(model, IntegrateAndFire):
        spiking, kind = nir.IF(r=full(gain), v_threshold=full(1.0), v_reset=full(0.0)), "if"
    elif isinstance(model, SpikingRectifiedLinear):
        if not drop_subtractive_reset:
            raise NIRError(f"layer {i} (SpikingRectifiedLinear) ignores negative currents and resets by subtraction, "
                           f"which NIR's IF cannot hold (export with drop_subtractive_reset=True)")
        spiking, kind = nir.IF(r=full(gain), v_threshold=full(1.0), v_reset=full(0.0)), "if"
    else:
        raise NIRError(f"layer {i} ({type(model).__name__}) has no NIR neuron primitive")
    nodes = [(f"{i}_{kind}", spiking)]
    amplitude = float(model.amplitude)
    if syn is not None:
        nodes.append((f"{i}_synapse", nir.LI(tau=full(syn), r=full(amplitude), v_leak=full(0.0))))
    elif amplitude != 1.0:
        nodes.append((f"{i}_amplitude", nir.Scale(scale=full(amplitude))))
    return nodes


def write_nir(graph, path) -> None:
    """Write a NIR graph to ``path`` (HDF5) atomically: a temporary file in the same folder,
    then renamed over ``path``, so a reader never sees half a file."""
    import os
    import tempfile

    nir = _nir()
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.",
                               suffix=".tmp")
    os.close(fd)
    try:
        nir.write(tmp, graph)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    from .io import _umask as umask

    return umask()


def read_nir(path):
    """``nir.read(path)`` with a one-line :class:`NIRError` naming the file when it is not one."""
    nir = _nir()
    path = Path(path)
    if not path.is_file():
        raise NIRError(f"{path}: no such file")
    try:
        return nir.read(str(path))
    except Exception as e:  # h5py and nir raise many types for a bad file
        first = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
        raise NIRError(f"{path}: not a NIR graph file ({first})") from None


# ----------------------------------------------------------------------------- import


def from_nir(graph, *, dt: float | None = None, steps: int = 100, seed: int = 0,
             readout_steps: int | None = None) -> SpikingNet:
    """A :class:`~minisnn.hybrid.SpikingNet` that runs a NIR graph (or a NIR file's).

    Parameters
    ----------
    graph : nir.NIRGraph, or the path of a file ``nir.write`` wrote
    dt : simulation step in seconds (default: the graph's ``dt`` metadata, else 0.001)
    steps, seed, readout_steps : the SpikingNet's simulation settings

    The graph must be one chain from its Input to its Output.  Per node:

    * Affine / Linear -> Dense; Conv2d (groups 1, dilation 1, integer or ``"same"`` /
      ``"valid"`` padding) -> Conv2d; Flatten (of everything after the batch axis) -> Flatten;
      AvgPool2d (padding 0) -> AvgPool2d; SumPool2d -> AvgPool2d times ``k_h k_w``;
    * Scale (one value for all elements) multiplies the node before it: a spiking layer's
      amplitude or a weight layer's weight and bias;
    * LIF (one tau, r and threshold per node; v_leak = v_reset = 0) ->
      ``Neurons(LIF(tau, tau_ref=0, min_voltage=NO_FLOOR), gain=r / v_threshold)``;
      IF (v_reset = 0) -> ``Neurons(IntegrateAndFire, gain=r / v_threshold)``;
    * LI right after a spiking node (v_leak = 0) is its synapse: its ``tau`` is the net's
      Lowpass (one value for every spiking node) and its ``r`` the spike amplitude;
    * CubaLIF ``(tau_syn, tau_mem, r, w_in)`` filters its input current, which minisnn does on
      the spikes of the layer below instead: it is run when that is the same thing - it is
      not the first spiking node, the spiking node before it has no LI, only bias-free weight
      layers lie between, and its ``tau_syn`` is the net's synapse.  The current is then held
      at its end-of-step value over each step, as everywhere here.

    Raises :class:`NIRError` (one line naming the node) for anything else.
    """
    nir = _nir()
    meta = {}
    if isinstance(graph, (str, Path)):
        graph = read_nir(graph)
    if not isinstance(graph, nir.NIRGraph):
        raise NIRError(f"from_nir: expected a nir.NIRGraph or a file path, got {type(graph).__name__}")
    meta = dict(graph.metadata or {}) if isinstance(graph.metadata, dict) else {}
    if dt is None:
        dt = float(meta["dt"]) if "dt" in meta else 0.001
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise NIRError(f"from_nir: dt must be a time step > 0 in seconds, got {dt!r}")
    chain = _chain(nir, graph)
    builder = _Builder(nir)
    for name in chain:
        builder.add(name, graph.nodes[name])
    return builder.finish(dt=float(dt), steps=steps, seed=seed, readout_steps=readout_steps, meta=meta)


def _chain(nir, graph) -> list:
    """The node names from the Input to the Output, checking that the graph is one chain."""
    nodes, edges = graph.nodes, list(graph.edges)
    if not isinstance(nodes, dict) or not nodes:
        raise NIRError("NIR graph has no nodes")
    succ, pred = {}, {}
    for edge in edges:
        if len(edge) != 2:
            raise NIRError(f"NIR graph: edge {edge!r} is not a (source, target) pair")
        a, b = (str(v) for v in edge)
        for end in (a, b):
            if end not in nodes:
                raise NIRError(f"NIR graph: edge ({a!r}, {b!r}) names node {end!r}, which the graph does not have")
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    remaining = {k: len(pred.get(k, [])) for k in nodes}  # Kahn's algorithm: what never frees is on a cycle
    ready = [k for k, n in remaining.items() if n == 0]
    while ready:
        for b in succ.get(ready.pop(), []):
            remaining[b] -= 1
            if remaining[b] == 0:
                ready.append(b)
    cyclic = [k for k, n in remaining.items() if n > 0 and _reaches(succ, k, k)]
    if cyclic:
        raise NIRError(f"NIR graph has a cycle (recurrence) through node(s) {', '.join(map(repr, cyclic))}; minisnn "
                       f"runs feed-forward chains")
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRError(f"NIR graph has {len(inputs)} Input and {len(outputs)} Output nodes; minisnn runs graphs "
                       f"with exactly one of each")
    for k in nodes:
        if len(succ.get(k, [])) > 1:
            raise NIRError(f"NIR graph: node {k!r} feeds {len(succ[k])} nodes ({', '.join(succ[k])}); minisnn runs "
                           f"one chain from Input to Output, without branches")
        if len(pred.get(k, [])) > 1:
            raise NIRError(f"NIR graph: node {k!r} has {len(pred[k])} inputs ({', '.join(pred[k])}); minisnn runs "
                           f"one chain from Input to Output, without merges")
    chain, seen, cur = [], set(), inputs[0]
    while True:
        seen.add(cur)
        chain.append(cur)
        if cur == outputs[0]:
            break
        if not succ.get(cur):
            raise NIRError(f"NIR graph: node {cur!r} has no outgoing edge, so the Input never reaches the Output "
                           f"{outputs[0]!r} (missing edge?)")
        cur = succ[cur][0]
    loose = [k for k in nodes if k not in seen]
    if loose:
        raise NIRError(f"NIR graph: node(s) {', '.join(map(repr, loose))} are not on the path from Input to Output "
                       f"(missing edge?)")
    return chain


def _reaches(succ, start, goal) -> bool:
    """Whether ``goal`` can be reached from ``start`` in one or more edges."""
    stack, seen = list(succ.get(start, [])), set()
    while stack:
        k = stack.pop()
        if k == goal:
            return True
        if k not in seen:
            seen.add(k)
            stack.extend(succ.get(k, []))
    return False


def _uniform(name, kind, field, value) -> float:
    """The one value of a per-neuron parameter array (NIRError if they differ or are not finite)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.size == 0:
        raise NIRError(f"node {name!r} ({kind}): {field} is empty")
    v = float(arr.reshape(-1)[0])
    if not np.all(np.isfinite(arr)):
        raise NIRError(f"node {name!r} ({kind}): {field} must be finite")
    if not np.all(arr == v):
        raise NIRError(f"node {name!r} ({kind}): {field} differs between neurons; minisnn holds one value per layer")
    return v


class _Builder:
    """Walks the chain, building the layers of the Sequential; each spiking node's synapse is
    what follows it (an LI, or the synaptic filter of a CubaLIF after the weights), checked to
    be one Lowpass for all at the end."""

    def __init__(self, nir):
        self.nir = nir
        self.layers = []         # minisnn layers in order
        self.shape = None        # the signal's shape (no batch axis) after the last node
        self.spiking = []        # [(node name, layer index)] of the spiking layers
        self.synapse = {}        # spiking node name -> tau (s) of the filter on its output, or None
        self.last = None         # ("spiking", index) or ("weight", index): what a Scale multiplies
        self.amplitude = {}      # spiking layer index -> output amplitude
        self.after_spike = None  # the spiking node whose LI may come next
        self.bias_since_spike = False
        self.rng = np.random.default_rng(0)  # the layers' initial weights, overwritten at once
        self.dtype = np.float32

    # -- helpers
    def _set_dtype(self, *arrays):
        if any(np.asarray(a).dtype == np.float64 for a in arrays):
            self.dtype = np.float64

    def _require_shape(self, name, kind, ndim):
        if self.shape is None or len(self.shape) != ndim:
            raise NIRError(f"node {name!r} ({kind}) needs a {ndim}-D input per sample, gets shape {self.shape}")

    # -- nodes
    def add(self, name, node):
        nir = self.nir
        kind = type(node).__name__
        if isinstance(node, nir.NIRGraph):
            raise NIRError(f"node {name!r} is a nested NIR graph (subgraph); minisnn runs flat chains")
        if kind not in IMPORTABLE or not isinstance(node, getattr(nir, kind, ())):
            raise NIRError(f"node {name!r} ({kind}): minisnn cannot run this NIR primitive "
                           f"(it runs {', '.join(IMPORTABLE)})")
        if not isinstance(node, (nir.LI, nir.Scale)):
            self.after_spike = None  # an LI from here on is not a spiking node's synapse
        getattr(self, "_" + kind.lower())(name, node)

    def _input(self, name, node):
        shape = np.asarray(node.input_type["input"]).reshape(-1)
        if shape.size == 0 or np.any(shape < 1):
            raise NIRError(f"node {name!r} (Input): shape {shape.tolist()} is not a shape")
        self.shape = tuple(int(n) for n in shape)

    def _output(self, name, node):
        if not self.spiking:
            raise NIRError("NIR graph has no spiking node (LIF, IF or CubaLIF): minisnn has nothing to simulate")

    def _weight_layer(self, layer, has_bias):
        self.layers.append(layer)
        self.last = ("weight", len(self.layers) - 1)
        self.bias_since_spike = self.bias_since_spike or bool(has_bias)

    def _affine(self, name, node, bias=True):
        kind = type(node).__name__
        w = np.asarray(node.weight)
        if w.ndim != 2:
            raise NIRError(f"node {name!r} ({kind}): weight must be 2-D (out, in), got shape {w.shape}")
        self._require_shape(name, kind, 1)
        if self.shape[0] != w.shape[1]:
            raise NIRError(f"node {name!r} ({kind}): weight takes {w.shape[1]} inputs, gets {self.shape[0]}")
        b = np.asarray(node.bias) if bias else None
        if b is not None and b.shape != (w.shape[0],):
            raise NIRError(f"node {name!r} ({kind}): bias has shape {b.shape}, expected ({w.shape[0]},)")
        self._set_dtype(w, *(() if b is None else (b,)))
        layer = Dense(w.shape[1], w.shape[0], bias=b is not None, rng=self.rng)
        layer.w.data = w.copy()
        if b is not None:
            layer.b.data = b.copy()
        self._weight_layer(layer, b is not None and np.any(b != 0))
        self.shape = (w.shape[0],)

    def _linear(self, name, node):
        self._affine(name, node, bias=False)

    def _conv2d(self, name, node):
        w = np.asarray(node.weight)
        if w.ndim != 4:
            raise NIRError(f"node {name!r} (Conv2d): weight must be 4-D (out, in, kH, kW), got shape {w.shape}")
        if int(node.groups) != 1:
            raise NIRError(f"node {name!r} (Conv2d): groups = {node.groups}; minisnn's Conv2d has groups 1 only")
        if _pair(node.dilation) != (1, 1):
            raise NIRError(f"node {name!r} (Conv2d): dilation {node.dilation}; minisnn's Conv2d has dilation 1 only")
        self._require_shape(name, "Conv2d", 3)
        if self.shape[0] != w.shape[1]:
            raise NIRError(f"node {name!r} (Conv2d): weight takes {w.shape[1]} channels, gets {self.shape[0]}")
        stride = _pair(node.stride)
        pad = node.padding
        if isinstance(pad, str):
            if pad == "valid":
                pad = (0, 0)
            elif pad == "same" and stride == (1, 1) and w.shape[2] % 2 and w.shape[3] % 2:
                pad = (w.shape[2] // 2, w.shape[3] // 2)
            else:
                raise NIRError(f"node {name!r} (Conv2d): padding {pad!r} with kernel {w.shape[2:]} and stride "
                               f"{stride}; minisnn pads symmetrically ('same' needs stride 1 and an odd kernel)")
        pad = _pair(pad)
        b = np.asarray(node.bias) if node.bias is not None else np.zeros(w.shape[0], w.dtype)
        if b.shape != (w.shape[0],):
            raise NIRError(f"node {name!r} (Conv2d): bias has shape {b.shape}, expected ({w.shape[0]},)")
        self._set_dtype(w, b)
        layer = Conv2d(w.shape[1], w.shape[0], w.shape[2:], stride=stride, padding=pad, rng=self.rng)
        layer.w.data, layer.b.data = w.copy(), b.copy()
        try:
            self.shape = tuple(_layer_shapes(Sequential(layer), self.shape)[0][1])
        except ValueError as e:
            raise NIRError(f"node {name!r} (Conv2d): {e}") from None
        self._weight_layer(layer, np.any(b != 0))

    def _pool(self, name, node, factor):
        kind = type(node).__name__
        k = tuple(int(v) for v in np.asarray(node.kernel_size).reshape(-1))
        s = tuple(int(v) for v in np.asarray(node.stride).reshape(-1))
        p = np.asarray(node.padding).reshape(-1)
        k, s = (k * 2 if len(k) == 1 else k), (s * 2 if len(s) == 1 else s)
        if np.any(p != 0):
            raise NIRError(f"node {name!r} ({kind}): padding {p.tolist()}; minisnn pools without padding")
        self._require_shape(name, kind, 3)
        layer = AvgPool2d(k, s)
        try:
            self.shape = tuple(_layer_shapes(Sequential(layer), self.shape)[0][1])
        except ValueError as e:
            raise NIRError(f"node {name!r} ({kind}): {e}") from None
        self.layers.append(layer)
        if factor != 1:
            self._scale_by(name, kind, factor)

    def _avgpool2d(self, name, node):
        self._pool(name, node, 1.0)

    def _sumpool2d(self, name, node):
        k = np.asarray(node.kernel_size).reshape(-1)
        self._pool(name, node, float(np.prod(k)) if k.size == 2 else float(k[0]) ** 2)

    def _flatten(self, name, node):
        if self.shape is None:
            raise NIRError(f"node {name!r} (Flatten) has no input shape")
        start, end = int(node.start_dim), int(node.end_dim)
        declared = node.input_type.get("input") if isinstance(node.input_type, dict) else None
        n = len(self.shape)
        if declared is not None and len(np.asarray(declared).reshape(-1)) == n + 1:
            start, end = start - 1, (end - 1 if end >= 0 else end)  # its dims count a batch axis
        start = start + n if start < 0 else start
        end = end + n if end < 0 else end
        if not (start <= 0 and end >= n - 1):
            raise NIRError(f"node {name!r} (Flatten): flattens dims {node.start_dim}..{node.end_dim} of {self.shape}; "
                           f"minisnn flattens everything after the batch axis only")
        self.layers.append(Flatten())
        self.shape = (int(np.prod(self.shape)),)

    def _scale_by(self, name, kind, factor):
        if self.last is None:
            raise NIRError(f"node {name!r} ({kind}) scales the input before any weight layer; minisnn cannot")
        what, index = self.last
        if what == "spiking":
            self.amplitude[index] *= factor
        else:
            layer = self.layers[index]
            layer.w.data = layer.w.data * layer.w.data.dtype.type(factor)
            if layer.b is not None:
                layer.b.data = layer.b.data * layer.b.data.dtype.type(factor)

    def _scale(self, name, node):
        self._scale_by(name, "Scale", _uniform(name, "Scale", "scale", node.scale))

    def _spiking_layer(self, name, kind, model, gain):
        if not np.isfinite(gain) or gain <= 0:
            raise NIRError(f"node {name!r} ({kind}): r / v_threshold = {gain:g}; minisnn needs it > 0")
        self.layers.append(Neurons(model, gain))  # its amplitude is set in finish()
        index = len(self.layers) - 1
        self.spiking.append((name, index))
        self.synapse[name] = None
        self.amplitude[index] = 1.0
        self.last = ("spiking", index)
        self.after_spike = name
        self.bias_since_spike = False

    def _threshold_gain(self, name, kind, node):
        for field in ("v_reset",) + (("v_leak",) if hasattr(node, "v_leak") else ()):
            if _uniform(name, kind, field, getattr(node, field)) != 0:
                raise NIRError(f"node {name!r} ({kind}): {field} must be 0 (minisnn's neurons reset to 0 and leak "
                               f"to 0)")
        threshold = _uniform(name, kind, "v_threshold", node.v_threshold)
        if threshold <= 0:
            raise NIRError(f"node {name!r} ({kind}): v_threshold = {threshold:g}; minisnn needs it > 0")
        r = _uniform(name, kind, "r", node.r)
        return r if threshold == 1.0 else r / threshold

    def _lif(self, name, node):
        gain = self._threshold_gain(name, "LIF", node)
        tau = _uniform(name, "LIF", "tau", node.tau)
        if tau <= 0:
            raise NIRError(f"node {name!r} (LIF): tau = {tau:g} s; it must be > 0")
        self._spiking_layer(name, "LIF", LIF(tau_rc=tau, tau_ref=0.0, min_voltage=NO_FLOOR), gain)

    def _if(self, name, node):
        self._spiking_layer(name, "IF", IntegrateAndFire(), self._threshold_gain(name, "IF", node))

    def _cubalif(self, name, node):
        gain = self._threshold_gain(name, "CubaLIF", node) * _uniform(name, "CubaLIF", "w_in", node.w_in)
        tau_syn = _uniform(name, "CubaLIF", "tau_syn", node.tau_syn)
        tau_mem = _uniform(name, "CubaLIF", "tau_mem", node.tau_mem)
        if tau_mem <= 0 or tau_syn <= 0:
            raise NIRError(f"node {name!r} (CubaLIF): tau_mem = {tau_mem:g} s and tau_syn = {tau_syn:g} s; both must "
                           f"be > 0")
        if not self.spiking:
            raise NIRError(f"node {name!r} (CubaLIF) is the first spiking node: its synaptic filter would act on the "
                           f"static input current, which minisnn holds constant")
        prev = self.spiking[-1][0]
        if self.synapse[prev] is not None:
            raise NIRError(f"node {name!r} (CubaLIF) follows {prev!r}, whose output already has an LI synapse: "
                           f"minisnn filters each spike train once")
        if self.bias_since_spike:
            raise NIRError(f"node {name!r} (CubaLIF): a weight layer with a bias lies between it and {prev!r}, so its "
                           f"synaptic filter cannot move onto {prev!r}'s spikes")
        self.synapse[prev] = tau_syn
        self._spiking_layer(name, "CubaLIF", LIF(tau_rc=tau_mem, tau_ref=0.0, min_voltage=NO_FLOOR), gain)

    def _li(self, name, node):
        if self.after_spike is None or self.synapse[self.after_spike] is not None:
            raise NIRError(f"node {name!r} (LI) does not follow a spiking node; minisnn has leaky integrators only as "
                           f"the synapse on a spiking layer's output")
        if _uniform(name, "LI", "v_leak", node.v_leak) != 0:
            raise NIRError(f"node {name!r} (LI): v_leak must be 0 (a Lowpass synapse)")
        tau = _uniform(name, "LI", "tau", node.tau)
        if tau <= 0:
            raise NIRError(f"node {name!r} (LI): tau = {tau:g} s; it must be > 0")
        self.synapse[self.after_spike] = tau
        self._scale_by(name, "LI", _uniform(name, "LI", "r", node.r))

    def finish(self, *, dt, steps, seed, readout_steps, meta) -> SpikingNet:
        taus = {self.synapse[n] for n, _ in self.spiking}
        if len(taus) > 1:
            desc = ", ".join(f"{n!r}: {'none' if t is None else f'{t:g} s'}" for n, t in self.synapse.items())
            raise NIRError(f"NIR graph: the spiking nodes' output filters differ ({desc}); minisnn applies one "
                           f"Lowpass to every spiking layer's output")
        for name, index in self.spiking:
            amplitude = self.amplitude[index]
            if not np.isfinite(amplitude) or amplitude <= 0:
                raise NIRError(f"node {name!r}: output amplitude {amplitude:g} (LI r times Scale); minisnn needs "
                               f"it > 0")
            layer = self.layers[index]
            layer.model = layer.model.with_amplitude(_amplitude_for(amplitude, layer.gain))
        net = Sequential(*self.layers).astype(self.dtype)
        grad_models = {str(i): layer.model.rate_twin().with_amplitude(layer.model.amplitude / layer.gain)
                       for i, layer in enumerate(net) if isinstance(layer, Neurons)}
        return SpikingNet(net=net, grad_models=grad_models, synapse=taus.pop(), steps=steps, dt=dt,
                          readout_steps=readout_steps, seed=seed,
                          extra={"nir": {"spiking_nodes": [n for n, _ in self.spiking], "metadata": meta}})


def _amplitude_for(amplitude: float, gain: float) -> float:
    """The model amplitude ``m`` with ``m / gain == amplitude`` exactly (what the layer emits,
    :attr:`Neurons.spiking_model`), so an imported net computes the exported one's numbers."""
    m = amplitude * gain
    for _ in range(4):
        q = m / gain
        if q == amplitude:
            return m
        m = math.nextafter(m, math.inf if q < amplitude else -math.inf)
    return amplitude * gain
