"""`python run.py sweep`: a 2x2 grid of tiny runs in parallel processes, stopped by Ctrl-C after two of them
finished and continued without training those again; its table and HParams rows; a run stopped by its timeout."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from graph_nn.core.run_dir import RunDir
from graph_nn.experiments import sweep
from tests.conftest import ROOT, run_cli
from tests.test_reliability import hparams_row

# 100 steps, an evaluation on 50,000 held-out examples every 10 (each ~0.2 s): a run trains for a few seconds
# after its first checkpoint, time enough to stop it there.
GRID = (
    "--model",
    "mlp64",
    "--optimizer",
    "sgd",
    "--batch-size",
    "500,1000",
    "--lr",
    "0.05,0.5",
    "--steps",
    "100",
    "--eval-every",
    "10",
    "--validation-split",
    "50000",
    "--histogram-every",
    "1000",
)
WAIT_SECONDS = 240


def run_dirs(sweep_dir):
    return sorted(path.parent for path in pathlib.Path(sweep_dir).glob("*/*/config.json"))


def snapshot(paths):
    return {str(p): p.read_bytes() for path in paths for p in sorted(pathlib.Path(path).rglob("*")) if p.is_file()}


def wait_until(condition, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"waited in vain for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The grid, stopped with SIGINT once two runs are done and a third has a checkpoint, then continued:
    (sweep directory, the first process's exit code, output, its runs' statuses and what a second sweep in the
    same directory meanwhile said, the continuation's output, the runs done before it and their files)."""
    logdir = tmp_path_factory.mktemp("sweeps")
    first = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "run.py"), "sweep", *GRID, "--jobs", "2", "--logdir", logdir],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: len(list(logdir.glob("sweep-*/*/*/result.json"))) >= 2, "two finished runs")
    (sweep_dir,) = logdir.iterdir()
    done = [path.parent for path in sweep_dir.glob("*/*/result.json")]
    meanwhile = run_cli("sweep", "--resume", sweep_dir)
    wait_until(
        lambda: any(
            RunDir(path).checkpoint_state.is_file() and not RunDir(path).result.exists() for path in run_dirs(sweep_dir)
        ),
        "a run with a checkpoint in training",
    )
    first.send_signal(signal.SIGINT)
    stdout, stderr = first.communicate(timeout=WAIT_SECONDS)
    statuses = [RunDir(path).read_result()["status"] for path in run_dirs(sweep_dir) if RunDir(path).result.exists()]
    files = snapshot(done)
    continued = run_cli("sweep", "--resume", sweep_dir, "--jobs", "2", timeout=WAIT_SECONDS)
    return sweep_dir, (first.returncode, stdout, stderr, statuses, meanwhile), continued, done, files


def test_ctrl_c_stops_every_run_of_a_sweep_and_says_how_to_continue(swept):
    sweep_dir, (code, stdout, stderr, statuses, meanwhile), *_ = swept
    assert meanwhile.returncode == 2
    # The sentence names the sweeping process: its PID and command line (abbreviated).
    assert re.fullmatch(
        rf"graph-nn: error: {re.escape(str(sweep_dir))} is being swept by another process right now "
        r"\(PID \d+: python run\.py sweep --model mlp64 .*\)\.\n",
        meanwhile.stderr,
    ), meanwhile.stderr
    assert code == 130, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"graph-nn: error: sweep stopped by SIGINT, its runs at their "
        f"checkpoints; continue with: python run.py sweep --resume {sweep_dir}"
    )
    assert len(re.findall(r": finished in \d+ s - validation accuracy", stdout)) >= 2
    assert statuses.count("finished") >= 2 and "stopped" in statuses
    assert re.search(r": stopped at step \d+ after \d+ s; continuing the sweep resumes it$", stdout, re.M)


def test_a_continued_sweep_trains_only_what_was_not_done(swept):
    sweep_dir, _, continued, done, files = swept
    assert continued.returncode == 0, continued.stderr
    assert f"Sweep {sweep_dir}: 4 runs, {len(done)} of them done; training {4 - len(done)}" in continued.stdout
    assert "resuming" in continued.stdout
    trained = re.findall(r"^\[\d/\d\] (\S+): (?:training|resuming)$", continued.stdout, re.M)
    assert sorted(trained + [path.parent.name for path in done]) == sorted(p.name for p in sweep_dir.glob("??-*"))
    assert snapshot(done) == files  # not a byte of the finished runs changed
    again = run_cli("sweep", "--resume", sweep_dir)
    assert again.returncode == 0 and f"Sweep {sweep_dir}: 4 runs, 4 of them done\n" in again.stdout


