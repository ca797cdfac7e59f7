"""The cross-check against Keras: the same weights give the same logits, the same steps give the same losses.

Forward parity: a Keras twin's weights are loaded into the graph model (Dense kernels [in, out] and Conv2D
kernels HWIO are the graph's own layouts, and Keras's Flatten of NHWC is the graph's reshape), then both
compute logits for the same images.  Training parity: from the Keras twin's initial weights and the same
batches (schedule.BatchSchedule), the graph's train op and a Keras GradientTape loop each take `steps` steps;
their per-step training losses are compared.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from graph_nn.core.config import RECIPES, make_config
from graph_nn.crosscheck import keras_models
from graph_nn.data.batches import BatchSchedule
from graph_nn.graph import batched
from graph_nn.graph.model import build_graph
from graph_nn.graph.sessions import session_config
from graph_nn.reports.report import reported

v1 = tf.compat.v1
FORWARD_TOLERANCE = 1e-5  # max |logit difference|
# Relative difference of the training loss at every step.  RMSprop's and Adam's normalised updates turn
# float-rounding noise in near-zero gradients into learning-rate-sized steps, so identical formulas drift
# further apart than SGD's do.
TRAINING_TOLERANCE = {"sgd": 1e-5, "momentum": 1e-5, "rmsprop": 1e-3, "adam": 1e-3}
FORWARD_TRAIN_STEPS = 200  # Keras trains this long first, so the compared logits are a trained model's


def as_written():
    """A session config under which graphs run their ops as written, as eager Keras does.

    Grappler's arithmetic optimizer rewrites Div(x, Sqrt(y)) as Mul(x, Rsqrt(y)), which changes the last bit of
    RMSprop's update; the normalised updates amplify it (the CNN's training losses drift 1.5 % apart within
    40 steps, against 0.0 with the rewrite off).  The formulas are what parity checks, so the rewrite is off here;
    training runs keep Grappler's defaults.
    """
    return session_config(rewrites_off=("arithmetic_optimizer",))


def keras_weights(keras_model):
    """[(kernel, bias)] of every layer that has weights (Dense, Conv2D), input to output."""
    return [tuple(np.asarray(w) for w in layer.get_weights()) for layer in keras_model.layers if layer.weights]


def keras_logits(keras_model, images, batch_size=batched.EVAL_BATCH_SIZE):
    """The Keras model's pre-softmax outputs: its last Dense applied, as Dense.call does, without the softmax."""
    import keras
    from keras import ops

    output = keras_model.layers[-1]
    features = keras.Model(keras_model.inputs, output.input).predict(images, batch_size=batch_size, verbose=0)
    return ops.convert_to_numpy(ops.add(ops.matmul(features, output.kernel), output.bias))


def add_weight_loader(model):
    """Placeholders and one assign op that set every layer's kernel and bias (scope `keras_weights`)."""
    with model.graph.as_default(), v1.name_scope("keras_weights"):
        placeholders, assigns = {}, []
        for layer in model.layers:
            for variable in (layer.kernel, layer.bias):
                name = variable.op.name.replace("/", "_")
                value = v1.placeholder(variable.dtype.base_dtype, variable.shape, name=name)
                placeholders[variable.op.name] = value
                assigns.append(variable.assign(value))
        return placeholders, tf.group(*assigns, name="load")


def load_weights(sess, model, loader, weights):
    """Feeds [(kernel, bias)] (keras_weights' layout) into the graph model's layers."""
    placeholders, load = loader
    if len(weights) != len(model.layers):
        raise ValueError(f"{len(weights)} weighted Keras layers for {len(model.layers)} graph layers")
    feed = {}
    for layer, (kernel, bias) in zip(model.layers, weights):
        for variable, value in ((layer.kernel, kernel), (layer.bias, bias)):
            if list(value.shape) != variable.shape.as_list():
                raise ValueError(
                    f"{variable.op.name}: shape {variable.shape.as_list()}, Keras gives {list(value.shape)}"
                )
            feed[placeholders[variable.op.name]] = value
    sess.run(load, feed)


