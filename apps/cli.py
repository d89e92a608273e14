"""The command line: ``minisnn-train loc|seg`` and ``minisnn-eval loc|seg``.

Heavy imports (numpy, numba, the engine) happen inside the commands, after ``--threads`` has
set the thread-count environment variables that OpenBLAS and Numba read once, at load time.
Bad input ends with one line on stderr (``error: ...``) and exit status 2, never a traceback:
option values click itself rejects (``--epochs abc``, an unknown option) too.

``minisnn-train`` never clobbers an earlier run in ``--out`` (``--overwrite`` replaces it), holds a
lock on ``--out`` while it runs (a second run there is refused) and writes a checkpoint every
epoch to ``--out``/state/, from which ``--resume`` continues a run that was killed or
interrupted (Ctrl-C ends with exit status 130 and says so).

Under ``mpirun -n N`` (N > 1; the ``[mpi]`` extra) both commands run data-parallel
(:mod:`minisnn.parallel`): every process takes its share of each training batch and of every
evaluation, by default on its share of the machine's cores (``--threads`` overrides), and rank
0 alone prints and writes.  A process that fails ends the whole job with one line
(``MPI_Abort``); an error every process meets is reported once, by rank 0.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
import sys
from pathlib import Path

import click

from .. import parallel
from ..runtime import THREAD_VARS


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


class _OneLineErrors(click.Group):
    """A click group whose usage errors (bad option values, unknown options) are one line,
    ``error: ...`` on stderr with exit status 2, like the commands' own errors."""

    def main(self, *args, **kwargs):
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except _NO_ARGS_IS_HELP as e:  # a bare command: show its help, as click does
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            cmd = e.ctx.command_path if e.ctx else self.name
            _fail(f"{e.format_message()} (see {cmd} --help)")
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except Exception as e:  # under mpirun: any failure of a process ends the job with one line, never a hang
            if parallel.world().size == 1:
                raise
            what = _one_line(e) if isinstance(e, parallel.RanksDiverged) else f"{type(e).__name__}: {_one_line(e)}"
            parallel.world().fail(what, 1)
        parallel.world().barrier()  # so rank 0 hears of a process that failed after the last exchange
        return result


