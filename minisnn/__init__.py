"""minisnn: a from-scratch spiking-neural-network engine in NumPy + Numba.

Levels (imports only go downward):

1. math - :mod:`minisnn.ops` (forward/backward pairs on arrays) and :mod:`minisnn.kernels`
   (Numba kernels, each beside its NumPy reference);
2. models - :mod:`minisnn.autodiff` (Tensor, Function, backward), :mod:`minisnn.functional`,
   :mod:`minisnn.layers`, :mod:`minisnn.neurons`, :mod:`minisnn.synapses`;
3. orchestration - :mod:`minisnn.simulate` (the spiking simulator), :mod:`minisnn.optim`,
   :mod:`minisnn.gradcheck`.

Importing the package sets two thread settings, unless the environment already has them
(see :data:`THREAD_WAIT_DEFAULTS`).
"""

import os as _os

#: Idle worker threads of OpenMP (Numba's parallel kernels) and of OpenBLAS (NumPy's matrix
#: products) spin for a while after each parallel region, waiting for more work.  A training
#: step alternates the two libraries dozens of times, so on a 2-core machine each one's
#: spinning threads took the cores from the other: a GEMM right after a Numba kernel ran
#: 2.6x slower, a Numba kernel right after a GEMM 2x slower, and the CAE's training step
#: took 0.39 s instead of 0.23 s.  These defaults make idle threads sleep at once.  They only
#: take effect if set before the libraries start: OpenBLAS reads its variable when NumPy is
#: first imported, so in a program that imports NumPy before minisnn, set it yourself.
THREAD_WAIT_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}
for _name, _value in THREAD_WAIT_DEFAULTS.items():
    _os.environ.setdefault(_name, _value)

from . import autodiff, functional, gradcheck, layers, neurons, ops, optim, simulate, synapses
from .autodiff import Function, Tensor, no_grad
from .layers import AvgPool2d, Conv2d, ConvTranspose2d, Dense, Flatten, Module, Neurons, Parameter, Sequential
from .neurons import LIF, LIFRate, RectifiedLinear, SoftLIFRate, SpikingRectifiedLinear
from .ops.scratch import reuse_freed_memory
from .optim import SGD, Adam
from .synapses import Lowpass

__version__ = "0.1.0"

__all__ = [
    "ops", "autodiff", "functional", "layers", "neurons", "synapses", "simulate", "optim", "gradcheck",
    "Tensor", "Function", "no_grad",
    "Module", "Parameter", "Dense", "Conv2d", "ConvTranspose2d", "AvgPool2d", "Flatten", "Neurons", "Sequential",
    "RectifiedLinear", "SpikingRectifiedLinear", "LIFRate", "SoftLIFRate", "LIF", "Lowpass",
    "SGD", "Adam", "reuse_freed_memory",
]