def test_a_sweep_makes_ordinary_runs_with_hparams_rows_and_a_sorted_table(swept):
    sweep_dir, _, continued, *_ = swept
    finished = [path for path in run_dirs(sweep_dir) if RunDir(path).read_result()]
    assert len(finished) == 4
    settings = set()
    for path in finished:
        assert {"config.json", "checkpoints", "train", "validation", "test", "evaluation", "accuracy.png"} <= {
            p.name for p in path.iterdir()
        }
        command_line = (path.parent / "output.txt").read_text().splitlines()[0]
        assert command_line.startswith(f"$ {sys.executable} -m graph_nn train --model mlp64 --optimizer sgd")
        row, _ = hparams_row(path)
        assert row["status"] == "finished" and row["validation"] == "the last 50,000 training examples"
        settings.add((row["batch_size"], row["learning_rate"]))
    assert settings == {(500, 0.05), (500, 0.5), (1000, 0.05), (1000, 0.5)}

    table = continued.stdout.split(f"Sweep {sweep_dir}: validated on", 1)[1].splitlines()
    assert table[0] == " the last 50,000 training examples; sorted by validation accuracy"
    assert table[1].split() == [
        "learning_rate",
        "batch_size",
        "runs",
        "validation",
        "accuracy",
        "validation",
        "loss",
        "test",
        "accuracy",
        "status",
    ]
    rows = [line.split() for line in table[2:6]]
    accuracies = sorted((RunDir(path).read_result()["validation_accuracy"] for path in finished), reverse=True)
    assert [row[3] for row in rows] == [f"{accuracy:.4f}" for accuracy in accuracies]
    assert all(row[2] == "1/1" and row[-1] == "finished" for row in rows)


def test_repeats_give_a_mean_and_a_spread(tmp_path):
    sweep_dir = sweep.create(tmp_path, {"learning_rate": [0.1, 0.2]}, repeats=2)
    plan = sweep.load(sweep_dir)
    assert [(run.name, run.flags["seed"]) for run in plan.runs] == [
        ("00-learning_rate=0.1-seed=0", 0),
        ("01-learning_rate=0.1-seed=1", 1),
        ("02-learning_rate=0.2-seed=0", 0),
        ("03-learning_rate=0.2-seed=1", 1),
    ]
    # The table reads each run's result.json: here two finished repeats of 0.2, one of 0.1 and one diverged.
    results = [
        dict(status="finished", validation_accuracy=0.9, validation_loss=0.3),
        dict(status="diverged"),
        dict(status="finished", validation_accuracy=0.95, validation_loss=0.2),
        dict(status="finished", validation_accuracy=0.97, validation_loss=0.1, test_accuracy=0.96),
    ]
    for run, result in zip(plan.runs, results):
        run_dir = RunDir(sweep_dir / run.name / "mlp512-20260101-000000")
        run_dir.path.mkdir(parents=True)
        run_dir.config.write_text("{}")
        run_dir.result.write_text(json.dumps(result))
    lines = sweep.format_table(plan).splitlines()
    assert lines[0].endswith("sorted by validation accuracy, mean ± standard deviation over 2 seeds")
    assert lines[2].split() == ["0.2", "2/2", "0.9600", "±", "0.0100", "0.1500", "±", "0.0500", "0.9600", "finished"]
    assert lines[3].split() == ["0.1", "2/2", "0.9000", "0.3000", "-", "1", "finished,", "1", "diverged"]


def test_a_run_past_its_timeout_is_stopped_at_a_checkpoint(tmp_path):
    result = run_cli(
        "sweep",
        "--model",
        "mlp64",
        "--steps",
        "1000000",
        "--checkpoint-every",
        "100",
        "--timeout",
        "15",
        "--logdir",
        tmp_path,
    )
    assert result.returncode == 2, result.stderr
    (sweep_dir,) = tmp_path.iterdir()
    assert re.search(
        r"^\[1/1\] 00: stopped by its --timeout at step \d+ after \d+ s; continuing the sweep "
        r"resumes it$",
        result.stdout,
        re.M,
    ), result.stdout
    assert result.stderr == (
        f"graph-nn: error: 1 of the 1 runs did not finish (their output.txt says why); "
        f"continue with: python run.py sweep --resume {sweep_dir}\n"
    )
    (run_dir,) = run_dirs(sweep_dir)
    assert RunDir(run_dir).read_result()["status"] == "stopped" and RunDir(run_dir).checkpoint_state.is_file()
