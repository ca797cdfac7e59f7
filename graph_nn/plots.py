"""The pictures of a run as PNG bytes: articles 001's curves, 004's misclassified digits, a confusion matrix.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so nothing opens a window or keeps global state.
"""
import io

import numpy as np

from graph_nn.data import IMAGE_SIZE, NUM_CLASSES

MISCLASSIFIED_COLUMNS = 8
MISCLASSIFIED_ROWS = 4


def figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def curve(history, train_key, validation_key, title):
    """Article 001's figure: one training and one validation line over the evaluation points."""
    steps = [h["step"] for h in history]
    fig = figure(6, 4)
    axes = fig.add_subplot()
    axes.plot(steps, [h[train_key] for h in history], "o-", label=f"Training {train_key.title()}")
    axes.plot(steps, [h[validation_key] for h in history], "o-", label=f"Validation {train_key.title()}")
    axes.set_title(title)
    axes.set_xlabel("step")
    axes.legend()
    axes.grid(alpha=0.3)
    return png(fig)


def accuracy_curves(history):
    return curve(history, "accuracy", "val_accuracy", "Training and Validation Accuracy")


def loss_curves(history):
    return curve(history, "loss", "val_loss", "Training and Validation Loss")


def misclassified_grid(images, labels, probabilities):
    """The first misclassified digits, each titled `pred / true / p=max_prob` as article 004 prints them."""
    predictions = probabilities.argmax(axis=1)
    errors = np.flatnonzero(predictions != labels)[:MISCLASSIFIED_COLUMNS * MISCLASSIFIED_ROWS]
    fig = figure(1.3 * MISCLASSIFIED_COLUMNS, 1.5 * MISCLASSIFIED_ROWS)
    fig.suptitle(f"Misclassified test digits (first {len(errors)} of {np.sum(predictions != labels)}): "
                 "pred / true / p=max_prob")
    for position, index in enumerate(errors):
        axes = fig.add_subplot(MISCLASSIFIED_ROWS, MISCLASSIFIED_COLUMNS, position + 1)
        axes.imshow(images[index].reshape(IMAGE_SIZE, IMAGE_SIZE), cmap="binary")
        axes.set_title(f"{predictions[index]} / {labels[index]} / p={probabilities[index].max():.2f}", fontsize=9)
        axes.set_axis_off()
    return png(fig)


def confusion_matrix(matrix):
    """Counts per (true, predicted) digit; the diagonal holds the right answers."""
    fig = figure(6, 5.5)
    axes = fig.add_subplot()
    shown = axes.imshow(np.log1p(matrix), cmap="Blues")
    for true in range(NUM_CLASSES):
        for predicted in range(NUM_CLASSES):
            count = matrix[true, predicted]
            if count:
                axes.text(predicted, true, str(count), ha="center", va="center", fontsize=8,
                          color="white" if shown.norm(np.log1p(count)) > 0.5 else "black")
    axes.set_xticks(range(NUM_CLASSES))
    axes.set_yticks(range(NUM_CLASSES))
    axes.set_xlabel("predicted digit")
    axes.set_ylabel("true digit")
    axes.set_title("Confusion matrix on the test set")
    return png(fig)
