"""Distributed training through the real CLI: 1 ps + 2 or 3 workers as separate processes on 127.0.0.1, inside a
private network namespace (`unshare -n`) where the machine allows one, so that no port is reachable from
outside while a test runs; where it does not, the tasks listen on this machine's 127.0.0.1 (and, as TensorFlow's
servers do, on its other interfaces).  Every wait has a timeout; every process a test starts is killed at its end.
"""

import contextlib
import itertools
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from graph_nn.core.config import make_config, save_config
from graph_nn.distributed.spec import free_ports
from graph_nn.graph.model import build_graph
from tests.conftest import IMPORTED_AFTER, ROOT

RUN_PY = os.path.join(ROOT, "run.py")
# mlp64 at batch 1000 (60 steps an epoch): a few milliseconds a step, so that a cluster's time is its start-up.
FLAGS = (
    "--model",
    "mlp64",
    "--batch-size",
    "1000",
    "--eval-every",
    "100",
    "--log-every",
    "20",
    "--histogram-every",
    "100",
    "--print-every",
    "10",
)
WAIT_S = 240  # for anything a cluster does; generous, as the machine's two cores are shared


@pytest.fixture(scope="module")
def netns():
    """The path of a new network namespace's handle with its loopback up, or None where none can be made."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    try:
        holder = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", f"{ip} link set lo up && echo up && exec cat"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    except FileNotFoundError:
        yield None
        return
    namespace = f"/proc/{holder.pid}/ns/net"
    ready = holder.stdout.readline().strip() == "up"
    if ready:  # and entered as every process of the tests will enter it
        entered = subprocess.run(["nsenter", f"--net={namespace}", "--", "true"], capture_output=True, timeout=30)
        ready = entered.returncode == 0
    yield namespace if ready else None
    holder.stdin.close()
    holder.wait(10)


class Processes:
    """The processes a test starts, each in its own process group, with its output in a file."""

    def __init__(self, netns, directory):
        self.netns, self.directory, self.started = netns, directory, []

    def start(self, name, *args, env=None):
        return self.start_command(name, [sys.executable, RUN_PY, *map(str, args)], env)

    def start_command(self, name, argv, env=None):
        if self.netns:
            argv = ["nsenter", f"--net={self.netns}", "--", *argv]
        environment = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        log = self.directory / f"{name}-{len(self.started)}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=environment, start_new_session=True
            )
        process.log = log
        self.started.append(process)
        return process

    def kill_all(self):
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)


@pytest.fixture
def processes(netns, tmp_path):
    started = Processes(netns, tmp_path)
    yield started
    started.kill_all()


def output(process):
    return process.log.read_text()


def wait_for(process, pattern, timeout=WAIT_S):
    """The first match of `pattern` in the process's output, waiting for it as long as the process runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, output(process), re.M)
        if match:
            return match
        if process.poll() is not None:
            match = re.search(pattern, output(process), re.M)
            assert match, f"ended ({process.returncode}) without {pattern!r}:\n{output(process)}"
            return match
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} within {timeout} s:\n{output(process)}")


def steps_printed(process, prefix=""):
    """The global steps of a worker's `step N/TOTAL` lines (prefix: "[worker 0] " in a launcher's output)."""
    return [int(step) for step in re.findall(rf"^{re.escape(prefix)}step (\d+)/", output(process), re.M)]


def wait_for_step(process, step, prefix="", timeout=WAIT_S):
    """Waits until the process has printed a global step >= step; returns the last one printed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        printed = steps_printed(process, prefix)
        if printed and printed[-1] >= step:
            return printed[-1]
        assert process.poll() is None, f"ended ({process.returncode}) before step {step}:\n{output(process)}"
        time.sleep(0.2)
    raise AssertionError(f"no step {step} within {timeout} s:\n{output(process)}")


def ended(process, timeout=WAIT_S):
    process.wait(timeout)
    return process.returncode


def still_running(text, netns):
    """{pid: command line} of the graph_nn processes in network namespace netns (None: this one) whose command line
    holds `text`: another module's cluster, in a namespace of its own, may listen on the same port."""
    namespace = os.readlink(netns or "/proc/self/ns/net")
    found = {}
    for proc in pathlib.Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                inside = os.readlink(proc / "ns" / "net") == namespace
            except OSError:
                continue
            if inside and text in command and ("run.py" in command or "graph_nn" in command):
                found[int(proc.name)] = command
    return found


def checkpoint_steps(run_dir, saved=True):
    """The global steps of the run's checkpoints: those saved in them, or those in their names (model.ckpt-N).

    In async training they may differ: a checkpoint is no atomic snapshot, another worker's update can land while
    the chief saves."""
    paths = tf.train.get_checkpoint_state(str(run_dir / "checkpoints")).all_model_checkpoint_paths
    if saved:
        return [int(tf.train.load_checkpoint(path).get_tensor("global_step")) for path in paths]
    return [int(path.rsplit("-", 1)[1]) for path in paths]


