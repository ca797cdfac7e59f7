"""A run's network as a Keras 3 model holding its checkpoint's weights: RUN/export/model.keras, the way out of
graph mode.

The Keras model is the graph's network layer for layer, each Keras layer named after the graph's variable scope,
so that the mapping reads off the names:

    x [None, 784]                      Input "x" (the CNNs reshape it, as the graph does: Reshape "images")
    hidden1/kernel, hidden1/bias       Dense "hidden1" (Conv2D "conv1" for the CNNs), ReLU inside it
    hidden1/batch_norm/gamma, beta,    BatchNormalization "hidden1_batch_norm", then ReLU "hidden1_relu": the
      moving_mean, moving_variance     graph's momentum and epsilon are Keras's defaults (graph/model.py)
    dropout (keep_prob)                Dropout "hidden1_dropout" at the rate the run trained with
    L2 in REGULARIZATION_LOSSES        kernel_regularizer=l2(λ) on every kernel
    output/kernel, output/bias         Dense "output", then Softmax "probabilities"

What is not carried over: the optimizer's slots and step (model.keras is compiled with the run's optimizer and
hyper-parameters, starting afresh), the learning-rate schedule, and the moving averages themselves (with
--weights ema they are the weights).  The export checks itself before it writes: the Keras model's logits against
the graph's on every test image.
"""

import contextlib
import dataclasses
import os

import numpy as np

from graph_nn.core.config import CNN_FILTERS, DEEP_FILTERS, DEEP_UNITS, HIDDEN_UNITS
from graph_nn.core.errors import GraphNNError, WriteFailed, write_cause
from graph_nn.core.run_dir import RunDir
from graph_nn.crosscheck.keras_models import keras_optimizer
from graph_nn.data.dataset import IMAGE_SIZE, NUM_CLASSES
from graph_nn.graph import batched
from graph_nn.reports.evaluate import restored_session
from graph_nn.reports.tflite import TIMED_IMAGES, graph_latency, mean_latency

TOLERANCE = 1e-5  # max |logit difference| on the test images above which model.keras is not written


def keras_network(config):
    """config's network as a Keras functional model, x [None, 784] -> probabilities [None, 10], its layers named
    after the graph's scopes (the module's docstring has the mapping)."""
    import keras
    from keras import layers, regularizers

    regularizer = {"kernel_regularizer": regularizers.l2(config.l2)} if config.l2 else {}

    def hidden(layer_type, name, *args, **kwargs):
        if not config.batch_norm:
            return [layer_type(*args, name=name, activation="relu", **regularizer, **kwargs)]
        return [
            layer_type(*args, name=name, **regularizer, **kwargs),
            layers.BatchNormalization(name=f"{name}_batch_norm"),
            layers.ReLU(name=f"{name}_relu"),
        ]

    def dropout(name):
        return [layers.Dropout(config.dropout, name=f"{name}_dropout")] if config.dropout else []

    images = [layers.Reshape((IMAGE_SIZE, IMAGE_SIZE, 1), name="images")]
    if config.model == "cnn":
        stack = [*images, *hidden(layers.Conv2D, "conv1", CNN_FILTERS[0], 3), layers.MaxPooling2D(2, name="pool1")]
        stack += [*hidden(layers.Conv2D, "conv2", CNN_FILTERS[1], 3), layers.MaxPooling2D(2, name="pool2")]
        stack += [*hidden(layers.Conv2D, "conv3", CNN_FILTERS[2], 3), layers.Flatten(name="flatten")]
        stack += dropout("flatten")
    elif config.model == "deep":
        stack = list(images)
        for i, filters in enumerate(DEEP_FILTERS, start=1):
            stack += hidden(layers.Conv2D, f"conv{i}", filters, 5, padding="same")
            stack.append(layers.MaxPooling2D(2, name=f"pool{i}"))
        stack += [layers.Flatten(name="flatten"), *hidden(layers.Dense, "fc1", DEEP_UNITS), *dropout("fc1")]
    else:
        stack = []
        for i, units in enumerate(HIDDEN_UNITS[config.model], start=1):
            stack += [*hidden(layers.Dense, f"hidden{i}", units), *dropout(f"hidden{i}")]
    stack += [layers.Dense(NUM_CLASSES, name="output", **regularizer), layers.Softmax(name="probabilities")]
    inputs = keras.Input((IMAGE_SIZE * IMAGE_SIZE,), name="x")
    outputs = inputs
    for layer in stack:
        outputs = layer(outputs)
    return keras.Model(inputs, outputs, name=config.model)


