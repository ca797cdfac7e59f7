"""How the command line loads TensorFlow: its C++ start-up lines kept off the terminal (`--verbose` shows
them), Keras left unloaded by the commands that do not use it, and XLA's flags set for --xla.

TensorFlow 2.21 logs through absl before absl's logging is initialised, so its INFO and WARNING lines (the
oneDNN notice, cudart_stub, cpu_feature_guard, the MLIR pass) and, on every machine without a GPU, an alarming
`E0000 ... failed call to cuInit` go straight to file descriptor 2: TF_CPP_MIN_LOG_LEVEL does not reach them.
The one place to stop them is that descriptor.  filter_native_stderr() points fd 2 at a pipe whose reader
drops absl's INFO and WARNING lines (and the lines continuing them) and the cuInit error, and passes every
other line through; Python's own sys.stderr is re-opened on the terminal, so tracebacks and this tool's
messages never wait on the reader.
"""

import atexit
import contextlib
import os
import re
import sys
import threading

# absl's prefix: severity, MMDD, time, thread id, file:line]
ABSL_LINE = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] ")
PRE_INIT_NOTICE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
HARMLESS_ERRORS = (b"failed call to cuInit",)  # no GPU on this machine: TensorFlow runs on the CPU, as intended


def is_noise(line):
    match = ABSL_LINE.match(line)
    if match is None:
        return line.startswith(PRE_INIT_NOTICE)
    return match.group(1) in b"IW" or any(text in line for text in HARMLESS_ERRORS)


def forward(pipe_fd, terminal_fd):
    """Copies the pipe's lines to the terminal, without the noise and the lines that continue a noisy one."""
    dropping, pending = False, b""
    while chunk := os.read(pipe_fd, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            continues = ABSL_LINE.match(line) is None and not line.startswith(PRE_INIT_NOTICE)
            dropping = (dropping and continues) or is_noise(line)
            if not dropping:
                os.write(terminal_fd, line + b"\n")
    if pending and not dropping:
        os.write(terminal_fd, pending)


def filter_native_stderr():
    """Filters what native code writes to fd 2 for the rest of the process (see the module's docstring)."""
    terminal_fd = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    sys.stderr.flush()
    # Open for the rest of the process, as sys.stderr always is.
    sys.stderr = open(terminal_fd, "w", buffering=1, errors="backslashreplace", closefd=False)  # noqa: SIM115
    reader = threading.Thread(target=forward, args=(read_fd, terminal_fd), name="native-stderr", daemon=True)
    reader.start()

    def restore():
        # Closing the pipe's last write end ends the reader once it has passed on every line.
        os.dup2(terminal_fd, 2)
        reader.join(timeout=2)

    atexit.register(restore)


@contextlib.contextmanager
def without_keras():
    """Inside the block, TensorFlow is imported without the Keras its __init__ loads (0.65 s of its 2.6 s here).

    TensorFlow 2.21 imports keras.src.optimizers at the end of its __init__, inside a try that ignores an
    ImportError, only to register Keras's optimizers for SavedModels that hold them; graph mode never uses
    them.  A None in sys.modules makes that import fail; any other import of Keras in the block fails too,
    so a command that starts to need Keras says so in the tests.
    """
    sys.modules["keras"] = None
    try:
        yield
    finally:
        del sys.modules["keras"]


def enable_xla_on_cpu(clustering_debug=False):
    """Puts XLA's CPU auto-clustering flag into TF_XLA_FLAGS, which XLA reads once, when the process's first
    Session runs: on a CPU, a session's global_jit_level (graph_nn/graph/sessions.py) alone clusters nothing.

    The flag changes nothing for sessions that do not ask for XLA (nor for Keras, which runs its own way).
    clustering_debug also writes the clustered graph wherever TF_DUMP_GRAPH_PREFIX points, for inspect --xla.
    """
    flags = os.environ.get("TF_XLA_FLAGS", "").split()
    wanted = ["--tf_xla_cpu_global_jit"] + (["--tf_xla_clustering_debug"] if clustering_debug else [])
    os.environ["TF_XLA_FLAGS"] = " ".join(flags + [flag for flag in wanted if flag not in flags])
