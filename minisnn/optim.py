"""Optimizers with PyTorch's update rules (LEVEL 3).

``SGD`` (optionally with momentum)::

    b <- momentum * b + g          (b = g on the first step)
    p <- p - lr * b

``Adam`` (Kingma & Ba, as ``torch.optim.Adam``: bias correction, eps outside the root)::

    m <- beta1 m + (1 - beta1) g              v <- beta2 v + (1 - beta2) g^2
    p <- p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

``weight_decay`` adds ``weight_decay * p`` to ``g`` (L2, as PyTorch's non-decoupled form).
Parameters whose ``.grad`` is None are skipped.  A parameter's ``lr_scale`` attribute (1 unless
set, see :class:`minisnn.layers.Parameter`) multiplies its step: a per-parameter learning rate.  ``state_dict()`` / ``load_state_dict()``
save and restore the step count and moment buffers (for resuming a run).
"""

from __future__ import annotations

import numpy as np

from .kernels.elementwise import adam_step

__all__ = ["Optimizer", "SGD", "Adam"]


def _check(name, value, low, high=None, low_open=False):
    ok = np.isfinite(value) and (value > low if low_open else value >= low) and (high is None or value < high)
    if not ok:
        bound = f"> {low}" if low_open else f">= {low}"
        bound += "" if high is None else f" and < {high}"
        raise ValueError(f"{name} must be {bound}, got {value}")


class Optimizer:
    """Holds a list of parameters and per-parameter state; subclasses define ``_update`` (the
    step of one parameter) or, as :class:`Adam` does for its one-pass kernel, ``_step_one``."""

    def __init__(self, params, lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        _check("lr", lr, 0.0, low_open=True)
        self.lr = float(lr)
        self.state: list[dict] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                self._step_one(p, p.grad.astype(p.dtype, copy=False), state)

    def _step_one(self, p, g, state) -> None:
        """Give ``p`` its next value (a new array): ``p - lr_scale * _update(...)``."""
        step = self._update(g, p.data, state)
        scale = getattr(p, "lr_scale", 1.0)
        p.data = p.data - (step if scale == 1.0 else step * p.dtype.type(scale))

    def _update(self, g, p, state) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Hyper-parameters and a copy of every buffer (plain arrays and numbers)."""
        return {
            "hyper": self._hyper(),
            "state": [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, sd: dict) -> None:
        if len(sd["state"]) != len(self.params):
            raise ValueError(f"load_state_dict: {len(sd['state'])} parameter states for {len(self.params)} parameters")
        for p, s in zip(self.params, sd["state"]):
            for k, v in s.items():
                if isinstance(v, np.ndarray) and v.shape != p.shape:
                    raise ValueError(f"load_state_dict: buffer {k} has shape {v.shape}, parameter has {p.shape}")
        for k, v in sd["hyper"].items():  # a JSON round trip turns tuples (betas) into lists
            setattr(self, k, tuple(v) if isinstance(v, list) else v)
        self.state = [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()} for s in sd["state"]]

    def _hyper(self) -> dict:
        return {"lr": self.lr}


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's rule: ``b <- momentum b + g``, ``p <- p - lr b``
    (``b = g`` on the first step; ``g += weight_decay p`` first).

    Parameters: ``params`` (Parameters with ``.grad``), ``lr > 0``, ``momentum >= 0``,
    ``weight_decay >= 0``.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr)
        _check("momentum", momentum, 0.0)
        _check("weight_decay", weight_decay, 0.0)
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)

    def _update(self, g, p, state):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = state.get("momentum_buffer")
            state["momentum_buffer"] = buf = g.copy() if buf is None else self.momentum * buf + g
            g = buf
        return self.lr * g

    def _hyper(self):
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam``: at step ``t``, for each parameter ``p`` with gradient ``g``::

        m <- beta1 m + (1 - beta1) g          v <- beta2 v + (1 - beta2) g^2
        p <- p - lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    Parameters: ``params``, ``lr`` (default 1e-3), ``betas = (beta1, beta2)`` (0.9, 0.999),
    ``eps`` (1e-8), ``weight_decay`` (L2 added to ``g``, default 0).  ``m`` and ``v`` have each
    parameter's shape.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr)
        b1, b2 = betas
        _check("betas[0]", b1, 0.0, 1.0)
        _check("betas[1]", b2, 0.0, 1.0)
        _check("eps", eps, 0.0)
        _check("weight_decay", weight_decay, 0.0)
        self.betas, self.eps, self.weight_decay = (float(b1), float(b2)), float(eps), float(weight_decay)

    def _step_one(self, p, g, state) -> None:
        """One pass over the parameter (:func:`minisnn.kernels.elementwise.adam_step`: the rule
        above in its dtype, the moments updated in place, the new value a new array)."""
        b1, b2 = self.betas
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p.data), exp_avg_sq=np.zeros_like(p.data))
        state["step"] += 1
        t = state["step"]
        new = np.empty_like(p.data)
        adam_step(p.data, g, state["exp_avg"], state["exp_avg_sq"], b1, b2, self.lr / (1 - b1**t), 1 - b2**t,
                  self.eps, self.weight_decay, getattr(p, "lr_scale", 1.0), new)
        p.data = new

    def _hyper(self):
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": self.weight_decay}
