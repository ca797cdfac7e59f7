"""--towers against one tower on the same batches, and the classic mistake of in-graph replication measured:
the towers' gradients summed instead of averaged (docs/idioms.md quotes its output).

    python scripts/towers_mistake.py

Every graph starts from the same weights and trains on the same batches with plain SGD, where the sum is
exactly a learning rate N times larger.
"""

import dataclasses
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from graph_nn.core.config import make_config  # noqa: E402
from graph_nn.data.batches import BatchSchedule  # noqa: E402
from graph_nn.data.dataset import load_dataset  # noqa: E402
from graph_nn.graph import batched, towers  # noqa: E402
from graph_nn.graph.model import build_graph  # noqa: E402
from graph_nn.graph.sessions import session_config  # noqa: E402

v1 = tf.compat.v1
STEPS = 300


def trained(config, dataset, start=None, steps=STEPS):
    """({variable name: value}, test accuracy) after `steps` steps from the weights `start` (else the
    initializer's)."""
    model = build_graph(config)
    with model.graph.as_default():
        init, variables = v1.global_variables_initializer(), v1.global_variables()
    schedule = BatchSchedule(config, len(dataset.train))
    with v1.Session(graph=model.graph, config=session_config(cpus=config.towers)) as sess:
        sess.run(init)
        for variable in variables if start else ():
            variable.load(start[variable.op.name], sess)
        for step in range(1, steps + 1):
            sess.run(model.train_op, schedule.feed(model, dataset.train, step))
        _, accuracy = batched.loss_and_accuracy(sess, model, dataset.test)
        return dict(zip((v.op.name for v in variables), sess.run(variables))), accuracy


def largest_difference(a, b):
    return max(float(np.max(np.abs(a[name] - b[name]))) for name in a if name != "global_step")


def main():
    dataset = load_dataset()
    one = make_config(model="mlp512", optimizer="sgd", learning_rate=0.1, batch_size=128, steps=STEPS)
    start, _ = trained(one, dataset, steps=0)
    reference, accuracy = trained(one, dataset, start)
    doubled, doubled_accuracy = trained(dataclasses.replace(one, learning_rate=0.2), dataset, start)
    averaged, averaged_accuracy = trained(dataclasses.replace(one, towers=2), dataset, start)
    towers.average = summing(towers.average)
    summed, summed_accuracy = trained(dataclasses.replace(one, towers=2), dataset, start)
    print(f"mlp512, SGD 0.1, batch 128, {STEPS} steps, the same initial weights and batches; max |difference| of")
    print("the weights against one tower on the batch of 128, and the test accuracy:")
    print(f"  1 tower                          {0:.1e}  {accuracy:.4f}")
    print(f"  2 towers, gradients averaged     {largest_difference(averaged, reference):.1e}  {averaged_accuracy:.4f}")
    print(f"  2 towers, gradients summed       {largest_difference(summed, reference):.1e}  {summed_accuracy:.4f}")
    print(f"  1 tower, learning rate 0.2       {largest_difference(doubled, reference):.1e}  {doubled_accuracy:.4f}")
    print(f"the sum against one tower at twice the rate: {largest_difference(summed, doubled):.1e}")


def summing(average):
    """The mistake: every tower's gradient with weight 1."""
    return lambda tower_gradients, shares: average(tower_gradients, [1.0] * len(shares))


if __name__ == "__main__":
    main()
