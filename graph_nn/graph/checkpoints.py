"""A run's tf.compat.v1.train.Saver checkpoints: finding the latest or the best and restoring it, in one sentence
when it fails, and the one before it when the latest is damaged (cut short, garbled)."""

import pathlib
import re

import tensorflow as tf

from graph_nn.core.errors import GraphNNError, op_error_reason, warn
from graph_nn.core.run_dir import CHECKPOINT_NAME, RunDir

v1 = tf.compat.v1
KEEP = 5  # rolling checkpoints kept per run
ROLLING = re.compile(rf"{re.escape(CHECKPOINT_NAME)}-(\d+)")  # model.ckpt-STEP


def step_of(prefix):
    return int(ROLLING.fullmatch(pathlib.Path(prefix).name).group(1))


def kept(run_dir):
    """The run's rolling checkpoint prefixes, newest first: those its `checkpoint` state file lists, in the run's
    own checkpoints/ (a run directory moved or copied restores its own checkpoints, not those at its old place).
    Where the state file is missing (a process killed between a checkpoint and its state file) or unreadable,
    those in the directory; an unreadable one is named on stderr."""
    run_dir = RunDir(run_dir)
    directory = run_dir.checkpoints
    try:
        state = tf.train.get_checkpoint_state(str(directory))
    except (tf.errors.OpError, ValueError):  # ValueError: a state file without model_checkpoint_path
        state = None
    if state is None:
        found = sorted((path.with_suffix("") for path in directory.glob(f"{CHECKPOINT_NAME}-*.index")), key=step_of)
        names = [path.name for path in found if ROLLING.fullmatch(path.name)]
        if names and run_dir.checkpoint_state.exists():
            warn(f"{run_dir.checkpoint_state}: unreadable checkpoint state; using the checkpoints in {directory}.")
    else:
        names = [pathlib.Path(path).name for path in [*state.all_model_checkpoint_paths, state.model_checkpoint_path]]
    newest_first = dict.fromkeys(reversed(names))  # the latest, then the earlier ones, each once
    return [str(directory / name) for name in newest_first]


def latest(run_dir):
    """The newest checkpoint prefix of a run, or a clear error when it has none."""
    return newest(run_dir, kept(run_dir))


def newest(run_dir, prefixes):
    if not prefixes:
        raise GraphNNError(f"{run_dir}: the run has no checkpoint to restore.")
    return prefixes[0]


def best(run_dir):
    """The prefix of the run's best checkpoint (lowest validation loss), or a clear error when it has none."""
    prefix = RunDir(run_dir).best_checkpoint
    if not pathlib.Path(f"{prefix}.index").is_file():
        raise GraphNNError(
            f"{run_dir}: the run has no best checkpoint (it is saved at evaluations that lower the "
            f"validation loss, by runs made since it exists)."
        )
    return str(prefix)


def all_kept(run_dir):
    """Every rolling checkpoint prefix of the run, oldest first."""
    return kept(run_dir)[::-1]


def damaged_file(prefix):
    """The file of a checkpoint that cannot be read whole: its .index, or its .data shard; the prefix itself
    when both read whole (a checkpoint that does not fit the graph)."""
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError):
        return f"{prefix}.index"
    try:
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, ValueError, IndexError):  # IndexError: a .data file cut short
        return ", ".join(map(str, sorted(pathlib.Path(prefix).parent.glob(pathlib.Path(prefix).name + ".data-*"))))
    return prefix


def restore(saver, sess, checkpoint):
    """saver.restore, with a checkpoint that does not fit the graph or is damaged answered in one sentence that
    names its file."""
    try:
        saver.restore(sess, checkpoint)
    except (tf.errors.OpError, ValueError) as e:
        if not pathlib.Path(f"{checkpoint}.index").is_file():
            reason = "no such file"
        elif isinstance(e, tf.errors.OpError):
            reason = op_error_reason(e)
        else:
            reason = str(e).strip().splitlines()[0]
        raise GraphNNError(f"{damaged_file(checkpoint)}: cannot restore the checkpoint ({reason}).") from None


def restore_latest(saver, sess, run_dir):
    """Restores the run's newest rolling checkpoint that restores; returns its prefix and those before it, newest
    first.  A newer one that does not (cut short, garbled) is named on stderr with the one restored in its place;
    when none restores, the newest one's sentence is the error."""
    prefixes = kept(run_dir)
    newest(run_dir, prefixes)
    failures = []
    for index, prefix in enumerate(prefixes):
        try:
            restore(saver, sess, prefix)
        except GraphNNError as e:
            failures.append(str(e).removesuffix("."))
            continue
        if failures:
            warn(f"{failures[0]}; restored the previous good checkpoint, of step {step_of(prefix)}, in its place.")
        return prefixes[index:]
    earlier = "; no earlier checkpoint restores either" if len(failures) > 1 else ""
    raise GraphNNError(f"{failures[0]}{earlier}.")


def restore_final(saver, sess, run_dir, which):
    """Restores the run's "best" checkpoint, or its latest (restore_latest); returns the prefix restored."""
    if which != "best":
        return restore_latest(saver, sess, run_dir)[0]
    prefix = best(run_dir)
    try:
        restore(saver, sess, prefix)
    except GraphNNError as e:
        raise GraphNNError(f"{str(e).removesuffix('.')}; --checkpoint latest restores the run's latest.") from None
    return prefix
