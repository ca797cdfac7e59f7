"""The README's promises about set-up hold: CI runs its test command, the package ships MNIST."""

import ast
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def readme_commands():
    return re.findall(r"```bash\n(pip install [^\n]+)\n```", (ROOT / "README.md").read_text())


def test_readme_has_two_set_up_commands():
    install_and_run, install_and_test = readme_commands()[:2]
    assert install_and_run.endswith("python run.py")
    assert "pytest" in install_and_test


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = readme_commands()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


@pytest.mark.parametrize("ruff", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_the_code_passes_the_linter_and_the_formatter(ruff):
    # ruff's rules and line length are in pyproject.toml; the test command is what CI runs, so ruff runs there too.
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *ruff, "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_declares_its_mnist_files():
    setup_cfg = (ROOT / "setup.cfg").read_text()
    assert "mnist/*.gz" in setup_cfg and "mnist/SHA256SUMS" in setup_cfg
    assert "tensorboard" in setup_cfg


def layout_order():
    """The graph_nn modules in the order of the README's layout list (its indented lines, first column)."""
    block = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("```")[1]
    files = [line.strip().split("  ")[0] for line in block.splitlines() if line.startswith("  ")]
    return [name for column in files for name in re.findall(r"(\w+)\.py", column)]


def imported_modules(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("graph_nn"):
            names |= {alias.name for alias in node.names} if node.module == "graph_nn" else {node.module.split(".")[1]}
    return names


def test_modules_import_only_from_the_modules_above_them_in_the_readme():
    order = layout_order()
    modules = {path.stem: path for path in (ROOT / "graph_nn").glob("*.py") if path.stem != "__init__"}
    assert sorted(order) == sorted(modules), "the README's layout lists every module once"
    for position, name in enumerate(order):
        above = set(order[:position])
        assert imported_modules(modules[name]) <= above, f"{name} imports {imported_modules(modules[name]) - above}"
