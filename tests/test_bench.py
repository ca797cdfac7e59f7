"""The benchmarks' arithmetic and figures; their timings are reported, never asserted (that every --input trains
to the same weights is tests/test_input_pipelines.py's)."""

import json
import re
import subprocess
import sys

from graph_nn.core.config import INPUTS
from graph_nn.experiments import bench
from graph_nn.internals.inspect_graph import training_flops
from tests.conftest import ROOT, run_cli


def test_matmul_floor_shapes_do_the_same_flops_as_the_closed_form():
    for model in ("mlp64", "mlp512", "mlp5"):
        shapes = bench.mlp_step_matmuls(model, 128)
        assert sum(2 * m * k * n for m, k, n in shapes) == training_flops(model, 128)


def test_bench_command_writes_every_figure(tmp_path):
    result = run_cli(
        "bench", "--models", "mlp512", "--steps", "5", "--repeats", "1", "--json", tmp_path / "b.json", timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "graph / Keras fit" in result.stdout and "in-graph loop K=50 / feed_dict" in result.stdout
    for name in INPUTS:  # the four inputs side by side, each against feed
        assert re.search(rf"--input {name} \(ex/s, vs feed\) +[\d,]+ \(\d+\.\d\dx\)", result.stdout), name
    report = json.loads((tmp_path / "b.json").read_text())
    (row,) = report["models"]
    for key in (
        "graph_feed_s",
        "graph_feed_no_summaries_s",
        "graph_input_dataset_s",
        "graph_input_queue_s",
        "graph_input_tfrecord_s",
        "graph_loop_k10_s",
        "graph_loop_k50_s",
        "graph_xla_s",
        "graph_one_inter_op_thread_s",
        "keras_fit_s",
        "matmul_floor_s",
        "graph_predict_10k_s",
        "graph_predict_10k_b500_s",
        "graph_predict_10k_b10000_s",
        "histogram_run_s",
        "keras_predict_10k_s",
    ):
        assert 0 < row[key] < 10, key
    assert report["matmul_peak_flops"] > 1e9
    assert report["default_run_event_bytes"] > 100_000


def test_bench_cluster_times_every_contender_and_counts_the_bytes(tmp_path):
    # In async training a worker starts when it is ready, not when the chief starts: at 40 steps the chief could be
    # done before the second worker logged twice (it happened, unloaded). 300 steps outlast that start by seconds.
    result = run_cli(
        "bench", "--cluster", "--models", "mlp512", "--steps", "300", "--repeats", "1", "--json", tmp_path / "c.json",
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 ps + 2 workers, sync" in result.stdout and "bytes per worker step" in result.stdout
    (row,) = json.loads((tmp_path / "c.json").read_text())["models"]
    assert len(row["contenders"]["1 ps + 2 workers, async"]["local_steps_per_second"]) == 2
    assert row["contenders"]["1 ps + 2 workers, sync"]["examples_per_second"] > 0


def test_the_whole_process_comparison_runs_both_scripts_and_prints_their_ratio():
    # One repeat, and a one-epoch graph run (a flag passed on to run.py); the Keras script is always the article's.
    result = subprocess.run(
        [sys.executable, "scripts/whole_run.py", "--repeats", "1", "--epochs", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"python run.py --epochs 1 [\d.]+ s, Keras script [\d.]+ s: graph mode is [\d.]+x", result.stdout)
