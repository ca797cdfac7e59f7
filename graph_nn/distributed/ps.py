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

    A worker that never comes back would keep it forever, so it also ends when the global step has not moved
    for twice the workers' wait limit.  A worker gives up its wait for an update one wait limit after it sent its
    gradient, so by then every worker has given up, and has had one more wait limit to save its checkpoint and
    say it is done.
    """
    server = start_server(task)
    ps = replicas.ps_graph(task)
    poll = v1.RunOptions(timeout_in_ms=1000)
    sess = cluster_session(server.target, ps.graph, ["/job:ps"])
    print(f"{task.name} serving on {task.address} until the {task.num_workers} workers are done", file=out, flush=True)
    done, last_step, since = set(), None, time.monotonic()
    with stop_requested_by_signals() as stop:
        try:
            while len(done) < task.num_workers and not stop:
                try:
                    worker = int(sess.run(ps.next_done, options=poll))
                    done.add(worker)
                    print(f"worker {worker} is done ({len(done)} of {task.num_workers})", file=out, flush=True)
                    continue
                except tf.errors.DeadlineExceededError:
                    step = last_step
                with contextlib.suppress(tf.errors.DeadlineExceededError):
                    if sess.run(ps.global_step_ready, options=poll):
                        step = int(sess.run(ps.global_step, options=poll))
                if step != last_step:
                    last_step, since = step, time.monotonic()
                elif time.monotonic() - since > 2 * wait_limit:
                    missing = ", ".join(str(i) for i in range(task.num_workers) if i not in done)
                    raise ClusterFailed(
                        f"no worker trained for {2 * wait_limit} s (global step {last_step}) and "
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
