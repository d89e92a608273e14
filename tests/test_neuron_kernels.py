"""Neuron and synapse kernels: Numba == NumPy reference, thread-count independence, chunking.

Covers the kernels registered by minisnn/kernels/{lif,relu,lowpass}.py.  (The generic test over
every registered kernel lives in tests/test_kernels.py.)  Sizes are small so the file also runs
quickly with NUMBA_DISABLE_JIT=1.
"""

from __future__ import annotations

import numpy as np
import pytest

from minisnn import kernels
from minisnn.kernels import KERNELS, get_num_threads, set_num_threads
from minisnn.kernels.lif import BLOCK, lif_run_numba, lif_run_numpy
from minisnn.kernels.lowpass import lowpass_run_numba, lowpass_run_numpy
from minisnn.kernels.relu import relu_run_numba, relu_run_numpy

NAMES = ["lif_run", "relu_run", "lowpass_run"]
A5 = float(np.exp(-0.001 / 0.005))  # Lowpass(0.005) at dt = 1 ms


def copy_args(args):
    return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)


def assert_same(args1, args2, res1, res2, rtol=0.0):
    """Returned values equal; every array argument equal (exactly, or to rtol)."""
    np.testing.assert_array_equal(res1, res2)
    for a, b in zip(args1, args2):
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype
            if rtol == 0.0:
                np.testing.assert_array_equal(a, b)
            else:
                np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


def lif_args(rng, T=30, M=2 * BLOCK + 37, TJ=None, dtype=np.float64, syn_a=A5):
    TJ = T if TJ is None else TJ
    J = rng.uniform(1.2, 12.0, size=(TJ, M))
    J[:, ::5] = rng.uniform(-2.0, 0.9, size=J[:, ::5].shape)
    voltage = rng.uniform(0.0, 1.0, size=M)
    ref = np.zeros(M)
    ref[::3] = rng.uniform(0.0, 0.0025, size=ref[::3].shape)
    syn = rng.uniform(0.0, 50.0, size=M)
    f = dtype
    return (J.astype(f), voltage.astype(f), ref.astype(f), np.empty((T, M), f), 0.001, 0.02,
            0.002, 0.0, 1.0, syn_a, syn.astype(f))


def relu_args(rng, T=30, M=2 * BLOCK + 37, TJ=None, dtype=np.float64, syn_a=A5):
    TJ = T if TJ is None else TJ
    J = rng.uniform(-300.0, 2500.0, size=(TJ, M))
    f = dtype
    return (J.astype(f), rng.uniform(0, 1, M).astype(f), np.empty((T, M), f), 0.001, 1.0, syn_a,
            rng.uniform(0.0, 50.0, M).astype(f))


def lowpass_args(rng, T=30, M=2 * BLOCK + 37, dtype=np.float64):
    u = (rng.uniform(size=(T, M)) < 0.2) * 1000.0
    f = dtype
    return (u.astype(f), rng.uniform(0, 5, M).astype(f), A5, np.empty((T, M), f))


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_example_matches(name):
    pair = KERNELS[name]
    args = pair.example(np.random.default_rng(0))
    a1, a2 = copy_args(args), copy_args(args)
    assert_same(a1, a2, pair.reference(*a1), pair.fast(*a2))


def test_kernels_init_imports_modules():
    assert {"lif_run", "relu_run", "lowpass_run"} <= set(kernels.KERNELS)


# ---------------------------------------------------------------------------------------------
# Numba == NumPy reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("TJ", [1, None])
@pytest.mark.parametrize("syn_a", [0.0, A5])
def test_lif_run_numba_equals_reference_f64(TJ, syn_a):
    args = lif_args(np.random.default_rng(1), TJ=TJ, syn_a=syn_a)
    a1, a2 = copy_args(args), copy_args(args)
    c1, c2 = lif_run_numpy(*a1), lif_run_numba(*a2)
    np.testing.assert_array_equal(c1, c2)                   # spike counts
    if syn_a == 0.0:
        np.testing.assert_array_equal(a1[3], a2[3])         # spike trains exactly
    assert_same(a1, a2, c1, c2, rtol=1e-12)                 # state to tight tolerance
    assert c1.dtype == np.int64 and c1.sum() > 100


