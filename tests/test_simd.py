"""add_runs, add_runs2, nonzero_mask and transpose8 (LLVM vector code through numba's @intrinsic) against
their scalar loops, exactly."""

import numpy as np
import pytest

import numba
from minisnn.kernels import simd
from minisnn.kernels.simd import (LANES, MASK_WIDTH, SQUARE, add_runs, add_runs2, add_runs2_python, add_runs_python,
                                   nonzero_mask, nonzero_mask_python, trailing_zeros, trailing_zeros_python,
                                   transpose8, transpose8_python)


@numba.njit  # not cached: a cache keyed on this file would keep add_runs' old machine code
def _call(acc, a0, w, offs, vals, m, nchunks):  # an intrinsic is called from compiled code only
    add_runs(acc, a0, w, offs, vals, m, nchunks)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, nchunks", [(0, 2), (1, 1), (1, 7), (1, 10), (3, 0), (3, 3), (7, 2), (2, 4), (5, 7),
                                       (4, 10)])
def test_add_runs_equals_the_scalar_loop(rng, dtype, m, nchunks):
    acc = rng.standard_normal(11 * LANES + 3).astype(dtype)  # room for 10 chunks (groups of 4, 2 and 1)
    w = rng.standard_normal(20 * LANES + 5).astype(dtype)
    offs = rng.integers(0, w.size - nchunks * LANES + 1, size=8).astype(np.int64)
    vals = (rng.standard_normal(8) * 100).astype(dtype)
    a0 = 3  # not a multiple of the vector width: unaligned loads and stores
    expected = acc.copy()
    add_runs_python(expected, a0, w, offs, vals, m, nchunks)
    got = acc.copy()
    _call(got, a0, w, offs, vals, m, nchunks)
    np.testing.assert_array_equal(got, expected)
    if m and nchunks:
        assert not np.array_equal(got, acc), "nothing was added: the test would prove nothing"
    np.testing.assert_array_equal(got[: a0], acc[: a0])  # untouched outside the run
    np.testing.assert_array_equal(got[a0 + nchunks * LANES :], acc[a0 + nchunks * LANES :])


@numba.njit  # not cached (see _call)
def _call2(acc, a0, a1, w, offs, delta, vals, m, nchunks):
    add_runs2(acc, a0, a1, w, offs, delta, vals, m, nchunks)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, nchunks", [(0, 2), (1, 1), (1, 3), (1, 7), (3, 0), (3, 3), (7, 2), (2, 4), (5, 7)])
def test_add_runs2_equals_two_scalar_loops(rng, dtype, m, nchunks):
    """Two runs, 40 values apart in the output and ``delta`` apart in the weights (as two kernel
    rows of one pixel), summed in one pass: the two scalar loops' values, bit for bit."""
    acc = rng.standard_normal(16 * LANES + 3).astype(dtype)  # room for two runs of 7 chunks
    w = rng.standard_normal(24 * LANES + 5).astype(dtype)
    delta = 3 * LANES + 5
    offs = rng.integers(0, w.size - delta - nchunks * LANES + 1, size=8).astype(np.int64)
    vals = (rng.standard_normal(8) * 100).astype(dtype)
    a0, a1 = 3, 3 + 7 * LANES + 1  # unaligned, and apart by more than the longest run
    expected = acc.copy()
    add_runs2_python(expected, a0, a1, w, offs, delta, vals, m, nchunks)
    got = acc.copy()
    _call2(got, a0, a1, w, offs, delta, vals, m, nchunks)
    np.testing.assert_array_equal(got, expected)
    if m and nchunks:
        for a in (a0, a1):
            assert not np.array_equal(got[a : a + nchunks * LANES], acc[a : a + nchunks * LANES])
    untouched = np.ones(acc.size, bool)
    untouched[a0 : a0 + nchunks * LANES] = untouched[a1 : a1 + nchunks * LANES] = False
    np.testing.assert_array_equal(got[untouched], acc[untouched])


@numba.njit  # not cached (see _call)
def _mask(arr, start):
    return nonzero_mask(arr, start)


