"""A trained run, restored (its graph rebuilt from config.json in a fresh tf.Graph, its final checkpoint loaded)
and reported on: the test-set report, its pictures, and what TensorBoard shows of a finished run."""

import contextlib

import tensorflow as tf

from graph_nn.core.config import check_weights, load_config
from graph_nn.core.errors import WriteFailed, write_cause
from graph_nn.core.run_dir import RunDir, write_atomically
from graph_nn.data.dataset import DIGITS, read_classes
from graph_nn.graph import batched, checkpoints
from graph_nn.graph.model import build_inference_graph
from graph_nn.graph.sessions import session_config
from graph_nn.observe import logged_scalars
from graph_nn.observe.summaries import event_writer, scalars
from graph_nn.reports import classification
from graph_nn.reports.report import reported

v1 = tf.compat.v1


@contextlib.contextmanager
def restored_session(run_dir, which=None, weights="raw"):
    """(session, inference graph, config) with the run's "best" or "latest" checkpoint restored; by default its
    final one (config.final_checkpoint: the best with early stopping, else the latest).  A latest checkpoint that
    is damaged gives way to the newest one before it that restores (graph/checkpoints.py says which).

    The graph has no gradients and no optimizer: the Saver restores the weights alone from the checkpoint, or
    with weights="ema" their moving averages into them, as cifar10_eval.py did through variables_to_restore().
    """
    check_weights(run_dir, weights)
    config = load_config(run_dir)
    model = build_inference_graph(config)
    with model.graph.as_default():
        averages = v1.train.ExponentialMovingAverage(config.ema) if weights == "ema" else None
        saver = v1.train.Saver(averages.variables_to_restore() if averages else None)
    with v1.Session(graph=model.graph, config=session_config()) as sess:
        checkpoints.restore_final(saver, sess, run_dir, which or config.final_checkpoint)
        yield sess, model, config


def evaluate_run(run_dir, dataset, which=None, weights="raw"):
    """(test loss, test accuracy) of the run's final (or "best" or "latest") checkpoint, its weights or their
    moving averages (weights="ema")."""
    with restored_session(run_dir, which, weights) as (sess, model, _):
        return batched.loss_and_accuracy(sess, model, dataset.test)


def run_classes(run_dir):
    """The class names the run was trained with (digits for a run from before classes.txt)."""
    path = RunDir(run_dir).classes
    return read_classes(path) if path.exists() else DIGITS


def last_hidden_activations(sess, model, images):
    """The activations of the layer before the output, one flat row per image: what the projector maps."""
    return batched.run_batched(sess, model.layers[-2].activations, model.x, images).reshape(len(images), -1)


def save_pictures(run_dir, split, evaluation, classes):
    """{name: png} of the report's pictures, each also saved as run_dir/NAME.png; the curves are drawn from the
    run's event files, so they cover every session of a resumed run."""
    from graph_nn.reports import plots

    curves = logged_scalars.curves(run_dir)
    pictures = {
        "accuracy": plots.accuracy_curves(*curves["accuracy"]),
        "loss": plots.loss_curves(*curves["loss"]),
        "misclassified": plots.misclassified_grid(split.images, split.labels, evaluation.probabilities, classes),
        "confusion_matrix": plots.confusion_matrix(evaluation.confusion_matrix(), classes),
    }
    for name, png in pictures.items():
        write_atomically(RunDir(run_dir).picture(name), png)
    return pictures


def publish(run_dir, step, dataset, evaluation, pictures, embedding_name, embedding, classes):
    """The run's test figures (test/ scalars, the HParams tab's test metrics), pictures, PR curves and embedding,
    for TensorBoard."""
    from graph_nn.reports import dashboards

    run_dir = RunDir(run_dir)
    writer = event_writer(run_dir.test_events)
    try:
        writer.add_summary(scalars({"loss": evaluation.loss, "accuracy": evaluation.accuracy}), step)
    finally:
        writer.close()
    writer = event_writer(run_dir.evaluation)
    try:
        dashboards.write_images(writer, step, pictures, dataset.test.images, dataset.test.labels)
        dashboards.write_pr_curves(writer, step, dataset.test.labels, evaluation.probabilities, classes)
    finally:
        writer.close()
    shown = slice(0, len(embedding))
    dashboards.write_projector(
        run_dir,
        embedding_name,
        embedding,
        dataset.test.images[shown],
        dataset.test.labels[shown],
        evaluation.predictions[shown],
        classes,
    )


def checkpoint_line(config, which, step):
    """Which checkpoint the report is of, and what the run validated on."""
    chosen = "best (lowest validation loss)" if which == "best" else "last"
    line = f"Checkpoint: the run's {chosen}, of step {step:,}; validated during training on {config.validation}."
    if which == "best" and not config.validation_split:
        line += " Chosen on the test set itself, so its test accuracy is optimistic."
    return line


@reported
def evaluation_report(run_dir, dataset, tensorboard=False, which=None, weights="raw"):
    """The test-set report of the run's final (or "best" or "latest") checkpoint; its pictures are saved in
    run_dir once its lines are read, and its outcome is the Evaluation.

    tensorboard=True also writes the test figures, pictures, PR curves and embedding for TensorBoard - once per
    run, at its end.
    """
    from graph_nn.reports import dashboards

    with restored_session(run_dir, which, weights) as (sess, model, config):
        evaluation = classification.evaluate_split(sess, model, dataset.test)
        step = int(sess.run(model.global_step))
        if tensorboard:
            embedding_name = f"{model.layers[-2].name}/activations"
            embedding = last_hidden_activations(sess, model, dataset.test.images[: dashboards.PROJECTOR_DIGITS])
    classes = run_classes(run_dir)
    yield checkpoint_line(config, which or config.final_checkpoint, step)
    if weights == "ema":
        yield f"Weights: their moving averages (--ema {config.ema}), restored through variables_to_restore()."
    yield classification.format_report(evaluation, classes)
    try:
        pictures = save_pictures(run_dir, dataset.test, evaluation, classes)
        if tensorboard:
            publish(run_dir, step, dataset, evaluation, pictures, embedding_name, embedding, classes)
    except (OSError, tf.errors.OpError, WriteFailed) as e:
        raise WriteFailed(
            f"{run_dir}: cannot write the report's pictures and TensorBoard's extras ({write_cause(e, run_dir)}); "
            f"the run and its checkpoints are kept: python run.py evaluate --run {run_dir} draws the pictures once "
            "the disk takes writes again"
        ) from None
    return evaluation


def report_run(run_dir, dataset, out=None, tensorboard=False, which=None):
    """evaluation_report printed on a training run's stream (sys.stdout when None); returns the Evaluation."""
    report = evaluation_report(run_dir, dataset, tensorboard, which)
    for line in report.lines():
        print(line, file=out, flush=True)
    return report.outcome
