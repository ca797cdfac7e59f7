"""What each task of a cluster does, on TensorFlow 1's own distributed runtime (a gRPC server per task, a
Session per worker on its own server), as TensorFlow's mnist_replica.py has it:

    ps N        holds its share of the variables; ends when every worker has said it is done
    worker 0    the chief: initializes the variables or restores the run's latest checkpoint, runs the sync
                updates, trains, writes train/ and validation/ (scalars, histograms, graph), evaluates, saves
                the checkpoints and ends the run with the report of a single-process run
    worker N    waits until the chief has initialized the variables, then trains on its own batches

Every worker writes its own worker-N/ scalars.  Steps are global steps (updates); a worker counts its batches.

Every wait has a limit.  A training run gets STEP_TIMEOUT_S; after that the worker reads the global step
instead (only the chief's sync updates run without a timeout; they end when its session closes).  A sync step
waits for the other workers' gradients, so a worker whose step timed out goes on waiting for the update its
gradient went into, without sending it again (a second gradient computed at the same step would count as another
worker's), up to --wait-limit seconds.  A parameter server that goes away ends every worker at once, with one
sentence naming it.  A task's process ends with os._exit: closing a distributed Session, which Python's clean-up
does too, waits minutes for a task that has gone away.
"""

import contextlib
import os
import re
import sys
import threading
import time
import traceback

import numpy as np
import tensorflow as tf

from graph_nn.core.errors import ClusterFailed, GraphNNError, Interrupted, TrainingDiverged
from graph_nn.core.run_dir import DIVERGED, FINISHED, STOPPED, RunDir, exclusive
from graph_nn.core.signals import stop_requested_by_signals
from graph_nn.distributed import replicas
from graph_nn.distributed.spec import save_cluster, wait_for_listener
from graph_nn.graph import checkpoints
from graph_nn.graph.layer_table import format_summary
from graph_nn.graph.sessions import session_config
from graph_nn.observe.summaries import Writers, event_writer, scalars
from graph_nn.training import loop_state
from graph_nn.training.loop import Meter, TrainingResult
from graph_nn.training.runs import describe, finish, record_end

v1 = tf.compat.v1
STEP_TIMEOUT_S = 5  # one sess.run; a training step takes milliseconds
POLL_S = 0.1  # between two reads of the global step (or of the chief's progress) while waiting
NOTICE_S = 10  # a wait this long is reported, once


# Every distributed Session this process opens, referenced until os._exit: a Session that Python frees is closed
# by its __del__, which waits for minutes on a task that has gone away.
SESSIONS = []


def cluster_session(target, graph, device_filters):
    sess = v1.Session(target, graph=graph, config=session_config(device_filters=device_filters))
    SESSIONS.append(sess)
    return sess


class Stalled(ClusterFailed):
    """The global step did not move for the wait limit, while the parameter servers answered."""