@pytest.mark.parametrize("syn_a", [0.0, A5])
def test_relu_run_numba_equals_reference_bitwise(syn_a):
    for dtype in (np.float64, np.float32):
        args = relu_args(np.random.default_rng(2), dtype=dtype, syn_a=syn_a)
        a1, a2 = copy_args(args), copy_args(args)
        assert_same(a1, a2, relu_run_numpy(*a1), relu_run_numba(*a2))  # only + * floor


def test_lowpass_run_numba_equals_reference_bitwise():
    for dtype in (np.float64, np.float32):
        args = lowpass_args(np.random.default_rng(3), dtype=dtype)
        a1, a2 = copy_args(args), copy_args(args)
        assert_same(a1, a2, lowpass_run_numpy(*a1), lowpass_run_numba(*a2))
        assert a2[3].dtype == dtype


@pytest.mark.parametrize("syn_a", [0.0, A5])
def test_lif_run_float32(syn_a):
    """float32 state: every step is computed in float64 and rounded once, in both versions."""
    args = lif_args(np.random.default_rng(4), dtype=np.float32, syn_a=syn_a)
    a1, a2 = copy_args(args), copy_args(args)
    c1, c2 = lif_run_numpy(*a1), lif_run_numba(*a2)
    assert a2[3].dtype == np.float32 and a2[1].dtype == np.float32
    np.testing.assert_array_equal(c1, c2)
    assert_same(a1, a2, c1, c2, rtol=1e-6)
    # the float32 run follows the float64 run closely (no float32 arithmetic inside)
    a64 = copy_args(lif_args(np.random.default_rng(4), dtype=np.float64, syn_a=syn_a))
    c64 = lif_run_numba(*a64)
    assert np.abs(c64 - c2).max() <= 1


def test_scalar_arguments_any_numeric_type():
    """Integer or float32 scalars give the same result as float64 ones."""
    args = lif_args(np.random.default_rng(12), syn_a=0.0)
    a1 = copy_args(args)
    a2 = list(copy_args(args))
    a2[4:9] = [np.float64(0.001), np.float64(0.02), np.float64(0.002), 0, 1]
    np.testing.assert_array_equal(lif_run_numba(*a1), lif_run_numba(*a2))
    np.testing.assert_array_equal(a1[3], a2[3])


def test_bad_J_rows_raise():
    rng = np.random.default_rng(5)
    args = list(lif_args(rng, T=6, M=4, TJ=3))
    for fn in (lif_run_numpy, lif_run_numba):
        with pytest.raises(ValueError, match="J"):
            fn(*copy_args(args))
    args = list(relu_args(rng, T=6, M=4, TJ=3))
    for fn in (relu_run_numpy, relu_run_numba):
        with pytest.raises(ValueError, match="J"):
            fn(*copy_args(args))


# ---------------------------------------------------------------------------------------------
# thread count independence
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def restore_threads():
    n = get_num_threads()
    yield
    set_num_threads(n)


@pytest.mark.parametrize("make,fn", [(lif_args, lif_run_numba), (relu_args, relu_run_numba),
                                     (lowpass_args, lowpass_run_numba)])
def test_one_thread_equals_two_threads(make, fn, restore_threads):
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs NUMBA_NUM_THREADS >= 2")
    args = make(np.random.default_rng(6), M=2 * BLOCK + 3)
    a1, a2 = copy_args(args), copy_args(args)
    set_num_threads(1)
    r1 = fn(*a1)
    set_num_threads(2)
    r2 = fn(*a2)
    assert_same(a1, a2, r1, r2)


# ---------------------------------------------------------------------------------------------
# chunked in time == one run; fused synapse == neuron run + lowpass run
# ---------------------------------------------------------------------------------------------


