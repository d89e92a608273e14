"""on_threads: blocks of work shared by the threads, the BLAS on one thread meanwhile."""

import threading

import numba
import numpy as np
import pytest
import threadpoolctl

from minisnn import kernels
from minisnn.ops.blocks import on_threads


def _blas_threads():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


def _with_threads(n, fn):
    previous = kernels.get_num_threads()
    try:
        kernels.set_num_threads(n)
        return fn()
    finally:
        kernels.set_num_threads(previous)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", [0, 1, 2, 7])
def test_every_item_runs_once_with_the_blas_on_one_thread(threads, n):
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("NUMBA_NUM_THREADS < 2: nothing to share")
    seen, blas, names = [], [], set()
    lock = threading.Lock()

    def item(i):
        with lock:
            seen.append(i)
            blas.extend(_blas_threads())
            names.add(threading.current_thread().name)

    _with_threads(threads, lambda: on_threads(item, n))
    assert sorted(seen) == list(range(n))
    assert set(blas) <= {1}
    assert len(names) <= threads


def test_blas_thread_count_restored():
    before = _blas_threads()
    on_threads(lambda i: np.ones((64, 64)) @ np.ones((64, 64)), 4)
    assert _blas_threads() == before


@pytest.mark.parametrize("threads", [1, 2])
def test_an_items_error_is_raised_in_the_callers_thread(threads):
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("NUMBA_NUM_THREADS < 2: nothing to share")

    def item(i):
        if i == 1:
            raise ValueError("item 1 failed")

    with pytest.raises(ValueError, match="item 1 failed"):
        _with_threads(threads, lambda: on_threads(item, 5))
    before = _blas_threads()
    on_threads(lambda i: None, 3)  # the lock and the BLAS limit were released
    assert _blas_threads() == before


def test_release_drops_the_scratch_buffers_of_the_worker_threads():
    """The blocks' scratch buffers live in the threads that ran them; scratch.release() (which
    fit calls when it is done) drops those too."""
    from minisnn.ops import scratch

    on_threads(lambda i: scratch.scratch("test tag", (1000,), np.float32), 4)
    assert any("test tag" in buffers for buffers in scratch._threads.values())
    scratch.release()
    assert not any(scratch._threads.values())
