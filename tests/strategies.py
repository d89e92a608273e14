"""Hypothesis strategies that generate only *valid* op geometries (test-only).

Each strategy draws a small frozen record (sizes, kernel, stride, padding, a seed for the
array values).  The arrays themselves come from ``record.rng()``, so hypothesis shrinks the
geometry, not millions of floats.  Sizes are kept tiny: the oracles in ``naive.py`` are
Python loops, and with ``NUMBA_DISABLE_JIT=1`` so are the kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

kernels = st.integers(1, 5)
strides = st.integers(1, 3)
paddings = st.integers(0, 2)
batches = st.integers(1, 3)
channels = st.integers(1, 4)
seeds = st.integers(0, 2**32 - 1)


@dataclass(frozen=True)
class ConvGeometry:
    """conv2d: x (N, Cin, H, W), w (Cout, Cin, kh, kw); the kernel fits the padded input."""

    N: int
    Cin: int
    Cout: int
    H: int
    W: int
    kernel: tuple
    stride: tuple
    padding: tuple
    seed: int

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    @property
    def out_hw(self) -> tuple:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return (self.H + 2 * ph - kh) // sh + 1, (self.W + 2 * pw - kw) // sw + 1

    @property
    def adjoint_output_padding(self) -> tuple:
        """The output_padding that makes conv_transpose2d map (Ho, Wo) back onto exactly (H, W).

        conv2d floors ``(H + 2p - k) / s``; the rows it drops, ``(H + 2p - k) mod s``, are what
        conv_transpose2d must add back - always < s, so always a valid output_padding.
        """
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return (self.H + 2 * ph - kh) % sh, (self.W + 2 * pw - kw) % sw

    def arrays(self, dtype=np.float64, bias=True):
        r = self.rng()
        x = r.standard_normal((self.N, self.Cin, self.H, self.W)).astype(dtype)
        w = r.standard_normal((self.Cout, self.Cin) + tuple(self.kernel)).astype(dtype)
        b = r.standard_normal(self.Cout).astype(dtype) if bias else None
        return x, w, b


@dataclass(frozen=True)
class ConvTransposeGeometry:
    """conv_transpose2d: x (N, Cin, H, W), w (Cin, Cout, kh, kw), output_padding < stride, output >= 1x1."""

    N: int
    Cin: int
    Cout: int
    H: int
    W: int
    kernel: tuple
    stride: tuple
    padding: tuple
    output_padding: tuple
    seed: int

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    @property
    def out_hw(self) -> tuple:
        (kh, kw), (sh, sw), (ph, pw), (oh, ow) = self.kernel, self.stride, self.padding, self.output_padding
        return (self.H - 1) * sh - 2 * ph + kh + oh, (self.W - 1) * sw - 2 * pw + kw + ow

    def arrays(self, dtype=np.float64, bias=True):
        r = self.rng()
        x = r.standard_normal((self.N, self.Cin, self.H, self.W)).astype(dtype)
        w = r.standard_normal((self.Cin, self.Cout) + tuple(self.kernel)).astype(dtype)
        b = r.standard_normal(self.Cout).astype(dtype) if bias else None
        return x, w, b


@dataclass(frozen=True)
class PoolGeometry:
    """avg_pool2d: x (N, C, H, W), window (kh, kw) <= (H, W); stride None means stride = kernel."""

    N: int
    C: int
    H: int
    W: int
    kernel: tuple
    stride: tuple | None
    seed: int

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def x(self, dtype=np.float64):
        return self.rng().standard_normal((self.N, self.C, self.H, self.W)).astype(dtype)


def _extent(draw, k: int, p: int, max_hw: int) -> int:
    """An input side length n >= 1 with n + 2p >= k (the window fits the padded input)."""
    lo = max(1, k - 2 * p)
    return draw(st.integers(lo, max(lo, max_hw)))


@st.composite
def conv_geometries(draw, max_hw: int = 7) -> ConvGeometry:
    """Valid conv2d geometries: kernel 1-5, stride 1-3, padding 0-2 (each per axis), non-square
    inputs, batch 1-3, channels 1-4."""
    kh, kw = draw(kernels), draw(kernels)
    sh, sw = draw(strides), draw(strides)
    ph, pw = draw(paddings), draw(paddings)
    H, W = _extent(draw, kh, ph, max_hw), _extent(draw, kw, pw, max_hw)
    return ConvGeometry(
        draw(batches), draw(channels), draw(channels), H, W, (kh, kw), (sh, sw), (ph, pw), draw(seeds)
    )


@st.composite
def winograd_geometries(draw, max_hw: int = 9) -> ConvGeometry:
    """conv2d geometries of the Winograd path: kernel 3x3, stride 1, padding 0-2 per axis,
    odd and even output sizes (cropped last tiles), batch 1-3, channels 1-4."""
    ph, pw = draw(paddings), draw(paddings)
    H, W = _extent(draw, 3, ph, max_hw), _extent(draw, 3, pw, max_hw)
    return ConvGeometry(draw(batches), draw(channels), draw(channels), H, W, (3, 3), (1, 1), (ph, pw), draw(seeds))


def _transpose_extent(draw, k: int, s: int, p: int, op: int, max_in: int) -> int:
    """An input side length n >= 1 whose transposed-conv output (n-1)s - 2p + k + op is >= 1."""
    need = 1 + 2 * p - k - op  # (n - 1) * s must reach this
    lo = 1 + max(0, -(-need // s))
    return draw(st.integers(lo, lo + max_in - 1))


@st.composite
def conv_transpose_geometries(draw, max_in: int = 4) -> ConvTransposeGeometry:
    """Valid conv_transpose2d geometries: kernel 1-5, stride 1-3, padding 0-2,
    0 <= output_padding < stride, non-square, batch 1-3, channels 1-4."""
    kh, kw = draw(kernels), draw(kernels)
    sh, sw = draw(strides), draw(strides)
    ph, pw = draw(paddings), draw(paddings)
    oh, ow = draw(st.integers(0, sh - 1)), draw(st.integers(0, sw - 1))
    H = _transpose_extent(draw, kh, sh, ph, oh, max_in)
    W = _transpose_extent(draw, kw, sw, pw, ow, max_in)
    return ConvTransposeGeometry(
        draw(batches), draw(channels), draw(channels), H, W, (kh, kw), (sh, sw), (ph, pw), (oh, ow), draw(seeds)
    )


@st.composite
def pool_geometries(draw, max_extra: int = 5) -> PoolGeometry:
    """Valid avg_pool2d geometries: kernel 1-4 per axis, stride None (= kernel) or 1-3 per axis,
    the window fits the (unpadded) input, batch 1-3, channels 1-4."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = draw(st.none() | st.tuples(strides, strides))
    H = draw(st.integers(kh, kh + max_extra))
    W = draw(st.integers(kw, kw + max_extra))
    return PoolGeometry(draw(batches), draw(channels), H, W, (kh, kw), stride, draw(seeds))


def examples(fraction: float = 1.0, minimum: int = 3) -> int:
    """A share of the active profile's ``max_examples``, for properties that are slow per example.

    Call it at decoration time (``@settings(max_examples=examples(0.5))``); ``conftest.py`` has
    loaded the profile by then.
    """
    from hypothesis import settings

    return max(minimum, int(settings.default.max_examples * fraction))
