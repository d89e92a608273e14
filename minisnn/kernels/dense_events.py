"""Event-driven dense layer: add a weight column only where a spike occurred (LEVEL 1b).

The dense product ``y (R, Out) = s (R, In) @ w.T`` of a spike map ``s`` - mostly zeros - can
be computed from its nonzeros alone, as the event-driven convolution does
(:mod:`minisnn.kernels.events`)::

    for each row r, each input i with s[r, i] != 0, in increasing i:
        y[r, :] += s[r, i] * w[:, i]

At LocNet's fc1 (31 616 inputs, 512 outputs, 200 rows of a block) the GEMM does 3.2 G
multiply-adds; at 40 Hz and ``dt = 1 ms`` only ~4 % of them have a nonzero input.

The weights are stored PyTorch's way, ``w (Out, In)``: the column of one input is strided.
The kernel works on tiles: each work item owns :data:`OUTPUTS` outputs and walks the inputs
:data:`INPUTS` at a time.  It copies that tile of ``w`` transposed - each input's
:data:`OUTPUTS` weights one contiguous run - into a small buffer, and then, row by row, adds
the runs of the row's events in that tile while the row's outputs stay in vector registers
(:func:`~minisnn.kernels.simd.add_runs`, the pixel-order convolution's loop).  The tile is
read from ``w`` once and used by every row of the block, so the transposing costs one pass
over ``w`` per call, not one per row; the rows' events are listed once, before the tiles
(:func:`_event_lists`).  Each output value gets its additions in increasing input order, the
order of the reference, so the two agree bit for bit, with 1 thread or many (a work item owns
its outputs).  The weights may change between calls (training writes them in place), so
nothing is kept from one call to the next.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, pjit, prange
from .simd import LANES, MASK_WIDTH, SQUARE, add_runs, nonzero_mask, trailing_zeros, transpose8

#: outputs per work item: the columns of its transposed tile, the run each event adds (two
#: vector chunks of :data:`~minisnn.kernels.simd.LANES`).  At fc1's shape on the protocol's
#: spike maps (200 rows, 31 616 inputs -> 512 outputs, densities 0.037 and 0.155; 2 threads)
#: 32 x 1024 took 8.1 and 19.7 ms; 16 x 2048 8.3 and 22.0, 64 x 512 8.6 and 20.1, 64 x 1024
#: 8.2 and 20.6, 32 x 512 9.1 and 21.0, 32 x 2048 8.3 and 21.0 (``docs/results.md``).
OUTPUTS = 32

#: inputs per tile: ``INPUTS x OUTPUTS`` weights (128 KB of float32), with the rows' outputs
#: of the work item (``R x OUTPUTS``), in the core's L2 cache.
INPUTS = 1024


def dense_events_numpy(s, scale, w, out):
    """Reference: ``out (R, Out)`` <- ``s (R, In) @ w.T`` (``w (Out, In)``, ``s`` times
    ``scale``, a scalar of ``out``'s dtype) computed event by event: each nonzero ``s[r, i]``,
    in increasing ``i``, adds ``(s[r, i] * scale) * w[:, i]`` to ``out[r]``, which starts at
    zero.  ``s`` may be a uint8 map of spike counts (``scale`` the value of one spike) or a
    float map (``scale`` 1).  Returns ``out``."""
    acc = np.zeros(out.shape, out.dtype)
    for r in range(s.shape[0]):
        for i in np.flatnonzero(s[r]):
            acc[r] += (out.dtype.type(s[r, i]) * scale) * w[:, i]
    out[...] = acc
    return out


def dense_events_numba(s, scale, w, out):
    """Numba twin of :func:`dense_events_numpy` (same signature, the same sums bit for bit):
    the events listed per row and tile, then the tiles (see the module docstring)."""
    offs, vals, bounds = _event_lists(s, scale, out, INPUTS, OUTPUTS)
    return _dense_events(w, out, offs, vals, bounds, INPUTS, OUTPUTS)


@pjit
def _event_lists(s, scale, out, inputs, outputs):
    """The events of ``s (R, In)``, row by row in increasing input: ``vals`` their values
    (``s * scale`` in ``out``'s dtype), ``offs`` where their weights start in a transposed tile
    (``(i - tile start) * outputs``), and ``bounds[r, t] .. bounds[r, t + 1]`` the events of
    row ``r`` in tile ``t``.  Read :data:`~minisnn.kernels.simd.MASK_WIDTH` inputs at a time
    as the bits of one integer."""
    R, In = s.shape
    ntiles = (In + inputs - 1) // inputs
    counts = np.zeros(R, np.int64)
    for r in prange(R):
        c = 0
        for i in range(In):
            c += s[r, i] != 0
        counts[r] = c
    starts = np.zeros(R + 1, np.int64)
    for r in range(R):
        starts[r + 1] = starts[r] + counts[r]
    offs = np.empty(starts[R], np.int64)
    vals = np.empty(starts[R], out.dtype)
    bounds = np.empty((R, ntiles + 1), np.int64)
    for r in prange(R):
        row = s[r]
        m = starts[r]
        for t in range(ntiles):
            bounds[r, t] = m
            lo = t * inputs
            hi = min(lo + inputs, In)
            full = hi - (hi - lo) % MASK_WIDTH
            for c0 in range(lo, full, MASK_WIDTH):
                bits = nonzero_mask(row, c0)
                while bits != 0:
                    i = c0 + trailing_zeros(bits)
                    offs[m] = (i - lo) * outputs
                    vals[m] = row[i] * scale
                    m += 1
                    bits &= bits - 1
            for i in range(full, hi):
                if row[i] != 0:
                    offs[m] = (i - lo) * outputs
                    vals[m] = row[i] * scale
                    m += 1
        bounds[r, ntiles] = m
    return offs, vals, bounds


@jit
def _transposed_tile(w, o0, og, i0, ib, tile, outputs):
    """``tile[j * outputs + o] = w[o0 + o, i0 + j]`` for ``o < og``, ``j < ib``: squares of
    8 x 8 by :func:`~minisnn.kernels.simd.transpose8` (each group of eight rows of ``w`` read
    along the rows), the edges one value at a time."""
    In = w.shape[1]
    flat = w.reshape(w.size)
    og8 = og - og % SQUARE
    ib8 = ib - ib % SQUARE
    for ob in range(0, og8, SQUARE):
        for jb in range(0, ib8, SQUARE):
            transpose8(flat, (o0 + ob) * In + i0 + jb, In, tile, jb * outputs + ob, outputs)
    for j in range(ib8, ib):
        for o in range(og8):
            tile[j * outputs + o] = w[o0 + o, i0 + j]
    for j in range(ib):
        for o in range(og8, og):
            tile[j * outputs + o] = w[o0 + o, i0 + j]


@pjit
def _dense_events(w, out, offs, vals, bounds, inputs, outputs):
    """The kernel of :func:`dense_events_numba`: parallel over groups of ``outputs`` outputs,
    each walking the tiles of ``inputs`` inputs in order, transposing the tile, then adding
    each row's events in it (:func:`~minisnn.kernels.simd.add_runs`; the values past its
    whole chunks by a plain loop, in the same order)."""
    R, Out = out.shape
    In = w.shape[1]
    ntiles = bounds.shape[1] - 1
    flat = out.reshape(out.size)
    for g in prange((Out + outputs - 1) // outputs):
        o0 = g * outputs
        og = min(outputs, Out - o0)
        chunks = og // LANES
        tile = np.empty(inputs * outputs, dtype=w.dtype)
        for r in range(R):
            for o in range(og):
                flat[r * Out + o0 + o] = 0
        for t in range(ntiles):
            i0 = t * inputs
            _transposed_tile(w, o0, og, i0, min(inputs, In - i0), tile, outputs)
            for r in range(R):
                b0 = bounds[r, t]
                m = bounds[r, t + 1] - b0
                if m == 0:
                    continue
                a0 = r * Out + o0
                if chunks:
                    add_runs(flat, a0, tile, offs[b0 : b0 + m], vals[b0 : b0 + m], m, chunks)
                for o in range(chunks * LANES, og):
                    total = flat[a0 + o]
                    for e in range(b0, b0 + m):
                        total += vals[e] * tile[offs[e] + o]
                    flat[a0 + o] = total
    return out


def _dense_events_example(rng, R=5, In=2 * INPUTS + 77, Out=OUTPUTS + LANES + 5, density=0.05):
    """Small fresh arguments: a uint8 map of counts over three tiles (the last cut short),
    outputs in a whole group, a group of one chunk and a rest, float32."""
    s = (rng.uniform(size=(R, In)) < density).astype(np.uint8)
    s[1, MASK_WIDTH - 1 : MASK_WIDTH + 2] = 3  # the edges of a mask, several spikes in a step
    s[2, :] = 0                                # a row without events
    s[3, INPUTS - 40 :] = 1                    # every input of a tile's end and the tiles after
    w = rng.standard_normal((Out, In)).astype(np.float32)
    return s, np.float32(1000.0), w, np.empty((R, Out), np.float32)


def _dense_events_float_example(rng):
    """A float64 map of values (not counts; -0.0 is no event), ``Out`` below one chunk."""
    s, _, w, out = _dense_events_example(rng, R=4, In=INPUTS + 33, Out=LANES - 3, density=0.2)
    s = s * rng.uniform(-2.0, 2.0, size=s.shape)
    s[0, 7] = -0.0
    return s, np.float64(1.0), w.astype(np.float64), np.empty(out.shape, np.float64)


from . import register  # noqa: E402

register("dense_events", dense_events_numpy, dense_events_numba, _dense_events_example)
register("dense_events_float", dense_events_numpy, dense_events_numba, _dense_events_float_example)
