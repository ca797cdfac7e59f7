"""A run directory and everything in it, named here and nowhere else.

    logs/MODEL-YYYYmmdd-HHMMSS/     one per run, never reused
        config.json                 the TrainConfig, from which evaluate, predict and export rebuild the graph
        cluster.json                a cluster's run only: its hosts, sync or async, how many workers
        data_source.txt             where the training data came from: a resume must train on the same
        classes.txt                 the names of the classes, one per line in label order
        .lock                       flock-ed by the process that writes the run; holds its PID and command line
        checkpoints/                model.ckpt-STEP (the last five) and TensorFlow's `checkpoint` state file;
                                    best.* the checkpoint of the lowest validation loss, apart from the rolling ones
        train/, validation/         event files: scalars, histograms, the graph, traced steps' RunMetadata
        worker-N/                   a cluster's run only: worker N's own scalars
        test/                       the test-set loss and accuracy of the end-of-run report
        traces/                     Chrome traces of the --trace-steps
        train/plugins/profile/      tf.profiler's trace of the --profile-steps, for the Profile tab
        debugger_v2/                the --debug-dump of the training session (debugger_v2-1, ... after resumes)
        nan_dump/                   tfdbg's dump of the step where a diverged run's first NaN was born
        evaluation/                 end-of-run images, PR curves and the projector's files
        NAME.png                    the report's pictures
        export/                     frozen_graph.pb and saved_model/; model.keras (export --format keras)
        result.json                 how the run ended: its status and the figures of its final checkpoint
        events.out.tfevents.*       the run's hyper-parameters and status, for the HParams tab

No TensorFlow here: the command line names runs before it imports anything heavy.
"""

import contextlib
import itertools
import json
import os
import pathlib
import sys
import time

from graph_nn.core.errors import GraphNNError, WriteFailed, abbreviated, write_cause

try:
    import fcntl
except ImportError:  # Windows: no flock, so run directories go unlocked there
    fcntl = None

CHECKPOINT_NAME = "model.ckpt"
CHECKPOINT_STATE = "checkpoint"  # the file tf.train.Saver keeps next to its checkpoints
BEST_CHECKPOINT = "best"  # a prefix beside the rolling checkpoints: the Saver's max_to_keep never sees it
PROJECTOR_FILES = {
    "checkpoint": "embedding.ckpt",
    "metadata": "metadata.tsv",
    "sprite": "sprite.png",
    "config": "projector_config.pbtxt",
}
# How a run ended (result.json, and a hyper-parameter in the HParams tab).  A run FINISHED, EARLY_STOPPED or
# DIVERGED is done: continuing it would change nothing.  A STOPPED one can be resumed.
FINISHED, EARLY_STOPPED, STOPPED, DIVERGED = "finished", "early-stopped", "stopped", "diverged"
STATUSES = (FINISHED, EARLY_STOPPED, STOPPED, DIVERGED)
DONE = (FINISHED, EARLY_STOPPED, DIVERGED)


