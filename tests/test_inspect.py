"""What inspect reports about a graph: variables, optimizer slots, gradient ops, pruning, FLOPs, the CLI."""

import io

import pytest
import tensorflow as tf
from google.protobuf import text_format

from graph_nn.core.config import MODELS, make_config
from graph_nn.graph.model import build_graph, parameter_count, train_fetches
from graph_nn.graph.sessions import session_config
from graph_nn.internals.inspect_graph import (
    GRADIENTS_SCOPE,
    executed_graph_def,
    flops,
    gradient_ops,
    layer_products,
    ops_by_scope,
    other_optimizer_variables,
    placeholders,
    profiled_flops,
    pruned_graph_def,
    report,
    slot_variables,
    training_call,
    training_flops,
    variables,
)
from graph_nn.observe.tracing import executed_nodes, traced_run
from tests.conftest import run_cli

v1 = tf.compat.v1
WEIGHTS = {"hidden1/kernel": [784, 64], "hidden1/bias": [64], "output/kernel": [64, 10], "output/bias": [10]}


def test_placeholders_have_a_free_or_a_static_batch_dimension():
    assert placeholders(build_graph(make_config()).graph) == [
        ("input/x", [None, 784], "float32"),
        ("input/y", [None, 10], "float32"),
    ]
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


@pytest.mark.parametrize(
    "optimizer,slots,suffixes,others",
    [
        ("sgd", [], [], []),
        ("momentum", ["momentum"], ["Momentum"], []),
        ("rmsprop", ["momentum", "rms"], ["RMSProp_1", "RMSProp"], []),
        ("adam", ["m", "v"], ["Adam", "Adam_1"], ["train/beta1_power", "train/beta2_power"]),
    ],
)
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
    matmul_grads = [
        op.name for op in graph.get_operations() if op.type == "MatMul" and op.name.startswith("train/gradients/")
    ]
    # Each MatMul's gradient is two MatMuls: with respect to its input and to its kernel.
    assert sorted(matmul_grads) == sorted(
        f"train/gradients/{layer}/MatMul_grad/MatMul{suffix}" for layer in layers for suffix in ("", "_1")
    )
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


PRODUCTS = ("MatMul", "Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")


def pooled_outputs(products):
    """Outputs per example of the CNNs' 2x2 max-pools: a convolution's outputs that the next layer receives fewer
    of (article 004's last convolution feeds the output layer all of its own)."""
    total = 0
    for before, after in zip(products, products[1:]):
        received = after.fan_in if after.op_type == "MatMul" else after.input_positions * before.fan_out
        if before.op_type == "Conv2D" and received < before.positions * before.fan_out:
            total += received
    return total


def forward_flops(model):
    """Every product, one add per unit for its bias, and 4 FLOPs per max-pool output (tfprof's count)."""
    products = layer_products(model)
    return sum(2 * p.macs + p.positions * p.fan_out for p in products) + 4 * pooled_outputs(products)


@pytest.mark.parametrize("model", MODELS)
def test_forward_flops_per_example_match_the_closed_form(model):
    assert flops(make_config(model=model), batch_size=8).forward_per_example == forward_flops(model)


def test_mlp512_forward_flops_are_the_articles_arithmetic():
    assert (
        flops(make_config(model="mlp512"), batch_size=4).forward_per_example
        == 2 * 784 * 512 + 2 * 512 * 10 + 512 + 10
        == 813_578
    )


def test_mlp512_training_flops_closed_form():
    forward_per_example = 2 * 784 * 512 + 2 * 512 * 10
    # backward: weight gradients for both layers, input gradient only for the second (x needs none)
    per_step = 128 * (2 * forward_per_example + 2 * 512 * 10)
    assert training_flops("mlp512", 128) == per_step


@pytest.mark.parametrize("model", MODELS)
def test_layer_products_match_the_parameter_counts(model):
    """Each product's fan_in x fan_out is its layer's kernel, fan_out its bias."""
    assert sum(p.fan_in * p.fan_out + p.fan_out for p in layer_products(model)) == parameter_count(
        build_graph(make_config(model=model))
    )
    if model == "cnn":
        assert [p.macs for p in layer_products(model)] == [
            26 * 26 * 9 * 32,
            11 * 11 * 9 * 32 * 64,
            3 * 3 * 9 * 64 * 128,
            1152 * 10,
        ]


