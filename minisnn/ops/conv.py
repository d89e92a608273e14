"""2-D convolution and transposed convolution as im2col + GEMM (LEVEL 1a).

Semantics and weight layouts are PyTorch's (``torch.nn.functional.conv2d`` and
``conv_transpose2d``), layout NCHW:

* ``conv2d``: ``x (N, Cin, H, W)``, ``w (Cout, Cin, kH, kW)``, ``b (Cout,)``; a
  cross-correlation::

      y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] * x_pad[n, c, i*sH + u, j*sW + v]

  computed as matrix products ``w.reshape(Cout, Cin*kH*kW) @ im2col(x)``: one per image for
  large planes (the result is NCHW as it comes), or one for the whole batch with the batch
  folded into the columns for small planes (see :data:`FOLD_BELOW`).  Stride-1 layers with
  very few channels skip the columns: :mod:`minisnn.kernels.direct` (see
  :data:`DIRECT_MAX_WORK`), with the weight gradient as one GEMM per tap.  Other 3x3 stride-1
  layers run as Winograd F(2x2, 3x3) (:mod:`minisnn.kernels.winograd`, see :data:`WINOGRAD_MIN_CIN`):
  16 smaller GEMMs with 2.25x fewer multiplications and no column matrix.  Column
  convolutions whose columns would outgrow :data:`COLUMNS_KEEP_MAX` (the unrolled hybrid
  step's stride-2 layers) run a few images at a time and build the columns again in the
  backward pass instead of keeping them.

  With ``rectify=(gain, amplitude)`` the output goes through a rectified-linear neuron layer,
  ``amplitude * max(gain * y, 0)`` (:class:`~minisnn.neurons.RectifiedLinear` with
  ``scale_firing_rates``; :class:`~minisnn.layers.Sequential` asks for it when a ``Neurons``
  layer of that model follows), and the backward pass multiplies ``dy`` by its derivative
  first.  The numbers are those of the two layers one after the other; the Winograd path
  does both inside its transforms (one pass over the activations less each way).

* ``conv_transpose2d``: ``x (N, Cin, H, W)``, ``w (Cin, Cout, kH, kW)``. It is the
  **adjoint of conv2d** with respect to its input: for a conv2d with weight ``w`` (read in
  conv2d's layout, ``Cout_conv = Cin``), ``<conv2d(z, w), x> == <z, conv_transpose2d(x, w)>``
  for all ``z`` and ``x``.  So its forward pass is conv2d's input-gradient
  (``col2im(w^T @ x)``) and its input-gradient is conv2d's forward pass
  (``w @ im2col(dy)``); the code below shares those pieces.  Output size:
  ``Ho = (H - 1)*sH - 2*pH + kH + output_padding``.

Each ``*_forward`` returns ``(y, cache)``; each ``*_backward(dy, cache)`` returns
``(dx, dw, db)`` (``db`` is None when there was no bias; ``dx`` is None when
``need_dx=False``, which saves the work for a network's first layer).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._checks import as_float, common_dtype, output, pair
from .scratch import recycled, scratch
from .blocks import on_threads
from ..kernels.direct import conv_direct_numba
from ..kernels.events import conv_events_numba, conv_events_pixels_numba
from ..kernels.fold import fold_numba, shuffle_numba, unfold_numba
from ..kernels import winograd as wino
from ..kernels._jit import KERNEL_DTYPES, compiled_for
from ..kernels.elementwise import multiply
from ..kernels.relu import relu_rate_and_grad_numba, relu_rate_and_grad_numpy
from ..kernels.im2col import col2im_numba_serial, im2col_numba_serial
from .windows import Geometry, col2im, geometry, im2col


def _check_arrays(op, x, w, b, in_axis, out_axis, counts=False):
    """Validate ``x (N, C, H, W)``, a 4-D ``w`` whose axis ``in_axis`` holds the input channels
    and ``out_axis`` the output channels, and ``b`` (one per output channel, or None).  With
    ``counts`` ``x`` is a uint8 map of spike counts and the weights set the dtype."""
    if counts:
        if x.ndim != 4:
            raise ValueError(f"{op}: x must be 4-D (N, C, H, W), got shape {x.shape}")
    else:
        x = as_float(x, op, "x", ndim=4)
    w = as_float(w, op, "w", ndim=4)
    if b is not None:
        b = as_float(b, op, "b", ndim=1)
        if b.shape != (w.shape[out_axis],):
            raise ValueError(f"{op}: bias shape {b.shape} does not match {w.shape[out_axis]} output channels")
    if common_dtype(op, *([] if counts else [x]), w, b) not in KERNEL_DTYPES:
        raise ValueError(f"{op}: arrays must be float32 or float64, got {x.dtype}")
    if x.shape[1] != w.shape[in_axis]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels (x {x.shape}) "
            f"but the weight expects {w.shape[in_axis]} (w {w.shape})"
        )
    return x, w, b


#: Planes with fewer output positions than this are folded: the whole batch becomes one GEMM
#: of width N*Ho*Wo.  Per-image GEMMs only a few hundred columns wide starve BLAS (a CAE
#: decoder layer ran 4x slower that way); wide planes skip the transposes folding costs.
FOLD_BELOW = 4096

#: Largest column buffer (bytes) of an inference convolution (``keep_cache=False``): the batch
#: goes through im2col + GEMM a group of images at a time, so the columns stay near the L3
#: cache and a large block (time x batch in the simulator) does not need gigabytes of them.
COLS_BUDGET = 512 << 20


def _fold(positions: int) -> bool:
    return positions < FOLD_BELOW


#: Stride-1 convolutions with ``Cin * Cout`` at most this skip the column matrix and run the
#: direct kernel (:mod:`minisnn.kernels.direct`).  Measured per layer, forward + backward,
#: batch 64 of 24x56 planes, 2 threads: 16 -> 1 channels 4 ms direct against 47 ms through
#: the columns, 1 -> 16 4.3 against 4.8 ms; at 16 -> 16 the two were even, and from 32
#: channels on the columns won (32 -> 64 on 6x14: 26 against 9 ms), as they did for LocNet's
#: 3 -> 32 first layer on 200x300 (139 against 53 ms, batch 8).
DIRECT_MAX_WORK = 64

#: The same test for the input gradient alone of a layer that otherwise takes the columns:
#: ``w^T @ dy`` builds a ``Cin*kh*kw``-row column matrix that ``col2im`` then sums back.  At
#: 16 -> 16 channels on 24x56 planes (batch 64) the direct kernel took 11.7 ms against 17.1;
#: at 16 -> 32 the two were even, at 32 -> 32 the columns won.
DIRECT_DX_MAX_WORK = 16 * 16


#: 3x3 stride-1 convolutions with at least this many input channels (and too many for the
#: direct kernel) run as Winograd F(2x2, 3x3).  Forward + backward, 2 threads, against the
#: columns: the CAE's 16 -> 16 on 24x56 (batch 64) 19 against 26 ms, 64 -> 64 on 6x14 14
#: against 18; LocNet's 32 -> 64 on 100x150 (batch 8) 89 against 114, 8 -> 16 on 48x72
#: (batch 32) 16.1 against 17.7.  With fewer input channels the transformed output (4x the
#: output) costs more than the columns save: 4 -> 16 was even, LocNet's 3 -> 32 first layer
#: took 118 against 94 ms.  None: never (the tests force each path this way).
WINOGRAD_MIN_CIN: int | None = 8

#: The Winograd path works through the batch in blocks of images, each block's transforms
#: and products one after the other on one thread, the blocks shared by the threads
#: (:func:`~minisnn.ops.blocks.on_threads`).  A block's transformed input and product (4x its
#: input and output) then stay in the caches between the transform that writes them and the
#: product or transform that reads them; over the whole batch at once they went out to memory
#: and back: at the CAE's batch of 64 the 16-channel layer's ``V`` and ``M`` are 22 MB each.
#: A block holds at most this many tiles (2x2 output pixels) or one image.  The blocks come
#: in a multiple of 4, of sizes within one image, so that 2 or 4 threads share the work
#: evenly: the CAE's batch of 64 on 24x56 (336 tiles an image) is 8 blocks of 8 images, where
#: blocks of the 12 that fit would be 5 x 12 + 4, 36 images for one thread and 28 for the
#: other.  The blocks depend only on the batch and the plane, not on the thread count, so
#: neither does any result.
WINOGRAD_BLOCK_TILES = 4096

#: The Winograd path's forward pass keeps each block's transformed input ``V`` for the
#: backward pass (which needs it for the weight gradient) when all of them together take at
#: most this many bytes; above, the backward pass transforms the input again, block by block.
#: ``V`` is 4x the layer's input: at the CAE's batch of 64, 22 MB for its 16-channel layers.
#: None: never keep it.
WINOGRAD_KEEP_MAX: int | None = 64 << 20

#: A convolution through the columns (not direct, not Winograd) whose columns for the whole
#: batch would take more than this many bytes does not keep them for the backward pass: it
#: runs block by block as the Winograd path does (each block's im2col into a per-thread
#: scratch buffer, its products, on one thread), and the backward pass builds each block's
#: columns again from the input, which the graph keeps anyway.  The columns of a stride-2
#: 3x3 layer are 2.25x its input, and the unrolled hybrid step runs its layers on T x B
#: images: at T = 50, batch 4 on 3x100x150 the three stride-2 layers kept 756 MiB of them.
#: Blocked, the 16 -> 16 channel one on 100 x 150 (batch 200) took 300-310 against 328-331 ms
#: forward + backward, the loc default's 8 -> 8 on 48 x 72 (batch 640) 130-152 against
#: 140-204 ms.  LocNet's ANN step at its default 48 x 72, batch 32, keeps its columns (8 MiB).
#: None: always keep them.
COLUMNS_KEEP_MAX: int | None = 64 << 20

#: Bytes of columns a block of the blocked column path holds (or one image), in blocks of a
#: multiple of 4 as the Winograd path's (:func:`column_blocks`).
COLUMNS_BLOCK_BYTES = 2 << 20


#: Tags of the scratch buffers (:func:`~minisnn.ops.scratch.scratch` keeps one buffer per tag
#: and thread), one per role.  A call takes one path and needs each role once, so one buffer
#: serves every path:
COLUMNS = "conv columns"            # the GEMMs' large operand: im2col's columns, Winograd's
                                    # transformed input V, a transposed conv's w^T x
PRODUCT = "conv product"            # the product rows; Winograd's product M, or the
                                    # transformed output gradient Mg in the backward pass
GRAD_COLUMNS = "conv grad columns"  # the input gradient before col2im or Winograd's inverse
                                    # transform; a transposed conv's im2col(dy)
PADDED = "conv padded"              # the direct kernel's padded, channel-major input


class ColumnsCache(NamedTuple):
    """What :func:`conv2d_backward` keeps of a conv2d that ran as im2col + GEMM."""
    cols: np.ndarray     # the input's columns: (K, N, P) if folded, else (N, K, P)
    w: np.ndarray
    has_bias: bool
    g: Geometry
    Cin: int
    fold: bool           # the batch folded into the columns (small planes, FOLD_BELOW)
    path = "columns"


class DirectCache(NamedTuple):
    """What :func:`conv2d_backward` keeps of a conv2d that ran the direct kernel (few
    channels, stride 1)."""
    xcm: np.ndarray      # the input, padded and channel-major: (Cin, N, H + 2 pH, W + 2 pW)
    w: np.ndarray
    has_bias: bool
    g: Geometry
    path = "direct"


class WinogradCache(NamedTuple):
    """What :func:`conv2d_backward` keeps of a conv2d that ran as Winograd F(2x2, 3x3)."""
    x: np.ndarray        # the input (contiguous)
    Vs: list | None      # each block's transformed input (WINOGRAD_KEEP_MAX), else None: the
                         # backward pass transforms x again, block by block
    U: np.ndarray        # the transformed weights, (16, Cout, Cin)
    has_bias: bool
    g: Geometry
    r: np.ndarray        # the rectified output (rectify=...), else empty: where r > 0 ...
    slope: float         # ... the rectifier's derivative is amplitude * gain
    path = "winograd"


class RectifiedCache(NamedTuple):
    """What :func:`conv2d_backward` keeps of a conv2d with ``rectify=`` whose path did not
    fuse the rectifier: its derivative, which multiplies ``dy`` first, and the conv's cache."""
    slope: np.ndarray    # amplitude * gain * [gain * y > 0], the shape of the output
    conv: NamedTuple


