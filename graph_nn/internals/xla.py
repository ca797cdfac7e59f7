"""inspect --xla: what XLA's auto-clustering compiles of a training step, and what it does to the numbers and
the time.

With global_jit_level ON_1 (sessions.session_config(xla=True)) and, on a CPU, TF_XLA_FLAGS=
--tf_xla_cpu_global_jit (startup.enable_xla_on_cpu), the session's mark_for_compilation pass groups the ops
XLA can compile into clusters, after Grappler; each cluster runs as an _XlaCompile/_XlaRun pair, compiled on
its first run.  With --tf_xla_clustering_debug the pass also writes the graph it marked, every clustered node
carrying an `_XlaCluster` attribute, where TF_DUMP_GRAPH_PREFIX points; logged as a GraphDef, it is what
TensorBoard's Graph tab colours by "XLA cluster".
"""

import collections
import contextlib
import os
import pathlib
import tempfile
import time

import tensorflow as tf
from google.protobuf import text_format

from graph_nn.core.errors import GraphNNError
from graph_nn.core.run_dir import new_run_dir
from graph_nn.data.batches import BatchSchedule
from graph_nn.graph.determinism import deterministic_ops
from graph_nn.graph.model import build_graph, train_fetches
from graph_nn.graph.sessions import session_config
from graph_nn.internals.grappler import compare_with_defaults, comparison_lines, counter_line
from graph_nn.observe import tracing
from graph_nn.observe.summaries import write_graph
from graph_nn.reports.report import reported

v1 = tf.compat.v1
CLUSTER_ATTRIBUTE = "_XlaCluster"


@contextlib.contextmanager
def graph_dumps_in(directory):
    """TF_DUMP_GRAPH_PREFIX pointed at directory for the block (TensorFlow reads it at each dump)."""
    saved = os.environ.get("TF_DUMP_GRAPH_PREFIX")
    os.environ["TF_DUMP_GRAPH_PREFIX"] = str(directory)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TF_DUMP_GRAPH_PREFIX"]
        else:
            os.environ["TF_DUMP_GRAPH_PREFIX"] = saved


def clustered_step(config, dataset):
    """(the marked GraphDef, the executed GraphDef, seconds of the first run) of config's first training step
    in a session with XLA on."""
    model = build_graph(config)
    with model.graph.as_default():
        init = v1.global_variables_initializer()
    feed = BatchSchedule(config, len(dataset.train)).feed(model, dataset.train, 1)
    with (
        tempfile.TemporaryDirectory() as dumps,
        graph_dumps_in(dumps),
        deterministic_ops(),
        v1.Session(graph=model.graph, config=session_config(config.rewrites_off, xla=True)) as sess,
    ):
        sess.run(init)
        start = time.perf_counter()
        _, executed = tracing.executed_run(sess, train_fetches(model), feed)
        seconds = time.perf_counter() - start
        # The pass dumps the init run's graph too; the training step's is the one that clusters train/ ops.
        dumped = map(read_graph_def, pathlib.Path(dumps).glob("mark_for_compilation*.pbtxt"))
        marked = [
            graph_def
            for graph_def in dumped
            if any(CLUSTER_ATTRIBUTE in node.attr and node.name.startswith("train/") for node in graph_def.node)
        ]
    if not marked:
        raise GraphNNError(
            "XLA clustered nothing: on a CPU, TF_XLA_FLAGS must hold --tf_xla_cpu_global_jit and "
            "--tf_xla_clustering_debug before the process's first session (python run.py inspect "
            "--xla sets them)."
        )
    return marked[0], executed, seconds


def read_graph_def(path):
    return text_format.Parse(path.read_text(), v1.GraphDef())


def clusters(marked):
    """{cluster name: Counter of its op types}, and the Counter of the op types left to TensorFlow."""
    found, left = collections.defaultdict(collections.Counter), collections.Counter()
    for node in marked.node:
        if CLUSTER_ATTRIBUTE in node.attr:
            found[node.attr[CLUSTER_ATTRIBUTE].s.decode()][node.op] += 1
        else:
            left[node.op] += 1
    return dict(found), left


@reported
def report(config, dataset, logdir):
    marked, executed, seconds = clustered_step(config, dataset)
    found, left = clusters(marked)
    yield (
        f"XLA auto-clustering of one {config.model} training step ({config.optimizer}, batch "
        f"{config.batch_size}; global_jit_level ON_1, TF_XLA_FLAGS={os.environ.get('TF_XLA_FLAGS', '')}):"
    )
    for name, ops in found.items():
        yield f"  {name}: {sum(ops.values())} ops: {counter_line(ops)}"
    yield f"  left to TensorFlow: {counter_line(left)}"
    xla_nodes = [f"{node.name} ({node.op})" for node in executed.node if node.op.startswith("_Xla")]
    yield f"  executed: {len(executed.node)} nodes, among them {', '.join(xla_nodes)}"
    yield f"  first run (Grappler, clustering, XLA's compilation, the step): {seconds:.2f} s"
    yield from comparison_lines(compare_with_defaults(config, dataset), "XLA", len(dataset.test))
    directory = new_run_dir(pathlib.Path(logdir) / "inspect", f"{config.model}-xla")
    write_graph(directory, graph_def=marked)
    yield f"\nThe clustered graph, for TensorBoard's Graph tab (Color: XLA Cluster): {directory}"
