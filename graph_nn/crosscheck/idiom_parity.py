"""The TF1 idioms against their Keras twins: batch norm against keras.layers.BatchNormalization, the L2 penalty
in REGULARIZATION_LOSSES against a kernel_regularizer.

The twin is the article model with the idioms' Keras layers: Dense (or Conv2D), BatchNormalization, ReLU for each
hidden layer, every kernel regularized by keras.regularizers.l2(λ) (λ·Σw²).  Its weights, batch norm's moving
statistics included, are loaded into the graph model by Variable.load (no loader ops: the graph stays as
training builds it), then both compute logits, or train side by side from the same weights on the same batches.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from graph_nn.core.config import CNN_FILTERS, DEEP_FILTERS, DEEP_UNITS, HIDDEN_UNITS
from graph_nn.crosscheck import keras_models
from graph_nn.crosscheck.parity import as_written, compare_logits, keras_training_losses
from graph_nn.data.batches import BatchSchedule
from graph_nn.data.dataset import IMAGE_SIZE, NUM_CLASSES
from graph_nn.graph import batched
from graph_nn.graph.model import build_graph, model_variables

v1 = tf.compat.v1
FORWARD_TOLERANCE = 1e-4  # max |logit difference|: batch norm divides by small deviations, which amplify rounding
TRAINING_TOLERANCE = 1e-4  # relative difference of the training loss at every step (SGD)


def keras_twin(config):
    """config's model as Keras builds it with config's batch norm and L2, its weights from Keras's seeded
    initializers."""
    import keras
    from keras import layers, regularizers

    keras.utils.set_random_seed(config.seed)
    regularizer = {"kernel_regularizer": regularizers.l2(config.l2)} if config.l2 else {}

    def hidden(layer):
        norm = [layers.BatchNormalization()] if config.batch_norm else []
        return [layer, *norm, layers.ReLU()]

    if config.model == "cnn":
        stack = []
        for i, filters in enumerate(CNN_FILTERS):
            stack += hidden(layers.Conv2D(filters, 3, **regularizer))
            stack += [layers.MaxPooling2D(2)] if i < 2 else [layers.Flatten()]
        shape = (None, IMAGE_SIZE, IMAGE_SIZE, 1)
    elif config.model == "deep":
        stack = []
        for filters in DEEP_FILTERS:
            stack += [*hidden(layers.Conv2D(filters, 5, padding="same", **regularizer)), layers.MaxPooling2D(2)]
        stack += [layers.Flatten(), *hidden(layers.Dense(DEEP_UNITS, **regularizer))]
        shape = (None, IMAGE_SIZE, IMAGE_SIZE, 1)
    else:
        stack = [part for units in HIDDEN_UNITS[config.model] for part in hidden(layers.Dense(units, **regularizer))]
        shape = (None, IMAGE_SIZE * IMAGE_SIZE)
    model = keras.Sequential([*stack, layers.Dense(NUM_CLASSES, activation="softmax", **regularizer)])
    model.build(input_shape=shape)
    return model


def twin_values(keras_model):
    """Every weight of the twin, in the graph's order: each layer's kernel and bias, then its batch norm's gamma,
    beta, moving mean and moving variance."""
    return [np.asarray(w) for layer in keras_model.layers for w in layer.weights]


def load_values(sess, model, values):
    variables = model_variables(model)
    if [list(v.shape) for v in variables] != [list(value.shape) for value in values]:
        raise ValueError("the Keras twin's weights do not fit the graph model's variables")
    for variable, value in zip(variables, values):
        variable.load(value, sess)


def forward_parity(config, dataset, train_steps=200):
    """The twin after `train_steps` steps of fit (its moving statistics moved), against the graph model holding
    its weights, on every test image, in inference (the moving statistics)."""
    keras_model = keras_twin(config)
    keras_model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    n = train_steps * config.batch_size
    images = keras_models.images_for(config.model, dataset.train.images[:n])
    keras_model.fit(images, dataset.train.onehot[:n], batch_size=config.batch_size, epochs=1, verbose=0)
    test_images = keras_models.images_for(config.model, dataset.test.images)
    keras_logits = keras_model.layers[-1]
    import keras

    features = keras.Model(keras_model.inputs, keras_logits.input).predict(test_images, batch_size=2000, verbose=0)
    expected = features @ np.asarray(keras_logits.kernel) + np.asarray(keras_logits.bias)
    values, model = twin_values(keras_model), build_graph(config)
    with v1.Session(graph=model.graph, config=as_written()) as sess:
        sess.run(v1.global_variables_initializer())
        load_values(sess, model, values)
        logits = batched.logits(sess, model, dataset.test.images)
    return compare_logits(config.model, logits, expected)


@dataclasses.dataclass
class TrainingParity:
    graph_losses: np.ndarray
    keras_losses: np.ndarray
    graph_values: list  # every variable after the last step, in twin_values' order
    keras_values: list

    @property
    def max_relative_difference(self):
        return float(np.max(np.abs(self.graph_losses - self.keras_losses) / np.abs(self.keras_losses)))

    @property
    def max_weight_difference(self):
        return max(float(np.max(np.abs(g - k))) for g, k in zip(self.graph_values, self.keras_values))


def training_parity(config, dataset, steps=50):
    """`steps` SGD steps of the graph's train op (the train step's feed: batch statistics, UPDATE_OPS) and of a
    Keras GradientTape loop (loss = cross-entropy + the twin's regularization losses), from the same weights."""
    keras_model = keras_twin(config)
    values = twin_values(keras_model)
    schedule = BatchSchedule(config, len(dataset.train))
    model = build_graph(config)
    graph_losses = []
    with v1.Session(graph=model.graph, config=as_written()) as sess:
        sess.run(v1.global_variables_initializer())
        load_values(sess, model, values)
        for step in range(1, steps + 1):
            _, loss = sess.run([model.train_op, model.loss], schedule.feed(model, dataset.train, step))
            graph_losses.append(loss)
        graph_values = sess.run(model_variables(model))
    keras_losses = keras_training_losses(keras_model, config, dataset, steps)
    return TrainingParity(np.array(graph_losses, np.float64), keras_losses, graph_values, twin_values(keras_model))
