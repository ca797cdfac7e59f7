import errno
import io
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from graph_nn.core.config import make_config
from graph_nn.data.dataset import load_dataset
from graph_nn.training.runs import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def mnist():
    return load_dataset()


@pytest.fixture(scope="session")
def short_run(mnist, tmp_path_factory):
    """A 300-step mlp64 run that logs and checkpoints often: the subject of the summary/checkpoint tests."""
    config = make_config("chapter2", model="mlp64", steps=300, eval_every=100, log_every=20, histogram_every=100)
    logdir = tmp_path_factory.mktemp("logs")
    return train(config, mnist, logdir=logdir, out=io.StringIO(), report=False)


# run.py as a user starts it, then the list of the heavy modules it imported, and run.py's exit status
# (`python -c IMPORTED_AFTER ARGS`).
IMPORTED_AFTER = textwrap.dedent("""
    import runpy, sys
    sys.argv = ["run.py"] + sys.argv[1:]
    code = 0
    try:
        runpy.run_path("run.py", run_name="__main__")
    except SystemExit as e:
        code = e.code
    heavy = sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "keras"})
    print("exit", code, "imported", ",".join(heavy) or "nothing heavy", file=sys.stderr)
    sys.exit(code)
""")


def refused(*args, env=None, preexec_fn=None):
    """run.py ARGS refused: its one sentence, after checking exit code 2, no traceback and no TensorFlow."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORTED_AFTER, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        preexec_fn=preexec_fn,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert lines.pop() == "exit 2 imported nothing heavy", result.stderr
    assert len(lines) == 1 and lines[0].startswith("graph-nn: error: "), result.stderr
    return lines[0].removeprefix("graph-nn: error: ")


def run_cli(*args, cwd=None, timeout=300):
    """`python run.py ARGS` in a child process, as a user types it."""
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "run.py"), *map(str, args)],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def exported(short_run, tmp_path_factory):
    """A copy of the short run, exported: what `serve` and its page are tested on."""
    from graph_nn.core.run_dir import RunDir
    from graph_nn.reports.export import export_run

    run_dir = RunDir(tmp_path_factory.mktemp("serve") / "run")
    shutil.copytree(short_run.run_dir, run_dir)
    export_run(run_dir)
    return run_dir


@pytest.fixture(scope="session")
def reported_run(short_run, mnist):
    """short_run after the end-of-run report, pictures and TensorBoard extras, as `python run.py` makes them."""
    from graph_nn.reports.evaluate import report_run

    printed = io.StringIO()
    evaluation = report_run(short_run.run_dir, mnist, out=printed, tensorboard=True)
    return evaluation, printed.getvalue()


def graphs_plugin_over(logdir):
    """TensorBoard's Graphs plugin reading logdir, as `tensorboard --logdir` builds it: what the Graph tab is served."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.graph import graphs_plugin

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    return graphs_plugin.GraphsPlugin(base_plugin.TBContext(logdir=logdir, data_provider=provider))


@pytest.fixture
def small_disk(tmp_path):
    """A 12 MB tmpfs (the machine that misbehaves): room for a small run and its export, and one that fill() fills
    in an instant."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", disk], capture_output=True, text=True)
    if mounted.returncode:  # root in a container without CAP_SYS_ADMIN
        pytest.skip(f"mounting a tmpfs is refused here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        busy = subprocess.run(["umount", disk], capture_output=True).returncode
        if busy:  # a file the test left open: the mount is detached all the same, and the test fails
            subprocess.run(["umount", "--lazy", disk], check=True)
        assert not busy, f"{disk} was still in use at the end of the test"


@pytest.fixture
def read_only(tmp_path):
    """(a directory, the same directory read-only): a bind mount made read-only, as a read-only file system is."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    writable, mount = tmp_path / "writable", tmp_path / "read-only"
    writable.mkdir()
    mount.mkdir()
    bound = subprocess.run(["mount", "--bind", writable, mount], capture_output=True, text=True)
    if bound.returncode:  # root in a container without CAP_SYS_ADMIN
        pytest.skip(f"a bind mount is refused here: {bound.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", mount], check=True, capture_output=True)
        yield writable, mount
    finally:
        subprocess.run(["umount", mount], check=True)


def fill(disk):
    """Writes a ballast file on disk until the file system refuses with ENOSPC; returns its path."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError) as refused:
            while True:
                os.write(fd, bytes(1 << 16))
    finally:
        os.close(fd)
    assert refused.value.errno == errno.ENOSPC and os.statvfs(disk).f_bavail == 0
    return ballast
