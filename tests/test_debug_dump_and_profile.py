"""--debug-dump and --profile-steps: what they write is read back by TensorFlow's and TensorBoard's own readers."""

import io

import pytest
import tensorflow as tf
from tensorboard.plugins.debugger_v2 import debug_data_multiplexer
from tensorflow.python.debug.lib import debug_events_reader, dumping_callback
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from graph_nn.core.config import make_config
from graph_nn.core.run_dir import RunDir
from graph_nn.internals.inspect_graph import run_report
from graph_nn.observe import profiling
from graph_nn.training.runs import train

PROFILED = (5, 8)


@pytest.fixture(scope="module")
def instrumented_run(mnist, tmp_path_factory):
    config = make_config(model="mlp64", steps=12, debug_dump=True, profile_steps=PROFILED)
    return RunDir(train(config, mnist, logdir=tmp_path_factory.mktemp("logs"), out=io.StringIO(), report=False).run_dir)


def test_the_debugger_v2_dump_holds_the_graph_and_the_health_of_its_executed_ops(instrumented_run):
    dump = instrumented_run.path / "debugger_v2"
    with debug_events_reader.DebugDataReader(str(dump)) as reader:
        reader.update()
        traces = reader.graph_execution_traces()
        executed = {trace.op_name for trace in traces}
        assert {"hidden1/MatMul", "loss/mean", "train/gradients/hidden1/MatMul_grad/MatMul_1"} <= executed
        # FULL_HEALTH: [tensor id, device, dtype, rank, size, -inf, +inf, nan, negative, zero, positive]
        matmul = next(trace for trace in traces if trace.op_name == "hidden1/MatMul")
        size, negative_inf, positive_inf, nan = matmul.debug_tensor_value[4:8]
        assert size == 128 * 64 and negative_inf == positive_inf == nan == 0
        graph = reader.graph_by_id(matmul.graph_id)
        assert graph.get_op_creation_digest("hidden1/MatMul").op_type == "MatMul"
    # What TensorBoard's Debugger V2 tab loads: one run per dump directory.
    multiplexer = debug_data_multiplexer.DebuggerV2EventMultiplexer(str(dump))
    assert list(multiplexer.Runs()) == [debug_data_multiplexer.DEFAULT_DEBUGGER_RUN_NAME]


def test_the_recording_and_the_profiler_end_with_the_run(instrumented_run):
    assert not hasattr(dumping_callback._state, "dumping_callback")  # what disable_dump_debug_info() removes
    tf.profiler.experimental.start(str(instrumented_run.path / "again"))  # refused while one is running
    tf.profiler.experimental.stop()


def test_the_profile_of_steps_a_to_b_is_where_the_profile_tab_looks_and_tensorflow_reads_it(instrumented_run):
    trace = profiling.newest_trace(instrumented_run)
    assert trace.parent.parent == instrumented_run.path / "train" / "plugins" / "profile"
    space = xplane_pb2.XSpace()
    space.ParseFromString(trace.read_bytes())
    (host,) = [plane for plane in space.planes if plane.name == "/host:CPU"]
    names = {host.event_metadata[event.metadata_id].name for line in host.lines for event in line.events}
    # One step marker per profiled Session.run, and the ops as "name:kernel".
    markers = [
        event for line in host.lines for event in line.events if host.event_metadata[event.metadata_id].name == "train"
    ]
    assert len(markers) == PROFILED[1] - PROFILED[0] + 1
    assert any(name.startswith("hidden1/MatMul:") for name in names), sorted(names)
    stats = profiling.op_stats(trace)
    # Steps 5 to 8 ran it 4 times; TensorFlow's converter counts a oneDNN matmul once or twice per run.
    assert any(
        name == "train/gradients/hidden1/MatMul_grad/MatMul_1" and count in (4, 8) for _, name, count, _ in stats
    ), stats


def test_inspect_run_prints_the_profiled_ops(instrumented_run):
    out = io.StringIO()
    print(run_report(instrumented_run), file=out)
    assert f"Profiled steps: {profiling.newest_trace(instrumented_run)}" in out.getvalue()
    assert "train/gradients/hidden1/MatMul_grad/MatMul_1" in out.getvalue().split("Profiled steps")[1]