class BlockedColumnsCache(NamedTuple):
    """What :func:`conv2d_backward` keeps of a conv2d that ran through the columns block by
    block (:data:`COLUMNS_KEEP_MAX`): the input, whose columns it builds again."""
    x: np.ndarray        # the input (contiguous)
    w: np.ndarray
    has_bias: bool
    g: Geometry
    path = "blocked columns"


class TransposeCache(NamedTuple):
    """What :func:`conv_transpose2d_backward` keeps of its forward pass."""
    x3: np.ndarray       # the input as GEMM rows: (Cin, N*H*W) if folded, else (N, Cin, H*W)
    x_shape: tuple
    w: np.ndarray
    has_bias: bool
    g: Geometry          # the conv2d that maps the output back onto the input
    fold: bool


def _winograd(g: Geometry, Cin: int, Cout: int) -> bool:
    return (
        WINOGRAD_MIN_CIN is not None and Cin >= WINOGRAD_MIN_CIN
        and (g.kh, g.kw, g.sh, g.sw) == (3, 3, 1, 1) and not _direct(g, Cin, Cout)
    )


def _direct(g: Geometry, Cin: int, Cout: int, max_work: int | None = None) -> bool:
    # (the input gradient pads dy by k - 1 - p, which must not be negative)
    stride_one = g.sh == 1 and g.sw == 1 and g.ph < g.kh and g.pw < g.kw
    return stride_one and Cin * Cout <= (DIRECT_MAX_WORK if max_work is None else max_work)


