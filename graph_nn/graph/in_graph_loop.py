"""Several training steps in one Session.run: a tf.compat.v1.while_loop that trains on the feed_dict loop's batches.

The training images and one-hot labels live in the graph as two local variables, filled once per session from
placeholders: as constants they would put 190 MB into the GraphDef, and being local keeps them out of every
checkpoint.  A run is fed only the example indices of its steps, concatenated, and each step's batch size;
both come from BatchSchedule, so the loop trains on exactly the batches the feed_dict loop feeds, short last
batch of an epoch included.  Iteration i slices its indices, gathers its batch and runs the model's own stages
on it (inference with the weights reused, loss, accuracy, training with the model's optimizer, whose slots
already exist) and writes the batch's loss and accuracy into TensorArrays.

    train_loop/train_images, train_loop/train_labels   the training split, local variables
    train_loop/indices, train_loop/sizes                the run's feed: its steps' examples and batch sizes
    train_loop/steps                                    the while_loop; train_loop/losses, train_loop/accuracies

Built with TensorFlow 2's control flow (the default) the loop is one functional `While` node whose body and
condition are functions in the GraphDef's library; control_flow="v1" builds TF1's frame of Enter, Merge,
Switch, LoopCond, NextIteration and Exit nodes instead, for that one graph.
"""

import contextlib
import dataclasses

import tensorflow as tf

# TensorFlow reads this switch whenever a while_loop or TensorArray is built; the public
# tf.compat.v1.disable_control_flow_v2() sets it for the whole process, and there is no scoped form.
from tensorflow.python.ops import control_flow_util

from graph_nn.graph.model import evaluation, inference, loss, training

v1 = tf.compat.v1


@dataclasses.dataclass
class InGraphLoop:
    images: tf.Tensor  # placeholders that fill the data variables once per session
    labels: tf.Tensor
    load_op: tf.Operation
    indices: tf.Tensor  # placeholders fed each run
    sizes: tf.Tensor
    losses: tf.Tensor  # [steps run]: each batch's loss and accuracy, before its update
    accuracies: tf.Tensor

    @property
    def fetches(self):
        return [self.losses, self.accuracies]

    def load(self, sess, split):
        """Copies the training split into the graph's data variables; once per session, before the first run."""
        sess.run(self.load_op, {self.images: split.images, self.labels: split.onehot})

    def feed(self, schedule, first, last):
        """The feed of one run that trains steps first..last."""
        indices, sizes = schedule.steps_examples(first, last)
        return {self.indices: indices, self.sizes: sizes}


@contextlib.contextmanager
def control_flow_version(version):
    """Inside the block, while_loop and TensorArray build TF1's ("v1") or TF2's ("v2") control flow."""
    saved = control_flow_util.ENABLE_CONTROL_FLOW_V2
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = version == "v2"
    try:
        yield
    finally:
        control_flow_util.ENABLE_CONTROL_FLOW_V2 = saved


def add_in_graph_loop(model, config, split, control_flow="v2"):
    """Adds the loop to model's graph (built by model.build_graph, so the weights, global_step and the
    optimizer's slots already exist) for the training split `split`."""
    with model.graph.as_default(), v1.name_scope("train_loop"), control_flow_version(control_flow):
        images = v1.placeholder(tf.float32, split.images.shape, name="images")
        labels = v1.placeholder(tf.float32, split.onehot.shape, name="labels")
        local = [v1.GraphKeys.LOCAL_VARIABLES]
        images_variable = v1.Variable(images, trainable=False, collections=local, name="train_images")
        labels_variable = v1.Variable(labels, trainable=False, collections=local, name="train_labels")
        indices = v1.placeholder(tf.int32, [None], name="indices")
        sizes = v1.placeholder(tf.int32, [None], name="sizes")
        offsets = tf.concat([[0], tf.cumsum(sizes)], axis=0, name="offsets")

        def train_one_step(i, losses, accuracies, finite):
            batch = indices[offsets[i] : offsets[i + 1]]
            x, y = tf.gather(images_variable, batch), tf.gather(labels_variable, batch)
            with v1.variable_scope(v1.get_variable_scope(), reuse=True):
                logits = inference(x, config.model, config.init)[-1].activations
            batch_loss = loss(logits, y)
            batch_accuracy = evaluation(tf.argmax(logits, axis=1), y)
            update = training(batch_loss, model.optimizer).train_op
            # Everything the next iteration receives waits for this update: the next batch's forward pass
            # must read the weights this step wrote.
            with tf.control_dependencies([update]):
                return (
                    i + 1,
                    losses.write(i, batch_loss),
                    accuracies.write(i, batch_accuracy),
                    tf.math.is_finite(batch_loss),
                )

        def more_steps(i, losses, accuracies, finite):
            # A non-finite loss ends the run at its step, so the NaN guard reports that exact step.
            return tf.logical_and(i < tf.size(sizes), finite)

        start = (
            tf.constant(0),
            tf.TensorArray(tf.float32, size=0, dynamic_size=True),
            tf.TensorArray(tf.float32, size=0, dynamic_size=True),
            tf.constant(True),
        )
        # Steps are sequential by nature: nothing of iteration i + 1 may start before iteration i's update.
        _, losses, accuracies, _ = v1.while_loop(more_steps, train_one_step, start, parallel_iterations=1, name="steps")
        return InGraphLoop(
            images,
            labels,
            tf.group(images_variable.initializer, labels_variable.initializer, name="load_data"),
            indices,
            sizes,
            losses.stack(name="losses"),
            accuracies.stack(name="accuracies"),
        )
