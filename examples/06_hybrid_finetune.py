"""06 - Hybrid fine-tuning recovers what conversion lost at a short presentation.

Tour stop 10 (docs/tour.md): ``minisnn/hybrid.py`` (measure, replay, HybridNeuronsFn,
hybrid_loss) and ``minisnn/train.py`` (fit).

1. Train the tiny conv net of ``tiny_task.py`` as an ANN and convert it (LIF, Lowpass 5 ms).
2. Run the SNN for only T = 10 steps: the readout is noisy and the test accuracy drops.
3. Fine-tune the SNN at T = 10 with the hybrid method: each batch is *simulated with spikes*
   (forward), then replayed as an ANN-sized graph whose neuron layers output the measured mean
   rates and back-propagate the SoftLIFRate derivative r'(J) at the replayed current
   (backward).  Adam, 12 epochs; the validation accuracy of the SNN picks the best epoch.
4. Test accuracy of ANN / converted SNN / hybrid SNN at T = 10, and how much of the loss the
   hybrid step recovered; then both SNNs across T.

Writes ``06_hybrid_recovery.png`` and ``06_hybrid_vs_T.png``.

    python examples/06_hybrid_finetune.py [--out DIR]
"""

import os

# One thread for BLAS and for the Numba kernels: see the note in 01_gradcheck_by_hand.py.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from minisnn import functional as F  # noqa: E402
from minisnn.apps.plots import bar_chart, line_chart  # noqa: E402
from minisnn.hybrid import convert, hybrid_loss  # noqa: E402
from minisnn.train import fit  # noqa: E402

from tiny_task import accuracy, ann_accuracy, datasets, make_ann, train_ann  # noqa: E402

FIGURES = ["06_hybrid_recovery.png", "06_hybrid_vs_T.png"]
T_SHORT = 10  # the presentation the SNN is fine-tuned for
STEPS = [5, 10, 20, 50, 100]


def main(out: Path, epochs: int) -> None:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    data = datasets()
    x, y, labels = data["train"]
    xv, _, lv = data["val"]
    xt, _, lt = data["test"]

    # 1. ANN and conversion ---------------------------------------------------------------
    ann = make_ann()
    train_ann(ann, data, epochs=10)
    acc_ann = ann_accuracy(ann, xt, lt)
    converted = convert(ann, synapse=0.005, steps=T_SHORT)
    snet = convert(ann, synapse=0.005, steps=T_SHORT)  # a second copy, to be fine-tuned

    # 2. what conversion loses at T = 10 ---------------------------------------------------
    def snn_accuracy(net, xs, ls, steps=None):
        return accuracy(net.run(xs, steps).readout, ls)

    acc_conv = snn_accuracy(converted, xt, lt)
    rate_conv = converted.run(xt).mean_rate
    print(f"1. ANN test accuracy {acc_ann:.3f}")
    print(f"2. converted SNN at T = {T_SHORT}: test accuracy {acc_conv:.3f} (mean rate {rate_conv:.1f} Hz)")

    # 3. hybrid fine-tuning ---------------------------------------------------------------
    t = time.perf_counter()
    hist = fit(snet, lambda xb, yb: hybrid_loss(snet, xb, yb, F.mse_loss), (x, y),
               val_fn=lambda: snn_accuracy(snet, xv, lv), goal="max", epochs=epochs,
               batch_size=32, lr=0.01, seed=0, validate_first=True)
    print(f"3. hybrid fine-tuning, {hist['epochs_run']} epochs in {time.perf_counter() - t:.1f} s: "
          f"validation accuracy {hist['val_initial']:.3f} before, per epoch "
          f"{', '.join(f'{v:.3f}' for v in hist['val'])}; kept {hist['message'].split('restored ')[-1]}")

    # 4. the result -----------------------------------------------------------------------
    acc_hyb = snn_accuracy(snet, xt, lt)
    rate_hyb = snet.run(xt).mean_rate
    lost = acc_ann - acc_conv
    recovered = (acc_hyb - acc_conv) / lost if lost > 0 else float("nan")
    print(f"4. test accuracy at T = {T_SHORT}: ANN {acc_ann:.3f}, converted {acc_conv:.3f}, "
          f"hybrid {acc_hyb:.3f}; the hybrid step recovered {100 * recovered:.0f} % of the "
          f"{100 * lost:.1f} points conversion lost (mean rate {rate_conv:.1f} -> {rate_hyb:.1f} Hz)")
    bar_chart(out / FIGURES[0], ["ANN", f"converted SNN, T = {T_SHORT}", f"hybrid SNN, T = {T_SHORT}"],
              {"test accuracy": [acc_ann, acc_conv, acc_hyb]},
              title="What hybrid fine-tuning recovers", ylabel="test accuracy")

    acc_c = [snn_accuracy(converted, xt, lt, T) for T in STEPS]
    acc_h = [snn_accuracy(snet, xt, lt, T) for T in STEPS]
    print("   T:         " + "  ".join(f"{T:5d}" for T in STEPS))
    print("   converted: " + "  ".join(f"{a:5.3f}" for a in acc_c))
    print("   hybrid:    " + "  ".join(f"{a:5.3f}" for a in acc_h))
    line_chart(out / FIGURES[1],
               {"converted SNN": (STEPS, acc_c), f"hybrid SNN (tuned at T = {T_SHORT})": (STEPS, acc_h),
                "ANN": ([STEPS[0], STEPS[-1]], [acc_ann, acc_ann])},
               title="Test accuracy against presentation length", xlabel="time steps T (1 ms each)",
               ylabel="test accuracy", logx=True)
    for name in FIGURES:
        print(f"wrote {out / name}")
    print(f"({time.perf_counter() - t0:.2f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                        help="folder for the figures (default: examples/out)")
    parser.add_argument("--epochs", type=int, default=12, help="hybrid fine-tuning epochs (default 12)")
    args = parser.parse_args()
    main(args.out, args.epochs)