def _padded_channel_major(a, ph, pw, out=None):
    """``a (N, C, H, W)`` -> ``(C, N, H + 2 ph, W + 2 pw)``: zero-padded, channels first
    (the layout of :func:`minisnn.kernels.direct.conv_direct_numba`'s input)."""
    N, C, H, W = a.shape
    shape = (C, N, H + 2 * ph, W + 2 * pw)
    if out is None:
        out = np.zeros(shape, dtype=a.dtype)
    else:
        out[:, :, :ph], out[:, :, ph + H :], out[:, :, :, :pw], out[:, :, :, pw + W :] = 0, 0, 0, 0
    out[:, :, ph : ph + H, pw : pw + W] = a.transpose(1, 0, 2, 3)
    return out


def _rows(a3):
    """``(N, M, P)`` -> ``(M, N*P)``: the batch folded into the columns (a copy)."""
    return _fold_batch(a3, want_sums=False)[0]


def _rows_and_sums(a3):
    """:func:`_rows` and each channel's sum over the batch and positions (a bias gradient),
    from the same pass."""
    return _fold_batch(a3, want_sums=True)


def _fold_batch(a3, want_sums):
    N, M, P = a3.shape
    a3 = np.ascontiguousarray(a3)
    return fold_numba(a3, np.empty((M, N * P), a3.dtype), np.empty(M if want_sums else 0, a3.dtype))


