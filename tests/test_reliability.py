"""Reliability through the real CLI: SIGKILL then --resume equals the run never interrupted, bit for bit, its
pictures included; Ctrl-C, SIGTERM and a closed output pipe save the current step; a full disk keeps the last
checkpoint, whole, and a resume goes on from it once there is room; a diverging run keeps its last good checkpoint;
stopped and diverged runs have their HParams row; same seed, same run; two processes never share a run directory."""

import fcntl
import io
import json
import multiprocessing
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorflow.python.framework import config as tf_config

from graph_nn.cli.flags import config_from_args
from graph_nn.cli.main import parse_args
from graph_nn.core import run_dir
from graph_nn.core.config import make_config
from graph_nn.core.errors import TrainingDiverged
from graph_nn.graph import checkpoints
from graph_nn.observe import logged_scalars
from graph_nn.reports import plots
from graph_nn.training.progress import format_metrics
from graph_nn.training.runs import train
from tests.conftest import ROOT, fill, run_cli

# mlp64 with Adam (slots to restore), 2 epochs of 120 batches, a checkpoint at step 130 (mid-epoch, between two
# train scalars, and 110 steps before the next checkpoint, the last one), histograms (~30 kB events) every 5 steps
# so that a killed run leaves events past its last checkpoint on disk, and a line per step to know where the child
# is.
FLAGS = (
    "--model",
    "mlp64",
    "--optimizer",
    "adam",
    "--batch-size",
    "500",
    "--epochs",
    "2",
    "--checkpoint-every",
    "130",
    "--log-every",
    "3",
    "--histogram-every",
    "5",
    "--print-every",
    "1",
)
STEPS, STEPS_PER_EPOCH, CHECKPOINTED = 240, 120, 130
EVALUATED = [120, 240]
# The child's stdout is a one-page pipe, read a byte at a time: the child can run ahead of the last line read only
# until the pipe is full, 4096 bytes, and a step line is at least 59 bytes when the step number and the total have
# five digits between them (`step 100/240 - loss: 0.1234 - accuracy: 0.9876 - 1 steps/s`), as in every run read
# this way (here and in tests/test_validation.py).  So wherever the scheduler lets it run, it prints at most 69
# lines past that line and then waits in the print of the next step: it never ends a step more than LEAD steps
# past it.
PIPE_BYTES = 4096
LEAD = PIPE_BYTES // 59 + 1


