"""Fully connected (dense) layer as one matrix product (LEVEL 1a).

PyTorch's ``torch.nn.functional.linear`` layout: ``x (N, in)``, ``w (out, in)``,
``b (out,)``::

    y = x @ w.T + b            dx = dy @ w        dw = dy.T @ x        db = dy.sum(0)
"""

from __future__ import annotations


import numpy as np

from ..kernels._jit import KERNEL_DTYPES
from ..kernels.dense_events import dense_events_numba
from ._checks import as_float, common_dtype, output as _output


def _check_arrays(op, x, w, b, counts=False):
    """Validate ``x (N, in)``, ``w (out, in)`` and ``b (out,)`` (or None) -> ``(x, w, b, dtype)``,
    the one float dtype they share.  With ``counts`` ``x`` is a uint8 map of spike counts and
    the weights set the dtype."""
    if counts:
        if x.ndim != 2:
            raise ValueError(f"{op}: x must be 2-D (N, in), got shape {x.shape}")
    else:
        x = as_float(x, op, "x", ndim=2)
    w = as_float(w, op, "w", ndim=2)
    if b is not None:
        b = as_float(b, op, "b", ndim=1)
        if b.shape != (w.shape[0],):
            raise ValueError(f"{op}: bias shape {b.shape} does not match w {w.shape}")
    dtype = common_dtype(op, *([] if counts else [x]), w, b)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"{op}: x has {x.shape[1]} features (x {x.shape}) but w expects {w.shape[1]} (w {w.shape})")
    return x, w, b, dtype


def dense_forward(x, w, b=None, *, out=None):
    """``y (N, out) = x (N, in) @ w.T (in, out) + b``; returns ``(y, cache)``.

    ``out``: optional C-contiguous ``(N, out)`` array of ``x``'s dtype to write ``y`` into.
    """
    op = "dense"
    x, w, b, _ = _check_arrays(op, x, w, b)
    y = np.matmul(x, w.T, out=_output(op, out, (x.shape[0], w.shape[0]), x.dtype))
    if b is not None:
        y += b
    return y, (x, w, b is not None)


def dense_events(x, w, b=None, *, out=None, scale=None):
    """:func:`dense_forward`'s ``y`` computed event by event: every nonzero ``x[n, i]`` adds
    its weight column ``w[:, i]`` onto ``y[n]`` (:mod:`minisnn.kernels.dense_events`).

    The work grows with the number of nonzeros, not the size of ``x``: for spike maps with
    few spikes per step this beats the GEMM (see ``path`` in :func:`minisnn.simulate`).  Same
    arguments and result as :func:`dense_forward` up to rounding (the sums run in another
    order); inference only, no cache.  ``x`` may also be a ``uint8`` map of spike counts, each
    spike worth ``scale`` (required then): the product of ``x * scale``.
    """
    op = "dense_events"
    counts = isinstance(x, np.ndarray) and x.dtype == np.uint8
    if counts != (scale is not None):
        raise ValueError(f"{op}: scale is given with (and only with) a uint8 map of spike counts, "
                         f"got x of dtype {np.asarray(x).dtype} and scale={scale!r}")
    x, w, b, dtype = _check_arrays(op, x, w, b, counts)
    if dtype not in KERNEL_DTYPES:
        raise ValueError(f"{op}: arrays must be float32 or float64, got {dtype}")
    y = _output(op, out, (x.shape[0], w.shape[0]), w.dtype)
    one = w.dtype.type(1 if scale is None else scale)
    dense_events_numba(np.ascontiguousarray(x), one, np.ascontiguousarray(w), y)
    if b is not None:
        y += b
    return y


def dense_backward(dy, cache, need_dx=True):
    """Gradients of :func:`dense_forward`: ``(dx, dw, db)`` (``db`` None without bias)."""
    x, w, has_bias = cache
    dw = dy.T @ x
    db = dy.sum(axis=0) if has_bias else None
    dx = dy @ w if need_dx else None
    return dx, dw, db


__all__ = ["dense_forward", "dense_events", "dense_backward"]
