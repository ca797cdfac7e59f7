"""The graphs a cluster's tasks build: between-graph replication, as TensorFlow's mnist_replica.py has it.

Every worker builds the whole model in its own tf.Graph under tf.compat.v1.train.replica_device_setter,
which puts each variable on a parameter server (round-robin over the ps tasks) and every other op on the
worker itself.  A variable is found by its name on its ps, so the workers' graphs share one set of variables.

Sync training wraps the optimizer in SyncReplicasOptimizer.  A worker's train op then puts its gradients in
one ConditionalAccumulator per variable (on that variable's ps; a gradient computed at an older global step
is dropped) and takes a token from a queue on the ps; the chief's update takes replicas_to_aggregate
gradients from every accumulator, applies their mean, increments global_step and puts a new token per worker
in the queue.  The token's value is the new global step, which is what the train op returns.  The tokens are
not per worker; how a worker keeps to one gradient per update, through the queue handle token_queue() makes,
is graph_nn/distributed/worker.py's (ClusterSteps.next_token).
"""

import dataclasses

import tensorflow as tf

from graph_nn.graph.model import ModelGraph, add_model, placeholders
from graph_nn.graph.optimizers import make_optimizer

v1 = tf.compat.v1


def cluster_spec(task):
    return tf.train.ClusterSpec(task.jobs)


def done_queue(ps_index):
    """The queue on ps task ps_index in which each worker puts its index when it is done: how a ps knows that
    it can end (server.join() never returns).  ps and workers make it with the same arguments, and its
    shared_name makes theirs one queue."""
    with v1.device(f"/job:ps/task:{ps_index}"):
        return v1.FIFOQueue(
            -1, tf.int32, shapes=[], shared_name=f"done_queue_{ps_index}", name=f"done_queue_{ps_index}"
        )


@dataclasses.dataclass
class PsGraph:
    graph: tf.Graph
    next_done: tf.Tensor  # the index of the next worker that is done
    # The workers' global step and their batch counts (both on ps 0), watched to tell a working cluster from an
    # idle one: a batch count moves when a gradient is sent, the global step only when an update is applied.
    progress: list
    ready: tf.Tensor


def ps_graph(task):
    graph = tf.Graph()
    with graph.as_default():
        next_done = done_queue(task.index).dequeue()
        with v1.device("/job:ps/task:0"):  # where worker_graph puts them: the same name there is the same variable
            global_step = v1.train.get_or_create_global_step()
            worker_steps = cluster_worker_steps(task.num_workers)
            # Reading them before the chief has initialized them would log a FAILED_PRECONDITION error.
            ready = tf.logical_and(v1.is_variable_initialized(global_step), v1.is_variable_initialized(worker_steps))
    return PsGraph(graph, next_done, [global_step, worker_steps], ready)


def cluster_worker_steps(workers):
    """How many batches each worker has trained on, int64 [workers]; a worker adds 1 as it sends a gradient."""
    with v1.variable_scope("cluster"):
        return v1.get_variable("worker_steps", [workers], tf.int64, initializer=v1.zeros_initializer(), trainable=False)


def cluster_last_sent(workers):
    """Sync training: per worker, its last gradient's record: the step it was computed at (the update after it
    takes it), or -1, and the worker's batch count with it: int64 [workers, 2].  In the checkpoint it tells which
    counted batches went into no update of the saved weights; at a stall, which workers' gradients for the update
    under way have been sent.  One variable, written by one op: the saver reads the variables one after the other
    while the workers go on, so worker_steps and a variable of steps beside it could hold two different
    gradients' values (a count with the step before it), and a batch would be counted once too often."""
    with v1.variable_scope("cluster"):
        return v1.get_variable("last_sent", initializer=tf.constant([[-1, 0]] * workers, tf.int64), trainable=False)


def cluster_purge_from(workers):
    """Per worker, the step of the START its event file is to begin with, or -1: int64 [workers].

    The chief sets every entry when it restores or initializes the variables (the cluster went back to that
    step), and each worker takes its own as it starts, so that TensorBoard drops what the worker's earlier process
    wrote past the restored step, even when the worker joins steps later; a worker restarted without such a step
    back finds -1, and starts its file at the step it joins.  A local variable, so that no checkpoint holds it;
    `uninitialized` lists it too, so that a worker starts only once the chief has set it.
    """
    with v1.variable_scope("cluster"):
        return v1.get_variable(
            "purge_from",
            [workers],
            tf.int64,
            initializer=v1.constant_initializer(-1),
            trainable=False,
            collections=[v1.GraphKeys.LOCAL_VARIABLES],
        )


@dataclasses.dataclass
class SyncOps:
    """What a SyncReplicasOptimizer needs run besides the train op, and a worker's own hold on its token queue."""

    chief_init: tf.Operation  # the chief's local step and every accumulator's global step := global_step
    update: tf.Operation  # the chief queue runner's op: aggregate, apply, increment global_step, new tokens
    local_step_init: tf.Operation  # a worker's local step (the step its gradients are computed at) := global_step
    take_token: tf.Tensor  # a token from the queue, without sending a gradient
    give_back: tf.Operation  # `token` back into the queue
    token: tf.Tensor  # int64 placeholder
    last_sent: tf.Variable  # int64 [workers, 2]: each worker's last gradient, (its step, the batches with it)
    sent: tf.Tensor  # int64 placeholder [2]: this worker's gradient, (the step it is computed at, the batches with it)
    uncount: tf.Operation  # after a restore: the batches whose gradients no saved update took are not counted


