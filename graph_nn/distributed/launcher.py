"""`python run.py cluster`: a whole cluster on this machine, as the processes a user would start by hand.

Each task is `python -m graph_nn train --job-name JOB --task-index N --ps-hosts ... --worker-hosts ...` on a free
port of 127.0.0.1, in its own process group; every line it prints comes out here prefixed with its task
(`[worker 1] ...`).  Ctrl-C (or SIGTERM) is passed on to the workers as SIGINT, so the chief saves a
checkpoint; a second Ctrl-C kills every task.  Every wait is bounded: once the chief has ended, the other
workers get WORKER_GRACE_S to end and the parameter servers PS_GRACE_S after the last worker, before they are
terminated.  A task whose launcher dies gets SIGTERM from the kernel (Linux), so nothing is left running.
No TensorFlow here.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

from graph_nn.core.config import command_line
from graph_nn.core.errors import ClusterFailed, Interrupted
from graph_nn.core.processes import GRAPH_NN, child_environment
from graph_nn.distributed.spec import LOOPBACK, free_ports

WORKER_GRACE_S = 60  # the other workers' time to end after the chief has (their steps time out within 5 s)
PS_GRACE_S = 15  # the parameter servers' time to end after the last worker (they end as soon as all are done)
KILL_GRACE_S = 10  # after SIGTERM, before SIGKILL
PR_SET_PDEATHSIG = 1


def task_environment():
    """The environment of a task: this graph_nn's, output unbuffered, and no TF_CONFIG: the flags give the
    cluster, and both together are refused."""
    environment = child_environment(PYTHONUNBUFFERED="1")
    environment.pop("TF_CONFIG", None)
    return environment


def task_commands(jobs, worker_args, ps_args):
    """{task name: argv} of every task: `python -m graph_nn train --job-name ...` with the cluster's hosts."""
    hosts = dict(ps_hosts=",".join(jobs["ps"]), worker_hosts=",".join(jobs["worker"]))
    return {
        f"{job} {index}": [
            *GRAPH_NN,
            "train",
            *command_line(dict(job_name=job, task_index=index, **hosts)),
            *(ps_args if job == "ps" else worker_args),
        ]
        for job in ("ps", "worker")
        for index in range(len(jobs[job]))
    }


def die_with_parent():
    """In the child, before exec: SIGTERM when the launcher dies, however it dies (Linux's PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Task:
    """One task's process and the threads that pass its lines on, prefixed with its name."""

    def __init__(self, name, argv, out, err, lock):
        self.name = name
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="backslashreplace",
            env=task_environment(),
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        self.readers = [
            threading.Thread(target=self.forward, args=(pipe, sink, lock), daemon=True)
            for pipe, sink in ((self.process.stdout, out), (self.process.stderr, err))
        ]
        for reader in self.readers:
            reader.start()
        self.ended_at = None
        self.terminated = False  # ended by the launcher, after its grace time

    def forward(self, pipe, sink, lock):
        for line in pipe:
            with lock:
                sink.write(f"[{self.name}] {line}")
                sink.flush()

    def poll(self):
        code = self.process.poll()
        if code is not None and self.ended_at is None:
            self.ended_at = time.monotonic()
        return code

    def signal(self, signum):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def describe_end(self):
        code = self.process.returncode
        if code < 0:
            return f"{self.name} was killed by {signal.Signals(-code).name}"
        return f"{self.name} exited with {code}"


class Cluster:
    """The tasks of one cluster run, started, watched and ended."""

    def __init__(self, commands, out=None, err=None):
        self.out, self.err = out or sys.stdout, err or sys.stderr
        lock = threading.Lock()
        self.tasks = {name: Task(name, argv, self.out, self.err, lock) for name, argv in commands.items()}
        self.chief = self.tasks["worker 0"]
        self.workers = [task for name, task in self.tasks.items() if name.startswith("worker")]
        self.parameter_servers = [task for name, task in self.tasks.items() if name.startswith("ps")]
        self.stop_signal = None
        self.killing = False

    def wait(self):
        """Waits until every task has ended, passing on signals and ending the stragglers."""
        previous = {signum: signal.signal(signum, self.on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            while [task for task in self.tasks.values() if task.poll() is None]:  # every task polled, each time
                self.end_stragglers()
                time.sleep(0.2)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        for task in self.tasks.values():
            for reader in task.readers:
                reader.join(5)

    def on_signal(self, signum, frame):
        if self.stop_signal is None:
            self.stop_signal = signum
            for worker in self.workers:
                worker.signal(signal.SIGINT)  # the chief saves a checkpoint, every worker tells the ps it is done
        else:  # a second Ctrl-C: no more waiting
            self.killing = True
            for task in self.tasks.values():
                task.signal(signal.SIGKILL)

    def end_stragglers(self):
        now = time.monotonic()
        if self.chief.ended_at is not None:
            if self.chief.process.returncode != 0:
                for worker in self.workers:
                    if worker.poll() is None and not worker.terminated:
                        worker.signal(signal.SIGINT)  # a failed chief leaves nothing to train for
            self.terminate_after(self.workers, self.chief.ended_at + WORKER_GRACE_S, now)
        last_worker = [worker.ended_at for worker in self.workers]
        if None not in last_worker:
            # A worker killed from outside never tells the ps that it is done, but one started again by hand may
            # still need the ps for a moment; after a Ctrl-C every worker has been told to stop.
            grace = 0 if self.stop_signal else PS_GRACE_S
            self.terminate_after(self.parameter_servers, max(last_worker) + grace, now)

    @staticmethod
    def terminate_after(tasks, deadline, now):
        for task in tasks:
            if task.poll() is None and now > deadline:
                task.signal(signal.SIGKILL if task.terminated and now > deadline + KILL_GRACE_S else signal.SIGTERM)
                task.terminated = True

    def failed(self):
        """The tasks that ended badly: a non-zero exit, not counting a ps the launcher had to end."""
        return [
            task
            for task in self.tasks.values()
            if task.process.returncode != 0 and not (task.terminated and task in self.parameter_servers)
        ]


def run_cluster(jobs, worker_args, ps_args, run_dir, out=None):
    """Starts the tasks of `jobs` (ps and worker addresses on this machine), waits for them (see the module's
    docstring), and says in one sentence which failed."""
    commands = task_commands(jobs, worker_args, ps_args)
    out = out or sys.stdout
    print(
        f"cluster: ps {', '.join(jobs['ps'])}; workers {', '.join(jobs['worker'])}; each task runs "
        f"python {' '.join(commands['worker 0'][1:])} (with its own --job-name and --task-index)",
        file=out,
        flush=True,
    )
    cluster = Cluster(commands, out)
    cluster.wait()
    if cluster.stop_signal is not None:
        killed = "; every task was killed" if cluster.killing else ""
        raise Interrupted(
            f"stopped by {signal.Signals(cluster.stop_signal).name}{killed}; continue with: "
            f"python run.py cluster --resume {run_dir}",
            128 + cluster.stop_signal,
        )
    failed = cluster.failed()
    if failed:
        error = ClusterFailed("; ".join(task.describe_end() for task in failed) + ".")
        if cluster.chief.process.returncode > 0:
            error.exit_code = cluster.chief.process.returncode
        raise error
    return 0


def local_jobs(num_ps, num_workers):
    """Addresses on free ports of 127.0.0.1 for num_ps parameter servers and num_workers workers."""
    ports = free_ports(num_ps + num_workers)
    return {
        "ps": [f"{LOOPBACK}:{port}" for port in ports[:num_ps]],
        "worker": [f"{LOOPBACK}:{port}" for port in ports[num_ps:]],
    }
