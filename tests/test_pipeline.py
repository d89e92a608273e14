"""The pipeline runs any task: a third task written in one place (a toy regression on random
vectors, ~60 lines) goes through data -> ANN -> convert -> hybrid -> table -> files, is written,
resumed and evaluated from its checkpoint like LocNet and the CAE."""

import json
from dataclasses import dataclass

import numpy as np

from minisnn import functional as F
from minisnn.hybrid import hybrid_loss
from minisnn.layers import Dense, Neurons, Sequential
from minisnn.neurons import RectifiedLinear
from minisnn.train import ann_loss
from minisnn.apps import pipeline
from minisnn.apps.common import Config, fit_ann, fit_hybrid, format_table


@dataclass
class ToyConfig(Config):
    preset: str = "tiny"
    epochs: int = 30
    hybrid_epochs: int = 1
    patience: int = 1
    batch_size: int = 16
    hybrid_batch_size: int | None = None
    lr: float = 0.01
    hybrid_lr: float = 0.001
    steps_train: int = 10
    hybrid_method: str = "mean"
    steps_eval: int = 20
    steps_short: int = 10
    steps_curve: tuple = (5, 10, 20)
    synapse: float = 0.002
    dt: float = 0.001
    precision: str = "float64"
    eval_batch: int = 32
    seed: int = 0


class ToyTask(pipeline.Task):
    """y = the mean of x's positive entries; scored by the mean absolute error (negated)."""

    name, label, title = "toy", "toy", "Toy results"
    Config = ToyConfig
    metric, metric_label, metric_short = "neg_mae", "-MAE", "-MAE"
    curve_key, inputs = "mae_vs_steps", "vectors"
    baseline_label, ann_label = "constant (train mean)", "ANN (toy)"
    row_keys = ("neg_mae",)

    def load(self, data_dir=None, cache_dir=None, quiet=True):
        x = np.random.default_rng(self.cfg.seed).normal(size=(120, 8)).astype(np.float32)
        return x, np.maximum(x, 0).mean(axis=1, keepdims=True).astype(np.float32)

    def split(self, data, fold=None):
        x, y = data
        tr, va, te = np.arange(80), np.arange(80, 100), np.arange(100, 120)
        return pipeline.Split(x[tr], y[tr], x[va], y[va], x[te], y[te], tr, te,
                              {"source": "toy", "n_test": len(te)}, ["data: toy, 80 / 20 / 20"])

    def baseline(self, data, split):
        return self.score(np.broadcast_to(split.y_train.mean(axis=0), split.y_test.shape), split.y_test)

    def everything(self, data):
        return data[0], data[1], "toy: 120 vectors"

    def build(self):
        rng = np.random.default_rng(self.cfg.seed)
        return Sequential(Dense(8, 32, rng=rng), Neurons(RectifiedLinear(), 100.0), Dense(32, 1, rng=rng))

    def train_ann(self, net, split, quiet, checkpoint=None, resume=False):
        return fit_ann(self.cfg, net, lambda xb, yb: ann_loss(net, xb, yb, F.mse_loss), (split.x_train, split.y_train),
                       lambda: self.score(pipeline.predict_ann(self, net, split.x_val), split.y_val)["neg_mae"],
                       self.metric_short, quiet, checkpoint=checkpoint, resume=resume)

    def train_hybrid(self, snet, split, quiet, checkpoint=None, resume=False):
        step = lambda xb, yb: hybrid_loss(snet, xb, yb, F.mse_loss, steps=self.cfg.steps_train)  # noqa: E731
        return fit_hybrid(self.cfg, snet, step, (split.x_train, split.y_train), split.x_val,
                          lambda ev: self.score(ev.outputs, split.y_val)["neg_mae"], self.metric_short, quiet,
                          checkpoint=checkpoint, resume=resume)

    def score(self, pred, target):
        return {"neg_mae": -float(np.mean(np.abs(np.asarray(pred) - target)))}

    @classmethod
    def table(cls, rows):
        return format_table(["model", "-MAE"], [[r["model"], f"{r['neg_mae']:.4f}"] for r in rows])

    def headline(self, results):
        return "Toy table"

    def data_line(self, info):
        return f"Data: {info['source']}"

    def snn_note(self):
        return "SNNs: spiking rectified-linear neurons."


def test_a_third_task_runs_end_to_end(tmp_path):
    task = ToyTask(ToyConfig())
    results = pipeline.run(task, tmp_path / "run", quiet=True, log=lambda m: None)
    models = [r["model"] for r in results["table"]]
    assert models == ["constant (train mean)", "ANN (toy)", "converted SNN (T=20)", "hybrid SNN (T=20)",
                      "converted SNN (T=10)", "hybrid SNN (T=10)"]
    # the ANN learned something the constant cannot: the score improves on the baseline
    assert results["table"][1]["neg_mae"] > results["table"][0]["neg_mae"] + 0.05, results["table"][:2]
    for name in ("results.json", "report.md", "ann.npz", "hybrid_snn.npz", "mae_vs_steps.png", "frontier.png"):
        assert (tmp_path / "run" / name).is_file(), name
    assert json.loads((tmp_path / "run" / "results.json").read_text())["table"] == results["table"]
    assert "# Toy results (tiny preset)" in (tmp_path / "run" / "report.md").read_text()

    # a resumed run of the finished folder repeats no training and ends with the same table
    again = pipeline.run(ToyTask(ToyConfig()), tmp_path / "run", quiet=True, log=lambda m: None, resume=True)
    assert again["table"] == results["table"]

    # the hybrid checkpoint, evaluated on every vector with the settings it was trained with
    ev = pipeline.evaluate_checkpoint(ToyTask, tmp_path / "run" / "hybrid_snn.npz", quiet=True, log=lambda m: None)
    assert [r["model"] for r in ev["table"]] == ["rate network (these weights)", "hybrid SNN (T=20)"]
    lines = pipeline.summary_lines(task, results, tmp_path / "run")
    assert lines[1] == "Toy table" and "ANN (toy)" in lines[2]
