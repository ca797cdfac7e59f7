"""MNIST from the IDX files shipped inside the package (or any IDX set in --data-dir), checked and preprocessed.

Preprocessing follows the articles: images flattened to 784 floats in [0, 1], labels kept as
integers and one-hot encoded for softmax_cross_entropy_with_logits.  A data set's classes are named by a
classes.txt beside its files (Fashion-MNIST's "T-shirt/top", "Trouser", ...); without one they are digits.
"""

import dataclasses
import hashlib
import pathlib

import numpy as np

from graph_nn.core.errors import GraphNNError
from graph_nn.data.idx import read_idx

SHIPPED_DIR = pathlib.Path(__file__).resolve().parent / "mnist"
CHECKSUM_FILE = "SHA256SUMS"
CLASSES_FILE = "classes.txt"
NUM_CLASSES = 10
DIGITS = tuple(str(digit) for digit in range(NUM_CLASSES))  # MNIST's class names
IMAGE_SIZE = 28
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


# The TFRecord files `python run.py convert-to-records` writes, SPLIT.tfrecords, as TensorFlow's
# convert_to_records.py named them; validation.tfrecords holds the last examples of the training set.
RECORD_SPLITS = ("train", "validation", "test")
RECORDS_SUFFIX = ".tfrecords"


@dataclasses.dataclass(frozen=True)
class Split:
    images: np.ndarray  # float32 [n, 784] in [0, 1]
    labels: np.ndarray  # int64 [n]
    onehot: np.ndarray  # float32 [n, 10]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, rows):
        return Split(self.images[rows], self.labels[rows], self.onehot[rows])

    def take(self, n):
        return self[:n]


@dataclasses.dataclass(frozen=True)
class Dataset:
    train: Split
    test: Split
    source: str
    classes: tuple = DIGITS  # the name of each label, in label order
    held_out: Split | None = None  # training examples hold_out() set aside for validation

    @property
    def validation(self):
        """What a run validates on: the examples held out of the training set, else the test set (as the articles)."""
        return self.test if self.held_out is None else self.held_out


def hold_out(dataset, n):
    """The dataset with its last n training examples set aside for validation; n = 0 keeps it as it is.

    The last ones, so that the examples left keep their indices and the batches of a step stay those of
    (seed, step) over the remaining examples.
    """
    if not n:
        return dataset
    if n >= len(dataset.train):
        raise GraphNNError(
            f"--validation-split {n} leaves no training examples: the training set has {len(dataset.train):,}."
        )
    return dataclasses.replace(dataset, train=dataset.train[:-n], held_out=dataset.train[-n:])


def find_file(data_dir, stem):
    """The gzipped or the plain IDX file for `stem` in data_dir."""
    for name in (stem + ".gz", stem):
        path = pathlib.Path(data_dir) / name
        if path.exists():
            return path
    raise GraphNNError(f"{pathlib.Path(data_dir) / (stem + '.gz')}: file not found (nor {stem} uncompressed).")


def read_checksums(data_dir):
    """{file name: sha256} from data_dir/SHA256SUMS, or {} when the directory has none."""
    path = pathlib.Path(data_dir) / CHECKSUM_FILE
    if not path.exists():
        return {}
    sums = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if line.strip():
            fields = line.split(maxsplit=1)
            if len(fields) != 2:
                raise GraphNNError(f"{path}: line {number} is not 'DIGEST NAME'.")
            sums[fields[1].strip().lstrip("*")] = fields[0].lower()
    return sums


def verify_checksum(path, checksums):
    expected = checksums.get(path.name)
    if expected is None:
        return
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):  # a file of any size, a megabyte at a time
                digest.update(block)
    except OSError as e:
        raise GraphNNError(f"{path}: cannot be read ({e.strerror or e}).") from None
    actual = digest.hexdigest()
    if actual != expected:
        raise GraphNNError(f"{path}: SHA-256 checksum mismatch (expected {expected[:12]}..., got {actual[:12]}...).")


