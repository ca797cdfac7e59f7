"""--input: where a training step's batch comes from.

    feed      the placeholders input/x and input/y, fed a NumPy batch each step (fully_connected_feed.py)
    dataset   a tf.data pipeline in the graph, read through an initializable iterator
    queue     TF1's queues: a FIFOQueue of batches that a QueueRunner's thread keeps full, under a Coordinator
    tfrecord  the dataset pipeline, its training examples read from .tfrecords files (graph/tfrecords.py)

Every pipeline draws the feed loop's batches, BatchSchedule's examples of each step, so a run trains to the
same weights whichever input it has, and a resumed run starts its pipeline at its step.  The model is still
built on input/x and input/y, now placeholder_with_default on the pipeline's batch: the train step, which
feeds neither, takes the next batch, while evaluation, histograms and the NaN hunt feed them as before (a fed
tensor cuts what computes it out of that Session.run, so they never consume a batch).

    input_pipeline/indices, offsets     the run's examples in step order, and where each step's begin
    input_pipeline/images, labels       the training split (dataset, queue), fed once per session
    input_pipeline/steps, batches       queue: the step numbers to do, and the batches ready
"""

import contextlib

import numpy as np
import tensorflow as tf

from graph_nn.core.errors import GraphNNError
from graph_nn.data.dataset import NUM_CLASSES
from graph_nn.graph import tfrecords
from graph_nn.graph.model import INPUT_SIZE

v1 = tf.compat.v1
QUEUE_CAPACITY = 32  # batches the queue runner may compute ahead of the train step
# How long the queue runner's thread gets to end once asked: it only ever waits on its own queue, which
# the request closes, so it ends at once; the limit is for a thread stuck in TensorFlow.
STOP_LIMIT_SECONDS = 10


def pipeline_for(config, dataset, total_steps):
    """The pipeline of config.input, None for feed."""
    if config.input == "dataset":
        return DatasetPipeline()
    if config.input == "tfrecord":
        return DatasetPipeline(tfrecords.training_files(dataset.source))
    if config.input == "queue":
        return QueuePipeline(total_steps)
    return None


def model_inputs(x, y):
    """input/x and input/y as the model sees them: the pipeline's batch, unless a Session.run feeds its own."""
    with v1.name_scope("input"):
        return (
            v1.placeholder_with_default(x, [None, INPUT_SIZE], name="x"),
            v1.placeholder_with_default(y, [None, NUM_CLASSES], name="y"),
        )


def run_feed(schedule, first_step, indices, offsets):
    """The steps after first_step to the schedule's last: their examples and where each step's begin."""
    examples, sizes = schedule.steps_examples(first_step + 1, schedule.total_steps)
    return {indices: examples, offsets: np.concatenate([[0], np.cumsum(sizes)])}


def gather_step(images, labels, indices, offsets, k):
    """The batch of the run's k-th step."""
    rows = indices[offsets[k] : offsets[k + 1]]
    return tf.gather(images, rows, name="batch_images"), tf.gather(labels, rows, name="batch_labels")


class DatasetPipeline:
    """tf.data: the training split, as one element, flat-mapped into the run's batches, prefetched, read through
    an initializable iterator that start() points at a session's steps.  `files`: the split is read from
    these .tfrecords files inside the pipeline; none: it is fed from NumPy when the iterator is initialized."""

    logged = {}

    def __init__(self, files=None):
        self.files = files

    def build(self):
        with v1.name_scope("input_pipeline"):
            self.indices = v1.placeholder(tf.int64, [None], name="indices")
            self.offsets = v1.placeholder(tf.int64, [None], name="offsets")
            if self.files:
                split = tfrecords.whole(self.files).map(tfrecords.scaled)
            else:
                self.images = v1.placeholder(tf.float32, [None, INPUT_SIZE], name="images")
                self.labels = v1.placeholder(tf.float32, [None, NUM_CLASSES], name="labels")
                split = tf.data.Dataset.from_tensors((self.images, self.labels))

            def batches(images, labels):
                steps = tf.data.Dataset.range(tf.size(self.offsets, out_type=tf.int64) - 1)
                return steps.map(lambda k: gather_step(images, labels, self.indices, self.offsets, k))

            self.iterator = v1.data.make_initializable_iterator(split.flat_map(batches).prefetch(1))
            x, y = self.iterator.get_next()
        return model_inputs(x, y)

    @contextlib.contextmanager
    def running(self, sess, schedule, first_step, split):
        feed = run_feed(schedule, first_step, self.indices, self.offsets)
        if not self.files:
            feed.update({self.images: split.images, self.labels: split.onehot})
        sess.run(self.iterator.initializer, feed)
        yield


