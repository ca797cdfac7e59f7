"""How a run ended, kept in its directory: result.json (its status, steps and the validation figures of its
final checkpoint; the test figures once the report has them) and its row in TensorBoard's HParams tab.

Written when training ends, however it ends (finished, stopped early, stopped by a signal, diverged), so that
every run can be compared, the unfinished ones too.  The sweep's table reads result.json.
"""

import json

from graph_nn.core.run_dir import RunDir, write_atomically
from graph_nn.observe import logged_scalars
from graph_nn.reports import dashboards


def record_end(run_dir, config, status, step, train_examples, best_step=0, message=None):
    """result.json and the HParams row of a run whose training ended with `status` at `step`."""
    run_dir = RunDir(run_dir)
    final_step = best_step if config.final_checkpoint == "best" else step
    result = dict(
        status=status,
        step=step,
        final_checkpoint=config.final_checkpoint,
        final_step=final_step,
        validation=config.validation,
        **logged_scalars.validation_at(run_dir, final_step),
    )
    if message:
        result["message"] = message
    write_atomically(run_dir.result, json.dumps(result, indent=2) + "\n")
    dashboards.write_hparams(run_dir, config, step, train_examples, run_dir.config.stat().st_mtime, status)


def add_test_figures(run_dir, evaluation):
    """The end-of-run report's test loss and accuracy, added to result.json."""
    run_dir = RunDir(run_dir)
    result = dict(run_dir.read_result(), test_loss=evaluation.loss, test_accuracy=evaluation.accuracy)
    write_atomically(run_dir.result, json.dumps(result, indent=2) + "\n")
