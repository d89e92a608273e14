"""Explicit vector code for one loop LLVM cannot be told enough about (LEVEL 1b).

The event-driven convolution (:mod:`minisnn.kernels.events`) adds, for every input pixel with
spikes, the weight rows of its spiking channels to one run of output values::

    for each chunk of 16 values of the run:
        total = acc[chunk]
        for each event i at the pixel:      # its channels, in order
            total += vals[i] * w[offs[i] + chunk]
        acc[chunk] = total

Written as Numba loops, the sum over events is the inner loop over a short, varying count and
the vectoriser would have to vectorise the *outer* loop over the chunk; it only vectorises
innermost loops, and the other order (events outer) stores the run back after every event,
which made the store bandwidth the limit.  :func:`add_runs` is that loop nest in LLVM IR
(through Numba's ``@intrinsic``): each chunk is one vector register (``<16 x float>``: one
AVX-512 register, two AVX2 ones), loaded once, stored once.  Up to :data:`GROUP` chunks are
summed side by side in one pass over the events: each chunk's sum is a chain of dependent
additions, and independent chains in one loop overlap (1.13-1.22x on the stride-1 layers of
the protocol net, whose runs are 6-24 chunks long; no change on the shorter stride-2 runs).
A run with a single event takes a copy of the passes without the loop over the events, chosen
once per call: a loop of a varying one, two or three trips ends in a branch the predictor
misses, once per pass.  At ~40 Hz half of the busy pixels of a 32-channel layer hold one
event; the protocol net's five event convolutions ran 1.026x faster on their best calls and
1.07x on their medians, and within 1.5 % at ~150 Hz (``docs/results.md``).
The arithmetic is the plain one - a multiply, then an add, in the events' order, no fused
multiply-add - so every value is what the scalar loop gives, bit for bit
(:func:`add_runs_python` is that loop; ``tests/test_simd.py`` compares the two exactly, and
the kernel tests the convolution built on it against its NumPy reference).

:func:`add_runs2` does the same for the two runs of one pixel that reach two output rows
(two kernel rows; their weights ``delta`` apart): one pass over the events for both, so the
call's fixed cost - loading and storing the runs, setting up the loops, and the mispredicted
exit of the loop over a varying number of events - is paid once per pixel, not once per row.
A pixel of a stride-2 layer has 1.3-5 events at ~40-150 Hz, so that cost is a good part of
its work (``docs/results.md``, "Issue 20, eighth session").

:func:`nonzero_mask` is the other loop: which of 32 consecutive values are nonzero, as the
bits of one integer (a vector compare and its mask: ``vpcmpeqb`` + ``vpmovmskb`` for uint8
with AVX2).  The event kernels read a channels-last pixel's events from it, one set bit each
(:func:`trailing_zeros`), instead of testing every channel.

:func:`transpose8` moves an 8 x 8 square of values transposed: eight row loads, the shuffles
of a register transpose, eight row stores.  The event-driven dense layer
(:mod:`minisnn.kernels.dense_events`) copies its weight tiles that way; as a Numba loop, one
value at a time, the copy took 3.2x the time of reading the weights (9.2 against 2.9 ms for
LocNet's fc1, ``docs/results.md``).
"""

from __future__ import annotations

from ._jit import COMPILED

#: values per chunk: one vector register of float32 with AVX-512
LANES = 16

#: chunks summed side by side in one pass over the events (see :func:`add_runs`;
#: :func:`add_runs2` sums ``GROUP // 2`` of each of its two runs)
GROUP = 4


def add_runs_python(acc, a0, w, offs, vals, m, nchunks):
    """The reference of :func:`add_runs`: ``acc[a0 + j] += vals[i] * w[offs[i] + j]`` for
    ``i < m`` in order, for each ``j < nchunks * LANES``."""
    for j in range(nchunks * LANES):
        total = acc[a0 + j]
        for i in range(m):
            total += vals[i] * w[offs[i] + j]
        acc[a0 + j] = total


