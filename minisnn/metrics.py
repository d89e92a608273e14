"""Evaluation metrics: box IoU and hit rate, Dice overlap, mean with standard error.

All functions take plain NumPy arrays (or anything :func:`numpy.asarray` accepts), compute in
float64 and return Python floats or float64 arrays.  None of them ever returns NaN: degenerate
cases have a defined value (documented per function) and non-finite inputs are rejected with a
``ValueError``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_iou", "hit_rate", "mean_and_sem", "dice"]


def _finite(name: str, values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: values must be finite (got nan or inf)")
    return values


def box_iou(pred, target) -> np.ndarray:
    """Intersection over union of pairs of axis-aligned boxes.

    Parameters
    ----------
    pred, target : array_like, shape (N, 4)
        Boxes ``[x1, y1, x2, y2]``, row ``i`` of ``pred`` compared with row ``i`` of
        ``target``.  Corners may come in either order (a network's raw output need not have
        ``x1 <= x2``): each coordinate pair is sorted first.  A single box of shape ``(4,)``
        is also accepted.

    Returns
    -------
    numpy.ndarray, shape (N,)
        IoU in ``[0, 1]``.  Boxes that only touch have IoU 0; two boxes of zero area (so a
        union of zero area) also give 0.

    Examples
    --------
    >>> box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2]])   # half overlap: 2 / (4 + 4 - 2)
    array([0.33333333])
    """
    pred, target = _finite("box_iou", pred), _finite("box_iou", target)
    if pred.shape != target.shape or pred.shape[-1:] != (4,) or pred.ndim > 2:
        raise ValueError(f"box_iou: pred and target must both have shape (N, 4), got {pred.shape} and {target.shape}")
    pred, target = pred.reshape(-1, 4), target.reshape(-1, 4)

    def corners(b):
        return (np.minimum(b[:, 0], b[:, 2]), np.minimum(b[:, 1], b[:, 3]),
                np.maximum(b[:, 0], b[:, 2]), np.maximum(b[:, 1], b[:, 3]))

    px1, py1, px2, py2 = corners(pred)
    tx1, ty1, tx2, ty2 = corners(target)
    inter_w = np.clip(np.minimum(px2, tx2) - np.maximum(px1, tx1), 0.0, None)
    inter_h = np.clip(np.minimum(py2, ty2) - np.maximum(py1, ty1), 0.0, None)
    inter = inter_w * inter_h
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return np.clip(iou, 0.0, 1.0)  # guard against rounding just above 1


def hit_rate(iou, threshold) -> float:
    """Fraction of IoU values at or above ``threshold`` (e.g. 0.5 for a "correct" box).

    Raises
    ------
    ValueError
        If ``iou`` is empty or holds non-finite values, or ``threshold`` is not finite.
    """
    iou = _finite("hit_rate", iou).ravel()
    if iou.size == 0:
        raise ValueError("hit_rate: no IoU values")
    if not np.isfinite(threshold):
        raise ValueError(f"hit_rate: threshold must be finite, got {threshold!r}")
    return float(np.mean(iou >= threshold))


def mean_and_sem(values) -> tuple[float, float]:
    """Mean and standard error of the mean, ``sd(ddof=1) / sqrt(n)``.

    The standard error is 0.0 for a single value (it is not defined there).

    Raises
    ------
    ValueError
        If ``values`` is empty or holds non-finite values.
    """
    values = _finite("mean_and_sem", values).ravel()
    n = values.size
    if n == 0:
        raise ValueError("mean_and_sem: no values")
    sem = float(np.std(values, ddof=1) / np.sqrt(n)) if n >= 2 else 0.0
    return float(np.mean(values)), sem


def dice(pred_mask, target_mask) -> float:
    """Dice overlap ``2 |A & B| / (|A| + |B|)`` of two masks; 1.0 when both are empty.

    Parameters
    ----------
    pred_mask, target_mask : array_like of bool or of 0/1 values
        Masks of the same (any) shape.

    Raises
    ------
    ValueError
        If the shapes differ or a non-boolean mask holds values other than 0 and 1 (for
        instance probabilities that were not thresholded).
    """
    a, b = _mask("pred_mask", pred_mask), _mask("target_mask", target_mask)
    if a.shape != b.shape:
        raise ValueError(f"dice: masks must have the same shape, got {a.shape} and {b.shape}")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def _mask(name: str, mask) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask
    if not np.all((mask == 0) | (mask == 1)):
        raise ValueError(f"dice: {name} must be boolean or hold only 0 and 1")
    return mask != 0
