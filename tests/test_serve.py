"""`serve`: the real server in a child process, spoken to over HTTP as a client of TensorFlow Serving speaks to it."""

import concurrent.futures
import json
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from graph_nn.core.errors import GraphNNError
from graph_nn.reports.export import saved_model_predictions
from graph_nn.serving.child import STOP_SECONDS, ServerProcess
from graph_nn.serving.server import MAX_BODY_BYTES, PROBABILITY_ATOL, listening_line, serve
from graph_nn.serving.source import saved_model_path
from tests.conftest import run_cli

MODEL = "/v1/models/mnist"
PREDICT = MODEL + ":predict"
IMAGES = 2000
CONCURRENT = 32
BLANK = [0.5] * 784  # an image of the right shape, for the requests refused for something else
STATUS = {
    "model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
}


@pytest.fixture(scope="module")
def expected(exported, mnist):
    """(images, probabilities, classes): the first test images and what the SavedModel predicts for them, in one
    batch."""
    images = mnist.test.images[:IMAGES]
    return (images, *saved_model_predictions(exported.saved_model, images))


class Server(ServerProcess):
    """`python -m graph_nn serve RUN --port 0` in a child process, spoken to as a TF Serving client speaks, and its
    answers counted as the server counts them."""

    def __init__(self, run_dir, log_path):
        self.log = open(log_path, "w")  # noqa: SIM115 (closed in stop(), with the server)
        super().__init__(run_dir, stderr=self.log)
        assert re.fullmatch(r"Serving mnist .* at http://127\.0\.0\.1:\d+/v1/models/mnist .*\n", self.first_line)
        self.lock = threading.Lock()
        self.predicted_requests = self.predicted_images = 0

    def stderr(self):
        with open(self.log.name) as f:
            return f.read()[-3000:]

    def call(self, path, body=None):
        """(HTTP status, the JSON answer) of a GET of path, or with a body (bytes as they are, anything else as
        JSON) a POST."""
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            with e:
                return e.code, json.loads(e.read())

    def predict(self, body, path=PREDICT):
        """The answer of a prediction that must succeed, counted (as the server counts them)."""
        status, answer = self.call(path, body)
        assert status == 200, answer
        outputs = answer.get("predictions") or answer["outputs"]["class"]
        with self.lock:
            self.predicted_requests += 1
            self.predicted_images += len(outputs)
        return answer

    def stop(self):
        try:
            return super().stop()
        finally:
            self.log.close()


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    server = Server(exported, tmp_path_factory.mktemp("serve-log") / "stderr.txt")
    yield server
    if server.process.poll() is None:
        server.stop()


def assert_rows(probabilities, classes, expected, first):
    """The answer for expected's images first, first+1, ... is the SavedModel's: the same classes, and the same
    probabilities to within a few float32 roundings (PROBABILITY_ATOL)."""
    _, expected_probabilities, expected_classes = expected
    rows = slice(first, first + len(classes))
    np.testing.assert_allclose(
        np.array(probabilities, dtype=np.float32), expected_probabilities[rows], rtol=0, atol=PROBABILITY_ATOL
    )
    np.testing.assert_array_equal(np.array(classes), expected_classes[rows])


def assert_predictions(answer, expected, first):
    assert set(answer) == {"predictions"}
    predictions = answer["predictions"]
    assert all(set(prediction) == {"probabilities", "class"} for prediction in predictions)
    assert_rows([p["probabilities"] for p in predictions], [p["class"] for p in predictions], expected, first)


def assert_outputs(answer, expected, first):
    assert set(answer) == {"outputs"} and set(answer["outputs"]) == {"probabilities", "class"}
    assert_rows(answer["outputs"]["probabilities"], answer["outputs"]["class"], expected, first)


def test_the_model_status_is_tf_servings(server):
    assert server.call(MODEL) == (200, STATUS)
    assert server.call(MODEL + "/versions/1") == (200, STATUS)