def add_runs2_python(acc, a0, a1, w, offs, delta, vals, m, nchunks):
    """The reference of :func:`add_runs2`: :func:`add_runs_python` at ``a0`` with the weights at
    ``offs``, then at ``a1`` with the weights at ``offs + delta`` (two runs that do not overlap)."""
    add_runs_python(acc, a0, w, offs, vals, m, nchunks)
    add_runs_python(acc, a1, w, offs + delta, vals, m, nchunks)


#: values per :func:`nonzero_mask`
MASK_WIDTH = 32

#: the side of the square :func:`transpose8` moves
SQUARE = 8


def transpose8_python(src, s0, sstride, dst, d0, dstride):
    """The reference of :func:`transpose8`: ``dst[d0 + j * dstride + k] = src[s0 + k * sstride + j]``
    for ``j, k < SQUARE`` (an 8 x 8 square of ``src``, rows ``sstride`` apart, into ``dst``
    transposed, rows ``dstride`` apart)."""
    for k in range(SQUARE):
        for j in range(SQUARE):
            dst[d0 + j * dstride + k] = src[s0 + k * sstride + j]


def nonzero_mask_python(arr, start):
    """The reference of :func:`nonzero_mask`: bit ``i`` is set iff ``arr[start + i] != 0``,
    ``i < MASK_WIDTH`` (so NaN counts, -0.0 does not, as ``!=`` says)."""
    bits = 0
    for i in range(MASK_WIDTH):
        if arr[start + i] != 0:
            bits |= 1 << i
    return bits


def trailing_zeros_python(bits):
    """The index of the lowest set bit of ``bits > 0`` (LLVM's ``cttz``); a NumPy integer too."""
    bits = int(bits)
    return (bits & -bits).bit_length() - 1


