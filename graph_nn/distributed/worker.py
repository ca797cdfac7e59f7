"""What a cluster's worker does (graph_nn/distributed/tasks.py has the cluster's whole story): its start (the
chief initializes or restores the variables, the others wait for it), the training loop every process runs
(graph_nn/training/loop.py) with this worker's way of running a step, and its end (the chief's checkpoint, the
parameter servers told, the chief's report).
"""

import contextlib
import threading
import time

import tensorflow as tf

from graph_nn.core.errors import ClusterFailed, GraphNNError, Interrupted, TrainingDiverged
from graph_nn.core.run_dir import DIVERGED, FINISHED, STOPPED, RunDir, exclusive
from graph_nn.core.signals import stop_requested_by_signals
from graph_nn.distributed import replicas
from graph_nn.distributed.servers import POLL_S, STEP_TIMEOUT_S, close, cluster_session, lost, start_server
from graph_nn.distributed.spec import save_cluster, wait_for_listener
from graph_nn.graph import checkpoints
from graph_nn.graph.layer_table import format_summary
from graph_nn.observe.summaries import Writers, event_writer, scalars
from graph_nn.training.cadence import crossed
from graph_nn.training.loop import Trainer
from graph_nn.training.progress import StepLines
from graph_nn.training.runs import describe, finish, record_end

v1 = tf.compat.v1
NOTICE_S = 10  # a wait this long is reported, once


def start_mark(step):
    """Where the START of a session that trains from `step` goes, as Trainer.mark_session_start has it."""
    return step + 1 if step else 0


class Stalled(ClusterFailed):
    """The global step did not move for the wait limit, while the parameter servers answered."""


