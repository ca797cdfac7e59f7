"""Where a NaN is born: a run that diverges replays its failing step under tfdbg and names the first op that
computed a non-finite value, checked here against the arithmetic of a divergence built on purpose."""

import dataclasses
import io
import re

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.debug.lib import debug_data

from graph_nn.core.config import make_config
from graph_nn.core.errors import TrainingDiverged
from graph_nn.data.dataset import Split
from graph_nn.training.runs import train
from tests.test_reliability import checkpoint_tensors, only_run_dir

FLOAT32_MAX = float(np.finfo(np.float32).max)
POISON = 3e38  # finite in float32, but a sum of 784 such pixels times the first layer's weights is not


def with_poisoned_image(mnist, index):
    images = mnist.train.images.copy()
    images[index] = POISON
    return dataclasses.replace(mnist, train=Split(images, mnist.train.labels, mnist.train.onehot))


def test_the_hunt_names_the_matmul_that_overflows_on_a_poisoned_image(mnist, tmp_path):
    # Sequential batches of 100: step 3 is examples 200-299, the poisoned one among them; checkpoints at 1 and 2.
    config = make_config(
        model="mlp64", optimizer="sgd", batching="sequential", batch_size=100, steps=10, checkpoint_every=1
    )
    data = with_poisoned_image(mnist, 250)
    out = io.StringIO()
    with pytest.raises(TrainingDiverged, match=r"the loss became nan at step 3, ") as diverged:
        train(config, data, logdir=tmp_path, out=out, report=False)
    run_dir = only_run_dir(tmp_path)
    match = re.search(
        r"At step 3 the first non-finite value came from hidden1/MatMul \(MatMul\): (?:inf|nan|inf and "
        r"nan) in [\d,]+ of its 6,400 values; its inputs ranged: input/x \[0, 3e\+38\], hidden1/kernel "
        r"\[(\S+), (\S+)\]\.\ntfdbg's dump of that step, replayed from the checkpoint of step 2: (\S+)\n",
        out.getvalue(),
    )
    assert match, out.getvalue()
    # The dump is tfdbg's own, readable by its reader: hidden1/MatMul's output is the first non-finite tensor,
    # and only the poisoned example's row of it is.
    dump = debug_data.DebugDumpDir(match.group(3))
    first = dump.find(
        lambda datum, value: value is not None and value.dtype.kind == "f" and not np.isfinite(value).all(), first_n=1
    )[0]
    assert first.node_name == "hidden1/MatMul"
    assert set(np.nonzero(~np.isfinite(first.get_tensor()))[0]) == {50}
    # The arithmetic: hidden1/kernel is still its step-2 value (the checkpoint), and in float64 the poisoned row
    # of x @ kernel leaves float32's range while the other rows stay far inside it.
    kernel = checkpoint_tensors(run_dir)["hidden1/kernel"]
    assert match.group(1, 2) == (f"{kernel.min():.3g}", f"{kernel.max():.3g}")
    products = np.abs(data.train.images[200:300].astype(np.float64) @ kernel)
    assert products[50].max() > FLOAT32_MAX and np.delete(products, 50, axis=0).max() < 1e3
    assert diverged.value.exit_code == 3


def test_a_run_without_a_checkpoint_replays_from_its_initial_weights(mnist, tmp_path):
    """lr 1e8 overflows the output layer at step 4; no checkpoint was saved, so the hunt starts at step 0."""
    config = make_config(model="mlp64", optimizer="sgd", learning_rate=1e8, steps=50)
    out = io.StringIO()
    with pytest.raises(TrainingDiverged, match="no checkpoint had been saved yet"):
        train(config, mnist, logdir=tmp_path, out=out, report=False)
    assert re.search(
        r"^At step 4 the first non-finite value came from output/MatMul \(MatMul\): inf in [\d,]+ of "
        r"its 1,280 values; its inputs ranged: hidden1/activations \[0, \S+\], output/kernel ",
        out.getvalue(),
        re.M,
    ), out.getvalue()
    assert "tfdbg's dump of that step, replayed from the initial weights: " in out.getvalue()
    assert not tf.io.gfile.glob(str(only_run_dir(tmp_path) / "checkpoints" / "*.index"))
