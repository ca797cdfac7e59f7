"""What inspect reports about a graph: variables, optimizer slots, gradient ops, pruning, FLOPs, the CLI."""
import io

import pytest
import tensorflow as tf
from google.protobuf import text_format

from graph_nn.config import MODELS, make_config
from graph_nn.inspect_graph import (
    flops,
    gradient_ops,
    ops_by_scope,
    other_optimizer_variables,
    placeholders,
    pruned_graph_def,
    report,
    slot_variables,
    training_call,
    variables,
)
from graph_nn.model import CNN_FILTERS, HIDDEN_UNITS, build_graph
from tests.conftest import run_cli

v1 = tf.compat.v1
WEIGHTS = {"hidden1/kernel": [784, 64], "hidden1/bias": [64], "output/kernel": [64, 10], "output/bias": [10]}


def test_placeholders_have_a_free_or_a_static_batch_dimension():
    assert placeholders(build_graph(make_config()).graph) == [("input/x", [None, 784], "float32"),
                                                              ("input/y", [None, 10], "float32")]
    assert placeholders(build_graph(make_config(), batch_size=32).graph)[0] == ("input/x", [32, 784], "float32")


def test_variables_with_shapes_dtypes_and_initializers():
    found = {v.name: v for v in variables(build_graph(make_config(model="mlp64", optimizer="sgd")))}
    assert {name: v.shape for name, v in found.items()} == dict(WEIGHTS, global_step=[])
    assert [name for name, v in found.items() if v.trainable] == list(WEIGHTS)
    assert found["global_step"].dtype == "int64" and found["hidden1/kernel"].dtype == "float32"
    assert found["hidden1/kernel"].initializer == "Initializer/random_uniform"  # glorot_uniform's op
    assert found["hidden1/bias"].initializer == "Initializer/zeros"
    normal = {v.name: v for v in variables(build_graph(make_config(model="mlp64", init="random_normal")))}
    assert normal["hidden1/bias"].initializer == "Initializer/random_normal"


@pytest.mark.parametrize("optimizer,slots,suffixes,others", [
    ("sgd", [], [], []),
    ("momentum", ["momentum"], ["Momentum"], []),
    ("rmsprop", ["momentum", "rms"], ["RMSProp_1", "RMSProp"], []),
    ("adam", ["m", "v"], ["Adam", "Adam_1"], ["train/beta1_power", "train/beta2_power"]),
])
def test_slot_variables_per_optimizer(optimizer, slots, suffixes, others):
    model = build_graph(make_config(model="mlp64", optimizer=optimizer))
    found = slot_variables(model)
    assert list(found) == slots
    for slot, suffix in zip(slots, suffixes):
        assert found[slot] == {name: f"{name}/{suffix}" for name in WEIGHTS}
    shapes = {v.name: v.shape for v in variables(model)}
    assert all(shapes[slot_variable] == shapes[name] for per in found.values() for name, slot_variable in per.items())
    assert other_optimizer_variables(model) == others


def test_compute_gradients_adds_a_gradient_scope_per_forward_scope():
    graph = build_graph(make_config("five-layer")).graph
    gradients = gradient_ops(graph)
    layers = [f"hidden{i}" for i in range(1, 5)] + ["output"]
    assert {f"train/gradients/{scope}" for scope in layers + ["loss"]} <= set(gradients)
    assert sum(gradients.values()) == sum(1 for op in graph.get_operations() if op.name.startswith("train/gradients/"))
    matmul_grads = [op.name for op in graph.get_operations()
                    if op.type == "MatMul" and op.name.startswith("train/gradients/")]
    # Each MatMul's gradient is two MatMuls: with respect to its input and to its kernel.
    assert sorted(matmul_grads) == sorted(f"train/gradients/{layer}/MatMul_grad/MatMul{suffix}"
                                          for layer in layers for suffix in ("", "_1"))
    assert ops_by_scope(graph)["train"] > sum(gradients.values())


def test_one_training_run_fetches_feeds_and_prunes():
    model = build_graph(make_config(model="mlp64"))
    call = training_call(model)
    assert call.fetches == ["train/step", "loss/mean:0", "accuracy/mean:0"]
    assert call.feeds == [("input/x:0", [None, 784]), ("input/y:0", [None, 10])]
    pruned = {node.name for node in pruned_graph_def(model.graph, [model.train_op, model.loss, model.accuracy]).node}
    assert len(pruned) == call.pruned_ops < call.graph_ops
    assert "train/step/update_hidden1/kernel/ResourceApplyRMSProp" in pruned and "output/probabilities" not in pruned
    assert not any("/Initializer/" in name for name in pruned)


