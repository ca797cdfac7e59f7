"""Traced training steps, read back through TensorBoard's own readers, and the finalized graph of a run."""

import io
import json
import pathlib

import pytest
import tensorflow as tf
from tensorboard import context
from tensorboard.backend.event_processing import event_accumulator

from graph_nn.core.config import make_config
from graph_nn.core.errors import GraphNNError
from graph_nn.core.run_dir import new_run_dir
from graph_nn.internals.inspect_graph import checkpoint_contents, run_report, trace_step
from graph_nn.training.loop import Trainer
from graph_nn.training.runs import train
from tests.conftest import graphs_plugin_over

TRACE_STEPS = (5, 10)


@pytest.fixture(scope="module")
def traced_training(mnist, tmp_path_factory):
    config = make_config(model="mlp64", steps=10, trace_steps=TRACE_STEPS)
    return train(config, mnist, logdir=tmp_path_factory.mktemp("logs"), out=io.StringIO(), report=False)


def test_traced_steps_are_run_metadata_tags_of_the_train_writer(traced_training):
    events = event_accumulator.EventAccumulator(str(pathlib.Path(traced_training.run_dir) / "train"))
    events.Reload()
    assert events.Tags()["run_metadata"] == ["step5", "step10"]
    node_names = {
        node.node_name for device in events.RunMetadata("step10").step_stats.dev_stats for node in device.node_stats
    }
    assert "train/step/update_hidden1/kernel/ResourceApplyRMSProp" in node_names


def test_the_graph_plugin_lists_the_traced_steps(traced_training):
    """What TensorBoard's /data/plugin/graphs/info answers for this logdir."""
    logdir = str(pathlib.Path(traced_training.run_dir).parent)
    plugin = graphs_plugin_over(logdir)
    info = plugin.info_impl(context.RequestContext(), experiment="")
    train_run = info[f"{pathlib.Path(traced_training.run_dir).name}/train"]
    assert train_run["run_graph"]
    assert set(train_run["tags"]) == {"step5", "step10"}
    # add_run_metadata writes Event.tagged_run_metadata: the plugin offers it as profile data (compute time and
    # memory per node) to lay over the run's graph.
    assert all(tag["profile"] for tag in train_run["tags"].values())


def test_each_traced_step_leaves_a_chrome_trace(traced_training):
    for step in TRACE_STEPS:
        trace = json.loads((pathlib.Path(traced_training.run_dir) / "traces" / f"timeline-step{step}.json").read_text())
        op_events = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
        assert {"name", "ts", "dur", "pid", "tid", "args"} <= set(op_events[0])
        assert any(e["args"]["name"] == "train/gradients/hidden1/MatMul_grad/MatMul_1" for e in op_events)
    assert sorted(p.name for p in (pathlib.Path(traced_training.run_dir) / "traces").iterdir()) == [
        "timeline-step10.json",
        "timeline-step5.json",
    ]


def test_inspect_trace_names_the_ten_most_expensive_ops(mnist):
    costs, executed = trace_step(make_config(model="mlp512"), mnist)
    assert len(costs) == 10
    assert [c.micros for c in costs] == sorted((c.micros for c in costs), reverse=True)
    # The first layer's matrix products are by far the largest FLOP counts of a step (see test_inspect).
    assert any(c.name == "train/gradients/hidden1/MatMul_grad/MatMul_1" for c in costs)
    assert 0 < executed < 150


class LeakyTrainer(Trainer):
    """The classic TF1 bug: building an op (here a tf.reduce_mean) inside the training loop."""

    def train_steps(self, sess, first, last, writers):
        with self.model.graph.as_default():
            loss = sess.run(
                tf.reduce_mean(self.model.loss),
                {self.model.x: self.dataset.train.images[:8], self.model.y: self.dataset.train.onehot[:8]},
            )
        yield first, loss, 0.0


def test_an_op_created_inside_the_loop_fails_loudly(mnist, tmp_path):
    run_dir = new_run_dir(tmp_path, "mlp64")
    trainer = LeakyTrainer(make_config(model="mlp64", steps=3), mnist, out=io.StringIO())
    ops_before = len(trainer.model.graph.get_operations())
    with pytest.raises(RuntimeError, match="Graph is finalized"):
        trainer.run(run_dir)
    assert len(trainer.model.graph.get_operations()) == ops_before


def test_inspect_run_shows_the_logged_graph_traces_and_checkpoint(traced_training):
    out = io.StringIO()
    print(run_report(traced_training.run_dir), file=out)
    text = out.getvalue()
    assert "Traced steps (run-metadata tags): step5, step10" in text
    scopes = {line.split()[0] for line in text.split("ops\n")[1].split("Traced")[0].splitlines()}
    assert {"input", "hidden1", "output", "loss", "accuracy", "train", "summaries", "save", "init"} <= scopes
    _, contents, files = checkpoint_contents(traced_training.run_dir)
    assert dict(contents)["hidden1/kernel/RMSProp_1"] == [784, 64] and dict(contents)["global_step"] == []
    assert dict(contents)["loop_state/meters"] == [2, 3] and dict(contents)["loop_state/best"] == [3]
    assert len(contents) == 15  # 4 weights, their 2 RMSProp slots each, global_step, the loop's means and best
    assert sorted(files) == ["model.ckpt-10.data-00000-of-00001", "model.ckpt-10.index", "model.ckpt-10.meta"]


def test_inspect_run_on_a_directory_that_is_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(GraphNNError, match="not a graph_nn run directory"):
        print(run_report(tmp_path), file=io.StringIO())
