"""`python run.py sweep`: a run for every combination of the values given to train flags (and every repeat), each
an ordinary run trained by a `python -m graph_nn train` process of its own, under one sweep directory, and a table
of their results.

    logs/sweep-YYYYmmdd-HHMMSS/
        sweep.json                  the plan: every run's name and train flags, the data
        NN-FIELD=VALUE-.../         one per run of the grid: the --logdir of its process
            MODEL-YYYYmmdd-HHMMSS/  the run directory, as python run.py makes it
            output.txt              what the process printed

A sweep continued with --resume keeps the runs that are done (finished, stopped early or diverged: training them
again would give the same), resumes a stopped or killed run from its latest checkpoint, and trains afresh a run
that had saved none (its directory, with no checkpoint in it, stays).
No TensorFlow here: this process only starts the runs, waits for them and reads their result.json.
"""

import collections
import dataclasses
import itertools
import json
import pathlib
import signal
import statistics
import sys
import time

from graph_nn.core import config as config_module
from graph_nn.core.errors import GraphNNError, Interrupted
from graph_nn.core.processes import GRAPH_NN, POLL_S, Child, stop_all
from graph_nn.core.run_dir import DONE, STOPPED, RunDir, exclusive, new_run_dir, write_atomically
from graph_nn.core.signals import EXIT_CODES, stop_requested_by_signals

PLAN = "sweep.json"
OUTPUT = "output.txt"
STOP_SECONDS = 120  # how long a run asked to stop may take to save its checkpoint and exit before it is killed


@dataclasses.dataclass
class Run:
    name: str  # its directory in the sweep
    setting: dict  # the values of the swept flags, the same for every repeat
    flags: dict  # {TrainConfig field: value} given to its train process
    validation: str  # what it validates on, in words


@dataclasses.dataclass
class Sweep:
    directory: pathlib.Path
    runs: list
    repeats: int
    data_dir: str | None
    classes: str | None

    def run_dirs(self, run):
        """The run directories the processes of `run` made, oldest first."""
        return sorted(path for path in (self.directory / run.name).glob("*") if RunDir(path).config.is_file())

    def result(self, run):
        """The result.json of the run's directory whose training is done, or None."""
        return next((result for result in self.results(run) if result["status"] in DONE), None)

    def results(self, run):
        """The result.json of each of the run's directories that has one, oldest first."""
        return [result for path in self.run_dirs(run) if (result := RunDir(path).read_result())]

    def to_resume(self, run):
        """The newest of the run's directories with a checkpoint, or None."""
        checkpointed = [path for path in self.run_dirs(run) if RunDir(path).checkpoint_state.is_file()]
        return checkpointed[-1] if checkpointed else None


# ---- the plan ------------------------------------------------------------------------------------------------


def plan(values, repeats):
    """A Run for every combination of `values` ({TrainConfig field: [value, ...]}) and repeat, each configuration
    checked, so that a mistake is answered before anything trains."""
    swept = [field for field, options in values.items() if len(options) > 1]
    named = swept + (["seed"] if repeats > 1 and "seed" not in swept else [])
    runs = []
    for combination in itertools.product(*values.values()):
        flags = dict(zip(values, combination))
        config = config_module.make_config(**flags)
        setting = {field: flags[field] for field in swept}
        for repeat in range(repeats):
            if repeats > 1:
                flags = dict(flags, seed=config.seed + repeat)
            name = "-".join([f"{len(runs):02d}"] + [f"{field}={text(flags[field])}" for field in named])
            runs.append(Run(name, setting, flags, config.validation))
    return runs


def text(value):
    """A flag's value as typed on a command line."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def create(logdir, values, repeats, data_dir=None, classes=None):
    """A new sweep directory under logdir holding the plan of its runs; returns its path."""
    runs = plan(values, repeats)
    directory = new_run_dir(logdir, "sweep").path
    absolute = {
        name: str(pathlib.Path(path).resolve()) if path else None
        for name, path in (("data_dir", data_dir), ("classes", classes))
    }
    content = dict(repeats=repeats, **absolute, runs=[dataclasses.asdict(run) for run in runs])
    write_atomically(directory / PLAN, json.dumps(content, indent=2) + "\n")
    return directory


def load(directory):
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise GraphNNError(f"--resume {directory}: no such sweep directory.")
    try:
        content = json.loads((directory / PLAN).read_text())
        return Sweep(
            directory,
            [Run(**run) for run in content["runs"]],
            content["repeats"],
            content["data_dir"],
            content["classes"],
        )
    except FileNotFoundError:
        raise GraphNNError(f"{directory}: not a sweep directory (no {PLAN}).") from None
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise GraphNNError(f"{directory / PLAN}: unreadable sweep plan ({e}).") from None


# ---- the runs' processes ---------------------------------------------------------------------------------------


def command(sweep, run):
    """The train process of a run: a fresh run in the run's directory, or a resume of its latest checkpoint."""
    train = [*GRAPH_NN, "train"]
    resumed = sweep.to_resume(run)
    if resumed:
        return train + config_module.command_line(dict(resume=resumed, data_dir=sweep.data_dir))
    values = dict(run.flags, data_dir=sweep.data_dir, classes=sweep.classes, logdir=sweep.directory / run.name)
    return train + config_module.command_line(values)


