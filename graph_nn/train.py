"""The manual Session loop: feed mini-batches, run the train op, write summaries, evaluate, checkpoint."""
import dataclasses
import math
import pathlib
import sys
import time

import numpy as np
import tensorflow as tf

from graph_nn import inference, runs
from graph_nn.config import save_config
from graph_nn.errors import GraphNNError, TrainingDiverged
from graph_nn.model import build_graph
from graph_nn.progress import EpochBar, Meter, format_metrics
from graph_nn.summaries import Writers, build_histograms, scalars

v1 = tf.compat.v1


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


@dataclasses.dataclass
class RunResult:
    run_dir: str
    global_step: int
    test_loss: float
    test_accuracy: float
    history: list  # one dict per evaluation: step, loss, accuracy, val_loss, val_accuracy, seconds


def session_config():
    return v1.ConfigProto(allow_soft_placement=True)


class Trainer:
    """One run: its graph, session, writers and saver, from the first step to the final evaluation."""

    def __init__(self, config, dataset, run_dir, out=None):
        self.config = config
        self.dataset = dataset
        self.run_dir = run_dir
        self.out = out or sys.stdout
        self.schedule = BatchSchedule(config, len(dataset.train))
        self.model = build_graph(config)
        self.histograms = build_histograms(self.model)
        with self.model.graph.as_default():
            self.saver = v1.train.Saver(max_to_keep=5)
            self.init = v1.global_variables_initializer()
        # From here on, an op created by mistake inside the loop fails loudly instead of growing the graph.
        self.model.graph.finalize()
        self.train_meter, self.log_meter = Meter(), Meter()
        self.history = []

    def say(self, text):
        print(text, file=self.out, flush=True)

    def run(self):
        save_config(self.config, self.run_dir)
        (pathlib.Path(self.run_dir) / runs.CHECKPOINT_DIR).mkdir(exist_ok=True)
        writers = Writers(self.run_dir, self.model.graph)
        try:
            with v1.Session(graph=self.model.graph, config=session_config()) as sess:
                sess.run(self.init)
                self.loop(sess, writers)
        finally:
            writers.close()
        last = self.history[-1]
        return RunResult(str(self.run_dir), last["step"], last["val_loss"], last["val_accuracy"], self.history)

    def loop(self, sess, writers):
        schedule, config = self.schedule, self.config
        bar = None
        start = time.perf_counter()
        for step in range(schedule.total_steps):
            global_step = step + 1
            if bar is None and not config.print_every:
                epoch = schedule.epoch_of(step)
                bar = EpochBar(epoch + 1, math.ceil(schedule.total_steps / schedule.steps_per_epoch),
                               min(schedule.steps_per_epoch, schedule.total_steps - step), self.out)
            loss, accuracy = self.train_step(sess, writers, step)
            if config.print_every and global_step % config.print_every == 0:
                rate = global_step / (time.perf_counter() - start)
                self.say(f"step {global_step}/{schedule.total_steps} - loss: {loss:.4f} - "
                         f"accuracy: {accuracy:.4f} - {rate:.0f} steps/s")
            if bar:
                bar.update(step % schedule.steps_per_epoch + 1, self.train_meter.means())
            if schedule.is_eval_point(global_step):
                metrics = self.evaluate(sess, writers, global_step, time.perf_counter() - start)
                self.save(sess, global_step)
                if bar:
                    bar.finish(step % schedule.steps_per_epoch + 1, metrics)
                    bar = None
                else:
                    self.say(f"step {global_step} evaluation - {format_metrics(metrics)}")
            elif config.checkpoint_every and global_step % config.checkpoint_every == 0:
                self.save(sess, global_step)
            if schedule.is_epoch_end(global_step):
                self.train_meter.reset()

    def train_step(self, sess, writers, step):
        model, config = self.model, self.config
        batch = self.schedule.batch(step)
        feed = {model.x: self.dataset.train.images[batch], model.y: self.dataset.train.onehot[batch]}
        global_step = step + 1
        if global_step % config.histogram_every == 0:
            # A separate run before the update, so weights and gradients are those of one same state.
            writers.train.add_summary(sess.run(self.histograms, feed), global_step)
        _, loss, accuracy = sess.run([model.train_op, model.loss, model.accuracy], feed)
        if not np.isfinite(loss):
            raise TrainingDiverged(
                f"the loss became {loss} at step {global_step}; the learning rate "
                f"({config.learning_rate}) is probably too high for {config.optimizer} - "
                f"the last good checkpoint in {self.run_dir} is kept.")
        self.train_meter.add(loss, accuracy)
        self.log_meter.add(loss, accuracy)
        if global_step % config.log_every == 0:
            writers.train.add_summary(scalars(self.log_meter.means()), global_step)
            self.log_meter.reset()
        return float(loss), float(accuracy)

    def evaluate(self, sess, writers, global_step, seconds):
        val_loss, val_accuracy = inference.loss_and_accuracy(sess, self.model, self.dataset.test)
        writers.validation.add_summary(scalars({"loss": val_loss, "accuracy": val_accuracy}), global_step)
        writers.flush()
        metrics = dict(self.train_meter.means(), val_loss=val_loss, val_accuracy=val_accuracy)
        self.history.append(dict(metrics, step=global_step, seconds=seconds))
        return metrics

    def save(self, sess, global_step):
        self.saver.save(sess, runs.checkpoint_prefix(self.run_dir), global_step=global_step)


def train(config, dataset, logdir="logs", out=None):
    """Trains config's model on dataset in a new run directory under logdir; returns the RunResult."""
    run_dir = runs.new_run_dir(logdir, config.model)
    return Trainer(config, dataset, run_dir, out).run()
