"""The manual Session loop, as TensorFlow's fully_connected_feed.py has it: feed a mini-batch, run the train
op, write summaries, evaluate, checkpoint; one step counter from the first step to the last.

With --steps-per-run K, one Session.run trains up to K steps in a while_loop inside the graph
(graph_nn/graph/in_graph_loop.py) on the same batches; a run ends early wherever the loop has something to do
between two steps, so summaries, evaluations and checkpoints come at the same steps as with K = 1.

A cluster's workers run this same loop (graph_nn/distributed/worker.py), each with its own way of running a
step; when the loop acts is graph_nn/training/cadence.py's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time

import numpy as np
import tensorflow as tf

from graph_nn.core.config import TrainConfig, save_config
from graph_nn.core.errors import GraphNNError, Interrupted, TrainingDiverged, WriteFailed, op_error_reason, write_cause
from graph_nn.core.run_dir import EARLY_STOPPED, FINISHED, STOPPED, RunDir, exclusive, write_atomically
from graph_nn.core.signals import stop_requested_by_signals
from graph_nn.data.batches import BatchSchedule
from graph_nn.data.dataset import Dataset, hold_out
from graph_nn.graph import batched, checkpoints, input_pipelines
from graph_nn.graph.determinism import deterministic_ops
from graph_nn.graph.in_graph_loop import add_in_graph_loop
from graph_nn.graph.model import build_graph, train_fetches
from graph_nn.graph.sessions import session_config
from graph_nn.observe import profiling, tracing
from graph_nn.observe.summaries import Writers, build_histograms, scalars
from graph_nn.training import loop_state
from graph_nn.training.cadence import Cadence
from graph_nn.training.progress import reporter_for

v1 = tf.compat.v1
# What a Session.run raises when a task it runs on (a cluster's ps) went away or stopped answering: not a write's
# failure, though it can come from a Saver.save, which reads the variables from the ps.
TASK_GONE = (
    tf.errors.UnavailableError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
    tf.errors.DeadlineExceededError,
)


@dataclasses.dataclass
class TrainingResult:
    run_dir: str
    global_step: int
    history: list[dict]  # one dict per evaluation: step, loss, accuracy, val_loss, val_accuracy, seconds
    status: str = FINISHED  # or EARLY_STOPPED
    best_step: int = 0  # the evaluation with the lowest validation loss, its checkpoint kept as checkpoints/best

    # The last evaluation's figures: the test set's when the run validates on it (the default).
    @property
    def test_loss(self) -> float:
        return self.history[-1]["val_loss"]

    @property
    def test_accuracy(self) -> float:
        return self.history[-1]["val_accuracy"]


class Meter:
    """Running means of the training loss and accuracy since the last reset."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.count = 0
        self.loss = 0.0
        self.accuracy = 0.0

    def add(self, loss, accuracy):
        self.count += 1
        self.loss += (float(loss) - self.loss) / self.count
        self.accuracy += (float(accuracy) - self.accuracy) / self.count

    def means(self):
        return {"loss": self.loss, "accuracy": self.accuracy}


class Best:
    """The lowest validation loss so far, the step of its evaluation and the evaluations since; step 0: none yet."""

    def __init__(self):
        self.step, self.loss, self.evaluations_since = 0, 0.0, 0

    def update(self, step, loss):
        if np.isfinite(loss) and (self.step == 0 or loss < self.loss):
            self.step, self.loss, self.evaluations_since = step, float(loss), 0
        else:
            self.evaluations_since += 1