@numba.njit
def _lowest(bits):
    return trailing_zeros(bits)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_nonzero_mask_equals_the_scalar_test(rng, dtype):
    arr = ((rng.uniform(size=5 * MASK_WIDTH) < 0.3) * rng.integers(1, 4, size=5 * MASK_WIDTH)).astype(dtype)
    if dtype != np.uint8:
        arr[3], arr[4], arr[MASK_WIDTH - 1] = np.nan, -0.0, 1e-45  # NaN != 0, -0.0 == 0, a subnormal != 0
    arr[2 * MASK_WIDTH : 3 * MASK_WIDTH] = 1  # every bit
    arr[3 * MASK_WIDTH : 4 * MASK_WIDTH] = 0  # none
    for start in (0, 1, 5, MASK_WIDTH - 1, MASK_WIDTH, 2 * MASK_WIDTH, 3 * MASK_WIDTH, 4 * MASK_WIDTH):
        assert _mask(arr, start) == nonzero_mask_python(arr, start), start
    assert _mask(arr, 2 * MASK_WIDTH) == (1 << MASK_WIDTH) - 1  # the top bit is not a sign
    assert _mask(arr, 3 * MASK_WIDTH) == 0


def test_trailing_zeros_is_the_lowest_set_bit():
    for bits in (1, 2, 3, 8, 12, 1 << 31, (1 << 32) - 1, 1 << 40):
        assert _lowest(np.int64(bits)) == trailing_zeros_python(bits) == (bits & -bits).bit_length() - 1


@pytest.mark.skipif(not hasattr(simd, "_runs_codegen"),
                    reason="the vector code exists only when Numba compiles (NUMBA_DISABLE_JIT=1 here)")
@pytest.mark.parametrize("group", [1, 2, 3, 5, 6])
def test_any_group_size_gives_the_scalar_sums(rng, group):
    """The code generator with groups other than GROUP's: the chunks a group leaves are summed
    in pairs, then the last one alone if the rest is odd (GROUP = 6 gave add_runs2 groups of 3,
    and a leftover found by the parity of the whole count dropped chunks)."""
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def runs2(typingctx, acc, a0, a1, w, offs, delta, vals, m, nchunks):
        return types.void(acc, a0, a1, w, offs, delta, vals, m, nchunks), simd._runs_codegen(2, group)

    @numba.njit
    def call(acc, a0, a1, w, offs, delta, vals, m, nchunks):
        runs2(acc, a0, a1, w, offs, delta, vals, m, nchunks)

    for nchunks in range(0, 12):
        n = nchunks * LANES
        acc = rng.standard_normal(2 * n + 5).astype(np.float32)
        w = rng.standard_normal(4 * n + 64).astype(np.float32)
        offs = np.array([0, 3, n + 7], np.int64)
        vals = rng.standard_normal(3).astype(np.float32)
        for m in (1, 3):  # (one event: the copy of the passes without the loop)
            expected, got = acc.copy(), acc.copy()
            add_runs2_python(expected, 1, n + 3, w, offs, n + 11, vals, m, nchunks)
            call(got, 1, n + 3, w, offs, n + 11, vals, m, nchunks)
            np.testing.assert_array_equal(got, expected)


@numba.njit  # not cached (see _call)
def _transpose(src, s0, sstride, dst, d0, dstride):
    transpose8(src, s0, sstride, dst, d0, dstride)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("s0, sstride, d0, dstride", [(0, 8, 0, 8), (3, 11, 5, 9), (17, 40, 2, 32), (1, 8, 70, 13)])
def test_transpose8_moves_the_square_of_the_scalar_loop(rng, dtype, s0, sstride, d0, dstride):
    """Unaligned starts, rows of the source and the destination further apart than 8 values:
    the square lands transposed, every other value of the destination untouched."""
    src = rng.standard_normal(s0 + SQUARE * sstride + 3).astype(dtype)
    src[s0 + 1] = -0.0  # moved as it is
    dst = rng.standard_normal(d0 + SQUARE * dstride + 3).astype(dtype)
    expected, got = dst.copy(), dst.copy()
    transpose8_python(src, s0, sstride, expected, d0, dstride)
    _transpose(src, s0, sstride, got, d0, dstride)
    np.testing.assert_array_equal(got, expected)
    assert np.signbit(got[d0 + dstride])
    square = np.add.outer(np.arange(SQUARE) * sstride, np.arange(SQUARE)) + s0
    np.testing.assert_array_equal(got[d0 + np.add.outer(np.arange(SQUARE) * dstride, np.arange(SQUARE))],
                                  src[square].T)
