"""ANN -> SNN conversion and hybrid fine-tuning (minisnn.hybrid)."""

import numpy as np
import pytest

import minisnn as ms
from minisnn import functional as F
from minisnn.gradcheck import gradcheck
from minisnn.kernels.lowpass import (lowpass_scan_grad_numba, lowpass_scan_grad_numpy, lowpass_scan_numba,
                                     lowpass_scan_numpy)
from minisnn.hybrid import (HybridNeuronsFn, SpikingScanFn, TimeWindowMeanFn, convert, hybrid_loss,
                            measure, per_step_forward, replay)
from minisnn.layers import Neurons, NeuronsFn
from minisnn.neurons import LIF, LIFRate, RectifiedLinear, SoftLIFRate, SpikingRectifiedLinear
from minisnn.simulate import simulate
from naive_sim import simulate_time_major
from minisnn.train import RateRegularizer, ann_loss, fit, forward_with_activations


def conv_net(neuron, seed=1, scale=1.0, wmul=1.0, bias=0.0):
    rng = np.random.default_rng(seed)
    net = ms.Sequential(
        ms.Conv2d(2, 4, 3, padding=1, rng=rng, dtype=np.float64),
        Neurons(neuron, scale),
        ms.Conv2d(4, 4, 3, stride=2, padding=1, rng=rng, dtype=np.float64),
        Neurons(neuron, scale),
        ms.Flatten(),
        ms.Dense(4 * 4 * 4, 3, rng=rng, dtype=np.float64),
    )
    for layer in (net[0], net[2]):
        layer.w.data = layer.w.data * wmul
        layer.b.data[:] = bias
    return net


def dense_net(neuron, seed=1, scale=1.0, sizes=(2, 16, 16, 1)):
    rng = np.random.default_rng(seed)
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(ms.Dense(sizes[i], sizes[i + 1], rng=rng, dtype=np.float64))
        if i < len(sizes) - 2:
            layers.append(Neurons(neuron, scale))
    return ms.Sequential(*layers)


def grads(model):
    return [p.grad.copy() for p in model.parameters()]


def cosine(a, b):
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


# ----------------------------------------------------------------------------- convert


def test_convert_swaps_models_keeps_gradient_model_and_copies_weights():
    ann = conv_net(SoftLIFRate(sigma=0.005, amplitude=0.01))
    before = ann.state_dict()
    snet = convert(ann, synapse=0.005, steps=40)
    assert isinstance(snet.net[1].model, LIF) and isinstance(snet.net[3].model, LIF)
    assert snet.net[1].model.amplitude == 0.01
    # the gradient model is the SoftLIFRate the ANN was trained with, not LIFRate
    assert snet.grad_models["1"] == SoftLIFRate(sigma=0.005, amplitude=0.01)
    assert isinstance(ann[1].model, SoftLIFRate)  # the ANN is untouched
    for k, v in snet.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    snet.net[0].w.data += 1.0  # separate copies
    np.testing.assert_array_equal(ann[0].w.data, before["0.w"])
    # the state dicts have the same keys: ANN weights load into the SNN and back
    snet.load_state_dict(ann.state_dict())
    ann.load_state_dict(snet.state_dict())
    assert snet.settings["synapse"] == 0.005 and snet.settings["steps"] == 40


