"""Optimizers: SGD (plain, momentum) and Adam against hand-computed updates, Adam/SGD against
torch.optim (optional), state save/restore, argument checks, skipped parameters, and a tiny CNN
that learns."""

from __future__ import annotations

import numpy as np
import pytest

from minisnn import functional as F
from minisnn.layers import AvgPool2d, Conv2d, Dense, Flatten, Module, Parameter, Sequential
from minisnn.optim import SGD, Adam

P0 = [1.0, -2.0]
GRADS = [[0.5, 1.0], [-1.0, 2.0], [0.25, -0.5]]  # the gradient fed at steps 1, 2, 3


def _steps(opt, param, grads=GRADS):
    seen = []
    for g in grads:
        param.grad = np.array(g, dtype=param.dtype)
        opt.step()
        seen.append(param.data.copy())
    return seen


def test_sgd_hand_computed():
    # p <- p - lr g with lr = 0.1:
    # step 1: [1, -2]       - 0.1 [0.5, 1]     = [0.95, -2.1]
    # step 2: [0.95, -2.1]  - 0.1 [-1, 2]      = [1.05, -2.3]
    # step 3: [1.05, -2.3]  - 0.1 [0.25, -0.5] = [1.025, -2.25]
    p = Parameter(P0)
    got = _steps(SGD([p], lr=0.1), p)
    np.testing.assert_allclose(got, [[0.95, -2.1], [1.05, -2.3], [1.025, -2.25]], rtol=0, atol=1e-15)


def test_sgd_momentum_hand_computed():
    # b <- 0.9 b + g (b = g at step 1);  p <- p - 0.1 b
    # step 1: b = [0.5, 1]
    #         p = [1 - 0.05, -2 - 0.1]                                = [0.95, -2.1]
    # step 2: b = 0.9 [0.5, 1] + [-1, 2]          = [-0.55, 2.9]
    #         p = [0.95 + 0.055, -2.1 - 0.29]                          = [1.005, -2.39]
    # step 3: b = 0.9 [-0.55, 2.9] + [0.25, -0.5] = [-0.245, 2.11]
    #         p = [1.005 + 0.0245, -2.39 - 0.211]                      = [1.0295, -2.601]
    p = Parameter(P0)
    got = _steps(SGD([p], lr=0.1, momentum=0.9), p)
    np.testing.assert_allclose(got, [[0.95, -2.1], [1.005, -2.39], [1.0295, -2.601]], rtol=0, atol=1e-14)


def test_sgd_weight_decay_hand_computed():
    # g + wd p with wd = 0.5: step 1: [0.5 + 0.5, 1 - 1] = [1, 0] -> p = [1 - 0.1, -2] = [0.9, -2]
    p = Parameter(P0)
    got = _steps(SGD([p], lr=0.1, weight_decay=0.5), p, GRADS[:1])
    np.testing.assert_allclose(got[0], [0.9, -2.0], rtol=0, atol=1e-15)


