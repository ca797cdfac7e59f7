"""What TensorFlow built for a model before any training, and what one training step costs.

`python run.py inspect --model NAME` prints: the placeholders; every variable with its shape, dtype,
trainability and initializer; the optimizer's slot variables; op counts per top-level scope, per tower (with
--towers: its device too) and per op type; the ops compute_gradients added under train/gradients/; what one
training sess.run fetches, feeds and runs; the FLOPs of a forward pass and of a training step; and with --trace
the ten most expensive ops of a step.
"""

import collections
import dataclasses
import pathlib

import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
from tensorflow.python.grappler import tf_optimizer

from graph_nn.core.config import CNN_FILTERS, DEEP_FILTERS, DEEP_UNITS, HIDDEN_UNITS, load_config
from graph_nn.core.errors import GraphNNError
from graph_nn.core.run_dir import RunDir, write_atomically
from graph_nn.data.batches import BatchSchedule
from graph_nn.data.dataset import IMAGE_SIZE
from graph_nn.graph import checkpoints
from graph_nn.graph.model import INPUT_SIZE, build_graph, train_fetches
from graph_nn.graph.sessions import session_config
from graph_nn.observe import profiling, tracing
from graph_nn.reports.report import counts, reported, table

v1 = tf.compat.v1
GRADIENTS_SCOPE = "train/gradients"


@dataclasses.dataclass
class VariableInfo:
    name: str
    shape: list
    dtype: str
    trainable: bool
    initializer: str  # the op computing the initial value, relative to the variable: "Initializer/zeros"


@dataclasses.dataclass
class TrainingCall:
    """One training sess.run: what it asks for, and how much of the graph that needs."""

    fetches: list  # tensor and op names
    feeds: list  # (placeholder name, shape)
    graph_ops: int  # every op of the graph
    pruned_ops: int  # the ops the fetches depend on: what Session.run hands to the executor
    left_out: collections.Counter  # top-level scope -> ops of that scope the run does not need


@dataclasses.dataclass
class Flops:
    batch_size: int
    forward_per_example: int  # input -> logits
    train_per_step: int  # everything one training sess.run runs, for one batch
    train_by_type: dict  # op type -> FLOPs of the training step


def placeholders(graph):
    """(name, shape, dtype) of every placeholder: the graph's inputs, filled by feed_dict."""
    return [
        (op.name, op.outputs[0].shape.as_list(), op.outputs[0].dtype.name)
        for op in graph.get_operations()
        if op.type == "Placeholder"
    ]


def variables(model):
    """Every global variable in creation order: the model's weights, global_step, the optimizer's state."""
    with model.graph.as_default():  # initial_value is a graph tensor, readable only in its graph
        return [
            VariableInfo(
                v.op.name,
                v.shape.as_list(),
                v.dtype.base_dtype.name,
                v.trainable,
                v.initial_value.op.name[len(v.op.name) + 1 :],
            )
            for v in model.graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES)
        ]


def slot_variables(model):
    """{slot name: {variable name: slot variable name}}: the per-weight state the optimizer keeps."""
    optimizer = model.optimizer
    trainable = model.graph.get_collection(v1.GraphKeys.TRAINABLE_VARIABLES)
    return {
        slot: {v.op.name: optimizer.get_slot(v, slot).op.name for v in trainable} for slot in optimizer.get_slot_names()
    }


def other_optimizer_variables(model):
    """Optimizer variables that belong to no single weight, e.g. Adam's beta1_power and beta2_power."""
    slots = {name for per_variable in slot_variables(model).values() for name in per_variable.values()}
    return [
        v.op.name
        for v in model.graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES)
        if not v.trainable and v.op.name not in slots and v is not model.global_step
    ]


def top_level_scope(name):
    return name.split("/")[0]


def ops_by_scope(graph):
    return collections.Counter(top_level_scope(op.name) for op in graph.get_operations())


def towers(graph):
    """(tower scope, device, op count) of each tower of a --towers graph: its layers, loss and gradients (its
    reads of the variables name no device: they are colocated with the variables)."""
    ops = collections.defaultdict(list)
    for op in graph.get_operations():
        if op.name.startswith("tower_"):
            ops[top_level_scope(op.name)].append(op)
    return [(scope, ", ".join(sorted(devices(tower))), f"{len(tower)} ops") for scope, tower in ops.items()]


