"""Helpers shared by the benchmark scripts in this folder.

Nothing here imports numpy, numba or torch at module level: a script must be able to call
:func:`pin_thread_env` (which may re-exec the interpreter) *before* those libraries start
their thread pools, because OpenBLAS, OpenMP and Numba read their thread counts from the
environment only once, at load time.

Typical use at the very top of a script::

    import _common as C
    args = parse_args()
    C.pin_thread_env(args.threads)   # re-execs once with the *_NUM_THREADS variables set
    import numpy as np               # only now
    C.set_threads(args.threads)
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"  # git-ignored

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
_REEXEC_GUARD = "MINISNN_BENCH_REEXEC"

#: ``minisnn.THREAD_WAIT_DEFAULTS``, copied because this module must not import minisnn (it
#: imports numpy); ``tests/test_benchmarks.py`` keeps the two equal.  ``import minisnn`` sets
#: them in its own process, but a benchmark child imports numpy first, too early for OpenBLAS
#: to see them: :func:`minisnn_env` hands them to minisnn's children at start-up instead.
MINISNN_WAIT_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}
#: the user's own values, read before anything in this process imported minisnn
_USER_WAIT_ENV = {k: os.environ.get(k) for k in MINISNN_WAIT_DEFAULTS}


def minisnn_env() -> dict:
    """The environment for a process that runs minisnn: as ``minisnn-train`` starts, with
    minisnn's thread-wait defaults wherever the user set nothing."""
    env = dict(os.environ)
    for k, v in MINISNN_WAIT_DEFAULTS.items():
        env[k] = _USER_WAIT_ENV[k] if _USER_WAIT_ENV[k] is not None else v
    return env


def peer_env() -> dict:
    """The environment for a peer (PyTorch, snnTorch): the user's, without minisnn's defaults,
    so that each engine runs with its own (PyTorch's OpenMP wants its threads to spin)."""
    env = dict(os.environ)
    for k, v in _USER_WAIT_ENV.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def user_wait_note() -> str | None:
    """A warning if the user's environment sets a thread-wait variable: :func:`peer_env` keeps
    it, so the peers run with it too, and ``OMP_WAIT_POLICY=PASSIVE`` costs PyTorch much more
    than minisnn (its OpenMP threads sleep between parallel regions; seen here: snnTorch at
    1.5 CPU-seconds per second of 2, 1.26-1.27x slower on the protocol, its BPTT step 1.84x)."""
    user = {k: v for k, v in _USER_WAIT_ENV.items() if v is not None}
    if not user:
        return None
    return ("NOTE: " + ", ".join(f"{k}={v}" for k, v in user.items()) + " is set in this environment, so the "
            "peers (PyTorch, snnTorch) run with it too; unset it to time them with their own defaults")


def use_minisnn_env() -> None:
    """Apply :func:`minisnn_env` to this process; call it before numpy is imported."""
    if "numpy" in sys.modules:
        raise RuntimeError("use_minisnn_env() must run before importing numpy")
    os.environ.update(minisnn_env())


# ----------------------------------------------------------------------------- threads


def pin_thread_env(n: int) -> None:
    """Make sure BLAS / OpenMP / Numba were started with ``n`` threads.

    If any of :data:`THREAD_ENV_VARS` differs from ``n`` the interpreter re-executes the
    current script with them set (once; a guard variable stops loops).  Call this before
    importing numpy, numba, torch or minisnn.
    """
    want = str(int(n))
    if all(os.environ.get(v) == want for v in THREAD_ENV_VARS):
        return
    if os.environ.get(_REEXEC_GUARD) == want:
        return  # already re-executed once; do not loop
    loaded = [m for m in ("numpy", "numba", "torch") if m in sys.modules]
    if loaded:
        raise RuntimeError(f"pin_thread_env() must run before importing {', '.join(loaded)}")
    env = dict(os.environ)
    env.update({v: want for v in THREAD_ENV_VARS})
    env[_REEXEC_GUARD] = want
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def set_threads(n: int) -> dict:
    """Run numba and BLAS (:func:`minisnn.runtime.set_threads`) and torch on ``n`` threads;
    returns what was set."""
    from minisnn.runtime import set_threads as set_minisnn_threads

    info: dict = {"requested": n, **set_minisnn_threads(n)}
    torch = try_import_torch()
    if torch is not None:
        torch.set_num_threads(n)
        info["torch"] = torch.get_num_threads()
    else:
        info["torch"] = "not installed"
    return info


def try_import_torch():
    """``torch`` or None when it is not installed (or fails to import)."""
    try:
        import torch
    except Exception:
        return None
    return torch


# ----------------------------------------------------------------------------- timing


