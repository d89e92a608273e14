"""Layers and Module: gradient checks (each layer and whole small networks), parameter naming,
state_dict round trips and errors, train/eval, initialisers, PyTorch equivalence."""

from __future__ import annotations

import numpy as np
import pytest

from minisnn import functional as F
from minisnn.autodiff import Tensor
from minisnn.gradcheck import gradcheck_module
from minisnn.layers import (
    AvgPool2d,
    Conv2d,
    ConvTranspose2d,
    Dense,
    Flatten,
    Module,
    Parameter,
    Sequential,
    glorot_uniform,
    he_normal,
    manual_seed,
)


class Swish(Module):
    """x * sigmoid(x), built from autodiff ops only."""

    def forward(self, x):
        return x * x.sigmoid()


def _randomise_biases(module, rng):
    for name, p in module.named_parameters():
        if name.endswith("b"):
            p.data = rng.standard_normal(p.shape).astype(p.dtype)
    return module


# ----------------------------------------------------------------------------- gradient checks


@pytest.mark.parametrize(
    "make, x_shape",
    [
        (lambda r: Dense(5, 3, rng=r), (4, 5)),
        (lambda r: Dense(5, 3, bias=False, init="he", rng=r), (2, 5)),
        (lambda r: Conv2d(2, 3, 3, rng=r), (2, 2, 5, 4)),
        (lambda r: Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0), rng=r), (2, 2, 6, 5)),
        (lambda r: Conv2d(1, 2, 3, stride=2, padding=1, bias=False, rng=r), (1, 1, 5, 5)),
        (lambda r: ConvTranspose2d(2, 3, 3, rng=r), (2, 2, 3, 4)),
        (lambda r: ConvTranspose2d(3, 2, (3, 2), stride=2, padding=1, output_padding=1, rng=r), (2, 3, 3, 3)),
        (lambda r: ConvTranspose2d(1, 2, 2, stride=(2, 3), output_padding=(1, 2), bias=False, rng=r), (1, 1, 2, 2)),
        (lambda r: AvgPool2d(2), (2, 3, 4, 5)),
        (lambda r: AvgPool2d((3, 2), stride=1), (1, 2, 4, 4)),
        (lambda r: Flatten(), (2, 3, 2, 2)),
        (lambda r: Swish(), (2, 3)),
    ],
    ids=[
        "dense", "dense-nobias-he", "conv", "conv-stride-pad-nonsquare", "conv-stride2-nobias",
        "convT", "convT-stride2-outpad", "convT-nonsquare-nobias", "pool2", "pool-overlap", "flatten", "swish",
    ],
)
def test_layer_gradcheck(rng, make, x_shape):
    layer = _randomise_biases(make(rng), rng)
    assert gradcheck_module(layer, rng.standard_normal(x_shape), max_points=40)
    for p in layer.parameters():
        assert p.dtype == np.float64  # gradcheck_module converts in place


def test_network_gradcheck(rng):
    net = Sequential(
        Conv2d(1, 2, 3, padding=1, rng=rng),  # (2, 1, 6, 6) -> (2, 2, 6, 6)
        AvgPool2d(2),  # -> (2, 2, 3, 3)
        ConvTranspose2d(2, 2, 3, stride=2, padding=1, output_padding=1, rng=rng),  # -> (2, 2, 6, 6)
        Flatten(),  # -> (2, 72)
        Dense(72, 3, rng=rng),
    )
    _randomise_biases(net, rng)
    assert gradcheck_module(net, rng.standard_normal((2, 1, 6, 6)))


def test_network_with_stride2_conv_and_loss_gradcheck(rng):
    net = Sequential(
        Conv2d(2, 3, 3, stride=2, padding=1, rng=rng),  # (2, 2, 7, 6) -> (2, 3, 4, 3)
        Swish(),
        Conv2d(3, 4, (2, 3), stride=(1, 2), rng=rng),  # -> (2, 4, 3, 1)
        Flatten(),
        Dense(12, 2, rng=rng),
    )
    _randomise_biases(net, rng)
    target = rng.uniform(0, 1, (2, 2))
    assert gradcheck_module(net, rng.standard_normal((2, 2, 7, 6)), lambda y: F.bce_with_logits_loss(y, target))
    assert gradcheck_module(net, rng.standard_normal((2, 2, 7, 6)), lambda y: F.mse_loss(y, target), seed=1)


# ----------------------------------------------------------------------------- Module mechanics


class Net(Module):
    def __init__(self, rng):
        super().__init__()
        self.encoder = Sequential(Conv2d(1, 2, 3, rng=rng), AvgPool2d(2), Conv2d(2, 2, 1, bias=False, rng=rng))
        self.scale = Parameter(np.ones(1, dtype=np.float32))
        self.flatten = Flatten()
        self.head = Dense(8, 3, rng=rng)

    def forward(self, x):
        return self.head(self.flatten(self.encoder(x))) * self.scale


