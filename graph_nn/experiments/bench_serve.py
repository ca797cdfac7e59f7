"""`python run.py bench --serve RUN_OR_EXPORT`: what answering over HTTP costs, against calling the graph in-process.

The server is the real command (`python -m graph_nn serve`) in a process of its own, one per repeat, and its
clients are those of TF Serving's REST API: N of them at once (the concurrency), each sending its next
:predict request as soon as the last is answered, in the row format, for one image or for a batch of 100.
In-process is this process calling the same SavedModel's signature the way the server does (graph_nn/serving/
server.py, Model.run), one call at a time.  Each measurement runs for a fixed time after a warm-up; the
requests bodies are encoded before it starts, so the clients spend their time waiting, not writing JSON.  The
clients and the server share this machine's cores, as they would on one host.  The configurations take turns
in each repeat, and the table gives the medians.
"""

import asyncio
import json
import statistics
import tempfile
import time

import numpy as np

from graph_nn.core.errors import GraphNNError
from graph_nn.experiments.bench import machine_description
from graph_nn.reports.report import reported
from graph_nn.serving.child import ServerProcess
from graph_nn.serving.server import PROBABILITY_ATOL, Model
from graph_nn.serving.source import saved_model_path

CONCURRENCY = (1, 8, 32)
BATCHES = (1, 100)
BODIES = 16  # distinct request bodies per batch size, sent in turn
REQUEST_TIMEOUT_S = 60


class Window:
    """The timed stretch of a measurement: the calls that end within `seconds` after the warm-up.  A caller none
    of whose calls ended in it goes on until one does, and the window stretches to its end: calls longer than
    the window (100 images to each of 32 clients on a busy machine) are timed too."""

    def __init__(self, now, warmup_s, seconds):
        self.start = now + warmup_s
        self.end = self.start + seconds
        self.last = self.end
        self.latencies = []

    def goes_on(self, now, timed):
        return now < self.end or not timed

    def timed(self, before, after, timed):
        """Whether the call from before to after counts (and then counted), for a caller with `timed` counted."""
        if after < self.start or (after >= self.end and timed):
            return False
        self.latencies.append(after - before)
        self.last = max(self.last, after)
        return True

    def figures(self, images_per_call):
        """Calls/s, images/s and the p50/p99 latency in ms of the calls timed."""
        seconds = self.last - self.start
        milliseconds = np.array(self.latencies) * 1e3
        return dict(
            requests_per_second=len(self.latencies) / seconds,
            images_per_second=len(self.latencies) * images_per_call / seconds,
            p50_ms=float(np.percentile(milliseconds, 50)),
            p99_ms=float(np.percentile(milliseconds, 99)),
        )


def in_process(model, batches, seconds, warmup_s):
    """The figures of model's serving_default called on batches in turn, one call at a time."""
    window = Window(time.perf_counter(), warmup_s, seconds)
    calls = timed = 0
    while window.goes_on(before := time.perf_counter(), timed):
        model.run(model.default, batches[calls % len(batches)])
        calls += 1
        timed += window.timed(before, time.perf_counter(), timed)
    return window.figures(len(batches[0]))


async def clients(url, bodies, concurrency, seconds, warmup_s):
    """(the Window of the requests timed, the first answer's JSON).  Each client sends its next request when the
    last is answered, until the time is up."""
    import aiohttp

    answers = []
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout, headers=headers
    ) as session:
        loop = asyncio.get_running_loop()
        window = Window(loop.time(), warmup_s, seconds)

        async def client(number):
            sent, timed = number, 0
            while window.goes_on(before := loop.time(), timed):
                async with session.post(url, data=bodies[sent % len(bodies)]) as response:
                    answer = await response.read()
                    if response.status != 200:
                        raise GraphNNError(f"bench --serve: the server answered {response.status}: {answer[:200]!r}.")
                if not answers:
                    answers.append((sent % len(bodies), json.loads(answer)))
                sent += concurrency
                timed += window.timed(before, loop.time(), timed)

        await asyncio.gather(*(client(number) for number in range(concurrency)))
        return window, answers[0]


def over_http(base, bodies, expected, concurrency, seconds, warmup_s):
    """The figures of `concurrency` clients sending bodies to the server at base, the first answer checked
    against the in-process probabilities `expected` of each body."""
    window, (body, answer) = asyncio.run(
        clients(f"{base}/v1/models/mnist:predict", bodies, concurrency, seconds, warmup_s)
    )
    probabilities = np.array([row["probabilities"] for row in answer["predictions"]])
    difference = float(np.max(np.abs(probabilities - expected[body])))
    if difference > PROBABILITY_ATOL:
        raise GraphNNError(
            f"bench --serve: the server's probabilities differ from the graph's by {difference:.2e} "
            f"(more than {PROBABILITY_ATOL:g})."
        )
    return window.figures(len(expected[body]))


