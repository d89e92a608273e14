"""Argument checks shared by the ops: one clear ``ValueError`` naming the op and the shapes."""

from __future__ import annotations

import numpy as np


def pair(value, op: str, name: str, minimum: int) -> tuple[int, int]:
    """Normalise an int or a pair of ints to a pair; each must be an integer >= ``minimum``."""
    if isinstance(value, (int, np.integer)):
        value = (value, value)
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") from None
    for v in (a, b):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum:
            raise ValueError(f"{op}: {name} must be integers >= {minimum}, got {value!r}")
    return int(a), int(b)


def as_float(x, op: str, name: str, ndim: int | None = None) -> np.ndarray:
    """Check that ``x`` is a floating-point array (of rank ``ndim``) and return it as ndarray."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{op}: {name} must be a floating-point array, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{op}: {name} must have {ndim} dimensions, got shape {x.shape}")
    return x


def common_dtype(op: str, *arrays) -> np.dtype:
    """The one float dtype all arrays share; mixing float32 and float64 is an error, not a cast."""
    dtypes = {a.dtype for a in arrays if a is not None}
    if len(dtypes) != 1:
        raise ValueError(f"{op}: arrays must share one dtype, got {sorted(str(d) for d in dtypes)}")
    return dtypes.pop()


def same_shape(op: str, a, b, names=("pred", "target")) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{op}: {names[0]} shape {a.shape} != {names[1]} shape {b.shape}")


def output(op: str, out, shape, dtype) -> np.ndarray:
    """A new ``empty`` output array, or the caller's ``out`` after checking that it fits."""
    if out is None:
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray) or out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"{op}: out must be a C-contiguous {np.dtype(dtype)} array of shape {tuple(shape)}, got {got}")
    return out
