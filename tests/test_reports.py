"""The end-of-run report, its pictures and what it writes for TensorBoard, read back with TensorBoard's readers."""

import io
import pathlib
import re

import numpy as np
import pytest
from google.protobuf import text_format
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.projector import projector_config_pb2

from graph_nn.core.config import make_config
from graph_nn.reports.classification import Evaluation
from graph_nn.training.runs import train
from tests.conftest import run_cli


def accumulator(path):
    acc = event_accumulator.EventAccumulator(
        str(path), size_guidance={event_accumulator.IMAGES: 0, event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    return acc


def test_report_numbers_agree_with_each_other(reported_run, short_run, mnist):
    evaluation, _ = reported_run
    assert evaluation.accuracy == short_run.test_accuracy
    assert evaluation.loss == pytest.approx(short_run.test_loss, rel=1e-6)
    matrix = evaluation.confusion_matrix()
    assert matrix.sum(axis=1).tolist() == np.bincount(mnist.test.labels).tolist()
    assert np.trace(matrix) / 10000 == pytest.approx(evaluation.accuracy, abs=1e-6)
    assert evaluation.errors == 10000 - np.trace(matrix)
    precision, recall, _ = evaluation.precision_recall()
    assert recall[7] == matrix[7, 7] / matrix[7].sum() and precision[7] == matrix[7, 7] / matrix[:, 7].sum()


def test_precision_and_recall_on_a_known_case():
    labels = np.array([0, 0, 1, 1, 2])
    probabilities = np.eye(10)[[0, 1, 1, 1, 0]]  # one 0 read as 1, the 2 read as 0
    precision, recall, support = Evaluation(0.0, 0.6, labels, probabilities).precision_recall()
    assert precision[:3].tolist() == [0.5, 2 / 3, 0.0] and recall[:3].tolist() == [0.5, 1.0, 0.0]
    assert support[:3].tolist() == [2, 2, 1]


def test_printed_report_has_the_first_ten_digits_errors_table_and_matrix(reported_run, mnist):
    evaluation, printed = reported_run
    lines = printed.splitlines()
    assert lines[0] == "Checkpoint: the run's last, of step 300; validated during training on the test set."
    assert lines[1].startswith(f"Test accuracy: {evaluation.accuracy:.4f} - test loss: {evaluation.loss:.4f}")
    digit_lines = [line for line in lines if line.startswith("  [")]
    assert len(digit_lines) == 10
    for i, line in enumerate(digit_lines):
        p = evaluation.probabilities[i]
        assert f"predicted {p.argmax()} (p={p.max():.7f}) label {mnist.test.labels[i]}" in line
        assert line.count("e-") + line.count("e+") == 10
    assert f"Errors: {evaluation.errors:,} of 10,000 test digits" in printed
    assert "digit  precision  recall  support" in printed
    row_7 = next(line for line in lines if line.startswith("        7 "))
    assert [int(v) for v in row_7.split()[1:]] == evaluation.confusion_matrix()[7].tolist()


def test_pictures_are_saved_as_png(reported_run, short_run):
    run_dir = pathlib.Path(short_run.run_dir)
    for name in ("accuracy", "loss", "misclassified", "confusion_matrix"):
        with Image.open(run_dir / f"{name}.png") as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 300
            assert np.asarray(image.convert("L")).std() > 10, f"{name}.png looks blank"


def test_images_and_pr_curves_are_in_the_evaluation_run(reported_run, short_run, mnist):
    events = accumulator(pathlib.Path(short_run.run_dir) / "evaluation")
    tags = events.Tags()
    assert {"accuracy", "loss", "misclassified", "confusion_matrix"} <= set(tags["images"])
    assert "input_digits/image/0_label_7" in tags["images"]
    assert events.Images("misclassified")[0].step == 300
    assert {f"digit_{d}/pr_curves" for d in range(10)} <= set(tags["tensors"])
    curve = events.Tensors("digit_3/pr_curves")[0]
    values = np.frombuffer(curve.tensor_proto.tensor_content, dtype=np.float32).reshape(6, -1)
    true_positives, false_positives = values[0], values[1]
    # At threshold 0 every digit is predicted "3": all 3s are true positives, every other digit a false positive.
    assert true_positives[0] == np.sum(mnist.test.labels == 3) and false_positives[0] == np.sum(mnist.test.labels != 3)


def test_hparams_record_the_configuration(reported_run, short_run):
    events = accumulator(short_run.run_dir)
    content = events.SummaryMetadata(hparams_metadata.SESSION_START_INFO_TAG).plugin_data.content
    start = hparams_metadata.parse_session_start_info_plugin_data(content)
    hparams = {
        name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
        for name, value in start.hparams.items()
    }
    assert hparams == {
        "model": "mlp64",
        "optimizer": "rmsprop",
        "learning_rate": 0.001,
        "batch_size": 128,
        "epochs": 0.64,
        "steps": 300,
        "init": "glorot_uniform",
        "seed": 0,
        "preset": "chapter2",
        "validation": "the test set",
        "early_stop": 0,
        "status": "finished",
    }
    experiment = hparams_metadata.parse_experiment_plugin_data(
        events.SummaryMetadata(hparams_metadata.EXPERIMENT_TAG).plugin_data.content
    )
    assert {(m.name.group, m.name.tag) for m in experiment.metric_infos} >= {
        ("validation", "accuracy"),
        ("validation", "loss"),
    }


def test_projector_has_embedding_labels_and_sprite(reported_run, short_run, mnist):
    import tensorflow as tf

    directory = pathlib.Path(short_run.run_dir) / "evaluation"
    config = text_format.Parse(
        (directory / "projector_config.pbtxt").read_text(), projector_config_pb2.ProjectorConfig()
    )
    (embedding,) = config.embeddings
    assert embedding.tensor_name == "hidden1/activations"
    activations = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(directory))).get_tensor("hidden1/activations")
    assert activations.shape == (2000, 64) and (activations >= 0).all() and activations.any()
    metadata = (directory / embedding.metadata_path).read_text().splitlines()
    assert metadata[0] == "label\tpredicted\tcorrect" and len(metadata) == 2001
    assert [int(line.split("\t")[0]) for line in metadata[1:]] == mnist.test.labels[:2000].tolist()
    with Image.open(directory / embedding.sprite.image_path) as sprite:
        assert sprite.size == (45 * 28, 45 * 28)
        first = np.asarray(sprite)[:28, :28]
    np.testing.assert_allclose(first / 255, 1 - mnist.test.images[0].reshape(28, 28), atol=1 / 255)


