"""--lr-schedule: the learning rate as a function of the global step, built from tf.compat.v1.train's decay
functions as cifar10.py built its own, so that a resumed run, whose global step comes back from its checkpoint,
continues the curve exactly where the interrupted run left it.

Step k's update reads the global step before it increments it: step 1 trains with the rate at global step 0.
"""

import tensorflow as tf

v1 = tf.compat.v1


def learning_rate(config):
    """config.learning_rate, or a tensor of the global step for a schedule (train/learning_rate)."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    step = v1.train.get_or_create_global_step()
    lr, end_lr = config.learning_rate, config.end_lr or 0.0
    with v1.name_scope("learning_rate"):
        if config.lr_schedule == "exponential":
            return v1.train.exponential_decay(lr, step, config.decay_steps, config.decay_rate, config.staircase)
        if config.lr_schedule == "piecewise":
            return v1.train.piecewise_constant(step, list(config.boundaries), list(config.values))
        if config.lr_schedule == "cosine":
            return v1.train.cosine_decay(lr, step, config.decay_steps, alpha=end_lr / lr)
        return v1.train.polynomial_decay(lr, step, config.decay_steps, end_learning_rate=end_lr)
