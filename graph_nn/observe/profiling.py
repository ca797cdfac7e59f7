"""--profile-steps A,B: tf.profiler records steps A to B of a run, for TensorBoard's Profile tab.

The profiler writes RUN/train/plugins/profile/<time>/<host>.xplane.pb, where the Profile tab (the optional
tensorboard-plugin-profile package) looks for it, as Keras's TensorBoard callback does with profile_batch.
TensorFlow converts the same file into the tab's tables itself, so op_stats() reads it without the plugin.
"""

import contextlib
import json

import tensorflow as tf
from tensorflow.python.profiler.internal import _pywrap_profiler_plugin

from graph_nn.core.run_dir import RunDir


class StepProfiler:
    """Starts the profiler before the first of `steps` and stops it after the last; close() stops it early.

    The profiler is process-wide, so whatever ends a run must close it (the Trainer does, on any exit).
    """

    def __init__(self, steps):
        self.first, self.last = steps or (None, None)
        self.running = False

    def before(self, step, run_dir):
        if step == self.first:
            tf.profiler.experimental.start(str(RunDir(run_dir).train_events))
            self.running = True

    def marking(self, step):
        """A step marker around a profiled Session.run: the Profile tab's step-time graph is drawn from them."""
        if self.running:
            return tf.profiler.experimental.Trace("train", step_num=step, _r=1)
        return contextlib.nullcontext()

    def after(self, step):
        if step == self.last:
            self.close()

    def close(self):
        if self.running:
            tf.profiler.experimental.stop()
            self.running = False


def newest_trace(run_dir):
    """The run's newest profiler trace (.xplane.pb), or None."""
    traces = sorted(RunDir(run_dir).profile.glob("*/*.xplane.pb"))
    return traces[-1] if traces else None


def op_stats(trace, count=10):
    """The `count` ops with the most self-time in a trace: (kernel, op name, occurrences, self-time in us).

    The table is the Profile tab's "framework op stats", made by TensorFlow's own converter (which caches
    its results as files beside the trace, as the tab does).
    """
    data, ok = _pywrap_profiler_plugin.xspace_to_tools_data([str(trace)], "framework_op_stats", {})
    if not ok:
        return []
    table = json.loads(data)[0]  # a Google Charts DataTable: one row per op, the host's first
    columns = [column["id"] for column in table["cols"]]
    rows = [dict(zip(columns, (cell.get("v") for cell in row["c"]))) for row in table["rows"]]
    ops = [row for row in rows if row["type"] != "IDLE"]
    return [
        (row["type"], row["operation"], int(row["occurrences"]), row["total_self_time"])
        for row in sorted(ops, key=lambda row: -row["total_self_time"])[:count]
    ]
