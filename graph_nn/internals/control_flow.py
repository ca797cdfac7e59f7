"""inspect --control-flow v1|v2: the --steps-per-run while_loop (graph_nn/graph/in_graph_loop.py) in TF1's and in
TF2's control flow.

TF1 builds a while_loop as a frame of primitive ops in the graph itself: Enter carries each loop variable
(and each tensor the body reads from outside) into the frame, Merge joins the first value with the one that
NextIteration sends back, LoopCond holds the condition, Switch sends a value into the body or out to Exit.  Its
TensorArrays are TensorArrayV3 resources.  TF2 builds one functional While node whose attributes name a body
and a condition function in the GraphDef's library; its TensorArrays are TensorLists.  A Session lowers a
While node into TF1's frame before it runs it, so both execute as frames.
"""

import collections
import pathlib
import textwrap

import tensorflow as tf

from graph_nn.core.run_dir import new_run_dir
from graph_nn.data.batches import BatchSchedule
from graph_nn.graph.determinism import deterministic_ops
from graph_nn.graph.in_graph_loop import add_in_graph_loop
from graph_nn.graph.model import build_graph
from graph_nn.graph.sessions import session_config
from graph_nn.observe import tracing
from graph_nn.observe.summaries import write_graph
from graph_nn.reports.report import reported, table

v1 = tf.compat.v1
FRAME_OPS = ("Enter", "Merge", "Switch", "LoopCond", "NextIteration", "Exit")
LOOP_OPS = FRAME_OPS + ("While", "TensorArrayV3", "TensorListReserve")


def loop_ops(graph_def):
    counts = collections.Counter(node.op for node in graph_def.node)
    return {op: counts[op] for op in LOOP_OPS if counts[op]}


def build(config, dataset, control_flow):
    """(model, loop, init) with the loop built in the given control flow."""
    model = build_graph(config)
    loop = add_in_graph_loop(model, config, dataset.train, control_flow)
    with model.graph.as_default():
        init = v1.global_variables_initializer()
    return model, loop, init


def executed_loop(config, dataset, model, loop, init):
    """The graph one run of the loop executed (config.steps_per_run steps), and the run's losses."""
    schedule = BatchSchedule(config, len(dataset.train))
    with deterministic_ops(), v1.Session(graph=model.graph, config=session_config(config.rewrites_off)) as sess:
        sess.run(init)
        loop.load(sess, dataset.train)
        (losses, _), executed = tracing.executed_run(sess, loop.fetches, loop.feed(schedule, 1, config.steps_per_run))
    return executed, losses


@reported
def report(config, dataset, control_flow, logdir):
    model, loop, init = build(config, dataset, control_flow)
    graph_def = model.graph.as_graph_def()
    name = {"v1": "TF1's control flow (v1)", "v2": "TF2's control flow (v2)"}[control_flow]
    yield f"The --steps-per-run while_loop of {config.model} in {name}: {len(graph_def.node)} ops in the graph"
    yield f"  loop ops: {ops_line(loop_ops(graph_def))}"
    for node in graph_def.node:
        if node.op == "While":
            yield (
                f"  {node.name}: While, body {node.attr['body'].func.name}, cond {node.attr['cond'].func.name}, "
                f"parallel_iterations {node.attr['parallel_iterations'].i}"
            )
    if graph_def.library.function:
        yield "  functions in the GraphDef's library (ops, and their most common types):"
        yield from table(
            [
                (
                    function.signature.name,
                    len(function.node_def),
                    ops_line(dict(collections.Counter(n.op for n in function.node_def).most_common(6))),
                )
                for function in graph_def.library.function
            ]
        )
    frame = collections.Counter(
        node.op for node in graph_def.node if node.op in FRAME_OPS and node.name.startswith("train_loop/")
    )
    if frame:
        entered = sorted(
            node.name.removeprefix("train_loop/steps/")
            for node in graph_def.node
            if node.op == "Enter" and node.name.startswith("train_loop/")
        )
        yield (
            textwrap.fill(
                f"the frame's {frame['Enter']} Enter nodes: {', '.join(entered)}",
                width=116,
                initial_indent="  ",
                subsequent_indent="    ",
            )
        )
    executed, losses = executed_loop(config, dataset, model, loop, init)
    steps = f"{config.steps_per_run} step{'s' if config.steps_per_run > 1 else ''}"
    yield f"\nOne run of {steps} executed {len(executed.node)} nodes; loop ops: {ops_line(loop_ops(executed))}"
    yield f"  its losses: {', '.join(f'{loss:.6f}' for loss in losses)}"
    directory = new_run_dir(pathlib.Path(logdir) / "inspect", f"{config.model}-control-flow-{control_flow}")
    write_graph(directory, graph=model.graph)
    yield f"\nThe graph, for TensorBoard's Graph tab: {directory} (tensorboard --logdir {logdir})"


def ops_line(counts):
    return ", ".join(f"{op} {count}" for op, count in counts.items()) or "none"
