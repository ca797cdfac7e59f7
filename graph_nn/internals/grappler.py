"""What runs is not what was written: one training step as the graph builder wrote it and as the executor ran it.

`python run.py inspect --model M --grappler [--rewrite-off PASS[,PASS]]` prints:
  - the op types of the step's sub-graph as written (what the fetches depend on) and as executed (the
    partition graph that RunOptions.output_partition_graphs returns);
  - the remapper's fusions: a fused node carries a `fused_ops` attribute and the name of the pattern's last op;
  - what else changed: the oneDNN layout pass's kernels (MatMul -> _MklMatMul, after Grappler), ops folded
    into constants, nodes removed, and the _Arg/_Retval nodes that stand for feeds and fetches;
  - Grappler's own per-pass report: its meta-optimizer logs each pass's node count (a VLOG that only
    TF_CPP_VMODULE=meta_optimizer=1, set before TensorFlow loads, turns on), so a child process runs the
    step and this one reads the child's log;
  - with passes switched off, the same step against Grappler's defaults: nodes, step time and whether the
    numbers (losses, weights, logits) stay the same bit for bit.
"""

import collections
import dataclasses
import re
import statistics
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf
from tensorflow.python.util import _pywrap_util_port

from graph_nn.core.config import TrainConfig
from graph_nn.core.processes import child_environment
from graph_nn.data.batches import BatchSchedule
from graph_nn.graph import batched
from graph_nn.graph.determinism import deterministic_ops
from graph_nn.graph.model import build_graph, train_fetches
from graph_nn.graph.sessions import session_config
from graph_nn.observe import tracing
from graph_nn.reports.report import reported, table

v1 = tf.compat.v1
COMPARED_STEPS = 50
CHILD_SECONDS = 120
PASS_LINE = re.compile(
    r"meta_optimizer\.cc:\d+\] (?P<name>\w+)\S*: Graph size after: (?P<nodes>\d+) nodes "
    r"\((?P<change>[-+]?\d+)\), (?P<edges>\d+) edges \([-+]?\d+\), time = (?P<ms>[\d.]+)ms"
)
STEP_MARKER = "graph_nn: the training step"


@dataclasses.dataclass
class Fusion:
    node: str  # the executed node, named after the pattern's last op
    kernel: str  # e.g. _MklNativeFusedMatMul
    ops: list  # (written name, written type) of the ops it runs, first to last


@dataclasses.dataclass
class StepGraphs:
    written: v1.GraphDef  # what the step's fetches depend on
    executed: v1.GraphDef

    def types(self, graph_def):
        return collections.Counter(node.op for node in graph_def.node)

    def fusions(self):
        written = {node.name: node for node in self.written.node}
        found = []
        for node in self.executed.node:
            if "fused_ops" in node.attr and node.name in written:
                chain = [written[node.name]]
                # The fused ops follow the pattern's root (a MatMul or Conv2D) through first inputs.
                for _ in node.attr["fused_ops"].list.s:
                    chain.append(written[chain[-1].input[0].split(":")[0]])
                found.append(Fusion(node.name, node.op, [(op.name, op.op) for op in reversed(chain)]))
        return found

    def kernels(self):
        """Counter of "WrittenType -> Kernel" for the ops that ran under their own name as another op type."""
        written = {node.name: node.op for node in self.written.node}
        return collections.Counter(
            f"{written[node.name]} -> {node.op}"
            for node in self.executed.node
            if node.name in written
            and written[node.name] != node.op
            and "fused_ops" not in node.attr
            and node.op != "Const"
        )

    def folded(self):
        """(name, written type) of the ops that became constants under their own name."""
        written = {node.name: node.op for node in self.written.node}
        return [
            (node.name, written[node.name])
            for node in self.executed.node
            if node.op == "Const" and written.get(node.name, "Const") != "Const"
        ]

    def removed(self):
        executed = {node.name for node in self.executed.node}
        return collections.Counter(node.op for node in self.written.node if node.name not in executed)

    def added(self):
        written = {node.name for node in self.written.node}
        return collections.Counter(node.op for node in self.executed.node if node.name not in written)


def zero_feed(model, config):
    """A batch of zeros: what Grappler does to a step depends on the graph and the feeds' shapes, not values."""
    return {
        model.x: np.zeros([config.batch_size, model.x.shape[1]], np.float32),
        model.y: np.zeros([config.batch_size, model.y.shape[1]], np.float32),
    }


