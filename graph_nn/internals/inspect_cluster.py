"""`python run.py inspect --cluster`: what TensorFlow 1's runtime makes of one model on 1 ps + 2 workers.

The three tasks run as servers inside this one process, on free ports of 127.0.0.1, and the two workers build
the graphs that `python run.py cluster --workers 2` builds (graph_nn/distributed/replicas.py).  The report shows which
device replica_device_setter gives every variable, how many ops each task runs, what SyncReplicasOptimizer
adds, and one traced sync step: the partition graphs TensorFlow cut worker 0's step and the chief's update
into (RunOptions(output_partition_graphs=True)), the _Send/_Recv pairs it inserted between the tasks and the
bytes each pair carries.
"""

import collections
import contextlib
import dataclasses
import re
import threading

import tensorflow as tf

from graph_nn.distributed import replicas
from graph_nn.distributed.spec import ClusterTask, Replication, free_ports
from graph_nn.graph.sessions import session_config
from graph_nn.reports.report import counts, reported, table
from graph_nn.training.loop import Trainer

v1 = tf.compat.v1
SYNC_OP_TYPES = (
    "ResourceConditionalAccumulator",
    "ResourceAccumulatorApplyGradient",
    "ResourceAccumulatorTakeGradient",
    "ResourceAccumulatorSetGlobalStep",
    "FIFOQueueV2",
    "QueueDequeueV2",
    "QueueEnqueueV2",
    "QueueEnqueueManyV2",
    "QueueCloseV2",
)


@dataclasses.dataclass
class Transfer:
    """One tensor that a _Send/_Recv pair carries from one task to another in a step."""

    source: str  # the op whose output is sent
    sender: str  # "ps 0", "worker 0"
    receiver: str
    dtype: str
    shape: list
    bytes: int


def task_of(device):
    """ "ps 0" for "/job:ps/replica:0/task:0/device:CPU:0"."""
    match = re.search(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)", device)
    return f"{match[1]} {match[2]}" if match else device or "(placed at run time)"


def local_tasks(num_workers=2):
    ports = free_ports(1 + num_workers)
    jobs = {"ps": [f"127.0.0.1:{ports[0]}"], "worker": [f"127.0.0.1:{port}" for port in ports[1:]]}
    return [ClusterTask(jobs, "ps", 0)] + [ClusterTask(jobs, "worker", i) for i in range(num_workers)]


def placement(graph):
    """[(variable, device)] of the global variables, and {task: op count} of the whole graph."""
    variables = [(v.op.name, task_of(v.device)) for v in graph.get_collection(v1.GraphKeys.GLOBAL_VARIABLES)]
    return variables, collections.Counter(task_of(op.device) for op in graph.get_operations())


def sync_additions(graph):
    """[(op type, name, task)] of the ops that synchronize the workers: SyncReplicasOptimizer's accumulators,
    token queue and local step, and this project's queues (under cluster/)."""
    return [
        (op.type, op.name, task_of(op.device))
        for op in graph.get_operations()
        if op.type in SYNC_OP_TYPES or op.name.endswith("sync_rep_local_step")
    ]


def transfers(metadata, graph):
    """The tensors sent between tasks in one traced run, from its partition graphs: every _Send whose
    _Recv is on another task.  Shapes come from the run's own step stats, else from the graph's static shapes."""
    traced = {
        (stats.device, node.node_name): node.output
        for stats in metadata.step_stats.dev_stats
        for node in stats.node_stats
    }
    found = []
    for partition in metadata.partition_graphs:
        for node in partition.node:
            sender, receiver = node.attr["send_device"].s.decode(), node.attr["recv_device"].s.decode()
            if node.op != "_Send" or task_of(sender) == task_of(receiver):
                continue
            source, _, index = node.input[0].partition(":")
            dtype = tf.dtypes.as_dtype(node.attr["T"].type)
            outputs = traced.get((node.device, source))
            if outputs and len(outputs) > int(index or 0):
                shape = [dim.size for dim in outputs[int(index or 0)].tensor_description.shape.dim]
            else:
                shape = graph.get_tensor_by_name(f"{source}:{index or 0}").shape.as_list()
            count = 1
            for size in shape:
                count *= size
            found.append(Transfer(source, task_of(sender), task_of(receiver), dtype.name, shape, count * dtype.size))
    return found


