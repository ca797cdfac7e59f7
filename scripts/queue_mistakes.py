"""The classic mistakes of TF1's queue runners, measured on --input queue's own pipeline (docs/idioms.md quotes
its output):

    python scripts/queue_mistakes.py

the runners never started (the train step's dequeue waits for a batch nobody computes), and never stopped (the
runner's thread outlives the loop: it keeps the process from exiting, or dies with a traceback when the session
is closed under it); then the right way, graph_nn's: a Coordinator asked to stop, and the threads joined.
"""

import subprocess
import sys
import threading
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from graph_nn.core.config import make_config  # noqa: E402
from graph_nn.data.batches import BatchSchedule  # noqa: E402
from graph_nn.data.dataset import load_dataset  # noqa: E402
from graph_nn.graph.input_pipelines import QueuePipeline, run_feed  # noqa: E402
from graph_nn.graph.model import build_graph  # noqa: E402

v1 = tf.compat.v1
STEPS = 100
WAIT_MS = 3000  # how long the dequeue of mistake 1 is given before it is called hung
EXIT_LIMIT = 20  # seconds the child of mistake 2 is given to exit after its last step


def session_with_queue(dataset):
    """(session, model, pipeline): mlp512's graph on the queue pipeline, its data loaded and its steps queued,
    but no runner started."""
    config = make_config("chapter2", steps=STEPS, input="queue")
    schedule = BatchSchedule(config, len(dataset.train))
    pipeline = QueuePipeline(schedule.total_steps)
    model = build_graph(config, pipeline=pipeline)
    with model.graph.as_default():
        init = v1.global_variables_initializer()
    sess = v1.Session(graph=model.graph)
    sess.run(init)
    # What QueuePipeline.running does before it starts the runner.
    feed = run_feed(schedule, 0, pipeline.feeds["indices"], pipeline.feeds["offsets"])
    feed.update({pipeline.feeds["images"]: dataset.train.images, pipeline.feeds["labels"]: dataset.train.onehot})
    sess.run(pipeline.load, feed)
    sess.run(pipeline.fill_steps, {pipeline.step_numbers: np.arange(STEPS)})
    return sess, model, pipeline


def never_started(dataset):
    sess, model, _ = session_with_queue(dataset)
    start = time.perf_counter()
    try:
        sess.run(model.train_op, options=v1.RunOptions(timeout_in_ms=WAIT_MS))
    except tf.errors.DeadlineExceededError:
        waited = time.perf_counter() - start
        print(f"runners never started: the first train step still waiting after {waited:.1f} s, stopped there by")
        print("  RunOptions(timeout_in_ms); without one it waits forever")
    sess.close()


def never_stopped(dataset):
    """Run in a child process: train, then leave without asking the runner to stop."""
    sess, model, pipeline = session_with_queue(dataset)
    pipeline.runner.create_threads(sess, start=True)  # not daemon threads, QueueRunner's default
    for _ in range(STEPS // 2):
        sess.run(model.train_op)
    print("last step done", flush=True)


def closed_under_it(dataset):
    sess, model, pipeline = session_with_queue(dataset)
    threads = pipeline.runner.create_threads(sess, start=True)
    for _ in range(STEPS // 2):
        sess.run(model.train_op)
    sess.close()
    for thread in threads:
        thread.join(timeout=EXIT_LIMIT)
    print("session closed under the runner: its thread died on 'Enqueue operation was cancelled' (a traceback")
    print(f"  on stderr), threads alive after: {sum(t.is_alive() for t in threads)}")


def the_right_way(dataset):
    sess, model, pipeline = session_with_queue(dataset)
    coordinator = v1.train.Coordinator()
    threads = pipeline.runner.create_threads(sess, coord=coordinator, daemon=True, start=True)
    for _ in range(STEPS // 2):
        sess.run(model.train_op)
    start = time.perf_counter()
    coordinator.request_stop()
    coordinator.join(threads, stop_grace_period_secs=EXIT_LIMIT)
    print(
        f"Coordinator.request_stop() and join(), half-way through the steps: stopped in "
        f"{time.perf_counter() - start:.3f} s, threads alive after: {sum(t.is_alive() for t in threads)}"
    )
    sess.close()


def main():
    dataset = load_dataset()
    if sys.argv[1:] == ["--never-stop"]:
        never_stopped(dataset)
        return
    never_started(dataset)
    child = subprocess.Popen([sys.executable, __file__, "--never-stop"], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "last step done"
    try:
        child.wait(timeout=EXIT_LIMIT)
        print(f"runners never stopped: the process exited anyway (status {child.returncode})")
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        print(f"runners never stopped: the script's last line ran, and {EXIT_LIMIT} s later the process had not")
        print("  exited (the runner's thread waits for room in the full queue, and Python waits for it): killed")
    closed_under_it(dataset)
    the_right_way(dataset)
    print(f"threads of this process now: {threading.active_count()}")


if __name__ == "__main__":
    main()
