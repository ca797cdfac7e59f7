"""MNIST as TFRecord files of tf.train.Examples, as TensorFlow's convert_to_records.py wrote them, and read back.

Each example holds height, width, depth, label (int64) and image_raw (the 784 pixel bytes): the format of
fully_connected_reader.py.  Read back they give exactly the arrays the IDX files give (the same uint8 pixels
through data.dataset.preprocess), so a run trained from records trains on the same numbers.
"""

import os
import pathlib

import numpy as np
import tensorflow as tf

from graph_nn.core.errors import GraphNNError, WriteFailed, op_error_reason, write_cause
from graph_nn.core.run_dir import write_atomically
from graph_nn.data.dataset import (
    CLASSES_FILE,
    DIGITS,
    IMAGE_SIZE,
    NUM_CLASSES,
    RECORDS_SUFFIX,
    Dataset,
    preprocess,
    read_classes,
    record_files,
)

v1 = tf.compat.v1
PIXELS = IMAGE_SIZE * IMAGE_SIZE
FEATURES = {
    "height": tf.io.FixedLenFeature([], tf.int64),
    "width": tf.io.FixedLenFeature([], tf.int64),
    "depth": tf.io.FixedLenFeature([], tf.int64),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "image_raw": tf.io.FixedLenFeature([], tf.string),
}


def example(pixels, label):
    def int64(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    features = {
        "height": int64(IMAGE_SIZE),
        "width": int64(IMAGE_SIZE),
        "depth": int64(1),
        "label": int64(int(label)),
        "image_raw": tf.train.Feature(bytes_list=tf.train.BytesList(value=[pixels.tobytes()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=features))


def write_split(path, split):
    """split's examples into path, through a temporary file renamed at the end: a file cut short by a full
    disk or a kill is never left under the name a reader looks for."""
    # The float pixels are k/255 in float32; times 255 and rounded they are the file's bytes again, exactly.
    pixels = np.rint(split.images * 255).astype(np.uint8)
    partial = path.with_name(path.name + ".partial")
    try:
        with tf.io.TFRecordWriter(str(partial)) as writer:
            for image, label in zip(pixels, split.labels):
                writer.write(example(image, label).SerializeToString())
        os.replace(partial, path)
    except (OSError, tf.errors.OpError) as e:
        partial.unlink(missing_ok=True)
        raise WriteFailed(f"{path}: cannot be written ({write_cause(e, path.parent)}).") from None


def write_records(dataset, out_dir, validation_size):
    """train, validation (the training set's last validation_size examples) and test .tfrecords in out_dir;
    returns {split: (path, examples)}."""
    if not 0 <= validation_size < len(dataset.train):
        raise GraphNNError(
            f"--validation-size must be from 0 to {len(dataset.train) - 1:,} (the training set has "
            f"{len(dataset.train):,} examples), got {validation_size}."
        )
    out_dir = pathlib.Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if dataset.classes != DIGITS:
            write_atomically(out_dir / CLASSES_FILE, "\n".join(dataset.classes) + "\n")
    except OSError as e:
        raise GraphNNError(f"{out_dir}: cannot write there ({e.strerror or e}).") from None
    kept = len(dataset.train) - validation_size
    splits = {"train": dataset.train[:kept], "validation": dataset.train[kept:], "test": dataset.test}
    written = {}
    for name, split in splits.items():
        if len(split):
            path = out_dir / (name + RECORDS_SUFFIX)
            write_split(path, split)
            written[name] = (path, len(split))
    return written


def parse(serialized):
    """One serialized Example -> (the 784 pixel bytes as uint8, the label)."""
    features = tf.io.parse_single_example(serialized, FEATURES)
    pixels = tf.io.decode_raw(features["image_raw"], tf.uint8)
    pixels.set_shape([PIXELS])
    return pixels, features["label"]


def whole(paths):
    """A tf.data.Dataset of one element, every example of the files in order: (pixels [n, 784] uint8, labels [n])."""
    # One batch as large as the files could hold (an Example takes more bytes than its 784 pixels): the whole
    # split as two tensors, for gathering batches by index.  The bound matters: batch() allocates for it.
    most = sum(os.path.getsize(p) for p in paths) // PIXELS + 1
    return tf.data.TFRecordDataset([str(p) for p in paths]).map(parse).batch(most)


def scaled(pixels, labels):
    """The graph's counterpart of data.dataset.preprocess: float pixels in [0, 1] and one-hot labels."""
    return tf.cast(pixels, tf.float32) / 255, tf.one_hot(labels, NUM_CLASSES)


def read_examples(path):
    """A .tfrecords file's (pixels uint8 [n, 784], labels [n]), or one sentence naming the file."""
    with tf.Graph().as_default():
        element = v1.data.make_one_shot_iterator(whole([path])).get_next()
        try:
            with v1.Session() as sess:
                pixels, labels = sess.run(element)
        except tf.errors.OutOfRangeError:
            raise GraphNNError(f"{path}: holds no examples.") from None
        except tf.errors.OpError as e:
            reason = op_error_reason(e)
            raise GraphNNError(f"{path}: not a file of MNIST tf.train.Examples ({reason}).") from None
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise GraphNNError(f"{path}: labels must be 0-9, found {labels.min()}..{labels.max()}.")
    return pixels, labels


def load_records(data_dir, classes_file=None):
    """The Dataset of convert-to-records' files in data_dir: train.tfrecords and validation.tfrecords together
    are the training set, in that order (the training set they were written from), test.tfrecords the test set."""
    files = training_files(data_dir)
    train = [read_examples(path) for path in files]
    pixels, labels = (np.concatenate(parts) for parts in zip(*train))
    test_pixels, test_labels = read_examples(record_files(data_dir)["test"])
    data_dir = pathlib.Path(data_dir)
    if classes_file is None and (data_dir / CLASSES_FILE).exists():
        classes_file = data_dir / CLASSES_FILE
    return Dataset(
        train=preprocess(pixels.reshape(-1, IMAGE_SIZE, IMAGE_SIZE), labels),
        test=preprocess(test_pixels.reshape(-1, IMAGE_SIZE, IMAGE_SIZE), test_labels),
        source=str(data_dir),
        classes=read_classes(classes_file) if classes_file else DIGITS,
    )


def training_files(data_dir):
    """The files a tfrecord pipeline reads the training set from, in order."""
    paths = record_files(data_dir)
    return [paths[name] for name in ("train", "validation") if name in paths]
