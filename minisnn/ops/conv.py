"""2-D convolution and transposed convolution as im2col + GEMM (LEVEL 1a).

Semantics and weight layouts are PyTorch's (``torch.nn.functional.conv2d`` and
``conv_transpose2d``), layout NCHW:

* ``conv2d``: ``x (N, Cin, H, W)``, ``w (Cout, Cin, kH, kW)``, ``b (Cout,)``; a
  cross-correlation::

      y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] * x_pad[n, c, i*sH + u, j*sW + v]

  computed per image as one matrix product ``w.reshape(Cout, Cin*kH*kW) @ im2col(x[n])``.

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

import numpy as np

from ._checks import as_float, common_dtype, pair
from .windows import Geometry, col2im, geometry, im2col


def _check_bias(op, b, n_out, dtype):
    if b is None:
        return None
    b = as_float(b, op, "b", ndim=1)
    if b.shape != (n_out,):
        raise ValueError(f"{op}: bias shape {b.shape} does not match {n_out} output channels")
    return b


def _weight_grad(a, cols):
    """sum_n a[n] @ cols[n].T for ``a (N, M, P)``, ``cols (N, K, P)`` -> ``(M, K)``."""
    out = a[0] @ cols[0].T
    for n in range(1, a.shape[0]):
        out += a[n] @ cols[n].T
    return out


# ----------------------------------------------------------------------------- conv2d


def conv2d_forward(x, w, b=None, stride=1, padding=0):
    """Forward 2-D convolution (cross-correlation), PyTorch semantics.

    Parameters
    ----------
    x : (N, Cin, H, W) float array
    w : (Cout, Cin, kH, kW) float array
    b : (Cout,) float array or None
    stride, padding : int or (int, int); stride >= 1, padding >= 0 (zeros)

    Returns
    -------
    y : (N, Cout, Ho, Wo), ``Ho = (H + 2 pH - kH) // sH + 1``
    cache : what :func:`conv2d_backward` needs
    """
    op = "conv2d"
    x = as_float(x, op, "x", ndim=4)
    w = as_float(w, op, "w", ndim=4)
    b = _check_bias(op, b, w.shape[0], x.dtype)
    common_dtype(op, x, w, b)
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels (x {x.shape}) "
            f"but the weight expects {w.shape[1]} (w {w.shape})"
        )
    N, _, H, W = x.shape
    Cout = w.shape[0]
    g = geometry(op, H, W, w.shape[2:], pair(stride, op, "stride", 1), pair(padding, op, "padding", 0))
    cols = im2col(x, g)  # (N, K, P)
    wm = w.reshape(Cout, -1)
    y = np.matmul(wm, cols)  # (N, Cout, P): already NCHW, no transpose
    if b is not None:
        y += b[:, None]
    return y.reshape(N, Cout, g.Ho, g.Wo), (cols, w, b is not None, g, x.shape[1])


def conv2d_backward(dy, cache, need_dx=True):
    """Gradients of :func:`conv2d_forward`: ``(dx, dw, db)`` for upstream ``dy (N, Cout, Ho, Wo)``.

    ``dw = sum_n dy[n] @ cols[n]^T``, ``dx = col2im(w^T @ dy)`` (a transposed convolution),
    ``db = dy.sum over (N, Ho, Wo)``.
    """
    cols, w, has_bias, g, Cin = cache
    N, Cout = dy.shape[:2]
    dy3 = np.ascontiguousarray(dy, dtype=w.dtype).reshape(N, Cout, g.Ho * g.Wo)
    wm = w.reshape(Cout, -1)
    dw = _weight_grad(dy3, cols).reshape(w.shape)
    db = dy3.sum(axis=(0, 2)) if has_bias else None
    dx = col2im(np.matmul(wm.T, dy3), g, N, Cin) if need_dx else None
    return dx, dw, db


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
    x = as_float(x, op, "x", ndim=4)
    w = as_float(w, op, "w", ndim=4)
    b = _check_bias(op, b, w.shape[1], x.dtype)
    common_dtype(op, x, w, b)
    if x.shape[1] != w.shape[0]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels (x {x.shape}) "
            f"but the weight expects {w.shape[0]} (w {w.shape})"
        )
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
    y = col2im(np.matmul(wm.T, x.reshape(N, Cin, H * W)), g, N, Cout)
    if b is not None:
        y += b[:, None, None]
    return y, (x, w, b is not None, g)


def conv_transpose2d_backward(dy, cache, need_dx=True):
    """Gradients of :func:`conv_transpose2d_forward`: ``(dx, dw, db)``.

    ``dcols = im2col(dy)``; ``dx = w @ dcols`` (a conv2d of ``dy``), ``dw = sum_n x[n] @ dcols[n]^T``.
    """
    x, w, has_bias, g = cache
    N, Cin, H, W = x.shape
    dy = np.ascontiguousarray(dy, dtype=w.dtype)
    dcols = im2col(dy, g)  # (N, Cout*kh*kw, H*W)
    x3 = x.reshape(N, Cin, H * W)
    dw = _weight_grad(x3, dcols).reshape(w.shape)
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    dx = np.matmul(w.reshape(Cin, -1), dcols).reshape(x.shape) if need_dx else None
    return dx, dw, db


__all__ = [
    "Geometry",
    "conv2d_forward",
    "conv2d_backward",
    "conv_transpose2d_forward",
    "conv_transpose2d_backward",
]
