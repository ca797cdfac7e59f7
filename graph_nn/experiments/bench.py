"""`python run.py bench`: how fast graph mode trains and predicts, against Keras and against the hardware.

Every figure is a median over repeats after a warm-up, and every comparison is a ratio of two figures
measured in this same process, so a busy machine slows both sides alike.
"""

import contextlib
import dataclasses
import itertools
import math
import os
import pathlib
import statistics
import tempfile
import time

import tensorflow as tf

from graph_nn.core.config import HIDDEN_UNITS, INPUTS, RECIPES, article_preset, make_config, recipe_name_for
from graph_nn.graph import batched
from graph_nn.graph.determinism import deterministic_ops
from graph_nn.graph.sessions import session_config
from graph_nn.graph.tfrecords import load_records, write_records
from graph_nn.internals.inspect_graph import layer_products, training_flops
from graph_nn.observe.summaries import Writers
from graph_nn.reports.report import reported
from graph_nn.training.loop import Trainer
from graph_nn.training.runs import train

v1 = tf.compat.v1
NO_SUMMARIES = 10**9  # a summary cadence no benchmark reaches
LOOP_STEPS = (10, 50)  # --steps-per-run values measured against feed_dict's one step per Session.run
PREDICT_BATCHES = (500, batched.EVAL_BATCH_SIZE, 10_000)  # graph prediction's batch sizes measured


def input_key(name):
    """The contender of --input `name`: feed's is the feed_dict step without summaries, measured once."""
    return "graph_feed_no_summaries" if name == "feed" else f"graph_input_{name}"


@dataclasses.dataclass
class Settings:
    steps: int = 200  # timed steps per repeat
    repeats: int = 5
    warmup: int = 50


# ---- the contenders: each a function that trains (or predicts) n more steps -----------------------


@contextlib.contextmanager
def graph_trainer(config, dataset, inter_op_threads=None):
    """A Trainer with an initialized session and writers in a throw-away run directory.

    inter_op_threads replaces TensorFlow's default (one per core) for the session's pool of threads that
    run independent ops side by side; each op's kernel keeps its own intra-op threads.
    """
    with tempfile.TemporaryDirectory() as run_dir, open(os.devnull, "w") as silent:
        trainer = Trainer(config, dataset, out=silent)
        if inter_op_threads:
            settings = session_config(config.rewrites_off, config.xla)
            settings.inter_op_parallelism_threads = inter_op_threads
            session = v1.Session(graph=trainer.model.graph, config=settings)
        else:
            session = trainer.session()
        # closing(), not `with Session`: that would also make the graph the default one, and Keras,
        # measured while these sessions are open, needs eager mode.
        with (
            contextlib.closing(session) as sess,
            contextlib.closing(Writers(run_dir, trainer.model.graph)) as writers,
        ):
            trainer.initialize(sess)
            yield trainer, sess, writers


@contextlib.contextmanager
def trainer_steps(config, dataset, inter_op_threads=None):
    """The real training step, Trainer.train_step, summaries at config's cadence, its batch from config.input:
    feed_dict, or the pipeline, started as a run starts it for the schedule's config.steps steps (enough for
    every step timed)."""
    with graph_trainer(config, dataset, inter_op_threads) as (trainer, sess, writers):
        pipeline = trainer.pipeline
        running = pipeline.running(sess, trainer.schedule, 0, trainer.dataset.train) if pipeline else None
        with running or contextlib.nullcontext():
            steps = itertools.count(1)

            def train_steps(n):
                # Under op determinism, as in a real run; switched per call because it is process-wide
                # and Keras, measured in between, must not run under it.
                with deterministic_ops():
                    for _ in range(n):
                        trainer.train_step(sess, next(steps), writers)

            yield train_steps


@contextlib.contextmanager
def in_graph_loop_steps(config, dataset):
    """The in-graph loop (--steps-per-run K): Trainer.train_steps over runs of K steps, the last one shorter
    when n is not a multiple of K."""
    with graph_trainer(config, dataset) as (trainer, sess, writers):
        next_step = 1

        def train_steps(n):
            nonlocal next_step
            with deterministic_ops():
                for first in range(next_step, next_step + n, config.steps_per_run):
                    last = min(first + config.steps_per_run, next_step + n) - 1
                    for _ in trainer.train_steps(sess, first, last, writers):
                        pass
            next_step += n

        yield train_steps