def expected_products(model, batch):
    """{op name: (tfprof's FLOPs, the closed form's FLOPs)} of the products a training step runs."""
    expected = {}
    for i, p in enumerate(layer_products(model)):
        computed = 2 * batch * p.macs
        gradient = f"train/gradients/{p.layer}/{p.op_type}_grad/"
        if p.op_type == "MatMul":
            names = [f"{p.layer}/MatMul", gradient + "MatMul_1"] + ([gradient + "MatMul"] if i else [])
            expected.update({name: (computed, computed) for name in names})
        else:
            expected[f"{p.layer}/Conv2D"] = (computed, computed)
            # tfprof counts a convolution's gradients over every input position (flops_registry.py's formula,
            # SAME padding's arithmetic); a VALID convolution computes them at its output positions only.
            counted = 2 * batch * p.input_positions * p.fan_in * p.fan_out
            names = [gradient + "Conv2DBackpropFilter"] + ([gradient + "Conv2DBackpropInput"] if i else [])
            expected.update({name: (counted, computed) for name in names})
    return expected


@pytest.mark.parametrize("model", MODELS)
def test_training_step_flops_are_the_closed_form_that_bench_uses(model):
    batch = 16
    graph_model = build_graph(make_config(model=model), batch_size=batch)
    counted = profiled_flops(executed_graph_def(graph_model.graph, train_fetches(graph_model)))
    expected = expected_products(model, batch)
    assert {name: count for name, (op_type, count) in counted.items() if op_type in PRODUCTS} == {
        name: tfprof for name, (tfprof, _) in expected.items()
    }
    assert sum(computed for _, computed in expected.values()) == training_flops(model, batch)

    products = layer_products(model)
    by_type = flops(make_config(model=model), batch_size=batch).train_by_type
    assert by_type["BiasAdd"] == sum(batch * p.positions * p.fan_out for p in products)
    # Summing the batch's rows (and the positions of a convolution) for each unit: one add fewer than rows.
    assert by_type["BiasAddGrad"] == sum((batch * p.positions - 1) * p.fan_out for p in products)
    pooled = batch * pooled_outputs(products)
    assert by_type.get("MaxPool", 0) == 4 * pooled and by_type.get("MaxPoolGrad", 0) == 5 * pooled
    rest = sum(
        count
        for op_type, count in by_type.items()
        if op_type not in PRODUCTS + ("BiasAdd", "BiasAddGrad", "MaxPool", "MaxPoolGrad")
    )
    # The loss, accuracy and their gradient work on [batch, 10] tensors; the optimizer's apply ops register none.
    assert 0 < rest < 10 * batch * 10


@pytest.mark.parametrize("model", MODELS)
def test_a_traced_step_runs_the_gradient_products_of_the_closed_form_and_not_the_images_gradient(mnist, model):
    """compute_gradients writes the first layer's gradient with respect to the images; the step never runs it."""
    batch = 16
    graph_model = build_graph(make_config(model=model), batch_size=batch)
    fetches = train_fetches(graph_model)
    closed_form = {name for name in expected_products(model, batch) if name.startswith(GRADIENTS_SCOPE)}
    first = layer_products(model)[0]
    images_gradient = f"train/gradients/{first.layer}/{first.op_type}_grad/" + (
        "MatMul" if first.op_type == "MatMul" else "Conv2DBackpropInput"
    )
    assert images_gradient in {node.name for node in pruned_graph_def(graph_model.graph, fetches).node}
    counted = {node.name for node in executed_graph_def(graph_model.graph, fetches).node}
    with graph_model.graph.as_default():
        init = v1.global_variables_initializer()
    with v1.Session(graph=graph_model.graph, config=session_config()) as sess:
        sess.run(init)
        _, metadata = traced_run(
            sess, fetches, {graph_model.x: mnist.train.images[:batch], graph_model.y: mnist.train.onehot[:batch]}
        )
    ran = executed_nodes(metadata)
    assert images_gradient not in ran
    op_types = {op.name: op.type for op in graph_model.graph.get_operations()}
    for nodes in (ran, counted):
        assert {
            name for name in nodes if name.startswith(GRADIENTS_SCOPE) and op_types.get(name) in PRODUCTS
        } == closed_form


def test_report_prints_every_section_for_every_model():
    for model in MODELS:
        out = io.StringIO()
        print(report(make_config(model=model, optimizer="adam")), file=out)
        text = out.getvalue()
        for section in (
            "Placeholders",
            "Variables",
            "Optimizer slots of AdamOptimizer: m, v",
            "Ops per top-level scope",
            "Ops per type",
            "compute_gradients added",
            "One training sess.run",
            "FLOPs",
        ):
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
    assert (
        result.stderr.strip().splitlines()[-1] == "graph-nn: error: unknown model 'resnet'; choose one of "
        "mlp64, mlp512, mlp5, cnn, mlp500, deep."
    )
