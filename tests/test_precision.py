"""The float32 LIF path (``precision="float32"``, NengoDL's arithmetic) against the exact float64
one.  Kernel == NumPy reference and 1 == 2 threads are checked for ``lif_run32`` by the registry
tests in tests/test_kernels.py; here: what float32 changes, and that the setting is checked.

Measured bound (on the currents below): 3 seeds x 20 000 neurons x 200 steps,
currents U(-1, 12) and U(0.95, 1.6), constant or changing every step: **no** neuron's spike
count differed, while 56 % of the final voltages did (by up to 4e-4) - with the C library's
transcendentals in float64 and again with the vectorised float32 polynomials of today's scan.  The tests allow 1 in
1000 neurons to differ by one spike, so a host whose C library rounds differently still
passes, and a float32 path that drifts (a wrong constant, a float64 leak) does not.
"""

import numpy as np
import pytest

from minisnn import Conv2d, Dense, Flatten, Neurons, Sequential
from minisnn.hybrid import convert
from minisnn.kernels.lif import lif_run32_numba, lif_run_numba
from minisnn.neurons import LIF, SoftLIFRate
from minisnn.simulate import simulate

FLIPS = 1e-3  # at most this share of neurons may differ, by at most one spike


def _run_both(J, T, M, seed):
    rng = np.random.default_rng(seed)
    v0 = rng.uniform(0, 1, M).astype(np.float32)
    out = {}
    for name, kernel in (("float64", lif_run_numba), ("float32", lif_run32_numba)):
        v, r = v0.copy(), np.zeros(M, np.float32)
        counts = kernel(J, v, r, np.empty((T, M), np.float32), 0.001, 0.02, 0.002, 0.0, 1.0, 0.8,
                        np.zeros(M, np.float32))
        out[name] = counts, v
    return out


@pytest.mark.parametrize("low, high, rows", [(-1.0, 12.0, "T"), (0.95, 1.6, "T"), (0.95, 1.6, 1)])
def test_float32_scan_spikes_as_the_float64_scan(low, high, rows):
    T, M = 200, 5000
    J = np.random.default_rng(1).uniform(low, high, (T if rows == "T" else 1, M)).astype(np.float32)
    res = _run_both(J, T, M, seed=2)
    (c64, v64), (c32, v32) = res["float64"], res["float32"]
    assert (v64 != v32).any(), "the two paths computed the same arithmetic"
    diff = np.abs(c64 - c32)
    assert diff.max() <= 1 and (diff > 0).mean() <= FLIPS, (diff.max(), (diff > 0).mean())
    assert c64.sum() > 0


def test_a_wrong_float32_constant_is_caught():
    """The bound has teeth: tau_rc off by 0.1 % in the float32 run moves many counts."""
    T, M = 200, 5000
    J = np.random.default_rng(1).uniform(-1.0, 12.0, (T, M)).astype(np.float32)
    v0 = np.random.default_rng(2).uniform(0, 1, M).astype(np.float32)
    c64 = lif_run_numba(J, v0.copy(), np.zeros(M, np.float32), np.empty((T, M), np.float32), 0.001, 0.02, 0.002,
                        0.0, 1.0, 0.8, np.zeros(M, np.float32))
    c32 = lif_run32_numba(J, v0.copy(), np.zeros(M, np.float32), np.empty((T, M), np.float32), 0.001, 0.02002,
                          0.002, 0.0, 1.0, 0.8, np.zeros(M, np.float32))
    assert (np.abs(c64 - c32) > 0).mean() > FLIPS


def _small_net(rng):
    net = Sequential(Conv2d(1, 4, 3, padding=1, rng=rng), Neurons(SoftLIFRate(sigma=0.005, amplitude=0.01)),
                     Conv2d(4, 4, 3, stride=2, padding=1, rng=rng), Neurons(SoftLIFRate(sigma=0.005, amplitude=0.01)),
                     Flatten(), Dense(4 * 4 * 4, 3, rng=rng))
    for layer in net:  # currents of a few units: the neurons fire at tens to a hundred Hz
        if hasattr(layer, "b"):
            layer.b.data[...] = 2.0
    return net


def test_simulate_in_float32_as_in_float64():
    rng = np.random.default_rng(0)
    net = _small_net(rng)
    x = rng.standard_normal((6, 1, 8, 8)).astype(np.float32)
    runs = {p: simulate(net, x, 80, synapse=0.005, seed=3, precision=p) for p in ("float64", "float32")}
    for name, n64 in runs["float64"].spike_counts.items():
        assert n64 > 0
        assert abs(runs["float32"].spike_counts[name] - n64) <= FLIPS * n64 + 1, name
    np.testing.assert_allclose(runs["float32"].readout, runs["float64"].readout, rtol=1e-3, atol=1e-4)


