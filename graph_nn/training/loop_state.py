"""What it takes to continue a run exactly where it stopped: checkpoints that hold the loop's own state,
only finite weights in them, and the same data (one process per run directory: runs.exclusive).
"""

import pathlib

import tensorflow as tf

from graph_nn.core.errors import GraphNNError
from graph_nn.core.run_dir import RunDir, write_atomically

v1 = tf.compat.v1


class LoopState:
    """The running means behind the progress bar and the train scalars, and the early-stopping record (the
    best validation loss, its step, the evaluations since), saved inside every checkpoint.

    Without the means a run resumed mid-epoch would average over the steps since the restart only, and its
    progress and TensorBoard scalars would differ from those of the run never interrupted; without the record
    it would wait out its early-stopping patience afresh.  float64 holds the Python floats exactly.
    """

    def __init__(self, graph, meters, best):
        self.meters, self.best = meters, best
        with graph.as_default(), v1.variable_scope("loop_state"):
            self.variable = v1.get_variable(
                "meters", [len(meters), 3], tf.float64, initializer=v1.zeros_initializer(), trainable=False
            )
            self.best_variable = v1.get_variable(
                "best", [3], tf.float64, initializer=v1.zeros_initializer(), trainable=False
            )
            self.value = v1.placeholder(tf.float64, [len(meters), 3], name="value")
            self.best_value = v1.placeholder(tf.float64, [3], name="best_value")
            self.assign = tf.group(
                self.variable.assign(self.value, read_value=False),
                self.best_variable.assign(self.best_value, read_value=False),
                name="assign",
            )

    def store(self, sess):
        best = self.best
        sess.run(
            self.assign,
            {
                self.value: [[m.count, m.loss, m.accuracy] for m in self.meters],
                self.best_value: [best.step, best.loss, best.evaluations_since],
            },
        )

    def load(self, sess):
        meters, (step, loss, evaluations_since) = sess.run([self.variable, self.best_variable])
        for meter, (count, mean_loss, accuracy) in zip(self.meters, meters):
            meter.count, meter.loss, meter.accuracy = int(count), float(mean_loss), float(accuracy)
        self.best.step, self.best.loss, self.best.evaluations_since = int(step), float(loss), int(evaluations_since)


def all_variables_finite(graph):
    """A boolean op: are the weights and optimizer slots free of NaN and Inf?

    A loss can still be finite at the step whose update overflowed the weights, so the check before
    each save is what keeps a checkpoint good.
    """
    with graph.as_default(), v1.name_scope("checks"):
        checks = [tf.reduce_all(tf.math.is_finite(v)) for v in v1.global_variables() if v.dtype.base_dtype.is_floating]
        return tf.reduce_all(tf.stack(checks), name="all_variables_finite")


def record_data_source(run_dir, source):
    """Notes where the run's data came from; config.json does not, and a resume must use the same data."""
    write_atomically(RunDir(run_dir).data_source, str(pathlib.Path(source).resolve()) + "\n")


def check_data_source(run_dir, source):
    path = RunDir(run_dir).data_source
    if not path.is_file():  # a run from before the file existed
        return
    try:
        recorded = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise GraphNNError(f"{path}: unreadable ({getattr(e, 'strerror', None) or e}).") from None
    if recorded != str(pathlib.Path(source).resolve()):
        raise GraphNNError(
            f"{run_dir} was trained on the data in {recorded}, not {source}; resume it with --data-dir {recorded}."
        )
