"""The benchmarks' arithmetic and bench's alternative input path; their timings are reported, never asserted."""

import dataclasses
import json
import re
import subprocess
import sys

import numpy as np

from graph_nn.core.config import make_config
from graph_nn.experiments import bench
from graph_nn.graph.determinism import deterministic_ops
from graph_nn.internals.inspect_graph import training_flops
from tests.conftest import ROOT, run_cli


def test_matmul_floor_shapes_do_the_same_flops_as_the_closed_form():
    for model in ("mlp64", "mlp512", "mlp5"):
        shapes = bench.mlp_step_matmuls(model, 128)
        assert sum(2 * m * k * n for m, k, n in shapes) == training_flops(model, 128)


def test_the_tf_data_path_trains_on_the_same_batches_as_feed_dict(mnist):
    """Same seed, same permutations: the two input paths must give the same losses step for step."""
    config = dataclasses.replace(make_config(model="mlp64"), log_every=10**9, histogram_every=10**9)
    steps = 480  # crosses the end of epoch 1 (469 steps, the last one short)
    with bench.graph_trainer(config, mnist) as (trainer, sess, writers), deterministic_ops():
        feed_losses = [trainer.train_step(sess, step, writers)[0] for step in range(1, steps + 1)]
    with bench.iterator_trainer(config, mnist, epochs=2) as (sess, model), deterministic_ops():
        iterator_losses = [float(sess.run([model.train_op, model.loss])[1]) for _ in range(steps)]
    np.testing.assert_allclose(iterator_losses, feed_losses, rtol=1e-5)


def test_bench_command_writes_every_figure(tmp_path):
    result = run_cli(
        "bench", "--models", "mlp512", "--steps", "5", "--repeats", "1", "--json", tmp_path / "b.json", timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "graph / Keras fit" in result.stdout and "in-graph loop K=50 / feed_dict" in result.stdout
    report = json.loads((tmp_path / "b.json").read_text())
    (row,) = report["models"]
    for key in (
        "graph_feed_s",
        "graph_feed_no_summaries_s",
        "graph_dataset_s",
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
    result = run_cli(
        "bench", "--cluster", "--models", "mlp512", "--steps", "40", "--repeats", "1", "--json", tmp_path / "c.json",
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
