"""What a parameter server does: it holds its share of the variables, and ends when every worker has said it is
done (graph_nn/distributed/tasks.py has the cluster's whole story)."""

import contextlib
import time

import tensorflow as tf

from graph_nn.core.errors import ClusterFailed
from graph_nn.core.signals import stop_requested_by_signals
from graph_nn.distributed import replicas
from graph_nn.distributed.servers import close, cluster_session, lost, start_server

v1 = tf.compat.v1


def serve(task, wait_limit, out):
    """Serves the variables until every worker has put its index in this ps's done queue.

    A worker that never comes back would keep it forever, so it also ends when neither the global step nor any
    worker's batch count has moved for twice the workers' wait limit.  A worker gives up its wait for an update one
    wait limit after it sent its gradient, and the send moves its batch count, so by then every worker has given
    up, and has had one more wait limit to save its checkpoint and say it is done.  (Counted from the global step
    alone, the time a chief spends between initializing it and sending its first gradient, seconds on a loaded
    machine, came out of that one more wait limit, and the chief's "done" could arrive after the ps had ended.)
    """
    server = start_server(task)
    ps = replicas.ps_graph(task)
    poll = v1.RunOptions(timeout_in_ms=1000)
    sess = cluster_session(server.target, ps.graph, ["/job:ps"])
    print(f"{task.name} serving on {task.address} until the {task.num_workers} workers are done", file=out, flush=True)
    done, last_progress, since = set(), (None, None), time.monotonic()  # (global step, batches sent)
    with stop_requested_by_signals() as stop:
        try:
            while len(done) < task.num_workers and not stop:
                try:
                    worker = int(sess.run(ps.next_done, options=poll))
                    done.add(worker)
                    print(f"worker {worker} is done ({len(done)} of {task.num_workers})", file=out, flush=True)
                    continue
                except tf.errors.DeadlineExceededError:
                    progress = last_progress
                with contextlib.suppress(tf.errors.DeadlineExceededError):
                    if sess.run(ps.ready, options=poll):
                        step, batches = sess.run(ps.progress, options=poll)
                        progress = int(step), int(batches.sum())
                if progress != last_progress:
                    last_progress, since = progress, time.monotonic()
                elif time.monotonic() - since > 2 * wait_limit:
                    missing = ", ".join(str(i) for i in range(task.num_workers) if i not in done)
                    raise ClusterFailed(
                        f"no worker trained for {2 * wait_limit} s (global step {last_progress[0]}) and "
                        f"not every worker said it was done (missing: {missing}); {task.name} ends"
                    )
        except tf.errors.OpError as e:
            raise lost(task, e) from None
    close(sess)
    if stop:
        print(f"{task.name} stopped by {stop.name}", file=out, flush=True)
        return stop.exit_code
    print(f"{task.name}: every worker is done", file=out, flush=True)
    return 0
