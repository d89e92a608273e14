"""05 - Convert a tiny trained network to spiking neurons and watch accuracy rise with T.

Tour stops 5 and 8-9 (docs/tour.md): ``minisnn/simulate.py`` (simulate, SimResult) and
``minisnn/hybrid.py`` (convert, SpikingNet.run).

1. Train the tiny conv net of ``tiny_task.py`` (SoftLIFRate neurons) as an ANN.
2. ``convert`` it: every SoftLIFRate layer becomes a spiking LIF layer with a 5 ms Lowpass
   synapse; the weights are copied unchanged.
3. Simulate the SNN for T = 2 .. 200 steps of 1 ms and read out the mean output over the last
   half of the presentation.  Few steps -> few spikes and an unsettled synapse -> a noisy
   readout and a low accuracy; many steps -> the rates of the ANN and its accuracy.
4. Per layer, the ANN's rate against the SNN's measured rate, and the work: SynOps (spikes x
   fan-out) per image against the ANN's multiply-accumulates.

Writes ``05_accuracy_vs_T.png`` and ``05_layer_rates.png``.

    python examples/05_convert_tiny_net.py [--out DIR]
"""

import os

# One thread for BLAS and for the Numba kernels: see the note in 01_gradcheck_by_hand.py.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from minisnn.apps.plots import bar_chart, line_chart  # noqa: E402
from minisnn.hybrid import convert  # noqa: E402
from minisnn.train import forward_with_activations  # noqa: E402

from tiny_task import accuracy, ann_accuracy, datasets, make_ann, train_ann  # noqa: E402

FIGURES = ["05_accuracy_vs_T.png", "05_layer_rates.png"]
STEPS = [2, 5, 10, 20, 30, 50, 100, 200]


def main(out: Path) -> None:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    data = datasets()
    x, _, labels = data["test"]

    # 1. the ANN --------------------------------------------------------------------------
    ann = make_ann()
    hist = train_ann(ann, data, epochs=10)
    acc_ann = ann_accuracy(ann, x, labels)
    print(f"1. ANN trained {hist['epochs_run']} epochs in {sum(hist['time']):.1f} s: "
          f"test accuracy {acc_ann:.3f} ({len(labels)} images)")

    # 2.-3. convert and simulate for more and more steps -----------------------------------
    snet = convert(ann, synapse=0.005)  # LIF neurons, Lowpass(5 ms), weights copied
    print(f"2. converted: layer 1 {snet.net[1].model!r}; gradient model {snet.grad_models['1']!r}")
    print("3.    T   test accuracy   mean rate (Hz)   sim time (s)")
    accs = []
    for T in STEPS:
        t = time.perf_counter()
        res = snet.run(x, steps=T)  # readout = mean output over the last ceil(T/2) steps
        accs.append(accuracy(res.readout, labels))
        print(f"   {T:4d}   {accs[-1]:13.3f}   {res.mean_rate:14.1f}   {time.perf_counter() - t:12.2f}")
    line_chart(out / FIGURES[0],
               {"converted SNN": (STEPS, accs), "ANN": ([STEPS[0], STEPS[-1]], [acc_ann, acc_ann])},
               title="Converted SNN: test accuracy against presentation length",
               xlabel="time steps T (1 ms each)", ylabel="test accuracy", logx=True)

    # 4. rates per layer, and the work ----------------------------------------------------
    with_acts = forward_with_activations(ann, x)[1]  # {"1": Tensor, "3": Tensor}: the rate layers' outputs
    names = list(res.rates)
    ann_hz = [float(np.mean(ann[int(k)].rate_hz(with_acts[k].data))) for k in names]
    snn_hz = [res.rates[k] for k in names]
    for k, a, s in zip(names, ann_hz, snn_hz):
        print(f"4. layer {k}: ANN rate {a:.1f} Hz, SNN measured over {STEPS[-1]} steps {s:.1f} Hz")
    print(f"   per image: {res.synops['total']:.0f} SynOps over {STEPS[-1]} steps "
          f"({res.synops['total'] / STEPS[-1]:.0f} per step) vs {res.macs:.0f} ANN MACs")
    bar_chart(out / FIGURES[1], [f"neurons {k} (after {type(ann[int(k) - 1]).__name__})" for k in names],
              {"ANN (SoftLIFRate)": ann_hz, f"SNN (LIF, T = {STEPS[-1]})": snn_hz},
              title="Mean firing rate per neuron layer", ylabel="Hz")
    for name in FIGURES:
        print(f"wrote {out / name}")
    print(f"({time.perf_counter() - t0:.2f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                        help="folder for the figures (default: examples/out)")
    main(parser.parse_args().out)
