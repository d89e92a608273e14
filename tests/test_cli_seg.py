"""``minisnn-train seg`` and ``minisnn-eval seg`` end to end on the tiny preset (synthetic NIfTI)."""

from __future__ import annotations

import json
import math

import nibabel as nib
import pytest
from click.testing import CliRunner

from minisnn.apps.cli import eval_main, train_main

FILES = ["results.json", "report.md", "ann.npz", "hybrid_snn.npz", "examples.png", "firing_rates.png",
         "training.png", "loss.png", "dice_vs_steps.png"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("seg")
    result = CliRunner().invoke(train_main, ["seg", "--preset", "tiny", "--out", str(out), "--quiet", "--no-cache"])
    return out, result


def test_train_runs_end_to_end_and_prints_table_2(trained):
    out, result = trained
    assert result.exit_code == 0, result.output + repr(result.exception)
    for model in ("constant prior mask", "ANN (CAE)", "converted SNN", "hybrid SNN"):
        assert model in result.output
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name


def test_results_are_finite_and_the_split_is_by_subject(trained):
    out, _ = trained
    res = json.loads((out / "results.json").read_text())
    assert res["table"][0]["model"] == "constant prior mask"
    for row in res["table"]:
        for key in ("dice_volume", "dice_slice"):
            assert math.isfinite(row[key]) and 0.0 <= row[key] <= 1.0, (row["model"], key)
    for row in res["table"][2:]:
        assert row["rate_hz"] > 0 and row["synops"] > 0
    d = res["data"]
    assert d["n_train"] + d["n_val"] + d["n_test"] == d["n_subjects"]
    assert len(set(d["test_subjects"])) == d["n_test"]


def test_predictions_are_written_in_each_subjects_geometry(trained):
    out, _ = trained
    res = json.loads((out / "results.json").read_text())
    for name in res["data"]["test_subjects"]:
        prob = nib.load(out / "predictions" / f"{name}_prob.nii.gz")
        mask = nib.load(out / "predictions" / f"{name}_mask.nii.gz")
        assert prob.shape == mask.shape and len(prob.shape) == 3
        assert (prob.affine == mask.affine).all()


def test_eval_reads_the_checkpoints(trained):
    out, _ = trained
    for ckpt in ("ann.npz", "hybrid_snn.npz"):
        result = CliRunner().invoke(eval_main, ["seg", "--checkpoint", str(out / ckpt), "--steps", "4", "--quiet"])
        assert result.exit_code == 0, result.output
        assert "rate network" in result.output and "SNN (T=4)" in result.output


def test_bad_options_and_data_give_one_line_errors(tmp_path):
    result = CliRunner().invoke(train_main, ["seg", "--preset", "tiny", "--out", str(tmp_path), "--steps", "0"])
    assert result.exit_code == 2 and "--steps must be >= 1" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(train_main, ["seg", "--data", str(empty), "--out", str(tmp_path), "--no-cache"])
    assert result.exit_code == 2 and str(empty) in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(eval_main, ["seg", "--checkpoint", str(tmp_path / "missing.npz")])
    assert result.exit_code == 2 and "missing.npz" in result.output


def test_subjects_takes_a_seeded_subset_split_by_subject(tmp_path):
    result = CliRunner().invoke(train_main, ["seg", "--preset", "tiny", "--out", str(tmp_path), "--quiet",
                                             "--no-cache", "--subjects", "4", "--epochs", "0", "--hybrid-epochs", "0"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    d = json.loads((tmp_path / "results.json").read_text())["data"]
    assert (d["n_subjects"], d["n_available"]) == (4, 6)
    assert d["n_train"] + d["n_val"] + d["n_test"] == 4
    result = CliRunner().invoke(train_main, ["seg", "--preset", "tiny", "--out", str(tmp_path), "--subjects", "2"])
    assert result.exit_code == 2 and "--subjects must be 0 (all) or >= 3" in result.output
