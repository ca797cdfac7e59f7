"""The supervisor of the sweep's runs and the cluster's tasks: real child processes, started, prefixed or logged,
asked to stop, killed after their grace, and gone when their supervisor is killed."""

import io
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from graph_nn.core import processes
from graph_nn.core.processes import Child, stop_all
from graph_nn.distributed import launcher
from tests.conftest import ROOT

LIMIT_S = 30
# Says it is ready once it ignores SIGINT and SIGTERM, then waits for the signal it cannot ignore.
STUBBORN = textwrap.dedent("""
    import signal, time
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    print('ready', flush=True)
    time.sleep(60)
""")
# Ends as a run asked to stop does: its own exit code, once it has had its say.
OBEDIENT = textwrap.dedent("""
    import signal, sys, time
    def stop(signum, frame):
        print('stopping', flush=True)
        sys.exit(130)
    signal.signal(signal.SIGINT, stop)
    print('ready', flush=True)
    time.sleep(60)
""")


def python(code):
    return [sys.executable, "-c", code]


def wait_until(condition, what, limit_s=LIMIT_S):
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"waited in vain for {what}"
        time.sleep(0.05)


def ready(child):
    """Whether the logged child has said it is ready (its command line, above, holds the word too)."""
    return "ready" in child.log.read_text().splitlines()


def ended(child, limit_s=LIMIT_S):
    wait_until(lambda: child.poll() is not None, f"{child.name} to end", limit_s)
    return child.returncode


def test_a_child_that_exits_says_so_and_its_output_comes_out_prefixed():
    out, err = io.StringIO(), io.StringIO()
    argv = python("import sys; print('one'); print('two'); sys.exit('bad input')")
    child = Child("worker 1", argv, 5, out=out, err=err)
    assert ended(child) == 1
    child.finish_output()
    assert out.getvalue() == "[worker 1] one\n[worker 1] two\n"
    assert err.getvalue() == "[worker 1] bad input\n"
    assert child.describe_end() == "worker 1 exited with 1"
    assert child.ended_at >= child.started and child.stop_requested_at is None


def test_a_logged_child_appends_its_command_line_and_both_outputs_to_its_file(tmp_path):
    log = tmp_path / "output.txt"
    argv = python("import sys; print('out', flush=True); print('err', file=sys.stderr)")
    for _ in range(2):
        assert ended(Child("run", argv, 5, log=log)) == 0
    assert log.read_text().splitlines() == [f"$ {shlex.join(argv)}", "out", "err"] * 2


def test_a_child_that_ignores_the_stop_request_is_killed_after_its_grace(tmp_path):
    child = Child("ps 0", python(STUBBORN), 1, log=tmp_path / "log")
    wait_until(lambda: ready(child), "the child to ignore SIGTERM")
    child.stop(signal.SIGTERM)
    assert child.poll() is None  # SIGTERM ignored, its grace not over
    assert ended(child) == -signal.SIGKILL
    assert child.ended_at - child.stop_requested_at >= 1
    assert child.describe_end() == "ps 0 was killed by SIGKILL"


def test_a_child_asked_to_stop_ends_in_its_own_way_within_its_grace():
    out = io.StringIO()
    child = Child("worker 0", python(OBEDIENT), LIMIT_S, out=out)
    wait_until(lambda: "ready" in out.getvalue(), "the child to catch SIGINT")
    child.stop(signal.SIGINT)
    child.stop(signal.SIGTERM)  # asked once: the second request is not sent
    assert ended(child) == 130
    child.finish_output()
    assert out.getvalue() == "[worker 0] ready\n[worker 0] stopping\n"


def test_stop_all_returns_once_every_child_has_ended_the_stubborn_one_killed_after_its_grace(tmp_path):
    stubborn = Child("stubborn", python(STUBBORN), 1, log=tmp_path / "stubborn")
    obedient = Child("obedient", python(OBEDIENT), LIMIT_S, log=tmp_path / "obedient")
    done = Child("done", python("pass"), LIMIT_S, log=tmp_path / "done")
    wait_until(lambda: all(ready(child) for child in (stubborn, obedient)), "both to be ready")
    ended(done)
    asked = time.monotonic()
    stop_all([stubborn, obedient, done], signal.SIGINT)
    assert 1 <= time.monotonic() - asked < 10
    assert (stubborn.returncode, obedient.returncode, done.returncode) == (-signal.SIGKILL, 130, 0)
    assert done.stop_requested_at is None  # it had ended: nothing to ask


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_the_children_of_a_killed_supervisor_end_too(tmp_path):
    """A supervisor killed with SIGKILL cannot pass anything on: the kernel sends its children SIGTERM."""
    supervisor = subprocess.Popen(
        python(
            "import sys, time; from graph_nn.core.processes import Child; "
            "argv = [sys.executable, '-c', 'import time; time.sleep(60)']; "
            f"child = Child('task', argv, 1, log={str(tmp_path / 'log')!r}, die_with_parent=True); "
            "print(child.process.pid, flush=True); time.sleep(60)"
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=processes.child_environment(),
    )
    pid = int(supervisor.stdout.readline())
    supervisor.kill()
    supervisor.wait(LIMIT_S)
    wait_until(lambda: gone(pid), "the orphaned child to end")


def gone(pid):
    """Whether the process has ended (a zombie waiting for its new parent to reap it counts)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in "ZX"
    except FileNotFoundError:
        return True


def test_the_launcher_ends_the_workers_of_a_failed_chief_then_its_ps_after_their_grace(tmp_path):
    """The launcher's rules on processes that stand in for its tasks: a chief that fails once worker 1 is ready
    to be told, worker 1 ending on its SIGINT, and a ps that waits until the launcher ends it."""
    ready_file = tmp_path / "worker 1 is ready"
    worker = OBEDIENT.replace("print('ready', flush=True)", f"open({str(ready_file)!r}, 'w').close()")
    chief = textwrap.dedent(f"""
        import os, sys, time
        deadline = time.monotonic() + {LIMIT_S}
        while not os.path.exists({str(ready_file)!r}) and time.monotonic() < deadline:
            time.sleep(0.05)
        sys.exit(3)
    """)
    out, err = io.StringIO(), io.StringIO()
    cluster = launcher.Cluster(
        {"ps 0": python("import time; time.sleep(60)"), "worker 0": python(chief), "worker 1": python(worker)}, out, err
    )
    cluster.wait()
    ps, chief, worker = (cluster.children[name] for name in ("ps 0", "worker 0", "worker 1"))
    assert (chief.returncode, worker.returncode, ps.returncode) == (3, 130, -signal.SIGTERM)
    assert out.getvalue() == "[worker 1] stopping\n"
    assert ps.stop_requested_at - worker.ended_at >= launcher.PS_GRACE_S
    failed = [child.describe_end() for child in cluster.failed()]
    assert failed == ["worker 0 exited with 3", "worker 1 exited with 130"]  # not the ps the launcher ended


def test_every_child_runs_in_a_session_of_its_own(tmp_path):
    """A Ctrl-C at the terminal reaches the supervisor alone, which decides what each child gets."""
    child = Child("run", python(STUBBORN), 1, log=tmp_path / "log")
    try:
        assert os.getpgid(child.process.pid) == child.process.pid != os.getpgid(0)
    finally:
        child.kill()
        ended(child)
