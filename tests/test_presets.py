"""The presets wire each article's hyper-parameters into the graph."""

import pytest
import tensorflow as tf

from graph_nn.core.config import TrainConfig, make_config
from graph_nn.core.errors import GraphNNError
from graph_nn.data.batches import BatchSchedule
from graph_nn.graph.model import build_graph


def optimizer_of(model):
    """The optimizer's update op for the first variable, as it stands in the graph."""
    updates = [op for op in model.graph.get_operations() if op.type.startswith("ResourceApply")]
    return updates[0]


def constant_input(op, index):
    return (
        tf.make_ndarray(op.inputs[index].op.node_def.attr["value"].tensor)
        if op.inputs[index].op.type == "Const"
        else None
    )


def test_tf1_article_preset():
    config = make_config("tf1")
    assert (
        config.model,
        config.init,
        config.optimizer,
        config.learning_rate,
        config.batch_size,
        config.steps,
        config.batching,
        config.print_every,
    ) == ("mlp64", "random_normal", "sgd", 0.1, 100, 2000, "sequential", 100)
    assert optimizer_of(build_graph(config)).type == "ResourceApplyGradientDescent"


def test_tf1_article_slices_are_the_articles():
    schedule = BatchSchedule(make_config("tf1"), 60000)
    assert schedule.total_steps == 2000
    for i in (0, 1, 598, 599, 600, 1999):  # the article's loop index; its step is i + 1
        start = (i * 100) % (60000 - 100)
        assert schedule.batch(i + 1) == slice(start, start + 100)


def test_chapter2_preset_uses_tf1_rmsprop():
    config = make_config("chapter2")
    assert (config.model, config.optimizer, config.learning_rate, config.batch_size, config.epochs) == (
        "mlp512",
        "rmsprop",
        1e-3,
        128,
        5,
    )
    update = optimizer_of(build_graph(config))
    assert update.type == "ResourceApplyRMSProp"
    names = ["var", "ms", "mom", "lr", "rho", "momentum", "epsilon", "grad"]
    values = {n: constant_input(update, i) for i, n in enumerate(names) if constant_input(update, i) is not None}
    assert values["lr"] == pytest.approx(1e-3) and values["rho"] == pytest.approx(0.9)
    assert values["epsilon"] == pytest.approx(1e-10) and values["momentum"] == 0


def test_five_layer_preset_uses_adam_001():
    config = make_config("five-layer")
    assert (config.model, config.optimizer, config.learning_rate, config.batch_size, config.epochs) == (
        "mlp5",
        "adam",
        0.01,
        128,
        5,
    )
    assert optimizer_of(build_graph(config)).type == "ResourceApplyAdam"


def test_shuffled_epochs_cover_every_example_once():
    schedule = BatchSchedule(make_config("chapter2"), 60000)
    assert schedule.steps_per_epoch == 469
    seen = sum((list(schedule.batch(step)) for step in range(1, 470)), [])
    assert sorted(seen) == list(range(60000))
    assert list(schedule.batch(470)) != list(schedule.batch(1))


def test_flags_override_the_preset_and_epochs_turn_the_tf1_preset_epoch_based():
    config = make_config("tf1", epochs=2)
    assert config.steps is None and config.batching == "shuffle" and config.epochs == 2
    assert make_config("chapter2", learning_rate=0.5).learning_rate == 0.5


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(model="resnet"), "unknown model 'resnet'"),
        (dict(optimizer="lion"), "unknown optimizer 'lion'"),
        (dict(batch_size=0), "--batch-size must be positive"),
        (dict(learning_rate=-1.0), "--learning-rate must be positive"),
        (dict(epochs=0), "--epochs must be positive"),
    ],
)
def test_bad_values_are_refused(overrides, message):
    with pytest.raises(GraphNNError, match=message):
        make_config(**overrides)


def test_momentum_defaults_to_09_for_the_momentum_optimizer_and_an_explicit_zero_is_kept():
    assert make_config(optimizer="momentum").momentum == 0.9
    assert make_config(optimizer="momentum", momentum=0.0).momentum == 0.0
    assert make_config(optimizer="rmsprop").momentum == 0.0


def test_config_json_round_trip_is_exact():
    config = make_config("tf1", trace_steps=(2, 5), seed=7)
    assert TrainConfig.from_json(config.to_json()) == config
