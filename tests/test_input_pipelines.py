"""--input dataset|queue|tfrecord on real MNIST, in short runs: each pipeline trains to the weights the feed loop
trains to, bit for bit, an epoch's short last batch included, and resumes bit for bit; convert-to-records writes
exactly the IDX arrays; the queue runner's thread is gone however a run ends (finished, diverged, Ctrl-C, SIGTERM);
a pipeline that fails mid-run keeps its checkpoint and says so; bad input is one sentence."""

import contextlib
import dataclasses
import io
import json
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from graph_nn.cli.flags import config_from_args
from graph_nn.cli.main import parse_args
from graph_nn.core.errors import GraphNNError, TrainingDiverged
from graph_nn.data.batches import BatchSchedule
from graph_nn.data.dataset import FILES, SHIPPED_DIR
from graph_nn.data.idx import read_idx
from graph_nn.graph.tfrecords import load_records, read_examples, write_records
from graph_nn.training.runs import resume
from tests.conftest import IMPORTED_AFTER, ROOT, run_cli
from tests.test_idioms import assert_resume_is_bit_exact, short, trained
from tests.test_reliability import (
    LEAD,
    PIPE_BYTES,
    assert_bit_identical,
    checkpoint_step,
    checkpoint_tensors,
    hparams_row,
    only_run_dir,
    read_until_step,
    scalars,
)

# 1,000 training examples in batches of 64: 16 steps an epoch, the 16th of 40 examples; 60 steps cross three epoch
# ends, and a run stopped at step 30 is mid-epoch.
TRAIN_EXAMPLES, BATCH = 1000, 64
FRACTION_TAG = "input_pipeline/fraction_of_32_full"
SPLITS = ("test", "train", "validation")


@pytest.fixture(scope="module")
def subset(mnist):
    """MNIST's first 1,000 training and 1,000 test examples."""
    return dataclasses.replace(mnist, train=mnist.train.take(TRAIN_EXAMPLES), test=mnist.test.take(1000))


@pytest.fixture(scope="module")
def records(subset, tmp_path_factory):
    """subset as convert-to-records' files, 100 of its training examples in validation.tfrecords."""
    out_dir = tmp_path_factory.mktemp("records")
    write_records(subset, out_dir, validation_size=100)
    return out_dir


def config(**overrides):
    return short(batch_size=BATCH, **overrides)


@contextlib.contextmanager
def no_thread_left():
    """Asserts that the block leaves no thread behind: the queue runner's is joined by the time it ends."""
    before = set(threading.enumerate())
    yield
    assert set(threading.enumerate()) - before == set()


@pytest.fixture(scope="module")
def fed(subset, tmp_path_factory):
    """The feed loop's run of config() on subset: what every pipeline must train to."""
    schedule = BatchSchedule(config(), TRAIN_EXAMPLES)
    assert (schedule.steps_per_epoch, TRAIN_EXAMPLES % BATCH, schedule.total_steps) == (16, 40, 60)
    return trained(config(), subset, tmp_path_factory.mktemp("fed"))


@pytest.fixture(scope="module")
def piped(subset, records, tmp_path_factory):
    """{input: its run of config() on subset}, each trained with no thread left behind."""
    runs = {}
    for name in ("dataset", "queue", "tfrecord"):
        dataset = load_records(records) if name == "tfrecord" else subset
        with no_thread_left():
            runs[name] = trained(config(input=name), dataset, tmp_path_factory.mktemp(name))
    return runs


# ---- the same weights as the feed loop ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dataset", "queue", "tfrecord"])
def test_every_pipeline_trains_to_the_feed_loops_weights_bit_for_bit(name, piped, fed):
    run = piped[name]
    assert json.loads((pathlib.Path(run.run_dir) / "config.json").read_text())["input"] == name
    assert run.global_step == 60
    assert_bit_identical(checkpoint_tensors(run.run_dir), checkpoint_tensors(fed.run_dir))
    assert [dict(h, seconds=0) for h in run.history] == [dict(h, seconds=0) for h in fed.history]
    assert scalars(run.run_dir, "loss") == scalars(fed.run_dir, "loss")


