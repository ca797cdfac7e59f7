"""The evaluator task, as TF1's Estimator had it in train_and_evaluate: it trains nothing and starts no gRPC
server; it watches the run directory the workers share for each new checkpoint of the chief, restores it into an
inference graph of its own, evaluates it on the run's validation examples (those --validation-split holds out,
else the test set, as the chief's validation/ does) and writes eval/ for TensorBoard, at the checkpoint's step.

It ends when the chief has recorded the run's end (result.json) and every checkpoint up to it is evaluated.
Every wait has a limit: the run's config.json must appear within --wait-limit seconds, and while no checkpoint
is new the evaluator checks that ps 0 still listens (a plain TCP connection): a cluster whose parameter servers
are gone trains no more.
"""

import contextlib
import pathlib
import time

import tensorflow as tf

from graph_nn.core.config import load_config
from graph_nn.core.errors import ClusterFailed, GraphNNError, Interrupted, warn
from graph_nn.core.run_dir import DONE, RunDir
from graph_nn.core.signals import stop_requested_by_signals
from graph_nn.data.dataset import hold_out
from graph_nn.distributed.spec import wait_for_listener
from graph_nn.graph import batched, checkpoints
from graph_nn.graph.model import build_inference_graph
from graph_nn.graph.sessions import session_config
from graph_nn.observe import logged_scalars
from graph_nn.observe.summaries import event_writer, scalars

v1 = tf.compat.v1
POLL_S = 1.0


def evaluate_checkpoints(task, run_dir, dataset, wait_limit, out):
    """The evaluator's life (see the module's docstring), once the chief has written the run's config.json."""
    deadline = time.monotonic() + wait_limit
    while not RunDir(run_dir).config.exists():
        if time.monotonic() > deadline:
            raise ClusterFailed(f"{run_dir}: no run appeared there within {wait_limit} s (no config.json).")
        time.sleep(POLL_S)
    return Evaluator(task, run_dir, dataset, out).run()


def end_stamp(run_dir):
    """When result.json was last written, or None: an end recorded by an earlier session of a resumed run is
    not this session's."""
    with contextlib.suppress(FileNotFoundError):
        return RunDir(run_dir).result.stat().st_mtime_ns
    return None


class Evaluator:
    def __init__(self, task, run_dir, dataset, out):
        self.task, self.run_dir, self.out = task, RunDir(run_dir), out
        self.config = load_config(run_dir)
        self.split = hold_out(dataset, self.config.validation_split).validation
        self.model = build_inference_graph(self.config)
        with self.model.graph.as_default():
            self.saver = v1.train.Saver()
        # The step of the last checkpoint evaluated (or passed over): an evaluator started again goes on after the
        # last one its eval/ holds.
        evaluated = logged_scalars.scalars(self.run_dir.eval_events)["accuracy"]
        self.evaluated = evaluated[-1][0] if evaluated else -1

    def say(self, text):
        print(text, file=self.out, flush=True)

    def run(self):
        self.say(f"{self.task.name}: evaluating each checkpoint of {self.run_dir} on {len(self.split):,} examples")
        # A run recorded as done (finished, diverged) is over whenever the evaluator starts; a stopped one may be
        # going on, resumed, until it records an end again.
        result = self.run_dir.read_result()
        ended_before = None if result and result["status"] in DONE else end_stamp(self.run_dir)
        writer = event_writer(self.run_dir.eval_events)
        with (
            contextlib.closing(writer),
            v1.Session(graph=self.model.graph, config=session_config()) as sess,
            stop_requested_by_signals() as stop,
        ):
            while True:
                ended = end_stamp(self.run_dir) != ended_before  # before the listing: it then holds the last one
                new = [p for p in checkpoints.all_kept(self.run_dir) if checkpoints.step_of(p) > self.evaluated]
                for prefix in new:
                    if stop:
                        break
                    self.evaluate(sess, writer, prefix)
                if stop:
                    raise Interrupted(f"{self.task.name} stopped by {stop.name} {self.progress()}", stop.exit_code)
                if ended:
                    self.say(f"{self.task.name} done: the chief's run has ended, {self.progress()}")
                    return 0
                if not new and not wait_for_listener(self.task.jobs["ps"][0], 0):
                    raise ClusterFailed(
                        f"ps 0 ({self.task.jobs['ps'][0]}) is gone and the chief recorded no end of the run; "
                        f"{self.progress()}"
                    )
                time.sleep(POLL_S)

    def progress(self):
        return "before any checkpoint" if self.evaluated < 0 else f"after the checkpoint of step {self.evaluated}"

    def evaluate(self, sess, writer, prefix):
        step = self.evaluated = checkpoints.step_of(prefix)
        try:
            checkpoints.restore(self.saver, sess, prefix)
        except GraphNNError as e:
            # The chief's Saver deletes its oldest checkpoint as it writes a new one: one listed a moment ago
            # can be gone, a newer one being there.  A damaged one is named and passed over.
            if pathlib.Path(f"{prefix}.index").exists():
                warn(f"{str(e).removesuffix('.')}; the evaluator goes on with the next checkpoint.")
            return
        loss, accuracy = batched.loss_and_accuracy(sess, self.model, self.split)
        writer.add_summary(scalars({"loss": loss, "accuracy": accuracy}), step)
        writer.flush()
        self.say(f"evaluated the checkpoint of step {step}: loss {loss:.4f}, accuracy {accuracy:.4f}")
