"""The whole `python run.py` against the Keras script a user would write, as fresh processes, wall clock.

    python scripts/whole_run.py [--repeats 5] [RUN.PY FLAGS, e.g. --steps-per-run 50]

Each repeat runs `python run.py` (the default chapter2 preset: 5 epochs, report, pictures and TensorBoard
extras included; with the flags given) and `python scripts/keras_article000.py` (article 000: the same
network, fit then evaluate) one after the other, taking turns so that a busy machine slows both alike, and
prints the median wall times and their ratio.
"""

import argparse
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIMIT = 600  # seconds a single process may take


def wall_seconds(command):
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=LIMIT
    )
    if done.returncode:
        last_line = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        sys.exit(f"{' '.join(command[1:])} failed: {last_line}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each (default 5); medians are compared")
    args, run_flags = parser.parse_known_args()
    times = {"graph": [], "keras": []}
    with tempfile.TemporaryDirectory() as logdir:
        commands = {
            "graph": [sys.executable, "run.py", "--logdir", logdir, *run_flags],
            "keras": [sys.executable, "scripts/keras_article000.py"],
        }
        for repeat in range(1, args.repeats + 1):
            for name, command in commands.items():
                times[name].append(wall_seconds(command))
            print(
                f"repeat {repeat}: python run.py {times['graph'][-1]:.1f} s, "
                f"keras_article000.py {times['keras'][-1]:.1f} s",
                flush=True,
            )
    graph, keras = statistics.median(times["graph"]), statistics.median(times["keras"])
    print(
        f"median wall time: {' '.join(['python run.py', *run_flags])} {graph:.1f} s, Keras script {keras:.1f} s: "
        f"graph mode is {keras / graph:.2f}x as fast"
    )


if __name__ == "__main__":
    main()