def test_adam_hand_computed():
    # lr 0.1, betas (0.9, 0.999), eps 1e-8 outside the root:
    #   m <- 0.9 m + 0.1 g;  v <- 0.999 v + 0.001 g^2
    #   p <- p - 0.1 (m / (1 - 0.9^t)) / (sqrt(v / (1 - 0.999^t)) + 1e-8)
    # step 1: m = 0.1 g, v = 0.001 g^2: m_hat = g, v_hat = g^2, so the step is 0.1 g / (|g| + 1e-8) ~ 0.1 sign(g)
    #         p = [1 - 0.1 * 0.5/0.50000001, -2 - 0.1 * 1/1.00000001] = [0.900000002, -2.099999999]
    # step 2: g = [-1, 2]:  m = 0.09 [0.5, 1] + 0.1 [-1, 2]               = [-0.055, 0.29]
    #         v = 0.999 * 0.001 [0.25, 1] + 0.001 [1, 4]                   = [0.00124975, 0.004999]
    #         m_hat = m / 0.19     = [-0.2894736842, 1.5263157895]
    #         v_hat = v / 0.001999 = [0.6251875938, 2.5007503752], sqrt = [0.7906880509, 1.5813761018]
    #         step = 0.1 m_hat / sqrt = [-0.0366103527, 0.0965182026]  ->  p = [0.9366103542, -2.1965182010]
    # step 3: g = [0.25, -0.5]:  m = 0.9 [-0.055, 0.29] + 0.1 [0.25, -0.5] = [-0.0245, 0.211]
    #         v = 0.999 [0.00124975, 0.004999] + 0.001 [0.0625, 0.25]       = [0.00131100025, 0.005244001]
    #         m_hat = m / 0.271        = [-0.0904059041, 0.7785977860]
    #         v_hat = v / 0.002997001  = [0.4374373749, 1.7497494996], sqrt = [0.6613904859, 1.3227809719]
    #         step = [-0.0136690663, 0.0588606733]  ->  p = [0.9502794205, -2.2553788743]
    p = Parameter(P0)
    opt = Adam([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    got = _steps(opt, p)
    expected = [[0.900000002, -2.099999999], [0.9366103542, -2.1965182010], [0.9502794205, -2.2553788743]]
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-9)
    np.testing.assert_allclose(opt.state[0]["exp_avg"], [-0.0245, 0.211], rtol=1e-12)
    np.testing.assert_allclose(opt.state[0]["exp_avg_sq"], [0.00131100025, 0.005244001], rtol=1e-12)
    assert opt.state[0]["step"] == 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wd, scale", [(0.0, 1.0), (0.02, 0.25)])
@pytest.mark.parametrize("n", [40_001, 1_001], ids=["parallel", "serial"])
def test_adam_one_pass_equals_the_numpy_formula(dtype, wd, scale, n):
    """Adam's one-pass kernel gives, bit for bit, what the rule written array by array in NumPy
    gives (float32 and float64; weight decay and a per-parameter lr_scale; a parameter of
    several kernel blocks, which runs in parallel, and one of less than a block, which runs
    on the calling thread; gradients of very different sizes, a float64 gradient)."""
    from minisnn.kernels.elementwise import BLOCK

    assert (n > BLOCK) == (n == 40_001)
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 2, n) for _ in range(4)]
    lr, (b1, b2), eps = 3e-3, (0.9, 0.999), 1e-8
    p, m, v = p0.copy(), np.zeros(n, dtype), np.zeros(n, dtype)
    for t, g in enumerate(grads, 1):  # the formula, one NumPy array after another
        g = g.astype(dtype)
        if wd:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step = (lr / (1 - b1**t)) * m / (np.sqrt(v / (1 - b2**t)) + eps)
        p = p - (step if scale == 1.0 else step * p.dtype.type(scale))
    param = Parameter(p0.copy())
    param.lr_scale = scale
    opt = Adam([param], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    for g in grads:
        param.grad = g
        opt.step()
    assert param.dtype == dtype
    np.testing.assert_array_equal(param.data, p)
    np.testing.assert_array_equal(opt.state[0]["exp_avg"], m)
    np.testing.assert_array_equal(opt.state[0]["exp_avg_sq"], v)


def test_updates_keep_the_parameter_dtype():
    p = Parameter(np.array(P0, dtype=np.float32))
    for opt in (SGD([p], lr=0.1, momentum=0.9), Adam([p], lr=0.1)):
        p.grad = np.array([0.5, 1.0])  # a float64 gradient must not promote the float32 parameter
        opt.step()
        assert p.dtype == np.float32


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda ps: Adam(ps, lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01),
         lambda torch, ts: torch.optim.Adam(ts, lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)),
        (lambda ps: Adam(ps), lambda torch, ts: torch.optim.Adam(ts)),
        (lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.05),
         lambda torch, ts: torch.optim.SGD(ts, lr=0.1, momentum=0.9, weight_decay=0.05)),
    ],
    ids=["adam", "adam-defaults", "sgd-momentum"],
)
def test_matches_torch_optim(rng, ours, theirs):
    torch = pytest.importorskip("torch")
    shapes = [(3, 2), (4,)]
    init = [rng.standard_normal(s) for s in shapes]
    params = [Parameter(a) for a in init]
    tparams = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    opt, topt = ours(params), theirs(torch, tparams)
    for _ in range(6):
        grads = [rng.standard_normal(s) for s in shapes]
        for p, tp, g in zip(params, tparams, grads):
            p.grad, tp.grad = g, torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make", [lambda ps: Adam(ps, lr=0.01), lambda ps: SGD(ps, lr=0.1, momentum=0.5)],
                         ids=["adam", "sgd"])
