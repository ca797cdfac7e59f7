"""Article 000 as a Keras user writes it: the baseline of `scripts/whole_run.py`.

Deep Learning with Python's chapter 2 network (Dense 512 relu, Dense 10 softmax, RMSprop, batch 128, 5 epochs),
fit then evaluate, on the MNIST files this package ships (keras.datasets would download them).
"""

import gzip
import pathlib

import numpy as np
from tensorflow import keras

MNIST = pathlib.Path(__file__).resolve().parent.parent / "graph_nn" / "data" / "mnist"


def idx(name, offset):
    return np.frombuffer(gzip.open(MNIST / f"{name}.gz").read(), np.uint8, offset=offset)


train_images = idx("train-images-idx3-ubyte", 16).reshape(60000, 784).astype("float32") / 255
train_labels = idx("train-labels-idx1-ubyte", 8)
test_images = idx("t10k-images-idx3-ubyte", 16).reshape(10000, 784).astype("float32") / 255
test_labels = idx("t10k-labels-idx1-ubyte", 8)

network = keras.Sequential([keras.layers.Dense(512, activation="relu"), keras.layers.Dense(10, activation="softmax")])
network.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
network.fit(train_images, train_labels, epochs=5, batch_size=128)
test_loss, test_acc = network.evaluate(test_images, test_labels)
print("test_acc:", test_acc)
