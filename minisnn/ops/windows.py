"""Window arithmetic shared by convolution and pooling (LEVEL 1a).

``Geometry`` records how a sliding window of size ``(kh, kw)`` walks over an ``H x W`` plane
with stride ``(sh, sw)`` and zero padding ``(ph, pw)``, landing on ``Ho x Wo`` positions::

    Ho = (H + 2*ph - kh) // sh + 1        Wo = (W + 2*pw - kw) // sw + 1

``im2col`` / ``col2im`` dispatch to the Numba kernels in :mod:`minisnn.kernels.im2col`
(their NumPy references live there too).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..kernels.fold import unshuffle_numba
from ..kernels.im2col import col2im_numba, col2im_numba_serial, im2col_numba, im2col_numba_serial

#: below this many output elements the serial kernels win (a parallel region costs ~30 us)
PARALLEL_MIN_SIZE = 1 << 15


class Geometry(NamedTuple):
    """How a ``kh x kw`` window with stride ``(sh, sw)`` and zero padding ``(ph, pw)`` walks an
    ``H x W`` plane: ``Ho = (H + 2 ph - kh) // sh + 1`` positions down, ``Wo`` across (the
    columns of :func:`im2col`: ``Ho * Wo`` per image)."""

    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    H: int
    W: int
    Ho: int
    Wo: int

    @property
    def window(self) -> tuple:
        """The arguments the im2col/col2im kernels take, in their order."""
        return self.kh, self.kw, self.sh, self.sw, self.ph, self.pw, self.Ho, self.Wo

    @property
    def side_by_side(self) -> bool:
        """Whether the windows tile the plane without overlap, gaps or padding (kernel ==
        stride; the CAE's upsampling layers): :func:`im2col` and :func:`col2im` are then a
        permutation (:mod:`minisnn.kernels.fold`)."""
        return ((self.kh, self.kw) == (self.sh, self.sw) and (self.ph, self.pw) == (0, 0)
                and (self.H, self.W) == (self.Ho * self.kh, self.Wo * self.kw))


def output_size(n: int, k: int, s: int, p: int) -> int:
    """Number of window positions along one axis: ``(n + 2p - k) // s + 1``."""
    return (n + 2 * p - k) // s + 1


def geometry(op: str, H: int, W: int, kernel, stride, padding) -> Geometry:
    """Build a :class:`Geometry`, raising ``ValueError`` if the window does not fit."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if H + 2 * ph < kh or W + 2 * pw < kw:
        raise ValueError(
            f"{op}: kernel {kh}x{kw} is larger than the padded input "
            f"{H + 2 * ph}x{W + 2 * pw} (input {H}x{W}, padding {ph},{pw})"
        )
    return Geometry(kh, kw, sh, sw, ph, pw, H, W, output_size(H, kh, sh, ph), output_size(W, kw, sw, pw))


def im2col(x: np.ndarray, g: Geometry, fold: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """``x (N, C, H, W)`` -> every receptive field as a column.

    Returns ``cols (N, C*kh*kw, Ho*Wo)``, or with ``fold`` the batch folded into the columns,
    ``(C*kh*kw, N, Ho*Wo)``, ready for one GEMM over the whole batch.  ``out`` may give the
    (C-contiguous) array to write into.
    """
    N, C = x.shape[:2]
    K, P = C * g.kh * g.kw, g.Ho * g.Wo
    shape = (K, N, P) if fold else (N, K, P)
    cols = np.empty(shape, dtype=x.dtype) if out is None else out
    if cols.shape != shape:
        raise ValueError(f"im2col: out has shape {cols.shape}, expected {shape}")
    if cols.size < PARALLEL_MIN_SIZE:
        return im2col_numba_serial(np.ascontiguousarray(x), *g.window, cols, fold)
    if g.side_by_side:  # a permutation, parallel over planes (the same columns, bit for bit)
        return unshuffle_numba(np.ascontiguousarray(x), g.kh, g.kw, cols, fold)
    return im2col_numba(np.ascontiguousarray(x), *g.window, cols, fold)


def col2im(cols: np.ndarray, g: Geometry, N: int, C: int, fold: bool = False) -> np.ndarray:
    """Adjoint of :func:`im2col`: columns summed back into an ``(N, C, H, W)`` image batch."""
    out = np.empty((N, C, g.H, g.W), dtype=cols.dtype)
    cols = np.ascontiguousarray(cols).reshape((-1, N, g.Ho * g.Wo) if fold else (N, -1, g.Ho * g.Wo))
    kernel = col2im_numba if cols.size >= PARALLEL_MIN_SIZE else col2im_numba_serial
    return kernel(cols, *g.window, out, fold)
