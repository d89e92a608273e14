"""Losses as forward/backward pairs (LEVEL 1a); every loss is reduced to a scalar mean.

=====================  ==============================================================
``mse``                ``mean((pred - target)^2)``
``bce``                ``-mean(t log p + (1 - t) log(1 - p))`` on probabilities ``p``;
                       like PyTorch each log is clamped at -100, so ``p`` = 0 or 1 is finite
``bce_with_logits``    the same on logits ``z`` (``p = sigmoid(z)``), computed stably as
                       ``mean(max(z, 0) - z t + log1p(exp(-|z|)))``
``dice``               ``mean_n (1 - (2 sum(p t) + s) / (sum p + sum t + s))``: soft Dice
                       per sample (sums over all but the first axis), smoothing ``s``
=====================  ==============================================================

``*_forward(pred, target, ...) -> (loss, cache)`` where ``loss`` is a 0-d array;
``*_backward(dloss, cache) -> dpred`` (the target gets no gradient).
"""

from __future__ import annotations

import numpy as np

from ._checks import as_float, same_shape


def _pair(op, pred, target):
    pred = as_float(pred, op, "pred")
    target = np.asarray(target, dtype=pred.dtype)
    same_shape(op, pred, target)
    if pred.size == 0:
        raise ValueError(f"{op}: pred is empty (shape {pred.shape})")
    return pred, target


# ----------------------------------------------------------------------------- MSE


def mse_forward(pred, target):
    """``loss = mean((pred - target)^2)`` (a 0-d array) for ``pred`` and ``target`` of one shape;
    returns ``(loss, cache)``."""
    pred, target = _pair("mse", pred, target)
    diff = pred - target
    return np.asarray(np.mean(diff * diff, dtype=pred.dtype)), diff


def mse_backward(dloss, cache):
    """``dpred = dloss * 2 (pred - target) / pred.size``, the shape of ``pred``."""
    diff = cache
    return (2.0 * dloss / diff.size * diff).astype(diff.dtype, copy=False)


# ----------------------------------------------------------------------------- BCE

_LOG_MIN = -100.0  # PyTorch's BCELoss clamps log() at -100
_EPS = 1e-12  # ... and its gradient's denominator at 1e-12


def bce_forward(p, target):
    """``loss = -mean(t log p + (1 - t) log(1 - p))`` on probabilities ``p`` (logs clamped at
    -100, as PyTorch); ``p`` and ``target`` of one shape.  Returns ``(loss, cache)``."""
    p, t = _pair("bce", p, target)
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(p), _LOG_MIN)
        log_q = np.maximum(np.log1p(-p), _LOG_MIN)
    return np.asarray(-np.mean(t * log_p + (1 - t) * log_q, dtype=p.dtype)), (p, t)


def bce_backward(dloss, cache):
    """``dp = dloss * (p - t) / (p (1 - p)) / p.size`` (denominator clamped at 1e-12)."""
    p, t = cache
    return (dloss / p.size * (p - t) / np.maximum(p * (1 - p), _EPS)).astype(p.dtype, copy=False)


def bce_with_logits_forward(z, target):
    """BCE of ``sigmoid(z)``, stably: ``loss = mean(max(z, 0) - z t + log1p(exp(-|z|)))``;
    ``z`` and ``target`` of one shape.  Returns ``(loss, cache)``."""
    z, t = _pair("bce_with_logits", z, target)
    loss = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    return np.asarray(np.mean(loss, dtype=z.dtype)), (z, t)


def bce_with_logits_backward(dloss, cache):
    """``dz = dloss * (sigmoid(z) - t) / z.size``."""
    z, t = cache
    sig = 0.5 * (1 + np.tanh(0.5 * z))  # sigmoid without overflow
    return (dloss / z.size * (sig - t)).astype(z.dtype, copy=False)


# ----------------------------------------------------------------------------- Dice


def dice_forward(p, target, smooth=1.0):
    """Soft Dice loss per sample (axis 0 is the batch), averaged over the batch."""
    p, t = _pair("dice", p, target)
    if smooth < 0:
        raise ValueError(f"dice: smooth must be >= 0, got {smooth}")
    axes = tuple(range(1, p.ndim))
    inter = np.sum(p * t, axis=axes)
    denom = np.sum(p, axis=axes) + np.sum(t, axis=axes) + smooth
    if np.any(denom == 0):
        raise ValueError("dice: an all-zero prediction and target with smooth=0 has no Dice score")
    dice = (2 * inter + smooth) / denom
    return np.asarray(np.mean(1 - dice, dtype=p.dtype)), (p, t, inter, denom, smooth)


def dice_backward(dloss, cache):
    """Per sample ``n``, with ``I = sum(p t)``, ``D = sum p + sum t + s``:
    ``dp = -dloss (2 t D - (2 I + s)) / D^2 / N`` (``N = p.shape[0]``), the shape of ``p``."""
    p, t, inter, denom, smooth = cache
    shape = (-1,) + (1,) * (p.ndim - 1)
    num = (2 * inter + smooth).reshape(shape)
    den = denom.reshape(shape)
    # d(1 - dice)/dp = -(2 t den - num) / den^2
    grad = -(2 * t * den - num) / (den * den)
    return (dloss / p.shape[0] * grad).astype(p.dtype, copy=False)


__all__ = [
    "mse_forward", "mse_backward",
    "bce_forward", "bce_backward",
    "bce_with_logits_forward", "bce_with_logits_backward",
    "dice_forward", "dice_backward",
]
