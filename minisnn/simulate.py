"""The spiking simulator: layer-major over time, memory flat in T (LEVEL 3).

A static input is presented for ``steps`` time steps of length ``dt``.  In a feed-forward
network the spike trains of a layer depend only on the layer below, so instead of stepping
every layer every step (time-major, as snnTorch or Nengo do) the simulator runs **one layer
over a whole block of steps at a time**:

1. the layers before the first neuron layer see a constant input: their output, the first
   neuron layer's current, is computed **once**;
2. every other linear layer (Dense, Conv2d, ...) is applied to the whole block at once, with
   time merged into the batch axis: one large GEMM instead of ``T`` small ones;
3. each neuron layer is one call of a Numba time-scan kernel (parallel over neurons,
   sequential over time), with the Lowpass synapse on its output fused in;
4. the linear layers after the last neuron layer are applied to the time-average of its
   output over the readout window (they are affine, so averaging first is exact).

Time is cut into blocks of ``time_chunk`` steps, carrying each layer's neuron and synapse
state from block to block, and the batch into chunks of ``batch_chunk`` inputs, so peak
memory is bounded by the block size and does not grow with ``steps``.  Results do not depend
on the chunk sizes (tests check this).

Each neuron layer's synapse: ``y[n] = a y[n-1] + (1 - a) u[n]``, ``a = exp(-dt / tau)``
(no one-step delay; see :mod:`minisnn.synapses`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .autodiff import Tensor, no_grad
from .kernels import get_num_threads
from .layers import AvgPool2d, Conv2d, ConvTranspose2d, Dense, Flatten, Neurons, Sequential
from .neurons import CurrentFilter, resolve_precision
from .kernels.lowpass import lowpass_run_numba
from .ops.conv import conv2d_events, conv2d_forward
from .ops.dense import dense_events, dense_forward
from .ops.scratch import recycled
from .ops.windows import col2im, geometry, im2col
from .runtime import worker_threads
from .synapses import synapse_coefficient

__all__ = ["SimResult", "simulate", "ann_macs", "initial_state", "initial_states"]

_LINEAR = (Dense, Conv2d, ConvTranspose2d, AvgPool2d, Flatten)

#: ``path="auto"``: a convolution fed directly by a spiking layer is computed event by event
#: (:func:`minisnn.ops.conv.conv2d_events`) when that layer's expected spike density - its
#: rate twin's mean rate on the first input times ``dt`` - is below this.  Measured (2026-12-04,
#: float32, uint8 spike maps; at these densities the event path runs in pixel order, see
#: :data:`PIXEL_ORDER_EVENTS`):
#:
#: * one convolution in isolation (``python benchmarks/bench_events.py --input 100x150``,
#:   LocNet conv2-6, 100 maps, geometric mean of dense/event time): 2.06x at density 0.15,
#:   1.46x at 0.25, 1.23x at 0.35, 1.01x at 0.45 (channel order: 1.49x, 1.00x, 0.76x, 0.61x);
#: * the whole spiking LocNet at 3x100x150 (``bench_snn.py --rate-aim 300 --path dense|event``,
#:   batch 4, T = 50) at 306 Hz, density 0.31: event 1.44 and 1.40 s against dense 2.10 and
#:   1.62 s, with 250 MB less peak memory (the event path builds no im2col columns).
#:
#: Hence 0.35: event-driven up to 350 Hz at dt = 1 ms (before the pixel order: 0.25).
EVENT_DENSITY = 0.35

#: ``path="auto"``: a Dense layer fed by a spiking layer (directly or through a Flatten) with
#: at least :data:`DENSE_EVENT_INPUTS` inputs is computed event by event
#: (:func:`minisnn.ops.dense.dense_events`) when that layer's expected spike density is below
#: this.  Measured (2026-12-05, ``python benchmarks/bench_events.py --dense --input 100x150
#: --images 200``, 2 threads, uint8 maps of 200 rows, LocNet's fc1: 31 616 inputs, 512
#: outputs), GEMM time / event time: 3.96x at density 0.04, 2.66x at 0.08, 1.70x at 0.15,
#: 1.01x at 0.25, 0.75x at 0.35.
DENSE_EVENT_DENSITY = 0.2

#: The smallest Dense layer the ``"auto"`` path makes event-driven.  A smaller one's GEMM
#: costs little either way (200 rows of 512 -> 256, the same run: 0.55 against 0.44 ms at
#: density 0.04, 0.45 against 0.52 ms at 0.15), and its expected density would need the
#: plan's ANN pass to run the big layers before it (fc1's 64 MB of weights for LocNet's fc2).
DENSE_EVENT_INPUTS = 4096

#: An event-driven convolution adds its events channel by channel, or - once an input pixel
#: is expected to hold at least this many events per step (input channels x spike density) -
#: pixel by pixel (``order`` of :func:`~minisnn.ops.conv.conv2d_events`): the pixel order sums
#: a pixel's channels in vector registers and stores the outputs once, but sorts the events
#: first, which does not pay for pixels of one event.  Measured (2026-12-04, 100 uint8 maps, 2
#: threads, ``python benchmarks/bench_events.py --input 100x150 [--widths 16 32 64]``), time of
#: the channel order / time of the pixel order per layer: 16 channels 0.90-0.96x at 0.04-0.06
#: (0.6-1 events per pixel); 32 channels 0.96-1.01x at 0.04 (1.3), 1.04-1.07x at 0.06 (1.9);
#: 64 channels 0.97x at 0.04 (2.6), 1.07x at 0.06 (3.8); every LocNet layer (32-128 channels)
#: 1.08x on geometric mean at 0.04, 1.17x at 0.08, 1.38x at 0.15, 1.46x at 0.25.
PIXEL_ORDER_EVENTS = 2.0

#: A spiking layer whose spikes feed a pixel-order event-driven convolution, and whose own
#: input comes from an event-driven convolution fused into its scan (or is the constant first
#: current), keeps its neurons channels last, ``(H, W, C)``: the convolution before it leaves
#: its sums that way, and the one after it scans each pixel's channels contiguously, with no
#: transposes and no sorting of events (:func:`~minisnn.ops.conv.conv2d_events`'s layouts).
#: The neurons' order changes nothing a neuron computes, so results are identical bit for bit;
#: False keeps every layer ``(C, H, W)`` (for comparisons).
CHANNELS_LAST = True

#: An event-driven convolution whose input can be stored channels last (see
#: :data:`CHANNELS_LAST`) runs in pixel order from this many input channels up, whatever the
#: density: read channels last, the pixel order skips the sorting that made it lose below
#: :data:`PIXEL_ORDER_EVENTS`.  Measured (2026-12-04, 1 thread, 50 uint8 maps, channel order
#: reading (C, H, W) against pixel order reading (H, W, C), time ratio): 32 -> 32 stride 2 at
#: 100x150 1.14x at density 0.03, 1.21x at 0.0625, 1.32x at 0.08-0.1; 32 -> 64 stride 1 at
#: 50x75 1.33x, 1.66x, 1.82-1.94x; 32 -> 32 stride 2 at 12x18 1.05x, 1.26x, 1.40-1.56x; but 16 ->
#: 16 stride 2 0.70-0.82x and 16 -> 32 stride 1 0.97-1.21x (runs of one or two vectors: the
#: per-pixel work is not paid back).
PIXEL_ORDER_CHANNELS = 32

#: :func:`initial_states` draws on several threads from this many neurons in all (below it,
#: handing the draws to the threads costs more than it saves).
PARALLEL_STATE_UNITS = 1 << 16

#: ``batch_chunk=None``: inputs per batch chunk are chosen so that the block's layer buffers
#: (time_chunk x inputs x every middle layer's output, a spike map one byte per neuron) take
#: at most this many bytes.  The LocNet of ``bench_snn.py`` needs ~13 MiB per input-step at
#: 3x200x300 (spike maps into its event-driven convs), so the whole batch of 32 at time_chunk 50
#: would need ~21 GiB.
BLOCK_BYTES = 1 << 30


@dataclass
class SimResult:
    """What a spiking run measured.

    Attributes
    ----------
    readout : (B, ...) the network output averaged over the readout window (or the last step)
    rates : {layer name: average firing rate in Hz over neurons, inputs and all steps}
    spike_counts : {layer name: total spikes per input (averaged over the batch)}
    synops : {layer name: synaptic operations per input (spikes x fan-out)}; key ``"total"``
    macs : multiply-accumulates of the equivalent ANN per input
    layer_means : {layer name: (B, ...) each neuron layer's mean (filtered) output over the
        readout window}; only with ``keep_layer_means=True`` (hybrid fine-tuning uses it)
    sizes : {layer name: neurons per input}
    paths : {weight layer name: ``"dense"`` or ``"event"``} for the Conv2d and Dense layers fed by spikes
    readouts_at : {T': (B, ...)} the readout a presentation of only ``T'`` steps would have
        given (its own window at its own end), for every ``T'`` of ``simulate(also_at=...)``
    synops_at, spikes_at : {T': synaptic operations and spikes per input over the first ``T'``
        steps}, for the same ``T'`` (what a presentation of ``T'`` steps costs)
    steps, dt : the presentation
    """

    readout: np.ndarray
    rates: dict
    spike_counts: dict
    synops: dict
    macs: float
    steps: int
    dt: float
    layer_means: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)
    readouts_at: dict = field(default_factory=dict)
    synops_at: dict = field(default_factory=dict)
    spikes_at: dict = field(default_factory=dict)

    @property
    def mean_rate(self) -> float:
        """Firing rate in Hz averaged over all neurons of all spiking layers."""
        n = sum(self.sizes.values())
        return float(sum(self.rates[k] * self.sizes[k] for k in self.sizes) / n) if n else 0.0


def _as_int(name, value, low):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"simulate: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _split(net: Sequential):
    """(prefix, middle, suffix) around the first and last Neurons layers, with checks."""
    layers = list(net)
    named = [(str(i), layer) for i, layer in enumerate(layers)]
    for name, layer in named:
        if not isinstance(layer, _LINEAR + (Neurons,)):
            raise ValueError(f"simulate: layer {name} ({type(layer).__name__}) is not supported in a spiking run")
    idx = [i for i, (_, layer) in enumerate(named) if isinstance(layer, Neurons)]
    if not idx:
        raise ValueError("simulate: the network has no Neurons layer, so there is nothing to spike")
    for name, layer in named:
        if isinstance(layer, Neurons) and not layer.spiking_model.spiking:
            raise ValueError(f"simulate: layer {name} ({layer.model!r}) has no spiking twin")
    first, last = idx[0], idx[-1]
    return named[:first], named[first : last + 1], named[last + 1 :]


def _layer_shapes(net: Sequential, input_shape, x=None, rates: dict | None = None, rates_of=None) -> list:
    """``(input shape, output shape)`` of every layer (no batch axis), from one ANN pass on the
    single input ``x (1, ...)`` (zeros if None).  If a ``rates`` dict is given it receives the
    mean rate-twin firing rate in Hz on ``x`` of each Neurons layer named in ``rates_of`` (all
    if None), keyed by the layer's name.  Once no wanted rate is left and the rest of the net
    is Flatten, Dense and Neurons layers, their shapes follow without running them."""
    shapes = []
    x = np.zeros((1,) + tuple(input_shape), np.float32) if x is None else x
    layers = list(net)
    wanted = None if rates_of is None else set(rates_of)
    tail = len(layers)  # where the last run of Flatten, Dense and Neurons layers starts
    while tail > 0 and isinstance(layers[tail - 1], (Flatten, Dense, Neurons)):
        tail -= 1
    for i, layer in enumerate(layers):
        if wanted is not None and not wanted and i >= tail:
            return shapes + _tail_shapes(layers[i:], x.shape[1:])
        dtype = layer.w.dtype if hasattr(layer, "w") else x.dtype
        y = _apply([("", layer)], x.astype(dtype, copy=False))
        shapes.append((x.shape[1:], y.shape[1:]))
        if rates is not None and isinstance(layer, Neurons) and (wanted is None or str(i) in wanted):
            rates[str(i)] = float(np.mean(layer.rate_hz(y)))
            if wanted is not None:
                wanted.discard(str(i))
        x = y
    return shapes


def _tail_shapes(layers, shape) -> list:
    """``(input shape, output shape)`` of Flatten, Dense and Neurons layers fed ``shape``."""
    shapes = []
    for layer in layers:
        out = (int(np.prod(shape)),) if isinstance(layer, Flatten) else (
            (layer.out_features,) if isinstance(layer, Dense) else tuple(shape))
        shapes.append((tuple(shape), out))
        shape = out
    return shapes


def initial_state(model, layer_index: int, units: int, samples, seed: int, dtype, stored_as=None) -> dict:
    """Initial state of a spiking layer for the inputs ``samples`` (indices into the batch).

    Input ``i`` of the ``layer_index``-th neuron layer draws its ``units`` neurons' state from
    its own generator ``default_rng([seed, layer_index, i])`` (LIF: voltage ~ U(0, 1), as
    Nengo), so a run gives the same spikes however the batch is chunked, and only the chunk
    being simulated holds a state.  With ``stored_as = (C, H, W)``, the shape of the units,
    each input's state is written channels last, ``(H, W, C)`` (the same values, moved).
    """
    return initial_states([(model, layer_index, units, stored_as)], samples, seed, dtype)[0]


def initial_states(layers, samples, seed: int, dtype) -> list:
    """:func:`initial_state` of several layers at once, ``layers`` a list of ``(model,
    layer_index, units, stored_as)``.  The draws of each layer and input are independent, so
    when there are many they run on :func:`~minisnn.kernels.get_num_threads` threads (NumPy
    lets go of the GIL while it draws and copies); each writes its own part of the arrays, so
    the result does not depend on the thread count."""
    samples = list(samples)
    states = [{key: np.empty(len(samples) * units, v.dtype)  # the arrays, from an empty state
               for key, v in model.make_state((0,), np.random.default_rng(0), dtype=dtype).items()}
              for model, _, units, _ in layers]

    def draw(task):
        k, j = task
        model, layer_index, units, stored_as = layers[k]
        part = model.make_state((units,), np.random.default_rng([seed, layer_index, samples[j]]), dtype=dtype)
        for key, values in part.items():
            into = states[k][key][j * units : (j + 1) * units]
            if stored_as is None:
                into[...] = values
            else:  # one strided copy instead of a concatenation and then a transpose
                C, H, W = stored_as
                into.reshape(H, W, C)[...] = values.reshape(C, H, W).transpose(1, 2, 0)

    tasks = sorted(((k, j) for k in range(len(layers)) for j in range(len(samples))),
                   key=lambda task: -layers[task[0]][2])  # the largest first: the threads end together
    many = len(samples) * sum(units for _, _, units, _ in layers) >= PARALLEL_STATE_UNITS
    threads = get_num_threads() if many else 1
    if threads > 1 and len(tasks) > 1:
        list(worker_threads(threads).map(draw, tasks))  # (re-raises a draw's error)
    else:
        for task in tasks:
            draw(task)
    return states


def _apply(layers, x: np.ndarray) -> np.ndarray:
    with no_grad():
        for _, layer in layers:
            x = layer(Tensor(x)).data
    return x


def _buffer(buffers: dict, name: str, shape, dtype) -> np.ndarray:
    """An uninitialised ``shape`` array backed by the buffer ``buffers[name]``, reused from
    block to block (grown if needed).  Fresh large arrays are expensive here: the first
    write to each page faults, which costs ~10x an im2col copy (see :mod:`minisnn.ops.scratch`).
    So the buffers come from :func:`~minisnn.ops.scratch.recycled`'s pool, and the next
    ``simulate`` call (the next batch, the next hybrid step) takes them back from there."""
    size = int(np.prod(shape))
    buf = buffers.get(name)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = buffers[name] = recycled((size,), dtype)
    return buf[:size].reshape(shape)


def _linear(name: str, layer, x: np.ndarray, out_shape, buffers: dict) -> np.ndarray:
    """One linear layer of the spiking part on a block of ``x (R, ...)``; Conv2d and Dense
    write into a reused buffer, Flatten is a view, the others run as in the ANN."""
    if isinstance(layer, Flatten):
        return x.reshape(x.shape[0], -1)
    if not isinstance(layer, (Conv2d, Dense)):
        return _apply([(name, layer)], x)
    out = _buffer(buffers, name, (x.shape[0],) + tuple(out_shape), x.dtype)
    b = None if layer.b is None else layer.b.data
    if isinstance(layer, Dense):
        return dense_forward(x, layer.w.data, b, out=out)[0]
    return conv2d_forward(x, layer.w.data, b, layer.stride, layer.padding, out=out, keep_cache=False)[0]


def _spike_source(layers, i):
    """The name of the Neurons layer whose output layer ``i`` of ``layers`` (``(name, layer)``
    pairs) reads: the one just before it, or before the Flatten before a Dense; else None."""
    j = i - 1
    if isinstance(layers[i][1], Dense) and j >= 0 and isinstance(layers[j][1], Flatten):
        j -= 1
    return layers[j][0] if j >= 0 and isinstance(layers[j][1], Neurons) else None


def _event_capable(layers):
    """``(name, layer, source)`` of each layer that can run event by event - a Conv2d or a
    Dense fed by spikes - with the Neurons layer it reads (:func:`_spike_source`)."""
    for i, (name, layer) in enumerate(layers):
        if isinstance(layer, (Conv2d, Dense)):
            source = _spike_source(layers, i)
            if source is not None:
                yield name, layer, source


def _choose_paths(middle, path: str, expected_hz: dict, dt: float, dense_only: set) -> tuple[dict, dict]:
    """``({layer name: "dense" | "event"}, {event-driven conv name: "channels" | "pixels"})`` for
    every Conv2d and Dense fed by a spiking layer (always dense after the neuron layers in
    ``dense_only``): a conv's path by :data:`EVENT_DENSITY` and its order by
    :data:`PIXEL_ORDER_EVENTS`; a Dense's path by :data:`DENSE_EVENT_DENSITY` from
    :data:`DENSE_EVENT_INPUTS` inputs up (with ``path="event"``, whatever its size)."""
    paths, orders = {}, {}
    for name, layer, source in _event_capable(middle):
        if isinstance(layer, Dense):
            auto = (layer.in_features >= DENSE_EVENT_INPUTS
                    and expected_hz[source] * dt < DENSE_EVENT_DENSITY)
        else:
            density = expected_hz[source] * dt
            auto = density < EVENT_DENSITY
        event = source not in dense_only and (path == "event" or (path == "auto" and auto))
        paths[name] = "event" if event else "dense"
        if event and isinstance(layer, Conv2d):
            orders[name] = "pixels" if layer.w.shape[1] * density >= PIXEL_ORDER_EVENTS else "channels"
    return paths, orders


def _conv_events(name, layer, spikes, height, out_shape, buffers, syn_a, syn_state, tc, fused, order,
                 in_layout="NCHW", out_layout="NCHW") -> np.ndarray:
    """An event-driven Conv2d on a block of raw spikes ``(tc * nb, C, H, W)`` (a uint8 spike map
    whose spikes are worth ``height``, or the float output if ``height`` is None); the Lowpass
    that the dense path applies to the spikes is applied to the result instead (both linear),
    here or - ``fused`` - with the bias in the next layer's scan (:class:`CurrentFilter`).
    The layouts are :func:`~minisnn.ops.conv.conv2d_events`'s (channels last only if ``fused``)."""
    y = _buffer(buffers, name, (spikes.shape[0],) + _stored(out_shape, out_layout == "NHWC"), layer.w.data.dtype)
    conv2d_events(spikes, layer.w.data, None, layer.stride, layer.padding, out=y, scale=height, order=order,
                  in_layout=in_layout, out_layout=out_layout)
    return y if fused else _lowpass_and_bias(y, tc, syn_a, syn_state, layer.b, (slice(None), None, None))


