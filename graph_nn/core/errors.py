"""The one exception type a user can cause; the CLI turns it into one sentence and a non-zero exit."""


class GraphNNError(Exception):
    """A problem the user can fix: a bad path, a corrupt file, a bad flag, a diverging run."""

    exit_code = 2


class TrainingDiverged(GraphNNError):
    """The loss or the weights became NaN or infinite at `step`; the last good checkpoint is kept."""

    exit_code = 3

    def __init__(self, message, step):
        super().__init__(message)
        self.step = step


class Interrupted(GraphNNError):
    """SIGINT or SIGTERM stopped the run after it saved a checkpoint of the current step."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


class ClusterFailed(GraphNNError):
    """A task of a cluster went away, stopped answering, or waited past its limit for the others."""

    exit_code = 4
