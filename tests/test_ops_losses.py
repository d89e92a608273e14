"""Losses (mse, bce, bce_with_logits, dice): values vs the loop oracle and by hand, dtypes,
gradient checks, numerical stability at the extremes, bad input, PyTorch as a cross-check."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import naive
from minisnn import functional as F
from minisnn.gradcheck import gradcheck, gradcheck_op
from minisnn.ops import (
    bce_backward,
    bce_forward,
    bce_with_logits_backward,
    bce_with_logits_forward,
    dice_backward,
    dice_forward,
    mse_backward,
    mse_forward,
)
from strategies import seeds

TOL = dict(rtol=1e-12, atol=1e-12)

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


def _probabilities(r, shape, lo=0.0, hi=1.0):
    return r.uniform(lo, hi, shape)


# ----------------------------------------------------------------------------- vs naive


@given(shape=shapes, seed=seeds)
def test_mse_matches_naive(shape, seed):
    r = np.random.default_rng(seed)
    p, t = r.standard_normal(shape), r.standard_normal(shape)
    loss, _ = mse_forward(p, t)
    assert np.ndim(loss) == 0
    np.testing.assert_allclose(loss, naive.mse(p, t), **TOL)


@given(shape=shapes, seed=seeds, hard=st.booleans(), exact_ends=st.booleans())
def test_bce_matches_naive(shape, seed, hard, exact_ends):
    r = np.random.default_rng(seed)
    p = _probabilities(r, shape)
    if exact_ends:  # some entries exactly 0 or 1, where the -100 clamp decides
        p = np.where(r.random(shape) < 0.3, np.round(p), p)
    t = r.integers(0, 2, shape).astype(float) if hard else _probabilities(r, shape)
    loss, _ = bce_forward(p, t)
    np.testing.assert_allclose(loss, naive.bce(p, t), **TOL)


@given(shape=shapes, seed=seeds, scale=st.sampled_from([0.1, 1.0, 10.0, 100.0, 1000.0]), hard=st.booleans())
def test_bce_with_logits_matches_naive(shape, seed, scale, hard):
    r = np.random.default_rng(seed)
    z = scale * r.standard_normal(shape)
    t = r.integers(0, 2, shape).astype(float) if hard else _probabilities(r, shape)
    loss, _ = bce_with_logits_forward(z, t)
    np.testing.assert_allclose(loss, naive.bce_with_logits(z, t), **TOL)


@given(shape=shapes, seed=seeds, smooth=st.sampled_from([0.0, 1e-6, 0.5, 1.0, 3.0]), hard=st.booleans())
def test_dice_matches_naive(shape, seed, smooth, hard):
    r = np.random.default_rng(seed)
    p = _probabilities(r, shape, 0.01, 1.0)  # strictly positive: smooth = 0 is then well defined
    t = r.integers(0, 2, shape).astype(float) if hard else _probabilities(r, shape)
    loss, _ = dice_forward(p, t, smooth=smooth)
    np.testing.assert_allclose(loss, naive.dice(p, t, smooth), **TOL)


# ----------------------------------------------------------------------------- hand-computed


def test_mse_hand_computed():
    # pred [1, 2, 3], target [1, 0, 0]: (0 + 4 + 9) / 3 = 13/3;  dL/dpred = 2 (p - t) / 3 = [0, 4/3, 2]
    loss, cache = mse_forward(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0]))
    assert loss == pytest.approx(13 / 3, rel=1e-15)
    np.testing.assert_allclose(mse_backward(np.float64(1.0), cache), [0.0, 4 / 3, 2.0], **TOL)


def test_bce_hand_computed():
    # p [0.5, 0.9], t [1, 0]: -(log 0.5 + log 0.1) / 2 = (ln 2 + ln 10) / 2 = ln(20) / 2
    # dL/dp = (p - t) / (p (1 - p)) / 2 = [-0.5/0.25, 0.9/0.09] / 2 = [-1, 5]
    loss, cache = bce_forward(np.array([0.5, 0.9]), np.array([1.0, 0.0]))
    assert loss == pytest.approx(math.log(20) / 2, rel=1e-14)
    np.testing.assert_allclose(bce_backward(np.float64(1.0), cache), [-1.0, 5.0], rtol=1e-13)


def test_bce_with_logits_hand_computed():
    # z [0, ln 3] (p = [1/2, 3/4]), t [1, 0]: (-log(1/2) - log(1/4)) / 2 = (ln 2 + 2 ln 2) / 2 = 1.5 ln 2
    # dL/dz = (sigmoid(z) - t) / 2 = [(0.5 - 1)/2, 0.75/2] = [-0.25, 0.375]
    loss, cache = bce_with_logits_forward(np.array([0.0, math.log(3)]), np.array([1.0, 0.0]))
    assert loss == pytest.approx(1.5 * math.log(2), rel=1e-14)
    np.testing.assert_allclose(bce_with_logits_backward(np.float64(1.0), cache), [-0.25, 0.375], rtol=1e-13)


def test_dice_hand_computed():
    p = np.array([[0.5, 0.5], [1.0, 0.0]])
    t = np.array([[1.0, 0.0], [1.0, 0.0]])
    # smooth 1.  sample 0: inter 0.5, sum p 1, sum t 1 -> dice (2*0.5 + 1)/(1 + 1 + 1) = 2/3, loss 1/3
    #            sample 1: inter 1,   sum p 1, sum t 1 -> dice (2 + 1)/3 = 1,                 loss 0
    # mean over the batch: 1/6
    loss, cache = dice_forward(p, t, smooth=1.0)
    assert loss == pytest.approx(1 / 6, rel=1e-14)
    # dL/dp[n,k] = -(2 t den - num) / den^2 / N with num = 2 inter + s, den = sum p + sum t + s:
    # sample 0 (num 2, den 3): [-(6 - 2)/9/2, -(0 - 2)/9/2] = [-2/9, 1/9]
    # sample 1 (num 3, den 3): [-(6 - 3)/9/2, -(0 - 3)/9/2] = [-1/6, 1/6]
    np.testing.assert_allclose(dice_backward(np.float64(1.0), cache), [[-2 / 9, 1 / 9], [-1 / 6, 1 / 6]], **TOL)
    # smooth 0: sample 0 dice 1/2 -> loss 1/2; sample 1 dice 1 -> loss 0; mean 1/4
    assert dice_forward(p, t, smooth=0.0)[0] == pytest.approx(0.25, rel=1e-14)
    # a perfect prediction has loss 0; an all-zero prediction and target has dice s/s = 1 -> loss 0
    assert dice_forward(t, t)[0] == pytest.approx(0.0, abs=1e-15)
    assert dice_forward(np.zeros((2, 3)), np.zeros((2, 3)), smooth=1.0)[0] == 0.0


def test_dice_single_sample_hand_computed():
    # one sample, all four entries: inter 0.5 + 1 = 1.5, sum p 2, sum t 2, smooth 1
    # dice = (2*1.5 + 1) / (2 + 2 + 1) = 4/5, loss 1/5
    p = np.array([[[0.5, 0.5], [1.0, 0.0]]])
    t = np.array([[[1.0, 0.0], [1.0, 0.0]]])
    assert dice_forward(p, t, smooth=1.0)[0] == pytest.approx(0.2, rel=1e-14)


# ----------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize(
    "forward, backward, pred",
    [
        (mse_forward, mse_backward, np.array([[0.2, -1.0], [3.0, 0.5]])),
        (bce_forward, bce_backward, np.array([[0.2, 0.7], [0.999, 0.01]])),
        (bce_with_logits_forward, bce_with_logits_backward, np.array([[0.2, -1.0], [30.0, -7.0]])),
        (dice_forward, dice_backward, np.array([[0.2, 0.7], [0.999, 0.01]])),
    ],
    ids=["mse", "bce", "bce_with_logits", "dice"],
)
def test_float32_is_preserved(forward, backward, pred):
    target = np.array([[1.0, 0.0], [1.0, 0.0]])  # float64 target: cast to pred's dtype, not the reverse
    loss, cache = forward(pred.astype(np.float32), target)
    assert np.ndim(loss) == 0 and loss.dtype == np.float32
    grad = backward(np.float32(1.0), cache)
    assert grad.dtype == np.float32 and grad.shape == pred.shape
    loss64, _ = forward(pred, target)
    assert loss == pytest.approx(float(loss64), rel=1e-6)


# ----------------------------------------------------------------------------- gradients


def _case(r, shape=(3, 2, 4)):
    p = r.uniform(0.05, 0.95, shape)
    z = 3 * r.standard_normal(shape)
    t_hard = r.integers(0, 2, shape).astype(float)
    t_soft = r.uniform(0, 1, shape)
    return p, z, t_hard, t_soft


@pytest.mark.parametrize("hard", [True, False])
def test_loss_gradcheck_op(rng, hard):
    p, z, t_hard, t_soft = _case(rng)
    t = t_hard if hard else t_soft
    assert gradcheck_op(mse_forward, mse_backward, {"pred": z, "target": t})
    assert gradcheck_op(bce_forward, bce_backward, {"p": p, "target": t})
    assert gradcheck_op(bce_with_logits_forward, bce_with_logits_backward, {"z": z, "target": t})
    for smooth in (0.0, 0.5, 1.0):
        assert gradcheck_op(dice_forward, dice_backward, {"p": p, "target": t}, {"smooth": smooth})


@given(shape=shapes, seed=seeds)
def test_loss_gradcheck_drawn(shape, seed):
    p, z, t_hard, t_soft = _case(np.random.default_rng(seed), shape)
    assert gradcheck_op(mse_forward, mse_backward, {"pred": z, "target": t_soft})
    assert gradcheck_op(bce_forward, bce_backward, {"p": p, "target": t_soft})
    assert gradcheck_op(bce_with_logits_forward, bce_with_logits_backward, {"z": z, "target": t_hard})
    assert gradcheck_op(dice_forward, dice_backward, {"p": p, "target": t_hard}, {"smooth": 1.0})


def test_functional_losses_gradcheck(rng):
    p, z, t, _ = _case(rng)
    assert gradcheck(lambda a: F.mse_loss(a, t), z, names=["pred"])
    assert gradcheck(lambda a: F.bce_loss(a, t), p, names=["p"])
    assert gradcheck(lambda a: F.bce_with_logits_loss(a, t), z, names=["z"])
    assert gradcheck(lambda a: F.dice_loss(a, t), p, names=["p"])
    assert gradcheck(lambda a: F.dice_loss(a, t, smooth=0.25), p, names=["p"])
    # a loss composed with autodiff ops: the gradient flows through both
    assert gradcheck(lambda a: F.bce_with_logits_loss(a * 2.0 - 1.0, t) + F.mse_loss(a, t) * 0.5, z)


# ----------------------------------------------------------------------------- stability


def test_bce_with_logits_is_stable_at_the_extremes():
    z = np.array([1000.0, -1000.0, 1000.0, -1000.0, 0.0])
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    # per entry: softplus(z) - t z = [1000 - 1000, 0 - 0, 1000 - 0, 0 + 1000, ln 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid-value warnings either
        for dtype in (np.float64, np.float32):
            loss, cache = bce_with_logits_forward(z.astype(dtype), t)
            grad = bce_with_logits_backward(dtype(1.0), cache)
            assert np.isfinite(loss) and np.all(np.isfinite(grad))
            assert loss == pytest.approx((2000 + math.log(2)) / 5, rel=1e-6)
            # (sigmoid(z) - t) / 5 = [0, 0, 1, -1, -0.5] / 5
            np.testing.assert_allclose(grad, np.array([0.0, 0.0, 1.0, -1.0, -0.5]) / 5, atol=1e-7)


def test_bce_is_finite_at_p_0_and_1():
    p = np.array([0.0, 1.0, 0.0, 1.0])
    t = np.array([1.0, 0.0, 0.0, 1.0])
    # log clamped at -100: [-(-100), -(-100), 0, 0] -> mean 50; no 0 * inf = nan on the right answers
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, cache = bce_forward(p, t)
        grad = bce_backward(np.float64(1.0), cache)
    assert loss == 50.0
    assert np.all(np.isfinite(grad))
    # PyTorch's gradient: (p - t) / max(p (1 - p), 1e-12) / M
    np.testing.assert_allclose(grad, np.array([-1e12, 1e12, 0.0, 0.0]) / 4, rtol=1e-12)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "name, forward",
    [("mse", mse_forward), ("bce", bce_forward), ("bce_with_logits", bce_with_logits_forward), ("dice", dice_forward)],
)
def test_loss_bad_input(name, forward):
    half = np.full((2, 3), 0.5)
    with pytest.raises(ValueError, match=rf"{name}.*\(2, 3\).*\(3, 2\)"):
        forward(half, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=rf"{name}.*\(3, 1\).*\(3,\)"):  # never a silent broadcast
        forward(np.full((3, 1), 0.5), np.zeros(3))
    with pytest.raises(ValueError, match=rf"{name}.*\(2, 3\).*\(\)"):  # not even from a scalar
        forward(half, 0.0)
    with pytest.raises(ValueError, match=rf"{name}.*pred.*int64"):
        forward(np.ones((2, 3), dtype=np.int64), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=rf"{name}.*empty.*\(0, 3\)"):
        forward(np.zeros((0, 3)), np.zeros((0, 3)))


def test_dice_bad_smoothing():
    with pytest.raises(ValueError, match=r"dice.*smooth.*-1"):
        dice_forward(np.full((2, 3), 0.5), np.zeros((2, 3)), smooth=-1.0)
    with pytest.raises(ValueError, match=r"dice.*smooth=0"):
        dice_forward(np.zeros((2, 3)), np.zeros((2, 3)), smooth=0.0)


# ----------------------------------------------------------------------------- PyTorch cross-check


@given(shape=shapes, seed=seeds)
def test_losses_match_torch(shape, seed):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    p, z, t, _ = _case(np.random.default_rng(seed), shape)
    p = np.where(np.random.default_rng(seed + 1).random(shape) < 0.2, np.round(p), p)  # some exact 0 / 1
    z = z * 300  # includes large logits
    for ours, theirs, x in (
        ((mse_forward, mse_backward), tf.mse_loss, z),
        ((bce_forward, bce_backward), tf.binary_cross_entropy, p),
        ((bce_with_logits_forward, bce_with_logits_backward), tf.binary_cross_entropy_with_logits, z),
    ):
        loss, cache = ours[0](x, t)
        tx = torch.tensor(x, requires_grad=True)
        tl = theirs(tx, torch.tensor(t))
        tl.backward(torch.tensor(0.7, dtype=torch.float64))
        np.testing.assert_allclose(loss, tl.item(), rtol=1e-12, atol=1e-12)
        # rtol 1e-8, not 1e-12: where p is exactly 0 or 1 PyTorch divides by its clamp 1e-12 stored
        # as a float32 constant (9.9999999600e-13), a 4e-9 relative difference on a 1e11 gradient.
        np.testing.assert_allclose(ours[1](np.float64(0.7), cache), tx.grad.numpy(), rtol=1e-8, atol=1e-15)