def _lowpass_and_bias(y, tc, syn_a, syn_state, b, per_unit):
    """An event-driven layer's output ``y`` (``tc`` steps), not fused into the next scan: the
    Lowpass the dense path applies to its input spikes (if any), then the bias ``b`` (a
    Parameter or None), spread over ``y`` by the index ``per_unit``; in place."""
    if syn_a:
        y2 = y.reshape(tc, -1)
        lowpass_run_numba(y2, syn_state, syn_a, y2)
    if b is not None:
        y += b.data[per_unit]
    return y


def _dense_events(name, layer, spikes, height, buffers, syn_a, syn_state, tc, fused) -> np.ndarray:
    """An event-driven Dense layer on a block of raw spikes ``(tc * nb, in)`` (a uint8 spike map
    whose spikes are worth ``height``, or the float output if ``height`` is None), the Lowpass
    and the bias after it as in :func:`_conv_events`."""
    y = _buffer(buffers, name, (spikes.shape[0], layer.out_features), layer.w.data.dtype)
    dense_events(spikes, layer.w.data, None, out=y, scale=height)
    return y if fused else _lowpass_and_bias(y, tc, syn_a, syn_state, layer.b, slice(None))


def _inside(window, t0, tc):
    """The part ``(lo, hi)`` of the window ``[start, end)`` inside the block of steps ``t0 ..
    t0 + tc - 1``, as steps of the block (``lo >= hi``: none)."""
    start, end = window
    return max(start - t0, 0), min(end - t0, tc)


