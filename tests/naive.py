"""Slow, obvious oracles for the ops in :mod:`minisnn.ops` (test-only).

Every function here is an explicit Python loop over every index - no im2col, no strided
views, no vectorised tricks - so that it can be checked by reading it.  They are used only
on tiny inputs.  Layout is NCHW and the weight layouts are PyTorch's, like the ops.
"""

from __future__ import annotations

import math

import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def conv2d(x, w, b=None, stride=1, padding=0):
    """y[n,o,i,j] = b[o] + sum_{c,u,v} w[o,c,u,v] * x[n,c, i*sH + u - pH, j*sW + v - pW] (zeros outside)."""
    # Cross-correlation, as torch.nn.functional.conv2d: the kernel is NOT flipped.
    # Pixel (i, j) of the output reads the window whose top-left corner is (i*sH - pH, j*sW - pW).
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    Ho = (H + 2 * ph - kh) // sh + 1
    Wo = (W + 2 * pw - kw) // sw + 1
    y = np.zeros((N, O, Ho, Wo), dtype=np.result_type(x, w))
    for n in range(N):
        for o in range(O):
            for i in range(Ho):
                for j in range(Wo):
                    acc = 0.0 if b is None else b[o]
                    for c in range(C):
                        for u in range(kh):
                            for v in range(kw):
                                r = i * sh + u - ph
                                s = j * sw + v - pw
                                if 0 <= r < H and 0 <= s < W:  # outside: zero padding
                                    acc += w[o, c, u, v] * x[n, c, r, s]
                    y[n, o, i, j] = acc
    return y


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0):
    """y[n,o, i*sH + u - pH, j*sW + v - pW] += w[c,o,u,v] * x[n,c,i,j] for every input pixel (scatter)."""
    # Scatter form: every input pixel stamps a copy of the kernel, scaled by the pixel, into the
    # output at stride spacing; overlapping stamps add.  Again no flip.  The output is
    # Ho = (H-1)*sH - 2*pH + kH + output_padding; the padding *crops* pH rows/cols on each side
    # and output_padding only adds rows/cols at the bottom/right (which receive only the bias).
    (sh, sw), (ph, pw), (oph, opw) = _pair(stride), _pair(padding), _pair(output_padding)
    N, C, H, W = x.shape
    _, O, kh, kw = w.shape
    Ho = (H - 1) * sh - 2 * ph + kh + oph
    Wo = (W - 1) * sw - 2 * pw + kw + opw
    y = np.zeros((N, O, Ho, Wo), dtype=np.result_type(x, w))
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    for o in range(O):
                        for u in range(kh):
                            for v in range(kw):
                                r = i * sh + u - ph
                                s = j * sw + v - pw
                                if 0 <= r < Ho and 0 <= s < Wo:
                                    y[n, o, r, s] += w[c, o, u, v] * x[n, c, i, j]
    if b is not None:
        for n in range(N):
            for o in range(O):
                for r in range(Ho):
                    for s in range(Wo):
                        y[n, o, r, s] += b[o]
    return y


def dense(x, w, b=None):
    """y[n,o] = b[o] + sum_i x[n,i] * w[o,i]   (w is (out, in), as torch.nn.Linear)."""
    N, I = x.shape
    O = w.shape[0]
    y = np.zeros((N, O), dtype=np.result_type(x, w))
    for n in range(N):
        for o in range(O):
            acc = 0.0 if b is None else b[o]
            for i in range(I):
                acc += x[n, i] * w[o, i]
            y[n, o] = acc
    return y


def avg_pool2d(x, kernel, stride=None):
    """y[n,c,i,j] = mean_{u<kH, v<kW} x[n,c, i*sH + u, j*sW + v]   (no padding, floor mode)."""
    (kh, kw) = _pair(kernel)
    (sh, sw) = (kh, kw) if stride is None else _pair(stride)
    N, C, H, W = x.shape
    Ho = (H - kh) // sh + 1
    Wo = (W - kw) // sw + 1
    y = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    acc = 0.0
                    for u in range(kh):
                        for v in range(kw):
                            acc += x[n, c, i * sh + u, j * sw + v]
                    y[n, c, i, j] = acc / (kh * kw)
    return y


def mse(pred, target):
    """L = (1/M) sum_k (pred_k - target_k)^2 over all M entries."""
    p, t = np.ravel(pred), np.ravel(target)
    total = 0.0
    for k in range(p.size):
        total += (float(p[k]) - float(t[k])) ** 2
    return total / p.size


def _clamped_log(a):
    # PyTorch's BCELoss clamps each log at -100, so log(0) = -inf becomes -100.
    return -100.0 if a <= 0.0 else max(math.log(a), -100.0)


def bce(p, target):
    """L = -(1/M) sum_k [t_k max(log p_k, -100) + (1 - t_k) max(log(1 - p_k), -100)]."""
    pf, tf = np.ravel(p), np.ravel(target)
    total = 0.0
    for k in range(pf.size):
        pk, tk = float(pf[k]), float(tf[k])
        total += tk * _clamped_log(pk) + (1.0 - tk) * _clamped_log(1.0 - pk)
    return -total / pf.size


def bce_with_logits(z, target):
    """L = (1/M) sum_k [log(1 + e^{z_k}) - t_k z_k]   (= bce(sigmoid(z), t) without clamping)."""
    zf, tf = np.ravel(z), np.ravel(target)
    total = 0.0
    for k in range(zf.size):
        zk, tk = float(zf[k]), float(tf[k])
        # log(1 + e^z) written so that e^(large) is never formed: for z >= 0 it is z + log(1 + e^-z).
        softplus = zk + math.log1p(math.exp(-zk)) if zk >= 0 else math.log1p(math.exp(zk))
        total += softplus - tk * zk
    return total / zf.size


def dice(p, target, smooth=1.0):
    """L = (1/N) sum_n [1 - (2 sum_k p_nk t_nk + s) / (sum_k p_nk + sum_k t_nk + s)]  (per sample n)."""
    N = p.shape[0]
    pf, tf = np.reshape(p, (N, -1)), np.reshape(target, (N, -1))
    total = 0.0
    for n in range(N):
        inter = sp = st = 0.0
        for k in range(pf.shape[1]):
            inter += float(pf[n, k]) * float(tf[n, k])
            sp += float(pf[n, k])
            st += float(tf[n, k])
        total += 1.0 - (2.0 * inter + smooth) / (sp + st + smooth)
    return total / N
