"""minisnn: a from-scratch spiking-neural-network engine in NumPy + Numba.

Levels (imports only go downward):

1. math - :mod:`minisnn.ops` (forward/backward pairs on arrays) and :mod:`minisnn.kernels`
   (Numba kernels, each beside its NumPy reference);
2. models - :mod:`minisnn.autodiff` (Tensor, Function, backward), :mod:`minisnn.functional`,
   :mod:`minisnn.layers`;
3. orchestration - :mod:`minisnn.optim`, :mod:`minisnn.gradcheck`.
"""

from . import autodiff, functional, gradcheck, layers, ops, optim
from .autodiff import Function, Tensor, no_grad
from .layers import AvgPool2d, Conv2d, ConvTranspose2d, Dense, Flatten, Module, Parameter, Sequential
from .optim import SGD, Adam

__version__ = "0.1.0"

__all__ = [
    "ops", "autodiff", "functional", "layers", "optim", "gradcheck",
    "Tensor", "Function", "no_grad",
    "Module", "Parameter", "Dense", "Conv2d", "ConvTranspose2d", "AvgPool2d", "Flatten", "Sequential",
    "SGD", "Adam",
]
