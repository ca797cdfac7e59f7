"""The command line's first second: help and flag mistakes answered without loading TensorFlow, training without
loading Keras, and a default run's stderr free of TensorFlow's start-up lines."""

import re
import signal
import subprocess
import sys

import pytest

from graph_nn.cli.flags import config_from_args
from graph_nn.cli.main import parse_args
from graph_nn.core.config import command_line, make_config
from graph_nn.internals import grappler
from graph_nn.reports.report import Report
from tests.conftest import IMPORTED_AFTER, ROOT, run_cli


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["train", "--help"],
        ["cluster", "--help"],
        ["compare", "--help"],
        ["sweep", "--help"],
        ["--model", "resnet"],
        ["--lr", "fast"],
        ["--epochs", "0"],
        ["--resume", "/nowhere"],
        ["--validation-split", "-1"],
        ["sweep", "--lr", "0.1,"],
        ["sweep", "--optimizer", "sgd,lion"],
        ["sweep", "--resume", "/nowhere"],
        ["bench", "--models", "resnet"],
        ["bench", "--serve", "/nowhere"],
        ["bench", "--serve", ".", "--models", "cnn"],
        ["bench", "--seconds", "1"],
        ["parity", "--images", "0"],
        ["--rewrite-off", "remap"],
        ["--profile-steps", "9,3"],
        ["--steps-per-run", "0"],
        ["inspect", "--xla", "--grappler"],
    ],
)
def test_help_and_flag_mistakes_are_answered_before_tensorflow_is_imported(args):
    child = subprocess.run(
        [sys.executable, "-c", IMPORTED_AFTER, *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    *message, verdict = child.stderr.strip().splitlines()
    code, imported = re.fullmatch(r"exit (\S+) imported (.+)", verdict).groups()
    assert imported == "nothing heavy"
    if "--help" in args:
        assert code == "0" and "usage: graph-nn" in child.stdout
    else:
        assert code == "2" and len(message) == 1 and message[0].startswith("graph-nn: error: ")


def test_training_loads_tensorflow_but_not_keras(tmp_path):
    child = subprocess.run(
        [sys.executable, "-c", IMPORTED_AFTER, "--model", "mlp64", "--steps", "5", "--logdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.stderr.strip().splitlines()[-1] == "exit 0 imported tensorflow", child.stderr


def test_a_default_run_shows_none_of_tensorflows_start_up_lines_and_verbose_shows_them(tmp_path):
    quiet = run_cli("--model", "mlp64", "--steps", "20", "--logdir", tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == ""
    verbose = run_cli("--model", "mlp64", "--steps", "20", "--logdir", tmp_path, "--verbose")
    assert verbose.returncode == 0
    if grappler.onednn_on():  # else TensorFlow says nothing of it
        assert re.search(r"^I0000 .*\] oneDNN custom operations are on", verbose.stderr, re.M), verbose.stderr
    assert "failed call to cuInit" in verbose.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly():
    # As `python run.py inspect | head -1`: the pipe closes after the first line.
    child = subprocess.Popen(
        [sys.executable, "run.py", "inspect", "--model", "mlp64"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().startswith("Graph of mlp64")
    child.stdout.close()
    stderr = child.stderr.read()
    assert child.wait(timeout=120) == 128 + signal.SIGPIPE
    assert stderr == ""


def test_the_flags_written_for_a_child_process_read_back_as_the_same_configuration():
    values = dict(
        preset="tf1", model="cnn", learning_rate=0.05, seed=4, trace_steps=(3, 5), rewrites_off=("remapper",), xla=True
    )
    argv = command_line(values)
    assert "--rewrite-off" in argv and "--xla" in argv and "True" not in argv
    assert config_from_args(parse_args(["train", *argv])) == make_config(**values)


def test_the_help_of_train_shows_its_flags_in_groups(capsys):
    with pytest.raises(SystemExit):
        parse_args(["train", "--help"])
    text = capsys.readouterr().out
    for group in ("model", "optimizer", "schedule", "data", "logging", "instruments", "cluster"):
        assert re.search(rf"^{group}\b.*:$", text, re.M), group


def test_a_report_computes_its_lines_as_they_are_read_and_keeps_them():
    computed = []

    def lines():
        for section in ("first", "second"):
            computed.append(section)
            yield section
        return "verdict"

    report = Report(lines())
    assert next(report.lines()) == "first" and computed == ["first"]
    assert str(report) == "first\nsecond" and report.outcome == "verdict"
    assert str(report) == "first\nsecond" and computed == ["first", "second"]
