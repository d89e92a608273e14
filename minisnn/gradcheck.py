"""Check analytic gradients against central differences in float64 (LEVEL 3 tool).

For a function ``y = f(x1, x2, ...)`` and a random upstream gradient ``u`` (same shape as
``y``), the scalar ``L = sum(u * f(...))`` has ``dL/dx = J^T u`` - exactly what a backward
pass computes.  Each entry is compared with the central difference::

    dL/dx[i]  ~  (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

A random ``u`` (not ones) catches backward passes that are right only on average.
A failure raises :class:`GradcheckError` naming the argument, the index and both values.

Three entry points:

* :func:`gradcheck` - any function of Tensors (autodiff graphs, layers, losses);
* :func:`gradcheck_op` - a raw ops pair ``forward -> (y, cache)``, ``backward(u, cache)``;
* :func:`gradcheck_module` - every parameter (and the input) of a Module under a loss.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from .autodiff import Tensor, no_grad

__all__ = ["GradcheckError", "gradcheck", "gradcheck_op", "gradcheck_module", "numerical_gradient"]


class GradcheckError(AssertionError):
    """An analytic gradient entry disagrees with its central difference."""


def numerical_gradient(loss: Callable[[], float], x: np.ndarray, eps: float = 1e-6, indices=None) -> np.ndarray:
    """Central differences of the scalar ``loss()`` with respect to ``x`` (perturbed in place).

    Only ``indices`` (flat) are computed when given; other entries are left NaN.
    """
    grad = np.full(x.shape, np.nan)
    flat = x.reshape(-1)  # a view: x must be contiguous
    for i in range(x.size) if indices is None else indices:
        old = flat[i]
        flat[i] = old + eps
        plus = loss()
        flat[i] = old - eps
        minus = loss()
        flat[i] = old
        grad.flat[i] = (plus - minus) / (2 * eps)
    return grad


def _pick(size: int, max_points: int | None, rng) -> np.ndarray:
    if max_points is None or size <= max_points:
        return np.arange(size)
    return np.sort(rng.choice(size, max_points, replace=False))


def _compare(name: str, analytic, x: np.ndarray, loss, eps, atol, rtol, max_points, rng) -> None:
    if analytic is None:
        analytic = np.zeros_like(x)
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.shape != x.shape:
        raise GradcheckError(f"gradient of {name} has shape {analytic.shape}, expected {x.shape}")
    indices = _pick(x.size, max_points, rng)
    numeric = numerical_gradient(loss, x, eps, indices)
    for i in indices:
        a, n = analytic.flat[i], numeric.flat[i]
        if not (abs(a - n) <= atol + rtol * abs(n)):  # also catches NaN
            idx = [int(k) for k in np.unravel_index(i, x.shape)]
            raise GradcheckError(
                f"gradcheck: d/d{name}{idx}: analytic {a:.8g} != numeric {n:.8g} "
                f"(|diff| {abs(a - n):.3g} > atol {atol:g} + rtol {rtol:g} * |numeric|)"
            )


def _float64(x):
    return np.array(x, dtype=np.float64) if x is not None else None


def gradcheck(
    fn: Callable[..., Tensor],
    *inputs,
    names: Iterable[str] | None = None,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    max_points: int | None = None,
    seed: int = 0,
) -> bool:
    """Check every floating-point input's gradient of ``fn(*Tensors) -> Tensor``.

    ``inputs`` are arrays (copied to float64 Tensors that require grad); ``None`` and
    non-float arrays are passed as constants.  ``max_points`` limits how many entries per
    input are differenced (chosen at random with ``seed``).  Returns True or raises.
    """
    rng = np.random.default_rng(seed)
    names = list(names) if names is not None else [f"input{i}" for i in range(len(inputs))]
    arrays = [None if x is None else np.array(x) for x in inputs]
    arrays = [_float64(a) if a is not None and a.dtype.kind == "f" else a for a in arrays]
    tensors = [Tensor(a, requires_grad=True) if a is not None and a.dtype.kind == "f" else a for a in arrays]
    out = fn(*tensors)
    u = rng.standard_normal(out.shape)
    out.backward(u)

    def loss():
        with no_grad():
            return float(np.sum(u * fn(*[Tensor(a) if isinstance(t, Tensor) else a for a, t in zip(arrays, tensors)]).data))

    for name, a, t in zip(names, arrays, tensors):
        if isinstance(t, Tensor):
            _compare(name, t.grad, a, loss, eps, atol, rtol, max_points, rng)
    return True


def gradcheck_op(
    forward: Callable,
    backward: Callable,
    inputs: dict,
    params: dict | None = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    max_points: int | None = None,
    seed: int = 0,
) -> bool:
    """Check an ops pair directly: ``forward(**inputs, **params) -> (y, cache)`` and
    ``backward(u, cache) -> grads`` in the order of the float inputs of ``inputs``
    (a single array is the gradient of the first input).  ``None`` inputs are skipped.
    """
    rng = np.random.default_rng(seed)
    params = params or {}
    arrays = {k: (_float64(v) if v is not None and np.asarray(v).dtype.kind == "f" else v) for k, v in inputs.items()}
    y, cache = forward(**arrays, **params)
    u = rng.standard_normal(np.shape(y))
    grads = backward(u, cache)
    if not isinstance(grads, tuple):
        grads = (grads,)

    def loss():
        return float(np.sum(u * forward(**arrays, **params)[0]))

    differentiable = [k for k, v in arrays.items() if v is not None]
    for name, g in zip(differentiable, grads):
        _compare(name, g, arrays[name], loss, eps, atol, rtol, max_points, rng)
    return True


def gradcheck_module(
    module,
    x,
    loss_fn: Callable[[Tensor], Tensor] | None = None,
    *,
    check_input: bool = True,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    max_points: int | None = 20,
    seed: int = 0,
) -> bool:
    """Check the gradient of ``loss_fn(module(x))`` for every parameter (and ``x``).

    The module is converted to float64 in place.  Without ``loss_fn`` a random linear
    functional of the output is used (a random upstream gradient).
    """
    rng = np.random.default_rng(seed)
    module.astype(np.float64)
    x = _float64(x)
    xt = Tensor(x, requires_grad=check_input)
    out = module(xt)
    if loss_fn is None:
        u = rng.standard_normal(out.shape)

        def loss_fn(y):
            return (y * u).sum()

    for p in module.parameters():
        p.grad = None
    loss_fn(out).backward()

    def loss():
        with no_grad():
            return float(loss_fn(module(Tensor(x))).data)

    for name, p in module.named_parameters():
        _compare(name, p.grad, p.data, loss, eps, atol, rtol, max_points, rng)
    if check_input:
        _compare("x", xt.grad, x, loss, eps, atol, rtol, max_points, rng)
    return True
