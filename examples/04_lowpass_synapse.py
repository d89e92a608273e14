"""04 - A Lowpass synapse turns a spike train into a rate estimate.

Tour stop 7 (docs/tour.md): ``minisnn/synapses.py`` (Lowpass.coefficient, Lowpass.filt) and
``minisnn/kernels/lowpass.py``.

1. One LIF neuron at J = 3 fires ~99 Hz.  Its output is a train of impulses of height 1/dt.
2. ``Lowpass(tau).filt`` computes y[n] = a y[n-1] + (1 - a) u[n], a = exp(-dt / tau): checked
   against that loop written out, including "no delay" (y[0] = (1 - a) u[0]).
3. The trade-off the simulator lives with: a longer tau gives a smoother estimate (less ripple)
   but a slower one (the step response reaches 90 % after ~ tau ln 10).  With few time steps
   the readout has not settled yet - why converted accuracy rises with T (example 05).

Writes ``04_lowpass.png``.

    python examples/04_lowpass_synapse.py [--out DIR]
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
from minisnn.apps.plots import line_chart  # noqa: E402

FIGURE = "04_lowpass.png"
DT = 0.001


def main(out: Path) -> None:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)

    # 1. a spike train ----------------------------------------------------------------------
    lif = ms.LIF()
    J, T = 3.0, 300
    state = lif.make_state(1, rng=0, dtype=np.float64)
    u = np.zeros((T, 1))
    lif.run(DT, np.array([[J]]), u, state)  # u[t] = 1/dt = 1000 at a spike, else 0
    rate = float(lif.rate(J))
    n = int(np.count_nonzero(u))
    print(f"1. LIF at J = {J}: {n} spikes in {T} ms ({n / (T * DT):.1f} Hz; LIFRate {rate:.1f} Hz); "
          f"each spike is an impulse of height {u.max():.0f} = 1/dt")

    # 2. the filter, and the same recurrence by hand ----------------------------------------
    taus = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05]
    filtered = {tau: ms.Lowpass(tau).filt(u, dt=DT)[:, 0] for tau in taus}
    syn = ms.Lowpass(0.005)
    a = syn.coefficient(DT)
    y, by_hand = 0.0, np.zeros(T)
    for t in range(T):
        y = a * y + (1 - a) * u[t, 0]
        by_hand[t] = y
    k = int(np.argmax(u[:, 0] > 0))  # the first spike
    y5 = filtered[0.005]
    print(f"2. Lowpass(0.005): a = exp(-dt/tau) = {a:.6f}; max |filt - loop| = "
          f"{np.max(np.abs(y5 - by_hand)):.1e}")
    print(f"   first spike at step {k}: y[{k - 1}] = {y5[k - 1]:.1f}, y[{k}] = {y5[k]:.1f} = (1 - a) / dt "
          f"(the spike reaches the output in its own step: no delay)")
    impulse = np.zeros((1000, 1))
    impulse[0] = 1 / DT
    area = float(syn.filt(impulse, dt=DT).sum() * DT)
    print(f"   one spike's filtered area = {area:.6f} (unit DC gain: the mean of y is the mean rate)")

    # 3. ripple against lag -----------------------------------------------------------------
    late = slice(T // 2, T)
    print("3.  tau (ms)   mean of y, 2nd half (Hz)   ripple std/mean   90 % rise time (ms)")
    for tau in taus:
        yf = filtered[tau][late]
        step = ms.Lowpass(tau).filt(np.ones((400, 1)), dt=DT)[:, 0]
        rise = (int(np.argmax(step >= 0.9)) + 1) * DT * 1e3
        print(f"    {tau * 1e3:6.0f}   {yf.mean():24.1f}   {yf.std() / yf.mean():15.2f}   {rise:19.0f}")

    t_ms = np.arange(1, T + 1) * DT * 1e3
    shown = slice(0, 150)
    tick = 300.0  # spikes drawn as ticks of this height (their true height is 1/dt = 1000)
    path = out / FIGURE
    line_chart(
        path,
        {
            "spikes (not to scale)": (t_ms[shown], np.where(u[shown, 0] > 0, tick, 0.0)),
            "Lowpass 5 ms": (t_ms[shown], filtered[0.005][shown]),
            "Lowpass 20 ms": (t_ms[shown], filtered[0.02][shown]),
            "LIFRate(J)": ([t_ms[0], t_ms[shown][-1]], [rate, rate]),
        },
        title=f"A LIF spike train (J = {J:g}) through Lowpass synapses", xlabel="time (ms)",
        ylabel="Hz", markers=False,
    )
    print(f"wrote {path}  ({time.perf_counter() - t0:.2f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                        help="folder for the figure (default: examples/out)")
    main(parser.parse_args().out)
