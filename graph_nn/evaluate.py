"""A trained run, restored (its graph rebuilt from config.json in a fresh tf.Graph, its latest checkpoint loaded)
and reported on: the test-set report, its pictures, and what TensorBoard shows of a finished run."""
import contextlib
import sys

import tensorflow as tf

from graph_nn import checkpoints, inference, reports
from graph_nn.config import load_config
from graph_nn.model import build_inference_graph
from graph_nn.runs import RunDir
from graph_nn.sessions import session_config

v1 = tf.compat.v1


@contextlib.contextmanager
def restored_session(run_dir, checkpoint=None):
    """(session, inference graph, config) with the run's latest (or the given) checkpoint restored.

    The graph has no gradients and no optimizer: the Saver restores the weights alone from the checkpoint.
    """
    config = load_config(run_dir)
    checkpoint = checkpoint or checkpoints.latest(run_dir)
    model = build_inference_graph(config)
    with model.graph.as_default():
        saver = v1.train.Saver()
    with v1.Session(graph=model.graph, config=session_config()) as sess:
        checkpoints.restore(saver, sess, checkpoint)
        yield sess, model, config


def evaluate_run(run_dir, dataset):
    """(test loss, test accuracy) of the run's latest checkpoint."""
    with restored_session(run_dir) as (sess, model, _):
        return inference.loss_and_accuracy(sess, model, dataset.test)


def last_hidden_activations(sess, model, images):
    """The activations of the layer before the output, one flat row per image: what the projector maps."""
    return inference.run_batched(sess, model.layers[-2].activations, model.x, images).reshape(len(images), -1)


def save_pictures(run_dir, split, evaluation, history=None):
    """{name: png} of the report's pictures, each also saved as run_dir/NAME.png."""
    from graph_nn import plots

    pictures = {"misclassified": plots.misclassified_grid(split.images, split.labels, evaluation.probabilities),
                "confusion_matrix": plots.confusion_matrix(evaluation.confusion_matrix())}
    if history:
        pictures.update(accuracy=plots.accuracy_curves(history), loss=plots.loss_curves(history))
    for name, png in pictures.items():
        RunDir(run_dir).picture(name).write_bytes(png)
    return pictures


def publish(run_dir, config, step, dataset, evaluation, pictures, embedding_name, embedding):
    """The run's pictures, PR curves, embedding and hyper-parameters, for TensorBoard."""
    from graph_nn import dashboards

    run_dir = RunDir(run_dir)
    writer = dashboards.file_writer(run_dir.evaluation)
    try:
        dashboards.write_images(writer, step, pictures, dataset.test.images, dataset.test.labels)
        dashboards.write_pr_curves(writer, step, dataset.test.labels, evaluation.probabilities)
    finally:
        writer.close()
    shown = slice(0, len(embedding))
    dashboards.write_projector(run_dir, embedding_name, embedding, dataset.test.images[shown],
                               dataset.test.labels[shown], evaluation.predictions[shown])
    started = run_dir.config.stat().st_mtime
    dashboards.write_hparams(run_dir, config, step, len(dataset.train), started)


def report_run(run_dir, dataset, out=None, history=None, tensorboard=False):
    """Prints the test-set report of the run's latest checkpoint and saves its pictures in run_dir.

    history (the TrainingResult's) adds the accuracy and loss curves; tensorboard=True also writes the
    pictures, PR curves, embedding and hyper-parameters for TensorBoard - once per run, at its end.
    """
    from graph_nn import dashboards

    with restored_session(run_dir) as (sess, model, config):
        evaluation = reports.evaluate_split(sess, model, dataset.test)
        step = int(sess.run(model.global_step))
        if tensorboard:
            embedding_name = f"{model.layers[-2].name}/activations"
            embedding = last_hidden_activations(sess, model, dataset.test.images[:dashboards.PROJECTOR_DIGITS])
    print(reports.format_report(evaluation), file=out or sys.stdout, flush=True)
    pictures = save_pictures(run_dir, dataset.test, evaluation, history)
    if tensorboard:
        publish(run_dir, config, step, dataset, evaluation, pictures, embedding_name, embedding)
    return evaluation
