"""What tests/test_mpi.py runs under ``mpirun -n 2`` (and as one process, to compare).

``python tests/mpi_driver.py step OUT.npz``
    A few training steps of fit() on tiny nets, each a whole epoch of one global batch or a
    batch and a 1-input rest (a share left empty on rank 1): LocNet's ANN step with its flips,
    the hybrid step with the mean and the per-step method, and the CAE's ANN step.  Rank 0
    writes every parameter after each to OUT.npz.

``python tests/mpi_driver.py cli [--fail-at K | --kill-at K | --drift-at K] -- minisnn-train ARGS...``
    The command line, with rank 1 made to raise a RuntimeError (``--fail-at``), to kill
    itself with SIGKILL (``--kill-at``) as it starts its K-th data-parallel training step
    (counted from 1 over the whole run), or to change a weight of its own after that step
    (``--drift-at``)

``python tests/mpi_driver.py no-mpi4py -- minisnn-train ARGS...``
    The command line in a process where ``import mpi4py`` fails (the extra not installed).
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np


def steps(out: str) -> None:
    import copy

    from minisnn import functional as F
    from minisnn.apps import loc, seg
    from minisnn.apps.common import on_part
    from minisnn.hybrid import convert, hybrid_loss
    from minisnn.optim import SGD
    from minisnn.parallel import init
    from minisnn.train import ann_loss, fit

    comm = init()
    rng = np.random.default_rng(5)
    saved = {}

    def one_epoch(name, model, step, x, y, batch, seed=0, adam=False):
        """One epoch from the same weights (SGD at lr 0.1, or Adam at 0.01): the parameters
        before and after it, and the last step's gradient, are saved."""
        model = copy.deepcopy(model)
        params = list(model.parameters())
        for i, p in enumerate(params):
            saved[f"{name}/before/{i}"] = p.data.copy()
        opt = None if adam else SGD(params, lr=0.1)
        fit(model, step(model), (x, y), epochs=1, batch_size=batch, lr=0.01, seed=seed, optimizer=opt, comm=comm)
        for i, p in enumerate(params):
            saved[f"{name}/after/{i}"] = p.data.copy()
            saved[f"{name}/grad/{i}"] = p.grad.copy()

    # LocNet's ANN step with its flips and both hybrid methods, on 7 images in one batch (shares
    # of 4 and 3) and on 9 images in batches of 8 (the rest of 1 leaves rank 1's share empty)
    cfg = loc.make_config("tiny")
    task = loc.LocTask(cfg)
    x = rng.random((9, 3) + tuple(cfg.size)).astype(np.float32)
    y = np.sort(rng.random((9, 4)).astype(np.float32), axis=1)  # x1 < y1 < x2 < y2: valid boxes
    task.norm = loc.Normalizer.fit(x, y)
    net = loc.build_locnet(cfg)
    loc.data_init(net, task.norm.images(x), *cfg.init_current)

    def ann(model):
        return loc._flip_step(lambda xb, yb, first: ann_loss(model, xb, yb, F.mse_loss), cfg, task.norm, 17)

    for n, batch in ((7, 7), (9, 8)):
        one_epoch(f"ann{n}", net, ann, x[:n], y[:n], batch, seed=n)
    one_epoch("ann-adam", net, ann, x, y, 4, adam=True)
    snet = convert(net, synapse=0.002, steps=8, seed=3)
    for method in ("mean", "per-step"):
        def hybrid(model, method=method):
            return loc._flip_step(lambda xb, yb, first: hybrid_loss(model, xb, yb, F.mse_loss, steps=8,
                                                                    method=method, first_index=first),
                                  cfg, task.norm, 19)

        for n, batch in ((7, 7), (9, 8)):
            one_epoch(f"{method}{n}", snet, hybrid, x[:n], y[:n], batch, seed=n)

    # the CAE's ANN step (per-sample Dice and BCE): 5 slices in one batch (shares of 3 and 2)
    cae = seg.build_cae(seg.make_config("tiny"))
    xs = rng.random((5, 1, 16, 16)).astype(np.float32)
    ys = (rng.random((5, 1, 16, 16)) > 0.7).astype(np.float32)
    one_epoch("cae", cae, lambda m: on_part(lambda xb, yb, first: seg.seg_loss(m(xb), yb)), xs, ys, 5)
    if comm.rank == 0:
        np.savez(out, **saved)


def cli(argv: list) -> None:
    from minisnn import parallel, train
    from minisnn.apps.cli import eval_main, train_main

    mode, k = None, None
    if argv[0] in ("--fail-at", "--kill-at", "--drift-at"):
        mode, k = argv[0], int(argv[1])
        argv = argv[2:]
    assert argv[0] == "--"
    command, args = argv[1], argv[2:]
    if mode is not None and parallel.launched()[0] == 1:
        original, calls = train._GradientSum.step, []

        def step(self, *a, **kw):
            calls.append(1)
            if len(calls) == k and mode == "--kill-at":
                os.kill(os.getpid(), signal.SIGKILL)
            if len(calls) == k and mode == "--fail-at":
                raise RuntimeError(f"injected failure at step {k}")
            result = original(self, *a, **kw)
            if len(calls) == k and mode == "--drift-at":
                self.params[0].data = self.params[0].data + np.float32(1e-3)
            return result

        train._GradientSum.step = step
    main = {"minisnn-train": train_main, "minisnn-eval": eval_main}[command]
    main(args, prog_name=command)


if __name__ == "__main__":
    what, rest = sys.argv[1], sys.argv[2:]
    if what == "step":
        steps(rest[0])
    elif what == "cli":
        cli(rest)
    elif what == "no-mpi4py":
        sys.modules["mpi4py"] = None  # import mpi4py now raises ImportError, as without the extra
        cli(rest)
    else:
        raise SystemExit(f"unknown mode {what!r}")