def wait_for_checkpoint(process, run_dir, step, timeout=WAIT_S):
    """Waits until the run has a checkpoint of a step >= step (by its name), while the process runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run_dir / "checkpoints" / "checkpoint").exists() and checkpoint_steps(run_dir, saved=False)[-1] >= step:
            return
        assert process.poll() is None, f"ended ({process.returncode}) before a checkpoint of step {step}"
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint of step {step} within {timeout} s:\n{output(process)}")


def scalars(directory, tag):
    events = event_accumulator.EventAccumulator(str(directory), size_guidance={event_accumulator.SCALARS: 0})
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def hosts(count, first=0):
    return ",".join(f"127.0.0.1:{port}" for port in free_ports(first + count)[first:])


def task_flags(job, index, ps, workers):
    return ["--job-name", job, "--task-index", index, "--ps-hosts", ps, "--worker-hosts", workers]


def tf_config(job, index, ps, workers):
    return {
        "TF_CONFIG": json.dumps(
            {"cluster": {"ps": ps.split(","), "worker": workers.split(",")}, "task": {"type": job, "index": index}}
        )
    }


def test_sync_goes_on_with_a_backup_worker_waits_without_two_and_restarted_workers_rejoin(processes, tmp_path):
    """1 ps + 3 workers, sync with one backup worker (each update the mean of 2 of 3 gradients); ps and worker 0
    given by flags, workers 1 and 2 by TF_CONFIG: one cluster, however its tasks were told about it."""
    ps, workers = hosts(1), hosts(3, first=1)
    run_dir = tmp_path / "run"
    flags = [*FLAGS, "--steps", 400, "--run-dir", run_dir, "--backup-workers", 1, "--wait-limit", 120]
    ps_task = processes.start("ps", *task_flags("ps", 0, ps, workers), "--wait-limit", 120)
    chief = processes.start("chief", *task_flags("worker", 0, ps, workers), *flags)
    others = {
        i: processes.start(f"worker{i}", "train", *flags, env=tf_config("worker", i, ps, workers)) for i in (1, 2)
    }
    wait_for_step(chief, 50)
    others[2].send_signal(signal.SIGKILL)
    killed_at = steps_printed(chief)[-1]
    # With worker 2 gone, workers 0 and 1 still make the 2 gradients of each update.
    wait_for_step(chief, killed_at + 50)
    others[1].send_signal(signal.SIGKILL)
    waiting = wait_for(chief, r"^waiting for the other workers' gradients: global step (\d+) has not moved")
    stalled_at = int(waiting[1])
    assert steps_printed(chief)[-1] <= stalled_at
    others = {
        i: processes.start(f"worker{i}-again", "train", *flags, env=tf_config("worker", i, ps, workers)) for i in (1, 2)
    }
    wait_for(others[1], r"^step \d+/400")  # they rejoin: the cluster trains again
    for process in (chief, *others.values(), ps_task):
        assert ended(process) == 0, output(process)
    assert checkpoint_steps(run_dir)[-1] == 400  # sync ends exactly at the last global step
    assert "ps 0: every worker is done" in output(ps_task)
    report = re.search(r"^Global step 400 \(sync: each update the mean of 2 gradients\); (.*)$", output(chief), re.M)
    batches = [int(n.replace(",", "")) for n in re.findall(r"worker \d: ([\d,]+) batches", report[1])]
    assert len(batches) == 3 and 2 * 400 <= sum(batches) <= 3 * 400
    assert "Test accuracy: " in output(chief)


@pytest.fixture(scope="module")
def stopped_and_resumed(netns, tmp_path_factory):
    """`python run.py cluster --workers 2 --async`: worker 1 killed (SIGKILL) while the chief goes on, then the
    launcher stopped with SIGINT (Ctrl-C); `cluster --resume RUN`, whose launcher is killed (SIGKILL); then
    `cluster --resume RUN` to the end."""
    directory = tmp_path_factory.mktemp("cluster")
    started = Processes(netns, directory)
    chief = "[worker 0] "
    try:
        launcher = started.start(
            "cluster",
            "cluster",
            "--workers",
            2,
            "--async",
            *FLAGS,
            "--steps",
            600,
            "--optimizer",
            "adam",
            "--semantics",
            "keras",
            "--logdir",
            directory / "logs",
        )
        ps_address = wait_for(launcher, r"^cluster: ps (\S+);")[1]
        wait_for(launcher, r"^\[worker 1\] step \d+/600")
        (worker_1,) = [pid for pid, command in still_running(ps_address, netns).items() if "--task-index 1 " in command]
        os.kill(worker_1, signal.SIGKILL)
        killed_at = wait_for_step(launcher, 0, chief)
        went_on_to = wait_for_step(launcher, killed_at + 100, chief)
        launcher.send_signal(signal.SIGINT)
        stopped = dict(
            code=ended(launcher),
            output=output(launcher),
            running=still_running(ps_address, netns),
            killed_at=killed_at,
            went_on_to=went_on_to,
        )
        (run_dir,) = (directory / "logs").iterdir()
        stopped["checkpoints"], stopped["names"] = checkpoint_steps(run_dir), checkpoint_steps(run_dir, saved=False)

        launcher = started.start("resume", "cluster", "--resume", run_dir)
        ps_address = wait_for(launcher, r"^cluster: ps (\S+);")[1]
        deadline = time.monotonic() + WAIT_S
        while checkpoint_steps(run_dir, saved=False)[-1] <= stopped["names"][-1] and time.monotonic() < deadline:
            assert launcher.poll() is None, output(launcher)
            time.sleep(0.2)
        launcher.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + WAIT_S
        while still_running(ps_address, netns) and time.monotonic() < deadline:
            time.sleep(0.5)
        orphans = still_running(ps_address, netns)

        resumed = started.start("resume-again", "cluster", "--resume", run_dir)
        code = ended(resumed)
        ps_address = re.search(r"^cluster: ps (\S+);", output(resumed), re.M)[1]
        yield dict(
            stopped=stopped,
            orphans=orphans,
            run_dir=run_dir,
            code=code,
            output=output(resumed),
            running=still_running(ps_address, netns),
        )
    finally:
        started.kill_all()


def test_async_training_goes_on_without_a_killed_worker(stopped_and_resumed):
    stopped = stopped_and_resumed["stopped"]
    assert stopped["went_on_to"] >= stopped["killed_at"] + 100
    assert "[worker 1] graph-nn: error" not in stopped["output"]  # it could say nothing: it was killed


def test_ctrl_c_stops_every_task_after_the_chief_saved_a_checkpoint(stopped_and_resumed):
    stopped, run_dir = stopped_and_resumed["stopped"], stopped_and_resumed["run_dir"]
    assert stopped["code"] == 130, stopped["output"]
    last_line = stopped["output"].strip().splitlines()[-1]
    assert last_line == f"graph-nn: error: stopped by SIGINT; continue with: python run.py cluster --resume {run_dir}"
    saved_at = int(
        re.search(
            r"^\[worker 0\] graph-nn: error: stopped by SIGINT at step (\d+) after saving its "
            r"checkpoint",
            stopped["output"],
            re.M,
        )[1]
    )
    assert stopped["names"][-1] == saved_at >= stopped["went_on_to"]
    assert stopped["checkpoints"][-1] == saved_at  # worker 1 was dead: no other update landed during the save
    # Worker 1, killed, never told the ps it was done: the launcher ended the ps.
    assert re.search(r"^\[ps 0\] ps 0 stopped by SIGTERM", stopped["output"], re.M)
    assert stopped["running"] == {}


def test_the_tasks_of_a_killed_launcher_end_too(stopped_and_resumed):
    assert stopped_and_resumed["orphans"] == {}


def test_a_stopped_cluster_resumes_from_the_chiefs_checkpoint_to_the_end(stopped_and_resumed):
    stopped, run_dir = stopped_and_resumed["stopped"], stopped_and_resumed["run_dir"]
    text = stopped_and_resumed["output"]
    assert stopped_and_resumed["code"] == 0, text
    resumed_at = int(re.search(rf"^\[worker 0\] Resuming {re.escape(str(run_dir))} at step (\d+)/600", text, re.M)[1])
    assert resumed_at > stopped["checkpoints"][-1]  # the second session's checkpoints, kept when it was killed
    # Async: both workers may be making a step when the global step reaches 600, and a checkpoint is no atomic
    # snapshot (the other worker's update can land while the chief saves).
    assert 600 <= checkpoint_steps(run_dir)[-1] <= 601
    report = re.search(
        r"^\[worker 0\] Global step (\d+) \(async\); worker 0: ([\d,]+) batches, [\d,]+ examples, "
        r"worker 1: ([\d,]+) batches",
        text,
        re.M,
    )
    assert 600 <= int(report[1]) <= 601
    assert re.search(r"^\[worker 0\] Test accuracy: 0\.9\d+", text, re.M)
    assert stopped_and_resumed["running"] == {}


def test_only_the_chief_writes_checkpoints_and_the_run_records_its_cluster(stopped_and_resumed):
    run_dir = stopped_and_resumed["run_dir"]
    assert {path.parent for path in run_dir.rglob("model.ckpt-*")} == {run_dir / "checkpoints"}
    assert all(path.name.startswith("events.out.tfevents.") for path in (run_dir / "worker-1").iterdir())
    record = json.loads((run_dir / "cluster.json").read_text())
    assert record["mode"] == "async" and record["workers"] == 2 and len(record["cluster"]["ps"]) == 1
    assert json.loads((run_dir / "config.json").read_text())["model"] == "mlp64"
    for picture in ("accuracy", "loss", "misclassified", "confusion_matrix"):
        assert (run_dir / f"{picture}.png").is_file()


def test_every_worker_writes_its_own_scalars_and_the_chief_the_runs(stopped_and_resumed):
    run_dir = stopped_and_resumed["run_dir"]
    for worker in (0, 1):
        local_steps = scalars(run_dir / f"worker-{worker}", "local_steps")
        assert local_steps and all(later > earlier for (_, earlier), (_, later) in zip(local_steps, local_steps[1:]))
        assert scalars(run_dir / f"worker-{worker}", "steps_per_second")
        assert all(0 < loss < 3 for _, loss in scalars(run_dir / f"worker-{worker}", "loss"))
    assert [step for step, _ in scalars(run_dir / "validation", "accuracy")][-1] >= 600
    assert scalars(run_dir / "train", "loss")


def test_a_restarted_chief_takes_up_its_duties_and_a_dead_ps_ends_every_worker_in_a_sentence(processes, tmp_path):
    """Async: worker 1 goes on while the chief is killed (SIGKILL) and started again; then the ps is killed."""
    ps, workers = hosts(1), hosts(2, first=1)
    run_dir = tmp_path / "run"
    flags = [
        *FLAGS,
        "--async",
        "--steps",
        100000,
        "--checkpoint-every",
        20,
        "--optimizer",
        "momentum",
        "--lr",
        0.05,
        "--run-dir",
        run_dir,
    ]
    ps_task = processes.start("ps", *task_flags("ps", 0, ps, workers))
    chief, other = (processes.start(f"worker{i}", *task_flags("worker", i, ps, workers), *flags) for i in (0, 1))
    wait_for(other, r"^step \d+/100000")
    chief.send_signal(signal.SIGKILL)
    chief = processes.start("chief-again", *task_flags("worker", 0, ps, workers), *flags)
    continuing = wait_for(chief, r"^the variables are on the parameter servers already: continuing at step (\d+)$")
    # Its own checkpoint, not a printed step: worker 1 may carry the global step far ahead while the chief starts.
    wait_for_checkpoint(chief, run_dir, int(continuing[1]) + 20)
    ps_task.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    codes = [ended(chief, timeout=60), ended(other, timeout=60)]
    assert codes == [4, 4] and time.monotonic() - killed < 60
    saved = checkpoint_steps(run_dir, saved=False)[-1]
    assert saved >= int(continuing[1]) + 20  # the restarted chief's checkpoints
    assert output(chief).strip().splitlines()[-1] == (
        f"graph-nn: error: ps 0 ({ps}) went away (UnavailableError); the last checkpoint (step {saved}) is kept in "
        f"{run_dir}"
    )
    assert output(other).strip().splitlines()[-1] == f"graph-nn: error: ps 0 ({ps}) went away (UnavailableError)"
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run_dir / "checkpoints")))
    assert all(np.isfinite(reader.get_tensor(name)).all() for name in reader.get_variable_to_shape_map())


def test_a_worker_that_joins_a_restored_cluster_late_leaves_no_rolled_back_point_in_tensorboard(processes, tmp_path):
    """Async: the chief killed (SIGKILL), worker 1 trains on past the chief's last checkpoint, then the ps killed.
    Started again, the chief restores that checkpoint and trains alone for a while before worker 1 joins: the
    points worker 1's first process wrote past the checkpoint belong to updates the cluster lost, and TensorBoard
    must drop them (worker 1's START goes at the step the chief restored, not at the step where it joins)."""
    ps, workers = hosts(1), hosts(2, first=1)
    run_dir = tmp_path / "run"
    flags = [*FLAGS, "--async", "--steps", 100000, "--checkpoint-every", 50, "--run-dir", run_dir]
    ps_task = processes.start("ps", *task_flags("ps", 0, ps, workers))
    chief, other = (processes.start(f"worker{i}", *task_flags("worker", i, ps, workers), *flags) for i in (0, 1))
    wait_for(other, r"^step \d+/100000")
    wait_for_checkpoint(chief, run_dir, 50)
    chief.send_signal(signal.SIGKILL)
    ended(chief)
    saved = checkpoint_steps(run_dir, saved=False)[-1]
    wait_for_step(other, saved + 100)  # worker 1 alone: its points past `saved` are for updates the ps will lose
    ps_task.send_signal(signal.SIGKILL)
    assert ended(other) == 4, output(other)
    lost = [step for step, _ in scalars(run_dir / "worker-1", "local_steps") if step > saved + 40]
    assert lost, "worker 1 wrote no point past the chief's checkpoint"

    processes.start("ps-again", *task_flags("ps", 0, ps, workers))
    chief = processes.start("chief-again", *task_flags("worker", 0, ps, workers), *flags)
    restored = int(wait_for(chief, rf"^Resuming {re.escape(str(run_dir))} at step (\d+)/100000")[1])
    assert saved <= restored < lost[0]
    joined = wait_for_step(chief, lost[-1] + 100)  # past every point of worker 1's first process
    other = processes.start("worker1-again", *task_flags("worker", 1, ps, workers), *flags)
    wait_for_step(other, wait_for_step(other, 0) + 60)
    for worker in (other, chief):
        worker.send_signal(signal.SIGINT)
        assert ended(worker) == 130, output(worker)

    points = scalars(run_dir / "worker-1", "local_steps")
    assert [step for step, _ in points if restored < step < joined] == [], points
    assert all(later > earlier for (_, earlier), (_, later) in zip(points, points[1:])), points
    assert points[-1][0] > joined


WORKERS = "127.0.0.1:2223,127.0.0.1:2224"
TASK = ["--ps-hosts", "127.0.0.1:2222", "--worker-hosts", WORKERS]
BAD_INPUT = [  # (id, arguments, TF_CONFIG, the one sentence)
    (
        "host without a port",
        ["--job-name", "ps", "--task-index", "0", "--ps-hosts", "localhost", "--worker-hosts", WORKERS],
        None,
        "--ps-hosts 'localhost': 'localhost' is not HOST:PORT (a port from 1 to 65535).",
    ),
    (
        "port out of range",
        ["--job-name", "ps", "--task-index", "0", "--ps-hosts", "127.0.0.1:70000", "--worker-hosts", WORKERS],
        None,
        "'127.0.0.1:70000' is not HOST:PORT",
    ),
    (
        "empty host in the list",
        ["--job-name", "ps", "--task-index", "0", "--ps-hosts", "127.0.0.1:2222,", "--worker-hosts", WORKERS],
        None,
        "'' is not HOST:PORT",
    ),
    (
        "a flag missing",
        ["--job-name", "worker", "--task-index", "0", "--worker-hosts", WORKERS],
        None,
        "a cluster task needs --job-name, --task-index, --ps-hosts, --worker-hosts; --ps-hosts is missing.",
    ),
    (
        "task index outside the list",
        ["--job-name", "worker", "--task-index", "2", *TASK],
        None,
        "--job-name worker --task-index 2: task index 2 is outside the 2 worker hosts (0 to 1).",
    ),
    (
        "unknown job name",
        ["--job-name", "chief", "--task-index", "0", *TASK],
        None,
        "--job-name chief --task-index 0: unknown job name 'chief'; choose ps, worker or evaluator (worker 0 is the "
        "chief).",
    ),
    (
        "an address twice",
        ["--job-name", "ps", "--task-index", "0", "--ps-hosts", "127.0.0.1:2223", "--worker-hosts", WORKERS],
        None,
        "127.0.0.1:2223 is given to two tasks in the host flags",
    ),
    (
        "port in use",
        ["--job-name", "ps", "--task-index", "0", "--ps-hosts", "127.0.0.1:{port}", "--worker-hosts", WORKERS],
        None,
        "port {port} of ps 0 (127.0.0.1:{port}) is already in use.",
    ),
    ("TF_CONFIG not JSON", [], '{"cluster": ', "TF_CONFIG is not valid JSON (Expecting value: line 1 column 12"),
    ("TF_CONFIG a list", [], "[1, 2]", 'TF_CONFIG must be a JSON object with "cluster" and "task" objects.'),
    (
        "TF_CONFIG without task",
        [],
        '{"cluster": {"ps": ["127.0.0.1:2222"], "worker": ["127.0.0.1:2223"]}}',
        'TF_CONFIG must be a JSON object with "cluster" and "task" objects.',
    ),
    (
        "TF_CONFIG job as a string",
        [],
        '{"cluster": {"ps": "127.0.0.1:2222", "worker": ["127.0.0.1:2223"]}, "task": {"type": "ps", "index": 0}}',
        'TF_CONFIG\'s cluster "ps" must be a list of "HOST:PORT" strings.',
    ),
    (
        "TF_CONFIG index outside",
        [],
        '{"cluster": {"ps": ["127.0.0.1:2222"], "worker": ["127.0.0.1:2223"]}, "task": {"type": "worker", "index": 1}}',
        "TF_CONFIG: task index 1 is outside the 1 worker host (0 to 0).",
    ),
    (
        "TF_CONFIG two chiefs",
        [],
        '{"cluster": {"chief": ["127.0.0.1:2221", "127.0.0.1:2220"], "ps": ["127.0.0.1:2222"], "worker": '
        '["127.0.0.1:2223"]}, "task": {"type": "chief", "index": 0}}',
        "TF_CONFIG's chief job has 2 tasks; a cluster has one chief (its task 0).",
    ),
    (
        "TF_CONFIG chief and master",
        [],
        '{"cluster": {"chief": ["127.0.0.1:2221"], "master": ["127.0.0.1:2220"], "ps": ["127.0.0.1:2222"]}, '
        '"task": {"type": "ps", "index": 0}}',
        "TF_CONFIG's cluster has both a chief and a master job; a cluster has one chief.",
    ),
    (
        "TF_CONFIG another job",
        [],
        '{"cluster": {"ps": ["127.0.0.1:2222"], "worker": ["127.0.0.1:2223"], "client": ["127.0.0.1:2224"]}, '
        '"task": {"type": "ps", "index": 0}}',
        "TF_CONFIG's cluster has the job 'client'; this program runs ps, worker and chief (or master) jobs, and an "
        "evaluator.",
    ),
    (
        "TF_CONFIG sparse",
        [],
        '{"sparseCluster": {"ps": ["127.0.0.1:2222"], "worker": {"1": "127.0.0.1:2223"}}, '
        '"task": {"type": "worker", "index": 1}}',
        "TF_CONFIG has a sparseCluster (TFJob's enableDynamicWorker); a sync cluster needs every worker known, so "
        "set enableDynamicWorker to false.",
    ),
    (
        "TF_CONFIG and flags",
        ["--job-name", "ps", "--task-index", "0", *TASK],
        '{"cluster": {"ps": ["127.0.0.1:2222"], "worker": ["127.0.0.1:2223"]}, "task": {"type": "ps", "index": 0}}',
        "the cluster is given both by flags and by TF_CONFIG; give it one way.",
    ),
    (
        "a worker without a run directory",
        ["--job-name", "worker", "--task-index", "1", *TASK],
        None,
        "a worker needs --run-dir DIR: the run directory its cluster's workers share"
        " (python run.py cluster picks one).",
    ),
    (
        "an evaluator without a run directory",
        [],
        '{"cluster": {"ps": ["127.0.0.1:2222"], "chief": ["127.0.0.1:2223"]}, '
        '"task": {"type": "evaluator", "index": 0}}',
        "an evaluator needs --run-dir DIR: the run directory its cluster's workers share"
        " (python run.py cluster picks one).",
    ),
    (
        "too many backup workers",
        ["--job-name", "worker", "--task-index", "0", *TASK, "--backup-workers", "2"],
        None,
        "--backup-workers must be from 0 to 1 with 2 workers, got 2.",
    ),
    (
        "backup workers in async",
        ["cluster", "--workers", "2", "--async", "--backup-workers", "1"],
        None,
        "--backup-workers is for sync training; async training never waits for a worker.",
    ),
    ("no workers", ["cluster", "--workers", "0"], None, "--workers must be positive, got 0."),
    ("no workers given", ["cluster"], None, "python run.py cluster needs --workers N."),
    (
        "sequential batches in a cluster",
        ["cluster", "--workers", "2", "--preset", "tf1"],
        None,
        "sequential batching walks the training set in one order for one process; a cluster's workers draw "
        "shuffled batches (--batching shuffle).",
    ),
    ("a cluster flag without a cluster", ["--async"], None, "--async is for a cluster's tasks"),
    (
        "steps per run in a cluster",
        ["cluster", "--workers", "2", "--steps-per-run", "4"],
        None,
        "--steps-per-run is for single-process runs, not a cluster's workers",
    ),
    (
        "early stopping in a worker",
        ["--job-name", "worker", "--task-index", "0", *TASK, "--run-dir", "{single}/x", "--early-stop", "3"],
        None,
        "--early-stop is for single-process runs",
    ),
    (
        "cluster --resume of a single-process run",
        ["cluster", "--resume", "{single}"],
        None,
        "{single}: not a cluster run (no cluster.json); continue it with python run.py --resume {single}.",
    ),
    (
        "--resume of a cluster's run",
        ["--resume", "{clustered}"],
        None,
        "{clustered} was trained by a cluster; continue it with: python run.py cluster --resume {clustered}",
    ),
    (
        "cluster --resume with other workers",
        ["cluster", "--resume", "{clustered}", "--workers", "3"],
        None,
        "{clustered} was trained with --workers 2, not 3; a resumed cluster is the same cluster.",
    ),
]


@pytest.mark.parametrize(
    "args,tf_config_value,message", [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT]
)
def test_bad_cluster_input_is_answered_in_one_sentence_before_tensorflow_is_imported(
    args, tf_config_value, message, tmp_path
):
    runs = {}
    for name, cluster_record in (
        ("single", None),
        (
            "clustered",
            {
                "cluster": {"ps": ["127.0.0.1:1"], "worker": ["127.0.0.1:2", "127.0.0.1:3"]},
                "mode": "sync",
                "workers": 2,
                "replicas_to_aggregate": 2,
                "backup_workers": 0,
            },
        ),
    ):
        runs[name] = tmp_path / name
        runs[name].mkdir()
        (runs[name] / "config.json").write_text(make_config(model="mlp64").to_json())
        if cluster_record:
            (runs[name] / "cluster.json").write_text(json.dumps(cluster_record))
    with socket.socket() as listener:  # a port in use, by this process
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        runs["port"] = listener.getsockname()[1]
        args = [arg.format(**runs) for arg in args]
        environment = dict(os.environ, TF_CONFIG=tf_config_value or "")
        child = subprocess.run(
            [sys.executable, "-c", IMPORTED_AFTER, *args, "--logdir", str(tmp_path / "logs")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env=environment,
        )
    *said, verdict = child.stderr.strip().splitlines()
    assert verdict.startswith("exit 2 imported nothing heavy"), child.stderr
    assert len(said) == 1 and said[0].startswith("graph-nn: error: "), child.stderr
    assert message.format(**runs) in said[0]
    assert not (tmp_path / "logs").exists()  # nothing was made


def tfjob_tf_config(replicas, job, index, evaluator_listed=True):
    """The TF_CONFIG Kubeflow's TFJob gives task `index` of `job`: a cluster of every replica type (the training
    operator's v1.9.0 lists the evaluator too, its older versions left it out), each task at its headless
    service's name."""
    cluster = {
        kind: [f"mnist-{kind}-{i}.default.svc:2222" for i in range(count)]
        for kind, count in replicas.items()
        if kind != "evaluator" or evaluator_listed
    }
    return json.dumps({"cluster": cluster, "task": {"type": job, "index": index}, "environment": "cloud"})


TFJOBS = [  # the replica specs a TFJob may have: PS, Worker, Chief or its legacy name Master, Evaluator
    {"ps": 1, "worker": 2},
    {"ps": 2, "chief": 1, "worker": 2},
    {"ps": 1, "chief": 1},
    {"ps": 1, "master": 1, "worker": 1},
    {"ps": 1, "chief": 1, "worker": 3, "evaluator": 1},
]


@pytest.mark.parametrize("replicas", TFJOBS, ids=["-".join(f"{k}{n}" for k, n in job.items()) for job in TFJOBS])
def test_every_tfjob_tf_config_gives_the_task_tensorflows_own_resolver_reads(replicas, monkeypatch):
    """Each training task's TF_CONFIG, as TFJob writes it, is the task TFConfigClusterResolver reads: the same
    address, in a cluster of the same addresses, with the chief first among the workers."""
    from graph_nn.distributed.spec import task_from_tf_config

    for job, count in replicas.items():
        for index, listed in itertools.product(range(count), (True, False)):
            monkeypatch.setenv("TF_CONFIG", tfjob_tf_config(replicas, job, index, listed))
            task = task_from_tf_config(os.environ["TF_CONFIG"])
            resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
            theirs = resolver.cluster_spec().as_dict()
            chief = theirs.get("chief", []) + theirs.get("master", [])
            assert task.jobs == {"ps": theirs["ps"], "worker": chief + theirs.get("worker", [])}
            if job == "evaluator":
                assert (task.job, task.index) == (resolver.task_type, resolver.task_id) == ("evaluator", 0)
                continue
            assert task.address == theirs[resolver.task_type][resolver.task_id]
            assert task.is_chief == (job in ("chief", "master") or (not chief and job == "worker" and index == 0))


def test_the_tfjob_manifests_pods_train_a_cluster_and_its_evaluator_evaluates_every_checkpoint(processes, tmp_path):
    """Each replica of `cluster --manifest tfjob` runs its container's command here, with only the TF_CONFIG the
    training operator would give it (127.0.0.1 for the services' names, a local directory for the volume): the
    chief is worker 0, TFJob's worker 0 is worker 1, and the evaluator, in no gRPC cluster, writes eval/ at each
    checkpoint up to the last, whose figures are the chief's test report."""
    flags = [*FLAGS, "--steps", "200", "--checkpoint-every", "50", "--wait-limit", "120"]
    made = subprocess.run(
        [sys.executable, RUN_PY, "cluster", "--workers", "2", "--evaluator", *flags, "--manifest", "tfjob"]
        + ["--image", "graph-nn:test", "--name", "mnist"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=WAIT_S,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    replicas = json.loads(made.stdout)["spec"]["tfReplicaSpecs"]
    assert {kind: spec["replicas"] for kind, spec in replicas.items()} == {
        "PS": 1,
        "Chief": 1,
        "Worker": 1,
        "Evaluator": 1,
    }
    cluster = {kind.lower(): [f"127.0.0.1:{port}"] for kind, port in zip(replicas, free_ports(len(replicas)))}
    run_dir = tmp_path / "runs" / "mnist"
    pods = {}
    for kind, spec in replicas.items():
        (container,) = spec["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", "graph_nn"]
        argv = [str(run_dir) if arg == "/runs/mnist" else arg for arg in container["args"]]
        task = {"cluster": cluster, "task": {"type": kind.lower(), "index": 0}, "environment": "cloud"}
        pods[kind] = ([sys.executable, "-m", "graph_nn", *argv], {"TF_CONFIG": json.dumps(task)})
    tasks = {kind: processes.start_command(kind, *pod) for kind, pod in pods.items()}
    # The evaluator killed and started again, as the operator restarts a pod, goes on after the last checkpoint
    # it evaluated; training does not wait for it.
    wait_for(tasks["Evaluator"], r"^evaluated the checkpoint of step")
    tasks["Evaluator"].send_signal(signal.SIGKILL)
    ended(tasks["Evaluator"])
    killed = [
        int(step) for step in re.findall(r"^evaluated the checkpoint of step (\d+)", output(tasks["Evaluator"]), re.M)
    ]
    tasks["Evaluator"] = processes.start_command("Evaluator-again", *pods["Evaluator"])
    for kind, process in tasks.items():
        assert ended(process) == 0, f"{kind}:\n{output(process)}"
    again = [
        int(step) for step in re.findall(r"^evaluated the checkpoint of step (\d+)", output(tasks["Evaluator"]), re.M)
    ]
    assert again and min(again) > max(killed)
    report = output(tasks["Chief"])
    assert f"worker 0 (the chief) on {cluster['chief'][0]}" in report
    assert f"worker 1 on {cluster['worker'][0]}" in output(tasks["Worker"])
    assert "Global step 200 (sync: each update the mean of 2 gradients); worker 0: 200 batches" in report
    loss, accuracy = re.search(r"^Test accuracy: ([\d.]+) - test loss: ([\d.]+)", report, re.M).group(2, 1)
    evaluated = scalars(run_dir / "eval", "accuracy")
    steps = [step for step, _ in evaluated]  # each checkpoint once, whichever evaluator took it
    assert steps == sorted(set(steps)) and set(killed + again) <= set(steps) and steps[-1] == again[-1] == 200
    assert f"{evaluated[-1][1]:.4f}" == accuracy
    assert f"{scalars(run_dir / 'eval', 'loss')[-1][1]:.4f}" == loss
    assert "evaluator 0 done: the chief's run has ended, after the checkpoint of step 200" in output(tasks["Evaluator"])


def test_flags_and_tf_config_give_the_same_task_as_tensorflows_own_resolver_reads(monkeypatch):
    from graph_nn.distributed.replicas import cluster_spec
    from graph_nn.distributed.spec import task_from_flags, task_from_tf_config

    by_flags = task_from_flags("worker", 1, "127.0.0.1:2222", WORKERS)
    monkeypatch.setenv("TF_CONFIG", by_flags.tf_config())
    by_tf_config = task_from_tf_config(os.environ["TF_CONFIG"])
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    assert by_tf_config == by_flags
    assert resolver.cluster_spec() == cluster_spec(by_tf_config)
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)


@pytest.mark.parametrize("model,optimizer,semantics", [("mlp64", "rmsprop", "tf1"), ("cnn", "adam", "keras")])
def test_inspect_shows_placement_the_sync_ops_and_the_bytes_a_step_sends_between_tasks(
    model, optimizer, semantics, processes
):
    inspect = processes.start(
        "inspect", "inspect", "--cluster", "--model", model, "--optimizer", optimizer, "--semantics", semantics
    )
    assert ended(inspect) == 0, output(inspect)
    text = output(inspect)
    config = make_config(model=model, optimizer=optimizer, semantics=semantics)
    weights = {
        v.op.name: v.shape.num_elements()
        for v in build_graph(config).graph.get_collection(tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES)
    }
    for variable in ("global_step", *weights):
        assert re.search(rf"^  {re.escape(variable)} +ps 0$", text, re.M), variable
    assert re.search(r"^  VarHandleOp +train/sync_rep_local_step +worker 0$", text, re.M)
    assert len(re.findall(r"^  ResourceConditionalAccumulator ", text, re.M)) == len(weights)  # one per weight
    parameters = 4 * sum(weights.values())  # float32: the weights go down, their gradients up
    # Up, with the gradients: the local step of each (int64), this worker's index for its step count, and the local
    # step once more with the worker's batch count for cluster/last_sent.
    assert f"worker 0 -> ps 0: {parameters + 8 * (len(weights) + 3):,} bytes per step" in text
    # Down, with the weights: the token (the next local step) and the 2 workers' step counts (int64).
    assert f"ps 0 -> worker 0: {parameters + 8 + 2 * 8:,} bytes per step" in text
    update = text.split("Partition graphs of the chief's update")[1]
    assert re.search(r"^  ps 0: \d+ nodes", update, re.M) and "nothing crosses between tasks" in update


def test_every_wait_has_a_limit(processes, tmp_path):
    """A worker whose ps never comes up, a sync chief whose other worker never comes, a ps whose workers never all
    say they are done, an evaluator whose run never appears: each gives up after --wait-limit (the ps after twice
    that) with one sentence; an evaluator whose ps is gone, and whose chief recorded no end, at once."""
    nowhere, ps, workers = hosts(1), hosts(1, first=1), hosts(2, first=2)
    alone = processes.start(
        "alone", *task_flags("worker", 1, nowhere, workers), *FLAGS, "--run-dir", tmp_path / "alone", "--wait-limit", 3
    )
    unborn = processes.start(
        "unborn", *task_flags("evaluator", 0, ps, workers), "--run-dir", tmp_path / "unborn", "--wait-limit", 3
    )
    (tmp_path / "orphan").mkdir()
    save_config(make_config(model="mlp64"), tmp_path / "orphan")
    orphan = processes.start("orphan", *task_flags("evaluator", 0, nowhere, workers), "--run-dir", tmp_path / "orphan")
    run_dir = tmp_path / "run"
    ps_task = processes.start("ps", *task_flags("ps", 0, ps, workers), "--wait-limit", 5)
    chief = processes.start(
        "chief",
        *task_flags("worker", 0, ps, workers),
        *FLAGS,
        "--steps",
        100,
        "--optimizer",
        "sgd",
        "--lr",
        0.1,
        "--semantics",
        "keras",
        "--run-dir",
        run_dir,
        "--wait-limit",
        5,
    )
    assert ended(chief) == 4
    assert output(chief).strip().splitlines()[-1] == (
        "graph-nn: error: global step 0 did not move for 5 s: sync training waits for 2 gradients per update and "
        f"worker 1 sent none for this one; start it again with its flags, or train with --backup-workers; the last "
        f"checkpoint "
        f"(step 0) is kept in {run_dir}"
    )
    assert checkpoint_steps(run_dir) == [0]
    assert ended(ps_task) == 4
    assert output(ps_task).strip().splitlines()[-1] == (
        "graph-nn: error: no worker trained for 10 s (global step 0) and not every worker said it was done "
        "(missing: 1); ps 0 ends"
    )
    assert ended(alone) == 4
    assert output(alone).strip().splitlines()[-1] == f"graph-nn: error: ps 0 ({nowhere}) did not come up within 3 s"
    assert ended(unborn) == 4
    assert output(unborn).strip().splitlines()[-1] == (
        f"graph-nn: error: {tmp_path / 'unborn'}: no run appeared there within 3 s (no config.json)."
    )
    assert ended(orphan) == 4
    assert output(orphan).strip().splitlines()[-1] == (
        f"graph-nn: error: ps 0 ({nowhere}) is gone and the chief recorded no end of the run; before any checkpoint"
    )


def test_every_worker_draws_its_own_batches_a_pure_function_of_seed_worker_and_step():
    from graph_nn.data.batches import BatchSchedule

    config = make_config(model="mlp64", batch_size=1000)
    single, worker_0, worker_1 = (BatchSchedule(config, 60000, task=task) for task in (None, 0, 1))
    later = [BatchSchedule(config, 60000, task=1).batch(step) for step in (500, 61, 1)]  # in another order
    for step, batch in zip((500, 61, 1), later):
        assert (batch == worker_1.batch(step)).all()
        assert (worker_0.batch(step) != worker_1.batch(step)).any()
        # numpy's SeedSequence makes nothing of a trailing 0 in the key: worker 0 draws the single process's batches.
        assert (worker_0.batch(step) == single.batch(step)).all()
    assert worker_1.examples(61) == 60000 + 1000


def test_a_ps_that_dies_while_the_chief_saves_is_a_lost_task_not_a_full_disk(processes, tmp_path):
    """A ps killed while the chief's Saver.save reads its variables: the cluster went away, the disk is fine.

    --checkpoint-every 1, and the ps stopped (SIGSTOP) before it is killed, so that the chief is waiting on it in
    one of the Session.runs of its step or of its save.  In the save's read (one try in fourteen here), the chief
    used to call the dead ps a disk that could not be written: exit 2, "cannot write the checkpoint"."""
    ps, workers = hosts(1), hosts(1, first=1)
    run_dir = tmp_path / "run"
    flags = [*FLAGS, "--async", "--steps", 100000, "--checkpoint-every", 1, "--run-dir", run_dir]
    ps_task = processes.start("ps", *task_flags("ps", 0, ps, workers))
    chief = processes.start("chief", *task_flags("worker", 0, ps, workers), *flags)
    wait_for_step(chief, 30)
    ps_task.send_signal(signal.SIGSTOP)
    time.sleep(0.5)
    ps_task.send_signal(signal.SIGKILL)
    assert ended(chief, timeout=60) == 4, output(chief)
    sentence = rf"^graph-nn: error: ps 0 \({ps}\) went away \(\w+\); the last checkpoint \(step \d+\) is kept in "
    assert re.search(sentence, output(chief), re.M), output(chief)


def test_a_closed_output_pipe_stops_the_cluster_as_ctrl_c_does(processes, tmp_path):
    """`python run.py cluster ... | grep -m1 ...`: the reader that goes away asks the launcher for a stop, which it
    passes on as Ctrl-C's; the chief saves the step it stopped at and the run is recorded as stopped."""
    logdir = tmp_path / "logs"
    cluster = [sys.executable, RUN_PY, "cluster", "--workers", "2", *FLAGS, "--steps", "100000", "--logdir", logdir]
    pipeline = f"{shlex.join(map(str, cluster))} 2>{tmp_path / 'stderr'} | grep -m1 '^\\[worker 0\\] step 20/'"
    pipeline = processes.start_command("pipeline", ["bash", "-c", f"{pipeline}; exit ${{PIPESTATUS[0]}}"])
    assert ended(pipeline) == 141, (tmp_path / "stderr").read_text()
    (run_dir,) = logdir.iterdir()
    said = (tmp_path / "stderr").read_text().strip().splitlines()
    resume = f"continue with: python run.py cluster --resume {run_dir}"
    assert said[-1] == f"graph-nn: error: stopped by the closed output pipe (SIGPIPE); {resume}"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "stopped" and result["step"] >= 20
    assert checkpoint_steps(run_dir, saved=False)[-1] == result["step"]


def test_a_cluster_whose_ps_dies_says_how_to_go_on_from_the_chiefs_checkpoint(processes, tmp_path):
    logdir = tmp_path / "logs"
    flags = [*FLAGS, "--async", "--steps", 100000, "--checkpoint-every", 20, "--logdir", logdir]
    launcher = processes.start("cluster", "cluster", "--workers", 1, *flags)
    ps_address = wait_for(launcher, r"^cluster: ps (\S+);")[1]
    wait_for_step(launcher, 50, "[worker 0] ")  # past a checkpoint
    (ps,) = [pid for pid, command in still_running(ps_address, processes.netns).items() if "--job-name ps" in command]
    os.kill(ps, signal.SIGKILL)
    assert ended(launcher) == 4, output(launcher)
    (run_dir,) = logdir.iterdir()
    assert output(launcher).strip().splitlines()[-1] == (
        f"graph-nn: error: ps 0 was killed by SIGKILL; worker 0 exited with 4; continue with: python run.py cluster "
        f"--resume {run_dir}."
    )


def test_a_clusters_run_goes_out_of_graph_mode_as_any_run_does(stopped_and_resumed, mnist, tmp_path):
    """What the chief saved is an ordinary run: each export proves itself equal, and serve answers for it."""
    from graph_nn.core.run_dir import RunDir
    from graph_nn.crosscheck.keras_export import TOLERANCE, export_keras
    from graph_nn.reports.export import check_export, export_run, saved_model_predictions
    from graph_nn.reports.tflite import export_tflite
    from graph_nn.serving.child import ServerProcess
    from graph_nn.serving.server import PROBABILITY_ATOL

    run_dir = RunDir(shutil.copytree(stopped_and_resumed["run_dir"], tmp_path / "run"))
    export_run(run_dir)
    assert max(check_export(run_dir, mnist).differences.values()) < 1e-6
    keras_model = export_keras(run_dir, mnist)
    assert keras_model.max_difference <= TOLERANCE and keras_model.accuracy == keras_model.graph_accuracy
    lite = export_tflite(run_dir, mnist)
    assert lite.accuracy == lite.graph_accuracy

    images = mnist.test.images[:5]
    with open(tmp_path / "serve-stderr.txt", "w") as log:
        server = ServerProcess(run_dir, stderr=log)
        try:
            request = urllib.request.Request(
                server.base + "/v1/models/mnist:predict", data=json.dumps({"instances": images.tolist()}).encode()
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                predictions = json.loads(response.read())["predictions"]
        finally:
            code, _ = server.stop()
    probabilities, classes = saved_model_predictions(run_dir.saved_model, images)
    assert [row["class"] for row in predictions] == classes.tolist() and code == 0
    np.testing.assert_allclose([row["probabilities"] for row in predictions], probabilities, atol=PROBABILITY_ATOL)


def test_an_abrupt_stop_of_a_sync_cluster_resumes_with_every_batch_counted_once(processes, tmp_path):
    """The ps, the launcher and the chief killed (SIGKILL) after a checkpoint, then `cluster --resume`: the
    gradients sent after the checkpoint were lost with the cluster, so their batches are trained on again, and
    every worker ends with one batch per update (sync without backup workers); an evaluator joins the resumed
    cluster."""
    logdir = tmp_path / "logs"
    flags = [*FLAGS, "--steps", 300, "--checkpoint-every", 40, "--optimizer", "sgd", "--lr", 0.1, "--logdir", logdir]
    launcher = processes.start("cluster", "cluster", "--workers", 2, *flags)
    ps_address = wait_for(launcher, r"^cluster: ps (\S+);")[1]
    wait_for_step(launcher, 1, "[worker 0] ")
    (run_dir,) = logdir.iterdir()
    wait_for_checkpoint(launcher, run_dir, 80)
    tasks = still_running(ps_address, processes.netns)
    (ps,) = [pid for pid, command in tasks.items() if "--job-name ps" in command]
    os.kill(ps, signal.SIGKILL)
    launcher.send_signal(signal.SIGKILL)
    for pid in tasks:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    ended(launcher)

    resumed = processes.start("resume", "cluster", "--resume", run_dir, "--evaluator")
    assert ended(resumed) == 0, output(resumed)
    report = re.search(r"^\[worker 0\] Global step (\d+) \(sync[^)]*\); (.*)$", output(resumed), re.M)
    batches = [int(n.replace(",", "")) for n in re.findall(r"worker \d: ([\d,]+) batches", report[2])]
    assert int(report[1]) == 300 and batches == [300, 300], report[0]
    # The resumed run's evaluator, started by the launcher, evaluates the checkpoints kept and each new one.
    accuracy = re.search(r"^\[worker 0\] Test accuracy: ([\d.]+)", output(resumed), re.M)[1]
    evaluated = dict(scalars(run_dir / "eval", "accuracy"))
    assert max(evaluated) == 300 and f"{evaluated[300]:.4f}" == accuracy
