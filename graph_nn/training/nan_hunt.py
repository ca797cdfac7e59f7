"""Where a NaN is born: when the NaN guard stops a run, the step that went wrong is replayed under tfdbg, and
the first op, in execution order, that produced a non-finite value is named with the ranges of its inputs.

The replay builds the model afresh, restores the run's last good checkpoint (or initializes, as the run did,
when it has none) and trains the steps since on the same batches, under op determinism and in the run's own
session settings, so it reaches the run's states bit for bit.  Each replayed step is checked: the first one
whose loss, or whose updated weights, are not finite is where the NaN was born (a step can overflow the weights
with a finite loss).  From the state just before it, that step runs once more under tfdbg's
DumpingDebugWrapperSession, which dumps every float tensor the step computes into RUN/nan_dump/, and
DebugDumpDir.find(has_inf_or_nan) returns the first non-finite one by time.  That session has Grappler's
remapper (and XLA) off, so that every op runs under its own name rather than inside a fused kernel or a
cluster named after something else.
"""

import contextlib
import dataclasses
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf
from tensorflow.python import debug as tf_debug
from tensorflow.python.debug.lib import debug_data

from graph_nn.core.errors import GraphNNError, TrainingDiverged
from graph_nn.core.run_dir import RunDir
from graph_nn.core.signals import stop_requested_by_signals
from graph_nn.data.batches import schedule_for
from graph_nn.data.dataset import hold_out
from graph_nn.graph import checkpoints
from graph_nn.graph.determinism import deterministic_ops
from graph_nn.graph.model import build_graph
from graph_nn.graph.sessions import session_config
from graph_nn.training import loop_state

v1 = tf.compat.v1
REPLAY_SECONDS = 60  # the hunt gives up rather than keep a diverged run from ending


@dataclasses.dataclass
class Birth:
    """The first non-finite value of a step: the op that computed it and what went into that op."""

    step: int
    replayed_from: int  # the checkpoint's step, 0 for the initial weights
    dump_dir: str
    op: str | None = None  # None: every tensor of the step was finite, only its in-place update overflowed
    op_type: str = ""
    bad_values: str = ""  # e.g. "inf in 20 of its 1,000 values"
    inputs: list = dataclasses.field(default_factory=list)  # (name, "[min, max]") per input


@contextlib.contextmanager
def on_divergence(config, dataset, run_dir, out):
    """Inside the block, a TrainingDiverged prints where its NaN was born before it goes on to end the run.

    The hunt is a diagnosis: whatever stops it (a time limit, Ctrl-C, a failure of its own) is printed, and
    the divergence still ends the run with its own message and exit code.
    """
    try:
        yield
    except TrainingDiverged as diverged:
        print(f"\nReplaying the run to step {diverged.step} to find where the NaN was born ...", file=out, flush=True)
        try:
            print(describe(hunt(config, dataset, run_dir, diverged.step)), file=out, flush=True)
        except Exception as e:
            print(f"The NaN hunt stopped: {e}", file=out, flush=True)
        raise


def hunt(config, dataset, run_dir, step):
    """The Birth of the first non-finite value the run made by `step`, or None if the replay made none."""
    run_dir = RunDir(run_dir)
    train = hold_out(dataset, config.validation_split).train  # the examples the run trained on
    model = build_graph(config)
    with model.graph.as_default():
        saver = v1.train.Saver()
        init = v1.global_variables_initializer()
    weights_finite = loop_state.all_variables_finite(model.graph)
    checkpoint = tf.train.latest_checkpoint(str(run_dir.checkpoints))
    as_run = session_config(config.rewrites_off, config.xla)
    unfused = session_config(tuple(config.rewrites_off) + ("remapper",))
    with deterministic_ops(), stop_requested_by_signals() as stop, tempfile.TemporaryDirectory() as scratch:
        replay = Replay(model, schedule_for(config, dataset), train, saver, init, checkpoint, stop)
        with v1.Session(graph=model.graph, config=as_run) as sess:
            restored = replay.start(sess)
            born = replay.train(sess, restored + 1, step, weights_finite)
        if born is None:
            return None
        # Again up to the step before, in a new session: a session's random initializers give the run's
        # initial weights on their first run only.
        with v1.Session(graph=model.graph, config=as_run) as sess:
            replay.train(sess, replay.start(sess) + 1, born - 1)
            before = saver.save(sess, f"{scratch}/before")
        feed = replay.schedule.feed(model, train, born)
        shutil.rmtree(run_dir.nan_dump, ignore_errors=True)
        with v1.Session(graph=model.graph, config=unfused) as sess:
            saver.restore(sess, before)
            watch_floats = tf_debug.WatchOptions(debug_ops=["DebugIdentity"], tensor_dtype_regex_allowlist="float.*")
            dumping = tf_debug.DumpingDebugWrapperSession(
                sess, str(run_dir.nan_dump), watch_fn=lambda fetches, feeds: watch_floats
            )
            dumping.run([model.train_op, model.loss], feed)
    (dump_dir,) = run_dir.nan_dump.iterdir()
    return first_non_finite(
        debug_data.DebugDumpDir(str(dump_dir)), model.graph, feed, Birth(born, restored, str(dump_dir))
    )


