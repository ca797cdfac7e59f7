"""Freezing and exporting a run: the artefacts reload in a fresh process and predict what the checkpoint does."""

import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from graph_nn.core.errors import GraphNNError
from graph_nn.reports.export import checkpoint_probabilities, export_run
from tests.conftest import ROOT, run_cli

v1 = tf.compat.v1

RELOAD_IN_A_FRESH_PROCESS = textwrap.dedent("""
    import sys
    import numpy as np
    from graph_nn.data.dataset import load_dataset
    from graph_nn.reports.export import frozen_predictions, saved_model_predictions
    export_dir, out = sys.argv[1], sys.argv[2]
    images = load_dataset().test.images
    frozen = frozen_predictions(export_dir + "/frozen_graph.pb", images)
    saved = saved_model_predictions(export_dir + "/saved_model", images)
    np.savez(out, frozen_probabilities=frozen[0], frozen_classes=frozen[1],
             saved_probabilities=saved[0], saved_classes=saved[1])
""")

# Eager TF2 as a serving user runs it: no graph_nn import, so nothing of this package's graph-mode setup is in play.
EAGER_SIGNATURE_IN_A_FRESH_PROCESS = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    saved_model, images, out = sys.argv[1:]
    assert tf.executing_eagerly()
    serving = tf.saved_model.load(saved_model).signatures["serving_default"]
    outputs = serving(x=tf.constant(np.load(images)))
    np.save(out + "/probabilities.npy", outputs["probabilities"].numpy())
    np.save(out + "/classes.npy", outputs["class"].numpy())
""")


@pytest.fixture(scope="module")
def exported(short_run, tmp_path_factory):
    """A copy of the short run, exported with the CLI: (run directory, the command's output)."""
    run_dir = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(short_run.run_dir, run_dir)
    result = run_cli("export", "--run", run_dir)
    assert result.returncode == 0, result.stderr
    return run_dir, result.stdout


def test_the_cli_prints_the_frozen_graph_and_checks_both_reloads(exported):
    run_dir, stdout = exported
    nodes, size = re.search(r"frozen_graph.pb - (\d+) nodes, ([\d,]+) bytes", stdout).groups()
    frozen = run_dir / "export" / "frozen_graph.pb"
    assert int(size.replace(",", "")) == frozen.stat().st_size
    graph_def = v1.GraphDef.FromString(frozen.read_bytes())
    assert int(nodes) == len(graph_def.node)
    diffs = re.findall(r"(frozen GraphDef|SavedModel) reloaded: max \|probability difference\| .*: (\S+)", stdout)
    assert [name for name, _ in diffs] == ["frozen GraphDef", "SavedModel"]
    assert all(float(diff) <= 1e-6 for _, diff in diffs)


def test_reloads_in_a_fresh_process_match_the_checkpoint(exported, mnist, tmp_path):
    run_dir, _ = exported
    out = tmp_path / "predictions.npz"
    child = subprocess.run(
        [sys.executable, "-c", RELOAD_IN_A_FRESH_PROCESS, str(run_dir / "export"), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    reloaded = np.load(out)
    expected = checkpoint_probabilities(run_dir, mnist.test.images)
    assert expected.shape == (10_000, 10)
    for name in ("frozen", "saved"):
        assert np.abs(reloaded[f"{name}_probabilities"] - expected).max() <= 1e-6
        np.testing.assert_array_equal(reloaded[f"{name}_classes"], expected.argmax(axis=1))


def test_the_frozen_graph_holds_constants_and_no_training_ops(exported):
    run_dir, _ = exported
    graph_def = v1.GraphDef.FromString((run_dir / "export" / "frozen_graph.pb").read_bytes())
    names = {node.name for node in graph_def.node}
    op_types = {node.op for node in graph_def.node}
    assert {"input/x", "hidden1/kernel", "output/probabilities", "output/predictions"} <= names
    assert not op_types & {"VarHandleOp", "ReadVariableOp", "AssignVariableOp"}
    assert [node.name for node in graph_def.node if node.op == "Placeholder"] == ["input/x"]
    assert not any(name.split("/")[0] in ("train", "loss", "accuracy", "global_step", "save") for name in names)
    kernel = next(node for node in graph_def.node if node.name == "hidden1/kernel")
    assert kernel.op == "Const"
    assert [d.size for d in kernel.attr["value"].tensor.tensor_shape.dim] == [784, 64]


def test_the_saved_model_has_a_serving_signature(exported):
    run_dir, _ = exported
    with v1.Session(graph=tf.Graph()) as sess:
        meta_graph = v1.saved_model.load(sess, [v1.saved_model.SERVING], str(run_dir / "export" / "saved_model"))
    signature = meta_graph.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert dict(signature.inputs)["x"].name == "input/x:0"
    assert {name: t.name for name, t in signature.outputs.items()} == {
        "probabilities": "output/probabilities:0",
        "class": "output/predictions:0",
    }


def test_eager_tf2_and_saved_model_cli_read_the_saved_model(exported, mnist, tmp_path):
    run_dir, _ = exported
    saved_model = run_dir / "export" / "saved_model"
    images = tmp_path / "images.npy"
    np.save(images, mnist.test.images)
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    # In a thread beside the eager child: each spends its ~4 s importing TensorFlow, so they overlap.
    with concurrent.futures.ThreadPoolExecutor() as pool:
        show = [cli, "show", "--all", "--dir", str(saved_model)]
        shown = pool.submit(subprocess.run, show, capture_output=True, text=True, timeout=120)
        child = subprocess.run(
            [sys.executable, "-c", EAGER_SIGNATURE_IN_A_FRESH_PROCESS, *map(str, (saved_model, images, tmp_path))],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    shown = shown.result()
    assert child.returncode == 0, child.stderr
    expected = checkpoint_probabilities(run_dir, mnist.test.images)
    assert np.abs(np.load(tmp_path / "probabilities.npy") - expected).max() <= 1e-6
    np.testing.assert_array_equal(np.load(tmp_path / "classes.npy"), expected.argmax(axis=1))

    assert shown.returncode == 0, shown.stderr
    signatures = dict(re.findall(r"signature_def\['(\w+)'\]:\n(.*?)Method name", shown.stdout, re.DOTALL))
    tensor = r"(input|output)s\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\(.*\))"
    assert {name: sorted(re.findall(tensor, text)) for name, text in signatures.items()} == {
        "serving_default": [
            ("input", "x", "DT_FLOAT", "(-1, 784)"),
            ("output", "class", "DT_INT64", "(-1)"),
            ("output", "probabilities", "DT_FLOAT", "(-1, 10)"),
        ],
        "layers": [
            ("input", "x", "DT_FLOAT", "(-1, 784)"),
            ("output", "hidden1", "DT_FLOAT", "(-1, 64)"),
            ("output", "output", "DT_FLOAT", "(-1, 10)"),
        ],
    }


def test_exporting_a_run_without_checkpoint_is_a_clear_error(short_run, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(f"{short_run.run_dir}/config.json", run_dir)
    with pytest.raises(GraphNNError, match="the run has no checkpoint to restore"):
        export_run(run_dir)
