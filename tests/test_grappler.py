"""inspect --grappler: the training step as written and as executed, Grappler's per-pass log, passes switched off."""

import re

import pytest
import tensorflow as tf

from graph_nn.core.config import make_config
from graph_nn.graph.determinism import deterministic_ops
from graph_nn.graph.model import build_graph, train_fetches
from graph_nn.graph.sessions import session_config
from graph_nn.internals import grappler
from graph_nn.observe import tracing
from tests.conftest import run_cli

v1 = tf.compat.v1


@pytest.fixture(scope="module")
def fused_step(mnist):
    return grappler.step_graphs(make_config(model="mlp64"), mnist)


def test_the_remapper_fuses_each_dense_layer_into_one_kernel_named_after_its_last_op(fused_step):
    fusions = {f.node: (f.kernel, f.ops) for f in fused_step.fusions()}
    kernel = "_MklNativeFusedMatMul" if grappler.onednn_on() else "_FusedMatMul"  # oneDNN's, or Eigen's
    assert fusions == {
        "hidden1/activations": (
            kernel,
            [("hidden1/MatMul", "MatMul"), ("hidden1/preactivations", "BiasAdd"), ("hidden1/activations", "Relu")],
        ),
        "output/preactivations": (kernel, [("output/MatMul", "MatMul"), ("output/preactivations", "BiasAdd")]),
    }
    executed = {node.name for node in fused_step.executed.node}
    assert "hidden1/MatMul" not in executed and "hidden1/preactivations" not in executed


def test_feeds_and_fetches_become_arg_and_retval_nodes_and_matmuls_onednn_kernels_where_it_is_on(fused_step):
    assert fused_step.added() == {"_Arg": 2, "_Retval": 2}  # x and y; the loss and the accuracy
    assert fused_step.removed()["Placeholder"] == 2
    # The gradients' products: oneDNN's kernels where it is on; else no kernel is renamed
    assert fused_step.kernels() == ({"MatMul -> _MklMatMul": 3} if grappler.onednn_on() else {})
    written, executed = fused_step.types(fused_step.written), fused_step.types(fused_step.executed)
    assert sum(executed.values()) < sum(written.values())


def test_with_the_remapper_off_nothing_is_fused_and_the_numbers_stay_the_same(mnist):
    config = make_config(model="mlp64", rewrites_off=("remapper",))
    assert grappler.step_graphs(config, mnist).fusions() == []
    comparison = grappler.compare_with_defaults(config, mnist, steps=20)
    defaults, off = comparison.executed
    assert off > defaults  # MatMul, BiasAdd and Relu run as three kernels
    assert comparison.losses_identical and comparison.weights_difference == comparison.logits_difference == 0


def test_the_cli_shows_the_passes_and_what_switching_the_arithmetic_optimizer_off_does(mnist):
    # Keras's RMSprop formula as ops: the arithmetic optimizer rewrites its Div(x, Sqrt(y)) as Mul(x, Rsqrt(y)).
    result = run_cli(
        "inspect", "--model", "mlp64", "--semantics", "keras", "--grappler", "--rewrite-off", "arithmetic_optimizer"
    )
    assert result.returncode == 0, result.stderr
    passes = re.findall(r"^  (\w+) +(\d+) nodes +([-+]\d+) +[\d.]+ ms$", result.stdout, re.M)
    names = [name for name, _, _ in passes]
    assert {"model_pruner", "constant_folding", "remapper", "dependency_optimizer"} <= set(names)
    # Switched off, and (a Grappler quirk) common subgraph elimination with it.
    assert "arithmetic_optimizer" not in names and "common_subgraph_elimination" not in names
    assert "  training losses: different" in result.stdout
    assert re.search(r"^  weights after the steps: max \|difference\| \S+$", result.stdout, re.M)


def test_after_grappler_the_executor_optimizes_the_graph_once_more(mnist):
    """The log's last graph is not quite what runs: the session's own optimizer (OptimizerOptions.opt_level L1:
    common subexpressions, constant folding) works on it too.  At L0 the executed graph is Grappler's output
    plus one _Retval node per fetched tensor."""
    config = make_config(model="mlp64", semantics="keras", rewrites_off=("arithmetic_optimizer",))
    model = build_graph(config)
    with model.graph.as_default():
        init = v1.global_variables_initializer()
    executed = {}
    for level in (v1.OptimizerOptions.L1, v1.OptimizerOptions.L0):
        session_settings = session_config(config.rewrites_off)
        session_settings.graph_options.optimizer_options.opt_level = level
        with deterministic_ops(), v1.Session(graph=model.graph, config=session_settings) as sess:
            sess.run(init)
            _, graph_def = tracing.executed_run(sess, train_fetches(model), grappler.zero_feed(model, config))
            executed[level] = len(graph_def.node)
    grappler_output = grappler.pass_reports(config)[-1].nodes
    assert executed[v1.OptimizerOptions.L0] == grappler_output + 2 > executed[v1.OptimizerOptions.L1]