def step_graphs(config, dataset):
    """The first training step's sub-graph as written and as executed, in a session with config's passes."""
    model = build_graph(config)
    with model.graph.as_default():
        init = v1.global_variables_initializer()
    fetches = train_fetches(model)
    written = v1.graph_util.extract_sub_graph(
        model.graph.as_graph_def(), [model.train_op.name] + [t.op.name for t in fetches[1:]]
    )
    feed = BatchSchedule(config, len(dataset.train)).feed(model, dataset.train, 1)
    with deterministic_ops(), v1.Session(graph=model.graph, config=session_config(config.rewrites_off)) as sess:
        sess.run(init)
        _, executed = tracing.executed_run(sess, fetches, feed)
    return StepGraphs(written, executed)


@dataclasses.dataclass
class PassReport:
    name: str  # as the meta-optimizer logs it: model_pruner, constant_folding, remapper, ...
    nodes: int  # after the pass
    change: int
    milliseconds: float


def pass_reports(config):
    """Grappler's meta-optimizer log for config's training step, from a child process (see the docstring)."""
    env = child_environment(TF_CPP_VMODULE="meta_optimizer=1", TF_CPP_MIN_LOG_LEVEL="0")
    child = subprocess.run(
        [sys.executable, "-m", "graph_nn.internals.grappler", config.to_json()],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_SECONDS,
    )
    if child.returncode:
        raise RuntimeError(f"the child process failed: {child.stderr.strip().splitlines()[-1:]}")
    # The init run is optimized first; the training step's items come after the marker.
    log = child.stderr.split(STEP_MARKER, 1)[-1]
    return [PassReport(m["name"], int(m["nodes"]), int(m["change"]), float(m["ms"])) for m in PASS_LINE.finditer(log)]


def run_one_step(config):
    """The child's work: one training step of config's graph on a zero batch."""
    model = build_graph(config)
    with model.graph.as_default():
        init = v1.global_variables_initializer()
    # Under op determinism, as training sessions run (step_graphs too): it changes what some passes do.
    with deterministic_ops(), v1.Session(graph=model.graph, config=session_config(config.rewrites_off)) as sess:
        sess.run(init)
        print(STEP_MARKER, file=sys.stderr, flush=True)
        sess.run(train_fetches(model), zero_feed(model, config))


@dataclasses.dataclass
class Comparison:
    """A training session with other settings against one with Grappler's defaults, from the same weights."""

    executed: tuple  # nodes executed: (defaults, passes off)
    step_ms: tuple  # median milliseconds per step
    losses_identical: bool
    weights_difference: float  # max |difference| after the steps
    logits_difference: float  # on the test images, with each session's own weights


def compare_with_defaults(config, dataset, steps=COMPARED_STEPS):
    """config's session settings (its passes off, XLA) against Grappler's defaults, trained side by side."""
    model = build_graph(config)
    with model.graph.as_default():
        init = v1.global_variables_initializer()
    fetches = train_fetches(model)
    schedule = BatchSchedule(config, len(dataset.train))
    weights = model.graph.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES)
    configs = (session_config(), session_config(config.rewrites_off, config.xla))
    with deterministic_ops():
        sessions = [v1.Session(graph=model.graph, config=c) for c in configs]
        try:
            executed, losses, times = [], [[], []], [[], []]
            for i, sess in enumerate(sessions):
                sess.run(init)  # the graph's seeded initializers draw the same weights in each new session
                values, graph_def = tracing.executed_run(sess, fetches, schedule.feed(model, dataset.train, 1))
                executed.append(len(graph_def.node))
                losses[i].append(values[1])
            for step in range(2, steps + 1):  # taking turns, so a busy machine slows both alike
                feed = schedule.feed(model, dataset.train, step)
                for i, sess in enumerate(sessions):
                    start = time.perf_counter()
                    losses[i].append(sess.run(fetches, feed)[1])
                    times[i].append(time.perf_counter() - start)
            trained = [sess.run(weights) for sess in sessions]
            logits = [batched.logits(sess, model, dataset.test.images) for sess in sessions]
        finally:
            for sess in sessions:
                sess.close()
    return Comparison(
        tuple(executed),
        tuple(1000 * statistics.median(t) for t in times),
        np.array_equal(*losses),
        max(float(np.max(np.abs(a - b))) for a, b in zip(*trained)),
        float(np.max(np.abs(logits[0] - logits[1]))),
    )


