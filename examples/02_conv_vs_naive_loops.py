"""02 - Convolution as im2col + GEMM, checked against naive loops, forward and backward.

Tour stops 3-4 (docs/tour.md): ``minisnn/ops/windows.py`` (Geometry, im2col, col2im) and
``minisnn/ops/conv.py`` (conv2d_forward / conv2d_backward, conv_transpose2d_forward).

1. conv2d forward and all three gradients (dx, dw, db) written as plain loops over the output
   pixels, against minisnn's im2col + matrix-product version (float64, stride 2, padding 1).
2. The adjoint identity <conv2d(z, w), y> = <z, conv_transpose2d(y, w)>, and its consequence:
   conv2d's input gradient *is* a transposed convolution of the upstream gradient.
3. im2col by hand: y = w.reshape(Cout, Cin*kH*kW) @ cols, and the speed of the GEMM form.
4. A picture: two Sobel filters on a small image, and the input gradient of
   L = 1/2 sum(y^2) computed both by conv2d_backward and by conv_transpose2d.

Writes ``02_conv_maps.png``.

    python examples/02_conv_vs_naive_loops.py [--out DIR]
"""

import os

# One thread for BLAS and for the Numba kernels: see the note in 01_gradcheck_by_hand.py.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from minisnn import ops  # noqa: E402
from minisnn.apps.plots import image_grid  # noqa: E402

FIGURE = "02_conv_maps.png"


# ----------------------------------------------------------------------------- naive loops

