"""A TensorFlow cluster as this project runs it: which tasks exist, which one this process is, how it trains.

    ps         parameter servers: they hold the variables and apply the updates
    worker     workers: each computes gradients on its own batches; worker 0 is the chief
    evaluator  evaluates each checkpoint of the chief (graph_nn/distributed/evaluator.py); no gRPC server

A task is given by flags, as TensorFlow's mnist_replica.py takes it (--job-name, --task-index, --ps-hosts,
--worker-hosts), or by the TF_CONFIG environment variable, read as tf.distribute's TFConfigClusterResolver
reads it; both become the same ClusterTask.  No TensorFlow here: a mistake is answered before a server starts.

TF_CONFIG may also name the chief apart, as Kubeflow's TFJob writes it: a "chief" job (or the legacy "master")
of one task, which is worker 0 here, the "worker" job's tasks coming after it (TFJob's worker i is worker i + 1),
and an "evaluator" that is no part of the training cluster.  Every task of the cluster reads it the same way, so
the gRPC servers agree on the jobs ps and worker whatever names TF_CONFIG gave them.
"""

import dataclasses
import errno
import json
import re
import socket
import time

from graph_nn.core.errors import GraphNNError, abbreviated
from graph_nn.core.run_dir import RunDir, write_atomically
from graph_nn.data.batches import schedule_for

JOBS = ("ps", "worker")
CHIEF_JOBS = ("chief", "master")  # TFJob's names for a chief apart from the workers ("master": its legacy one)
TF_CONFIG_JOBS = (*JOBS, *CHIEF_JOBS, "evaluator")
HOST_PORT = re.compile(r"(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})")  # no int() of 5,000 digits
LOOPBACK = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class ClusterTask:
    """The cluster's hosts per job, and which task of it this process is."""

    jobs: dict  # {"ps": ["host:port", ...], "worker": [...]}
    job: str
    index: int

    @property
    def name(self):
        return f"{self.job} {self.index}"

    @property
    def address(self):
        return self.jobs[self.job][self.index]

    @property
    def port(self):
        return int(self.address.rsplit(":", 1)[1])

    @property
    def num_workers(self):
        return len(self.jobs["worker"])

    @property
    def num_ps(self):
        return len(self.jobs["ps"])

    @property
    def is_evaluator(self):
        return self.job == "evaluator"

    @property
    def is_chief(self):
        return self.job == "worker" and self.index == 0

    def tf_config(self):
        """This task as a TF_CONFIG value."""
        return json.dumps({"cluster": self.jobs, "task": {"type": self.job, "index": self.index}})


@dataclasses.dataclass(frozen=True)
class Replication:
    """How the workers' gradients reach the variables: "sync" aggregates replicas_to_aggregate gradients per
    update (SyncReplicasOptimizer), "async" applies each worker's gradient on its own."""

    mode: str = "sync"
    backup_workers: int = 0

    def replicas_to_aggregate(self, num_workers):
        return num_workers - self.backup_workers


def this_task(job_name, task_index, ps_hosts, worker_hosts, tf_config):
    """This process's task when the cluster is given by the flags or by TF_CONFIG's text, else None."""
    flags = (job_name, task_index, ps_hosts, worker_hosts)
    tf_config = (tf_config or "").strip()
    if any(flag is not None for flag in flags):
        if tf_config:
            raise GraphNNError("the cluster is given both by flags and by TF_CONFIG; give it one way.")
        return task_from_flags(*flags)
    return task_from_tf_config(tf_config) if tf_config else None


def replication_for(num_workers, asynchronous, backup_workers, wait_limit):
    """The Replication of --async / --backup-workers, checked with --wait-limit against the cluster's workers."""
    backups = backup_workers or 0
    if asynchronous and backups:
        raise GraphNNError("--backup-workers is for sync training; async training never waits for a worker.")
    if not 0 <= backups < num_workers:
        raise GraphNNError(
            f"--backup-workers must be from 0 to {num_workers - 1} with {num_workers} workers, got {backups}."
        )
    if wait_limit <= 0:
        raise GraphNNError(f"--wait-limit must be positive, got {wait_limit}.")
    return Replication("async" if asynchronous else "sync", backups)


def cluster_size(workers, ps):
    """(number of ps, number of workers) of a new local cluster: --workers N, --ps M (default 1)."""
    if workers is None:
        raise GraphNNError("python run.py cluster needs --workers N.")
    num_ps, num_workers = ps or 1, workers
    for flag, value in (("--workers", num_workers), ("--ps", num_ps)):
        if value <= 0:
            raise GraphNNError(f"{flag} must be positive, got {value}.")
    return num_ps, num_workers


