"""Digits as a user scans them, made from MNIST test digits, and how trained runs read them.

A "scan" is a test digit inverted to dark ink on light paper, enlarged 3-4x, placed off-centre on a larger
grey-white page with some paper grain, saved as PNG or JPEG. A distortion makes it differ from MNIST in more
than size and polarity: the digit rotated by up to ROTATION degrees, its strokes thicker or thinner, blurred,
or the page unevenly lit. For each run this prints the accuracy of `predict` (MNIST's preparation,
graph_nn/data/digit_images.py) and of a plain resize of the page to 28x28:

    python scripts/scanned_digits.py --count 1000 RUN_DIR [RUN_DIR ...]
    python scripts/scanned_digits.py --count 1000 --distortion all RUN_DIR
"""

import argparse
import pathlib
import sys
import tempfile

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from graph_nn.data.dataset import IMAGE_SIZE, load_dataset  # noqa: E402
from graph_nn.graph import batched  # noqa: E402
from graph_nn.reports.evaluate import restored_session  # noqa: E402
from graph_nn.reports.predict import predict_files  # noqa: E402

PAGE = (320, 240)  # width, height
PAPER = 235  # the paper's grey level
# At 3-4x MNIST's scale, where MNIST's strokes are 6 to 12 pixels wide.
ROTATION = 10  # degrees, either way
THICKER = 7  # a 7x7 minimum filter: 3 pixels more ink on each side of a stroke, a felt-tip pen
THINNER = 5  # a 5x5 maximum filter: 2 pixels less on each side, a fine pen
BLUR = 4  # Gaussian radius in pixels, about one MNIST pixel: a photo slightly out of focus
SHADOW = 0.5  # uneven lighting: the light falls across the page to this fraction of its brightest


def rotated(ink, rng):
    return ink.rotate(rng.uniform(-ROTATION, ROTATION), Image.Resampling.BICUBIC, expand=True, fillcolor=255)


def thicker(ink, rng):
    return ink.filter(ImageFilter.MinFilter(THICKER))


def thinner(ink, rng):
    return ink.filter(ImageFilter.MaxFilter(THINNER))


def blurred(ink, rng):
    return ink.filter(ImageFilter.GaussianBlur(BLUR))


def uneven_lighting(page, rng):
    """The page lit from one side: brightness falls linearly to SHADOW across it, in a random direction."""
    height, width = page.shape
    angle = rng.uniform(0, 2 * np.pi)
    rows, columns = np.mgrid[:height, :width]
    along = np.cos(angle) * columns / width + np.sin(angle) * rows / height
    along = (along - along.min()) / (along.max() - along.min())
    return page * (1 - (1 - SHADOW) * along)


DIGIT_DISTORTIONS = {"rotated": rotated, "thicker": thicker, "thinner": thinner, "blurred": blurred}
PAGE_DISTORTIONS = {"uneven lighting": uneven_lighting}
DISTORTIONS = (*DIGIT_DISTORTIONS, *PAGE_DISTORTIONS)


def scan(image, rng, distortion=None):
    """One flattened [0, 1] MNIST digit as a page: dark on light, 3-4x larger, off-centre, with paper grain,
    and `distortion` (one of DISTORTIONS) if given."""
    ink = Image.fromarray(np.round((1 - image.reshape(IMAGE_SIZE, IMAGE_SIZE)) * 255).astype(np.uint8))
    size = int(IMAGE_SIZE * rng.uniform(3, 4))
    ink = ink.resize((size, size), Image.Resampling.BICUBIC)
    if distortion in DIGIT_DISTORTIONS:
        ink = DIGIT_DISTORTIONS[distortion](ink, rng)
    ink = np.asarray(ink, dtype=np.float32)
    ink_height, ink_width = ink.shape
    width, height = PAGE
    page = PAPER + rng.normal(0, 4, (height, width))
    top, left = rng.integers(0, height - ink_height), rng.integers(0, width - ink_width)
    page[top : top + ink_height, left : left + ink_width] = np.minimum(
        page[top : top + ink_height, left : left + ink_width], ink
    )
    if distortion in PAGE_DISTORTIONS:
        page = PAGE_DISTORTIONS[distortion](page, rng)
    return Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))


def write_scans(split, count, directory, seed=0, distortion=None):
    """count scans of the first test digits, every other one a JPEG; returns their paths and labels."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = pathlib.Path(directory) / f"{i:04d}_label{split.labels[i]}.{'jpg' if i % 2 else 'png'}"
        scan(split.images[i], rng, distortion).save(path, **({"quality": 75} if i % 2 else {}))
        paths.append(path)
    return paths, split.labels[:count]


def plain_resize(path):
    """What a user might try first: the whole page, grayscale, squeezed to 28x28."""
    with Image.open(path) as image:
        pixels = image.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(pixels, dtype=np.float32).reshape(IMAGE_SIZE * IMAGE_SIZE) / 255


def predict_accuracy(run_dir, paths, labels):
    """The accuracy of `predict` on the files; a file it cannot read counts as wrong."""
    right = [p.error is None and p.digit == label for p, label in zip(predict_files(run_dir, paths), labels)]
    return float(np.mean(right))


def accuracies(run_dir, paths, labels):
    """(accuracy of predict, accuracy on plainly resized pages) of one run."""
    with restored_session(run_dir) as (sess, model, _):
        plain = batched.probabilities(sess, model, np.stack([plain_resize(p) for p in paths])).argmax(axis=1)
    return predict_accuracy(run_dir, paths, labels), float(np.mean(plain == labels))


def main():
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # compat.v1 deprecation notices
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument(
        "--distortion",
        choices=("none", "all", *DISTORTIONS),
        default="none",
        help="scans that differ from MNIST in more than size and polarity (default none)",
    )
    parser.add_argument("--keep", help="write the scans into this directory instead of a temporary one")
    args = parser.parse_args()
    split = load_dataset().test
    distortions = {"none": [None], "all": [None, *DISTORTIONS]}.get(args.distortion, [args.distortion])
    with tempfile.TemporaryDirectory() as scratch:
        for distortion in distortions:
            name = distortion or "none"
            directory = pathlib.Path(args.keep or scratch) / name.replace(" ", "-")
            directory.mkdir(parents=True, exist_ok=True)
            paths, labels = write_scans(split, args.count, directory, distortion=distortion)
            for run_dir in args.runs:
                prepared, plain = accuracies(run_dir, paths, labels)
                print(
                    f"{run_dir}: {name}: predict {prepared:.4f} - plain 28x28 resize {plain:.4f} ({args.count} scans)"
                )


if __name__ == "__main__":
    main()
