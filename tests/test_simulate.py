"""The layer-major spiking simulator against a slow time-major reference."""

import numpy as np
import pytest

import minisnn as ms
from minisnn.layers import Neurons
from minisnn.neurons import LIF, LIFRate, RectifiedLinear, SoftLIFRate, SpikingRectifiedLinear
from minisnn.hybrid import convert
from minisnn.simulate import ann_macs, simulate

from naive_sim import simulate_time_major


def conv_net(neuron, rng, scale=1.0):
    return ms.Sequential(
        ms.Conv2d(2, 3, 3, padding=1, rng=rng, dtype=np.float64),
        Neurons(neuron, scale),
        ms.AvgPool2d(2),
        ms.Conv2d(3, 4, 3, stride=2, padding=1, rng=rng, dtype=np.float64),
        Neurons(neuron, scale),
        ms.Flatten(),
        ms.Dense(4 * 2 * 2, 3, rng=rng, dtype=np.float64),
    )


def dense_net(neuron, rng, scale=1.0):
    return ms.Sequential(
        ms.Flatten(),
        ms.Dense(12, 10, rng=rng, dtype=np.float64),
        Neurons(neuron, scale),
        ms.Dense(10, 6, rng=rng, dtype=np.float64),
        Neurons(neuron, scale),
        ms.Dense(6, 2, rng=rng, dtype=np.float64),
    )


CASES = [
    ("conv-lif", conv_net, LIF(), 1.0, (3, 2, 8, 8)),
    ("conv-srelu", conv_net, SpikingRectifiedLinear(), 100.0, (3, 2, 8, 8)),
    ("dense-lif", dense_net, LIF(tau_ref=0.001), 1.0, (4, 3, 4)),
    ("dense-softlif", dense_net, SoftLIFRate(sigma=0.01), 1.0, (4, 3, 4)),
    ("dense-relu", dense_net, RectifiedLinear(), 300.0, (4, 3, 4)),
]


@pytest.mark.parametrize("synapse", [None, 0.005])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_layer_major_equals_time_major(case, synapse):
    _, build, neuron, scale, shape = case
    rng = np.random.default_rng(1)
    net = build(neuron, rng, scale)
    for p in net.parameters():  # strong enough weights that every layer spikes
        p.data = p.data * 3 + (0.5 if p.ndim == 1 else 0.0)
    x = rng.uniform(0, 2, shape)
    steps = 40
    ref_readout, ref_spikes = simulate_time_major(net, x, steps, synapse=synapse, seed=3)
    res = simulate(net, x, steps, synapse=synapse, seed=3, time_chunk=16, keep_layer_means=True)
    np.testing.assert_allclose(res.readout, ref_readout, rtol=1e-9, atol=1e-9)
    for name, spk in ref_spikes.items():
        assert spk.sum() > 0, f"layer {name} never spiked: the test would prove nothing"
        assert res.spike_counts[name] == pytest.approx(spk.sum() / x.shape[0])
        assert res.rates[name] == pytest.approx(spk.mean() / 0.001)


def test_chunking_does_not_change_spikes():
    rng = np.random.default_rng(2)
    net = conv_net(LIF(), rng)
    for p in net.parameters():
        p.data = p.data * 3
    x = rng.uniform(0, 3, (5, 2, 8, 8))
    a = simulate(net, x, 60, synapse=0.005, keep_layer_means=True)
    b = simulate(net, x, 60, synapse=0.005, keep_layer_means=True, time_chunk=7, batch_chunk=2)
    assert a.spike_counts == b.spike_counts
    assert a.synops == b.synops
    np.testing.assert_allclose(a.readout, b.readout, rtol=1e-12)
    for k in a.layer_means:
        np.testing.assert_allclose(a.layer_means[k], b.layer_means[k], rtol=1e-12)


