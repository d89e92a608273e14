"""Work cut into blocks, the blocks shared by the threads, each block on one core (LEVEL 1a).

A kernel parallel inside (``prange``) and a BLAS product split by the BLAS over its threads
each pay for waking the other threads, and each streams its whole operand through memory
before the next step reads it.  When one op is a chain of such steps over a large
intermediate (Winograd's transforms and products: the transformed input and the product are
4x the input and the output), it is faster to cut the *batch* into blocks and run each block's
whole chain on one thread: the intermediate stays in that core's caches, and the threads
synchronise once per op.  :func:`on_threads` runs such blocks: this thread and pool workers
(:func:`~minisnn.runtime.worker_threads`) take the blocks in turn, with the BLAS held to one
thread meanwhile (threadpoolctl), since every product is then one of several side by side.

Each block writes only its own outputs, and a single-threaded BLAS call or serial kernel
gives the same bits on whichever thread it runs, so the result does not depend on the thread
count (the caller sums any per-block partial results in block order).
"""

from __future__ import annotations

import os
import threading

from ..kernels import get_num_threads
from ..runtime import worker_threads

_blas: dict = {}  # this process's threadpoolctl controller, made on first use
_lock = threading.Lock()  # one call at a time: the BLAS thread limit is the whole process's


def _workers(n: int):
    """``(executor with >= n worker threads or None for n = 0, threadpoolctl controller)``."""
    if _blas.get("pid") != os.getpid():  # first use, or a forked child (the controller lists libraries)
        import threadpoolctl

        _blas.update(pid=os.getpid(), controller=threadpoolctl.ThreadpoolController())
    return worker_threads(n), _blas["controller"]


def on_threads(fn, n: int) -> None:
    """``fn(i)`` for ``i`` in ``range(n)``: the items taken in turn by
    :func:`~minisnn.kernels.get_num_threads` threads (this one and pool workers), with the BLAS
    held to one thread meanwhile.  ``fn`` should run single-threaded code (serial Numba
    kernels, NumPy calls that let go of the GIL) and write only item ``i``'s outputs.  After an
    item fails no new item starts; the first error is re-raised once every thread has stopped."""
    parts = max(1, min(get_num_threads(), n))
    items = iter(range(n))  # next() on it is atomic under the GIL: the threads share it
    errors = []

    def worker():
        for i in items:
            if errors:
                return
            try:
                fn(i)
            except BaseException as e:  # noqa: BLE001 (re-raised below, in the caller's thread)
                errors.append(e)
                return

    with _lock:
        executor, blas = _workers(parts - 1)
        with blas.limit(limits=1, user_api="blas"):
            futures = [executor.submit(worker) for _ in range(parts - 1)]
            worker()
            for f in futures:
                f.result()
    if errors:
        raise errors[0]
