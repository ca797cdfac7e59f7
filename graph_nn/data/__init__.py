"""MNIST as arrays, without TensorFlow: IDX files, the checked data set, which examples each step trains on, digit
images.
"""
