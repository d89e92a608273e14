"""conv2d and conv_transpose2d: forward vs the loop oracle, hand-computed cases, dtypes,
gradient checks, the adjoint identity, bad input, and PyTorch as an optional cross-check."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import threadpoolctl
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from minisnn import functional as F
from minisnn import kernels
from minisnn.autodiff import Tensor
from minisnn.gradcheck import gradcheck, gradcheck_op
from minisnn.ops import (
    conv2d_backward,
    conv2d_events,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
)
from minisnn.neurons import RectifiedLinear
from minisnn.ops.conv import (
    COLUMNS_KEEP_MAX,
    WINOGRAD_BLOCK_TILES,
    RectifiedCache,
    WinogradCache,
    column_blocks,
    winograd_blocks,
)
from minisnn.runtime import set_threads
from strategies import conv_geometries, conv_transpose_geometries, examples, winograd_geometries

TOL = dict(rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- forward vs naive


@given(g=conv_geometries(), bias=st.booleans())
def test_conv2d_matches_naive(g, bias):
    x, w, b = g.arrays(bias=bias)
    y, _ = conv2d_forward(x, w, b, stride=g.stride, padding=g.padding)
    assert y.shape == (g.N, g.Cout) + g.out_hw
    np.testing.assert_allclose(y, naive.conv2d(x, w, b, g.stride, g.padding), **TOL)


@given(g=conv_transpose_geometries(), bias=st.booleans())
def test_conv_transpose2d_matches_naive(g, bias):
    x, w, b = g.arrays(bias=bias)
    y, _ = conv_transpose2d_forward(x, w, b, stride=g.stride, padding=g.padding, output_padding=g.output_padding)
    assert y.shape == (g.N, g.Cout) + g.out_hw
    expected = naive.conv_transpose2d(x, w, b, g.stride, g.padding, g.output_padding)
    np.testing.assert_allclose(y, expected, **TOL)


def test_int_and_pair_arguments_agree(rng):
    x = rng.standard_normal((1, 2, 6, 5))
    w = rng.standard_normal((3, 2, 3, 3))
    a, _ = conv2d_forward(x, w, None, stride=2, padding=1)
    b, _ = conv2d_forward(x, w, None, stride=(2, 2), padding=(1, 1))
    np.testing.assert_array_equal(a, b)
    wt = rng.standard_normal((2, 3, 3, 3))
    a, _ = conv_transpose2d_forward(x, wt, None, stride=2, padding=1, output_padding=1)
    b, _ = conv_transpose2d_forward(x, wt, None, stride=(2, 2), padding=(1, 1), output_padding=(1, 1))
    np.testing.assert_array_equal(a, b)


def test_non_contiguous_inputs(rng):
    x = rng.standard_normal((2, 6, 7, 10))[:, ::2, :, ::-2]  # (2, 3, 7, 5), strided and reversed
    w = rng.standard_normal((3, 3, 2, 4)).transpose(1, 0, 3, 2)  # (3, 3, 4, 2), not C-contiguous
    b = rng.standard_normal(6)[::2]
    y, cache = conv2d_forward(x, w, b, stride=(2, 1), padding=1)
    np.testing.assert_allclose(y, naive.conv2d(x, w, b, (2, 1), 1), **TOL)
    dy = rng.standard_normal(y.shape * np.array([1, 1, 1, 2]))[..., ::2]  # non-contiguous upstream
    dx, dw, db = conv2d_backward(dy, cache)
    _, ref_cache = conv2d_forward(x.copy(), w.copy(), b.copy(), stride=(2, 1), padding=1)
    for got, expected in zip((dx, dw, db), conv2d_backward(dy.copy(), ref_cache)):
        np.testing.assert_allclose(got, expected, **TOL)
    y, cache = conv_transpose2d_forward(x, w, b, stride=2, padding=(0, 1), output_padding=1)
    np.testing.assert_allclose(y, naive.conv_transpose2d(x, w, b, 2, (0, 1), 1), **TOL)


# ----------------------------------------------------------------------------- hand-computed cases

X3 = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])[None, None]
W2 = np.array([[1.0, 2.0], [3.0, 4.0]])[None, None]


def test_conv2d_hand_computed():
    # x = [[1 2 3]    w = [[1 2]    cross-correlation, no flip: y[i,j] = sum_uv w[u,v] x[i+u, j+v]
    #      [4 5 6]         [3 4]]
    #      [7 8 9]]
    # y[0,0] = 1*1 + 2*2 + 3*4 + 4*5 = 37     y[0,1] = 1*2 + 2*3 + 3*5 + 4*6 = 47
    # y[1,0] = 1*4 + 2*5 + 3*7 + 4*8 = 67     y[1,1] = 1*5 + 2*6 + 3*8 + 4*9 = 77
    # plus bias 1.  (A flipped kernel would give y[0,0] = 4*1 + 3*2 + 2*4 + 1*5 = 23.)
    y, _ = conv2d_forward(X3, W2, np.array([1.0]))
    np.testing.assert_array_equal(y[0, 0], [[38.0, 48.0], [68.0, 78.0]])

    # stride 2, padding 1: padded input is 5x5 with x at rows/cols 1..3; windows start at 0 and 2.
    # (0,0): only x[0,0]=1 under w[1,1]=4                       -> 4
    # (0,1): x[0,1]=2 under w[1,0]=3, x[0,2]=3 under w[1,1]=4   -> 6 + 12 = 18
    # (1,0): x[1,0]=4 under w[0,1]=2, x[2,0]=7 under w[1,1]=4   -> 8 + 28 = 36
    # (1,1): 5*1 + 6*2 + 8*3 + 9*4                              -> 77
    y, _ = conv2d_forward(X3, W2, None, stride=2, padding=1)
    np.testing.assert_array_equal(y[0, 0], [[4.0, 18.0], [36.0, 77.0]])


def test_conv_transpose2d_hand_computed():
    # Each input pixel stamps x[i,j] * w at offset (i*s, j*s); stamps add where they overlap.
    x = np.array([[1.0, 2.0], [3.0, 4.0]])[None, None]
    w = np.array([[1.0, 10.0], [100.0, 1000.0]])[None, None]
    # stride 1 -> 3x3; y[1,1] = 1*1000 + 2*100 + 3*10 + 4*1 = 1234, the only 4-way overlap.
    y, _ = conv_transpose2d_forward(x, w)
    np.testing.assert_array_equal(
        y[0, 0], [[1.0, 12.0, 20.0], [103.0, 1234.0, 2040.0], [300.0, 3400.0, 4000.0]]
    )
    # stride 2 -> 4x4 disjoint stamps; output_padding 1 adds a 5th row/col that gets only the bias 0.5.
    y, _ = conv_transpose2d_forward(x, w, np.array([0.5]), stride=2, output_padding=1)
    stamps = np.array(
        [
            [1.0, 10.0, 2.0, 20.0, 0.0],
            [100.0, 1000.0, 200.0, 2000.0, 0.0],
            [3.0, 30.0, 4.0, 40.0, 0.0],
            [300.0, 3000.0, 400.0, 4000.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    np.testing.assert_array_equal(y[0, 0], stamps + 0.5)
    # padding 1 crops one row/col on each side: Ho = (2-1)*2 - 2*1 + 2 + 1 = 3, i.e. rows/cols 1..3
    # of the 5x5 array above (rows/cols 1..2 of the stamps plus the one output_padding gives back).
    y, _ = conv_transpose2d_forward(x, w, None, stride=2, padding=1, output_padding=1)
    np.testing.assert_array_equal(y[0, 0], [[1000.0, 200.0, 2000.0], [30.0, 4.0, 40.0], [3000.0, 400.0, 4000.0]])


# ----------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("bias", [True, False])
def test_float32_is_preserved(rng, bias):
    f32 = np.float32
    x = rng.standard_normal((2, 3, 5, 4)).astype(f32)
    w = rng.standard_normal((2, 3, 3, 2)).astype(f32)
    b = rng.standard_normal(2).astype(f32) if bias else None
    y, cache = conv2d_forward(x, w, b, stride=2, padding=1)
    assert y.dtype == f32
    dx, dw, db = conv2d_backward(np.ones_like(y), cache)
    assert dx.dtype == dw.dtype == f32
    assert (db is None) if not bias else db.dtype == f32
    np.testing.assert_allclose(y, naive.conv2d(x, w, b, 2, 1), rtol=1e-5, atol=1e-5)

    wt = rng.standard_normal((3, 2, 3, 2)).astype(f32)
    y, cache = conv_transpose2d_forward(x, wt, b, stride=2, padding=1, output_padding=1)
    assert y.dtype == f32
    dx, dw, db = conv_transpose2d_backward(np.ones_like(y), cache)
    assert dx.dtype == dw.dtype == f32
    assert (db is None) if not bias else db.dtype == f32
    np.testing.assert_allclose(y, naive.conv_transpose2d(x, wt, b, 2, 1, 1), rtol=1e-5, atol=1e-5)


def test_tensor_wrappers_keep_float32(rng):
    x = Tensor(rng.standard_normal((1, 2, 4, 4)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), requires_grad=True)
    y = F.conv_transpose2d(F.conv2d(x, w, padding=1), w, padding=1)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == w.grad.dtype == np.float32


# ----------------------------------------------------------------------------- gradients

# Fixed geometries (x shape, w shape, stride, padding[, output_padding]); up to 40 entries per argument.
CONV_CASES = [
    ((1, 1, 3, 3), (1, 1, 2, 2), 1, 0),
    ((2, 2, 5, 4), (3, 2, 3, 2), (2, 1), (1, 0)),
    ((1, 3, 4, 6), (2, 3, 3, 3), 2, 1),
    ((2, 1, 2, 3), (2, 1, 5, 4), 3, 2),  # kernel larger than the input, fits the padding
]
TRANSPOSE_CASES = [
    ((1, 1, 2, 2), (1, 1, 2, 2), 1, 0, 0),
    ((2, 2, 3, 2), (2, 3, 3, 2), (2, 1), (1, 0), (1, 0)),
    ((1, 3, 2, 3), (3, 2, 3, 3), 3, 1, 2),
    ((2, 1, 3, 3), (1, 2, 4, 5), 2, 2, 1),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs, ws, stride, padding", CONV_CASES)
def test_conv2d_gradcheck_op(rng, xs, ws, stride, padding, bias):
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[0]) if bias else None
    params = {"stride": stride, "padding": padding}
    assert gradcheck_op(conv2d_forward, conv2d_backward, {"x": x, "w": w, "b": b}, params, max_points=40)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs, ws, stride, padding, output_padding", TRANSPOSE_CASES)
def test_conv_transpose2d_gradcheck_op(rng, xs, ws, stride, padding, output_padding, bias):
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    b = rng.standard_normal(ws[1]) if bias else None
    params = {"stride": stride, "padding": padding, "output_padding": output_padding}
    inputs = {"x": x, "w": w, "b": b}
    assert gradcheck_op(conv_transpose2d_forward, conv_transpose2d_backward, inputs, params, max_points=40)


@settings(max_examples=examples(0.5))
@given(g=conv_geometries(max_hw=5))
def test_conv2d_gradcheck_drawn(g):
    x, w, b = g.arrays()
    params = {"stride": g.stride, "padding": g.padding}
    assert gradcheck_op(conv2d_forward, conv2d_backward, {"x": x, "w": w, "b": b}, params, max_points=6)


@settings(max_examples=examples(0.5))
@given(g=conv_transpose_geometries(max_in=3))
def test_conv_transpose2d_gradcheck_drawn(g):
    x, w, b = g.arrays()
    params = {"stride": g.stride, "padding": g.padding, "output_padding": g.output_padding}
    assert gradcheck_op(
        conv_transpose2d_forward, conv_transpose2d_backward, {"x": x, "w": w, "b": b}, params, max_points=6
    )


def test_functional_conv2d_gradcheck(rng):
    x, w, b = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 3, 2)), rng.standard_normal(3)
    fn = lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1)  # noqa: E731
    assert gradcheck(fn, x, w, b, names=["x", "w", "b"])


def test_functional_conv_transpose2d_gradcheck(rng):
    x, w, b = rng.standard_normal((2, 2, 3, 2)), rng.standard_normal((2, 3, 3, 2)), rng.standard_normal(3)
    fn = lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=(1, 0), output_padding=1)  # noqa: E731
    assert gradcheck(fn, x, w, b, names=["x", "w", "b"])


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
def test_first_layer_skips_dx_but_keeps_dw(rng, op):
    """With a constant input (need_dx=False) dw and db are unchanged and dx is not computed."""
    fn = getattr(F, op)
    x = rng.standard_normal((2, 2, 4, 5))
    w = rng.standard_normal((2, 3, 3, 3) if op == "conv_transpose2d" else (3, 2, 3, 3))
    b = rng.standard_normal(3)
    grads = []
    for x_needs_grad in (True, False):
        xt = Tensor(x, requires_grad=x_needs_grad)
        wt, bt = Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
        y = fn(xt, wt, bt, stride=2, padding=1)
        y.backward(np.arange(y.size, dtype=float).reshape(y.shape) % 7 - 3)
        assert (xt.grad is not None) == x_needs_grad
        grads.append((wt.grad, bt.grad))
    np.testing.assert_allclose(grads[0][0], grads[1][0], **TOL)
    np.testing.assert_allclose(grads[0][1], grads[1][1], **TOL)
    _, cache = (conv_transpose2d_forward if op == "conv_transpose2d" else conv2d_forward)(x, w, b, 2, 1)
    backward = conv_transpose2d_backward if op == "conv_transpose2d" else conv2d_backward
    y_shape = fn(x, w, b, stride=2, padding=1).shape
    dx, dw, db = backward(np.ones(y_shape), cache, need_dx=False)
    assert dx is None and dw.shape == w.shape and db.shape == b.shape


# ----------------------------------------------------------------------------- the adjoint identity


@given(g=conv_geometries())
def test_conv_transpose2d_is_the_adjoint_of_conv2d(g):
    """<conv2d(x, w), y> == <x, conv_transpose2d(y, w)> for every x, y (same w, no bias)."""
    x, w, _ = g.arrays(bias=False)
    y = g.rng().standard_normal((g.N, g.Cout) + g.out_hw) + 0.5
    conv_x, _ = conv2d_forward(x, w, None, stride=g.stride, padding=g.padding)
    # conv_transpose2d reads w (Cout_conv, Cin_conv, kh, kw) as (its Cin, its Cout, kh, kw): same array.
    convT_y, _ = conv_transpose2d_forward(
        y, w, None, stride=g.stride, padding=g.padding, output_padding=g.adjoint_output_padding
    )
    assert convT_y.shape == x.shape
    lhs, rhs = np.sum(conv_x * y), np.sum(x * convT_y)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-11, atol=1e-11 * (1 + np.abs(conv_x).sum()))


@given(g=conv_geometries())
def test_conv2d_input_gradient_is_conv_transpose2d(g):
    """The same adjoint seen from the backward pass: conv2d's dx == conv_transpose2d(dy, w)."""
    x, w, b = g.arrays()
    y, cache = conv2d_forward(x, w, b, stride=g.stride, padding=g.padding)
    dy = g.rng().standard_normal(y.shape)
    dx, _, _ = conv2d_backward(dy, cache)
    expected = naive.conv_transpose2d(dy, w, None, g.stride, g.padding, g.adjoint_output_padding)
    np.testing.assert_allclose(dx, expected, **TOL)