def test_readout_converges_to_the_rate_network():
    """A long presentation of a spiking ReLU net reads out what the rate net computes.

    A synapse is needed: without one a spiking ReLU rectifies the *instantaneous* current
    (a weighted sum of spikes that swings negative), not its mean (measured: 2.4 % error
    without a synapse, 0.02 % with tau = 5 ms).
    """
    rng = np.random.default_rng(4)
    net = dense_net(RectifiedLinear(), rng, scale=1000.0)
    x = rng.uniform(0, 1, (4, 3, 4))
    with ms.no_grad():
        ann = net(x).data
    snn = simulate(net, x, 1000, synapse=0.005, readout_steps=800).readout
    np.testing.assert_allclose(snn, ann, atol=0.002 * np.abs(ann).max())


def test_synops_and_macs_by_hand():
    # Dense 2 -> 3 -> (neurons) -> Dense 3 -> 5: each spike of the hidden layer reaches 5 synapses
    net = ms.Sequential(ms.Dense(2, 3), Neurons(SpikingRectifiedLinear(), 1.0), ms.Dense(3, 5))
    net[0].w.data = np.array([[1.0, 0], [0, 1.0], [0, 0]], np.float32)
    net[0].b.data = np.zeros(3, np.float32)
    x = np.array([[100.0, 250.0]], np.float32)  # 100 Hz and 250 Hz, third neuron silent
    res = simulate(net, x, 1000, seed=0)
    assert res.spike_counts["1"] in (349, 350, 351)
    assert res.synops["1"] == pytest.approx(5 * res.spike_counts["1"])
    assert res.synops["total"] == res.synops["1"]
    assert res.macs == 2 * 3 + 3 * 5 == ann_macs(net, (2,))
    assert res.rates["1"] == pytest.approx(350 / 3, abs=1)


def test_conv_fanout_counts_border_pixels_once_per_window():
    # a single spiking pixel in a corner of a 4x4 map, next layer conv 3x3 pad 1, 2 channels:
    # the corner pixel lies in 4 windows -> 8 synapses
    net = ms.Sequential(Neurons(SpikingRectifiedLinear()), ms.Conv2d(1, 2, 3, padding=1))
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0] = 1000.0  # one spike per step
    res = simulate(net, x, 10)
    assert res.spike_counts["0"] == 10
    assert res.synops["0"] == pytest.approx(10 * 8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps"),
        (dict(steps=10, dt=0.0), "dt"),
        (dict(steps=10, dt=-1e-3), "dt"),
        (dict(steps=10, readout="median"), "readout"),
        (dict(steps=10, readout_steps=11), "readout_steps"),
        (dict(steps=10, time_chunk=0), "time_chunk"),
        (dict(steps=10, synapse="fast"), "synapse"),
        (dict(steps=10, path="sparse"), "path"),
        (dict(steps=10, also_at=(11,)), "also_at"),
        (dict(steps=10, also_at=(0,)), "also_at"),
        (dict(steps=10, first_index=-1), "first_index"),
    ],
)
def test_bad_arguments(kwargs, match):
    net = ms.Sequential(ms.Dense(2, 3), Neurons(LIF()), ms.Dense(3, 1))
    with pytest.raises(ValueError, match=match):
        simulate(net, np.ones((1, 2), np.float32), **kwargs)


def test_bad_networks_and_inputs():
    x = np.ones((1, 2), np.float32)
    with pytest.raises(ValueError, match="no Neurons layer"):
        simulate(ms.Sequential(ms.Dense(2, 3)), x, 5)
    with pytest.raises(ValueError, match="NaN"):
        simulate(ms.Sequential(ms.Dense(2, 3), Neurons(LIF())), np.full((1, 2), np.nan, np.float32), 5)
    with pytest.raises(ValueError, match="tau_rc"):
        LIF(tau_rc=-1)


def test_lif_rates_match_lifrate():
    """Long-run rates of a spiking LIF layer equal the LIFRate formula."""
    J = np.linspace(1.5, 20, 12)
    net = ms.Sequential(Neurons(LIF()))
    res = simulate(net, J.reshape(12, 1), 2000, keep_layer_means=True, readout_steps=2000)
    expected = LIFRate().rate(J)
    np.testing.assert_allclose(res.layer_means["0"][:, 0], expected, rtol=0.01, atol=1.0)


