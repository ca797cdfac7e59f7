"""Which examples each training step uses: a pure function of (seed, step), so a run can resume mid-epoch."""
import math

import numpy as np

from graph_nn.errors import GraphNNError


class BatchSchedule:
    """Which training examples step k uses, computed from k alone so a run can resume mid-epoch.

    "shuffle": epoch e visits a permutation seeded by (seed, e), the last batch of an epoch may be
    short (as in Keras's fit).  "sequential": the TF1 article's x[(k*b) % (n-b) : ... + b].
    """

    def __init__(self, config, num_examples):
        if config.batch_size > num_examples:
            raise GraphNNError(f"--batch-size {config.batch_size} is larger than the {num_examples} training examples.")
        self.config = config
        self.n = num_examples
        self.steps_per_epoch = math.ceil(num_examples / config.batch_size)
        self.total_steps = config.steps or config.epochs * self.steps_per_epoch
        self._epoch, self._permutation = None, None

    def epoch_of(self, step):
        return step // self.steps_per_epoch

    def batch(self, step):
        b = self.config.batch_size
        if self.config.batching == "sequential":
            start = (step * b) % (self.n - b) if self.n > b else 0
            return slice(start, start + b)
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._permutation = epoch, self.permutation(epoch)
        return self._permutation[position * b:(position + 1) * b]

    def feed(self, model, split, step):
        """The feed_dict of step's batch of `split` for the placeholders of `model`."""
        batch = self.batch(step)
        return {model.x: split.images[batch], model.y: split.onehot[batch]}

    def permutation(self, epoch):
        return np.random.default_rng([self.config.seed, epoch]).permutation(self.n)

    def is_epoch_end(self, global_step):
        return global_step % self.steps_per_epoch == 0

    def is_eval_point(self, global_step):
        if global_step == self.total_steps:
            return True
        if self.config.eval_every:
            return global_step % self.config.eval_every == 0
        return self.is_epoch_end(global_step)
