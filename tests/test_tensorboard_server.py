"""The installed TensorBoard, started for real against a finished run, shows data on every dashboard we feed."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

STARTUP_SECONDS = 120


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, logdir, log_path):
        self.port = free_port()
        self.log = open(log_path, "w")  # noqa: SIM115 (closed in stop(), with the server)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorboard.main",
                "--logdir",
                str(logdir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--reload_interval",
                "1",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path, body=None):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            content = response.read()
        return content if path.startswith("/data/plugin/projector/tensor") else json.loads(content)

    def wait_for(self, path, ready, body=None):
        """The answer at `path` once ready(answer) holds; the server loads event files in the background."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert self.process.poll() is None, f"tensorboard exited: {pathlib.Path(self.log.name).read_text()}"
            try:
                answer = self.get(path, body)
                if ready(answer):
                    return answer
            except (urllib.error.URLError, ConnectionError):
                answer = None
            assert time.monotonic() < deadline, f"{path} never became ready; last answer: {answer}"
            time.sleep(0.5)

    def stop(self):
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def server(reported_run, short_run, tmp_path_factory):
    logdir = pathlib.Path(short_run.run_dir).parent
    tensorboard = Server(logdir, tmp_path_factory.mktemp("tensorboard") / "tensorboard.log")
    yield tensorboard
    tensorboard.stop()
    assert tensorboard.process.returncode is not None


@pytest.fixture(scope="module")
def run(short_run):
    return pathlib.Path(short_run.run_dir).name


def test_every_run_directory_is_a_run(server, run):
    expected = {run, f"{run}/train", f"{run}/validation", f"{run}/evaluation"}
    assert expected <= set(server.wait_for("/data/runs", lambda runs: expected <= set(runs)))


def test_every_dashboard_is_enabled(server):
    wanted = ("scalars", "histograms", "distributions", "graphs", "images", "pr_curves", "hparams", "projector")
    # The projector decides in a background thread whether it has data, so it may say no at first.
    plugins = server.wait_for("/data/plugins_listing", lambda p: all(p.get(name, {}).get("enabled") for name in wanted))
    assert all(plugins[name]["enabled"] for name in wanted)


def tags_of(answer, run):
    return set(answer.get(run, {}))


# TensorBoard loads runs, and the tags of each run, in the background: every wait below is for all of what the
# test then checks, not for the first sign of the run.
def test_scalars_histograms_and_graph(server, run):
    scalars = {"loss", "accuracy"}
    server.wait_for(
        "/data/plugin/scalars/tags",
        lambda t: scalars <= tags_of(t, f"{run}/train") and scalars <= tags_of(t, f"{run}/validation"),
    )
    histograms = {"hidden1/kernel", "gradients/hidden1/kernel"}
    server.wait_for("/data/plugin/histograms/tags", lambda t: histograms <= tags_of(t, f"{run}/train"))
    graphs = server.wait_for("/data/plugin/graphs/info", lambda info: f"{run}/train" in info)
    assert graphs[f"{run}/train"]["run_graph"] is True


def test_images_and_pr_curves(server, run):
    images = {"accuracy", "loss", "misclassified", "confusion_matrix", "input_digits/image/0_label_7"}
    server.wait_for("/data/plugin/images/tags", lambda t: images <= tags_of(t, f"{run}/evaluation"))
    digits = {f"digit_{d}/pr_curves" for d in range(10)}
    curves = server.wait_for("/data/plugin/pr_curves/tags", lambda t: digits <= tags_of(t, f"{run}/evaluation"))
    assert tags_of(curves, f"{run}/evaluation") == digits


def test_hparams_compare_runs_by_their_test_metrics(server, run, short_run):
    names = {"model", "optimizer", "learning_rate", "batch_size", "epochs", "init", "seed"}
    server.wait_for(
        "/data/plugin/hparams/experiment",
        lambda e: names <= {h["name"] for h in e.get("hparamInfos", [])},
        body={"experimentName": ""},
    )

    def metrics(group):
        return {(m["name"]["group"], m["name"]["tag"]): m["value"] for m in group.get("metricValues", [])}

    # The metrics come from the validation run's scalars, which may load after the hyper-parameters.
    groups = server.wait_for(
        "/data/plugin/hparams/session_groups",
        lambda g: any(("validation", "accuracy") in metrics(group) for group in g.get("sessionGroups", [])),
        body={
            "experimentName": "",
            "startIndex": 0,
            "sliceSize": 10,
            "allowedStatuses": ["STATUS_SUCCESS"],
            "colParams": [],
        },
    )["sessionGroups"]
    (group,) = groups
    assert group["hparams"]["model"] == "mlp64" and group["sessions"][0]["name"] == run
    assert metrics(group)[("validation", "accuracy")] == pytest.approx(short_run.test_accuracy)


def test_projector_serves_the_embedding(server, run):
    runs = server.wait_for("/data/plugin/projector/runs", lambda r: f"{run}/evaluation" in r)
    assert runs == [f"{run}/evaluation"]
    info = server.wait_for(f"/data/plugin/projector/info?run={run}/evaluation", lambda i: i.get("embeddings"))
    (embedding,) = info["embeddings"]
    assert embedding["tensorShape"] == [2000, 64] and embedding["sprite"]["singleImageDim"] == [28, 28]
    tensor = server.get(f"/data/plugin/projector/tensor?run={run}/evaluation&name=hidden1/activations")
    assert len(tensor) == 2000 * 64 * 4
