"""Lowpass synapse against nengo.Lowpass(tau).filt."""

from __future__ import annotations

import numpy as np
import pytest

from minisnn.synapses import Lowpass, synapse_coefficient

nengo = pytest.importorskip("nengo")


@pytest.mark.parametrize("tau", [0.005, 0.01, 0.1, 0.0001])
@pytest.mark.parametrize("y0", [0.0, 0.7])
def test_filt_equals_nengo(tau, y0):
    rng = np.random.default_rng(0)
    u = rng.normal(size=(300, 3, 4)) + (rng.uniform(size=(300, 3, 4)) < 0.1) * 1000.0
    for dt in (0.001, 0.0005):
        expected = nengo.Lowpass(tau).filt(u, dt=dt, y0=y0)
        np.testing.assert_allclose(Lowpass(tau).filt(u, dt=dt, y0=y0), expected, rtol=1e-12,
                                   atol=1e-12)


def test_filt_equals_nengo_spike_train_2d():
    rng = np.random.default_rng(1)
    u = (rng.uniform(size=(500, 20)) < 0.05) / 0.001
    np.testing.assert_allclose(Lowpass(0.005).filt(u), nengo.Lowpass(0.005).filt(u, dt=0.001),
                               rtol=1e-12, atol=1e-12)


def test_no_delay_first_output():
    """nengo's filt has no delay: y[0] = (1 - a) * u[0], then geometric decay."""
    a = Lowpass(0.005).coefficient(0.001)
    assert a == pytest.approx(0.8187307530779818, rel=1e-15)
    y = Lowpass(0.005).filt(np.array([1.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(y, (1 - a) * a ** np.arange(4), rtol=1e-14)
    ny = nengo.Lowpass(0.005).filt(np.array([[1.0], [0.0], [0.0], [0.0]]), dt=0.001)[:, 0]
    np.testing.assert_allclose(y, ny, rtol=1e-13)


def test_coefficient_values():
    assert Lowpass(0.01).coefficient(0.001) == pytest.approx(0.9048374180359595, rel=1e-15)
    assert Lowpass(0.1).coefficient() == pytest.approx(0.9900498337491681, rel=1e-15)
    assert Lowpass(0.0).coefficient(0.001) == 0.0
    assert Lowpass(1e-9).coefficient(0.001) == 0.0     # underflows quietly: passthrough


def test_passthrough_tau_zero():
    rng = np.random.default_rng(2)
    u = rng.normal(size=(50, 7))
    np.testing.assert_array_equal(Lowpass(0).filt(u), u)
    np.testing.assert_array_equal(Lowpass(0).filt(u, y0=3.0), u)
    np.testing.assert_array_equal(nengo.Lowpass(0).filt(u, dt=0.001), u)  # nengo agrees
    np.testing.assert_array_equal(Lowpass(1e-9).filt(u), u)


def test_dtype_shape_and_input_untouched():
    u = np.ones((40, 2), dtype=np.float32)
    u0 = u.copy()
    y = Lowpass(0.005).filt(u)
    assert y.dtype == np.float32 and y.shape == u.shape
    np.testing.assert_array_equal(u, u0)
    assert Lowpass(0.005).filt(np.ones(10, dtype=int)).dtype == np.float64
    y1 = Lowpass(0.005).filt(np.ones(400))              # 1-D works (nengo 4.1's filt fails)
    assert y1.shape == (400,) and y1[-1] == pytest.approx(1.0, abs=1e-12)  # unit DC gain
    y64 = Lowpass(0.005).filt(u.astype(np.float64))
    np.testing.assert_allclose(y, y64, rtol=1e-6)


def test_y0_per_channel():
    u = np.zeros((5, 3))
    y0 = np.array([1.0, 2.0, -3.0])
    a = Lowpass(0.02).coefficient(0.001)
    y = Lowpass(0.02).filt(u, y0=y0)
    np.testing.assert_allclose(y, y0 * a ** np.arange(1, 6)[:, None], rtol=1e-14)


@pytest.mark.parametrize("bad", [-0.001, float("nan"), float("inf"), "x"])
def test_bad_tau(bad):
    with pytest.raises(ValueError, match="tau"):
        Lowpass(bad)


@pytest.mark.parametrize("dt", [0.0, -0.001, float("nan")])
def test_bad_dt(dt):
    with pytest.raises(ValueError, match="dt"):
        Lowpass(0.005).coefficient(dt)
    with pytest.raises(ValueError, match="dt"):
        Lowpass(0.005).filt(np.ones((3, 2)), dt=dt)


def test_synapse_coefficient_of_each_way_to_give_a_synapse():
    a = Lowpass(0.005).coefficient(0.001)
    assert synapse_coefficient(None, 0.001) == 0.0
    assert synapse_coefficient(0.005, 0.001) == a
    assert synapse_coefficient(np.float32(0.005), 0.001) == pytest.approx(a, rel=1e-6)  # a NumPy number too
    assert synapse_coefficient(Lowpass(0.005), 0.001) == a
    assert synapse_coefficient(0, 0.001) == 0.0  # tau = 0: a passthrough


@pytest.mark.parametrize("bad", ["0.005", [0.005], object()])
def test_a_synapse_that_is_no_synapse_is_a_one_line_error_naming_the_call(bad):
    with pytest.raises(ValueError, match=r"^convert: synapse must be None, a time constant \(s\) or a Lowpass, got"):
        synapse_coefficient(bad, 0.001, "convert")
    with pytest.raises(ValueError, match="tau"):
        synapse_coefficient(-0.005, 0.001)


def test_repr_eq():
    assert Lowpass(0.005) == Lowpass(0.005) and Lowpass(0.005) != Lowpass(0.01)
    assert repr(Lowpass(0.005)) == "Lowpass(tau=0.005)"
