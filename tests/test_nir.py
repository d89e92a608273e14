"""NIR export and import (minisnn.interchange) and ``minisnn-export nir``.

* round trips: export -> nir.write -> nir.read -> import -> simulate gives the very same
  spikes and readouts as the original net (tau_ref = 0, no voltage floor), for a conv net like
  LocNet and for dense nets (IF, gains, no synapse);
* graphs built by hand with the nir API, simulated here, against the discrete equations of
  the module docstring written out as NumPy loops;
* malformed and unsupported graphs, and nets NIR cannot hold: one clear error each;
* the command line on tiny checkpoints.
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from click.testing import CliRunner  # noqa: E402

from minisnn.apps.cli import train_main  # noqa: E402
from minisnn.apps.export import export_main  # noqa: E402
from minisnn.hybrid import SpikingNet, convert  # noqa: E402
from minisnn.interchange import NO_FLOOR, NIRError, from_nir, read_nir, to_nir, write_nir  # noqa: E402
from minisnn.layers import AvgPool2d, Conv2d, ConvTranspose2d, Dense, Flatten, Neurons, Sequential  # noqa: E402
from minisnn.neurons import LIF, IntegrateAndFire, RectifiedLinear, SoftLIFRate, SpikingRectifiedLinear  # noqa: E402

EXACT_LIF = LIF(tau_rc=0.02, tau_ref=0.0, min_voltage=NO_FLOOR, amplitude=0.01)


def _roundtrip(snet, input_shape, tmp_path, **kw):
    graph = to_nir(snet, input_shape, **kw)
    path = tmp_path / "net.nir"
    write_nir(graph, path)
    return graph, from_nir(nir.read(str(path)), steps=snet.steps, seed=snet.seed)


def _assert_same_run(a: SpikingNet, b: SpikingNet, x):
    ra, rb = a.run(x, keep_layer_means=True), b.run(x, keep_layer_means=True)
    assert ra.spike_counts == rb.spike_counts
    assert sum(ra.spike_counts.values()) > 0
    for name in ra.layer_means:
        np.testing.assert_array_equal(ra.layer_means[name], rb.layer_means[name])
    np.testing.assert_array_equal(ra.readout, rb.readout)


def _locnet_like(rng, tau_ref=0.0):
    def neurons():
        return Neurons(SoftLIFRate(sigma=0.005, tau_ref=tau_ref, amplitude=0.01))

    net = Sequential(Conv2d(3, 4, 3, padding=1, rng=rng), neurons(), Conv2d(4, 6, 3, stride=2, padding=1, rng=rng),
                     neurons(), AvgPool2d(2), Flatten(), Dense(6 * 3 * 4, 10, rng=rng), neurons(),
                     Dense(10, 4, rng=rng))
    for layer in net:
        if isinstance(layer, (Conv2d, Dense)):
            layer.w.data *= 4.0
            layer.b.data[...] = rng.uniform(0.5, 3.0, layer.b.shape)
    return net


# ----------------------------------------------------------------------------- round trips


def test_conv_net_round_trip_gives_the_same_spikes(rng, tmp_path):
    net = _locnet_like(rng)
    snet = convert(net, synapse=0.002, neuron_map={SoftLIFRate: EXACT_LIF}, steps=25, seed=3)
    graph, back = _roundtrip(snet, (3, 12, 16), tmp_path)
    kinds = [type(graph.nodes[a]).__name__ for a, _ in graph.edges] + ["Output"]
    assert kinds == ["Input", "Conv2d", "LIF", "LI", "Conv2d", "LIF", "LI", "AvgPool2d", "Flatten", "Affine", "LIF",
                     "LI", "Affine", "Output"]
    assert back.synapse == 0.002 and back.dt == 0.001
    x = rng.standard_normal((4, 3, 12, 16)).astype(np.float32)
    _assert_same_run(snet, back, x)


def test_dense_nets_round_trip_with_gains_if_neurons_and_no_synapse(rng, tmp_path):
    for model, gain, synapse in ((LIF(tau_rc=0.05, tau_ref=0.0, min_voltage=NO_FLOOR, amplitude=0.3), 3.0, 0.005),
                                 (IntegrateAndFire(amplitude=0.7), 0.37, None)):
        net = Sequential(Dense(5, 12, rng=rng), Neurons(model, gain), Dense(12, 7, rng=rng), Neurons(model, gain),
                         Dense(7, 2, rng=rng))
        for layer in net:
            if isinstance(layer, Dense):
                layer.w.data *= 20.0
                layer.b.data[...] = 40.0
        snet = SpikingNet(net=net, grad_models={}, synapse=synapse, steps=40, seed=1)
        graph, back = _roundtrip(snet, (5,), tmp_path)
        assert any(isinstance(n, nir.Scale if synapse is None else nir.LI) for n in graph.nodes.values())
        assert back.net[1].gain == gain
        _assert_same_run(snet, back, rng.standard_normal((6, 5)).astype(np.float32))


def test_dropped_refractory_period_and_floor_export_the_net_without_them(rng, tmp_path):
    net = _locnet_like(rng, tau_ref=0.002)
    snet = convert(net, synapse=0.002, steps=25)
    _, back = _roundtrip(snet, (3, 12, 16), tmp_path, drop_refractory=True, drop_voltage_floor=True)
    exact = copy.deepcopy(snet)
    for _, layer in exact.neuron_layers():
        layer.model = layer.model.replace(tau_ref=0.0, min_voltage=NO_FLOOR)
    x = rng.standard_normal((3, 3, 12, 16)).astype(np.float32)
    _assert_same_run(exact, back, x)
    assert snet.run(x).spike_counts != back.run(x).spike_counts  # what was dropped did change the spikes


def test_time_constants_are_written_in_seconds(rng):
    net = Sequential(Dense(2, 3, rng=rng), Neurons(LIF(tau_rc=0.02, tau_ref=0.0, min_voltage=NO_FLOOR)),
                     Dense(3, 1, rng=rng))
    graph = to_nir(SpikingNet(net=net, grad_models={}, synapse=0.005, dt=0.0005), (2,))
    lif = next(n for n in graph.nodes.values() if isinstance(n, nir.LIF))
    li = next(n for n in graph.nodes.values() if isinstance(n, nir.LI))
    np.testing.assert_array_equal(lif.tau, [0.02] * 3)
    np.testing.assert_array_equal(li.tau, [0.005] * 3)
    assert graph.metadata["time_unit"] == "s" and graph.metadata["dt"] == 0.0005
    assert from_nir(graph).dt == 0.0005 and from_nir(graph, dt=0.002).dt == 0.002


# ----------------------------------------------------------------------------- hand-built graphs, hand trajectories


def _initial_voltage(layer_index, sample, units, seed=0):
    """minisnn's initial state (simulate.initial_state): U(0, 1) from (seed, layer, input)."""
    return np.random.default_rng([seed, layer_index, sample]).uniform(0.0, 1.0, units)


