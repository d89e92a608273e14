"""Reverse-mode automatic differentiation on NumPy arrays (LEVEL 2).

The whole idea in three pieces:

* a :class:`Tensor` wraps an ``ndarray`` (``.data``) and, once gradients flow, its
  gradient (``.grad``, same shape);
* a :class:`Function` is one operation: ``forward`` computes an output array from input
  arrays and keeps what its ``backward`` will need; ``backward`` maps the gradient of the
  loss with respect to the output to gradients with respect to each input (the chain rule,
  one vector-Jacobian product);
* :meth:`Tensor.backward` walks the recorded graph once, from the loss back to the leaves,
  in reverse topological order, calling each ``backward`` exactly once and *adding up* the
  gradients of a tensor that feeds several operations.

Every array-level op pair in :mod:`minisnn.ops` becomes a Function with
:func:`op_function`; :mod:`minisnn.functional` lists them.  ``with no_grad():`` records
nothing (for evaluation).  Gradients accumulate across ``backward`` calls until the
optimizer's ``zero_grad`` clears them, as in PyTorch.
"""

from __future__ import annotations

import numbers
from typing import Callable

import numpy as np

__all__ = [
    "Tensor",
    "Function",
    "op_function",
    "no_grad",
    "is_grad_enabled",
    "as_tensor",
]

_grad_enabled = True


class no_grad:
    """Context manager (and decorator-free switch) that stops graph recording inside it."""

    def __enter__(self):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous
        return False


def is_grad_enabled() -> bool:
    """True unless inside ``with no_grad():`` (then Functions record no graph)."""
    return _grad_enabled


def as_tensor(x) -> Tensor:
    """Wrap an array or number as a constant Tensor (a Tensor is returned unchanged)."""
    return x if isinstance(x, Tensor) else Tensor(x)


class Tensor:
    """An ndarray that remembers how it was computed.

    Parameters
    ----------
    data : array-like
    requires_grad : bool
        Leaves with ``requires_grad=True`` (parameters) receive ``.grad`` on ``backward()``.
    """

    __array_priority__ = 100  # make ``ndarray + Tensor`` call Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False, dtype=None, _creator: Function | None = None):
        self.data = np.asarray(data, dtype=dtype)
        if requires_grad and not np.issubdtype(self.data.dtype, np.floating):
            raise ValueError(f"Tensor: only floating-point tensors can require grad, got {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad: np.ndarray | None = None
        self.creator = _creator  # the Function that produced this tensor (None for leaves)

    # -- array-like facts
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, threshold=8, precision=4)}{flag})"

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data)

    # -- the backward pass

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` is the upstream gradient (defaults to 1 for a scalar).  The graph is visited
        in reverse topological order, each node once; unless ``retain_graph`` the caches
        of the Functions are released as soon as they have been used.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad (no parameter led to it)")
        if grad is None:
            if self.size != 1:
                raise ValueError(f"backward(): grad can be omitted only for a scalar, shape is {self.shape}")
            grad = np.ones_like(self.data)
        grad = np.asarray(grad, dtype=self.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"backward(): grad shape {grad.shape} != tensor shape {self.shape}")

        grads = {id(self): grad}
        for node in reversed(_topological_order(self)):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            fn = node.creator
            if fn is None:  # a leaf: accumulate
                node.grad = np.array(g, dtype=node.dtype) if node.grad is None else node.grad + g
                continue
            if fn.inputs is None:
                raise RuntimeError("backward(): the graph was already freed; pass retain_graph=True the first time")
            input_grads = fn.backward(g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for parent, pg, needed in zip(fn.inputs, input_grads, fn.needs_grad):
                if not needed or pg is None:
                    continue
                pg = _unbroadcast(np.asarray(pg, dtype=parent.dtype), parent.shape)
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg
            if not retain_graph:
                fn.release()

    # -- operators (each builds one Function node)

    def __add__(self, other):
        return Add.apply(self, other)

    def __radd__(self, other):
        return Add.apply(other, self)

    def __sub__(self, other):
        return Sub.apply(self, other)

    def __rsub__(self, other):
        return Sub.apply(other, self)

    def __mul__(self, other):
        return Mul.apply(self, other)

    def __rmul__(self, other):
        return Mul.apply(other, self)

    def __truediv__(self, other):
        return Div.apply(self, other)

    def __rtruediv__(self, other):
        return Div.apply(other, self)

    def __neg__(self):
        return Mul.apply(self, -1.0)

    def __pow__(self, exponent):
        if not isinstance(exponent, numbers.Real):
            raise TypeError(f"Tensor ** {type(exponent).__name__}: only a constant real exponent is supported")
        return Pow.apply(self, exponent=float(exponent))

    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def sigmoid(self):
        return Sigmoid.apply(self)

    def sum(self, axis=None, keepdims=False):
        """Sum over ``axis`` (all axes if None), as ``ndarray.sum``; one :class:`Sum` node."""
        return Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        """Mean over ``axis`` (all axes if None), as ``ndarray.mean``; one :class:`Mean` node."""
        return Mean.apply(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=shape)


def _topological_order(root: Tensor) -> list[Tensor]:
    """Tensors that need a gradient, each after all of its inputs (iterative DFS, no recursion)."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node.creator is not None and node.creator.inputs is not None:
            for parent, needed in zip(node.creator.inputs, node.creator.needs_grad):
                if needed and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def _unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` over the axes NumPy broadcasting added or stretched, back to ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


