"""The graph builder: scopes, variable shapes, parameter counts equal to Keras's, one graph per model."""

import pytest
import tensorflow as tf

from graph_nn.core.config import make_config
from graph_nn.graph.model import build_graph, parameter_count

v1 = tf.compat.v1
KERAS_PARAMETER_COUNTS = {"mlp64": 50_890, "mlp512": 407_050, "mlp5": 244_522, "cnn": 104_202}


def trainable_shapes(model):
    return {v.op.name: v.shape.as_list() for v in model.graph.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES)}


@pytest.mark.parametrize("name", KERAS_PARAMETER_COUNTS)
def test_parameter_count_equals_keras(name):
    assert parameter_count(build_graph(make_config(model=name))) == KERAS_PARAMETER_COUNTS[name]


def test_mlp5_has_one_variable_scope_per_layer():
    shapes = trainable_shapes(build_graph(make_config("five-layer")))
    assert shapes == {
        "hidden1/kernel": [784, 256],
        "hidden1/bias": [256],
        "hidden2/kernel": [256, 128],
        "hidden2/bias": [128],
        "hidden3/kernel": [128, 64],
        "hidden3/bias": [64],
        "hidden4/kernel": [64, 32],
        "hidden4/bias": [32],
        "output/kernel": [32, 10],
        "output/bias": [10],
    }


def test_cnn_kernels_are_hwio():
    shapes = trainable_shapes(build_graph(make_config("cnn")))
    assert shapes["conv1/kernel"] == [3, 3, 1, 32]
    assert shapes["conv2/kernel"] == [3, 3, 32, 64]
    assert shapes["conv3/kernel"] == [3, 3, 64, 128]
    assert shapes["output/kernel"] == [1152, 10]


def test_the_graph_has_readable_top_level_scopes():
    model = build_graph(make_config("tf1"))
    top_level = {op.name.split("/")[0] for op in model.graph.get_operations()}
    assert {"input", "hidden1", "output", "loss", "accuracy", "train"} <= top_level
    assert model.x.name == "input/x:0" and model.x.shape.as_list() == [None, 784]
    assert model.y.name == "input/y:0" and model.y.shape.as_list() == [None, 10]
    op_types = {op.type for op in model.graph.get_operations() if op.name.startswith("loss/")}
    assert "SoftmaxCrossEntropyWithLogits" in op_types
    assert model.global_step.op.name == "global_step"


def test_each_model_lives_in_its_own_graph_and_the_default_graph_stays_empty():
    a, b = build_graph(make_config()), build_graph(make_config())
    assert a.graph is not b.graph
    assert tf.executing_eagerly()
    assert len(v1.get_default_graph().get_operations()) == 0


@pytest.mark.parametrize(
    "init,kernel_std", [("glorot_uniform", (6 / (784 + 512)) ** 0.5 / 3**0.5), ("random_normal", 1.0)]
)
def test_initializers(init, kernel_std):
    model = build_graph(make_config(init=init))
    with v1.Session(graph=model.graph) as sess:
        sess.run(v1.variables_initializer(model.graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES)))
        kernel, bias = sess.run([model.layers[0].kernel, model.layers[0].bias])
    assert kernel.std() == pytest.approx(kernel_std, rel=0.02)
    if init == "glorot_uniform":
        assert abs(kernel).max() <= (6 / (784 + 512)) ** 0.5 and not bias.any()
    else:
        assert bias.std() == pytest.approx(1.0, rel=0.3)
