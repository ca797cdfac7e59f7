"""A run's network for TensorFlow Lite, the runtime of phones and microcontrollers: RUN/export/model.tflite (float32)
and RUN/export/model-int8.tflite (full-integer quantization), measured in LiteRT's interpreter before they are
written.

The converter that TensorFlow 2.21 ships, tf.lite.TFLiteConverter, reads a SavedModel: the run's checkpoint is
written as one into a temporary directory (export.py's serving_default signature, x -> probabilities, class), and
the .tflite file keeps that signature, so that a user's script calls it by the same names:

    from ai_edge_litert.interpreter import Interpreter

    classify = Interpreter("model.tflite").get_signature_runner()
    classify(x=images)["class"]

The int8 model takes int8 images and gives int8 probabilities (an image's pixels quantized with the input's scale
and zero point, its probabilities dequantized with the output's); its class output is the int64 argmax, as in the
float model.  tf.lite.Interpreter, which ran these files before, is deprecated in 2.21; LiteRT (ai-edge-litert)
is its successor.
"""

import contextlib
import dataclasses
import os
import pathlib
import tempfile
import time
import warnings

import numpy as np
import tensorflow as tf

from graph_nn.core.errors import GraphNNError, WriteFailed, write_cause
from graph_nn.core.run_dir import RunDir
from graph_nn.graph import batched
from graph_nn.graph.model import build_inference_graph, model_variables
from graph_nn.reports.evaluate import restored_session
from graph_nn.reports.export import SIGNATURE, write_saved_model

v1 = tf.compat.v1
FILES = {None: "model.tflite", "int8": "model-int8.tflite"}
# Calibration records each activation's range, its min and max over these images, and a few hundred pin it down:
# 100, 300 and 1,000 images gave int8 test accuracies within 0.03 pp of each other for mlp512 and the CNN.  They
# are evenly spaced through the training set, so that each export of a run calibrates on the same images.
REPRESENTATIVE_IMAGES = 300
# Single-image runs timed after a warm-up, each runtime on its default threads (LiteRT's one, the Session's pools
# over every core).  Session.run takes 0.4 ms (mlp512), 1 ms (the CNN) and 4 ms (deep) an image on two cores, so
# that the timing stays within about two seconds.
TIMED_IMAGES = 500


@dataclasses.dataclass
class TFLiteExport:
    path: pathlib.Path
    quantize: str | None
    step: int  # the global step of the checkpoint exported
    parameters: int  # the network's kernels, biases and batch norm's statistics, as Keras's count_params()
    size: int  # of the .tflite file, in bytes
    max_difference: float  # of the probabilities, against the checkpoint's, on the test images
    accuracy: float  # on the test images, of the model's class output
    latency: float  # mean seconds per image, one image at a time
    graph_accuracy: float
    graph_latency: float  # the checkpoint's graph, through Session.run

    def __str__(self):
        kind = "int8, full-integer quantization" if self.quantize else "float32"
        points = 100 * (self.accuracy - self.graph_accuracy)
        return (
            f"TensorFlow Lite model ({kind}): {self.path} - the checkpoint of step {self.step:,}, {self.size:,} bytes "
            f"for {self.parameters:,} parameters\n"
            f"max |probability difference| vs the checkpoint on the test images: {self.max_difference:.2e}\n"
            f"test accuracy: {self.accuracy:.4f} (the checkpoint's: {self.graph_accuracy:.4f}, {points:+.2f} pp)\n"
            f"latency per image, one at a time: {1e6 * self.latency:.1f} µs in LiteRT's interpreter, "
            f"{1e6 * self.graph_latency:.1f} µs through Session.run"
        )


def litert_interpreter():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise GraphNNError(
            'TensorFlow Lite\'s interpreter is not installed; pip install -e ".[lite]" installs it.'
        ) from None
    return Interpreter


def mean_latency(run_one, images):
    """Mean seconds of run_one on a batch of one image, over each image in turn after a first, untimed call (in
    which the runtime allocates its buffers)."""
    run_one(images[:1])
    start = time.perf_counter()
    for i in range(len(images)):
        run_one(images[i : i + 1])
    return (time.perf_counter() - start) / len(images)


def graph_latency(sess, model, images):
    """Mean seconds of the checkpoint's graph on one image at a time, fetching what the export serves."""
    outputs = [model.probabilities, model.predictions]
    return mean_latency(lambda image: sess.run(outputs, {model.x: image}), images)


def write_dropout_free_saved_model(sess, model, config, path):
    """The session's weights written as a SavedModel of the network rebuilt without dropout.  The inference graph
    keeps dropout's ops (with keep_prob 1 they keep everything), and their random numbers have no TensorFlow Lite
    kernel; the rebuilt graph has the same variables and computes the same outputs."""
    values = sess.run(model_variables(model))
    serving = build_inference_graph(dataclasses.replace(config, dropout=0.0))
    variables = model_variables(serving)
    with v1.Session(graph=serving.graph) as serving_sess:
        # An initializer assigns its initial value, and a fed tensor replaces the value it would compute.
        serving_sess.run([v.initializer for v in variables], dict(zip((v.initial_value for v in variables), values)))
        write_saved_model(serving_sess, serving, path)