def onednn_on():
    """Whether TensorFlow runs its oneDNN kernels here (_MklMatMul, _MklNativeFusedMatMul): by default only on CPUs
    with AVX-512 VNNI, AVX-VNNI or AMX, or where TF_ENABLE_ONEDNN_OPTS=1 asks for them.  Elsewhere the remapper's
    fusions run as Eigen's _FusedMatMul and a MatMul stays a MatMul.  TensorFlow's own tests ask the same
    function; no public API says it."""
    return _pywrap_util_port.IsMklEnabled()


def counter_line(counter):
    return ", ".join(f"{name} {count}" for name, count in counter.most_common()) or "none"


@reported
def report(config, dataset):
    off = f"with {', '.join(config.rewrites_off)} off" if config.rewrites_off else "with Grappler's defaults"
    graphs = step_graphs(config, dataset)
    yield (
        f"One training step of {config.model} ({config.optimizer}, batch {config.batch_size}), {off}: the "
        f"fetches need {len(graphs.written.node)} ops as written; the executor ran {len(graphs.executed.node)} "
        f"nodes"
    )
    yield "\nOp types, as written -> as executed:"
    written, executed = graphs.types(graphs.written), graphs.types(graphs.executed)
    types = sorted(written | executed, key=lambda op: (-written[op], -executed[op]))
    yield from table([(op, written[op] or "-", "->", executed[op] or "-") for op in types])
    fusions = graphs.fusions()
    yield "\nFused by the remapper (the node keeps the name of the pattern's last op):"
    if fusions:
        yield from table(
            [(f.node, f.kernel, "= " + " + ".join(f"{name} ({op})" for name, op in f.ops)) for f in fusions]
        )
    else:
        yield "  nothing"
    if onednn_on():
        kernels = counter_line(graphs.kernels())
        yield f"Kernels under the written names (oneDNN's layout pass, after Grappler): {kernels}"
    else:
        yield "Kernels under the written names: none (oneDNN is off on this CPU; TF_ENABLE_ONEDNN_OPTS=1 turns it on)"
    folded = graphs.folded()
    yield f"Folded into constants: {', '.join(f'{name} ({op})' for name, op in folded) or 'none'}"
    yield f"Removed (pruned, merged, folded or fused away): {counter_line(graphs.removed())}"
    yield f"Added: {counter_line(graphs.added())} (_Arg: a fed placeholder, _Retval: a fetched tensor)"
    try:
        passes = pass_reports(config)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        yield f"\nGrappler's per-pass log is not available ({e})."
    else:
        yield "\nGrappler's passes over the step, in order (its meta-optimizer's log; the list runs twice):"
        yield from table([(p.name, f"{p.nodes} nodes", f"{p.change:+d}", f"{p.milliseconds:.2f} ms") for p in passes])
        yield (
            "Then the session's own graph optimizer (OptimizerOptions.opt_level L1: common subexpressions, "
            "constant folding) works on Grappler's output, and a _Retval node per fetched tensor is added."
        )
    if config.rewrites_off:
        yield from comparison_lines(
            compare_with_defaults(config, dataset), off.removeprefix("with "), len(dataset.test)
        )


def comparison_lines(result, name, test_images):
    yield (
        f"\nAgainst a session with TensorFlow's defaults (same initial weights, {COMPARED_STEPS} training steps "
        f"each, op determinism on):"
    )
    yield from table(
        [
            ("", "defaults", name),
            ("nodes executed", *result.executed),
            ("ms per step (median)", *(f"{ms:.2f}" for ms in result.step_ms)),
        ]
    )
    yield f"  training losses: {'identical, bit for bit' if result.losses_identical else 'different'}"
    yield f"  weights after the steps: {difference(result.weights_difference)}"
    yield f"  logits on the {test_images:,} test images: {difference(result.logits_difference)}"


def difference(value):
    return "identical, bit for bit" if value == 0 else f"max |difference| {value:.2g}"


if __name__ == "__main__":  # the child process of pass_reports()
    run_one_step(TrainConfig.from_json(sys.argv[1]))
