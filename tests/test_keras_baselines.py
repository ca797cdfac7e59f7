"""The articles' Keras models: their layers, their parameter counts, their recipes, a short real fit."""

import numpy as np
import pytest

from graph_nn.core.config import RECIPES, make_config, recipe_name_for
from graph_nn.core.errors import GraphNNError
from graph_nn.crosscheck import keras_models
from graph_nn.data.dataset import Dataset
from graph_nn.graph.model import build_graph, parameter_count


@pytest.mark.parametrize("model_name", ["mlp64", "mlp512", "mlp5", "cnn"])
def test_each_twin_has_the_graph_models_parameter_count(model_name):
    keras_model = keras_models.build_model(model_name)
    assert keras_model.count_params() == parameter_count(build_graph(make_config(model=model_name)))


def test_the_cnn_is_article_004s_in_both_apis():
    sequential, functional = keras_models.cnn_sequential(), keras_models.cnn_functional()
    expected = ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D", "Flatten", "Dense"]
    assert [type(layer).__name__ for layer in sequential.layers] == expected
    assert [type(layer).__name__ for layer in functional.layers] == ["InputLayer"] + expected
    assert sequential.count_params() == functional.count_params() == 104_202
    assert sequential.output_shape == functional.output_shape == (None, 10)
    assert sequential.layers[-1].activation.__name__ == "softmax"


def test_the_chapter2_model_is_dense_512_relu_and_dense_10_softmax():
    model = keras_models.build_model("mlp512")
    assert [(layer.units, layer.activation.__name__) for layer in model.layers] == [(512, "relu"), (10, "softmax")]


@pytest.mark.parametrize(
    "preset,model,expected",
    [
        ("chapter2", None, "chapter2"),
        ("five-layer", None, "five-layer"),
        ("cnn", None, "cnn"),
        ("chapter2", "mlp64", "chapter2"),
        ("five-layer", "mlp512", "chapter2"),
        ("tf1", None, "chapter2"),
    ],
)
def test_a_preset_is_fitted_by_its_articles_recipe(preset, model, expected):
    config = make_config(preset, model=model)
    assert recipe_name_for(config) == expected


def test_recipe_errors_are_one_sentence():
    with pytest.raises(GraphNNError, match="unknown Keras baseline 'nope'"):
        recipe_name_for(make_config(), "nope")
    with pytest.raises(GraphNNError, match="needs --model cnn"):
        recipe_name_for(make_config(), "cnn-functional")


def test_article_001_pipeline_one_hot_encodes_and_shuffles(mnist):
    config = make_config("five-layer", seed=1)
    split = mnist.train.take(1000)
    shuffled = next(iter(keras_models.article_dataset(split.images, split.labels, config, shuffle=True)))
    ordered = next(iter(keras_models.article_dataset(split.images, split.labels, config, shuffle=False)))
    assert shuffled[0].shape == (128, 784) and shuffled[1].shape == (128, 10)
    np.testing.assert_array_equal(ordered[1].numpy(), split.onehot[:128])
    assert not np.array_equal(shuffled[1].numpy(), ordered[1].numpy())


def test_onehot_recipes_feed_to_categorical_labels(mnist):
    onehot = keras_models.labels_for(RECIPES["cnn-onehot"], mnist.test)
    integer = keras_models.labels_for(RECIPES["cnn"], mnist.test)
    np.testing.assert_array_equal(onehot, mnist.test.onehot)
    np.testing.assert_array_equal(integer, mnist.test.labels)


@pytest.mark.parametrize("recipe_name", list(RECIPES))
def test_every_recipe_fits_and_learns(mnist, recipe_name):
    """One epoch over 3,000 training images: well above chance for every article's way of training."""
    recipe = RECIPES[recipe_name]
    small = Dataset(mnist.train.take(3000), mnist.test.take(500), mnist.source)
    config = make_config(recipe.preset, epochs=1)
    result = keras_models.fit(recipe, config, small, verbose=0)
    assert result.parameters == parameter_count(build_graph(config))
    assert result.steps_per_epoch == -(-3000 // config.batch_size)
    assert len(result.epoch_seconds) == 1 and result.epoch_seconds[0] > 0
    assert result.test_accuracy > 0.6 and np.isfinite(result.test_loss)
