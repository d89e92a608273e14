"""The autodiff engine: every elementwise op and reduction gradient-checked, broadcasting,
dtypes, accumulation, shared inputs, a deep graph, retain_graph and no_grad."""

from __future__ import annotations

import numpy as np
import pytest

from minisnn.autodiff import Function, Tensor, is_grad_enabled, no_grad
from minisnn.gradcheck import gradcheck


def _pos(rng, *shape):
    """Values in [0.5, 2): safe for log, division and fractional powers."""
    return rng.uniform(0.5, 2.0, shape)


# ----------------------------------------------------------------------------- gradient checks

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@pytest.mark.parametrize("op", BINARY)
def test_binary_op_gradcheck(rng, op):
    a, b = rng.standard_normal((3, 4)), _pos(rng, 3, 4)
    assert gradcheck(BINARY[op], a, b, names=["a", "b"])


@pytest.mark.parametrize(
    "name, fn, positive",
    [
        ("pow 2", lambda x: x**2, False),
        ("pow 3 (int exponent)", lambda x: x**3, False),
        ("pow 0.5", lambda x: x**0.5, True),
        ("pow -1.5", lambda x: x**-1.5, True),
        ("exp", lambda x: x.exp(), False),
        ("log", lambda x: x.log(), True),
        ("sigmoid", lambda x: x.sigmoid(), False),
        ("neg", lambda x: -x, False),
        ("reshape tuple", lambda x: x.reshape((4, 3)), False),
        ("reshape args", lambda x: x.reshape(2, -1, 2), False),
        ("reshape flat", lambda x: x.reshape(-1), False),
    ],
)
def test_unary_op_gradcheck(rng, name, fn, positive):
    x = _pos(rng, 3, 4) if positive else rng.standard_normal((3, 4))
    assert gradcheck(fn, x)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2), (-1, 0)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_gradcheck(rng, reduction, axis, keepdims):
    x = rng.standard_normal((2, 3, 4))
    fn = lambda x: getattr(x, reduction)(axis=axis, keepdims=keepdims)  # noqa: E731
    y = fn(Tensor(x))
    expected = getattr(np, reduction)(x, axis=axis, keepdims=keepdims)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.data, expected, rtol=1e-14)
    assert gradcheck(fn, x)


def test_mean_gradient_values():
    x = Tensor(np.zeros((2, 5)), requires_grad=True)
    x.mean(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, np.full((2, 5), 0.2))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.float32, np.float64])
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_mean_of_any_dtype_is_numpys_mean(dtype, axis):
    # integer means are floats (np.arange(4).mean() == 1.5), float32 stays float32
    x = (np.arange(12).reshape(3, 4) % 5).astype(dtype)
    y = Tensor(x).mean(axis=axis)
    expected = x.mean(axis=axis)
    assert y.data.dtype == expected.dtype
    np.testing.assert_array_equal(y.data, expected)


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [
        ((2, 3), (3,)),  # right operand broadcast (extra leading axis)
        ((3,), (2, 3)),  # left operand broadcast
        ((3, 1), (1, 4)),  # both stretched
        ((2, 1, 3), (4, 3)),  # stretched axis on the left, missing axis on the right
        ((), (2, 3)),  # 0-d tensor
        ((2, 3), (1, 1)),
    ],
)
@pytest.mark.parametrize("op", BINARY)
def test_broadcasting_gradcheck(rng, shape_a, shape_b, op):
    a, b = rng.standard_normal(shape_a), _pos(rng, *shape_b)
    out = BINARY[op](Tensor(a, requires_grad=True), Tensor(b, requires_grad=True))
    assert out.shape == np.broadcast_shapes(shape_a, shape_b)
    assert gradcheck(BINARY[op], a, b, names=["a", "b"])


def test_broadcast_gradient_values():
    # a (3, 1) + b (1, 4) -> (3, 4); d sum / da = 4 per entry (summed over the stretched axis)
    a = Tensor(np.zeros((3, 1)), requires_grad=True)
    b = Tensor(np.zeros((1, 4)), requires_grad=True)
    (a + b).sum().backward()
    np.testing.assert_array_equal(a.grad, np.full((3, 1), 4.0))
    np.testing.assert_array_equal(b.grad, np.full((1, 4), 3.0))


@pytest.mark.parametrize(
    "name, fn",
    [
        ("x + 2", lambda x: x + 2.0),
        ("2 + x", lambda x: 2.0 + x),
        ("x - 2", lambda x: x - 2.0),
        ("2 - x", lambda x: 2.0 - x),
        ("3 * x", lambda x: 3.0 * x),
        ("x * 3", lambda x: x * 3),
        ("x / 3", lambda x: x / 3.0),
        ("3 / x", lambda x: 3.0 / x),
        ("array + x", lambda x: np.arange(4.0) + x),
        ("array - x", lambda x: np.arange(4.0) - x),
        ("array * x", lambda x: np.arange(4.0) * x),
        ("array / x", lambda x: np.arange(4.0) / x),
        ("x / array", lambda x: x / np.arange(1.0, 5.0)),
    ],
)
def test_constants_on_either_side(rng, name, fn):
    x = _pos(rng, 3, 4)
    out = fn(Tensor(x, requires_grad=True))
    assert isinstance(out, Tensor) and out.requires_grad
    assert gradcheck(fn, x)


def test_composite_expression_gradcheck(rng):
    def f(a, b, c):
        z = (a * b - c / (b * b + 1.0)).sigmoid() * (a - 0.5) ** 2
        return (z.exp() + (c * c + 1.0).log()).mean(axis=0, keepdims=True) - 2.0 * z.sum(axis=1).reshape(1, -1)

    assert gradcheck(f, rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), rng.standard_normal((3, 3)))


