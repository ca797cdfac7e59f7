"""`python run.py cluster --manifest tfjob --image IMAGE`: the cluster as a Kubeflow TFJob, for `kubectl apply -f`.

The training operator starts a pod per task and gives each its TF_CONFIG (spec.py reads it): a PS replica spec
per parameter server, the Chief (worker 0), the other workers and, optionally, the Evaluator, each running the
same image and the same training flags.  The run directory is on a volume every pod mounts (a claim the user
makes, ReadWriteMany where the pods may land on several nodes): the chief writes it, the other workers write
their worker-N/, the evaluator reads the checkpoints.  No TensorFlow here.
"""

import json
import re

from graph_nn.core.config import command_line
from graph_nn.core.errors import GraphNNError

PORT = 2222  # the operator's default, on its default port name and container name
MOUNT = "/runs"
# A killed or evicted pod (exit 128 + a signal) is started again: a worker rejoins, a chief restores its last
# checkpoint.  A user's mistake (exit 2) or a cluster that failed (exit 4, a ps gone) ends the job instead.
RESTART_POLICY = "ExitCode"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?")  # leaves room for the operator's "-worker-12"


def tfjob_manifest(name, image, claim, num_ps, num_workers, evaluator, training_args, task_args):
    """The TFJob of a cluster of num_ps parameter servers and num_workers workers (and an evaluator), as a dict:
    every worker and the evaluator run `train` with training_args and task_args, a ps with task_args."""
    if not DNS_LABEL.fullmatch(name):
        raise GraphNNError(
            f"--name '{name}' is not a Kubernetes name: lowercase letters, digits and '-', at most 42 characters, "
            "starting and ending with a letter or digit."
        )
    run_dir = f"{MOUNT}/{name}"
    worker = ["train", *training_args, *command_line(dict(run_dir=run_dir)), *task_args]
    replicas = {"PS": (num_ps, ["train", *task_args]), "Chief": (1, worker)}
    if num_workers > 1:
        replicas["Worker"] = (num_workers - 1, worker)
    if evaluator:
        replicas["Evaluator"] = (1, worker)
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": name},
        "spec": {
            # Every task ends by itself (a ps once every worker is done, the evaluator once it has evaluated the
            # last checkpoint): none is deleted when the chief has ended the job.
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 3},
            "tfReplicaSpecs": {
                kind: replica_spec(count, image, args, claim) for kind, (count, args) in replicas.items()
            },
        },
    }


def replica_spec(count, image, args, claim):
    container = {
        "name": "tensorflow",
        "image": image,
        "command": ["python", "-m", "graph_nn"],
        "args": args,
        "ports": [{"name": "tfjob-port", "containerPort": PORT}],
        "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}],
        "volumeMounts": [{"name": "runs", "mountPath": MOUNT}],
    }
    return {
        "replicas": count,
        "restartPolicy": RESTART_POLICY,
        "template": {
            "spec": {
                "containers": [container],
                "volumes": [{"name": "runs", "persistentVolumeClaim": {"claimName": claim}}],
            }
        },
    }


def manifest_text(manifest):
    """JSON, which kubectl reads as it reads YAML."""
    return json.dumps(manifest, indent=2) + "\n"
