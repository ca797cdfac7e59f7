"""What a run adds to TensorBoard beyond scalars, histograms and the graph.

    RUN/              hparams: the run's hyper-parameters, its status and which scalars are its metrics (HParams
                      tab), written when its training ends, however it ends
    RUN/evaluation/   the report's pictures and a few input digits (Images), one PR curve per class (PR Curves),
                      the last hidden layer's activations with labels and a sprite (Projector)

Everything here is written after training, so the training loop itself stays as fast as before.
"""

import io
import math

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import summary as hparams_summary
from tensorboard.plugins.pr_curve import summary as pr_curve_summary
from tensorboard.plugins.projector import projector_config_pb2

from graph_nn.core import config as config_module
from graph_nn.core.run_dir import (
    DIVERGED,
    EARLY_STOPPED,
    FINISHED,
    PROJECTOR_FILES,
    STATUSES,
    STOPPED,
    RunDir,
    write_atomically,
)
from graph_nn.data.dataset import DIGITS, IMAGE_SIZE
from graph_nn.observe.summaries import event_writer

v1 = tf.compat.v1
INPUT_DIGITS = 6
PROJECTOR_DIGITS = 2000
# The scalars the HParams tab shows per run: (run sub-directory, tag, display name).  A metric is the last value
# logged: for validation, the last evaluation's; for test, the report's.
METRICS = (
    ("validation", "accuracy", "validation accuracy"),
    ("validation", "loss", "validation loss"),
    ("test", "accuracy", "test accuracy"),
    ("test", "loss", "test loss"),
    ("train", "loss", "train loss"),
)
# The HParams tab's own status of a session, beside ours (an hparam, which the table shows by name).  TensorBoard
# 2.21 has no "aborted": a stopped run, neither a success nor a failure, is "unknown" there.
SESSION_STATUS = {
    FINISHED: api_pb2.STATUS_SUCCESS,
    EARLY_STOPPED: api_pb2.STATUS_SUCCESS,
    STOPPED: api_pb2.STATUS_UNKNOWN,
    DIVERGED: api_pb2.STATUS_FAILURE,
}


def image_value(tag, png_bytes):
    from PIL import Image

    width, height = Image.open(io.BytesIO(png_bytes)).size
    return v1.Summary.Value(
        tag=tag, image=v1.Summary.Image(height=height, width=width, colorspace=4, encoded_image_string=png_bytes)
    )


def digit_png(image):
    """A 28x28 grayscale PNG of one flattened [0, 1] digit."""
    from PIL import Image

    buffer = io.BytesIO()
    pixels = np.round(image.reshape(IMAGE_SIZE, IMAGE_SIZE) * 255).astype(np.uint8)
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def write_images(writer, step, pictures, images, labels):
    """The report's pictures ({tag: png}) and the first test digits, tagged like tf.summary.image's outputs."""
    values = [image_value(tag, png) for tag, png in pictures.items()]
    values += [
        image_value(f"input_digits/image/{i}_label_{labels[i]}", digit_png(images[i]))
        for i in range(min(INPUT_DIGITS, len(labels)))
    ]
    writer.add_summary(v1.Summary(value=values), step)


def write_pr_curves(writer, step, labels, probabilities, classes=DIGITS):
    """One precision/recall curve per class: that class against all the others, by its softmax probability."""
    for label, name in enumerate(classes):
        tag, display_name = (f"digit_{label}", f"digit {label}") if classes == DIGITS else (f"class_{label}", name)
        summary = pr_curve_summary.pb(
            tag, labels == label, probabilities[:, label].astype(np.float32), display_name=display_name
        )
        writer.add_summary(summary, step)


def hparams_of(config, global_step, train_examples, status):
    return {
        "model": config.model,
        "optimizer": config.optimizer,
        "learning_rate": config.learning_rate,
        "batch_size": config.batch_size,
        "epochs": round(global_step * config.batch_size / train_examples, 2),
        "steps": global_step,
        "init": config.init,
        "seed": config.seed,
        "preset": config.preset or "",
        "validation": config.validation,
        "early_stop": config.early_stop or 0,
        "status": status,
    }


