"""The optimizers behind --optimizer, with their hyper-parameters taken from a TrainConfig.

--semantics tf1 (the presets' default) uses TF1's own optimizers.  --semantics keras uses the three small
optimizers below, whose updates are written from primitive ops line by line after Keras 3's update_step
(keras/src/optimizers/{sgd,rmsprop,adam}.py), so that a graph trains step for step like its Keras twin.
They are tf.compat.v1.train.Optimizer subclasses, so minimize/compute_gradients/apply_gradients, gating and
global_step work as for TF1's own; in TensorBoard their update ops show as
`train/step/update_LAYER/kernel/KerasAdam/...` (TF1's as one fused ResourceApplyAdam op), with slots named
`LAYER/kernel/KerasAdam/momentum` and `.../velocity` (Keras's slot names).
"""

import tensorflow as tf

from graph_nn.graph.schedules import learning_rate

v1 = tf.compat.v1

# TF1's defaults (tensorflow/python/training/rmsprop.py and adam.py): RMSProp epsilon 1e-10, Adam 1e-8.
TF1_EPSILON = {"rmsprop": 1e-10, "adam": 1e-8}
# Keras 3's defaults (keras/src/optimizers/rmsprop.py and adam.py).
KERAS_EPSILON = {"rmsprop": 1e-7, "adam": 1e-7}


class KerasSGD(v1.train.Optimizer):
    """Keras 3's SGD: var -= lr * g, or with momentum m = momentum * m - lr * g; var += m."""

    def __init__(self, learning_rate, momentum=0.0, name="KerasSGD"):
        super().__init__(use_locking=False, name=name)
        self.learning_rate, self.momentum = learning_rate, momentum

    def _create_slots(self, var_list):
        if self.momentum:
            for var in var_list:
                self._zeros_slot(var, "momentum", f"{self._name}/momentum")

    def _resource_apply_dense(self, grad, var):
        with tf.name_scope(self._name):
            lr = tf.cast(self.learning_rate, var.dtype)
            if not self.momentum:
                return var.assign_sub(grad * lr).op
            m = self.get_slot(var, "momentum")
            m = m.assign(m * tf.cast(self.momentum, var.dtype) - grad * lr)
            return var.assign_add(m).op


class KerasRMSprop(v1.train.Optimizer):
    """Keras 3's RMSprop: a mean square that starts at zeros, epsilon inside the square root.

    velocity = rho * velocity + (1 - rho) * g**2;  var -= lr * g / sqrt(velocity + epsilon)
    """

    def __init__(self, learning_rate, rho=0.9, momentum=0.0, epsilon=1e-7, name="KerasRMSprop"):
        super().__init__(use_locking=False, name=name)
        self.learning_rate, self.rho, self.momentum, self.epsilon = learning_rate, rho, momentum, epsilon

    def _create_slots(self, var_list):
        for var in var_list:
            self._zeros_slot(var, "velocity", f"{self._name}/velocity")
            if self.momentum:
                self._zeros_slot(var, "momentum", f"{self._name}/momentum")

    def _resource_apply_dense(self, grad, var):
        with tf.name_scope(self._name):
            lr = tf.cast(self.learning_rate, var.dtype)
            velocity = self.get_slot(var, "velocity")
            velocity = velocity.assign(self.rho * velocity + (1 - self.rho) * tf.square(grad))
            increment = lr * grad / tf.sqrt(velocity + self.epsilon)
            if not self.momentum:
                return var.assign_sub(increment).op
            m = self.get_slot(var, "momentum")
            return var.assign_sub(m.assign(self.momentum * m + increment)).op


class KerasAdam(v1.train.Optimizer):
    """Keras 3's Adam: bias correction folded into the step size, epsilon outside the square root.

    t = iterations + 1;  alpha = lr * sqrt(1 - beta2**t) / (1 - beta1**t)
    m += (g - m) * (1 - beta1);  v += (g**2 - v) * (1 - beta2);  var -= m * alpha / (sqrt(v) + epsilon)
    """

    def __init__(self, learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-7, name="KerasAdam"):
        super().__init__(use_locking=False, name=name)
        self.learning_rate, self.beta1, self.beta2, self.epsilon = learning_rate, beta1, beta2, epsilon

    def _create_slots(self, var_list):
        first_var = min(var_list, key=lambda v: v.name)
        self._create_non_slot_variable(tf.constant(0, tf.int64), "iterations", colocate_with=first_var)
        for var in var_list:
            self._zeros_slot(var, "momentum", f"{self._name}/momentum")
            self._zeros_slot(var, "velocity", f"{self._name}/velocity")

    def iterations(self):
        # init_scope leaves a while_loop body's function graph for the graph that holds the variable, as
        # TF1's AdamOptimizer does for its beta powers.
        with v1.init_scope():
            return self._get_non_slot_variable("iterations", graph=v1.get_default_graph())

    def step_size(self, lr, local_step):
        """Keras's alpha: the learning rate with Adam's bias correction of both moments."""
        beta1_power = tf.pow(tf.cast(self.beta1, lr.dtype), local_step)
        beta2_power = tf.pow(tf.cast(self.beta2, lr.dtype), local_step)
        return lr * tf.sqrt(1 - beta2_power) / (1 - beta1_power)

    def _resource_apply_dense(self, grad, var):
        with tf.name_scope(self._name):
            lr = tf.cast(self.learning_rate, var.dtype)
            local_step = tf.cast(self.iterations() + 1, var.dtype)
            with tf.name_scope("step_size"):
                alpha = self.step_size(lr, local_step)
            m, v = self.get_slot(var, "momentum"), self.get_slot(var, "velocity")
            m = m.assign_add((grad - m) * (1 - self.beta1))
            v = v.assign_add((tf.square(grad) - v) * (1 - self.beta2))
            return var.assign_sub(m * alpha / (tf.sqrt(v) + self.epsilon)).op

    def _finish(self, update_ops, name_scope):
        with tf.control_dependencies(update_ops):
            increment = self.iterations().assign_add(1)
        return tf.group(*update_ops, increment, name=name_scope)


def default_epsilon(config):
    defaults = KERAS_EPSILON if config.semantics == "keras" else TF1_EPSILON
    return config.epsilon if config.epsilon is not None else defaults.get(config.optimizer)


def make_optimizer(config):
    """A tf.compat.v1.train.Optimizer for config.optimizer under config.semantics."""
    return keras_formula_optimizer(config) if config.semantics == "keras" else tf1_optimizer(config)


def tf1_optimizer(config):
    train = v1.train
    lr = learning_rate(config)
    epsilon = default_epsilon(config)
    if config.optimizer == "sgd":
        return train.GradientDescentOptimizer(lr)
    if config.optimizer == "momentum":
        return train.MomentumOptimizer(lr, momentum=config.momentum)
    if config.optimizer == "rmsprop":
        return train.RMSPropOptimizer(lr, decay=config.rho, momentum=config.momentum, epsilon=epsilon)
    return train.AdamOptimizer(lr, beta1=config.beta1, beta2=config.beta2, epsilon=epsilon)


def keras_formula_optimizer(config):
    lr = learning_rate(config)
    epsilon = default_epsilon(config)
    if config.optimizer == "sgd":
        return KerasSGD(lr)
    if config.optimizer == "momentum":
        return KerasSGD(lr, momentum=config.momentum)
    if config.optimizer == "rmsprop":
        return KerasRMSprop(lr, rho=config.rho, momentum=config.momentum, epsilon=epsilon)
    return KerasAdam(lr, beta1=config.beta1, beta2=config.beta2, epsilon=epsilon)
