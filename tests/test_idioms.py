"""The TF1 idioms of graph_nn/graph/model.py on real MNIST, in short runs: each one trains, is checkpointed
and resumed bit for bit, and leaves evaluation, prediction and export alone where it should."""

import dataclasses
import io
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from graph_nn.core.config import make_config
from graph_nn.data.batches import BatchSchedule
from graph_nn.graph import batched
from graph_nn.graph.model import add_model, build_graph, placeholders, training
from graph_nn.graph.optimizers import make_optimizer
from graph_nn.training.runs import resume, train
from tests.conftest import IMPORTED_AFTER, ROOT, run_cli
from tests.test_reliability import assert_bit_identical, checkpoint_tensors

v1 = tf.compat.v1


def short(**overrides):
    values = dict(model="mlp64", steps=60, eval_every=30, log_every=10, histogram_every=30)
    return make_config(**dict(values, **overrides))


def trained(config, mnist, logdir):
    return train(config, mnist, logdir=logdir, out=io.StringIO(), report=False)


def interrupted_and_resumed(config, mnist, logdir, at):
    """A run of config stopped at step `at` (a run of `at` steps, its config then given config's steps) and
    resumed to its end, as --resume continues it."""
    first = trained(dataclasses.replace(config, steps=at), mnist, logdir)
    path = pathlib.Path(first.run_dir) / "config.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), steps=config.steps)))
    return resume(first.run_dir, mnist, out=io.StringIO())


def assert_resume_is_bit_exact(config, mnist, tmp_path):
    whole = trained(config, mnist, tmp_path / "whole")
    resumed = interrupted_and_resumed(config, mnist, tmp_path / "resumed", at=30)
    assert_bit_identical(checkpoint_tensors(resumed.run_dir), checkpoint_tensors(whole.run_dir))
    return whole, resumed


# ---- dropout ---------------------------------------------------------------------------------------------


def test_keep_prob_is_one_unless_the_train_step_feeds_it(mnist):
    model = build_graph(short(dropout=0.5))
    assert model.train_feed == {model.graph.get_tensor_by_name("input/keep_prob:0"): 0.5}
    test = mnist.test.take(2000)
    with v1.Session(graph=model.graph) as sess:
        sess.run(v1.global_variables_initializer())
        first, again = (batched.loss_and_accuracy(sess, model, test) for _ in range(2))
        # The classic mistake: evaluating with the training keep_prob measures a thinned network, whose mask
        # here changes with the global step (a resumed run must draw the masks the uninterrupted one drew).
        feed = {model.x: test.images, model.y: test.onehot, **model.train_feed}
        dropped = [sess.run(model.loss, feed)]
        sess.run(model.global_step.assign_add(1))
        dropped.append(sess.run(model.loss, feed))
    assert first == again
    assert dropped[0] != dropped[1] and first[0] not in dropped


@pytest.mark.parametrize("model", ["mlp5", "cnn"])
def test_dropout_trains_and_resumes_bit_for_bit(model, mnist, tmp_path):
    config = short(model=model, dropout=0.3, batch_size=32)
    whole, _ = assert_resume_is_bit_exact(config, mnist, tmp_path)
    plain = trained(dataclasses.replace(config, dropout=0.0), mnist, tmp_path / "plain")
    assert whole.history[-1]["loss"] != plain.history[-1]["loss"]  # the masks did drop


def test_dropout_flag_and_its_mistakes():
    wrong = run_cli("train", "--dropout", "1", "--steps", "1")
    assert wrong.returncode == 2 and wrong.stderr.strip().endswith("must be in [0, 1), got 1.0.")
    combined = run_cli("train", "--dropout", "0.2", "--steps-per-run", "5")
    assert combined.returncode == 2 and "does not combine with --dropout" in combined.stderr
    assert "TF1 idioms" in run_cli("train", "--help").stdout


# ---- batch normalization ---------------------------------------------------------------------------------


def moving_statistics(run_dir):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(pathlib.Path(run_dir) / "checkpoints")))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map() if "/moving_" in name}


def test_batch_norm_moves_its_statistics_and_resumes_bit_for_bit(mnist, tmp_path):
    whole, _ = assert_resume_is_bit_exact(short(model="mlp5", batch_norm=True), mnist, tmp_path)
    statistics = moving_statistics(whole.run_dir)
    assert len(statistics) == 8  # a moving mean and variance for each of mlp5's four hidden layers
    for name, value in statistics.items():
        initial = 0.0 if name.endswith("moving_mean") else 1.0
        assert np.all(value != initial), name


