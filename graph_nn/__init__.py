"""graph_nn: TensorFlow 1-style graph-mode networks for MNIST, with TensorBoard as the window."""
import os

# TensorFlow's C++ INFO/WARNING chatter would bury the training output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