def test_mean_rate_weights_layers_by_their_size():
    net = ms.Sequential(ms.Dense(2, 3), Neurons(SpikingRectifiedLinear()), ms.Dense(3, 1), Neurons(SpikingRectifiedLinear()))
    net[0].w.data = np.eye(3, 2, dtype=np.float32)
    net[0].b.data = np.zeros(3, np.float32)
    net[2].w.data = np.full((1, 3), 0.5, np.float32)
    net[2].b.data = np.zeros(1, np.float32)
    res = simulate(net, np.array([[100.0, 300.0]], np.float32), 1000)
    assert res.sizes == {"1": 3, "3": 1}
    assert res.rates["1"] == pytest.approx(400 / 3, abs=1)
    assert res.rates["3"] == pytest.approx(200, abs=2)
    assert res.mean_rate == pytest.approx((3 * res.rates["1"] + res.rates["3"]) / 4)


def conv_chain_net(neuron, rng):
    """Convolutions fed straight by spiking layers: the ones the event-driven path can take."""
    return ms.Sequential(
        ms.Conv2d(2, 4, 3, padding=1, rng=rng, dtype=np.float64),
        Neurons(neuron),
        ms.Conv2d(4, 4, 3, stride=2, padding=1, rng=rng, dtype=np.float64),
        Neurons(neuron),
        ms.Conv2d(4, 3, (3, 2), padding=(1, 0), rng=rng, dtype=np.float64),
        Neurons(neuron),
        ms.Flatten(),
        ms.Dense(3 * 4 * 3, 2, rng=rng, dtype=np.float64),
    )


@pytest.mark.parametrize("synapse", [None, 0.005])
@pytest.mark.parametrize("path, order", [("dense", None), ("event", "channels"), ("event", "pixels")])
def test_event_and_dense_paths_equal_the_time_major_reference(monkeypatch, path, order, synapse):
    import minisnn.ops.conv as conv_ops
    import minisnn.simulate as sim

    monkeypatch.setattr(sim, "PIXEL_ORDER_EVENTS", 0.0 if order == "pixels" else np.inf)
    calls = []  # which event kernels ran
    for kernel in ("conv_events_numba", "conv_events_pixels_numba"):
        real = getattr(conv_ops, kernel)
        monkeypatch.setattr(conv_ops, kernel, lambda *a, real=real, kernel=kernel: calls.append(kernel) or real(*a))
    rng = np.random.default_rng(7)
    net = conv_chain_net(LIF(), rng)
    x = rng.uniform(0, 2, (3, 2, 8, 7))
    res = _equals_time_major(net, x, path, synapse)
    assert res.paths == {"2": path, "4": path}
    assert set(calls) == {None: set(), "channels": {"conv_events_numba"}, "pixels": {"conv_events_pixels_numba"}}[order]


def _equals_time_major(net, x, path, synapse):
    """``net``, its parameters scaled so that every layer spikes, run on ``x`` for 40 steps in
    time blocks of 16 along ``path``: the readout of the time-major reference to rounding and
    its spike counts.  Returns the result."""
    for p in net.parameters():
        p.data = p.data * 3 + (0.5 if p.ndim == 1 else 0.0)
    ref_readout, ref_spikes = simulate_time_major(net, x, 40, synapse=synapse, seed=5)
    res = simulate(net, x, 40, synapse=synapse, seed=5, time_chunk=16, path=path)
    np.testing.assert_allclose(res.readout, ref_readout, rtol=1e-9, atol=1e-9)
    for name, spk in ref_spikes.items():
        assert spk.sum() > 0, f"layer {name} never spiked: the test would prove nothing"
        assert res.spike_counts[name] == pytest.approx(spk.sum() / x.shape[0])
    return res


