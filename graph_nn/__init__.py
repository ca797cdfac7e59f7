"""graph_nn: TensorFlow 1-style graph-mode networks for MNIST, with TensorBoard as the window."""

__version__ = "0.1.0"