# ----------------------------------------------------------------------------- bad input


def _a(*shape, dtype=np.float64):
    return np.zeros(shape, dtype=dtype)


BAD_CONV2D = [
    ("mismatched channels", (_a(1, 3, 5, 5), _a(2, 4, 3, 3), None), {}, r"conv2d.*\(1, 3, 5, 5\).*\(2, 4, 3, 3\)"),
    ("kernel larger than input", (_a(1, 1, 3, 4), _a(1, 1, 5, 5), None), {}, r"conv2d.*5x5.*3x4"),
    ("kernel larger than padded input", (_a(1, 1, 2, 2), _a(1, 1, 5, 5), None), {"padding": 1},
     r"conv2d.*5x5.*4x4.*2x2"),
    ("stride 0", (_a(1, 1, 5, 5), _a(1, 1, 3, 3), None), {"stride": 0}, r"conv2d.*stride.*0"),
    ("stride (1, 0)", (_a(1, 1, 5, 5), _a(1, 1, 3, 3), None), {"stride": (1, 0)}, r"conv2d.*stride.*\(1, 0\)"),
    ("stride -1", (_a(1, 1, 5, 5), _a(1, 1, 3, 3), None), {"stride": -1}, r"conv2d.*stride.*-1"),
    ("stride 1.5", (_a(1, 1, 5, 5), _a(1, 1, 3, 3), None), {"stride": 1.5}, r"conv2d.*stride.*1\.5"),
    ("stride True", (_a(1, 1, 5, 5), _a(1, 1, 3, 3), None), {"stride": True}, r"conv2d.*stride.*True"),
    ("stride triple", (_a(1, 1, 5, 5), _a(1, 1, 3, 3), None), {"stride": (1, 1, 1)}, r"conv2d.*stride.*\(1, 1, 1\)"),
    ("negative padding", (_a(1, 1, 5, 5), _a(1, 1, 3, 3), None), {"padding": -1}, r"conv2d.*padding.*-1"),
    ("x rank 3", (_a(3, 5, 5), _a(2, 3, 3, 3), None), {}, r"conv2d.*x.*4.*\(3, 5, 5\)"),
    ("x rank 5", (_a(1, 1, 3, 5, 5), _a(2, 3, 3, 3), None), {}, r"conv2d.*x.*4.*\(1, 1, 3, 5, 5\)"),
    ("w rank 3", (_a(1, 3, 5, 5), _a(3, 3, 3), None), {}, r"conv2d.*w.*4.*\(3, 3, 3\)"),
    ("bias of wrong length", (_a(1, 3, 5, 5), _a(2, 3, 3, 3), _a(3)), {}, r"conv2d.*\(3,\).*2"),
    ("bias of wrong rank", (_a(1, 3, 5, 5), _a(2, 3, 3, 3), _a(2, 1)), {}, r"conv2d.*b.*\(2, 1\)"),
    ("x float32, w float64", (_a(1, 3, 5, 5, dtype=np.float32), _a(2, 3, 3, 3), None), {},
     r"conv2d.*float32.*float64"),
    ("bias float32", (_a(1, 3, 5, 5), _a(2, 3, 3, 3), _a(2, dtype=np.float32)), {}, r"conv2d.*float32.*float64"),
    ("integer x", (_a(1, 3, 5, 5, dtype=np.int64), _a(2, 3, 3, 3), None), {}, r"conv2d.*x.*int64"),
    ("integer w", (_a(1, 3, 5, 5), _a(2, 3, 3, 3, dtype=np.int32), None), {}, r"conv2d.*w.*int32"),
]


