"""minisnn: a from-scratch spiking-neural-network engine in NumPy + Numba.

Levels (imports only go downward):

1. math - :mod:`minisnn.ops` (forward/backward pairs on arrays) and :mod:`minisnn.kernels`
   (Numba kernels, each beside its NumPy reference);
2. models - :mod:`minisnn.autodiff` (Tensor, Function, backward), :mod:`minisnn.functional`,
   :mod:`minisnn.layers`, :mod:`minisnn.neurons`, :mod:`minisnn.synapses`;
3. orchestration - :mod:`minisnn.simulate` (the spiking simulator), :mod:`minisnn.optim`,
   :mod:`minisnn.gradcheck`.
"""

from . import autodiff, functional, gradcheck, layers, neurons, ops, optim, simulate, synapses
from .autodiff import Function, Tensor, no_grad
from .layers import AvgPool2d, Conv2d, ConvTranspose2d, Dense, Flatten, Module, Neurons, Parameter, Sequential
from .neurons import LIF, LIFRate, RectifiedLinear, SoftLIFRate, SpikingRectifiedLinear
from .optim import SGD, Adam
from .synapses import Lowpass

__version__ = "0.1.0"

__all__ = [
    "ops", "autodiff", "functional", "layers", "neurons", "synapses", "simulate", "optim", "gradcheck",
    "Tensor", "Function", "no_grad",
    "Module", "Parameter", "Dense", "Conv2d", "ConvTranspose2d", "AvgPool2d", "Flatten", "Neurons", "Sequential",
    "RectifiedLinear", "SpikingRectifiedLinear", "LIFRate", "SoftLIFRate", "LIF", "Lowpass",
    "SGD", "Adam",
]
