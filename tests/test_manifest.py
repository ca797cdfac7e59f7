"""`python run.py cluster --manifest tfjob`: the TFJob validated against the custom resource's published schema
(tests/data/tfjob/, with its source and licence), as strictly as the API server takes it; the pods' commands are
run as a cluster in tests/test_cluster.py."""

import copy
import json
import pathlib
import subprocess
import sys

import jsonschema
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "tests" / "data" / "tfjob" / "tfjob-v1.schema.json").read_text())
REPLICA_TYPES = {"PS", "Worker", "Chief", "Master", "Evaluator"}  # the operator's TFReplicaType values
RESTART_POLICIES = {"Always", "OnFailure", "Never", "ExitCode"}


def strict(schema):
    """The schema with unknown fields refused, as the API server refuses them (kubectl's --validate=strict): an
    object with its properties listed takes no other, unless it says it keeps unknown fields."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: strict(value) for key, value in schema.items()}
    keeps_unknown = "additionalProperties" in schema or schema.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in schema and not keeps_unknown:
        schema["additionalProperties"] = False
    return schema


VALIDATOR = jsonschema.Draft7Validator(strict(SCHEMA))


def manifest(*flags):
    made = subprocess.run(
        [sys.executable, ROOT / "run.py", "cluster", *flags, "--manifest", "tfjob", "--image", "graph-nn:1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    return json.loads(made.stdout)


def errors(document):
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in VALIDATOR.iter_errors(document)]


@pytest.mark.parametrize(
    "flags,training,replicas",
    [
        (["--workers", "1"], {}, {"PS": 1, "Chief": 1}),
        (
            ["--workers", "3", "--ps", "2", "--evaluator"],
            {"--model": "cnn", "--epochs": "3"},
            {"PS": 2, "Chief": 1, "Worker": 2, "Evaluator": 1},
        ),
        (
            ["--workers", "2", "--async"],
            {"--preset": "chapter2", "--learning-rate": "0.01"},
            {"PS": 1, "Chief": 1, "Worker": 1},
        ),
    ],
)  # fmt: skip
def test_the_manifest_is_a_tfjob_the_operator_accepts(flags, training, replicas):
    document = manifest(*flags, *[item for pair in training.items() for item in pair])
    assert errors(document) == []
    assert (document["apiVersion"], document["kind"]) == ("kubeflow.org/v1", "TFJob")
    specs = document["spec"]["tfReplicaSpecs"]
    assert {kind: spec["replicas"] for kind, spec in specs.items()} == replicas
    assert set(specs) <= REPLICA_TYPES
    for spec in specs.values():
        assert spec["restartPolicy"] in RESTART_POLICIES
        # The operator finds the port of TF_CONFIG by these names; without them it assumes 2222 on any container.
        (container,) = spec["template"]["spec"]["containers"]
        assert container["name"] == "tensorflow"
        assert container["ports"] == [{"name": "tfjob-port", "containerPort": 2222}]
    args = specs["Chief"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--run-dir") + 1] == f"/runs/{document['metadata']['name']}"
    for flag, value in training.items():  # the chief makes the run with the flags given
        assert args[args.index(flag) + 1] == value
    assert ("--async" in args) == ("--async" in flags)


def test_the_strict_schema_refuses_what_the_api_server_refuses():
    """The check is not vacuous: a misspelt field, a wrong type, a container without a name are refused."""
    good = manifest("--workers", "2")
    for path, value in [
        (("spec", "tfReplicaSpecs", "PS", "replica"), 1),
        (("spec", "tfReplicaSpecs", "PS", "replicas"), "one"),
        (("spec", "runPolicy", "backoffLimit"), 1.5),
    ]:
        bad = copy.deepcopy(good)
        node = bad
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        assert errors(bad), path
    nameless = copy.deepcopy(good)
    del nameless["spec"]["tfReplicaSpecs"]["Chief"]["template"]["spec"]["containers"][0]["name"]
    assert any("'name' is a required property" in error for error in errors(nameless))


@pytest.mark.parametrize(
    "flags,sentence",
    [
        (["--workers", "2", "--manifest", "tfjob"], "--manifest tfjob needs --image IMAGE"),
        (["--workers", "2", "--image", "x"], "--image, --name and --volume-claim are for --manifest tfjob."),
        (
            ["--workers", "2", "--manifest", "tfjob", "--image", "x", "--name", "My_Job"],
            "--name 'My_Job' is not a Kubernetes name",
        ),
        (
            ["--workers", "2", "--manifest", "tfjob", "--image", "x", "--data-dir", "/tmp"],
            "--data-dir names a path on this machine; a TFJob's pods have their own (give no --data-dir).",
        ),
    ],
)
def test_a_manifest_asked_for_wrongly_is_refused_in_one_sentence(flags, sentence):
    made = subprocess.run(
        [sys.executable, ROOT / "run.py", "cluster", *flags], capture_output=True, text=True, timeout=120
    )
    assert made.returncode == 2 and made.stdout == ""
    assert made.stderr.strip().startswith(f"graph-nn: error: {sentence}"), made.stderr