@pytest.mark.parametrize("args, kwargs, message", [c[1:] for c in BAD_CONV2D], ids=[c[0] for c in BAD_CONV2D])
def test_conv2d_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        conv2d_forward(*args, **kwargs)


BAD_TRANSPOSE = [
    ("mismatched channels", (_a(1, 3, 4, 4), _a(2, 2, 3, 3), None), {},
     r"conv_transpose2d.*\(1, 3, 4, 4\).*\(2, 2, 3, 3\)"),
    ("output_padding == stride", (_a(1, 1, 4, 4), _a(1, 1, 3, 3), None), {"stride": 2, "output_padding": 2},
     r"conv_transpose2d.*output_padding.*\(2, 2\).*stride.*\(2, 2\)"),
    ("output_padding > stride on one axis", (_a(1, 1, 4, 4), _a(1, 1, 3, 3), None),
     {"stride": (2, 1), "output_padding": (1, 1)}, r"conv_transpose2d.*output_padding.*\(1, 1\).*\(2, 1\)"),
    ("negative output_padding", (_a(1, 1, 4, 4), _a(1, 1, 3, 3), None), {"output_padding": -1},
     r"conv_transpose2d.*output_padding.*-1"),
    ("stride 0", (_a(1, 1, 4, 4), _a(1, 1, 3, 3), None), {"stride": 0}, r"conv_transpose2d.*stride.*0"),
    ("negative padding", (_a(1, 1, 4, 4), _a(1, 1, 3, 3), None), {"padding": (0, -2)},
     r"conv_transpose2d.*padding.*-2"),
    ("empty output", (_a(1, 1, 1, 1), _a(1, 1, 1, 1), None), {"padding": 1}, r"conv_transpose2d.*-1x-1.*1x1"),
    ("x rank 2", (_a(4, 4), _a(1, 1, 3, 3), None), {}, r"conv_transpose2d.*x.*4.*\(4, 4\)"),
    ("w rank 5", (_a(1, 1, 4, 4), _a(1, 1, 1, 3, 3), None), {}, r"conv_transpose2d.*w.*4.*\(1, 1, 1, 3, 3\)"),
    ("bias of wrong length", (_a(1, 2, 4, 4), _a(2, 3, 3, 3), _a(2)), {}, r"conv_transpose2d.*\(2,\).*3"),
    ("mixed dtypes", (_a(1, 2, 4, 4), _a(2, 3, 3, 3, dtype=np.float32), None), {},
     r"conv_transpose2d.*float32.*float64"),
    ("integer x", (_a(1, 2, 4, 4, dtype=np.int64), _a(2, 3, 3, 3), None), {}, r"conv_transpose2d.*x.*int64"),
]


