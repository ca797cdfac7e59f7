"""A run's scalars read back from its event files, as TensorBoard reads them: every session of a resumed run,
without the steps a killed session wrote past its last checkpoint (TensorBoard drops those at the next
session's SessionLog(START)).  The training loop's own history knows only the session it ran in."""

from tensorboard.backend.event_processing import event_accumulator

from graph_nn.core.run_dir import RunDir

TAGS = ("loss", "accuracy")


def scalars(directory):
    """{"loss": [(step, value), ...], "accuracy": [...]} of an event directory; empty lists when it has none."""
    accumulator = event_accumulator.EventAccumulator(str(directory), size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    logged = accumulator.Tags()["scalars"]
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] if tag in logged else [] for tag in TAGS}


def curves(run_dir):
    """{"loss": (train, validation), "accuracy": (train, validation)}: what the report's pictures draw."""
    run_dir = RunDir(run_dir)
    train, validation = scalars(run_dir.train_events), scalars(run_dir.validation_events)
    return {tag: (train[tag], validation[tag]) for tag in TAGS}


def validation_at(run_dir, step):
    """{"validation_loss": ..., "validation_accuracy": ...} of the evaluation at `step`; {} when there was none."""
    logged = scalars(RunDir(run_dir).validation_events)
    return {f"validation_{tag}": value for tag in TAGS for s, value in logged[tag] if s == step}
