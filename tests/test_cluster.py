"""Distributed training through the real CLI: 1 ps + 2 or 3 workers as separate processes on 127.0.0.1, inside a
private network namespace (`unshare -n`) where the machine allows one, so that no port is reachable from
outside while a test runs; where it does not, the tasks listen on this machine's 127.0.0.1 (and, as TensorFlow's
servers do, on its other interfaces).  Every wait has a timeout; every process a test starts is killed at its end.
"""
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from graph_nn.cluster import free_ports
from tests.conftest import ROOT

RUN_PY = os.path.join(ROOT, "run.py")
# mlp64 at batch 1000 (60 steps an epoch): a few milliseconds a step, so that a cluster's time is its start-up.
FLAGS = ("--model", "mlp64", "--batch-size", "1000", "--eval-every", "100", "--log-every", "20",
         "--histogram-every", "100", "--print-every", "10")
WAIT_S = 240  # for anything a cluster does; generous, as the machine's two cores are shared


@pytest.fixture(scope="module")
def netns():
    """The path of a new network namespace's handle with its loopback up, or None where none can be made."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    try:
        holder = subprocess.Popen(["unshare", "-n", "sh", "-c", f"{ip} link set lo up && echo up && exec cat"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    except FileNotFoundError:
        yield None
        return
    if holder.stdout.readline().strip() != "up":
        holder.wait(10)
        yield None
        return
    yield f"/proc/{holder.pid}/ns/net"
    holder.stdin.close()
    holder.wait(10)


class Processes:
    """The processes a test starts, each in its own process group, with its output in a file."""

    def __init__(self, netns, directory):
        self.netns, self.directory, self.started = netns, directory, []

    def start(self, name, *args, env=None):
        argv = [sys.executable, RUN_PY, *map(str, args)]
        if self.netns:
            argv = ["nsenter", f"--net={self.netns}", "--", *argv]
        environment = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        log = self.directory / f"{name}-{len(self.started)}.log"
        with open(log, "w") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=environment,
                                       start_new_session=True)
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


def still_running(text):
    """{pid: command line} of this machine's run.py processes whose command line holds `text`."""
    found = {}
    for proc in pathlib.Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in command and "run.py" in command:
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


def scalars(directory, tag):
    events = event_accumulator.EventAccumulator(str(directory), size_guidance={event_accumulator.SCALARS: 0})
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def hosts(count, first=0):
    return ",".join(f"127.0.0.1:{port}" for port in free_ports(first + count)[first:])


def task_flags(job, index, ps, workers):
    return ["--job-name", job, "--task-index", index, "--ps-hosts", ps, "--worker-hosts", workers]


def tf_config(job, index, ps, workers):
    return {"TF_CONFIG": json.dumps({"cluster": {"ps": ps.split(","), "worker": workers.split(",")},
                                     "task": {"type": job, "index": index}})}


def test_sync_goes_on_with_a_backup_worker_waits_without_two_and_a_restarted_worker_rejoins(processes, tmp_path):
    """1 ps + 3 workers, sync with one backup worker (each update the mean of 2 of 3 gradients); ps and worker 0
    given by flags, workers 1 and 2 by TF_CONFIG: one cluster, however its tasks were told about it."""
    ps, workers = hosts(1), hosts(3, first=1)
    run_dir = tmp_path / "run"
    flags = [*FLAGS, "--steps", 1000, "--run-dir", run_dir, "--backup-workers", 1, "--wait-limit", 120]
    ps_task = processes.start("ps", *task_flags("ps", 0, ps, workers), "--wait-limit", 120)
    chief = processes.start("chief", *task_flags("worker", 0, ps, workers), *flags)
    others = {i: processes.start(f"worker{i}", "train", *flags, env=tf_config("worker", i, ps, workers))
              for i in (1, 2)}
    wait_for_step(chief, 50)
    others[2].send_signal(signal.SIGKILL)
    killed_at = steps_printed(chief)[-1]
    # With worker 2 gone, workers 0 and 1 still make the 2 gradients of each update.
    wait_for_step(chief, killed_at + 50)
    others[1].send_signal(signal.SIGKILL)
    waiting = wait_for(chief, r"^waiting for the other workers' gradients: global step (\d+) has not moved")
    stalled_at = int(waiting[1])
    assert steps_printed(chief)[-1] <= stalled_at
    others = {i: processes.start(f"worker{i}-again", "train", *flags, env=tf_config("worker", i, ps, workers))
              for i in (1, 2)}
    wait_for(others[1], r"^step \d+/1000")  # they rejoin: the cluster trains again
    for process in (chief, *others.values(), ps_task):
        assert ended(process) == 0, output(process)
    assert checkpoint_steps(run_dir)[-1] == 1000  # sync ends exactly at the last global step
    assert "ps 0: every worker is done" in output(ps_task)
    report = re.search(r"^Global step 1000 \(sync: each update the mean of 2 gradients\); (.*)$", output(chief), re.M)
    batches = [int(n.replace(",", "")) for n in re.findall(r"worker \d: ([\d,]+) batches", report[1])]
    assert len(batches) == 3 and 2 * 1000 <= sum(batches) <= 3 * 1000
    assert "Test accuracy: " in output(chief)