@pytest.mark.parametrize("args, kwargs, message", [c[1:] for c in BAD_TRANSPOSE], ids=[c[0] for c in BAD_TRANSPOSE])
def test_conv_transpose2d_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        conv_transpose2d_forward(*args, **kwargs)


# ----------------------------------------------------------------------------- PyTorch cross-check


@settings(max_examples=examples(0.3))
@given(g=conv_geometries())
def test_conv2d_matches_torch(g):
    torch = pytest.importorskip("torch")
    x, w, b = g.arrays()
    y, cache = conv2d_forward(x, w, b, stride=g.stride, padding=g.padding)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=g.stride, padding=g.padding)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = g.rng().standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    for ours, theirs in zip(conv2d_backward(dy, cache), (tx, tw, tb)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-10)


@settings(max_examples=examples(0.3))
@given(g=conv_transpose_geometries())
def test_conv_transpose2d_matches_torch(g):
    torch = pytest.importorskip("torch")
    x, w, b = g.arrays()
    kw = dict(stride=g.stride, padding=g.padding, output_padding=g.output_padding)
    y, cache = conv_transpose2d_forward(x, w, b, **kw)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, **kw)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = g.rng().standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    for ours, theirs in zip(conv_transpose2d_backward(dy, cache), (tx, tw, tb)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- both GEMM layouts


def pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


#: conv2d's paths, forced through the module's switches:
#: (FOLD_BELOW, DIRECT_MAX_WORK, DIRECT_DX_MAX_WORK, WINOGRAD_MIN_CIN, COLUMNS_KEEP_MAX)
CONV2D_PATHS = {"per-image": (0, -1, -1, None, None), "folded": (10**9, -1, -1, None, None),
                "direct": (0, 10**9, -1, None, None), "per-image, direct dx": (0, -1, 10**9, None, None),
                "folded, direct dx": (10**9, -1, 10**9, None, None), "winograd": (0, -1, -1, 0, None),
                "blocked columns": (10**9, -1, -1, None, -1)}


def _forced(mp, path):
    fold_below, direct_max, direct_dx_max, winograd_min_cin, keep_max = CONV2D_PATHS[path]
    mp.setattr("minisnn.ops.conv.FOLD_BELOW", fold_below)
    mp.setattr("minisnn.ops.conv.DIRECT_MAX_WORK", direct_max)
    mp.setattr("minisnn.ops.conv.DIRECT_DX_MAX_WORK", direct_dx_max)
    mp.setattr("minisnn.ops.conv.WINOGRAD_MIN_CIN", winograd_min_cin)
    mp.setattr("minisnn.ops.conv.COLUMNS_KEEP_MAX", keep_max)


def _check_path(path, g, bias):
    x, w, b = g.arrays(bias=bias)
    fold_below, direct_max, _, winograd_min_cin, keep_max = CONV2D_PATHS[path]
    with pytest.MonkeyPatch.context() as mp:
        _forced(mp, path)
        y, cache = conv2d_forward(x, w, b, stride=g.stride, padding=g.padding)
        stride_one = pair(g.stride) == (1, 1)
        if direct_max > 0 and stride_one and all(p < k for p, k in zip(pair(g.padding), w.shape[2:])):
            expected = "direct"
        elif winograd_min_cin is not None and stride_one and w.shape[2:] == (3, 3):
            expected = "winograd"
        elif keep_max is not None:
            expected = "blocked columns"
        else:
            expected = "columns"
        assert cache.path == expected
        if expected == "columns":
            assert cache.fold is (fold_below > 0)
        np.testing.assert_allclose(y, naive.conv2d(x, w, b, g.stride, g.padding), **TOL)
        gradcheck_op(conv2d_forward, conv2d_backward, dict(x=x, w=w, b=b),
                     dict(stride=g.stride, padding=g.padding), max_points=12)


@pytest.mark.parametrize("path", CONV2D_PATHS)
@given(g=conv_geometries(), bias=st.booleans())
def test_conv2d_every_path_matches_naive(path, g, bias):
    """Small planes fold the batch into one GEMM, large ones use a GEMM per image, stride-1
    layers with few channels skip the columns (the direct kernel), 3x3 stride-1 layers with
    more channels run as Winograd: force each."""
    _check_path(path, g, bias)


@given(g=winograd_geometries(), bias=st.booleans())
def test_winograd_path_matches_naive(g, bias):
    """The Winograd path on its own geometries (kernel 3x3 is rare in the generic ones):
    padding 0-2, odd sizes whose last tiles are cropped, 1x1 outputs."""
    _check_path("winograd", g, bias)


# ----------------------------------------------------------------------------- rectify=

#: (gain, amplitude): plain, the seg app's scale_firing_rates of 500, a gain and an amplitude
#: that are not powers of two
RECTIFIERS = [(1.0, 1.0), (500.0, 1 / 500), (3.0, 0.7)]


def _rectified_both_ways(x, w, b, stride, padding, rectifier, dy_seed=0, need_dx=True):
    """``conv2d(..., rectify=)`` and its gradients, and the same from the two layers one after
    the other (conv2d; RectifiedLinear's rate and derivative; the product; conv2d's
    backward), on the path the module's switches choose: ``(fused, layered, fused cache)``."""
    r, cache = conv2d_forward(x, w, b, stride=stride, padding=padding, rectify=rectifier)
    dy = np.random.default_rng(dy_seed).standard_normal(r.shape).astype(x.dtype)
    fused = (r, *conv2d_backward(dy, cache, need_dx=need_dx))
    gain, amplitude = rectifier
    y, plain = conv2d_forward(x, w, b, stride=stride, padding=padding)
    r2, dr = RectifiedLinear(amplitude).scaled_rate_and_grad(y, gain)
    layered = (r2, *conv2d_backward(dy * dr, plain, need_dx=need_dx))
    return fused, layered, cache


def _assert_identical(fused, layered):
    for got, expected in zip(fused, layered):
        if expected is None:
            assert got is None
        else:
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("path", CONV2D_PATHS)
@settings(max_examples=examples(0.5))
@given(g=conv_geometries(), bias=st.booleans(), rectifier=st.sampled_from(RECTIFIERS))
def test_rectified_conv2d_is_the_conv_then_the_neuron_layer(path, g, bias, rectifier):
    """``rectify=(gain, amplitude)`` gives the output and gradients of a conv2d followed by a
    RectifiedLinear layer with that ``scale_firing_rates``, bit for bit, on every path (the
    Winograd path does the rectifier inside its transforms), and passes the float64
    gradient check."""
    x, w, b = g.arrays(bias=bias)
    with pytest.MonkeyPatch.context() as mp:
        _forced(mp, path)
        fused, layered, _ = _rectified_both_ways(x, w, b, g.stride, g.padding, rectifier)
        _assert_identical(fused, layered)
        gradcheck_op(conv2d_forward, conv2d_backward, dict(x=x, w=w, b=b),
                     dict(stride=g.stride, padding=g.padding, rectify=rectifier), max_points=12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("need_dx", [True, False])
def test_rectified_winograd_layer_at_the_cae_sizes(rng, dtype, need_dx):
    """The seg CAE's 16-channel layer (three blocks of images, cropped tiles on 11 x 27):
    the rectifier rides in the Winograd transforms, the cache keeps the rectified output in
    place of a derivative array, and every number is the two layers' own."""
    x = rng.standard_normal((9, 16, 11, 27)).astype(dtype)
    w = (0.1 * rng.standard_normal((16, 16, 3, 3))).astype(dtype)
    b = (0.1 * rng.standard_normal(16)).astype(dtype)
    fused, layered, cache = _rectified_both_ways(x, w, b, 1, 1, (500.0, 1 / 500), need_dx=need_dx)
    assert isinstance(cache, WinogradCache) and cache.r is fused[0]
    assert 0.2 < np.mean(fused[0] > 0) < 0.8
    _assert_identical(fused, layered)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_backward_with_the_kept_input_transform_is_the_same(rng, dtype, monkeypatch):
    """The forward pass keeps each block's transformed input (within WINOGRAD_KEEP_MAX) and
    the backward pass reads it instead of transforming the input again: the same bits."""
    x = rng.standard_normal((9, 16, 11, 27)).astype(dtype)
    w = rng.standard_normal((24, 16, 3, 3)).astype(dtype)
    b = rng.standard_normal(24).astype(dtype)
    dy = rng.standard_normal((9, 24, 11, 27)).astype(dtype)
    results = []
    for keep_max in (64 << 20, None):
        monkeypatch.setattr("minisnn.ops.conv.WINOGRAD_KEEP_MAX", keep_max)
        y, cache = conv2d_forward(x, w, b, padding=1)
        assert cache.path == "winograd" and (cache.Vs is None) is (keep_max is None)
        if keep_max is not None:
            assert len(cache.Vs) == len(winograd_blocks(9, 6, 14)) > 1
        results.append((y, *conv2d_backward(dy, cache)))
    _assert_identical(*results)
    # the budget counts the whole layer's V: one byte less than it takes, and it is not kept
    monkeypatch.setattr("minisnn.ops.conv.WINOGRAD_KEEP_MAX", 16 * (16 * 9 * 6 * 14 + 16) * x.itemsize - 1)
    assert conv2d_forward(x, w, b, padding=1)[1].Vs is None


def test_rectified_winograd_underflow_keeps_the_derivative(rng):
    """``amplitude * (gain * y)`` can underflow to 0 where ``gain * y > 0`` (float32,
    amplitude 1e-30, outputs ~1e-16): ``r > 0`` would then miss those neurons, so the forward
    pass keeps the derivative as an array; the numbers are still the two layers' own."""
    x = (1e-8 * rng.standard_normal((2, 16, 6, 6))).astype(np.float32)
    w = (1e-8 * rng.standard_normal((16, 16, 3, 3))).astype(np.float32)
    fused, layered, cache = _rectified_both_ways(x, w, None, 1, 1, (1.0, 1e-30))
    assert isinstance(cache, RectifiedCache) and cache.conv.path == "winograd"
    assert np.any((fused[0] == 0) & (cache.slope != 0))  # the case this is for
    _assert_identical(fused, layered)


@pytest.mark.parametrize("path", ["winograd", "per-image", "direct"])
def test_rectified_conv2d_with_nan_raises_the_neuron_layers_error(rng, path, monkeypatch):
    x = rng.standard_normal((2, 8, 6, 6))
    x[1, 3, 2, 2] = np.nan
    _forced(monkeypatch, path)
    with pytest.raises(ValueError, match=r"RectifiedLinear: J \(input current\) contains NaN"):
        conv2d_forward(x, rng.standard_normal((8, 8, 3, 3)), None, padding=1, rectify=(1.0, 1.0))


@pytest.mark.parametrize("rectify, message", [((0.0, 1.0), "must be finite and > 0"),
                                              ((1.0, np.inf), "must be finite and > 0"),
                                              ("relu", "must be a pair"), ((1.0,), "must be a pair")])
def test_conv2d_rectify_argument_is_checked(rng, rectify, message):
    with pytest.raises(ValueError, match=f"conv2d: rectify.*{message}"):
        conv2d_forward(rng.standard_normal((1, 8, 5, 5)), rng.standard_normal((8, 8, 3, 3)), rectify=rectify)


def _both_ways(paths, x, w, b, dy, need_dx, expected_kinds):
    results = []
    for path, kind in zip(paths, expected_kinds):
        with pytest.MonkeyPatch.context() as mp:
            _forced(mp, path)
            y, cache = conv2d_forward(x, w, b, stride=1, padding=1)
            assert cache.path == kind
            results.append((y, *conv2d_backward(dy, cache, need_dx=need_dx)))
    tol = dict(rtol=1e-10, atol=1e-10) if x.dtype == np.float64 else dict(rtol=2e-4, atol=2e-4)
    for got, expected in zip(*results):
        if expected is None:
            assert got is None
        else:
            assert got.dtype == x.dtype
            np.testing.assert_allclose(got, expected, **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("need_dx", [True, False])
def test_direct_path_equals_the_column_path(rng, dtype, need_dx):
    """The CAE's shape class (16 -> 16 channels, 3x3, padding 1, a wide plane), both ways:
    the same outputs and gradients up to rounding."""
    x, dy = (rng.standard_normal((5, 16, 12, 29)).astype(dtype) for _ in range(2))
    w = rng.standard_normal((16, 16, 3, 3)).astype(dtype)
    b = rng.standard_normal(16).astype(dtype)
    _both_ways(["direct", "folded"], x, w, b, dy, need_dx, ["direct", "columns"])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("need_dx", [True, False])
def test_winograd_path_equals_the_column_path(rng, dtype, need_dx):
    """A CAE-like layer (32 -> 24 channels, odd 11 x 29 planes) through Winograd and through
    the columns: the same outputs and gradients up to rounding, in float32 too."""
    x, dy = (rng.standard_normal((6, 32, 11, 29)).astype(dtype) for _ in range(2))
    w = (rng.standard_normal((24, 32, 3, 3)) / 17).astype(dtype)
    b = rng.standard_normal(24).astype(dtype)
    dy = dy[:, :24]
    _both_ways(["winograd", "folded"], x, w, b, dy, need_dx, ["winograd", "columns"])


def test_default_paths_for_the_shipped_nets():
    """Which path the defaults pick: the direct kernel for the fewest channels, Winograd for
    3x3 stride-1 layers with >= WINOGRAD_MIN_CIN inputs, the columns otherwise (LocNet's
    3-channel first layer, stride 2)."""
    def kind(cin, cout, stride):
        x = np.zeros((1, cin, 6, 8), np.float32)
        return conv2d_forward(x, np.zeros((cout, cin, 3, 3), np.float32), stride=stride, padding=1)[1].path

    assert kind(1, 16, 1) == "direct" and kind(16, 1, 1) == "direct"
    assert kind(16, 16, 1) == "winograd" and kind(8, 16, 1) == "winograd"
    assert kind(3, 32, 1) == "columns" and kind(16, 16, 2) == "columns"
    # columns of more than COLUMNS_KEEP_MAX (64 MiB) are built block by block instead of kept:
    # not at the loc default's ANN batch of 32 on 48 x 72 (8 -> 8 channels, stride 2: 8 MiB),
    # at its unrolled hybrid step's 20 x 32 images (159 MiB); the dispatch itself is tested
    # with the limit forced (CONV2D_PATHS)
    columns = 8 * 9 * 24 * 36 * 4  # bytes an image
    assert 32 * columns <= COLUMNS_KEEP_MAX < 640 * columns
    assert kind(8, 8, 2) == "columns"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("need_dx", [True, False])
def test_blocked_column_path_equals_the_kept_columns(rng, dtype, need_dx, monkeypatch):
    """A stride-2 layer (the unrolled hybrid step's kind) in blocks of one and two images,
    its columns built again in the backward pass: the outputs and gradients of the path that
    keeps them, up to rounding (the weight gradient is summed in another order)."""
    x = rng.standard_normal((9, 8, 20, 30)).astype(dtype)
    w = (rng.standard_normal((16, 8, 3, 3)) / 8).astype(dtype)
    b = rng.standard_normal(16).astype(dtype)
    dy = rng.standard_normal((9, 16, 10, 15)).astype(dtype)
    results = []
    for keep_max, block_bytes in ((None, 2 << 20), (-1, 2 * 72 * 150 * x.itemsize)):
        monkeypatch.setattr("minisnn.ops.conv.COLUMNS_KEEP_MAX", keep_max)
        monkeypatch.setattr("minisnn.ops.conv.COLUMNS_BLOCK_BYTES", block_bytes)
        y, cache = conv2d_forward(x, w, b, stride=2, padding=1)
        assert cache.path == ("columns" if keep_max is None else "blocked columns")
        results.append((y, *conv2d_backward(dy, cache, need_dx=need_dx)))
    assert column_blocks(9, 72, 150, x.itemsize) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7),
                                                     (7, 9)]
    # Each value is a sum (72 terms for y, 1350 for the weight gradient) that the two paths add
    # in another order, and the BLAS's order depends on the host's kernels (AVX2 or AVX-512).
    # Reordering a sum moves it by a few ulps of the sum of its terms' magnitudes, not of the
    # sum itself: that magnitude is the same layer run on |x|, |w|, |b|, |dy| in float64
    # (measured on an AVX-512 host, 20 seeds: at most 1.7 eps of it; a fixed 2e-5 failed there).
    y_abs, cache_abs = conv2d_forward(*(np.abs(a).astype(np.float64) for a in (x, w, b)), stride=2, padding=1)
    magnitudes = (y_abs, *conv2d_backward(np.abs(dy).astype(np.float64), cache_abs, need_dx=need_dx))
    eps = np.finfo(dtype).eps
    for got, expected, magnitude in zip(results[1], results[0], magnitudes):
        if expected is None:
            assert got is None
        else:
            assert got.dtype == dtype
            error = np.abs(got.astype(np.float64) - expected)
            assert np.all(error <= 8 * eps * magnitude), np.max(error / (eps * magnitude))


def _same_bits_on_one_and_two_threads(x, w, b, dy, stride, path):
    """conv2d forward + backward at 1 and at 2 threads (Numba's and the BLAS's) through
    ``path``: every output and gradient must be the same bits."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only (NUMBA_NUM_THREADS < 2): nothing to compare 1 thread against")
    blas = threadpoolctl.threadpool_info()
    previous = kernels.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            set_threads(threads)
            y, cache = conv2d_forward(x, w, b, stride=stride, padding=1)
            assert cache.path == path
            results.append((y, *conv2d_backward(dy, cache)))
    finally:
        kernels.set_num_threads(previous)
        for lib in blas:
            threadpoolctl.threadpool_limits(limits=lib["num_threads"], user_api=lib["user_api"])
    for one, two in zip(*results):
        assert np.array_equal(one, two)


def test_blocked_column_path_gives_the_same_bits_on_one_and_two_threads(rng, monkeypatch):
    """Blocks fixed by the batch and the columns' size, each product one single-threaded BLAS
    call, the weight gradients summed in block order: no bit depends on the thread count."""
    monkeypatch.setattr("minisnn.ops.conv.COLUMNS_KEEP_MAX", -1)
    monkeypatch.setattr("minisnn.ops.conv.COLUMNS_BLOCK_BYTES", 2 * 144 * 150 * 4)  # 2 images a block
    x = rng.standard_normal((8, 16, 20, 30)).astype(np.float32)
    w = (rng.standard_normal((32, 16, 3, 3)) / 12).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    dy = rng.standard_normal((8, 32, 10, 15)).astype(np.float32)
    assert len(column_blocks(8, 144, 150, 4)) == 4
    _same_bits_on_one_and_two_threads(x, w, b, dy, 2, "blocked columns")


def test_direct_path_in_inference_groups_the_batch(rng):
    """Without a cache the direct path pads a group of images at a time (COLS_BUDGET) into a
    scratch buffer and writes into ``out``: same numbers as the cached call."""
    x = rng.standard_normal((7, 3, 10, 11))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    expected, _ = conv2d_forward(x, w, b, stride=1, padding=1)
    out = np.empty_like(expected)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("minisnn.ops.conv.COLS_BUDGET", 3 * 12 * 13 * 8 * 2)  # two images a group
        y, cache = conv2d_forward(x, w, b, stride=1, padding=1, out=out, keep_cache=False)
    assert y is out and cache is None
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_winograd_blocks_cover_the_batch():
    """The Winograd path's image blocks: consecutive, covering the batch once, at most
    WINOGRAD_BLOCK_TILES tiles (or one image) each, a multiple of 4 of them (or one per image),
    their sizes within one image of each other."""
    assert winograd_blocks(64, 12, 28) == [(n, n + 8) for n in range(0, 64, 8)]  # not 5 x 12 + 4
    assert winograd_blocks(64, 3, 7) == [(n, n + 16) for n in range(0, 64, 16)]
    assert winograd_blocks(3, 50, 75) == [(0, 1), (1, 2), (2, 3)]
    assert winograd_blocks(1, 1, 1) == [(0, 1)]
    assert winograd_blocks(7, 5, 6) == [(0, 1), (1, 3), (3, 5), (5, 7)]
    for N in range(1, 70):
        for th, tw in ((1, 1), (3, 7), (12, 28), (40, 40), (50, 75)):
            blocks = winograd_blocks(N, th, tw)
            assert blocks[0][0] == 0 and blocks[-1][1] == N
            assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
            sizes = [n1 - n0 for n0, n1 in blocks]
            assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1
            assert max(sizes) == 1 or max(sizes) * th * tw <= WINOGRAD_BLOCK_TILES
            assert len(blocks) % 4 == 0 or len(blocks) == N


@pytest.mark.parametrize("keep_cache", [True, False])
def test_winograd_path_in_blocks(rng, keep_cache):
    """Cut into blocks of one image or of one and two (the default here), the Winograd path gives what
    one block of the whole batch gives, up to the rounding of the weight gradient's sum over
    blocks; without a cache it writes into ``out``."""
    x = rng.standard_normal((7, 9, 10, 11))
    w = rng.standard_normal((8, 9, 3, 3))
    b = rng.standard_normal(8)
    dy = rng.standard_normal((7, 8, 10, 11))
    assert winograd_blocks(7, 5, 6) == [(0, 1), (1, 3), (3, 5), (5, 7)]  # the default here
    results = []
    for blocks in ([(0, 7)], [(n, n + 1) for n in range(7)], None):
        with pytest.MonkeyPatch.context() as mp:
            if blocks is not None:
                mp.setattr("minisnn.ops.conv.winograd_blocks", lambda N, th, tw, blocks=blocks: blocks)
            out = np.empty((7, 8, 10, 11))
            y, cache = conv2d_forward(x, w, b, stride=1, padding=1, out=out, keep_cache=keep_cache)
            assert y is out
            if keep_cache:
                assert cache.path == "winograd"
                results.append((y, *conv2d_backward(dy, cache)))
            else:
                assert cache is None
                results.append((y,))
    for got in results[1:]:
        for a, e in zip(got, results[0]):
            np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)


def test_winograd_path_gives_the_same_bits_on_one_and_two_threads(rng):
    """Blocks fixed by the batch and the plane, each product one single-threaded BLAS call:
    the thread count (Numba's and the BLAS's) changes no bit of the output or the gradients.
    At this shape (float32, four blocks of two images) the whole batch's products through
    OpenBLAS on two threads had rounded ``y`` and ``dx`` differently from one thread."""
    x = rng.standard_normal((8, 32, 12, 28)).astype(np.float32)
    w = (rng.standard_normal((32, 32, 3, 3)) / 12).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    dy = rng.standard_normal((8, 32, 12, 28)).astype(np.float32)
    assert len(winograd_blocks(8, 6, 14)) == 4
    _same_bits_on_one_and_two_threads(x, w, b, dy, 1, "winograd")


@pytest.mark.parametrize("fold_below", [0, 10**9], ids=["per-image", "folded"])
@given(g=conv_transpose_geometries(), bias=st.booleans())
def test_conv_transpose2d_both_gemm_layouts_match_naive(fold_below, g, bias):
    x, w, b = g.arrays(bias=bias)
    params = dict(stride=g.stride, padding=g.padding, output_padding=g.output_padding)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("minisnn.ops.conv.FOLD_BELOW", fold_below)
        y, cache = conv_transpose2d_forward(x, w, b, **params)
        assert cache.fold is (fold_below > 0)
        np.testing.assert_allclose(y, naive.conv_transpose2d(x, w, b, **params), **TOL)
        gradcheck_op(conv_transpose2d_forward, conv_transpose2d_backward, dict(x=x, w=w, b=b), params,
                     max_points=12)


@pytest.mark.parametrize("fold_below", [0, 10**9], ids=["per-image", "folded"])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose2d_with_kernel_equal_to_stride(rng, fold_below, bias):
    """Kernel == stride, no padding (the CAE's upsampling): the windows do not overlap and the
    forward pass is a permutation of the columns (kernels/fold.py ``shuffle``), checked against
    the loop oracle, a gradient check, and the general col2im route bit for bit."""
    x = rng.standard_normal((3, 4, 5, 6))
    w = rng.standard_normal((4, 2, 2, 3))
    b = rng.standard_normal(2) if bias else None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("minisnn.ops.conv.FOLD_BELOW", fold_below)
        y, cache = conv_transpose2d_forward(x, w, b, stride=(2, 3))
        np.testing.assert_allclose(y, naive.conv_transpose2d(x, w, b, (2, 3), 0, 0), **TOL)
        gradcheck_op(conv_transpose2d_forward, conv_transpose2d_backward, dict(x=x, w=w, b=b),
                     dict(stride=(2, 3)), max_points=12)
        from minisnn.ops.windows import col2im

        x3, _, _, _, g, fold = cache
        cols = w.reshape(4, -1).T @ x3 if fold else np.matmul(w.reshape(4, -1).T, x.reshape(3, 4, -1))
        general = col2im(cols, g, 3, 2, fold=fold) + (0 if b is None else b[:, None, None])
        np.testing.assert_array_equal(y, general)
        # the backward pass's permutation (``unshuffle``) against the general im2col route
        from minisnn.ops.windows import Geometry

        dy = rng.standard_normal(y.shape)
        mp.setattr("minisnn.ops.windows.PARALLEL_MIN_SIZE", 0)  # this small a plane would take the serial im2col
        dx, dw, db = conv_transpose2d_backward(dy, cache)
        mp.setattr(Geometry, "side_by_side", property(lambda g: False))
        dx_general, dw_general, db_general = conv_transpose2d_backward(dy, cache)
        for got, general in ((dx, dx_general), (dw, dw_general), (db, db_general)):
            np.testing.assert_array_equal(got, general)


def test_large_plane_takes_the_per_image_path(rng):
    """A 70x70 output plane (4900 positions) is above FOLD_BELOW: checked against the oracle."""
    from minisnn.ops.conv import FOLD_BELOW

    x = rng.standard_normal((2, 2, 70, 70))
    w = rng.standard_normal((3, 2, 3, 3))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("minisnn.ops.conv.DIRECT_MAX_WORK", -1)
        y, cache = conv2d_forward(x, w, None, stride=1, padding=1)
    assert 70 * 70 >= FOLD_BELOW and cache.fold is False
    np.testing.assert_allclose(y, naive.conv2d(x, w, None, 1, 1), **TOL)


def test_results_survive_later_calls(rng):
    """Temporaries come from reused scratch buffers: no result may alias one."""
    x = rng.standard_normal((2, 3, 9, 9))
    w = rng.standard_normal((4, 3, 3, 3))
    y1, c1 = conv2d_forward(x, w, None, stride=2, padding=1)
    dx1, dw1, _ = conv2d_backward(np.ones_like(y1), c1)
    t1, tc1 = conv_transpose2d_forward(y1, w, None, stride=2, padding=1)
    tdx1, tdw1, _ = conv_transpose2d_backward(np.ones_like(t1), tc1)
    saved = [a.copy() for a in (y1, dx1, dw1, t1, tdx1, tdw1)]
    y2, c2 = conv2d_forward(2 * x, w, None, stride=2, padding=1)
    conv2d_backward(3 * np.ones_like(y2), c2)
    t2, tc2 = conv_transpose2d_forward(2 * y1, w, None, stride=2, padding=1)
    conv_transpose2d_backward(3 * np.ones_like(t2), tc2)
    for a, b in zip((y1, dx1, dw1, t1, tdx1, tdw1), saved):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("stride, padding, kernel", [(1, 1, 3), (2, 1, 3), ((2, 1), (0, 2), (2, 3)), (3, 0, 1)])
def test_event_driven_conv_equals_im2col_conv(stride, padding, kernel, dtype):
    rng = np.random.default_rng(11)
    kh, kw = (kernel, kernel) if np.isscalar(kernel) else kernel
    x = ((rng.uniform(size=(3, 4, 9, 10)) < 0.15) * rng.standard_normal((3, 4, 9, 10))).astype(dtype)
    w = rng.standard_normal((5, 4, kh, kw)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    expected, _ = conv2d_forward(x, w, b, stride, padding)
    got = conv2d_events(x, w, b, stride, padding)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    out = np.empty_like(expected)
    assert conv2d_events(x, w, None, stride, padding, out=out) is out
    np.testing.assert_allclose(out + b[:, None, None], expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("order, in_layout, out_layout", [
    ("pixels", "NHWC", "NHWC"), ("pixels", "NHWC", "NCHW"), ("pixels", "NCHW", "NHWC"), ("channels", "NCHW", "NHWC")])
def test_event_driven_conv_channels_last_gives_the_same_sums(order, in_layout, out_layout):
    """Channels last in and/or out: the same additions in the same order, only stored
    transposed - equal bit for bit to the (N, C, H, W) run of the same order.  (A channels-last
    input is scanned in pixel order only: see the error test below.)"""
    rng = np.random.default_rng(12)
    counts = (rng.uniform(size=(2, 20, 9, 10)) < 0.2).astype(np.uint8)
    w = rng.standard_normal((18, 20, 3, 3)).astype(np.float32)
    b = rng.standard_normal(18).astype(np.float32)
    expected = conv2d_events(counts, w, b, 2, 1, scale=np.float32(1000.0), order=order)
    x = np.ascontiguousarray(counts.transpose(0, 2, 3, 1)) if in_layout == "NHWC" else counts
    got = conv2d_events(x, w, b, 2, 1, scale=np.float32(1000.0), order=order, in_layout=in_layout,
                        out_layout=out_layout)
    np.testing.assert_array_equal(got.transpose(0, 3, 1, 2) if out_layout == "NHWC" else got, expected)


def test_event_driven_conv_layout_errors():
    x = np.zeros((1, 2, 5, 5), np.float32)
    w = np.zeros((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="in_layout must be 'NCHW' or 'NHWC', got 'CHW'"):
        conv2d_events(x, w, in_layout="CHW")
    with pytest.raises(ValueError, match="needs order='pixels'"):
        conv2d_events(x, w, in_layout="NHWC")
    with pytest.raises(ValueError, match=r"out must be a C-contiguous float32 array of shape \(1, 5, 5, 3\)"):
        conv2d_events(x, w, padding=1, out_layout="NHWC", out=np.zeros((1, 3, 5, 5), np.float32))


def test_event_driven_conv_bad_input():
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="channels"):
        conv2d_events(x, np.zeros((3, 4, 3, 3), np.float32))
    with pytest.raises(ValueError, match="out must be"):
        conv2d_events(x, np.zeros((3, 2, 3, 3), np.float32), out=np.zeros((1, 3, 5, 5), np.float64))


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble])
@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d", "conv2d_events"])
def test_unsupported_float_dtypes_get_a_one_line_error(op, dtype):
    """The kernels compile for float32 and float64; other floats must not reach Numba."""
    x = np.ones((1, 8, 5, 5), dtype)
    w = np.ones((8, 8, 3, 3), dtype)
    fn = {"conv2d": conv2d_forward, "conv_transpose2d": conv_transpose2d_forward, "conv2d_events": conv2d_events}[op]
    with pytest.raises(ValueError, match=f"{op}: arrays must be float32 or float64, got {np.dtype(dtype)}"):
        fn(x, w)