def graph_logits(config, weights, images):
    """Logits of config's graph model holding `weights`, for flat images [n, 784]."""
    model = build_graph(config)
    loader = add_weight_loader(model)
    with v1.Session(graph=model.graph, config=as_written()) as sess:
        sess.run(v1.global_variables_initializer())
        load_weights(sess, model, loader, weights)
        return batched.logits(sess, model, images)


@dataclasses.dataclass
class ForwardParity:
    model: str
    images: int
    max_abs_difference: float
    different_predictions: int

    @property
    def holds(self):
        return self.max_abs_difference <= FORWARD_TOLERANCE and self.different_predictions == 0


def compare_logits(model_name, graph, keras):
    different = int(np.sum(np.argmax(graph, axis=1) != np.argmax(keras, axis=1)))
    return ForwardParity(model_name, len(graph), float(np.max(np.abs(graph - keras))), different)


def trained_twin(model_name, dataset, train_steps=FORWARD_TRAIN_STEPS, api="sequential", seed=0):
    """The Keras twin after `train_steps` steps of article 000's fit (RMSprop, batch 128)."""
    keras_model = keras_models.build_model(model_name, api, seed)
    if train_steps:
        recipe, config = RECIPES["chapter2"], make_config("chapter2")
        n = train_steps * config.batch_size
        keras_models.compile_model(keras_model, recipe, config)
        keras_model.fit(
            keras_models.images_for(model_name, dataset.train.images[:n]),
            keras_models.labels_for(recipe, dataset.train.take(n)),
            batch_size=config.batch_size,
            epochs=1,
            verbose=0,
        )
    return keras_model


def forward_parity(model_name, dataset, images=None, train_steps=FORWARD_TRAIN_STEPS, api="sequential", seed=0):
    """Keras twin vs graph model holding its weights, on the first `images` test images (default all)."""
    test = dataset.test.take(images or len(dataset.test))
    keras_model = trained_twin(model_name, dataset, train_steps, api, seed)
    keras = keras_logits(keras_model, keras_models.images_for(model_name, test.images))
    graph = graph_logits(make_config(model=model_name), keras_weights(keras_model), test.images)
    return compare_logits(model_name, graph, keras)


@dataclasses.dataclass
class TrainingParity:
    optimizer: str
    graph_losses: np.ndarray
    keras_losses: np.ndarray
    tolerance: float

    @property
    def relative_differences(self):
        return np.abs(self.graph_losses - self.keras_losses) / np.abs(self.keras_losses)

    @property
    def max_relative_difference(self):
        return float(self.relative_differences.max())

    @property
    def first_failing_step(self):
        """1-based step of the first loss outside the tolerance, or None."""
        failing = np.flatnonzero(self.relative_differences > self.tolerance)
        return int(failing[0]) + 1 if len(failing) else None

    @property
    def holds(self):
        return self.first_failing_step is None


def graph_training_losses(config, dataset, weights, steps, optimizer=None):
    """Losses of `steps` train-op runs from `weights`, on BatchSchedule's batches."""
    model = build_graph(config, optimizer=optimizer)
    loader = add_weight_loader(model)
    schedule = BatchSchedule(config, len(dataset.train))
    losses = []
    with v1.Session(graph=model.graph, config=as_written()) as sess:
        sess.run(v1.global_variables_initializer())
        load_weights(sess, model, loader, weights)
        for step in range(1, steps + 1):
            _, loss = sess.run([model.train_op, model.loss], schedule.feed(model, dataset.train, step))
            losses.append(loss)
    return np.array(losses, dtype=np.float64)


