"""The articles' Keras models, written the way the articles write them: the graph models' twins.

Keras is imported inside the functions, so that only the commands that use it load it.  How each article
fits its model (labels, loss, pipeline) is its Recipe, in graph_nn/core/config.py.

    article 000  Sequential Dense 512 relu + Dense 10 softmax, "rmsprop", sparse_categorical_crossentropy
    article 002  the same with to_categorical labels and categorical_crossentropy
    article 001  Sequential 256-128-64-32-10, Adam(0.01), losses.CategoricalCrossentropy(from_logits=False),
                 a tf.data pipeline (map, shuffle(60000), batch) and validation after every epoch
    article 004  Conv2D 32/64/128 3x3 relu with two 2x2 max-pools, Flatten, Dense 10 softmax, "rmsprop",
                 batch 64; built with Sequential and with the functional API, with integer and one-hot labels
    mnist_deep   TensorFlow's tutorial in Keras: Conv2D 32/64 5x5 "same" relu, each with a 2x2 max-pool, Flatten,
                 Dense 1024 relu, Dense 10 softmax (no article has a Keras model for it, nor for mlp500, whose
                 twin is article 000's with 500 units); fitted like article 000
"""

import dataclasses
import time

import numpy as np

from graph_nn.core.config import CNN_FILTERS, DEEP_FILTERS, DEEP_UNITS, HIDDEN_UNITS
from graph_nn.data.dataset import IMAGE_SIZE, NUM_CLASSES

INPUT_SIZE = IMAGE_SIZE * IMAGE_SIZE


def dense_sequential(hidden_units):
    """Articles 000/001/002: Dense relu layers and a Dense 10 softmax, built for 784 inputs."""
    from keras import Sequential
    from keras.layers import Dense

    model = Sequential(
        [Dense(units, activation="relu") for units in hidden_units] + [Dense(NUM_CLASSES, activation="softmax")]
    )
    model.build(input_shape=(None, INPUT_SIZE))
    return model


