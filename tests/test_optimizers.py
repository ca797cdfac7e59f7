"""--semantics: TF1's optimizers by default, Keras 3's update formulas on request, visible in the graph."""

import numpy as np
import pytest
import tensorflow as tf

from graph_nn.cli.flags import config_from_args
from graph_nn.cli.main import parse_args
from graph_nn.core.config import PRESETS, make_config
from graph_nn.core.errors import GraphNNError
from graph_nn.graph.model import build_graph
from graph_nn.graph.optimizers import KerasAdam, KerasRMSprop, KerasSGD, make_optimizer

v1 = tf.compat.v1


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_keep_tf1_semantics(preset):
    assert make_config(preset).semantics == "tf1"


def test_semantics_flag():
    assert config_from_args(parse_args(["--semantics", "keras"])).semantics == "keras"
    with pytest.raises(GraphNNError, match="unknown semantics 'torch'; choose one of tf1, keras"):
        config_from_args(parse_args(["--semantics", "torch"]))


@pytest.mark.parametrize(
    "optimizer,tf1_type,keras_type",
    [
        ("sgd", v1.train.GradientDescentOptimizer, KerasSGD),
        ("momentum", v1.train.MomentumOptimizer, KerasSGD),
        ("rmsprop", v1.train.RMSPropOptimizer, KerasRMSprop),
        ("adam", v1.train.AdamOptimizer, KerasAdam),
    ],
)
def test_each_semantics_picks_its_optimizer(optimizer, tf1_type, keras_type):
    assert type(make_optimizer(make_config(optimizer=optimizer))) is tf1_type
    assert type(make_optimizer(make_config(optimizer=optimizer, semantics="keras"))) is keras_type


def test_keras_semantics_use_kerass_epsilon_unless_given():
    assert make_optimizer(make_config(optimizer="rmsprop", semantics="keras")).epsilon == 1e-7
    assert make_optimizer(make_config(optimizer="adam", semantics="keras")).epsilon == 1e-7
    assert make_optimizer(make_config(optimizer="adam", semantics="keras", epsilon=1e-4)).epsilon == 1e-4


def slot_values(config):
    """{variable name: value} of every optimizer variable right after initialisation."""
    model = build_graph(config)
    with v1.Session(graph=model.graph) as sess:
        sess.run(v1.global_variables_initializer())
        trainable = set(model.graph.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES))
        slots = [
            v
            for v in model.graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES)
            if v not in trainable and v is not model.global_step
        ]
        return {v.op.name: sess.run(v) for v in slots}


def test_rmsprop_mean_square_starts_at_ones_in_tf1_and_at_zeros_in_keras():
    tf1 = slot_values(make_config(model="mlp64"))
    keras = slot_values(make_config(model="mlp64", semantics="keras"))
    assert np.all(tf1["hidden1/kernel/RMSProp"] == 1)
    assert set(keras) == {
        f"{layer}/{part}/KerasRMSprop/velocity" for layer in ("hidden1", "output") for part in ("kernel", "bias")
    }
    assert not any(value.any() for value in keras.values())


def test_keras_adam_counts_its_own_iterations_and_names_slots_as_keras_does():
    config = make_config("five-layer", model="mlp64", semantics="keras")
    model = build_graph(config)
    names = {op.name for op in model.graph.get_operations()}
    assert {"hidden1/kernel/KerasAdam/momentum", "hidden1/kernel/KerasAdam/velocity", "train/iterations"} <= names
    scope = "train/step/update_hidden1/kernel/KerasAdam/"
    update_ops = {op.type for op in model.graph.get_operations() if op.name.startswith(scope)}
    assert {"Sqrt", "AssignAddVariableOp", "AssignSubVariableOp"} <= update_ops
    assert "Pow" in {op.type for op in model.graph.get_operations() if op.name.startswith(scope + "step_size/")}
    assert "ResourceApplyAdam" not in {op.type for op in model.graph.get_operations()}
    with v1.Session(graph=model.graph) as sess:
        sess.run(v1.global_variables_initializer())
        [iterations] = [
            v for v in model.graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES) if v.op.name == "train/iterations"
        ]
        feed = {model.x: np.zeros((4, 784), np.float32), model.y: np.eye(10, dtype=np.float32)[:4]}
        for _ in range(3):
            sess.run(model.train_op, feed)
        assert sess.run([iterations, model.global_step]) == [3, 3]


def one_keras_rmsprop_step(grad, var, lr=0.01, rho=0.9, epsilon=1e-7):
    graph = tf.Graph()
    with graph.as_default():
        variable = v1.get_variable("w", initializer=tf.constant(var))
        train = KerasRMSprop(lr, rho=rho, epsilon=epsilon).apply_gradients([(tf.constant(grad), variable)])
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            sess.run(train)
            return sess.run(variable)


def test_keras_rmsprop_puts_epsilon_inside_the_square_root():
    """keras/src/optimizers/rmsprop.py: var -= lr * g / sqrt(velocity + epsilon), velocity from zeros."""
    grad, var = np.array([1e-4, 0.5, -2.0], np.float32), np.array([1.0, 1.0, 1.0], np.float32)
    epsilon = 1e-6
    expected = var - 0.01 * grad / np.sqrt(0.1 * grad**2 + epsilon)
    outside = var - 0.01 * grad / (np.sqrt(0.1 * grad**2) + epsilon)
    actual = one_keras_rmsprop_step(grad, var, epsilon=epsilon)
    np.testing.assert_allclose(actual, expected, rtol=1e-6)
    assert abs(actual[0] - outside[0]) > 1e-3  # the tiny gradient is where the placement shows