@pytest.fixture(scope="module")
def stopped_and_resumed(netns, tmp_path_factory):
    """`python run.py cluster --workers 2 --async`: worker 1 killed (SIGKILL) while the chief goes on, then the
    launcher stopped with SIGINT (Ctrl-C), then `cluster --resume RUN` to the end."""
    directory = tmp_path_factory.mktemp("cluster")
    started = Processes(netns, directory)
    chief = "[worker 0] "
    try:
        launcher = started.start("cluster", "cluster", "--workers", 2, "--async", *FLAGS, "--steps", 600,
                                 "--logdir", directory / "logs")
        ps_address = wait_for(launcher, r"^cluster: ps (\S+);")[1]
        wait_for(launcher, r"^\[worker 1\] step \d+/600")
        (worker_1,) = [pid for pid, command in still_running(ps_address).items() if "--task-index 1 " in command]
        os.kill(worker_1, signal.SIGKILL)
        killed_at = wait_for_step(launcher, 0, chief)
        went_on_to = wait_for_step(launcher, killed_at + 100, chief)
        launcher.send_signal(signal.SIGINT)
        stopped = dict(code=ended(launcher), output=output(launcher), running=still_running(ps_address),
                       killed_at=killed_at, went_on_to=went_on_to)
        (run_dir,) = (directory / "logs").iterdir()
        stopped["checkpoints"], stopped["names"] = checkpoint_steps(run_dir), checkpoint_steps(run_dir, saved=False)
        resumed = started.start("resume", "cluster", "--resume", run_dir)
        code = ended(resumed)
        ps_address = re.search(r"^cluster: ps (\S+);", output(resumed), re.M)[1]
        yield dict(stopped=stopped, run_dir=run_dir, code=code, output=output(resumed),
                   running=still_running(ps_address))
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
    saved_at = int(re.search(r"^\[worker 0\] graph-nn: error: stopped by SIGINT at step (\d+) after saving its "
                             r"checkpoint", stopped["output"], re.M)[1])
    assert stopped["names"][-1] == saved_at >= stopped["went_on_to"]
    assert stopped["checkpoints"][-1] == saved_at  # worker 1 was dead: no other update landed during the save
    # Worker 1, killed, never told the ps it was done: the launcher ended the ps.
    assert re.search(r"^\[ps 0\] ps 0 stopped by SIGTERM", stopped["output"], re.M)
    assert stopped["running"] == {}


def test_a_stopped_cluster_resumes_from_the_chiefs_checkpoint_to_the_end(stopped_and_resumed):
    stopped, run_dir = stopped_and_resumed["stopped"], stopped_and_resumed["run_dir"]
    text = stopped_and_resumed["output"]
    assert stopped_and_resumed["code"] == 0, text
    assert f"Resuming {run_dir} at step {stopped['checkpoints'][-1]}/600" in text
    # Async: both workers may be making a step when the global step reaches 600, and a checkpoint is no atomic
    # snapshot (the other worker's update can land while the chief saves).
    assert 600 <= checkpoint_steps(run_dir)[-1] <= 601
    report = re.search(r"^\[worker 0\] Global step (\d+) \(async\); worker 0: ([\d,]+) batches, [\d,]+ examples, "
                       r"worker 1: ([\d,]+) batches", text, re.M)
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


def test_a_dead_parameter_server_ends_every_worker_with_a_sentence_and_the_checkpoint_intact(processes, tmp_path):
    ps, workers = hosts(1), hosts(2, first=1)
    run_dir = tmp_path / "run"
    flags = [*FLAGS, "--async", "--steps", 100000, "--checkpoint-every", 20, "--run-dir", run_dir]
    ps_task = processes.start("ps", *task_flags("ps", 0, ps, workers))
    chief, other = (processes.start(f"worker{i}", *task_flags("worker", i, ps, workers), *flags) for i in (0, 1))
    wait_for(other, r"^step \d+/100000")
    wait_for_step(chief, 60)
    ps_task.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    codes = [ended(chief, timeout=60), ended(other, timeout=60)]
    assert codes == [4, 4] and time.monotonic() - killed < 60
    saved = checkpoint_steps(run_dir, saved=False)[-1]
    assert saved >= 60
    assert output(chief).strip().splitlines()[-1] == (
        f"graph-nn: error: ps 0 ({ps}) went away (UnavailableError); the last checkpoint (step {saved}) is kept in "
        f"{run_dir}")
    assert output(other).strip().splitlines()[-1] == f"graph-nn: error: ps 0 ({ps}) went away (UnavailableError)"
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run_dir / "checkpoints")))
    assert all(np.isfinite(reader.get_tensor(name)).all() for name in reader.get_variable_to_shape_map())
