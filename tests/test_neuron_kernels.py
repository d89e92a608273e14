"""Neuron and synapse kernels: Numba == NumPy reference, thread-count independence, chunking.

Covers the kernels registered by minisnn/kernels/{lif,relu,lowpass,rates}.py.  (The generic test
over every registered kernel lives in tests/test_kernels.py.)  Sizes are small so the file also
runs quickly with NUMBA_DISABLE_JIT=1.
"""

from __future__ import annotations

import math

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
    # exact on any host: the same arithmetic in the same order on both sides, and for the LIF
    # the same C-library expm1 / log1p (never NumPy's SIMD ones; see minisnn/kernels/lif.py)
    pair = KERNELS[name]
    args = pair.example(np.random.default_rng(0))
    a1, a2 = copy_args(args), copy_args(args)
    assert_same(a1, a2, pair.reference(*a1), pair.fast(*a2))


@pytest.mark.parametrize("change", [dict(tau_ref=0.002 + 0.001),     # one refractory step longer
                                    dict(tau_rc=0.02 * (1 + 1e-12))])  # time constant off by 1e-12
def test_lif_comparison_catches_a_wrong_kernel(change):
    """The exact comparison above fails for a LIF whose refractory period is one step off, or
    whose time constant is off in the 12th digit (here the reference plays the wrong kernel)."""
    args = list(_lif_example_args())
    wrong = list(copy_args(args))
    wrong[6] = change.get("tau_ref", wrong[6])
    wrong[5] = change.get("tau_rc", wrong[5])
    right = copy_args(args)
    with pytest.raises(AssertionError):
        assert_same(wrong, right, lif_run_numpy(*wrong), lif_run_numba(*right))


def _lif_example_args():
    args = KERNELS["lif_run"].example(np.random.default_rng(0))
    assert args[5:7] == (0.02, 0.002)             # tau_rc, tau_ref: what the test above changes
    return args


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


@pytest.mark.parametrize("syn_a", [0.0, A5])
def test_lif_run32_counts_past_255_steps(syn_a):
    """The float32 scan counts in uint8 counters that it adds into the int64 counts every 255
    steps: over 700 steps with neurons near 500 Hz (up to ~350 spikes each), the counts equal the
    reference's and the spike train's, past the counters' range."""
    from minisnn.kernels.lif import BLOCK32, lif_run32_numba, lif_run32_numpy

    rng = np.random.default_rng(12)
    args = lif_args(rng, T=700, M=BLOCK32 + 45, TJ=1, dtype=np.float32, syn_a=syn_a)
    args[0][:] = rng.uniform(1.2, 400.0, size=args[0].shape).astype(np.float32)  # up to ~480 Hz
    args = (args[0], args[1], args[2], np.empty(args[3].shape, np.uint8), *args[4:])
    ref_args, got_args = copy_args(args), copy_args(args)
    ref = lif_run32_numpy(*ref_args)
    got = lif_run32_numba(*got_args)
    assert ref.max() > 255 and (ref <= 255).any()
    assert_same(ref_args, got_args, ref, got)
    np.testing.assert_array_equal(got, got_args[3].sum(axis=0, dtype=np.int64))


@pytest.mark.parametrize("make", ["_lif_run32_constant_example", "_lif_run32_constant_libm_example"])
def test_constant_current_scan_equals_the_general_scan_bit_for_bit(make):
    """A current of one row with a uint8 map takes the first layer's scan, which steps the quiet
    neurons apart (``_lif_run32_constant``); the same current repeated for every step takes the
    general scan.  States, spikes, counts and sums are the same bit for bit, -0 included."""
    from minisnn.kernels import lif

    args = getattr(lif, make)(np.random.default_rng(5))
    J, voltage, refractory_time, syn_state = args[0][0], args[1], args[2], args[10]
    quiet = (J <= lif.QUIET) & (voltage <= lif.QUIET) & (refractory_time <= 0) & (syn_state == 0)
    assert 0.3 < quiet.mean() < 0.7 and (~quiet & (J <= lif.QUIET)).any()
    assert lif._quiet_share(J, voltage, refractory_time, syn_state) >= lif.QUIET_SHARE  # the path is taken
    T = args[3].shape[0]
    constant, general = copy_args(args), copy_args((np.repeat(args[0], T, axis=0), *args[1:]))
    counts = lif.lif_run32_numba(*constant)
    np.testing.assert_array_equal(counts, lif.lif_run32_numba(*general))
    assert counts.sum() > 0
    for got, expected in zip(constant[1:], general[1:]):
        if isinstance(got, np.ndarray):
            assert got.tobytes() == expected.tobytes()


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


