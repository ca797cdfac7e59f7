"""A whole training run, as `python run.py` makes it and as Python code can make it too:

    from graph_nn.core.config import make_config
    from graph_nn.data.dataset import load_dataset
    from graph_nn.training.runs import train
    result = train(make_config("chapter2"), load_dataset())

prints the model and its hyper-parameters, trains in a new run directory under logs/ (graph_nn/training/loop.py),
records how training ended (graph_nn/outcome.py) and ends the run: the test-set report, its pictures and
TensorBoard's extras (graph_nn/reports/evaluate.py).
"""

from __future__ import annotations

import contextlib
import sys

from graph_nn.core.config import TrainConfig, load_config
from graph_nn.core.errors import GraphNNError, Interrupted, TrainingDiverged, WriteFailed
from graph_nn.core.run_dir import DIVERGED, STOPPED, RunDir, exclusive, new_run_dir
from graph_nn.data.batches import schedule_for
from graph_nn.data.dataset import Dataset
from graph_nn.graph.layer_table import format_summary
from graph_nn.graph.model import parameter_count
from graph_nn.observe import debug_dump
from graph_nn.reports.evaluate import report_run
from graph_nn.training import nan_hunt, outcome
from graph_nn.training.loop import Trainer, TrainingResult


def train(config: TrainConfig, dataset: Dataset, logdir="logs", out=None, report: bool = True) -> TrainingResult:
    """Trains config's model on dataset in a new run directory under logdir; with report=False the run
    ends at its last checkpoint, without the report, pictures and TensorBoard extras."""
    out = out or sys.stdout
    # A batch or a validation split larger than the training set is refused before a directory is made.
    schedule_for(config, dataset)
    run_dir = new_run_dir(logdir, config.model)
    with exclusive(run_dir):  # to the end of its report: an evaluate or export typed meanwhile is refused
        with nan_hunt.on_divergence(config, dataset, run_dir, out), instrumented(config, run_dir):
            trainer = Trainer(config, dataset, out)
            print(format_summary(trainer.model, config.model), file=out)
            print(describe(config, trainer), file=out, flush=True)
            result = run_and_record(trainer, run_dir)
        if report:
            finish(result, dataset, logdir, out)
    return result


def resume(run_dir, dataset: Dataset, out=None) -> TrainingResult:
    """Continues the run in run_dir from its latest checkpoint, in that same directory, and ends it.

    The batches of a step depend on (seed, step) alone and the checkpoint holds everything else, so the
    result is the one the run would have had without the interruption.
    """
    out = out or sys.stdout
    config = load_config(run_dir)
    print(
        f"graph_nn: resuming a {config.model} run - {config.optimizer} lr {config.learning_rate}, "
        f"batch {config.batch_size}, seed {config.seed}",
        file=out,
        flush=True,
    )
    with exclusive(run_dir):
        with nan_hunt.on_divergence(config, dataset, run_dir, out), instrumented(config, run_dir):
            result = run_and_record(Trainer(config, dataset, out), run_dir, resume=True)
        finish(result, dataset, RunDir(run_dir).path.parent, out)
    return result


def run_and_record(trainer, run_dir, resume=False):
    """trainer.run, and how its training ended recorded in the run directory: finished or stopped early, and
    also stopped (by a signal, a closed output pipe or a write the disk refused) or diverged, whose exceptions
    then go on with their own sentence and exit code."""
    try:
        result = trainer.run(run_dir, resume)
    except (Interrupted, TrainingDiverged, WriteFailed) as e:
        # A record that cannot be written (a full disk) must not replace the sentence that says what happened.
        with contextlib.suppress(GraphNNError, OSError):
            record_end(
                trainer, DIVERGED if isinstance(e, TrainingDiverged) else STOPPED, trainer.saved_step or 0, str(e)
            )
        raise
    record_end(trainer, result.status, result.global_step)
    return result


def record_end(trainer, status, step, message=None):
    """result.json and the HParams row of the trainer's run, whose training ended with status at step."""
    outcome.record_end(
        trainer.run_dir, trainer.config, status, step, len(trainer.dataset.train), trainer.best.step, message
    )


def instrumented(config, run_dir):
    """With --debug-dump, Debugger V2's recording around the building and running of the training graph."""
    if config.debug_dump:
        return debug_dump.recording(RunDir(run_dir).new_debugger_v2_dump())
    return contextlib.nullcontext()


def describe(config, trainer):
    length = f"{config.steps} steps" if config.steps else f"{config.epochs} epochs"
    early_stop = f", early stop after {config.early_stop} evaluations without progress" if config.early_stop else ""
    session = [f"{config.steps_per_run} steps per Session.run"] if config.steps_per_run > 1 else []
    session += [f"{', '.join(config.rewrites_off)} off"] if config.rewrites_off else []
    session += ["XLA"] if config.xla else []
    return (
        f"graph_nn: {config.preset} preset - {config.model} ({parameter_count(trainer.model):,} parameters), "
        f"{config.optimizer} ({config.semantics} semantics) lr {config.learning_rate}, "
        f"batch {config.batch_size}, {length}, {config.init} init, seed {config.seed}"
        + "".join(f", {part}" for part in session)
        + f"; validation on {config.validation}{early_stop}"
    )


def finish(result, dataset, logdir, out):
    """The end of a run, first or resumed: its report, pictures and TensorBoard extras, and where to look."""
    print(file=out)
    evaluation = report_run(result.run_dir, dataset, out=out, tensorboard=True)
    outcome.add_test_figures(result.run_dir, evaluation)
    print(f"Run directory: {result.run_dir}", file=out)
    print(f"Look at it in TensorBoard:  tensorboard --logdir {logdir}", file=out)
    run_dir = RunDir(result.run_dir)
    if run_dir.profile.is_dir():
        print(f'Profiled steps: {run_dir.profile} (Profile tab, after pip install -e ".[profile]")', file=out)
    for dump in sorted(run_dir.path.glob("debugger_v2*")):
        print(f"Debugger V2 tab (its dump):  tensorboard --logdir {dump}", file=out)
    out.flush()
