"""A run's tf.compat.v1.train.Saver checkpoints: finding the latest or the best and restoring it, in one sentence
when it fails."""

import pathlib

import tensorflow as tf

from graph_nn.core.errors import GraphNNError
from graph_nn.core.run_dir import RunDir

v1 = tf.compat.v1
KEEP = 5  # rolling checkpoints kept per run


def latest(run_dir):
    """The newest checkpoint prefix of a run, or a clear error when it has none."""
    path = tf.train.latest_checkpoint(str(RunDir(run_dir).checkpoints))
    if path is None:
        raise GraphNNError(f"{run_dir}: the run has no checkpoint to restore.")
    return path


def best(run_dir):
    """The prefix of the run's best checkpoint (lowest validation loss), or a clear error when it has none."""
    prefix = RunDir(run_dir).best_checkpoint
    if not pathlib.Path(f"{prefix}.index").is_file():
        raise GraphNNError(
            f"{run_dir}: the run has no best checkpoint (it is saved at evaluations that lower the "
            f"validation loss, by runs made since it exists)."
        )
    return str(prefix)


def find(run_dir, which):
    """The prefix of the run's "best" or "latest" checkpoint."""
    return best(run_dir) if which == "best" else latest(run_dir)


def all_kept(run_dir):
    """Every checkpoint prefix the run's state file lists, oldest first."""
    state = tf.train.get_checkpoint_state(str(RunDir(run_dir).checkpoints))
    return list(state.all_model_checkpoint_paths) if state else []


def restore(saver, sess, checkpoint):
    """saver.restore, with a checkpoint that does not fit the graph (or is damaged) answered in one sentence."""
    try:
        saver.restore(sess, checkpoint)
    except (tf.errors.OpError, ValueError) as e:
        message = str(e).strip().splitlines()[0]
        raise GraphNNError(f"{checkpoint}: cannot restore this checkpoint ({message}).") from None