def test_precision_is_a_checked_setting():
    rng = np.random.default_rng(0)
    net = _small_net(rng)
    x = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="precision must be one of 'float64', 'float32', got 'float16'"):
        simulate(net, x, 5, precision="float16")
    with pytest.raises(ValueError, match="precision"):
        convert(net, precision="double")
    snet = convert(net, precision="float32", steps=5)
    assert snet.run(x).readout.shape == (2, 3)
    with pytest.raises(ValueError, match="LIF: precision 'float32' needs float32"):
        LIF().run(0.001, np.ones((1, 4)), np.empty((5, 4)), LIF().make_state(4, 0, dtype=np.float64),
                  precision="float32")


def test_apps_check_the_precision_option():
    from minisnn.apps import loc

    assert loc.make_config("tiny", precision="float32").precision == "float32"
    with pytest.raises(ValueError, match="precision"):
        loc.make_config("tiny", precision="half")


def test_float32_run_finds_nan_in_the_current_without_scanning_it():
    """The float32 scan carries a NaN current into the voltage at every step, refractory or
    not, so run checks the M final voltages instead of the T x M currents first."""
    model = LIF()
    T, M = 30, 50
    J = np.full((T, M), 30.0, np.float32)  # fires every few steps: refractory ones included
    for t, k in ((0, 3), (7, 11), (29, 40)):
        bad = J.copy()
        bad[t, k] = np.nan
        state = model.make_state(M, 0, dtype=np.float32)
        with pytest.raises(ValueError, match=r"J \(input current\) contains NaN"):
            model.run(0.001, bad, np.empty((T, M), np.float32), state, precision="float32")
    state = model.make_state(M, 0, dtype=np.float32)
    assert model.run(0.001, J, np.empty((T, M), np.float32), state, precision="float32").sum() > 0


def _three_conv_net(rng):
    net = Sequential(Conv2d(1, 4, 3, padding=1, rng=rng), Neurons(SoftLIFRate(sigma=0.005, amplitude=0.01)),
                     Conv2d(4, 6, 3, stride=2, padding=1, rng=rng), Neurons(SoftLIFRate(sigma=0.005, amplitude=0.01)),
                     Conv2d(6, 6, 3, padding=1, rng=rng), Neurons(SoftLIFRate(sigma=0.005, amplitude=0.01)),
                     Flatten(), Dense(6 * 4 * 4, 3, rng=rng))
    for layer in net:
        if hasattr(layer, "b"):
            layer.b.data[...] = rng.uniform(1.0, 3.0, layer.b.data.shape)
    return net


@pytest.mark.parametrize("synapse", [0.005, None])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_spike_maps_and_fused_filters_change_nothing(monkeypatch, synapse, gain):
    """The float32 event path writes uint8 spike maps and runs the conv's synapse and bias in
    the next LIF scan; without both (float maps, a Lowpass pass and a bias pass of their own)
    the spikes are the same: exactly for the maps, within FLIPS for the filter (float32
    arithmetic in the scan, float64 in the Lowpass kernel)."""
    rng = np.random.default_rng(0)
    snet = convert(_three_conv_net(rng), synapse=synapse, scale_firing_rates=gain)
    x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    kw = dict(synapse=synapse, path="event", precision="float32")
    fast = simulate(snet.net, x, 60, **kw)
    monkeypatch.setattr(LIF, "spike_map_height", lambda self, dt, precision: None)
    no_maps = simulate(snet.net, x, 60, **kw)
    assert no_maps.spike_counts == fast.spike_counts
    np.testing.assert_array_equal(no_maps.readout, fast.readout)
    monkeypatch.setattr(LIF, "filters_current", lambda self, precision: False)
    plain = simulate(snet.net, x, 60, **kw)
    for name, n in plain.spike_counts.items():
        assert n > 0
        assert abs(fast.spike_counts[name] - n) <= FLIPS * n + 1, name
    if synapse is None:  # no filter: the same float32 operations, in the same order
        np.testing.assert_array_equal(plain.readout, fast.readout)


@pytest.mark.parametrize("time_chunk, batch_chunk", [(50, None), (7, 2)])
def test_layer_means_on_the_event_path(time_chunk, batch_chunk):
    """With a synapse, the layer means (what hybrid fine-tuning reads) need the filtered output
    while the event-driven conv needs the raw spikes: the float32 scan writes the spike map and
    sums the filtered output over the window itself.  The means equal the dense path's to
    float32 rounding; without the scan's sum (float64 steps) the dense path is taken."""
    rng = np.random.default_rng(0)
    snet = convert(_three_conv_net(rng), synapse=0.005)
    x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    kw = dict(synapse=0.005, keep_layer_means=True, time_chunk=time_chunk, batch_chunk=batch_chunk)
    event = simulate(snet.net, x, 60, path="event", **kw)
    dense = simulate(snet.net, x, 60, path="dense", **kw)
    assert set(event.paths.values()) == {"event"}
    for name, mean in dense.layer_means.items():
        assert event.layer_means[name].shape == mean.shape
        np.testing.assert_allclose(event.layer_means[name], mean, rtol=1e-5, atol=1e-6 * np.abs(mean).max())
        assert abs(event.spike_counts[name] - dense.spike_counts[name]) <= FLIPS * dense.spike_counts[name] + 1
    exact = simulate(snet.net, x, 60, path="event", precision="float64", **kw)
    assert set(exact.paths.values()) == {"dense"}