def start_cli(*args, stderr):
    child = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "run.py"), *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        bufsize=0,
        pipesize=PIPE_BYTES,
    )
    assert fcntl.fcntl(child.stdout.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES
    return child


def read_until_step(child, step, stderr_path):
    """Reads the child's `step N/...` lines, a byte at a time so that nothing past them leaves the pipe, up to the
    end of the line of `step`: from then on the child ends no step past `step + LEAD`."""
    line = b""
    while byte := child.stdout.read(1):
        line += byte
        if byte == b"\n":
            match = re.match(rb"step (\d+)/", line)
            if match and int(match.group(1)) >= step:
                return
            line = b""
    raise AssertionError(f"the run ended before step {step}: {pathlib.Path(stderr_path).read_text()}")


def wait_until(condition, what, seconds=120):
    """Polls condition() until it holds; on a busy machine the child's event writer may lag behind its steps."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.2)


def only_run_dir(logdir):
    (run_dir,) = pathlib.Path(logdir).iterdir()
    return run_dir


def checkpoint_step(run_dir):
    return int(tf.train.load_checkpoint(checkpoints.latest(run_dir)).get_tensor("global_step"))


def checkpoint_tensors(run_dir, step=None):
    """The tensors of the run's latest checkpoint, or of its checkpoint of step."""
    directory = pathlib.Path(run_dir) / "checkpoints"
    prefix = directory / f"model.ckpt-{step}" if step else tf.train.latest_checkpoint(str(directory))
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def assert_bit_identical(tensors, expected):
    assert sorted(tensors) == sorted(expected)
    for name, value in expected.items():
        assert tensors[name].tobytes() == value.tobytes(), name


def scalars(run_dir, tag, split="train", purge=True):
    acc = event_accumulator.EventAccumulator(
        str(pathlib.Path(run_dir) / split), purge_orphaned_data=purge, size_guidance={event_accumulator.SCALARS: 0}
    )
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def tensorboard_steps(run_dir, tag, split="train"):
    """The steps TensorBoard's own Python loader serves (it ignores a run's first START)."""
    acc = plugin_event_accumulator.EventAccumulator(
        str(pathlib.Path(run_dir) / split), size_guidance={plugin_event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    return [e.step for e in acc.Tensors(tag)]


@pytest.fixture(scope="module")
def uninterrupted(mnist, tmp_path_factory):
    """The run of FLAGS never stopped (configured by the CLI's own parser): what every resume must equal."""
    config = config_from_args(parse_args(FLAGS))
    result = train(config, mnist, logdir=tmp_path_factory.mktemp("uninterrupted"), out=io.StringIO(), report=False)
    assert result.global_step == STEPS
    return result


def hparams_row(run_dir):
    """({hparam: value}, TensorBoard's session status) of the run's HParams row."""
    events = event_accumulator.EventAccumulator(str(run_dir))
    events.Reload()
    metadata = {
        tag: events.SummaryMetadata(tag).plugin_data.content
        for tag in (hparams_metadata.SESSION_START_INFO_TAG, hparams_metadata.SESSION_END_INFO_TAG)
    }
    start = hparams_metadata.parse_session_start_info_plugin_data(metadata[hparams_metadata.SESSION_START_INFO_TAG])
    end = hparams_metadata.parse_session_end_info_plugin_data(metadata[hparams_metadata.SESSION_END_INFO_TAG])
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()}, end.status


def assert_same_as_uninterrupted(run_dir, uninterrupted, stdout, resumed_at):
    assert_bit_identical(checkpoint_tensors(run_dir), checkpoint_tensors(uninterrupted.run_dir))
    assert f"Test accuracy: {uninterrupted.test_accuracy:.4f} - test loss: {uninterrupted.test_loss:.4f}" in stdout
    # Train means over whole epochs, half of them before the restart: the loop state came back too.
    for h in uninterrupted.history:
        if h["step"] > resumed_at:
            metrics = {name: h[name] for name in ("loss", "accuracy", "val_loss", "val_accuracy")}
            assert f"step {h['step']} evaluation - {format_metrics(metrics)}" in stdout
    for split, tag in [("train", "loss"), ("train", "accuracy"), ("validation", "loss"), ("validation", "accuracy")]:
        assert scalars(run_dir, tag, split) == scalars(uninterrupted.run_dir, tag, split), (split, tag)
        assert tensorboard_steps(run_dir, tag, split) == tensorboard_steps(uninterrupted.run_dir, tag, split)
    assert [s for s, _ in scalars(run_dir, "loss")] == list(range(3, STEPS + 1, 3))
    assert [s for s, _ in scalars(run_dir, "accuracy", "validation")] == EVALUATED
    # The pictures are drawn from every session's events: those of the run never interrupted.
    curves = logged_scalars.curves(uninterrupted.run_dir)
    assert [step for step, _ in curves["accuracy"][1]] == EVALUATED
    assert (pathlib.Path(run_dir) / "accuracy.png").read_bytes() == plots.accuracy_curves(*curves["accuracy"])
    assert (pathlib.Path(run_dir) / "loss.png").read_bytes() == plots.loss_curves(*curves["loss"])
    assert hparams_row(run_dir)[0]["status"] == "finished"


def test_sigkill_mid_epoch_then_resume_is_the_uninterrupted_run_bit_for_bit(uninterrupted, tmp_path):
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "w") as stderr:
        child = start_cli(*FLAGS, "--logdir", tmp_path / "logs", stderr=stderr)
    try:
        # 20 steps past the checkpoint, and never 20 + LEAD = 90 past it: the next one, 110 steps on, is out of reach.
        read_until_step(child, CHECKPOINTED + 20, stderr_path)
        run_dir = only_run_dir(tmp_path / "logs")
        wait_until(
            lambda: scalars(run_dir, "loss")[-1][0] > CHECKPOINTED,
            "the child writing train scalars past its checkpoint to disk",
        )
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    killed_at = checkpoint_step(run_dir)
    assert killed_at == CHECKPOINTED and killed_at % STEPS_PER_EPOCH != 0

    resumed = run_cli("--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert "Found more than one" not in resumed.stdout + resumed.stderr  # TensorBoard's reader, on the graph again
    epoch, done = divmod(killed_at, STEPS_PER_EPOCH)
    assert (
        f"Resuming {run_dir} at step {killed_at}/{STEPS} (epoch {epoch + 1}, {done} of its {STEPS_PER_EPOCH} "
        f"steps done)" in resumed.stdout
    )
    assert re.search(rf"^step {killed_at + 1}/{STEPS} - loss", resumed.stdout, re.M)
    assert_same_as_uninterrupted(run_dir, uninterrupted, resumed.stdout, killed_at)
    # Without honouring the START events, the steps the killed run wrote twice would zig-zag.
    raw_steps = [s for s, _ in scalars(run_dir, "loss", purge=False)]
    assert len(raw_steps) > len(set(raw_steps))


@pytest.mark.parametrize("signum,exit_code,resume", [(signal.SIGINT, 130, False), (signal.SIGTERM, 143, True)])
def test_ctrl_c_and_sigterm_save_the_current_step_and_say_how_to_resume(
    signum, exit_code, resume, uninterrupted, tmp_path
):
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "w") as stderr:
        child = start_cli(*FLAGS, "--logdir", tmp_path / "logs", stderr=stderr)
    try:
        read_until_step(child, 100, stderr_path)  # so the signal comes by step 100 + LEAD < STEPS
        child.send_signal(signum)
        child.communicate(timeout=300)  # a child blocked on the full pipe goes on, to the end of its step
    finally:
        child.kill()
        child.wait()
    stderr = stderr_path.read_text()
    assert child.returncode == exit_code, stderr
    run_dir = only_run_dir(tmp_path / "logs")
    message = stderr.strip().splitlines()[-1]
    match = re.fullmatch(
        rf"graph-nn: error: stopped by {signum.name} at step (\d+) after saving its checkpoint; "
        rf"continue with: python run.py --resume {re.escape(str(run_dir))}",
        message,
    )
    assert match, message
    stopped_at = int(match.group(1))
    assert 100 <= stopped_at <= 100 + LEAD and checkpoint_step(run_dir) == stopped_at
    assert stopped_at - 3 < scalars(run_dir, "loss")[-1][0] <= stopped_at  # events flushed up to it
    row, session_status = hparams_row(run_dir)
    assert row["status"] == "stopped" and row["steps"] == stopped_at and session_status == api_pb2.STATUS_UNKNOWN
    assert json.loads((run_dir / "result.json").read_text())["message"] == message.removeprefix("graph-nn: error: ")
    if not resume:
        return
    resumed = run_cli("--resume", run_dir, "--model", "mlp64", "--epochs", "2")  # flags that agree are fine
    assert resumed.returncode == 0, resumed.stderr
    assert_same_as_uninterrupted(run_dir, uninterrupted, resumed.stdout, stopped_at)


def test_a_closed_output_pipe_stops_the_run_at_a_saved_step_and_resume_goes_on_exactly(uninterrupted, tmp_path):
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "w") as stderr:
        child = start_cli(*FLAGS, "--logdir", tmp_path / "logs", stderr=stderr)
    try:
        # `python run.py | head -N`, N the lines up to step 100's: the reader goes away, the child goes on writing.
        read_until_step(child, 100, stderr_path)
        child.stdout.close()
        child.wait(timeout=300)
    finally:
        child.kill()
        child.wait()
    stderr = stderr_path.read_text()
    assert child.returncode == 128 + signal.SIGPIPE, stderr
    run_dir = only_run_dir(tmp_path / "logs")
    [message] = stderr.strip().splitlines()  # one sentence, no BrokenPipeError's traceback
    match = re.fullmatch(
        r"graph-nn: error: stopped by the closed output pipe \(SIGPIPE\) at step (\d+) after saving its checkpoint; "
        rf"continue with: python run.py --resume {re.escape(str(run_dir))}",
        message,
    )
    assert match, message
    # No checkpoint came before step 120: every step the child trained is in the one of the step it stopped at.
    stopped_at = int(match.group(1))
    assert 100 <= stopped_at <= 100 + LEAD and checkpoint_step(run_dir) == stopped_at
    result = json.loads((run_dir / "result.json").read_text())
    assert (result["status"], result["step"]) == ("stopped", stopped_at)
    assert result["message"] == message.removeprefix("graph-nn: error: ")
    resumed = run_cli("--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_as_uninterrupted(run_dir, uninterrupted, resumed.stdout, stopped_at)


def test_a_full_disk_ends_the_run_naming_the_cause_and_resume_goes_on_once_there_is_room(
    uninterrupted, small_disk, tmp_path
):
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "w") as stderr:
        child = start_cli(*FLAGS, "--logdir", small_disk / "logs", stderr=stderr)
    try:
        # Past the checkpoint of step 130 and never as far as the last one, of step 240: the disk fills in between.
        read_until_step(child, CHECKPOINTED + 20, stderr_path)
        ballast = fill(small_disk)
        child.communicate(timeout=300)
    finally:
        child.kill()
        child.wait()
    stderr = stderr_path.read_text()
    assert child.returncode == 2, stderr
    run_dir = only_run_dir(small_disk / "logs")
    # Whichever write comes first after the disk filled fails: an event file's (the histograms every 5 steps),
    # or the checkpoint of the last step.
    [message] = stderr.strip().splitlines()  # one sentence: TensorFlow's writer thread's traceback is not shown
    run = re.escape(str(run_dir))
    assert re.fullmatch(
        rf"graph-nn: error: cannot write (TensorBoard's events in {run}/(train|validation)|the checkpoint of step "
        rf"{STEPS} in {run}/checkpoints) \(No space left on device\); the last checkpoint \(step {CHECKPOINTED}\) is "
        rf"kept; once the disk takes writes again, continue with: python run.py --resume {run}",
        message,
    ), message
    # The kept checkpoint is whole (the uninterrupted run's of that step, bit for bit); nothing half-written is left
    # under a name a reader would take, result.json included, which the full disk refused.
    assert checkpoint_step(run_dir) == CHECKPOINTED
    assert_bit_identical(checkpoint_tensors(run_dir), checkpoint_tensors(uninterrupted.run_dir, CHECKPOINTED))
    assert not [path for path in run_dir.rglob("*") if "tempstate" in path.name or path.suffix == ".partial"]
    assert not (run_dir / "result.json").exists()

    ballast.unlink()
    resumed = run_cli("--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_as_uninterrupted(run_dir, uninterrupted, resumed.stdout, CHECKPOINTED)


def test_a_diverging_run_stops_at_the_first_nan_and_keeps_its_last_good_checkpoint(tmp_path):
    result = run_cli(
        "--model",
        "mlp64",
        "--optimizer",
        "sgd",
        "--lr",
        "1e8",
        "--steps",
        "50",
        "--checkpoint-every",
        "1",
        "--logdir",
        tmp_path,
    )
    assert result.returncode == 3
    run_dir = only_run_dir(tmp_path)
    message = result.stderr.strip().splitlines()[-1]
    match = re.fullmatch(
        r"graph-nn: error: the loss became nan at step (\d+), most likely because the learning "
        r"rate 100000000.0 is too high for sgd; the last good checkpoint \(step (\d+)\) is kept in "
        + re.escape(str(run_dir))
        + r"\.",
        message,
    )
    assert match, message
    diverged_at, kept = int(match.group(1)), int(match.group(2))
    assert kept == diverged_at - 1 == checkpoint_step(run_dir)
    tensors = checkpoint_tensors(run_dir)
    assert tensors["global_step"] == kept
    assert all(np.isfinite(value).all() for value in tensors.values())
    assert "Traceback" not in result.stderr
    row, session_status = hparams_row(run_dir)
    assert row["status"] == "diverged" and row["steps"] == kept and session_status == api_pb2.STATUS_FAILURE
    # Before it ends, the run names where the NaN was born (tests/test_nan_hunt.py checks the hunt itself).
    assert f"At step {diverged_at} the first non-finite value came from output/MatMul (MatMul)" in result.stdout


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # that is the point
def test_weights_that_overflow_are_never_checkpointed(mnist, tmp_path):
    # lr 1e40 is infinite in float32: the loss of step 1 is still finite, the weights it leaves are not.
    config = make_config(model="mlp64", optimizer="sgd", learning_rate=1e40, steps=5, checkpoint_every=1)
    with pytest.raises(TrainingDiverged) as diverged:
        train(config, mnist, logdir=tmp_path, out=io.StringIO(), report=False)
    run_dir = only_run_dir(tmp_path)
    assert str(diverged.value) == (
        "the weights became NaN or infinite at step 1, most likely because the learning rate "
        f"1e+40 is too high for sgd; no checkpoint had been saved yet in {run_dir}."
    )
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")) is None


def test_the_same_seed_twice_gives_identical_runs_and_another_seed_does_not(mnist, tmp_path):
    def run(seed):
        config = make_config(
            model="mlp64", optimizer="adam", batch_size=500, steps=30, eval_every=10, log_every=1, seed=seed
        )
        return train(config, mnist, logdir=tmp_path, out=io.StringIO(), report=False)

    first, second, other = run(7), run(7), run(8)
    assert first.history == [dict(h, seconds=f["seconds"]) for h, f in zip(second.history, first.history)]
    assert scalars(first.run_dir, "loss") == scalars(second.run_dir, "loss")
    assert_bit_identical(checkpoint_tensors(second.run_dir), checkpoint_tensors(first.run_dir))
    assert scalars(other.run_dir, "loss") != scalars(first.run_dir, "loss")
    # Op determinism lasts one session only: unseeded random ops (Keras's, say) work again after it.
    assert not tf_config.is_op_determinism_enabled()


def make_run_dirs(logdir, start, queue):
    start.wait()
    queue.put([str(run_dir.new_run_dir(logdir, "mlp64")) for _ in range(20)])


def test_two_processes_making_run_directories_at_once_never_share_one(tmp_path):
    # Forked, not started afresh, to spare two TensorFlow imports; they are released together and make
    # 20 directories each within the same second or two.
    context = multiprocessing.get_context("fork")
    start, queue = context.Event(), context.Queue()
    children = [context.Process(target=make_run_dirs, args=(tmp_path / "logs", start, queue)) for _ in range(2)]
    for child in children:
        child.start()
    start.set()
    made = queue.get(timeout=60) + queue.get(timeout=60)
    for child in children:
        child.join()
        assert child.exitcode == 0
    assert len(made) == len(set(made)) == 40
    assert sorted(map(str, (tmp_path / "logs").iterdir())) == sorted(made)
    assert any(re.search(r"-\d{6}-\d+$", path) for path in made)  # names did collide within a second
