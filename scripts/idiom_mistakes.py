"""The classic mistakes of three TF1 idioms, measured on MNIST (docs/idioms.md quotes its output):

    python scripts/idiom_mistakes.py

dropout evaluated with the training keep_prob; batch norm whose train op does not depend on UPDATE_OPS; an L2
penalty half of Keras's l2(λ), as λ·tf.nn.l2_loss gives it.
"""

import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from graph_nn.core.config import make_config  # noqa: E402
from graph_nn.crosscheck import idiom_parity  # noqa: E402
from graph_nn.data.batches import BatchSchedule  # noqa: E402
from graph_nn.data.dataset import load_dataset  # noqa: E402
from graph_nn.graph import batched  # noqa: E402
from graph_nn.graph.model import add_model, placeholders, training  # noqa: E402
from graph_nn.graph.optimizers import make_optimizer  # noqa: E402

v1 = tf.compat.v1
STEPS = 300


def trained(config, dataset, forget_update_ops=False):
    """(session, model) after STEPS train steps; forget_update_ops: minimize() alone, the batch norm mistake."""
    with tf.Graph().as_default() as graph:
        model = add_model(config, *placeholders(), train=False)
        optimizer = make_optimizer(config)
        if forget_update_ops:
            train_op = optimizer.minimize(model.loss, global_step=model.global_step)
        else:
            train_op = training(model.loss, optimizer).train_op
        schedule = BatchSchedule(config, len(dataset.train))
        init = v1.global_variables_initializer()
    sess = v1.Session(graph=graph)
    sess.run(init)
    for step in range(1, STEPS + 1):
        sess.run(train_op, schedule.feed(model, dataset.train, step))
    return sess, model


def main():
    mnist = load_dataset()
    sess, model = trained(make_config(model="mlp512", dropout=0.5), mnist)
    right = batched.loss_and_accuracy(sess, model, mnist.test)[1]
    wrong = sess.run(model.accuracy, {model.x: mnist.test.images, model.y: mnist.test.onehot, **model.train_feed})
    print(f"dropout 0.5, mlp512, {STEPS} steps: test accuracy keep_prob 1: {right:.4f}, keep_prob 0.5: {wrong:.4f}")
    for forget in (False, True):
        sess, model = trained(make_config(model="mlp512", batch_norm=True), mnist, forget)
        mean, variance = sess.run(model.layers[0].normalization[2:])
        accuracy = batched.loss_and_accuracy(sess, model, mnist.test)[1]
        how = "minimize() alone" if forget else "train op after UPDATE_OPS"
        print(
            f"batch norm, mlp512, {STEPS} steps, {how}: hidden1 moving mean |max| {np.abs(mean).max():.4f}, "
            f"moving variance in [{variance.min():.4f}, {variance.max():.4f}], test accuracy {accuracy:.4f}"
        )
    keras_like = dict(model="mlp64", optimizer="sgd", learning_rate=0.1, semantics="keras")
    right = idiom_parity.training_parity(make_config(l2=1e-3, **keras_like), mnist, steps=50)
    half = idiom_parity.training_parity(make_config(l2=5e-4, **keras_like), mnist, steps=1)
    print(
        f"L2 1e-3 against Keras l2(1e-3), 50 SGD steps: max relative loss difference "
        f"{right.max_relative_difference:.1e}, max weight difference {right.max_weight_difference:.1e}; "
        f"with half the penalty the first loss is {half.graph_losses[0]:.6f}, Keras's {right.keras_losses[0]:.6f}"
    )


if __name__ == "__main__":
    main()
