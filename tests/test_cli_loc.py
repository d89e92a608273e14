"""``minisnn-train loc`` and ``minisnn-eval loc`` end to end on the tiny preset (synthetic data)."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner
from PIL import Image

from minisnn.apps.cli import eval_main, train_main

FILES = ["results.json", "report.md", "ann.npz", "hybrid_snn.npz", "examples.png", "firing_rates.png",
         "training.png", "loss.png", "iou_vs_steps.png"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("loc")
    result = CliRunner().invoke(train_main, ["loc", "--preset", "tiny", "--out", str(out), "--quiet", "--no-cache"])
    return out, result


def test_train_runs_end_to_end_and_prints_table_1(trained):
    out, result = trained
    assert result.exit_code == 0, result.output + repr(result.exception)
    for model in ("constant box (train mean)", "ANN (LocNet)", "converted SNN", "hybrid SNN"):
        assert model in result.output
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name


def test_results_are_finite_and_complete(trained):
    out, _ = trained
    res = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in res["table"]][0] == "constant box (train mean)"
    for row in res["table"]:
        for key in ("mean_iou", "sem", "hit50", "hit75"):
            assert math.isfinite(row[key]) and 0.0 <= row[key] <= 1.0, (row["model"], key)
    for row in res["table"][2:]:  # the SNNs
        assert row["rate_hz"] > 0 and row["synops"] > 0 and row["energy_uj"] > 0
    assert res["data"]["n_train"] + res["data"]["n_val"] + res["data"]["n_test"] == res["data"]["n_images"]
    assert set(res["rates_hz"]["converted"]) == set(res["rates_hz"]["hybrid"])
    assert len(res["iou_vs_steps"]["hybrid"]) == len(res["iou_vs_steps"]["steps"])
    assert res["config"]["preset"] == "tiny" and res["config"]["seed"] == 0
    with Image.open(out / "examples.png") as im:
        assert im.size[0] > 100


def test_same_seed_same_results(trained, tmp_path):
    out, _ = trained
    again = CliRunner().invoke(train_main, ["loc", "--preset", "tiny", "--out", str(tmp_path), "--quiet",
                                            "--no-cache"])
    assert again.exit_code == 0
    a = json.loads((out / "results.json").read_text())["table"]
    b = json.loads((tmp_path / "results.json").read_text())["table"]
    assert [r["mean_iou"] for r in a] == [r["mean_iou"] for r in b]


def test_eval_reads_the_checkpoints(trained):
    out, _ = trained
    for ckpt in ("ann.npz", "hybrid_snn.npz"):
        result = CliRunner().invoke(eval_main, ["loc", "--checkpoint", str(out / ckpt), "--steps", "6", "--quiet"])
        assert result.exit_code == 0, result.output
        assert "rate network" in result.output and "SNN (T=6)" in result.output


@pytest.mark.parametrize("args, message", [
    (["--steps", "0"], "--steps must be >= 1"),
    (["--folds", "1"], "--folds must be >= 2"),
    (["--epochs", "-1"], "epochs must be >= 0"),
    (["--lr", "0"], "lr must be > 0"),
])
def test_bad_options_give_one_line_errors(args, message, tmp_path):
    result = CliRunner().invoke(train_main, ["loc", "--preset", "tiny", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_data_folder_and_checkpoint(tmp_path):
    result = CliRunner().invoke(train_main, ["loc", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no such folder" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(train_main, ["loc", "--data", str(empty), "--out", str(tmp_path), "--no-cache"])
    assert result.exit_code == 2 and str(empty) in result.output and "Traceback" not in result.output
    bogus = tmp_path / "bogus.npz"
    bogus.write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(eval_main, ["loc", "--checkpoint", str(bogus)])
    assert result.exit_code == 2 and "bogus.npz" in result.output


def test_help_explains_every_option():
    text = CliRunner().invoke(train_main, ["loc", "--help"]).output
    for opt in ("--data", "--preset", "--out", "--seed", "--epochs", "--hybrid-epochs", "--steps", "--batch-size",
                "--lr", "--hybrid-method", "--threads", "--folds"):
        assert opt in text


def test_hybrid_method_option_reaches_the_run(trained, tmp_path):
    """The default preset fine-tunes unrolled in time (the tiny one too), ``--hybrid-method mean``
    replays the mean rates instead; an unknown method is a one-line usage error."""
    out, _ = trained
    assert json.loads((out / "results.json").read_text())["config"]["hybrid_method"] == "per-step"
    result = CliRunner().invoke(train_main, ["loc", "--preset", "tiny", "--out", str(tmp_path / "mean"), "--quiet",
                                             "--no-cache", "--hybrid-method", "mean", "--epochs", "1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert json.loads((tmp_path / "mean" / "results.json").read_text())["config"]["hybrid_method"] == "mean"
    result = CliRunner().invoke(train_main, ["loc", "--preset", "tiny", "--out", str(tmp_path / "x"),
                                             "--hybrid-method", "bptt"])
    assert result.exit_code == 2 and "--hybrid-method" in result.output and "Traceback" not in result.output


def test_k_fold_cross_validation_reports_the_mean_over_folds(tmp_path):
    result = CliRunner().invoke(train_main, ["loc", "--preset", "tiny", "--out", str(tmp_path), "--quiet",
                                             "--no-cache", "--folds", "2", "--hybrid-epochs", "0"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["folds"] == 2 and len(res["per_fold"]) == 2
    for j, row in enumerate(res["table"]):
        folds = [fold[j]["mean_iou"] for fold in res["per_fold"]]
        assert row["mean_iou"] == pytest.approx(sum(folds) / 2)
        assert row["model"].endswith("[2 folds]")
    assert (tmp_path / "fold1" / "results.json").is_file() and (tmp_path / "fold2" / "ann.npz").is_file()
    # the two folds test disjoint images that together cover the data set
    names = [set(json.loads((tmp_path / f"fold{k}" / "results.json").read_text())["data"]["test_names"])
             for k in (1, 2)]
    assert not names[0] & names[1] and len(names[0] | names[1]) == res["data"]["n_test"]
