"""Which SavedModel `serve` is given: found before TensorFlow is imported, so that a wrong path is answered at once."""

import pathlib

from graph_nn.core.errors import GraphNNError
from graph_nn.core.run_dir import RunDir

SAVED_MODEL_FILE = "saved_model.pb"


def saved_model_path(source):
    """The SavedModel of source: a run directory (RUN/export/saved_model), its export directory, or a SavedModel's
    own directory."""
    source = pathlib.Path(source)
    run_dir = RunDir(source)
    for candidate in (run_dir.saved_model, source / run_dir.saved_model.name, source):
        if (candidate / SAVED_MODEL_FILE).is_file():
            return candidate
    if not source.is_dir():
        raise GraphNNError(f"{source}: no such run or export directory.")
    if run_dir.config.is_file():
        raise GraphNNError(f"{source}: the run has no export yet; run `python run.py export --run {source}` first.")
    raise GraphNNError(f"{source}: neither a run directory nor an export (no {SAVED_MODEL_FILE} there or below).")
