"""What each task of a cluster does, on TensorFlow 1's own distributed runtime (a gRPC server per task, a
Session per worker on its own server), as TensorFlow's mnist_replica.py has it:

    ps N        holds its share of the variables; ends when every worker has said it is done
                (graph_nn/distributed/ps.py)
    worker 0    the chief: initializes the variables or restores the run's latest checkpoint, runs the sync
                updates, trains, writes train/ and validation/ (scalars, histograms, graph), evaluates, saves
                the checkpoints and ends the run with the report of a single-process run
    worker N    waits until the chief has initialized the variables, then trains on its own batches
    evaluator   evaluates each checkpoint of the chief as it appears and writes eval/ (no gRPC server)

The workers run the training loop of a single process (graph_nn/training/loop.py), with their own way of running
a step (graph_nn/distributed/worker.py).  Every worker writes its own worker-N/ scalars.  Steps are global steps
(updates); a worker counts its batches.

Every wait has a limit.  A training run gets STEP_TIMEOUT_S; after that the worker reads the global step
instead, until the update its gradient went into (sync) up to --wait-limit seconds after it sent it.  A parameter
server that goes away ends every worker at once, with one sentence naming it.  A task's process ends with
os._exit: closing a distributed Session, which Python's clean-up does too, waits minutes for a task that has
gone away.
"""

import contextlib
import os
import sys
import traceback

from graph_nn.core.errors import GraphNNError
from graph_nn.distributed.evaluator import evaluate_checkpoints
from graph_nn.distributed.ps import serve
from graph_nn.distributed.worker import Worker


def run_task(task, config=None, dataset=None, run_dir=None, replication=None, wait_limit=120, out=None):
    """Runs this process's task to its end, then ends the process, however the task ended (see the module's
    docstring): a user's error in one sentence, Ctrl-C before training with 130, anything else with its traceback."""
    out = out or sys.stdout
    code = 1
    try:
        if task.job == "ps":
            code = serve(task, wait_limit, out)
        elif task.is_evaluator:
            code = evaluate_checkpoints(task, run_dir, dataset, wait_limit, out)
        else:
            code = Worker(task, config, dataset, run_dir, replication, wait_limit, out).run()
    except GraphNNError as e:
        code = e.exit_code
        print(f"graph-nn: error: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # a bug, or the launcher gone with the pipes it read: say what, if anyone listens
        traceback.print_exc()
    finally:
        with contextlib.suppress(OSError):
            out.flush()
            sys.stderr.flush()
        os._exit(code)
