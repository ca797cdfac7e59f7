"""A trained run, restored: its graph rebuilt from config.json in a fresh tf.Graph, its latest checkpoint loaded."""
import contextlib

import tensorflow as tf

from graph_nn import inference, runs
from graph_nn.config import load_config
from graph_nn.errors import GraphNNError
from graph_nn.model import build_graph

v1 = tf.compat.v1


@contextlib.contextmanager
def restored_session(run_dir, checkpoint=None):
    """(session, model graph, config) with the run's latest (or the given) checkpoint restored."""
    config = load_config(run_dir)
    checkpoint = checkpoint or runs.latest_checkpoint(run_dir)
    model = build_graph(config)
    with model.graph.as_default():
        saver = v1.train.Saver()
    with v1.Session(graph=model.graph) as sess:
        try:
            saver.restore(sess, checkpoint)
        except (tf.errors.OpError, ValueError) as e:
            message = str(e).strip().splitlines()[0]
            raise GraphNNError(f"{checkpoint}: cannot restore this checkpoint ({message}).") from None
        yield sess, model, config


def evaluate_run(run_dir, dataset):
    """(test loss, test accuracy) of the run's latest checkpoint."""
    with restored_session(run_dir) as (sess, model, _):
        return inference.loss_and_accuracy(sess, model, dataset.test)
