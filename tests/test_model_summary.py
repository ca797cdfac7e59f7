"""The model summary table agrees with Keras's model.summary() for the same networks, layer by layer."""

import pytest

from graph_nn.core.config import make_config
from graph_nn.graph.layer_table import format_summary, summary_rows
from graph_nn.graph.model import build_graph
from tests.conftest import run_cli


def keras_model(name):
    """The articles' Keras models, built on a 784-float input as graph_nn feeds them."""
    import keras
    from keras import layers

    if name == "cnn":
        body = [
            layers.Reshape((28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(128, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    else:
        hidden = {"mlp64": (64,), "mlp512": (512,), "mlp5": (256, 128, 64, 32)}[name]
        body = [layers.Dense(units, activation="relu") for units in hidden] + [layers.Dense(10, activation="softmax")]
    return keras.Sequential([keras.Input((784,))] + body)


@pytest.mark.parametrize("name,total", [("mlp64", 50_890), ("mlp512", 407_050), ("mlp5", 244_522), ("cnn", 104_202)])
def test_rows_match_keras_layer_by_layer(name, total):
    rows = summary_rows(build_graph(make_config(model=name)))
    keras = keras_model(name)
    assert [(r.shape, r.parameters) for r in rows] == [
        (tuple(layer.output.shape), layer.count_params()) for layer in keras.layers
    ]
    assert sum(r.parameters for r in rows) == keras.count_params() == total
    assert f"Total params: {total:,}" in format_summary(build_graph(make_config(model=name)), name)


def test_cnn_rows_name_the_graph_scopes():
    rows = summary_rows(build_graph(make_config(model="cnn")))
    assert [(r.name, r.kind) for r in rows] == [
        ("images", "Reshape"),
        ("conv1", "Conv2D"),
        ("pool1", "MaxPooling2D"),
        ("conv2", "Conv2D"),
        ("pool2", "MaxPooling2D"),
        ("conv3", "Conv2D"),
        ("flatten", "Flatten"),
        ("output", "Dense"),
    ]


def test_summary_command_prints_the_table():
    result = run_cli("summary", "--model", "mlp5")
    assert result.returncode == 0, result.stderr
    assert "hidden4 (Dense)             (None, 32)                      2,080" in result.stdout
    assert "Total params: 244,522" in result.stdout
    unknown = run_cli("summary", "--model", "resnet")
    assert unknown.returncode == 2 and "graph-nn: error: unknown model 'resnet'" in unknown.stderr
