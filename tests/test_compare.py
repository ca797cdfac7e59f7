"""`compare` as a user types it: one table, equal parameter counts, one-sentence errors."""

import re

import pytest

from tests.conftest import run_cli


def table_row(output, name):
    """The graph and Keras cells of a table row, each a mean and, over several seeds, a spread."""
    match = re.search(rf"^{name}\s+(\S+)(?: ± (\S+))?\s+(\S+)(?: ± (\S+))?$", output, re.MULTILINE)
    assert match, output
    return match.groups()


def test_compare_prints_one_side_by_side_table(tmp_path):
    result = run_cli("compare", "--model", "mlp64", "--epochs", "1", "--repeats", "2", "--logdir", tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"graph \(tf1\)\s+Keras \(chapter2\)", out)
    assert "mlp64, rmsprop lr 0.001, batch 128, 1 epochs, seeds 0-1 (means)" in out
    assert table_row(out, "parameters") == ("50,890", None, "50,890", None)
    graph_accuracy, graph_spread, keras_accuracy, keras_spread = map(float, table_row(out, "test accuracy"))
    assert graph_accuracy > 0.9 and keras_accuracy > 0.9
    assert 0 < graph_spread < 0.01 and 0 < keras_spread < 0.01  # two seeds, two different results
    for name in ("test loss", "seconds/epoch", "steps/s"):
        graph, _, keras, _ = table_row(out, name)
        assert float(graph) > 0 and float(keras) > 0
    per_seed = [float(d) for d in re.search(r"^per seed: (\S+), (\S+)$", out, re.MULTILINE).groups()]
    mean = float(re.search(r"graph - Keras: (\S+) percentage points", out).group(1))
    assert mean == pytest.approx(sum(per_seed) / 2, abs=0.011)
    assert abs(mean) < 2
    assert len(list(tmp_path.glob("mlp64-*/checkpoints/model.ckpt-*.index"))) == 2  # one evaluation per run, at the end


def test_compare_errors_are_one_sentence(tmp_path):
    for args, message in [
        (["--preset", "tf1"], "give --epochs instead of --steps"),
        (["--baseline", "article-9"], "unknown Keras baseline 'article-9'"),
    ]:
        result = run_cli("compare", *args, "--logdir", tmp_path)
        assert result.returncode == 2 and message in result.stderr
        assert "Traceback" not in result.stderr
