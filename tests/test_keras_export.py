"""export --format keras: the run's network as a Keras 3 model.keras, checked against the checkpoint on every test
image, and read back by a plain keras.saving.load_model in a process of its own."""

import io
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from graph_nn.core.config import make_config
from graph_nn.core.run_dir import RunDir
from graph_nn.crosscheck.keras_export import TOLERANCE, export_keras
from graph_nn.reports.evaluate import evaluate_run
from graph_nn.reports.export import export_run
from graph_nn.training.runs import train
from tests.conftest import run_cli

# What a user's own script does with the file: no graph_nn import.
LOAD_AND_EVALUATE = textwrap.dedent("""
    import sys
    import keras
    import numpy as np

    model = keras.saving.load_model(sys.argv[1])
    data = np.load(sys.argv[2])
    loss, accuracy = model.evaluate(data["images"], data["labels"], batch_size=2000, verbose=0)
    layers = ",".join(f"{type(layer).__name__}:{layer.name}" for layer in model.layers)
    rate = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    print(f"{accuracy!r} {rate} {layers}")
""")


@pytest.fixture(scope="module")
def idioms_run(mnist, tmp_path_factory):
    """A CNN with every layer the project builds: batch norm, dropout, L2, and moving averages of its weights."""
    config = make_config("cnn", steps=40, batch_norm=True, dropout=0.3, l2=1e-4, ema=0.9, eval_every=40, log_every=20)
    return train(config, mnist, logdir=tmp_path_factory.mktemp("logs"), out=io.StringIO(), report=False).run_dir


def test_the_keras_model_computes_the_checkpoints_logits_and_a_plain_load_model_evaluates_to_its_accuracy(
    idioms_run, mnist, tmp_path
):
    result = run_cli("export", "--run", idioms_run, "--format", "keras", "--weights", "ema")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Keras 3 model: {RunDir(idioms_run).keras_model} - the checkpoint of step 40, ")
    assert "  conv2/batch_norm/moving_variance  conv2_batch_norm/moving_variance" in lines
    difference = float(lines[-3].split(": ")[1].split()[0])
    assert difference <= TOLERANCE

    data = tmp_path / "test.npz"
    np.savez(data, images=mnist.test.images, labels=mnist.test.labels)
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_AND_EVALUATE, RunDir(idioms_run).keras_model, data],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr
    accuracy, rate, layers = loaded.stdout.split()
    _, graph_accuracy = evaluate_run(idioms_run, mnist, weights="ema")
    assert float(accuracy) == pytest.approx(graph_accuracy, abs=1e-7)
    assert lines[-2] == f"test accuracy: {graph_accuracy:.4f} (the checkpoint's: {graph_accuracy:.4f})"
    size = RunDir(idioms_run).keras_model.stat().st_size
    assert re.fullmatch(
        rf"{size:,} bytes; latency per image, one at a time: [\d.]+ µs through Keras's predict_on_batch, [\d.]+ µs "
        "through Session.run",
        lines[-1],
    )
    assert rate == "[0.3]"
    assert layers.startswith("InputLayer:x,Reshape:images,Conv2D:conv1,BatchNormalization:conv1_batch_norm,ReLU:")
    assert layers.endswith("Flatten:flatten,Dropout:flatten_dropout,Dense:output,Softmax:probabilities")


def test_each_format_replaces_its_own_files_and_keeps_the_others(short_run, mnist):
    run_dir = RunDir(short_run.run_dir)
    exported = export_keras(run_dir, mnist)
    assert exported.max_difference <= TOLERANCE and exported.accuracy == exported.graph_accuracy
    names = ["hidden1/kernel", "hidden1/bias", "output/kernel", "output/bias"]
    assert exported.mapping == [(name, name) for name in names]
    keras_file = run_dir.keras_model.read_bytes()

    export_run(run_dir)
    assert sorted(path.name for path in run_dir.export.iterdir()) == ["frozen_graph.pb", "model.keras", "saved_model"]
    assert run_dir.keras_model.read_bytes() == keras_file
    assert not list(run_dir.export.glob("*partial*"))
