"""A cluster task's gRPC server and its distributed Sessions, and the sentences for their failures.

Every distributed Session this process opens stays referenced until the task's process ends with os._exit
(graph_nn/distributed/tasks.py): a Session that Python frees is closed by its __del__, which waits for minutes
on a task that has gone away.
"""

import re
import threading

import tensorflow as tf

from graph_nn.core.errors import ClusterFailed, GraphNNError
from graph_nn.distributed import replicas
from graph_nn.graph.sessions import session_config

v1 = tf.compat.v1
STEP_TIMEOUT_S = 5  # one sess.run; a training step takes milliseconds
POLL_S = 0.1  # between two reads of the global step (or of the chief's progress) while waiting

SESSIONS = []


def cluster_session(target, graph, device_filters):
    sess = v1.Session(target, graph=graph, config=session_config(device_filters=device_filters))
    SESSIONS.append(sess)
    return sess


def start_server(task):
    try:
        return v1.train.Server(replicas.cluster_spec(task), job_name=task.job, task_index=task.index)
    except tf.errors.OpError as e:  # "Could not start gRPC server": the port was taken after the CLI checked it
        raise GraphNNError(f"{task.name} could not start its server on {task.address} ({first_line(e)}).") from None


def first_line(error):
    return str(error).strip().splitlines()[0]


def lost(task, error):
    """A failed run in one sentence: the task that went away, the first other than this one that TensorFlow's
    message names (e.g. "... from remote target /job:ps/replica:0/task:0 while calling ...RecvTensor")."""
    for job, index in re.findall(r"/job:(ps|worker)/replica:\d+/task:(\d+)", str(error)):
        if (job, int(index)) != (task.job, task.index):
            return ClusterFailed(f"{job} {index} ({task.jobs[job][int(index)]}) went away ({type(error).__name__})")
    return ClusterFailed(f"{task.name} failed: {type(error).__name__}: {first_line(error)}")


def close(sess):
    """Session.close(), given up after a while: it waits for minutes on a task that has gone away."""
    closer = threading.Thread(target=sess.close, daemon=True)
    closer.start()
    closer.join(STEP_TIMEOUT_S)