class Worker:
    """One worker's graph, session, start and end around the training loop; worker 0 also does the chief's part."""

    def __init__(self, task, config, dataset, run_dir, replication, wait_limit, out):
        self.task, self.config, self.dataset, self.replication = task, config, dataset, replication
        self.wait_limit, self.out = wait_limit, out
        self.run_dir = RunDir(run_dir)
        self.parts = replicas.worker_graph(config, task, replication)
        self.trainer = Trainer(
            config,
            dataset,
            out,
            model=self.parts.model,
            task=task.index,
            device=self.parts.device,
            is_chief=task.is_chief,
        )
        self.model = self.parts.model
        self.sync = replication.mode == "sync"
        self.aggregate = replication.replicas_to_aggregate(task.num_workers)
        self.timeout = v1.RunOptions(timeout_in_ms=STEP_TIMEOUT_S * 1000)
        self.sess = self.steps = self.writers = self.updates = None
        self.left = False

    def say(self, text):
        print(text, file=self.out, flush=True)

    def run(self):
        task = self.task
        server = start_server(task)
        self.say(self.introduction())
        self.wait_for_parameter_servers()
        filters = ["/job:ps", f"/job:worker/task:{task.index}"]
        self.sess = cluster_session(server.target, self.model.graph, filters)
        self.steps = ClusterSteps(
            self.sess, self.parts, self.trainer, task, self.replication, self.wait_limit, self.say
        )
        with contextlib.ExitStack() as stack:
            if task.is_chief:
                stack.enter_context(exclusive(self.run_dir))
            stack.enter_context(self.model.graph.as_default())
            stop = stack.enter_context(stop_requested_by_signals())
            try:
                first_step = self.start_chief() if task.is_chief else self.wait_for_chief(stop)
                self.train(first_step, stop)
                report = self.report_workers() if task.is_chief else None
                self.leave(save=bool(stop))
                if self.trainer.status == STOPPED:
                    raise Interrupted(self.stopped_message(stop), stop.exit_code)
            except tf.errors.OpError as e:
                raise self.recorded(self.noting_checkpoint(lost(task, e)), STOPPED) from None  # the cluster is gone
            except Stalled as e:
                with contextlib.suppress(tf.errors.OpError):  # a ps gone as well: the stall is the first cause
                    self.leave(save=True)
                raise self.recorded(self.noting_checkpoint(e), STOPPED) from None
            except GraphNNError as e:
                self.leave(save=False)
                raise self.recorded(e, DIVERGED if isinstance(e, TrainingDiverged) else STOPPED) from None
            finally:
                if self.writers:
                    self.writers.close()
        if not task.is_chief:
            self.say(f"{task.name} done at step {self.steps.step} after {self.steps.local_steps} batches")
            return 0
        self.say(report)
        self.recorded(None, FINISHED)
        finish(self.trainer.result(self.steps.step), self.dataset, self.run_dir.path.parent, self.out)
        return 0

    def introduction(self):
        task = self.task
        if not self.sync:
            mode = f"async, each of the {task.num_workers} workers applying its own gradients"
        elif self.aggregate == 1:
            mode = "sync, each update one worker's gradient"
        else:
            mode = f"sync, each update the mean of {self.aggregate} of the {task.num_workers} workers' gradients"
        return f"{task.name}{' (the chief)' if task.is_chief else ''} on {task.address}: {mode}"

    def recorded(self, error, status):
        """error, once the chief has recorded in result.json how its training ended (as a single-process run's
        train.run_and_record does); a record that cannot be written must not replace the error's sentence."""
        if self.task.is_chief and self.writers:
            step = self.steps.step if status == FINISHED else self.trainer.saved_step or 0
            with contextlib.suppress(GraphNNError, OSError):
                record_end(self.trainer, status, step, str(error) if error else None)
        return error

    def wait_for_parameter_servers(self):
        """A session's first run waits for a missing ps for ever: no TensorFlow timeout applies to it."""
        for index, address in enumerate(self.task.jobs["ps"]):
            if not wait_for_listener(address, 0):
                self.say(f"waiting for ps {index} at {address}")
                if not wait_for_listener(address, self.wait_limit):
                    raise ClusterFailed(f"ps {index} ({address}) did not come up within {self.wait_limit} s")

    # ---- the start: the chief initializes or restores, the others wait for it --------------------------

    def start_chief(self):
        trainer, sess = self.trainer, self.sess
        self.say(format_summary(self.model, self.config.model))
        self.say(describe(self.config, trainer))
        # A chief has started this run before where its data source is noted.
        trainer.open_run_dir(self.run_dir, resume=self.run_dir.data_source.exists())
        save_cluster(self.run_dir, self.task, self.replication)
        if len(sess.run(self.parts.uninitialized, options=self.timeout)) == 0:
            step = self.steps.global_step()
            self.say(f"the variables are on the parameter servers already: continuing at step {step}")
            trainer.rejoin(sess)
        else:
            step = trainer.restore(sess) if checkpoints.all_kept(self.run_dir) else trainer.initialize(sess)
            if self.sync:  # before the workers start, which happens once purge_from is set, next
                sess.run(self.parts.sync.uncount, options=self.timeout)
            # Where every worker's event file starts again (ClusterSteps.start), the cluster having gone back to step.
            sess.run(self.parts.set_purge_from, {self.parts.purge_from: start_mark(step)}, options=self.timeout)
        if self.sync:
            # No initial tokens (TF1's chief puts replicas_to_aggregate in the queue): they would let a worker
            # send a second gradient at the first step, and fill an update alone.
            sess.run(self.parts.sync.chief_init)
            self.updates = ChiefUpdates(sess, self.parts.sync.update)
        self.writers = Writers(self.run_dir, self.model.graph)
        trainer.mark_session_start(self.writers, step, resume=step > 0)
        return step

    def wait_for_chief(self, stop):
        start, noticed = time.monotonic(), False
        while len(self.sess.run(self.parts.uninitialized, options=self.timeout)):
            if stop:
                raise Interrupted(f"{self.task.name} stopped by {stop.name} before training", stop.exit_code)
            if time.monotonic() - start > self.wait_limit:
                raise ClusterFailed(
                    f"the chief (worker 0, {self.task.jobs['worker'][0]}) did not initialize the "
                    f"variables within {self.wait_limit} s"
                )
            if not noticed:
                self.say("waiting for the chief to initialize the variables")
                noticed = True
            time.sleep(POLL_S)
        if self.sync:
            self.sess.run(self.parts.sync.local_step_init)
        return self.steps.global_step()

    def train(self, first_step, stop):
        """The training loop, until the global step reaches the schedule's total or a signal asks to stop."""
        every = self.config.print_every or self.trainer.schedule.steps_per_epoch
        reporter = WorkerLines(every, self.trainer.schedule.total_steps, first_step, self.steps, self.out)
        self.steps.start(first_step, self.run_dir)
        try:
            self.trainer.loop(self.sess, self.writers, first_step, stop, self.steps, reporter)
        finally:
            self.steps.close()

    # ---- the end ---------------------------------------------------------------------------------------

    def leave(self, save):
        """This worker's end while the cluster still answers: the chief's checkpoint, the parameter servers told.
        Once: an error raised after it (a stop's, say) leaves nothing more to do."""
        if self.left:
            return
        self.left = True
        try:
            if save and self.writers:
                self.trainer.save(self.sess, self.writers, self.steps.step)
        finally:  # a checkpoint that could not be written still lets the parameter servers end
            for done in self.parts.done:
                self.tell_done(done)
            close(self.sess)
            if self.updates:
                self.updates.join()

    def tell_done(self, done):
        """Puts this worker's index in a ps's done queue.  The enqueue's first run registers its graph on the ps,
        which on a loaded machine can outlast a step's timeout: it is tried again, up to the wait limit, or the ps
        would wait for this worker until its own limit and end in an error."""
        deadline = time.monotonic() + self.wait_limit
        while True:
            try:
                self.sess.run(done, options=self.timeout)
                return
            except tf.errors.DeadlineExceededError:
                if time.monotonic() > deadline:
                    return
            except tf.errors.OpError:  # a ps already gone has nothing to wait for
                return

    def report_workers(self):
        steps = self.sess.run(self.parts.worker_steps, options=self.timeout)
        mode = "async"
        if self.sync:
            mode = f"sync: each update the mean of {self.aggregate} gradients" if self.aggregate > 1 else "sync"
        return f"Global step {self.steps.global_step()} ({mode}); " + ", ".join(
            f"worker {i}: {n:,} batches, {self.trainer.schedule.examples(n):,} examples" for i, n in enumerate(steps)
        )

    def noting_checkpoint(self, error):
        """error's sentence, ending with where the chief's last checkpoint is."""
        if not self.task.is_chief:
            return error
        return type(error)(f"{error}; {self.trainer.kept_checkpoint()} in {self.run_dir}")

    def stopped_message(self, stop):
        if not self.task.is_chief:
            return f"{self.task.name} stopped by {stop.name} at step {self.steps.step}"
        return (
            f"stopped by {stop.name} at step {self.steps.step} after saving its checkpoint; continue with: "
            f"python run.py cluster --resume {self.run_dir}"
        )