def test_initial_state_channels_last_is_the_same_state_moved():
    """``stored_as``: each input's draws written (H, W, C) - the values of the plain (C, H, W)
    state, moved, and nothing else (voltages from the same generators, refractory zeros)."""
    from minisnn.simulate import initial_state

    C, H, W = 3, 4, 5
    plain = initial_state(LIF(), 2, C * H * W, range(1, 4), 11, np.float32)
    last = initial_state(LIF(), 2, C * H * W, range(1, 4), 11, np.float32, stored_as=(C, H, W))
    assert plain.keys() == last.keys() == {"voltage", "refractory_time"}
    for key in plain:
        assert last[key].dtype == plain[key].dtype == np.float32
        moved = plain[key].reshape(3, C, H, W).transpose(0, 2, 3, 1).reshape(-1)
        np.testing.assert_array_equal(last[key], moved)
    assert len(np.unique(plain["voltage"])) == 3 * C * H * W  # distinct draws: a transpose shows


def test_initial_states_same_on_one_and_two_threads(monkeypatch):
    """The draws of several layers and inputs, on one thread and handed to two (every draw to
    the threads: ``PARALLEL_STATE_UNITS = 0``), give the same arrays as the layers one by one."""
    import minisnn.simulate as sim
    from minisnn.kernels import get_num_threads, set_num_threads

    layers = [(LIF(), 0, 60, (3, 4, 5)), (SpikingRectifiedLinear(), 1, 7, None), (LIF(), 2, 33, None)]
    alone = [sim.initial_state(m, k, units, range(2, 5), 4, np.float32, shape) for m, k, units, shape in layers]
    monkeypatch.setattr(sim, "PARALLEL_STATE_UNITS", 0)
    before = get_num_threads()
    try:
        for n in (1, 2):
            set_num_threads(n)
            together = sim.initial_states(layers, range(2, 5), 4, np.float32)
            for a, b in zip(alone, together):
                assert a.keys() == b.keys()
                for key in a:
                    np.testing.assert_array_equal(a[key], b[key])
    finally:
        set_num_threads(before)


@pytest.mark.parametrize("keep_layer_means", [False, True])
def test_channels_last_layers_give_identical_results(monkeypatch, keep_layer_means):
    """Layers between pixel-order event convs stored channels last (float32 scans with the
    current filter): every spike, readout, count, synaptic operation and layer mean equal the
    run with every layer (C, H, W) - and the channels-last layouts really ran."""
    import minisnn.simulate as sim

    monkeypatch.setattr(sim, "PIXEL_ORDER_EVENTS", 0.0)
    layouts = []
    real = sim.conv2d_events
    monkeypatch.setattr(sim, "conv2d_events", lambda *a, **k: layouts.append((k["in_layout"], k["out_layout"]))
                        or real(*a, **k))
    rng = np.random.default_rng(7)
    net = conv_chain_net(LIF(), rng)
    for p in net.parameters():
        p.data = (p.data * 3 + (0.5 if p.ndim == 1 else 0.0)).astype(np.float32)
    x = rng.uniform(0, 2, (3, 2, 8, 7)).astype(np.float32)
    runs = {}
    for flag in (False, True):
        monkeypatch.setattr(sim, "CHANNELS_LAST", flag)
        layouts.clear()
        runs[flag] = simulate(net, x, 40, synapse=0.005, seed=5, time_chunk=16, path="event",
                              keep_layer_means=keep_layer_means)
        # conv "2" reads the first layer and feeds layer "3"; conv "4" reads "3" and feeds "5",
        # which feeds Flatten: stored (C, H, W)
        expected = [("NHWC", "NHWC"), ("NHWC", "NCHW")] if flag else [("NCHW", "NCHW")] * 2
        assert layouts[:2] == expected
    a, b = runs[False], runs[True]
    assert all(v > 0 for v in a.spike_counts.values()), "a silent layer would prove nothing"
    np.testing.assert_array_equal(b.readout, a.readout)
    assert b.spike_counts == a.spike_counts and b.synops == a.synops
    assert b.layer_means.keys() == a.layer_means.keys() == ({"1", "3", "5"} if keep_layer_means else set())
    for name in a.layer_means:
        np.testing.assert_array_equal(b.layer_means[name], a.layer_means[name])