class RunDir(os.PathLike):
    """The paths of one run directory; usable wherever a path is."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __fspath__(self):
        return str(self.path)

    def __str__(self):
        return str(self.path)

    def __repr__(self):
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other):
        return isinstance(other, RunDir) and self.path == other.path

    def __hash__(self):
        return hash(self.path)

    config = property(lambda self: self.path / "config.json")
    cluster = property(lambda self: self.path / "cluster.json")
    data_source = property(lambda self: self.path / "data_source.txt")
    classes = property(lambda self: self.path / "classes.txt")
    lock = property(lambda self: self.path / ".lock")
    checkpoints = property(lambda self: self.path / "checkpoints")
    checkpoint_prefix = property(lambda self: self.checkpoints / CHECKPOINT_NAME)
    checkpoint_state = property(lambda self: self.checkpoints / CHECKPOINT_STATE)
    best_checkpoint = property(lambda self: self.checkpoints / BEST_CHECKPOINT)
    train_events = property(lambda self: self.path / "train")
    validation_events = property(lambda self: self.path / "validation")
    test_events = property(lambda self: self.path / "test")
    eval_events = property(lambda self: self.path / "eval")  # a cluster's evaluator task's
    evaluation = property(lambda self: self.path / "evaluation")
    traces = property(lambda self: self.path / "traces")
    profile = property(lambda self: self.train_events / "plugins" / "profile")
    nan_dump = property(lambda self: self.path / "nan_dump")
    export = property(lambda self: self.path / "export")
    frozen_graph = property(lambda self: self.export / "frozen_graph.pb")
    saved_model = property(lambda self: self.export / "saved_model")
    keras_model = property(lambda self: self.export / "model.keras")
    result = property(lambda self: self.path / "result.json")

    def worker_events(self, index):
        return self.path / f"worker-{index}"

    def picture(self, name):
        return self.path / f"{name}.png"

    def chrome_trace(self, step):
        return self.traces / f"timeline-step{step}.json"

    def new_debugger_v2_dump(self):
        """debugger_v2/, or for a later session of the run debugger_v2-1/, -2/, ...: Debugger V2 reads one
        session's dump per directory."""
        for n in itertools.count():
            path = self.path / (f"debugger_v2-{n}" if n else "debugger_v2")
            if not path.exists():
                return path

    def projector_file(self, kind):
        return self.evaluation / PROJECTOR_FILES[kind]

    def hparams_event_files(self):
        """The event files in the run directory itself: those of its HParams row."""
        return sorted(self.path.glob("events.out.tfevents.*"))

    def read_result(self):
        """result.json as a dict, or None while the run has not ended (or was killed); one that is damaged or
        edited out of shape is named in one sentence, not taken for a run that never ended."""
        try:
            result = json.loads(self.result.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise GraphNNError(f"{self.result}: unreadable run result ({e}).") from None
        if not isinstance(result, dict) or result.get("status") not in STATUSES:
            raise GraphNNError(f"{self.result}: unreadable run result (no status among {', '.join(STATUSES)}).")
        return result


def write_atomically(path, content):
    """content (text or bytes) in path through a temporary file renamed over it: a write cut short (a full disk,
    a kill) leaves the file as it was, never half of a new one that a reader would take for the whole."""
    path = pathlib.Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(content.encode() if isinstance(content, str) else content)
        os.replace(partial, path)
    except OSError as e:
        with contextlib.suppress(OSError):  # a read-only file system refuses even to remove what is not there
            partial.unlink()
        raise WriteFailed(f"{path}: cannot be written ({write_cause(e, path.parent)}).") from None


def new_run_dir(logdir, name):
    """A new RunDir logdir/NAME-YYYYmmdd-HHMMSS, suffixed -1, -2, ... when a run started in the same second
    holds the name.  mkdir is atomic, so two processes racing for the same name never share a directory."""
    logdir = pathlib.Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise GraphNNError(f"--logdir {logdir} is not a directory.")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        for n in itertools.count():
            path = logdir / (f"{name}-{stamp}-{n}" if n else f"{name}-{stamp}")
            try:
                path.mkdir()
                return RunDir(path)
            except FileExistsError:
                continue
    except OSError as e:
        raise GraphNNError(f"{logdir}: cannot create a run directory there ({e.strerror or e}).") from None


def newest_run(logdir):
    """The RunDir under logdir whose latest checkpoint was written last."""
    states = [RunDir(path).checkpoint_state for path in pathlib.Path(logdir).glob("*")]
    states = [state for state in states if state.is_file()]
    if not states:
        raise GraphNNError(
            f"{logdir}: no trained run with a checkpoint there; train one with `python run.py` or pass --run RUN_DIR."
        )
    return RunDir(max(states, key=lambda state: state.stat().st_mtime).parent.parent)


# The run and sweep directories this process holds: exclusive() again on one of them (the end-of-run report inside
# a training, a resume the command line locked before TensorFlow was imported) holds it already.
HELD = set()
HOLDER_BYTES = 4096  # read of a lock file, whatever was written into it


def holder(lock_path):
    """(PID, activity, command line) of the process that holds the lock, as it wrote them into the file, or None
    when the file holds none or names a process that has gone: flock says whether the lock is held, the file only
    whom to name."""
    try:
        with open(lock_path, "rb") as f:
            pid, activity, command = (f.read(HOLDER_BYTES).decode(errors="replace").split("\n") + ["", ""])[:3]
        pid = int(pid)
        if pid <= 0:
            return None
        os.kill(pid, 0)
    except PermissionError:  # another user's process: it exists
        pass
    except (OSError, ValueError):  # no file, nothing or garbage in it, or a process that has ended since
        return None
    return pid, activity, command


def command_line():
    """How this process was started, as a user types it (python run.py ...), abbreviated."""
    argv = sys.argv or [""]
    program = "python run.py" if os.path.basename(argv[0]) == "run.py" else os.path.basename(argv[0]) or "python"
    return abbreviated(" ".join([program, *argv[1:]]), 200)


@contextlib.contextmanager
def exclusive(directory, activity="trained"):
    """Holds a run (or sweep) directory for one process; a second one (a resume typed twice, a second chief) is
    refused in a sentence naming the first: its PID, what it does and its command line, written into the lock file
    once the lock is taken.

    flock is released by the kernel however the process ends, SIGKILL included; the PID a killed process leaves
    in the file names nobody (holder() checks that the process exists) and the next process writes its own.
    """
    key = os.path.realpath(directory)
    if key in HELD:
        yield
        return
    path = RunDir(directory).lock
    try:
        lock = path.open("ab")
    except OSError as e:
        raise GraphNNError(f"{directory}: cannot write in the directory ({e.strerror or e}).") from None
    with lock:
        if fcntl:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = holder(path)
                who = f" (PID {other[0]}: {other[2]})" if other else ""
                raise GraphNNError(
                    f"{directory} is being {other[1] if other else activity} by another process right now{who}."
                ) from None
        with contextlib.suppress(OSError):  # the PID is only for the message: a full disk must not stop the run
            os.ftruncate(lock.fileno(), 0)
            os.write(lock.fileno(), f"{os.getpid()}\n{activity}\n{command_line()}\n".encode())
        HELD.add(key)
        try:
            yield
        finally:
            HELD.discard(key)
            with contextlib.suppress(OSError):
                os.ftruncate(lock.fileno(), 0)  # still under the lock: no other process has written its PID yet


def check_not_held(directory, activity="trained"):
    """exclusive()'s refusal at once, before a launcher starts the processes of which one takes the lock."""
    with exclusive(directory, activity):
        pass
