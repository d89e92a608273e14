"""The task-independent parts of the apps (minisnn.apps.common)."""

import numpy as np
import pytest

import minisnn as ms
from minisnn.apps import common
from minisnn.hybrid import convert
from minisnn.layers import Neurons
from minisnn.neurons import RectifiedLinear


def tiny_snet():
    rng = np.random.default_rng(0)
    net = ms.Sequential(ms.Dense(5, 8, rng=rng, dtype=np.float64), Neurons(RectifiedLinear(), 200.0),
                        ms.Dense(8, 6, rng=rng, dtype=np.float64), Neurons(RectifiedLinear(), 200.0),
                        ms.Dense(6, 2, rng=rng, dtype=np.float64))
    return convert(net, synapse=0.005, seed=1)


def test_metric_vs_steps_reuses_runs_and_equals_one_run_per_T(monkeypatch):
    snet = tiny_snet()
    x = np.random.default_rng(1).uniform(0, 1, (7, 5))
    measure = lambda out: float(out.mean())  # noqa: E731
    steps = (3, 8, 12, 20)
    reference = [measure(common.run_snn(snet, x, T, batch=3).outputs) for T in steps]

    ev = common.run_snn(snet, x, 12, batch=4, also_at=steps)  # covers 3, 8 and 12
    assert sorted(ev.outputs_at) == [3, 8, 12]
    calls = []
    real = common.run_snn
    monkeypatch.setattr(common, "run_snn", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    curve = common.metric_vs_steps(steps, {"m": snet}, x, measure, batch=2, evals={"m": ev})
    assert calls == [20], "only the T the evaluation did not cover needs a run"
    assert curve["steps"] == list(steps)
    np.testing.assert_allclose(curve["m"], reference, rtol=1e-9)
    assert len(set(np.round(reference, 12))) > 1, "the metric must change with T to prove anything"


def test_energy_counts_every_operation_by_hand():
    """tiny_snet: 5 inputs -> 8 neurons -> 6 neurons -> 2 outputs.  The ANN pays 5*8 + 8*6 + 6*2
    MACs and 14 activations; the SNN its first layer's 40 MACs, its synaptic operations, 14 neuron
    updates and 6 + 2 filter updates (layer 2's input currents and the readout) every step."""
    snet = tiny_snet()
    x = np.random.default_rng(2).uniform(0, 1, (3, 5))
    T = 17
    ev = common.run_snn(snet, x, T, batch=2)
    assert ev.sizes == {"1": 8, "3": 6} and ev.filtered == 6 + 2 and ev.first_layer_macs == 40
    assert ev.synops > 0
    pj = common.ENERGY_PJ
    macs = 5 * 8 + 8 * 6 + 6 * 2
    ann = common.energy_fields(macs, 14)
    assert ann["energy_uj"] == (macs * pj["mac"] + 14 * pj["activation"]) * 1e-6
    snn = common.energy_fields(macs, 14, ev)
    parts = [40 * pj["mac"], ev.synops * pj["synop"], T * 14 * pj["neuron_update"], T * 8 * pj["filter_update"]]
    np.testing.assert_allclose(snn["energy_uj"], sum(parts) * 1e-6, rtol=1e-12)
    np.testing.assert_allclose(snn["energy_vs_ann"], sum(parts) / (macs * pj["mac"] + 14 * pj["activation"]),
                               rtol=1e-12)
    np.testing.assert_allclose(snn["energy_vs_ann_synaptic"], sum(parts[:2]) / (macs * pj["mac"]), rtol=1e-12)
    np.testing.assert_allclose(sum(snn["energy_parts_uj"].values()), snn["energy_uj"], rtol=1e-12)
    # the per-operation costs are counts of Horowitz's add (0.9 pJ) and multiply (3.7 pJ)
    add, mul = 0.9, 3.7
    counts = {"mac": (1, 1), "synop": (1, 0), "activation": (1, 0), "neuron_update": (4, 1),
              "filter_update": (2, 1)}
    for op, (adds, muls) in counts.items():
        assert pj[op] == pytest.approx(adds * add + muls * mul, abs=1e-12), op


def test_no_synapse_no_filter_updates():
    snet = tiny_snet()
    snet.synapse = None
    ev = common.run_snn(snet, np.ones((1, 5)), 5)
    assert ev.filtered == 0


def test_random_streams_are_distinct():
    """Every named stream of a run is its own: two uses sharing a number would draw the same
    sequence (the hybrid phase once shuffled with ``seed + 1``, the ANN's stream of the run
    made with ``--seed`` one higher)."""
    from minisnn.apps import common

    streams = {k: v for k, v in vars(common).items() if k.startswith("STREAM_")}
    assert len(streams) >= 6
    assert len(set(streams.values())) == len(streams), streams
