"""The one exception type a user can cause; the CLI turns it into one sentence and a non-zero exit."""


class GraphNNError(Exception):
    """A problem the user can fix: a bad path, a corrupt file, a bad flag, a diverging run."""

    exit_code = 2


class TrainingDiverged(GraphNNError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3
