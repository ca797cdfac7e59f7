"""A validation split and early stopping: held-out training examples validate and the test set waits for the end;
a run stops after its patience, keeps its best checkpoint apart, and does the same when stopped and resumed."""

import dataclasses
import io
import json
import pathlib
import signal

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata

from graph_nn.cli.flags import config_from_args
from graph_nn.cli.main import parse_args
from graph_nn.core.config import make_config
from graph_nn.core.errors import GraphNNError
from graph_nn.data.dataset import Split
from graph_nn.graph import batched, checkpoints
from graph_nn.reports.evaluate import evaluate_run, restored_session
from graph_nn.training.runs import resume, train
from tests.conftest import run_cli
from tests.test_reliability import LEAD, assert_bit_identical, only_run_dir, read_until_step, scalars, start_cli


def model_tensors(prefix):
    """A checkpoint's weights, optimizer slots and global step: all but the loop's own state."""
    reader = tf.train.load_checkpoint(str(prefix))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if not name.startswith("loop_state")
    }


def hparams(run_dir):
    """The HParams row of a run: {hparam: value}."""
    events = event_accumulator.EventAccumulator(str(run_dir))
    events.Reload()
    content = events.SummaryMetadata(hparams_metadata.SESSION_START_INFO_TAG).plugin_data.content
    start = hparams_metadata.parse_session_start_info_plugin_data(content)
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()}


def test_a_validation_split_trains_on_the_rest_validates_on_it_and_leaves_the_test_set_alone(mnist, tmp_path):
    config = make_config(
        model="mlp64", optimizer="adam", batch_size=1000, steps=40, eval_every=20, log_every=10, validation_split=5000
    )
    # A test set of NaNs: touched during training, it would turn the validation figures into NaN.
    nan_test = Split(np.full_like(mnist.test.images, np.nan), mnist.test.labels, mnist.test.onehot)
    split = train(
        config, dataclasses.replace(mnist, test=nan_test), logdir=tmp_path / "split", out=io.StringIO(), report=False
    )
    # The same training on the first 55,000 examples alone, validated on the test set.
    first = dataclasses.replace(mnist, train=mnist.train[:55000])
    alone = train(
        dataclasses.replace(config, validation_split=0),
        first,
        logdir=tmp_path / "alone",
        out=io.StringIO(),
        report=False,
    )

    assert_bit_identical(
        model_tensors(checkpoints.latest(split.run_dir)), model_tensors(checkpoints.latest(alone.run_dir))
    )
    held_out = mnist.train[55000:]
    with restored_session(split.run_dir) as (sess, model, _):
        expected = batched.loss_and_accuracy(sess, model, held_out)
    validation = scalars(split.run_dir, "loss", "validation")
    assert [step for step, _ in validation] == [20, 40]
    assert validation[-1][1] == pytest.approx(expected[0]) and split.history[-1]["val_accuracy"] == expected[1]
    assert hparams(split.run_dir)["validation"] == "the last 5,000 training examples"
    assert hparams(alone.run_dir)["validation"] == "the test set"


# mlp64 and Adam 0.01 on 1,000 training examples overfit within a hundred steps: the validation loss on the 59,000
# held out falls, then rises.  Evaluations every 5 steps and a patience of 20 put the early stop 100 steps after the
# best evaluation: further than a child ever runs past the last line read (LEAD, tests/test_reliability.py), so a
# signal sent once the step after the best is read stops the run inside the patience, however busy the machine.
PATIENCE = 20
FLAGS = (
    "--model",
    "mlp64",
    "--optimizer",
    "adam",
    "--lr",
    "0.01",
    "--batch-size",
    "100",
    "--steps",
    "1000",
    "--validation-split",
    "59000",
    "--eval-every",
    "5",
    "--early-stop",
    str(PATIENCE),
    "--checkpoint-every",
    "5",
    "--log-every",
    "5",
    "--histogram-every",
    "1000",
    "--print-every",
    "1",
)


@pytest.fixture(scope="module")
def uninterrupted(mnist, tmp_path_factory):
    config = config_from_args(parse_args(FLAGS))
    return train(config, mnist, logdir=tmp_path_factory.mktemp("uninterrupted"), out=io.StringIO(), report=False)


def test_early_stopping_stops_after_its_patience_and_keeps_the_best_checkpoint(uninterrupted):
    losses = [h["val_loss"] for h in uninterrupted.history]
    best = int(np.argmin(losses))
    assert uninterrupted.status == "early-stopped"
    assert uninterrupted.best_step == uninterrupted.history[best]["step"]
    assert len(losses) == best + 1 + PATIENCE and uninterrupted.global_step < 1000
    run_dir = pathlib.Path(uninterrupted.run_dir)
    # The rolling checkpoints moved past the best one, which stays apart from them.
    assert not (run_dir / "checkpoints" / f"model.ckpt-{uninterrupted.best_step}.index").exists()
    assert int(model_tensors(checkpoints.best(run_dir))["global_step"]) == uninterrupted.best_step
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "early-stopped" and result["final_step"] == uninterrupted.best_step
    assert result["validation_loss"] == pytest.approx(min(losses))


def test_an_early_stopping_run_stopped_and_resumed_ends_as_the_uninterrupted_one(uninterrupted, mnist, tmp_path):
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "w") as stderr:
        child = start_cli(*FLAGS, "--logdir", tmp_path / "logs", stderr=stderr)
    try:
        read_until_step(child, uninterrupted.best_step + 1, stderr_path)  # past the best, inside the patience
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=300)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 143, stderr_path.read_text()
    run_dir = only_run_dir(tmp_path / "logs")
    stopped_at = int(tf.train.load_checkpoint(checkpoints.latest(run_dir)).get_tensor("global_step"))
    assert uninterrupted.best_step < stopped_at <= uninterrupted.best_step + 1 + LEAD < uninterrupted.global_step
    assert json.loads((run_dir / "result.json").read_text())["status"] == "stopped"
    assert hparams(run_dir)["status"] == "stopped"

    resumed = run_cli("--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    best, last = uninterrupted.best_step, uninterrupted.global_step
    assert (
        f"Early stop at step {last}: no lower validation loss in {PATIENCE} evaluations; the lowest, " in resumed.stdout
    )
    assert f"was at step {best}." in resumed.stdout
    assert_bit_identical(
        model_tensors(checkpoints.best(run_dir)), model_tensors(checkpoints.best(uninterrupted.run_dir))
    )
    # The end-of-run report is of the best checkpoint, and the first touch of the test set.
    assert (
        f"Checkpoint: the run's best (lowest validation loss), of step {best}; validated during training on "
        f"the last 59,000 training examples."
    ) in resumed.stdout
    test_loss, test_accuracy = evaluate_run(uninterrupted.run_dir, mnist, "best")
    assert f"Test accuracy: {test_accuracy:.4f} - test loss: {test_loss:.4f}" in resumed.stdout
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "early-stopped" and result["test_accuracy"] == pytest.approx(test_accuracy)
    assert hparams(run_dir)["status"] == "early-stopped"
    assert scalars(run_dir, "accuracy", "test") == [(best, pytest.approx(test_accuracy))]
    with pytest.raises(GraphNNError, match=f"stopped early at step {last}; test it with"):
        resume(run_dir, mnist, out=io.StringIO())

    latest = run_cli("evaluate", "--run", run_dir, "--checkpoint", "latest")
    assert latest.returncode == 0, latest.stderr
    assert latest.stdout.startswith(f"Checkpoint: the run's last, of step {last}; validated during training")
