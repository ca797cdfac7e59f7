"""Train and study MNIST networks in TensorFlow 1-style graph mode: `python run.py --help`."""

import sys

from graph_nn.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
