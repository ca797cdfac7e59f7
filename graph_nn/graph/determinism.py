"""Deterministic kernels for the length of one training session, so that --seed reproduces a run bit for bit.

On CPU the graphs here gave identical results run to run even without it, but only TensorFlow's op
determinism is a promise: among others it puts oneDNN (matmul, convolutions) in its deterministic mode.
"""

import contextlib

import tensorflow as tf

# The public API can only switch op determinism on; the switch back lives in the private module.
from tensorflow.python.framework import config as tf_config


@contextlib.contextmanager
def deterministic_ops():
    """Op determinism on inside the block, then back to what it was.

    The setting is process-wide and makes every unseeded random op raise, which would break a Keras
    model built later in the same process, so it must not outlive the training session.
    """
    was_enabled = tf_config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if not was_enabled:
            tf_config.disable_op_determinism()
