"""`python run.py cluster`: a whole cluster on this machine, as the processes a user would start by hand.

Each task is `python -m graph_nn train --job-name JOB --task-index N --ps-hosts ... --worker-hosts ...` on a free
port of 127.0.0.1, in its own process group; every line it prints comes out here prefixed with its task
(`[worker 1] ...`).  Ctrl-C (or SIGTERM) is passed on to the workers as SIGINT, so the chief saves a
checkpoint; a second Ctrl-C kills every task.  A reader of that output that goes away (`... cluster | head`)
stops the cluster the same way.  Every wait is bounded: once the chief has ended, the other
workers get WORKER_GRACE_S to end and the parameter servers PS_GRACE_S after the last worker, before they are
terminated.  A task whose launcher dies gets SIGTERM from the kernel (Linux), so nothing is left running.
No TensorFlow here.
"""

import signal
import sys
import time

from graph_nn.core.config import command_line
from graph_nn.core.errors import ClusterFailed, Interrupted
from graph_nn.core.processes import GRAPH_NN, POLL_S, Child, child_environment, running
from graph_nn.core.run_dir import RunDir
from graph_nn.core.signals import StopRequest
from graph_nn.distributed.spec import LOOPBACK, free_ports

WORKER_GRACE_S = 60  # the other workers' time to end after the chief has (their steps time out within 5 s)
PS_GRACE_S = 15  # the parameter servers' time to end after the last worker (they end as soon as all are done)
KILL_GRACE_S = 10  # after SIGTERM, before SIGKILL


def task_environment():
    """The environment of a task: this graph_nn's, output unbuffered, and no TF_CONFIG: the flags give the
    cluster, and both together are refused."""
    environment = child_environment(PYTHONUNBUFFERED="1")
    environment.pop("TF_CONFIG", None)
    return environment


def task_commands(jobs, worker_args, ps_args, evaluator=False):
    """{task name: argv} of every task: `python -m graph_nn train --job-name ...` with the cluster's hosts; the
    evaluator, where there is one, takes the workers' flags."""
    hosts = dict(ps_hosts=",".join(jobs["ps"]), worker_hosts=",".join(jobs["worker"]))
    tasks = [(job, index) for job in ("ps", "worker") for index in range(len(jobs[job]))]
    return {
        f"{job} {index}": [
            *GRAPH_NN,
            "train",
            *command_line(dict(job_name=job, task_index=index, **hosts)),
            *(ps_args if job == "ps" else worker_args),
        ]
        for job, index in tasks + ([("evaluator", 0)] if evaluator else [])
    }


class Cluster:
    """The tasks of one cluster run, each a Child process, started, watched and ended."""

    def __init__(self, commands, out=None, err=None, stop=None):
        # A task's line that finds the pipe closed asks for a stop, which the main thread passes on (wait).
        self.stop = StopRequest() if stop is None else stop  # falsy until a stop is asked for
        self.out, self.err = self.stop.watching(out or sys.stdout), self.stop.watching(err or sys.stderr)
        self.children = {
            name: Child(
                name, argv, KILL_GRACE_S, out=self.out, err=self.err, env=task_environment(), die_with_parent=True
            )
            for name, argv in commands.items()
        }
        self.chief = self.children["worker 0"]
        self.workers = [child for name, child in self.children.items() if name.startswith("worker")]
        self.parameter_servers = [child for name, child in self.children.items() if name.startswith("ps")]
        self.evaluators = [child for name, child in self.children.items() if name.startswith("evaluator")]
        self.killing = self.stopping = False

    def wait(self):
        """Waits until every task has ended, passing on signals and ending the stragglers."""
        previous = {signum: signal.signal(signum, self.on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            while running(self.children.values()):
                if self.stop and not self.stopping:
                    self.stop_workers()
                self.end_stragglers()
                time.sleep(POLL_S)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        for child in self.children.values():
            child.finish_output()

    def on_signal(self, signum, frame):
        if not self.stop:
            self.stop.signum = signum
            self.stop_workers()
        else:  # a second Ctrl-C: no more waiting
            self.killing = True
            for child in self.children.values():
                child.kill()

    def stop_workers(self):
        self.stopping = True
        for worker in self.workers + self.evaluators:
            worker.send_signal(signal.SIGINT)  # the chief saves a checkpoint, every worker tells the ps it is done

    def end_stragglers(self):
        now = time.monotonic()
        if self.chief.ended_at is not None:
            if self.chief.returncode != 0:
                for worker in self.workers:
                    if worker.poll() is None and worker.stop_requested_at is None:
                        worker.send_signal(signal.SIGINT)  # a failed chief leaves nothing to train for
            # The evaluator, once the chief has recorded the run's end, evaluates the checkpoints it has not yet.
            self.terminate_after(self.workers + self.evaluators, self.chief.ended_at + WORKER_GRACE_S, now)
        last_worker = [worker.ended_at for worker in self.workers]
        if None not in last_worker:
            # A worker killed from outside never tells the ps that it is done, but one started again by hand may
            # still need the ps for a moment; after a Ctrl-C every worker has been told to stop.
            grace = 0 if self.stop else PS_GRACE_S
            self.terminate_after(self.parameter_servers, max(last_worker) + grace, now)

    @staticmethod
    def terminate_after(children, deadline, now):
        """SIGTERM to those still running past the deadline; SIGKILL KILL_GRACE_S later (Child.poll)."""
        if now > deadline:
            for child in children:
                child.stop(signal.SIGTERM)

    def failed(self):
        """The tasks that ended badly: a non-zero exit, not counting a ps the launcher had to end."""
        return [
            child
            for child in self.children.values()
            if child.returncode != 0 and not (child.stop_requested_at is not None and child in self.parameter_servers)
        ]


def run_cluster(jobs, worker_args, ps_args, run_dir, out=None, evaluator=False):
    """Starts the tasks of `jobs` (ps and worker addresses on this machine, and an evaluator where asked), waits
    for them (see the module's docstring), and says in one sentence which failed."""
    commands = task_commands(jobs, worker_args, ps_args, evaluator)
    stop = StopRequest()
    out = out or sys.stdout
    print(
        f"cluster: ps {', '.join(jobs['ps'])}; workers {', '.join(jobs['worker'])}"
        f"{'; an evaluator' if evaluator else ''}; each task runs "
        f"python {' '.join(commands['worker 0'][1:])} (with its own --job-name and --task-index)",
        file=stop.watching(out),
        flush=True,
    )
    cluster = Cluster(commands, out, stop=stop)
    cluster.wait()
    if stop:
        killed = "; every task was killed" if cluster.killing else ""
        raise Interrupted(
            f"stopped by {stop.name}{killed}; continue with: python run.py cluster --resume {run_dir}",
            stop.exit_code,
        )
    failed = cluster.failed()
    if failed:
        ended = "; ".join(child.describe_end() for child in failed)
        if RunDir(run_dir).checkpoint_state.exists():  # the chief saved one: the run can go on from it
            ended += f"; continue with: python run.py cluster --resume {run_dir}"
        error = ClusterFailed(ended + ".")
        if cluster.chief.returncode > 0:
            error.exit_code = cluster.chief.returncode
        raise error
    return 0


def local_jobs(num_ps, num_workers):
    """Addresses on free ports of 127.0.0.1 for num_ps parameter servers and num_workers workers."""
    ports = free_ports(num_ps + num_workers)
    return {
        "ps": [f"{LOOPBACK}:{port}" for port in ports[:num_ps]],
        "worker": [f"{LOOPBACK}:{port}" for port in ports[num_ps:]],
    }
