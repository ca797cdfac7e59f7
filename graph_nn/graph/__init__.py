"""The model graph: the builder in stages, optimizers, sessions, checkpoints, running a graph over arrays."""
