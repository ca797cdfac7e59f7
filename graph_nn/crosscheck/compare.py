"""`compare`: the graph model and its Keras twin trained on the same data with the same hyper-parameters."""

import dataclasses
import math
import sys

import numpy as np

from graph_nn.core.config import RECIPES, recipe_name_for
from graph_nn.core.errors import GraphNNError
from graph_nn.core.run_dir import new_run_dir
from graph_nn.crosscheck import keras_models
from graph_nn.graph.model import parameter_count
from graph_nn.training.loop import Trainer


@dataclasses.dataclass
class Side:
    """One column of the table."""

    parameters: int
    test_accuracy: float
    test_loss: float
    seconds_per_epoch: float
    steps_per_second: float


@dataclasses.dataclass
class Comparison:
    config: object
    recipe_name: str
    graph_runs: list  # one Side per seed
    keras_runs: list
    run_dirs: list

    @property
    def graph(self):
        return mean_side(self.graph_runs)

    @property
    def keras(self):
        return mean_side(self.keras_runs)

    @property
    def accuracy_differences(self):
        """Graph minus Keras test accuracy per seed, in percentage points."""
        return [100 * (g.test_accuracy - k.test_accuracy) for g, k in zip(self.graph_runs, self.keras_runs)]

    @property
    def accuracy_difference(self):
        """Graph minus Keras mean test accuracy, in percentage points."""
        return 100 * (self.graph.test_accuracy - self.keras.test_accuracy)

    def __str__(self):
        """The table of both sides, and the graph side's run directories."""
        c, g, k = self.config, self.graph, self.keras
        repeats = len(self.graph_runs)

        def spread(runs, field):
            """' ± std' over the seeds, when there is more than one."""
            return f" ± {np.std([getattr(r, field) for r in runs]):.4f}" if repeats > 1 else ""

        rows = [
            ("parameters", f"{g.parameters:,}", f"{k.parameters:,}"),
            (
                "test accuracy",
                f"{g.test_accuracy:.4f}" + spread(self.graph_runs, "test_accuracy"),
                f"{k.test_accuracy:.4f}" + spread(self.keras_runs, "test_accuracy"),
            ),
            (
                "test loss",
                f"{g.test_loss:.4f}" + spread(self.graph_runs, "test_loss"),
                f"{k.test_loss:.4f}" + spread(self.keras_runs, "test_loss"),
            ),
            ("seconds/epoch", f"{g.seconds_per_epoch:.1f}", f"{k.seconds_per_epoch:.1f}"),
            ("steps/s", f"{g.steps_per_second:.0f}", f"{k.steps_per_second:.0f}"),
        ]
        seeds = f"seed {c.seed}" if repeats == 1 else f"seeds {c.seed}-{c.seed + repeats - 1} (means)"
        header = f"{c.model}, {c.optimizer} lr {c.learning_rate}, batch {c.batch_size}, {c.epochs} epochs, {seeds}"
        lines = [header, f"{'':16}{'graph (' + c.semantics + ')':>18}{'Keras (' + self.recipe_name + ')':>26}"]
        lines += [f"{name:16}{graph:>18}{keras:>26}" for name, graph, keras in rows]
        lines.append(f"test accuracy, graph - Keras: {self.accuracy_difference:+.2f} percentage points")
        if repeats > 1:
            lines.append("per seed: " + ", ".join(f"{d:+.2f}" for d in self.accuracy_differences))
        lines.append(f"Graph run directories: {', '.join(map(str, self.run_dirs))}")
        return "\n".join(lines)


def mean_side(runs):
    return Side(
        runs[0].parameters,
        *(
            float(np.mean([getattr(r, f) for r in runs]))
            for f in ("test_accuracy", "test_loss", "seconds_per_epoch", "steps_per_second")
        ),
    )


def train_graph(config, dataset, logdir, out):
    """The graph side, trained in a run directory with its logs and checkpoints (`evaluate --run` reports it)."""
    steps_per_epoch = math.ceil(len(dataset.train) / config.batch_size)
    # One evaluation, after the last step, so that seconds per epoch are training time as in the Keras column.
    config = dataclasses.replace(config, eval_every=config.epochs * steps_per_epoch)
    trainer = Trainer(config, dataset, out)
    result = trainer.run(new_run_dir(logdir, config.model))
    seconds = result.history[-1]["seconds"]
    return Side(
        parameter_count(trainer.model),
        result.test_accuracy,
        result.test_loss,
        seconds / config.epochs,
        result.global_step / seconds,
    ), result.run_dir


def train_keras(recipe, config, dataset, verbose):
    fitted = keras_models.fit(recipe, config, dataset, verbose=verbose)
    seconds = sum(fitted.epoch_seconds)
    return Side(
        fitted.parameters,
        fitted.test_accuracy,
        fitted.test_loss,
        seconds / config.epochs,
        fitted.steps_per_epoch * config.epochs / seconds,
    )


def compare(config, dataset, recipe_name=None, logdir="logs", out=None, keras_verbose=2, repeats=1):
    """Trains both, with seeds config.seed ... config.seed + repeats - 1, and returns the Comparison;
    the parameter counts must agree."""
    out = out or sys.stdout
    if config.steps is not None:
        raise GraphNNError("compare counts training in epochs, as Keras's fit does; give --epochs instead of --steps.")
    if repeats < 1:
        raise GraphNNError(f"--repeats must be positive, got {repeats}.")
    if config.validation_split or config.early_stop:
        raise GraphNNError(
            "compare trains both sides on the whole training set for whole epochs, as the articles' "
            "fit does; give no --validation-split or --early-stop."
        )
    recipe_name = recipe_name_for(config, recipe_name)
    recipe = RECIPES[recipe_name]
    comparison = Comparison(config, recipe_name, [], [], [])
    for seed in range(config.seed, config.seed + repeats):
        seeded = dataclasses.replace(config, seed=seed)
        print(
            f"== graph mode: {config.model}, {config.optimizer} ({config.semantics} semantics), seed {seed}",
            file=out,
            flush=True,
        )
        graph, run_dir = train_graph(seeded, dataset, logdir, out)
        print(
            f"== Keras: baseline '{recipe_name}' (article {recipe.article}, {recipe.api}, {recipe.labels} labels, "
            f"{recipe.loss}, {recipe.pipeline}), seed {seed}",
            file=out,
            flush=True,
        )
        keras = train_keras(recipe, seeded, dataset, keras_verbose)
        if graph.parameters != keras.parameters:
            raise GraphNNError(
                f"the graph {config.model} has {graph.parameters:,} parameters, its Keras twin {keras.parameters:,}."
            )
        comparison.graph_runs.append(graph)
        comparison.keras_runs.append(keras)
        comparison.run_dirs.append(run_dir)
    return comparison
