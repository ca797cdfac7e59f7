"""The TF1 optimizers behind --optimizer, with their hyper-parameters taken from a TrainConfig."""
import tensorflow as tf

# TF1's own defaults (tensorflow/python/training/rmsprop.py and adam.py): RMSProp epsilon 1e-10, Adam 1e-8.
TF1_EPSILON = {"rmsprop": 1e-10, "adam": 1e-8}


def make_optimizer(config):
    """A tf.compat.v1.train.Optimizer for config.optimizer."""
    train = tf.compat.v1.train
    lr = config.learning_rate
    epsilon = config.epsilon if config.epsilon is not None else TF1_EPSILON.get(config.optimizer)
    if config.optimizer == "sgd":
        return train.GradientDescentOptimizer(lr)
    if config.optimizer == "momentum":
        return train.MomentumOptimizer(lr, momentum=config.momentum or 0.9)
    if config.optimizer == "rmsprop":
        return train.RMSPropOptimizer(lr, decay=config.rho, momentum=config.momentum, epsilon=epsilon)
    return train.AdamOptimizer(lr, beta1=config.beta1, beta2=config.beta2, epsilon=epsilon)
