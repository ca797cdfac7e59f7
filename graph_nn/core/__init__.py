"""What every layer shares, without TensorFlow: errors, the configuration, the run directory, signals, child
processes.
"""
