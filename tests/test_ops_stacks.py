"""matmul_stack: a stack of matrix products split over threads, each product one BLAS call."""

import numba
import numpy as np
import pytest
import threadpoolctl

from minisnn import kernels
from minisnn.ops.stacks import matmul_stack


def _stack(rng, P, m, k, n, dtype=np.float32):
    a = rng.standard_normal((P, m, k)).astype(dtype)
    b = rng.standard_normal((P, n, k)).astype(dtype).transpose(0, 2, 1)  # as the Winograd gradient: V^T
    return a, b


def _on_threads(n, fn):
    previous = kernels.get_num_threads()
    try:
        kernels.set_num_threads(n)
        return fn()
    finally:
        kernels.set_num_threads(previous)


@pytest.mark.parametrize("P", [1, 2, 3, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equals_one_blas_thread_matmul_exactly(rng, P, dtype):
    """Each product is one single-threaded BLAS call, as np.matmul with the BLAS on one thread
    makes it: the same calls, so the same bits on any host."""
    a, b = _stack(rng, P, 16, 3000, 24, dtype)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        expected = np.matmul(a, b)
    got = matmul_stack(a, b, np.empty_like(expected))
    assert np.array_equal(got, expected)
    np.testing.assert_allclose(got, np.matmul(a.astype(np.float64), b.astype(np.float64)),
                               rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-2 if dtype == np.float32 else 1e-9)


def test_result_does_not_depend_on_thread_count(rng):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only (NUMBA_NUM_THREADS < 2): nothing to compare 1 thread against")
    a, b = _stack(rng, 16, 16, 5000, 16)
    one = _on_threads(1, lambda: matmul_stack(a, b, np.empty((16, 16, 16), np.float32)))
    two = _on_threads(2, lambda: matmul_stack(a, b, np.empty((16, 16, 16), np.float32)))
    assert np.array_equal(one, two)


def test_blas_thread_count_restored(rng):
    a, b = _stack(rng, 4, 8, 100, 8)
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    matmul_stack(a, b, np.empty((4, 8, 8), np.float32))
    assert [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"] == before