def time_samples(fn, repeats: int = 5, warmup: int = 1) -> list:
    """Wall-clock seconds of ``repeats`` calls of ``fn()`` after ``warmup`` untimed calls.

    The garbage collector is collected before and disabled during the timed calls.
    """
    for _ in range(warmup):
        fn()
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        out = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    finally:
        if was_enabled:
            gc.enable()
    return out


def interleaved_samples(fns: dict, repeats: int = 5, warmup: int = 1,
                        min_total_s: float = 0.0, max_repeats: int = 100) -> dict:
    """Time several callables round-robin: ``{name: [seconds, ...]}``.

    Each round calls every function once, in the dict's order, so on a shared machine a
    noisy spell hits all of them alike and ratios of their medians stay meaningful.
    With ``min_total_s`` > 0, cheap functions get more rounds (up to ``max_repeats``) so
    that the timed rounds take about that long in total; never fewer than ``repeats``.
    """
    t0 = time.perf_counter()
    for _ in range(max(1, warmup)):
        t0 = time.perf_counter()
        for fn in fns.values():
            fn()
    round_s = time.perf_counter() - t0  # the last warm-up round
    if min_total_s > 0 and round_s > 0:
        repeats = max(repeats, min(max_repeats, int(min_total_s / round_s)))
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    out = {k: [] for k in fns}
    try:
        for _ in range(max(1, repeats)):
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                out[k].append(time.perf_counter() - t0)
    finally:
        if was_enabled:
            gc.enable()
    return out


def best_of(fn, repeats: int = 1):
    """Call ``fn()`` ``repeats`` times: ``(result, wall, cpu, walls)`` of the fastest call (its
    return value, wall-clock and CPU seconds) and every call's wall-clock seconds."""
    walls, best = [], None
    for _ in range(max(1, repeats)):
        c0, t0 = cpu_seconds(), time.perf_counter()
        result = fn()
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        walls.append(wall)
        if best is None or wall < best[1]:
            best = (result, wall, cpu)
    return (*best, walls)


def median_time(fn, repeats: int = 5, warmup: int = 1):
    """``(median, min)`` wall-clock seconds of ``fn()`` over ``repeats`` timed calls."""
    s = time_samples(fn, repeats, warmup)
    return statistics.median(s), min(s)


# ----------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_info(np) -> str | None:
    try:
        cfg = np.show_config(mode="dicts")  # numpy >= 1.25, cheap (no printing)
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}".strip()
    except Exception:
        return None


def simd_info() -> dict:
    """The host's SIMD level and the vector width minisnn's kernels are compiled for:

    * ``numpy_simd``: the SIMD targets NumPy dispatches to on this CPU (``np.show_runtime()``'s
      "found" list, e.g. ``X86_V3 X86_V4 AVX512_ICL``; AVX-512 hosts list X86_V4);
    * ``llvm_cpu``: the CPU LLVM (Numba) compiles for;
    * ``kernel_vector_bits``: the widest vector registers in a float32 loop compiled here with
      minisnn's kernel options (:mod:`minisnn.kernels._jit`): 512 (zmm), 256 (ymm) or 128 (xmm).
      LLVM picks the width per CPU; on some AVX-512 CPUs it prefers 256-bit vectors.
    """
    import re

    import numpy as np

    out = {"numpy_simd": None, "llvm_cpu": None, "kernel_vector_bits": None}
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    out["numpy_simd"] = " ".join(f for f in __cpu_dispatch__ if __cpu_features__.get(f)) or "baseline only"
    try:
        import llvmlite.binding as ll
        import numba
        from minisnn.kernels._jit import COMPILED, JIT_OPTIONS

        out["llvm_cpu"] = numba.config.CPU_NAME or ll.get_host_cpu_name()
        if COMPILED:
            def axpy(a, x, y):  # the shape of the kernels' hot loops: elementwise float32
                for i in range(x.shape[0]):
                    y[i] += a * x[i]

            probe = numba.jit(**{**JIT_OPTIONS, "cache": False})(axpy)  # cached code cannot be inspected
            x = np.ones(256, np.float32)
            probe(np.float32(2.0), x, x.copy())
            asm = "\n".join(probe.inspect_asm().values())
            out["kernel_vector_bits"] = next((bits for reg, bits in (("zmm", 512), ("ymm", 256), ("xmm", 128))
                                              if re.search(rf"%{reg}\d", asm)), None)
    except Exception as e:  # a probe that cannot run says so instead of stopping a benchmark
        out["kernel_vector_bits"] = f"unknown ({type(e).__name__})"
    return out


