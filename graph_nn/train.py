"""The manual Session loop: feed mini-batches, run the train op, write summaries, evaluate, checkpoint."""
import contextlib
import dataclasses
import math
import pathlib
import sys
import time

import numpy as np
import tensorflow as tf

from graph_nn import inference, recovery, runs, tracing
from graph_nn.config import load_config, save_config
from graph_nn.determinism import deterministic_ops
from graph_nn.errors import GraphNNError, Interrupted, TrainingDiverged
from graph_nn.model import build_graph, train_fetches
from graph_nn.progress import EpochBar, Meter, format_metrics
from graph_nn.schedule import BatchSchedule
from graph_nn.signals import stop_requested_by_signals
from graph_nn.summaries import Writers, build_histograms, scalars

v1 = tf.compat.v1


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
    """One run: its graph, session, writers and saver, from the first step to the final evaluation.

    With resume=True it continues the run already in run_dir from its latest checkpoint.
    """

    def __init__(self, config, dataset, run_dir, out=None, resume=False):
        self.config = config
        self.dataset = dataset
        self.run_dir = run_dir
        self.out = out or sys.stdout
        self.resume = resume
        self.schedule = BatchSchedule(config, len(dataset.train))
        self.model = build_graph(config)
        self.histograms = build_histograms(self.model)
        self.fetches = train_fetches(self.model)
        self.train_meter, self.log_meter = Meter(), Meter()
        self.loop_state = recovery.LoopState(self.model.graph, [self.train_meter, self.log_meter])
        self.all_variables_finite = recovery.all_variables_finite(self.model.graph)
        with self.model.graph.as_default():
            self.saver = v1.train.Saver(max_to_keep=5)
            self.init = v1.global_variables_initializer()
        # From here on, an op created by mistake inside the loop fails loudly instead of growing the graph.
        self.model.graph.finalize()
        self.history = []
        self.saved_step = None

    def say(self, text):
        print(text, file=self.out, flush=True)

    def run(self):
        with recovery.exclusive(self.run_dir):
            if self.resume:
                recovery.check_data_source(self.run_dir, self.dataset.source)
            else:
                self.create_run_files()
            with deterministic_ops(), stop_requested_by_signals() as stop, \
                    v1.Session(graph=self.model.graph, config=session_config()) as sess:
                first_step = self.restore(sess) if self.resume else self.initialize(sess)
                with contextlib.closing(Writers(self.run_dir, self.model.graph)) as writers:
                    self.mark_session_start(writers, first_step)
                    self.loop(sess, writers, first_step, stop)
        last = self.history[-1]
        return RunResult(str(self.run_dir), last["step"], last["val_loss"], last["val_accuracy"], self.history)

    def create_run_files(self):
        try:
            save_config(self.config, self.run_dir)
            recovery.record_data_source(self.run_dir, self.dataset.source)
            (pathlib.Path(self.run_dir) / runs.CHECKPOINT_DIR).mkdir(exist_ok=True)
        except OSError as e:
            raise GraphNNError(f"{self.run_dir}: cannot write the run's files ({e.strerror or e}).") from None

    def initialize(self, sess):
        sess.run(self.init)
        return 0

    def restore(self, sess):
        """Weights, optimizer slots, global step and loop state from the latest checkpoint; returns the step."""
        checkpoint = runs.latest_checkpoint(self.run_dir)
        runs.restore(self.saver, sess, checkpoint)
        # So that max_to_keep goes on deleting the oldest checkpoints, those of the earlier sessions included.
        state = tf.train.get_checkpoint_state(str(pathlib.Path(self.run_dir) / runs.CHECKPOINT_DIR))
        self.saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths))
        self.loop_state.load(sess)
        step = int(sess.run(self.model.global_step))
        if step >= self.schedule.total_steps:
            raise GraphNNError(f"{self.run_dir} already finished its {self.schedule.total_steps} steps; "
                               f"test it with: python run.py evaluate --run {self.run_dir}")
        self.saved_step = step
        epoch, position = divmod(step, self.schedule.steps_per_epoch)
        self.say(f"Resuming {self.run_dir} at step {step}/{self.schedule.total_steps} "
                 f"(epoch {epoch + 1}, {position} of its {self.schedule.steps_per_epoch} steps done)")
        return step

    def mark_session_start(self, writers, first_step):
        """SessionLog(START) at step 0, or at the first step of a resumed session.

        On a START, TensorBoard drops the events at and after its step: those a killed run wrote past its
        last checkpoint, which this session writes again.  Its Python loader ignores a run's first START,
        hence one at step 0 too.
        """
        start = v1.SessionLog(status=v1.SessionLog.START)
        for writer in (writers.train, writers.validation):
            writer.add_session_log(start, first_step + 1 if self.resume else 0)

    def loop(self, sess, writers, first_step, stop):
        schedule, config = self.schedule, self.config
        bar = None
        start = time.perf_counter()
        for step in range(first_step, schedule.total_steps):
            global_step = step + 1
            if bar is None and not config.print_every:
                epoch = schedule.epoch_of(step)
                epoch_start = epoch * schedule.steps_per_epoch
                bar = EpochBar(epoch + 1, math.ceil(schedule.total_steps / schedule.steps_per_epoch),
                               min(schedule.steps_per_epoch, schedule.total_steps - epoch_start),
                               stream=self.out, done=step - epoch_start)
            loss, accuracy = self.train_step(sess, writers, step)
            if config.print_every and global_step % config.print_every == 0:
                rate = (global_step - first_step) / (time.perf_counter() - start)
                self.say(f"step {global_step}/{schedule.total_steps} - loss: {loss:.4f} - "
                         f"accuracy: {accuracy:.4f} - {rate:.0f} steps/s")
            if bar:
                bar.update(step % schedule.steps_per_epoch + 1, self.train_meter.means())
            evaluating = schedule.is_eval_point(global_step)
            if evaluating:
                metrics = self.evaluate(sess, writers, global_step, time.perf_counter() - start)
                if bar and (schedule.is_epoch_end(global_step) or global_step == schedule.total_steps):
                    bar.finish(step % schedule.steps_per_epoch + 1, metrics)
                    bar = None
                elif bar:  # an --eval-every evaluation inside the epoch
                    bar.note(f"step {global_step} evaluation - {format_metrics(metrics)}")
                else:
                    self.say(f"step {global_step} evaluation - {format_metrics(metrics)}")
            if schedule.is_epoch_end(global_step):
                if bar:  # an epoch without an evaluation (--eval-every, compare) still ends its bar
                    bar.finish(schedule.steps_per_epoch, self.train_meter.means())
                    bar = None
                self.train_meter.reset()
            # Saved after the epoch-end reset, so that a resumed run starts from the state the next step sees.
            if evaluating or stop or (config.checkpoint_every and global_step % config.checkpoint_every == 0):
                self.save(sess, writers, global_step)
            if stop and global_step < schedule.total_steps:  # on the last step, the run just ends
                if bar:
                    self.say("")
                raise Interrupted(f"stopped by {stop.name} at step {global_step} after saving its checkpoint; "
                                  f"continue with: python run.py --resume {self.run_dir}", stop.exit_code)

    def train_step(self, sess, writers, step):
        model, config = self.model, self.config
        feed = self.schedule.feed(model, self.dataset.train, step)
        global_step = step + 1
        if global_step % config.histogram_every == 0:
            # A separate run before the update, so weights and gradients are those of one same state.
            writers.train.add_summary(sess.run(self.histograms, feed), global_step)
        if global_step in config.trace_steps:
            _, loss, accuracy = tracing.traced_train_step(sess, self.fetches, feed, writers.train,
                                                          self.run_dir, global_step)
        else:
            _, loss, accuracy = sess.run(self.fetches, feed)
        if not np.isfinite(loss):
            raise self.diverged(f"the loss became {loss}", global_step)
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

    def diverged(self, what, global_step):
        kept = (f"the last good checkpoint (step {self.saved_step}) is kept" if self.saved_step
                else "no checkpoint had been saved yet")
        return TrainingDiverged(f"{what} at step {global_step}, most likely because the learning rate "
                                f"{self.config.learning_rate} is too high for {self.config.optimizer}; "
                                f"{kept} in {self.run_dir}.")

    def save(self, sess, writers, global_step):
        """A checkpoint of global_step, only of finite weights, with the events up to it flushed first.

        Flushed first so that whenever a checkpoint exists, TensorBoard has every event before it.
        """
        if not sess.run(self.all_variables_finite):
            raise self.diverged("the weights became NaN or infinite", global_step)
        self.loop_state.store(sess)
        writers.flush()
        try:
            self.saver.save(sess, runs.checkpoint_prefix(self.run_dir), global_step=global_step)
        except (tf.errors.OpError, OSError) as e:
            message = str(e).strip().splitlines()[0]
            raise GraphNNError(f"cannot write the checkpoint of step {global_step} ({message}); "
                               f"the earlier checkpoints in {self.run_dir} are kept.") from None
        self.saved_step = global_step


def train(config, dataset, logdir="logs", out=None):
    """Trains config's model on dataset in a new run directory under logdir; returns the RunResult."""
    BatchSchedule(config, len(dataset.train))  # refuses a batch larger than the data before a directory is made
    run_dir = runs.new_run_dir(logdir, config.model)
    return Trainer(config, dataset, run_dir, out).run()


def resume(run_dir, dataset, out=None):
    """Continues the run in run_dir from its latest checkpoint, in that same directory; returns the RunResult.

    The batches of a step depend on (seed, step) alone and the checkpoint holds everything else, so the
    result is the one the run would have had without the interruption.
    """
    return Trainer(load_config(run_dir), dataset, run_dir, out, resume=True).run()
