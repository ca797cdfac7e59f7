"""A photo or scan of one handwritten digit, prepared the way MNIST's own digits were.

MNIST's digits are light ink on a black field, the ink's bounding box scaled (keeping its aspect ratio,
anti-aliased) to fit a 20x20 box, and placed in a 28x28 image so that the ink's centre of mass is at the
centre. A scan is dark ink on light paper, any size, anywhere on the page; fed as it is, a network trained on
MNIST sees nothing it knows. prepare() goes: grayscale -> polarity to light-on-dark -> paper removed ->
crop to the ink -> fit 20x20 -> centre of mass at (14, 14) of 28x28 -> floats in [0, 1], as data.py gives them.
"""

import io
import os

import numpy as np

from graph_nn.core.errors import GraphNNError
from graph_nn.data.dataset import IMAGE_SIZE

BOX = 20  # MNIST's digits fit a 20x20 box inside the 28x28 field
CENTRE = 14.0  # where MNIST's centres of mass lie, in pixel indices (measured on the test set: 13.99, 14.00)
MIN_CONTRAST = 0.15  # ink must differ this much (of the full 0..1 range) from the background to count as a digit
INK_THRESHOLD = 0.3  # of the ink's full strength: fainter pixels are paper texture or compression noise
FIT_PIXELS = 2_500  # at most this many pixels, evenly spread, fit the paper's level
PAPER_FIT_ROUNDS = 4  # fits of the paper's level, each without the ink the one before found
MIN_GRAIN = 0.01  # a floor for the paper's spread: a flat synthetic background has none
# The largest image read, checked on the size its header gives before a pixel is decoded: a 50-megapixel photo
# takes ~0.8 GB on its way to 28x28 (measured: 16 bytes a pixel); Pillow's own limit would let 179 megapixels in.
MAX_PIXELS = 50_000_000
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16-bit grey, which Image.convert("L") would clip


def open_image(source, path):
    """Pillow's image of source (a file's path, or the bytes of an image that `serve`'s page sent, called path in
    the sentences), its header read and nothing decoded yet; refused when it is empty, larger than MAX_PIXELS or
    animated (which of its frames is the digit?)."""
    from PIL import Image

    if (len(source) if isinstance(source, bytes) else os.path.getsize(source)) == 0:
        raise GraphNNError(f"{path}: an empty file (0 bytes), not an image.")
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the limit here is MAX_PIXELS, checked below
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise GraphNNError(
            f"{path}: a {width}x{height} image, more than the {MAX_PIXELS:,} pixels predict reads; scale it down first."
        )
    if getattr(image, "is_animated", False):
        frames = image.n_frames
        image.close()
        raise GraphNNError(f"{path}: an animated image of {frames} frames; save the frame with the digit alone.")
    return image


