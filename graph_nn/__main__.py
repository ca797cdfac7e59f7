"""python -m graph_nn == python run.py == graph-nn (how a sweep starts its runs)."""

import sys

from graph_nn.cli.main import main

sys.exit(main())
