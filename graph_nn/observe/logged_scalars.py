"""A run's scalars read back from its event files, as TensorBoard reads them: every session of a resumed run,
without the steps a killed session wrote past its last checkpoint (TensorBoard drops those at the next
session's SessionLog(START)).  The training loop's own history knows only the session it ran in."""

import pathlib
import re

import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from graph_nn.core.errors import GraphNNError, op_error_reason, warn
from graph_nn.core.run_dir import RunDir

TAGS = ("loss", "accuracy")


def scalars(directory):
    """{"loss": [(step, value), ...], "accuracy": [...]} of an event directory; empty lists when it has none (or
    does not exist: a run that failed before its first evaluation)."""
    if not pathlib.Path(directory).is_dir():  # TensorBoard's reader would raise DirectoryDeletedError
        return {tag: [] for tag in TAGS}
    accumulator = event_accumulator.EventAccumulator(str(directory), size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    logged = accumulator.Tags()["scalars"]
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] if tag in logged else [] for tag in TAGS}


def check_records(directory):
    """Every record of directory's event files read through, since TensorBoard's reader stops without a word at
    one it cannot read.  A damaged record (its checksum does not match) is an error naming its file; the newest
    file's last record cut short, as a process killed while writing leaves it, is named on stderr (TensorBoard
    reads up to it).  An older file's cut-short end is a killed session's, whose steps the next session wrote
    again."""
    files = sorted(pathlib.Path(directory).glob("events.out.tfevents.*"))
    for path in files:
        try:
            for _ in tf.compat.v1.io.tf_record_iterator(str(path)):
                pass
        except tf.errors.DataLossError as e:
            cut = re.match(r"truncated record at (\d+)", op_error_reason(e))
            if not cut:
                raise GraphNNError(
                    f"{path}: a damaged event record ({op_error_reason(e)}); the report's curves would end there: "
                    "move the file away to draw them without its events."
                ) from None
            if path == files[-1]:
                warn(f"{path}: its last record is cut short at byte {cut.group(1)}; the curves end before it.")


def curves(run_dir):
    """{"loss": (train, validation), "accuracy": (train, validation)}: what the report's pictures draw."""
    run_dir = RunDir(run_dir)
    for directory in (run_dir.train_events, run_dir.validation_events):
        check_records(directory)
    train, validation = scalars(run_dir.train_events), scalars(run_dir.validation_events)
    return {tag: (train[tag], validation[tag]) for tag in TAGS}


def validation_at(run_dir, step):
    """{"validation_loss": ..., "validation_accuracy": ...} of the evaluation at `step`; {} when there was none."""
    logged = scalars(RunDir(run_dir).validation_events)
    return {f"validation_{tag}": value for tag in TAGS for s, value in logged[tag] if s == step}