def cnn_sequential():
    """Article 004, Sequential."""
    from keras import Sequential, layers

    model = Sequential(
        [
            layers.Conv2D(filters=CNN_FILTERS[0], kernel_size=3, activation="relu"),
            layers.MaxPooling2D(pool_size=2),
            layers.Conv2D(filters=CNN_FILTERS[1], kernel_size=3, activation="relu"),
            layers.MaxPooling2D(pool_size=2),
            layers.Conv2D(filters=CNN_FILTERS[2], kernel_size=3, activation="relu"),
            layers.Flatten(),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    model.build(input_shape=(None, IMAGE_SIZE, IMAGE_SIZE, 1))
    return model


def cnn_functional():
    """Article 004, the functional API: the same layers, the same 104,202 parameters."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1))
    x = layers.Conv2D(filters=CNN_FILTERS[0], kernel_size=3, activation="relu")(inputs)
    x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Conv2D(filters=CNN_FILTERS[1], kernel_size=3, activation="relu")(x)
    x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Conv2D(filters=CNN_FILTERS[2], kernel_size=3, activation="relu")(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax")(x)
    return keras.Model(inputs=inputs, outputs=outputs)


def deep_sequential():
    """mnist_deep.py's network.  Its dropout is left out: at inference it passes everything, and the graph model
    drops only when trained with --dropout, which training parity does not compare."""
    from keras import Sequential, layers

    model = Sequential(
        [
            layers.Conv2D(filters=DEEP_FILTERS[0], kernel_size=5, padding="same", activation="relu"),
            layers.MaxPooling2D(pool_size=2),
            layers.Conv2D(filters=DEEP_FILTERS[1], kernel_size=5, padding="same", activation="relu"),
            layers.MaxPooling2D(pool_size=2),
            layers.Flatten(),
            layers.Dense(DEEP_UNITS, activation="relu"),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    model.build(input_shape=(None, IMAGE_SIZE, IMAGE_SIZE, 1))
    return model


def build_model(model_name, api="sequential", seed=0):
    """The Keras twin of graph model `model_name`, its weights drawn from Keras's seeded initializers."""
    import keras

    keras.utils.set_random_seed(seed)
    if model_name == "cnn":
        return cnn_functional() if api == "functional" else cnn_sequential()
    if model_name == "deep":
        return deep_sequential()
    return dense_sequential(HIDDEN_UNITS[model_name])


def images_for(model_name, images):
    """The articles' inputs: flat 784-vectors for the Dense models, [n, 28, 28, 1] for the CNNs."""
    if model_name in ("cnn", "deep"):
        return images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
    return images


def labels_for(recipe, split):
    from keras.utils import to_categorical

    return to_categorical(split.labels, NUM_CLASSES) if recipe.labels == "onehot" else split.labels


def keras_optimizer(config):
    """The Keras optimizer with config's hyper-parameters; for the presets these equal the articles'
    optimizer="rmsprop" (RMSprop() defaults) and optimizers.Adam(0.01)."""
    from keras import optimizers

    epsilon = {} if config.epsilon is None else {"epsilon": config.epsilon}
    if config.optimizer == "sgd":
        return optimizers.SGD(config.learning_rate)
    if config.optimizer == "momentum":
        return optimizers.SGD(config.learning_rate, momentum=config.momentum)
    if config.optimizer == "rmsprop":
        return optimizers.RMSprop(config.learning_rate, rho=config.rho, momentum=config.momentum, **epsilon)
    return optimizers.Adam(config.learning_rate, beta_1=config.beta1, beta_2=config.beta2, **epsilon)


def make_loss(recipe):
    from keras import losses

    if recipe.loss == "CategoricalCrossentropy":
        return losses.CategoricalCrossentropy(from_logits=False)
    return recipe.loss


def compile_model(keras_model, recipe, config):
    keras_model.compile(optimizer=keras_optimizer(config), loss=make_loss(recipe), metrics=["accuracy"])
    return keras_model


def article_dataset(images, labels, config, shuffle):
    """Article 001's pipeline: from_tensor_slices -> map(preprocess) -> shuffle(60000) -> batch."""
    import tensorflow as tf

    def preprocess(x, y):
        # The article also scales and flattens here; data.load_dataset has done that already.
        return x, tf.one_hot(tf.cast(y, tf.int32), depth=NUM_CLASSES)

    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).map(preprocess)
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=config.seed)
    return dataset.batch(config.batch_size)


@dataclasses.dataclass
class FitResult:
    parameters: int
    test_loss: float
    test_accuracy: float
    epoch_seconds: list
    steps_per_epoch: int


def epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall time of each epoch's training, without the validation that follows it."""

        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.last_batch_end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(self.last_batch_end - self.start)

    return EpochTimer()


def fit(recipe, config, dataset, verbose=2):
    """Builds, compiles and fits config's Keras twin the recipe's way, then evaluates it on the test set."""
    keras_model = compile_model(build_model(config.model, recipe.api, config.seed), recipe, config)
    x_train, x_test = images_for(config.model, dataset.train.images), images_for(config.model, dataset.test.images)
    timer = epoch_timer()
    if recipe.pipeline == "tf.data":
        db = article_dataset(x_train, dataset.train.labels, config, shuffle=True)
        ds_val = article_dataset(x_test, dataset.test.labels, config, shuffle=False)
        # shuffle=False only tells fit that the dataset shuffles itself (else Keras warns on every run).
        keras_model.fit(
            db,
            epochs=config.epochs,
            validation_data=ds_val,
            validation_freq=1,
            shuffle=False,
            callbacks=[timer],
            verbose=verbose,
        )
        test_loss, test_accuracy = keras_model.evaluate(ds_val, verbose=0)
    else:
        y_train, y_test = labels_for(recipe, dataset.train), labels_for(recipe, dataset.test)
        keras_model.fit(
            x_train, y_train, epochs=config.epochs, batch_size=config.batch_size, callbacks=[timer], verbose=verbose
        )
        test_loss, test_accuracy = keras_model.evaluate(x_test, y_test, verbose=0)
    steps_per_epoch = int(np.ceil(len(x_train) / config.batch_size))
    return FitResult(keras_model.count_params(), float(test_loss), float(test_accuracy), timer.seconds, steps_per_epoch)
