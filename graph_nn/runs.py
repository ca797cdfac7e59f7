"""A run directory and everything in it, named here and nowhere else.

    logs/MODEL-YYYYmmdd-HHMMSS/     one per run, never reused
        config.json                 the TrainConfig, from which evaluate, predict and export rebuild the graph
        data_source.txt             where the training data came from: a resume must train on the same
        .lock                       held by the process that trains the run
        checkpoints/                model.ckpt-STEP (the last five) and TensorFlow's `checkpoint` state file
        train/, validation/         event files: scalars, histograms, the graph, traced steps' RunMetadata
        traces/                     Chrome traces of the --trace-steps
        train/plugins/profile/      tf.profiler's trace of the --profile-steps, for the Profile tab
        debugger_v2/                the --debug-dump of the training session (debugger_v2-1, ... after resumes)
        nan_dump/                   tfdbg's dump of the step where a diverged run's first NaN was born
        evaluation/                 end-of-run images, PR curves and the projector's files
        NAME.png                    the report's pictures
        export/                     frozen_graph.pb and saved_model/
        events.out.tfevents.*       the run's hyper-parameters, for the HParams tab

No TensorFlow here: the command line names runs before it imports anything heavy.
"""
import itertools
import os
import pathlib
import time

from graph_nn.errors import GraphNNError

CHECKPOINT_NAME = "model.ckpt"
CHECKPOINT_STATE = "checkpoint"  # the file tf.train.Saver keeps next to its checkpoints
PROJECTOR_FILES = {"checkpoint": "embedding.ckpt", "metadata": "metadata.tsv", "sprite": "sprite.png",
                   "config": "projector_config.pbtxt"}


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
    data_source = property(lambda self: self.path / "data_source.txt")
    lock = property(lambda self: self.path / ".lock")
    checkpoints = property(lambda self: self.path / "checkpoints")
    checkpoint_prefix = property(lambda self: self.checkpoints / CHECKPOINT_NAME)
    checkpoint_state = property(lambda self: self.checkpoints / CHECKPOINT_STATE)
    train_events = property(lambda self: self.path / "train")
    validation_events = property(lambda self: self.path / "validation")
    evaluation = property(lambda self: self.path / "evaluation")
    traces = property(lambda self: self.path / "traces")
    profile = property(lambda self: self.train_events / "plugins" / "profile")
    nan_dump = property(lambda self: self.path / "nan_dump")
    export = property(lambda self: self.path / "export")
    frozen_graph = property(lambda self: self.export / "frozen_graph.pb")
    saved_model = property(lambda self: self.export / "saved_model")

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
        raise GraphNNError(f"{logdir}: no trained run with a checkpoint there; train one with `python run.py` "
                           f"or pass --run RUN_DIR.")
    return RunDir(max(states, key=lambda state: state.stat().st_mtime).parent.parent)
