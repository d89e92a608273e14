"""Layers: parameters plus one call into :mod:`minisnn.functional` each (LEVEL 2).

A :class:`Module` owns :class:`Parameter` tensors and child modules, registered simply by
assigning them as attributes (``self.w = Parameter(...)``), as in PyTorch.  From that it
knows its ``named_parameters()`` (dotted names in definition order), can save and restore a
``state_dict()`` and switch ``train()`` / ``eval()``.

Weight layouts follow PyTorch, so weights can be compared or exchanged:
``Dense.w (out, in)``, ``Conv2d.w (out, in, kH, kW)``, ``ConvTranspose2d.w (in, out, kH, kW)``.
Initialisers take an explicit ``numpy.random.Generator``; a layer built without one draws
from this module's generator, which :func:`manual_seed` resets.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import numpy as np

from . import functional as F
from .autodiff import Function, Tensor, is_grad_enabled
from .kernels.elementwise import multiply
from .neurons import NeuronType, RectifiedLinear

__all__ = [
    "Parameter",
    "Module",
    "Dense",
    "Conv2d",
    "ConvTranspose2d",
    "AvgPool2d",
    "Flatten",
    "Neurons",
    "Sequential",
    "he_normal",
    "glorot_uniform",
    "manual_seed",
]

# ----------------------------------------------------------------------------- initialisers

_default_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Reset the generator used by layers built without an explicit ``rng``."""
    global _default_rng
    _default_rng = np.random.default_rng(seed)


def _rng(rng):
    return _default_rng if rng is None else rng


def he_normal(rng: np.random.Generator, shape, fan_in: int, dtype=np.float32) -> np.ndarray:
    """He (Kaiming) normal: ``N(0, 2 / fan_in)``, for rectifying activations."""
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


def glorot_uniform(rng: np.random.Generator, shape, fan_in: int, fan_out: int, dtype=np.float32) -> np.ndarray:
    """Glorot (Xavier) uniform: ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``."""
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, shape).astype(dtype)


def _init_weight(init: str, rng, shape, fan_in, fan_out, dtype):
    if init == "he":
        return he_normal(_rng(rng), shape, fan_in, dtype)
    if init == "glorot":
        return glorot_uniform(_rng(rng), shape, fan_in, fan_out, dtype)
    raise ValueError(f"init must be 'he' or 'glorot', got {init!r}")