def load_grayscale(source, path):
    """The image as floats in [0, 1] (0 black), transparent parts laid on white; one sentence if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open_image(source, path) as image:
            image.load()
            if image.mode in SIXTEEN_BIT_MODES:
                gray = np.clip(np.asarray(image.convert("I"), dtype=np.float32) / 65535, 0, 1)
            elif image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, "white")
                image = Image.alpha_composite(background, image)
                gray = np.asarray(image.convert("L"), dtype=np.float32) / 255
            else:
                gray = np.asarray(image.convert("L"), dtype=np.float32) / 255
    except FileNotFoundError:
        raise GraphNNError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise GraphNNError(f"{path}: is a directory, not an image file.") from None
    except UnidentifiedImageError:
        raise GraphNNError(f"{path}: not an image file Pillow can read (PNG, JPEG, BMP, GIF, TIFF, ...).") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise GraphNNError(f"{path}: unreadable image ({e}).") from None
    if gray.size == 0:
        raise GraphNNError(f"{path}: the image has no pixels.")
    return gray


def quadratic_terms(y, x):
    """The six terms of a quadratic surface at coordinates y, x (arrays that broadcast together)."""
    return 1.0, x, y, x * x, x * y, y * y


def paper_level(gray, light):
    """The paper's grey level at every pixel: a quadratic surface fitted to the pixels that are not ink.

    A page lit from one side, or brighter in the middle, has paper darker in places than the ink elsewhere:
    against one level for the whole page, the shadowed paper would count as ink.  The fit starts from every
    pixel, then leaves out those more than 3 standard deviations of the paper's grain on the ink's side, and
    is refitted; a digit is a minority of a page's pixels, and a quadratic cannot follow its strokes.
    """
    height, width = gray.shape
    y, x = np.linspace(-1, 1, height, dtype=np.float32), np.linspace(-1, 1, width, dtype=np.float32)
    step = max(1, int(np.sqrt(height * width / FIT_PIXELS)))  # an even sample is enough for six coefficients
    sample = gray[::step, ::step].ravel()
    design = np.stack(np.broadcast_arrays(*quadratic_terms(y[::step, None], x[None, ::step])), axis=-1)
    design = design.reshape(len(sample), -1)
    ink_side = -1 if light else 1
    paper = np.ones(len(sample), dtype=bool)
    for _ in range(PAPER_FIT_ROUNDS):
        chosen = design[paper]
        # The normal equations: 6x6, where lstsq on the pixels themselves costs 20 ms a page (lstsq, not solve,
        # for an image one pixel high or wide, whose terms are not independent).
        coefficients = np.linalg.lstsq(chosen.T @ chosen, chosen.T @ sample[paper], rcond=None)[0]
        residual = ink_side * (sample - design @ coefficients)
        grain = 1.4826 * np.median(np.abs(residual[paper] - np.median(residual[paper])))  # a robust deviation
        paper = residual <= max(3 * grain, MIN_GRAIN)
    return sum(c * term for c, term in zip(coefficients.astype(np.float32), quadratic_terms(y[:, None], x[None, :])))


def ink_strength(gray, path):
    """Light-on-dark ink in [0, 1] with the paper at 0; the most common grey level tells the paper's polarity."""
    light = float(np.median(gray)) >= 0.5
    ink = gray - paper_level(gray, light)
    if light:
        ink = -ink
    strength = float(ink.max())
    if strength < MIN_CONTRAST:
        raise GraphNNError(f"{path}: no digit found (the image is blank or has almost no contrast).")
    return np.clip(ink / strength, 0, 1)


def crop_to_ink(ink):
    rows, columns = np.nonzero(ink >= INK_THRESHOLD)
    ink = np.where(ink >= INK_THRESHOLD / 2, ink, 0)  # keep anti-aliased edges, drop the paper's grain
    return ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]


def fit_box(ink, box=BOX):
    """Scaled so that its longer side is `box` pixels, keeping the aspect ratio."""
    from PIL import Image

    height, width = ink.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(ink.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized), 0, 1)


def place_by_centre_of_mass(digit, size=IMAGE_SIZE, centre=CENTRE):
    height, width = digit.shape
    rows, columns = np.mgrid[:height, :width]
    mass = digit.sum()
    top = int(round(centre - (rows * digit).sum() / mass))
    left = int(round(centre - (columns * digit).sum() / mass))
    top, left = min(max(top, 0), size - height), min(max(left, 0), size - width)
    field = np.zeros((size, size), dtype=np.float32)
    field[top : top + height, left : left + width] = digit
    return field


def prepare(source, path=None):
    """The image at the path source, or in the bytes source (named path in the sentences), as one MNIST-like
    digit: float32 [784] in [0, 1]."""
    path = source if path is None else path
    digit = fit_box(crop_to_ink(ink_strength(load_grayscale(source, path), path)))
    digit = digit / digit.max()
    return place_by_centre_of_mass(digit).reshape(IMAGE_SIZE * IMAGE_SIZE)


def prepare_files(paths):
    """(path, its digit or None, the sentence saying why it cannot be read or None) for each path, in order: one
    file that cannot be read does not stop the others."""
    prepared = []
    for path in paths:
        try:
            prepared.append((str(path), prepare(path), None))
        except GraphNNError as e:
            prepared.append((str(path), None, str(e)))
    return prepared
