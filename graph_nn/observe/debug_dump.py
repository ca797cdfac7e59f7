"""--debug-dump: TensorFlow's Debugger V2 records what the training graph executes, for TensorBoard's
Debugger V2 tab (`tensorboard --logdir RUN/debugger_v2`).

tf.debugging.experimental.enable_dump_debug_info instruments the graphs built while it is on: every op gets a
DebugIdentityV2 op that records the health of its float outputs (FULL_HEALTH: the element count and how many
are -inf, +inf, NaN, negative, zero, positive), and the graph's ops, their Python stack traces and the source
files go to the dump.  So the Trainer must build its graph inside the recording, and throw it away after:
an instrumented graph run with the recording off may crash the process.
"""

import contextlib

import tensorflow as tf

TENSOR_DEBUG_MODE = "FULL_HEALTH"
# Every op but the variables' reads: instrumenting a variable's own read op makes tf.compat.v1.train.Saver
# refuse the variable ("Variable to save is not a Variable").  The ops that use the weights are recorded.
RECORDED_OPS = "(?!^ReadVariableOp$)"
# Op executions kept in memory and written when the recording ends: the newest ones, where a NaN shows up.
CIRCULAR_BUFFER_SIZE = 10_000


@contextlib.contextmanager
def recording(dump_dir):
    """Debugger V2's recording, into dump_dir, of the graphs built and run inside the block.

    The recording is process-wide (it would instrument a Keras model built meanwhile too), so it ends with
    the block, however the block ends: a diverged run's last steps are what the dump is for.
    """
    writer = tf.debugging.experimental.enable_dump_debug_info(
        str(dump_dir),
        tensor_debug_mode=TENSOR_DEBUG_MODE,
        circular_buffer_size=CIRCULAR_BUFFER_SIZE,
        op_regex=RECORDED_OPS,
    )
    try:
        yield
    finally:
        writer.FlushNonExecutionFiles()
        writer.FlushExecutionFiles()
        tf.debugging.experimental.disable_dump_debug_info()