@pytest.mark.parametrize("name", ["queue", "dataset"])
def test_a_pipeline_run_resumes_mid_epoch_bit_for_bit(name, subset, fed, tmp_path):
    with no_thread_left():
        whole, _ = assert_resume_is_bit_exact(config(input=name), subset, tmp_path)  # stopped at step 30 of 60
    assert_bit_identical(checkpoint_tensors(whole.run_dir), checkpoint_tensors(fed.run_dir))


def test_the_queue_logs_how_full_it_is(piped, fed):
    logged = scalars(piped["queue"].run_dir, FRACTION_TAG)
    assert [step for step, _ in logged] == list(range(10, 61, 10))
    for step, fraction in logged:
        batches = fraction * 32
        # Whole batches, never more than the capacity nor than the steps still to come; none after the last.
        assert batches == int(batches) and 0 <= batches <= min(32, 60 - step), (step, fraction)
    assert logged[-1] == (60, 0.0)
    with pytest.raises(KeyError):
        scalars(fed.run_dir, FRACTION_TAG)


# ---- convert-to-records ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """`python run.py convert-to-records --validation-size 1234 OUT_DIR` of the shipped MNIST: (its output, OUT_DIR)."""
    out_dir = tmp_path_factory.mktemp("converted") / "records"
    return run_cli("convert-to-records", "--validation-size", "1234", out_dir), out_dir


def test_convert_to_records_writes_exactly_the_idx_arrays(converted, mnist):
    result, out_dir = converted
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"     train: 58,766 examples -> {out_dir / 'train.tfrecords'}",
        f"validation:  1,234 examples -> {out_dir / 'validation.tfrecords'}",
        f"      test: 10,000 examples -> {out_dir / 'test.tfrecords'}",
        f"Train from them with: python run.py --input tfrecord --data-dir {out_dir}",
    ]
    assert sorted(path.name for path in out_dir.iterdir()) == [f"{split}.tfrecords" for split in SPLITS]
    idx = {stem: read_idx(SHIPPED_DIR / (name + ".gz")) for stem, name in FILES.items()}
    images, labels = idx["train_images"], idx["train_labels"]
    expected = {
        "train": (images[:58766], labels[:58766]),
        "validation": (images[58766:], labels[58766:]),
        "test": (idx["test_images"], idx["test_labels"]),
    }
    for split, (split_images, split_labels) in expected.items():
        pixels, read_labels = read_examples(out_dir / f"{split}.tfrecords")
        assert pixels.dtype == np.uint8 and pixels.tobytes() == split_images.reshape(-1, 784).tobytes(), split
        assert np.array_equal(read_labels, split_labels), split
    # Loaded as a data set, train and validation together are the training set, every array as the IDX files give it.
    loaded = load_records(out_dir)
    for split in ("train", "test"):
        for field in ("images", "labels", "onehot"):
            got, want = getattr(getattr(loaded, split), field), getattr(getattr(mnist, split), field)
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), (split, field)
    assert (loaded.source, loaded.classes) == (str(out_dir), mnist.classes)


def test_convert_to_records_without_validation_writes_two_files(subset, tmp_path):
    written = write_records(subset, tmp_path, validation_size=0)
    assert {split: examples for split, (_, examples) in written.items()} == {"train": 1000, "test": 1000}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["test.tfrecords", "train.tfrecords"]
    assert load_records(tmp_path).train.images.tobytes() == subset.train.images.tobytes()


def test_a_validation_size_out_of_range_is_one_sentence(subset, tmp_path):
    wrong = run_cli("convert-to-records", "--validation-size", "60000", tmp_path / "out")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert wrong.stderr.strip().splitlines() == [
        "graph-nn: error: --validation-size must be from 0 to 59,999 (the training set has 60,000 examples), got 60000."
    ]
    with pytest.raises(GraphNNError, match=r"^--validation-size must be from 0 to 999 .* got -1\.$"):
        write_records(subset, tmp_path / "out", validation_size=-1)
    assert not (tmp_path / "out").exists()


# ---- the queue runner's thread, however a run ends -------------------------------------------------------