def partitions(metadata):
    """[(task, node count, {op type: count})] of the partition graphs of one traced run."""
    return [
        (
            task_of(partition.node[0].device),
            len(partition.node),
            collections.Counter(node.op for node in partition.node),
        )
        for partition in metadata.partition_graphs
    ]


@dataclasses.dataclass
class TracedStep:
    graph: tf.Graph  # worker 0's
    step: v1.RunMetadata  # worker 0's training step
    update: v1.RunMetadata  # the chief's update of the same step


def traced_sync_step(config, dataset):
    """Worker 0's graph, and the RunMetadata of its second training step and of that step's update, traced with
    the partition graphs, while worker 1 sends its gradient in a thread."""
    tasks = local_tasks()
    servers = [v1.train.Server(replicas.cluster_spec(task), job_name=task.job, task_index=task.index) for task in tasks]
    workers = [replicas.worker_graph(config, task, Replication("sync")) for task in tasks[1:]]
    trainers = [
        Trainer(config, dataset, model=worker.model, task=task.index, device=worker.device)
        for worker, task in zip(workers, tasks[1:])
    ]
    sessions = [
        v1.Session(
            servers[1 + i].target,
            graph=worker.model.graph,
            config=session_config(device_filters=["/job:ps", f"/job:worker/task:{i}"]),
        )
        for i, worker in enumerate(workers)
    ]
    chief, other = workers
    with contextlib.ExitStack() as stack:
        for sess in sessions:
            stack.enter_context(contextlib.closing(sess))
        sessions[0].run(trainers[0].init)
        sessions[0].run(chief.sync.chief_init)
        sessions[1].run(other.sync.local_step_init)
        traced = v1.RunOptions(output_partition_graphs=True, trace_level=v1.RunOptions.FULL_TRACE)
        for step in (1, 2):  # the first step also registers the graphs' partitions on every task
            step_metadata, update_metadata = v1.RunMetadata(), v1.RunMetadata()

            def train(i, metadata=None, step=step):
                feed = {**trainers[i].feed(step), workers[i].sync.sent: [step - 1, step]}
                sessions[i].run(workers[i].fetches, feed, options=traced if metadata else None, run_metadata=metadata)

            threads = [
                threading.Thread(target=train, args=(0, step_metadata)),
                threading.Thread(target=train, args=(1,)),
            ]
            for thread in threads:
                thread.start()
            sessions[0].run(chief.sync.update, options=traced, run_metadata=update_metadata)
            for thread in threads:
                thread.join()
    return TracedStep(chief.model.graph, step_metadata, update_metadata)


def bytes_between_tasks(found):
    """{"worker 0 -> ps 0": bytes, ...} of a list of Transfers."""
    total = collections.Counter()
    for transfer in found:
        total[f"{transfer.sender} -> {transfer.receiver}"] += transfer.bytes
    return dict(total)


@reported
def report(config, dataset):
    traced = traced_sync_step(config, dataset)
    graph = traced.graph
    yield (
        f"Worker 0's graph of {config.model} with {config.optimizer}, sync training on 1 ps + 2 workers "
        f"(127.0.0.1): {len(graph.get_operations())} ops"
    )
    variables, ops = placement(graph)
    yield "\nVariables, placed by replica_device_setter:"
    yield from table(variables)
    yield "\nOps per task (the others are placed at run time, mostly next to the variables they read):"
    yield from counts(ops)
    yield "\nThe ops that synchronize the workers (SyncReplicasOptimizer's, and this project's under cluster/):"
    yield from table(sync_additions(graph))
    for title, metadata in (("worker 0's training step", traced.step), ("the chief's update", traced.update)):
        yield f"\nPartition graphs of {title} (traced, the second step):"
        for task, nodes, types in partitions(metadata):
            yield f"  {task}: {nodes} nodes, " + ", ".join(f"{t} {n}" for t, n in types.most_common(6)) + ", ..."
        found = transfers(metadata, graph)
        if not found:
            yield "  nothing crosses between tasks"
            continue
        yield f"  {len(found)} tensors cross between tasks (_Send -> _Recv):"
        yield from table(
            [
                (f"{t.sender} -> {t.receiver}", t.source, t.dtype, t.shape, f"{t.bytes:,} bytes")
                for t in sorted(found, key=lambda t: (t.sender, -t.bytes))
            ]
        )
        for direction, count in bytes_between_tasks(found).items():
            yield f"  {direction}: {count:,} bytes per step"