def read_checked(data_dir, stem, checksums):
    path = find_file(data_dir, stem)
    verify_checksum(path, checksums)
    return path, read_idx(path)


def make_split(data_dir, images_stem, labels_stem, checksums):
    images_path, images = read_checked(data_dir, images_stem, checksums)
    labels_path, labels = read_checked(data_dir, labels_stem, checksums)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise GraphNNError(f"{images_path}: expected images of shape [n, 28, 28], found {list(images.shape)}.")
    if labels.ndim != 1:
        raise GraphNNError(f"{labels_path}: expected a 1-D label vector, found shape {list(labels.shape)}.")
    if len(images) == 0:
        raise GraphNNError(f"{images_path}: holds no images.")
    if len(images) != len(labels):
        raise GraphNNError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}.")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise GraphNNError(f"{labels_path}: labels must be 0-9, found {labels.min()}..{labels.max()}.")
    return preprocess(images, labels)


def preprocess(images, labels):
    """uint8 [n, 28, 28] images and integer labels -> the arrays the graphs are fed with."""
    # One pass into one new array: casting first and dividing after would allocate (and page in) two.
    flat = np.divide(images.reshape(len(images), IMAGE_SIZE * IMAGE_SIZE), np.float32(255), dtype=np.float32)
    labels = labels.astype(np.int64)
    return Split(flat, labels, one_hot(labels))


def one_hot(labels, depth=NUM_CLASSES):
    return np.eye(depth, dtype=np.float32)[labels]


def read_classes(path):
    """The class names in a classes.txt: one per line, in label order, one for each of the 10 labels."""
    path = pathlib.Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise GraphNNError(f"{path}: file not found.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GraphNNError(f"{path}: cannot be read as UTF-8 text ({getattr(e, 'strerror', None) or e}).") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) != NUM_CLASSES:
        raise GraphNNError(
            f"{path}: expected {NUM_CLASSES} class names, one per line in label order, found {len(lines)} lines."
        )
    names = [line.strip() for line in lines]
    for number, name in enumerate(names, start=1):
        if not name:
            raise GraphNNError(f"{path}: line {number} is empty; every label needs a name.")
        if "\t" in name:  # the projector's metadata.tsv is tab-separated
            raise GraphNNError(f"{path}: line {number} holds a tab, which a class name cannot.")
        if name in names[: number - 1]:
            raise GraphNNError(f"{path}: line {number} repeats the name '{name}' of line {names.index(name) + 1}.")
    return tuple(names)


def load_dataset(data_dir=None, classes_file=None):
    """Train and test splits from data_dir (default: the MNIST files shipped with the package), with the class
    names of classes_file, else of data_dir/classes.txt, else digits."""
    data_dir = pathlib.Path(data_dir) if data_dir else SHIPPED_DIR
    if not data_dir.is_dir():
        raise GraphNNError(f"{data_dir}: data directory not found.")
    if classes_file is None and (data_dir / CLASSES_FILE).exists():
        classes_file = data_dir / CLASSES_FILE
    classes = read_classes(classes_file) if classes_file else DIGITS
    checksums = read_checksums(data_dir)
    train = make_split(data_dir, FILES["train_images"], FILES["train_labels"], checksums)
    test = make_split(data_dir, FILES["test_images"], FILES["test_labels"], checksums)
    return Dataset(train=train, test=test, source=str(data_dir), classes=classes)


def record_files(data_dir):
    """{split: path} of the TFRecord files in data_dir, validation's only where it exists."""
    data_dir = pathlib.Path(data_dir)
    paths = {split: data_dir / (split + RECORDS_SUFFIX) for split in RECORD_SPLITS}
    for split in ("train", "test"):
        if not paths[split].is_file():
            raise GraphNNError(
                f"{paths[split]}: file not found; --input tfrecord trains from the files that "
                f"python run.py convert-to-records OUT_DIR writes (then give --data-dir OUT_DIR)."
            )
    if not paths["validation"].is_file():
        del paths["validation"]
    return paths
