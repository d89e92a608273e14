"""Event-driven convolution: add weights only where a spike occurred (LEVEL 1b).

A convolution of a spike map ``s (N, C, H, W)`` - mostly zeros - can be computed the other way
round from im2col + GEMM: instead of every output summing its whole receptive field, every
*nonzero input* adds its value times the weights it touches onto the outputs it reaches::

    for each (n, c, y, x) with s[n, c, y, x] != 0, each tap (ky, kx) with
        oy = (y + ph - ky) / sh  and  ox = (x + pw - kx) / sw  whole numbers inside the output:
            y[n, :, oy, ox] += s[n, c, y, x] * w[:, c, ky, kx]

The work is proportional to the number of spikes, not to the size of the input.  This is
the same cross-correlation as :func:`minisnn.ops.conv.conv2d_forward` (PyTorch semantics,
no bias here); only the order of the additions differs, so results agree to rounding.

The spike map may also be a ``uint8`` map of spike *counts*, with ``scale`` the value of one
spike (``amplitude / dt``): a quarter of the memory of a float32 map to write and to scan,
and each event adds ``(count * scale) * w`` - the same products as the float map
``count * scale`` would give.  For a float map ``scale`` is 1.

The weights are passed pre-arranged as ``wt (C, kh, kw, Cout)`` so that one tap of one input
channel is a contiguous row of ``Cout`` values.  The kernel goes one step further: the taps of
one event that land on one output row reach *neighbouring* output columns (``ox`` and ``ox + 1``
for ``kx`` and ``kx - sw``), so with the taps of each column residue ``(x + pw) % sw`` stacked
in descending ``kx`` (:func:`tap_runs`) they are **one contiguous run** of up to ``kw x Cout``
values in the output row and in the weights: a spike costs one vector loop per kernel row
instead of ``kw`` short ones (the loop set-up is most of the cost of a short one: 1.16-1.23x
over the tap-by-tap kernel on LocNet-shaped layers, ``docs/results.md``).  Every output value still receives its
additions in the reference's order, so the two agree bit for bit.  The Numba kernel is
parallel over the ``N`` images (each owns its output; the result does not depend on the
thread count) and walks each image row by row, so the output rows it updates stay in cache.

Two kernels, two orders of the same additions:

* **channel order** (:func:`conv_events_numba`): channel by channel, each event's runs added
  at once.  Every event loads and stores its outputs again: when a pixel holds several spikes,
  the stores are the limit (about 5 cycles per 16 values, wherever the outputs are cached);
* **pixel order** (:func:`conv_events_pixels_numba`): the events of an input row are first
  sorted into its columns, then each pixel adds the runs of all its spiking channels while its
  outputs stay in vector registers (:func:`minisnn.kernels.simd.add_runs`), stored once.

The sorting costs more than it saves for pixels of one spike, so ``simulate`` chooses per layer
from the expected spikes per input pixel (``PIXEL_ORDER_EVENTS``).  A map stored channels last,
``(N, H, W, C)`` (``in_last``), needs no sorting at all: a pixel's channels are contiguous, so
each row is one contiguous scan and the events come out in pixel order; and either kernel can
leave its sums channels last (``out_last``), where they are built, instead of transposing
them.  ``simulate`` keeps the neurons between two such convolutions channels last
(``CHANNELS_LAST``), and then takes the pixel order from ``PIXEL_ORDER_CHANNELS`` input channels
up whatever the density.  Whether events beat im2col + GEMM at all depends on the spike
density: see :mod:`minisnn.simulate` (``path="auto"``), ``benchmarks/bench_events.py`` and
``benchmarks/bench_snn.py``.
"""

from __future__ import annotations

import numpy as np

from ._jit import inline_jit, jit, pjit, prange
from .simd import LANES, MASK_WIDTH, add_runs, add_runs2, nonzero_mask, trailing_zeros


