"""The ConfigProto behind every Session the project opens, so that what a session runs is decided in one place."""
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

v1 = tf.compat.v1


def session_config(rewrites_off=()):
    """A ConfigProto with Grappler's defaults, except the rewrites named in rewrites_off (RewriterConfig's
    field names, e.g. "arithmetic_optimization" or "remapping"), which are switched off."""
    config = v1.ConfigProto(allow_soft_placement=True)
    for rewrite in rewrites_off:
        setattr(config.graph_options.rewrite_options, rewrite, rewriter_config_pb2.RewriterConfig.OFF)
    return config