def test_the_metadata_is_the_signature_def_as_tf_serving_prints_it(server):
    status, metadata = server.call(MODEL + "/metadata")
    assert status == 200
    assert server.call(MODEL + "/versions/1/metadata") == (200, metadata)
    assert metadata["model_spec"] == {"name": "mnist", "signature_name": "", "version": "1"}
    assert list(metadata["metadata"]["signature_def"]["signature_def"]) == ["serving_default", "layers"]
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"

    def info(dtype, *sizes):
        dims = [{"size": str(size), "name": ""} for size in sizes]
        return {"dtype": dtype, "tensor_shape": {"dim": dims, "unknown_rank": False}}

    tensors = {**signature["inputs"], **signature["outputs"]}
    assert {
        name: {key: value for key, value in tensor.items() if key != "name"} for name, tensor in tensors.items()
    } == {
        "x": info("DT_FLOAT", -1, 784),
        "probabilities": info("DT_FLOAT", -1, 10),
        "class": info("DT_INT64", -1),
    }
    assert all(tensor["name"].endswith(":0") for tensor in tensors.values())


def test_the_row_format_answers_what_the_saved_model_predicts(server, expected):
    images = expected[0].tolist()
    assert_predictions(server.predict({"instances": images[:5]}), expected, 0)
    assert_predictions(server.predict({"instances": images[5:6]}), expected, 5)  # a lone image
    named = {"signature_name": "serving_default", "instances": [{"x": image} for image in images[6:9]]}
    assert_predictions(server.predict(named), expected, 6)
    assert_predictions(server.predict({"instances": images[9:11]}, MODEL + "/versions/1:predict"), expected, 9)


def test_the_columnar_format_answers_what_the_saved_model_predicts(server, expected):
    images = expected[0].tolist()
    assert_outputs(server.predict({"inputs": images[11:15]}), expected, 11)
    assert_outputs(server.predict({"inputs": {"x": images[15:17]}}), expected, 15)
    assert_outputs(server.predict({"inputs": images[17:18], "signature_name": ""}), expected, 17)


def test_the_layers_signature_answers_each_layers_activations(server, expected):
    """mlp64's hidden layer and its logits, whose softmax is serving_default's probabilities."""
    images = expected[0][:3].tolist()
    predictions = server.predict({"signature_name": "layers", "instances": images})["predictions"]
    assert all(set(prediction) == {"hidden1", "output"} for prediction in predictions)
    hidden = np.array([prediction["hidden1"] for prediction in predictions])
    logits = np.array([prediction["output"] for prediction in predictions], dtype=np.float64)
    assert hidden.shape == (3, 64) and hidden.min() >= 0  # after the ReLU
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(axis=1, keepdims=True), expected[1][:3], atol=PROBABILITY_ATOL)