def _start(threads: int | None) -> None:
    """What every command does first: the MPI processes (when ``mpirun`` started several, see
    :func:`minisnn.parallel.init`: one error line without the ``[mpi]`` extra), the thread count
    (under mpirun by default each process's share of the machine's cores), then glibc's
    allocator told to keep freed memory for reuse (:func:`minisnn.runtime.reuse_freed_memory`)."""
    try:
        world = parallel.init()
    except ImportError as e:
        _fail(str(e))
    if world.size > 1:
        if threads is None:
            threads = max(1, (os.cpu_count() or 1) // world.local_size)
        if world.rank != 0:  # rank 0 alone speaks
            import warnings

            warnings.simplefilter("ignore")
    _set_threads(threads)
    from ..runtime import reuse_freed_memory

    reuse_freed_memory()


def _set_threads(n: int | None) -> None:
    if n is None:
        return
    cpus = os.cpu_count() or 1
    if not 1 <= n <= cpus:  # far too many threads crash OpenBLAS / Numba at start-up (a segfault)
        _fail(f"--threads must be between 1 and {cpus} (the CPUs of this machine), got {n}")
    if "numpy" in sys.modules or "numba" in sys.modules:
        # Importing minisnn.apps.cli imports the minisnn package, and with it numpy and numba,
        # so the environment comes too late for this process: tell both libraries directly.
        # And leave os.environ alone: numba re-reads NUMBA_NUM_THREADS at every compilation and
        # raises if it differs from the pool it started, and an in-process caller (a test
        # with click's CliRunner) would otherwise leak the setting into its later subprocesses.
        from ..runtime import set_threads

        set_threads(n)
        return
    for var in THREAD_VARS:  # read once, at load time
        os.environ[var] = str(n)


def _fail(message: str) -> None:
    """``error: message`` on stderr, exit status 2; under mpirun printed once, by rank 0, and
    the whole job ends (:meth:`minisnn.parallel.MPIComm.fail`)."""
    world = parallel.world()
    if world.size > 1:
        world.fail(message, 2)
    if parallel.launched()[0] == 0:  # before MPI started (a bad option): every process exits, rank 0 says why
        click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _echo(message: str, err: bool = False) -> None:
    """``click.echo`` on rank 0 only (every process of a single-process run)."""
    if parallel.world().rank == 0:
        click.echo(message, err=err)


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minisnn"


@click.group(cls=_OneLineErrors,
             help="Train the minisnn applications (ANN -> converted SNN -> hybrid fine-tuned SNN).")
def train_main():
    pass


@click.group(cls=_OneLineErrors, help="Evaluate saved minisnn models.")
def eval_main():
    pass


def _run_options(app: str, data_help: str, preset_help: str, epochs_help: str, lr_help: str, hybrid_lr_help: str,
                 metric: str):
    """The options every ``minisnn-train`` command shares (help texts per app)."""
    options = [
        click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help=data_help),
        click.option("--preset", type=click.Choice(["default", "paper", "tiny"]), default="default",
                     show_default=True, help=preset_help),
        click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path(f"runs/{app}"),
                     show_default=True, help="Folder for results.json, report.md, checkpoints and figures."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seeds the split, the weights, the shuffling, the augmentation and the initial voltages."),
        click.option("--epochs", type=int, default=None, help=epochs_help),
        click.option("--hybrid-epochs", type=int, default=None,
                     help=f"Most hybrid fine-tuning epochs; early stopping on the validation {metric} may end sooner."),
        click.option("--steps", type=int, default=None, help="T, the time steps (1 ms) of the long SNN evaluations."),
        click.option("--train-steps", type=int, default=None, help="T of the hybrid training presentations."),
        click.option("--batch-size", type=int, default=None, help="Training batch size (default 32)."),
        click.option("--lr", type=float, default=None, help=lr_help),
        click.option("--hybrid-lr", type=float, default=None, help=hybrid_lr_help),
        click.option("--hybrid-method", type=click.Choice(["per-step", "mean"]), default=None,
                     help="How the hybrid step takes its gradient: per-step (the spiking net unrolled over the "
                          "T training steps, each layer back-propagating its rate derivative at every step; "
                          "the default, except for loc --preset paper) or mean (the measured mean rates "
                          "replayed through the rate net: memory of an ANN step whatever T, faster, but blind "
                          "to the transient of a short T)."),
        click.option("--precision", type=click.Choice(["float64", "float32"]), default=None,
                     help="Arithmetic of the spiking LIF steps: float32 (NengoDL's, vectorised; the default) or "
                          "float64 (exact, Nengo's). Converted and fine-tuned nets score the same within noise "
                          "at both (see README)."),
        click.option("--threads", type=int, default=None, help="CPU threads for BLAS and Numba (default: all)."),
        click.option("--cache/--no-cache", default=True, show_default=True,
                     help="Keep decoded data in ~/.cache/minisnn, keyed by the files and the settings."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
        click.option("--resume", is_flag=True,
                     help="Continue the interrupted run in --out from its last checkpoint (written every epoch "
                          "to --out/state/); give the same options. Ends with the results of an uninterrupted run."),
        click.option("--overwrite", is_flag=True,
                     help="Replace an earlier run in --out (its results, checkpoints and figures are deleted first); "
                          "without it an existing run is never clobbered."),
    ]
    return _stack(options)


def _stack(options):
    """One decorator applying click options in the order listed (as stacked ``@`` lines would)."""
    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def _eval_options(app: str, data_help: str):
    """The options every ``minisnn-eval`` command shares."""
    options = [
        click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), required=True,
                     help=f"ann.npz or hybrid_snn.npz written by minisnn-train {app}."),
        click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help=data_help),
        click.option("--steps", type=int, default=None, help="T of the SNN evaluation (default: the checkpoint's)."),
        click.option("--precision", type=click.Choice(["float64", "float32"]), default=None,
                     help="Arithmetic of the spiking LIF steps: float32 (NengoDL's arithmetic, vectorised) or "
                          "float64 (exact, Nengo's; the spike counts agree, see README). Default: the checkpoint's."),
        click.option("--threads", type=int, default=None, help="CPU threads for BLAS and Numba (default: all)."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    return _stack(options)


def _short_steps_option(preset_values: str):
    return click.option("--short-steps", type=int, default=None,
                        help="T of the low-latency operating point: the hybrid fine-tuning keeps its best epoch "
                             "at this T, and both SNNs are also evaluated at it, with their rate and energy "
                             f"(preset: {preset_values}; no extra rows when >= --steps).")


def _check_common(steps, data_dir):
    if steps is not None and steps < 1:
        _fail(f"--steps must be >= 1, got {steps}")
    if data_dir is not None and not data_dir.is_dir():
        _fail(f"--data {data_dir}: no such folder")


@train_main.command("loc")
@_run_options(
    "loc",
    data_help="Airplanes folder: airplanes.csv + images/, or the Caltech-101 layout "
              "(101_ObjectCategories/airplanes + Annotations/Airplanes_Side_2). "
              "Default: a seeded synthetic set, generated in seconds.",
    preset_help="default: 48x72 input, the whole pipeline in ~5 min on 2 cores; paper: the paper's 200x300 "
                "input and 50 ANN epochs (~27 min on 2 quiet cores); tiny: seconds, for smoke tests.",
    epochs_help="ANN epochs (preset: default 30, paper 50).",
    lr_help="ANN Adam learning rate (preset: default 0.002, paper 0.001; the paper used 0.01, which collapses onto "
            "the mean box here).",
    hybrid_lr_help="Hybrid fine-tuning learning rate (default 0.002 in both presets).",
    metric="IoU",
)
@click.option("--folds", type=int, default=None,
              help="K-fold cross-validation: run the whole pipeline K times, each fold as the test set, "
                   "and report each model's mean IoU over the folds.")
@_short_steps_option("default 20, paper 10, tiny 6")
@click.option("--tau-ref", type=float, default=None,
              help="Refractory period (s) of the soft-LIF neurons trained and the LIF neurons they become "
                   "(default 0.002). 0 trains a net that minisnn-export nir writes without --drop-refractory.")
def train_loc(data_dir, preset, out_dir, seed, epochs, hybrid_epochs, steps, train_steps, batch_size, lr, hybrid_lr,
              hybrid_method, folds, short_steps, tau_ref, precision, threads, cache, quiet, resume, overwrite):
    """LocNet on Caltech-101 airplanes: the paper's Table 1, end to end.

    Trains the ANN (soft-LIF neurons, MSE; the paper preset adds the firing-rate regularizer),
    converts it to LIF neurons with 2 ms Lowpass synapses (the paper: 5 ms),
    evaluates, fine-tunes with the hybrid method for the short T, evaluates again, then prints
    Table 1 (with the constant-box baseline first; SNNs at --steps and at --short-steps) and
    writes results.json, report.md, ann.npz, hybrid_snn.npz and PNG figures to --out.
    """
    _start(threads)
    _check_common(steps, data_dir)
    if folds is not None and folds < 2:
        _fail(f"--folds must be >= 2, got {folds}")
    from . import loc

    with _user_errors(out_dir):
        cfg = _config(loc, preset, steps, seed=seed, epochs=epochs, hybrid_epochs=hybrid_epochs,
                      steps_train=train_steps, batch_size=batch_size, lr=lr, hybrid_lr=hybrid_lr,
                      hybrid_method=hybrid_method, steps_short=short_steps, precision=precision, tau_ref=tau_ref)
        _train(loc.LocTask(cfg), out_dir, data_dir, cache, quiet, resume, overwrite, folds=folds)


_OUT_OF_MEMORY = "out of memory: try a smaller --batch-size, --steps or --train-steps (or a smaller data set)"


@contextmanager
def _user_errors(out_dir):
    """The body of a training command: data, checkpoint and option errors end as one line,
    Ctrl-C as one line saying how to continue (``--resume``)."""
    try:
        yield
    except (ValueError, OSError) as e:
        _fail(_one_line(e))
    except MemoryError:
        _fail(_OUT_OF_MEMORY)
    except (KeyboardInterrupt, SystemError) as e:  # Ctrl-C inside a Numba kernel comes as a SystemError
        _interrupted(out_dir, e)


def _config(module, preset: str, steps, **overrides):
    """``module.make_config`` with the command-line overrides; ``--steps T`` also sets the
    metric-vs-T curve to T/4, T/2, T and 2T."""
    cfg = module.make_config(preset, steps_eval=steps, **overrides)
    if steps is not None:
        cfg.steps_curve = tuple(sorted({max(1, steps // 4), max(1, steps // 2), steps, 2 * steps}))
    return cfg


def _one_line(e: BaseException) -> str:
    """The first line of an error's message (the type's name for an empty one)."""
    text = str(e)
    return text.splitlines()[0] if text.strip() else type(e).__name__


def _interrupted(out_dir, error: BaseException) -> None:
    """Ctrl-C: one line saying how to continue, exit status 130.  A SystemError that does not come
    from a KeyboardInterrupt (Numba wraps one raised inside a kernel) is raised again."""
    cause = error
    while cause is not None and not isinstance(cause, KeyboardInterrupt):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        raise error
    message = f"\ninterrupted: the last checkpoint is in {out_dir}/state/; continue with the same options and --resume"
    if parallel.world().size > 1:
        parallel.world().fail(message, 130, prefix="")
    click.echo(message, err=True)
    sys.exit(130)


def _train(task, out_dir, data_dir, cache: bool, quiet: bool, resume: bool, overwrite: bool, folds=None):
    """The body of every ``minisnn-train`` command once its config is made: claim ``--out``, run
    the pipeline (or its k folds), print the summary."""
    from . import pipeline
    from .common import claim_out

    cfg, world = task.cfg, parallel.world()
    options = dict(cache_dir=_default_cache() / task.name if cache else None, quiet=quiet or world.rank != 0,
                   resume=resume, log=lambda m: _echo(m, err=True))
    with _claimed(out_dir, overwrite, resume, claim_out):
        _echo(f"minisnn-train {task.name}: preset {cfg.preset}, seed {cfg.seed}, out {out_dir}{_processes()}",
              err=True)
        if folds:
            results = pipeline.run_folds(task, out_dir, data_dir, folds, **options)
        else:
            results = pipeline.run(task, out_dir, data_dir, **options)
    for line in pipeline.summary_lines(task, results, out_dir):
        _echo(line)


@contextmanager
def _claimed(out_dir, overwrite, resume, claim_out):
    """``claim_out`` on rank 0 (the lock on ``--out``, its checks); the other processes wait
    until rank 0 has claimed it (a refusal is reported by rank 0 and ends the job)."""
    world = parallel.world()
    if world.rank != 0:
        world.barrier()
        yield out_dir
        return
    with claim_out(out_dir, overwrite=overwrite, resume=resume) as out:
        world.barrier()
        yield out


def _processes() -> str:
    """``, 2 MPI processes x 1 thread`` under mpirun, else nothing."""
    world = parallel.world()
    if world.size == 1:
        return ""
    from ..kernels import get_num_threads

    n = get_num_threads()
    return f", {world.size} MPI processes x {n} thread{'s' if n > 1 else ''}"


@eval_main.command("loc")
@_eval_options("loc", "Airplanes folder (either layout); every image is evaluated. Default: the synthetic set.")
def eval_loc(checkpoint, data_dir, steps, precision, threads, quiet):
    """Evaluate a saved LocNet: constant box, rate network and SNN on every image of --data."""
    _evaluate("loc", checkpoint, data_dir, steps, precision, threads, quiet)


def _evaluate(app: str, checkpoint, data_dir, steps, precision, threads, quiet):
    """The body of every ``minisnn-eval`` command: checks, the pipeline's evaluate_checkpoint, the
    table.  (Checkpoint and data errors are ValueErrors with one-line messages naming the file.)"""
    import importlib

    _start(threads)
    _check_common(steps, data_dir)
    from . import pipeline

    task_class = importlib.import_module(f"{__package__}.{app}").TASK
    try:
        res = pipeline.evaluate_checkpoint(task_class, checkpoint, data_dir, steps,
                                           quiet=quiet or parallel.world().rank != 0,
                                           cache_dir=_default_cache() / app, log=lambda m: _echo(m, err=True),
                                           precision=precision)
    except (ValueError, OSError) as e:
        _fail(_one_line(e))
    except MemoryError:
        _fail(_OUT_OF_MEMORY)
    _echo(task_class.table(res["table"]))


@train_main.command("seg")
@_run_options(
    "seg",
    data_help="NIfTI folder in the Decathlon layout: imagesTr/ + labelsTr/ (or images/ + labels/). "
              "Default: seeded synthetic volumes, written and read as NIfTI.",
    preset_help="default: 100 of the subjects, widths 8-16-32, 3 ANN epochs, SNNs at T=30 and T=6, ~5 min on 2 "
                "quiet cores; "
                "paper: every subject, 20 ANN epochs, SNNs at T=30 and T=6, per-step hybrid fine-tuning at T=6 "
                "(up to 6 epochs, early stopping) (the paper's 100 epochs at lr 1e-5 do not fit 90 minutes here, see "
                "docs/results.md); tiny: seconds, for smoke tests.",
    epochs_help="ANN epochs (preset: default 3, paper 20).",
    lr_help="ANN Adam learning rate (preset: default 0.002, paper 0.001; the paper's 1e-5 barely moves in that "
            "many epochs).",
    hybrid_lr_help="Hybrid fine-tuning learning rate (default 0.0001).",
    metric="volume Dice",
)
@click.option("--subjects", type=int, default=None,
              help="Use a seeded subset of this many subjects, split by subject as usual; 0 = all "
                   "(preset: default 100 of the 260 real ones, to fit its 5 minutes; paper: all).")
@_short_steps_option("default and paper 6, tiny 4")
def train_seg(data_dir, preset, out_dir, seed, epochs, hybrid_epochs, steps, train_steps, batch_size, lr, hybrid_lr,
              hybrid_method, subjects, short_steps, precision, threads, cache, quiet, resume, overwrite):
    """Hippocampus segmentation with the CAE: the paper's Table 2, end to end.

    Trains the ANN (rectified-linear neurons, scale_firing_rates 500, the paper: 1000; 0.5 BCE +
    0.5 Dice), converts it to spiking rectified-linear neurons with a 1 ms synapse (the paper:
    5 ms), evaluates, fine-tunes with the hybrid method at
    the short T, evaluates again, then prints Table 2 (constant prior mask first)
    and writes results.json, report.md, checkpoints, PNG figures and the test subjects'
    predicted masks as NIfTI to --out.
    """
    _start(threads)
    _check_common(steps, data_dir)
    from . import seg

    if subjects is not None and subjects != 0 and subjects < 3:
        _fail(f"--subjects must be 0 (all) or >= 3, got {subjects}")
    with _user_errors(out_dir):
        cfg = _config(seg, preset, steps, seed=seed, epochs=epochs, hybrid_epochs=hybrid_epochs,
                      steps_train=train_steps, batch_size=batch_size, lr=lr, hybrid_lr=hybrid_lr,
                      hybrid_method=hybrid_method, steps_short=short_steps, precision=precision)
        if subjects is not None:
            cfg.subjects = subjects or None
        _train(seg.SegTask(cfg), out_dir, data_dir, cache, quiet, resume, overwrite)


@eval_main.command("seg")
@_eval_options("seg", "NIfTI folder (Decathlon layout); every subject is evaluated. Default: the synthetic set.")
def eval_seg(checkpoint, data_dir, steps, precision, threads, quiet):
    """Evaluate a saved CAE: rate network and SNN on every subject of --data."""
    _evaluate("seg", checkpoint, data_dir, steps, precision, threads, quiet)


if __name__ == "__main__":  # pragma: no cover
    train_main()