def last_words(stderr):
    """The last line the server wrote to stderr, as the end of a sentence."""
    stderr.seek(0)
    lines = stderr.read().strip().splitlines()
    return f" ({lines[-1].rstrip('.')})" if lines else ""


def started(path, stderr):
    try:
        return ServerProcess(path, stderr=stderr)
    except GraphNNError as e:
        raise GraphNNError(f"bench --serve: {str(e).rstrip('.')}{last_words(stderr)}.") from None


def request_bodies(images, batch):
    """BODIES row-format :predict bodies of `batch` test images each, and the images of each."""
    batches = [images[i * batch : (i + 1) * batch] for i in range(BODIES)]
    bodies = [json.dumps({"instances": b.tolist()}).encode() for b in batches]
    return batches, bodies


def configurations():
    """The names measured, in the order each repeat measures them: in-process, then the server's."""
    for batch in BATCHES:
        yield batch, 0  # in-process
        for concurrency in CONCURRENCY:
            yield batch, concurrency


def label(batch, concurrency):
    images = "1 image" if batch == 1 else f"{batch} images"
    where = "in-process" if not concurrency else f"HTTP, {concurrency} client{'s' * (concurrency > 1)}"
    return f"{images}, {where}"


@reported
def run_bench(dataset, source, seconds, repeats):
    """What is measured as it starts, then the table; the outcome is the figures (the CLI writes them to --json)."""
    path = saved_model_path(source)
    warmup_s = min(1.0, seconds / 3)
    images = dataset.test.images[: BODIES * max(BATCHES)]
    model = Model(path)
    try:
        prepared = {batch: request_bodies(images, batch) for batch in BATCHES}
        expected = {
            batch: [model.run(model.default, b)["probabilities"] for b in batches]
            for batch, (batches, _) in prepared.items()
        }
        measured = {configuration: [] for configuration in configurations()}
        servers = []
        with tempfile.TemporaryFile("w+") as stderr:
            for repeat in range(repeats):
                yield f"repeat {repeat + 1}/{repeats}: starting the server of {path} ..."
                server = started(path, stderr)
                try:
                    for batch, concurrency in measured:
                        yield f"repeat {repeat + 1}/{repeats}: {label(batch, concurrency)}, {seconds:g} s ..."
                        batches, bodies = prepared[batch]
                        measured[batch, concurrency].append(
                            in_process(model, batches, seconds, warmup_s)
                            if not concurrency
                            else over_http(server.base, bodies, expected[batch], concurrency, seconds, warmup_s)
                        )
                finally:
                    status, said = server.stop()
                if status != 0:
                    raise GraphNNError(f"bench --serve: the server ended with exit {status}{last_words(stderr)}.")
                servers.append(said.strip().splitlines()[-1])
    finally:
        model.close()
    rows = [
        dict(
            batch=batch,
            concurrency=concurrency,
            **{key: statistics.median(run[key] for run in runs) for key in runs[0]},
        )
        for (batch, concurrency), runs in measured.items()
    ]
    figures = dict(
        machine=machine_description(),
        source=str(path),
        seconds=seconds,
        repeats=repeats,
        rows=rows,
        servers=servers,
    )
    yield format_table(figures)
    return figures


def format_table(figures):
    lines = [
        f"{figures['source']}: medians of {figures['repeats']} repeat{'s' * (figures['repeats'] > 1)} of "
        f"{figures['seconds']:g} s",
        f"  {'':26}{'requests/s':>11}{'images/s':>11}{'p50 ms':>9}{'p99 ms':>9}   images/s vs in-process",
    ]
    in_process_rate = {row["batch"]: row["images_per_second"] for row in figures["rows"] if not row["concurrency"]}
    for row in figures["rows"]:
        ratio = row["images_per_second"] / in_process_rate[row["batch"]]
        lines.append(
            f"  {label(row['batch'], row['concurrency']):26}{row['requests_per_second']:>11,.0f}"
            f"{row['images_per_second']:>11,.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}   {ratio:.2f}x"
        )
    lines.append(f"  the server, stopped after repeat {len(figures['servers'])}: {figures['servers'][-1]}")
    return "\n".join(lines)
