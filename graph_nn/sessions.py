"""The ConfigProto behind every Session the project opens, so that what a session runs is decided in one place."""
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

v1 = tf.compat.v1


def session_config(rewrites_off=(), device_filters=()):
    """A ConfigProto with Grappler's defaults, except the rewrites named in rewrites_off (RewriterConfig's
    field names, e.g. "arithmetic_optimization" or "remapping"), which are switched off.

    device_filters limits a cluster session to the tasks it uses (e.g. "/job:ps" and its own worker): without
    them, a worker's first run waits until every task of the cluster is up, the other workers included.
    """
    config = v1.ConfigProto(allow_soft_placement=True, device_filters=device_filters)
    for rewrite in rewrites_off:
        setattr(config.graph_options.rewrite_options, rewrite, rewriter_config_pb2.RewriterConfig.OFF)
    return config