def test_prepare_gives_what_predict_reads_from_the_same_file(server, tmp_path):
    from PIL import Image

    from graph_nn.data.digit_images import prepare

    ink = np.full((120, 90), 255, dtype=np.uint8)
    ink[20:100, 40:52] = 0  # a dark "1" on white paper
    Image.fromarray(ink).save(tmp_path / "one.png")
    data = (tmp_path / "one.png").read_bytes()
    request = urllib.request.Request(server.base + "/prepare", data=data, headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(request, timeout=60) as response:
        x = json.loads(response.read())["x"]
    np.testing.assert_array_equal(np.array(x, dtype=np.float32), prepare(tmp_path / "one.png"))
    status, answer = server.call("/prepare", b"GIF89a not really")
    assert status == 400 and answer["error"].startswith("The image sent: "), answer


def test_the_page_is_served_with_its_script(server):
    with urllib.request.urlopen(server.base + "/", timeout=60) as response:
        page = response.read().decode()
    assert '<meta name="graph-nn-model" content="mnist">' in page and '<canvas id="pad"' in page
    with urllib.request.urlopen(server.base + "/static/draw.js", timeout=60) as response:
        assert b'signature_name: "layers"' in response.read()


def test_2000_images_fit_in_one_request(server, expected):
    body = json.dumps({"instances": expected[0].tolist()}).encode()
    assert len(body) < MAX_BODY_BYTES
    assert_predictions(server.predict(body), expected, 0)


def refusal(path, body, status, message, id=None):
    return pytest.param(path, body, status, message, id=id)


TOO_DEEP = b'{"instances": ' + b"[" * 100_000


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        refusal(PREDICT, b'{"instances": [', 400, "JSON Parse error: Expecting value at offset 15.", id="malformed"),
        refusal(PREDICT, b"", 400, "JSON Parse error: Expecting value at offset 0.", id="empty body"),
        refusal(PREDICT, b"\xff{}", 400, "JSON Parse error: the body is not UTF-8 text.", id="not UTF-8"),
        refusal(PREDICT, TOO_DEEP, 400, "JSON Parse error: the body nests deeper than Python parses.", id="deep"),
        refusal(PREDICT, [BLANK], 400, "The request body is not a JSON object.", id="a list"),
        refusal(PREDICT, {"images": [BLANK]}, 400, "Missing 'inputs' or 'instances' key", id="no instances"),
        refusal(PREDICT, {"instances": [BLANK], "inputs": [BLANK]}, 400, "only one of 'inputs' or 'instances'"),
        refusal(PREDICT, {"instances": []}, 400, "No values in 'instances' array.", id="no images"),
        refusal(PREDICT, {"instances": BLANK[0]}, 400, "Expecting 'instances' to be a list of images.", id="number"),
        refusal(PREDICT, {"instances": [BLANK, BLANK[1:]]}, 400, "Instance 1 has 783 values; the input x takes 784."),
        refusal(PREDICT, {"instances": [BLANK + [0]]}, 400, "Instance 0 has 785 values; the input x takes 784."),
        refusal(PREDICT, {"instances": [BLANK, 0.5]}, 400, "Instance 1 is not a list of 784 numbers."),
        refusal(PREDICT, {"instances": [BLANK[1:] + ["0.5"]]}, 400, 'Instance 0 holds "0.5", which is not a number.'),
        refusal(PREDICT, {"instances": [BLANK[1:] + [True]]}, 400, "Instance 0 holds true, which is not a number."),
        refusal(PREDICT, {"instances": [BLANK, BLANK[1:] + [None]]}, 400, "Instance 1 holds null, which is not a"),
        refusal(PREDICT, {"instances": [BLANK[1:] + [1e39]]}, 400, "a number beyond float32's range", id="1e39"),
        refusal(PREDICT, {"instances": [BLANK[1:] + [10**400]]}, 400, "a number beyond float32's range", id="10**400"),
        refusal(
            PREDICT, {"instances": [{"y": BLANK}]}, 400, "Instance 0 has the keys ['y']; the signature's one input"
        ),
        refusal(PREDICT, {"inputs": {"y": [BLANK]}}, 400, "Missing named input: x in 'inputs' object."),
        refusal(PREDICT, {"inputs": BLANK}, 400, "Image 0 of 'inputs' is not a list of 784 numbers.", id="one image"),
        refusal(PREDICT, {"inputs": []}, 400, "Expecting 'inputs' to be a non-empty list of images, each 784 numbers."),
        refusal(
            PREDICT,
            {"signature_name": "predict", "instances": [BLANK]},
            400,
            'Serving signature name: "predict" not found in signature def',
        ),
        refusal(PREDICT, {"signature_name": 1, "instances": [BLANK]}, 400, "'signature_name' key must be a string"),
        refusal(
            PREDICT, b" " * (MAX_BODY_BYTES + 1), 413, "The request body is over this server's 16 MB", id="over 16 MB"
        ),
        refusal(
            "/v1/models/fashion:predict", {"instances": [BLANK]}, 404, "Servable not found for request: Latest(fashion)"
        ),
        refusal(
            MODEL + "/versions/2:predict",
            {"instances": [BLANK]},
            404,
            "Servable not found for request: Specific(mnist, 2)",
        ),
        refusal("/v1/models/fashion/metadata", None, 404, "Servable not found for request: Latest(fashion)"),
        refusal("/v1/models/fashion", None, 404, "Could not find any versions of model fashion"),
        refusal(MODEL + "/versions/2", None, 404, "Could not find version 2 of model mnist"),
        refusal(PREDICT, None, 400, "Malformed request: GET /v1/models/mnist:predict", id="GET predict"),
        refusal(MODEL, {"instances": [BLANK]}, 400, "Malformed request: POST /v1/models/mnist", id="POST status"),
        refusal("/v1/models", None, 400, "Malformed request: GET /v1/models", id="no model"),
        refusal("/models/mnist", None, 404, "Malformed request: GET /models/mnist", id="not the API"),
    ],
)
def test_a_bad_request_gets_a_4xx_and_one_sentence_and_the_server_goes_on(
    server, expected, path, body, status, message
):
    answer_status, answer = server.call(path, body)
    assert (answer_status, set(answer)) == (status, {"error"}), answer
    assert message in answer["error"]
    assert "\n" not in answer["error"] and len(answer["error"]) < 200
    assert_predictions(server.predict({"instances": expected[0][:2].tolist()}), expected, 0)