def test_named_parameters_order_and_names(rng):
    net = Net(rng)
    # as in PyTorch: a module's own parameters first, then each child's (in assignment order),
    # dotted by attribute name / Sequential index; layers without parameters leave gaps.
    names = [name for name, _ in net.named_parameters()]
    assert names == ["scale", "encoder.0.w", "encoder.0.b", "encoder.2.w", "head.w", "head.b"]
    assert [p for _, p in net.named_parameters()] == net.parameters()
    assert all(isinstance(p, Parameter) and p.requires_grad for p in net.parameters())
    assert list(net.state_dict()) == names
    seq = Sequential(Dense(2, 3, rng=rng), Swish(), Dense(3, 1, bias=False, rng=rng))
    assert [n for n, _ in seq.named_parameters()] == ["0.w", "0.b", "2.w"]
    assert len(seq) == 3 and isinstance(seq[1], Swish) and list(seq)[2] is seq[2]


def test_forward_shape_and_default_dtype(rng):
    net = Net(rng)
    y = net(rng.standard_normal((2, 1, 6, 6)).astype(np.float32))  # a plain array is accepted
    assert isinstance(y, Tensor) and y.shape == (2, 3) and y.dtype == np.float32
    assert all(p.dtype == np.float32 for p in net.parameters())
    assert Dense(2, 2, rng=rng, dtype=np.float64).w.dtype == np.float64


