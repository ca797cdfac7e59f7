"""Child processes that run this very graph_nn, installed or not: a sweep's runs, a cluster's tasks, the
Grappler log's training step."""

import os
import pathlib
import sys

GRAPH_NN = [sys.executable, "-m", "graph_nn"]  # == python run.py, in a process of its own
PACKAGE_PARENT = str(pathlib.Path(__file__).resolve().parent.parent.parent)


def child_environment(**variables):
    """This process's environment with `variables` set, and this graph_nn first on the child's import path."""
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")])),
        **variables,
    )