def test_convert_scale_firing_rates_and_neuron_map():
    ann = dense_net(RectifiedLinear(), sizes=(3, 5, 4, 2))
    snet = convert(ann, scale_firing_rates=100.0)
    for name in ("1", "3"):
        layer = snet.net[int(name)]
        assert isinstance(layer.model, SpikingRectifiedLinear)
        assert layer.gain == 100.0 and layer.spiking_model.amplitude == pytest.approx(0.01)
        assert snet.grad_models[name] == RectifiedLinear(amplitude=0.01)
    snet = convert(ann, scale_firing_rates={3: 10.0})
    assert snet.net[1].gain == 1.0 and snet.net[3].gain == 10.0
    # the rate function of a ReLU net does not change with the scale
    x = np.random.default_rng(0).uniform(-1, 1, (6, 3))
    with ms.no_grad():
        np.testing.assert_allclose(measure(snet, x, spiking=False)[0], ann(x).data, rtol=1e-12)
    snet = convert(ann, neuron_map={RectifiedLinear: LIF(tau_rc=0.05)})
    assert snet.net[1].model == LIF(tau_rc=0.05)
    snet = convert(ann, neuron_map={1: LIF()})
    assert isinstance(snet.net[1].model, LIF) and isinstance(snet.net[3].model, SpikingRectifiedLinear)
    with pytest.raises(ValueError, match="not a spiking"):
        convert(ann, neuron_map={1: LIFRate()})
    with pytest.raises(ValueError, match="not a Neurons layer"):
        convert(ann, scale_firing_rates={0: 2.0})
    with pytest.raises(ValueError, match="> 0"):
        convert(ann, scale_firing_rates=0.0)
    with pytest.raises(ValueError, match="no Neurons"):
        convert(ms.Sequential(ms.Dense(2, 2)))


def test_converted_net_runs_like_simulate():
    ann = conv_net(SoftLIFRate(sigma=0.005, amplitude=0.01), bias=4.0)
    snet = convert(ann, synapse=0.005, steps=30, seed=3)
    x = np.random.default_rng(0).uniform(0, 1, (3, 2, 8, 8))
    res = snet.run(x)
    ref = simulate(snet.net, x, 30, synapse=0.005, seed=3)
    np.testing.assert_array_equal(res.readout, ref.readout)
    assert res.rates["1"] > 50


# ----------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("neuron, scale", [(SoftLIFRate(sigma=0.005, amplitude=0.01), 1.0),
                                           (LIFRate(amplitude=0.02), 1.0),
                                           (RectifiedLinear(), 100.0)])
def test_hybrid_gradient_equals_ann_gradient_with_rate_models(neuron, scale):
    """Rate twins forward (no synapse, no time): the replay *is* the ANN, gradients are identical."""
    ann = conv_net(neuron, scale=scale, bias=3.0 if scale == 1 else 0.1)
    rng = np.random.default_rng(5)
    x, y = rng.uniform(0, 1, (4, 2, 8, 8)), rng.uniform(-1, 1, (4, 3))
    reg = RateRegularizer(target=100.0, weight=0.1)
    loss, _ = ann_loss(ann, x, y, F.mse_loss, regularizer=reg)
    loss.backward()
    g_ann = grads(ann)

    snet = convert(ann, synapse=None)
    loss_h, info = hybrid_loss(snet, x, y, F.mse_loss, regularizer=reg, spiking=False)
    assert loss_h.item() == loss.item()
    loss_h.backward()
    for a, b in zip(g_ann, grads(snet)):
        np.testing.assert_array_equal(a, b)

    # the same with the ANN's own activations given to the replay as "measured means"
    with ms.no_grad():
        _, acts = forward_with_activations(ann, x)
    snet.zero_grad()
    out, rep_acts = replay(snet, x, {k: v.data for k, v in acts.items()})
    (F.mse_loss(out, y) + reg(snet.net, rep_acts)).backward()
    for a, b in zip(g_ann, grads(snet)):
        np.testing.assert_array_equal(a, b)

    # the per-step method with rate models and no synapse: T identical steps averaged
    snet.zero_grad()
    loss_p, _ = hybrid_loss(snet, x, y, F.mse_loss, regularizer=reg, method="per-step", steps=4, spiking=False)
    loss_p.backward()
    for a, b in zip(g_ann, grads(snet)):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * np.abs(a).max())


def test_hybrid_neurons_fn_backward_is_the_rate_backward():
    rng = np.random.default_rng(0)
    model = SoftLIFRate(sigma=0.005, amplitude=0.5)
    x = ms.Tensor(rng.uniform(-1, 3, (5, 7)), requires_grad=True)
    dout = rng.standard_normal((5, 7))
    y = HybridNeuronsFn.apply(x, measured=np.full((5, 7), 42.0), model=model, gain=2.0)
    np.testing.assert_array_equal(y.data, 42.0)
    y.backward(dout)
    g = x.grad.copy()
    x.grad = None
    NeuronsFn.apply(x, model=model, gain=2.0).backward(dout)
    np.testing.assert_array_equal(g, x.grad)
    with pytest.raises(ValueError, match="shape"):
        HybridNeuronsFn.apply(x, measured=np.zeros((5, 6)), model=model, gain=1.0)


