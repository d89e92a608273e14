"""Reusable scratch buffers for temporaries that live within one op call (LEVEL 1a).

A freshly allocated large array costs the kernel a page fault per 4 KiB page the first time it
is written: about 14 ms for the 138 MB column buffer of one LocNet layer, against 0.25 ms when
the memory is reused.  ``scratch(tag, shape, dtype)`` hands out a view of a buffer kept per
``tag`` (and thread), grown when a larger one is asked for.  Its contents are undefined, and
it is only valid until the next ``scratch`` call with the same tag: use it only for values
that do not leave the op (never for an output or a cache).  :func:`release` frees them all.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

_local = threading.local()
_threads: dict[int, dict] = {}  # every thread's scratch buffers (its ``_local`` "buffers"), for release()
_threads_lock = threading.Lock()


def scratch(tag: str, shape, dtype) -> np.ndarray:
    """An uninitialised array of ``shape`` and ``dtype`` backed by the buffer for ``tag``."""
    buffers = _local.__dict__.get("buffers")
    if buffers is None:
        buffers = _local.buffers = {}
        with _threads_lock:
            _threads[threading.get_ident()] = buffers
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = buffers.get(tag)
    if buf is None or buf.nbytes < nbytes:
        buf = buffers[tag] = np.empty(max(nbytes, 1), dtype=np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


#: Arrays of at least this size come from :func:`recycled`'s pool; smaller ones are left to
#: the C allocator, which reuses them itself after :func:`reuse_freed_memory` (whose heap
#: limit is this size).
RECYCLE_MIN_BYTES = 32 << 20

#: Most bytes :func:`recycled` keeps in buffers that nothing uses at the moment.
RECYCLE_MAX_IDLE_BYTES = 2 << 30


def recycled(shape, dtype) -> np.ndarray:
    """An uninitialised array for data that *outlives* the op (a cache for the backward pass),
    made from a buffer that an earlier call of the same size left behind once nothing used it.

    Scratch buffers cannot hold a cache: the next call would overwrite it.  But a training
    step allocates the same large caches every step (the column matrix of each convolution),
    and a fresh array above 32 MiB gets its own ``mmap`` from glibc: ~10 ms of page faults for
    the CAE's 50 MB one, every step.  Here a buffer is taken back when the only references left
    are the pool's own, which CPython's reference count tells: an array handed out is a view
    of its buffer (``.base``), so the buffer is in use while any view of it lives.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if nbytes < RECYCLE_MIN_BYTES:
        return np.empty(shape, dtype)
    pool = _local.__dict__.setdefault("pool", [])
    idle = [i for i in range(len(pool)) if _refs(pool, i) == _IDLE_REFS]
    for i in idle:
        if pool[i].nbytes == nbytes:
            return pool[i].view(dtype).reshape(shape)
    idle_bytes = sum(pool[i].nbytes for i in idle)
    for i in idle:  # too much memory idle: the oldest idle buffers go first
        if idle_bytes + nbytes <= RECYCLE_MAX_IDLE_BYTES:
            break
        idle_bytes -= pool[i].nbytes
        pool[i] = None
    pool[:] = [buf for buf in pool if buf is not None]
    pool.append(np.empty(nbytes, dtype=np.uint8))
    return pool[-1].view(dtype).reshape(shape)


def _refs(pool, i) -> int:
    """The reference count of ``pool[i]`` as seen from here (always the same code path)."""
    return sys.getrefcount(pool[i])


#: What :func:`_refs` says of a buffer that only the pool holds, measured on a probe: it
#: depends on the Python version, so it is measured rather than assumed.
_IDLE_REFS = _refs([np.empty(1, np.uint8)], 0)


def release() -> None:
    """Drop every scratch buffer, of every thread (worker threads keep their own: see
    :mod:`minisnn.ops.blocks`), and this thread's recycled buffers: the memory goes back to
    the allocator, and recycled arrays still in use stay valid.  Call it between ops, never
    while another thread is inside one."""
    with _threads_lock:
        for buffers in _threads.values():
            buffers.clear()
        _threads.pop(threading.get_ident(), None)
    _local.__dict__.pop("buffers", None)
    _local.__dict__.pop("pool", None)
