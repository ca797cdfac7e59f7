"""`python run.py serve` in a child process, for those that talk to it over HTTP as a client would: `bench --serve`,
the page's screenshot script and the tests.  It listens on a free port of 127.0.0.1, which its first line names."""

import re
import selectors
import signal
import subprocess
import time

from graph_nn.core.errors import GraphNNError
from graph_nn.core.processes import GRAPH_NN, child_environment

STARTUP_SECONDS = 120  # importing TensorFlow and loading the SavedModel, on a loaded machine
STOP_SECONDS = 30
LISTENING = re.compile(r"Serving \S+ with .* at (http://127\.0\.0\.1:\d+)/v1/models/")


class ServerProcess:
    """The server of `source` (a run directory or an export), ready once its first line says where it listens
    (`base`: http://127.0.0.1:PORT).  What it writes to stderr goes to `stderr` (a file, or this process's)."""

    def __init__(self, source, stderr=None, model_name="mnist"):
        self.process = subprocess.Popen(
            [*GRAPH_NN, "serve", str(source), "--port", "0", "--model-name", model_name],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=child_environment(PYTHONUNBUFFERED="1"),
        )
        try:
            self.first_line = self.read_first_line()
            found = LISTENING.match(self.first_line)
            if not found:
                raise GraphNNError(f"serve {source} said {self.first_line.strip()!r}, not where it listens.")
        except BaseException:
            self.process.kill()
            self.process.communicate()
            raise
        self.base = found.group(1)

    def read_first_line(self):
        deadline = time.monotonic() + STARTUP_SECONDS
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while not selector.select(timeout=0.5):
                if self.process.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    raise GraphNNError(f"serve did not start listening within {STARTUP_SECONDS} s.")
        line = self.process.stdout.readline()
        if not line:
            raise GraphNNError(f"serve ended before it listened (exit {self.process.wait()}).")
        return line

    def stop(self):
        """SIGINT, as Ctrl-C sends it; (exit status, what it printed after its first line).  It is killed if it
        outlives STOP_SECONDS."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            out, _ = self.process.communicate(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        return self.process.returncode, out