@pytest.mark.parametrize("channels, channels_last, expected", [
    (32, True, "pixels"), (32, False, "channels"), (16, True, "channels")])
def test_wide_convs_read_channels_last_in_pixel_order(monkeypatch, channels, channels_last, expected):
    """Below PIXEL_ORDER_EVENTS, a conv of PIXEL_ORDER_CHANNELS or more input channels whose input
    can be stored channels last still runs in pixel order (reading it channels last)."""
    import minisnn.simulate as sim

    monkeypatch.setattr(sim, "PIXEL_ORDER_EVENTS", np.inf)
    monkeypatch.setattr(sim, "CHANNELS_LAST", channels_last)
    calls = []
    real = sim.conv2d_events
    monkeypatch.setattr(sim, "conv2d_events", lambda *a, **k: calls.append((k["order"], k["in_layout"])) or real(*a, **k))
    rng = np.random.default_rng(3)
    net = ms.Sequential(ms.Conv2d(2, channels, 3, padding=1, rng=rng), Neurons(LIF()),
                        ms.Conv2d(channels, 4, 3, stride=2, padding=1, rng=rng), Neurons(LIF()), ms.Flatten(),
                        ms.Dense(4 * 3 * 3, 2, rng=rng))
    simulate(net, rng.uniform(0, 2, (2, 2, 6, 5)).astype(np.float32), 10, synapse=0.005, path="event")
    assert set(calls) == {(expected, "NHWC" if expected == "pixels" else "NCHW")}


@pytest.mark.parametrize("readout", ["mean", "last"])
@pytest.mark.parametrize("path", ["dense", "event"])
def test_readouts_at_shorter_T_equal_runs_of_that_length(path, readout):
    """One long run gives every shorter presentation's readout: the first T' steps of a run
    are a run of T' steps (same initial state, causal dynamics), whatever the block sizes."""
    rng = np.random.default_rng(11)
    net = conv_chain_net(LIF(), rng)
    for p in net.parameters():
        p.data = p.data * 3 + (0.5 if p.ndim == 1 else 0.0)
    x = rng.uniform(0, 2, (3, 2, 8, 7))
    kw = dict(synapse=0.005, seed=2, path=path, readout=readout)
    long = simulate(net, x, 30, time_chunk=7, batch_chunk=2, also_at=(1, 9, 14, 30), **kw)
    assert sorted(long.readouts_at) == [1, 9, 14, 30]
    np.testing.assert_allclose(long.readouts_at[30], long.readout, rtol=1e-12, atol=1e-12)
    assert long.synops_at[30] == pytest.approx(long.synops["total"], rel=1e-12)
    for T in (1, 9, 14):
        short = simulate(net, x, T, time_chunk=5, **kw)
        np.testing.assert_allclose(long.readouts_at[T], short.readout, rtol=1e-9, atol=1e-9)
        assert long.synops_at[T] == pytest.approx(short.synops["total"], rel=1e-12)   # same spikes
    assert not np.allclose(long.readouts_at[9], long.readout), "the windows must differ to prove anything"
    assert 0 < long.synops_at[9] < long.synops_at[14] < long.synops_at[30]


def dense_chain_net(neuron, rng, dtype=np.float64):
    """Dense layers fed by spiking layers, through a Flatten and directly: the ones the
    event-driven dense path can take (the readout after the last neurons is not one)."""
    return ms.Sequential(
        ms.Conv2d(2, 3, 3, padding=1, rng=rng, dtype=dtype), Neurons(neuron),
        ms.Flatten(), ms.Dense(3 * 8 * 7, 40, rng=rng, dtype=dtype), Neurons(neuron),
        ms.Dense(40, 5, rng=rng, dtype=dtype), Neurons(neuron),
        ms.Dense(5, 2, rng=rng, dtype=dtype),
    )