def machine_info() -> dict:
    """CPU model, core counts, Python / numpy / numba / torch versions, BLAS, thread env."""
    info = {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "thread_env": {v: os.environ.get(v) for v in THREAD_ENV_VARS},
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    try:
        import numpy as np

        info["numpy"] = np.__version__
        info["blas"] = _blas_info(np)
    except ImportError:
        info["numpy"] = None
    try:
        import numba

        info["numba"] = numba.__version__
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except Exception:  # raised until a parallel kernel has run
            info["numba_threading_layer"] = None
        info["numba_num_threads"] = numba.get_num_threads()
        info.update(simd_info())
    except ImportError:
        info["numba"] = None
    torch = try_import_torch()
    if torch is None:
        info["torch"] = "not installed"
    else:
        info["torch"] = torch.__version__
        info["torch_num_threads"] = torch.get_num_threads()
    try:
        import minisnn

        info["minisnn"] = getattr(minisnn, "__version__", None)
    except ImportError:
        info["minisnn"] = None
    return info


def format_machine_info(info: dict) -> str:
    keys = ("cpu_model", "usable_cpus", "numpy_simd", "llvm_cpu", "kernel_vector_bits", "python", "numpy", "blas",
            "numba", "numba_threading_layer", "torch")
    return ", ".join(f"{k}={info.get(k)}" for k in keys)


def fmt_loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (``ru_maxrss`` is KiB on Linux)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0


def proc_status_mb(key: str) -> float | None:
    """``VmHWM`` / ``VmRSS`` / ... of this process from /proc/self/status, MiB (None if unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def own_peak_rss_mb() -> float:
    """Peak RSS of this process's own memory image, MiB: ``VmHWM`` where Linux has it.

    ``ru_maxrss`` of a child started by fork/vfork + exec starts at the *parent's* peak (the
    kernel carries the old image's high-water mark over at exec); ``VmHWM`` belongs to the new
    image only.  The benchmark parents stay small anyway, so both agree; this is the safer one.
    Falls back to :func:`peak_rss_mb` elsewhere.
    """
    v = proc_status_mb("VmHWM")
    return v if v is not None else peak_rss_mb()


def reset_peak_rss() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS (Linux: write 5 to /proc/self/clear_refs).

    Called just before the timed work, so that :func:`own_peak_rss_mb` afterwards is the peak of
    that work (with everything resident at the time: weights, optimizer state, data) and not a
    transient of the set-up.  Returns False where it is not supported (the peak then covers the
    whole process).
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def limit_memory(gb: float | None) -> None:
    """Cap this process's address space at ``gb`` GiB (a child that would swap the machine
    fails with MemoryError instead); None or <= 0: no cap."""
    if gb and gb > 0:
        limit = int(gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def time_steps(step, warmup: int, repeats: int) -> dict:
    """Time ``repeats`` calls of ``step()`` after ``warmup`` untimed ones, in a child process:
    the samples, their median and minimum, CPU time per wall time, and the peak RSS of the steps
    alone where the kernel lets it be reset (``peak_rss_is_steps_only``; else the process's),
    beside the peak of the set-up before them."""
    setup_peak = own_peak_rss_mb()
    reset = reset_peak_rss()  # the peak of the steps, not of building the net
    for _ in range(warmup):
        step()
    times = []
    c0 = cpu_seconds()
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    cpu = cpu_seconds() - c0
    return {"median_s": statistics.median(times), "min_s": min(times), "samples_s": times,
            "cpu_per_wall": cpu / max(sum(times), 1e-12), "peak_rss_mib": own_peak_rss_mb(),
            "peak_rss_is_steps_only": reset, "setup_peak_rss_mib": setup_peak, "process_peak_rss_mib": peak_rss_mb(),
            "numba_threading_layer": numba_threading_layer()}


def numba_threading_layer() -> str | None:
    """numba's threading layer if numba is loaded and has run a parallel kernel, else None."""
    if "numba" not in sys.modules:
        return None
    try:
        return sys.modules["numba"].threading_layer()
    except Exception:  # raised until a parallel kernel has run
        return None


def status(flag) -> str:
    """Target status text: None -> 'not measured', True -> 'met', False -> 'MISSED'."""
    return "not measured" if flag is None else ("met" if flag else "MISSED")


# ----------------------------------------------------------------------------- output


def fmt(v, digits: int = 2) -> str:
    """Cell text: floats with ``digits`` decimals (3 significant for small ones), None as '-'."""
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v != 0 and abs(v) < 0.1:
            return f"{v:.3g}"
        return f"{v:.{digits}f}"
    return str(v)


def format_table(headers, rows, align=None) -> str:
    """Plain-text table with aligned columns; ``align`` is a string of 'l'/'r' per column
    (default: first two left, the rest right).  Cells are formatted with :func:`fmt`."""
    cells = [[fmt(c) for c in row] for row in rows]
    ncol = len(headers)
    if align is None:
        align = "ll" + "r" * max(0, ncol - 2)
    width = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            width[i] = max(width[i], len(c))

    def line(row):
        parts = [c.ljust(width[i]) if align[i] == "l" else c.rjust(width[i]) for i, c in enumerate(row)]
        return "  ".join(parts).rstrip()

    sep = "  ".join("-" * w for w in width)
    return "\n".join([line(list(headers)), sep, *(line(r) for r in cells)])


def print_table(headers, rows, align=None) -> None:
    print(format_table(headers, rows, align), flush=True)


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    if isinstance(o, Path):
        return str(o)
    return str(o)


def resolve_out_path(path) -> Path:
    """A bare file name goes into ``benchmarks/out/``; a path with a folder is used as given."""
    p = Path(path)
    if not p.is_absolute() and p.parent == Path("."):
        p = OUT_DIR / p
    return p


def write_json(path, payload) -> Path:
    """Write ``payload`` as JSON atomically (temp file in the same folder + ``os.replace``)."""
    p = resolve_out_path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, default=_json_default, allow_nan=True)
            f.write("\n")
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return p