@contextlib.contextmanager
def records_of(dataset):
    """dataset written as .tfrecords into a temporary directory and read back: the Dataset a tfrecord pipeline
    trains on, its source that directory, whose files the pipeline reads."""
    with tempfile.TemporaryDirectory() as records_dir:
        write_records(dataset, records_dir, validation_size=0)
        yield load_records(records_dir)


def keras_twin(config, split):
    """The compiled Keras twin of config's model, and split's images and labels as its article feeds them."""
    from graph_nn.crosscheck import keras_models

    recipe = RECIPES[recipe_name_for(config)]
    keras_model = keras_models.compile_model(keras_models.build_model(config.model, seed=config.seed), recipe, config)
    return keras_model, keras_models.images_for(config.model, split.images), keras_models.labels_for(recipe, split)


def keras_fit_steps(config, dataset):
    """Keras `fit` on the twin model, the articles' way (arrays, batch_size=...): one fit call per run(n)."""
    keras_model, images, labels = keras_twin(config, dataset.train)
    b = config.batch_size

    def train_steps(n):
        keras_model.fit(images[: n * b], labels[: n * b], batch_size=b, epochs=1, verbose=0)

    return train_steps


@contextlib.contextmanager
def graph_single_runs(config, dataset):
    """Prediction on the test images at each of PREDICT_BATCHES, and the training loop's histogram run."""
    with graph_trainer(config, dataset) as (trainer, sess, _):
        images = dataset.test.images

        def predict(batch_size):
            return lambda: batched.probabilities(sess, trainer.model, images, batch_size)

        feed = trainer.schedule.feed(trainer.model, dataset.train, 1)

        def histogram_run():
            with deterministic_ops():  # as in a real run
                sess.run(trainer.histograms, feed)

        yield {**{f"graph_predict_10k_b{b}": predict(b) for b in PREDICT_BATCHES}, "histogram_run": histogram_run}


def keras_predict(config, dataset):
    model, images, _ = keras_twin(config, dataset.test)
    return lambda: model.predict(images, batch_size=batched.EVAL_BATCH_SIZE, verbose=0)


def interleaved_seconds(contenders, settings, steps=None):
    """Median seconds of contender(steps) (or contender()) for each, the contenders taking turns in every repeat.

    Taking turns spreads whatever else the machine does over all of them alike.
    """
    for contender in contenders.values():
        contender(settings.warmup) if steps else contender()
    times = {name: [] for name in contenders}
    for _ in range(settings.repeats):
        for name, contender in contenders.items():
            start = time.perf_counter()
            contender(steps) if steps else contender()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


# ---- the hardware ------------------------------------------------------------------------------


def run_matmuls(shapes, settings, runs_per_repeat=1):
    """Median seconds of one Session.run doing every (m, k, n) product in `shapes` once."""
    graph = tf.Graph()
    with graph.as_default():
        products = []
        for m, k, n in shapes:
            a = tf.Variable(tf.random.normal([m, k]))
            b = tf.Variable(tf.random.normal([k, n]))
            # Reduce to a scalar so the fetch costs nothing next to the product.
            products.append(tf.reduce_sum(tf.matmul(a, b)))
        total = tf.add_n(products)
        init = v1.global_variables_initializer()
    with v1.Session(graph=graph, config=session_config()) as sess:
        sess.run(init)
        sess.run(total)

        def run():
            for _ in range(runs_per_repeat):
                sess.run(total)

        return interleaved_seconds({"matmuls": run}, settings)["matmuls"] / runs_per_repeat


def matmul_peak_flops(settings, size=2048):
    return 2 * size**3 / run_matmuls([(size, size, size)], settings, runs_per_repeat=5)


def mlp_step_matmuls(model, batch_size):
    """The (m, k, n) products of one MLP training step, those training_flops counts: forward, weight gradients,
    input gradients but the first layer's."""
    shapes = []
    for i, p in enumerate(layer_products(model)):
        shapes.append((batch_size, p.fan_in, p.fan_out))
        shapes.append((p.fan_in, batch_size, p.fan_out))
        if i:
            shapes.append((batch_size, p.fan_out, p.fan_in))
    return shapes