class ClusterSteps:
    """How a cluster's worker runs and counts its steps in Trainer.loop: one batch of its own per Session.run,
    which goes into whichever global step the updates have reached, within the timeouts of tasks.py's docstring.

    Every wait has a limit.  A training run gets STEP_TIMEOUT_S; after that the worker reads the global step
    instead (only the chief's sync updates run without a timeout; they end when its session closes).  A sync step
    waits for the other workers' gradients, so a worker whose step timed out goes on waiting for the update its
    gradient went into, without sending it again (a second gradient computed at the same step would count as
    another worker's), until --wait-limit seconds after it sent it.
    """

    def __init__(self, sess, parts, trainer, task, replication, wait_limit, say):
        self.sess, self.parts, self.trainer, self.task = sess, parts, trainer, task
        self.sync = replication.mode == "sync"
        self.aggregate = replication.replicas_to_aggregate(task.num_workers)
        self.wait_limit, self.say = wait_limit, say
        self.timeout = v1.RunOptions(timeout_in_ms=STEP_TIMEOUT_S * 1000)
        self.step = self.token = self.local_steps = 0  # the global step, the sync token, this worker's batches
        self.writer = None

    def global_step(self):
        return int(self.sess.run(self.trainer.model.global_step, options=self.timeout))

    def start(self, first_step, run_dir):
        """worker-N/'s event writer, with a START (see Trainer.mark_session_start: TensorBoard then drops what the
        worker's earlier process wrote at and after its step) at the step the chief went back to, where the chief
        restored or initialized the variables since this worker last started, else at the worker's first step."""
        self.writer = event_writer(run_dir.worker_events(self.task.index))
        purge_from = int(self.sess.run(self.parts.take_purge_from, options=self.timeout))
        self.writer.add_session_log(
            v1.SessionLog(status=v1.SessionLog.START), purge_from if purge_from >= 0 else start_mark(first_step)
        )
        self.step = self.token = first_step
        self.local_steps = int(self.sess.run(self.parts.worker_steps, options=self.timeout)[self.task.index])
        self.logged_at, self.logged_steps = time.perf_counter(), self.local_steps

    def close(self):
        if self.writer:
            self.writer.close()

    def train(self, sess, previous, writers, stop):
        """This worker's next batch, whichever global step it goes into: yields (global step, loss, accuracy), or
        nothing where the step timed out or a signal asks to stop."""
        if stop:
            return
        feed = self.trainer.feed(self.local_steps + 1)
        if self.sync:
            feed[self.parts.sync.sent] = [self.token, self.local_steps + 1]
        trained = self.train_step(feed, stop)
        if trained is None:
            return
        loss, accuracy = trained
        means = self.trainer.count(previous, self.step, loss, accuracy, writers)
        if means:
            now = time.perf_counter()
            rate = (self.local_steps - self.logged_steps) / (now - self.logged_at)
            self.writer.add_summary(
                scalars(dict(means, steps_per_second=rate, local_steps=self.local_steps)), self.step
            )
            self.logged_at, self.logged_steps = now, self.local_steps
        if self.trainer.histograms_due(previous, self.step):  # after the update: the global step is known then
            self.trainer.write_histograms(sess, writers, feed, self.step, self.timeout)
        yield self.step, loss, accuracy

    def train_step(self, feed, stop):
        """One batch through the train op: (loss, accuracy), or None when the step timed out."""
        sent_at, sent = self.token, time.monotonic()  # sync: the local step this batch's gradient is computed at
        try:
            after, loss, accuracy, worker_steps, *_ = self.sess.run(self.parts.fetches, feed, options=self.timeout)
            self.local_steps = int(worker_steps[self.task.index])
        except tf.errors.DeadlineExceededError:
            after = loss = accuracy = None
            self.local_steps += 1  # its gradient went out: the batch counts as trained on
        if self.sync:
            self.token = self.next_token(sent_at, after, stop, sent)
            self.step = max(self.step, self.token)
        else:
            self.step = max(self.step, self.wait_for_update(self.step, stop, sent) if after is None else int(after))
        return None if loss is None else (loss, accuracy)

    def next_token(self, sent_at, token, stop, sent):
        """The token this worker goes on with: one from an update after `sent_at`.

        Sync training paces the workers with a queue of tokens: the train op sends the gradient, then takes a
        token, whose value (the global step of the update that made it) is the step the worker's next gradient
        is computed at.  Each update puts one token per worker in the queue, but the tokens are not per worker:
        a worker whose gradient for the step under way has gone out can take another worker's token, and its
        next gradient would then be counted as that worker's.  So a token no newer than `sent_at` is given back
        if it is for the step under way (another worker needs it) and dropped if older (left over from a timed
        out or killed worker); the worker waits for the update, then takes a token with a dequeue of its own.
        The train op's token is None when it timed out waiting for one.
        """
        sync = self.parts.sync
        if token is not None and token > sent_at:
            return int(token)
        while token is None or token <= sent_at:
            if token is not None and token == self.global_step():
                self.sess.run(sync.give_back, {sync.token: token}, options=self.timeout)
            step = self.wait_for_update(sent_at + 1, stop, sent)
            if stop or step >= self.trainer.schedule.total_steps:
                return step
            with contextlib.suppress(tf.errors.DeadlineExceededError):
                token = int(self.sess.run(sync.take_token, options=self.timeout))
        self.sess.run(sync.local_step_init, options=self.timeout)  # the dequeue above set no local step
        return token

    def wait_for_update(self, target, stop, sent):
        """Reads the global step until it reaches `target` (sync: the update this worker's gradient went into;
        async: any answer at all) or the run's end; gives up at the wait limit after the gradient was `sent`
        (time.monotonic()), not after the step's own timeout: the parameter servers wait twice the limit for the
        workers to say they are done (graph_nn/distributed/ps.py), a limit that leaves a chief that gives up the
        time to save its checkpoint first.  Returns the global step."""
        answered = sent
        step, noticed = self.step, False
        while not stop:
            with contextlib.suppress(tf.errors.DeadlineExceededError):
                step = self.global_step()
                answered = time.monotonic()
                if not self.sync or step >= min(target, self.trainer.schedule.total_steps):
                    return step
            waited = time.monotonic() - sent
            if waited > NOTICE_S and not noticed:
                self.say(self.waiting_notice(time.monotonic() - answered < NOTICE_S))
                noticed = True
            if waited > self.wait_limit:
                if time.monotonic() - answered > self.wait_limit / 2:
                    raise ClusterFailed(f"the parameter servers did not answer for {self.wait_limit} s")
                raise Stalled(f"global step {step} did not move for {self.wait_limit} s: {self.stall_cause(step)}")
            time.sleep(POLL_S)
        return step

    def stall_cause(self, step):
        """Why no update came: a worker that sent no gradient for it, or, every gradient sent, an update lost."""
        sent_at = self.sess.run(self.parts.sync.last_sent, options=self.timeout)[:, 0]
        missing = [f"worker {i}" for i, at in enumerate(sent_at) if at < step]
        if len(sent_at) - len(missing) < self.aggregate:
            return (
                f"sync training waits for {self.aggregate} gradients per update and {', '.join(missing)} sent none "
                f"for this one; start {'it' if len(missing) == 1 else 'them'} again with "
                f"{'its' if len(missing) == 1 else 'their'} flags, or train with --backup-workers"
            )
        # The chief's update takes the gradients out of the accumulators, then applies them: a chief that died
        # between the two took them with it, and the workers, who send one gradient per update, wait for ever.
        return (
            "every worker's gradient for the next update was sent, and the update was lost with a chief that died "
            "while applying it; stop every task, parameter servers included, and start the cluster again "
            "(python run.py cluster --resume RUN): it goes on from the chief's last checkpoint"
        )

    def waiting_notice(self, answering):
        if not answering:
            return f"waiting: the parameter servers have not answered for {NOTICE_S} s"
        return (
            f"waiting for the other workers' gradients: global step {self.step} has not moved for {NOTICE_S} s "
            f"(sync training takes {self.aggregate} per update; a worker that stopped rejoins when started again "
            f"with its flags; waiting at most {self.wait_limit} s)"
        )