def burst(server, expected):
    """CONCURRENT requests of one image each, from as many threads released together; each answer checked."""
    images = expected[0].tolist()
    together = threading.Barrier(CONCURRENT)

    def one(index):
        together.wait(timeout=60)
        assert_predictions(server.predict({"instances": [images[index]]}), expected, index)

    with concurrent.futures.ThreadPoolExecutor(CONCURRENT) as threads:
        for done in [threads.submit(one, 100 + index) for index in range(CONCURRENT)]:
            done.result()


def test_concurrent_requests_are_each_answered_right(server, expected):
    burst(server, expected)


def test_ctrl_c_stops_it_cleanly_and_it_says_how_requests_shared_session_runs(server, expected):
    """Last: it stops the module's server."""
    burst(server, expected)
    started = time.monotonic()
    code, out = server.stop()
    assert code == 0 and time.monotonic() - started < STOP_SECONDS, server.stderr()
    assert "Traceback" not in server.stderr()
    figures = re.fullmatch(
        r"stopped by SIGINT \(predict requests: (\d+), images: (\d+), Session\.runs: (\d+), "
        r"most requests in one Session\.run: (\d+)\)\n",
        out,
    )
    assert figures, out
    requests, images, runs, most = map(int, figures.groups())
    assert (requests, images) == (server.predicted_requests, server.predicted_images)
    assert most > 1 and runs < requests


def test_a_run_is_served_from_its_export_and_one_without_is_told_to_export_it(exported, tmp_path):
    for source in (exported, exported.export, exported.saved_model):
        assert saved_model_path(source) == exported.saved_model
    unexported = tmp_path / "run"
    unexported.mkdir()
    shutil.copy(exported.config, unexported)
    with pytest.raises(GraphNNError) as refused:
        saved_model_path(unexported)
    assert (
        str(refused.value)
        == f"{unexported}: the run has no export yet; run `python run.py export --run {unexported}` first."
    )
    with pytest.raises(GraphNNError, match="no such run or export directory"):
        saved_model_path(tmp_path / "missing")


def test_a_port_in_use_is_refused_in_one_sentence(exported):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(GraphNNError) as refused:
            serve(exported, port=port)
    assert str(refused.value) == f"127.0.0.1:{port}: cannot listen there (Address already in use)."


def test_the_listening_line_says_when_other_machines_can_use_the_server():
    assert "(this machine only)" in listening_line("127.0.0.1", 8501, "mnist")
    assert "http://[::1]:8501/v1/models/mnist (this machine only)" in listening_line("::1", 8501, "mnist")
    everywhere = listening_line("0.0.0.0", 8501, "mnist")
    assert everywhere.startswith(
        "Serving mnist with TensorFlow Serving's REST API at http://0.0.0.0:8501/v1/models/mnist"
    )
    assert "with no authentication: every machine that can reach any address of this machine on port 8501" in everywhere
    assert "every machine that can reach 192.0.2.7 on port 80 can use it" in listening_line("192.0.2.7", 80, "mnist")


def test_bench_serve_times_each_concurrency_against_the_graph_in_process(exported, tmp_path):
    # bench checks each configuration's first answer against the in-process call itself, and fails if it differs.
    result = run_cli(
        "bench", "--serve", exported, "--seconds", "0.3", "--repeats", "1", "--json", tmp_path / "s.json", timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "images/s vs in-process" in result.stdout
    figures = json.loads((tmp_path / "s.json").read_text())
    rows = figures["rows"]
    assert [(row["batch"], row["concurrency"]) for row in rows] == [
        (batch, concurrency) for batch in (1, 100) for concurrency in (0, 1, 8, 32)
    ]
    for row in rows:
        assert row["requests_per_second"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"], row
        assert row["images_per_second"] == pytest.approx(row["requests_per_second"] * row["batch"])
    (server,) = figures["servers"]
    most = int(re.search(r"most requests in one Session\.run: (\d+)\)", server).group(1))
    assert most > 1, server  # 8 and 32 clients at once: their requests shared Session.runs
