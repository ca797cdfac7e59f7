"""The README's promises about set-up hold: CI runs its test command, the package ships MNIST."""

import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

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


def test_the_packages_keep_their_layers():
    # The contracts are in pyproject.toml: each package imports only from the packages below it, and core and data
    # import no TensorFlow.  import-linter reads the imports the way Python resolves them, lazy ones included.
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_files_the_dockerfile_copies_build_the_package_with_its_mnist(tmp_path):
    """The image's `pip install .` (no Docker on these machines): a wheel built from exactly the files the
    Dockerfile copies holds every module and the MNIST files, so `python -m graph_nn` runs in a pod."""
    copies = re.findall(r"^COPY (.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    context = tmp_path / "context"
    for name in " ".join(copies).split():
        source = ROOT / name
        target = context / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "out", "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "out").glob("graph_nn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(path.relative_to(ROOT)) for path in (ROOT / "graph_nn").rglob("*.py")}
    assert modules <= names
    assert {f"graph_nn/data/mnist/{path.name}" for path in (ROOT / "graph_nn" / "data" / "mnist").iterdir()} <= names
