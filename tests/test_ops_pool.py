"""avg_pool2d: forward vs the loop oracle, hand-computed cases, dtypes, gradient checks, bad
input, and PyTorch as an optional cross-check."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import naive
from minisnn import functional as F
from minisnn.gradcheck import gradcheck, gradcheck_op
from minisnn.ops import avg_pool2d_backward, avg_pool2d_forward
from strategies import examples, pool_geometries

TOL = dict(rtol=1e-12, atol=1e-12)


@given(g=pool_geometries())
def test_avg_pool2d_matches_naive(g):
    x = g.x()
    y, _ = avg_pool2d_forward(x, g.kernel, g.stride)
    np.testing.assert_allclose(y, naive.avg_pool2d(x, g.kernel, g.stride), **TOL)


def test_avg_pool2d_hand_computed():
    # x = [[ 0  1  2  3]
    #      [ 4  5  6  7]
    #      [ 8  9 10 11]
    #      [12 13 14 15]]
    # kernel 2 (stride 2): (0+1+4+5)/4 = 2.5, (2+3+6+7)/4 = 4.5, (8+9+12+13)/4 = 10.5, (10+11+14+15)/4 = 12.5
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    y, cache = avg_pool2d_forward(x, 2)
    np.testing.assert_array_equal(y[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    # backward: each upstream value is shared equally by its 4 inputs
    dx = avg_pool2d_backward(np.array([[[[4.0, 8.0], [-4.0, 0.0]]]]), cache)
    np.testing.assert_array_equal(
        dx[0, 0], [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [-1.0, -1.0, 0.0, 0.0], [-1.0, -1.0, 0.0, 0.0]]
    )
    # kernel 3, stride 1: a 3x3 window of an arithmetic grid averages to its centre: 5, 6, 9, 10
    y, cache = avg_pool2d_forward(x, 3, 1)
    np.testing.assert_array_equal(y[0, 0], [[5.0, 6.0], [9.0, 10.0]])
    # overlapping windows add up in the backward: dy = 9 everywhere gives 1 per window covering a pixel
    dx = avg_pool2d_backward(np.full((1, 1, 2, 2), 9.0), cache)
    np.testing.assert_array_equal(
        dx[0, 0], [[1.0, 2.0, 2.0, 1.0], [2.0, 4.0, 4.0, 2.0], [2.0, 4.0, 4.0, 2.0], [1.0, 2.0, 2.0, 1.0]]
    )
    # floor mode: a 5x5 input with kernel 2 drops the last row and column
    y, _ = avg_pool2d_forward(np.arange(25.0).reshape(1, 1, 5, 5), 2)
    np.testing.assert_array_equal(y[0, 0], [[3.0, 5.0], [13.0, 15.0]])  # (0+1+5+6)/4 = 3, ...


def test_float32_is_preserved(rng):
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    y, cache = avg_pool2d_forward(x, (2, 3), (1, 1))
    assert y.dtype == np.float32
    assert avg_pool2d_backward(np.ones_like(y), cache).dtype == np.float32


def test_non_contiguous_input(rng):
    x = rng.standard_normal((2, 3, 6, 10))[:, ::-1, :, ::2]
    y, _ = avg_pool2d_forward(x, 2, 1)
    np.testing.assert_allclose(y, naive.avg_pool2d(x, 2, 1), **TOL)


@pytest.mark.parametrize(
    "shape, kernel, stride",
    [((1, 1, 2, 2), 2, None), ((2, 3, 5, 4), (2, 3), (1, 1)), ((1, 2, 7, 6), 3, 2), ((2, 1, 4, 5), (1, 2), (3, 1))],
)
def test_avg_pool2d_gradcheck_op(rng, shape, kernel, stride):
    x = rng.standard_normal(shape)
    assert gradcheck_op(avg_pool2d_forward, avg_pool2d_backward, {"x": x}, {"kernel": kernel, "stride": stride})


@settings(max_examples=examples(0.5))
@given(g=pool_geometries())
def test_avg_pool2d_gradcheck_drawn(g):
    params = {"kernel": g.kernel, "stride": g.stride}
    assert gradcheck_op(avg_pool2d_forward, avg_pool2d_backward, {"x": g.x()}, params, max_points=20)


def test_functional_avg_pool2d_gradcheck(rng):
    x = rng.standard_normal((2, 2, 5, 6))
    assert gradcheck(lambda x: F.avg_pool2d(x, (2, 3), (2, 1)), x, names=["x"])
    assert gradcheck(lambda x: F.avg_pool2d(x, 2), x, names=["x"])


def _a(*shape, dtype=np.float64):
    return np.zeros(shape, dtype=dtype)


BAD_POOL = [
    ("kernel larger than input", (_a(1, 1, 2, 3), 3), {}, r"avg_pool2d.*3x3.*2x3"),
    ("kernel larger on one axis", (_a(1, 1, 5, 3), (2, 4)), {}, r"avg_pool2d.*2x4.*5x3"),
    ("kernel 0", (_a(1, 1, 4, 4), 0), {}, r"avg_pool2d.*kernel.*0"),
    ("stride 0", (_a(1, 1, 4, 4), 2), {"stride": 0}, r"avg_pool2d.*stride.*0"),
    ("stride (2, -1)", (_a(1, 1, 4, 4), 2), {"stride": (2, -1)}, r"avg_pool2d.*stride.*-1"),
    ("x rank 3", (_a(1, 4, 4), 2), {}, r"avg_pool2d.*x.*4.*\(1, 4, 4\)"),
    ("integer x", (_a(1, 1, 4, 4, dtype=np.int64), 2), {}, r"avg_pool2d.*x.*int64"),
]


@pytest.mark.parametrize("args, kwargs, message", [c[1:] for c in BAD_POOL], ids=[c[0] for c in BAD_POOL])
def test_avg_pool2d_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        avg_pool2d_forward(*args, **kwargs)


@settings(max_examples=examples(0.5))
@given(g=pool_geometries())
def test_avg_pool2d_matches_torch(g):
    torch = pytest.importorskip("torch")
    x = g.x()
    y, cache = avg_pool2d_forward(x, g.kernel, g.stride)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tx, g.kernel, g.stride)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = g.rng().standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(avg_pool2d_backward(dy, cache), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel, stride", [((2, 2), (2, 2)), ((3, 2), (1, 2))])
def test_pool_kernels_equal_their_references_bit_for_bit(rng, dtype, kernel, stride):
    """The Numba kernels add the taps in the references' order and dtype: the same bits, on a
    CAE-sized batch (the registry's generic test checks them to a tolerance)."""
    from minisnn.kernels import pool

    x = rng.standard_normal((4, 16, 24, 56)).astype(dtype)
    y = np.empty((4, 16, (24 - kernel[0]) // stride[0] + 1, (56 - kernel[1]) // stride[1] + 1), dtype)
    args = (*kernel, *stride)
    fast = pool.avg_pool_numba(x, *args, y.copy())
    np.testing.assert_array_equal(fast, pool.avg_pool_numpy(x, *args, y.copy()))
    dy = rng.standard_normal(y.shape).astype(dtype)
    fast = pool.avg_pool_grad_numba(dy, *args, np.empty_like(x))
    np.testing.assert_array_equal(fast, pool.avg_pool_grad_numpy(dy, *args, np.empty_like(x)))


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble])
def test_other_float_dtypes_take_the_numpy_reference(dtype):
    """The kernels compile for float32 / float64; other floats are pooled by NumPy, in their dtype."""
    x = np.arange(2 * 3 * 4 * 6, dtype=dtype).reshape(2, 3, 4, 6)
    y, cache = avg_pool2d_forward(x, 2)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.astype(np.float64), naive.avg_pool2d(x.astype(np.float64), 2, None), rtol=1e-3)
    dx = avg_pool2d_backward(np.ones_like(y), cache)
    assert dx.dtype == dtype and np.all(dx == dtype(0.25))
