"""Instruments for what TensorFlow builds and runs: variables and FLOPs, Grappler, XLA, control flow, a distributed
step.
"""