@pytest.mark.parametrize("synapse", [None, 0.005])
@pytest.mark.parametrize("path", ["dense", "event"])
def test_event_driven_dense_layers_equal_the_time_major_reference(monkeypatch, path, synapse):
    """float64 steps: the Lowpass and the bias run after the event-driven product (the scan
    takes no current filter), so the readout equals the reference to rounding."""
    import minisnn.simulate as sim

    calls = []
    real = sim.dense_events
    monkeypatch.setattr(sim, "dense_events", lambda x, *a, **k: calls.append(x.dtype) or real(x, *a, **k))
    rng = np.random.default_rng(11)
    net = dense_chain_net(LIF(), rng)
    res = _equals_time_major(net, rng.uniform(0, 2, (3, 2, 8, 7)), path, synapse)
    assert res.paths == {"3": path, "5": path}
    assert len(calls) == (6 if path == "event" else 0)  # 2 layers x 3 time blocks (float64: float maps)


def test_event_driven_dense_layers_in_float32_filter_in_the_scan():
    """float32 with a synapse: the neurons after an event-driven Dense run its Lowpass and bias
    in their scan (as after an event-driven conv); the spikes and the readout agree with the
    dense path's to float32 rounding."""
    rng = np.random.default_rng(12)
    net = dense_chain_net(LIF(), rng, np.float32)
    for p in net.parameters():
        p.data = p.data * 3 + np.float32(0.5 if p.ndim == 1 else 0.0)
    x = rng.uniform(0, 2, (4, 2, 8, 7)).astype(np.float32)
    event = simulate(net, x, 60, synapse=0.005, path="event", keep_layer_means=True)
    dense = simulate(net, x, 60, synapse=0.005, path="dense", keep_layer_means=True)
    assert event.paths == {"3": "event", "5": "event"} and set(dense.paths.values()) == {"dense"}
    for name, count in dense.spike_counts.items():
        assert count > 0, f"layer {name} never spiked: the test would prove nothing"
        assert abs(event.spike_counts[name] - count) <= 0.01 * count + 1
    np.testing.assert_allclose(event.readout, dense.readout, rtol=1e-3, atol=1e-3 * np.abs(dense.readout).max())
    for name, mean in dense.layer_means.items():
        np.testing.assert_allclose(event.layer_means[name], mean, rtol=1e-3, atol=1e-3 * np.abs(mean).max())


def test_auto_path_takes_events_for_large_dense_layers_at_low_density(monkeypatch):
    """A Dense layer fed by spikes is event-driven under ``"auto"`` from DENSE_EVENT_INPUTS inputs
    up when its input's expected density is below DENSE_EVENT_DENSITY; the smaller ones keep
    the GEMM (their expected rates are not even measured)."""
    import minisnn.simulate as sim

    net = ms.Sequential(ms.Conv2d(1, 2, 1), Neurons(SpikingRectifiedLinear()),
                        ms.Flatten(), ms.Dense(18, 4), Neurons(SpikingRectifiedLinear()),
                        ms.Dense(4, 3), Neurons(SpikingRectifiedLinear()))
    for layer, bias in ((net[0], 20.0), (net[3], 500.0), (net[5], 100.0)):
        layer.w.data[...] = 0
        layer.b.data[...] = bias  # layer 1 fires at 20 Hz (density 0.02), layer 4 at 500 Hz (0.5)
    x = np.ones((2, 1, 3, 3), np.float32)
    assert simulate(net, x, 50).paths == {"3": "dense", "5": "dense"}  # 18 and 4 inputs: too small
    monkeypatch.setattr(sim, "DENSE_EVENT_INPUTS", 4)
    assert simulate(net, x, 50).paths == {"3": "event", "5": "dense"}
    assert simulate(net, x, 50, path="dense").paths == {"3": "dense", "5": "dense"}
    monkeypatch.setattr(sim, "DENSE_EVENT_INPUTS", 10**9)
    assert simulate(net, x, 50, path="event").paths == {"3": "event", "5": "event"}  # whatever the size