def test_state_dict_restore_continues_identically(rng, make):
    grads = [[rng.standard_normal((2, 3)), rng.standard_normal(3)] for _ in range(4)]
    params = [Parameter(rng.standard_normal((2, 3))), Parameter(rng.standard_normal(3))]
    opt = make(params)

    def run(opt, params, gs):
        for step in gs:
            for p, g in zip(params, step):
                p.grad = g
            opt.step()

    run(opt, params, grads[:2])
    saved_params = [p.data.copy() for p in params]
    saved_state = opt.state_dict()
    run(opt, params, grads[2:])
    # a fresh optimizer (different hyper-parameters even) resumed from the saved state
    resumed_params = [Parameter(a) for a in saved_params]
    resumed = type(opt)(resumed_params, lr=123.0)
    resumed.load_state_dict(saved_state)
    run(resumed, resumed_params, grads[2:])
    for p, q in zip(params, resumed_params):
        np.testing.assert_array_equal(p.data, q.data)
    # the saved state is a copy: stepping did not change it
    assert saved_state["hyper"]["lr"] == opt.lr
    if isinstance(opt, Adam):
        assert all(s["step"] == 2 for s in saved_state["state"])


def test_load_state_dict_rejects_mismatches(rng):
    opt = Adam([Parameter(np.zeros(3))], lr=0.1)
    opt.params[0].grad = np.ones(3)
    opt.step()
    state = opt.state_dict()
    with pytest.raises(ValueError, match=r"1 parameter states for 2 parameters"):
        Adam([Parameter(np.zeros(3)), Parameter(np.zeros(2))]).load_state_dict(state)
    with pytest.raises(ValueError, match=r"exp_avg.*\(3,\).*\(4,\)"):
        Adam([Parameter(np.zeros(4))]).load_state_dict(state)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda ps: SGD(ps, lr=0.0), "lr"),
        (lambda ps: SGD(ps, lr=-0.1), "lr"),
        (lambda ps: SGD(ps, lr=float("nan")), "lr"),
        (lambda ps: SGD(ps, lr=0.1, momentum=-0.5), "momentum"),
        (lambda ps: SGD(ps, lr=0.1, weight_decay=-1.0), "weight_decay"),
        (lambda ps: Adam(ps, lr=0.0), "lr"),
        (lambda ps: Adam(ps, lr=float("inf")), "lr"),
        (lambda ps: Adam(ps, betas=(1.0, 0.999)), r"betas\[0\]"),
        (lambda ps: Adam(ps, betas=(-0.1, 0.999)), r"betas\[0\]"),
        (lambda ps: Adam(ps, betas=(0.9, 1.0)), r"betas\[1\]"),
        (lambda ps: Adam(ps, eps=-1e-8), "eps"),
        (lambda ps: Adam(ps, weight_decay=-0.1), "weight_decay"),
        (lambda ps: Adam([], lr=0.1), "empty"),
        (lambda ps: SGD([], lr=0.1), "empty"),
    ],
)
def test_bad_hyper_parameters(make, message):
    with pytest.raises(ValueError, match=message):
        make([Parameter(np.zeros(2))])


@pytest.mark.parametrize("make", [lambda ps: Adam(ps, lr=0.1), lambda ps: SGD(ps, lr=0.1, momentum=0.9)],
                         ids=["adam", "sgd"])
def test_parameters_without_grad_are_skipped(make):
    a, b = Parameter(np.ones(2)), Parameter(np.ones(2))
    opt = make([a, b])
    a.grad = np.array([1.0, -1.0])
    opt.step()
    np.testing.assert_array_equal(b.data, [1.0, 1.0])
    assert opt.state[1] == {}  # no moment buffers or step count for b
    assert not np.array_equal(a.data, [1.0, 1.0])
    # b's first real step is a first step (Adam: bias correction with t = 1 -> moves by lr sign(g))
    a.grad, b.grad = None, np.array([2.0, -2.0])
    before_a = a.data.copy()
    opt.step()
    np.testing.assert_array_equal(a.data, before_a)
    np.testing.assert_allclose(b.data, [0.9, 1.1] if isinstance(opt, Adam) else [0.8, 1.2], rtol=1e-7)