class WorkerLines(StepLines):
    """`step 120/600 - loss: ... - accuracy: ... - 61 batches here` where the global step passes a multiple of
    `every`, and at the last step; the evaluations' lines as a single process prints them."""

    def __init__(self, every, total_steps, first_step, steps, out):
        super().__init__(every, total_steps, first_step, out)
        self.steps, self.previous = steps, first_step

    def step(self, step, loss, accuracy, epoch_means):
        if crossed(self.previous, step, self.every) or step >= self.total_steps:
            print(
                f"step {step}/{self.total_steps} - loss: {loss:.4f} - accuracy: {accuracy:.4f} - "
                f"{self.steps.local_steps} batches here",
                file=self.out,
                flush=True,
            )
        self.previous = step


class ChiefUpdates:
    """The sync updates (take the aggregated gradients, apply them, new tokens), run in a thread by the chief.

    This is SyncReplicasOptimizer's chief QueueRunner, less the Coordinator.  Its runs have no timeout, although
    they block until enough gradients have arrived: a run cancelled after some accumulators had given their
    gradients and before the update was applied would lose those gradients for good (an accumulator keeps no
    transaction), and the workers, who send one gradient per update, would wait for an update that never comes.
    The blocked run ends when the session is closed, which every worker does.
    """

    def __init__(self, sess, update):
        self.sess, self.update = sess, update
        self.thread = threading.Thread(target=self.run, name="sync-updates", daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                self.sess.run(self.update)
            except tf.errors.OpError:  # the session closed, or a task went away: the training loop says which
                return

    def join(self):
        self.thread.join(STEP_TIMEOUT_S)
