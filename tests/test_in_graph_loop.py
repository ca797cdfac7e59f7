"""--steps-per-run K: K steps per Session.run in a while_loop give the run of K = 1, bit for bit, with the same
scalars, evaluations and checkpoints; Ctrl-C, --resume and the NaN guard keep working at run boundaries."""

import io
import signal

import pytest

from graph_nn.core.config import make_config
from graph_nn.core.errors import Interrupted, TrainingDiverged
from graph_nn.core.run_dir import new_run_dir
from graph_nn.training.loop import Trainer
from graph_nn.training.runs import train
from tests.test_reliability import assert_bit_identical, checkpoint_tensors, scalars

# 2 epochs of 120 batches (the last one short); train scalars, histograms, checkpoints and the epochs'
# evaluations fall inside what would be runs of 50 steps, and steps 1-50 make one full run.
FLAGS = dict(
    model="mlp64", optimizer="adam", batch_size=500, epochs=2, log_every=60, histogram_every=100, checkpoint_every=70
)


def without_seconds(history):
    return [dict(h, seconds=None) for h in history]


@pytest.fixture(scope="module")
def one_step_per_run(mnist, tmp_path_factory):
    """The feed_dict run (K = 1) that the K = 50 runs must equal."""
    return train(make_config(**FLAGS), mnist, logdir=tmp_path_factory.mktemp("k1"), out=io.StringIO(), report=False)


def assert_same_run(result, expected):
    assert_bit_identical(checkpoint_tensors(result.run_dir), checkpoint_tensors(expected.run_dir))
    assert without_seconds(result.history) == without_seconds(expected.history)
    for split in ("train", "validation"):
        for tag in ("loss", "accuracy"):
            assert scalars(result.run_dir, tag, split) == scalars(expected.run_dir, tag, split), (split, tag)


def test_fifty_steps_per_run_end_with_the_weights_scalars_and_history_of_one(one_step_per_run, mnist, tmp_path):
    trainer = Trainer(make_config(**FLAGS, steps_per_run=50), mnist, out=io.StringIO())
    runs = trainer.runs(0)
    # A full run, then one that ends at the checkpoint of step 70 (the scalars of step 60 need no break).
    assert next(runs) == (1, 50) and next(runs) == (51, 70)
    assert_same_run(trainer.run(new_run_dir(tmp_path, "mlp64")), one_step_per_run)


def test_keras_formulas_in_the_loop_too(mnist, tmp_path):
    """KerasAdam keeps its own step counter, which the loop's body must find outside its function graph."""
    results = [
        train(
            make_config(**dict(FLAGS, epochs=1), semantics="keras", steps_per_run=k),
            mnist,
            logdir=tmp_path,
            out=io.StringIO(),
            report=False,
        )
        for k in (1, 50)
    ]
    assert_same_run(*results)


class CtrlCAt(Trainer):
    """Presses Ctrl-C (a real SIGINT, through the loop's handler) during the Session.run that trains `step`."""

    step = 80

    def train_steps(self, sess, first, last, writers):
        if first <= self.step <= last:
            signal.raise_signal(signal.SIGINT)
        yield from super().train_steps(sess, first, last, writers)


def test_ctrl_c_stops_at_the_end_of_a_run_and_resume_ends_with_the_same_weights(one_step_per_run, mnist, tmp_path):
    config = make_config(**FLAGS, steps_per_run=50)
    run_dir = new_run_dir(tmp_path, "mlp64")
    with pytest.raises(Interrupted, match=r"stopped by SIGINT at step 99 after saving its checkpoint"):
        CtrlCAt(config, mnist, out=io.StringIO()).run(run_dir)  # the run of steps 71-99 finishes first
    # Resumed within the same second: the new session's event files must not take the old ones' names.
    resumed = Trainer(config, mnist, out=io.StringIO()).run(run_dir, resume=True)
    assert resumed.global_step == 240
    assert_same_run(resumed, one_step_per_run)


def test_the_loop_stops_at_the_first_nan_and_the_guard_names_its_step(mnist, tmp_path):
    config = make_config(model="mlp64", optimizer="sgd", learning_rate=1e8, steps=50, steps_per_run=50)
    trainer = Trainer(config, mnist, out=io.StringIO())
    with pytest.raises(TrainingDiverged, match=r"^the loss became nan at step 4, ") as diverged:
        trainer.run(new_run_dir(tmp_path, "mlp64"))
    assert diverged.value.step == 4
    assert trainer.epoch_meter.count == 3  # steps 1-3 were counted, nothing after step 4 ran


def test_the_training_data_stay_out_of_the_graph_def_and_the_checkpoints(mnist):
    trainer = Trainer(make_config(model="mlp64", steps_per_run=10), mnist)
    assert trainer.model.graph.as_graph_def().ByteSize() < 1_000_000  # the 188 MB of images are fed, not baked in
    saved = {v.op.name for v in trainer.saver._var_list}
    assert "train_loop/train_images" not in saved and "hidden1/kernel" in saved