def experiment():
    """The same experiment in every run, so whichever run TensorBoard reads it from, it describes them all."""

    def discrete(name, values):
        return api_pb2.HParamInfo(
            name=name, type=api_pb2.DATA_TYPE_STRING, domain_discrete={"values": [{"string_value": v} for v in values]}
        )

    def number(name):
        return api_pb2.HParamInfo(name=name, type=api_pb2.DATA_TYPE_FLOAT64)

    hparams = [
        discrete("model", config_module.MODELS),
        discrete("optimizer", config_module.OPTIMIZERS),
        number("learning_rate"),
        number("batch_size"),
        number("epochs"),
        number("steps"),
        discrete("init", config_module.INITS),
        number("seed"),
        discrete("preset", ("",) + tuple(config_module.PRESETS)),
        api_pb2.HParamInfo(name="validation", type=api_pb2.DATA_TYPE_STRING),
        number("early_stop"),
        discrete("status", STATUSES),
    ]
    metrics = [
        api_pb2.MetricInfo(name=api_pb2.MetricName(group=group, tag=tag), display_name=name)
        for group, tag, name in METRICS
    ]
    return hparams_summary.experiment_pb(hparams, metrics)


def write_hparams(run_dir, config, global_step, train_examples, start_time, status):
    """The run's HParams row, replacing the one of an earlier session (a stopped run, now resumed).

    Replacing, not adding: TensorBoard keeps the first session information it reads for a run.
    """
    run_dir = RunDir(run_dir)
    for earlier in run_dir.hparams_event_files():
        earlier.unlink()
    writer = event_writer(run_dir)
    try:
        writer.add_summary(experiment().SerializeToString(), global_step)
        hparams = hparams_of(config, global_step, train_examples, status)
        writer.add_summary(hparams_summary.session_start_pb(hparams, start_time_secs=start_time), global_step)
        writer.add_summary(hparams_summary.session_end_pb(SESSION_STATUS[status]), global_step)
    finally:
        writer.close()


def sprite(images):
    """All digits in one square grid image, dark on white, as the projector's sprite wants them."""
    from PIL import Image

    side = math.ceil(math.sqrt(len(images)))
    grid = np.ones((side * side, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    grid[: len(images)] = 1 - images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    grid = grid.reshape(side, side, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 1, 3)
    pixels = np.round(grid.reshape(side * IMAGE_SIZE, side * IMAGE_SIZE) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def save_embedding(path, name, activations):
    """A TF1 checkpoint holding one variable, the way the projector reads embeddings."""
    graph = tf.Graph()
    with graph.as_default():
        value = v1.placeholder(tf.float32, activations.shape)
        variable = v1.Variable(value, name=name)
        saver = v1.train.Saver([variable], save_relative_paths=True)
        with v1.Session(graph=graph) as sess:
            sess.run(variable.initializer, {value: activations})
            saver.save(sess, str(path), write_meta_graph=False)


def write_projector(run_dir, name, activations, images, labels, predictions, classes=DIGITS):
    """The run's evaluation/projector_config.pbtxt with the embedding, labels (metadata.tsv) and sprite beside it.

    The directory must also hold an event file: the projector only looks into TensorBoard's runs.
    """
    run_dir = RunDir(run_dir)
    save_embedding(run_dir.projector_file("checkpoint"), name, activations.reshape(len(activations), -1))
    rows = ["label\tpredicted\tcorrect"] + [
        f"{classes[t]}\t{classes[p]}\t{'yes' if t == p else 'no'}" for t, p in zip(labels, predictions)
    ]
    write_atomically(run_dir.projector_file("metadata"), "\n".join(rows) + "\n")
    write_atomically(run_dir.projector_file("sprite"), sprite(images))
    # No model_checkpoint_path: the projector finds the checkpoint next to its config, so logs/ can be moved.
    config = projector_config_pb2.ProjectorConfig()
    embedding = config.embeddings.add(tensor_name=name, metadata_path=PROJECTOR_FILES["metadata"])
    embedding.sprite.image_path = PROJECTOR_FILES["sprite"]
    embedding.sprite.single_image_dim.extend([IMAGE_SIZE, IMAGE_SIZE])
    write_atomically(run_dir.projector_file("config"), text_format.MessageToString(config))
