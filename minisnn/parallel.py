"""Data parallelism over MPI, behind one small interface (LEVEL 3, beside the training loop).

A *communicator* is what :func:`minisnn.train.fit` and the apps' evaluations ask when they
share work between processes:

* ``size``, ``rank`` - how many processes, and which one this is (0 owns every file);
* :meth:`part` - this process's contiguous share ``[lo, hi)`` of ``n`` items;
* :meth:`allreduce` - a flat buffer summed over the processes, in place (ONE call per
  training step: the gradients and the step's loss terms travel together);
* :meth:`allgather` / :meth:`bcast` - Python objects (evaluation outputs, a checkpoint read by
  rank 0) to every process;
* :meth:`check_same` - proof that the processes hold the same thing (a parameter checksum);
* :meth:`fail` - this process cannot go on: the whole job ends with one line on stderr.

:class:`Single` is the one-process communicator: every method is the identity or does
nothing, and it is what everything uses unless the program was started by ``mpirun`` with
more than one process.  :func:`init` decides that from the launcher's environment variables
*without* importing mpi4py; only when the launcher started more than one process does it
import mpi4py (the ``[mpi]`` extra) and return an :class:`MPIComm`.  :func:`world` returns the
communicator :func:`init` chose (``Single`` before).

Failure handling (:meth:`MPIComm.fail`): MPI offers no clean way out of a job one of whose
processes has stopped: the others wait in their next collective call for ever.  So a process
that cannot go on ends the whole job with ``MPI_Abort``, and exactly one line is printed:

* rank 0 prints ``error: <message>`` and aborts at once;
* any other rank sends its message to rank 0 and waits: rank 0 polls for such messages while
  it waits in every collective call of this module, prints ``error: <message> (rank r of N)``
  and aborts the job.  If rank 0 does not answer within :data:`GRACE_S` seconds (it is busy in
  a long computation, or it hit the same bad input and is about to report it itself), the rank
  prints its line itself and aborts.  Bad input that every rank detects is therefore reported
  once, by rank 0.

A process killed by a signal is the launcher's business: ``mpirun`` (MPICH's Hydra) then ends
the others and says so.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import time

import numpy as np

__all__ = ["Single", "MPIComm", "init", "world", "launched", "RanksDiverged", "digest", "GRACE_S", "MPI_MISSING"]

#: Seconds a collective call waits in a tight loop before it starts to sleep between its checks.
SPIN_S = 0.005

#: Seconds between printing the error line and ``MPI_Abort``: without a pause the launcher
#: (MPICH's Hydra) sometimes dropped the line as it tore the job down (seen once in a loaded run).
ABORT_DELAY_S = 0.5

#: Seconds a rank other than 0 waits for rank 0 to report its error before reporting it itself.
GRACE_S = 10.0

#: The one line printed when ``mpirun`` started several processes but mpi4py is missing.
MPI_MISSING = ("mpirun started {size} processes but mpi4py is not installed: install the MPI extra with "
               "pip install 'minisnn[mpi]' (mpi4py and MPICH from wheels), or run one process without mpirun")

_ERROR_TAG = 0x5EED  # the tag of the message a failing rank sends to rank 0

# the launchers' variables for (rank, size): MPICH/Intel MPI (Hydra, PMI), Open MPI, MVAPICH, PMIx
_LAUNCH_VARS = (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
                ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"), ("PMIX_RANK", "PMIX_SIZE"))


class RanksDiverged(RuntimeError):
    """The processes of a data-parallel run no longer hold the same parameters (or data)."""


def launched() -> tuple[int, int]:
    """``(rank, size)`` of this process as the MPI launcher's environment says, without
    importing MPI; ``(0, 1)`` when no launcher started it."""
    for rank_var, size_var in _LAUNCH_VARS:
        if size_var in os.environ:
            try:
                return int(os.environ.get(rank_var, "0")), int(os.environ[size_var])
            except ValueError:
                continue
    return 0, 1


def digest(*arrays) -> str:
    """A short exact checksum of arrays (their shapes, dtypes and bytes)."""
    h = hashlib.blake2b(digest_size=12)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


def _span(n: int, size: int, rank: int, unit: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous share of ``n`` items in blocks of ``unit`` (blocks split as
    evenly as they go; single items when there are fewer blocks than ranks)."""
    unit = max(1, int(unit))
    blocks = -(-n // unit)
    if blocks < size:
        unit, blocks = 1, n
    lo, hi = blocks * rank // size, blocks * (rank + 1) // size
    return min(lo * unit, n), min(hi * unit, n)


class Single:
    """One process: the identity communicator (every method returns its argument or does nothing)."""

    size = 1
    rank = 0
    local_size = 1
    reduce_seconds = 0.0
    reduce_calls = 0

    def part(self, n: int, unit: int = 1) -> tuple[int, int]:
        return 0, int(n)

    def allreduce(self, buf: np.ndarray) -> np.ndarray:
        return buf

    def allgather(self, obj) -> list:
        return [obj]

    def bcast(self, obj):
        return obj

    def barrier(self) -> None:
        pass

    def check_same(self, token: str, what: str) -> None:
        pass

    def fail(self, message: str, code: int, *, prefix: str = "error: ", grace: float | None = None) -> None:
        print(prefix + message, file=sys.stderr, flush=True)
        sys.exit(code)

    def __repr__(self):
        return "Single()"


class MPIComm:
    """Several processes started by ``mpirun``: the communicator interface over mpi4py's
    ``COMM_WORLD``.  Collective calls are non-blocking requests waited on in a loop that lets
    rank 0 see (and report) another rank's failure while it waits (see the module docstring).

    ``reduce_seconds`` / ``reduce_calls`` add up the wall time spent in :meth:`allreduce`
    (waiting for the slowest rank included) and the number of calls.
    """

    def __init__(self, comm=None):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.size, self.rank = self.comm.Get_size(), self.comm.Get_rank()
        self.local_size = self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()  # processes on this machine
        self.reduce_seconds, self.reduce_calls = 0.0, 0

    def __repr__(self):
        return f"MPIComm(rank {self.rank} of {self.size})"

    # -- sharing work
    def part(self, n: int, unit: int = 1) -> tuple[int, int]:
        """This rank's contiguous share ``[lo, hi)`` of ``n`` items: whole blocks of ``unit``
        items (an evaluation's batches, so each batch is the one a single process simulates)
        when there are at least as many blocks as ranks, single items otherwise."""
        return _span(int(n), self.size, self.rank, unit)

    # -- collective calls
    def _wait(self, request) -> None:
        """Wait for a non-blocking request: a tight loop of ``Test`` for the first
        :data:`SPIN_S` seconds (MPI progresses a non-blocking collective only inside such calls:
        a sleep between them cost a 26 KiB allreduce 0.6 ms instead of 0.04 ms), then sleeps
        growing to 1 ms (the other processes are still computing: leave the cores to them).
        Rank 0 looks for another rank's failure every so often meanwhile."""
        t0, calls, pause = time.perf_counter(), 0, 0.0
        while not request.Test():
            calls += 1
            if calls % 256 == 0 or pause:
                if self.rank == 0:
                    self._poll_errors()
                if pause or time.perf_counter() - t0 > SPIN_S:
                    time.sleep(pause)
                    pause = min(2 * pause or 1e-5, 1e-3)

    def allreduce(self, buf: np.ndarray) -> np.ndarray:
        """Sum ``buf`` (a contiguous array) over all ranks, in place; returns it."""
        t0 = time.perf_counter()
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM))
        self.reduce_seconds += time.perf_counter() - t0
        self.reduce_calls += 1
        return buf

    def _bytes_to_all(self, data: bytes) -> list:
        sizes = np.zeros(self.size, np.int64)
        self._wait(self.comm.Iallgather(np.array([len(data)], np.int64), sizes))
        out = np.empty(int(sizes.sum()), np.uint8)
        displ = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._wait(self.comm.Iallgatherv(np.frombuffer(data, np.uint8),
                                         [out, sizes.tolist(), displ.tolist(), self.MPI.BYTE]))
        return [out[d : d + s].tobytes() for d, s in zip(displ, sizes)]

    def allgather(self, obj) -> list:
        """``[obj of rank 0, obj of rank 1, ...]`` on every rank (pickled)."""
        return [pickle.loads(b) for b in self._bytes_to_all(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))]

    def bcast(self, obj):
        """Rank 0's ``obj`` on every rank (the others' argument is ignored)."""
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL) if self.rank == 0 else b""
        size = np.array([len(data)], np.int64)
        self._wait(self.comm.Ibcast(size, root=0))
        buf = np.frombuffer(data, np.uint8).copy() if self.rank == 0 else np.empty(int(size[0]), np.uint8)
        self._wait(self.comm.Ibcast(buf, root=0))
        return obj if self.rank == 0 else pickle.loads(buf.tobytes())

    def barrier(self) -> None:
        self._wait(self.comm.Ibarrier())

    def check_same(self, token: str, what: str) -> None:
        """Raise :class:`RanksDiverged` on every rank unless every rank passed the same ``token``."""
        tokens = self.allgather(token)
        if len(set(tokens)) > 1:
            differ = [r for r, t in enumerate(tokens) if t != tokens[0]]
            raise RanksDiverged(f"the {self.size} MPI processes no longer agree on {what}: rank"
                                f"{'s' if len(differ) > 1 else ''} {', '.join(map(str, differ))} differ"
                                f"{'s' if len(differ) == 1 else ''} from rank 0 (checksums {tokens[0]} and "
                                f"{tokens[differ[0]]})")

    # -- failure
    def _poll_errors(self) -> None:
        status = self.MPI.Status()
        if self.comm.Iprobe(source=self.MPI.ANY_SOURCE, tag=_ERROR_TAG, status=status):
            code, prefix, message = self.comm.recv(source=status.Get_source(), tag=_ERROR_TAG)
            self._abort(f"{prefix}{message} (rank {status.Get_source()} of {self.size})", code)

    def _abort(self, line: str, code: int) -> None:
        sys.stdout.flush()
        sys.stderr.write(line + "\n")  # one write: a launcher that labels lines (-prepend-rank) sees one line
        sys.stderr.flush()
        time.sleep(ABORT_DELAY_S)  # let the launcher pass the line on before MPI_Abort tears its pipes down
        self.comm.Abort(int(code) or 1)

    def fail(self, message: str, code: int, *, prefix: str = "error: ", grace: float | None = None) -> None:
        """End the whole job with one line, ``prefix + message`` (see the module docstring);
        never returns."""
        if self.rank == 0:
            self._abort(prefix + message, code)
        grace = GRACE_S if grace is None else grace
        try:
            self._sent = self.comm.isend((int(code), prefix, message), dest=0, tag=_ERROR_TAG)
        except Exception:  # noqa: BLE001 - the line below still reports it
            grace = 0.0
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:  # rank 0 prints it and aborts the job (this process with it)
            time.sleep(0.05)
        self._abort(f"{prefix}{message} (rank {self.rank} of {self.size})", code)


_WORLD: Single | MPIComm = Single()


def world():
    """The communicator :func:`init` chose (:class:`Single` until then)."""
    return _WORLD


def init():
    """Choose the communicator of this process: an :class:`MPIComm` when an MPI launcher
    started more than one process (raises ImportError with :data:`MPI_MISSING` when mpi4py
    is missing), :class:`Single` otherwise (mpi4py is then never imported)."""
    global _WORLD
    if isinstance(_WORLD, MPIComm):
        return _WORLD
    _, size = launched()
    if size <= 1:
        return _WORLD
    try:
        from mpi4py import MPI  # noqa: F401 - initializes MPI
    except ImportError:
        raise ImportError(MPI_MISSING.format(size=size)) from None
    _WORLD = MPIComm()
    return _WORLD