class Replay:
    """The run's steps again, from its last good checkpoint (or its initialization), within a time limit."""

    def __init__(self, model, schedule, split, saver, init, checkpoint, stop):
        self.model, self.schedule, self.split = model, schedule, split
        self.saver, self.init, self.checkpoint = saver, init, checkpoint
        self.stop = stop  # a signals.StopRequest
        self.deadline = time.monotonic() + REPLAY_SECONDS

    def start(self, sess):
        """Restores the checkpoint, or initializes as the run did; returns the step it stands at."""
        if self.checkpoint is None:
            sess.run(self.init)
            return 0
        checkpoints.restore(self.saver, sess, self.checkpoint)
        return int(sess.run(self.model.global_step))

    def train(self, sess, first, last, weights_finite=None):
        """Trains steps first..last; with weights_finite, returns the first whose loss or updated weights are
        not finite (None when all are)."""
        for k in range(first, last + 1):
            if self.stop or time.monotonic() > self.deadline:
                why = "interrupted" if self.stop else f"over {REPLAY_SECONDS} s"
                raise GraphNNError(f"{why} while replaying step {k} of {first}-{last}.")
            _, loss = sess.run([self.model.train_op, self.model.loss], self.schedule.feed(self.model, self.split, k))
            if weights_finite is not None and not (np.isfinite(loss) and sess.run(weights_finite)):
                return k
        return None


def first_non_finite(dump, graph, feed, birth):
    """birth, with the op of the first non-finite tensor in the dump, its values and its inputs' ranges."""
    bad = dump.find(tf_debug.has_inf_or_nan, first_n=1)
    if not bad:
        return birth
    datum = bad[0]
    op = graph.get_operation_by_name(datum.node_name)
    value = datum.get_tensor()
    kinds = " and ".join(
        kind for kind, count in (("inf", np.isinf(value).sum()), ("nan", np.isnan(value).sum())) if count
    )
    count = int((~np.isfinite(value)).sum())
    return dataclasses.replace(
        birth,
        op=op.name,
        op_type=op.type,
        bad_values=f"{kinds} in {count:,} of its {value.size:,} values",
        inputs=[input_range(dump, tensor, feed) for tensor in op.inputs],
    )


def input_range(dump, tensor, feed):
    """(name, "[min, max]") of one input of the op; a variable's read is named after the variable."""
    source = tensor.op
    name = source.inputs[0].op.name if source.type == "ReadVariableOp" else tensor.name.removesuffix(":0")
    fed = {t.name: value for t, value in feed.items()}
    if tensor.name in fed:
        value = fed[tensor.name]
    else:
        try:
            value = dump.get_tensors(source.name, tensor.value_index, "DebugIdentity")[0]
        except debug_data.WatchKeyDoesNotExistInDebugDumpDirError:
            return name, "not recorded"
    return name, f"[{np.min(value):.3g}, {np.max(value):.3g}]"


def describe(birth):
    if birth is None:
        return (
            "The replay computed only finite values: the run's own session computed differently "
            "(XLA, or the remapper's fused kernels)."
        )
    if birth.op is None:
        found = (
            f"At step {birth.step} every tensor was finite, but the update made the weights non-finite "
            f"(an update overflows in place, and has no output to dump)."
        )
    else:
        inputs = ", ".join(f"{name} {span}" for name, span in birth.inputs)
        found = (
            f"At step {birth.step} the first non-finite value came from {birth.op} ({birth.op_type}): "
            f"{birth.bad_values}" + (f"; its inputs ranged: {inputs}." if inputs else ".")
        )
    origin = f"the checkpoint of step {birth.replayed_from}" if birth.replayed_from else "the initial weights"
    return f"{found}\ntfdbg's dump of that step, replayed from {origin}: {birth.dump_dir}"
