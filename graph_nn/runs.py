"""Run directories under logs/: one new directory per run, never reused, with its config and checkpoints."""
import itertools
import pathlib
import time

import tensorflow as tf

from graph_nn.errors import GraphNNError

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAME = "model.ckpt"


def new_run_dir(logdir, name):
    """logdir/NAME-YYYYmmdd-HHMMSS, suffixed -1, -2, ... when a run started in the same second holds it.

    mkdir is atomic, so two processes racing for the same name never share a directory.
    """
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
                return path
            except FileExistsError:
                continue
    except OSError as e:
        raise GraphNNError(f"{logdir}: cannot create a run directory there ({e.strerror or e}).") from None


def checkpoint_prefix(run_dir):
    return str(pathlib.Path(run_dir) / CHECKPOINT_DIR / CHECKPOINT_NAME)


def latest_checkpoint(run_dir):
    """The newest checkpoint prefix of a run, or a clear error when it has none."""
    path = tf.train.latest_checkpoint(str(pathlib.Path(run_dir) / CHECKPOINT_DIR))
    if path is None:
        raise GraphNNError(f"{run_dir}: the run has no checkpoint to restore.")
    return path


def newest_run(logdir):
    """The run under logdir whose latest checkpoint was written last."""
    states = list(pathlib.Path(logdir).glob(f"*/{CHECKPOINT_DIR}/checkpoint"))
    if not states:
        raise GraphNNError(f"{logdir}: no trained run with a checkpoint there; train one with `python run.py` "
                           f"or pass --run RUN_DIR.")
    return max(states, key=lambda state: state.stat().st_mtime).parent.parent


def restore(saver, sess, checkpoint):
    """saver.restore, with a checkpoint that does not fit the graph (or is damaged) answered in one sentence."""
    try:
        saver.restore(sess, checkpoint)
    except (tf.errors.OpError, ValueError) as e:
        message = str(e).strip().splitlines()[0]
        raise GraphNNError(f"{checkpoint}: cannot restore this checkpoint ({message}).") from None