# What a single process's loop does that a cluster's workers do not: the TrainConfig fields, and their values when off.
SINGLE_PROCESS_FIELDS = {
    "trace_steps": (),
    "profile_steps": (),
    "debug_dump": False,
    "steps_per_run": 1,
    "rewrites_off": (),
    "xla": False,
    "early_stop": None,
    # A sync worker's train op is its gradients' enqueue, applied by the chief's queue runner: the averages would
    # precede the update, and UPDATE_OPS would run there without a batch.
    "ema": None,
    "batch_norm": False,
    # A worker counts its own batches; its pipeline would have to follow the global step's jumps instead.
    "input": "feed",
    # A cluster replicates between processes; the towers' device functions would fight replica_device_setter's.
    "towers": 1,
}


def check_cluster_config(config, dataset):
    """What a cluster refuses of a configuration: the single process's instruments, and a schedule its workers'
    shards cannot follow."""
    schedule_for(config, dataset, task=0)  # refuses sequential batches, and batches or splits larger than the data
    for field, off in SINGLE_PROCESS_FIELDS.items():
        if (getattr(config, field) or off) != off:
            raise GraphNNError(
                f"--{field.replace('_', '-')} is for single-process runs, not a cluster's workers "
                f"(python run.py inspect --cluster shows a distributed step)."
            )


def parse_hosts(flag, text):
    """["host:port", ...] from a comma-separated flag value, or one sentence saying what is wrong."""
    hosts = [host.strip() for host in text.split(",")]
    for host in hosts:
        match = HOST_PORT.fullmatch(host)
        if not match or not 0 < int(match.group("port")) < 65536:
            raise GraphNNError(
                f"{flag} '{abbreviated(text)}': '{abbreviated(host)}' is not HOST:PORT (a port from 1 to 65535)."
            )
    return hosts


def check_jobs(jobs, source):
    """Both jobs present and non-empty, every address used once."""
    for job in JOBS:
        if not jobs.get(job):
            raise GraphNNError(f"no {job} task in {source}; a cluster needs at least one ps and one worker.")
    seen = set()
    for address in (address for job in JOBS for address in jobs[job]):
        if address in seen:
            raise GraphNNError(
                f"{abbreviated(address)} is given to two tasks in {source}; every task needs its own HOST:PORT."
            )
        seen.add(address)


def check_task(jobs, job, index, source, known=(*JOBS, "evaluator")):
    if job not in known:
        raise GraphNNError(
            f"{source}: unknown job name '{abbreviated(job)}'; choose ps, worker or evaluator (worker 0 is the chief)."
        )
    count = 1 if job == "evaluator" else len(jobs[job])  # the evaluator is one task, outside the gRPC cluster
    if not 0 <= index < count:
        raise GraphNNError(
            f"{source}: task index {index} is outside the {count} {job} "
            f"host{'s' if count > 1 else ''} (0 to {count - 1})."
        )


def task_from_flags(job_name, task_index, ps_hosts, worker_hosts):
    given = {"--job-name": job_name, "--task-index": task_index, "--ps-hosts": ps_hosts, "--worker-hosts": worker_hosts}
    missing = [flag for flag, value in given.items() if value is None]
    if missing:
        raise GraphNNError(
            f"a cluster task needs {', '.join(given)}; {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing."
        )
    jobs = {"ps": parse_hosts("--ps-hosts", ps_hosts), "worker": parse_hosts("--worker-hosts", worker_hosts)}
    check_jobs(jobs, "the host flags")
    check_task(jobs, job_name, task_index, f"--job-name {job_name} --task-index {task_index}")
    return ClusterTask(jobs, job_name, task_index)