def test_auto_path_follows_the_expected_spike_density():
    # layer 1 fires at 20 Hz (density 0.02 per 1 ms step), layer 3 at 500 Hz (0.5)
    net = ms.Sequential(ms.Conv2d(1, 2, 1), Neurons(SpikingRectifiedLinear()),
                        ms.Conv2d(2, 2, 1), Neurons(SpikingRectifiedLinear()),
                        ms.Conv2d(2, 1, 1), Neurons(SpikingRectifiedLinear()))
    for conv, bias in ((net[0], 20.0), (net[2], 500.0), (net[4], 100.0)):
        conv.w.data[...] = 0
        conv.b.data[...] = bias
    x = np.ones((2, 1, 3, 3), np.float32)
    assert simulate(net, x, 50).paths == {"2": "event", "4": "dense"}
    assert simulate(net, x, 50, path="dense").paths == {"2": "dense", "4": "dense"}
    # a synapse with layer means needs every layer's filtered output: dense throughout
    assert simulate(net, x, 50, path="event", synapse=0.005, keep_layer_means=True).paths == {
        "2": "dense", "4": "dense"}
    a = simulate(net, x, 50, path="event", synapse=0.005)
    b = simulate(net, x, 50, path="dense", synapse=0.005)
    assert a.spike_counts == b.spike_counts
    np.testing.assert_allclose(a.readout, b.readout, rtol=1e-5)


def test_layer_buffers_taken_back_from_an_earlier_run_change_nothing(monkeypatch):
    """simulate's layer buffers come from the recycled pool: a second run takes back the
    buffers the first left (other net, other values in them) and must give the same
    results as a run in a fresh pool."""
    import minisnn.ops.scratch as scratch

    monkeypatch.setattr(scratch, "RECYCLE_MIN_BYTES", 0)  # every buffer through the pool
    rng = np.random.default_rng(3)
    net = conv_chain_net(LIF(), rng)
    for p in net.parameters():
        p.data = p.data * 3 + (0.5 if p.ndim == 1 else 0.0)
    x = rng.uniform(0, 2, (3, 2, 8, 7))
    kw = dict(synapse=0.005, seed=1, time_chunk=9, keep_layer_means=True)
    scratch.release()
    fresh = simulate(net, x, 30, path="event", **kw)
    pooled = len(scratch._local.pool)
    assert pooled > 0
    other = conv_chain_net(LIF(), np.random.default_rng(4))
    simulate(other, x * 2, 30, path="event", **kw)  # same buffer sizes, other contents
    again = simulate(net, x, 30, path="event", **kw)
    assert len(scratch._local.pool) == pooled, "the later runs should have taken the buffers back"
    np.testing.assert_array_equal(again.readout, fresh.readout)
    assert again.spike_counts == fresh.spike_counts
    for name in fresh.layer_means:
        np.testing.assert_array_equal(again.layer_means[name], fresh.layer_means[name])


def test_automatic_batch_chunk_bounds_memory_without_changing_results(monkeypatch):
    import minisnn.simulate as sim

    rng = np.random.default_rng(9)
    net = conv_net(LIF(), rng)
    for p in net.parameters():
        p.data = p.data * 3
    x = rng.uniform(0, 3, (4, 2, 8, 8))
    whole = simulate(net, x, 30, synapse=0.005, batch_chunk=4)
    monkeypatch.setattr(sim, "BLOCK_BYTES", 1)  # forces one input per chunk
    chunks = []
    real_initial_states = sim.initial_states

    def spy(layers, samples, seed, dtype):
        chunks.append(len(samples))
        return real_initial_states(layers, samples, seed, dtype)

    monkeypatch.setattr(sim, "initial_states", spy)
    auto = simulate(net, x, 30, synapse=0.005)
    assert chunks and set(chunks) == {1}  # every batch chunk held a single input
    assert auto.spike_counts == whole.spike_counts
    np.testing.assert_allclose(auto.readout, whole.readout, rtol=1e-12)


