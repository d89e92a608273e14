"""03 - The LIF neuron: voltage trace, spike raster, and its rate against LIFRate / SoftLIFRate.

Tour stop 6 (docs/tour.md): ``minisnn/neurons.py`` (LIF.step, LIF.run, LIFRate.rate,
SoftLIFRate.rate_grad, the twins) and ``minisnn/kernels/lif.py`` / ``kernels/rates.py``.

1. Two LIF neurons stepped one millisecond at a time with ``LIF.step`` (Nengo's update):
   the voltage charges towards J, crosses the threshold 1, resets to 0, waits tau_ref.
2. A population with currents from 0.8 to 8, run for 250 ms with the Numba time scan
   ``LIF.run``: a spike raster (one row per neuron, the highest current on top).
3. The measured spike rate over 2 s against the rate formula LIFRate,
   r(J) = 1 / (tau_ref + tau_rc log(1 + 1/(J - 1))), and SoftLIFRate, its smoothed twin.
4. Their derivatives dr/dJ: infinite at the threshold and zero below it for LIFRate, smooth
   and positive everywhere for SoftLIFRate - why the ANN is trained with the soft one.

Writes ``03_voltage.png``, ``03_raster.png``, ``03_rate_curve.png``, ``03_rate_grad.png``.

    python examples/03_lif_neuron.py [--out DIR]
"""

import os

# One thread for BLAS and for the Numba kernels: see the note in 01_gradcheck_by_hand.py.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import minisnn as ms  # noqa: E402
from minisnn.apps.plots import image_grid, line_chart  # noqa: E402

FIGURES = ["03_voltage.png", "03_raster.png", "03_rate_curve.png", "03_rate_grad.png"]
DT = 0.001  # one time step = 1 ms