class Function:
    """One node of the graph.

    Subclasses implement ``forward(self, *arrays, **params) -> ndarray`` (storing on ``self``
    what the backward pass needs) and ``backward(self, dout) -> grads``: one gradient per
    input, in input order (``None`` where there is none).  ``self.needs_grad[i]`` tells
    whether input ``i`` wants a gradient, so work for the others can be skipped.
    Use it as ``MyFunction.apply(*inputs, **params)``; inputs may be Tensors, arrays,
    numbers or None (an absent optional input such as a bias); only Tensors can receive gradients.
    """

    inputs: tuple | None = None
    needs_grad: tuple = ()

    @classmethod
    def apply(cls, *inputs, **params) -> Tensor:
        """Run ``forward`` on the inputs' arrays and, if any input needs a gradient (and
        recording is on), return a Tensor whose ``creator`` is this node: one step of the tape.

        ``inputs`` : Tensors, arrays, numbers or None, passed to ``forward`` in order (Tensors as
        their ``.data``); ``params`` : keyword constants for ``forward``.  The output has the
        shape ``forward`` returns; ``backward`` later receives a gradient of that shape.
        """
        # Constants (numbers, arrays, None) are passed through as they are: wrapping a Python
        # float in a float64 array would silently promote float32 tensors to float64.
        fn = cls()
        fn.needs_grad = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
        out = fn.forward(*(x.data if isinstance(x, Tensor) else x for x in inputs), **params)
        if _grad_enabled and any(fn.needs_grad):
            fn.inputs = inputs
            return Tensor(out, requires_grad=True, _creator=fn)
        return Tensor(out)

    def forward(self, *arrays, **params):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dout):  # pragma: no cover - abstract
        raise NotImplementedError

    def release(self) -> None:
        """Drop the inputs and everything kept for the backward pass."""
        self.inputs = None
        self.__dict__.pop("cache", None)


