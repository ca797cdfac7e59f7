"""--towers N on real MNIST: N towers on a batch train as one tower on it, the towers are in the graph on their
devices, a towers run resumes bit for bit and its checkpoint serves the single-tower graphs."""

import dataclasses
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from graph_nn.data.batches import BatchSchedule
from graph_nn.graph.model import build_graph
from graph_nn.graph.sessions import session_config
from graph_nn.internals import inspect_graph
from tests.conftest import IMPORTED_AFTER, ROOT, run_cli
from tests.test_idioms import assert_resume_is_bit_exact, short, trained

v1 = tf.compat.v1


def trained_variables(config, mnist, steps, start=None, last_batch=None):
    """{variable name: value} after `steps` train steps of config's graph from the values `start` (else its
    initializer's), then one more on the examples `last_batch` (an index array) when given."""
    model = build_graph(config)
    with model.graph.as_default():
        init, variables = v1.global_variables_initializer(), v1.global_variables()
    schedule = BatchSchedule(config, len(mnist.train))
    with v1.Session(graph=model.graph, config=session_config(cpus=config.towers)) as sess:
        sess.run(init)
        for variable in variables if start else ():
            variable.load(start[variable.op.name], sess)
        for step in range(1, steps + 1):
            sess.run(model.train_op, schedule.feed(model, mnist.train, step))
        if last_batch is not None:
            images, onehot = mnist.train.images[last_batch], mnist.train.onehot[last_batch]
            sess.run(model.train_op, {model.x: images, model.y: onehot, **model.train_feed})
        return dict(zip((v.op.name for v in variables), sess.run(variables)))


@pytest.mark.parametrize(
    "model, towers, batch_size",
    [("mlp5", 2, 64), ("mlp5", 2, 101), ("mlp512", 3, 100), ("cnn", 2, 33)],
)
def test_towers_on_a_batch_step_as_one_tower_on_it(model, towers, batch_size, mnist):
    """Equal and unequal parts, then a short last batch of 5 examples: (3, 2) in 2 towers, (2, 2, 1) in 3."""
    one = short(model=model, batch_size=batch_size, l2=1e-3, optimizer="adam")
    start = trained_variables(one, mnist, 0)
    expected = trained_variables(one, mnist, 3, start, last_batch=np.arange(5))
    replicated = trained_variables(dataclasses.replace(one, towers=towers), mnist, 3, start, last_batch=np.arange(5))
    assert sorted(replicated) == sorted(expected)  # the same names: no tower's prefix on a variable
    for name, value in expected.items():
        np.testing.assert_allclose(replicated[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    assert replicated["global_step"] == 4  # applied once a step


def test_the_towers_are_in_the_graph_on_their_devices():
    model = build_graph(short(model="cnn", towers=3, batch_norm=True))
    ops = model.graph.get_operations()
    for i in range(3):
        tower = [op for op in ops if op.name.startswith(f"tower_{i}/")]
        assert inspect_graph.devices(tower) == {f"/device:CPU:{i}"}  # its reads of a variable: colocated with it
        assert any(op.name.startswith(f"tower_{i}/conv1/") for op in tower)
        assert any(op.name.startswith(f"tower_{i}/gradients/") for op in tower)
    assert {v.device for v in model.graph.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES)} == {"/cpu:0"}
    assert all(not v.op.name.startswith("tower_") for v in model.graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES))
    # Batch norm's moving statistics move once a step, by the first tower's part.
    updates = model.graph.get_collection(v1.GraphKeys.UPDATE_OPS)
    assert len(updates) == 6 and all(op.name.startswith("tower_0/") for op in updates)
    report = str(inspect_graph.report(short(model="mlp64", towers=2)))
    assert re.search(r"tower_0  /device:CPU:0  \d+ ops", report) and "tower_1  /device:CPU:1" in report


def test_l2_is_collected_once():
    model = build_graph(short(model="mlp5", towers=4, l2=1e-4))
    assert len(model.graph.get_collection(v1.GraphKeys.REGULARIZATION_LOSSES)) == 5


def test_a_towers_run_resumes_bit_for_bit_and_logs_its_towers(mnist, tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    whole, _ = assert_resume_is_bit_exact(short(towers=2, dropout=0.3, batch_norm=True), mnist, tmp_path)
    events = event_accumulator.EventAccumulator(whole.run_dir + "/train")
    events.Reload()
    nodes = events.Graph().node
    assert {node.name.split("/")[0] for node in nodes} >= {"tower_0", "tower_1", "split"}
    assert inspect_graph.devices(node for node in nodes if node.name.startswith("tower_1/")) == {"/device:CPU:1"}


def test_a_towers_run_evaluates_predicts_and_exports_as_one_tower(mnist, tmp_path):
    from PIL import Image

    from graph_nn.reports.evaluate import evaluate_run
    from graph_nn.reports.export import check_export, export_run

    run = trained(short(towers=2, batch_norm=True, ema=0.99), mnist, tmp_path)
    assert evaluate_run(run.run_dir, mnist) == (run.test_loss, run.test_accuracy)
    export_run(run.run_dir)
    assert max(check_export(run.run_dir, mnist).differences.values()) < 1e-5
    image = tmp_path / "digit.png"
    Image.fromarray((255 - mnist.test.images[0].reshape(28, 28) * 255).astype(np.uint8)).save(image)
    predicted = run_cli("predict", "--run", run.run_dir, "--weights", "ema", image)
    assert predicted.returncode == 0 and "digit.png" in predicted.stdout, predicted.stderr


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--towers", "0"], "--towers must be positive, got 0."),
        (["--towers", "-2"], "--towers must be positive, got -2."),
        (["--towers", "65", "--batch-size", "64"], "each tower needs an example of every full batch."),
        (["--towers", "2", "--steps-per-run", "2"], "does not combine with --towers"),
    ],
)
def test_towers_mistakes_are_one_sentence_before_tensorflow_is_imported(flags, message):
    wrong = subprocess.run(
        [sys.executable, "-c", IMPORTED_AFTER, "train", *flags], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "exit 2 imported nothing heavy" in wrong.stderr and "Traceback" not in wrong.stderr
    assert message in wrong.stderr


def test_an_epoch_whose_last_batch_is_shorter_than_the_towers_is_refused():
    # 60,000 - 31 examples leave 1 in the last batch of 64.
    wrong = run_cli("train", "--towers", "2", "--batch-size", "64", "--validation-split", "31", "--steps", "1")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert wrong.stderr.strip().endswith("fewer than --towers 2; choose another --batch-size.")


def test_a_cluster_refuses_towers():
    wrong = run_cli("cluster", "--workers", "2", "--towers", "2", "--steps", "10")
    assert wrong.returncode == 2 and "--towers is for single-process runs" in wrong.stderr, wrong.stderr