@pytest.mark.parametrize("synapse", [None, 0.005])
def test_replay_and_per_step_output_equal_the_snn_readout(synapse):
    ann = conv_net(SoftLIFRate(sigma=0.005, amplitude=0.01), wmul=2.0, bias=2.0)
    snet = convert(ann, synapse=synapse, steps=24, seed=2)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1, (3, 2, 8, 8)), rng.uniform(-1, 1, (3, 3))
    _, info = hybrid_loss(snet, x, y, F.mse_loss)
    np.testing.assert_array_equal(info["readout"], info["sim"].readout)  # the suffix is affine
    _, info_p = hybrid_loss(snet, x, y, F.mse_loss, method="per-step")
    # same seeds, same spikes: the unrolled graph reproduces the simulator
    np.testing.assert_allclose(info_p["readout"], info["sim"].readout, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="method"):
        hybrid_loss(snet, x, y, F.mse_loss, method="bptt")


MEASURE_CASES = [
    # name, net builder, input shape, synapse, readout window (None = the second half)
    ("conv softlif->lif, synapse", lambda: conv_net(SoftLIFRate(sigma=0.005, amplitude=0.01), wmul=2.0, bias=2.0),
     (3, 2, 8, 8), 0.005, None),
    ("conv softlif->lif, no synapse, window 7",
     lambda: conv_net(SoftLIFRate(sigma=0.005, amplitude=0.01), wmul=2.0, bias=2.0), (3, 2, 8, 8), None, 7),
    ("conv relu->spiking relu, gain 100", lambda: conv_net(RectifiedLinear(), scale=100.0, wmul=3.0, bias=1.0),
     (2, 2, 8, 8), 0.002, None),
]


@pytest.mark.parametrize("case", MEASURE_CASES, ids=[c[0] for c in MEASURE_CASES])
def test_measured_layer_means_equal_the_time_major_reference(case):
    # what the mean-rate replay feeds back as each hidden layer's output must be that layer's
    # filtered output averaged over the readout window, step by step as the slow reference
    # computes it (a simulator that mis-scaled or mis-windowed a hidden layer's mean would
    # still give the right readout if the readout were checked alone)
    _, build, shape, synapse, window = case
    snet = convert(build(), synapse=synapse, steps=21, seed=3, readout_steps=window)
    x = np.random.default_rng(4).uniform(0, 1, shape)
    readout, means, _ = measure(snet, x)
    ref_readout, spikes, ref_means = simulate_time_major(snet.net, x, 21, synapse=synapse, window=snet.window(),
                                                         seed=3, layer_means=True)
    assert sorted(means) == sorted(ref_means) == ["1", "3"]
    for name in means:
        assert spikes[name].sum() > 0, f"layer {name} never spiked: the case tests nothing"
        np.testing.assert_allclose(means[name], ref_means[name], rtol=1e-12, atol=1e-12, err_msg=f"layer {name}")
    np.testing.assert_allclose(readout, ref_readout, rtol=1e-12, atol=1e-12)
    # and the replay built on them outputs exactly the readout (the suffix is affine)
    out, acts = replay(snet, x, means)
    for name in means:
        np.testing.assert_array_equal(acts[name].data, means[name])
    np.testing.assert_allclose(out.data, readout, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- per-step: layer-major vs time-major

ORDER_CASES = [
    # name, net builder, input shape, synapse, spiking
    ("conv softlif->lif, synapse", lambda: conv_net(SoftLIFRate(sigma=0.005, amplitude=0.01), wmul=2.0, bias=2.0),
     (3, 2, 8, 8), 0.005, True),
    ("conv softlif->lif, no synapse", lambda: conv_net(SoftLIFRate(sigma=0.005, amplitude=0.01), wmul=2.0, bias=2.0),
     (3, 2, 8, 8), None, True),
    ("conv relu->spiking relu, gain 100", lambda: conv_net(RectifiedLinear(), scale=100.0, wmul=3.0, bias=1.0),
     (2, 2, 8, 8), 0.005, True),
    ("dense, rate models", lambda: dense_net(SoftLIFRate(sigma=0.02, amplitude=0.01)), (5, 2), 0.01, False),
]


@pytest.mark.parametrize("case", ORDER_CASES, ids=[c[0] for c in ORDER_CASES])
def test_layer_major_per_step_equals_the_time_major_reference(case):
    _, build, shape, synapse, spiking = case
    snet = convert(build(), synapse=synapse, steps=20, seed=3)
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, shape)
    reg = RateRegularizer(250.0, 0.01)
    seen = {}
    for order in ("time", "layer"):
        snet.zero_grad()
        out, acts = per_step_forward(snet, x, order=order, spiking=spiking)
        y = np.random.default_rng(5).uniform(-1, 1, out.shape)
        (F.mse_loss(out, y) + reg(snet.net, acts)).backward()
        seen[order] = out.data, {k: v.data for k, v in acts.items()}, grads(snet)
    (out_t, acts_t, g_t), (out_l, acts_l, g_l) = seen["time"], seen["layer"]
    assert any(v.any() for v in acts_t.values())  # the layers do fire
    np.testing.assert_allclose(out_l, out_t, rtol=1e-12, atol=1e-14)
    assert acts_l.keys() == acts_t.keys()
    for k in acts_t:
        np.testing.assert_allclose(acts_l[k], acts_t[k], rtol=1e-12, atol=1e-14)
    for a, b in zip(g_t, g_l):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12 * np.abs(a).max())
    with pytest.raises(ValueError, match="order"):
        per_step_forward(snet, x, order="depth")


