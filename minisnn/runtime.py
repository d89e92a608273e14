"""Process settings in one place: threads, BLAS, thread wait policies and the allocator.

A training step alternates NumPy's BLAS (the GEMMs) and Numba's parallel kernels dozens of
times, so how both libraries use the cores matters as much as any kernel.  Everything the
command-line tools and the benchmarks set about the process is here:

* :data:`THREAD_WAIT_DEFAULTS`, applied when :mod:`minisnn` is imported (idle threads sleep at
  once instead of spinning; see the constant), to an OpenBLAS that NumPy started earlier too
  (:func:`restart_blas_threads`);
* :func:`set_threads`: the thread count of Numba's kernels and of the BLAS NumPy loaded
  (through ``threadpoolctl``, which finds OpenBLAS or MKL in the running process);
* :data:`THREAD_VARS`: the environment variables that fix those counts for a process that
  has not imported NumPy yet (child processes, re-executed benchmarks);
* :func:`reuse_freed_memory`: glibc's allocator told to keep freed blocks for reuse;
* :func:`worker_threads`: the process's pool of Python worker threads, for NumPy work that
  lets go of the GIL (the blocks of :mod:`minisnn.ops.blocks`, the simulator's initial-state draws).

None of these run on ``import minisnn`` except the wait defaults: they change the whole
process, so the tools call them, a library user may.
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

#: Idle worker threads of OpenMP (Numba's parallel kernels) and of OpenBLAS (NumPy's matrix
#: products) spin for a while after each parallel region, waiting for more work.  A training
#: step alternates the two libraries dozens of times, so on a 2-core machine each one's
#: spinning threads took the cores from the other (measured: a GEMM right after a Numba
#: kernel ran 2.6x slower, a Numba kernel right after a GEMM 2x slower, the CAE's training
#: step 1.7x slower).  These defaults make idle threads sleep at once.  Each library reads
#: its variable when it starts: OpenMP's starts with Numba's first parallel kernel, after
#: ``import minisnn``; OpenBLAS starts with NumPy, so where NumPy came first
#: :func:`apply_wait_defaults` has OpenBLAS read it again.
THREAD_WAIT_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}

#: The variables that fix the thread counts of OpenMP, OpenBLAS, MKL and Numba; each library
#: reads its own once, when it starts.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def apply_wait_defaults() -> None:
    """Set :data:`THREAD_WAIT_DEFAULTS` wherever the environment has no value of its own.

    If NumPy was imported first, its OpenBLAS has already read its timeout (the default: spin
    for 2**28 cycles, ~0.1 s, after every product); OpenBLAS is then told to read its
    environment again and start its threads anew (:func:`restart_blas_threads`).  The usual
    script, ``import numpy as np`` then ``import minisnn``, would otherwise run slower than
    ``minisnn-train`` does: measured, the protocol call of ``benchmarks/bench_snn.py``
    (``simulate(net, x, 50, synapse=0.005)``, batch 4, ~40 Hz, 2 threads) took 0.98-1.02 s
    instead of 0.68-0.70 s.
    """
    blas_started = "numpy" in sys.modules
    missing = [name for name in THREAD_WAIT_DEFAULTS if name not in os.environ]
    for name in missing:
        os.environ[name] = THREAD_WAIT_DEFAULTS[name]
    if blas_started and "OPENBLAS_THREAD_TIMEOUT" in missing:
        restart_blas_threads()


def restart_blas_threads() -> list:
    """Make every OpenBLAS (pthreads build) loaded in the process read its environment again
    (``openblas_read_env``) and stop its worker threads (``blas_thread_shutdown_``), which it
    starts anew, with the new settings, at its next parallel product.  Both are exported by
    OpenBLAS's library, which calls the first when it loads and the second before a ``fork``;
    a BLAS without them is left alone.  Call it while no other thread is inside BLAS.
    Returns the libraries restarted."""
    import ctypes

    import threadpoolctl

    restarted = []
    for info in threadpoolctl.threadpool_info():
        if info.get("internal_api") != "openblas" or info.get("threading_layer") != "pthreads":
            continue
        try:
            lib = ctypes.CDLL(info["filepath"])
            read_env, shutdown = lib.openblas_read_env, lib.blas_thread_shutdown_
        except (OSError, AttributeError):
            continue
        read_env.restype = None
        read_env()
        shutdown()
        restarted.append(info["filepath"])
    return restarted


def set_threads(n: int) -> dict:
    """Run Numba's kernels and the BLAS NumPy loaded on ``n`` threads, in this process, now.

    Numba's count is clamped to ``1 .. NUMBA_NUM_THREADS`` (the pool it started with).  The
    BLAS count is set through ``threadpoolctl``, for every BLAS library loaded in the process.
    Returns what was set: ``{"numba": n, "blas": [{"internal_api", "num_threads",
    "version"}, ...]}``.
    """
    import threadpoolctl

    from .kernels import get_num_threads, set_num_threads

    set_num_threads(n)
    threadpoolctl.threadpool_limits(limits=int(n), user_api="blas")
    blas = [{"internal_api": i.get("internal_api"), "num_threads": i.get("num_threads"),
             "version": i.get("version")}
            for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    return {"numba": get_num_threads(), "blas": blas}


_pool: dict = {}  # this process's worker threads, made on first use
_pool_lock = threading.Lock()


def worker_threads(n: int) -> ThreadPoolExecutor | None:
    """The process's thread pool, with at least ``n`` worker threads (None for ``n <= 0``).

    Made on first use and grown when more workers are asked for; made again in a forked child,
    whose parent's threads are gone.  For NumPy calls that let go of the GIL while they work
    (BLAS products, random draws, copies): Python threads then run them side by side.
    """
    if n <= 0:
        return None
    with _pool_lock:
        if _pool.get("pid") != os.getpid():
            _pool.clear()
            _pool.update(pid=os.getpid(), executor=None, workers=0)
        if _pool["workers"] < n:
            if _pool["executor"] is not None:
                _pool["executor"].shutdown(wait=False)
            _pool.update(workers=n, executor=ThreadPoolExecutor(n, thread_name_prefix="minisnn"))
        return _pool["executor"]


# glibc's mallopt parameters (<malloc.h>)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def reuse_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Let glibc's allocator keep freed memory for the next array instead of returning it.

    Scratch buffers (:mod:`minisnn.ops.scratch`) cover the temporaries *inside* an op, but a
    training step also allocates every activation, gradient and cache anew, and by default
    glibc gives each block above a (moving) threshold its own ``mmap`` and returns it to the
    system when freed: the next step's array of the same size then pays a page fault per
    4 KiB page again.  This sets ``M_MMAP_THRESHOLD`` to ``mmap_threshold`` (arrays up to
    32 MiB come from the heap; glibc allows no more on 64-bit systems) and
    ``M_TRIM_THRESHOLD`` to ``trim_threshold`` (the heap is only shrunk when that much is free
    at its top).  Measured on the CAE's training step (batch 64): 0.46 s -> 0.35 s.  The
    price: the process keeps its peak heap size.

    Returns False (and does nothing) where the C library has no ``mallopt`` (not glibc).
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))


__all__ = ["THREAD_WAIT_DEFAULTS", "THREAD_VARS", "apply_wait_defaults", "restart_blas_threads", "set_threads",
           "reuse_freed_memory", "worker_threads"]
