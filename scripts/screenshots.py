"""Screenshots of TensorBoard's dashboards for a real short run, taken in headless Chromium, into docs/.

    apt-get update && apt-get install -y chromium     # Debian's Chromium, once
    python scripts/screenshots.py                     # two 2-epoch runs and the screenshots, a few minutes
    python scripts/screenshots.py --profile-python VENV/bin/python   # ... and the Profile tab

It trains the default network and the five-layer MLP (so HParams has two runs to compare) into a new
temporary logdir, starts the installed TensorBoard on a free port, waits until it has
loaded the run, takes one screenshot per dashboard, and stops TensorBoard again.  Two more runs feed the
debugging tabs: one that diverges under --debug-dump (Debugger V2, on the run's dump directory) and one with
--profile-steps (Profile, served by a TensorBoard that has the profile plugin: a virtualenv with
`pip install -e ".[profile]"`; without --profile-python that screenshot is skipped).
"""

import argparse
import contextlib
import gzip
import json
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from page_screenshot import CHROMIUM_FLAGS  # this script's own folder, where `python scripts/screenshots.py` runs

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNS = (["--preset", "chapter2"], ["--preset", "five-layer"])
RUN_FLAGS = ["--epochs", "2", "--eval-every", "94", "--log-every", "20", "--histogram-every", "47"]
# Dashboard -> the part of TensorBoard's URL after '#'. Smoothing off, so the scalar lines are the logged values.
DASHBOARDS = {
    "scalars": "scalars&_smoothingWeight=0",
    "graphs": "graphs",
    "histograms": "histograms",
    "images": "images",
    "pr_curves": "pr_curves",
    "hparams": "hparams",
    "projector": "projector",
}
DIVERGING_RUN = ["--model", "mlp64", "--optimizer", "sgd", "--lr", "1e8", "--steps", "50", "--debug-dump"]
PROFILED_RUN = ["--preset", "chapter2", "--steps", "120", "--eval-every", "120", "--profile-steps", "100,110"]
WINDOW = "1400,1000"
RENDER_MILLISECONDS = 20000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(logdir):
    for preset in RUNS:
        subprocess.run(
            [sys.executable, str(ROOT / "run.py"), *preset, *RUN_FLAGS, "--logdir", str(logdir)],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def wait_until_loaded(port, route="/data/runs", minimum_runs=4, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{route}", timeout=10) as response:
                body = response.read()
                if response.headers.get("Content-Encoding") == "gzip":  # the profile plugin's answers are
                    body = gzip.decompress(body)
                if len(json.loads(body)) >= minimum_runs:
                    return
        except (OSError, ValueError):
            pass
        time.sleep(1)
    raise SystemExit(f"TensorBoard did not load the run in time ({route}).")


@contextlib.contextmanager
def tensorboard(command, logdir, route="/data/runs", minimum_runs=4):
    """A TensorBoard on a free port, once `route` lists minimum_runs runs; stopped on leaving."""
    port = free_port()
    server = subprocess.Popen(
        [*command, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_loaded(port, route, minimum_runs)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=60)


def screenshot(chromium, url, path, profile):
    subprocess.run(
        [
            chromium,
            "--headless",
            *CHROMIUM_FLAGS,
            # The projector draws with WebGL: without a GPU, Chromium needs SwiftShader allowed.
            "--enable-unsafe-swiftshader",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW}",
            f"--virtual-time-budget={RENDER_MILLISECONDS}",
            f"--screenshot={path}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where the PNGs go (default docs/)")
    parser.add_argument("--logdir", help="an existing logdir to show instead of training a new run")
    parser.add_argument("--profile-python", help="the python of a virtualenv with the profile plugin installed")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("Chromium not found: apt-get update && apt-get install -y chromium")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:

        def take(name, port, fragment):
            path = out / f"tensorboard-{name}.png"
            screenshot(
                chromium,
                f"http://127.0.0.1:{port}/#{fragment}",
                path,
                tempfile.mkdtemp(prefix="chromium-", dir=scratch),
            )
            print(f"{path}")

        logdir = pathlib.Path(args.logdir or pathlib.Path(scratch) / "logs")
        if not args.logdir:
            train(logdir)
        with tensorboard([sys.executable, "-m", "tensorboard.main"], logdir) as port:
            for name, fragment in DASHBOARDS.items():
                take(name, port, fragment)
        debugging = pathlib.Path(scratch) / "debugging"
        # This run diverges on purpose (exit code 3): the dump shows where its NaN appeared.
        subprocess.run(
            [sys.executable, str(ROOT / "run.py"), *DIVERGING_RUN, "--logdir", str(debugging)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        (dump,) = debugging.glob("*/debugger_v2")
        with tensorboard([sys.executable, "-m", "tensorboard.main"], dump, "/data/plugin/debugger-v2/runs", 1) as port:
            take("debugger_v2", port, "debugger-v2")
        if args.profile_python:
            profiled = pathlib.Path(scratch) / "profiled"
            subprocess.run(
                [sys.executable, str(ROOT / "run.py"), *PROFILED_RUN, "--logdir", str(profiled)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            with tensorboard(
                [args.profile_python, "-m", "tensorboard.main"], profiled, "/data/plugin/profile/runs", 1
            ) as port:
                take("profile", port, "profile")


if __name__ == "__main__":
    main()