def test_without_the_control_dependency_the_moving_statistics_never_move(mnist):
    """The famous mistake: minimize() alone runs the gradients' ops, and nothing asks for UPDATE_OPS."""
    config = short(batch_norm=True)
    with tf.Graph().as_default() as graph:
        model = add_model(config, *placeholders(), train=False)
        forgetful = make_optimizer(config).minimize(model.loss, global_step=model.global_step)
        right = training(model.loss, make_optimizer(config)).train_op
        moving = [v for layer in model.layers for v in layer.normalization[2:]]
        schedule = BatchSchedule(config, len(mnist.train))
    with v1.Session(graph=graph) as sess:
        sess.run(v1.global_variables_initializer())
        initial = sess.run(moving)
        for step in range(1, 11):
            sess.run(forgetful, schedule.feed(model, mnist.train, step))
        assert all(np.array_equal(a, b) for a, b in zip(sess.run(moving), initial))
        sess.run(right, schedule.feed(model, mnist.train, 11))
        assert not any(np.array_equal(a, b) for a, b in zip(sess.run(moving), initial))


def test_batch_norm_runs_evaluate_and_export_with_the_moving_statistics(mnist, tmp_path):
    from graph_nn.reports.evaluate import evaluate_run
    from graph_nn.reports.export import check_export, export_run

    run = trained(short(batch_norm=True), mnist, tmp_path)
    assert evaluate_run(run.run_dir, mnist) == (run.test_loss, run.test_accuracy)
    export_run(run.run_dir)
    assert max(check_export(run.run_dir, mnist).differences.values()) < 1e-5


# ---- weight decay through a collection --------------------------------------------------------------------


def test_l2_is_in_the_loss_and_logged_and_resumes_bit_for_bit(mnist, tmp_path):
    from tests.test_reliability import scalars

    config = short(model="mlp5", l2=1e-3)
    whole, _ = assert_resume_is_bit_exact(config, mnist, tmp_path)
    tensors = checkpoint_tensors(whole.run_dir)
    expected = 1e-3 * sum(float(np.sum(np.square(v))) for k, v in tensors.items() if k.endswith("/kernel"))
    logged = dict(scalars(whole.run_dir, "regularization_loss"))
    assert sorted(logged) == list(range(10, 61, 10))
    assert logged[60] == pytest.approx(expected, rel=1e-5)
    model = build_graph(config)
    assert len(model.graph.get_collection(v1.GraphKeys.REGULARIZATION_LOSSES)) == 5
    wrong = run_cli("train", "--l2=-1e-4")
    assert wrong.returncode == 2 and "must be zero or positive, got -0.0001." in wrong.stderr


# ---- moving averages of the weights -------------------------------------------------------------------------


def test_ema_evaluation_is_the_evaluation_of_the_shadow_values(mnist, tmp_path):
    from graph_nn.reports.evaluate import evaluate_run
    from graph_nn.reports.export import check_export, export_run

    whole, _ = assert_resume_is_bit_exact(short(model="mlp5", ema=0.9, batch_norm=True), mnist, tmp_path)
    tensors = checkpoint_tensors(whole.run_dir)
    shadows = {name[: -len("/ExponentialMovingAverage")]: v for name, v in tensors.items() if "MovingAverage" in name}
    assert len(shadows) == 5 * 2 + 4 * 2  # kernels and biases, batch norm's gamma and beta
    # The shadow values loaded by hand into a graph of raw weights: what --weights ema must evaluate.
    model = build_graph(short(model="mlp5", batch_norm=True))
    with v1.Session(graph=model.graph) as sess:
        sess.run(v1.global_variables_initializer())
        for variable in v1.global_variables():
            name = variable.op.name
            if name in tensors and "RMSProp" not in name:
                variable.load(shadows.get(name, tensors[name]), sess)
        by_hand = batched.loss_and_accuracy(sess, model, mnist.test)
    assert evaluate_run(whole.run_dir, mnist, weights="ema") == by_hand
    last = whole.history[-1]
    assert (last["val_loss_ema"], last["val_accuracy_ema"]) == pytest.approx(by_hand, abs=1e-6)
    assert evaluate_run(whole.run_dir, mnist) == (last["val_loss"], last["val_accuracy"]) != by_hand
    export_run(whole.run_dir, weights="ema")
    assert max(check_export(whole.run_dir, mnist, weights="ema").differences.values()) < 1e-5


def test_weights_ema_needs_a_run_with_moving_averages(short_run):
    for command in (["evaluate", "--run"], ["export", "--run"]):
        wrong = run_cli(*command, short_run.run_dir, "--weights", "ema")
        assert wrong.returncode == 2 and "trained without --ema" in wrong.stderr
    assert run_cli("train", "--ema", "1").stderr.strip().endswith("must be in (0, 1), got 1.0.")


