"""A photo or scan of one handwritten digit, prepared the way MNIST's own digits were.

MNIST's digits are light ink on a black field, the ink's bounding box scaled (keeping its aspect ratio,
anti-aliased) to fit a 20x20 box, and placed in a 28x28 image so that the ink's centre of mass is at the
centre. A scan is dark ink on light paper, any size, anywhere on the page; fed as it is, a network trained on
MNIST sees nothing it knows. prepare() goes: grayscale -> polarity to light-on-dark -> background removed ->
crop to the ink -> fit 20x20 -> centre of mass at (14, 14) of 28x28 -> floats in [0, 1], as data.py gives them.
"""
import numpy as np

from graph_nn.data import IMAGE_SIZE
from graph_nn.errors import GraphNNError

BOX = 20  # MNIST's digits fit a 20x20 box inside the 28x28 field
CENTRE = 14.0  # where MNIST's centres of mass lie, in pixel indices (measured on the test set: 13.99, 14.00)
MIN_CONTRAST = 0.15  # ink must differ this much (of the full 0..1 range) from the background to count as a digit
INK_THRESHOLD = 0.3  # of the ink's full strength: fainter pixels are paper texture or compression noise


def load_grayscale(path):
    """The image as floats in [0, 1] (0 black), transparent parts laid on white; one sentence if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, "white")
                image = Image.alpha_composite(background, image)
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


def ink_strength(gray, path):
    """Light-on-dark ink in [0, 1] with the background at 0; the background is the most common level."""
    background = float(np.median(gray))
    ink = gray - background if background < 0.5 else background - gray
    strength = float(ink.max())
    if strength < MIN_CONTRAST:
        raise GraphNNError(f"{path}: no digit found (the image is blank or has almost no contrast).")
    return np.clip(ink / strength, 0, 1)


def crop_to_ink(ink):
    rows, columns = np.nonzero(ink >= INK_THRESHOLD)
    ink = np.where(ink >= INK_THRESHOLD / 2, ink, 0)  # keep anti-aliased edges, drop the paper's grain
    return ink[rows.min():rows.max() + 1, columns.min():columns.max() + 1]


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
    field[top:top + height, left:left + width] = digit
    return field


def prepare(path):
    """The image at `path` as one MNIST-like digit: float32 [784] in [0, 1]."""
    digit = fit_box(crop_to_ink(ink_strength(load_grayscale(path), path)))
    digit = digit / digit.max()
    return place_by_centre_of_mass(digit).reshape(IMAGE_SIZE * IMAGE_SIZE)
