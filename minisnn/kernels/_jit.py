"""The one place where Numba's JIT options live (LEVEL 1b).

Every kernel in :mod:`minisnn.kernels` is decorated with :func:`jit`, :func:`inline_jit` or
:func:`pjit`; no kernel sets its own flags.  The choices:

* ``cache=True`` so the command-line tools do not recompile on every start.  Numba keys a
  cached kernel on its own source file only: a kernel whose file is unchanged but which calls
  a changed helper of another file (``simd.add_runs`` from ``events``) would load its stale
  machine code (Numba's "Notes on Caching", known limitations).  So every kernel's cache entry
  is keyed on the contents of the whole ``kernels`` package instead (:func:`package_stamp`).
  A compiled helper outside the package (a test calling an intrinsic) should not be cached:
  its cache would be keyed on its own file;
* ``fastmath`` off: the kernels must agree with their NumPy references bit for bit
  where the arithmetic is the same, and must not change with the thread count;
* ``nogil=True`` so a kernel can run beside other Python threads;
* ``error_model="numpy"``: a float division by zero gives inf or NaN, as in the NumPy
  references, instead of raising; Python's error model puts a zero test and an exit into
  every division, and a loop with an exit is not vectorised;
* :func:`inline_jit` adds ``inline="always"``, for a helper on a hot path of another kernel
  (Numba then inlines it before type inference, where LLVM would have left a call);
* :func:`pjit` adds ``parallel=True``.  Parallel kernels use ``prange`` over
  *independent* work items (neurons, images, channels), and each iteration writes only
  its own outputs, so the result does not depend on how many threads run them.

With ``NUMBA_DISABLE_JIT=1`` in the environment the decorators return the plain Python
functions and ``prange`` becomes ``range``: the tests run that way too.
"""

from __future__ import annotations

import functools
import hashlib
import os
import types

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


_KERNELS_DIR = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=None)
def package_stamp(directory: str = _KERNELS_DIR) -> bytes:
    """SHA-256 over the names and contents of every ``.py`` file in ``directory`` (the kernels
    package's), in name order; read once per process."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        if name.endswith(".py"):
            h.update(name.encode() + b"\0")
            with open(os.path.join(directory, name), "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    return h.digest()


def _keyed_on_package(base):
    """Numba's cache locator ``base``, for the kernels package's functions only, with
    :func:`package_stamp` as every function's source stamp."""

    class PackageLocator(base):
        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.dirname(os.path.abspath(py_file)) != _KERNELS_DIR:
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            return package_stamp()

    PackageLocator.__name__ = PackageLocator.__qualname__ = f"Package{base.__name__}"
    return PackageLocator


def _install_package_locators() -> bool:
    """Put the package-keyed locators first in Numba's list (a private one: with a Numba that
    lacks it, each kernel stays keyed on its own file, as Numba does).  Returns whether done."""
    try:
        from numba.core import caching
    except ImportError:
        return False

    def find(name):  # Numba < 0.60 spells its classes with a leading underscore
        return getattr(caching, name, None) or getattr(caching, "_" + name, None)

    impl = find("CacheImpl")
    bases = [find(n) for n in ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")]
    if impl is None or not isinstance(getattr(impl, "_locator_classes", None), list) or None in bases:
        return False
    if not any(getattr(c, "__name__", "").startswith("Package") for c in impl._locator_classes):
        impl._locator_classes = [_keyed_on_package(b) for b in bases] + list(impl._locator_classes)
    return True


PACKAGE_KEYED_CACHE = _install_package_locators()


def jit(fn):
    """Compile ``fn`` as a serial kernel with the project's JIT options."""
    return numba.jit(**JIT_OPTIONS)(fn)


def pjit(fn):
    """Compile ``fn`` as a parallel kernel (``prange`` loops run on all threads).

    What is compiled is :func:`parallel_twin` of ``fn``, so that ``jit(fn)`` beside it (the
    serial build of the same code, for small inputs) keeps its own cache entry."""
    return numba.jit(parallel=True, **JIT_OPTIONS)(parallel_twin(fn))


def parallel_twin(fn):
    """A copy of ``fn`` (the same code, globals and defaults) whose qualified name ends in
    ``_parallel``.

    Numba names a function's cache files after its module and qualified name, and keys the
    entries in them on the signature and the bytecode, not on the flags.  So ``jit(f)`` and
    ``pjit(f)`` shared one entry: whichever compiled first was loaded by both.  Measured with
    a warm cache, ``im2col_numba_serial`` ran the parallel code, and on this project's default
    passive OpenMP wait policy a parallel region costs ~70 us to wake its threads: 82 us a
    call on a 4x4 image, against 2 us for the serial build (``docs/results.md``)."""
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    twin.__kwdefaults__ = fn.__kwdefaults__
    twin.__module__, twin.__doc__ = fn.__module__, fn.__doc__
    twin.__qualname__ = fn.__qualname__ + "_parallel"
    return twin


def inline_jit(fn):
    """:func:`jit`, and inlined into each kernel that calls it (Numba's ``inline="always"``,
    before type inference): for a helper on a hot path that LLVM would otherwise call, with
    its arguments' set-up and no optimisation across the call."""
    return numba.jit(inline="always", **JIT_OPTIONS)(fn)


def get_num_threads() -> int:
    return numba.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads the parallel kernels use (clamped to 1 .. NUMBA_NUM_THREADS)."""
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