def _run_chunked(fn, args, cuts, j_index, out_index, TJ1):
    """Run ``fn`` over the time chunks ``cuts``; returns (total counts, out)."""
    args = list(copy_args(args))
    out = args[out_index]
    T = out.shape[0]
    edges = [0, *cuts, T]
    counts = 0
    for lo, hi in zip(edges[:-1], edges[1:]):
        a = list(args)
        a[out_index] = out[lo:hi]
        if j_index is not None and not TJ1:
            a[j_index] = args[j_index][lo:hi]
        if fn in (lowpass_run_numba, lowpass_run_numpy):
            a[0] = args[0][lo:hi]
        r = fn(*a)
        counts = counts + (r if fn not in (lowpass_run_numba, lowpass_run_numpy) else 0)
    return counts, args


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("TJ1", [True, False])
@pytest.mark.parametrize("fn", [lif_run_numba, lif_run_numpy])
def test_lif_chunked_equals_one_run(fn, TJ1, dtype):
    args = lif_args(np.random.default_rng(7), T=40, M=BLOCK + 9, TJ=1 if TJ1 else None,
                    dtype=dtype)
    one = copy_args(args)
    c_one = fn(*one)
    c_chunks, chunked = _run_chunked(fn, args, [1, 13, 14, 30], 0, 3, TJ1)
    np.testing.assert_array_equal(c_one, c_chunks)
    for a, b in zip(one, chunked):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fn", [relu_run_numba, lowpass_run_numba])
def test_relu_lowpass_chunked_equals_one_run(fn, dtype):
    if fn is relu_run_numba:
        args, out_index = relu_args(np.random.default_rng(8), T=40, M=BLOCK + 9, dtype=dtype), 2
    else:
        args, out_index = lowpass_args(np.random.default_rng(8), T=40, M=BLOCK + 9,
                                       dtype=dtype), 3
    one = copy_args(args)
    fn(*one)
    _, chunked = _run_chunked(fn, args, [7, 8, 33], 0 if fn is relu_run_numba else None,
                              out_index, False)
    for a, b in zip(one, chunked):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_synapse_equals_separate_lowpass(dtype):
    rng = np.random.default_rng(9)
    for make, fn, out_i, syn_i in [(lif_args, lif_run_numba, 3, 10),
                                   (relu_args, relu_run_numba, 2, 6)]:
        fused = list(make(rng, dtype=dtype, syn_a=A5))
        plain = copy_args(fused)
        plain = list(plain)
        plain[syn_i - 1] = 0.0                       # syn_a = 0: raw spikes
        y_state = fused[syn_i].copy()
        c_f = fn(*fused)
        c_p = fn(*plain)
        np.testing.assert_array_equal(c_f, c_p)
        spikes = plain[out_i]
        amp_dt = 1.0 / 0.001
        assert set(np.unique(spikes / amp_dt).tolist()) <= set(range(0, 10))
        filt = np.empty_like(spikes)
        lowpass_run_numba(spikes, y_state, A5, filt)
        np.testing.assert_array_equal(filt, fused[out_i])
        np.testing.assert_array_equal(y_state, fused[syn_i])
        np.testing.assert_array_equal(plain[syn_i], spikes[-1])   # no synapse: state = last u


def test_lif_counts_match_spike_train():
    args = lif_args(np.random.default_rng(10), syn_a=0.0)
    c = lif_run_numba(*args)
    out = args[3]
    np.testing.assert_array_equal(c, (out > 0).sum(axis=0))
    assert set(np.unique(out).tolist()) <= {0.0, 1000.0}


def test_lowpass_in_place_and_passthrough():
    rng = np.random.default_rng(11)
    u, y, a, _ = lowpass_args(rng)
    ref = lowpass_run_numpy(u.copy(), y.copy(), a, np.empty_like(u))
    uu = u.copy()
    lowpass_run_numba(uu, y.copy(), a, uu)                     # out may be u
    np.testing.assert_array_equal(uu, ref)
    out = np.empty_like(u)
    ys = y.copy()
    lowpass_run_numba(u, ys, 0.0, out)
    np.testing.assert_array_equal(out, u)                      # a = 0: y = u exactly
    np.testing.assert_array_equal(ys, u[-1])
