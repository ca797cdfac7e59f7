"""The ConfigProto behind every Session the project opens, so that what a session runs is decided in one place."""

import os

import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from graph_nn.core.config import GRAPPLER_PASSES
from graph_nn.core.errors import GraphNNError

v1 = tf.compat.v1
RewriterConfig = rewriter_config_pb2.RewriterConfig
XLA_CPU_FLAG = "--tf_xla_cpu_global_jit"


def session_config(rewrites_off=(), xla=False, device_filters=(), cpus=1):
    """A ConfigProto with Grappler's defaults, except the passes named in rewrites_off (config.GRAPPLER_PASSES,
    e.g. "arithmetic_optimizer" or "remapper"), which are switched off; xla=True auto-clusters the graph for XLA.

    device_filters limits a cluster session to the tasks it uses (e.g. "/job:ps" and its own worker): without
    them, a worker's first run waits until every task of the cluster is up, the other workers included.
    cpus above 1 makes the CPU that many devices, /cpu:0 ..., for --towers on a machine without GPUs.
    """
    config = v1.ConfigProto(allow_soft_placement=True, device_filters=device_filters)
    if cpus > 1:
        config.device_count["CPU"] = cpus
    rewrites = config.graph_options.rewrite_options
    for name in rewrites_off:
        field = GRAPPLER_PASSES[name]
        if field.startswith("disable_"):
            setattr(rewrites, field, True)
        elif field == "memory_optimization":  # an enum of strategies, not an on/off toggle
            rewrites.memory_optimization = RewriterConfig.NO_MEM_OPT
        else:
            setattr(rewrites, field, RewriterConfig.OFF)
    if xla:
        # On a CPU, global_jit_level alone clusters nothing: XLA also reads this flag, once, when the
        # process's first Session runs.  graph_nn.cli.startup.enable_xla_on_cpu() sets it for the command line.
        if XLA_CPU_FLAG not in os.environ.get("TF_XLA_FLAGS", "") and not tf.config.list_physical_devices("GPU"):
            raise GraphNNError(
                f"XLA on a CPU needs TF_XLA_FLAGS={XLA_CPU_FLAG} in the environment before the "
                f"process's first TensorFlow session; python run.py --xla sets it."
            )
        config.graph_options.optimizer_options.global_jit_level = v1.OptimizerOptions.ON_1
    return config
