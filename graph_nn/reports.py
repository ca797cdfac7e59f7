"""How a trained network does on the test set, as numbers: the report printed at the end of a run and by `evaluate`."""
import dataclasses

import numpy as np

from graph_nn import inference
from graph_nn.data import NUM_CLASSES

FIRST_DIGITS = 10  # article 000 predicts test_images[0:10]


@dataclasses.dataclass
class Evaluation:
    loss: float
    accuracy: float
    labels: np.ndarray  # int [n]
    probabilities: np.ndarray  # float [n, 10]

    @property
    def predictions(self):
        return self.probabilities.argmax(axis=1)

    @property
    def errors(self):
        return int(np.sum(self.predictions != self.labels))

    def confusion_matrix(self):
        """[true digit, predicted digit] -> count."""
        matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
        np.add.at(matrix, (self.labels, self.predictions), 1)
        return matrix

    def precision_recall(self):
        """(precision, recall, support) per digit; a digit never predicted has precision 0."""
        matrix = self.confusion_matrix()
        right = np.diag(matrix).astype(np.float64)
        predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
        precision = np.divide(right, predicted, out=np.zeros_like(right), where=predicted > 0)
        recall = np.divide(right, support, out=np.zeros_like(right), where=support > 0)
        return precision, recall, support


def evaluate_split(sess, model, split):
    loss, accuracy = inference.loss_and_accuracy(sess, model, split)
    return Evaluation(loss, accuracy, split.labels, inference.probabilities(sess, model, split.images))


def format_probabilities(probabilities):
    return np.array2string(probabilities, precision=7, max_line_width=200, formatter={"float_kind": "{:.7e}".format})


def first_digits_lines(evaluation, count=FIRST_DIGITS):
    """Article 000's print-out (predictions[i], its argmax, its probability, the label) for the first digits."""
    lines = [f"The first {count} test digits: probabilities of 0..9, prediction, label"]
    for i in range(min(count, len(evaluation.labels))):
        p = evaluation.probabilities[i]
        predicted = int(p.argmax())
        mark = "" if predicted == evaluation.labels[i] else "  <- wrong"
        lines.append(f"  [{i}] {format_probabilities(p)}  predicted {predicted} (p={p[predicted]:.7f}) "
                     f"label {evaluation.labels[i]}{mark}")
    return lines


def precision_recall_lines(evaluation):
    precision, recall, support = evaluation.precision_recall()
    lines = ["digit  precision  recall  support"]
    for digit in range(NUM_CLASSES):
        lines.append(f"{digit:>5}  {precision[digit]:>9.4f}  {recall[digit]:>6.4f}  {support[digit]:>7}")
    return lines


def confusion_matrix_lines(evaluation):
    matrix = evaluation.confusion_matrix()
    lines = ["Confusion matrix (rows: true digit, columns: predicted digit)",
             "true\\pred" + "".join(f"{d:>6}" for d in range(NUM_CLASSES))]
    for digit in range(NUM_CLASSES):
        lines.append(f"{digit:>9}" + "".join(f"{count:>6}" for count in matrix[digit]))
    return lines


def format_report(evaluation):
    n = len(evaluation.labels)
    lines = [f"Test accuracy: {evaluation.accuracy:.4f} - test loss: {evaluation.loss:.4f} ({n:,} test digits)", ""]
    lines += first_digits_lines(evaluation) + [""]
    lines += [f"Errors: {evaluation.errors:,} of {n:,} test digits ({100 * evaluation.errors / n:.2f}%)", ""]
    lines += precision_recall_lines(evaluation) + [""]
    lines += confusion_matrix_lines(evaluation)
    return "\n".join(lines)