def keras_training_losses(keras_model, config, dataset, steps):
    """Losses of `steps` Keras optimizer steps (a GradientTape loop) on BatchSchedule's batches: cross-entropy plus
    the model's regularization losses (keras_model.losses, none for the articles' models), as fit() minimizes."""
    import keras

    optimizer = keras_models.keras_optimizer(config)
    loss_fn = keras.losses.CategoricalCrossentropy()
    weights = keras_model.trainable_weights
    schedule = BatchSchedule(config, len(dataset.train))
    images = keras_models.images_for(config.model, dataset.train.images)
    losses = []
    for step in range(1, steps + 1):
        batch = schedule.batch(step)
        with tf.GradientTape() as tape:
            loss = loss_fn(dataset.train.onehot[batch], keras_model(images[batch], training=True))
            loss = loss + sum(keras_model.losses)
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        losses.append(float(loss))
    return np.array(losses, dtype=np.float64)


def training_parity(config, dataset, steps=100, optimizer=None):
    """Per-step training losses of the graph model (config's optimizer, or `optimizer`) and its Keras twin,
    both starting from the twin's initial weights."""
    keras_model = keras_models.build_model(config.model, seed=config.seed)
    weights = keras_weights(keras_model)
    graph = graph_training_losses(config, dataset, weights, steps, optimizer)
    keras = keras_training_losses(keras_model, config, dataset, steps)
    return TrainingParity(config.optimizer, graph, keras, TRAINING_TOLERANCE[config.optimizer])


# The articles' learning rates: SGD 0.1 (003), RMSprop 1e-3 (000/002/004), Adam 0.01 (001); momentum, which no
# article uses, at the README's example, 0.05 with the default momentum 0.9.
TRAINING_CHECKS = {"sgd": 0.1, "momentum": 0.05, "rmsprop": 1e-3, "adam": 0.01}


def training_checks(model_name, dataset, steps=100, seed=0):
    """(semantics, TrainingParity) for every optimizer of TRAINING_CHECKS under Keras and TF1 semantics."""
    results = []
    for optimizer, learning_rate in TRAINING_CHECKS.items():
        for semantics in ("keras", "tf1"):
            config = make_config(
                model=model_name, optimizer=optimizer, learning_rate=learning_rate, semantics=semantics, seed=seed
            )
            results.append((semantics, training_parity(config, dataset, steps)))
    return results


@reported
def forward_report(models, dataset, images, keras_steps, api):
    """Forward parity for each model, a line as each is measured; its outcome is True when it holds for all."""
    yield f"forward parity: Keras weights in the graph model, logits on {images} test images"
    holds = True
    for model_name in models:
        result = forward_parity(model_name, dataset, images, keras_steps, api)
        yield (
            f"  {model_name:7} max |logit difference| {result.max_abs_difference:.1e} "
            f"(tolerance {FORWARD_TOLERANCE:.0e}), different predictions "
            f"{result.different_predictions}/{result.images} - {'holds' if result.holds else 'FAILS'}"
        )
        holds = holds and result.holds
    return holds


def keras_semantics_hold(checks):
    """The verdict on (semantics, TrainingParity) checks: True when every Keras-semantics check holds (TF1's
    optimizers are expected to differ: that is what the table shows)."""
    return all(result.holds for semantics, result in checks if semantics == "keras")


@reported
def training_report(model_name, dataset, steps):
    """Training parity for every optimizer under both semantics; its outcome is keras_semantics_hold's verdict."""
    yield f"training parity: per-step training loss, graph vs Keras, {steps} steps from equal weights"
    checks = []
    for semantics, result in training_checks(model_name, dataset, steps):
        verdict = "holds" if result.holds else f"differs from step {result.first_failing_step}"
        yield (
            f"  {result.optimizer:8} {semantics:6} semantics: max relative difference "
            f"{result.max_relative_difference:.1e} (tolerance {result.tolerance:.0e}) - {verdict}"
        )
        checks.append((semantics, result))
    return keras_semantics_hold(checks)