def test_affine_lif_li_graph_matches_the_discrete_equations(rng):
    W1, b1 = rng.uniform(-1, 2, (6, 3)), rng.uniform(0.5, 2.0, 6)
    W2, b2 = rng.standard_normal((2, 6)), rng.standard_normal(2)
    tau, r, thr, tau_syn, amp = 0.03, 1.7, 1.4, 0.004, 0.05
    full = lambda v: np.full(6, v)  # noqa: E731
    graph = nir.NIRGraph(
        nodes={"in": nir.Input(np.array([3])), "fc1": nir.Affine(W1, b1),
               "lif": nir.LIF(tau=full(tau), r=full(r), v_leak=full(0.0), v_threshold=full(thr), v_reset=full(0.0)),
               "syn": nir.LI(tau=full(tau_syn), r=full(amp), v_leak=full(0.0)), "fc2": nir.Affine(W2, b2),
               "out": nir.Output(np.array([2]))},
        edges=[("in", "fc1"), ("fc1", "lif"), ("lif", "syn"), ("syn", "fc2"), ("fc2", "out")])
    dt, T = 0.001, 60
    snet = from_nir(graph, dt=dt, steps=T)
    x = rng.uniform(-1, 1, (3, 3))
    res = snet.run(x)

    a = math.exp(-dt / tau_syn)
    window = range(T - (T + 1) // 2, T)
    for i in range(len(x)):
        J = r * (W1 @ x[i] + b1) / thr        # normalised: threshold 1
        v, y, acc, spikes = _initial_voltage(0, i, 6), np.zeros(6), np.zeros(2), 0
        for t in range(T):
            v = J + (v - J) * math.exp(-dt / tau)  # exact for J held over the step
            z = v > 1.0
            v[z] = 0.0
            spikes += z.sum()
            y = a * y + (1 - a) * amp * z / dt
            if t in window:
                acc += W2 @ y + b2
        assert spikes > 0
        np.testing.assert_allclose(res.readout[i], acc / len(window), rtol=1e-9, atol=1e-12)


def test_conv_if_avgpool_graph_matches_the_discrete_equations(rng):
    w = rng.uniform(-600, 600, (2, 1, 3, 3))
    b = np.array([-300.0, 300.0])
    W2, b2 = rng.uniform(-1.0, 1.0, (3, 8)), np.array([-100.0, 0.0, 100.0])
    thr = 2.0
    shape = (2, 4, 4)
    graph = nir.NIRGraph.from_list(
        nir.Input(np.array([1, 4, 4])),
        nir.Conv2d(input_shape=(4, 4), weight=w, stride=1, padding=1, dilation=1, groups=1, bias=b),
        nir.IF(r=np.ones(shape), v_threshold=np.full(shape, thr), v_reset=np.zeros(shape)),
        nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0),
        nir.Affine(W2, b2),
        nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.zeros(3)))
    dt, T = 0.001, 40
    snet = from_nir(graph, dt=dt, steps=T)
    x = rng.uniform(0, 1, (2, 1, 4, 4))
    res = snet.run(x)

    window = range(T - (T + 1) // 2, T)
    went_negative = False
    for i in range(len(x)):
        pad = np.pad(x[i, 0], 1)
        I = np.array([[[np.sum(w[c, 0] * pad[p:p + 3, q:q + 3]) + b[c] for q in range(4)] for p in range(4)]
                      for c in range(2)])
        J1 = I / thr                          # normalised: threshold 1
        v1, v2, acc = _initial_voltage(0, i, 32).reshape(shape), _initial_voltage(1, i, 3), np.zeros(3)
        for t in range(T):
            v1 = v1 + J1 * dt
            z1 = v1 > 1.0
            v1[z1] = 0.0                      # reset to zero: the excess is lost
            pooled = (z1 / dt).reshape(2, 2, 2, 2, 2).mean(axis=(2, 4)).reshape(-1)
            J2 = W2 @ pooled + b2
            v2 = v2 + J2 * dt                 # negative currents lower the voltage: no rectification
            went_negative |= bool((J2 < 0).any())
            z2 = v2 > 1.0
            v2[z2] = 0.0
            if t in window:
                acc += z2 / dt
        np.testing.assert_allclose(res.readout[i], acc / len(window), rtol=1e-12)
    assert went_negative and res.spike_counts["1"] > 0 and res.spike_counts["5"] > 0


def test_cubalif_runs_as_the_synapse_moved_onto_the_spikes_below(rng):
    W1, b1, W2 = rng.uniform(0, 3, (5, 2)), np.full(5, 1.5), rng.uniform(0, 40, (4, 5))
    f5, f4 = (lambda v: np.full(5, v)), (lambda v: np.full(4, v))  # noqa: E731
    graph = nir.NIRGraph.from_list(
        nir.Input(np.array([2])), nir.Affine(W1, b1),
        nir.LIF(tau=f5(0.02), r=f5(1.0), v_leak=f5(0.0), v_threshold=f5(1.0)),
        nir.Linear(W2),
        nir.CubaLIF(tau_syn=f4(0.005), tau_mem=f4(0.01), r=f4(1.0), v_leak=f4(0.0), v_threshold=f4(1.0)),
        nir.LI(tau=f4(0.005), r=f4(1.0), v_leak=f4(0.0)))
    snet = from_nir(graph, steps=50)
    assert snet.synapse == 0.005 and snet.net[3].model.tau_rc == 0.01
    lif = LIF(tau_rc=0.02, tau_ref=0.0, min_voltage=NO_FLOOR)
    ref = Sequential(Dense(2, 5, rng=rng), Neurons(lif), Dense(5, 4, bias=False, rng=rng),
                     Neurons(lif.replace(tau_rc=0.01)))
    ref[0].w.data, ref[0].b.data, ref[2].w.data = W1.copy(), b1.copy(), W2.copy()
    ref = SpikingNet(net=ref.astype(np.float64), grad_models={}, synapse=0.005, steps=50)
    _assert_same_run(ref, snet, rng.uniform(0, 1, (3, 2)))


# ----------------------------------------------------------------------------- what is refused


def _chain(*nodes):
    return nir.NIRGraph.from_list(*nodes, type_check=False)


def _lif(n):
    return nir.LIF(tau=np.full(n, 0.02), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n))


