"""A regression test of learning: a small seeded LocNet run, end to end, must learn.

The synthetic airplanes at the main job's size (48x72, widths 8-16-32) with the main job's
recipe, shortened to 400 images, 10 ANN epochs and one hybrid epoch at T = 10 (45 s measured
on 2 busy cores).  The margins were set from a measured run, with room for the last-bit
differences between hosts (README, "Bit for bit on one host"): test mean IoU of the constant
box 0.4412, the ANN 0.5000 (+0.059); at T = 10 the converted SNN 0.4295 and the hybrid 0.4450
(+0.016).  With OpenBLAS's AVX2 kernel (``OPENBLAS_CORETYPE=Haswell``, the other host class):
the ANN 0.5154 (+0.074), at T = 10 the converted SNN 0.4382 and the hybrid 0.4486 (+0.010).
On an AVX2 host (AMD EPYC, znver3): the ANN 0.5083 (+0.067); the hybrid epoch raised the
validation IoU at T = 10 from 0.4630 to 0.4685 and was kept, yet on the test split at T = 10
it read 0.4414 against the converted net's 0.4477 (-0.0063, standard error 0.028; at T = 20
0.4613 against 0.4402).
"""

from __future__ import annotations

import pytest

from minisnn.apps import loc

ANN_MARGIN = 0.03   # the ANN must beat the constant box by this much (measured: +0.059, +0.074)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    cfg = loc.make_config("default", n_synthetic=400, epochs=10, hybrid_epochs=1, steps_eval=20,
                          steps_train=10, steps_short=10, steps_curve=(10, 20))
    return loc.run(cfg, tmp_path_factory.mktemp("learning"), write_files=False, quiet=True,
                   log=lambda message: None)


def _row(results, model):
    return next(r for r in results["table"] if r["model"] == model)


def _iou(results, model):
    return _row(results, model)["mean_iou"]


def test_ann_beats_the_constant_box(small_run):
    gain = _iou(small_run, "ANN (LocNet)") - _iou(small_run, "constant box (train mean)")
    assert gain >= ANN_MARGIN, f"the ANN learned too little: {gain:+.4f} over the constant box"


def test_hybrid_does_not_end_below_the_converted_net(small_run):
    """Early stopping keeps the converted weights unless a hybrid epoch beats them on the
    validation split at T = 10, the T it fine-tunes for.  Kept, the hybrid net is the converted
    net: the same test IoU to the last bit.  Replaced, the choice was made on the validation
    split, and on the test split's images it may come out a hair lower (one host: -0.0063,
    see the module docstring), but not by more than half the converted net's standard error."""
    history = small_run["history"]["hybrid"]
    assert history["best_val"] >= history["val_initial"]    # kept: the converted weights or better
    hybrid, converted = _row(small_run, "hybrid SNN (T=10)"), _row(small_run, "converted SNN (T=10)")
    if history["best_val"] == history["val_initial"]:
        assert hybrid["mean_iou"] == converted["mean_iou"]
    else:
        assert hybrid["mean_iou"] >= converted["mean_iou"] - 0.5 * converted["sem"], (hybrid, converted)
