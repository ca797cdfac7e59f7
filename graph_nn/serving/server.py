"""An exported run behind TensorFlow Serving's REST API, so that a client written for TF Serving works unchanged:

    GET  /v1/models/NAME[/versions/1]            the version's status
    GET  /v1/models/NAME[/versions/1]/metadata   the serving_default signature, a SignatureDef in JSON
    POST /v1/models/NAME[/versions/1]:predict    {"instances": [image, ...]} (rows) or {"inputs": ...} (columns),
                                                 of serving_default or the export's layers signature

and a page of its own that calls them: GET / (page/index.html, page/draw.js) to draw a digit on, and POST /prepare
(an image file's bytes -> {"x": the 784 floats}), the preparation `python run.py predict` applies to a file.

The version is always "1": TF Serving numbers a model's versions by the directories under its base path, and an
export here is a single SavedModel, which TF Serving serves as version 1 of a base path holding only it (the
checkpoint's step is in the SavedModel only when the model has dropout, so it cannot be the version of every run).
A refusal is TF Serving's {"error": "..."} with its HTTP status, in its words where it has them.

The SavedModel is loaded once, into its own tf.Graph and Session.  aiohttp's event loop answers the requests
concurrently, and those that arrive together share one Session.run (Batcher).
"""

import asyncio
import concurrent.futures
import contextlib
import html
import ipaddress
import itertools
import json
import os
import pathlib
import re
import signal
import sys

import numpy as np
import tensorflow as tf
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from graph_nn.core.errors import GraphNNError, op_error_reason
from graph_nn.data.digit_images import prepare
from graph_nn.graph.batched import EVAL_BATCH_SIZE
from graph_nn.graph.sessions import session_config
from graph_nn.reports.export import SIGNATURE
from graph_nn.serving.source import saved_model_path