def test_evaluate_command_prints_the_report_of_a_run(short_run):
    result = run_cli("evaluate", "--run", short_run.run_dir)
    assert result.returncode == 0, result.stderr
    assert f"Test accuracy: {short_run.test_accuracy:.4f}" in result.stdout
    assert "The first 10 test digits" in result.stdout and "Confusion matrix" in result.stdout
    missing = run_cli("evaluate", "--run", pathlib.Path(short_run.run_dir) / "nowhere")
    assert missing.returncode == 2 and "not a graph_nn run directory" in missing.stderr


def layout(run_dir):
    """Every path in a run directory, event files named without their time stamp and host."""
    return sorted(
        re.sub(r"tfevents\..*", "tfevents", str(path.relative_to(run_dir))) for path in pathlib.Path(run_dir).rglob("*")
    )


def test_training_prints_the_summary_first_and_the_report_last(mnist, tmp_path):
    result = run_cli("--model", "mlp64", "--steps", "30", "--logdir", tmp_path / "cli")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index("Total params: 50,890") < out.index("Epoch 1/1") < out.index("Confusion matrix")
    (run_dir,) = (tmp_path / "cli").iterdir()
    assert {"accuracy.png", "loss.png", "misclassified.png", "confusion_matrix.png", "evaluation"} <= {
        p.name for p in run_dir.iterdir()
    }
    # The end of a run belongs to the library: a run started from Python leaves the same directory.
    printed = io.StringIO()
    from_python = train(make_config(model="mlp64", steps=30), mnist, logdir=tmp_path / "python", out=printed)
    assert layout(from_python.run_dir) == layout(run_dir)

    def untimed(text):  # all but the progress bar's timings and the two lines naming the run
        return re.sub(r"\d+s [\d.]+ms/step", "", text).splitlines()[:-2]

    assert untimed(printed.getvalue()) == untimed(out)