# ---------------------------------------------------------------------------------------------
# rate kernels (minisnn/kernels/rates.py): LIFRate / SoftLIFRate rate, derivative, both
# ---------------------------------------------------------------------------------------------

from minisnn.kernels import rates as R  # noqa: E402

RATE_NAMES = ["lif_rate", "lif_rate_grad", "lif_rate_and_grad", "softlif_rate",
              "softlif_rate_grad", "softlif_rate_and_grad"]
LIF_PARAMS = [(0.02, 0.002, 1.0), (0.02, 0.0, 1.0), (0.05, 0.001, 0.01), (0.1, 0.01, 3.0)]
SOFT_PARAMS = [(0.005, 0.02, 0.002, 1.0), (1.0, 0.02, 0.002, 1.0), (1e-6, 0.02, 0.002, 1.0),
               (0.02, 0.02, 0.0, 3.0), (0.005, 0.02, 0.002, 0.001), (1e-200, 0.02, 0.0, 1.0),
               (1e90, 0.02, 0.002, 1.0)]


def rate_grid(sigma, dtype):
    """Currents over the whole range: bulk, around threshold (in units of sigma), the switch
    points of the formulas (x = +-30, x = -708), powers of ten, extremes and infinities."""
    s = sigma
    f = np.finfo(dtype)
    near = 1.0 + s * np.array([-30.0, 30.0, -708.0, -745.0, -746.0, -1e5])
    parts = [
        np.linspace(-5.0, 30.0, 351),
        1.0 + s * np.linspace(-50.0, 50.0, 201),
        near, np.nextafter(near, 2.0), np.nextafter(near, 0.0),
        1.0 + np.logspace(-16, 2, 37), 1.0 - np.logspace(-16, 2, 37),
        -np.logspace(-3, 300, 50), np.logspace(-3, 300, 50),
        [1.0, 0.0, -0.0, 1e-300, -1e-300, 1e30, -1e30, 1e100, -1e100, np.inf, -np.inf],
    ]
    J = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])
    with np.errstate(over="ignore"):
        J = J.astype(dtype)
    one = dtype(1.0)
    extra = [np.nextafter(one, dtype(2)), np.nextafter(one, dtype(0)), f.max, -f.max, f.tiny,
             -f.tiny]
    return np.concatenate([J, np.array(extra, dtype=dtype)])


def _rate_tol(dtype):
    # float64: the kernels' exp / log1p are within 1 ulp of libm's, results within ~1e-15;
    # float32: the float64 values are rounded once, so 1 float32 ulp at most
    return dict(rtol=1e-12, atol=0.0) if dtype == np.float64 else dict(rtol=2.4e-7, atol=1e-44)


