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
The arithmetic is the plain one - a multiply, then an add, in the events' order, no fused
multiply-add - so every value is what the scalar loop gives, bit for bit
(:func:`add_runs_python` is that loop; ``tests/test_simd.py`` compares the two exactly, and
the kernel tests the convolution built on it against its NumPy reference).

:func:`nonzero_mask` is the other loop: which of 32 consecutive values are nonzero, as the
bits of one integer (a vector compare and its mask: ``vpcmpeqb`` + ``vpmovmskb`` for uint8
with AVX2).  The event kernels read a channels-last pixel's events from it, one set bit each
(:func:`trailing_zeros`), instead of testing every channel.
"""

from __future__ import annotations

from ._jit import COMPILED

#: values per chunk: one vector register of float32 with AVX-512
LANES = 16

#: chunks summed side by side in one pass over the events (see :func:`add_runs`; even)
GROUP = 4


def add_runs_python(acc, a0, w, offs, vals, m, nchunks):
    """The reference of :func:`add_runs`: ``acc[a0 + j] += vals[i] * w[offs[i] + j]`` for
    ``i < m`` in order, for each ``j < nchunks * LANES``."""
    for j in range(nchunks * LANES):
        total = acc[a0 + j]
        for i in range(m):
            total += vals[i] * w[offs[i] + j]
        acc[a0 + j] = total


#: values per :func:`nonzero_mask`
MASK_WIDTH = 32


def nonzero_mask_python(arr, start):
    """The reference of :func:`nonzero_mask`: bit ``i`` is set iff ``arr[start + i] != 0``,
    ``i < MASK_WIDTH`` (so NaN counts, -0.0 does not, as ``!=`` says)."""
    bits = 0
    for i in range(MASK_WIDTH):
        if arr[start + i] != 0:
            bits |= 1 << i
    return bits


def trailing_zeros_python(bits):
    """The index of the lowest set bit of ``bits > 0`` (LLVM's ``cttz``)."""
    return (bits & -bits).bit_length() - 1


if COMPILED:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def add_runs(typingctx, acc, a0, w, offs, vals, m, nchunks):
        """:func:`add_runs_python` as vector code: ``acc``, ``w``, ``vals`` 1-D contiguous arrays
        of one float dtype, ``offs`` 1-D int64, no bounds checks (the caller's indices are in
        range)."""
        arrays = (acc, w, vals, offs)
        if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in arrays):
            return None
        if not (isinstance(acc.dtype, types.Float) and acc.dtype == w.dtype == vals.dtype
                and offs.dtype == types.int64):
            return None
        sig = types.void(acc, a0, w, offs, vals, m, nchunks)

        def codegen(context, builder, signature, args):
            acc_t, _, w_t, offs_t, vals_t, _, _ = signature.args
            acc_a, w_a, offs_a, vals_a = (context.make_array(t)(context, builder, v)
                                          for t, v in ((acc_t, args[0]), (w_t, args[2]), (offs_t, args[3]),
                                                       (vals_t, args[4])))
            i64 = ir.IntType(64)
            a0_, m_, nchunks_ = (context.cast(builder, args[k], signature.args[k], types.int64) for k in (1, 5, 6))
            scalar = context.get_value_type(acc_t.dtype)
            vec = ir.VectorType(scalar, LANES)
            align = acc_t.dtype.bitwidth // 8
            undef = ir.Constant(vec, ir.Undefined)
            broadcast = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
            base = builder.gep(acc_a.data, [a0_])

            def group(first, size):
                """Chunks ``first .. first + size - 1`` (``first`` an i64 value), ``size`` registers."""
                offsets = [builder.mul(builder.add(first, ir.Constant(i64, g)), ir.Constant(i64, LANES))
                           for g in range(size)]
                ptrs = [builder.bitcast(builder.gep(base, [o]), vec.as_pointer()) for o in offsets]
                totals = [cgutils.alloca_once_value(builder, builder.load(p, align=align)) for p in ptrs]
                with cgutils.for_range(builder, m_) as event:
                    i = event.index
                    row = builder.load(builder.gep(offs_a.data, [i]))
                    v = builder.load(builder.gep(vals_a.data, [i]))
                    vs = builder.shuffle_vector(builder.insert_element(undef, v, ir.Constant(ir.IntType(32), 0)),
                                                undef, broadcast)
                    for o, total in zip(offsets, totals):
                        wp = builder.gep(w_a.data, [builder.add(row, o)])
                        wv = builder.load(builder.bitcast(wp, vec.as_pointer()), align=align)
                        builder.store(builder.fadd(builder.load(total), builder.fmul(vs, wv)), total)
                for p, total in zip(ptrs, totals):
                    builder.store(builder.load(total), p, align=align)

            # GROUP chunks at a time, then the rest (fewer than GROUP) two at a time, then one
            groups = builder.udiv(nchunks_, ir.Constant(i64, GROUP))
            with cgutils.for_range(builder, groups) as g:
                group(builder.mul(g.index, ir.Constant(i64, GROUP)), GROUP)
            done = builder.mul(groups, ir.Constant(i64, GROUP))
            pairs = builder.udiv(builder.sub(nchunks_, done), ir.Constant(i64, 2))
            with cgutils.for_range(builder, pairs) as p:
                group(builder.add(done, builder.mul(p.index, ir.Constant(i64, 2))), 2)
            odd = builder.icmp_signed("==", builder.and_(nchunks_, ir.Constant(i64, 1)), ir.Constant(i64, 1))
            with builder.if_then(odd):  # (GROUP is even: an odd count leaves one chunk)
                group(builder.sub(nchunks_, ir.Constant(i64, 1)), 1)
            return context.get_dummy_value()

        return sig, codegen

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

    from numba.cpython.unsafe.numbers import trailing_zeros
else:  # NUMBA_DISABLE_JIT=1: the kernels are Python, so is this
    add_runs = add_runs_python
    nonzero_mask = nonzero_mask_python
    trailing_zeros = trailing_zeros_python

__all__ = ["LANES", "MASK_WIDTH", "add_runs", "add_runs_python", "nonzero_mask", "nonzero_mask_python",
           "trailing_zeros", "trailing_zeros_python"]