def op_function(name: str, forward: Callable, backward: Callable, *, skips_dx: bool = False) -> type:
    """Make a :class:`Function` subclass from an ops pair ``forward -> (out, cache)``,
    ``backward(dout, cache) -> grads``.

    With ``skips_dx`` the backward takes ``need_dx=`` and is told whether the first input
    needs a gradient (a network's first layer does not: its input is the data).
    """

    def fwd(self, *arrays, **params):
        out, self.cache = forward(*arrays, **params)
        return out

    def bwd(self, dout):
        if skips_dx:
            return backward(dout, self.cache, need_dx=self.needs_grad[0])
        return backward(dout, self.cache)

    doc = f"Autodiff node for ``{forward.__module__}.{forward.__name__}`` / ``{backward.__name__}``."
    return type(name, (Function,), {"forward": fwd, "backward": bwd, "__doc__": doc})


# ----------------------------------------------------------------------------- elementwise math
# Each backward is the local derivative times ``dout``; broadcasting is undone by Tensor.backward.


class Add(Function):
    """``a + b``: d/da = d/db = 1 (broadcast axes are summed back by ``Tensor.backward``)."""

    def forward(self, a, b):
        return a + b

    def backward(self, dout):
        return dout, dout


class Sub(Function):
    """``a - b``: d/da = 1, d/db = -1."""

    def forward(self, a, b):
        return a - b

    def backward(self, dout):
        return dout, -dout


class Mul(Function):
    """``a * b`` elementwise: d/da = b, d/db = a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, dout):
        return dout * self.b, dout * self.a

    def release(self):
        super().release()
        self.a = self.b = None


class Div(Function):
    """``a / b`` elementwise: d/da = 1 / b, d/db = -a / b^2."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, dout):
        return dout / self.b, -dout * self.a / (self.b * self.b)

    def release(self):
        super().release()
        self.a = self.b = None


class Pow(Function):
    """``x ** p`` for a constant real ``p``: d/dx = p x^(p-1)."""

    def forward(self, x, exponent):
        self.x, self.p = x, exponent
        return x**exponent

    def backward(self, dout):
        return dout * self.p * self.x ** (self.p - 1)

    def release(self):
        super().release()
        self.x = None


class Exp(Function):
    """``y = exp(x)``: dy/dx = y (the output is kept, not the input)."""

    def forward(self, x):
        self.y = np.exp(x)
        return self.y

    def backward(self, dout):
        return dout * self.y

    def release(self):
        super().release()
        self.y = None


class Log(Function):
    """``y = log(x)``: dy/dx = 1 / x."""

    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, dout):
        return dout / self.x

    def release(self):
        super().release()
        self.x = None


class Sigmoid(Function):
    """``1 / (1 + exp(-x))`` computed as ``(1 + tanh(x/2)) / 2`` (no overflow); d/dx = y (1 - y)."""

    def forward(self, x):
        self.y = 0.5 * (1 + np.tanh(0.5 * x))
        return self.y

    def backward(self, dout):
        return dout * self.y * (1 - self.y)

    def release(self):
        super().release()
        self.y = None


class Sum(Function):
    """``y = x.sum(axis, keepdims)``: every summed entry gets the upstream gradient,
    ``dx = broadcast(dy)`` back to ``x.shape``."""

    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = x.shape, axis, keepdims
        return np.sum(x, axis=axis, keepdims=keepdims)

    def backward(self, dout):
        if self.axis is not None and not self.keepdims:
            dout = np.expand_dims(dout, self.axis)
        return np.broadcast_to(dout, self.shape)


class Mean(Sum):
    """``y = x.mean(axis, keepdims)`` over ``n`` entries per output: ``dx = broadcast(dy) / n``."""

    def forward(self, x, axis=None, keepdims=False):
        out = super().forward(x, axis=axis, keepdims=keepdims)
        self.count = x.size // max(out.size, 1) if x.size else 1
        # true division for every dtype: the mean of integers is a float, as in NumPy
        return np.true_divide(out, self.count)

    def backward(self, dout):
        return super().backward(dout / self.count)


class Reshape(Function):
    """``y = x.reshape(shape)``: ``dx = dy.reshape(x.shape)`` (no arithmetic)."""

    def forward(self, x, shape):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, dout):
        return dout.reshape(self.shape)