def _affine(n_in, n_out):
    return nir.Affine(np.ones((n_out, n_in)), np.zeros(n_out))


def _refused(graph, *words):
    with pytest.raises(NIRError) as info:
        from_nir(graph)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


class NIRConvTranspose2d(nir.NIRNode):
    """Not a NIR primitive: what a transposed convolution would look like if a tool invented one."""

    def __init__(self):
        self.input_type, self.output_type, self.metadata = {"input": None}, {"output": None}, {}


NIRConvTranspose2d.__name__ = "ConvTranspose2d"


def test_unsupported_primitives_are_refused_by_name():
    cuba = nir.CubaLIF(tau_syn=np.full(3, 0.005), tau_mem=np.full(3, 0.02), r=np.ones(3), v_leak=np.zeros(3),
                       v_threshold=np.ones(3))
    _refused(_chain(nir.Input(np.array([2])), _affine(2, 3), cuba), "cubalif", "first spiking node")
    _refused(_chain(nir.Input(np.array([3])), _lif(3), nir.LI(np.full(3, 0.005), np.ones(3), np.zeros(3)),
                    nir.Linear(np.ones((3, 3))), cuba), "already has an LI synapse")
    _refused(_chain(nir.Input(np.array([3])), _affine(3, 3), _lif(3), nir.Delay(np.ones(3))), "Delay",
             "cannot run")
    _refused(_chain(nir.Input(np.array([3])), _affine(3, 3), _lif(3), NIRConvTranspose2d()), "ConvTranspose2d",
             "cannot run")
    _refused(_chain(nir.Input(np.array([3])), _affine(3, 3), nir.Threshold(np.ones(3))), "Threshold")
    grouped = nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)), stride=1, padding=1, dilation=1, groups=2,
                         bias=np.zeros(2))
    _refused(_chain(nir.Input(np.array([2, 4, 4])), grouped), "groups")
    _refused(_chain(nir.Input(np.array([3])), _affine(3, 3), nir.LI(np.full(3, 0.005), np.ones(3), np.zeros(3))),
             "LI", "does not follow a spiking node")
    leaky = nir.LIF(tau=np.full(3, 0.02), r=np.ones(3), v_leak=np.full(3, 0.5), v_threshold=np.ones(3))
    _refused(_chain(nir.Input(np.array([3])), _affine(3, 3), leaky), "v_leak")
    _refused(_chain(nir.Input(np.array([3])), _affine(3, 3)), "no spiking node")


