"""Which examples each training step uses: a pure function of (seed, step), so a run can resume mid-epoch.

Steps are counted as global_step counts them: step k is the k-th update, the one that makes global_step k.
A cluster's worker counts its own batches instead (its local steps): its k-th batch is a pure function of
(seed, task, k).
"""

import math

import numpy as np

from graph_nn.core.errors import GraphNNError
from graph_nn.data.dataset import hold_out


class BatchSchedule:
    """Which training examples step k uses, computed from k alone.

    "shuffle": epoch e visits a permutation seeded by (seed, e), the last batch of an epoch may be
    short (as in Keras's fit).  "sequential": the TF1 article's x[(i*b) % (n-b) : ... + b] for i = k - 1.
    With `task` (a cluster's worker index) the permutations are seeded by (seed, epoch, task), so every worker
    draws its own batches.
    """

    def __init__(self, config, num_examples, task=None):
        if config.batch_size > num_examples:
            raise GraphNNError(f"--batch-size {config.batch_size} is larger than the {num_examples} training examples.")
        if task is not None and config.batching == "sequential":
            raise GraphNNError(
                "sequential batching walks the training set in one order for one process; a "
                "cluster's workers draw shuffled batches (--batching shuffle)."
            )
        last = num_examples % config.batch_size
        if config.batching == "shuffle" and 0 < last < config.towers:
            # An empty tower fails in TensorFlow's fused convolutions; a batch size that leaves none is easy to pick.
            raise GraphNNError(
                f"an epoch's last batch would hold {last} of the {num_examples} training examples, fewer than "
                f"--towers {config.towers}; choose another --batch-size."
            )
        self.config = config
        self.task = task
        self.n = num_examples
        self.steps_per_epoch = math.ceil(num_examples / config.batch_size)
        self.total_steps = config.steps or config.epochs * self.steps_per_epoch
        self._epoch, self._permutation = None, None

    def epoch_of(self, step):
        """The 0-based epoch step k belongs to."""
        return (step - 1) // self.steps_per_epoch

    def batch(self, step):
        """The indices (or slice) of step k's examples."""
        b = self.config.batch_size
        if self.config.batching == "sequential":
            start = ((step - 1) * b) % (self.n - b) if self.n > b else 0
            return slice(start, start + b)
        epoch, position = divmod(step - 1, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._permutation = epoch, self.permutation(epoch)
        return self._permutation[position * b : (position + 1) * b]

    def feed(self, model, split, step):
        """The feed_dict of step k's batch of `split` for the placeholders of `model`, with what only a train
        step feeds (model.train_feed: dropout's keep_prob, ...)."""
        batch = self.batch(step)
        return {model.x: split.images[batch], model.y: split.onehot[batch], **model.train_feed}

    def steps_examples(self, first, last):
        """Steps first..last's example indices, concatenated in step order, and each step's batch size: what an
        in-graph loop or input pipeline gathers its batches from."""
        batches = [self.batch(step) for step in range(first, last + 1)]
        batches = [np.arange(b.start, b.stop) if isinstance(b, slice) else b for b in batches]
        return np.concatenate(batches), np.array([len(b) for b in batches])

    def permutation(self, epoch):
        key = [self.config.seed, epoch] if self.task is None else [self.config.seed, epoch, self.task]
        return np.random.default_rng(key).permutation(self.n)

    def examples(self, steps):
        """How many examples the first `steps` batches hold (an epoch's last batch may be short)."""
        if self.config.batching == "sequential":
            return steps * self.config.batch_size
        epochs, rest = divmod(steps, self.steps_per_epoch)
        return epochs * self.n + rest * self.config.batch_size

    def is_epoch_end(self, step):
        return step % self.steps_per_epoch == 0

    def is_eval_point(self, step):
        if step == self.total_steps:
            return True
        if self.config.eval_every:
            return step % self.config.eval_every == 0
        return self.is_epoch_end(step)


def schedule_for(config, dataset, task=None):
    """config's BatchSchedule over dataset's training examples, a validation split's set aside: the checks that
    need the data (a batch or a split larger than the training set) without TensorFlow."""
    return BatchSchedule(config, len(hold_out(dataset, config.validation_split).train), task=task)