def test_pow_rejects_tensor_exponent():
    with pytest.raises(TypeError):
        Tensor(np.ones(2), requires_grad=True) ** Tensor(np.ones(2))


# ----------------------------------------------------------------------------- dtypes


def test_float32_stays_float32_with_python_numbers(rng):
    x = Tensor(rng.uniform(0.5, 2.0, (2, 3)).astype(np.float32), requires_grad=True)
    steps = [
        x + 1.0, 1.0 + x, x - 0.5, 0.5 - x, 2.0 * x, x * 2, x / 3.0, 3.0 / x, -x,
        x**2.0, x**3, x.exp(), x.log(), x.sigmoid(), x.sum(), x.mean(axis=0), x.reshape(-1),
    ]
    for y in steps:
        assert y.dtype == np.float32, y
    loss = ((2.0 * x + 1.0) / 3.0 - 0.5).sigmoid().exp().log().__pow__(2.0).mean() * 0.1
    assert loss.dtype == np.float32
    loss.backward()
    assert x.grad.dtype == np.float32


def test_leaf_grad_keeps_leaf_dtype_under_float64_upstream():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    (x * 2.0).backward(np.ones(3, dtype=np.float64))
    assert x.grad.dtype == np.float32


def test_only_float_tensors_require_grad():
    with pytest.raises(ValueError, match="floating"):
        Tensor(np.arange(3), requires_grad=True)


# ----------------------------------------------------------------------------- graph semantics


def test_gradients_accumulate_over_two_backward_calls():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, -4.0, 6.0])
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [4.0, -8.0, 12.0])
    # and over a retained graph, backward twice
    x.grad = None
    y = (3.0 * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0, 6.0])


def test_a_tensor_used_twice_gets_the_sum():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x).sum().backward()  # d(x^2) = 2x, both Mul inputs are x
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    x.grad = None
    (x + x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
    x.grad = None
    h = x * 3.0  # h feeds two branches
    (h * 2.0 + h.exp() - h).sum().backward()  # d/dx = 3 (2 + e^{3x} - 1)
    np.testing.assert_allclose(x.grad, 3.0 * (1.0 + np.exp(3.0 * x.data)), rtol=1e-14)


class Counted(Function):
    """Identity that counts how often its backward runs."""

    calls = 0

    def forward(self, x):
        return x * 1.0

    def backward(self, dout):
        type(self).calls += 1
        return dout


def test_deep_chain_backward_is_iterative_and_visits_each_node_once():
    Counted.calls = 0
    depth = 20_000  # far beyond Python's default recursion limit of 1000
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x
    for _ in range(depth):
        y = Counted.apply(y)
    y.sum().backward()
    assert Counted.calls == depth
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_shared_node_backward_runs_once():
    Counted.calls = 0
    x = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    h = Counted.apply(x)  # used by four consumers below
    (h * h + h - h.exp() + h.sigmoid()).sum().backward()
    assert Counted.calls == 1
    s = 1 / (1 + np.exp(-x.data))
    np.testing.assert_allclose(x.grad, 2 * x.data + 1 - np.exp(x.data) + s * (1 - s), rtol=1e-14)


def test_wide_diamond_backward_runs_each_node_once():
    Counted.calls = 0
    x = Tensor(np.ones(3), requires_grad=True)
    layer = [Counted.apply(x) for _ in range(5)]
    for _ in range(50):  # every node of a layer feeds every node of the next
        total = layer[0]
        for t in layer[1:]:
            total = total + t
        layer = [Counted.apply(total) for _ in range(5)]
    layer[0].sum().backward()
    # the ancestors of the final layer[0]: itself + 5 Counted nodes in each of the 50 earlier layers,
    # each run exactly once although every one of them has 5 consumers
    assert Counted.calls == 5 * 50 + 1
    np.testing.assert_allclose(x.grad, np.full(3, 5.0**50), rtol=1e-12)


def test_backward_twice_without_retain_graph_raises():
    x = Tensor(np.ones(2), requires_grad=True)
    y = (x * 2.0).sum()
    y.backward()
    with pytest.raises(RuntimeError):
        y.backward()


def test_backward_needs_a_scalar_or_a_matching_grad():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        y.backward(np.ones((3, 2)))
    with pytest.raises(RuntimeError):
        Tensor(np.ones(2)).sum().backward()  # nothing requires grad


def test_constant_inputs_get_no_gradient():
    c = Tensor(np.ones(3))
    x = Tensor(np.ones(3), requires_grad=True)
    (x * c + c).sum().backward()
    assert c.grad is None and x.grad is not None


# ----------------------------------------------------------------------------- no_grad


def test_no_grad_records_nothing_and_nests():
    x = Tensor(np.ones(3), requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        y = (x * 2.0 + 1.0).sum()
        assert not y.requires_grad and y.creator is None
        with no_grad():
            assert not is_grad_enabled()
        assert not is_grad_enabled()  # the inner block restored "disabled", not "enabled"
    assert is_grad_enabled()
    z = x * 2.0
    assert z.requires_grad and z.creator is not None


def test_no_grad_restores_state_after_an_exception():
    with pytest.raises(KeyError):
        with no_grad():
            raise KeyError("boom")
    assert is_grad_enabled()


def test_detach_cuts_the_graph():
    x = Tensor(np.ones(2), requires_grad=True)
    d = (x * 2.0).detach()
    assert not d.requires_grad and d.creator is None
    np.testing.assert_array_equal(d.data, [2.0, 2.0])
