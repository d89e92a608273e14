"""Numba kernels, each beside a readable NumPy reference (LEVEL 1b).

This is the only package that imports numba.  Every kernel is registered here as a
:class:`KernelPair`: the NumPy reference, the Numba kernel with the *same signature*, and a
function that makes small example arguments.  ``tests/test_kernels.py`` and the benchmarks
iterate :data:`KERNELS`, so a kernel without a reference, a test and a benchmark cannot exist.

Contract for a kernel: arrays and scalars in; it returns its outputs (a new array or a tuple
of arrays) and may also update state arrays passed to it in place.  Reference and kernel are
compared on both: the returned values and every array argument afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._jit import get_num_threads, set_num_threads


@dataclass(frozen=True)
class KernelPair:
    """A Numba kernel and its NumPy reference, with a maker of example arguments."""

    name: str
    reference: Callable
    fast: Callable
    example: Callable[[np.random.Generator], tuple]


KERNELS: dict[str, KernelPair] = {}


def register(name: str, reference: Callable, fast: Callable, example: Callable) -> None:
    """Add a kernel pair to :data:`KERNELS` (called once per kernel, at import)."""
    if name in KERNELS:
        raise ValueError(f"kernel {name!r} registered twice")
    KERNELS[name] = KernelPair(name, reference, fast, example)


def warmup() -> None:
    """Compile every registered kernel on tiny inputs (loads the on-disk cache if present)."""
    rng = np.random.default_rng(0)
    for pair in KERNELS.values():
        pair.fast(*pair.example(rng))


from . import im2col  # noqa: E402,F401  (registers the kernels)
from . import lif, relu, lowpass  # noqa: E402,F401  (registers the kernels)
from . import rates  # noqa: E402,F401  (registers the kernels)
from . import events, dense_events  # noqa: E402,F401  (registers the kernels)
from . import direct  # noqa: E402,F401  (registers the kernels)
from . import fold  # noqa: E402,F401  (registers the kernels)
from . import winograd  # noqa: E402,F401  (registers the kernels)
from . import pool  # noqa: E402,F401  (registers the kernels)
from . import elementwise  # noqa: E402,F401  (registers the kernels)

__all__ = ["KERNELS", "KernelPair", "register", "warmup", "get_num_threads", "set_num_threads"]