def test_malformed_graphs_are_refused():
    nodes = {"in": nir.Input(np.array([3])), "fc": _affine(3, 3), "lif": _lif(3), "out": nir.Output(np.array([3]))}
    ok = [("in", "fc"), ("fc", "lif"), ("lif", "out")]
    assert from_nir(nir.NIRGraph(nodes=dict(nodes), edges=ok)).net is not None  # the intact graph imports
    _refused(nir.NIRGraph(nodes=dict(nodes), edges=ok[:2], type_check=False), "'lif'", "missing edge")
    _refused(nir.NIRGraph(nodes=dict(nodes), edges=[ok[0], ok[2]], type_check=False), "'fc'")
    _refused(nir.NIRGraph(nodes=dict(nodes), edges=ok + [("lif", "fc")], type_check=False), "cycle", "'fc'", "'lif'")
    _refused(nir.NIRGraph(nodes=dict(nodes), edges=ok + [("in", "lif")], type_check=False), "'in'", "branches")
    _refused(nir.NIRGraph(nodes=dict(nodes), edges=ok + [("fc", "ghost")], type_check=False), "'ghost'")
    two_taus = _chain(nir.Input(np.array([3])), _affine(3, 3), _lif(3),
                      nir.LI(np.full(3, 0.005), np.ones(3), np.zeros(3)), _affine(3, 3), _lif(3),
                      nir.LI(np.full(3, 0.002), np.ones(3), np.zeros(3)))
    _refused(two_taus, "one Lowpass")


def test_a_file_that_is_not_nir_is_refused_naming_it(tmp_path):
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(NIRError, match="bad.nir"):
        from_nir(bad)
    with pytest.raises(NIRError, match="no such file"):
        read_nir(tmp_path / "missing.nir")


def test_export_refuses_what_nir_cannot_hold(rng):
    snet = convert(_locnet_like(rng, tau_ref=0.002), synapse=0.002)
    with pytest.raises(NIRError, match=r"layer 1 \(LIF\).*tau_ref = 0.002"):
        to_nir(snet, (3, 12, 16))
    with pytest.raises(NIRError, match=r"layer 1 \(LIF\).*min_voltage"):
        to_nir(snet, (3, 12, 16), drop_refractory=True)
    assert to_nir(snet, (3, 12, 16), drop_refractory=True, drop_voltage_floor=True).nodes
    relu = Sequential(Dense(3, 4, rng=rng), Neurons(RectifiedLinear(), 10.0), Dense(4, 1, rng=rng))
    with pytest.raises(NIRError, match="SpikingRectifiedLinear"):
        to_nir(relu, (3,))
    graph = to_nir(relu, (3,), drop_subtractive_reset=True)
    assert isinstance(graph.nodes["1_if"], nir.IF)
    cae = Sequential(Conv2d(1, 2, 3, padding=1, rng=rng), Neurons(SpikingRectifiedLinear()),
                     ConvTranspose2d(2, 1, 2, stride=2, rng=rng))
    with pytest.raises(NIRError, match=r"layer 2 \(ConvTranspose2d\).*transposed convolution"):
        to_nir(cae, (1, 4, 4), drop_subtractive_reset=True)


