"""The TensorFlow tutorials' presets: mnist_deep.py (`deep`) and mnist_with_summaries.py (`summaries`)."""

import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from graph_nn.core.config import make_config
from graph_nn.crosscheck import keras_models, parity
from graph_nn.graph.model import build_graph
from tests.conftest import run_cli

v1 = tf.compat.v1
KERAS_STEPS = 50  # as tests/test_parity.py: the compared logits are a trained model's


def trainable_shapes(model):
    return {v.op.name: v.shape.as_list() for v in model.graph.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES)}


def test_deep_preset_is_mnist_deep():
    config = make_config("deep")
    assert (config.init, config.optimizer, config.learning_rate, config.batch_size, config.steps, config.dropout) == (
        "truncated_normal",
        "adam",
        1e-4,
        50,
        20000,
        0.5,
    )
    model = build_graph(config)
    assert trainable_shapes(model) == {
        "conv1/kernel": [5, 5, 1, 32],
        "conv1/bias": [32],
        "conv2/kernel": [5, 5, 32, 64],
        "conv2/bias": [64],
        "fc1/kernel": [3136, 1024],
        "fc1/bias": [1024],
        "output/kernel": [1024, 10],
        "output/bias": [10],
    }
    ops = {op.name: op for op in model.graph.get_operations()}
    assert {ops[f"{layer}/Conv2D"].get_attr("padding") for layer in ("conv1", "conv2")} == {b"SAME"}
    assert ops["pool1"].type == ops["pool2"].type == "MaxPool"
    assert ops["output/MatMul"].inputs[0].op.name.startswith("fc1/dropout/")  # fc1's outputs dropped
    assert model.train_feed[model.graph.get_tensor_by_name("input/keep_prob:0")] == 0.5


def test_summaries_preset_is_mnist_with_summaries():
    config = make_config("summaries")
    assert (config.init, config.optimizer, config.learning_rate, config.batch_size, config.steps) == (
        "truncated_normal",
        "adam",
        1e-3,
        100,
        1000,
    )
    assert (config.dropout, config.eval_every, config.variable_summaries) == (0.1, 10, True)
    assert trainable_shapes(build_graph(config)) == {
        "hidden1/kernel": [784, 500],
        "hidden1/bias": [500],
        "output/kernel": [500, 10],
        "output/bias": [10],
    }


def test_truncated_normal_init_draws_the_tutorials_weights_and_biases():
    model = build_graph(make_config("deep"))
    with v1.Session(graph=model.graph) as sess:
        sess.run(v1.global_variables_initializer())
        values = sess.run({layer.name: (layer.kernel, layer.bias) for layer in model.layers})
    for name, (kernel, bias) in values.items():
        assert np.abs(kernel).max() <= 0.2, name  # redrawn beyond 2 stddev
        assert np.all(bias == np.float32(0.1)), name
    # A normal of stddev 0.1 cut at 2 stddev has stddev 0.088; fc1's 3.2 million draws pin it down.
    assert values["fc1"][0].std() == pytest.approx(0.088, abs=0.001)
    assert values["fc1"][0].mean() == pytest.approx(0.0, abs=0.001)


@pytest.mark.parametrize("model_name", ["deep", "mlp500"])
def test_forward_parity_with_the_keras_twin_on_the_whole_test_set(mnist, model_name):
    result = parity.forward_parity(model_name, mnist, train_steps=KERAS_STEPS)
    assert result.images == 10_000
    assert result.holds, result


def test_the_deep_twin_is_mnist_deep_in_keras():
    twin = keras_models.build_model("deep")
    assert [layer.__class__.__name__ for layer in twin.layers] == [
        "Conv2D",
        "MaxPooling2D",
        "Conv2D",
        "MaxPooling2D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    assert twin.count_params() == 3_274_634


def run_directory(result):
    assert result.returncode == 0, result.stderr
    return pathlib.Path(re.search(r"^Run directory: (.+)$", result.stdout, re.M).group(1))


def test_deep_preset_trains_from_the_command_line(tmp_path):
    result = run_cli("--preset", "deep", "--steps", "3", "--logdir", tmp_path)
    assert run_directory(result).name.startswith("deep-")
    assert re.search(r"^Test accuracy: 0\.\d{4}", result.stdout, re.M)


def test_variable_summaries_are_numpys_statistics_of_the_checkpointed_weights(tmp_path):
    """The statistics at histogram step s are taken before step s's update: of the weights checkpointed at s - 1."""
    flags = ["--steps", "4", "--histogram-every", "2", "--checkpoint-every", "1", "--logdir", tmp_path]
    result = run_cli("--preset", "summaries", *flags)
    run_dir = run_directory(result)
    events = event_accumulator.EventAccumulator(str(run_dir / "train"))
    events.Reload()
    variables = ["hidden1/kernel", "hidden1/bias", "output/kernel", "output/bias"]
    statistics = {"mean": np.mean, "stddev": np.std, "max": np.max, "min": np.min}
    assert {f"{v}/summaries/{s}" for v in variables for s in statistics} <= set(events.Tags()["scalars"])
    for step in (2, 4):
        reader = tf.train.load_checkpoint(str(run_dir / "checkpoints" / f"model.ckpt-{step - 1}"))
        for variable in variables:
            weights = reader.get_tensor(variable)
            for name, numpy_statistic in statistics.items():
                (event,) = [e for e in events.Scalars(f"{variable}/summaries/{name}") if e.step == step]
                assert event.value == pytest.approx(numpy_statistic(weights), rel=1e-5, abs=1e-7), (variable, name)