def matmul_floor_seconds(config, settings):
    return run_matmuls(mlp_step_matmuls(config.model, config.batch_size), settings, runs_per_repeat=50)


# ---- logging cost ------------------------------------------------------------------------------


def event_bytes_of_default_run(dataset):
    """Bytes of event files a default `python run.py` writes (train/ and validation/)."""
    with tempfile.TemporaryDirectory() as logdir, open(os.devnull, "w") as silent:
        result = train(make_config(), dataset, logdir=logdir, out=silent, report=False)
        return sum(p.stat().st_size for p in pathlib.Path(result.run_dir).rglob("events.out.tfevents.*"))


# ---- the report ---------------------------------------------------------------------------------


def bench_model(name, dataset, records, settings, peak):
    """One model's row; records: dataset as .tfrecords (records_of), for the tfrecord input."""
    config = make_config(article_preset(name))
    silent = dataclasses.replace(config, log_every=NO_SUMMARIES, histogram_every=NO_SUMMARIES)
    # The pipelines are started for the schedule's steps: every step timed, the warm-up's included.
    timed_steps = settings.warmup + settings.steps * settings.repeats
    b = config.batch_size
    with contextlib.ExitStack() as stack:
        training = {
            "graph_feed": stack.enter_context(trainer_steps(config, dataset)),
            "graph_feed_no_summaries": stack.enter_context(trainer_steps(silent, dataset)),
            "graph_one_inter_op_thread": stack.enter_context(trainer_steps(silent, dataset, inter_op_threads=1)),
            **{
                input_key(name): stack.enter_context(
                    trainer_steps(
                        dataclasses.replace(silent, input=name, steps=timed_steps),
                        records if name == "tfrecord" else dataset,
                    )
                )
                for name in INPUTS[1:]
            },
            **{
                f"graph_loop_k{k}": stack.enter_context(
                    in_graph_loop_steps(dataclasses.replace(silent, steps_per_run=k), dataset)
                )
                for k in LOOP_STEPS
            },
            # The CLI has put XLA's CPU flag in the environment, which changes nothing for the other sessions.
            "graph_xla": stack.enter_context(trainer_steps(dataclasses.replace(silent, xla=True), dataset)),
            "keras_fit": keras_fit_steps(config, dataset),
        }
        seconds = interleaved_seconds(training, settings, settings.steps)
        single_runs = {
            **stack.enter_context(graph_single_runs(config, dataset)),
            "keras_predict_10k": keras_predict(config, dataset),
        }
        single_run_seconds = interleaved_seconds(single_runs, settings)
    row = dict(model=name, batch_size=b, histogram_every=config.histogram_every)
    row.update({f"{key}_s": value / settings.steps for key, value in seconds.items()})
    row.update({f"{key}_s": value for key, value in single_run_seconds.items()})
    row["graph_predict_10k_s"] = row[f"graph_predict_10k_b{batched.EVAL_BATCH_SIZE}_s"]
    row["seconds_per_epoch"] = row["graph_feed_s"] * math.ceil(len(dataset.train) / b)
    row["training_flops_per_step"] = training_flops(name, b)
    row["achieved_flops"] = row["training_flops_per_step"] / row["graph_feed_s"]
    row["fraction_of_peak"] = row["achieved_flops"] / peak
    if name in HIDDEN_UNITS:
        row["matmul_floor_s"] = matmul_floor_seconds(config, settings)
    return row


@reported
def run_bench(dataset, settings, models):
    """What is measured as it starts, then the table; the outcome is the figures (the CLI writes them to --json)."""
    peak = matmul_peak_flops(settings)
    yield f"fp32 matmul peak (2048x2048, this process): {peak / 1e9:.1f} GFLOP/s"
    rows = []
    with records_of(dataset) as records:
        for name in models:
            yield f"measuring {name} ..."
            rows.append(bench_model(name, dataset, records, settings, peak))
    figures = dict(
        machine=machine_description(),
        settings=dataclasses.asdict(settings),
        matmul_peak_flops=peak,
        models=rows,
        default_run_event_bytes=event_bytes_of_default_run(dataset),
    )
    yield format_table(figures)
    return figures


