"""The loop's cadence, one set of rules for the single process and a cluster's workers: a mark counts where the
global step passed it, which for steps one apart is the single process's `step % every == 0`."""

from graph_nn.core.config import make_config
from graph_nn.data.batches import BatchSchedule
from graph_nn.training.cadence import Cadence

CONFIG = make_config(model="mlp64", batch_size=1000, steps=250, eval_every=40, checkpoint_every=30, log_every=7)


def test_one_step_apart_the_rules_are_the_single_processs_modulo_tests():
    schedule = BatchSchedule(CONFIG, 60000)
    cadence = Cadence(CONFIG, schedule)
    for step in range(1, schedule.total_steps + 1):
        assert cadence.logs(step - 1, step) == (step % 7 == 0)
        assert cadence.histograms(step - 1, step) == (step % CONFIG.histogram_every == 0)
        assert cadence.evaluates(step - 1, step) == schedule.is_eval_point(step)
        assert cadence.ends_epoch(step - 1, step) == schedule.is_epoch_end(step)
        assert cadence.checkpoints(step - 1, step) == (step % 30 == 0)


def test_a_mark_that_async_steps_skipped_still_counts():
    cadence = Cadence(CONFIG, BatchSchedule(CONFIG, 60000))
    assert cadence.evaluates(38, 41) and not cadence.evaluates(41, 44)
    assert cadence.checkpoints(29, 31) and cadence.ends_epoch(59, 62)
    assert cadence.evaluates(248, 251)  # past the last step
    assert not Cadence(make_config(model="mlp64"), BatchSchedule(make_config(model="mlp64"), 60000)).checkpoints(0, 99)
