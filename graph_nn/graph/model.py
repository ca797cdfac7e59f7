"""The graph builder, in the stages of TensorFlow's tutorial mnist.py: each stage adds one part of a graph
and returns what it made, and build_graph composes them in a new tf.Graph.

    placeholders()  input/x [None, 784], input/y [None, 10]
    train_inputs()  input/keep_prob and input/training, as the TF1 tutorials have them: inputs with a default
                    that only the train step feeds (Trainer's feed, through ModelGraph.train_feed), so that
                    evaluation, prediction and export can never drop, nor normalize by their own batch
    inference()     one variable_scope per layer (hidden1, ..., or conv1, pool1, ..., flatten), then output/;
                    with batch norm, LAYER/batch_norm/ between each hidden layer's bias and its ReLU, whose
                    moving statistics' assign ops go to the UPDATE_OPS collection
    outputs()       output/probabilities and output/predictions, beside the logits
    loss()          loss/: softmax_cross_entropy_with_logits_v2, then the batch mean; with weight decay, plus
                    the REGULARIZATION_LOSSES collection's sum (weight_decay() puts each kernel's λ·Σw² there)
    evaluation()    accuracy/: the predicted classes against the labels' argmax
    training()      train/: the gradients and the optimizer's update ops, which also increment global_step
                    (a variable at the top level, where TF1 always puts it), run after the UPDATE_OPS; with
                    --ema, then the ExponentialMovingAverage of the weights (cifar10.py's), whose shadow
                    variables LAYER/kernel/ExponentialMovingAverage are checkpointed with them
    averaged()      averaged/: the model once more, on the shadow values (a custom getter), for validation
    replicated()    with --towers N, the layers and the loss in N towers (graph_nn/graph/towers.py), whose
                    averaged gradients training() applies once; logits/ concatenates the towers' logits

Every stage works on the default graph, so a caller can put its own scopes around one (tf.compat.v1.device for
a cluster, a while_loop body, a tf.data iterator instead of the placeholders).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from graph_nn.core.config import CNN_FILTERS, DEEP_FILTERS, DEEP_UNITS, HIDDEN_UNITS, TrainConfig
from graph_nn.data.dataset import IMAGE_SIZE, NUM_CLASSES
from graph_nn.graph import schedules, towers
from graph_nn.graph.optimizers import make_optimizer

v1 = tf.compat.v1
INPUT_SIZE = IMAGE_SIZE * IMAGE_SIZE


@dataclasses.dataclass
class Layer:
    name: str
    kernel: tf.Variable
    bias: tf.Variable
    preactivations: tf.Tensor
    activations: tf.Tensor
    normalization: list = dataclasses.field(default_factory=list)  # batch norm's gamma, beta, moving mean, variance


@dataclasses.dataclass
class ModelGraph:
    """The tensors and ops of one model's graph; the training ones are None in an inference graph."""

    graph: tf.Graph
    x: tf.Tensor
    y: tf.Tensor
    layers: list[Layer]
    logits: tf.Tensor
    probabilities: tf.Tensor
    predictions: tf.Tensor
    loss: tf.Tensor
    accuracy: tf.Tensor
    global_step: tf.Variable
    grads_and_vars: list | None = None
    train_op: tf.Operation | None = None
    optimizer: v1.train.Optimizer | None = None  # knows its slot variables
    ema: v1.train.ExponentialMovingAverage | None = None
    averaged: tuple | None = None  # (loss, accuracy) of the moving averages of the weights
    # What the train step feeds beside the batch (train_inputs()' placeholders and their training values).
    train_feed: dict = dataclasses.field(default_factory=dict)
    # Train scalars the chief writes at its log marks beside loss and accuracy: {tag: tensor needing no feed}.
    logged: dict = dataclasses.field(default_factory=dict)


# ---- the stages ------------------------------------------------------------------------------------------