def machine_description():
    import platform

    cpu_names = (
        [
            line.split(":", 1)[1].strip()
            for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        if pathlib.Path("/proc/cpuinfo").exists()
        else []
    )
    return dict(
        cpu=cpu_names[0] if cpu_names else platform.machine(),
        cores=os.cpu_count(),
        tensorflow=tf.__version__,
        python=platform.python_version(),
    )


def format_table(figures):
    lines = [f"{'':34}" + "".join(f"{r['model'] + ' b' + str(r['batch_size']):>16}" for r in figures["models"])]

    def line(label, values):
        lines.append(f"{label:34}" + "".join(f"{v:>16}" for v in values))

    rows = figures["models"]

    def examples_per_second(seconds, row):
        return f"{row['batch_size'] / seconds:,.0f}"

    line("graph feed_dict (examples/s)", [examples_per_second(r["graph_feed_s"], r) for r in rows])
    for name in INPUTS:  # no summaries; each also as a ratio to feed
        line(
            f"--input {name} (ex/s, vs feed)",
            [
                f"{examples_per_second(r[f'{input_key(name)}_s'], r)} "
                f"({r['graph_feed_no_summaries_s'] / r[f'{input_key(name)}_s']:.2f}x)"
                for r in rows
            ],
        )
    line("Keras fit (examples/s)", [examples_per_second(r["keras_fit_s"], r) for r in rows])
    line("graph / Keras fit", [f"{r['keras_fit_s'] / r['graph_feed_s']:.2f}x" for r in rows])
    line(
        f"graph, K={LOOP_STEPS[-1]} loop / Keras fit",
        [f"{r['keras_fit_s'] / r[f'graph_loop_k{LOOP_STEPS[-1]}_s']:.2f}x" for r in rows],
    )
    line("seconds per epoch (graph)", [f"{r['seconds_per_epoch']:.2f}" for r in rows])
    line("summaries cost", [f"{r['graph_feed_s'] / r['graph_feed_no_summaries_s'] - 1:+.1%}" for r in rows])
    line("histogram run (ms)", [f"{r['histogram_run_s'] * 1e3:.1f}" for r in rows])
    line(
        "  spread over the steps between two",
        [f"{r['histogram_run_s'] / (r['histogram_every'] * r['graph_feed_no_summaries_s']):+.1%}" for r in rows],
    )
    for k in LOOP_STEPS:
        line(
            f"in-graph loop K={k} / feed_dict",
            [f"{r['graph_feed_no_summaries_s'] / r[f'graph_loop_k{k}_s']:.2f}x" for r in rows],
        )
    line("XLA / no XLA (feed_dict)", [f"{r['graph_feed_no_summaries_s'] / r['graph_xla_s']:.2f}x" for r in rows])
    line(
        "1 inter-op thread / default",
        [f"{r['graph_feed_no_summaries_s'] / r['graph_one_inter_op_thread_s']:.2f}x" for r in rows],
    )
    line(
        "step / matmul floor",
        [f"{r['graph_feed_s'] / r['matmul_floor_s']:.2f}x" if "matmul_floor_s" in r else "-" for r in rows],
    )
    line(
        f"K={LOOP_STEPS[-1]} step / matmul floor",
        [
            f"{r[f'graph_loop_k{LOOP_STEPS[-1]}_s'] / r['matmul_floor_s']:.2f}x" if "matmul_floor_s" in r else "-"
            for r in rows
        ],
    )
    line(
        "achieved GFLOP/s (% of peak)", [f"{r['achieved_flops'] / 1e9:.1f} ({r['fraction_of_peak']:.0%})" for r in rows]
    )
    for b in PREDICT_BATCHES:
        line(f"predict 10k: graph, batch {b} (s)", [f"{r[f'graph_predict_10k_b{b}_s']:.3f}" for r in rows])
    line("predict 10k: Keras (s)", [f"{r['keras_predict_10k_s']:.3f}" for r in rows])
    line("predict graph / Keras", [f"{r['keras_predict_10k_s'] / r['graph_predict_10k_s']:.2f}x" for r in rows])
    lines.append(f"event files of a default run: {figures['default_run_event_bytes'] / 1e6:.2f} MB")
    return "\n".join(lines)