if COMPILED:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    def _runs_codegen(nrows, group):
        """The code of :func:`add_runs` (``nrows = 1``) or :func:`add_runs2` (2), ``group``
        chunks of each row summed side by side in one pass over the events."""

        def codegen(context, builder, signature, args):
            if nrows == 1:  # the arguments' positions (see the two signatures)
                acc_v, _, w_v, offs_v, vals_v, _, _ = args
                acc_t, _, w_t, offs_t, vals_t, _, _ = signature.args
                at, by, counts = (1,), (None,), (5, 6)
            else:
                acc_v, _, _, w_v, offs_v, _, vals_v, _, _ = args
                acc_t, _, _, w_t, offs_t, _, vals_t, _, _ = signature.args
                at, by, counts = (1, 2), (None, 5), (7, 8)

            def as_i64(k):
                return context.cast(builder, args[k], signature.args[k], types.int64)

            starts = [as_i64(k) for k in at]
            deltas = [None if k is None else as_i64(k) for k in by]
            m_, nchunks_ = (as_i64(k) for k in counts)
            acc_a, w_a, offs_a, vals_a = (context.make_array(t)(context, builder, v)
                                          for t, v in ((acc_t, acc_v), (w_t, w_v), (offs_t, offs_v), (vals_t, vals_v)))
            i64 = ir.IntType(64)
            scalar = context.get_value_type(acc_t.dtype)
            vec = ir.VectorType(scalar, LANES)
            align = acc_t.dtype.bitwidth // 8
            undef = ir.Constant(vec, ir.Undefined)
            broadcast = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
            bases = [builder.gep(acc_a.data, [a]) for a in starts]

            def chunks(first, size, single):
                """Chunks ``first .. first + size - 1`` (``first`` an i64 value) of every row,
                ``size`` registers a row; ``single``: the first event only, without a loop."""
                offsets = [builder.mul(builder.add(first, ir.Constant(i64, g)), ir.Constant(i64, LANES))
                           for g in range(size)]
                ptrs = [[builder.bitcast(builder.gep(base, [o]), vec.as_pointer()) for o in offsets] for base in bases]
                totals = [[cgutils.alloca_once_value(builder, builder.load(p, align=align)) for p in row]
                          for row in ptrs]

                def add_event(i):
                    row = builder.load(builder.gep(offs_a.data, [i]))
                    v = builder.load(builder.gep(vals_a.data, [i]))
                    vs = builder.shuffle_vector(builder.insert_element(undef, v, ir.Constant(ir.IntType(32), 0)),
                                                undef, broadcast)
                    for delta, row_totals in zip(deltas, totals):
                        start = row if delta is None else builder.add(row, delta)
                        for o, total in zip(offsets, row_totals):
                            wp = builder.gep(w_a.data, [builder.add(start, o)])
                            wv = builder.load(builder.bitcast(wp, vec.as_pointer()), align=align)
                            builder.store(builder.fadd(builder.load(total), builder.fmul(vs, wv)), total)

                if single:
                    add_event(ir.Constant(i64, 0))
                else:
                    with cgutils.for_range(builder, m_) as event:
                        add_event(event.index)
                for row_ptrs, row_totals in zip(ptrs, totals):
                    for p, total in zip(row_ptrs, row_totals):
                        builder.store(builder.load(total), p, align=align)

            def all_chunks(single):
                """Every chunk: ``group`` at a time, then the rest (fewer than ``group``) two at a
                time, then one."""
                groups = builder.udiv(nchunks_, ir.Constant(i64, group))
                with cgutils.for_range(builder, groups) as g:
                    chunks(builder.mul(g.index, ir.Constant(i64, group)), group, single)
                done = builder.mul(groups, ir.Constant(i64, group))
                rest = builder.sub(nchunks_, done)
                if group > 2:
                    pairs = builder.udiv(rest, ir.Constant(i64, 2))
                    with cgutils.for_range(builder, pairs) as p:
                        chunks(builder.add(done, builder.mul(p.index, ir.Constant(i64, 2))), 2, single)
                odd = builder.icmp_signed("==", builder.and_(rest, ir.Constant(i64, 1)), ir.Constant(i64, 1))
                with builder.if_then(odd):  # an odd rest leaves the last chunk
                    chunks(builder.sub(nchunks_, ir.Constant(i64, 1)), 1, single)

            one_event = builder.icmp_signed("==", m_, ir.Constant(i64, 1))
            with builder.if_else(one_event) as (then, otherwise):  # (m = 0 adds nothing: the loops)
                with then:
                    all_chunks(True)
                with otherwise:
                    all_chunks(False)
            return context.get_dummy_value()

        return codegen

    def _runs_arrays_ok(acc, w, vals, offs):
        arrays = (acc, w, vals, offs)
        return (all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in arrays)
                and isinstance(acc.dtype, types.Float) and acc.dtype == w.dtype == vals.dtype
                and offs.dtype == types.int64)

    @intrinsic
    def add_runs(typingctx, acc, a0, w, offs, vals, m, nchunks):
        """:func:`add_runs_python` as vector code: ``acc``, ``w``, ``vals`` 1-D contiguous arrays
        of one float dtype, ``offs`` 1-D int64, no bounds checks (the caller's indices are in
        range)."""
        if not _runs_arrays_ok(acc, w, vals, offs):
            return None
        return types.void(acc, a0, w, offs, vals, m, nchunks), _runs_codegen(1, GROUP)

    @intrinsic
    def add_runs2(typingctx, acc, a0, a1, w, offs, delta, vals, m, nchunks):
        """:func:`add_runs2_python` as vector code (the arrays as for :func:`add_runs`): each
        pass over the events sums ``GROUP // 2`` chunks of both runs, as many registers as one
        pass of :func:`add_runs`."""
        if not _runs_arrays_ok(acc, w, vals, offs):
            return None
        return types.void(acc, a0, a1, w, offs, delta, vals, m, nchunks), _runs_codegen(2, GROUP // 2)

    @intrinsic
    def nonzero_mask(typingctx, arr, start):
        """:func:`nonzero_mask_python` as vector code (an int64): ``arr`` a 1-D contiguous array
        of uint8 or of floats, ``start + MASK_WIDTH <= arr.size`` (not checked)."""
        if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C"
                and (arr.dtype == types.uint8 or isinstance(arr.dtype, types.Float))):
            return None
        sig = types.int64(arr, types.int64)

        def codegen(context, builder, signature, args):
            arr_t = signature.args[0]
            data = context.make_array(arr_t)(context, builder, args[0]).data
            scalar = context.get_value_type(arr_t.dtype)
            vec = ir.VectorType(scalar, MASK_WIDTH)
            values = builder.load(builder.bitcast(builder.gep(data, [args[1]]), vec.as_pointer()),
                                  align=arr_t.dtype.bitwidth // 8)
            zero = ir.Constant(vec, [0] * MASK_WIDTH)
            if isinstance(arr_t.dtype, types.Float):
                nonzero = builder.fcmp_unordered("!=", values, zero)  # NaN != 0, as in Python
            else:
                nonzero = builder.icmp_unsigned("!=", values, zero)
            return builder.zext(builder.bitcast(nonzero, ir.IntType(MASK_WIDTH)), ir.IntType(64))

        return sig, codegen

    @intrinsic
    def transpose8(typingctx, src, s0, sstride, dst, d0, dstride):
        """:func:`transpose8_python` as vector code: eight row loads, the shuffles of an 8 x 8
        transpose (pairs of rows interleaved, then pairs of pairs, then the 128-bit halves
        swapped: ``vunpcklps``/``vshufps``/``vperm2f128`` with AVX), eight row stores.  ``src``
        and ``dst`` 1-D contiguous arrays of one float dtype, no bounds checks."""
        if not (all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in (src, dst))
                and isinstance(src.dtype, types.Float) and src.dtype == dst.dtype):
            return None
        sig = types.void(src, s0, sstride, dst, d0, dstride)

        def codegen(context, builder, signature, args):
            src_t, _, _, dst_t, _, _ = signature.args
            i64 = ir.IntType(64)
            s0_, ss_, d0_, ds_ = (context.cast(builder, args[k], signature.args[k], types.int64) for k in (1, 2, 4, 5))
            src_p = context.make_array(src_t)(context, builder, args[0]).data
            dst_p = context.make_array(dst_t)(context, builder, args[3]).data
            vec = ir.VectorType(context.get_value_type(src_t.dtype), SQUARE)
            align = src_t.dtype.bitwidth // 8

            def row(base, start, stride, k):
                at = builder.add(start, builder.mul(stride, ir.Constant(i64, k)))
                return builder.bitcast(builder.gep(base, [at]), vec.as_pointer())

            def shuffle(a, b, mask):
                return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), SQUARE), mask))

            r = [builder.load(row(src_p, s0_, ss_, k), align=align) for k in range(SQUARE)]
            lo, hi = [0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15]
            t = [shuffle(r[k], r[k + 1], mask) for k in range(0, SQUARE, 2) for mask in (lo, hi)]
            lo2, hi2 = [0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15]
            u = [shuffle(t[a], t[a + 2], mask) for a in (0, 1, 4, 5) for mask in (lo2, hi2)]
            # u[0..3]: columns (0|4), (1|5), (2|6), (3|7) of rows 0-3; u[4..7]: of rows 4-7
            for j in range(SQUARE):
                half = [0, 1, 2, 3, 8, 9, 10, 11] if j < 4 else [4, 5, 6, 7, 12, 13, 14, 15]
                builder.store(shuffle(u[j % 4], u[4 + j % 4], half), row(dst_p, d0_, ds_, j), align=align)
            return context.get_dummy_value()

        return sig, codegen

    from numba.cpython.unsafe.numbers import trailing_zeros
else:  # NUMBA_DISABLE_JIT=1: the kernels are Python, so is this
    add_runs = add_runs_python
    add_runs2 = add_runs2_python
    nonzero_mask = nonzero_mask_python
    transpose8 = transpose8_python
    trailing_zeros = trailing_zeros_python

__all__ = ["LANES", "MASK_WIDTH", "SQUARE", "add_runs", "add_runs_python", "add_runs2", "add_runs2_python",
           "nonzero_mask", "nonzero_mask_python", "transpose8", "transpose8_python", "trailing_zeros",
           "trailing_zeros_python"]
