"""Damaged and foreign files in a run directory, met by the real CLI: a checkpoint cut short or garbled gives way to
the previous good one (named on stderr, restored whole: evaluate, predict, export and --resume go on from it, a
resume still bit for bit), and what cannot be worked around - every checkpoint damaged, config.json edited out of
shape or another tool's, result.json garbled, an event record damaged - is one sentence naming the file, exit 2,
never a traceback."""

import json
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from graph_nn.experiments import sweep
from tests.conftest import run_cli

# mlp64 with Adam (slots and the loop state to restore), 30 steps: rolling checkpoints at 10, 15, ..., 30 (the
# Saver keeps five) and the best one; evaluations at 10, 20, 30.
FLAGS = ["--model", "mlp64", "--optimizer", "adam", "--steps", "30", "--eval-every", "10", "--checkpoint-every", "5"]
FLAGS += ["--log-every", "5", "--histogram-every", "10"]
LATEST, PREVIOUS = 30, 25


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("corrupt")
    done = run_cli(*FLAGS, "--logdir", logdir)
    assert done.returncode == 0, done.stderr
    (run_dir,) = logdir.iterdir()
    return run_dir


@pytest.fixture
def run(trained, tmp_path):
    """A copy of the trained run to damage; its `checkpoint` state file still names the original's checkpoints,
    by absolute paths, and the copy must restore its own."""
    return pathlib.Path(shutil.copytree(trained, tmp_path / "run"))


def tensors(prefix):
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def checkpoint(run_dir, step):
    return run_dir / "checkpoints" / f"model.ckpt-{step}"


def cut(path, size=100):
    path = pathlib.Path(path)
    path.write_bytes(path.read_bytes()[:size])


def garble(path, start=1000, length=1000):
    data = bytearray(pathlib.Path(path).read_bytes())
    data[start : start + length] = bytes(length)
    pathlib.Path(path).write_bytes(bytes(data))


def data_file(run_dir, step):
    return pathlib.Path(f"{checkpoint(run_dir, step)}.data-00000-of-00001")