def _unrows(a2, N):
    """Inverse of :func:`_rows`: ``(M, N*P)`` -> ``(N, M, P)`` contiguous."""
    return _unrows_into(a2, np.empty((N, a2.shape[0], a2.shape[1] // N), a2.dtype))


def _unrows_into(a2, out, bias=None):
    """:func:`_unrows` into ``out (N, M, P)``, plus ``bias (M,)`` if given, in the same pass."""
    return unfold_numba(np.ascontiguousarray(a2), _bias_or_empty(bias, a2.dtype), out)


def _bias_or_empty(b, dtype):
    """The kernels' bias argument: ``b`` as a contiguous ``dtype`` array, or an empty one for none."""
    return np.empty(0, dtype) if b is None else np.ascontiguousarray(b, dtype=dtype)


def _per_image(a, cols, out=None):
    """``a (M, K) @ cols[n] (K, P)`` for every image n -> ``(N, M, P)``."""
    return np.matmul(a, cols, out=out)


def _temp(tag, a, b):
    """Scratch space for ``a @ b`` (2-D) or ``a @ b[n]`` (3-D), consumed within the op."""
    shape = (a.shape[0], b.shape[-1]) if b.ndim == 2 else (b.shape[0], a.shape[0], b.shape[2])
    return scratch(tag, shape, np.result_type(a, b))


def _summed_outer(a, cols):
    """``sum_n a[n] (M, P) @ cols[n].T (P, K)`` -> ``(M, K)`` (a weight gradient)."""
    out = a[0] @ cols[0].T
    for n in range(1, a.shape[0]):
        out += a[n] @ cols[n].T
    return out


# ----------------------------------------------------------------------------- conv2d


def conv2d_forward(x, w, b=None, stride=1, padding=0, *, out=None, keep_cache=True, rectify=None):
    """Forward 2-D convolution (cross-correlation), PyTorch semantics.

    Parameters
    ----------
    x : (N, Cin, H, W) float array
    w : (Cout, Cin, kH, kW) float array
    b : (Cout,) float array or None
    stride, padding : int or (int, int); stride >= 1, padding >= 0 (zeros)
    out : optional C-contiguous ``(N, Cout, Ho, Wo)`` array of ``x``'s dtype to write ``y`` into
    keep_cache : False for inference: the columns then live in a reused scratch buffer and
        the returned cache is None (no backward possible).  With ``out`` this call allocates
        no large array at all, which matters: on these machines first-touching fresh memory
        costs ~10x the im2col copy itself (see :mod:`minisnn.ops.scratch`).
    rectify : optional ``(gain, amplitude)``: return ``amplitude * max(gain * y, 0)`` instead
        of ``y`` (a rectified-linear neuron layer after the convolution; see the module
        docstring).  NaN in ``y`` raises ValueError, as the neuron layer does.  The Winograd
        path's cache then reads the returned array for the derivative: leave it unchanged
        until the backward pass (as a graph does).

    Returns
    -------
    y : (N, Cout, Ho, Wo), ``Ho = (H + 2 pH - kH) // sH + 1``
    cache : what :func:`conv2d_backward` needs (None with ``keep_cache=False``)
    """
    op = "conv2d"
    x, w, b = _check_arrays(op, x, w, b, in_axis=1, out_axis=0)
    N, Cin, H, W = x.shape
    g = geometry(op, H, W, w.shape[2:], pair(stride, op, "stride", 1), pair(padding, op, "padding", 0))
    if rectify is None:
        return _conv2d(x, w, b, g, out, keep_cache)
    gain, amplitude = _rectifier(rectify, x.dtype)
    if _winograd(g, Cin, w.shape[0]):
        return _conv2d_winograd(x, w, b, g, out, keep_cache, (gain, amplitude))
    y, cache = _conv2d(x, w, b, g, out, keep_cache)
    r, slope = _rectify(y, gain, amplitude)
    if out is not None:
        out[...] = r
        r = out
    return r, (RectifiedCache(slope, cache) if keep_cache else None)


def _rectifier(rectify, dtype):
    """``rectify = (gain, amplitude)``, checked, as scalars of ``dtype``."""
    try:
        gain, amplitude = (float(v) for v in rectify)
    except (TypeError, ValueError):
        raise ValueError(f"conv2d: rectify must be a pair (gain, amplitude) of numbers, got {rectify!r}") from None
    if not (gain > 0 and amplitude > 0 and np.isfinite(gain) and np.isfinite(amplitude)):
        raise ValueError(f"conv2d: rectify's gain and amplitude must be finite and > 0, got {rectify!r}")
    return dtype.type(gain), dtype.type(amplitude)


#: what a NaN before the rectifier raises: the neuron layer's own message
RECTIFY_NAN = "RectifiedLinear: J (input current) contains NaN"


def _rectify(y, gain, amplitude):
    """``(amplitude * max(gain * y, 0), its derivative)`` through the rectified-linear rate
    kernel (:mod:`minisnn.kernels.relu`), the shape of ``y``."""
    kernel = relu_rate_and_grad_numba if compiled_for(y.dtype) else relu_rate_and_grad_numpy
    r, slope, n_nan = kernel(y.reshape(-1), float(gain), float(amplitude))
    if n_nan:
        raise ValueError(RECTIFY_NAN)
    return r.reshape(y.shape), slope.reshape(y.shape)


def _conv2d(x, w, b, g, out, keep_cache):
    """conv2d_forward without the rectifier: the choice of path, and the column path."""
    N, Cin = x.shape[:2]
    Cout = w.shape[0]
    if _direct(g, Cin, Cout):
        return _conv2d_direct(x, w, b, g, out, keep_cache)
    if _winograd(g, Cin, Cout):
        return _conv2d_winograd(x, w, b, g, out, keep_cache)
    op = "conv2d"
    K, P = w[0].size, g.Ho * g.Wo
    if keep_cache and COLUMNS_KEEP_MAX is not None and N * K * P * x.itemsize > COLUMNS_KEEP_MAX:
        return _conv2d_blocked(x, w, b, g, out)
    fold = _fold(P)
    y = output(op, out, (N, Cout, g.Ho, g.Wo), x.dtype).reshape(N, Cout, P)
    wm = w.reshape(Cout, -1)
    # with a cache every column is kept for the backward pass; without, the images go
    # through a scratch buffer of at most COLS_BUDGET bytes, a group of images at a time
    group = N if keep_cache else max(1, min(N, COLS_BUDGET // (K * P * x.itemsize)))
    for n0 in range(0, N, group):
        xg, yg = x[n0 : n0 + group], y[n0 : n0 + group]
        ng = xg.shape[0]
        shape = (K, ng, P) if fold else (ng, K, P)
        cols_buf = recycled(shape, x.dtype) if keep_cache else scratch(COLUMNS, shape, x.dtype)
        cols = im2col(xg, g, fold, out=cols_buf)  # (K, ng, P) folded, else (ng, K, P)
        if fold:  # the bias is added as the batch comes out of the columns
            r = np.matmul(wm, cols.reshape(K, -1), out=_temp(PRODUCT, wm, cols.reshape(K, -1)))
            _unrows_into(r, yg, b)
        else:
            _per_image(wm, cols, out=yg)  # (ng, Cout, P): already NCHW
    if b is not None and not fold:
        y += b[:, None]
    cache = ColumnsCache(cols, w, b is not None, g, Cin, fold) if keep_cache else None
    return y.reshape(N, Cout, g.Ho, g.Wo), cache


def _conv2d_direct(x, w, b, g, out, keep_cache):
    """conv2d_forward's stride-1 path without columns: pad the input channel-major once, run
    the direct kernel.  The padded input is the whole cache (the weight gradient reads it)."""
    N, Cin, H, W = x.shape
    y = output("conv2d", out, (N, w.shape[0], g.Ho, g.Wo), x.dtype)
    wc = np.ascontiguousarray(w)
    plane = Cin * (H + 2 * g.ph) * (W + 2 * g.pw) * x.itemsize
    group = N if keep_cache else max(1, min(N, COLS_BUDGET // plane))
    for n0 in range(0, N, group):
        xg = x[n0 : n0 + group]
        buf = None if keep_cache else scratch(PADDED, (Cin, xg.shape[0], H + 2 * g.ph, W + 2 * g.pw), x.dtype)
        xcm = _padded_channel_major(xg, g.ph, g.pw, out=buf)
        conv_direct_numba(xcm, wc, y[n0 : n0 + group])
    if b is not None:
        y += b[:, None, None]
    return y, (DirectCache(xcm, w, b is not None, g) if keep_cache else None)


def _image_blocks(N: int, largest: int) -> list[tuple[int, int]]:
    """Image ranges ``(n0, n1)`` covering a batch of ``N``: as few blocks as hold ``largest``
    images each, their number rounded up to a multiple of 4 (at most ``N``), their sizes
    within one image of each other."""
    fewest = (N + largest - 1) // largest
    count = min(N, (fewest + 3) // 4 * 4)
    return [(i * N // count, (i + 1) * N // count) for i in range(count)]


def winograd_blocks(N: int, th: int, tw: int) -> list[tuple[int, int]]:
    """The image ranges ``(n0, n1)`` of the Winograd path's blocks (see
    :data:`WINOGRAD_BLOCK_TILES`) for a batch of ``N`` and ``th x tw`` tiles an image."""
    return _image_blocks(N, max(1, WINOGRAD_BLOCK_TILES // (th * tw)))


def column_blocks(N: int, K: int, P: int, itemsize: int) -> list[tuple[int, int]]:
    """The image ranges of the blocked column path (:data:`COLUMNS_BLOCK_BYTES`) for a batch
    of ``N`` images of ``K x P`` columns each."""
    return _image_blocks(N, max(1, COLUMNS_BLOCK_BYTES // (K * P * itemsize)))


def _scratch_planes(tag: str, C: int, T: int, dtype) -> np.ndarray:
    """Winograd's ``(16, C, T)`` planes (:func:`~minisnn.kernels.winograd.planes`) in this
    thread's scratch buffer for ``tag``."""
    return wino.planes(C, T, dtype, scratch(tag, (wino.planes_size(C, T),), dtype))


def _conv2d_winograd(x, w, b, g, out, keep_cache, rectify=None):
    """conv2d_forward's Winograd path, block by block (:func:`winograd_blocks`): input
    transform, 16 GEMMs, output transform (+ bias, and the rectifier if ``rectify`` is
    ``(gain, amplitude)`` of x's dtype).  The product ``M`` lives in each thread's scratch
    buffer; so does ``V``, unless the cache keeps every block's ``V`` for the weight gradient
    (:data:`WINOGRAD_KEEP_MAX`; else it keeps the input, which the backward pass transforms
    again).  With ``rectify`` the cache keeps the rectified output, which tells where the
    rectifier's derivative is nonzero."""
    N, Cin = x.shape[:2]
    Cout = w.shape[0]
    y = output("conv2d", out, (N, Cout, g.Ho, g.Wo), x.dtype)
    th, tw = wino.tiles(g.Ho, g.Wo)
    U = wino.weights_numba(w, np.empty((16, Cout, Cin), x.dtype))
    bias = _bias_or_empty(b, x.dtype)
    x = np.ascontiguousarray(x)
    blocks = winograd_blocks(N, th, tw)
    gain, amplitude = rectify if rectify is not None else (x.dtype.type(1), x.dtype.type(1))
    counts = np.zeros((len(blocks), 2), np.int64)  # NaN outputs, underflows (0 or 1)
    keep_v = (keep_cache and WINOGRAD_KEEP_MAX is not None
              and wino.planes_size(Cin, N * th * tw) * x.itemsize <= WINOGRAD_KEEP_MAX)
    Vs = [None] * len(blocks) if keep_v else None

    def block(i):
        n0, n1 = blocks[i]
        T = (n1 - n0) * th * tw
        V = wino.planes(Cin, T, x.dtype) if keep_v else _scratch_planes(COLUMNS, Cin, T, x.dtype)
        wino.input_numba(x[n0:n1], g.ph, g.pw, th, tw, V)
        if keep_v:
            Vs[i] = V
        M = _scratch_planes(PRODUCT, Cout, T, x.dtype)
        np.matmul(U, V, out=M)
        _, counts[i, 0], counts[i, 1] = wino.output_numba(M, bias, th, tw, y[n0:n1], rectify is not None,
                                                          gain, amplitude)

    on_threads(block, len(blocks))
    n_nan, lost = counts.sum(axis=0)
    if n_nan:
        raise ValueError(RECTIFY_NAN)
    if not keep_cache:
        return y, None
    if rectify is None:
        return y, WinogradCache(x, Vs, U, b is not None, g, np.empty((0, 0, 0, 0), x.dtype), x.dtype.type(0))
    if lost:
        # amplitude * (gain * y) underflowed to 0 where gain * y > 0, so r > 0 does not say
        # where the derivative is nonzero: the convolution again, and its derivative kept
        y0, cache = _conv2d_winograd(x, w, b, g, None, True)
        return y, RectifiedCache(_rectify(y0, gain, amplitude)[1], cache)
    return y, WinogradCache(x, Vs, U, b is not None, g, y, amplitude * gain)


def _conv2d_winograd_backward(dy, x, Vs, U, has_bias, g, r, slope, need_dx):
    """Gradients of :func:`_conv2d_winograd`, each step the adjoint of a forward one, block by
    block: ``Mg = A dy A^T`` per tile (``dy`` times the rectifier's derivative first if ``r``
    is not empty), and the bias gradient, ``dU = Mg @ V^T`` with ``V`` the forward pass's
    (``Vs``) or the input transformed again, ``dx = B (U^T @ Mg) B^T`` added back tile by
    tile.  The blocks'
    ``dU`` are summed in block order (float64), then ``dw = G^T dU G``."""
    N, Cout = dy.shape[:2]
    Cin = x.shape[1]
    th, tw = wino.tiles(g.Ho, g.Wo)
    dy = np.ascontiguousarray(dy, dtype=U.dtype)
    blocks = winograd_blocks(N, th, tw)
    dUs = np.empty((len(blocks), 16, Cout, Cin), U.dtype)
    sums = np.empty((N, Cout))
    dx = np.empty(x.shape, U.dtype) if need_dx else None

    def block(i):
        n0, n1 = blocks[i]
        T = (n1 - n0) * th * tw
        Mg = _scratch_planes(PRODUCT, Cout, T, U.dtype)
        wino.grad_output_numba(dy[n0:n1], th, tw, Mg, sums[n0:n1], r[n0:n1], slope)
        if Vs is not None:
            V = Vs[i]
        else:
            V = _scratch_planes(COLUMNS, Cin, T, U.dtype)
            wino.input_numba(x[n0:n1], g.ph, g.pw, th, tw, V)
        np.matmul(Mg, V.transpose(0, 2, 1), out=dUs[i])  # short results, long sums
        if need_dx:
            dV = _scratch_planes(GRAD_COLUMNS, Cin, T, U.dtype)
            np.matmul(U.transpose(0, 2, 1), Mg, out=dV)
            wino.grad_input_numba(dV, g.ph, g.pw, th, tw, dx[n0:n1])

    on_threads(block, len(blocks))
    dw = wino.weights_grad_numba(dUs.sum(axis=0, dtype=np.float64), np.empty((Cout, Cin, 3, 3), U.dtype))
    db = sums.sum(axis=0).astype(U.dtype) if has_bias else None
    return dx, dw, db


def _block_columns(x, g, n0, n1, K, P):
    """Images ``n0:n1`` of ``x`` as columns ``(n1 - n0, K, P)`` in this thread's scratch buffer."""
    cols = scratch(COLUMNS, (n1 - n0, K, P), x.dtype)
    return im2col_numba_serial(x[n0:n1], *g.window, cols, False)


def _conv2d_blocked(x, w, b, g, out):
    """conv2d_forward's column path block by block (:data:`COLUMNS_KEEP_MAX`): each block's
    im2col into a scratch buffer, its products ``w @ cols[n]`` and bias, on one thread.  The
    cache keeps the input."""
    N, Cout = x.shape[0], w.shape[0]
    K, P = w[0].size, g.Ho * g.Wo
    y = output("conv2d", out, (N, Cout, g.Ho, g.Wo), x.dtype)
    y3 = y.reshape(N, Cout, P)
    wm = np.ascontiguousarray(w.reshape(Cout, K))
    x = np.ascontiguousarray(x)
    blocks = column_blocks(N, K, P, x.itemsize)

    def block(i):
        n0, n1 = blocks[i]
        np.matmul(wm, _block_columns(x, g, n0, n1, K, P), out=y3[n0:n1])
        if b is not None:
            y3[n0:n1] += b[:, None]

    on_threads(block, len(blocks))
    return y, BlockedColumnsCache(x, w, b is not None, g)


def _conv2d_blocked_backward(dy, x, w, has_bias, g, need_dx):
    """Gradients of :func:`_conv2d_blocked`, block by block: the block's columns built again,
    ``dw_block = sum_n dy[n] @ cols[n]^T``, ``dx = col2im(w^T @ dy)``.  The blocks' weight
    gradients are summed in block order (float64), so no result depends on the thread count."""
    N, Cout = dy.shape[:2]
    K, P = w[0].size, g.Ho * g.Wo
    dy3 = np.ascontiguousarray(dy, dtype=w.dtype).reshape(N, Cout, P)
    wmT = np.ascontiguousarray(w.reshape(Cout, K).T)
    blocks = column_blocks(N, K, P, w.itemsize)
    dws = np.empty((len(blocks), Cout, K), w.dtype)
    dx = np.empty(x.shape, w.dtype) if need_dx else None

    def block(i):
        n0, n1 = blocks[i]
        dws[i] = _summed_outer(dy3[n0:n1], _block_columns(x, g, n0, n1, K, P))
        if need_dx:
            dcols = np.matmul(wmT, dy3[n0:n1], out=scratch(GRAD_COLUMNS, (n1 - n0, K, P), w.dtype))
            col2im_numba_serial(dcols, *g.window, dx[n0:n1], False)

    on_threads(block, len(blocks))
    dw = dws.sum(axis=0, dtype=np.float64).astype(w.dtype).reshape(w.shape)
    db = dy3.sum(axis=(0, 2)) if has_bias else None
    return dx, dw, db


def conv2d_events(x, w, b=None, stride=1, padding=0, *, out=None, scale=None, order="channels",
                  in_layout="NCHW", out_layout="NCHW"):
    """:func:`conv2d_forward`'s ``y`` computed event by event: every nonzero of ``x`` adds its
    weights onto the outputs it reaches (:mod:`minisnn.kernels.events`).

    The work grows with the number of nonzeros, not the size of ``x``: for spike maps with
    few spikes per step this beats im2col + GEMM (see ``path`` in :func:`minisnn.simulate`).
    Same arguments and result as :func:`conv2d_forward` up to rounding (the sums run in
    another order); inference only, no cache.  ``x`` may also be a ``uint8`` map of spike
    counts, each spike worth ``scale`` (required then): the convolution of ``x * scale``.
    ``order``: ``"channels"`` adds the events channel by channel (best when few pixels have
    more than one), ``"pixels"`` pixel by pixel, all of a pixel's channels while its outputs
    stay in vector registers (best from ~2 events per pixel up: ``simulate.PIXEL_ORDER_EVENTS``).
    ``in_layout`` / ``out_layout``: ``"NCHW"`` or ``"NHWC"`` (channels last, for ``x`` with
    ``order="pixels"`` only): the same sums, without the transposes.  A channels-last map is
    the cheaper one to scan in pixel order (a pixel's channels are contiguous).
    """
    op = "conv2d_events"
    if order not in ("channels", "pixels"):
        raise ValueError(f"{op}: order must be 'channels' or 'pixels', got {order!r}")
    for name, layout in (("in_layout", in_layout), ("out_layout", out_layout)):
        if layout not in ("NCHW", "NHWC"):
            raise ValueError(f"{op}: {name} must be 'NCHW' or 'NHWC', got {layout!r}")
    in_last, out_last = in_layout == "NHWC", out_layout == "NHWC"
    if in_last and order != "pixels":
        raise ValueError(f"{op}: a channels-last input (in_layout='NHWC') needs order='pixels'")
    counts = isinstance(x, np.ndarray) and x.dtype == np.uint8
    if counts != (scale is not None):
        raise ValueError(f"{op}: scale is given with (and only with) a uint8 map of spike counts, "
                         f"got x of dtype {np.asarray(x).dtype} and scale={scale!r}")
    if in_last and np.ndim(x) == 4:
        x = np.asarray(x).transpose(0, 3, 1, 2)  # checked as (N, C, H, W), passed channels last
    x, w, b = _check_arrays(op, x, w, b, in_axis=1, out_axis=0, counts=counts)
    N, _, H, W = x.shape
    g = geometry(op, H, W, w.shape[2:], pair(stride, op, "stride", 1), pair(padding, op, "padding", 0))
    shape = (N, g.Ho, g.Wo, w.shape[0]) if out_last else (N, w.shape[0], g.Ho, g.Wo)
    y = output(op, out, shape, w.dtype)
    wt = np.ascontiguousarray(w.transpose(1, 2, 3, 0))  # (Cin, kH, kW, Cout): one tap = one row
    one = w.dtype.type(1 if scale is None else scale)
    xs = np.ascontiguousarray(x.transpose(0, 2, 3, 1) if in_last else x)  # as given: no copy if contiguous
    if order == "pixels":
        conv_events_pixels_numba(xs, one, wt, g.sh, g.sw, g.ph, g.pw, g.Ho, g.Wo, y, in_last, out_last)
    else:
        conv_events_numba(xs, one, wt, g.sh, g.sw, g.ph, g.pw, g.Ho, g.Wo, y, out_last)
    if b is not None:
        y += b if out_last else b[:, None, None]
    return y


def conv2d_backward(dy, cache, need_dx=True):
    """Gradients of :func:`conv2d_forward`: ``(dx, dw, db)`` for upstream ``dy (N, Cout, Ho, Wo)``.

    ``dw = sum_n dy[n] @ cols[n]^T``, ``dx = col2im(w^T @ dy)`` (a transposed convolution),
    ``db = dy.sum over (N, Ho, Wo)``.  After a ``rectify=`` forward pass ``dy`` is the
    gradient of the rectified output.
    """
    if isinstance(cache, RectifiedCache):
        dy = multiply(np.ascontiguousarray(dy, dtype=cache.slope.dtype), cache.slope)
        cache = cache.conv
    if isinstance(cache, DirectCache):
        return _conv2d_direct_backward(dy, *cache, need_dx)
    if isinstance(cache, WinogradCache):
        return _conv2d_winograd_backward(dy, *cache, need_dx)
    if isinstance(cache, BlockedColumnsCache):
        return _conv2d_blocked_backward(dy, *cache, need_dx)
    cols, w, has_bias, g, Cin, fold = cache
    N, Cout = dy.shape[:2]
    dy3 = np.ascontiguousarray(dy, dtype=w.dtype).reshape(N, Cout, g.Ho * g.Wo)
    wm = w.reshape(Cout, -1)
    direct_dx = need_dx and _direct(g, Cin, Cout, DIRECT_DX_MAX_WORK)
    dx = None
    if fold:  # (the bias gradient comes out of the same pass as the folded rows)
        dyr, db = _rows_and_sums(dy3) if has_bias else (_rows(dy3), None)  # (Cout, N*P)
        dw = dyr @ cols.reshape(wm.shape[1], -1).T
        if need_dx and not direct_dx:
            dx = col2im(np.matmul(wm.T, dyr, out=_temp(GRAD_COLUMNS, wm.T, dyr)), g, N, Cin, fold=True)
    else:
        db = dy3.sum(axis=(0, 2)) if has_bias else None
        dw = _summed_outer(dy3, cols)
        if need_dx and not direct_dx:
            dx = col2im(_per_image(wm.T, dy3, _temp(GRAD_COLUMNS, wm.T, dy3)), g, N, Cin)
    if direct_dx:
        dx = _direct_dx(dy3.reshape(dy.shape), w, g)
    return dx, dw.reshape(w.shape), db


def _direct_dx(dy, w, g):
    """The input gradient of a stride-1 conv2d as another stride-1 convolution: ``dy`` padded
    by ``k - 1 - p``, the weights flipped and transposed, through the direct kernel."""
    kh, kw = w.shape[2:]
    wf = np.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    dycm = _padded_channel_major(dy, kh - 1 - g.ph, kw - 1 - g.pw)
    return conv_direct_numba(dycm, wf, np.empty((dy.shape[0], w.shape[1], g.H, g.W), dtype=w.dtype))


def _conv2d_direct_backward(dy, xcm, w, has_bias, g, need_dx):
    """Gradients of :func:`_conv2d_direct`.

    * ``dx``: a stride-1 convolution of ``dy`` padded by ``k - 1 - p`` with the weights
      flipped and transposed, through the same direct kernel;
    * ``dw``: with ``dy`` laid out on the padded grid of the input (zeros off the output),
      tap ``(u, v)`` is one GEMM over the whole batch:
      ``dw[:, :, u, v] = dy_grid (Cout, M) @ xcm_flat[:, u*Wp + v :][:, :M]^T``, both operands
      strided views, no copies.
    """
    Cin, N, Hp, Wp = xcm.shape
    Cout, _, kh, kw = w.shape
    dy = np.asarray(dy, dtype=w.dtype)
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    grid = np.zeros((Cout, N, Hp, Wp), dtype=w.dtype)
    grid[:, :, : g.Ho, : g.Wo] = dy.transpose(1, 0, 2, 3)
    grid, xflat = grid.reshape(Cout, -1), xcm.reshape(Cin, -1)
    M = xflat.shape[1] - ((kh - 1) * Wp + kw - 1)  # every output pixel lies below M
    dw = np.empty(w.shape, dtype=w.dtype)
    for u in range(kh):
        for v in range(kw):
            off = u * Wp + v
            dw[:, :, u, v] = grid[:, :M] @ xflat[:, off : off + M].T
    return (_direct_dx(dy, w, g) if need_dx else None), dw, db


# ----------------------------------------------------------------------------- conv_transpose2d


def conv_transpose2d_forward(x, w, b=None, stride=1, padding=0, output_padding=0):
    """Forward transposed convolution, PyTorch semantics (the adjoint of conv2d, see module doc).

    Parameters
    ----------
    x : (N, Cin, H, W)
    w : (Cin, Cout, kH, kW)
    b : (Cout,) or None
    stride, padding, output_padding : int or pair; 0 <= output_padding < stride

    Returns
    -------
    y : (N, Cout, Ho, Wo), ``Ho = (H - 1) sH - 2 pH + kH + output_padding``
    cache
    """
    op = "conv_transpose2d"
    x, w, b = _check_arrays(op, x, w, b, in_axis=0, out_axis=1)
    (sh, sw) = stride = pair(stride, op, "stride", 1)
    (ph, pw) = padding = pair(padding, op, "padding", 0)
    oph, opw = pair(output_padding, op, "output_padding", 0)
    if oph >= sh or opw >= sw:
        raise ValueError(f"{op}: output_padding {(oph, opw)} must be smaller than stride {stride}")
    N, Cin, H, W = x.shape
    Cout, kh, kw = w.shape[1:]
    Ho, Wo = (H - 1) * sh - 2 * ph + kh + oph, (W - 1) * sw - 2 * pw + kw + opw
    if Ho < 1 or Wo < 1:
        raise ValueError(f"{op}: output would be {Ho}x{Wo} for input {H}x{W}, w {w.shape}, padding {padding}")
    # the conv2d that maps the (Ho, Wo) output back onto the (H, W) input:
    g = geometry(op, Ho, Wo, (kh, kw), stride, padding)
    assert (g.Ho, g.Wo) == (H, W)
    wm = w.reshape(Cin, -1)
    fold = _fold(H * W)
    x3 = x.reshape(N, Cin, H * W)
    if fold:
        x3 = _rows(x3)  # (Cin, N*H*W), kept in this layout for the weight gradient
        cols = np.matmul(wm.T, x3, out=_temp(COLUMNS, wm.T, x3)).reshape(-1, N, H * W)
    else:
        cols = _per_image(wm.T, x3, _temp(COLUMNS, wm.T, x3))
    if g.side_by_side:
        # windows side by side (the CAE's upsampling layers): a permutation, bias fused in
        bias = _bias_or_empty(b, x.dtype)
        y = shuffle_numba(cols, kh, kw, bias, np.empty((N, Cout, Ho, Wo), x.dtype), fold)
    else:
        y = col2im(cols, g, N, Cout, fold=fold)
        if b is not None:
            y += b[:, None, None]
    return y, TransposeCache(x3, x.shape, w, b is not None, g, fold)


def conv_transpose2d_backward(dy, cache, need_dx=True):
    """Gradients of :func:`conv_transpose2d_forward`: ``(dx, dw, db)``.

    ``dcols = im2col(dy)``; ``dx = w @ dcols`` (a conv2d of ``dy``), ``dw = sum_n x[n] @ dcols[n]^T``.
    """
    x3, x_shape, w, has_bias, g, fold = cache
    N, Cin = x_shape[:2]
    wm = w.reshape(Cin, -1)
    dy = np.ascontiguousarray(dy, dtype=w.dtype)
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    K, P = wm.shape[1], g.Ho * g.Wo  # g maps the output (g.H, g.W) back onto the input
    dcols = im2col(dy, g, fold, out=scratch(GRAD_COLUMNS, (K, N, P) if fold else (N, K, P), dy.dtype))
    if fold:
        dcols = dcols.reshape(wm.shape[1], -1)
        dw = x3 @ dcols.T
        dx = _unrows(wm @ dcols, N).reshape(x_shape) if need_dx else None
    else:
        dw = _summed_outer(x3, dcols)
        dx = _per_image(wm, dcols).reshape(x_shape) if need_dx else None
    return dx, dw.reshape(w.shape), db


__all__ = [
    "Geometry",
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_events",
    "conv_transpose2d_forward",
    "conv_transpose2d_backward",
    "ColumnsCache",
    "DirectCache",
    "WinogradCache",
    "TransposeCache",
]
