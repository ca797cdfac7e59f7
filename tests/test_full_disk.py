"""A full disk under the commands that write something other than a training run (tests/test_reliability.py has
training's): export, convert-to-records and sweep end in one sentence naming the path and the cause, with exit
code 2, and leave what was there before as it was, with nothing half-written beside it; TensorFlow's event writer,
which drops a large event the disk refuses without a word, is caught at its next flush.  A read-only file system
is refused the same way."""

import shutil

import pytest
import tensorflow as tf

from graph_nn.core.errors import WriteFailed
from graph_nn.observe.summaries import event_writer
from graph_nn.reports.export import export_run
from tests.conftest import ROOT, fill, run_cli
from tests.test_bad_input import snapshot

NO_SPACE = "No space left on device"


def test_an_export_the_disk_refuses_keeps_the_earlier_export(short_run, small_disk):
    run_dir = small_disk / "run"
    shutil.copytree(short_run.run_dir, run_dir)
    export_run(run_dir)
    earlier = snapshot(run_dir / "export")
    fill(small_disk)

    result = run_cli("export", "--run", run_dir)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"graph-nn: error: {run_dir}/export: cannot write the export ({NO_SPACE}); an earlier export there is kept."
    ]
    assert snapshot(run_dir / "export") == earlier
    assert sorted(path.name for path in run_dir.glob("export*")) == ["export"]


def test_records_the_disk_refuses_leave_no_partial_file_and_the_earlier_file_as_it_was(small_disk):
    out_dir = small_disk / "records"
    out_dir.mkdir()
    (out_dir / "train.tfrecords").write_bytes(b"an earlier file")  # the 47 MB of new records cannot fit in 12 MB

    result = run_cli("convert-to-records", out_dir)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"graph-nn: error: {out_dir}/train.tfrecords: cannot be written ({NO_SPACE})."
    ]
    assert snapshot(out_dir) == {"train.tfrecords": b"an earlier file"}


def test_a_sweep_whose_plan_the_disk_refuses_ends_in_one_sentence(small_disk):
    fill(small_disk)
    result = run_cli(
        "sweep", "--model", "mlp64", "--steps", "20", "--lr", "1e-3,1e-2", "--logdir", small_disk / "sweeps"
    )
    assert result.returncode == 2, result.stderr
    (sweep_dir,) = (small_disk / "sweeps").iterdir()
    assert result.stderr.splitlines() == [f"graph-nn: error: {sweep_dir}/sweep.json: cannot be written ({NO_SPACE})."]
    assert not list(sweep_dir.iterdir())


def test_a_run_started_on_a_full_disk_leaves_no_half_written_configuration(small_disk):
    """config.json is the first file of a run; one cut short would be refused by every later command."""
    fill(small_disk)
    result = run_cli("--model", "mlp64", "--steps", "20", "--logdir", small_disk / "logs")
    assert result.returncode == 2, result.stderr
    (run_dir,) = (small_disk / "logs").iterdir()
    assert result.stderr.splitlines() == [f"graph-nn: error: {run_dir}/config.json: cannot be written ({NO_SPACE})."]
    assert not (run_dir / "config.json").exists() and not list(run_dir.glob("*.partial"))


def test_an_event_too_large_for_the_writers_buffer_is_not_lost_without_a_word(small_disk):
    writer = event_writer(small_disk / "events")
    fill(small_disk)
    # A histogram's size: TensorFlow writes it past its buffer and ignores the error, and its flush then succeeds.
    image = tf.compat.v1.Summary.Image(encoded_image_string=bytes(30_000))
    writer.add_summary(tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(tag="large", image=image)]), 1)
    sentence = f"cannot write TensorBoard's events in {small_disk / 'events'} ({NO_SPACE})"
    with pytest.raises(WriteFailed) as failed:
        writer.flush()
    assert str(failed.value) == sentence
    with pytest.raises(WriteFailed, match="cannot write TensorBoard's events"):
        writer.close()  # which lets the file go, and says so again


def test_a_report_the_disk_refuses_keeps_the_run_and_its_pictures(short_run, small_disk):
    run_dir = small_disk / "run"
    shutil.copytree(short_run.run_dir, run_dir)
    (run_dir / "accuracy.png").write_bytes(b"an earlier picture")
    before = snapshot(run_dir)
    fill(small_disk)

    result = run_cli("evaluate", "--run", run_dir)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"graph-nn: error: {run_dir}: cannot write the report's pictures and TensorBoard's extras ({NO_SPACE}); the "
        f"run and its checkpoints are kept: python run.py evaluate --run {run_dir} draws the pictures once the disk "
        "takes writes again"
    ]
    assert snapshot(run_dir) == before


def test_a_read_only_file_system_refuses_each_write_in_one_sentence_and_predict_still_reads(short_run, read_only):
    writable, mount = read_only
    shutil.copytree(short_run.run_dir, writable / "run")
    run_dir, before = mount / "run", snapshot(writable / "run")
    refusals = {
        ("--model", "mlp64", "--steps", "20", "--logdir", mount): f"{mount}: cannot create a run directory there",
        ("evaluate", "--run", run_dir): f"{run_dir}: cannot write in the directory",
        ("export", "--run", run_dir): f"{run_dir}: cannot write in the directory",
    }
    for args, sentence in refusals.items():
        result = run_cli(*args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [f"graph-nn: error: {sentence} (Read-only file system)."]
    predicted = run_cli("predict", "--run", run_dir, f"{ROOT}/docs/tensorboard-images.png")
    assert predicted.returncode == 0, predicted.stderr
    assert snapshot(writable / "run") == before