def token_queue(global_step):
    """The optimizer's token queue, reached by its shared_name (SyncReplicasOptimizer keeps its own private)."""
    with v1.device(global_step.device):
        return v1.FIFOQueue(
            -1, global_step.dtype.base_dtype, shapes=[], shared_name="sync_token_q", name="sync_token_q_shared"
        )


@dataclasses.dataclass
class WorkerGraph:
    model: ModelGraph  # not finalized: the worker's Trainer adds its own parts under `device`
    device: object  # replica_device_setter's device function
    fetches: list  # [global step after this step's update, loss, accuracy, the steps of every worker, (sync:) the
    # noting of this gradient in cluster/last_sent]
    worker_steps: tf.Variable  # int64 [workers]: how many batches each worker has trained on
    uninitialized: tf.Tensor  # names of the variables not yet initialized (or restored, or set) by the chief
    purge_from: tf.Tensor  # int64 placeholder: the chief's step back, for set_purge_from
    set_purge_from: tf.Operation  # every worker's entry of cluster/purge_from := purge_from
    take_purge_from: tf.Tensor  # this worker's entry of cluster/purge_from, which it leaves -1
    done: list  # one enqueue op per ps: this worker is done
    sync: SyncOps | None  # None in async training


def worker_graph(config, task, replication):
    """Worker task.index's graph: the model, placed by replica_device_setter, and what the cluster adds.  Every
    worker builds the same variables, in the same order (its Trainer's, built next under `device`, included)."""
    workers = task.num_workers
    setter = v1.train.replica_device_setter(cluster=cluster_spec(task), worker_device=f"/job:worker/task:{task.index}")
    graph = tf.Graph()
    # tf.device() refuses device functions in TF 2.x; tf.compat.v1.device takes them.
    with graph.as_default(), v1.device(setter):
        # Created first, so the round-robin puts it on ps 0, where the ps tasks look for it.
        global_step = v1.train.get_or_create_global_step()
        with v1.device("/job:ps/task:0"):  # beside the global step, where every ps watches both
            worker_steps = cluster_worker_steps(workers)
            purge_from = cluster_purge_from(workers)
            last_sent = cluster_last_sent(workers) if replication.mode == "sync" else None
        optimizer = make_optimizer(config)
        if replication.mode == "sync":
            optimizer = v1.train.SyncReplicasOptimizer(
                optimizer, replicas_to_aggregate=replication.replicas_to_aggregate(workers), total_num_replicas=workers
            )
        model = add_model(config, *placeholders(), optimizer=optimizer)
        with v1.name_scope("cluster/"):  # the variable scope's name, re-entered
            count_step = v1.scatter_add(worker_steps, [task.index], tf.constant([1], tf.int64))
            if replication.mode == "sync":
                step_after = model.train_op  # the token: the global step of the update this gradient waited for
                sent = v1.placeholder(tf.int64, [2], name="sent")
                # Fetched beside count_step, not ordered with it: an order between ops of the ps and of the worker
                # would cost every step one more message.
                note_sent = [v1.scatter_update(last_sent, [task.index], sent[tf.newaxis]).op]
            else:
                note_sent = []
                with tf.control_dependencies([model.train_op]):  # read after this worker's own increment
                    step_after = global_step.read_value()
            done = [done_queue(ps).enqueue(task.index) for ps in range(task.num_ps)]
            step_back = v1.placeholder(tf.int64, [], name="purge_from")
            set_purge_from = purge_from.assign(tf.fill([workers], step_back))
            own = purge_from[task.index]
            with tf.control_dependencies([own]):
                taken = v1.scatter_update(purge_from, [task.index], tf.constant([-1], tf.int64))
            with tf.control_dependencies([taken]):
                take_purge_from = tf.identity(own)
            uninitialized = v1.report_uninitialized_variables([*v1.global_variables(), purge_from])
            uninitialized.mark_used()  # every worker runs it; a graph built only to be inspected does not
            sync = None
            if replication.mode == "sync":
                # Built before the optimizer's slots existed, it checks too few variables (`uninitialized` is the
                # complete check); marked as used to silence TensorFlow's warning about an unused tensor.
                optimizer.ready_for_local_init_op.mark_used()
                tokens, token = token_queue(global_step), v1.placeholder(tf.int64, [], name="token")
                # A gradient computed at the saved step or later went into no update of the saved weights: lost in
                # flight when the cluster stopped, its batch is to be trained on again.  The counts are last_sent's,
                # each saved with its gradient's step.
                steps, batches = last_sent[:, 0], last_sent[:, 1]
                batches -= tf.cast(steps >= global_step, tf.int64)
                with tf.control_dependencies([worker_steps.assign(batches)]):
                    uncount = last_sent.assign(tf.stack([tf.minimum(steps, global_step - 1), batches], 1))
                sync = SyncOps(
                    optimizer.chief_init_op,
                    optimizer.get_chief_queue_runner().enqueue_ops[0],
                    optimizer.local_step_init_op,
                    tokens.dequeue(),
                    tokens.enqueue(token),
                    token,
                    last_sent,
                    sent,
                    uncount.op,
                )
    return WorkerGraph(
        model,
        setter,
        [step_after, model.loss, model.accuracy, count_step, *note_sent],
        worker_steps,
        uninitialized,
        step_back,
        set_purge_from.op,
        take_purge_from,
        done,
        sync,
    )
