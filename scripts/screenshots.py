"""Screenshots of TensorBoard's dashboards for a real short run, taken in headless Chromium, into docs/.

    apt-get update && apt-get install -y chromium     # Debian's Chromium, once
    python scripts/screenshots.py                     # two 2-epoch runs and the screenshots, a few minutes

It trains the default network and the five-layer MLP (so HParams has two runs to compare) into a new
temporary logdir, starts the installed TensorBoard on a free port, waits until it has
loaded the run, takes one screenshot per dashboard, and stops TensorBoard again.
"""
import argparse
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNS = (["--preset", "chapter2"], ["--preset", "five-layer"])
RUN_FLAGS = ["--epochs", "2", "--eval-every", "94", "--log-every", "20", "--histogram-every", "47"]
# Dashboard -> the part of TensorBoard's URL after '#'. Smoothing off, so the scalar lines are the logged values.
DASHBOARDS = {"scalars": "scalars&_smoothingWeight=0", "graphs": "graphs", "histograms": "histograms",
              "images": "images", "pr_curves": "pr_curves", "hparams": "hparams", "projector": "projector"}
WINDOW = "1400,1000"
RENDER_MILLISECONDS = 20000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(logdir):
    for preset in RUNS:
        subprocess.run([sys.executable, str(ROOT / "run.py"), *preset, *RUN_FLAGS, "--logdir", str(logdir)],
                       check=True, stdout=subprocess.DEVNULL)


def wait_until_loaded(port, minimum_runs=4, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=10) as response:
                if len(response.read().decode().split(",")) >= minimum_runs:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit("TensorBoard did not load the run in time.")


def screenshot(chromium, url, path, profile):
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    # The projector draws with WebGL: without a GPU, Chromium needs SwiftShader allowed.
                    "--enable-unsafe-swiftshader", "--hide-scrollbars", f"--user-data-dir={profile}",
                    f"--window-size={WINDOW}",
                    f"--virtual-time-budget={RENDER_MILLISECONDS}", f"--screenshot={path}", url],
                   check=True, capture_output=True, timeout=180)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where the PNGs go (default docs/)")
    parser.add_argument("--logdir", help="an existing logdir to show instead of training a new run")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("Chromium not found: apt-get update && apt-get install -y chromium")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        logdir = pathlib.Path(args.logdir or pathlib.Path(scratch) / "logs")
        if not args.logdir:
            train(logdir)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
                                   "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_loaded(port)
            for name, fragment in DASHBOARDS.items():
                path = out / f"tensorboard-{name}.png"
                screenshot(chromium, f"http://127.0.0.1:{port}/#{fragment}", path,
                           tempfile.mkdtemp(prefix="chromium-", dir=scratch))
                print(f"{path}")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