def devices(ops):
    """The devices the ops are placed on, in their canonical names: /device:CPU:1."""
    return {tf.DeviceSpec.from_string(op.device).to_string() for op in ops if op.device}


def ops_by_type(graph):
    return collections.Counter(op.type for op in graph.get_operations())


def gradient_ops(graph):
    """{scope under train/gradients/: op count}: what compute_gradients added, mirroring the forward scopes."""
    prefix = GRADIENTS_SCOPE + "/"
    return collections.Counter(
        f"{prefix}{top_level_scope(op.name[len(prefix) :])}"
        for op in graph.get_operations()
        if op.name.startswith(prefix)
    )


def pruned_graph_def(graph, fetches):
    """The part of the graph `fetches` depend on (inputs and control inputs), as Session.run prunes it."""
    names = [fetch.op.name if isinstance(fetch, tf.Tensor) else fetch.name for fetch in fetches]
    return v1.graph_util.extract_sub_graph(graph.as_graph_def(), names)


def training_call(model):
    fetches = train_fetches(model)
    needed = {node.name for node in pruned_graph_def(model.graph, fetches).node}
    return TrainingCall(
        fetches=[fetch.name for fetch in fetches],
        feeds=[(t.name, t.shape.as_list()) for t in (model.x, model.y)],
        graph_ops=len(model.graph.get_operations()),
        pruned_ops=len(needed),
        left_out=collections.Counter(
            top_level_scope(op.name) for op in model.graph.get_operations() if op.name not in needed
        ),
    )


def executed_graph_def(graph, fetches):
    """The pruned sub-graph of `fetches` less the ops Grappler's dependency optimizer removes before a run.

    compute_gradients gates each op's gradients together, so the gradients with respect to the placeholders
    (the first layer's input gradient, the loss's gradient with respect to the labels) stay in the pruned graph
    as control inputs of a gate although nothing reads them.  The dependency optimizer, one of the passes every
    Session.run applies, drops them: a traced step does not run them (tests/test_inspect.py checks both).
    """
    pruned = tf.Graph()
    with pruned.as_default():
        tf.import_graph_def(pruned_graph_def(graph, fetches), name="")
        meta_graph = v1.train.export_meta_graph(graph=pruned)
    names = [fetch.op.name if isinstance(fetch, tf.Tensor) else fetch.name for fetch in fetches]
    meta_graph.collection_def["train_op"].CopyFrom(
        meta_graph_pb2.CollectionDef(node_list=meta_graph_pb2.CollectionDef.NodeList(value=names))
    )
    config = config_pb2.ConfigProto()
    # This pass alone: the others fuse ops (MatMul + BiasAdd + Relu) into kernels the profiler cannot count.
    config.graph_options.rewrite_options.optimizers.append("dependency")
    config.graph_options.rewrite_options.min_graph_nodes = -1  # small graphs too
    return tf_optimizer.OptimizeGraph(config, meta_graph)


def profiled_flops(graph_def):
    """{op name: (op type, FLOPs)} of a GraphDef, from the tfprof profiler (ops without a registered FLOP count
    have none)."""
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    options = v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = v1.profiler.profile(graph, cmd="scope", options=options)
    return {node.name: (graph.get_operation_by_name(node.name).type, node.float_ops) for node in profile.children}


