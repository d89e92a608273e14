"""minisnn: a from-scratch spiking-neural-network engine in NumPy + Numba.

Levels (imports only go downward):

1. math - :mod:`minisnn.ops` (forward/backward pairs on arrays) and :mod:`minisnn.kernels`
   (Numba kernels, each beside its NumPy reference);
2. models - :mod:`minisnn.autodiff` (Tensor, Function, backward), :mod:`minisnn.functional`,
   :mod:`minisnn.layers`, :mod:`minisnn.neurons`, :mod:`minisnn.synapses`;
3. orchestration - :mod:`minisnn.simulate` (the spiking simulator), :mod:`minisnn.optim`,
   :mod:`minisnn.gradcheck`, :mod:`minisnn.interchange` (NIR export and import; the optional
   ``nir`` package is imported there only, and this package does not import the module).

Importing the package sets two thread settings, unless the environment already has them
(:data:`minisnn.runtime.THREAD_WAIT_DEFAULTS`); the other process settings (threads, the
allocator) are in :mod:`minisnn.runtime`, for the tools to call.
"""

from . import runtime  # first: the wait defaults must be in the environment before NumPy starts

runtime.apply_wait_defaults()
THREAD_WAIT_DEFAULTS = runtime.THREAD_WAIT_DEFAULTS

from . import autodiff, functional, gradcheck, layers, neurons, ops, optim, simulate, synapses
from .autodiff import Function, Tensor, no_grad
from .layers import AvgPool2d, Conv2d, ConvTranspose2d, Dense, Flatten, Module, Neurons, Parameter, Sequential
from .neurons import LIF, LIFRate, RectifiedLinear, SoftLIFRate, SpikingRectifiedLinear
from .optim import SGD, Adam
from .runtime import reuse_freed_memory
from .synapses import Lowpass

__version__ = "0.1.0"

__all__ = [
    "runtime", "ops", "autodiff", "functional", "layers", "neurons", "synapses", "simulate", "optim", "gradcheck",
    "Tensor", "Function", "no_grad",
    "Module", "Parameter", "Dense", "Conv2d", "ConvTranspose2d", "AvgPool2d", "Flatten", "Neurons", "Sequential",
    "RectifiedLinear", "SpikingRectifiedLinear", "LIFRate", "SoftLIFRate", "LIF", "Lowpass",
    "SGD", "Adam", "reuse_freed_memory",
]
