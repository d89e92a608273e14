"""Slow, obvious time-major reference for the spiking simulator.

Every step, every layer: the input goes through the whole network one time step at a time,
each neuron layer takes one Nengo ``step`` (the NumPy reference) and its output passes
through the Lowpass ``y = a y + (1 - a) u``.  Initial states come from
:func:`minisnn.simulate.initial_state` (one generator per input and layer), as in the
simulator, so spike trains must agree exactly.
"""

import numpy as np

from minisnn.autodiff import Tensor, no_grad
from minisnn.layers import Neurons
from minisnn.simulate import initial_state
from minisnn.synapses import Lowpass


def simulate_time_major(net, x, steps, dt=0.001, synapse=None, window=None, seed=0, layer_means=False):
    """Returns (readout, spikes) with spikes[name] of shape (steps, B, ...) (spike counts);
    with ``layer_means``, also {name: each neuron layer's (filtered) output averaged over the
    readout window}, what the hybrid replay feeds back as the layer's measured output."""
    layers = list(net)
    a = 0.0 if synapse is None else Lowpass(synapse).coefficient(dt)
    window = (steps + 1) // 2 if window is None else window
    B = x.shape[0]
    states, syn, spikes, filtered = {}, {}, {}, {}
    outputs = []
    k = 0
    for t in range(steps):
        cur = x
        for i, layer in enumerate(layers):
            if not isinstance(layer, Neurons):
                with no_grad():
                    cur = layer(Tensor(cur)).data
                continue
            model = layer.spiking_model
            if i not in states:
                n = cur[0].size
                states[i] = initial_state(model, k, n, range(B), seed, cur.dtype)
                syn[i] = np.zeros(B * n, cur.dtype)
                spikes[i] = []
                filtered[i] = []
                k += 1
            J = (cur * np.asarray(layer.gain, cur.dtype)).reshape(-1)
            out = np.empty_like(J)
            model.step(dt, J, out, **states[i])
            spikes[i].append((out * dt / model.amplitude).reshape(cur.shape))
            syn[i] = a * syn[i] + (1 - a) * out if a else out
            cur = syn[i].reshape(cur.shape)
            filtered[i].append(cur)
        outputs.append(cur)
    readout = np.mean(np.stack(outputs[steps - window :]), axis=0)
    spike_trains = {str(i): np.stack(s) for i, s in spikes.items()}
    if not layer_means:
        return readout, spike_trains
    means = {str(i): np.mean(np.stack(f[steps - window :]), axis=0) for i, f in filtered.items()}
    return readout, spike_trains, means
