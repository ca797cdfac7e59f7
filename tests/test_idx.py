"""The IDX reader and the MNIST loader, on the shipped files and on deliberately broken copies."""

import gzip
import re
import shutil
import struct

import numpy as np
import pytest

from graph_nn.core.errors import GraphNNError
from graph_nn.data import dataset
from graph_nn.data.idx import parse_idx, read_idx
from tests.conftest import run_cli


def test_shipped_mnist_matches_the_published_figures(mnist):
    assert mnist.train.images.shape == (60000, 784) and mnist.test.images.shape == (10000, 784)
    assert mnist.train.images.dtype == np.float32
    assert mnist.train.images.min() == 0.0 and mnist.train.images.max() == 1.0
    assert np.bincount(mnist.train.labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist.test.labels[0] == 7
    assert mnist.train.images.mean() * 255 == pytest.approx(33.32, abs=0.01)
    assert mnist.test.images.mean() * 255 == pytest.approx(33.79, abs=0.01)


def test_one_hot_labels_agree_with_integer_labels(mnist):
    assert mnist.train.onehot.shape == (60000, 10)
    assert (mnist.train.onehot.argmax(axis=1) == mnist.train.labels).all()
    assert (mnist.train.onehot.sum(axis=1) == 1).all()


def test_raw_idx_header_is_read(tmp_path):
    images = read_idx(dataset.SHIPPED_DIR / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8


@pytest.mark.parametrize(
    "dtype_code,dtype", [(0x08, ">u1"), (0x09, ">i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")]
)
def test_every_idx_dtype_is_decoded_big_endian(dtype_code, dtype):
    values = np.arange(-3, 9).reshape(3, 4).astype(dtype) if "u" not in dtype else np.arange(12).reshape(3, 4)
    content = struct.pack(">BBBB", 0, 0, dtype_code, 2) + struct.pack(">II", 3, 4) + values.astype(dtype).tobytes()
    parsed = parse_idx(content)
    assert parsed.shape == (3, 4)
    assert parsed.dtype.isnative
    np.testing.assert_array_equal(parsed, values)


def copy_mnist(tmp_path):
    for path in dataset.SHIPPED_DIR.iterdir():
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def rewrite_gz(path, content):
    with gzip.open(path, "wb") as f:
        f.write(content)


def break_missing(d):
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    return "t10k-labels-idx1-ubyte.gz: file not found"


def break_truncated_gzip(d):
    path = d / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    (d / "SHA256SUMS").unlink()
    return "train-labels-idx1-ubyte.gz: not a complete gzip file"


def break_checksum(d):
    path = d / "t10k-labels-idx1-ubyte.gz"
    content = gzip.decompress(path.read_bytes())
    rewrite_gz(path, content[:-1] + bytes([(content[-1] + 1) % 10]))
    return "t10k-labels-idx1-ubyte.gz: SHA-256 checksum mismatch"


def break_magic(d):
    path = d / "t10k-images-idx3-ubyte.gz"
    content = gzip.decompress(path.read_bytes())
    rewrite_gz(path, b"\x12\x34" + content[2:])
    (d / "SHA256SUMS").unlink()
    return "t10k-images-idx3-ubyte.gz: wrong magic number 0x1234"


def break_payload(d):
    path = d / "t10k-images-idx3-ubyte.gz"
    rewrite_gz(path, gzip.decompress(path.read_bytes())[:-784])
    (d / "SHA256SUMS").unlink()
    return "t10k-images-idx3-ubyte.gz: payload is 7839216 bytes but the header (10000x28x28 uint8) needs 7840000"


def break_count(d):
    path = d / "t10k-labels-idx1-ubyte.gz"
    content = gzip.decompress(path.read_bytes())
    rewrite_gz(path, content[:4] + struct.pack(">I", 9999) + content[8:-1])
    (d / "SHA256SUMS").unlink()
    return "t10k-labels-idx1-ubyte.gz: 9999 labels for 10000 images"


BREAKAGES = [break_missing, break_truncated_gzip, break_checksum, break_magic, break_payload, break_count]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda f: f.__name__)
def test_broken_data_names_the_file_and_the_fault(tmp_path, breakage):
    expected = breakage(copy_mnist(tmp_path))
    with pytest.raises(GraphNNError, match=expected.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        dataset.load_dataset(tmp_path)


@pytest.mark.parametrize("breakage", [break_checksum, break_count], ids=lambda f: f.__name__)
def test_broken_data_ends_the_cli_in_one_sentence(tmp_path, breakage):
    expected = breakage(copy_mnist(tmp_path))
    result = run_cli("--steps", "1", "--data-dir", tmp_path, "--logdir", tmp_path / "logs")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("graph-nn: error:")]
    assert len(error_lines) == 1 and expected in error_lines[0]


def test_another_idx_set_without_checksums_loads(tmp_path):
    """A --data-dir like Fashion-MNIST's: same names, uncompressed here, no SHA256SUMS."""
    d = copy_mnist(tmp_path)
    (d / "SHA256SUMS").unlink()
    for path in list(d.glob("*.gz")):
        path.with_suffix("").write_bytes(gzip.decompress(path.read_bytes()))
        path.unlink()
    loaded = dataset.load_dataset(d)
    assert len(loaded.train) == 60000 and len(loaded.test) == 10000


FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def named_set(tmp_path_factory):
    """A small IDX set (MNIST's first 2,000 and 500 images, under Fashion-MNIST's class names) with a classes.txt."""
    d = tmp_path_factory.mktemp("named")
    for split, n in (("train", 2000), ("t10k", 500)):
        write_idx(d / f"{split}-images-idx3-ubyte", read_idx(dataset.SHIPPED_DIR / f"{split}-images-idx3-ubyte.gz")[:n])
        write_idx(d / f"{split}-labels-idx1-ubyte", read_idx(dataset.SHIPPED_DIR / f"{split}-labels-idx1-ubyte.gz")[:n])
    (d / "classes.txt").write_text("\n".join(FASHION) + "\n")
    return d


def test_a_data_set_with_classes_txt_is_reported_and_predicted_by_its_class_names(named_set, tmp_path):
    from PIL import Image

    from graph_nn.reports.predict import predict_files

    result = run_cli(
        "--model", "mlp64", "--steps", "40", "--batch-size", "100", "--data-dir", named_set, "--logdir", tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "(500 test images)" in out and "The first 10 test images: probabilities of the 10 classes" in out
    labels = read_idx(named_set / "t10k-labels-idx1-ubyte")
    assert f"label {FASHION[labels[0]]}" in out.split("[0] ")[1].splitlines()[0]
    assert "class        precision  recall  support" in out
    assert re.search(r"^ Ankle boot +\d\.\d{4} +\d\.\d{4} +\d+$", out, re.M)  # precision and recall per class
    assert re.search(r"^T-shirt/top( +\d+){10}$", out, re.M)  # a row of the confusion matrix
    (run_dir,) = tmp_path.iterdir()
    metadata = (run_dir / "evaluation" / "metadata.tsv").read_text().splitlines()
    assert metadata[1].split("\t")[0] == FASHION[labels[0]]

    image = tmp_path / "first.png"
    Image.fromarray(read_idx(named_set / "t10k-images-idx3-ubyte")[0]).save(image)
    (prediction,) = predict_files(run_dir, [image])
    assert str(prediction).startswith(f"{image}: {FASHION[prediction.digit]} (p=")
    assert "  Ankle boot:" in str(prediction)


def test_class_names_can_come_from_another_file(named_set, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(name.upper() for name in FASHION))
    assert dataset.load_dataset(named_set, names).classes == tuple(name.upper() for name in FASHION)
    assert dataset.load_dataset(named_set).classes == FASHION
    assert dataset.load_dataset().classes == dataset.DIGITS


@pytest.mark.parametrize(
    "lines,message",
    [
        (FASHION[:9], "expected 10 class names, one per line in label order, found 9 lines."),
        (FASHION[:3] + ("",) + FASHION[4:], "line 4 is empty; every label needs a name."),
        (FASHION[:9] + ("Trouser",), "line 10 repeats the name 'Trouser' of line 2."),
        (FASHION[:9] + ("Ankle\tboot",), "line 10 holds a tab, which a class name cannot."),
    ],
)
def test_a_malformed_classes_txt_is_named_in_one_sentence(lines, message, tmp_path):
    (tmp_path / "classes.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(GraphNNError) as error:
        dataset.read_classes(tmp_path / "classes.txt")
    assert str(error.value) == f"{tmp_path / 'classes.txt'}: {message}"
