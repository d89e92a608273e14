"""The tiny task shared by examples 05 and 06: oriented bars on 8 x 8 images, four classes.

Not an example by itself; ``05_convert_tiny_net.py`` and ``06_hybrid_finetune.py`` import it.

Each image holds one bar - horizontal, vertical, diagonal or anti-diagonal, at a random
offset - plus Gaussian noise.  The network is LocNet in miniature::

    Conv2d(1 -> 4, 3x3, padding 1)            -> Neurons(SoftLIFRate)     (4 x 8 x 8)
    Conv2d(4 -> 8, 3x3, stride 2, padding 1)  -> Neurons(SoftLIFRate)     (8 x 4 x 4, "pooling")
    Flatten -> Dense(128 -> 4)                                             (one score per class)

The neurons are ``SoftLIFRate(sigma=0.005, amplitude=0.01)``: the paper's smoothing, and an
amplitude of 0.01 so that a layer's output (rate x 0.01, about 0.3-2 for 30-200 Hz) keeps the
next layer's currents near the LIF threshold of 1.  The biases start at 1.5, above that
threshold, so every neuron fires (and has a useful rate derivative) from the first step.
The loss is the MSE to the one-hot class; the prediction is the largest score.
"""

from __future__ import annotations

import numpy as np

import minisnn as ms
from minisnn import functional as F
from minisnn.train import ann_loss, fit

CLASSES = ["horizontal", "vertical", "diagonal", "anti-diagonal"]


def bars(n: int, rng: np.random.Generator, size: int = 8, noise: float = 0.3):
    """``n`` images ``x (n, 1, size, size)`` float32, one-hot targets ``(n, 4)`` and labels ``(n,)``."""
    x = np.zeros((n, 1, size, size), np.float32)
    labels = rng.integers(0, 4, n)
    for k, label in enumerate(labels):
        if label == 0:
            x[k, 0, rng.integers(2, size - 2), :] = 1
        elif label == 1:
            x[k, 0, :, rng.integers(2, size - 2)] = 1
        elif label == 2:
            x[k, 0] = np.eye(size, k=int(rng.integers(-2, 3)))
        else:
            x[k, 0] = np.fliplr(np.eye(size, k=int(rng.integers(-2, 3))))
    x += noise * rng.standard_normal(x.shape).astype(np.float32)
    return x, np.eye(4, dtype=np.float32)[labels], labels


def datasets(seed: int = 0) -> dict:
    """``{"train": (x, onehot, labels), "val": ..., "test": ...}`` with 1024 / 256 / 512 images."""
    rng = np.random.default_rng(seed)
    return {"train": bars(1024, rng), "val": bars(256, rng), "test": bars(512, rng)}


def make_ann(seed: int = 1) -> ms.Sequential:
    rng = np.random.default_rng(seed)
    neuron = ms.SoftLIFRate(sigma=0.005, amplitude=0.01)
    net = ms.Sequential(
        ms.Conv2d(1, 4, 3, padding=1, rng=rng), ms.Neurons(neuron),
        ms.Conv2d(4, 8, 3, stride=2, padding=1, rng=rng), ms.Neurons(neuron),
        ms.Flatten(), ms.Dense(8 * 4 * 4, 4, rng=rng),
    )
    for conv in (net[0], net[2]):
        conv.b.data[:] = 1.5
    return net


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of inputs whose largest score is the true class."""
    return float(np.mean(np.argmax(scores, axis=1) == labels))


def ann_accuracy(net: ms.Sequential, x: np.ndarray, labels: np.ndarray) -> float:
    with ms.no_grad():
        return accuracy(net(x).data, labels)


def train_ann(net: ms.Sequential, data: dict, epochs: int = 10) -> dict:
    """Adam (lr 0.01, batches of 32) on the MSE to the one-hot class; keeps the epoch with the
    best validation accuracy.  Returns :func:`minisnn.train.fit`'s history."""
    x, y, _ = data["train"]
    xv, _, lv = data["val"]
    return fit(net, lambda xb, yb: ann_loss(net, xb, yb, F.mse_loss), (x, y),
               val_fn=lambda: ann_accuracy(net, xv, lv), goal="max", epochs=epochs, batch_size=32, lr=0.01)
