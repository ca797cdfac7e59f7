"""Running a built graph over whole arrays in a Session, in batches that keep memory flat."""

import numpy as np

EVAL_BATCH_SIZE = 2000


def batches(n, batch_size):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def loss_and_accuracy(sess, model, split, batch_size=EVAL_BATCH_SIZE):
    """Mean loss and accuracy over every example of `split` (weighted by batch size)."""
    total_loss = total_correct = 0.0
    for s in batches(len(split), batch_size):
        loss, accuracy = sess.run(
            [model.loss, model.accuracy], feed_dict={model.x: split.images[s], model.y: split.onehot[s]}
        )
        n = s.stop - s.start
        total_loss += float(loss) * n
        total_correct += float(accuracy) * n
    return total_loss / len(split), total_correct / len(split)


def run_batched(sess, fetches, x, images, batch_size=EVAL_BATCH_SIZE):
    """`fetches` (a tensor or name, or a list of them) over every row of `images`, fed to x in batches."""
    results = [sess.run(fetches, feed_dict={x: images[s]}) for s in batches(len(images), batch_size)]
    if isinstance(fetches, (list, tuple)):
        return [np.concatenate(parts) for parts in zip(*results)]
    return np.concatenate(results)


def probabilities(sess, model, images, batch_size=EVAL_BATCH_SIZE):
    """Softmax outputs [n, 10] for float images [n, 784]."""
    return run_batched(sess, model.probabilities, model.x, images, batch_size)


def logits(sess, model, images, batch_size=EVAL_BATCH_SIZE):
    """Logits [n, 10] for float images [n, 784]."""
    return run_batched(sess, model.logits, model.x, images, batch_size)