@dataclasses.dataclass
class KerasExport:
    path: str
    step: int
    parameters: int
    mapping: list  # [(graph variable, Keras weight)]
    max_difference: float  # of the logits, against the checkpoint's, on the test images
    accuracy: float  # the Keras model's on the test images
    graph_accuracy: float
    size: int  # bytes of model.keras
    latency: float  # mean seconds per image, one image at a time, through Keras's predict_on_batch
    graph_latency: float  # the checkpoint's graph, through Session.run

    def __str__(self):
        width = max(len(graph) for graph, _ in self.mapping)
        lines = [
            f"Keras 3 model: {self.path} - the checkpoint of step {self.step:,}, {self.parameters:,} parameters",
            "Graph variable -> Keras weight:",
            *(f"  {graph:<{width}}  {keras}" for graph, keras in self.mapping),
            f"max |logit difference| vs the checkpoint on the test images: {self.max_difference:.2e} "
            f"(at most {TOLERANCE:.0e})",
            f"test accuracy: {self.accuracy:.4f} (the checkpoint's: {self.graph_accuracy:.4f})",
            f"{self.size:,} bytes; latency per image, one at a time: {1e6 * self.latency:.1f} µs through Keras's "
            f"predict_on_batch, {1e6 * self.graph_latency:.1f} µs through Session.run",
        ]
        return "\n".join(lines)


def keras_logits(keras_model, images):
    """The Keras model's output layer before its softmax."""
    import keras

    logits = keras.Model(keras_model.inputs, keras_model.get_layer("output").output)
    return logits.predict(images, batch_size=batched.EVAL_BATCH_SIZE, verbose=0)


def export_keras(run_dir, dataset, which=None, weights="raw"):
    """Writes run_dir/export/model.keras from the run's final (or "best" or "latest") checkpoint, after checking
    its logits against the graph's on every test image; refuses to write one that computes otherwise."""
    run_dir = RunDir(run_dir)
    images, labels = dataset.test.images, dataset.test.labels
    with restored_session(run_dir, which, weights) as (sess, model, config):
        step = int(sess.run(model.global_step))
        graph_logits = batched.logits(sess, model, images)
        graph_seconds = graph_latency(sess, model, images[:TIMED_IMAGES])
        variables = [v for layer in model.layers for v in (layer.kernel, layer.bias, *layer.normalization)]
        values = {v.op.name: value for v, value in zip(variables, sess.run(variables))}
    keras_model = keras_network(config)
    mapping = []
    for layer in model.layers:
        parts = [(keras_model.get_layer(layer.name), [layer.kernel, layer.bias])]
        if layer.normalization:
            parts.append((keras_model.get_layer(f"{layer.name}_batch_norm"), layer.normalization))
        for keras_layer, graph_variables in parts:
            keras_layer.set_weights([values[v.op.name] for v in graph_variables])
            mapping += [(v.op.name, w.path) for v, w in zip(graph_variables, keras_layer.weights)]
    keras_model.compile(optimizer=keras_optimizer(config), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    logits = keras_logits(keras_model, images)
    difference = float(np.abs(logits - graph_logits).max())
    if not difference <= TOLERANCE:
        raise GraphNNError(
            f"the Keras model's logits differ from the checkpoint's by up to {difference:.2e} on the test images "
            f"(more than {TOLERANCE:.0e}); {run_dir.keras_model} is not written"
        )
    accuracy, graph_accuracy = (float(np.mean(each.argmax(axis=1) == labels)) for each in (logits, graph_logits))
    latency = mean_latency(keras_model.predict_on_batch, images[:TIMED_IMAGES])
    write_keras(keras_model, run_dir)
    return KerasExport(
        str(run_dir.keras_model),
        step,
        keras_model.count_params(),
        mapping,
        difference,
        accuracy,
        graph_accuracy,
        run_dir.keras_model.stat().st_size,
        latency,
        graph_seconds,
    )


def write_keras(keras_model, run_dir):
    """model.keras written beside its final name and renamed over it: a write the disk refuses leaves any
    earlier one as it was (Keras insists on the .keras ending, hence the name)."""
    partial = run_dir.keras_model.with_name("model.partial.keras")
    try:
        run_dir.export.mkdir(exist_ok=True)
        keras_model.save(partial)
        os.replace(partial, run_dir.keras_model)
    except OSError as e:
        with contextlib.suppress(OSError):  # a read-only file system refuses even to remove what is not there
            partial.unlink()
        raise WriteFailed(f"{run_dir.keras_model}: cannot be written ({write_cause(e, run_dir.path)}).") from None
