"""The pictures of a run as PNG bytes: articles 001's curves, 004's misclassified digits, a confusion matrix.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so nothing opens a window or keeps global state.
"""

import io

import numpy as np

from graph_nn.data.dataset import DIGITS, IMAGE_SIZE, NUM_CLASSES

MISCLASSIFIED_COLUMNS = 8
MISCLASSIFIED_ROWS = 4


def figure(width, height, layout="constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout=layout)


def png(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def curve(train, validation, name, title):
    """Article 001's figure, from the run's event files: the train scalars (means over --log-every steps) as a
    line, the evaluations as points on theirs."""
    fig = figure(6, 4)
    axes = fig.add_subplot()
    for series, style, label in ((train, "-", "Training"), (validation, "o-", "Validation")):
        if series:  # a run shorter than --log-every has no train scalars
            axes.plot(*zip(*series), style, label=f"{label} {name}")
    axes.set_title(title)
    axes.set_xlabel("step")
    axes.legend()
    axes.grid(alpha=0.3)
    return png(fig)


def accuracy_curves(train, validation):
    return curve(train, validation, "Accuracy", "Training and Validation Accuracy")


def loss_curves(train, validation):
    return curve(train, validation, "Loss", "Training and Validation Loss")


def misclassified_grid(images, labels, probabilities, classes=DIGITS):
    """The first misclassified images, each titled `pred / true / p=max_prob` as article 004 prints them.

    One image of all of them on a single axes: 32 axes of their own made this picture half a second, most of
    the end-of-run report.
    """
    predictions = probabilities.argmax(axis=1)
    errors = np.flatnonzero(predictions != labels)[: MISCLASSIFIED_COLUMNS * MISCLASSIFIED_ROWS]
    # Names longer than a digit go on a line each, in a smaller font, to fit the narrow columns.
    separator, size, lines = (" / ", 9, 1) if classes == DIGITS else ("\n", 7, 3)
    title_height = 10 * lines  # pixels of each cell above its image
    cell_width, cell_height = IMAGE_SIZE + 8, IMAGE_SIZE + title_height + 4
    mosaic = np.zeros((MISCLASSIFIED_ROWS * cell_height, MISCLASSIFIED_COLUMNS * cell_width))
    fig = figure(1.3 * MISCLASSIFIED_COLUMNS, (1.2 + 0.3 * lines) * MISCLASSIFIED_ROWS, layout=None)
    fig.suptitle(
        f"Misclassified test {'digits' if classes == DIGITS else 'images'} "
        f"(first {len(errors)} of {np.sum(predictions != labels)}): pred / true / p=max_prob"
    )
    axes = fig.add_axes((0, 0, 1, 0.93))
    for position, index in enumerate(errors):
        row, column = divmod(position, MISCLASSIFIED_COLUMNS)
        top, left = row * cell_height + title_height, column * cell_width + 4
        mosaic[top : top + IMAGE_SIZE, left : left + IMAGE_SIZE] = images[index].reshape(IMAGE_SIZE, IMAGE_SIZE)
        title = separator.join(
            [classes[predictions[index]], classes[labels[index]], f"p={probabilities[index].max():.2f}"]
        )
        axes.text(left + IMAGE_SIZE / 2, top - 2, title, fontsize=size, ha="center", va="bottom")
    axes.imshow(mosaic, cmap="binary", vmin=0, vmax=1)
    axes.set_axis_off()
    return png(fig)


def confusion_matrix(matrix, classes=DIGITS):
    """Counts per (true, predicted) class; the diagonal holds the right answers."""
    fig = figure(6, 5.5)
    axes = fig.add_subplot()
    shown = axes.imshow(np.log1p(matrix), cmap="Blues")
    for true in range(NUM_CLASSES):
        for predicted in range(NUM_CLASSES):
            count = matrix[true, predicted]
            if count:
                axes.text(
                    predicted,
                    true,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shown.norm(np.log1p(count)) > 0.5 else "black",
                )
    named = classes != DIGITS
    axes.set_xticks(range(NUM_CLASSES), classes, **(dict(rotation=45, ha="right") if named else {}))
    axes.set_yticks(range(NUM_CLASSES), classes)
    axes.set_xlabel("predicted class" if named else "predicted digit")
    axes.set_ylabel("true class" if named else "true digit")
    axes.set_title("Confusion matrix on the test set")
    return png(fig)
