"""export --format tflite [--quantize int8]: the run's network converted for TensorFlow Lite, measured in LiteRT's
interpreter against the checkpoint, and read back by a plain LiteRT script."""

import io
import shutil
import sys

import numpy as np
import pytest

from graph_nn.core.config import make_config
from graph_nn.core.errors import GraphNNError, WriteFailed
from graph_nn.core.run_dir import RunDir
from graph_nn.graph import batched
from graph_nn.reports.evaluate import evaluate_run
from graph_nn.reports.tflite import export_tflite
from graph_nn.training.runs import train


@pytest.fixture(scope="module")
def mlp64_run(short_run, tmp_path_factory):
    """short_run copied, so that its export/ keeps only what the other tests write there."""
    return RunDir(shutil.copytree(short_run.run_dir, tmp_path_factory.mktemp("runs") / "mlp64"))


@pytest.fixture(scope="module")
def cnn_run(mnist, tmp_path_factory):
    config = make_config("cnn", steps=100, eval_every=100, log_every=50)
    return RunDir(train(config, mnist, logdir=tmp_path_factory.mktemp("logs"), out=io.StringIO(), report=False).run_dir)


@pytest.mark.parametrize("run", ["mlp64_run", "cnn_run"])
def test_float_matches_the_checkpoint_and_int8_is_a_third_of_its_size_within_a_point_of_its_accuracy(
    run, mnist, request
):
    run_dir = request.getfixturevalue(run)
    lite = export_tflite(run_dir, mnist)
    int8 = export_tflite(run_dir, mnist, quantize="int8")

    assert lite.path == run_dir.export / "model.tflite" and int8.path == run_dir.export / "model-int8.tflite"
    assert lite.size == lite.path.stat().st_size and int8.size == int8.path.stat().st_size
    _, graph_accuracy = evaluate_run(run_dir, mnist)  # in float32: within 1e-6, where one image is 1e-4
    assert lite.graph_accuracy == int8.graph_accuracy == pytest.approx(graph_accuracy, abs=1e-6)
    assert lite.accuracy == lite.graph_accuracy and lite.max_difference < 1e-5
    # Four bytes a weight become one, beside the file's structure and the int32 biases.
    assert int8.size < lite.size / 3
    # Measured on these short runs: mlp64 -0.07 pp; the CNN, at 47% after 100 steps, -0.28 pp (near-ties flip).
    assert abs(int8.accuracy - lite.accuracy) <= 0.01
    assert min(lite.latency, int8.latency, lite.graph_latency) > 0

    lines = str(int8).splitlines()
    assert lines[0] == (
        f"TensorFlow Lite model (int8, full-integer quantization): {int8.path} - the checkpoint of step "
        f"{int8.step:,}, {int8.size:,} bytes for {int8.parameters:,} parameters"
    )
    assert lines[1].startswith("max |probability difference| vs the checkpoint on the test images: ")
    points = 100 * (int8.accuracy - graph_accuracy)
    assert lines[2] == f"test accuracy: {int8.accuracy:.4f} (the checkpoint's: {graph_accuracy:.4f}, {points:+.2f} pp)"
    assert lines[3].startswith("latency per image, one at a time: ") and lines[3].endswith(" µs through Session.run")
    assert str(lite).startswith(f"TensorFlow Lite model (float32): {lite.path} - ")


def test_the_files_classify_by_their_signatures_names_in_a_plain_litert_script(mlp64_run, mnist):
    from ai_edge_litert.interpreter import Interpreter

    for quantize in (None, "int8"):
        exported = export_tflite(mlp64_run, mnist, quantize=quantize)
        classify = Interpreter(model_path=str(exported.path)).get_signature_runner()
        x = classify.get_input_details()["x"]
        images = mnist.test.images
        if quantize:
            scale, zero_point = x["quantization"]
            assert x["dtype"] == np.int8 and scale == pytest.approx(1 / 255)
            images = np.round(images / scale + zero_point).astype(np.int8)
        classes = classify(x=images)["class"]
        assert np.mean(classes == mnist.test.labels) == exported.accuracy


def test_dropout_batch_norm_and_moving_averages_convert(mnist, tmp_path):
    # Dropout's random ops have no TensorFlow Lite kernel: the export converts the network rebuilt without them.
    config = make_config("chapter2", model="mlp64", steps=30, dropout=0.5, batch_norm=True, ema=0.9, eval_every=30)
    run_dir = train(config, mnist, logdir=tmp_path, out=io.StringIO(), report=False).run_dir
    exported = export_tflite(run_dir, mnist, weights="ema")
    _, graph_accuracy = evaluate_run(run_dir, mnist, weights="ema")
    assert exported.accuracy == exported.graph_accuracy == pytest.approx(graph_accuracy, abs=1e-6)


def test_a_float_model_that_classifies_otherwise_is_not_written(mlp64_run, mnist, monkeypatch):
    path = mlp64_run.export / "model.tflite"
    path.unlink(missing_ok=True)
    probabilities = batched.probabilities
    monkeypatch.setattr(batched, "probabilities", lambda *args: np.roll(probabilities(*args), 1, axis=1))
    with pytest.raises(GraphNNError, match=r"^the TensorFlow Lite model's test accuracy is 0\.\d{4}, the checkpoint's"):
        export_tflite(mlp64_run, mnist)
    assert not path.exists() and not path.with_name("model.tflite.partial").exists()


def test_without_litert_the_export_says_what_to_install(mlp64_run, mnist, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(GraphNNError) as refused:
        export_tflite(mlp64_run, mnist, quantize="int8")
    sentence = 'TensorFlow Lite\'s interpreter is not installed; pip install -e ".[lite]" installs it.'
    assert str(refused.value) == sentence


def test_a_file_system_that_refuses_the_file_keeps_the_earlier_one_and_says_so_in_one_sentence(
    mlp64_run, mnist, read_only
):
    writable, mount = read_only
    shutil.copytree(mlp64_run, writable / "run")
    earlier = writable / "run" / "export" / "model-int8.tflite"
    earlier.parent.mkdir(exist_ok=True)
    earlier.write_bytes(b"an earlier export")
    with pytest.raises(WriteFailed) as refused:
        export_tflite(mount / "run", mnist, quantize="int8")
    refused_path = mount / "run" / "export" / earlier.name
    assert str(refused.value) == f"{refused_path}: cannot be written (Read-only file system)."
    assert earlier.read_bytes() == b"an earlier export"