def run_task(task, config=None, dataset=None, run_dir=None, replication=None, wait_limit=120, out=None):
    """Runs this process's task to its end, then ends the process, however the task ended (see the module's
    docstring): a user's error in one sentence, Ctrl-C before training with 130, anything else with its traceback."""
    out = out or sys.stdout
    code = 1
    try:
        if task.job == "ps":
            code = serve(task, wait_limit, out)
        else:
            code = Worker(task, config, dataset, run_dir, replication, wait_limit, out).run()
    except GraphNNError as e:
        code = e.exit_code
        print(f"graph-nn: error: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # a bug, or the launcher gone with the pipes it read: say what, if anyone listens
        traceback.print_exc()
    finally:
        with contextlib.suppress(OSError):
            out.flush()
            sys.stderr.flush()
        os._exit(code)


def start_server(task):
    try:
        return v1.train.Server(replicas.cluster_spec(task), job_name=task.job, task_index=task.index)
    except tf.errors.OpError as e:  # "Could not start gRPC server": the port was taken after the CLI checked it
        raise GraphNNError(f"{task.name} could not start its server on {task.address} ({first_line(e)}).") from None


def first_line(error):
    return str(error).strip().splitlines()[0]


def lost(task, error):
    """A failed run in one sentence: the task that went away, the first other than this one that TensorFlow's
    message names (e.g. "... from remote target /job:ps/replica:0/task:0 while calling ...RecvTensor")."""
    for job, index in re.findall(r"/job:(ps|worker)/replica:\d+/task:(\d+)", str(error)):
        if (job, int(index)) != (task.job, task.index):
            return ClusterFailed(f"{job} {index} ({task.jobs[job][int(index)]}) went away ({type(error).__name__})")
    return ClusterFailed(f"{task.name} failed: {type(error).__name__}: {first_line(error)}")


def close(sess):
    """Session.close(), given up after a while: it waits for minutes on a task that has gone away."""
    closer = threading.Thread(target=sess.close, daemon=True)
    closer.start()
    closer.join(STEP_TIMEOUT_S)


def crossed(previous, step, every):
    """Has the global step passed a multiple of `every`?  Async steps skip numbers other workers made."""
    return step // every > previous // every


# ---- a parameter server ---------------------------------------------------------------------------------


def serve(task, wait_limit, out):
    """Serves the variables until every worker has put its index in this ps's done queue.

    A worker that never comes back would keep it forever, so it also ends when the global step has not moved
    for twice the workers' wait limit: by then every worker has given up too.
    """
    server = start_server(task)
    ps = replicas.ps_graph(task)
    poll = v1.RunOptions(timeout_in_ms=1000)
    sess = cluster_session(server.target, ps.graph, ["/job:ps"])
    print(f"{task.name} serving on {task.address} until the {task.num_workers} workers are done", file=out, flush=True)
    done, last_step, since = set(), None, time.monotonic()
    with stop_requested_by_signals() as stop:
        try:
            while len(done) < task.num_workers and not stop:
                try:
                    worker = int(sess.run(ps.next_done, options=poll))
                    done.add(worker)
                    print(f"worker {worker} is done ({len(done)} of {task.num_workers})", file=out, flush=True)
                    continue
                except tf.errors.DeadlineExceededError:
                    step = last_step
                with contextlib.suppress(tf.errors.DeadlineExceededError):
                    if sess.run(ps.global_step_ready, options=poll):
                        step = int(sess.run(ps.global_step, options=poll))
                if step != last_step:
                    last_step, since = step, time.monotonic()
                elif time.monotonic() - since > 2 * wait_limit:
                    missing = ", ".join(str(i) for i in range(task.num_workers) if i not in done)
                    raise ClusterFailed(
                        f"no worker trained for {2 * wait_limit} s (global step {last_step}) and "
                        f"not every worker said it was done (missing: {missing}); {task.name} ends"
                    )
        except tf.errors.OpError as e:
            raise lost(task, e) from None
    close(sess)
    if stop:
        print(f"{task.name} stopped by {stop.name}", file=out, flush=True)
        return stop.exit_code
    print(f"{task.name}: every worker is done", file=out, flush=True)
    return 0


# ---- a worker --------------------------------------------------------------------------------------------


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


class Worker:
    """One worker's graph, session and loop; worker 0 also does the chief's part."""

    def __init__(self, task, config, dataset, run_dir, replication, wait_limit, out):
        self.task, self.config, self.dataset, self.replication = task, config, dataset, replication
        self.wait_limit, self.out = wait_limit, out
        self.parts = replicas.worker_graph(config, dataset, task, replication, out)
        self.trainer = self.parts.trainer
        self.trainer.run_dir = self.run_dir = RunDir(run_dir)
        self.model, self.schedule = self.trainer.model, self.trainer.schedule
        self.sync = replication.mode == "sync"
        self.aggregate = replication.replicas_to_aggregate(task.num_workers)
        self.timeout = v1.RunOptions(timeout_in_ms=STEP_TIMEOUT_S * 1000)
        self.sess = self.writers = self.updates = None
        self.step = self.token = self.local_steps = 0
        self.left = False

    def say(self, text):
        print(text, file=self.out, flush=True)

    def run(self):
        task = self.task
        server = start_server(task)
        mode = (
            f"sync, each update the mean of {self.aggregate} of the {task.num_workers} workers' gradients"
            if self.sync
            else f"async, each of the {task.num_workers} workers applying its own gradients"
        )
        self.say(f"{task.name}{' (the chief)' if task.is_chief else ''} on {task.address}: {mode}")
        self.wait_for_parameter_servers()
        filters = ["/job:ps", f"/job:worker/task:{task.index}"]
        self.sess = cluster_session(server.target, self.model.graph, filters)
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
                if stop:
                    raise Interrupted(self.stopped_message(stop), stop.exit_code)
            except tf.errors.OpError as e:
                raise self.recorded(self.noting_checkpoint(lost(task, e)), STOPPED) from None  # the cluster is gone
            except Stalled as e:
                self.leave(save=True)
                raise self.recorded(self.noting_checkpoint(e), STOPPED) from None
            except GraphNNError as e:
                self.leave(save=False)
                raise self.recorded(e, DIVERGED if isinstance(e, TrainingDiverged) else STOPPED) from None
            finally:
                if self.writers:
                    self.writers.close()
        if not task.is_chief:
            self.say(f"{task.name} done at step {self.step} after {self.local_steps} batches")
            return 0
        self.say(report)
        self.recorded(None, FINISHED)
        result = TrainingResult(str(self.run_dir), self.step, self.trainer.history, FINISHED, self.trainer.best.step)
        finish(result, self.dataset, self.run_dir.path.parent, self.out)
        return 0

    def recorded(self, error, status):
        """error, once the chief has recorded in result.json how its training ended (as a single-process run's
        train.run_and_record does); a record that cannot be written must not replace the error's sentence."""
        if self.task.is_chief and self.writers:
            step = self.step if status == FINISHED else self.trainer.saved_step or 0
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

    def global_step(self):
        return int(self.sess.run(self.model.global_step, options=self.timeout))

    # ---- the start: the chief initializes or restores, the others wait for it --------------------------

    def start_chief(self):
        trainer, sess = self.trainer, self.sess
        self.say(format_summary(self.model, self.config.model))
        self.say(describe(self.config, trainer))
        if self.run_dir.data_source.exists():  # a chief has started this run before
            loop_state.check_data_source(self.run_dir, self.dataset.source)
        else:
            trainer.create_run_files()
        save_cluster(self.run_dir, self.task, self.replication)
        if len(sess.run(self.parts.uninitialized, options=self.timeout)) == 0:
            step = self.global_step()
            self.say(f"the variables are on the parameter servers already: continuing at step {step}")
            trainer.loop_state.load(sess)
            kept = checkpoints.all_kept(self.run_dir)
            trainer.saver.recover_last_checkpoints(kept)
            trainer.saved_step = int(kept[-1].rsplit("-", 1)[1]) if kept else None  # model.ckpt-STEP
        elif checkpoints.all_kept(self.run_dir):
            step = trainer.restore(sess)
        else:
            step = trainer.initialize(sess)
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
        return self.global_step()

    # ---- the loop --------------------------------------------------------------------------------------

    def train(self, first_step, stop):
        """Trains until the global step reaches the schedule's total, or a signal asks to stop."""
        chief, total, config = self.task.is_chief, self.schedule.total_steps, self.config
        writer = self.worker_writer(first_step)
        self.step = self.token = marked = first_step
        self.local_steps = int(self.sess.run(self.parts.worker_steps, options=self.timeout)[self.task.index])
        meter = self.trainer.log_meter if chief else Meter()
        logged_at, logged_steps, start = time.perf_counter(), self.local_steps, time.perf_counter()
        print_every = config.print_every or self.schedule.steps_per_epoch
        try:
            while self.step < total and not stop:
                # This worker's next batch, whichever global step it goes into.
                feed = self.schedule.feed(self.model, self.trainer.dataset.train, self.local_steps + 1)
                trained = self.train_step(feed, stop)
                if trained is None:
                    continue
                loss, accuracy = trained
                meter.add(loss, accuracy)
                if chief:
                    self.trainer.epoch_meter.add(loss, accuracy)
                if crossed(marked, self.step, config.log_every):
                    now = time.perf_counter()
                    rate = (self.local_steps - logged_steps) / (now - logged_at)
                    writer.add_summary(
                        scalars(dict(meter.means(), steps_per_second=rate, local_steps=self.local_steps)), self.step
                    )
                    if chief:
                        self.writers.train.add_summary(scalars(meter.means()), self.step)
                    meter.reset()
                    logged_at, logged_steps = now, self.local_steps
                if crossed(marked, self.step, print_every) or self.step >= total:
                    self.say(
                        f"step {self.step}/{total} - loss: {loss:.4f} - accuracy: {accuracy:.4f} - "
                        f"{self.local_steps} batches here"
                    )
                if chief:
                    self.chief_duties(marked, feed, time.perf_counter() - start)
                marked = self.step
        finally:
            writer.close()

    def train_step(self, feed, stop):
        """One batch through the train op: (loss, accuracy), or None when the step timed out."""
        sent_at = self.token  # sync: the local step this batch's gradient is computed at
        try:
            after, loss, accuracy, worker_steps = self.sess.run(self.parts.fetches, feed, options=self.timeout)
            self.local_steps = int(worker_steps[self.task.index])
        except tf.errors.DeadlineExceededError:
            after = loss = accuracy = None
            self.local_steps += 1  # its gradient went out: the batch counts as trained on
        if self.sync:
            self.token = self.next_token(sent_at, after, stop)
            self.step = max(self.step, self.token)
        else:
            self.step = max(self.step, self.wait_for_update(self.step, stop) if after is None else int(after))
        if loss is not None and not np.isfinite(loss):
            raise self.diverged(loss, self.step)
        return None if loss is None else (loss, accuracy)

    def next_token(self, sent_at, token, stop):
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
            step = self.wait_for_update(sent_at + 1, stop)
            if stop or step >= self.schedule.total_steps:
                return step
            with contextlib.suppress(tf.errors.DeadlineExceededError):
                token = int(self.sess.run(sync.take_token, options=self.timeout))
        self.sess.run(sync.local_step_init, options=self.timeout)  # the dequeue above set no local step
        return token

    def worker_writer(self, first_step):
        """worker-N/'s event writer, with a START at the first step of a resumed or restarted worker (see
        Trainer.mark_session_start: TensorBoard then drops what the worker's earlier process wrote past it)."""
        writer = event_writer(self.run_dir.worker_events(self.task.index))
        writer.add_session_log(v1.SessionLog(status=v1.SessionLog.START), first_step + 1 if first_step else 0)
        return writer

    def chief_duties(self, previous, feed, seconds):
        """The chief's work when the global step passes its marks: histograms, evaluations, checkpoints."""
        trainer, config, schedule, step = self.trainer, self.config, self.schedule, self.step
        if crossed(previous, step, config.histogram_every):
            self.writers.train.add_summary(self.sess.run(trainer.histograms, feed, options=self.timeout), step)
        evaluating = (
            crossed(previous, step, config.eval_every or schedule.steps_per_epoch) or step >= schedule.total_steps
        )
        if evaluating:
            metrics = trainer.evaluate(self.sess, self.writers, step, seconds)
            self.say(f"step {step} evaluation - " + " - ".join(f"{k}: {v:.4f}" for k, v in metrics.items()))
        if crossed(previous, step, schedule.steps_per_epoch):
            trainer.epoch_meter.reset()
        if evaluating or (config.checkpoint_every and crossed(previous, step, config.checkpoint_every)):
            trainer.save(self.sess, self.writers, step)

    def wait_for_update(self, target, stop):
        """Reads the global step until it reaches `target` (sync: the update this worker's gradient went into;
        async: any answer at all) or the run's end; gives up after the wait limit.  Returns the global step."""
        start = answered = time.monotonic()
        step, noticed = self.step, False
        while not stop:
            with contextlib.suppress(tf.errors.DeadlineExceededError):
                step = self.global_step()
                answered = time.monotonic()
                if not self.sync or step >= min(target, self.schedule.total_steps):
                    return step
            waited = time.monotonic() - start
            if waited > NOTICE_S and not noticed:
                self.say(self.waiting_notice(time.monotonic() - answered < NOTICE_S))
                noticed = True
            if waited > self.wait_limit:
                if time.monotonic() - answered > self.wait_limit / 2:
                    raise ClusterFailed(f"the parameter servers did not answer for {self.wait_limit} s")
                raise Stalled(
                    f"global step {step} did not move for {self.wait_limit} s: sync training waits for "
                    f"{self.aggregate} gradients per update and a worker is missing; start it again "
                    f"with its flags, or train with --backup-workers"
                )
            time.sleep(POLL_S)
        return step

    def waiting_notice(self, answering):
        if not answering:
            return f"waiting: the parameter servers have not answered for {NOTICE_S} s"
        return (
            f"waiting for the other workers' gradients: global step {self.step} has not moved for {NOTICE_S} s "
            f"(sync training takes {self.aggregate} per update; a worker that stopped rejoins when started again "
            f"with its flags; waiting at most {self.wait_limit} s)"
        )

    # ---- the end ---------------------------------------------------------------------------------------

    def leave(self, save):
        """This worker's end while the cluster still answers: the chief's checkpoint, the parameter servers told.
        Once: an error raised after it (a stop's, say) leaves nothing more to do."""
        if self.left:
            return
        self.left = True
        try:
            if save and self.writers and self.trainer.saved_step != self.step:
                self.trainer.save(self.sess, self.writers, self.step)
        finally:  # a checkpoint that could not be written still lets the parameter servers end
            for done in self.parts.done:
                with contextlib.suppress(tf.errors.OpError):  # a ps already gone has nothing to wait for
                    self.sess.run(done, options=self.timeout)
            close(self.sess)
            if self.updates:
                self.updates.join()

    def report_workers(self):
        steps = self.sess.run(self.parts.worker_steps, options=self.timeout)
        mode = f"sync: each update the mean of {self.aggregate} gradients" if self.sync else "async"
        return f"Global step {self.global_step()} ({mode}); " + ", ".join(
            f"worker {i}: {n:,} batches, {self.schedule.examples(n):,} examples" for i, n in enumerate(steps)
        )

    def noting_checkpoint(self, error):
        """error's sentence, ending with where the chief's last checkpoint is."""
        if not self.task.is_chief:
            return error
        return type(error)(f"{error}; {self.trainer.kept_checkpoint()} in {self.run_dir}")

    def stopped_message(self, stop):
        if not self.task.is_chief:
            return f"{self.task.name} stopped by {stop.name} at step {self.step}"
        return (
            f"stopped by {stop.name} at step {self.step} after saving its checkpoint; continue with: "
            f"python run.py cluster --resume {self.run_dir}"
        )

    def diverged(self, loss, step):
        if self.task.is_chief:
            return self.trainer.diverged(f"the loss became {loss}", step)
        return TrainingDiverged(
            f"the loss became {loss} at step {step} on {self.task.name}; the chief keeps the last good checkpoint", step
        )