# run.py as a user starts it, then run.py's exit status and the names of the threads still alive: MainThread and
# the CLI's own reader of native stderr (graph_nn/cli/startup.py, ended at exit), never a queue runner's.
THREADS_AFTER = textwrap.dedent("""
    import runpy, sys, threading
    sys.argv = ["run.py"] + sys.argv[1:]
    code = 0
    try:
        runpy.run_path("run.py", run_name="__main__")
    except SystemExit as e:
        code = e.code
    print("exit", code, "threads", ",".join(sorted(t.name for t in threading.enumerate())), file=sys.stderr)
    sys.exit(code)
""")
# Full MNIST in batches of 100, a line a step for read_until_step; no checkpoint before the last step but a stop's.
QUEUE_FLAGS = ("--model", "mlp64", "--batch-size", "100", "--steps", "150", "--print-every", "1", "--input", "queue")
QUEUE_STEPS, SIGNALLED_AFTER = 150, 20
THREADS_AT_EXIT = "MainThread,native-stderr"


def run_py(*args):
    return subprocess.run(
        [sys.executable, "-c", THREADS_AFTER, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_a_diverging_queue_run_leaves_no_thread(subset, tmp_path):
    diverging = config(input="queue", optimizer="sgd", learning_rate=1e8, checkpoint_every=1)
    with no_thread_left(), pytest.raises(TrainingDiverged) as diverged:
        trained(diverging, subset, tmp_path)
    run_dir = only_run_dir(tmp_path)
    assert f"the last good checkpoint (step {diverged.value.step - 1}) is kept in {run_dir}." in str(diverged.value)
    assert checkpoint_step(run_dir) == diverged.value.step - 1


@pytest.fixture(scope="module")
def uninterrupted_queue(mnist, tmp_path_factory):
    """QUEUE_FLAGS's run never stopped, configured by the CLI's own parser."""
    result = trained(config_from_args(parse_args(QUEUE_FLAGS)), mnist, tmp_path_factory.mktemp("uninterrupted"))
    assert result.global_step == QUEUE_STEPS
    return result


@pytest.mark.parametrize("signum,exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_stop_a_queue_run_without_a_thread_left_and_it_resumes_bit_for_bit(
    signum, exit_code, uninterrupted_queue, tmp_path
):
    stderr_path = tmp_path / "stderr"
    with open(stderr_path, "w") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", THREADS_AFTER, *QUEUE_FLAGS, "--logdir", str(tmp_path / "logs")],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            bufsize=0,
            pipesize=PIPE_BYTES,
        )
    try:
        read_until_step(child, SIGNALLED_AFTER, stderr_path)  # from here the child ends no step past 20 + LEAD
        child.send_signal(signum)
        child.communicate(timeout=120)
    finally:
        child.kill()
        child.wait()
    *_, message, threads = stderr_path.read_text().strip().splitlines()
    assert child.returncode == exit_code and threads == f"exit {exit_code} threads {THREADS_AT_EXIT}", threads
    run_dir = only_run_dir(tmp_path / "logs")
    match = re.fullmatch(
        rf"graph-nn: error: stopped by {signum.name} at step (\d+) after saving its checkpoint; "
        rf"continue with: python run.py --resume {re.escape(str(run_dir))}",
        message,
    )
    assert match, message
    stopped_at = int(match.group(1))
    assert SIGNALLED_AFTER <= stopped_at <= SIGNALLED_AFTER + LEAD < QUEUE_STEPS
    assert checkpoint_step(run_dir) == stopped_at
    assert hparams_row(run_dir)[0]["status"] == "stopped"

    resumed = run_py("--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.strip().splitlines()[-1] == f"exit 0 threads {THREADS_AT_EXIT}"
    assert f"Resuming {run_dir} at step {stopped_at}/{QUEUE_STEPS}" in resumed.stdout
    assert_bit_identical(checkpoint_tensors(run_dir), checkpoint_tensors(uninterrupted_queue.run_dir))


# ---- a pipeline failing mid-run ---------------------------------------------------------------------------


def test_a_pipeline_failing_mid_run_keeps_its_last_checkpoint_and_says_so(subset, tmp_path):
    """A tfrecord run stopped at step 30 and resumed, its train.tfrecords cut short on disk after the data set
    was loaded: the pipeline, which reads the files itself, fails at its first batch."""
    out_dir = tmp_path / "records"
    write_records(subset, out_dir, validation_size=100)
    dataset = load_records(out_dir)
    first = trained(config(input="tfrecord", steps=30), dataset, tmp_path / "logs")
    path = pathlib.Path(first.run_dir) / "config.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), steps=60)))
    saved = checkpoint_tensors(first.run_dir)
    train_file = out_dir / "train.tfrecords"
    train_file.write_bytes(train_file.read_bytes()[:-1])
    with no_thread_left(), pytest.raises(GraphNNError) as failed:
        resume(first.run_dir, dataset, out=io.StringIO())
    assert re.fullmatch(
        r"the tfrecord input pipeline failed after step 30 \(truncated record at \d+.*\); "
        rf"the last checkpoint \(step 30\) is kept in {re.escape(first.run_dir)}\.",
        str(failed.value),
    ), str(failed.value)
    assert_bit_identical(checkpoint_tensors(first.run_dir), saved)


# ---- bad input --------------------------------------------------------------------------------------------

BEFORE_TENSORFLOW = [
    ("unknown input", ["--input", "bogus"], "unknown input 'bogus'; choose one of feed, dataset, queue, tfrecord."),
    (
        "tfrecord without a data directory",
        ["--input", "tfrecord"],
        "--input tfrecord reads the files of python run.py convert-to-records OUT_DIR; give --data-dir OUT_DIR.",
    ),
    (
        "tfrecord from a folder without records",
        ["--input", "tfrecord", "--data-dir", "{empty}"],
        "{empty}/train.tfrecords: file not found; --input tfrecord trains from the files that python run.py "
        "convert-to-records OUT_DIR writes (then give --data-dir OUT_DIR).",
    ),
    (
        "a pipeline with the in-graph loop",
        ["--input", "queue", "--steps-per-run", "10"],
        "--steps-per-run above 1 does not combine with --input queue: the in-graph loop gathers its batches itself.",
    ),
    (
        "a pipeline in a cluster",
        ["cluster", "--workers", "2", "--input", "queue"],
        "--input is for single-process runs, not a cluster's workers",
    ),
]


@pytest.mark.parametrize(
    "args,message", [case[1:] for case in BEFORE_TENSORFLOW], ids=[case[0] for case in BEFORE_TENSORFLOW]
)
def test_bad_input_is_one_sentence_before_tensorflow_is_imported(args, message, tmp_path):
    (tmp_path / "empty").mkdir()
    args = [arg.format(empty=tmp_path / "empty") for arg in args]
    wrong = subprocess.run(
        [sys.executable, "-c", IMPORTED_AFTER, *args, "--logdir", str(tmp_path / "logs")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    *said, verdict = wrong.stderr.strip().splitlines()
    assert verdict == "exit 2 imported nothing heavy", wrong.stderr
    assert len(said) == 1 and said[0].startswith("graph-nn: error: ") and "Traceback" not in wrong.stderr
    assert message.format(empty=tmp_path / "empty") in said[0]
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    "split,damage,reason",
    [
        ("train", lambda data: bytes(range(256)) * 4, "corrupted record at 0"),
        ("test", lambda data: data[:-1], "truncated record at"),
    ],
    ids=["garbage", "truncated"],
)
def test_a_damaged_records_file_is_one_sentence_naming_it(split, damage, reason, records, tmp_path):
    damaged = tmp_path / "records"
    shutil.copytree(records, damaged)
    path = damaged / f"{split}.tfrecords"
    path.write_bytes(damage(path.read_bytes()))
    wrong = run_cli("--input", "tfrecord", "--data-dir", damaged, "--logdir", tmp_path / "logs")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr + wrong.stdout
    [message] = wrong.stderr.strip().splitlines()
    assert message.startswith(f"graph-nn: error: {path}: not a file of MNIST tf.train.Examples ({reason}"), message
    assert not (tmp_path / "logs").exists()
