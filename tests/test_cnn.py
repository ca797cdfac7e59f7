"""The CNN in graph mode joins the others: it trains, writes its summaries and checkpoints, and restores."""

import io
import pathlib

from tensorboard.backend.event_processing import event_accumulator

from graph_nn.core.config import make_config
from graph_nn.graph.model import build_graph
from graph_nn.reports.evaluate import evaluate_run
from graph_nn.training.runs import train


def test_the_cnn_graph_is_article_004s_layer_stack():
    model = build_graph(make_config("cnn"))
    shapes = [layer.activations.shape.as_list() for layer in model.layers]
    assert [layer.name for layer in model.layers] == ["conv1", "conv2", "conv3", "output"]
    assert shapes == [[None, 26, 26, 32], [None, 11, 11, 64], [None, 3, 3, 128], [None, 10]]
    names = {op.name for op in model.graph.get_operations()}
    assert {"images", "pool1", "pool2", "flatten", "conv1/Conv2D"} <= names


def test_the_cnn_trains_and_restores_from_its_checkpoint(mnist, tmp_path):
    # Keras semantics: TF1's RMSProp, its mean square starting at ones, is still at 25 % after 60 steps.
    config = make_config("cnn", semantics="keras", steps=60, eval_every=60, log_every=20, histogram_every=30)
    result = train(config, mnist, logdir=tmp_path, out=io.StringIO(), report=False)
    assert result.test_accuracy > 0.7  # 60 steps of 64 images
    events = event_accumulator.EventAccumulator(
        str(pathlib.Path(result.run_dir) / "train"), size_guidance={event_accumulator.HISTOGRAMS: 0}
    )
    events.Reload()
    assert {"conv1/kernel", "conv3/activations", "gradients/conv2/kernel", "output/kernel"} <= set(
        events.Tags()["histograms"]
    )
    assert events.Histograms("conv1/kernel")[0].histogram_value.num == 3 * 3 * 1 * 32
    loss, accuracy = evaluate_run(result.run_dir, mnist)
    assert accuracy == result.test_accuracy
