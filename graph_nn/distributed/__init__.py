"""Training on TensorFlow 1's own distributed runtime: the cluster, the replicated graphs, each task's part, the
launcher.
"""