v1 = tf.compat.v1
VERSION = 1
STATUS = {
    "model_version_status": [
        {"version": str(VERSION), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
}
# An MNIST image is 5-7 KB of JSON (most of its pixels are 0, the others up to 17 digits long as json.dumps writes
# a float32's exact value): 16 MB takes 2,000 of them in one request, as many as an evaluation batch, and keeps a
# client from making the server read and parse gigabytes.
MAX_BODY_BYTES = 16 * 2**20
# How long the first request of a batch waits for others.  Clients that send together arrive within a few
# hundred microseconds of each other, and one Session.run of 32 images takes 0.7 ms where 32 runs of one take 10:
# 2 ms more for a lone request buys a single run for all that come with it.  Those that arrive while a run is on
# wait for it anyway, and go together into the next.
BATCH_WINDOW_SECONDS = 0.002
MAX_BATCH_IMAGES = EVAL_BATCH_SIZE  # per Session.run, give or take the last request's
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PAGE = pathlib.Path(__file__).with_name("page")
FLOAT32_MAX = float(np.finfo(np.float32).max)
# oneDNN blocks a matmul by the batch's size in ways that differ between CPU models: on some, every batch of two
# images or more gives the same rows bit for bit, on others (seen: an AMD EPYC of 2026-12) a batch of 5 and one
# of 2,000 differ by up to 2.4e-7 in a probability.  Which requests share a Session.run moves an answer that much,
# and no more than this.
PROBABILITY_ATOL = 1e-6


class RequestError(Exception):
    """A request refused: the HTTP status, and the one sentence of its {"error": ...}."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Signature:
    """One signature of the SavedModel: its one float32 input [None, width] and the outputs it fetches."""

    def __init__(self, signature_def):
        self.definition = signature_def
        [(self.input_name, input_info)] = signature_def.inputs.items()
        self.width = input_info.tensor_shape.dim[1].size
        self.feed = input_info.name
        self.output_names = list(signature_def.outputs)
        self.fetches = [signature_def.outputs[name].name for name in self.output_names]


def servable(signature_def):
    """Whether a SignatureDef takes what a :predict request holds: one float32 input of shape [None, N]."""
    if len(signature_def.inputs) != 1:
        return False
    (info,) = signature_def.inputs.values()
    dims = [dim.size for dim in info.tensor_shape.dim]
    return info.dtype == tf.float32.as_datatype_enum and len(dims) == 2 and dims[1] > 0


class Model:
    """The signatures of a SavedModel (serving_default and, from `python run.py export`, layers), loaded into a
    graph and session of their own."""

    def __init__(self, path):
        self.session = v1.Session(graph=tf.Graph(), config=session_config())
        try:
            self.signatures = self.load(path)
        except BaseException:
            self.session.close()
            raise

    def load(self, path):
        try:
            meta_graph = v1.saved_model.load(self.session, [v1.saved_model.SERVING], str(path))
        except (OSError, RuntimeError, ValueError, DecodeError, tf.errors.OpError) as e:
            reason = op_error_reason(e) if isinstance(e, tf.errors.OpError) else str(e).strip().splitlines()[0]
            raise GraphNNError(f"{path}: cannot load the SavedModel ({reason.rstrip('.')}).") from None
        default = meta_graph.signature_def.get(SIGNATURE)
        if default is None or not servable(default):
            raise GraphNNError(
                f"{path}: no {SIGNATURE} signature with one float32 input of shape [None, N], as `python run.py "
                "export` writes."
            )
        # serving_default first, as TF Serving's metadata lists it; a signature no :predict could feed is left out.
        names = [SIGNATURE] + sorted(
            name for name, definition in meta_graph.signature_def.items() if name != SIGNATURE and servable(definition)
        )
        return {name: Signature(meta_graph.signature_def[name]) for name in names}

    @property
    def default(self):
        return self.signatures[SIGNATURE]

    def run(self, signature, images):
        """{output name: array} of signature for images [n, width].  A lone image runs with a blank one below it:
        oneDNN multiplies a single row by the weights in another order than it does several (probabilities up to
        ~4e-7 apart), and a lone request should be answered as one that shares its Session.run (on some CPUs the
        batch's size moves the last bits too, by less)."""
        rows = len(images)
        if rows == 1:
            images = np.concatenate([images, np.zeros_like(images)])
        values = self.session.run(signature.fetches, {signature.feed: images})
        return {name: value[:rows] for name, value in zip(signature.output_names, values)}

    def metadata(self, model_name):
        """GetModelMetadataResponse as TF Serving writes it: the model spec, then the signatures served as a
        SignatureDefMap with every field printed and the protos' own field names."""
        signatures = {
            name: json_format.MessageToDict(
                signature.definition, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
            )
            for name, signature in self.signatures.items()
        }
        return {
            "model_spec": {"name": model_name, "signature_name": "", "version": str(VERSION)},
            "metadata": {"signature_def": {"signature_def": signatures}},
        }

    def close(self):
        self.session.close()


def parse_predict(body, model):
    """(Signature, images [n, width] float32, "row" or "columnar") of a :predict request: TF Serving's row format
    {"instances": [image, ...]}, each image a list of numbers or {"x": list}, or its columnar format
    {"inputs": [image, ...]} or {"inputs": {"x": [image, ...]}}; "signature_name" names one of model's signatures
    (none: serving_default)."""
    try:
        request = json.loads(body)
    except json.JSONDecodeError as e:
        raise RequestError(400, f"JSON Parse error: {e.msg} at offset {e.pos}.") from None
    except UnicodeDecodeError:
        raise RequestError(400, "JSON Parse error: the body is not UTF-8 text.") from None
    except RecursionError:  # lists nested thousands deep
        raise RequestError(400, "JSON Parse error: the body nests deeper than Python parses.") from None
    if not isinstance(request, dict):
        raise RequestError(400, "The request body is not a JSON object.")
    signature_name = request.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise RequestError(400, "'signature_name' key must be a string value.")
    signature = model.signatures.get(signature_name or SIGNATURE)
    if signature is None:
        raise RequestError(400, f'Serving signature name: "{signature_name}" not found in signature def')
    if "instances" in request and "inputs" in request:
        raise RequestError(400, "Expecting only one of 'inputs' or 'instances' keys to exist.")
    if "instances" in request:
        return signature, instances_images(request["instances"], signature), "row"
    if "inputs" in request:
        return signature, inputs_images(request["inputs"], signature), "columnar"
    raise RequestError(400, "Missing 'inputs' or 'instances' key")


def instances_images(instances, signature):
    if not isinstance(instances, list):
        raise RequestError(400, "Expecting 'instances' to be a list of images.")
    if not instances:
        raise RequestError(400, "No values in 'instances' array.")
    rows = []
    for number, instance in enumerate(instances):
        if isinstance(instance, dict):
            if instance.keys() != {signature.input_name}:
                keys = sorted(instance)
                raise RequestError(
                    400,
                    f"Instance {number} has the keys {keys}; the signature's one input is {signature.input_name!r}.",
                )
            instance = instance[signature.input_name]
        rows.append(instance)
    return as_images(rows, lambda number: f"Instance {number}", signature)


def inputs_images(inputs, signature):
    if isinstance(inputs, dict):
        if signature.input_name not in inputs:
            raise RequestError(400, f"Missing named input: {signature.input_name} in 'inputs' object.")
        inputs = inputs[signature.input_name]
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(400, f"Expecting 'inputs' to be a non-empty list of images, each {signature.width} numbers.")
    return as_images(inputs, lambda number: f"Image {number} of 'inputs'", signature)


def as_images(rows, describe, signature):
    """rows as a float32 array [len(rows), signature.width], or the RequestError naming (by describe(index)) the first
    row that is not signature.width numbers.  NaN and Infinity pass, as they do in TF Serving."""
    for number, row in enumerate(rows):
        if not isinstance(row, list):
            raise RequestError(400, f"{describe(number)} is not a list of {signature.width} numbers.")
        if len(row) != signature.width:
            raise RequestError(
                400,
                f"{describe(number)} has {len(row)} values; the input {signature.input_name} takes {signature.width}.",
            )
    # NumPy would take true for 1 and a numeric string for its number: only what JSON calls numbers may pass.
    if not set(map(type, itertools.chain.from_iterable(rows))) <= {int, float}:
        number, value = next((n, v) for n, row in enumerate(rows) for v in row if type(v) not in (int, float))
        raise RequestError(400, f"{describe(number)} holds {json.dumps(value)[:40]}, which is not a number.")
    beyond = RequestError(400, "The images hold a number beyond float32's range (3.4e38).")
    try:
        values = np.array(rows, dtype=np.float64)
    except OverflowError:  # an integer of hundreds of digits
        raise beyond from None
    if np.any(np.abs(values[np.isfinite(values)]) > FLOAT32_MAX):
        raise beyond
    return values.astype(np.float32)


def predict_response(outputs, form):
    """TF Serving's answer to the row format, {"predictions": [{output: value, ...}, ...]}, or to the columnar one,
    {"outputs": {output: values}}.  A float32 is written as its exact value (0.10000000149011612, where TF Serving
    writes the shortest digits that round to it), so the client's float32 is the model's, bit for bit."""
    columns = {name: value.tolist() for name, value in outputs.items()}
    if form == "columnar":
        return {"outputs": columns}
    rows = len(next(iter(columns.values())))
    return {"predictions": [{name: column[row] for name, column in columns.items()} for row in range(rows)]}


class Batcher:
    """Runs the images of the requests that arrive together in one Session.run per signature, on a thread of its
    own (one Session.run at a time: TensorFlow spreads each over the cores already), and counts how it went."""

    def __init__(self, model):
        self.model = model
        self.queue = asyncio.Queue()
        self.thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="session-run")
        self.requests = self.images = self.session_runs = self.most_requests = 0

    async def predict(self, signature, images):
        """{output name: array} of signature for images, from a Session.run that other requests may share."""
        answer = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((signature, images, answer))
        return await answer

    async def run(self):
        while True:
            batch = [await self.queue.get()]
            await asyncio.sleep(BATCH_WINDOW_SECONDS)
            count = len(batch[0][1])
            while count < MAX_BATCH_IMAGES and not self.queue.empty():
                batch.append(self.queue.get_nowait())
                count += len(batch[-1][1])
            for signature in dict.fromkeys(signature for signature, _, _ in batch):
                await self.run_together([(images, answer) for s, images, answer in batch if s is signature], signature)

    async def run_together(self, requests, signature):
        """One Session.run of signature for the images of all requests, each answered with its own rows."""
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(
                self.thread, self.model.run, signature, np.concatenate([images for images, _ in requests])
            )
        except Exception as e:  # each request's handler answers it, and the next batch runs
            for _, answer in requests:
                if not answer.cancelled():
                    answer.set_exception(e)
            return
        self.requests += len(requests)
        self.images += sum(len(images) for images, _ in requests)
        self.session_runs += 1
        self.most_requests = max(self.most_requests, len(requests))
        start = 0
        for images, answer in requests:
            if not answer.cancelled():  # its handler outlived the shutdown's grace period
                answer.set_result({name: value[start : start + len(images)] for name, value in outputs.items()})
            start += len(images)

    async def running(self, app):
        """aiohttp's cleanup context: the batches run while the application does."""
        task = asyncio.create_task(self.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self.thread.shutdown()

    def summary(self):
        return (
            f"predict requests: {self.requests}, images: {self.images}, Session.runs: {self.session_runs}, "
            f"most requests in one Session.run: {self.most_requests}"
        )


BATCHER = web.AppKey("batcher", Batcher)


def servable_not_found(request):
    name, version = request.match_info["name"], request.match_info.get("version")
    servable = f"Latest({name})" if version is None else f"Specific({name}, {int(version)})"
    return RequestError(404, f"Servable not found for request: {servable}")


def error_response(status, message):
    return web.json_response({"error": message}, status=status)


@web.middleware
async def tf_serving_errors(request, handler):
    """Every refusal as {"error": SENTENCE}: this server's own, the body-size limit's, and a path that names no API
    (400 under /v1/ as in TF Serving; any other path is none of its own: 404)."""
    try:
        return await handler(request)
    except RequestError as e:
        return error_response(e.status, str(e))
    except web.HTTPRequestEntityTooLarge:
        return error_response(
            413, f"The request body is over this server's {MAX_BODY_BYTES // 2**20} MB; send fewer images at a time."
        )
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        status = 400 if request.path.startswith("/v1/") else 404
        return error_response(status, f"Malformed request: {request.method} {request.path}")
    except tf.errors.OpError as e:
        return error_response(500, op_error_reason(e))


def make_app(model, model_name="mnist"):
    """The aiohttp application serving model as model_name; app[BATCHER] counts its Session.runs."""
    if not re.fullmatch(r"[^/:]+", model_name):
        raise GraphNNError(f"--model-name {model_name!r}: a model name in a URL has no '/' or ':'.")
    batcher = Batcher(model)
    metadata = model.metadata(model_name)

    def served(request):
        version = request.match_info.get("version")
        return request.match_info["name"] == model_name and (version is None or int(version) == VERSION)

    async def status(request):
        if not served(request):
            name, version = request.match_info["name"], request.match_info.get("version")
            if version is None:
                raise RequestError(404, f"Could not find any versions of model {name}")
            raise RequestError(404, f"Could not find version {int(version)} of model {name}")
        return web.json_response(STATUS)

    async def get_metadata(request):
        if not served(request):
            raise servable_not_found(request)
        return web.json_response(metadata)

    async def predict(request):
        if not served(request):
            raise servable_not_found(request)
        signature, images, form = parse_predict(await request.read(), model)
        return web.json_response(predict_response(await batcher.predict(signature, images), form))

    page = (PAGE / "index.html").read_text().replace("{{model_name}}", html.escape(model_name))

    async def get_page(request):
        return web.Response(text=page, content_type="text/html")

    async def post_prepare(request):
        image = await request.read()
        try:  # off the event loop: decoding and fitting a large photo takes a while
            x = await asyncio.get_running_loop().run_in_executor(None, prepare, image, "The image sent")
        except GraphNNError as e:
            raise RequestError(400, str(e)) from None
        return web.json_response({"x": x.tolist()})

    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[tf_serving_errors])
    app[BATCHER] = batcher
    app.cleanup_ctx.append(batcher.running)
    model_path = "/v1/models/{name:[^/:]+}"
    for version in ("", "/versions/{version:[0-9]+}"):
        app.router.add_get(model_path + version, status)
        app.router.add_get(model_path + version + "/metadata", get_metadata)
        app.router.add_post(model_path + version + ":predict", predict)
    app.router.add_get("/", get_page)
    app.router.add_static("/static/", PAGE)
    app.router.add_post("/prepare", post_prepare)
    return app


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name, which other machines may resolve to this one
        return False


def listening_line(host, port, model_name):
    """Where the server listens; for an address other machines can reach, that they can use it unasked."""
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    line = f"Serving {model_name} with TensorFlow Serving's REST API at http://{netloc}/v1/models/{model_name}"
    if is_loopback(host):
        line += " (this machine only)"
    else:
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host).is_unspecified:
                host = "any address of this machine"
        line += f" with no authentication: every machine that can reach {host} on port {port} can use it"
    return line + "; Ctrl-C stops it."


async def run_until_signal(model, host, port, model_name, out):
    app = make_app(model, model_name)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=10)
    loop = asyncio.get_running_loop()
    stopped = loop.create_future()

    def stop(signum):
        if not stopped.done():
            stopped.set_result(signum)

    for signum in STOP_SIGNALS:  # until the runner is cleaned up: a second Ctrl-C changes nothing
        loop.add_signal_handler(signum, stop, signum)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as e:  # asyncio words a bind's errno in a sentence of its own; getaddrinfo's has none
            reason = os.strerror(e.errno) if e.errno and e.errno > 0 else e.strerror or str(e)
            raise GraphNNError(f"{host}:{port}: cannot listen there ({reason}).") from None
        print(listening_line(host, runner.addresses[0][1], model_name), file=out, flush=True)
        await stopped
    finally:
        await runner.cleanup()
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
    print(f"stopped by {signal.Signals(stopped.result()).name} ({app[BATCHER].summary()})", file=out, flush=True)
    return 0


def serve(source, host="127.0.0.1", port=8501, model_name="mnist", out=sys.stdout):
    """Serves the SavedModel of source (a run directory, its export directory or a SavedModel directory) at
    host:port (0: a free port, which the first line names) until SIGINT or SIGTERM, then answers the requests
    under way and returns 0.  Prints where it listens, then how it stopped."""
    model = Model(saved_model_path(source))
    try:
        return asyncio.run(run_until_signal(model, host, port, model_name, out))
    finally:
        model.close()
