"""The gradient checker itself: it passes on correct backward passes and *fails*, naming the
argument, the index and both values, on deliberately wrong ones."""

from __future__ import annotations

import re

import numpy as np
import pytest

from minisnn import functional as F
from minisnn.autodiff import Function, op_function
from minisnn.gradcheck import GradcheckError, gradcheck, gradcheck_module, gradcheck_op, numerical_gradient
from minisnn.layers import Dense, Module, Parameter
from minisnn.ops import dense_backward, dense_forward

MESSAGE = re.compile(r"d/d(\w+)\[([\d, ]+)\]: analytic (\S+) != numeric (\S+)")


def _parse(excinfo):
    """(argument name, index, analytic, numeric) from a GradcheckError message.

    Tolerates NumPy-scalar reprs in the index (``np.int64(0)``): the plain format of the index
    is checked on its own in :func:`test_message_index_is_plain_integers`.
    """
    text = re.sub(r"np\.\w+\((-?\d+)\)", r"\1", str(excinfo.value))
    m = MESSAGE.search(text)
    assert m, str(excinfo.value)
    return m.group(1), tuple(int(i) for i in m.group(2).split(",")), float(m.group(3)), float(m.group(4))


def _dense_inputs(rng):
    return {"x": rng.standard_normal((3, 4)), "w": rng.standard_normal((2, 4)), "b": rng.standard_normal(2)}


def double_backward(dy, cache, need_dx=True):
    """Every gradient twice too large."""
    return tuple(2 * g for g in dense_backward(dy, cache))


def flipped_w_backward(dy, cache, need_dx=True):
    """dx and db right, dw with the wrong sign."""
    dx, dw, db = dense_backward(dy, cache)
    return dx, -dw, db


def ones_backward(dy, cache, need_dx=True):
    """Ignores the upstream gradient (uses ones): right only for loss = sum(y)."""
    return dense_backward(np.ones_like(dy), cache)


def test_numerical_gradient_of_a_known_function():
    x = np.array([1.0, 2.0, -3.0])
    g = numerical_gradient(lambda: float(np.sum(x**3)), x)
    np.testing.assert_allclose(g, 3 * x**2, rtol=1e-8)
    np.testing.assert_array_equal(x, [1.0, 2.0, -3.0])  # restored after perturbing
    partial = numerical_gradient(lambda: float(np.sum(x**3)), x, indices=[1])
    assert np.isnan(partial[0]) and partial[1] == pytest.approx(12.0, rel=1e-8)


def test_passes_on_a_correct_backward(rng):
    assert gradcheck_op(dense_forward, dense_backward, _dense_inputs(rng))
    assert gradcheck(F.dense, *_dense_inputs(rng).values())


def test_fails_on_a_backward_twice_too_large(rng):
    inputs = _dense_inputs(rng)
    with pytest.raises(GradcheckError) as excinfo:
        gradcheck_op(dense_forward, double_backward, inputs)
    name, index, analytic, numeric = _parse(excinfo)
    assert name == "x" and index == (0, 0)  # the first argument, first entry
    assert analytic == pytest.approx(2 * numeric, rel=1e-5)
    # the numeric value in the message is the true gradient (cross-check with the real backward)
    u = np.random.default_rng(0).standard_normal((3, 2))  # gradcheck_op's upstream gradient (seed 0)
    _, cache = dense_forward(**inputs)
    assert numeric == pytest.approx(dense_backward(u, cache)[0][0, 0], rel=1e-6)


def test_fails_on_a_wrong_sign_for_one_input(rng):
    with pytest.raises(GradcheckError) as excinfo:
        gradcheck_op(dense_forward, flipped_w_backward, _dense_inputs(rng))
    name, index, analytic, numeric = _parse(excinfo)
    assert name == "w" and len(index) == 2  # dx passed; w is named, with a 2-d index
    assert analytic == pytest.approx(-numeric, rel=1e-5)


def test_fails_on_a_backward_that_ignores_the_upstream_gradient(rng):
    with pytest.raises(GradcheckError) as excinfo:
        gradcheck_op(dense_forward, ones_backward, _dense_inputs(rng))
    assert _parse(excinfo)[:2] == ("x", (0, 0))


def test_fails_through_the_tensor_path(rng):
    Bad = op_function("BadDenseFn", dense_forward, flipped_w_backward, skips_dx=True)
    x, w, b = _dense_inputs(rng).values()
    assert gradcheck(lambda x, w: F.dense(x, w), x, w, names=["x", "w"])
    with pytest.raises(GradcheckError) as excinfo:
        gradcheck(lambda x, w, b: Bad.apply(x, w, b), x, w, b, names=["x", "w", "b"])
    name, index, analytic, numeric = _parse(excinfo)
    assert name == "w" and analytic == pytest.approx(-numeric, rel=1e-5)


def test_fails_through_a_module(rng):
    class HalfSquare(Function):
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, dout):
            return dout * self.x  # should be 2 x

    class Bad(Module):
        def __init__(self):
            super().__init__()
            self.dense = Dense(3, 2, rng=rng)
            self.gain = Parameter(np.array([1.5]))

        def forward(self, x):
            return HalfSquare.apply(self.dense(x)) * self.gain

    with pytest.raises(GradcheckError) as excinfo:
        gradcheck_module(Bad(), rng.standard_normal((4, 3)))
    assert "dense.w" in str(excinfo.value)  # dotted parameter name


def test_fails_on_a_gradient_of_the_wrong_shape(rng):
    def transposed_w(dy, cache):
        dx, dw, db = dense_backward(dy, cache)
        return dx, dw.T, db

    with pytest.raises(GradcheckError, match=r"gradient of w has shape \(4, 2\), expected \(2, 4\)"):
        gradcheck_op(dense_forward, transposed_w, _dense_inputs(rng))


def test_fails_on_a_nan_gradient(rng):
    def nan_b(dy, cache):
        dx, dw, db = dense_backward(dy, cache)
        return dx, dw, db * np.nan

    with pytest.raises(GradcheckError) as excinfo:
        gradcheck_op(dense_forward, nan_b, _dense_inputs(rng))
    name, index, analytic, _ = _parse(excinfo)
    assert name == "b" and index == (0,) and np.isnan(analytic)


def test_message_shows_both_values_and_tolerances(rng):
    with pytest.raises(GradcheckError) as excinfo:
        gradcheck_op(dense_forward, double_backward, _dense_inputs(rng), atol=1e-7, rtol=1e-5)
    text = str(excinfo.value)
    assert "analytic" in text and "numeric" in text and "atol 1e-07" in text and "rtol 1e-05" in text


def test_message_index_is_plain_integers(rng):
    """The index reads like an array index, ``d/dw[1, 3]``, not ``d/dw[np.int64(1), np.int64(3)]``."""
    with pytest.raises(GradcheckError) as excinfo:
        gradcheck_op(dense_forward, flipped_w_backward, _dense_inputs(rng))
    assert re.search(r"d/dw\[\d+, \d+\]: analytic", str(excinfo.value)), str(excinfo.value)