def _output_rows(y, kh, sh, ph, Ho):
    """Reference helper: ``(ky, oy)`` for each kernel row ``ky`` by which input row ``y``
    reaches output row ``oy``."""
    return [(ky, (y + ph - ky) // sh) for ky in range(kh)
            if (y + ph - ky) % sh == 0 and 0 <= (y + ph - ky) // sh < Ho]


def _add_event(acc_row, v, w_row, x, sw, pw):
    """Reference helper: an event of value ``v`` in input column ``x`` adds ``v * w_row[kx]`` to
    each output ``acc_row[ox]`` (``(Wo, Cout)``, channels last) that its taps ``kx`` reach."""
    for kx in range(w_row.shape[0]):
        ox, rx = divmod(x + pw - kx, sw)
        if rx == 0 and 0 <= ox < acc_row.shape[0]:
            acc_row[ox] += v * w_row[kx]


def _reference(s, scale, wt, sh, sw, ph, pw, Ho, Wo, out, axes, in_last=False, out_last=False):
    """The two references below: every event of ``s[n]``, taken in the order of ``np.argwhere``
    on ``s[n]`` transposed by ``axes``, adds all its taps.  An output value is reached by one tap
    of each event, so it gets its additions in that event order.  ``in_last`` / ``out_last``:
    ``s`` is ``(N, H, W, C)`` / ``out`` is ``(N, Ho, Wo, Cout)`` (channels last)."""
    if in_last:
        s = s.transpose(0, 3, 1, 2)
    N, C = s.shape[:2]
    _, kh, _, Cout = wt.shape
    acc = np.zeros((N, Ho, Wo, Cout), dtype=out.dtype)  # channels last: one tap = one row
    for n in range(N):
        for idx in np.argwhere(s[n].transpose(axes)):
            c, y, x = idx[np.argsort(axes)]  # back to (channel, row, column)
            v = out.dtype.type(s[n, c, y, x]) * scale
            for ky, oy in _output_rows(y, kh, sh, ph, Ho):
                _add_event(acc[n, oy], v, wt[c, ky], x, sw, pw)
    out[...] = acc if out_last else acc.transpose(0, 3, 1, 2)
    return out


def conv_events_numpy(s, scale, wt, sh, sw, ph, pw, Ho, Wo, out, out_last=False):
    """Reference: ``out (N, Cout, Ho, Wo)`` <- the convolution of ``s (N, C, H, W)`` (times
    ``scale``, a scalar of ``out``'s dtype) computed spike by spike, in the order (row ``y``,
    channel ``c``, column ``x``), each event adding all its taps: each output value gets its
    additions in the order the kernel gives them (it walks the tap rows ``ky`` of an event's
    row before its columns, but an output value is reached by one ``ky`` per input row).
    ``wt`` is ``(C, kh, kw, Cout)``.  ``out_last``: ``out`` is ``(N, Ho, Wo, Cout)`` instead
    (channels last).  Returns ``out``."""
    return _reference(s, scale, wt, sh, sw, ph, pw, Ho, Wo, out, (1, 0, 2), out_last=out_last)


def conv_events_pixels_numpy(s, scale, wt, sh, sw, ph, pw, Ho, Wo, out, in_last=False, out_last=False):
    """Reference: ``out (N, Cout, Ho, Wo)`` <- the convolution of ``s (N, C, H, W)`` (times
    ``scale``, a scalar of ``out``'s dtype) computed spike by spike, pixel by pixel: in the order
    (row ``y``, column ``x``, channel ``c``), each event adding all its taps, as from the kernel.
    ``wt`` is ``(C, kh, kw, Cout)``.  ``in_last`` / ``out_last``: ``s`` is ``(N, H, W, C)`` /
    ``out`` is ``(N, Ho, Wo, Cout)`` (channels last; the same sums).  Returns ``out``."""
    return _reference(s, scale, wt, sh, sw, ph, pw, Ho, Wo, out, (1, 2, 0), in_last, out_last)


def tap_runs(wt, sw, pw, W, Wo):
    """The taps of every input column as one run (see the module docstring).

    Returns ``runs (sw, C, kh, kw * Cout)``: for each residue ``r`` the weight rows of the taps
    ``kx = r, r + sw, ...`` in descending ``kx`` (ascending output column), zero-padded; and per
    input column ``x`` (arrays of length ``W``): its residue, the first output column its run
    reaches inside ``[0, Wo)``, the run's length in values (0: no tap reaches the output) and
    where the run starts in ``runs``, both clipped at the output's edges."""
    C, kh, kw, Cout = wt.shape
    runs = np.zeros((sw, C, kh, kw * Cout), wt.dtype)
    ntap = np.zeros(sw, np.int64)
    for r in range(sw):
        kxs = range(r, kw, sw)[::-1]
        ntap[r] = len(kxs)
        for j, kx in enumerate(kxs):
            runs[r, :, :, j * Cout : (j + 1) * Cout] = wt[:, :, kx, :]
    x = np.arange(W)
    res = (x + pw) % sw
    hi = (x + pw - res) // sw            # the output column of tap kx = r, the run's last
    lo = hi - ntap[res] + 1              # of its largest kx, the run's first
    first, last = np.maximum(lo, 0), np.minimum(hi, Wo - 1)
    length = np.where(last >= first, (last - first + 1) * Cout, 0)
    return runs, res, first, length, (first - lo) * Cout


def conv_events_numba(s, scale, wt, sh, sw, ph, pw, Ho, Wo, out, out_last=False):
    """Numba twin of :func:`conv_events_numpy` (same signature, same additions in the same
    order per output value): the taps arranged as runs (:func:`tap_runs`), then the kernel."""
    runs, res, first, length, offset = tap_runs(wt, sw, pw, s.shape[3], Wo)
    return _conv_events_runs(s, scale, runs, res, first, length, offset, wt.shape[3], sh, ph, Ho, Wo, out,
                             bool(out_last))


@jit
def _reaching(y, kh, sh, ph, Ho, Wo, kys, rows):
    """The kernel rows ``kys[:nky]`` by which input row ``y`` reaches an output row, and each
    one's first output value ``rows[:nky]`` (in a channels-last image); returns ``nky``."""
    nky = 0
    for ky in range(kh):
        oyn = y + ph - ky
        if oyn >= 0 and oyn % sh == 0 and oyn // sh < Ho:
            kys[nky] = ky
            rows[nky] = (oyn // sh) * Wo
            nky += 1
    return nky


@jit
def _events(row, nz):
    """The columns of ``row`` that hold an event, into ``nz[:m]`` in order; returns ``m``.
    Branch-free: one pass over the row, however many taps read it.  (From a vector compare's
    mask, as a channels-last pixel is read, the row scan was no faster on the channels-first
    kernels: 0.94-1.07x in ``benchmarks/bench_events.py``.)"""
    m = 0
    for x in range(row.shape[0]):
        nz[m] = x
        m += row[x] != 0
    return m


@jit
def _accumulator(out, n, out_last):
    """Where image ``n``'s sums go, channels last, zeroed: ``out[n]`` itself if ``out`` is
    channels last, else a scratch array that :func:`_finish` transposes into ``out[n]``."""
    if out_last:
        acc = out[n].reshape(out[n].size)
        acc[:] = 0
        return acc
    return np.zeros(out[n].size, dtype=out.dtype)


@jit
def _finish(acc, out, n, out_last):
    """Image ``n``'s sums into ``out[n]`` (nothing to do if they are already there)."""
    if not out_last:
        Cout, Ho, Wo = out.shape[1:]
        _to_nchw(acc.reshape(Ho, Wo, Cout), out[n])


@jit
def _to_nchw(acc3, out):
    """One image from channels last ``(Ho, Wo, Cout)`` to ``out (Cout, Ho, Wo)``, writing along
    the output rows."""
    Ho, Wo, Cout = acc3.shape
    for k in range(Cout):
        for oy in range(Ho):
            for ox in range(Wo):
                out[k, oy, ox] = acc3[oy, ox, k]


@pjit
def _conv_events_runs(s, scale, runs, res, first, length, offset, Cout, sh, ph, Ho, Wo, out, out_last):
    """The kernel of :func:`conv_events_numba`.  Each input row is scanned once for its events
    (their columns listed in ``nz``) and the kernel rows that reach an output row listed once;
    each event then adds one run per such kernel row."""
    N, C, H, W = s.shape
    kh = runs.shape[2]
    for n in prange(N):
        acc = _accumulator(out, n, out_last)  # channels last: a run is contiguous
        nz = np.empty(W, dtype=np.int64)  # the columns of one input row that hold an event
        kys = np.empty(kh, dtype=np.int64)  # the kernel rows that reach an output row ...
        rows = np.empty(kh, dtype=np.int64)  # ... and its first output value
        for y in range(H):
            nky = _reaching(y, kh, sh, ph, Ho, Wo, kys, rows)
            if nky == 0:
                continue
            for c in range(C):
                m = _events(s[n, c, y], nz)
                for j in range(m):
                    x = nz[j]
                    L = length[x]
                    v = s[n, c, y, x] * scale
                    w0 = offset[x]
                    for q in range(nky):
                        a0 = (rows[q] + first[x]) * Cout
                        a = acc[a0 : a0 + L]
                        r = runs[res[x], c, kys[q], w0 : w0 + L]
                        for k in range(L):
                            a[k] += v * r[k]
        _finish(acc, out, n, out_last)
    return out


def conv_events_pixels_numba(s, scale, wt, sh, sw, ph, pw, Ho, Wo, out, in_last=False, out_last=False):
    """Numba twin of :func:`conv_events_pixels_numpy` (same signature, same additions in the same
    order per output value): the taps arranged as runs (:func:`tap_runs`), then the kernel."""
    runs, res, first, length, offset = tap_runs(wt, sw, pw, s.shape[2 if in_last else 3], Wo)
    return _conv_events_pixels(s, scale, runs, res, first, length, offset, wt.shape[3], sh, ph, Ho, Wo, out,
                               bool(in_last), bool(out_last))


@pjit
def _conv_events_pixels(s, scale, runs, res, first, length, offset, Cout, sh, ph, Ho, Wo, out, in_last, out_last):
    """The kernel of :func:`conv_events_pixels_numba`.  Each input row is scanned once per channel for
    its events, which are sorted into the row's columns (``channels[x, :count[x]]``, in channel
    order); then each pixel with events adds, per kernel row that reaches an output row, the
    runs of all its events at once (:func:`~minisnn.kernels.simd.add_runs`: the run stays in
    vector registers while the events' weight rows are added, and is stored once).  A channels-
    last map (``in_last``) needs no sorting: a pixel's channels are contiguous, read
    :data:`~minisnn.kernels.simd.MASK_WIDTH` at a time as the bits of one integer
    (:func:`~minisnn.kernels.simd.nonzero_mask`), one step per set bit.  At ~40 Hz a pixel of
    32 channels holds 1.3 events in a step; the scan channel by channel (:func:`_events`) spent
    a step on each of the 32.  Its events are added (:func:`_add_pixel`) as soon as they are
    listed, while the pixel and its list are in registers and L1: listing a whole row first,
    then adding, ran 0.92x at ~40 Hz and 0.95x at ~150 Hz.  In the channels-first layout the
    columns with events are listed first (``busy``), so the loop that adds their runs visits
    only them.  Together 1.3x on the protocol net's event convolutions, at ~40 and at ~150 Hz
    (``docs/results.md``).  A pixel that reaches two or three output rows adds the first two
    runs in one pass over its events (:func:`~minisnn.kernels.simd.add_runs2`): 1.1x more."""
    if in_last:
        N, H, W, C = s.shape
    else:
        N, C, H, W = s.shape
    kh = runs.shape[2]
    LW = runs.shape[3]
    weights = runs.ravel()  # runs[r, c, ky, j] = weights[((r * C + c) * kh + ky) * LW + j]
    for n in prange(N):
        acc = _accumulator(out, n, out_last)  # channels last: a run is contiguous
        offs = np.empty(C, dtype=np.int64)  # where each event's run starts in weights
        kys = np.empty(kh, dtype=np.int64)  # the kernel rows that reach an output row ...
        rows = np.empty(kh, dtype=np.int64)  # ... and its first output value
        chan = np.empty(C, dtype=np.int64)  # a channels-last pixel's events: their channels ...
        vals = np.empty(C, dtype=out.dtype)  # ... and values
        Ws = 0 if in_last else W  # a channels-first row's events, sorted into its columns:
        nz = np.empty(Ws, dtype=np.int64)  # the columns of one channel's row that hold an event
        count = np.zeros(Ws, dtype=np.int64)  # events per column ...
        channels = np.empty((Ws, C), dtype=np.int64)  # ... their channels, in order ...
        values = np.empty((Ws, C), dtype=out.dtype)  # ... and their values
        busy = np.empty(Ws, dtype=np.int64)  # the columns with events, in order
        full = C - C % MASK_WIDTH  # a channels-last pixel's channels read by masks
        for y in range(H):
            nky = _reaching(y, kh, sh, ph, Ho, Wo, kys, rows)
            if nky == 0:
                continue
            if in_last:  # each pixel's events added as soon as they are listed
                for x in range(W):  # inline: a function of its own for the pixel ran 0.8x as fast
                    pixel = s[n, y, x]
                    m = 0
                    for c0 in range(0, full, MASK_WIDTH):
                        bits = nonzero_mask(pixel, c0)
                        while bits != 0:
                            c = c0 + trailing_zeros(bits)
                            chan[m] = c
                            vals[m] = pixel[c] * scale
                            m += 1
                            bits &= bits - 1
                    if full < C:  # the channels past the last mask, as a row: _events
                        m0 = m
                        m += _events(pixel[full:], chan[m0:])
                        for i in range(m0, m):
                            chan[i] += full
                            vals[i] = pixel[chan[i]] * scale
                    if m == 0:
                        continue
                    _add_pixel(acc, weights, chan, vals, m, x, C, kys, rows, nky, res, first, length, offset, kh, LW,
                               Cout, offs)
                continue
            count[:] = 0
            for c in range(C):
                m = _events(s[n, c, y], nz)
                for j in range(m):
                    x = nz[j]
                    e = count[x]
                    channels[x, e] = c
                    values[x, e] = s[n, c, y, x] * scale
                    count[x] = e + 1
            nbusy = 0
            for x in range(W):  # branch-free: a test per column in the loop below mispredicted
                busy[nbusy] = x
                nbusy += count[x] != 0
            for b in range(nbusy):
                x = busy[b]
                _add_pixel(acc, weights, channels[x], values[x], count[x], x, C, kys, rows, nky, res, first, length,
                           offset, kh, LW, Cout, offs)
        _finish(acc, out, n, out_last)
    return out


@inline_jit
def _add_pixel(acc, weights, channels, values, m, x, C, kys, rows, nky, res, first, length, offset, kh, LW, Cout,
               offs):
    """The runs of the ``m`` events of input pixel ``x`` (channels ``channels[:m]``, values
    ``values[:m]``) into ``acc``, per kernel row that reaches an output row
    (:func:`_conv_events_pixels`); ``offs`` is scratch."""
    L = length[x]
    chunks = L // LANES
    first_run = res[x] * C
    # (a pixel of one event too: a plain loop over its run, without add_runs, ran 0.99x)
    # (two branches, each listing offs itself: with the listing before the branch, 0.95x)
    if nky >= 2:  # the first two kernel rows in one pass over the events, then the others
        start = kys[0] * LW + offset[x]
        for i in range(m):
            offs[i] = (first_run + channels[i]) * kh * LW + start
        add_runs2(acc, (rows[0] + first[x]) * Cout, (rows[1] + first[x]) * Cout, weights, offs,
                  (kys[1] - kys[0]) * LW, values, m, chunks)
        for q in range(2, nky):  # (offs moved on to the row's weights)
            shift = (kys[q] - kys[q - 1 if q > 2 else 0]) * LW
            for i in range(m):
                offs[i] += shift
            add_runs(acc, (rows[q] + first[x]) * Cout, weights, offs, values, m, chunks)
    else:
        start = kys[0] * LW + offset[x]
        for i in range(m):
            offs[i] = (first_run + channels[i]) * kh * LW + start
        add_runs(acc, (rows[0] + first[x]) * Cout, weights, offs, values, m, chunks)
    if chunks * LANES < L:
        _rest_of_runs(acc, weights, values, channels, m, first_run, kys, rows, nky, first[x], offset[x], kh, LW,
                      Cout, chunks * LANES, L)


@jit
def _rest_of_runs(acc, weights, values, channels, m, first_run, kys, rows, nky, first, offset, kh, LW, Cout, k0, L):
    """The values ``k0 .. L - 1`` of a pixel's runs (what :func:`~minisnn.kernels.simd.add_runs`
    leaves when ``Cout`` is not a multiple of its chunk), added in the events' order."""
    for q in range(nky):
        a0 = (rows[q] + first) * Cout
        start = kys[q] * LW + offset
        for k in range(k0, L):
            total = acc[a0 + k]
            for i in range(m):
                total += values[i] * weights[(first_run + channels[i]) * kh * LW + start + k]
            acc[a0 + k] = total


def _conv_events_example(rng):
    """Small fresh arguments: a sparse spike map, stride 2 x 1, padding 1 x 0."""
    N, C, H, W, Cout, kh, kw = 3, 4, 9, 8, 5, 3, 2
    sh, sw, ph, pw = 2, 1, 1, 0
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    s = (rng.uniform(size=(N, C, H, W)) < 0.2) * 1000.0
    s[0, 1, 2, 3] = -3.5  # any nonzero value is an event, not only spikes
    wt = rng.standard_normal((C, kh, kw, Cout))
    return s, 1.0, wt, sh, sw, ph, pw, Ho, Wo, np.empty((N, Cout, Ho, Wo))


def _conv_events_counts_example(rng):
    """:func:`_conv_events_example` with a uint8 map of spike counts and float32 weights."""
    s, _, wt, *geometry, out = _conv_events_example(rng)
    counts = (s != 0).astype(np.uint8)
    counts[1, 2, 3, 4] = 3  # several spikes in one step (e.g. SpikingRectifiedLinear)
    return counts, np.float32(1000.0), wt.astype(np.float32), *geometry, np.empty(out.shape, np.float32)


def _conv_events_geometry_example(rng, N, C, H, W, Cout, kh, kw, sh, sw, ph, pw, density=0.3):
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    s = (rng.uniform(size=(N, C, H, W)) < density).astype(np.uint8)
    s[:, :, :, 0] = 1  # events in the edge columns, whose runs are clipped
    s[:, :, :, -1] = 2
    wt = rng.standard_normal((C, kh, kw, Cout)).astype(np.float32)
    return s, np.float32(100.0), wt, sh, sw, ph, pw, Ho, Wo, np.empty((N, Cout, Ho, Wo), np.float32)


def _conv_events_stride2_example(rng):
    """3x3, stride 2, padding 1 (LocNet's downsampling layers): runs of one and of two taps."""
    return _conv_events_geometry_example(rng, 2, 3, 10, 11, 7, 3, 3, 2, 2, 1, 1)


def _conv_events_sparse_taps_example(rng):
    """A stride wider than the kernel (``sw = 3 > kw = 2``): one residue has no tap at all."""
    return _conv_events_geometry_example(rng, 2, 2, 7, 13, 5, 2, 2, 1, 3, 0, 1)


def _conv_events_long_rows_example(rng):
    """Rows of 70 columns at density 0.1, stride 2 x 1, one row full and events around column
    32: the channels-first kernels' row scan on rows longer than the other examples'."""
    s, *rest = _conv_events_geometry_example(rng, 2, 3, 5, 70, 9, 3, 3, 2, 1, 1, 1, density=0.1)
    s[0, 1, 2, 31:34] = 3  # the edges of the masks and the first of the rest
    s[1, 2, 3, :] = 1      # a full row
    return (s, *rest)


def _conv_events_tall_example(rng):
    """A 5 x 3 kernel (up to five kernel rows reach an output row from one input row: the
    rows past the first two) with Cout = 20 (a chunk and a rest of 4), density 0.4."""
    return _conv_events_geometry_example(rng, 2, 6, 9, 10, 20, 5, 3, 1, 2, 2, 1, density=0.4)


def _conv_events_wide_example(rng):
    """Cout = 40 (two vector chunks and a rest of 8), 6 channels at density 0.5: pixels with
    one and with several events."""
    return _conv_events_geometry_example(rng, 2, 6, 8, 9, 40, 3, 3, 1, 1, 1, 1, density=0.5)


def _conv_events_wide64_example(rng):
    """:func:`_conv_events_wide_example` in float64 (vector chunks of 16 doubles)."""
    s, scale, wt, *geometry, out = _conv_events_wide_example(rng)
    return s, np.float64(scale), wt.astype(np.float64), *geometry, np.empty(out.shape, np.float64)


def _channels_last(args, in_last, out_last):
    """An example's arguments with the map and/or the output channels last (and the flags)."""
    s, scale, wt, sh, sw, ph, pw, Ho, Wo, out = args
    if in_last:
        s = np.ascontiguousarray(s.transpose(0, 2, 3, 1))
    if out_last:
        out = np.empty((out.shape[0], Ho, Wo, out.shape[1]), out.dtype)
    return s, scale, wt, sh, sw, ph, pw, Ho, Wo, out, in_last, out_last


def _conv_events_out_last_example(rng):
    """:func:`_conv_events_stride2_example` into a channels-last output."""
    return _channels_last(_conv_events_stride2_example(rng), False, True)[:10] + (True,)


def _conv_events_pixels_last_example(rng):
    """:func:`_conv_events_wide_example` channels last in and out (one and several events a pixel)."""
    return _channels_last(_conv_events_wide_example(rng), True, True)


def _conv_events_pixels_in_last_example(rng):
    """A channels-last map of counts (stride 2 x 1) into an ``(N, Cout, Ho, Wo)`` output."""
    return _channels_last(_conv_events_counts_example(rng), True, False)


def _conv_events_pixels_out_last_example(rng):
    """:func:`_conv_events_stride2_example` from ``(N, C, H, W)`` into a channels-last output."""
    return _channels_last(_conv_events_stride2_example(rng), False, True)


def _conv_events_pixels_masks_example(rng):
    """72 channels last (two :data:`~minisnn.kernels.simd.MASK_WIDTH` masks and a rest of 8)
    at density 0.1, counts up to 3, channels last in and out: pixels of none, one and several
    events, in every part of the pixel."""
    s, scale, wt, *geometry, out = _conv_events_geometry_example(rng, 2, 72, 6, 7, 20, 3, 3, 1, 1, 1, 1,
                                                                 density=0.1)
    s[0, 31:34, 2, 3] = 3  # the edges of the masks and the first of the rest
    s[1, :, 4, 5] = 1      # every channel of one pixel
    return _channels_last((s, scale, wt, *geometry, out), True, True)


def _conv_events_pixels_masks_float_example(rng):
    """:func:`_conv_events_pixels_masks_example` as a float32 map (values, not counts; -0.0 is
    no event) into an ``(N, Cout, Ho, Wo)`` output, stride 2."""
    s, scale, wt, *geometry, out = _conv_events_geometry_example(rng, 2, 64, 7, 9, 12, 3, 3, 2, 2, 1, 1,
                                                                 density=0.1)
    s = s.astype(np.float32) * rng.uniform(0.5, 2.0, size=s.shape).astype(np.float32)
    s[0, 5, 1, 1] = -0.0
    return _channels_last((s, np.float32(1.0), wt, *geometry, out), True, False)


from . import register  # noqa: E402

for suffix, example in [("", _conv_events_example), ("_stride2", _conv_events_stride2_example),
                        ("_sparse_taps", _conv_events_sparse_taps_example), ("_counts", _conv_events_counts_example),
                        ("_out_last", _conv_events_out_last_example), ("_long_rows", _conv_events_long_rows_example)]:
    register("conv_events" + suffix, conv_events_numpy, conv_events_numba, example)
for suffix, example in [("", _conv_events_example), ("_stride2", _conv_events_stride2_example),
                        ("_sparse_taps", _conv_events_sparse_taps_example), ("_counts", _conv_events_counts_example),
                        ("_wide", _conv_events_wide_example), ("_wide64", _conv_events_wide64_example),
                        ("_tall", _conv_events_tall_example),
                        ("_last", _conv_events_pixels_last_example), ("_in_last", _conv_events_pixels_in_last_example),
                        ("_out_last", _conv_events_pixels_out_last_example),
                        ("_long_rows", _conv_events_long_rows_example), ("_masks", _conv_events_pixels_masks_example),
                        ("_masks_float", _conv_events_pixels_masks_float_example)]:
    register("conv_events_pixels" + suffix, conv_events_pixels_numpy, conv_events_pixels_numba, example)
