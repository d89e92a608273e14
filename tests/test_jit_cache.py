"""The compiled kernels' on-disk cache is keyed on the whole kernels package.

Numba keys a cached function on its own source file only, so a kernel whose file did not
change but which calls a changed helper of another file (``events`` calling ``simd.add_runs``)
would load stale machine code; ``minisnn.kernels._jit`` keys every kernel on all the package's
files instead.
"""

import os

import numpy as np

from minisnn.kernels import _jit, events


def test_numba_takes_the_package_keyed_locators():
    assert _jit.PACKAGE_KEYED_CACHE, "this Numba lacks the cache locator list minisnn extends"
    events.conv_events_pixels_numba(*events._conv_events_example(np.random.default_rng(0)))  # compiled now
    locator = events._conv_events_pixels._cache._impl.locator
    assert type(locator).__name__.startswith("Package")
    assert locator.get_source_stamp() == _jit.package_stamp()


def test_the_stamp_changes_with_any_file_of_the_package(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    (tmp_path / "notes.txt").write_text("not source")
    before = _jit.package_stamp(str(tmp_path))
    _jit.package_stamp.cache_clear()
    assert _jit.package_stamp(str(tmp_path)) == before  # the same files, the same stamp
    (tmp_path / "notes.txt").write_text("changed, but not a .py file")
    _jit.package_stamp.cache_clear()
    assert _jit.package_stamp(str(tmp_path)) == before
    (tmp_path / "b.py").write_text("y = 3\n")
    _jit.package_stamp.cache_clear()
    changed = _jit.package_stamp(str(tmp_path))
    assert changed != before
    os.rename(tmp_path / "b.py", tmp_path / "c.py")
    _jit.package_stamp.cache_clear()
    assert _jit.package_stamp(str(tmp_path)) != changed  # a renamed file counts too


def test_functions_outside_the_package_keep_numba_s_own_key():
    from numba.core import caching

    def f():
        return 1

    base = getattr(caching, "InTreeCacheLocator", None) or caching._InTreeCacheLocator
    assert _jit._keyed_on_package(base).from_function(f, __file__) is None


def test_a_serial_and_a_parallel_build_of_one_kernel_keep_their_own_cache_files():
    """Numba's cache entries are keyed on the signature and the bytecode, not the flags: before
    ``pjit`` compiled a renamed twin, ``im2col_numba_serial`` loaded the parallel machine code
    from the file its twin had written (and paid a parallel region's wake-up on every call)."""
    from minisnn.kernels import elementwise, im2col

    pairs = [(im2col.im2col_numba_serial, im2col.im2col_numba), (im2col.col2im_numba_serial, im2col.col2im_numba),
             (elementwise._adam_step_serial, elementwise._adam_step)]
    for serial, parallel in pairs:
        assert serial.py_func.__code__ is parallel.py_func.__code__  # one kernel, two builds
        assert not serial.targetoptions.get("parallel") and parallel.targetoptions["parallel"]
        assert serial._cache._cache_file._index_path != parallel._cache._cache_file._index_path
        assert parallel.py_func.__qualname__ == serial.py_func.__qualname__ + "_parallel"
