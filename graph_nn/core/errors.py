"""The one exception type a user can cause; the CLI turns it into one sentence and a non-zero exit."""

import contextlib
import errno
import os
import sys

# Why a write fails where a user can do something about it, as the operating system words it: TensorFlow's own
# messages carry these words deep inside (a checkpoint's first line is only "Graph execution error:").
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG, errno.EIO)


class GraphNNError(Exception):
    """A problem the user can fix: a bad path, a corrupt file, a bad flag, a diverging run."""

    exit_code = 2


WARNED = set()


def warn(message):
    """A damaged file worked around (an earlier checkpoint restored in its place), said in one line on stderr, once
    per process however often the file is read."""
    if message not in WARNED:
        WARNED.add(message)
        print(f"graph-nn: warning: {message}", file=sys.stderr, flush=True)


class TrainingDiverged(GraphNNError):
    """The loss or the weights became NaN or infinite at `step`; the last good checkpoint is kept."""

    exit_code = 3

    def __init__(self, message, step):
        super().__init__(message)
        self.step = step


class WriteFailed(GraphNNError):
    """A file could not be written (a full disk, a read-only file system, a quota); what was written before it,
    the earlier checkpoints among them, is kept, so a run can go on from there once the disk takes writes again."""


def abbreviated(text, limit=80):
    """text as a sentence may quote it: its start and its length when it is longer than limit."""
    text = str(text)
    return text if len(text) <= limit else f"{text[: limit - 30]}... ({len(text):,} characters)"


def write_cause(error, directory):
    """Why writing into directory failed, in the operating system's words: an OSError's own, those found in a
    TensorFlow error's message, else a full disk seen on the directory's file system, else the reason the
    message gives."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error)
    for number in WRITE_ERRNOS:
        if os.strerror(number) in text:
            return os.strerror(number)
    with contextlib.suppress(OSError):
        if os.statvfs(directory).f_bavail == 0:
            return os.strerror(errno.ENOSPC)
    if hasattr(error, "message"):  # a TensorFlow OpError, whose first line is "Graph execution error:"
        return op_error_reason(error)
    return text.strip().splitlines()[0]


class Interrupted(GraphNNError):
    """SIGINT, SIGTERM or a closed output pipe stopped the run after it saved a checkpoint of the current step."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


class ClusterFailed(GraphNNError):
    """A task of a cluster went away, stopped answering, or waited past its limit for the others."""

    exit_code = 4


def op_error_reason(error):
    """What a TensorFlow OpError says went wrong, in one line.  In graph mode TensorFlow 2 starts its message with
    "Graph execution error:" and the Python stack that defined the failing node, then "Node: 'NAME'", then the
    reason ("truncated record at 4454109"): the first line alone says nothing."""
    lines = [line.strip() for line in error.message.strip().splitlines()]
    nodes = [number for number, line in enumerate(lines) if line.startswith("Node: ")]
    if nodes:
        lines = lines[nodes[0] + 1 :]
    lines = [line for line in lines if line and line != "Graph execution error:" and not line.startswith("[[")]
    return lines[0] if lines else error.message.strip()
