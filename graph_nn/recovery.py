"""What it takes to continue a run exactly where it stopped: checkpoints that hold the loop's own state,
only finite weights in them, and one process per run directory.
"""
import contextlib
import pathlib

import tensorflow as tf

from graph_nn.errors import GraphNNError
from graph_nn.runs import RunDir

try:
    import fcntl
except ImportError:  # Windows: no flock, so run directories go unlocked there
    fcntl = None

v1 = tf.compat.v1


class LoopState:
    """The running means behind the progress bar and the train scalars, saved inside every checkpoint.

    Without them a run resumed mid-epoch would average over the steps since the restart only, and its
    progress and TensorBoard scalars would differ from those of the run never interrupted.  float64
    holds the Python floats of progress.Meter exactly.
    """

    def __init__(self, graph, meters):
        self.meters = meters
        with graph.as_default(), v1.variable_scope("loop_state"):
            self.variable = v1.get_variable("meters", [len(meters), 3], tf.float64,
                                            initializer=v1.zeros_initializer(), trainable=False)
            self.value = v1.placeholder(tf.float64, [len(meters), 3], name="value")
            self.assign = self.variable.assign(self.value, read_value=False)

    def store(self, sess):
        sess.run(self.assign, {self.value: [[m.count, m.loss, m.accuracy] for m in self.meters]})

    def load(self, sess):
        for meter, (count, loss, accuracy) in zip(self.meters, sess.run(self.variable)):
            meter.count, meter.loss, meter.accuracy = int(count), float(loss), float(accuracy)


def all_variables_finite(graph):
    """A boolean op: are the weights and optimizer slots free of NaN and Inf?

    A loss can still be finite at the step whose update overflowed the weights, so the check before
    each save is what keeps a checkpoint good.
    """
    with graph.as_default(), v1.name_scope("checks"):
        checks = [tf.reduce_all(tf.math.is_finite(v)) for v in v1.global_variables() if v.dtype.base_dtype.is_floating]
        return tf.reduce_all(tf.stack(checks), name="all_variables_finite")


@contextlib.contextmanager
def exclusive(run_dir):
    """Holds the run directory for one process; a second one (a resume typed twice) is refused.

    flock is released by the kernel however the process ends, SIGKILL included.
    """
    try:
        lock = RunDir(run_dir).lock.open("a")
    except OSError as e:
        raise GraphNNError(f"{run_dir}: cannot write in the run directory ({e.strerror or e}).") from None
    with lock:
        if fcntl:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise GraphNNError(f"{run_dir} is being trained by another process right now.") from None
        yield


def record_data_source(run_dir, source):
    """Notes where the run's data came from; config.json does not, and a resume must use the same data."""
    RunDir(run_dir).data_source.write_text(str(pathlib.Path(source).resolve()) + "\n")


def check_data_source(run_dir, source):
    path = RunDir(run_dir).data_source
    if not path.is_file():  # a run from before the file existed
        return
    recorded = path.read_text().strip()
    if recorded != str(pathlib.Path(source).resolve()):
        raise GraphNNError(f"{run_dir} was trained on the data in {recorded}, not {source}; "
                           f"resume it with --data-dir {recorded}.")