def dense_forward_flops(sizes):
    """MatMul 2*in*out (a multiply and an add per weight) plus BiasAdd's one add per unit, per layer."""
    return sum(2 * n_in * n_out + n_out for n_in, n_out in zip(sizes, sizes[1:]))


def cnn_forward_flops():
    total, size, channels = 0, 28, 1
    for i, filters in enumerate(CNN_FILTERS):
        size -= 2  # a VALID 3x3 convolution
        total += 2 * 3 * 3 * channels * filters * size * size + filters * size * size
        channels = filters
        if i < 2:
            size //= 2
            total += 4 * channels * size * size  # tfprof counts a 2x2 max-pool as 4 FLOPs per output
    return total + dense_forward_flops([size * size * channels, 10])


def layer_sizes(model):
    return [784, *HIDDEN_UNITS[model], 10]


@pytest.mark.parametrize("model", MODELS)
def test_forward_flops_per_example_match_the_closed_form(model):
    expected = cnn_forward_flops() if model == "cnn" else dense_forward_flops(layer_sizes(model))
    assert flops(make_config(model=model), batch_size=8).forward_per_example == expected


def test_mlp512_forward_flops_are_the_articles_arithmetic():
    assert flops(make_config(model="mlp512"), batch_size=4).forward_per_example == \
        2 * 784 * 512 + 2 * 512 * 10 + 512 + 10 == 813_578


@pytest.mark.parametrize("model", ["mlp64", "mlp512", "mlp5"])
def test_training_flops_per_step_match_the_closed_form(model):
    batch = 16
    counted = flops(make_config(model=model), batch_size=batch)
    sizes = layer_sizes(model)
    pairs = list(zip(sizes, sizes[1:]))
    units = sum(sizes[1:])
    by_type = counted.train_by_type
    # Forward, gradient w.r.t. the input and gradient w.r.t. the kernel: three products of the same size.
    assert by_type["MatMul"] == 3 * batch * sum(2 * n_in * n_out for n_in, n_out in pairs)
    assert by_type["BiasAdd"] == batch * units
    assert by_type["BiasAddGrad"] == (batch - 1) * units  # summing the batch's rows
    rest = counted.train_per_step - by_type["MatMul"] - by_type["BiasAdd"] - by_type["BiasAddGrad"]
    # The loss, accuracy and their gradient work on [batch, 10] tensors; the optimizer's apply ops register none.
    assert 0 < rest < 10 * batch * 10


def test_report_prints_every_section_for_every_model():
    for model in MODELS:
        out = io.StringIO()
        report(make_config(model=model, optimizer="adam"), out)
        text = out.getvalue()
        for section in ("Placeholders", "Variables", "Optimizer slots of AdamOptimizer: m, v",
                        "Ops per top-level scope", "Ops per type", "compute_gradients added", "One training sess.run",
                        "FLOPs"):
            assert section in text, (model, section)
        assert "output/kernel/Adam_1" in text and "train/gradients/output" in text


def test_the_cli_inspects_traces_and_writes_the_graph_def(tmp_path):
    pbtxt = tmp_path / "graph.pbtxt"
    result = run_cli("inspect", "--model", "mlp512", "--optimizer", "rmsprop", "--pbtxt", pbtxt, "--trace")
    assert result.returncode == 0, result.stderr
    assert "Optimizer slots of RMSPropOptimizer: momentum, rms" in result.stdout
    assert "forward pass, per example: 813,578" in result.stdout
    traced = result.stdout.split("the ten most expensive:\n")[1].strip().splitlines()
    assert len(traced) == 10 and all(" us " in line for line in traced)
    graph_def = text_format.Parse(pbtxt.read_text(), v1.GraphDef())
    assert len(graph_def.node) == len(build_graph(make_config(model="mlp512")).graph.get_operations())


def test_inspect_rejects_an_unknown_model():
    result = run_cli("inspect", "--model", "resnet")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "graph-nn: error: unknown model 'resnet'; choose one of " \
                                                     "mlp64, mlp512, mlp5, cnn."
