"""--xla: XLA's auto-clustering in real processes (on a CPU, TF_XLA_FLAGS must be set before the first session)."""

import io
import json
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from graph_nn.core.config import make_config
from graph_nn.core.errors import GraphNNError
from graph_nn.graph.sessions import session_config
from graph_nn.training.runs import train
from tests.conftest import ROOT, run_cli
from tests.test_reliability import assert_bit_identical, checkpoint_tensors, only_run_dir


def test_inspect_xla_names_the_clusters_and_logs_the_graph_coloured_by_them(tmp_path):
    result = run_cli("inspect", "--model", "mlp64", "--xla", "--logdir", tmp_path)
    assert result.returncode == 0, result.stderr
    clusters = re.findall(r"^  (cluster_\d+): (\d+) ops: (.*)$", result.stdout, re.M)
    assert any("ResourceApplyRMSProp" in ops and "MatMul" in ops for _, _, ops in clusters), result.stdout
    assert re.search(r"^  executed: \d+ nodes, among them .*\(_XlaCompile\), .*\(_XlaRun\)", result.stdout, re.M)
    assert re.search(
        r"^  weights after the steps: (identical, bit for bit|max \|difference\| \S+)$", result.stdout, re.M
    )
    (logged,) = (tmp_path / "inspect").iterdir()
    events = event_accumulator.EventAccumulator(str(logged))
    events.Reload()
    marked = {node.attr["_XlaCluster"].s.decode() for node in events.Graph().node if "_XlaCluster" in node.attr}
    assert marked == {name for name, _, _ in clusters}


def test_a_training_run_with_xla_runs_its_steps_as_xla_clusters(tmp_path):
    result = run_cli(
        "--model", "mlp64", "--steps", "20", "--xla", "--trace-steps", "10", "--print-every", "10", "--logdir", tmp_path
    )
    assert result.returncode == 0, result.stderr
    run_dir = only_run_dir(tmp_path)
    assert json.loads((run_dir / "config.json").read_text())["xla"] is True
    events = event_accumulator.EventAccumulator(str(run_dir / "train"))
    events.Reload()
    ran = {
        node.timeline_label.split(" = ")[-1].split("(")[0]
        for device in events.RunMetadata("step10").step_stats.dev_stats
        for node in device.node_stats
    }
    assert {"_XlaCompile", "_XlaRun"} <= ran


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a GPU clusters without the CPU flag")
@pytest.mark.skipif("--tf_xla_cpu_global_jit" in os.environ.get("TF_XLA_FLAGS", ""), reason="the flag is set")
def test_xla_on_a_cpu_without_the_flag_is_refused_in_one_sentence():
    with pytest.raises(GraphNNError, match=r"^XLA on a CPU needs TF_XLA_FLAGS=--tf_xla_cpu_global_jit in the "):
        session_config(xla=True)


def test_the_flag_changes_nothing_for_sessions_that_do_not_ask_for_xla(mnist, tmp_path):
    """What lets bench measure XLA in the same process as its other contenders."""
    flagged = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "run.py"),
            "--model",
            "mlp64",
            "--steps",
            "20",
            "--logdir",
            tmp_path / "flag",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TF_XLA_FLAGS="--tf_xla_cpu_global_jit"),
    )
    assert flagged.returncode == 0, flagged.stderr
    plain = train(
        make_config(model="mlp64", steps=20), mnist, logdir=tmp_path / "plain", out=io.StringIO(), report=False
    )
    assert_bit_identical(checkpoint_tensors(only_run_dir(tmp_path / "flag")), checkpoint_tensors(plain.run_dir))