# ----------------------------------------------------------------------------- child processes
#
# Every benchmark measures each case in a process of its own (a fresh peak RSS, thread pools
# started with the case's settings, no peer library loaded beside minisnn), with one protocol:
# the parent runs ``script --worker ROLE`` with the job, a JSON object, on the child's stdin;
# the child answers with a JSON object on the last line of its stdout (:func:`worker_main`).
# A case of several MPI processes is the same child started by a launcher (``mpirun -n N``):
# rank 0 reads the job and sends it to the others, and rank 0 alone answers.

#: stderr texts of a child that ran out of memory (Python, glibc, PyTorch's C++ allocator)
OOM_MARKERS = ("MemoryError", "Cannot allocate", "can't allocate", "out of memory", "not enough memory",
               "std::bad_alloc")


def spawn(script, role: str, job: dict, env: dict, *, stderr_to_console: bool = False, launcher=()) -> dict:
    """Run ``script --worker role`` on ``job``; its result with ``process_s`` (the child's wall
    time) added, or ``{"error": why, "process_s": ...}`` if it failed (why: ``"OOM"``, the signal
    that killed it, or the last line of its stderr).  ``stderr_to_console`` lets the child's
    progress lines through (its error is then only the exit status).  ``launcher`` starts the
    child through a command such as ``["mpirun", "-n", "2"]`` (several MPI processes)."""
    t0 = time.perf_counter()
    p = subprocess.run([*launcher, sys.executable, os.path.abspath(script), "--worker", role],
                       input=json.dumps(job, default=_json_default), stdout=subprocess.PIPE,
                       stderr=None if stderr_to_console else subprocess.PIPE, text=True, env=env)
    wall = time.perf_counter() - t0
    lines = (p.stdout or "").strip().splitlines()
    if p.returncode != 0 or not lines:
        return {"error": f"{role} child failed: {_failure(p)}", "process_s": wall}
    try:
        result = json.loads(lines[-1])
    except ValueError:
        return {"error": f"{role} child printed no result: {lines[-1][:200]!r}", "process_s": wall}
    result["process_s"] = wall
    return result


def _failure(p: subprocess.CompletedProcess) -> str:
    err = p.stderr or ""
    if any(s in err for s in OOM_MARKERS):
        return "OOM"
    if p.returncode < 0:
        return f"killed by signal {-p.returncode}"
    lines = err.strip().splitlines()
    return lines[-1][:200] if lines else f"rc {p.returncode}"


def worker_main(role: str, handler) -> None:
    """The child's side of :func:`spawn`: read the job from stdin, ``handler(role, job)``,
    print the result as one JSON line.  Started by an MPI launcher with several processes
    (:func:`minisnn.parallel.launched`), every process runs the handler: rank 0 reads the job
    (the launcher gives stdin to rank 0) and sends it to the others, and prints the result."""
    if _launched_processes() > 1:
        from minisnn.parallel import init

        comm = init()
        job = comm.bcast(json.load(sys.stdin) if comm.rank == 0 else None)
        result = handler(role, job)
        comm.barrier()
        if comm.rank == 0:
            print(json.dumps(result, default=_json_default), flush=True)
        return
    job = json.load(sys.stdin)
    print(json.dumps(handler(role, job), default=_json_default), flush=True)


def _launched_processes() -> int:
    """The number of processes an MPI launcher started, from its environment (1 without one);
    the same test as :func:`minisnn.parallel.launched`, which this module must not import."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE"):
        try:
            return int(os.environ[var])
        except (KeyError, ValueError):
            continue
    return 1
