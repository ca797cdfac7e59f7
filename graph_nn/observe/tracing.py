"""Full traces of single Session.run calls: what each op cost, for TensorBoard's Graph tab and chrome://tracing;
and the graph a Session.run really executed.

A traced run fills a RunMetadata proto with the step stats (per device, per op: start, duration, memory).
add_run_metadata stores it in the train/ event file, where the Graph tab offers it as a tag of the run
and colours nodes by compute time and memory; timeline turns it into a Chrome trace JSON.
"""

import collections
import dataclasses

import tensorflow as tf
from tensorflow.python.client import timeline

from graph_nn.core.errors import GraphNNError
from graph_nn.core.run_dir import RunDir, write_atomically

v1 = tf.compat.v1


@dataclasses.dataclass
class OpCost:
    name: str
    type: str  # the kernel that ran, e.g. _MklNativeFusedMatMul for a fused MatMul+BiasAdd+Relu
    micros: int  # compute time summed over the op's executions in the step


def run_metadata_tag(step):
    return f"step{step}"


def traced_run(sess, fetches, feed_dict):
    """sess.run with FULL_TRACE: (the fetched values, the RunMetadata)."""
    metadata = v1.RunMetadata()
    values = sess.run(
        fetches, feed_dict, options=v1.RunOptions(trace_level=v1.RunOptions.FULL_TRACE), run_metadata=metadata
    )
    return values, metadata


def executed_run(sess, fetches, feed_dict):
    """sess.run that also returns the graph the executor ran: (the fetched values, its GraphDef).

    RunOptions.output_partition_graphs returns the graph after Grappler's rewrite, the oneDNN layout pass
    and partitioning by device (one partition on a CPU): fused kernels, placeholders as _Arg nodes, fetches
    as _Retval nodes.
    """
    metadata = v1.RunMetadata()
    values = sess.run(fetches, feed_dict, options=v1.RunOptions(output_partition_graphs=True), run_metadata=metadata)
    executed = v1.GraphDef()
    for partition in metadata.partition_graphs:
        executed.node.extend(partition.node)
        executed.library.MergeFrom(partition.library)
    return values, executed


def write_chrome_trace(metadata, path):
    chrome_trace = timeline.Timeline(metadata.step_stats).generate_chrome_trace_format(show_memory=True)
    try:
        path.parent.mkdir(exist_ok=True)
    except OSError as e:
        raise GraphNNError(f"{path}: cannot write the Chrome trace ({e.strerror or e}).") from None
    write_atomically(path, chrome_trace)


def traced_train_step(sess, fetches, feed_dict, train_writer, run_dir, step):
    """One traced training sess.run; its RunMetadata goes to TensorBoard and to a Chrome trace in run_dir."""
    values, metadata = traced_run(sess, fetches, feed_dict)
    train_writer.add_run_metadata(metadata, run_metadata_tag(step), global_step=step)
    write_chrome_trace(metadata, RunDir(run_dir).chrome_trace(step))
    return values


def kernel_type(node_stats):
    """The op type that really ran, from a timeline label like "[cpu 0.2MB 0.2MB] hidden1/activations =
    _MklNativeFusedMatMul(...)": Grappler may have fused or rewritten the op the graph holds."""
    return node_stats.timeline_label.split(" = ", 1)[1].split("(", 1)[0]


def most_expensive_ops(metadata, count=10):
    """The `count` executed nodes with the largest compute time in the traced step, most expensive first."""
    micros, types = collections.Counter(), {}
    for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
            # The executor also records its own _SOURCE/_SINK bookkeeping nodes, which are not graph ops.
            if not node.node_name.startswith("_"):
                micros[node.node_name] += node.op_end_rel_micros - node.op_start_rel_micros
                types[node.node_name] = kernel_type(node)
    return [OpCost(name, types[name], us) for name, us in micros.most_common(count)]


def executed_nodes(metadata):
    """The names of the nodes the executor ran in the traced step."""
    return {
        node.node_name
        for device in metadata.step_stats.dev_stats
        for node in device.node_stats
        if not node.node_name.startswith("_")
    }
