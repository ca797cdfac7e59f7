"""Digits (or the classes of another data set) in the user's own image files, predicted by a trained run."""

import dataclasses

import numpy as np

from graph_nn.data.dataset import DIGITS
from graph_nn.data.digit_images import prepare_files
from graph_nn.graph import batched
from graph_nn.reports.evaluate import restored_session, run_classes


@dataclasses.dataclass
class Prediction:
    path: str
    probabilities: np.ndarray | None = None  # float [10], None when the file could not be read
    error: str | None = None
    classes: tuple = DIGITS  # the run's class names

    @property
    def digit(self):
        return int(self.probabilities.argmax())

    def __str__(self):
        p, names = self.probabilities, self.classes
        return f"{self.path}: {names[self.digit]} (p={p[self.digit]:.4f})  " + "  ".join(
            f"{name}:{value:.3f}" for name, value in zip(names, p)
        )


def predict_files(run_dir, paths, which=None, weights="raw"):
    """One Prediction per path, in order, by the run's final (or "best" or "latest") checkpoint; a file that
    cannot be read gets its error and the others go on."""
    return predict_prepared(run_dir, prepare_files(paths), which, weights)


def predict_prepared(run_dir, prepared, which=None, weights="raw"):
    """predict_files of digit_images.prepare_files' (path, digit, error) triples."""
    classes = run_classes(run_dir)
    predictions = [Prediction(path, error=error, classes=classes) for path, _, error in prepared]
    images = [digit for _, digit, error in prepared if error is None]
    if images:
        with restored_session(run_dir, which, weights) as (sess, model, _):
            probabilities = iter(batched.probabilities(sess, model, np.stack(images)))
        for prediction in predictions:
            if prediction.error is None:
                prediction.probabilities = next(probabilities)
    return predictions