def converted(saved_model_dir, quantize, train_images):
    """The .tflite flatbuffer of the SavedModel's serving_default signature, float32 or fully int8."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[SIGNATURE])
    if quantize == "int8":
        every = max(1, len(train_images) // REPRESENTATIVE_IMAGES)
        representative = train_images[::every][:REPRESENTATIVE_IMAGES]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ({"x": image[None]} for image in representative)
        # Integer kernels only, inputs and outputs included: a model that an integer-only accelerator runs whole.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # The calibration runs the representative images through tf.lite.Interpreter, whose deprecation warning
        # would tell the user to do what this module does.
        warnings.filterwarnings("ignore", r"\s*Warning: tf.lite.Interpreter is deprecated", UserWarning)
        return converter.convert()


def quantized(values, details):
    """values as a tensor of details' type holds them: real numbers, or integers under its scale and zero point."""
    if details["dtype"] == np.float32:
        return values
    scale, zero_point = details["quantization"]
    limits = np.iinfo(details["dtype"])
    return np.clip(np.round(values / scale) + zero_point, limits.min, limits.max).astype(details["dtype"])


def dequantized(values, details):
    if details["dtype"] == np.float32:
        return values
    scale, zero_point = details["quantization"]
    return (values.astype(np.float32) - zero_point) * scale


def export_tflite(run_dir, dataset, quantize=None, which=None, weights="raw"):
    """Writes run_dir/export/model.tflite (quantize=None) or model-int8.tflite (quantize="int8") from the run's
    final (or "best" or "latest") checkpoint, after measuring it in LiteRT's interpreter on every test image.  A
    float model whose test accuracy is not the checkpoint's is not written; int8's difference is reported."""
    if quantize not in FILES:
        raise GraphNNError(f"--quantize takes int8, got {quantize}.")
    Interpreter = litert_interpreter()
    run_dir = RunDir(run_dir)
    path = run_dir.export / FILES[quantize]
    images, labels = dataset.test.images, dataset.test.labels
    timed = images[:TIMED_IMAGES]
    with tempfile.TemporaryDirectory() as temporary:
        saved_model_dir = pathlib.Path(temporary) / "saved_model"
        with restored_session(run_dir, which, weights) as (sess, model, config):
            step = int(sess.run(model.global_step))
            graph_probabilities = batched.probabilities(sess, model, images)
            graph_seconds = graph_latency(sess, model, timed)
            parameters = sum(v.shape.num_elements() for v in model_variables(model))
            write_dropout_free_saved_model(sess, model, config, saved_model_dir)
        # Outside the session, whose graph is the default one inside it: there the converter takes its TF1 path,
        # and the .tflite file comes out without its serving_default signature.
        flatbuffer = converted(saved_model_dir, quantize, dataset.train.images)

    classify = Interpreter(model_content=flatbuffer).get_signature_runner(SIGNATURE)
    x, probabilities = classify.get_input_details()["x"], classify.get_output_details()["probabilities"]
    inputs = quantized(images, x)
    results = [classify(x=inputs[s]) for s in batched.batches(len(images), batched.EVAL_BATCH_SIZE)]
    classes = np.concatenate([result["class"] for result in results])
    lite_probabilities = dequantized(np.concatenate([result["probabilities"] for result in results]), probabilities)
    accuracy = float(np.mean(classes == labels))
    graph_accuracy = float(np.mean(graph_probabilities.argmax(axis=1) == labels))
    if quantize is None and accuracy != graph_accuracy:
        raise GraphNNError(
            f"the TensorFlow Lite model's test accuracy is {accuracy:.4f}, the checkpoint's {graph_accuracy:.4f}; "
            f"{path} is not written"
        )
    # The model's latency alone: the images are quantized beforehand, as an int8 caller's pipeline delivers them.
    latency = mean_latency(lambda image: classify(x=image), inputs[:TIMED_IMAGES])
    write_tflite(flatbuffer, path, run_dir)
    return TFLiteExport(
        path,
        quantize,
        step,
        parameters,
        path.stat().st_size,
        float(np.abs(lite_probabilities - graph_probabilities).max()),
        accuracy,
        latency,
        graph_accuracy,
        graph_seconds,
    )


def write_tflite(flatbuffer, path, run_dir):
    """The file written beside its final name and renamed over it: a write the disk refuses leaves any earlier one
    as it was."""
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(exist_ok=True)
        partial.write_bytes(flatbuffer)
        os.replace(partial, path)
    except OSError as e:
        # A read-only file system refuses even to remove a file that is not there.
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise WriteFailed(f"{path}: cannot be written ({write_cause(e, run_dir.path)}).") from None