class Training:
    """A run of the sweep being trained: its place in the list, and its train process (a Child whose output goes
    to the run's output.txt)."""

    def __init__(self, sweep, run, position):
        self.run, self.position = run, position
        argv = command(sweep, run)
        self.resuming = "--resume" in argv
        (sweep.directory / run.name).mkdir(exist_ok=True)
        self.child = Child(run.name, argv, STOP_SECONDS, log=sweep.directory / run.name / OUTPUT)
        self.timed_out = False

    def check_timeout(self, timeout):
        if self.child.stop_requested_at is None and time.monotonic() - self.child.started > timeout:
            self.timed_out = True
            self.child.stop(signal.SIGTERM)  # the run saves a checkpoint of its current step and exits

    def error(self):
        """The sentence the run ended with, or its exit code."""
        lines = [
            line for line in self.child.log.read_text(errors="replace").splitlines() if line.startswith("graph-nn: ")
        ]
        return (
            lines[-1].removeprefix("graph-nn: ").removeprefix("error: ")
            if lines
            else f"exit code {self.child.returncode}"
        )


def outcome(sweep, training):
    seconds = f"{time.monotonic() - training.child.started:.0f} s"
    result = sweep.result(training.run)
    if result:
        figures = [
            f"{name.replace('_', ' ')} {result[name]:.4f}"
            for name in ("validation_accuracy", "test_accuracy")
            if name in result
        ]
        return f"{result['status']} in {seconds}" + (f" - {', '.join(figures)}" if figures else "")
    latest = (sweep.results(training.run) or [{}])[-1]
    if training.child.returncode in EXIT_CODES.values() and latest.get("status") == STOPPED:
        why = " by its --timeout" if training.timed_out else ""
        return f"stopped{why} at step {latest['step']} after {seconds}; continuing the sweep resumes it"
    return f"not done after {seconds}: {training.error()}"


def train_all(sweep, todo, jobs, timeout, out):
    """Trains the runs of `todo`, `jobs` at a time; returns the StopRequest of a SIGINT or SIGTERM that stopped
    them all (each run asked to stop with the same signal), or None."""
    waiting, trainings = list(enumerate(todo, start=1)), []

    def report(training, what):
        print(f"[{training.position}/{len(todo)}] {training.run.name}: {what}", file=out, flush=True)

    with stop_requested_by_signals() as stop:
        while (waiting or trainings) and not stop:
            while waiting and len(trainings) < jobs:
                position, run = waiting.pop(0)
                trainings.append(Training(sweep, run, position))
                report(trainings[-1], "resuming" if trainings[-1].resuming else "training")
            for training in [training for training in trainings if training.child.poll() is not None]:
                trainings.remove(training)
                report(training, outcome(sweep, training))
            for training in trainings:
                training.check_timeout(timeout)
            time.sleep(POLL_S)
        stop_all([training.child for training in trainings], stop.signum)
        for training in trainings:
            report(training, outcome(sweep, training))
    return stop if stop else None


def run(directory, jobs=1, timeout=24 * 3600, out=None):
    """Trains the sweep's runs that are not done, then prints the table; returns the exit code."""
    out = out or sys.stdout
    sweep = load(directory)
    with exclusive(sweep.directory, "swept"):
        todo = [run for run in sweep.runs if sweep.result(run) is None]
        plans = f"; training {len(todo)}, {jobs} at a time (each run's output goes to its {OUTPUT})" if todo else ""
        print(
            f"Sweep {sweep.directory}: {len(sweep.runs)} runs, {len(sweep.runs) - len(todo)} of them done{plans}",
            file=out,
            flush=True,
        )
        stopped = train_all(sweep, todo, jobs, timeout, out)
        print(file=out)
        print(format_table(sweep), file=out, flush=True)
    if stopped:
        raise Interrupted(
            f"sweep stopped by {stopped.name}, its runs at their checkpoints; continue with: "
            f"python run.py sweep --resume {sweep.directory}",
            stopped.exit_code,
        )
    left = sum(sweep.result(run) is None for run in sweep.runs)
    if left:
        raise GraphNNError(
            f"{left} of the {len(sweep.runs)} runs did not finish (their {OUTPUT} says why); "
            f"continue with: python run.py sweep --resume {sweep.directory}"
        )
    print(f"Look at them in TensorBoard's HParams tab:  tensorboard --logdir {sweep.directory}", file=out)
    return 0


# ---- the table -------------------------------------------------------------------------------------------------


def mean_and_spread(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.pstdev(values):.4f}"


def format_table(sweep):
    """One row per setting, its repeats' mean ± standard deviation, sorted by validation accuracy."""
    groups = {}
    for run in sweep.runs:
        groups.setdefault(json.dumps(run.setting, sort_keys=True), (run.setting, []))[1].append(sweep.result(run))
    rows = []
    for setting, results in groups.values():
        done = [result for result in results if result]
        figures = {
            name: [r[name] for r in done if name in r]
            for name in ("validation_accuracy", "validation_loss", "test_accuracy")
        }
        statuses = collections.Counter(result["status"] if result else "not done" for result in results)
        status = next(iter(statuses)) if len(statuses) == 1 else ", ".join(f"{n} {s}" for s, n in statuses.items())
        order = statistics.mean(figures["validation_accuracy"]) if figures["validation_accuracy"] else -1
        rows.append(
            (
                order,
                [
                    *map(text, setting.values()),
                    f"{len(done)}/{len(results)}",
                    *map(mean_and_spread, figures.values()),
                    status,
                ],
            )
        )
    header = [
        *next(iter(groups.values()))[0],
        "runs",
        "validation accuracy",
        "validation loss",
        "test accuracy",
        "status",
    ]
    table = [header] + [cells for _, cells in sorted(rows, key=lambda row: -row[0])]
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    validations = sorted({run.validation for run in sweep.runs})
    repeats = f", mean ± standard deviation over {sweep.repeats} seeds" if sweep.repeats > 1 else ""
    lines = [f"Sweep {sweep.directory}: validated on {' / '.join(validations)}; sorted by validation accuracy{repeats}"]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table]
    return "\n".join(lines)