@pytest.mark.parametrize("make", [lambda ps: Adam(ps, lr=0.1), lambda ps: SGD(ps, lr=0.1, momentum=0.9)],
                         ids=["adam", "sgd"])
def test_lr_scale_multiplies_the_step_of_its_parameter_only(make):
    # the same gradients on a plain parameter and on one with lr_scale 0.25: every step of the
    # scaled one is a quarter of the plain one's (the moments do not depend on the scale)
    plain, scaled, other = Parameter(P0), Parameter(P0), Parameter(P0)
    scaled.lr_scale = 0.25
    opt_plain, opt_scaled = make([plain]), make([scaled, other])
    for g in GRADS:
        before_plain, before_scaled, before_other = plain.data.copy(), scaled.data.copy(), other.data.copy()
        plain.grad = scaled.grad = other.grad = np.array(g)
        opt_plain.step()
        opt_scaled.step()
        np.testing.assert_allclose(scaled.data - before_scaled, 0.25 * (plain.data - before_plain), rtol=1e-12)
        np.testing.assert_allclose(other.data - before_other, plain.data - before_plain, rtol=1e-12)


def test_zero_grad_clears_grads():
    a = Parameter(np.ones(2))
    a.grad = np.ones(2)
    opt = SGD([a], lr=0.1)
    opt.zero_grad()
    assert a.grad is None
    opt.step()  # nothing to do
    np.testing.assert_array_equal(a.data, [1.0, 1.0])


# ----------------------------------------------------------------------------- a tiny CNN learns


class Swish(Module):
    def forward(self, x):
        return x * x.sigmoid()  # a nonlinearity made from autodiff ops


def _blobs(rng, n):
    """1x6x6 images with a bright 2x2 blob in the left (label 1) or right (label 0) half, plus noise."""
    x = 0.1 * rng.standard_normal((n, 1, 6, 6))
    y = np.zeros((n, 1))
    for i in range(n):
        left = i % 2 == 0
        r, c = rng.integers(0, 5), rng.integers(0, 2) + (0 if left else 3)
        x[i, 0, r : r + 2, c : c + 2] += 1.0
        y[i, 0] = float(left)
    return x.astype(np.float32), y.astype(np.float32)


def _train(seed, steps=40):
    rng = np.random.default_rng(seed)
    x, y = _blobs(rng, 16)
    net = Sequential(Conv2d(1, 4, 3, padding=1, rng=rng), Swish(), AvgPool2d(2), Flatten(), Dense(36, 1, rng=rng))
    opt = Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.bce_with_logits_loss(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return net, losses, rng


def test_tiny_cnn_learns_a_toy_task():
    net, losses, rng = _train(seed=0)
    assert losses[-1] < losses[0] / 10, losses
    assert all(p.dtype == np.float32 for p in net.parameters())
    x_new, y_new = _blobs(rng, 32)  # fresh images: it learned the task, not the batch
    predicted = net(x_new).data > 0
    assert np.mean(predicted == (y_new > 0.5)) >= 0.9
    _, again, _ = _train(seed=0)
    assert again == losses  # seeded and deterministic, bit for bit


def test_state_dict_survives_a_json_round_trip_of_its_hyper_parameters():
    import json

    p = Parameter(np.ones(3, np.float32))
    opt = Adam([p], lr=0.01, betas=(0.8, 0.9))
    p.grad = np.ones(3, np.float32)
    opt.step()
    sd = opt.state_dict()
    again = Adam([Parameter(np.ones(3, np.float32))], lr=0.5)
    again.load_state_dict({"hyper": json.loads(json.dumps(sd["hyper"])), "state": sd["state"]})
    assert again.betas == (0.8, 0.9) and again.lr == 0.01 and again.state[0]["step"] == 1
