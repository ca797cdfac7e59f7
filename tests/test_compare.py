"""`compare` and `parity` as a user types them: one table, equal parameter counts, one-sentence errors."""
import re

from tests.conftest import run_cli


def table_row(output, name):
    match = re.search(rf"^{name}\s+(\S+)\s+(\S+)$", output, re.MULTILINE)
    assert match, output
    return match.groups()


def test_compare_prints_one_side_by_side_table(tmp_path):
    result = run_cli("compare", "--model", "mlp64", "--epochs", "1", "--logdir", tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"graph \(tf1\)\s+Keras \(chapter2\)", out)
    assert table_row(out, "parameters") == ("50,890", "50,890")
    graph_accuracy, keras_accuracy = map(float, table_row(out, "test accuracy"))
    assert graph_accuracy > 0.9 and keras_accuracy > 0.9
    assert abs(graph_accuracy - keras_accuracy) < 0.02
    assert all(float(v) > 0 for v in table_row(out, "test loss") + table_row(out, "seconds/epoch")
               + table_row(out, "steps/s"))
    assert f"{100 * (graph_accuracy - keras_accuracy):+.2f} percentage points" in out
    assert len(list(tmp_path.glob("mlp64-*/checkpoints/*.index"))) == 1  # one evaluation, at the end


def test_compare_errors_are_one_sentence(tmp_path):
    for args, message in [(["--preset", "tf1"], "give --epochs instead of --steps"),
                          (["--baseline", "article-9"], "unknown Keras baseline 'article-9'")]:
        result = run_cli("compare", *args, "--logdir", tmp_path)
        assert result.returncode == 2 and message in result.stderr
        assert "Traceback" not in result.stderr


def test_parity_command(tmp_path):
    result = run_cli("parity", "--model", "mlp5", "--images", "200", "--keras-steps", "20")
    assert result.returncode == 0, result.stderr
    assert re.search(r"mlp5\s+max \|logit difference\| \S+ \(tolerance 1e-05\), different predictions 0/200 - holds",
                     result.stdout)
