"""The Session loop, read back through TensorBoard's own event reader and through a fresh graph."""

import io
import json
import pathlib

import pytest
from tensorboard.backend.event_processing import event_accumulator

from graph_nn.core.config import make_config
from graph_nn.reports.evaluate import evaluate_run
from graph_nn.training.runs import train
from tests.conftest import run_cli


def accumulator(path):
    acc = event_accumulator.EventAccumulator(
        str(path), size_guidance={event_accumulator.HISTOGRAMS: 0, event_accumulator.SCALARS: 0}
    )
    acc.Reload()
    return acc


def test_training_lowers_the_loss(short_run):
    history = short_run.history
    assert [h["step"] for h in history] == [100, 200, 300]
    assert history[-1]["val_loss"] < history[0]["val_loss"] < 2.3
    assert short_run.test_accuracy > 0.9


def test_train_and_validation_scalars_are_written(short_run):
    train_events = accumulator(pathlib.Path(short_run.run_dir) / "train")
    validation = accumulator(pathlib.Path(short_run.run_dir) / "validation")
    assert {"loss", "accuracy"} <= set(train_events.Tags()["scalars"])
    assert [e.step for e in train_events.Scalars("loss")] == list(range(20, 301, 20))
    assert [e.step for e in validation.Scalars("accuracy")] == [100, 200, 300]
    assert validation.Scalars("accuracy")[-1].value == pytest.approx(short_run.test_accuracy)
    assert validation.Scalars("loss")[-1].value == pytest.approx(short_run.test_loss)


def test_histograms_and_graph_are_written(short_run):
    events = accumulator(pathlib.Path(short_run.run_dir) / "train")
    expected = {f"{layer}/{part}" for layer in ("hidden1", "output") for part in ("kernel", "bias", "preactivations")}
    expected |= {"hidden1/activations"}
    expected |= {f"gradients/{layer}/{part}" for layer in ("hidden1", "output") for part in ("kernel", "bias")}
    assert set(events.Tags()["histograms"]) == expected
    assert [e.step for e in events.Histograms("hidden1/kernel")] == [100, 200, 300]
    assert events.Histograms("hidden1/kernel")[0].histogram_value.num == 784 * 64
    assert events.Histograms("hidden1/activations")[0].histogram_value.num == 32 * 64  # the batch's first 32
    graph = events.Graph()
    names = {node.name for node in graph.node}
    assert {"input/x", "hidden1/kernel", "loss/mean", "train/step"} <= names


def test_checkpoint_restored_in_a_fresh_graph_gives_the_same_accuracy(short_run, mnist):
    loss, accuracy = evaluate_run(short_run.run_dir, mnist)
    assert accuracy == short_run.test_accuracy
    assert loss == pytest.approx(short_run.test_loss, rel=1e-6)


def test_run_directory_holds_config_and_checkpoints(short_run):
    run_dir = pathlib.Path(short_run.run_dir)
    assert json.loads((run_dir / "config.json").read_text())["model"] == "mlp64"
    assert (run_dir / "checkpoints" / "model.ckpt-300.index").exists()


def test_two_runs_never_share_a_directory(mnist, tmp_path):
    config = make_config(model="mlp64", steps=1)
    first = train(config, mnist, logdir=tmp_path, out=io.StringIO(), report=False)
    second = train(config, mnist, logdir=tmp_path, out=io.StringIO(), report=False)
    assert first.run_dir != second.run_dir


def test_the_cli_trains_and_points_at_tensorboard(tmp_path):
    logdir = tmp_path / "logs"
    result = run_cli("--preset", "tf1", "--steps", "200", "--logdir", logdir)
    assert result.returncode == 0, result.stderr
    assert "step 100/200 - loss:" in result.stdout
    assert "Test accuracy: " in result.stdout
    assert f"tensorboard --logdir {logdir}" in result.stdout
    (run_dir,) = logdir.iterdir()
    evaluated = run_cli("evaluate", "--run", run_dir)
    assert evaluated.returncode == 0, evaluated.stderr
    assert result.stdout.split("Test accuracy: ")[1][:6] == evaluated.stdout.split("Test accuracy: ")[1][:6]