def test_importing_minisnn_does_not_import_nir():
    code = "import sys, minisnn, minisnn.interchange, minisnn.apps.export; print('nir' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny LocNets trained by minisnn-train: the default tau_ref (0.002 s) and --tau-ref 0."""
    out = {}
    for name, extra in (("default", []), ("tau0", ["--tau-ref", "0"])):
        folder = tmp_path_factory.mktemp(name)
        result = CliRunner().invoke(train_main, ["loc", "--preset", "tiny", "--quiet", "--no-cache", "--out",
                                                 str(folder)] + extra)
        assert result.exit_code == 0, result.output
        out[name] = folder / "hybrid_snn.npz"
    return out


def _export(*args):
    return CliRunner().invoke(export_main, ["nir", *map(str, args)])


def test_help_explains_every_option():
    result = _export("--help")
    assert result.exit_code == 0
    for option in ("--drop-refractory", "--drop-voltage-floor", "--data", "--steps", "--overwrite", "--threads",
                   "--quiet", "seconds"):
        assert option in result.output, option


def test_refractory_period_is_refused_without_the_flag(checkpoints, tmp_path):
    result = _export(checkpoints["default"], tmp_path / "a.nir")
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1 and "Traceback" not in result.output
    assert "tau_ref = 0.002" in result.output and "--drop-refractory" in result.output
    assert not (tmp_path / "a.nir").exists()


def test_drop_refractory_writes_the_graph_and_prints_the_cost(checkpoints, tmp_path):
    out = tmp_path / "a.nir"
    result = _export(checkpoints["default"], out, "--drop-refractory", "--drop-voltage-floor", "--quiet")
    assert result.exit_code == 0, result.output
    assert "cost of dropping the refractory period (tau_ref 0.002 s) and the voltage floor" in result.output
    for label in ("original", "tau_ref 0", "as exported"):
        assert f"  {label}" in result.output and "mean IoU" in result.output
    graph = nir.read(str(out))
    assert sum(isinstance(n, nir.LIF) for n in graph.nodes.values()) == 9
    assert all(float(n.tau.flat[0]) == 0.02 for n in graph.nodes.values() if isinstance(n, nir.LIF))
    assert _export(checkpoints["default"], out, "--drop-refractory", "--drop-voltage-floor").exit_code == 2  # exists


def test_tau_ref_0_checkpoint_needs_no_drop_refractory(checkpoints, tmp_path):
    result = _export(checkpoints["tau0"], tmp_path / "b.nir")
    assert result.exit_code == 2 and "min_voltage" in result.output and "tau_ref" not in result.output
    result = _export(checkpoints["tau0"], tmp_path / "b.nir", "--drop-voltage-floor", "--quiet")
    assert result.exit_code == 0, result.output
    assert "cost of dropping the voltage floor" in result.output and "refractory" not in result.output


def test_a_seg_checkpoint_is_refused_naming_the_transposed_convolution(tmp_path):
    from minisnn.apps.pipeline import checkpoint_meta
    from minisnn.apps.seg import SegTask, make_config
    from minisnn.io import save_checkpoint

    task = SegTask(make_config("tiny"))
    task.crop = [4, 16, 16]
    save_checkpoint(tmp_path / "ann.npz", task.build().state_dict(), checkpoint_meta(task, "ann"))
    result = _export(tmp_path / "ann.npz", tmp_path / "cae.nir", "--drop-refractory", "--drop-voltage-floor")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "ConvTranspose2d" in result.output and "transposed convolution" in result.output


def test_bad_checkpoints_end_in_one_line(tmp_path):
    bogus = tmp_path / "bogus.npz"
    bogus.write_bytes(b"nope")
    for path in (bogus, tmp_path / "missing.npz"):
        result = _export(path, tmp_path / "x.nir")
        assert result.exit_code == 2 and path.name in result.output and "Traceback" not in result.output