def naive_conv2d(x, w, b, stride, padding):
    """y[n, o, i, j] = b[o] + sum_{c,u,v} w[o, c, u, v] * x_pad[n, c, i*s + u, j*s + v]."""
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (W + 2 * padding - kw) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    y = np.zeros((N, O, Ho, Wo))
    for n in range(N):
        for o in range(O):
            for i in range(Ho):
                for j in range(Wo):
                    window = xp[n, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                    y[n, o, i, j] = np.sum(w[o] * window) + b[o]
    return y


def naive_conv2d_backward(dy, x, w, stride, padding):
    """The chain rule through the same loops: every output pixel y[n,o,i,j] sent
    w[o] * window to the loss, so it hands dy[n,o,i,j] * window to dw[o] and
    dy[n,o,i,j] * w[o] back to the input pixels of its window."""
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp, dw, db = np.zeros_like(xp), np.zeros_like(w), np.zeros(O)
    for n in range(N):
        for o in range(O):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    rows = slice(i * stride, i * stride + kh)
                    cols = slice(j * stride, j * stride + kw)
                    g = dy[n, o, i, j]
                    dw[o] += g * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += g * w[o]
                    db[o] += g
    dx = dxp[:, :, padding : padding + H, padding : padding + W]  # the padding receives nothing
    return dx, dw, db


# ----------------------------------------------------------------------------- pictures

def diverging(a):
    """A signed 2-D map as an RGB image (3, H, W): white at 0, red > 0, blue < 0."""
    m = float(np.max(np.abs(a))) or 1.0
    v = np.clip(a / m, -1, 1)
    pos, neg = np.maximum(v, 0), np.maximum(-v, 0)
    return np.stack([1 - neg, 1 - pos - neg, 1 - pos])


def gray(a):
    lo, hi = float(a.min()), float(a.max())
    v = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return np.stack([v, v, v])


def main(out: Path) -> None:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    # 1. forward and backward against the loops ------------------------------------------
    stride, padding = 2, 1
    x = rng.standard_normal((2, 3, 9, 9))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    y, cache = ops.conv2d_forward(x, w, b, stride=stride, padding=padding)
    y_naive = naive_conv2d(x, w, b, stride, padding)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = ops.conv2d_backward(dy, cache)
    dx_n, dw_n, db_n = naive_conv2d_backward(dy, x, w, stride, padding)
    print(f"1. conv2d x {x.shape} * w {w.shape}, stride {stride}, padding {padding} -> y {y.shape}")
    for name, a, n in (("y", y, y_naive), ("dx", dx, dx_n), ("dw", dw, dw_n), ("db", db, db_n)):
        print(f"   max |im2col - loops| for {name:2s}: {np.max(np.abs(a - n)):.1e}")

    # 2. the adjoint identity -------------------------------------------------------------
    H = x.shape[2]
    out_pad = (H + 2 * padding - 3) % stride  # rows the strided conv2d skipped at the bottom
    z = rng.standard_normal(x.shape)
    yy = rng.standard_normal(y.shape)
    lhs = np.sum(ops.conv2d_forward(z, w, None, stride, padding)[0] * yy)
    ct = ops.conv_transpose2d_forward(yy, w, None, stride, padding, output_padding=out_pad)[0]
    rhs = np.sum(z * ct)
    dx_t = ops.conv_transpose2d_forward(dy, w, None, stride, padding, output_padding=out_pad)[0]
    print(f"2. <conv2d(z, w), y> = {lhs:.10f}   <z, conv_transpose2d(y, w)> = {rhs:.10f}")
    print(f"   max |conv2d_backward dx - conv_transpose2d(dy, w)| = {np.max(np.abs(dx - dx_t)):.1e}")

    # 3. im2col + GEMM by hand, and its speed ---------------------------------------------
    g = ops.geometry("example", H, x.shape[3], (3, 3), (stride, stride), (padding, padding))
    cols = ops.im2col(x, g)  # (N, Cin*kH*kW, Ho*Wo): one receptive field per column
    y_gemm = np.matmul(w.reshape(4, -1), cols).reshape(y.shape) + b[:, None, None]
    print(f"3. im2col: cols {cols.shape}; w as a matrix {w.reshape(4, -1).shape}; "
          f"max |w @ cols + b - y| = {np.max(np.abs(y_gemm - y)):.1e}")
    xb = rng.standard_normal((4, 8, 16, 16))
    wb = rng.standard_normal((8, 8, 3, 3))
    bb = np.zeros(8)
    t = time.perf_counter()
    naive_conv2d(xb, wb, bb, 1, 1)
    t_loops = time.perf_counter() - t
    ops.conv2d_forward(xb, wb, bb, 1, 1)  # warm-up (the im2col kernel loads from the cache)
    reps = 20
    t = time.perf_counter()
    for _ in range(reps):
        ops.conv2d_forward(xb, wb, bb, 1, 1)
    t_gemm = (time.perf_counter() - t) / reps
    print(f"   x {xb.shape} * w {wb.shape}: loops {t_loops * 1e3:.1f} ms, im2col + GEMM "
          f"{t_gemm * 1e3:.2f} ms ({t_loops / t_gemm:.0f}x faster)")

    # 4. the picture ----------------------------------------------------------------------
    n = 24
    yy_, xx_ = np.mgrid[0:n, 0:n]
    img = ((xx_ - 8) ** 2 + (yy_ - 9) ** 2 < 25).astype(float)  # a disc
    img[14:21, 12:21] = 1.0  # and a rectangle
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    ws = np.stack([sobel_x, sobel_x.T])[:, None]  # (2 out, 1 in, 3, 3)
    xi = img[None, None]
    ys, cache_s = ops.conv2d_forward(xi, ws, None, 1, 1)
    dxs = ops.conv2d_backward(ys, cache_s)[0]  # L = 1/2 sum(y^2): dL/dy = y
    dxs_t = ops.conv_transpose2d_forward(ys, ws, None, 1, 1)[0]
    print(f"4. Sobel maps on a {n}x{n} image; dL/dx by conv2d_backward vs conv_transpose2d: "
          f"max diff {np.max(np.abs(dxs - dxs_t)):.1e}")
    path = out / FIGURE
    image_grid(
        path,
        [gray(img), diverging(ys[0, 0]), diverging(ys[0, 1]), diverging(dxs[0, 0]), diverging(dxs_t[0, 0])],
        [{}] * 5, colors={},
        titles=["input x", "conv2d: Sobel x", "conv2d: Sobel y", "dL/dx (backward)", "conv_transpose2d(y)"],
        cols=5, scale=5,
    )
    print(f"wrote {path}  ({time.perf_counter() - t0:.2f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                        help="folder for the figure (default: examples/out)")
    main(parser.parse_args().out)