def test_simulate_and_convert_refuse_a_synapse_they_cannot_use():
    net = ms.Sequential(ms.Dense(3, 2), Neurons(LIF()))
    with pytest.raises(ValueError, match=r"^simulate: synapse must be None, a time constant"):
        simulate(net, np.ones((1, 3), np.float32), 5, synapse="0.005")
    with pytest.raises(ValueError, match=r"^convert: synapse must be None, a time constant"):
        convert(ms.Sequential(ms.Dense(3, 2), Neurons(LIFRate())), synapse=[0.005])


def conv_dense_net(rng):
    """float32, a conv fed by spikes (event-driven on that path), then Flatten, Dense, Neurons."""
    return ms.Sequential(
        ms.Conv2d(2, 4, 3, padding=1, rng=rng), Neurons(LIF(), 3.0),
        ms.Conv2d(4, 4, 3, stride=2, padding=1, rng=rng), Neurons(LIF(), 3.0),
        ms.Flatten(), ms.Dense(4 * 4 * 4, 3, rng=rng), Neurons(LIF(), 3.0), ms.Dense(3, 2, rng=rng),
    )


@pytest.mark.parametrize("path", ["event", "dense"])
def test_automatic_batch_chunk_counts_the_buffers_the_blocks_hold(monkeypatch, path):
    """``batch_chunk=None`` sizes the chunks by the bytes the block buffers really take: a spike
    map into an event-driven conv is one byte per neuron, a Flatten holds nothing."""
    import minisnn.simulate as sim

    rng = np.random.default_rng(4)
    net = conv_dense_net(rng)
    x = rng.uniform(0, 1, (5, 2, 8, 8)).astype(np.float32)
    held = {}
    real_buffer = sim._buffer

    def spy(buffers, name, shape, dtype):
        held[name] = max(held.get(name, 0), int(np.prod(shape)) * np.dtype(dtype).itemsize)
        return real_buffer(buffers, name, shape, dtype)

    monkeypatch.setattr(sim, "_buffer", spy)
    plan = sim._plan(net, x, 12, {None: (6, 12)}, 0.8, 0.001, path, False, 6, None, "float32")
    per_step = sim._block_bytes_per_input_step(plan.middle, plan.out_shapes, plan.maps, 4)
    monkeypatch.setattr(sim, "BLOCK_BYTES", 2 * 6 * per_step)  # two inputs per chunk, exactly
    res = simulate(net, x, 12, synapse=0.005, time_chunk=6, path=path)
    assert sum(held.values()) == 2 * 6 * per_step
    # the spikes into the event-driven conv and (through the Flatten) Dense: uint8 maps
    assert sorted(plan.maps) == (["1", "3"] if path == "event" else [])
    whole = simulate(net, x, 12, synapse=0.005, time_chunk=6, path=path, batch_chunk=5)
    assert res.spike_counts == whole.spike_counts


def test_shape_pass_stops_running_layers_once_the_wanted_rates_are_known():
    """The plan's ANN pass measures only the rates that choose the paths; the Flatten, Dense
    and Neurons layers after the last of them get their shapes without running, the same
    shapes as a full pass gives."""
    import minisnn.simulate as sim

    rng = np.random.default_rng(5)
    net = conv_dense_net(rng)
    x = rng.uniform(0, 1, (1, 2, 8, 8)).astype(np.float32)
    every, some = {}, {}
    full = sim._layer_shapes(net, x.shape[1:], x, every)
    ran = []  # the layers the pass runs

    def recorded(layer):
        forward = layer.forward

        def run(*args, **kwargs):
            ran.append(layer)
            return forward(*args, **kwargs)
        return run

    for layer in net:
        layer.forward = recorded(layer)
    part = sim._layer_shapes(net, x.shape[1:], x, some, ["1"])
    assert part == full and set(every) == {"1", "3", "6"} and some == {"1": every["1"]}
    assert [type(layer).__name__ for layer in ran] == ["Conv2d", "Neurons", "Conv2d"]