# ---- learning-rate schedules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    [
        dict(lr_schedule="exponential", decay_steps=7, decay_rate=0.5, staircase=True),
        dict(lr_schedule="piecewise", boundaries=(20, 40), values=(1e-2, 1e-3, 1e-4)),
        dict(lr_schedule="cosine", decay_steps=50, end_lr=1e-5),
    ],
)
def test_a_resumed_run_has_the_uninterrupted_runs_rate_at_every_step(schedule, mnist, tmp_path):
    from tests.test_reliability import scalars

    config = short(log_every=1, learning_rate=1e-2, **schedule)
    whole, resumed = assert_resume_is_bit_exact(config, mnist, tmp_path)
    rates = dict(scalars(whole.run_dir, "lr"))
    assert sorted(rates) == list(range(1, 61))
    assert dict(scalars(resumed.run_dir, "lr")) == rates
    if schedule["lr_schedule"] == "piecewise":  # the rate at global step s, which step s + 1 trains with
        assert [rates[s] for s in (19, 20, 21, 40, 41)] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3, 1e-4])


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--lr-schedule", "exponential", "--decay-steps", "10", "--decay-rate", "1.5"],
            "needs --decay-rate in (0, 1)",
        ),
        (["--lr-schedule", "cosine"], "needs --decay-steps"),
        (["--lr-schedule", "piecewise", "--boundaries", "20,10", "--values", "1,2,3"], "must be increasing"),
        (["--lr-schedule", "piecewise", "--boundaries", "10,20", "--values", "1,2"], "one positive rate more"),
        (["--lr-schedule", "polynomial", "--decay-steps", "5", "--end-lr", "1"], "below --lr"),
    ],
)
def test_schedule_mistakes_are_one_sentence_before_tensorflow(flags, message):
    wrong = run_cli("train", *flags)
    assert wrong.returncode == 2 and message in wrong.stderr and "Traceback" not in wrong.stderr


# ---- all of them at once, from the command line ----------------------------------------------------------


def test_every_idiom_combined_trains_resumes_evaluates_exports_and_predicts(mnist, tmp_path):
    from PIL import Image

    flags = ["--model", "cnn", "--batch-norm", "--dropout", "0.3", "--l2", "1e-4", "--ema", "0.999"]
    flags += ["--lr-schedule", "exponential", "--decay-steps", "10", "--decay-rate", "0.9"]
    flags += ["--steps", "20", "--batch-size", "32", "--eval-every", "10", "--print-every", "10"]
    trained_run = run_cli("train", *flags, "--logdir", tmp_path / "logs")
    assert trained_run.returncode == 0, trained_run.stderr
    (run_dir,) = (tmp_path / "logs").iterdir()
    assert "val_accuracy_ema" in trained_run.stdout
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["batch_norm"], config["dropout"], config["ema"]) == (True, 0.3, 0.999)
    evaluated = run_cli("evaluate", "--run", run_dir, "--weights", "ema")
    assert evaluated.returncode == 0 and "Weights: their moving averages" in evaluated.stdout
    exported = run_cli("export", "--run", run_dir, "--weights", "ema")
    assert exported.returncode == 0, exported.stderr
    image = tmp_path / "digit.png"
    Image.fromarray((255 - mnist.test.images[0].reshape(28, 28) * 255).astype(np.uint8)).save(image)
    for weights in ("raw", "ema"):
        predicted = run_cli("predict", "--run", run_dir, "--weights", weights, image)
        assert predicted.returncode == 0 and "digit.png" in predicted.stdout
    resumed = interrupted_and_resumed(make_config(**{**config, "preset": None}), mnist, tmp_path / "resumed", at=10)
    whole = trained(make_config(**{**config, "preset": None}), mnist, tmp_path / "whole")
    assert_bit_identical(checkpoint_tensors(resumed.run_dir), checkpoint_tensors(whole.run_dir))


@pytest.mark.parametrize(
    "flags",
    [
        ["--dropout", "1"],
        ["--l2=-1"],
        ["--ema", "0"],
        ["--lr-schedule", "cosine"],
        ["--batch-norm", "--steps-per-run", "2"],
    ],
)
def test_idiom_mistakes_are_answered_before_tensorflow_is_imported(flags):
    wrong = subprocess.run(
        [sys.executable, "-c", IMPORTED_AFTER, "train", *flags], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "exit 2 imported nothing heavy" in wrong.stderr and "Traceback" not in wrong.stderr
