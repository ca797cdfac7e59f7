"""Digits as a user scans them, made from MNIST test digits, and how trained runs read them.

A "scan" is a test digit inverted to dark ink on light paper, enlarged 3-4x, placed off-centre on a larger
grey-white page with some paper grain, saved as PNG or JPEG. For each run this prints the accuracy of
`predict` (MNIST's preparation, graph_nn/digit_images.py) and of a plain resize of the page to 28x28:

    python scripts/scanned_digits.py --count 1000 RUN_DIR [RUN_DIR ...]
"""
import argparse
import pathlib
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from graph_nn import inference  # noqa: E402
from graph_nn.data import IMAGE_SIZE, load_dataset  # noqa: E402
from graph_nn.evaluate import restored_session  # noqa: E402
from graph_nn.predict import predict_files  # noqa: E402

PAGE = (320, 240)  # width, height
PAPER = 235  # the paper's grey level


def scan(image, rng):
    """One flattened [0, 1] MNIST digit as a page: dark on light, 3-4x larger, off-centre, with paper grain."""
    ink = Image.fromarray(np.round((1 - image.reshape(IMAGE_SIZE, IMAGE_SIZE)) * 255).astype(np.uint8))
    size = int(IMAGE_SIZE * rng.uniform(3, 4))
    ink = np.asarray(ink.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
    width, height = PAGE
    page = PAPER + rng.normal(0, 4, (height, width))
    top, left = rng.integers(0, height - size), rng.integers(0, width - size)
    page[top:top + size, left:left + size] = np.minimum(page[top:top + size, left:left + size], ink)
    return Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))


def write_scans(split, count, directory, seed=0):
    """count scans of the first test digits, every other one a JPEG; returns their paths and labels."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = pathlib.Path(directory) / f"{i:04d}_label{split.labels[i]}.{'jpg' if i % 2 else 'png'}"
        scan(split.images[i], rng).save(path, **({"quality": 75} if i % 2 else {}))
        paths.append(path)
    return paths, split.labels[:count]


def plain_resize(path):
    """What a user might try first: the whole page, grayscale, squeezed to 28x28."""
    with Image.open(path) as image:
        pixels = image.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(pixels, dtype=np.float32).reshape(IMAGE_SIZE * IMAGE_SIZE) / 255


def accuracies(run_dir, paths, labels):
    """(accuracy of predict, accuracy on plainly resized pages) of one run."""
    predicted = np.array([p.digit for p in predict_files(run_dir, paths)])
    with restored_session(run_dir) as (sess, model, _):
        plain = inference.probabilities(sess, model, np.stack([plain_resize(p) for p in paths])).argmax(axis=1)
    return float(np.mean(predicted == labels)), float(np.mean(plain == labels))


def main():
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # compat.v1 deprecation notices
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--keep", help="write the scans into this directory instead of a temporary one")
    args = parser.parse_args()
    split = load_dataset().test
    with tempfile.TemporaryDirectory() as scratch:
        directory = pathlib.Path(args.keep or scratch)
        directory.mkdir(parents=True, exist_ok=True)
        paths, labels = write_scans(split, args.count, directory)
        for run_dir in args.runs:
            prepared, plain = accuracies(run_dir, paths, labels)
            print(f"{run_dir}: predict {prepared:.4f} - plain 28x28 resize {plain:.4f} ({args.count} scans)")


if __name__ == "__main__":
    main()