class QueuePipeline:
    """TF1's input queues: `steps`, filled with the session's step numbers and closed (as string_input_producer
    fills a queue with file names), and `batches`, which a QueueRunner's thread fills by taking a step number
    and gathering its batch from the training split held in local variables.  One thread, so the batches
    come in step order.  start() starts the thread under a Coordinator; leaving running() stops and joins it,
    whatever ends the run."""

    def __init__(self, total_steps):
        self.total_steps = total_steps
        self.logged = {}

    def build(self):
        with v1.name_scope("input_pipeline"):
            local = [v1.GraphKeys.LOCAL_VARIABLES]  # out of every checkpoint: they are data, not state
            self.feeds = {
                name: v1.placeholder(dtype, shape, name=name)
                for name, dtype, shape in (
                    ("images", tf.float32, [None, INPUT_SIZE]),
                    ("labels", tf.float32, [None, NUM_CLASSES]),
                    ("indices", tf.int64, [None]),
                    ("offsets", tf.int64, [None]),
                )
            }
            held = {
                name: v1.Variable(fed, trainable=False, collections=local, validate_shape=False, name=f"held_{name}")
                for name, fed in self.feeds.items()
            }
            self.load = tf.group([variable.initializer for variable in held.values()], name="load")
            steps = tf.queue.FIFOQueue(self.total_steps, tf.int64, shapes=[[]], name="steps")
            self.step_numbers = v1.placeholder(tf.int64, [None], name="step_numbers")
            # Closed after the enqueue: tf.group alone would leave the order to the executor.
            with tf.control_dependencies([steps.enqueue_many(self.step_numbers)]):
                self.fill_steps = steps.close(name="fill_steps")
            batches = tf.queue.FIFOQueue(QUEUE_CAPACITY, [tf.float32, tf.float32], name="batches")
            batch = gather_step(held["images"], held["labels"], held["indices"], held["offsets"], steps.dequeue())
            self.runner = v1.train.QueueRunner(batches, [batches.enqueue(batch)])
            # As tf.compat.v1.train.batch names it: how full the queue is when the chief logs.
            fraction = tf.cast(batches.size(), tf.float32) / QUEUE_CAPACITY
            self.logged[f"input_pipeline/fraction_of_{QUEUE_CAPACITY}_full"] = fraction
            x, y = batches.dequeue()
            x.set_shape([None, INPUT_SIZE])
            y.set_shape([None, NUM_CLASSES])
        return model_inputs(x, y)

    @contextlib.contextmanager
    def running(self, sess, schedule, first_step, split):
        feed = run_feed(schedule, first_step, self.feeds["indices"], self.feeds["offsets"])
        feed.update({self.feeds["images"]: split.images, self.feeds["labels"]: split.onehot})
        sess.run(self.load, feed)
        sess.run(self.fill_steps, {self.step_numbers: np.arange(schedule.total_steps - first_step)})
        coordinator = v1.train.Coordinator()
        threads = self.runner.create_threads(sess, coord=coordinator, daemon=True, start=True)
        try:
            yield
        finally:
            # Closes the queue (the runner's cancel op), which ends an enqueue waiting for room.
            coordinator.request_stop()
            try:
                coordinator.join(threads, stop_grace_period_secs=STOP_LIMIT_SECONDS)
            except RuntimeError:
                raise GraphNNError(
                    f"the queue runner's thread did not stop within {STOP_LIMIT_SECONDS} s of being asked."
                ) from None
