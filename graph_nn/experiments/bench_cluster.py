"""`python run.py bench --cluster`: training speed of one process against 1 ps + 1 and 2 workers on 127.0.0.1.

Every contender is the real command (`python -m graph_nn train`, `... cluster ...`) with the article's
preset, and its speed is read from what it wrote for TensorBoard: the global steps of the chief's train/ loss
events against their wall times, from the second event on (start-up excluded), and each worker's own
worker-N/steps_per_second.  The bytes a worker's step sends to and receives from the ps come from the
partition graphs of one traced step (graph_nn/internals/inspect_cluster.py).  The contenders take turns in each repeat.
"""

import pathlib
import statistics
import subprocess
import tempfile

from tensorboard.backend.event_processing import event_accumulator

from graph_nn.core.config import article_preset, command_line, make_config
from graph_nn.core.errors import GraphNNError
from graph_nn.core.processes import GRAPH_NN
from graph_nn.distributed.launcher import task_environment
from graph_nn.experiments.bench import machine_description
from graph_nn.internals.inspect_cluster import bytes_between_tasks, traced_sync_step, transfers
from graph_nn.reports.report import reported

CONTENDERS = {  # name: (workers, async); 0 workers is one process
    "1 process": (0, False),
    "1 ps + 1 worker, async": (1, True),
    "1 ps + 2 workers, async": (2, True),
    "1 ps + 2 workers, sync": (2, False),
}
TIMEOUT_S = 1800


def scalars(directory, tag):
    events = event_accumulator.EventAccumulator(str(directory), size_guidance={event_accumulator.SCALARS: 0})
    events.Reload()
    return events.Scalars(tag)


def local_rate(run_dir, worker):
    """The median of a worker's logged steps/s, its first (start-up) left out."""
    try:
        rates = scalars(run_dir / f"worker-{worker}", "steps_per_second")[1:]
    except KeyError:  # the tag is missing where the worker never reached a log mark
        rates = []
    if not rates:
        raise GraphNNError(
            f"bench --cluster: worker {worker} logged too few steps to be timed; give it more --steps (default 1000)."
        )
    return statistics.median(event.value for event in rates)


def measure(name, config, steps, logdir):
    """{global steps/s, examples/s, local steps/s per worker} of one training run of `steps` steps."""
    workers, asynchronous = CONTENDERS[name]
    log_every = max(steps // 20, 1)
    flags = command_line(
        dict(
            preset=config.preset,
            steps=steps,
            log_every=log_every,
            eval_every=steps,
            histogram_every=10 * steps,
            print_every=steps,
            logdir=logdir,
        )
    )
    command = (
        ["train", *flags]
        if not workers
        else ["cluster", *command_line(dict(workers=workers, asynchronous=asynchronous)), *flags]
    )
    result = subprocess.run(
        [*GRAPH_NN, *command], capture_output=True, text=True, timeout=TIMEOUT_S, env=task_environment()
    )
    if result.returncode != 0:
        said = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
        raise GraphNNError(f"bench --cluster: `python -m graph_nn {' '.join(command)}` failed ({said[-1]}).")
    (run_dir,) = pathlib.Path(logdir).iterdir()
    losses = scalars(run_dir / "train", "loss")[1:]
    updates = (losses[-1].step - losses[0].step) / (losses[-1].wall_time - losses[0].wall_time)
    local = [local_rate(run_dir, i) for i in range(workers)] or [updates]
    aggregated = workers if workers and not asynchronous else 1  # batches in one update
    return dict(
        updates_per_second=updates,
        examples_per_second=updates * aggregated * config.batch_size,
        local_steps_per_second=local,
    )


@reported
def run_bench(dataset, steps, repeats, models):
    """What is measured as it starts, then the table; the outcome is the figures (the CLI writes them to --json)."""
    rows = []
    for model_name in models:
        config = make_config(article_preset(model_name))
        yield f"tracing one sync step of {model_name} on 1 ps + 2 workers ..."
        traced = traced_sync_step(config, dataset)
        sent = bytes_between_tasks(transfers(traced.step, traced.graph))
        runs = {name: [] for name in CONTENDERS}
        for repeat in range(repeats):
            for name in CONTENDERS:
                yield f"{model_name}, repeat {repeat + 1}/{repeats}: {name}, {steps} steps ..."
                with tempfile.TemporaryDirectory() as logdir:
                    runs[name].append(measure(name, config, steps, logdir))
        medians = {
            name: {
                key: statistics.median(run[key] for run in measured)
                if key != "local_steps_per_second"
                else [statistics.median(values) for values in zip(*(run[key] for run in measured))]
                for key in measured[0]
            }
            for name, measured in runs.items()
        }
        rows.append(
            dict(
                model=model_name,
                batch_size=config.batch_size,
                contenders=medians,
                bytes_up=sent["worker 0 -> ps 0"],
                bytes_down=sent["ps 0 -> worker 0"],
            )
        )
    figures = dict(machine=machine_description(), steps=steps, repeats=repeats, models=rows)
    yield format_table(figures)
    return figures


def format_table(figures):
    lines = []
    for row in figures["models"]:
        lines.append(f"{row['model']}, batch {row['batch_size']}   updates/s   examples/s   local steps/s per worker")
        for name, figures in row["contenders"].items():
            local = ", ".join(f"{value:.0f}" for value in figures["local_steps_per_second"])
            lines.append(
                f"  {name:27}{figures['updates_per_second']:>10.0f}{figures['examples_per_second']:>13,.0f}   {local}"
            )
        lines.append(f"  bytes per worker step: {row['bytes_up']:,} to the ps, {row['bytes_down']:,} from it")
    return "\n".join(lines)