def _bias_per_unit(layer, out_shape, nb, channels_last=False) -> np.ndarray:
    """A conv layer's bias repeated for each of its ``nb x out_shape`` output units (zeros if it
    has none), as a :class:`CurrentFilter` takes it; ``channels_last``: the units stored channels last."""
    units = int(np.prod(out_shape))
    if layer.b is None:
        return np.zeros(nb * units, layer.w.data.dtype)
    if channels_last:
        return np.tile(layer.b.data, nb * (units // out_shape[0]))
    return np.tile(np.repeat(layer.b.data, units // out_shape[0]), nb)


def _stored(shape, channels_last: bool) -> tuple:
    """A ``(C, H, W)`` shape as stored: ``(H, W, C)`` if channels last."""
    return (*shape[1:], shape[0]) if channels_last else tuple(shape)


def _to_last(a: np.ndarray, shape) -> np.ndarray:
    """``a``, ``(nb * C * H * W,)`` or ``(nb, C, H, W)`` values of units ``shape = (C, H, W)``,
    as a flat copy with the units channels last."""
    return np.ascontiguousarray(a.reshape(-1, *shape).transpose(0, 2, 3, 1)).reshape(-1)


def _may_be_last(middle, i, fused, unit_shapes) -> bool:
    """Whether the neuron layer ``middle[i]`` can store its units channels last: they are an
    image, and its current is the constant first one or comes from an event-driven conv fused
    into its scan (which can leave its sums channels last)."""
    name = middle[i][0]
    return (CHANNELS_LAST and isinstance(middle[i][1], Neurons) and len(unit_shapes[name]) == 3
            and (i == 0 or fused.get(middle[i - 1][0]) == name))


def _channels_last_orders(middle, orders, fused, unit_shapes) -> dict:
    """``orders`` with the event-driven convs of :data:`PIXEL_ORDER_CHANNELS` or more input
    channels whose input can be channels last in pixel order."""
    orders = dict(orders)
    for i, (name, layer) in enumerate(middle):
        if (orders.get(name) == "channels" and layer.w.shape[1] >= PIXEL_ORDER_CHANNELS
                and _may_be_last(middle, i - 1, fused, unit_shapes)):
            orders[name] = "pixels"
    return orders


def _channels_last_layers(middle, orders, fused, unit_shapes) -> set:
    """The neuron layers stored channels last (see :data:`CHANNELS_LAST`): those that may be
    and feed a pixel-order event-driven conv."""
    return {name for i, (name, _) in enumerate(middle[:-1])
            if _may_be_last(middle, i, fused, unit_shapes) and orders.get(middle[i + 1][0]) == "pixels"}


# ----------------------------------------------------------------------------- fan-out and MACs


def _fanout(layers, shape, out_shapes: dict) -> np.ndarray:
    """Synapses per unit of an input of ``shape`` (no batch) into the linear block ``layers``
    (``(name, layer)`` pairs; ``out_shapes[name]`` is each layer's output shape).

    Only the first weight layer of the block counts (its weights are where a spike is
    multiplied); pooling and flattening before it route each unit to the cells it feeds.
    """
    if not layers:
        return np.zeros(shape)
    name, layer = layers[0]
    rest = layers[1:]
    if isinstance(layer, Flatten):
        return _fanout(rest, (int(np.prod(shape)),), out_shapes).reshape(shape)
    if isinstance(layer, AvgPool2d):
        f_out = _fanout(rest, out_shapes[name], out_shapes)
        k = layer.kernel_size
        kh, kw = (k, k) if np.isscalar(k) else k
        s = layer.stride if layer.stride is not None else (kh, kw)
        g = geometry("fanout", shape[1], shape[2], (kh, kw), (s, s) if np.isscalar(s) else s, (0, 0))
        # every pixel inherits the fan-out of each pooling cell it belongs to
        cols = np.repeat(f_out.reshape(shape[0], 1, -1), kh * kw, axis=1).reshape(1, -1, g.Ho * g.Wo)
        return col2im(cols, g, 1, shape[0])[0]
    if isinstance(layer, Dense):
        return np.full(shape, float(layer.out_features))
    if isinstance(layer, Conv2d):
        C, H, W = shape
        st, pd = layer.stride, layer.padding
        g = geometry("fanout", H, W, layer.kernel_size, (st, st) if np.isscalar(st) else st,
                     (pd, pd) if np.isscalar(pd) else pd)
        ones = np.ones((1, g.kh * g.kw, g.Ho * g.Wo))
        cover = col2im(ones, g, 1, 1)[0, 0]
        return np.broadcast_to(cover * layer.out_channels, shape).copy()
    if isinstance(layer, ConvTranspose2d):
        C, H, W = shape
        Ho, Wo = out_shapes[name][1:]
        st, pd = layer.stride, layer.padding
        g = geometry("fanout", Ho, Wo, layer.kernel_size,
                     (st, st) if np.isscalar(st) else st, (pd, pd) if np.isscalar(pd) else pd)
        cover = im2col(np.ones((1, 1, g.H, g.W)), g)[0].sum(axis=0).reshape(H, W)
        return np.broadcast_to(cover * layer.out_channels, shape).copy()
    raise ValueError(f"simulate: cannot count fan-out through {type(layer).__name__}")


def ann_macs(net: Sequential, input_shape, shapes: list | None = None) -> float:
    """Multiply-accumulates per input of the network run as an ANN (weight layers only).

    ``shapes`` (from one shape pass) saves running the network again.
    """
    shapes = _layer_shapes(net, input_shape) if shapes is None else shapes
    macs = 0.0
    for layer, (in_shape, out_shape) in zip(net, shapes):
        if isinstance(layer, Dense):
            macs += layer.in_features * layer.out_features
        elif isinstance(layer, Conv2d):
            macs += layer.w.size * out_shape[1] * out_shape[2]
        elif isinstance(layer, ConvTranspose2d):
            macs += layer.w.size * in_shape[1] * in_shape[2]
    return float(macs)


# ----------------------------------------------------------------------------- the simulator


def simulate(
    net: Sequential,
    x,
    steps: int,
    *,
    dt: float = 0.001,
    synapse=None,
    readout: str = "mean",
    readout_steps: int | None = None,
    seed: int = 0,
    time_chunk: int = 50,
    batch_chunk: int | None = None,
    keep_layer_means: bool = False,
    path: str = "auto",
    also_at=(),
    first_index: int = 0,
    precision: str | None = None,
) -> SimResult:
    """Run ``net`` as a spiking network on the static inputs ``x (B, ...)`` for ``steps`` steps.

    Parameters
    ----------
    net : Sequential whose Neurons layers are run with their spiking twins
    x : (B, ...) float array, presented unchanged at every step
    steps : number of time steps ``T >= 1``
    dt : step length in seconds (> 0)
    synapse : None, a time constant in seconds, or a :class:`~minisnn.synapses.Lowpass`,
        applied to the output of every spiking layer
    readout : ``"mean"`` (average output over the last ``readout_steps`` steps) or
        ``"last"`` (the output at the last step, as NengoDL's default)
    readout_steps : length of the readout window (default: the second half, ``ceil(T/2)``)
    seed : seeds the neurons' initial voltages (Uniform(0, 1), as Nengo; see :func:`initial_state`)
    time_chunk, batch_chunk : block sizes; memory is proportional to their product.
        ``batch_chunk=None`` picks the largest chunk whose block buffers fit in
        :data:`BLOCK_BYTES` (at least one input), so a large batch never runs out of memory
    keep_layer_means : also return each neuron layer's mean output over the readout window
    path : how a Conv2d fed directly by a spiking layer is computed: ``"dense"`` (im2col +
        GEMM), ``"event"`` (only where spikes occurred; with a synapse the filter then runs
        on the layer's output, which is equal because both are linear) or ``"auto"``
        (event-driven when the expected spike density is below :data:`EVENT_DENSITY`; in pixel
        order where an input pixel is expected to hold :data:`PIXEL_ORDER_EVENTS` events or more,
        or where the input can be stored channels last and has :data:`PIXEL_ORDER_CHANNELS`
        channels or more: :data:`CHANNELS_LAST`).  A Dense layer fed by a spiking layer
        (directly or through a Flatten) is chosen the same way (:data:`DENSE_EVENT_DENSITY`,
        from :data:`DENSE_EVENT_INPUTS` inputs up with ``"auto"``).
        With a synapse and ``keep_layer_means`` the filtered layer outputs' means are needed
        too: the float32 LIF scan sums them itself, other scans take the dense path.
        ``SimResult.paths`` records the choice per layer.
    also_at : shorter presentation lengths ``T' <= steps`` whose readouts to return as well
        (``SimResult.readouts_at``).  The simulation is causal and its initial state does not
        depend on ``steps``, so the first ``T'`` steps of this run *are* a run of ``T'``
        steps: a metric-against-T curve costs one run at the longest T, not one run per T.
        Each ``T'`` uses its own window (same ``readout`` and ``readout_steps`` rule).
    first_index : the index of ``x[0]`` in a larger set that is simulated piece by piece:
        input ``i`` draws its initial state from ``(seed, layer, first_index + i)``, so the
        results do not depend on how the caller splits the set into batches.
    precision : the arithmetic of the LIF steps, ``"float64"`` (exact, Nengo's) or ``"float32"``
        (NengoDL's, vectorised; a float32 net): see :data:`minisnn.neurons.PRECISIONS`.  None
        (the default) takes the net's: float32 for float32 weights, float64 otherwise
    """
    steps = _as_int("steps", steps, 1)
    windows = _readout_windows(steps, readout, readout_steps, also_at)
    time_chunk = _as_int("time_chunk", time_chunk, 1)
    if not (isinstance(dt, (int, float)) and np.isfinite(dt) and dt > 0):
        raise ValueError(f"simulate: dt must be > 0, got {dt!r}")
    if path not in ("auto", "dense", "event"):
        raise ValueError(f"simulate: path must be 'auto', 'dense' or 'event', got {path!r}")
    x = np.asarray(x)
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"simulate: x must be a float array (B, ...), got {x.dtype} of shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("simulate: x contains NaN or inf")
    first_index = _as_int("first_index", first_index, 0)
    if batch_chunk is not None:
        batch_chunk = _as_int("batch_chunk", batch_chunk, 1)
    dtype = next((p.dtype for p in net.parameters()), x.dtype)
    x = x.astype(dtype, copy=False)
    precision = resolve_precision(precision, dtype)
    plan = _plan(net, x, steps, windows, synapse_coefficient(synapse, dt), dt, path, keep_layer_means,
                 time_chunk, batch_chunk, precision)

    totals = _Totals.empty(plan, keep_layer_means)
    buffers: dict = {}  # one output buffer per middle layer, reused by every block and chunk
    for b0 in range(0, x.shape[0], plan.batch_chunk):
        inputs = range(first_index + b0, first_index + b0 + len(x[b0 : b0 + plan.batch_chunk]))
        _run_chunk(plan, x[b0 : b0 + plan.batch_chunk], inputs, seed, dt, keep_layer_means, buffers, totals)
    return _assemble(plan, totals, net, x, dt)


def _readout_windows(steps: int, readout: str, readout_steps, also_at) -> dict:
    """The readout windows ``[start, end)`` of the last neuron layer: ``{None: this run's,
    T': the window of a T'-step run}`` (ValueError for bad settings)."""
    if readout not in ("mean", "last"):
        raise ValueError(f"simulate: readout must be 'mean' or 'last', got {readout!r}")
    window = (steps + 1) // 2 if readout_steps is None else _as_int("readout_steps", readout_steps, 1)
    if readout == "last":
        window = 1
    if window > steps:
        raise ValueError(f"simulate: readout_steps ({window}) exceeds steps ({steps})")
    windows = {None: (steps - window, steps)}
    for T in also_at:
        T = _as_int("also_at", T, 1)
        if T > steps:
            raise ValueError(f"simulate: also_at holds {T}, more than steps ({steps})")
        w = 1 if readout == "last" else min((T + 1) // 2 if readout_steps is None else readout_steps, T)
        windows[T] = (T - w, T)
    return windows


@dataclass
class _Plan:
    """What :func:`simulate` decides before the first step, from one ANN pass on one input."""

    prefix: list         # the layers before the first neuron layer: applied once per input
    middle: list         # [(name, layer)] from the first to the last neuron layer: run in time
    suffix: list         # the affine layers after it: applied to the readout
    neuron_layers: list  # [(name, Neurons layer)] in order
    shapes: list         # per layer of the net: (input shape, output shape), no batch axis
    unit_shapes: dict    # neuron layer name -> shape of its units
    out_shapes: dict     # layer name -> output shape
    sizes: dict          # neuron layer name -> number of units
    fanouts: dict        # neuron layer name -> (1, units) synaptic fan-out of each unit
    paths: dict          # conv or dense layer name -> "dense" / "event"
    orders: dict         # event-driven conv name -> "channels" / "pixels" (PIXEL_ORDER_EVENTS,
                         # PIXEL_ORDER_CHANNELS)
    raw: set             # neuron layers whose spikes feed an event-driven layer unfiltered
    maps: dict           # raw neuron layer name -> the value of one spike, for those whose
                         # scan writes a uint8 spike map (a quarter of a float32 output's memory)
    fused: dict          # event-driven layer name -> the neuron layer after it, whose scan runs
                         # the layer's synapse, bias and its own gain (no passes of their own)
    channels_last: set   # neuron layers whose units are stored channels last (CHANNELS_LAST)
    windows: dict        # readout windows (see _readout_windows)
    blocks: list         # [(t0, t1)] time blocks of at most time_chunk steps, cut at every T'
    batch_chunk: int
    syn_a: float
    dtype: np.dtype
    precision: str       # the LIF steps' arithmetic (see simulate)

    @property
    def final(self) -> str:
        """The last neuron layer (the readout's)."""
        return self.neuron_layers[-1][0]

    def stored(self, name) -> tuple:
        """Neuron layer ``name``'s unit shape as stored (channels last or not)."""
        return _stored(self.unit_shapes[name], name in self.channels_last)

    def layouts(self, i) -> tuple:
        """``(in_layout, out_layout)`` of the event-driven conv ``middle[i]``."""
        before, after = self.middle[i - 1][0], self.middle[i + 1][0] if i + 1 < len(self.middle) else None
        return ("NHWC" if before in self.channels_last else "NCHW"), ("NHWC" if after in self.channels_last else "NCHW")


def _plan(net, x, steps, windows, syn_a, dt, path, keep_layer_means, time_chunk, batch_chunk,
          precision="float64") -> _Plan:
    prefix, middle, suffix = _split(net)
    neuron_layers = [(name, layer) for name, layer in middle if isinstance(layer, Neurons)]
    expected_hz: dict = {}  # the rates that choose the paths: of each Neurons layer feeding an event-capable layer
    feeds_events = [source for _, layer, source in _event_capable(middle)
                    if isinstance(layer, Conv2d) or layer.in_features >= DENSE_EVENT_INPUTS]
    shapes = _layer_shapes(net, x.shape[1:], x[:1], expected_hz, feeds_events)  # the one ANN pass, on one input
    unit_shapes = {str(i): shapes[i][0] for i, layer in enumerate(net) if isinstance(layer, Neurons)}
    out_shapes = {str(i): shp[1] for i, shp in enumerate(shapes)}
    sizes = {name: int(np.prod(unit_shapes[name])) for name, _ in neuron_layers}
    fanouts = {name: _fanout(middle[i + 1 :] + suffix, unit_shapes[name], out_shapes).reshape(1, -1)
               for i, (name, layer) in enumerate(middle) if isinstance(layer, Neurons)}
    heights = {name: layer.spiking_model.spike_map_height(dt, precision) for name, layer in neuron_layers}
    # a layer whose filtered output's mean is kept feeds an event-driven conv only if its scan
    # can sum that mean itself (the conv needs the raw spikes, the mean the filtered output)
    dense_only = {name for name, layer in neuron_layers
                  if syn_a and keep_layer_means and not layer.spiking_model.filters_current(precision)}
    paths, orders = _choose_paths(middle, path, expected_hz, dt, dense_only)
    raw = {source for name, _, source in _event_capable(middle) if paths[name] == "event"}
    maps = {name: heights[name] for name in raw if heights[name] is not None}
    fused = {name: middle[i + 1][0] for i, (name, _) in enumerate(middle[:-1])
             if paths.get(name) == "event" and isinstance(middle[i + 1][1], Neurons)
             and middle[i + 1][1].spiking_model.filters_current(precision)}
    orders = _channels_last_orders(middle, orders, fused, unit_shapes)
    channels_last = _channels_last_layers(middle, orders, fused, unit_shapes)
    for name in channels_last:  # each unit's fan-out, in the order the units are stored
        fanouts[name] = _to_last(fanouts[name], unit_shapes[name]).reshape(1, -1)
    if batch_chunk is None:
        per_input = _block_bytes_per_input_step(middle, out_shapes, maps, np.dtype(x.dtype).itemsize)
        batch_chunk = max(1, min(x.shape[0], BLOCK_BYTES // max(1, min(time_chunk, steps) * per_input)))
    # time blocks of time_chunk steps, also cut at every T' of also_at (cutting changes no spike)
    starts = sorted({*range(0, steps, time_chunk), *(T for T in windows if T is not None and T < steps)})
    blocks = list(zip(starts, starts[1:] + [steps]))
    return _Plan(prefix, middle, suffix, neuron_layers, shapes, unit_shapes, out_shapes, sizes, fanouts, paths, orders,
                 raw, maps, fused, channels_last, windows, blocks, batch_chunk, syn_a, x.dtype, precision)


def _block_bytes_per_input_step(middle, out_shapes: dict, maps: dict, itemsize: int) -> int:
    """Bytes of the block buffers that :func:`_run_chunk` holds per input and time step: each
    middle layer's output, one byte per neuron for a layer that writes a uint8 spike map
    (``maps``: it feeds an event-driven conv), nothing for a Flatten (a view)."""
    return sum(int(np.prod(out_shapes[name])) * (1 if name in maps else itemsize)
               for name, layer in middle if not isinstance(layer, Flatten))


@dataclass
class _Totals:
    """What the batch chunks add up: spike counts and synaptic operations per layer (and up to
    each T'), and the readouts and layer means of each chunk, in input order."""

    counts: dict
    synops: dict
    synops_at: dict
    spikes_at: dict
    readouts: list
    readouts_at: dict
    means: dict

    @classmethod
    def empty(cls, plan: _Plan, keep_layer_means: bool):
        extra = [T for T in plan.windows if T is not None]
        return cls({name: 0.0 for name in plan.sizes}, {name: 0.0 for name in plan.sizes},
                   {T: 0.0 for T in extra}, {T: 0.0 for T in extra}, [], {T: [] for T in extra},
                   {name: [] for name in plan.sizes} if keep_layer_means else {})


def _run_chunk(plan: _Plan, xb, inputs: range, seed, dt, keep_layer_means, buffers, totals: _Totals) -> None:
    """Simulate the inputs ``xb`` for all the steps, block by block in time, layer by layer in
    each block; add what it measured to ``totals``."""
    nb, dtype, last = xb.shape[0], plan.dtype, plan.final
    J0 = _apply(plan.prefix, xb)  # the first neuron layer's current: constant in time
    first = plan.neuron_layers[0][0]
    if first in plan.channels_last:
        J0 = _to_last(J0, plan.unit_shapes[first])
    sums: dict = {}  # {(layer name, window key): summed output over the window so far}
    drawn = initial_states([(layer.spiking_model, k, plan.sizes[name],
                             plan.unit_shapes[name] if name in plan.channels_last else None)
                            for k, (name, layer) in enumerate(plan.neuron_layers)], inputs, seed, dtype)
    states = {  # neuron and synapse state of this batch chunk only, stored as the layer is
        name: (state, np.zeros(nb * plan.sizes[name], dtype)) for (name, _), state in zip(plan.neuron_layers, drawn)
    }
    conv_syn = {  # synapse state of an event-driven conv's output (the filter moved there)
        name: np.zeros(nb * int(np.prod(plan.out_shapes[name])), dtype)
        for name in plan.paths if plan.paths[name] == "event" and (plan.syn_a or name in plan.fused)
    }
    layers = dict(plan.middle)
    filters = {  # the filter each fused neuron layer runs on its current, with its conv's bias
        neurons: CurrentFilter(plan.syn_a, conv_syn[conv],
                               _bias_per_unit(layers[conv], plan.out_shapes[conv], nb, neurons in plan.channels_last),
                               layers[neurons].gain)
        for conv, neurons in plan.fused.items()
    }
    synops_so_far = spikes_so_far = 0.0  # this batch chunk's, summed over its inputs
    for t0, t1 in plan.blocks:
        tc = t1 - t0
        cur, static = J0, True  # (nb, ...) constant, then (tc * nb, ...) time series
        height = None  # the value of a spike if cur is a uint8 spike map
        for i, (name, layer) in enumerate(plan.middle):
            if plan.paths.get(name) == "event" and isinstance(layer, Dense):
                cur = _dense_events(name, layer, cur, height, buffers, plan.syn_a, conv_syn.get(name), tc,
                                    name in plan.fused)
                continue
            if plan.paths.get(name) == "event":
                cur = _conv_events(name, layer, cur, height, plan.out_shapes[name], buffers, plan.syn_a,
                                   conv_syn.get(name), tc, name in plan.fused, plan.orders[name], *plan.layouts(i))
                continue
            if not isinstance(layer, Neurons):
                cur = _linear(name, layer, cur, plan.out_shapes[name], buffers)
                continue
            M = nb * plan.sizes[name]
            state, syn_state = states[name]
            J = cur.reshape(1 if static else tc, M)
            if layer.gain != 1 and name not in filters:
                J = J * np.asarray(layer.gain, dtype)
            height = plan.maps.get(name)
            out = _buffer(buffers, name, (tc, M), np.uint8 if height is not None else dtype)
            # raw spikes for an event-driven conv: as a spike map the synapse still filters into
            # the state, and the scan sums the filtered output over the window for the mean
            a = 0.0 if name in plan.raw and height is None else plan.syn_a
            summed = keep_layer_means and height is not None
            lo, hi = _inside(plan.windows[None], t0, tc)
            if summed and (name, None) not in sums:
                sums[name, None] = np.zeros(M, dtype)
            n_spk = layer.spiking_model.run(dt, J, out, state, syn_a=a, syn_state=syn_state, precision=plan.precision,
                                            current_filter=filters.get(name),
                                            window_sum=sums[name, None] if summed else None, window=(lo, hi))
            per_unit = n_spk.reshape(nb, plan.sizes[name]).sum(axis=0)  # spikes of each unit, all inputs
            layer_spikes = float(per_unit.sum())
            totals.counts[name] += layer_spikes
            spikes_so_far += layer_spikes
            # whole numbers below 2**53 (fan-outs count synapses): the float64 dot product is exact
            layer_synops = float(per_unit @ plan.fanouts[name][0])
            totals.synops[name] += layer_synops
            synops_so_far += layer_synops
            for key, window in plan.windows.items():
                if not (name == last or (keep_layer_means and key is None and not summed)):
                    continue
                lo, hi = _inside(window, t0, tc)
                if lo < hi:
                    # summed in the net's dtype: float64 sums would double this memory
                    part = out[lo:hi].reshape(hi - lo, nb, *plan.stored(name)).sum(axis=0)
                    if (name, key) in sums:
                        sums[name, key] += part
                    else:
                        sums[name, key] = part
            cur, static = out.reshape(tc * nb, *plan.stored(name)), False
        if t1 in totals.synops_at:
            totals.synops_at[t1] += synops_so_far
            totals.spikes_at[t1] += spikes_so_far
    for (name, key), total in sums.items():
        start, end = plan.windows[key]
        total /= end - start
        total = total.reshape(nb, *plan.stored(name))
        sums[name, key] = total.transpose(0, 3, 1, 2) if name in plan.channels_last else total
    totals.readouts.append(_apply(plan.suffix, sums[last, None]))
    for T in totals.readouts_at:
        totals.readouts_at[T].append(_apply(plan.suffix, sums[last, T]))
    for name in totals.means:
        totals.means[name].append(sums[name, None])


def _assemble(plan: _Plan, totals: _Totals, net, x, dt) -> SimResult:
    """The :class:`SimResult` of the whole batch: per-input averages of the totals."""
    B, steps = x.shape[0], plan.blocks[-1][1]
    duration = steps * dt
    synops = {name: v / B for name, v in totals.synops.items()}
    synops["total"] = float(sum(synops.values()))
    return SimResult(
        readout=np.concatenate(totals.readouts, axis=0),
        rates={name: totals.counts[name] / (B * plan.sizes[name] * duration) for name in totals.counts},
        spike_counts={name: totals.counts[name] / B for name in totals.counts},
        synops=synops,
        macs=ann_macs(net, x.shape[1:], plan.shapes),
        steps=steps,
        dt=float(dt),
        layer_means={k: np.concatenate(v, axis=0) for k, v in totals.means.items()},
        sizes=plan.sizes,
        paths=plan.paths,
        readouts_at={T: np.concatenate(v, axis=0) for T, v in totals.readouts_at.items()},
        synops_at={T: v / B for T, v in totals.synops_at.items()},
        spikes_at={T: v / B for T, v in totals.spikes_at.items()},
    )
