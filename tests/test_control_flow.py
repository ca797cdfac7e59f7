"""inspect --control-flow v1|v2: TF1's while frame and TF2's functional While train alike, and both open in
TensorBoard's Graph tab."""

import io
import pathlib
import re

import numpy as np
import pytest
from tensorboard import context
from tensorflow.python.ops import control_flow_util

from graph_nn.core.config import make_config
from graph_nn.internals import control_flow
from tests.conftest import graphs_plugin_over

CONFIG = make_config(model="mlp64", steps_per_run=5)


@pytest.fixture(scope="module")
def loops(mnist):
    """{"v1"/"v2": (written GraphDef, executed GraphDef, losses of one 5-step run)}."""
    built = {}
    for version in ("v1", "v2"):
        model, loop, init = control_flow.build(CONFIG, mnist, version)
        executed, losses = control_flow.executed_loop(CONFIG, mnist, model, loop, init)
        built[version] = (model.graph.as_graph_def(), executed, losses)
    return built


def test_tf1_builds_a_frame_and_tf2_one_while_node_with_functions(loops):
    v1_graph, v2_graph = loops["v1"][0], loops["v2"][0]
    assert set(control_flow.FRAME_OPS) <= set(control_flow.loop_ops(v1_graph))
    assert "While" not in control_flow.loop_ops(v1_graph) and not v1_graph.library.function
    assert control_flow.loop_ops(v2_graph)["While"] == 1
    assert not set(control_flow.FRAME_OPS) & set(control_flow.loop_ops(v2_graph))
    (body,) = [f for f in v2_graph.library.function if "body" in f.signature.name]
    assert any(node.op == "ResourceApplyRMSProp" for node in body.node_def)  # the update runs in the body
    # The switch is TensorFlow's, process-wide: it is back to TF2 once the v1 graph is built.
    assert control_flow_util.ENABLE_CONTROL_FLOW_V2


def test_the_session_runs_both_as_a_frame_with_the_same_losses(loops):
    for version in ("v1", "v2"):
        executed = control_flow.loop_ops(loops[version][1])
        assert "While" not in executed and {"Enter", "Merge", "Switch", "LoopCond", "Exit"} <= set(executed)
    assert np.array_equal(loops["v1"][2], loops["v2"][2]) and len(loops["v1"][2]) == 5


def test_both_graphs_open_in_the_graph_tab(mnist, tmp_path):
    for version in ("v1", "v2"):
        out = io.StringIO()
        print(control_flow.report(CONFIG, mnist, version, tmp_path), file=out)
        assert re.search(
            rf"The graph, for TensorBoard's Graph tab: {tmp_path}/inspect/mlp64-control-flow-{version}-", out.getvalue()
        )
    logdir = str(tmp_path / "inspect")
    plugin = graphs_plugin_over(logdir)
    runs = plugin.info_impl(context.RequestContext(), experiment="")
    assert len(runs) == 2 and all(run["run_graph"] for run in runs.values())
    for run in runs:
        body, _ = plugin.graph_impl(context.RequestContext(), run, tag=None, is_conceptual=False, experiment="")
        if run.startswith("mlp64-control-flow-v1"):
            assert 'op: "Enter"' in body and 'op: "While"' not in body
        else:
            assert 'op: "While"' in body and "library" in body
    assert {pathlib.Path(run).name.split("-control-flow-")[1][:2] for run in runs} == {"v1", "v2"}