def _identity_scan(t, a, steps):
    """A SpikingScanFn whose neurons pass a positive current through (``RectifiedLinear``, a rate
    model that is its own gradient model): the node is then the synapse alone."""
    relu = RectifiedLinear()
    return SpikingScanFn.apply(t, model=relu, grad_model=relu, gain=1.0, dt=0.001, state={}, steps=steps,
                               static=False, syn_a=a)


@pytest.mark.parametrize("a", [0.0, 0.3, 0.8187])
def test_lowpass_scan_gradient(a):
    u = np.random.default_rng(0).uniform(0.5, 3.0, (5 * 3, 4))
    assert gradcheck(lambda t: _identity_scan(t, a, 5), u)
    # the recurrence itself, on a unit impulse at step 0 of one unit: (1 - a) a^t
    imp = np.zeros((6, 1))
    imp[0] = 1.0
    np.testing.assert_allclose(_identity_scan(ms.Tensor(imp), a, 6).data[:, 0], (1 - a) * a ** np.arange(6),
                               rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lowpass_scan_kernels_equal_their_references_bit_for_bit(dtype):
    """The compiled scans make the NumPy loops' float32 / float64 multiplies and adds, one at a
    time in the same order: the same bits on any host (no transcendental functions), on a
    strided input too, in place (the graph node filters its neurons' output where it is), and
    for the full graph node (forward and backward)."""
    rng = np.random.default_rng(3)
    u = (rng.standard_normal((7, 2100)) * (rng.uniform(size=(7, 2100)) < 0.3) * 50).astype(dtype)
    strided = np.repeat(u, 2, axis=1)[:, ::2]  # equal to u, not contiguous
    for data in (u, strided):
        for a in (0.0, 0.6065306597126334):
            for fast, slow in ((lowpass_scan_numba, lowpass_scan_numpy),
                               (lowpass_scan_grad_numba, lowpass_scan_grad_numpy)):
                np.testing.assert_array_equal(fast(data, a, np.empty_like(u)), slow(data, a, np.empty_like(u)))
    for a in (0.0, 0.6065306597126334):
        expected = lowpass_scan_numpy(u, a, np.empty_like(u))
        for scan in (lowpass_scan_numba, lowpass_scan_numpy):
            in_place = u.copy()
            np.testing.assert_array_equal(scan(in_place, a, in_place), expected)
    # the adjoint times a derivative, written into the derivative's array (the node's backward)
    scale = (rng.uniform(size=u.shape) * (rng.uniform(size=u.shape) < 0.7)).astype(dtype)
    for a in (0.0, 0.6065306597126334):
        expected = lowpass_scan_grad_numpy(u, a, np.empty_like(u)) * scale
        for grad in (lowpass_scan_grad_numba, lowpass_scan_grad_numpy):
            in_place = scale.copy()
            assert grad(u, a, in_place, scale=in_place) is in_place
            np.testing.assert_array_equal(in_place, expected)
    t = ms.Tensor(np.abs(u).reshape(7 * 3, 700), requires_grad=True)
    y = _identity_scan(t, 0.6065306597126334, 7)
    y.backward(np.ones_like(y.data))
    np.testing.assert_array_equal(y.data.reshape(7, -1), lowpass_scan_numpy(np.abs(u), 0.6065306597126334,
                                                                           np.empty_like(u)))
    # the neurons' derivative is 1 where the current is positive, 0 where it is 0
    np.testing.assert_array_equal(t.grad.reshape(7, -1),
                                  lowpass_scan_grad_numpy(np.ones_like(u), 0.6065306597126334, np.empty_like(u))
                                  * (u != 0))


@pytest.mark.parametrize("static", [False, True])
def test_spiking_scan_backward_is_the_adjoint_then_the_derivative(static):
    """The node's backward (the synapse's adjoint and the product with the derivative in one
    pass when the current changes with time; adjoint, sum over time, product when it is
    static) against the three steps written out, float32, a soft-LIF gradient model in
    float32 and a gain: the same bits."""
    rng = np.random.default_rng(11)
    steps, B, n, a, gain = 6, 3, 700, 0.6065306597126334, 40.0
    x = rng.uniform(-0.01, 0.06, (B if static else steps * B, n)).astype(np.float32)
    dout = rng.standard_normal((steps * B, n)).astype(np.float32)
    model, grad_model = LIF(), SoftLIFRate(sigma=0.02)
    state = model.make_state(B * n, np.random.default_rng(0), np.float32)
    t = ms.Tensor(x, requires_grad=True)
    y = SpikingScanFn.apply(t, model=model, grad_model=grad_model, gain=gain, dt=0.001, state=state,
                            steps=steps, static=static, precision="float32", syn_a=a)
    y.backward(dout)
    J = x * np.float32(gain)
    g = grad_model.rate_grad(J, "float32") * np.float32(gain)
    du = lowpass_scan_grad_numpy(dout.reshape(steps, -1), a, np.empty((steps, B * n), np.float32))
    du = du.reshape(steps, B, n)
    expected = du.sum(axis=0) * g if static else du.reshape(g.shape) * g
    np.testing.assert_array_equal(t.grad, expected)


@pytest.mark.parametrize("window", [1, 3, 5])
def test_time_window_mean_gradient(window):
    y = np.random.default_rng(1).standard_normal((5 * 2, 3, 2))
    assert gradcheck(lambda t: TimeWindowMeanFn.apply(t, steps=5, window=window), y)
    np.testing.assert_allclose(TimeWindowMeanFn.apply(ms.Tensor(y), steps=5, window=window).data,
                               y.reshape(5, 2, 3, 2)[5 - window:].mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("static", [True, False])
def test_spiking_scan_gradient_with_a_rate_model(static):
    # a rate model steps out rate(J) and its gradient model is itself: the node is then a
    # smooth function whose derivative the backward pass must give exactly
    model = SoftLIFRate(sigma=0.05, amplitude=0.01)
    x = np.random.default_rng(2).uniform(0.5, 3, ((3,) if static else (4 * 3,)) + (5,))

    def f(t):
        return SpikingScanFn.apply(t, model=model, grad_model=model, gain=1.7, dt=0.001, state={}, steps=4,
                                   static=static)

    assert gradcheck(f, x)
    out = f(ms.Tensor(x)).data.reshape(4, 3, 5)
    expected = model.rate(1.7 * (x if static else x.reshape(4, 3, 5)))
    np.testing.assert_allclose(out, np.broadcast_to(expected, (4, 3, 5)), rtol=1e-12)


def test_spiking_scan_takes_the_derivative_in_its_precision():
    """With precision "float32" the backward pass uses the float32 SoftLIF derivative (within
    16 ulp of the float64 one, tests/test_neurons.py); the forward pass of a rate model is the
    same in both."""
    model = SoftLIFRate(sigma=0.005, amplitude=0.01)
    rng = np.random.default_rng(5)
    x = (1 + 0.005 * rng.uniform(-100, 100, (4 * 3, 50))).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    out = {}
    for precision in ("float64", "float32"):
        t = ms.Tensor(x, requires_grad=True)
        y = SpikingScanFn.apply(t, model=model, grad_model=model, gain=1.0, dt=0.001, state={}, steps=4,
                                static=False, precision=precision, syn_a=0.6)
        y.backward(dy)
        out[precision] = y.data, t.grad
    np.testing.assert_array_equal(out["float32"][0], out["float64"][0])
    g32, g64 = out["float32"][1], out["float64"][1]
    assert g32.dtype == np.float32 and not np.array_equal(g32, g64)
    np.testing.assert_allclose(g32, g64, rtol=2e-6, atol=1e-6 * np.abs(g64).max())


# ----------------------------------------------------------------------------- mean vs per-step

COSINE_CASES = [
    # name, neuron, gain, weight multiplier, bias
    ("softlif->lif", SoftLIFRate(sigma=0.005, amplitude=0.01), 1.0, 1.0, 4.0),
    ("relu->spiking-relu", RectifiedLinear(), 100.0, 3.0, 1.0),
]
MEASURED_COSINES = {}


@pytest.mark.parametrize("case", COSINE_CASES, ids=[c[0] for c in COSINE_CASES])
def test_mean_rate_and_per_step_gradients_agree(case):
    name, neuron, gain, wmul, bias = case
    ann = conv_net(neuron, scale=gain, wmul=wmul, bias=bias)
    snet = convert(ann, synapse=0.005, steps=100)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (4, 2, 8, 8)), rng.uniform(-1, 1, (4, 3))
    loss_m, info = hybrid_loss(snet, x, y, F.mse_loss)
    loss_m.backward()
    g_mean = grads(snet)
    snet.zero_grad()
    loss_p, _ = hybrid_loss(snet, x, y, F.mse_loss, method="per-step")
    loss_p.backward()
    g_step = grads(snet)
    assert loss_p.item() == pytest.approx(loss_m.item(), rel=1e-10)
    cos = [cosine(a, b) for a, b in zip(g_mean, g_step)]
    MEASURED_COSINES[name] = cos
    print(f"\n{name}: rates {info['sim'].rates} Hz, cosines {np.round(cos, 4).tolist()}")
    assert min(cos) >= 0.95, cos


# ----------------------------------------------------------------------------- toy task


def _regression_data(n, rng):
    x = rng.uniform(-1, 1, (n, 2))
    return x, 0.5 * np.sin(np.pi * x[:, :1]) * np.cos(np.pi * x[:, 1:])


def test_hybrid_fine_tuning_recovers_a_lossy_conversion():
    """A small LIF regression net at T = 10: the converted SNN is far worse than the ANN; a few
    hybrid epochs cut its test loss by well over 30 %."""
    rng = np.random.default_rng(0)
    (xtr, ytr), (xte, yte) = _regression_data(512, rng), _regression_data(256, rng)
    ann = dense_net(SoftLIFRate(sigma=0.005, amplitude=0.01), sizes=(2, 32, 32, 1))
    for layer in (ann[0], ann[2]):
        layer.w.data *= 5
        layer.b.data[:] = 2.0

    def ann_mse():
        with ms.no_grad():
            return float(np.mean((ann(xte).data - yte) ** 2))

    fit(ann, lambda x, y: ann_loss(ann, x, y), (xtr, ytr), val_fn=ann_mse, epochs=40, batch_size=32, lr=0.01)
    snet = convert(ann, synapse=0.005, steps=10)

    def snn_mse():
        return float(np.mean((snet.run(xte).readout - yte) ** 2))

    ann_loss_value, converted = ann_mse(), snn_mse()
    hist = fit(snet, lambda x, y: hybrid_loss(snet, x, y, F.mse_loss), (xtr, ytr), val_fn=snn_mse,
               epochs=4, batch_size=32, lr=0.01, seed=0)
    hybrid = snn_mse()
    print(f"\ntoy task test MSE: ANN {ann_loss_value:.4f}, converted SNN {converted:.4f}, "
          f"hybrid SNN {hybrid:.4f} (per epoch {np.round(hist['val'], 4).tolist()})")
    assert converted > 5 * ann_loss_value  # the conversion really loses accuracy
    assert hybrid <= 0.7 * converted
    assert hybrid == hist["best_val"]  # the best epoch's weights are in place


# ----------------------------------------------------------------------------- regularizer


def _under_firing_net():
    net = dense_net(SoftLIFRate(sigma=0.005, amplitude=0.01), seed=3, sizes=(4, 24, 2))
    net[0].w.data *= 0.5
    net[0].b.data[:] = 1.2  # ~15-40 Hz
    return net


def test_regularizer_pulls_an_under_firing_ann_layer_to_the_target():
    net = _under_firing_net()
    x = np.random.default_rng(0).uniform(-1, 1, (128, 4))
    y = np.zeros((128, 2))
    reg = RateRegularizer(target=150.0, weight=1.0, normalized=True)

    def mean_rate():
        with ms.no_grad():
            _, acts = forward_with_activations(net, x)
        return float(net[1].rate_hz(acts["1"].data).mean())

    before = mean_rate()
    assert before < 0.5 * 150
    fit(net, lambda xb, yb: ann_loss(net, xb, yb, regularizer=reg), (x, y), epochs=30, batch_size=32, lr=0.1)
    after = mean_rate()
    print(f"\nANN layer rate {before:.1f} Hz -> {after:.1f} Hz (target 150)")
    assert abs(after - 150) <= 0.2 * 150


def test_regularizer_pulls_measured_snn_rates_to_the_target():
    snet = convert(_under_firing_net(), synapse=0.005, steps=60)
    x = np.random.default_rng(0).uniform(-1, 1, (128, 4))
    y = np.zeros((128, 2))
    reg = RateRegularizer(target=150.0, weight=1.0, normalized=True)
    before = snet.run(x).rates["1"]
    fit(snet, lambda xb, yb: hybrid_loss(snet, xb, yb, F.mse_loss, regularizer=reg), (x, y),
        epochs=30, batch_size=32, lr=0.1)
    after = snet.run(x).rates["1"]
    print(f"\nSNN layer rate {before:.1f} Hz -> {after:.1f} Hz (target 150)")
    assert before < 0.5 * 150
    assert abs(after - 150) <= 0.2 * 150


def test_regularizer_forms():
    net = _under_firing_net()
    x = np.random.default_rng(1).uniform(-1, 1, (8, 4))
    _, acts = forward_with_activations(net, x)
    rate = net[1].rate_hz(acts["1"].data)
    hz = RateRegularizer(target=250.0, weight=0.01, normalized=False)(net, acts).item()
    assert hz == pytest.approx(0.01 * np.mean((rate - 250) ** 2))
    norm = RateRegularizer(target=250.0, weight=0.01 * 250**2, normalized=True)(net, acts).item()
    assert norm == pytest.approx(hz)
    assert RateRegularizer(target=250.0, weight={"1": 2.0}, layers=["1"])(net, acts).item() == pytest.approx(
        2.0 * np.mean(((rate - 250) / 250) ** 2))
    with pytest.raises(ValueError, match="no activations"):
        RateRegularizer(layers=["0"])(net, acts)
    with pytest.raises(ValueError, match="target"):
        RateRegularizer(target=0.0)
