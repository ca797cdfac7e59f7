"""Digits in the user's own image files, predicted by a trained run."""
import dataclasses

import numpy as np

from graph_nn import inference
from graph_nn.digit_images import prepare
from graph_nn.errors import GraphNNError
from graph_nn.evaluate import restored_session


@dataclasses.dataclass
class Prediction:
    path: str
    probabilities: np.ndarray | None = None  # float [10], None when the file could not be read
    error: str | None = None

    @property
    def digit(self):
        return int(self.probabilities.argmax())


def predict_files(run_dir, paths):
    """One Prediction per path, in order; a file that cannot be read gets its error and the others go on."""
    predictions, images = [], []
    for path in paths:
        try:
            images.append(prepare(path))
            predictions.append(Prediction(str(path)))
        except GraphNNError as e:
            predictions.append(Prediction(str(path), error=str(e)))
    if images:
        with restored_session(run_dir) as (sess, model, _):
            probabilities = iter(inference.probabilities(sess, model, np.stack(images)))
        for prediction in predictions:
            if prediction.error is None:
                prediction.probabilities = next(probabilities)
    return predictions


def format_prediction(prediction):
    p = prediction.probabilities
    return (f"{prediction.path}: {prediction.digit} (p={p[prediction.digit]:.4f})  "
            + "  ".join(f"{digit}:{value:.3f}" for digit, value in enumerate(p)))