def said(result, kind="error"):
    """The one graph-nn line of the result's stderr, without its prefix; no traceback anywhere."""
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("graph-nn: ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"graph-nn: {kind}: "), result.stderr
    return lines[0].removeprefix(f"graph-nn: {kind}: ")


def refused(result, sentence):
    assert result.returncode == 2, result.stderr
    assert said(result) == sentence


def fell_back(result, damaged, reason):
    assert result.returncode == 0, result.stderr
    assert said(result, "warning") == (
        f"{damaged}: cannot restore the checkpoint ({reason}); restored the previous good checkpoint, of step "
        f"{PREVIOUS}, in its place."
    )


# ---- a damaged checkpoint: the previous good one ----------------------------------------------------------------


def test_export_with_its_latest_checkpoint_cut_short_exports_the_previous_one(trained, run):
    cut(data_file(run, LATEST), 1000)
    exported = run_cli("export", "--run", run)
    fell_back(exported, data_file(run, LATEST), "Read less bytes than requested")
    assert f"Exported the checkpoint of step {PREVIOUS}" in exported.stdout
    weights = tensors(run / "export" / "saved_model" / "variables" / "variables")
    previous = tensors(checkpoint(run, PREVIOUS))
    assert weights and all(weights[name].tobytes() == previous[name].tobytes() for name in weights)
    latest = tensors(checkpoint(trained, LATEST))
    assert any(weights[name].tobytes() != latest[name].tobytes() for name in weights)


def test_evaluate_with_a_garbled_latest_checkpoint_reports_the_previous_one(run):
    garble(data_file(run, LATEST))
    (run / "accuracy.png").unlink()
    evaluated = run_cli("evaluate", "--run", run)
    assert evaluated.returncode == 0, evaluated.stderr
    assert said(evaluated, "warning").startswith(f"{data_file(run, LATEST)}: cannot restore the checkpoint (")
    assert "Checksum does not match" in evaluated.stderr
    assert f"Checkpoint: the run's last, of step {PREVIOUS};" in evaluated.stdout
    assert (run / "accuracy.png").is_file()


def test_predict_with_its_latest_index_cut_short_predicts_with_the_previous_one(run, mnist, tmp_path):
    image = tmp_path / "digit.png"
    Image.fromarray((255 - mnist.test.images[0].reshape(28, 28) * 255).astype(np.uint8)).save(image)
    cut(f"{checkpoint(run, LATEST)}.index")
    predicted = run_cli("predict", "--run", run, image)
    fell_back(predicted, f"{checkpoint(run, LATEST)}.index", "not an sstable (bad magic number)")
    assert predicted.stdout.startswith(f"{image}: ")


def test_resume_from_the_previous_checkpoint_ends_at_the_uninterrupted_run_bit_for_bit(trained, run):
    """The loop state (running means, early-stopping record) is inside each checkpoint, so the step before goes on
    exactly as the run did: its last checkpoint, trained again, is the original's."""
    cut(data_file(run, LATEST), 1000)
    resumed = run_cli("--resume", run)
    fell_back(resumed, data_file(run, LATEST), "Read less bytes than requested")
    assert f"Resuming {run} at step {PREVIOUS}/{LATEST}" in resumed.stdout
    again, original = tensors(checkpoint(run, LATEST)), tensors(checkpoint(trained, LATEST))
    assert sorted(again) == sorted(original)
    assert all(again[name].tobytes() == original[name].tobytes() for name in original)
    assert json.loads((run / "result.json").read_text())["status"] == "finished"


def test_an_unreadable_checkpoint_state_file_gives_way_to_the_checkpoints_beside_it(run):
    (run / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "model.ck')
    evaluated = run_cli("evaluate", "--run", run)
    assert evaluated.returncode == 0, evaluated.stderr
    assert said(evaluated, "warning") == (
        f"{run}/checkpoints/checkpoint: unreadable checkpoint state; using the checkpoints in {run}/checkpoints."
    )
    assert f"Checkpoint: the run's last, of step {LATEST};" in evaluated.stdout


# ---- what cannot be worked around: one sentence naming the file, exit 2 --------------------------------------


def test_every_checkpoint_damaged_is_one_sentence(run):
    for index in (run / "checkpoints").glob("model.ckpt-*.index"):
        cut(index, 10)
    refused(
        run_cli("evaluate", "--run", run),
        f"{checkpoint(run, LATEST)}.index: cannot restore the checkpoint (file is too short to be an sstable); "
        "no earlier checkpoint restores either.",
    )


def test_a_damaged_best_checkpoint_is_one_sentence_that_points_to_the_latest(run):
    cut(run / "checkpoints" / "best.index", 10)
    refused(
        run_cli("evaluate", "--run", run, "--checkpoint", "best"),
        f"{run}/checkpoints/best.index: cannot restore the checkpoint (file is too short to be an sstable); "
        "--checkpoint latest restores the run's latest.",
    )


def edited(**changes):
    """config.json with some of its values changed, by hand."""
    return lambda config: json.dumps(dict(config, **changes))


def replaced(value):
    """config.json holding value instead of a run's configuration."""
    return lambda config: json.dumps(value)


CONFIGS = [  # (id, the command, config.json's new text from its values, the sentence after "RUN/config.json: ")
    (
        "steps a word",
        "evaluate",
        edited(steps="many"),
        'unreadable run configuration (steps is "many", where graph_nn writes a whole number or null).',
    ),
    (
        "model a list",
        "export",
        edited(model=["mlp64"]),
        'unreadable run configuration (model is ["mlp64"], where graph_nn writes a string).',
    ),
    ("a negative batch", "--resume", edited(batch_size=-3), "--batch-size must be positive, got -3."),
    (
        "a JSON list",
        "predict",
        replaced([1, 2]),
        "not a graph_nn run configuration (a JSON list, not an object of TrainConfig's fields).",
    ),
    (
        "another tool's",
        "evaluate",
        replaced({"architectures": ["BertModel"], "hidden_size": 768}),
        "not a graph_nn run configuration (no model, init, optimizer and 18 more: keys every graph_nn run has).",
    ),
    (
        "a newer graph_nn's",
        "--resume",
        edited(quantum=True),
        "not a graph_nn run configuration (quantum: unknown to this graph_nn).",
    ),
    (
        "cut short",
        "export",
        lambda config: '{"model": ',
        "unreadable run configuration (Expecting value: line 1 column 11 (char 10)).",
    ),
]


@pytest.mark.parametrize("command,text,sentence", [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
def test_a_config_json_edited_out_of_shape_or_foreign_is_one_sentence(run, command, text, sentence):
    path = run / "config.json"
    path.write_text(text(json.loads(path.read_text())))
    args = ["--resume", run] if command == "--resume" else [command, "--run", run]
    args += ["digit.png"] if command == "predict" else []
    refused(run_cli(*args), f"{path}: {sentence}")


def test_a_directory_with_checkpoints_but_no_config_json_is_refused(run):
    (run / "config.json").unlink()
    refused(run_cli("export", "--run", run), f"{run}: not a graph_nn run directory (no config.json).")


def test_a_garbled_data_source_or_classes_file_is_one_sentence(run):
    (run / "data_source.txt").write_bytes(b"\xff\xfe\x00 garbage")
    refused(
        run_cli("--resume", run),
        f"{run}/data_source.txt: unreadable ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte).",
    )
    (run / "classes.txt").write_text("0\n1\n2\n")
    refused(
        run_cli("evaluate", "--run", run),
        f"{run}/classes.txt: expected 10 class names, one per line in label order, found 3 lines.",
    )


def test_a_garbled_result_json_is_named_by_sweep_resume(trained, tmp_path):
    directory = sweep.create(tmp_path, {"model": ["mlp64"], "steps": [LATEST]}, 1)
    (only,) = sweep.load(directory).runs
    run_dir = pathlib.Path(shutil.copytree(trained, directory / only.name / trained.name))
    (run_dir / "result.json").write_text('{"status": "fini')
    refused(
        run_cli("sweep", "--resume", directory),
        f"{run_dir}/result.json: unreadable run result (Unterminated string starting at: line 1 column 12 (char 11)).",
    )


# ---- event files: the report's curves ---------------------------------------------------------------------------


def test_a_damaged_event_record_is_one_sentence_after_the_report(run):
    (events,) = (run / "train").glob("events.out.tfevents.*")
    garble(events, 300, 40)
    evaluated = run_cli("evaluate", "--run", run)
    refused(
        evaluated,
        f"{events}: a damaged event record (corrupted record at 90); the report's curves would end there: move the "
        "file away to draw them without its events.",
    )
    assert "Test accuracy: " in evaluated.stdout


def test_an_event_file_cut_mid_record_is_named_and_the_curves_end_before_it(run):
    (events,) = (run / "validation").glob("events.out.tfevents.*")
    cut(events, events.stat().st_size - 7)
    evaluated = run_cli("evaluate", "--run", run)
    assert evaluated.returncode == 0, evaluated.stderr
    assert said(evaluated, "warning").startswith(f"{events}: its last record is cut short at byte ")
    assert said(evaluated, "warning").endswith("; the curves end before it.")