def main(out: Path) -> None:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    lif = ms.LIF()  # tau_rc = 20 ms, tau_ref = 2 ms, threshold 1, reset 0
    lif_rate = lif.rate_twin()  # LIFRate with the same constants
    soft = lif.rate_twin(sigma=0.005)  # SoftLIFRate, the paper's smoothing
    soft_wide = lif.rate_twin(sigma=0.2)  # more smoothing, to see the difference
    print(f"twins: {lif!r} -> rate_twin() {lif_rate!r}, rate_twin(sigma=0.005) {soft!r};"
          f" {soft!r}.spiking_twin() -> {soft.spiking_twin()!r}")

    # 1. voltage traces, one step at a time ---------------------------------------------
    currents = np.array([1.5, 4.0])
    steps = 150
    v = np.zeros(2)  # start at rest (the simulator draws U(0, 1) instead)
    ref = np.zeros(2)
    spikes_out = np.zeros(2)
    trace = np.zeros((steps, 2))
    n_spikes = np.zeros(2, int)
    for t in range(steps):
        spiked = lif.step(DT, currents, spikes_out, v, ref)  # updates spikes_out, v, ref in place
        n_spikes += spiked
        trace[t] = v
    t_ms = np.arange(1, steps + 1) * DT * 1e3
    for J, n in zip(currents, n_spikes):
        print(f"1. J = {J}: {n} spikes in {steps} ms (LIFRate says {float(lif_rate.rate(J)):.1f} Hz)")
    line_chart(out / FIGURES[0],
               {f"J = {currents[0]}": (t_ms, trace[:, 0]), f"J = {currents[1]}": (t_ms, trace[:, 1]),
                "threshold": ([0, t_ms[-1]], [1, 1])},
               title="LIF membrane voltage (reset to 0 after each spike)", xlabel="time (ms)",
               ylabel="voltage", markers=False)

    # 2. a spike raster --------------------------------------------------------------------
    M, T = 40, 250
    J = np.linspace(0.8, 8.0, M)
    state = lif.make_state(M, rng=0, dtype=np.float64)  # voltage ~ U(0, 1), as Nengo
    spikes = np.zeros((T, M))
    counts = lif.run(DT, J[None, :], spikes, state)  # (T, M): amplitude/dt at a spike, else 0
    raster = (spikes > 0).T[::-1]  # rows = neurons, highest current on top; columns = time
    img = np.repeat((1.0 - raster)[None], 3, axis=0)  # black spikes on white
    silent = int(np.sum(counts == 0))
    print(f"2. raster: {M} neurons, J from {J[0]} to {J[-1]}, {T} ms: {int(counts.sum())} spikes; "
          f"{silent} neurons (J <= 1) never fire; the top one fires {int(counts[-1])} times")
    image_grid(out / FIGURES[1], [img], [{}], colors={},
               titles=[f"{M} LIF neurons x {T} ms, J = {J[0]:g} (bottom) .. {J[-1]:g} (top)"], scale=3)

    # 3. measured rate against the rate formulas -------------------------------------------
    # a coarse grid (every point is drawn as a dot), denser around the threshold J = 1
    Jr = np.concatenate([np.linspace(0.0, 0.8, 9), np.linspace(0.9, 1.28, 20), np.linspace(1.3, 4.0, 28)])
    T_long = 2000
    state = lif.make_state(Jr.size, rng=1, dtype=np.float64)
    counts = lif.run(DT, Jr[None, :], np.zeros((T_long, Jr.size)), state)
    measured = counts / (T_long * DT)
    exact = lif_rate.rate(Jr)
    err = np.abs(measured - exact)
    print(f"3. spike counts over {T_long} ms vs LIFRate at {Jr.size} currents: max |measured - formula| = "
          f"{err.max():.2f} Hz (one spike in {T_long} ms is {1 / (T_long * DT):.2f} Hz); "
          f"at J = {Jr[-1]:g}: {measured[-1]:.1f} Hz vs {exact[-1]:.2f} Hz")
    # invert r = 1 / (tau_ref + tau_rc log(1 + 1/(J - 1))) for J:
    j_250 = 1 + 1 / np.expm1((1 / 250 - lif.tau_ref) / lif.tau_rc)
    print(f"   250 Hz needs J = {j_250:.3f} (LIFRate({j_250:.3f}) = {float(lif_rate.rate(j_250)):.2f} Hz);"
          f" below threshold: LIFRate(0.9) = {float(lif_rate.rate(0.9)):.2f} Hz, "
          f"SoftLIFRate(0.005)(0.9) = {float(soft.rate(0.9)):.2f} Hz, "
          f"SoftLIFRate(0.2)(0.9) = {float(soft_wide.rate(0.9)):.2f} Hz")
    line_chart(out / FIGURES[2],
               {"SoftLIFRate sigma=0.2": (Jr, soft_wide.rate(Jr)), "SoftLIFRate sigma=0.005": (Jr, soft.rate(Jr)),
                "LIFRate": (Jr, exact), "LIF: spikes counted over 2 s": (Jr, measured)},
               title="Firing rate against input current", xlabel="input current J (threshold 1)",
               ylabel="rate (Hz)")

    # 4. the derivatives the backward pass uses --------------------------------------------
    Jg = np.linspace(0.8, 2.0, 121)
    g_lif, g_soft, g_wide = lif_rate.rate_grad(Jg), soft.rate_grad(Jg), soft_wide.rate_grad(Jg)
    below = Jg < 1
    print(f"4. dr/dJ below threshold (J < 1): LIFRate max {g_lif[below].max():.2f}, "
          f"SoftLIFRate(0.005) max {g_soft[below].max():.2f}, SoftLIFRate(0.2) max {g_wide[below].max():.2f} Hz;"
          f" at J = 1.01: LIFRate {float(lif_rate.rate_grad(1.01)):.0f}, SoftLIFRate(0.005) "
          f"{float(soft.rate_grad(1.01)):.0f} Hz per unit current")
    line_chart(out / FIGURES[3],
               {"LIFRate": (Jg, g_lif), "SoftLIFRate sigma=0.005": (Jg, g_soft),
                "SoftLIFRate sigma=0.2": (Jg, g_wide)},
               title="dr/dJ: the derivative hybrid training back-propagates", xlabel="input current J",
               ylabel="dr/dJ (Hz per unit current)", markers=False)
    for name in FIGURES:
        print(f"wrote {out / name}")
    print(f"({time.perf_counter() - t0:.2f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                        help="folder for the figures (default: examples/out)")
    main(parser.parse_args().out)
