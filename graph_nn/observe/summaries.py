"""What a run writes for TensorBoard: the graph, scalar and histogram summaries in train/ and validation/."""

import contextlib
import pathlib
import time

import tensorflow as tf

from graph_nn.core.errors import GraphNNError, WriteFailed, write_cause
from graph_nn.core.run_dir import RunDir

v1 = tf.compat.v1


def histogram(tag, values):
    # The raw op takes the tag as an argument; tf.summary.histogram would derive it from a unique
    # op name and turn "hidden1/kernel" into "hidden1/kernel_1", next to the variable of that name.
    return tf.raw_ops.HistogramSummary(tag=tag, values=values, name=tag.replace("/", "_"))


# Activations are histogrammed over the batch's first examples only: a convolution's activations for a whole
# batch run into millions of values, whose histograms cost more than the training steps between two of them,
# and 32 examples already draw the same distribution.
HISTOGRAM_EXAMPLES = 32


def scalar(tag, value):
    return tf.raw_ops.ScalarSummary(tags=tag, values=value, name=tag.replace("/", "_"))


def variable_summaries(variable):
    """mnist_with_summaries.py's variable_summaries(): VARIABLE/summaries/mean, stddev, max and min, as scalars
    (its histogram is the VARIABLE one every run writes)."""
    mean = tf.reduce_mean(variable)
    statistics = {
        "mean": mean,
        "stddev": tf.sqrt(tf.reduce_mean(tf.square(variable - mean))),
        "max": tf.reduce_max(variable),
        "min": tf.reduce_min(variable),
    }
    return [scalar(f"{variable.op.name}/summaries/{name}", value) for name, value in statistics.items()]


def build_histograms(model, with_variable_summaries=False):
    """One merged op with histograms of every kernel and bias, pre-activation, activation and gradient; with
    variable summaries, and each kernel's and bias's statistics as scalars, taken at the same steps."""
    with model.graph.as_default(), v1.name_scope("summaries"):
        ops = []
        for layer in model.layers:
            if with_variable_summaries:
                ops += variable_summaries(layer.kernel) + variable_summaries(layer.bias)
            ops += [
                histogram(f"{layer.name}/kernel", layer.kernel),
                histogram(f"{layer.name}/bias", layer.bias),
                histogram(f"{layer.name}/preactivations", layer.preactivations[:HISTOGRAM_EXAMPLES]),
            ]
            if layer.activations is not layer.preactivations:
                ops.append(histogram(f"{layer.name}/activations", layer.activations[:HISTOGRAM_EXAMPLES]))
        for gradient, variable in model.grads_and_vars:
            ops.append(histogram(f"gradients/{variable.op.name}", gradient))
        return v1.summary.merge(ops, name="histograms")


def scalars(step_values):
    """A Summary proto of simple scalars, e.g. {"loss": 0.3, "accuracy": 0.9}."""
    return v1.Summary(
        value=[v1.Summary.Value(tag=tag, simple_value=float(value)) for tag, value in step_values.items()]
    )


RECORD_FRAMING = 16  # bytes around each record of an event file: its length, the length's CRC, the data's CRC


class FileWriter(v1.summary.FileWriter):
    """TF1's FileWriter, whose writes that fail (a full disk) end the command in one sentence naming the directory
    and the cause.

    Its thread writes the events; when a write fails, TensorFlow logs the error, the thread dies with a traceback
    (the command line shows neither: graph_nn/cli/main.py), and the error comes back as a RuntimeError from the
    writer's next call in the caller's thread, where it becomes a WriteFailed.  That is how a failed write of
    events smaller than the writer's buffer shows; a larger one (a histogram) is dropped without a word, so after
    each flush the file's size is checked against the records given to it.
    """

    def __init__(self, directory, graph, suffix):
        self.suffix, self.given = suffix, 0  # the bytes of the records added, the file's first (its version) aside
        super().__init__(directory, graph, filename_suffix=suffix)

    def add_event(self, event):
        with self.failures_named():
            super().add_event(event)
        self.given += RECORD_FRAMING + event.ByteSize()

    def _add_event(self, event, step):  # the way of add_summary, add_graph and add_session_log, not add_event's
        with self.failures_named():
            super()._add_event(event, step)
        self.given += RECORD_FRAMING + event.ByteSize()

    def flush(self):
        with self.failures_named():
            super().flush()
        self.check_size()

    def close(self):
        with self.failures_named():
            super().close()
        self.check_size()

    def check_size(self):
        for path in pathlib.Path(self.get_logdir()).glob(f"events.out.tfevents.*{self.suffix}"):
            with path.open("rb") as file:
                version = file.read(8)  # the length of the first record, which the writer wrote itself
            if path.stat().st_size < RECORD_FRAMING + int.from_bytes(version, "little") + self.given:
                raise self.failure(RuntimeError(f"{path} lacks events given to it"))

    @contextlib.contextmanager
    def failures_named(self):
        try:
            yield
        except RuntimeError as e:
            raise self.failure(e) from None

    def failure(self, error):
        directory = self.get_logdir()
        return WriteFailed(f"cannot write TensorBoard's events in {directory} ({write_cause(error, directory)})")


def event_writer(directory, graph=None):
    """A FileWriter into directory, which logs `graph` when one is given.

    TF1 names an event file after the second its writer opened it, so a second writer in the same directory
    within that second (a resume just after a stop) would take the same name and empty the first one's file.
    The nanoseconds in the name keep them apart, and in the order TensorBoard reads them: sorted by name.
    """
    try:
        with (graph or tf.Graph()).as_default():  # FileWriter refuses to work in eager mode, TF2's default
            return FileWriter(str(directory), graph, f".{time.time_ns()}")
    except (tf.errors.OpError, OSError) as e:
        raise GraphNNError(f"{directory}: cannot write TensorBoard event files ({e}).") from None


class Writers:
    """The train/ and validation/ event writers of one run (TensorBoard shows them as two runs)."""

    def __init__(self, run_dir, graph):
        run_dir = RunDir(run_dir)
        self.train = event_writer(run_dir.train_events, graph)
        self.validation = event_writer(run_dir.validation_events)

    def flush(self):
        self.train.flush()
        self.validation.flush()

    def close(self):
        try:
            self.train.close()
        finally:
            self.validation.close()

    def __enter__(self):
        return self

    def __exit__(self, error_type, error, traceback):
        # Leaving on an error (a checkpoint the full disk refused), a writer that cannot close adds nothing to its
        # sentence.
        with contextlib.suppress(WriteFailed) if error else contextlib.nullcontext():
            self.close()


def write_graph(directory, graph=None, graph_def=None):
    """An event file in directory holding one graph (a tf.Graph, or a GraphDef), for TensorBoard's Graph tab."""
    writer = event_writer(directory)
    with tf.Graph().as_default():  # add_graph, like FileWriter, refuses to work in eager mode
        writer.add_graph(graph, graph_def=graph_def)
    writer.close()
