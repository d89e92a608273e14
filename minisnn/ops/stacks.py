"""A stack of matrix products, one BLAS call per core (LEVEL 1a).

``np.matmul(a, b)`` on stacks ``a (P, m, k)`` and ``b (P, k, n)`` hands the ``P`` products to
the BLAS one after the other, and the BLAS splits each product over its threads by the rows
and columns of its result.  When that result is small and the sum long there is little to
split: the Winograd weight gradient is 16 products ``(Cout x T) @ (T x Cin)`` with ``Cout,
Cin`` of 16-64 and ``T`` up to ~21 500 tiles, and on the CAE's 16-channel layer the stack
took 8.3-8.9 ms on two threads (``docs/results.md``).

:func:`matmul_stack` cuts the stack instead: one contiguous part of the products per thread,
each part one ``np.matmul`` in its own Python thread (NumPy lets go of the GIL while the BLAS
runs), with the BLAS held to one thread meanwhile.  The same stack took 5.0 ms.  Every product
is then computed by one single-threaded BLAS call, whatever the thread count, so the result
does not depend on it (on one thread the BLAS is held to one thread too).
"""

from __future__ import annotations

import os
import threading

import numpy as np

from ..kernels import get_num_threads
from ..runtime import worker_threads

_blas: dict = {}  # this process's threadpoolctl controller, made on first use
_lock = threading.Lock()  # one stack at a time: the BLAS thread limit is the whole process's


def _workers(n: int):
    """``(executor with >= n worker threads or None for n = 0, threadpoolctl controller)``."""
    if _blas.get("pid") != os.getpid():  # first use, or a forked child (the controller lists libraries)
        import threadpoolctl

        _blas.update(pid=os.getpid(), controller=threadpoolctl.ThreadpoolController())
    return worker_threads(n), _blas["controller"]


def matmul_stack(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.matmul(a, b, out=out)`` for stacks ``a (P, m, k)``, ``b (P, k, n)``, ``out (P, m,
    n)``: the ``P`` products split over :func:`~minisnn.kernels.get_num_threads` threads, each
    computed by a single-threaded BLAS call.  Returns ``out``."""
    P = a.shape[0]
    parts = max(1, min(get_num_threads(), P))
    cuts = np.linspace(0, P, parts + 1).astype(int)
    with _lock:
        executor, blas = _workers(parts - 1)
        with blas.limit(limits=1, user_api="blas"):
            futures = [executor.submit(np.matmul, a[p0:p1], b[p0:p1], out=out[p0:p1])
                       for p0, p1 in zip(cuts[1:-1], cuts[2:])]
            np.matmul(a[: cuts[1]], b[: cuts[1]], out=out[: cuts[1]])  # the first part on this thread
            for f in futures:
                f.result()
    return out
