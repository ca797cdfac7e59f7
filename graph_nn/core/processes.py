"""Child processes that run this very graph_nn, installed or not: a sweep's runs, a cluster's tasks, the
Grappler log's training step; and the one way the sweep and the cluster launcher supervise theirs.

A supervised child runs in a session (process group) of its own, so that a Ctrl-C at the terminal reaches
the supervisor alone, which then decides what each child gets.  Asked to stop with a signal, a child has its
grace to end (to save a checkpoint, to tell the parameter servers it is done) before it is killed.  Every wait
polls, so none outlasts its limit.
"""

import contextlib
import ctypes
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import threading
import time

GRAPH_NN = [sys.executable, "-m", "graph_nn"]  # == python run.py, in a process of its own
PACKAGE_PARENT = str(pathlib.Path(__file__).resolve().parent.parent.parent)
POLL_S = 0.2
PR_SET_PDEATHSIG = 1
PRINTING = threading.Lock()  # one child's line is written whole before another's


def child_environment(**variables):
    """This process's environment with `variables` set, and this graph_nn first on the child's import path."""
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")])),
        **variables,
    )


def parent_death_signal():
    """In the child, before exec: SIGTERM when its parent dies, however it dies (Linux's PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One child process: its output appended to the file `log` (after its command line), or else every line
    of it passed on to `out` and `err` prefixed with its name (`[worker 1] ...`); polled, signalled, asked to
    stop, and killed once it outlives `grace_s` after that."""

    def __init__(self, name, argv, grace_s, log=None, out=None, err=None, env=None, die_with_parent=False):
        self.name, self.grace_s = name, grace_s
        self.log = None if log is None else pathlib.Path(log)
        options = dict(
            stdin=subprocess.DEVNULL,
            env=child_environment() if env is None else env,
            start_new_session=True,
            preexec_fn=parent_death_signal if die_with_parent and sys.platform == "linux" else None,
        )
        if self.log is not None:
            with self.log.open("a") as file:
                file.write(f"$ {shlex.join(argv)}\n")
                file.flush()
                self.process = subprocess.Popen(argv, stdout=file, stderr=subprocess.STDOUT, **options)
            self.readers = []
        else:
            self.process = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="backslashreplace", **options
            )
            self.readers = [
                threading.Thread(target=self.forward, args=(pipe, sink), daemon=True)
                for pipe, sink in ((self.process.stdout, out or sys.stdout), (self.process.stderr, err or sys.stderr))
            ]
            for reader in self.readers:
                reader.start()
        self.started = time.monotonic()
        self.ended_at = None
        self.stop_requested_at = None

    def forward(self, pipe, sink):
        for line in pipe:
            with PRINTING:
                sink.write(f"[{self.name}] {line}")
                sink.flush()

    @property
    def returncode(self):
        return self.process.returncode

    def poll(self):
        """The exit code, or None while the child runs; a child past its grace after stop() is killed here."""
        code = self.process.poll()
        if code is None and self.stop_requested_at is not None:
            if time.monotonic() > self.stop_requested_at + self.grace_s:
                self.kill()
        elif code is not None and self.ended_at is None:
            self.ended_at = time.monotonic()
        return code

    def send_signal(self, signum):
        """Sends signum to the child's process group, if the child has not been seen to end (its pid may be reused)."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def stop(self, signum=signal.SIGTERM):
        """Asks the child to stop with signum, once: from now on it has grace_s to end."""
        if self.stop_requested_at is None and self.poll() is None:
            self.send_signal(signum)
            self.stop_requested_at = time.monotonic()

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def finish_output(self, limit_s=5):
        """Waits, up to limit_s for each pipe, until the child's last lines have been passed on."""
        for reader in self.readers:
            reader.join(limit_s)

    def describe_end(self):
        code = self.process.returncode
        if code < 0:
            return f"{self.name} was killed by {signal.Signals(-code).name}"
        return f"{self.name} exited with {code}"


def running(children):
    """The children still running, every one of them polled (so those past their grace are killed)."""
    return [child for child in children if child.poll() is None]


def stop_all(children, signum):
    """Asks every child to stop with signum and waits until all have ended: none outlives its grace."""
    for child in children:
        child.stop(signum)
    while running(children):
        time.sleep(POLL_S)
