"""The graph builder: every model in its own tf.Graph, with scopes that read well in TensorBoard's Graph tab.

    input/x, input/y           placeholders [None, 784] and [None, 10]
    hidden1/kernel, .../bias   one variable_scope per layer
    output/...                 the logits layer
    loss/                      softmax_cross_entropy_with_logits_v2 + reduce_mean
    accuracy/                  argmax comparison
    train/                     global_step, gradients and the optimizer's update ops
"""
import dataclasses

import tensorflow as tf

from graph_nn.data import IMAGE_SIZE, NUM_CLASSES
from graph_nn.optimizers import make_optimizer

v1 = tf.compat.v1
INPUT_SIZE = IMAGE_SIZE * IMAGE_SIZE
HIDDEN_UNITS = {"mlp64": (64,), "mlp512": (512,), "mlp5": (256, 128, 64, 32)}
CNN_FILTERS = (32, 64, 128)  # 3x3 convolutions; the first two are followed by a 2x2 max-pool


@dataclasses.dataclass
class Layer:
    name: str
    kernel: tf.Variable
    bias: tf.Variable
    preactivations: tf.Tensor
    activations: tf.Tensor


@dataclasses.dataclass
class ModelGraph:
    graph: tf.Graph
    x: tf.Tensor
    y: tf.Tensor
    layers: list
    logits: tf.Tensor
    probabilities: tf.Tensor
    predictions: tf.Tensor
    loss: tf.Tensor
    accuracy: tf.Tensor
    global_step: tf.Variable
    grads_and_vars: list
    train_op: tf.Operation
    optimizer: object  # the tf.compat.v1.train.Optimizer, which knows its slot variables


def initializers(init):
    """(kernel, bias) initializers: Keras's defaults, or the TF1 article's N(0, 1) for both."""
    if init == "random_normal":
        normal = v1.random_normal_initializer(mean=0.0, stddev=1.0)
        return normal, normal
    return v1.glorot_uniform_initializer(), v1.zeros_initializer()


def dense(inputs, units, name, init, activation=tf.nn.relu):
    kernel_init, bias_init = initializers(init)
    with v1.variable_scope(name):
        kernel = v1.get_variable("kernel", [inputs.shape[-1], units], initializer=kernel_init)
        bias = v1.get_variable("bias", [units], initializer=bias_init)
        pre = tf.nn.bias_add(tf.matmul(inputs, kernel), bias, name="preactivations")
        out = activation(pre, name="activations") if activation else pre
    return Layer(name, kernel, bias, pre, out)


def conv2d(inputs, filters, name, init, size=3):
    """A VALID 3x3 convolution with an HWIO kernel (Keras Conv2D's layout) and a ReLU."""
    kernel_init, bias_init = initializers(init)
    with v1.variable_scope(name):
        kernel = v1.get_variable("kernel", [size, size, inputs.shape[-1], filters], initializer=kernel_init)
        bias = v1.get_variable("bias", [filters], initializer=bias_init)
        conv = tf.nn.conv2d(inputs, kernel, strides=1, padding="VALID")
        pre = tf.nn.bias_add(conv, bias, name="preactivations")
        out = tf.nn.relu(pre, name="activations")
    return Layer(name, kernel, bias, pre, out)


def max_pool(inputs, name):
    return tf.nn.max_pool2d(inputs, ksize=2, strides=2, padding="VALID", name=name)


def mlp_layers(x, hidden_units, init):
    layers = []
    inputs = x
    for i, units in enumerate(hidden_units, start=1):
        layers.append(dense(inputs, units, f"hidden{i}", init))
        inputs = layers[-1].activations
    layers.append(dense(inputs, NUM_CLASSES, "output", init, activation=None))
    return layers


def cnn_layers(x, init):
    images = tf.reshape(x, [-1, IMAGE_SIZE, IMAGE_SIZE, 1], name="images")
    conv1 = conv2d(images, CNN_FILTERS[0], "conv1", init)
    pool1 = max_pool(conv1.activations, "pool1")
    conv2 = conv2d(pool1, CNN_FILTERS[1], "conv2", init)
    pool2 = max_pool(conv2.activations, "pool2")
    conv3 = conv2d(pool2, CNN_FILTERS[2], "conv3", init)
    # Keras's Flatten on NHWC: row-major over (height, width, channels), so Dense kernels transfer as they are.
    flat = tf.reshape(conv3.activations, [-1, 3 * 3 * CNN_FILTERS[2]], name="flatten")
    return [conv1, conv2, conv3, dense(flat, NUM_CLASSES, "output", init, activation=None)]


def build_layers(model, x, init):
    if model == "cnn":
        return cnn_layers(x, init)
    return mlp_layers(x, HIDDEN_UNITS[model], init)


def build_graph(config, batch_size=None, optimizer=None, graph=None, inputs=None):
    """A new tf.Graph (or `graph`) holding the model, its loss and accuracy, and the optimizer's train op.

    batch_size fixes the placeholders' first dimension (FLOP counting needs static shapes); None keeps it free.
    `optimizer` replaces config's optimizer (the parity checks train with deliberately wrong formulas).
    `inputs`, an (images, one-hot labels) pair of tensors such as a tf.data iterator's get_next(), becomes
    the default of the x and y placeholders: a feed still overrides it, for evaluation and prediction.
    """
    graph = graph or tf.Graph()
    with graph.as_default():
        v1.set_random_seed(config.seed)
        with v1.name_scope("input"):
            if inputs is None:
                x = v1.placeholder(tf.float32, [batch_size, INPUT_SIZE], name="x")
                y = v1.placeholder(tf.float32, [batch_size, NUM_CLASSES], name="y")
            else:
                x = v1.placeholder_with_default(inputs[0], [batch_size, INPUT_SIZE], name="x")
                y = v1.placeholder_with_default(inputs[1], [batch_size, NUM_CLASSES], name="y")
        layers = build_layers(config.model, x, config.init)
        logits = layers[-1].activations
        with v1.name_scope("output/"):
            probabilities = tf.nn.softmax(logits, name="probabilities")
            predictions = tf.argmax(logits, axis=1, name="predictions")
        with v1.name_scope("loss"):
            cross_entropy = v1.nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=logits)
            loss = tf.reduce_mean(cross_entropy, name="mean")
        with v1.name_scope("accuracy"):
            correct = tf.equal(predictions, tf.argmax(y, axis=1))
            accuracy = tf.reduce_mean(tf.cast(correct, tf.float32), name="mean")
        with v1.name_scope("train"):
            global_step = v1.train.get_or_create_global_step()
            optimizer = optimizer or make_optimizer(config)
            # minimize() split in two so the gradients can be histogrammed; compute_gradients keeps
            # minimize's gating (GATE_OP), which bare tf.gradients + apply_gradients would lose.
            grads_and_vars = optimizer.compute_gradients(loss)
            train_op = optimizer.apply_gradients(grads_and_vars, global_step=global_step, name="step")
    return ModelGraph(graph, x, y, layers, logits, probabilities, predictions, loss, accuracy,
                      global_step, grads_and_vars, train_op, optimizer)


def train_fetches(model):
    """What one training sess.run fetches: the update op (its value is None) and the batch's loss and accuracy."""
    return [model.train_op, model.loss, model.accuracy]


def parameter_count(model_graph):
    return sum(v.shape.num_elements() for v in model_graph.graph.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES))