def placeholders(batch_size: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """input/x (flat images) and input/y (one-hot labels); batch_size None accepts any batch."""
    with v1.name_scope("input"):
        x = v1.placeholder(tf.float32, [batch_size, INPUT_SIZE], name="x")
        y = v1.placeholder(tf.float32, [batch_size, NUM_CLASSES], name="y")
    return x, y


@dataclasses.dataclass
class TrainInputs:
    """The inputs whose defaults are right for inference, which the train step alone feeds; None: not built."""

    keep_prob: tf.Tensor | None = None  # dropout's: 1.0 keeps everything
    training: tf.Tensor | None = None  # batch norm's: False normalizes by the moving statistics
    seed: int = 0  # dropout's masks are drawn from (seed, layer, global step)
    moving_updates: bool = True  # batch norm's update ops go to UPDATE_OPS (a second tower of the model: False)
    tower: int = 0  # which of --towers draws dropout's masks: each its own


def train_inputs(config: TrainConfig) -> tuple[TrainInputs, dict]:
    """The TrainInputs config's idioms need, and the feed of a train step: (inputs, {placeholder: value})."""
    inputs, feed = TrainInputs(seed=config.seed), {}
    with v1.name_scope("input/"):  # re-entered: the Graph tab shows them beside x and y
        if config.dropout:
            inputs.keep_prob = v1.placeholder_with_default(1.0, [], name="keep_prob")
            feed[inputs.keep_prob] = 1.0 - config.dropout
        if config.batch_norm:
            inputs.training = v1.placeholder_with_default(False, [], name="training")
            feed[inputs.training] = True
    return inputs, feed


def inference(x: tf.Tensor, model: str, init: str, inputs: TrainInputs | None = None) -> list[Layer]:
    """The layers of `model` from flat images x to the logits, which are the last layer's activations."""
    inputs = inputs or TrainInputs()
    if model == "cnn":
        return cnn_layers(x, init, inputs)
    if model == "deep":
        return deep_layers(x, init, inputs)
    return mlp_layers(x, HIDDEN_UNITS[model], init, inputs)


def outputs(logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(probabilities, predicted classes), named output/probabilities and output/predictions."""
    # "output/" with its slash re-enters the output layer's scope instead of opening "output_1", so the
    # Graph tab shows the softmax inside the layer box it belongs to.
    with v1.name_scope("output/"):
        return tf.nn.softmax(logits, name="probabilities"), tf.argmax(logits, axis=1, name="predictions")


def loss(logits: tf.Tensor, labels: tf.Tensor, regularized: bool = False) -> tf.Tensor:
    """The mean cross-entropy of the batch, softmax and log fused in one numerically stable op; regularized:
    plus the penalties in the graph's REGULARIZATION_LOSSES collection, as cifar10.py's total loss."""
    with v1.name_scope("loss"):
        cross_entropy = v1.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits)
        mean = tf.reduce_mean(cross_entropy, name="mean")
        if not regularized:
            return mean
        return tf.add(mean, v1.losses.get_regularization_loss(), name="total")


def weight_decay(layers: list[Layer], l2: float) -> None:
    """Each kernel's L2 penalty into REGULARIZATION_LOSSES, Keras's convention: l2(λ) is λ·Σw², where
    tf.nn.l2_loss is Σw²/2 (the classic factor of two)."""
    for layer in layers:
        with v1.name_scope(f"{layer.name}/"):
            penalty = tf.multiply(l2, tf.reduce_sum(tf.square(layer.kernel)), name="weight_decay")
        v1.add_to_collection(v1.GraphKeys.REGULARIZATION_LOSSES, penalty)


def evaluation(predictions: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """The fraction of the batch whose predicted class is the one-hot label's."""
    with v1.name_scope("accuracy"):
        correct = tf.equal(predictions, tf.argmax(labels, axis=1))
        return tf.reduce_mean(tf.cast(correct, tf.float32), name="mean")


@dataclasses.dataclass
class Training:
    grads_and_vars: list
    train_op: tf.Operation
    ema: v1.train.ExponentialMovingAverage | None = None


def training(
    loss: tf.Tensor | None, optimizer: v1.train.Optimizer, ema: float | None = None, grads_and_vars: list | None = None
) -> Training:
    """The gradients of `loss` (or the towers' grads_and_vars) and the op that applies them and increments the
    graph's global_step; with `ema`, and then updates the moving averages of the trainable variables (decay
    min(ema, (1 + step) / (10 + step)))."""
    with v1.name_scope("train"):
        # minimize() split in two so the gradients can be histogrammed; compute_gradients keeps
        # minimize's gating (GATE_OP), which bare tf.gradients + apply_gradients would lose.
        grads_and_vars = grads_and_vars or optimizer.compute_gradients(loss)
        # Batch norm's moving statistics are no gradient's business: nothing runs their assign ops unless
        # the train op depends on them, the famous mistake of TF1 batch norm.
        with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
            train_op = optimizer.apply_gradients(
                grads_and_vars, global_step=v1.train.get_or_create_global_step(), name="step"
            )
        if ema is None:
            return Training(grads_and_vars, train_op)
        average = v1.train.ExponentialMovingAverage(ema, num_updates=v1.train.get_or_create_global_step())
        # After the update, as cifar10.py has it: the averages follow the weights the step wrote.
        with tf.control_dependencies([train_op]):
            train_op = tf.group(average.apply(v1.trainable_variables()), name="averaged_step")
    return Training(grads_and_vars, train_op, average)


def averaged(model: ModelGraph, config: TrainConfig, inputs: TrainInputs) -> tuple[tf.Tensor, tf.Tensor]:
    """(loss, accuracy) of the model computed with the moving averages of its weights, in the same graph: the
    layers again, each variable swapped for its shadow by a custom getter (batch norm's moving statistics,
    not averaged, are read as they are, and not updated)."""

    def shadow(getter, name, *args, **kwargs):
        variable = getter(name, *args, **kwargs)
        average = model.ema.average(variable)
        return variable if average is None else average

    scope = v1.get_variable_scope()
    with v1.name_scope("averaged"), v1.variable_scope(scope, reuse=True, custom_getter=shadow):
        tower = TrainInputs(inputs.keep_prob, inputs.training, inputs.seed, moving_updates=False)
        layers = inference(model.x, config.model, config.init, tower)
        with v1.name_scope("loss"):
            cross_entropy = v1.nn.softmax_cross_entropy_with_logits_v2(labels=model.y, logits=layers[-1].activations)
            penalties = [config.l2 * tf.reduce_sum(tf.square(layer.kernel)) for layer in layers if config.l2]
            averaged_loss = tf.add_n([tf.reduce_mean(cross_entropy), *penalties])
        return averaged_loss, evaluation(tf.argmax(layers[-1].activations, axis=1), model.y)


def replicated(config: TrainConfig, x, y, inputs: TrainInputs, optimizer) -> tuple[list[Layer], tf.Tensor, list]:
    """--towers: (the first tower's layers, the whole batch's logits, its grads_and_vars) from config.towers
    copies of the layers, each with its loss on its part of the batch.  Only the first tower updates batch
    norm's moving statistics (cifar10_multi_gpu_train's) and collects L2's penalties: every tower's loss adds
    the one collection, weighted by its share, so that the step counts it once."""

    def tower(i, x_part, y_part):
        tower_inputs = dataclasses.replace(inputs, tower=i, moving_updates=i == 0)
        layers = inference(x_part, config.model, config.init, tower_inputs)
        if i == 0 and config.l2:
            weight_decay(layers, config.l2)
        return layers, loss(layers[-1].activations, y_part, regularized=bool(config.l2))

    layers, grads_and_vars = towers.replicate(x, y, config.towers, tower, optimizer)
    with v1.name_scope("output/"):
        logits = tf.concat([tower_layers[-1].activations for tower_layers in layers], axis=0, name="logits")
    return layers[0], logits, grads_and_vars


# ---- the graphs ------------------------------------------------------------------------------------------


def add_model(
    config: TrainConfig, x: tf.Tensor, y: tf.Tensor, optimizer: v1.train.Optimizer | None = None, train: bool = True
) -> ModelGraph:
    """Every stage, into the default graph, on the given inputs; train=False stops before the gradients.

    Either way the graph has global_step: a restored inference graph knows which step its weights are from.
    """
    v1.set_random_seed(config.seed)
    inputs, feed = train_inputs(config)
    tower_gradients = None
    if train and config.towers > 1:
        optimizer = optimizer or make_optimizer(config)
        layers, logits, tower_gradients = replicated(config, x, y, inputs, optimizer)
    else:
        layers = inference(x, config.model, config.init, inputs)
        logits = layers[-1].activations
        if config.l2:
            weight_decay(layers, config.l2)
    logged = {"regularization_loss": v1.losses.get_regularization_loss()} if config.l2 else {}
    if config.lr_schedule != "constant":
        logged["lr"] = schedules.learning_rate(config)  # the rate at the global step the chief logs
    probabilities, predictions = outputs(logits)
    model = ModelGraph(
        graph=v1.get_default_graph(),
        x=x,
        y=y,
        layers=layers,
        logits=logits,
        probabilities=probabilities,
        predictions=predictions,
        loss=loss(logits, y, regularized=bool(config.l2)),
        accuracy=evaluation(predictions, y),
        global_step=v1.train.get_or_create_global_step(),
        train_feed=feed,
        logged=logged,
    )
    if train:
        model.optimizer = optimizer or make_optimizer(config)
        parts = training(model.loss, model.optimizer, config.ema, tower_gradients)
        model.grads_and_vars, model.train_op, model.ema = parts.grads_and_vars, parts.train_op, parts.ema
        if model.ema:
            model.averaged = averaged(model, config, inputs)
    return model


def build_graph(
    config: TrainConfig, optimizer: v1.train.Optimizer | None = None, batch_size: int | None = None, pipeline=None
) -> ModelGraph:
    """A new tf.Graph holding config's model, loss, accuracy and train op, fed through placeholders.

    `optimizer` replaces config's (the parity checks train with deliberately wrong formulas); batch_size
    fixes the placeholders' first dimension (FLOP counting needs static shapes); `pipeline` (an input
    pipeline of graph/input_pipelines.py) builds the inputs instead, its batch their default.
    """
    with tf.Graph().as_default():
        x, y = pipeline.build() if pipeline else placeholders(batch_size)
        return add_model(config, x, y, optimizer)


def build_inference_graph(config: TrainConfig) -> ModelGraph:
    """A new tf.Graph with the model, its loss and accuracy, but no gradients and no optimizer: what a
    restored checkpoint is evaluated or served with."""
    with tf.Graph().as_default():
        return add_model(config, *placeholders(), train=False)


def train_fetches(model: ModelGraph) -> list:
    """What one training sess.run fetches: the update op (its value is None), the batch's loss and accuracy."""
    return [model.train_op, model.loss, model.accuracy]


def model_variables(model: ModelGraph) -> list:
    """What the model computes with: every layer's kernel and bias and its batch norm's variables (the moving
    statistics are not trainable, and an export needs them all the same)."""
    return [v for layer in model.layers for v in (layer.kernel, layer.bias, *layer.normalization)]


def parameter_count(model: ModelGraph) -> int:
    return sum(v.shape.num_elements() for v in model.graph.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES))


# ---- layers ----------------------------------------------------------------------------------------------


def initializers(init):
    """(kernel, bias) initializers: Keras's defaults, the TF1 article's N(0, 1) for both, or the TensorFlow
    tutorials' weight_variable and bias_variable (a normal of stddev 0.1 redrawn beyond 2 stddev, and 0.1)."""
    if init == "random_normal":
        normal = v1.random_normal_initializer(mean=0.0, stddev=1.0)
        return normal, normal
    if init == "truncated_normal":
        # The positive bias keeps the ReLUs alive at the start, the tutorials' reason for it.
        return v1.truncated_normal_initializer(stddev=0.1), v1.constant_initializer(0.1)
    return v1.glorot_uniform_initializer(), v1.zeros_initializer()


# Keras BatchNormalization's defaults, so that a Keras twin computes what the graph does.
BATCH_NORM_MOMENTUM = 0.99
BATCH_NORM_EPSILON = 1e-3


def batch_norm(inputs, train_inputs):
    """Batch normalization over every axis but the last, as TF1 code wrote it before tf.layers: the batch's
    tf.nn.moments when training is fed True, else the moving statistics, which assign ops in UPDATE_OPS move
    towards the batch's (Keras's moving = moving * momentum + batch * (1 - momentum), biased variance).

    Returns (normalized inputs, [gamma, beta, moving_mean, moving_variance])."""
    channels = [inputs.shape[-1]]
    with v1.variable_scope("batch_norm"):
        gamma = v1.get_variable("gamma", channels, initializer=v1.ones_initializer())
        beta = v1.get_variable("beta", channels, initializer=v1.zeros_initializer())
        moving_mean = v1.get_variable("moving_mean", channels, initializer=v1.zeros_initializer(), trainable=False)
        moving_variance = v1.get_variable(
            "moving_variance", channels, initializer=v1.ones_initializer(), trainable=False
        )
        batch_mean, batch_variance = tf.nn.moments(inputs, axes=list(range(len(inputs.shape) - 1)))
        if train_inputs.moving_updates:
            for moving, batch in ((moving_mean, batch_mean), (moving_variance, batch_variance)):
                update = moving.assign(moving * BATCH_NORM_MOMENTUM + batch * (1 - BATCH_NORM_MOMENTUM))
                v1.add_to_collection(v1.GraphKeys.UPDATE_OPS, update.op)
        mean = tf.where(train_inputs.training, batch_mean, moving_mean, name="mean")
        variance = tf.where(train_inputs.training, batch_variance, moving_variance, name="variance")
        normalized = tf.nn.batch_normalization(inputs, mean, variance, beta, gamma, BATCH_NORM_EPSILON)
    return normalized, [gamma, beta, moving_mean, moving_variance]


def activate(pre, activation, train_inputs):
    """The layer's activation, after batch norm when the model has it (Keras's Dense, BatchNormalization, ReLU)."""
    if train_inputs.training is None or activation is None:
        return (activation(pre, name="activations") if activation else pre), []
    normalized, variables = batch_norm(pre, train_inputs)
    return activation(normalized, name="activations"), variables


def dense(inputs, units, name, init, activation=tf.nn.relu, train_inputs=None):
    kernel_init, bias_init = initializers(init)
    with v1.variable_scope(name):
        kernel = v1.get_variable("kernel", [inputs.shape[-1], units], initializer=kernel_init)
        bias = v1.get_variable("bias", [units], initializer=bias_init)
        pre = tf.nn.bias_add(tf.matmul(inputs, kernel), bias, name="preactivations")
        out, normalization = activate(pre, activation, train_inputs or TrainInputs())
    return Layer(name, kernel, bias, pre, out, normalization)


def conv2d(inputs, filters, name, init, train_inputs, size=3, padding="VALID"):
    """A convolution (article 004's VALID 3x3 by default) with an HWIO kernel (Keras Conv2D's layout) and a ReLU."""
    kernel_init, bias_init = initializers(init)
    with v1.variable_scope(name):
        kernel = v1.get_variable("kernel", [size, size, inputs.shape[-1], filters], initializer=kernel_init)
        bias = v1.get_variable("bias", [filters], initializer=bias_init)
        conv = tf.nn.conv2d(inputs, kernel, strides=1, padding=padding)
        pre = tf.nn.bias_add(conv, bias, name="preactivations")
        out, normalization = activate(pre, tf.nn.relu, train_inputs)
    return Layer(name, kernel, bias, pre, out, normalization)


def max_pool(inputs, name):
    return tf.nn.max_pool2d(inputs, ksize=2, strides=2, padding="VALID", name=name)


def dropout(inputs, train_inputs, index):
    """TF1's dropout through keep_prob, its mask a function of (seed, layer, global step): a resumed run drops
    what the uninterrupted run did, where tf.nn.dropout's stateful generator would start over."""
    if train_inputs.keep_prob is None:
        return inputs
    with v1.name_scope("dropout"):
        step = v1.train.get_or_create_global_step()
        seed = tf.stack([tf.constant(train_inputs.seed * 1000 + index, tf.int64), step])
        if train_inputs.tower:
            seed = tf.random.experimental.stateless_fold_in(seed, train_inputs.tower)
        return tf.nn.experimental.stateless_dropout(inputs, rate=1.0 - train_inputs.keep_prob, seed=seed)


def mlp_layers(x, hidden_units, init, train_inputs):
    layers = []
    inputs = x
    for i, units in enumerate(hidden_units, start=1):
        layers.append(dense(inputs, units, f"hidden{i}", init, train_inputs=train_inputs))
        # The layer's scope re-entered, inside a tower's too: the Graph tab shows dropout in the layer's box.
        with v1.name_scope(layers[-1].activations.op.name.rsplit("/", 1)[0] + "/"):
            inputs = dropout(layers[-1].activations, train_inputs, i)
    layers.append(dense(inputs, NUM_CLASSES, "output", init, activation=None))
    return layers


def cnn_layers(x, init, train_inputs):
    images = tf.reshape(x, [-1, IMAGE_SIZE, IMAGE_SIZE, 1], name="images")
    conv1 = conv2d(images, CNN_FILTERS[0], "conv1", init, train_inputs)
    pool1 = max_pool(conv1.activations, "pool1")
    conv2 = conv2d(pool1, CNN_FILTERS[1], "conv2", init, train_inputs)
    pool2 = max_pool(conv2.activations, "pool2")
    conv3 = conv2d(pool2, CNN_FILTERS[2], "conv3", init, train_inputs)
    # Keras's Flatten on NHWC: row-major over (height, width, channels), so Dense kernels transfer as they are.
    features = conv3.activations.shape[1:].num_elements()
    flat = tf.reshape(conv3.activations, [-1, features], name="flatten")
    with v1.name_scope(flat.op.name + "/"):
        flat = dropout(flat, train_inputs, 1)
    return [conv1, conv2, conv3, dense(flat, NUM_CLASSES, "output", init, activation=None)]


def deep_layers(x, init, train_inputs):
    """mnist_deep.py's network in the tutorial's scopes: conv1, pool1, conv2, pool2, fc1 (and its dropout), output."""
    images = tf.reshape(x, [-1, IMAGE_SIZE, IMAGE_SIZE, 1], name="images")
    conv1 = conv2d(images, DEEP_FILTERS[0], "conv1", init, train_inputs, size=5, padding="SAME")
    pool1 = max_pool(conv1.activations, "pool1")
    conv2 = conv2d(pool1, DEEP_FILTERS[1], "conv2", init, train_inputs, size=5, padding="SAME")
    pool2 = max_pool(conv2.activations, "pool2")
    flat = tf.reshape(pool2, [-1, pool2.shape[1:].num_elements()], name="flatten")
    fc1 = dense(flat, DEEP_UNITS, "fc1", init, train_inputs=train_inputs)
    with v1.name_scope("fc1/"):
        dropped = dropout(fc1.activations, train_inputs, 1)
    return [conv1, conv2, fc1, dense(dropped, NUM_CLASSES, "output", init, activation=None)]
