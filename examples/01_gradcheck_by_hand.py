"""01 - A gradient check by hand: central differences against the autodiff tape.

Tour stops 1-2 (docs/tour.md): ``minisnn/autodiff.py`` (Tensor, Function, Tensor.backward) and
``minisnn/gradcheck.py``.

1. A scalar function of one number, f(x) = sigmoid(x)^2 * log(x): the tape's df/dx, the
   derivative worked out by hand, and the central difference (f(x+h) - f(x-h)) / 2h agree.
2. A tiny dense layer under an MSE loss: the tape's gradient of every weight against central
   differences computed in a plain loop, in float64 (what ``minisnn.gradcheck`` automates).
3. Why central differences and why h ~ 1e-6: the error of the forward difference falls like h,
   the central one like h^2, until rounding (~1e-16 / h) takes over.

Writes ``01_fd_error_vs_eps.png`` (log10 of the error against h).

    python examples/01_gradcheck_by_hand.py [--out DIR]
"""

import os

# One thread for BLAS and for the Numba kernels, set before numpy and numba are imported (an
# OPENBLAS_NUM_THREADS / NUMBA_NUM_THREADS you set yourself wins).  The examples are too small
# to gain from threads, and on a busy 2-core machine a parallel region waits for its slowest
# thread while the two thread pools spin and starve each other (benchmarks/README.md,
# "Threads"): with another job running, example 05's ANN training took 15 s instead of 1.5 s.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import minisnn as ms  # noqa: E402
from minisnn import functional as F  # noqa: E402
from minisnn.apps.plots import line_chart  # noqa: E402
from minisnn.gradcheck import gradcheck_module  # noqa: E402

FIGURE = "01_fd_error_vs_eps.png"


def f_tape(x: float):
    """f(x) = sigmoid(x)^2 * log(x), recorded on the tape; returns (f, df/dx)."""
    t = ms.Tensor(np.float64(x), requires_grad=True)
    y = t.sigmoid() ** 2 * t.log()
    y.backward()  # a scalar: the upstream gradient defaults to 1
    return float(y.data), float(t.grad)


def f_value(x: float) -> float:
    s = 1.0 / (1.0 + np.exp(-x))
    return s * s * np.log(x)


def f_by_hand(x: float) -> float:
    """Chain and product rules: d/dx [s^2 log x] = 2 s s(1 - s) log x + s^2 / x."""
    s = 1.0 / (1.0 + np.exp(-x))
    return 2 * s * s * (1 - s) * np.log(x) + s * s / x


def main(out: Path) -> None:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)

    # 1. one number -----------------------------------------------------------------------
    x0 = 1.5
    _, tape = f_tape(x0)
    hand = f_by_hand(x0)
    h = 1e-5
    central = (f_value(x0 + h) - f_value(x0 - h)) / (2 * h)
    print(f"1. f(x) = sigmoid(x)^2 log(x) at x = {x0}:")
    print(f"   tape {tape:.12f}   by hand {hand:.12f}   central difference {central:.12f}")
    print(f"   |tape - by hand| = {abs(tape - hand):.2e}   |tape - central| = {abs(tape - central):.2e}")

    # 2. a dense layer + MSE, every weight ------------------------------------------------
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 5))
    target = rng.standard_normal((8, 3))
    w = rng.standard_normal((3, 5)) * 0.5
    b = rng.standard_normal(3) * 0.1

    def loss_value(w_arr, b_arr) -> float:
        with ms.no_grad():
            return float(F.mse_loss(F.dense(x, w_arr, b_arr).sigmoid(), target).data)

    wt = ms.Tensor(w.copy(), requires_grad=True)
    bt = ms.Tensor(b.copy(), requires_grad=True)
    loss = F.mse_loss(F.dense(x, wt, bt).sigmoid(), target)  # L = mean((sigmoid(x W^T + b) - t)^2)
    loss.backward()

    numeric = np.zeros_like(w)
    for i in np.ndindex(*w.shape):  # the loop minisnn.gradcheck.numerical_gradient runs
        wp, wm = w.copy(), w.copy()
        wp[i] += h
        wm[i] -= h
        numeric[i] = (loss_value(wp, b) - loss_value(wm, b)) / (2 * h)
    err_w = np.max(np.abs(numeric - wt.grad))
    rel_w = err_w / np.max(np.abs(numeric))
    print(f"2. dense(5->3) + sigmoid + MSE, {w.size} weights: max |tape - central| = {err_w:.2e}"
          f" (relative {rel_w:.2e})")

    # the library does the same for every parameter of a Module (and raises if one is wrong)
    net = ms.Sequential(ms.Dense(5, 4, rng=np.random.default_rng(1)),
                        ms.Neurons(ms.SoftLIFRate(sigma=0.5, amplitude=0.01)),
                        ms.Dense(4, 3, rng=np.random.default_rng(2)))
    net[0].b.data[:] = 2.0  # above the LIF threshold, where the rate has a useful slope
    gradcheck_module(net, x)
    print("   gradcheck_module(Dense -> SoftLIFRate -> Dense): passed (every parameter and the input)")

    # 3. the error of a finite difference against the step h ------------------------------
    hs = np.logspace(-13, -1, 25)
    fwd_err = [abs((f_value(x0 + e) - f_value(x0)) / e - tape) for e in hs]
    cen_err = [abs((f_value(x0 + e) - f_value(x0 - e)) / (2 * e) - tape) for e in hs]
    floor = 1e-17  # an exact hit would be log10(0)
    best_fwd, best_cen = hs[int(np.argmin(fwd_err))], hs[int(np.argmin(cen_err))]
    print(f"3. best step: forward difference h = {best_fwd:.1e} (error {min(fwd_err):.1e}), "
          f"central h = {best_cen:.1e} (error {min(cen_err):.1e})")

    path = out / FIGURE
    line_chart(
        path,
        {
            "forward (f(x+h) - f(x)) / h": (hs, np.log10(np.maximum(fwd_err, floor))),
            "central (f(x+h) - f(x-h)) / 2h": (hs, np.log10(np.maximum(cen_err, floor))),
        },
        title="Finite-difference error against the tape's exact derivative",
        xlabel="step h", ylabel="log10 |difference - tape|", logx=True,
    )
    print(f"wrote {path}  ({time.perf_counter() - t0:.2f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                        help="folder for the figure (default: examples/out)")
    main(parser.parse_args().out)