@pytest.mark.parametrize("name", RATE_NAMES)
def test_rate_kernels_registered_and_example_matches(name):
    pair = KERNELS[name]
    args = pair.example(np.random.default_rng(0))
    assert args[0].shape[0] > R.BLOCK                       # several parallel blocks
    ref, fast = pair.reference(*args), pair.fast(*args)
    assert len(ref) == len(fast) and ref[-1] == fast[-1] == 0
    for a, b in zip(ref[:-1], fast[:-1]):
        assert a.dtype == b.dtype == args[0].dtype
        np.testing.assert_allclose(b, a, **_rate_tol(a.dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("params", LIF_PARAMS)
def test_lif_rate_kernels_equal_reference_on_grid(params, dtype):
    J = rate_grid(0.005, dtype)
    r0, d0, n0 = R.lif_rate_and_grad_numpy(J, *params)
    r1, d1, n1 = R.lif_rate_and_grad_numba(J, *params)
    assert n0 == n1 == 0 and r1.dtype == d1.dtype == dtype
    np.testing.assert_allclose(r1, r0, **_rate_tol(dtype))
    np.testing.assert_allclose(d1, d0, **_rate_tol(dtype))
    np.testing.assert_array_equal(r1 == 0, J <= 1)          # exactly 0 at and below threshold
    assert np.all(np.isfinite(r1)) and np.all(np.isfinite(d1)) and np.all(d1 >= 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("params", SOFT_PARAMS, ids=str)
def test_softlif_rate_kernels_equal_reference_on_grid(params, dtype):
    J = rate_grid(min(params[0], 1e30), dtype)
    with np.errstate(over="ignore"):                        # the reference's j / 1e-200
        r0, d0, n0 = R.softlif_rate_and_grad_numpy(J, *params)
    r1, d1, n1 = R.softlif_rate_and_grad_numba(J, *params)
    assert n0 == n1 == 0 and r1.dtype == d1.dtype == dtype
    np.testing.assert_allclose(r1, r0, **_rate_tol(dtype))
    np.testing.assert_allclose(d1, d0, **_rate_tol(dtype))
    assert np.all(np.isfinite(r1)) and np.all(np.isfinite(d1)) and np.all(d1 >= 0)


@pytest.mark.parametrize("kind", ["lif", "softlif"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rate_kernel_modes_agree_exactly(kind, dtype):
    """rate_and_grad == (rate, rate_grad) bit for bit (the same arithmetic in each mode)."""
    J = rate_grid(0.005, dtype)
    params = (0.02, 0.002, 0.7) if kind == "lif" else (0.005, 0.02, 0.002, 0.7)
    r, d, n = getattr(R, f"{kind}_rate_and_grad_numba")(J, *params)
    r_only, n_r = getattr(R, f"{kind}_rate_numba")(J, *params)
    d_only, n_d = getattr(R, f"{kind}_rate_grad_numba")(J, *params)
    np.testing.assert_array_equal(r, r_only)
    np.testing.assert_array_equal(d, d_only)
    assert n == n_r == n_d == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", RATE_NAMES)
def test_rate_kernels_count_nan(name, dtype):
    pair = KERNELS[name]
    J, *params = pair.example(np.random.default_rng(1))
    with np.errstate(over="ignore"):                        # float64 max -> float32 inf
        J = J.astype(dtype)
    nan_at = [0, 5, R.BLOCK - 1, R.BLOCK, J.size - 1]       # in both blocks, at the edges
    J[nan_at] = np.nan
    ok = ~np.isnan(J)
    for fn in (pair.reference, pair.fast):
        out = fn(J, *params)
        assert out[-1] == len(nan_at)
    ref, fast = pair.reference(J, *params), pair.fast(J, *params)
    for a, b in zip(ref[:-1], fast[:-1]):
        np.testing.assert_allclose(b[ok], a[ok], **_rate_tol(dtype))


@pytest.mark.parametrize("n", [0, 1, 7, R.BLOCK, R.BLOCK + 1])
def test_rate_kernels_sizes(n):
    J = np.linspace(-2.0, 12.0, n)
    for kind, params in [("lif", (0.02, 0.002, 1.0)), ("softlif", (0.005, 0.02, 0.002, 1.0))]:
        r0, d0, _ = getattr(R, f"{kind}_rate_and_grad_numpy")(J, *params)
        r1, d1, _ = getattr(R, f"{kind}_rate_and_grad_numba")(J, *params)
        assert r1.shape == d1.shape == (n,)
        np.testing.assert_allclose(r1, r0, rtol=1e-12)
        np.testing.assert_allclose(d1, d0, rtol=1e-12)


def test_softlif_kernel_rejects_absurd_sigma():
    with pytest.raises(ValueError, match="sigma"):
        R.softlif_rate_numba(np.ones(3), 1e-300, 0.02, 0.002, 1.0)


@pytest.mark.parametrize("kind", ["lif", "softlif"])
def test_rate_kernels_thread_count_independent_many_blocks(kind, restore_threads):
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs NUMBA_NUM_THREADS >= 2")
    J = R.example_currents(np.random.default_rng(3), n=5 * R.BLOCK + 11, dtype=np.float32)
    params = (0.02, 0.002, 1.0) if kind == "lif" else (0.005, 0.02, 0.002, 1.0)
    fn = getattr(R, f"{kind}_rate_and_grad_numba")
    set_num_threads(1)
    one = fn(J, *params)
    set_num_threads(2)
    two = fn(J, *params)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def libm(fn, x):
    """The C library's ``fn`` (``math.exp``, ``math.log1p``) elementwise."""
    return np.array([fn(v) for v in x.tolist()])


def test_exp_block_matches_libm():
    ln2 = np.log(2.0)
    a = -np.concatenate([np.linspace(0.0, 708.0, 4001), np.logspace(-300, np.log10(708.0), 400),
                         [0.0, 5e-324, 1e-310, 2.0**-53, 0.5 * ln2, ln2, 1.5 * ln2, 707.999999,
                          708.0]])
    out = np.empty_like(a)
    R._exp_block(a, out)
    # against the C library's exp, not NumPy's (whose SIMD paths differ from host to host)
    np.testing.assert_allclose(out, libm(math.exp, a), rtol=4.5e-16, atol=0.0)    # <= 2 ulp
    below = -np.array([708.0000001, 709.0, 745.0, 746.0, 1e5, 1e300])     # flushed to 0
    out = np.empty_like(below)
    R._exp_block(below, out)
    np.testing.assert_array_equal(out, 0.0)


def test_log1p_block_matches_libm():
    b = [2.0**-53, R._SQRT2M1, 1.0, 2.0, 2.0**52, 2.0**53, 2.0**54, 2.0**55]
    x = np.concatenate([np.linspace(0.0, 5.0, 2001), np.logspace(-320, 300, 1001), b,
                        np.nextafter(b, 0.0), np.nextafter(b, np.inf), [0.0, 5e-324, 1e-310]])
    out = np.empty_like(x)
    R._log1p_block(x, out)
    np.testing.assert_allclose(out, libm(math.log1p, x), rtol=4.5e-16, atol=0.0)  # <= 2 ulp
    tiny = x < 2.0**-53
    np.testing.assert_array_equal(out[tiny], x[tiny])                    # log1p(x) == x


@pytest.mark.parametrize("M", [100, 1088 * 60 + 7])
def test_quiet_share_samples_the_layer(M):
    """The constant-current scan's sampled share of quiet neurons: exact in a small layer, close
    to the true share in a large one (runs of 64 out of every 1088 neurons)."""
    from minisnn.kernels import lif

    rng = np.random.default_rng(M)
    J = np.where(rng.uniform(size=M) < 0.4, 0.5, 2.0).astype(np.float32)  # 40 % can be quiet
    voltage = rng.uniform(0, 1, M).astype(np.float32)
    refractory_time = np.where(rng.uniform(size=M) < 0.1, 0.001, 0.0).astype(np.float32)
    syn_state = np.zeros(M, np.float32)
    quiet = (J <= lif.QUIET) & (voltage <= lif.QUIET) & (refractory_time <= 0) & (syn_state == 0)
    share = lif._quiet_share(J, voltage, refractory_time, syn_state)
    if M < 1088:
        assert share == quiet.mean()
    else:
        assert abs(share - quiet.mean()) < 0.03
    syn_state[:] = 1.0  # a synapse state: never quiet
    assert lif._quiet_share(J, voltage, refractory_time, syn_state) == 0.0