class Trainer:
    """config's training graph, built and finalized once, and the loop that trains it in a run directory.

    train_steps() is one Session.run of steps as the loop makes it (bench times exactly that); run() is a single
    process's whole run, loop() the loop itself, which a cluster's workers run too (graph_nn/distributed/worker.py)
    with their model (built under their device function, where the Trainer's own variables then go too), their
    batches (task) and their way of running a step.  Only a chief (the single process, worker 0 of a cluster)
    evaluates, saves checkpoints and writes train/ and validation/, as TensorFlow's is_chief has it.
    """

    def __init__(
        self, config: TrainConfig, dataset: Dataset, out=None, model=None, task=None, device=None, is_chief=True
    ):
        self.config = config
        self.dataset = hold_out(dataset, config.validation_split)
        self.out = out or sys.stdout
        self.task, self.is_chief = task, is_chief
        self.schedule = BatchSchedule(config, len(self.dataset.train), task=task)
        self.cadence = Cadence(config, self.schedule)
        self.pipeline = input_pipelines.pipeline_for(config, self.dataset, self.schedule.total_steps)
        self.model = model or build_graph(config, pipeline=self.pipeline)
        # The epoch's means feed the progress bar and the history; the log's, the train scalars.
        self.epoch_meter, self.log_meter = Meter(), Meter()
        self.best = Best()
        with self.model.graph.as_default(), v1.device(device) if device else contextlib.nullcontext():
            self.in_graph_loop = (
                add_in_graph_loop(self.model, config, self.dataset.train) if config.steps_per_run > 1 else None
            )
            self.histograms = build_histograms(self.model, config.variable_summaries)
            self.fetches = train_fetches(self.model)
            self.loop_state = loop_state.LoopState(self.model.graph, [self.epoch_meter, self.log_meter], self.best)
            self.all_variables_finite = loop_state.all_variables_finite(self.model.graph)
            self.saver = v1.train.Saver(max_to_keep=checkpoints.KEEP)
            self.init = v1.global_variables_initializer()
            if self.pipeline:
                self.model.logged.update(self.pipeline.logged)
        # From here on, an op created by mistake inside the loop fails loudly instead of growing the graph.
        self.model.graph.finalize()
        self.run_dir = None
        self.history = []
        self.saved_step = None
        self.status = FINISHED
        self.profiler = profiling.StepProfiler(config.profile_steps)

    def session(self) -> v1.Session:
        settings = session_config(self.config.rewrites_off, self.config.xla, cpus=self.config.towers)
        return v1.Session(graph=self.model.graph, config=settings)

    def run(self, run_dir, resume: bool = False) -> TrainingResult:
        """Trains in run_dir from step 1, or with resume=True from the run's latest checkpoint."""
        run_dir = RunDir(run_dir)
        with exclusive(run_dir):
            self.open_run_dir(run_dir, resume)
            with (
                deterministic_ops(),
                stop_requested_by_signals() as stop,
                self.session() as sess,
                contextlib.closing(self.profiler),
            ):
                # A reader of the output that goes away (python run.py | head) asks for a stop, as Ctrl-C does.
                self.out = stop.watching(self.out)
                first_step = self.restore(sess) if resume else self.initialize(sess)
                steps = SessionRuns(self, first_step)
                try:
                    with (
                        Writers(self.run_dir, self.model.graph) as writers,
                        self.input_pipeline(sess, steps),
                    ):
                        self.mark_session_start(writers, first_step, resume)
                        reporter = reporter_for(self.config, self.schedule, first_step, self.out)
                        self.loop(sess, writers, first_step, stop, steps, reporter)
                except WriteFailed as e:
                    raise WriteFailed(f"{e}; {self.kept_checkpoint()}{self.how_to_go_on()}") from None
                if self.status == STOPPED:
                    raise Interrupted(
                        f"stopped by {stop.name} at step {steps.step} after saving its checkpoint; "
                        f"continue with: python run.py --resume {self.run_dir}",
                        stop.exit_code,
                    )
        return self.result(self.history[-1]["step"])

    # ---- the loop ----------------------------------------------------------------------------------------

    def loop(self, sess, writers, first_step, stop, steps, reporter):
        """Trains from first_step until the schedule's last step, the end that early stopping sets (status
        EARLY_STOPPED) or a stop that a signal or a closed output pipe requests (status STOPPED, the chief's
        checkpoint saved).

        steps runs the steps and knows the global step: a single process's SessionRuns, a cluster worker's steps
        (graph_nn/distributed/worker.py); reporter shows them (graph_nn/training/progress.py).  Between two of
        steps' runs, the chief does what the cadence asks for the steps the global step went through.
        """
        total, start = self.schedule.total_steps, time.perf_counter()
        previous = first_step
        while steps.step < total:
            trained = False
            for step, loss, accuracy in steps.train(sess, previous, writers, stop):
                reporter.step(step, loss, accuracy, self.epoch_meter.means())
                trained = True
            if trained:
                if self.is_chief and self.between_steps(sess, writers, previous, steps.step, reporter, start):
                    return
                previous = steps.step
            if stop:
                break
        if stop and steps.step < total:  # on the last step, the run just ends
            if self.is_chief:
                self.save(sess, writers, steps.step)
            reporter.stopped()
            self.status = STOPPED

    def between_steps(self, sess, writers, previous, step, reporter, start):
        """The chief's evaluation, epoch end and checkpoint, where the global step went past their marks;
        True where early stopping ends the run."""
        if self.model.logged and self.cadence.logs(previous, step):
            values = sess.run(self.model.logged)
            writers.train.add_summary(scalars(values), step)
        evaluating = self.cadence.evaluates(previous, step)
        if evaluating:
            reporter.evaluation(step, self.evaluate(sess, writers, step, time.perf_counter() - start))
        if self.cadence.ends_epoch(previous, step):
            reporter.epoch_end(step, self.epoch_meter.means())
            self.epoch_meter.reset()
        # Saved after the epoch-end reset, so that a resumed run starts from the state the next step sees.
        if evaluating or self.cadence.checkpoints(previous, step):
            self.save(sess, writers, step)
        if not (evaluating and self.early_stop_due()):  # early stopping ends the run, whatever a signal asks
            return False
        reporter.stopped()
        print(
            f"Early stop at step {step}: no lower validation loss in {self.config.early_stop} evaluations; "
            f"the lowest, {self.best.loss:.4f}, was at step {self.best.step}.",
            file=self.out,
            flush=True,
        )
        self.status = EARLY_STOPPED
        return True

    def runs(self, first_step):
        """(first, last) step of each Session.run after first_step: --steps-per-run steps, fewer where a run
        must end early because the loop acts between two steps."""
        first = first_step + 1
        while first <= self.schedule.total_steps:
            last = min(first + self.config.steps_per_run - 1, self.schedule.total_steps)
            last = next((step for step in range(first, last) if self.cadence.acts_after(step)), last)
            yield first, last
            first = last + 1

    def train_steps(self, sess, first: int, last: int, writers: Writers):
        """Steps first..last in one Session.run: one step fed by feed_dict, or the in-graph loop's steps.

        Yields (step, loss, accuracy) for each step after it is counted (see count()); a loss and an accuracy
        are the batch's before its update, as Keras reports them.
        """
        if self.histograms_due(first - 1, first):
            # A separate run before the update, so weights and gradients are those of one same state.
            self.write_histograms(sess, writers, self.feed(first), first)
        if self.in_graph_loop:
            fetches, feed = self.in_graph_loop.fetches, self.in_graph_loop.feed(self.schedule, first, last)
        else:
            fetches, feed = self.fetches, self.step_feed(first)
        self.profiler.before(first, self.run_dir)
        with self.profiler.marking(first):
            if first in self.config.trace_steps:
                values = tracing.traced_train_step(sess, fetches, feed, writers.train, self.run_dir, first)
            else:
                values = sess.run(fetches, feed)
        self.profiler.after(last)
        # The in-graph loop stops after a non-finite loss, so its last values may come before `last`.
        losses, accuracies = np.atleast_1d(values[-2]), np.atleast_1d(values[-1])
        for step, loss, accuracy in zip(range(first, last + 1), losses, accuracies):
            self.count(step - 1, step, loss, accuracy, writers)
            yield step, float(loss), float(accuracy)

    def train_step(self, sess, step: int, writers: Writers) -> tuple[float, float]:
        """Step k alone, in a Session.run of its own: its batch's loss and accuracy."""
        [(_, loss, accuracy)] = self.train_steps(sess, step, step, writers)
        return loss, accuracy

    def feed(self, batch):
        """The feed_dict of this trainer's batch number `batch` (a cluster's worker counts its own)."""
        return self.schedule.feed(self.model, self.dataset.train, batch)

    def step_feed(self, step):
        """What the train step of `step` is fed: its batch, unless an input pipeline in the graph draws it."""
        return dict(self.model.train_feed) if self.pipeline else self.feed(step)

    def count(self, previous, step, loss, accuracy, writers):
        """A trained batch's loss and accuracy, the global step gone from previous to step: the NaN check, the
        running means, and the chief's train scalars where the step passed a log mark.  Returns the log's
        means there (a cluster's worker writes its own scalars too), else None."""
        if not np.isfinite(loss):
            raise self.diverged(f"the loss became {loss}", step)
        self.epoch_meter.add(loss, accuracy)
        self.log_meter.add(loss, accuracy)
        if not self.cadence.logs(previous, step):
            return None
        means = self.log_meter.means()
        if self.is_chief:
            writers.train.add_summary(scalars(means), step)
        self.log_meter.reset()
        return means

    def histograms_due(self, previous, step):
        return self.is_chief and self.cadence.histograms(previous, step)

    def write_histograms(self, sess, writers, feed, step, options=None):
        writers.train.add_summary(sess.run(self.histograms, feed, options=options), step)

    # ---- around the loop ---------------------------------------------------------------------------------

    def open_run_dir(self, run_dir, resume):
        """The run's files written in run_dir, or for a run that goes on, a check that it trains on the same data."""
        self.run_dir = RunDir(run_dir)
        if resume:
            loop_state.check_data_source(self.run_dir, self.dataset.source)
            return
        try:
            save_config(self.config, self.run_dir)
            loop_state.record_data_source(self.run_dir, self.dataset.source)
            write_atomically(self.run_dir.classes, "\n".join(self.dataset.classes) + "\n")
            self.run_dir.checkpoints.mkdir(exist_ok=True)
        except OSError as e:
            raise GraphNNError(f"{self.run_dir}: cannot write the run's files ({e.strerror or e}).") from None

    def initialize(self, sess):
        sess.run(self.init)
        self.load_training_data(sess)
        return 0

    def load_training_data(self, sess):
        if self.in_graph_loop:
            self.in_graph_loop.load(sess, self.dataset.train)

    @contextlib.contextmanager
    def input_pipeline(self, sess, steps):
        """The input pipeline started at the session's first step, and stopped whatever ends the loop; a failure
        of its own ends the run in one sentence."""
        if not self.pipeline:
            yield
            return
        try:
            with self.pipeline.running(sess, self.schedule, steps.step, self.dataset.train):
                yield
        except tf.errors.OpError as e:
            reason = op_error_reason(e)
            raise GraphNNError(
                f"the {self.config.input} input pipeline failed after step {steps.step} ({reason}); "
                f"{self.kept_checkpoint()} in {self.run_dir}."
            ) from None

    def restore(self, sess):
        """Weights, optimizer slots, global step and loop state from the latest checkpoint (or, when it is damaged,
        the newest good one before it: the loop state is inside each, so the run goes on consistently from its
        step); returns the step."""
        restored_and_before = checkpoints.restore_latest(self.saver, sess, self.run_dir)
        # So that max_to_keep goes on deleting the oldest checkpoints, those of the earlier sessions included; the
        # damaged ones after the one restored are left out, and overwritten when the run saves their steps again.
        self.saver.recover_last_checkpoints(restored_and_before[::-1])
        self.loop_state.load(sess)
        self.load_training_data(sess)
        step = int(sess.run(self.model.global_step))
        total = self.schedule.total_steps
        if step >= total or self.early_stop_due():
            done = f"stopped early at step {step}" if step < total else f"already finished its {total} steps"
            raise GraphNNError(f"{self.run_dir} {done}; test it with: python run.py evaluate --run {self.run_dir}")
        self.saved_step = step
        epoch, position = divmod(step, self.schedule.steps_per_epoch)
        print(
            f"Resuming {self.run_dir} at step {step}/{total} (epoch {epoch + 1}, {position} of its "
            f"{self.schedule.steps_per_epoch} steps done)",
            file=self.out,
            flush=True,
        )
        return step

    def rejoin(self, sess):
        """A restarted cluster chief's start, the variables live on the parameter servers still: the loop's state
        read from them, and the kept checkpoints taken over, as restore() does."""
        self.loop_state.load(sess)
        kept = checkpoints.all_kept(self.run_dir)
        self.saver.recover_last_checkpoints(kept)
        self.saved_step = int(kept[-1].rsplit("-", 1)[1]) if kept else None  # model.ckpt-STEP

    def mark_session_start(self, writers, first_step, resume):
        """SessionLog(START) at step 0, or at the first step of a resumed session.

        On a START, TensorBoard drops the events at and after its step: those a killed run wrote past its
        last checkpoint, which this session writes again.  Its Python loader ignores a run's first START,
        hence one at step 0 too.
        """
        start = v1.SessionLog(status=v1.SessionLog.START)
        for writer in (writers.train, writers.validation):
            writer.add_session_log(start, first_step + 1 if resume else 0)

    def evaluate(self, sess, writers, step, seconds):
        val_loss, val_accuracy = batched.loss_and_accuracy(sess, self.model, self.dataset.validation)
        figures = {"loss": val_loss, "accuracy": val_accuracy}
        if self.model.averaged:  # the moving averages of the weights, validated beside the weights
            loss, accuracy = self.model.averaged
            averaged = dataclasses.replace(self.model, loss=loss, accuracy=accuracy)
            figures["ema/loss"], figures["ema/accuracy"] = batched.loss_and_accuracy(
                sess, averaged, self.dataset.validation
            )
        writers.validation.add_summary(scalars(figures), step)
        writers.flush()
        self.best.update(step, val_loss)
        metrics = dict(self.epoch_meter.means(), val_loss=val_loss, val_accuracy=val_accuracy)
        if self.model.averaged:
            metrics.update(val_loss_ema=figures["ema/loss"], val_accuracy_ema=figures["ema/accuracy"])
        self.history.append(dict(metrics, step=step, seconds=seconds))
        return metrics

    def early_stop_due(self):
        return bool(self.config.early_stop) and self.best.evaluations_since >= self.config.early_stop

    def kept_checkpoint(self, which="last"):
        """What a run that ends now leaves to go on from, in words."""
        if self.saved_step is None:
            return "no checkpoint had been saved yet"
        return f"the {which} checkpoint (step {self.saved_step}) is kept"

    def how_to_go_on(self):
        """After kept_checkpoint(), after a write that failed: how to continue the run once the disk takes writes."""
        if self.saved_step is None:
            return f" in {self.run_dir}."
        return f"; once the disk takes writes again, continue with: python run.py --resume {self.run_dir}"

    def diverged(self, what, step):
        if not self.is_chief:
            return TrainingDiverged(
                f"{what} at step {step} on worker {self.task}; the chief keeps the last good checkpoint", step
            )
        return TrainingDiverged(
            f"{what} at step {step}, most likely because the learning rate "
            f"{self.config.learning_rate} is too high for {self.config.optimizer}; "
            f"{self.kept_checkpoint('last good')} in {self.run_dir}.",
            step,
        )

    def save(self, sess, writers, step):
        """A checkpoint of step, only of finite weights, with the events up to it flushed first; at an evaluation
        that lowered the validation loss, the best checkpoint too.

        Flushed first so that whenever a checkpoint exists, TensorBoard has every event before it.  The best one
        is written before the rolling one, so that a resume never starts after a best step whose checkpoint is
        missing: it trains that step again and saves it.  Without write_state the Saver keeps it out of the
        rolling ones, which max_to_keep deletes.  A step saved already is not saved again (a cluster's chief
        that leaves after its last checkpoint).
        """
        if step == self.saved_step:
            return
        if not sess.run(self.all_variables_finite):
            raise self.diverged("the weights became NaN or infinite", step)
        self.loop_state.store(sess)
        writers.flush()
        try:
            if self.best.step == step:
                self.saver.save(sess, str(self.run_dir.best_checkpoint), write_meta_graph=False, write_state=False)
            self.saver.save(sess, str(self.run_dir.checkpoint_prefix), global_step=step)
        except TASK_GONE:
            raise  # a cluster's ps, which holds the variables the save reads, went away: the caller says which
        except (tf.errors.OpError, OSError) as e:
            directory = self.run_dir.checkpoints
            raise WriteFailed(
                f"cannot write the checkpoint of step {step} in {directory} ({write_cause(e, directory)})"
            ) from None
        self.saved_step = step

    def result(self, global_step):
        return TrainingResult(str(self.run_dir), global_step, self.history, self.status, self.best.step)


class SessionRuns:
    """How a single process runs its steps in Trainer.loop: Trainer.runs' Session.runs, --steps-per-run steps
    each (one by default)."""

    def __init__(self, trainer, first_step):
        self.trainer, self.step = trainer, first_step
        self.runs = trainer.runs(first_step)

    def train(self, sess, previous, writers, stop):
        first, last = next(self.runs)
        yield from self.trainer.train_steps(sess, first, last, writers)
        self.step = last
