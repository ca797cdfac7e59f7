"""Two commands that would write one run (or sweep) directory, as real processes: the second is refused in one
sentence naming the first's PID and command line; a kill -9 of the first frees the directory, its stale PID
refusing nobody."""

import fcntl
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from graph_nn.core.run_dir import RunDir
from tests.conftest import ROOT, refused, run_cli

PIPE_BYTES = 4096  # the holder's stdout: a step line each step fills it within ~70 steps, where the holder waits


def start(*args, **kwargs):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "run.py"), *map(str, args)], cwd=ROOT, **kwargs)


def wait_until(condition, what, seconds=120):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.1)
    return value


def lock_names(directory, pid):
    """Whether directory's lock file names the process pid (written once it holds the flock)."""
    try:
        return RunDir(directory).lock.read_text().split("\n")[0] == str(pid)
    except OSError:
        return False


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture
def holder(tmp_path):
    """A training that holds its run: it checkpoints every 20 steps and prints every step into a pipe nobody reads,
    so it waits, alive and holding the lock, with a checkpoint saved."""
    flags = ["--model", "mlp64", "--steps", "1000", "--checkpoint-every", "20", "--print-every", "1"]
    child = start(*flags, "--logdir", tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, pipesize=PIPE_BYTES)
    try:
        run_dir = wait_until(lambda: next(tmp_path.glob("mlp64-*"), None), "the run directory")
        wait_until(lambda: lock_names(run_dir, child.pid), "the holder's PID in the lock file")
        wait_until(lambda: RunDir(run_dir).checkpoint_state.exists(), "the first checkpoint")
        assert child.poll() is None
        yield child, run_dir, "python run.py " + " ".join([*flags, "--logdir", str(tmp_path)])
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_a_second_writer_is_refused_naming_the_first_and_a_kill_9_frees_the_run(holder, tmp_path):
    child, run_dir, command = holder
    sentence = f"{run_dir} is being trained by another process right now (PID {child.pid}: {command})."
    assert refused("--resume", run_dir) == sentence
    assert refused("evaluate", "--run", run_dir) == sentence  # it would write the report's pictures and events
    assert refused("export", "--run", run_dir) == sentence
    # A cluster's second chief, by hand or by python run.py cluster --resume, before any server starts.
    ps, worker = free_ports(2)
    chief = ["--job-name", "worker", "--task-index", "0", "--ps-hosts", f"127.0.0.1:{ps}", "--worker-hosts"]
    assert refused(*chief, f"127.0.0.1:{worker}", "--run-dir", run_dir) == sentence
    assert refused("cluster", "--resume", run_dir) == sentence

    child.kill()  # SIGKILL: the kernel releases the flock; the PID stays in the file, naming a process gone
    child.wait()
    assert RunDir(run_dir).lock.read_text().split("\n")[0] == str(child.pid)
    resumed = run_cli("--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Run directory: {run_dir}" in resumed.stdout
    assert RunDir(run_dir).lock.read_text() == ""  # nothing left behind
    with open(RunDir(run_dir).lock, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free


def test_a_sweep_resumed_twice_is_refused_naming_the_first(tmp_path):
    sweep = start(
        "sweep", "--model", "mlp64", "--steps", "2000", "--lr", "0.1,0.01", "--logdir", tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        sweep_dir = wait_until(lambda: next(tmp_path.glob("sweep-*"), None), "the sweep directory")
        wait_until(lambda: lock_names(sweep_dir, sweep.pid), "the sweep's PID in the lock file")
        assert refused("sweep", "--resume", sweep_dir) == (
            f"{sweep_dir} is being swept by another process right now (PID {sweep.pid}: python run.py sweep --model "
            f"mlp64 --steps 2000 --lr 0.1,0.01 --logdir {tmp_path})."
        )
    finally:
        sweep.send_signal(signal.SIGTERM)  # passed on to its run, which stops
        sweep.wait(timeout=120)
    assert pathlib.Path(RunDir(sweep_dir).lock).read_text() == ""