def task_from_tf_config(text):
    """TF_CONFIG's {"cluster": {"ps": [...], "worker": [...]}, "task": {"type": ..., "index": ...}}, checked; the
    cluster may have a "chief" (or "master") job and an "evaluator" job, as TFJob writes them."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise GraphNNError(f"TF_CONFIG is not valid JSON ({e}).") from None
    except RecursionError:
        raise GraphNNError("TF_CONFIG is not a cluster's description (JSON nested thousands of levels deep).") from None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("cluster"), dict)
        or not isinstance(value.get("task"), dict)
    ):
        if isinstance(value, dict) and "sparseCluster" in value:
            raise GraphNNError(
                "TF_CONFIG has a sparseCluster (TFJob's enableDynamicWorker); a sync cluster needs every worker "
                "known, so set enableDynamicWorker to false."
            )
        raise GraphNNError('TF_CONFIG must be a JSON object with "cluster" and "task" objects.')
    cluster, task = value["cluster"], value["task"]
    for job, hosts in cluster.items():
        if job not in TF_CONFIG_JOBS:
            raise GraphNNError(
                f"TF_CONFIG's cluster has the job '{abbreviated(job)}'; this program runs ps, worker and chief (or "
                f"master) jobs, and an evaluator."
            )
        if not isinstance(hosts, list) or not all(isinstance(host, str) for host in hosts):
            raise GraphNNError(f'TF_CONFIG\'s cluster "{job}" must be a list of "HOST:PORT" strings.')
    given = {
        job: parse_hosts(f"TF_CONFIG's {job} hosts", ",".join(cluster[job])) if cluster.get(job) else []
        for job in TF_CONFIG_JOBS
    }
    chief = chief_job(given)
    jobs = {"ps": given["ps"], "worker": given[chief] + given["worker"] if chief else given["worker"]}
    check_jobs(jobs, "TF_CONFIG")
    job, index = task.get("type"), task.get("index")
    if not isinstance(job, str) or not isinstance(index, int) or isinstance(index, bool):
        raise GraphNNError('TF_CONFIG\'s task must be {"type": "ps", "worker" or "chief", "index": N}.')
    if value.get("rpc_layer", "grpc") != "grpc":
        raise GraphNNError(
            f"TF_CONFIG's rpc_layer '{abbreviated(value['rpc_layer'])}' is not one this program runs (grpc)."
        )
    if job == chief:
        check_task(given, job, index, "TF_CONFIG", known=CHIEF_JOBS)
        return ClusterTask(jobs, "worker", 0)
    check_task(given if chief else jobs, job, index, "TF_CONFIG")
    return ClusterTask(jobs, job, index + 1 if job == "worker" and chief else index)


def chief_job(given):
    """The name TF_CONFIG gives the chief's job ("chief" or "master"), or None where worker 0 is the chief."""
    named = [job for job in CHIEF_JOBS if given[job]]
    if len(named) > 1:
        raise GraphNNError("TF_CONFIG's cluster has both a chief and a master job; a cluster has one chief.")
    if named and len(given[named[0]]) != 1:
        raise GraphNNError(
            f"TF_CONFIG's {named[0]} job has {len(given[named[0]])} tasks; a cluster has one chief (its task 0)."
        )
    return named[0] if named else None


# ---- ports: TensorFlow's gRPC server listens on 0.0.0.0:PORT whatever host the cluster names ----------------


def port_is_free(port):
    """Could a TensorFlow server listen on `port`?  Tested as TensorFlow binds: the wildcard address with
    SO_REUSEADDR, then listen() (a bind to 127.0.0.1 alone would miss a listener on another address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            s.listen(1)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def check_port_free(task):
    if not port_is_free(task.port):
        raise GraphNNError(f"port {task.port} of {task.name} ({task.address}) is already in use.")


def free_ports(count):
    """count distinct ports that nobody listens on, chosen by the kernel."""
    ports = []
    while len(ports) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        if port not in ports and port_is_free(port):
            ports.append(port)
    return ports


def wait_for_listener(address, seconds, stopped=lambda: False):
    """Waits until something listens at HOST:PORT; False after `seconds` (or when stopped() says so).

    A session's first run waits for a missing parameter server forever, without any of TensorFlow's
    timeouts applying; a plain TCP connection tells whether it is there.
    """
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + seconds
    while not stopped():
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)
    return False


# ---- cluster.json: the cluster a run was trained on ----------------------------------------------------------


def save_cluster(run_dir, task, replication):
    record = dict(
        cluster=task.jobs,
        mode=replication.mode,
        workers=task.num_workers,
        replicas_to_aggregate=replication.replicas_to_aggregate(task.num_workers),
        backup_workers=replication.backup_workers,
    )
    write_atomically(RunDir(run_dir).cluster, json.dumps(record, indent=2) + "\n")


def load_cluster(run_dir):
    """(number of ps, number of workers, Replication) of the cluster that trained run_dir."""
    path = RunDir(run_dir).cluster
    if not path.is_file():
        raise GraphNNError(
            f"{run_dir}: not a cluster run (no cluster.json); continue it with python run.py --resume {run_dir}."
        )
    try:
        record = json.loads(path.read_text())
        return (len(record["cluster"]["ps"]), record["workers"], Replication(record["mode"], record["backup_workers"]))
    except (ValueError, KeyError, TypeError) as e:
        raise GraphNNError(f"{path}: unreadable cluster record ({e}).") from None


def resumed_cluster(run_dir, workers, ps, backup_workers, asynchronous):
    """(number of ps, number of workers, Replication) of the cluster that trained run_dir: a resumed cluster is
    the same cluster, so a flag given with another value is a mistake."""
    num_ps, num_workers, replication = load_cluster(run_dir)
    given = {
        "--workers": (workers, num_workers),
        "--ps": (ps, num_ps),
        "--backup-workers": (backup_workers, replication.backup_workers),
    }
    for flag, (value, saved) in given.items():
        if value is not None and value != saved:
            raise GraphNNError(
                f"{run_dir} was trained with {flag} {saved}, not {value}; a resumed cluster is the same cluster."
            )
    if asynchronous and replication.mode != "async":
        raise GraphNNError(f"{run_dir} was trained in sync mode; a resumed cluster trains as it did.")
    return num_ps, num_workers, replication