def _positive_int(layer: str, name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------- Module


class Parameter(Tensor):
    """A leaf tensor that an optimizer updates (``requires_grad=True``).

    ``lr_scale`` (default 1) multiplies every step an optimizer takes on this parameter: a
    per-parameter learning rate, e.g. steps proportional to each layer's weight scale
    (:func:`minisnn.apps.loc.scale_steps_to_weights`).
    """

    lr_scale = 1.0

    def __init__(self, data, dtype=None):
        super().__init__(np.array(data, dtype=dtype), requires_grad=True)

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class Module:
    """Base class: register parameters and children by attribute assignment."""

    def __init__(self):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_children", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_params" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        # re-assigning keeps the attribute's place in named_parameters(), as in PyTorch
        if not isinstance(value, Parameter):
            self._params.pop(name, None)
        if not isinstance(value, Module):
            self._children.pop(name, None)
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Module):
            self._children[name] = value
        object.__setattr__(self, name, value)

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x) -> Tensor:
        return self.forward(x if isinstance(x, Tensor) else Tensor(x))

    # -- parameters
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, p in self._params.items():
            yield prefix + name, p
        for name, child in self._children.items():
            yield from child.named_parameters(prefix + name + ".")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def modules(self) -> Iterator[Module]:
        yield self
        for child in self._children.values():
            yield from child.modules()

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def astype(self, dtype) -> Module:
        """Convert every parameter to ``dtype`` in place (e.g. float64 for gradient checks)."""
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        return self

    # -- modes
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    # -- saving
    def state_dict(self) -> OrderedDict:
        """``{dotted name: copy of the array}`` for every parameter."""
        return OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays into the parameters; names, shapes (and with ``strict`` the key set) must match."""
        params = dict(self.named_parameters())
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        if strict and (missing or unexpected):
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, value in state.items():
            if name not in params:
                continue
            p = params[name]
            value = np.asarray(value)
            if value.shape != p.shape:
                raise ValueError(f"load_state_dict: {name} has shape {value.shape}, the model expects {p.shape}")
            p.data = value.astype(p.dtype, copy=True)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._children.items():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"


# ----------------------------------------------------------------------------- layers


class Dense(Module):
    """Fully connected: ``y = x @ w.T + b`` with ``x (N, in_features)``."""

    def __init__(self, in_features, out_features, bias=True, *, init="glorot", rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = _positive_int("Dense", "in_features", in_features)
        self.out_features = _positive_int("Dense", "out_features", out_features)
        shape = (self.out_features, self.in_features)
        self.w = Parameter(_init_weight(init, rng, shape, self.in_features, self.out_features, dtype))
        self.b = Parameter(np.zeros(self.out_features, dtype)) if bias else None

    def forward(self, x):
        return F.dense(x, self.w, self.b)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.b is not None}"


class Conv2d(Module):
    """2-D convolution, ``w (out_channels, in_channels, kH, kW)`` (see :mod:`minisnn.ops.conv`)."""

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
        *, init="he", rng=None, dtype=np.float32,
    ):
        super().__init__()
        self.in_channels = _positive_int("Conv2d", "in_channels", in_channels)
        self.out_channels = _positive_int("Conv2d", "out_channels", out_channels)
        kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
        self.kernel_size = (_positive_int("Conv2d", "kernel_size", kh), _positive_int("Conv2d", "kernel_size", kw))
        self.stride, self.padding = stride, padding
        shape = (self.out_channels, self.in_channels, kh, kw)
        self.w = Parameter(_init_weight(init, rng, shape, in_channels * kh * kw, out_channels * kh * kw, dtype))
        self.b = Parameter(np.zeros(self.out_channels, dtype)) if bias else None

    def forward(self, x, rectify=None):
        """The convolution; ``rectify=(gain, amplitude)`` adds a rectified-linear neuron layer
        in the same node (what :class:`Sequential` asks for when one follows)."""
        return F.conv2d(x, self.w, self.b, stride=self.stride, padding=self.padding, rectify=rectify)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class ConvTranspose2d(Module):
    """Transposed convolution, ``w (in_channels, out_channels, kH, kW)``; the adjoint of Conv2d."""

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, bias=True,
        *, init="he", rng=None, dtype=np.float32,
    ):
        super().__init__()
        self.in_channels = _positive_int("ConvTranspose2d", "in_channels", in_channels)
        self.out_channels = _positive_int("ConvTranspose2d", "out_channels", out_channels)
        kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
        self.kernel_size = (_positive_int("ConvTranspose2d", "kernel_size", kh),
                            _positive_int("ConvTranspose2d", "kernel_size", kw))
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        shape = (self.in_channels, self.out_channels, kh, kw)
        # PyTorch's fan-in for a transposed conv: out_channels * kH * kW
        self.w = Parameter(_init_weight(init, rng, shape, out_channels * kh * kw, in_channels * kh * kw, dtype))
        self.b = Parameter(np.zeros(self.out_channels, dtype)) if bias else None

    def forward(self, x):
        return F.conv_transpose2d(
            x, self.w, self.b, stride=self.stride, padding=self.padding, output_padding=self.output_padding
        )

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, output_padding={self.output_padding}")


class AvgPool2d(Module):
    """Average pooling over ``kernel_size`` windows (``stride`` defaults to the kernel)."""

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class Flatten(Module):
    """``(N, ...) -> (N, prod(...))``."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1)


class NeuronsFn(Function):
    """Rate neurons as an autodiff node: ``y = r(g x)``, ``dy/dx = g r'(g x)``.

    Forward computes the rate and its derivative in one fused pass and keeps ``g r'(g x)``
    (the same size as the current, which is not kept); backward is one multiply.
    """

    def forward(self, x, model, gain):
        if not (is_grad_enabled() and self.needs_grad[0]):
            self.dr = None
            return model.rate(x * gain if gain != 1 else x)  # evaluation: no derivative needed
        r, self.dr = model.scaled_rate_and_grad(x, gain)
        return r

    def backward(self, dout):
        return multiply(dout, self.dr)  # dout * self.dr, on all threads

    def release(self):
        super().release()
        self.dr = None


