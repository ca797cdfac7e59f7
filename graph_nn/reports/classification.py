"""How a trained network does on the test set, as numbers: the report printed at the end of a run and by `evaluate`."""

import dataclasses

import numpy as np

from graph_nn.data.dataset import DIGITS, NUM_CLASSES
from graph_nn.graph import batched

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
    loss, accuracy = batched.loss_and_accuracy(sess, model, split)
    return Evaluation(loss, accuracy, split.labels, batched.probabilities(sess, model, split.images))


def format_probabilities(probabilities):
    return np.array2string(probabilities, precision=7, max_line_width=200, formatter={"float_kind": "{:.7e}".format})


def words(classes):
    """(what a class is, what the examples are) in the report: digits for MNIST, classes and images else."""
    return ("digit", "digits") if classes == DIGITS else ("class", "images")


def first_digits_lines(evaluation, classes, count=FIRST_DIGITS):
    """Article 000's print-out (predictions[i], its argmax, its probability, the label) for the first examples."""
    what = "0..9" if classes == DIGITS else f"the {NUM_CLASSES} classes"
    lines = [f"The first {count} test {words(classes)[1]}: probabilities of {what}, prediction, label"]
    for i in range(min(count, len(evaluation.labels))):
        p = evaluation.probabilities[i]
        predicted = int(p.argmax())
        mark = "" if predicted == evaluation.labels[i] else "  <- wrong"
        lines.append(
            f"  [{i}] {format_probabilities(p)}  predicted {classes[predicted]} (p={p[predicted]:.7f}) "
            f"label {classes[evaluation.labels[i]]}{mark}"
        )
    return lines


def precision_recall_lines(evaluation, classes):
    precision, recall, support = evaluation.precision_recall()
    width = max(5, *map(len, classes))
    lines = [f"{words(classes)[0]:<{width}}  precision  recall  support"]
    for label, name in enumerate(classes):
        lines.append(f"{name:>{width}}  {precision[label]:>9.4f}  {recall[label]:>6.4f}  {support[label]:>7}")
    return lines


def confusion_matrix_lines(evaluation, classes):
    kind = words(classes)[0]
    matrix = evaluation.confusion_matrix()
    width = max(9, *map(len, classes))
    # Columns are numbered: names would make them as wide as the longest.
    columns = f"predicted {kind}" if classes == DIGITS else f"predicted {kind}, numbered in the rows' order"
    corner = "true\\pred"
    lines = [
        f"Confusion matrix (rows: true {kind}, columns: {columns})",
        f"{corner:<{width}}" + "".join(f"{label:>6}" for label in range(NUM_CLASSES)),
    ]
    for label, name in enumerate(classes):
        lines.append(f"{name:>{width}}" + "".join(f"{count:>6}" for count in matrix[label]))
    return lines


def format_report(evaluation, classes=DIGITS):
    n, examples = len(evaluation.labels), words(classes)[1]
    lines = [f"Test accuracy: {evaluation.accuracy:.4f} - test loss: {evaluation.loss:.4f} ({n:,} test {examples})", ""]
    lines += first_digits_lines(evaluation, classes) + [""]
    lines += [f"Errors: {evaluation.errors:,} of {n:,} test {examples} ({100 * evaluation.errors / n:.2f}%)", ""]
    lines += precision_recall_lines(evaluation, classes) + [""]
    lines += confusion_matrix_lines(evaluation, classes)
    return "\n".join(lines)
