"""The one place where Numba's JIT options live (LEVEL 1b).

Every kernel in :mod:`minisnn.kernels` is decorated with :func:`jit` or :func:`pjit`;
no kernel sets its own flags.  The choices:

* ``cache=True`` so the command-line tools do not recompile on every start;
* ``fastmath`` off: the kernels must agree with their NumPy references bit for bit
  where the arithmetic is the same, and must not change with the thread count;
* ``nogil=True`` so a kernel can run beside other Python threads;
* ``error_model="numpy"``: a float division by zero gives inf or NaN, as in the NumPy
  references, instead of raising; Python's error model puts a zero test and an exit into
  every division, and a loop with an exit is not vectorised;
* :func:`pjit` adds ``parallel=True``.  Parallel kernels use ``prange`` over
  *independent* work items (neurons, images, channels), and each iteration writes only
  its own outputs, so the result does not depend on how many threads run them.

With ``NUMBA_DISABLE_JIT=1`` in the environment the decorators return the plain Python
functions and ``prange`` becomes ``range``: the tests run that way too.
"""

from __future__ import annotations

import numba
import numpy as np

JIT_OPTIONS = dict(nopython=True, cache=True, fastmath=False, nogil=True, error_model="numpy")

prange = numba.prange

#: False under ``NUMBA_DISABLE_JIT=1``, where the kernels are plain Python loops (correct, but
#: ~1000x slower): callers with a NumPy twin that is fast on its own use that instead.
COMPILED = not numba.config.DISABLE_JIT

#: the dtypes the array kernels are compiled and tested for
KERNEL_DTYPES = (np.float32, np.float64)


def compiled_for(dtype) -> bool:
    """Whether a kernel should take arrays of ``dtype``: compiled, and a dtype it is made for
    (callers fall back to their NumPy reference otherwise, e.g. for float16)."""
    return COMPILED and dtype in KERNEL_DTYPES


def jit(fn):
    """Compile ``fn`` as a serial kernel with the project's JIT options."""
    return numba.jit(**JIT_OPTIONS)(fn)


def pjit(fn):
    """Compile ``fn`` as a parallel kernel (``prange`` loops run on all threads)."""
    return numba.jit(parallel=True, **JIT_OPTIONS)(fn)


def get_num_threads() -> int:
    return numba.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads the parallel kernels use (clamped to 1 .. NUMBA_NUM_THREADS)."""
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