def flops(config, batch_size=None):
    """FLOPs of the forward pass per example and of one training step, for a graph with a static batch size.

    Only the ops a run executes are counted: the variables' initializer ops are outside the fetches'
    sub-graphs, and the gradients nothing reads are removed as the runtime removes them (executed_graph_def).
    """
    batch_size = batch_size or config.batch_size
    model = build_graph(config, batch_size=batch_size)
    forward = profiled_flops(executed_graph_def(model.graph, [model.logits]))
    train = profiled_flops(executed_graph_def(model.graph, train_fetches(model)))
    by_type = collections.Counter()
    for op_type, count in train.values():
        by_type[op_type] += count
    forward_total = sum(count for _, count in forward.values())
    return Flops(batch_size, forward_total // batch_size, sum(by_type.values()), dict(by_type.most_common()))


@dataclasses.dataclass(frozen=True)
class LayerProduct:
    """A layer's product for one example: `positions` output positions (1 for a dense layer), each of
    `fan_in` x `fan_out` multiply-accumulates (a 3x3 convolution's fan_in is 9 x its input channels, a 5x5's 25 x)."""

    layer: str  # the layer's scope
    op_type: str  # MatMul or Conv2D
    input_positions: int
    positions: int
    fan_in: int
    fan_out: int

    @property
    def macs(self):
        return self.positions * self.fan_in * self.fan_out


def layer_products(model_name):
    """The model's MatMuls and convolutions, input to output: the closed form behind training_flops."""
    if model_name == "cnn":
        products, size, channels = [], IMAGE_SIZE, 1
        for i, filters in enumerate(CNN_FILTERS):
            products.append(LayerProduct(f"conv{i + 1}", "Conv2D", size * size, (size - 2) ** 2, 9 * channels, filters))
            size, channels = size - 2, filters  # a VALID 3x3 convolution
            if i < 2:
                size //= 2  # a 2x2 max-pool
        return products + [LayerProduct("output", "MatMul", 1, 1, size * size * channels, 10)]
    if model_name == "deep":
        products, size, channels = [], IMAGE_SIZE, 1
        for i, filters in enumerate(DEEP_FILTERS):
            products.append(LayerProduct(f"conv{i + 1}", "Conv2D", size * size, size * size, 25 * channels, filters))
            size, channels = size // 2, filters  # a SAME 5x5 convolution keeps the size, its 2x2 max-pool halves it
        return products + [
            LayerProduct("fc1", "MatMul", 1, 1, size * size * channels, DEEP_UNITS),
            LayerProduct("output", "MatMul", 1, 1, DEEP_UNITS, 10),
        ]
    units = (INPUT_SIZE,) + HIDDEN_UNITS[model_name] + (10,)
    names = [f"hidden{i + 1}" for i in range(len(units) - 2)] + ["output"]
    return [LayerProduct(name, "MatMul", 1, 1, a, b) for name, a, b in zip(names, units, units[1:])]


def training_flops(model_name, batch_size):
    """FLOPs of the products one training step runs, two per multiply-accumulate: every layer's forward product
    and its gradient with respect to the kernel, and for every layer but the first the gradient with respect to
    its input (the first layer's input is the images: executed_graph_def says why that one never runs)."""
    products = layer_products(model_name)
    return sum(2 * batch_size * p.macs * (2 if i == 0 else 3) for i, p in enumerate(products))


def logged_graph(run_dir):
    """The GraphDef a run's train/ writer logged (what TensorBoard's Graph tab draws) and its run-metadata tags."""
    from tensorboard.backend.event_processing import event_accumulator

    load_config(run_dir)  # a clear error for a directory that is not a run
    train_dir = RunDir(run_dir).train_events
    if not train_dir.is_dir():
        raise GraphNNError(f"{run_dir}: the run has no train/ event files.")
    events = event_accumulator.EventAccumulator(str(train_dir))
    events.Reload()
    try:
        return events.Graph(), events.Tags()["run_metadata"]
    except ValueError:
        raise GraphNNError(f"{run_dir}: the run's train/ event files hold no graph.") from None


def checkpoint_contents(run_dir):
    """(checkpoint prefix, [(variable name, shape)], {file name: bytes}) of the run's latest checkpoint."""
    prefix = checkpoints.latest(run_dir)
    files = {
        path.name: path.stat().st_size
        for path in sorted(pathlib.Path(prefix).parent.glob(pathlib.Path(prefix).name + ".*"))
    }
    return prefix, tf.train.list_variables(prefix), files


@reported
def run_report(run_dir):
    """What a finished run left: the graph it logged, its traced steps, what its checkpoint holds."""
    graph_def, traced = logged_graph(run_dir)
    yield f"Graph logged by {run_dir}/train: {len(graph_def.node)} ops"
    yield from counts(collections.Counter(top_level_scope(node.name) for node in graph_def.node))
    yield f"Traced steps (run-metadata tags): {', '.join(traced) if traced else 'none'}"
    trace = profiling.newest_trace(run_dir)
    if trace:
        yield f"Profiled steps: {trace}; the ops with the most self-time (the Profile tab's framework op stats):"
        yield from table(
            [
                (f"{micros:>9,.0f} us", f"{count}x", kernel, name)
                for kernel, name, count, micros in profiling.op_stats(trace)
            ]
        )
    prefix, contents, files = checkpoint_contents(run_dir)
    yield f"\nCheckpoint {prefix}: {len(contents)} tensors"
    yield from table([(name, shape) for name, shape in contents])
    yield from table([(name, f"{size:,} bytes") for name, size in files.items()])


def write_pbtxt(graph, path):
    """The GraphDef as a text protobuf, the form TensorFlow's own tests and tools read."""
    write_atomically(path, str(graph.as_graph_def()))


def trace_step(config, dataset):
    """(the ten most expensive ops, executed node count) of one fully traced training step on real MNIST.

    A first untraced step comes before, so one-time work (Grappler's rewrite, allocations) is not in the trace.
    """
    model = build_graph(config)
    with model.graph.as_default():
        init = v1.global_variables_initializer()
    schedule = BatchSchedule(config, len(dataset.train))
    with v1.Session(graph=model.graph, config=session_config(config.rewrites_off, cpus=config.towers)) as sess:
        sess.run(init)
        sess.run(train_fetches(model), schedule.feed(model, dataset.train, 1))
        _, metadata = tracing.traced_run(sess, train_fetches(model), schedule.feed(model, dataset.train, 2))
    return tracing.most_expensive_ops(metadata), len(tracing.executed_nodes(metadata))


@reported
def report(config, pbtxt=None, dataset=None):
    """Everything above about config's graph; with a dataset, also a traced training step."""
    model = build_graph(config)
    graph = model.graph
    yield (
        f"Graph of {config.model} with {config.optimizer} (batch {config.batch_size}): "
        f"{len(graph.get_operations())} ops"
    )
    yield "\nPlaceholders (fed by feed_dict):"
    yield from table([(name, shape, dtype) for name, shape, dtype in placeholders(graph)])
    yield "\nVariables (name, shape, dtype, trainable, initializer op):"
    yield from table(
        [(v.name, v.shape, v.dtype, "trainable" if v.trainable else "-", v.initializer) for v in variables(model)]
    )
    slots = slot_variables(model)
    yield (
        f"\nOptimizer slots of {type(model.optimizer).__name__}: "
        + (", ".join(slots) if slots else "none (plain gradient descent keeps no state)")
    )
    if slots:
        yield from table(
            [
                (f"{slot}:", variable, "->", slot_variable)
                for slot, per_variable in slots.items()
                for variable, slot_variable in per_variable.items()
            ]
        )
    others = other_optimizer_variables(model)
    if others:
        yield f"Other optimizer variables: {', '.join(others)}"
    yield "\nOps per top-level scope:"
    yield from counts(ops_by_scope(graph))
    if config.towers > 1:
        yield f"\nTowers, each on its part of the batch of {config.batch_size}, their variables shared on /cpu:0:"
        yield from table(towers(graph))
    yield "\nOps per type:"
    yield from counts(ops_by_type(graph))
    gradients = gradient_ops(graph)
    if gradients:  # towers have theirs in their own scopes, tower_i/gradients/
        yield f"\ncompute_gradients added {sum(gradients.values())} ops under {GRADIENTS_SCOPE}/:"
        yield from counts(gradients)
    call = training_call(model)
    yield "\nOne training sess.run:"
    yield f"  fetches {', '.join(call.fetches)}"
    yield f"  feeds   {', '.join(f'{name} {shape}' for name, shape in call.feeds)}"
    yield f"  depends on {call.pruned_ops} of the graph's {call.graph_ops} ops; Session.run prunes the others:"
    yield "  " + ", ".join(f"{scope} {count}" for scope, count in call.left_out.most_common())
    counted = flops(config)
    yield (
        f"\nFLOPs (tf.compat.v1.profiler, static batch {counted.batch_size}, initializers and unread "
        f"gradients excluded):"
    )
    yield f"  forward pass, per example: {counted.forward_per_example:,}"
    yield f"  training step, per batch:  {counted.train_per_step:,}"
    yield from table([(op_type, f"{count:,}") for op_type, count in counted.train_by_type.items()])
    if pbtxt:
        write_pbtxt(graph, pbtxt)
        yield f"\nGraphDef written as text to {pbtxt}"
    if dataset is not None:
        costs, executed = trace_step(config, dataset)
        yield (
            f"\nTraced training step (FULL_TRACE, the second step): the executor ran {executed} nodes; "
            f"the ten most expensive:"
        )
        yield from table([(f"{cost.micros:>6} us", cost.type, cost.name) for cost in costs])
