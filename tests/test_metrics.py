"""minisnn.metrics: box IoU (hand cases and properties), hit rate, mean with SEM, Dice."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minisnn.metrics import box_iou, dice, hit_rate, mean_and_sem

# ----------------------------------------------------------------------------- box_iou


@pytest.mark.parametrize("pred, target, expected", [
    ([0, 0, 1, 1], [0, 0, 1, 1], 1.0),                    # identical
    ([0, 0, 1, 1], [2, 2, 3, 3], 0.0),                    # disjoint
    ([0, 0, 2, 2], [1, 0, 3, 2], 1 / 3),                  # half overlap: 2 / (4 + 4 - 2)
    ([0, 0, 1, 1], [1, 0, 2, 1], 0.0),                    # touching edges
    ([0, 0, 1, 1], [1, 1, 2, 2], 0.0),                    # touching corners
    ([0, 0, 4, 4], [1, 1, 3, 3], 4 / 16),                 # contained
    ([1, 1, 3, 3], [0, 0, 4, 4], 4 / 16),                 # containing
    ([2, 2, 0, 0], [1, 0, 3, 2], 1 / 3),                  # swapped corners in pred
    ([2, 0, 0, 2], [0, 0, 2, 2], 1.0),                    # x swapped only
    ([0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5], 0.0),    # zero-area union
    ([0.2, 0.2, 0.2, 0.8], [0, 0, 1, 1], 0.0),            # zero-width box inside another
    ([0.1, 0.2, 0.5, 0.6], [0.3, 0.4, 0.7, 0.9], 0.04 / (0.16 + 0.2 - 0.04)),
])
def test_box_iou_hand_cases(pred, target, expected):
    iou = box_iou(np.array([pred], float), np.array([target], float))
    assert iou.shape == (1,) and iou.dtype == np.float64
    assert iou[0] == pytest.approx(expected, abs=1e-12)


def test_box_iou_rows_are_pairs():
    pred = np.array([[0, 0, 1, 1], [0, 0, 2, 2], [5, 5, 6, 6]], np.float32)
    target = np.array([[0, 0, 1, 1], [1, 0, 3, 2], [0, 0, 1, 1]], np.float32)
    np.testing.assert_allclose(box_iou(pred, target), [1, 1 / 3, 0], atol=1e-7)
    assert box_iou([0, 0, 1, 1], [0, 0, 1, 1]).shape == (1,)
    assert box_iou(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0,)


@pytest.mark.parametrize("pred, target", [
    (np.zeros((2, 4)), np.zeros((3, 4))),
    (np.zeros((2, 3)), np.zeros((2, 3))),
    (np.zeros((1, 2, 4)), np.zeros((1, 2, 4))),
    ([[0, 0, np.nan, 1]], [[0, 0, 1, 1]]),
    ([[0, 0, 1, 1]], [[0, 0, np.inf, 1]]),
])
def test_box_iou_rejects_bad_input(pred, target):
    with pytest.raises(ValueError, match="box_iou"):
        box_iou(pred, target)


coord = st.floats(-10, 10, allow_nan=False, width=64)
box = st.tuples(coord, coord, coord, coord)
boxes = st.integers(1, 6).flatmap(lambda n: st.tuples(st.lists(box, min_size=n, max_size=n),
                                                      st.lists(box, min_size=n, max_size=n)))


@given(boxes)
def test_box_iou_properties(pair):
    a, b = np.array(pair[0]), np.array(pair[1])
    iou = box_iou(a, b)
    assert iou.shape == (len(a),)
    assert np.all(np.isfinite(iou)) and np.all(iou >= 0) and np.all(iou <= 1)
    np.testing.assert_array_equal(iou, box_iou(b, a))                       # symmetric
    np.testing.assert_array_equal(iou, box_iou(a[:, [2, 3, 0, 1]], b))      # corner order does not matter


@given(st.lists(box, min_size=1, max_size=6))
def test_box_iou_of_a_box_with_itself(bs):
    a = np.array(bs)
    area = np.abs(a[:, 2] - a[:, 0]) * np.abs(a[:, 3] - a[:, 1])
    expected = np.where(area > 0, 1.0, 0.0)
    np.testing.assert_allclose(box_iou(a, a), expected, rtol=0, atol=1e-12)


@given(box, st.floats(0.01, 5), st.floats(0.01, 5))
def test_box_iou_shrinks_when_a_box_moves_away(b, w, h):
    x, y = b[0], b[1]
    a = np.array([[x, y, x + w, y + h]])
    shifts = [0.0, w / 4, w / 2, w, 2 * w]
    ious = [box_iou(a, a + [s, 0, s, 0])[0] for s in shifts]
    assert ious[0] == pytest.approx(1.0)
    assert all(p >= q for p, q in zip(ious, ious[1:]))
    assert ious[-1] == 0.0


# ----------------------------------------------------------------------------- hit_rate, mean_and_sem


def test_hit_rate():
    iou = np.array([0.2, 0.5, 0.75, 0.9])
    assert hit_rate(iou, 0.5) == 0.75
    assert hit_rate(iou, 0.75) == 0.5
    assert hit_rate(iou, 0.95) == 0.0
    assert hit_rate(iou, 0.0) == 1.0
    assert isinstance(hit_rate(iou, 0.5), float)
    assert hit_rate([[0.6, 0.4]], 0.5) == 0.5
    for bad in ([], [0.5, np.nan]):
        with pytest.raises(ValueError, match="hit_rate"):
            hit_rate(bad, 0.5)
    with pytest.raises(ValueError, match="threshold"):
        hit_rate([0.5], float("nan"))


def test_mean_and_sem():
    mean, sem = mean_and_sem([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert sem == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert mean_and_sem([7]) == (7.0, 0.0)
    assert mean_and_sem(np.float32([2, 2, 2])) == (2.0, 0.0)
    mean, sem = mean_and_sem(np.array([0.5, 0.7]))
    assert isinstance(mean, float) and isinstance(sem, float)
    assert sem == pytest.approx(math.sqrt(0.02) / math.sqrt(2))
    for bad in ([], [1.0, np.inf]):
        with pytest.raises(ValueError, match="mean_and_sem"):
            mean_and_sem(bad)


# ----------------------------------------------------------------------------- dice


def test_dice_hand_cases():
    a = np.array([[1, 1, 0], [0, 0, 0]])
    b = np.array([[0, 1, 1], [0, 0, 0]])
    assert dice(a, b) == pytest.approx(2 * 1 / 4)
    assert dice(a, a) == 1.0
    assert dice(a, 1 - a) == 0.0
    assert dice(np.zeros((2, 3)), np.zeros((2, 3))) == 1.0             # both empty
    assert dice(np.zeros(5, bool), np.ones(5, bool)) == 0.0            # one empty
    assert dice(a.astype(bool), b.astype(np.float32)) == pytest.approx(0.5)
    vol = np.zeros((4, 4, 4), bool)
    vol[:2] = True                                                      # 32 voxels
    other = np.zeros_like(vol)
    other[1:3] = True                                                   # 32 voxels, 16 shared
    assert dice(vol, other) == pytest.approx(0.5)
    assert isinstance(dice(vol, other), float)


def test_dice_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        dice(np.zeros((2, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="0 and 1"):
        dice(np.array([0.2, 0.9]), np.array([0, 1]))


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_dice_properties(pairs):
    a, b = np.array(pairs, bool).T
    d = dice(a, b)
    assert 0.0 <= d <= 1.0 and d == dice(b, a)
    assert dice(a, a) == 1.0