class Neurons(Module):
    """An activation layer that holds a neuron model (:mod:`minisnn.neurons`).

    ``scale_firing_rates = s`` multiplies the input current by ``s`` and divides the model's
    amplitude by ``s`` (NengoDL's convention): a rectified-linear layer computes the same
    function for any ``s`` but its spiking twin fires ``s`` times faster.

    In a graph (ANN training and evaluation) the layer outputs the *rate* of the model's rate
    twin, ``r(s x)`` with amplitude ``a / s``, and back-propagates ``s r'(s x)``.  The spiking
    simulator (:mod:`minisnn.simulate`) runs :attr:`spiking_model` instead.
    """

    def __init__(self, model: NeuronType, scale_firing_rates: float = 1.0):
        super().__init__()
        if not isinstance(model, NeuronType):
            raise ValueError(f"Neurons: model must be a minisnn.neurons model, got {type(model).__name__}")
        s = float(scale_firing_rates)
        if not np.isfinite(s) or s <= 0:
            raise ValueError(f"Neurons: scale_firing_rates must be > 0, got {scale_firing_rates}")
        self.model, self.scale_firing_rates = model, s

    @property
    def gain(self) -> float:
        """The factor applied to the input current (``scale_firing_rates``)."""
        return self.scale_firing_rates

    @property
    def rate_model(self) -> NeuronType:
        """The rate twin with the scaled amplitude: what the graph computes."""
        m = self.model.rate_twin()
        return m.with_amplitude(m.amplitude / self.scale_firing_rates)

    @property
    def spiking_model(self) -> NeuronType:
        """The spiking twin with the scaled amplitude: what the simulator runs."""
        m = self.model.spiking_twin()
        return m.with_amplitude(m.amplitude / self.scale_firing_rates)

    def rate_hz(self, output):
        """Firing rate in Hz behind an output value of this layer (``output * s / amplitude``)."""
        return output * (self.scale_firing_rates / self.model.amplitude)

    def forward(self, x):
        return NeuronsFn.apply(x, model=self.rate_model, gain=self.gain)

    def extra_repr(self):
        s = "" if self.scale_firing_rates == 1 else f", scale_firing_rates={self.scale_firing_rates:g}"
        return f"{self.model!r}{s}"


#: :class:`Sequential` runs a :class:`Conv2d` followed by rectified-linear :class:`Neurons` as
#: one node (``conv2d(..., rectify=(gain, amplitude))``): the same numbers, and on the Winograd
#: path the rectifier and its derivative ride in the transforms, one pass over the activations
#: less each way.  False runs every layer on its own (the tests compare the two).
FUSE_RECTIFIER = True


def _fuses(layer, following) -> bool:
    """Whether ``layer`` and the ``following`` one run as one node (:data:`FUSE_RECTIFIER`)."""
    return (FUSE_RECTIFIER and isinstance(layer, Conv2d) and isinstance(following, Neurons)
            and type(following.rate_model) is RectifiedLinear)


class Sequential(Module):
    """Layers applied in order; indexable and iterable.

    A :class:`Conv2d` followed by :class:`Neurons` whose rate model is
    :class:`~minisnn.neurons.RectifiedLinear` runs as one node (see :data:`FUSE_RECTIFIER`).
    """

    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise ValueError(f"Sequential: item {i} is a {type(layer).__name__}, not a Module")
            setattr(self, str(i), layer)

    def forward(self, x):
        return self.forward_with_activations(x)[0]

    def forward_with_activations(self, x):
        """``(output, {name: output Tensor of each Neurons layer})``; names are the layers'
        indices as strings."""
        x = x if isinstance(x, Tensor) else Tensor(x)
        layers = list(self._children.items())
        acts = {}
        i = 0
        while i < len(layers):
            layer = layers[i][1]
            if i + 1 < len(layers) and _fuses(layer, layers[i + 1][1]):
                neurons = layers[i + 1][1]
                x = layer.forward(x, rectify=(neurons.gain, neurons.rate_model.amplitude))
                i += 1
            else:
                x = layer(x)
            name, layer = layers[i]
            if isinstance(layer, Neurons):
                acts[name] = x
            i += 1
        return x, acts

    def __iter__(self):
        return iter(self._children.values())

    def __len__(self):
        return len(self._children)

    def __getitem__(self, i):
        return list(self._children.values())[i]