def test_backward_fills_every_parameter_grad(rng):
    net = Net(rng)
    net(rng.standard_normal((2, 1, 6, 6)).astype(np.float32)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape and p.grad.dtype == np.float32, name
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_round_trip(rng):
    a, b = Net(np.random.default_rng(1)), Net(np.random.default_rng(2))
    _randomise_biases(a, rng)
    x = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    state = a.state_dict()
    assert not np.array_equal(a(x).data, b(x).data)
    b.load_state_dict(state)
    np.testing.assert_array_equal(a(x).data, b(x).data)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb
        np.testing.assert_array_equal(pa.data, pb.data)
        assert pa.data is not pb.data
    # state_dict returns copies, and load_state_dict copies in
    state["head.w"][...] = 123.0
    assert not np.any(a.head.w.data == 123.0) and not np.any(b.head.w.data == 123.0)
    # a float64 state loads into a float32 model as float32
    b.load_state_dict({k: v.astype(np.float64) for k, v in a.state_dict().items()})
    assert all(p.dtype == np.float32 for p in b.parameters())


def test_load_state_dict_errors_name_the_key(rng):
    net = Net(rng)
    state = net.state_dict()
    bad = dict(state, **{"head.w": np.zeros((3, 9), np.float32)})
    with pytest.raises(ValueError, match=r"head\.w.*\(3, 9\).*\(3, 8\)"):
        net.load_state_dict(bad)
    missing = {k: v for k, v in state.items() if k != "encoder.2.w"}
    with pytest.raises(ValueError, match=r"missing.*encoder\.2\.w"):
        net.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected.*head\.bias"):
        net.load_state_dict(dict(state, **{"head.bias": np.zeros(3)}))
    # strict=False loads what is there and leaves the rest
    before = net.encoder[2].w.data.copy()
    missing["head.b"] = np.full(3, 7.0, np.float32)
    net.load_state_dict(missing, strict=False)
    np.testing.assert_array_equal(net.head.b.data, [7.0, 7.0, 7.0])
    np.testing.assert_array_equal(net.encoder[2].w.data, before)


def test_train_eval_propagates(rng):
    net = Net(rng)
    modules = list(net.modules())
    assert len(modules) == 7  # Net, Sequential, Conv2d, AvgPool2d, Conv2d, Flatten, Dense
    assert all(m.training for m in modules)
    assert net.eval() is net
    assert not any(m.training for m in modules)
    net.train()
    assert all(m.training for m in modules)
    net.encoder.eval()
    assert net.training and net.head.training and not any(m.training for m in net.encoder.modules())
    net.train(False)
    assert not any(m.training for m in modules)


def test_layer_argument_checks(rng):
    with pytest.raises(ValueError, match=r"Conv2d.*in_channels.*0"):
        Conv2d(0, 2, 3, rng=rng)
    with pytest.raises(ValueError, match=r"Conv2d.*kernel_size.*0"):
        Conv2d(1, 2, 0, rng=rng)
    with pytest.raises(ValueError, match=r"ConvTranspose2d.*out_channels.*-1"):
        ConvTranspose2d(1, -1, 3, rng=rng)
    with pytest.raises(ValueError, match=r"Dense.*in_features.*2\.5"):
        Dense(2.5, 3, rng=rng)
    with pytest.raises(ValueError, match=r"init.*xavier"):
        Dense(2, 3, init="xavier", rng=rng)
    with pytest.raises(ValueError, match=r"Sequential.*item 1.*function"):
        Sequential(Flatten(), lambda x: x)

    class Forgetful(Module):
        def __init__(self):
            self.w = Parameter(np.ones(2))

    with pytest.raises(RuntimeError, match="super"):
        Forgetful()


# ----------------------------------------------------------------------------- initialisers


def test_initialisers_are_deterministic_for_a_generator():
    for make in (
        lambda r: Dense(6, 4, rng=r),
        lambda r: Conv2d(2, 3, 3, rng=r),
        lambda r: ConvTranspose2d(2, 3, 3, rng=r, init="glorot"),
    ):
        a, b, c = make(np.random.default_rng(5)), make(np.random.default_rng(5)), make(np.random.default_rng(6))
        np.testing.assert_array_equal(a.w.data, b.w.data)
        assert not np.array_equal(a.w.data, c.w.data)
    manual_seed(11)
    a = Dense(6, 4)
    manual_seed(11)
    b = Dense(6, 4)
    np.testing.assert_array_equal(a.w.data, b.w.data)


def test_he_normal_variance():
    w = he_normal(np.random.default_rng(0), (400, 500), fan_in=50, dtype=np.float64)
    assert w.shape == (400, 500) and w.dtype == np.float64
    assert abs(w.mean()) < 0.005  # std 0.2 over 200000 draws: standard error 0.00045
    assert w.var() == pytest.approx(2 / 50, rel=0.1)
    assert he_normal(np.random.default_rng(0), (3,), fan_in=2).dtype == np.float32


@pytest.mark.parametrize(
    "layer, fan_in",
    [
        (lambda r: Dense(400, 300, init="he", rng=r), 400),
        (lambda r: Conv2d(32, 64, 3, rng=r), 32 * 9),  # He is Conv2d's default
        (lambda r: ConvTranspose2d(64, 32, 3, rng=r), 32 * 9),  # PyTorch's fan-in: weight.shape[1] * kH * kW
    ],
    ids=["dense", "conv", "convT"],
)
def test_he_layers_have_variance_2_over_fan_in(layer, fan_in):
    w = layer(np.random.default_rng(3)).w.data.astype(np.float64)
    assert w.var() == pytest.approx(2 / fan_in, rel=0.1)


def test_glorot_uniform_bounds_and_variance():
    a = np.sqrt(6 / (300 + 200))
    w = glorot_uniform(np.random.default_rng(0), (200, 300), fan_in=300, fan_out=200, dtype=np.float64)
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.99 * a
    assert w.var() == pytest.approx(a * a / 3, rel=0.1)
    d = Dense(300, 200, rng=np.random.default_rng(1)).w.data  # Glorot is Dense's default
    assert np.abs(d).max() <= np.float32(a) and np.abs(d).max() > 0.99 * a
    c = Conv2d(8, 16, 3, init="glorot", rng=np.random.default_rng(2)).w.data
    bound = np.sqrt(6 / ((8 + 16) * 9))
    assert np.abs(c).max() <= np.float32(bound) and np.abs(c).max() > 0.98 * bound
    assert all(np.all(layer.b.data == 0) for layer in (Dense(3, 2), Conv2d(1, 2, 3), ConvTranspose2d(1, 2, 3)))


# ----------------------------------------------------------------------------- PyTorch equivalence


def _torch_pair(torch, ours, rng):
    """The torch.nn module matching ``ours`` (float64), with our weights copied in."""
    nn = torch.nn
    if isinstance(ours, Dense):
        theirs = nn.Linear(ours.in_features, ours.out_features, bias=ours.b is not None)
    elif isinstance(ours, Conv2d):
        theirs = nn.Conv2d(ours.in_channels, ours.out_channels, ours.kernel_size, ours.stride, ours.padding,
                           bias=ours.b is not None)
    elif isinstance(ours, ConvTranspose2d):
        theirs = nn.ConvTranspose2d(ours.in_channels, ours.out_channels, ours.kernel_size, ours.stride,
                                    ours.padding, ours.output_padding, bias=ours.b is not None)
    elif isinstance(ours, AvgPool2d):
        theirs = nn.AvgPool2d(ours.kernel_size, ours.stride)
    elif isinstance(ours, Flatten):
        theirs = nn.Flatten()
    elif isinstance(ours, Sequential):
        return nn.Sequential(*(_torch_pair(torch, layer, rng) for layer in ours))
    else:  # pragma: no cover
        raise TypeError(type(ours))
    theirs = theirs.double()
    with torch.no_grad():
        if getattr(ours, "w", None) is not None:
            theirs.weight.copy_(torch.tensor(ours.w.data, dtype=torch.float64))
        if getattr(ours, "b", None) is not None:
            ours.b.data = rng.standard_normal(ours.b.shape).astype(ours.b.dtype)
            theirs.bias.copy_(torch.tensor(ours.b.data, dtype=torch.float64))
    return theirs


@pytest.mark.parametrize(
    "make, x_shape",
    [
        (lambda r: Dense(5, 3, rng=r), (4, 5)),
        (lambda r: Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 2), rng=r), (2, 2, 6, 5)),
        (lambda r: ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1, rng=r), (2, 2, 3, 4)),
        (lambda r: AvgPool2d(2), (2, 3, 5, 4)),
        (lambda r: AvgPool2d(3, stride=(1, 2)), (1, 2, 5, 6)),
        (lambda r: Flatten(), (2, 3, 2, 2)),
        (
            lambda r: Sequential(
                Conv2d(1, 4, 3, padding=1, rng=r), AvgPool2d(2), ConvTranspose2d(4, 2, 2, stride=2, rng=r),
                Conv2d(2, 3, 3, stride=2, rng=r), Flatten(), Dense(12, 2, rng=r),
            ),
            (3, 1, 6, 6),
        ),
    ],
    ids=["dense", "conv", "convT", "pool", "pool-overlap", "flatten", "network"],
)
def test_layers_match_torch_nn(rng, make, x_shape):
    torch = pytest.importorskip("torch")
    ours = make(rng).astype(np.float64)
    theirs = _torch_pair(torch, ours, rng)
    x = rng.standard_normal(x_shape)
    xt = Tensor(x, requires_grad=True)
    y = ours(xt)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    torch_grads = [p.grad.numpy() for p in theirs.parameters()]
    our_grads = [p.grad for p in ours.parameters()]
    assert len(our_grads) == len(torch_grads)
    for g, tg in zip(our_grads, torch_grads):
        np.testing.assert_allclose(g, tg, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- Conv2d + ReLU in one node


def _conv_relu_net(rng):
    """A conv block as the seg CAE has them: 16-channel 3x3 layers (the Winograd path) with
    rectified-linear neurons at scale_firing_rates 500, a soft-LIF layer (not fused), a
    transposed conv followed by ReLU (not fused), and a readout."""
    from minisnn.layers import Neurons
    from minisnn.neurons import RectifiedLinear, SoftLIFRate

    return Sequential(
        Conv2d(3, 16, 3, padding=1, rng=rng), Neurons(RectifiedLinear(), 500.0),
        Conv2d(16, 16, 3, padding=1, rng=rng), Neurons(RectifiedLinear(), 500.0),
        AvgPool2d(2),
        Conv2d(16, 16, 3, padding=1, rng=rng), Neurons(SoftLIFRate(sigma=0.02)),
        ConvTranspose2d(16, 8, 2, stride=2, rng=rng), Neurons(RectifiedLinear()),
        Flatten(), Dense(8 * 12 * 14, 3, rng=rng),
    )


def test_sequential_runs_conv_and_rectifier_as_one_node(monkeypatch):
    """Conv2d + RectifiedLinear runs as one Conv2dFn node (the CAE's ReLU layers then cost no
    pass of their own); every output, activation and gradient is the layers' own, bit for
    bit, with the fusion switched off."""
    from minisnn import layers
    from minisnn.functional import Conv2dFn

    results = []
    for fuse in (True, False):
        monkeypatch.setattr(layers, "FUSE_RECTIFIER", fuse)
        rng = np.random.default_rng(3)
        net = _conv_relu_net(rng)
        x = rng.standard_normal((4, 3, 12, 14)).astype(np.float32)
        out, acts = net.forward_with_activations(x)
        (out * out).sum().backward()
        assert sorted(acts) == ["1", "3", "6", "8"]
        if fuse:
            assert type(acts["1"].creator) is Conv2dFn and type(acts["3"].creator) is Conv2dFn
        assert type(acts["6"].creator) is layers.NeuronsFn and type(acts["8"].creator) is layers.NeuronsFn
        results.append([out.data] + [acts[k].data for k in sorted(acts)] + [p.grad for p in net.parameters()])
    assert len(results[0]) == len(results[1])
    for fused, layered in zip(*results):
        np.testing.assert_array_equal(fused, layered)


def test_fused_conv_relu_gradcheck():
    """The fused node under the float64 gradient check, through the whole module."""
    rng = np.random.default_rng(5)
    net = _conv_relu_net(rng).astype(np.float64)
    _randomise_biases(net, rng)
    assert gradcheck_module(net, rng.standard_normal((2, 3, 12, 14)), max_points=6)
