"""dense: forward vs the loop oracle, a hand-computed case, dtypes, gradient checks, bad input,
and PyTorch as an optional cross-check."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import naive
from minisnn import functional as F
from minisnn.autodiff import Tensor
from minisnn.gradcheck import gradcheck, gradcheck_op
from minisnn.ops import dense_backward, dense_forward
from minisnn.ops.dense import dense_events
from strategies import seeds

TOL = dict(rtol=1e-12, atol=1e-12)

dense_shapes = st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 5), seeds, st.booleans())


def _arrays(N, I, O, seed, bias, dtype=np.float64):
    r = np.random.default_rng(seed)
    x, w = r.standard_normal((N, I)).astype(dtype), r.standard_normal((O, I)).astype(dtype)
    return x, w, (r.standard_normal(O).astype(dtype) if bias else None)


@given(shape=dense_shapes)
def test_dense_matches_naive(shape):
    x, w, b = _arrays(*shape)
    y, _ = dense_forward(x, w, b)
    assert y.shape == (shape[0], shape[2])
    np.testing.assert_allclose(y, naive.dense(x, w, b), **TOL)


def test_dense_hand_computed():
    # x = [1, 2];  w = [[3, 4], [5, 6], [7, 8]] (out, in);  b = [0.5, -0.5, 1]
    # y = x @ w.T + b = [1*3 + 2*4, 1*5 + 2*6, 1*7 + 2*8] + b = [11, 17, 23] + b = [11.5, 16.5, 24]
    x = np.array([[1.0, 2.0]])
    w = np.array([[3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    y, cache = dense_forward(x, w, np.array([0.5, -0.5, 1.0]))
    np.testing.assert_array_equal(y, [[11.5, 16.5, 24.0]])
    # upstream dy = [1, 0, -1]: dx = dy @ w = [3 - 7, 4 - 8] = [-4, -4]; dw = dy.T @ x; db = dy
    dx, dw, db = dense_backward(np.array([[1.0, 0.0, -1.0]]), cache)
    np.testing.assert_array_equal(dx, [[-4.0, -4.0]])
    np.testing.assert_array_equal(dw, [[1.0, 2.0], [0.0, 0.0], [-1.0, -2.0]])
    np.testing.assert_array_equal(db, [1.0, 0.0, -1.0])


@pytest.mark.parametrize("bias", [True, False])
def test_float32_is_preserved(bias):
    x, w, b = _arrays(3, 4, 2, 0, bias, dtype=np.float32)
    y, cache = dense_forward(x, w, b)
    assert y.dtype == np.float32
    dx, dw, db = dense_backward(np.ones_like(y), cache)
    assert dx.dtype == dw.dtype == np.float32
    assert db is None if not bias else db.dtype == np.float32


@pytest.mark.parametrize("shape", [(1, 1, 1, 1, True), (3, 5, 4, 2, True), (2, 3, 6, 3, False)])
def test_dense_gradcheck_op(shape):
    x, w, b = _arrays(*shape)
    assert gradcheck_op(dense_forward, dense_backward, {"x": x, "w": w, "b": b})


@given(shape=dense_shapes)
def test_dense_gradcheck_drawn(shape):
    x, w, b = _arrays(*shape)
    assert gradcheck_op(dense_forward, dense_backward, {"x": x, "w": w, "b": b})


def test_functional_dense_gradcheck():
    x, w, b = _arrays(3, 4, 5, 7, True)
    assert gradcheck(F.dense, x, w, b, names=["x", "w", "b"])
    assert gradcheck(lambda x, w: F.dense(x, w), x, w, names=["x", "w"])


def test_constant_input_skips_dx():
    x, w, b = _arrays(3, 4, 2, 1, True)
    wt = Tensor(w, requires_grad=True)
    y = F.dense(x, wt, b)  # x and b are constants
    y.backward(np.ones(y.shape))
    np.testing.assert_allclose(wt.grad, np.ones((3, 2)).T @ x, **TOL)
    _, cache = dense_forward(x, w, b)
    dx, _, _ = dense_backward(np.ones((3, 2)), cache, need_dx=False)
    assert dx is None


def _a(*shape, dtype=np.float64):
    return np.zeros(shape, dtype=dtype)


BAD_DENSE = [
    ("mismatched features", (_a(2, 3), _a(4, 5), None), r"dense.*\(2, 3\).*\(4, 5\)"),
    ("x rank 1", (_a(3), _a(4, 3), None), r"dense.*x.*2.*\(3,\)"),
    ("x rank 3", (_a(2, 1, 3), _a(4, 3), None), r"dense.*x.*2.*\(2, 1, 3\)"),
    ("w rank 1", (_a(2, 3), _a(3), None), r"dense.*w.*2.*\(3,\)"),
    ("bias of wrong length", (_a(2, 3), _a(4, 3), _a(3)), r"dense.*\(3,\).*\(4, 3\)"),
    ("bias of wrong rank", (_a(2, 3), _a(4, 3), _a(1, 4)), r"dense.*b.*\(1, 4\)"),
    ("mixed dtypes", (_a(2, 3, dtype=np.float32), _a(4, 3), None), r"dense.*float32.*float64"),
    ("mixed bias dtype", (_a(2, 3), _a(4, 3), _a(4, dtype=np.float32)), r"dense.*float32.*float64"),
    ("integer x", (_a(2, 3, dtype=np.int64), _a(4, 3), None), r"dense.*x.*int64"),
    ("integer w", (_a(2, 3), _a(4, 3, dtype=np.int16), None), r"dense.*w.*int16"),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in BAD_DENSE], ids=[c[0] for c in BAD_DENSE])
def test_dense_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        dense_forward(*args)


@given(shape=dense_shapes)
def test_dense_matches_torch(shape):
    torch = pytest.importorskip("torch")
    x, w, b = _arrays(*shape)
    y, cache = dense_forward(x, w, b)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    ty = torch.nn.functional.linear(tx, tw, tb)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = np.random.default_rng(shape[3]).standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    dx, dw, db = dense_backward(dy, cache)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-12, atol=1e-12)
    if b is not None:
        np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("R, I, O", [(1, 1, 1), (3, 70, 5), (4, 2100, 53)])
def test_dense_events_equals_the_gemm(R, I, O):
    """The event-driven product: a float map and a uint8 map of counts times ``scale``, against
    dense_forward (float64, rounding apart), bias added."""
    r = np.random.default_rng(R * I * O)
    counts = ((r.uniform(size=(R, I)) < 0.3) * r.integers(1, 3, size=(R, I))).astype(np.uint8)
    w, b = r.standard_normal((O, I)), r.standard_normal(O)
    expected = dense_forward(counts * 250.0, w, b)[0]
    np.testing.assert_allclose(dense_events(counts, w, b, scale=250.0), expected, **TOL)
    values = counts * r.uniform(-2, 2, size=counts.shape)
    np.testing.assert_allclose(dense_events(values, w), dense_forward(values, w)[0], **TOL)
    out = np.empty((R, O))
    assert dense_events(values, w, b, out=out) is out


BAD_DENSE_EVENTS = [
    ("counts without scale", (np.zeros((2, 3), np.uint8), _a(4, 3)), {}, r"dense_events.*uint8.*scale=None"),
    ("scale with floats", (_a(2, 3), _a(4, 3)), dict(scale=2.0), r"dense_events.*float64.*scale=2.0"),
    ("mismatched features", (_a(2, 3), _a(4, 5)), {}, r"dense_events.*\(2, 3\).*\(4, 5\)"),
    ("counts of rank 3", (np.zeros((2, 1, 3), np.uint8), _a(4, 3)), dict(scale=1.0), r"dense_events.*2-D.*\(2, 1, 3\)"),
    ("integer w", (_a(2, 3), _a(4, 3, dtype=np.int16)), {}, r"dense_events.*w.*int16"),
    ("mixed dtypes", (_a(2, 3, dtype=np.float32), _a(4, 3)), {}, r"dense_events.*float32.*float64"),
    ("wrong out", (_a(2, 3), _a(4, 3)), dict(out=_a(4, 2)), r"dense_events.*out.*\(2, 4\)"),
]


@pytest.mark.parametrize("args, kwargs, message", [c[1:] for c in BAD_DENSE_EVENTS], ids=[c[0] for c in BAD_DENSE_EVENTS])
def test_dense_events_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        dense_events(*args, **kwargs)
