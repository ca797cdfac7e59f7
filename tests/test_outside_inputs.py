"""Files and settings from the outside, through the real CLI: an image that is none, too large, empty, animated
or 16-bit; IDX files whose header lies; a TF_CONFIG too large or too deep.  Each ends in one sentence and exit
code 2, without a traceback, before TensorFlow is imported, and within a memory limit that reading the file as it
claims to be would break."""

import gzip
import json
import os
import resource
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from graph_nn.core.errors import GraphNNError
from graph_nn.data.dataset import FILES, SHIPPED_DIR
from graph_nn.data.digit_images import prepare
from graph_nn.distributed import spec
from tests.conftest import refused as refused_before_tensorflow

MEMORY_LIMIT = 1 << 30  # address space of the child: the files below claim (or hold) more than this


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def refused(*args, env=None):
    """run.py ARGS under MEMORY_LIMIT, refused (conftest.refused)."""
    return refused_before_tensorflow(*args, env=env, preexec_fn=limit_memory)


# ---- predict ---------------------------------------------------------------------------------------------------


def png(path, width, height, rows=None, depth=8):
    """A greyscale PNG whose header says width x height; its pixel data is `rows` zero rows (default: height),
    compressed a row at a time so that a large image costs no memory here."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pixels = zlib.compressobj(1)
    row = bytes(1 + width * depth // 8)
    data = b"".join(pixels.compress(row) for _ in range(height if rows is None else rows)) + pixels.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def digit_page(ink=0, paper=255, dtype=np.uint8):
    """A bar on paper: a '1' that prepare() finds."""
    page = np.full((60, 40), paper, dtype=dtype)
    page[10:50, 17:23] = ink
    return page


def make_not_an_image(path):
    path.write_text("a shopping list, not a picture\n")


def make_empty(path):
    path.write_bytes(b"")


def make_claiming_ten_gigapixels(path):
    png(path, 100_000, 100_000, rows=1)  # Pillow's own limit refuses it too, in its own words


def make_144_megapixels(path):
    png(path, 12_000, 12_000)  # under Pillow's limit: decoded, it took 2.8 GB and 15 s to say "no digit found"


def make_animated(path):
    frames = [Image.fromarray(digit_page()), Image.fromarray(digit_page(ink=255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


PREDICT_CASES = [  # (id, file name, how the file is made, the sentence after the path)
    (
        "not an image",
        "list.png",
        make_not_an_image,
        "not an image file Pillow can read (PNG, JPEG, BMP, GIF, TIFF, ...).",
    ),
    ("0 bytes", "empty.png", make_empty, "an empty file (0 bytes), not an image."),
    (
        "header claims 100000x100000",
        "huge.png",
        make_claiming_ten_gigapixels,
        "a 100000x100000 image, more than the 50,000,000 pixels predict reads; scale it down first.",
    ),
    (
        "12000x12000 of real data",
        "large.png",
        make_144_megapixels,
        "a 12000x12000 image, more than the 50,000,000 pixels predict reads; scale it down first.",
    ),
    (
        "animated GIF",
        "two.gif",
        make_animated,
        "an animated image of 2 frames; save the frame with the digit alone.",
    ),
]


@pytest.mark.parametrize("name,make,message", [case[1:] for case in PREDICT_CASES], ids=[c[0] for c in PREDICT_CASES])
def test_predict_refuses_a_file_in_one_sentence_before_decoding_it(name, make, message, short_run, tmp_path):
    path = tmp_path / name
    make(path)
    assert refused("predict", "--run", short_run.run_dir, path) == f"{path}: {message}"


def test_a_16_bit_png_is_read_as_its_8_bit_twin(tmp_path):
    """16-bit grey is scaled by 65535; Pillow's convert("L") clipped every value above 255 to white, so grey ink
    on grey paper (a scanner's 16-bit output) was a blank page."""
    Image.fromarray(digit_page(ink=60, paper=200)).save(tmp_path / "8.png")
    Image.fromarray(digit_page(ink=60 * 257, paper=200 * 257, dtype=np.uint16)).save(tmp_path / "16.png")
    assert Image.open(tmp_path / "16.png").mode == "I;16"
    np.testing.assert_allclose(prepare(tmp_path / "16.png"), prepare(tmp_path / "8.png"), atol=1e-5)


# ---- --data-dir: IDX headers that lie ----------------------------------------------------------------------------


def idx(dims, payload, magic=b"\x00\x00\x08"):
    return magic + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def replace(data_dir, key, content, compressed=False):
    """data_dir's file of FILES[key], replaced by content (plain, or gzipped as .gz)."""
    stem = FILES[key]
    (data_dir / (stem + ".gz")).unlink()
    if compressed:
        with gzip.open(data_dir / (stem + ".gz"), "wb") as f:
            f.write(content)
    else:
        (data_dir / stem).write_bytes(content)
    return data_dir / (stem + ".gz" if compressed else stem)


def write_gzip_bomb(path, header, gigabytes):
    """header, then `gigabytes` GB of zeros, as a few megabytes of gzip members (gzip reads them as one stream)."""
    zeros = gzip.compress(bytes(1 << 20), compresslevel=9)
    with open(path, "wb") as f:
        f.write(gzip.compress(header))
        for _ in range(gigabytes << 10):
            f.write(zeros)


IDX_CASES = [  # (id, file, its content, the sentence after its path)
    (
        "count says more images than the file holds",
        "train_labels",
        idx([60001], bytes(60000)),
        "payload is 60000 bytes but the header (60001 uint8) needs 60001.",
    ),
    (
        "count says fewer images than the file holds",
        "test_images",
        idx([9999, 28, 28], bytes(10000 * 784)),
        "payload is longer than the 7839216 bytes the header (9999x28x28 uint8) needs.",
    ),
    ("wrong magic", "test_labels", idx([10000], bytes(10000), magic=b"\x12\x34\x08"), "wrong magic number 0x12340801"),
    (
        "rows and columns not 28",
        "test_images",
        idx([10000, 32, 32], bytes(10000 * 32 * 32)),
        "expected images of shape [n, 28, 28], found [10000, 32, 32].",
    ),
    (
        "count of four billion",
        "test_images",
        idx([0xFFFFFFFF, 28, 28], bytes(784)),
        "the header claims 3,367,254,359,280 bytes of data, more than the 1,073,741,824 graph_nn reads (is its "
        "count of items right?).",
    ),
]


@pytest.fixture
def data_dir(tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(SHIPPED_DIR, copy)
    (copy / "SHA256SUMS").unlink()  # user data: no checksums
    return copy


@pytest.mark.parametrize("key,content,message", [case[1:] for case in IDX_CASES], ids=[c[0] for c in IDX_CASES])
def test_an_idx_header_that_lies_is_named_in_one_sentence(key, content, message, data_dir, tmp_path):
    path = replace(data_dir, key, content)
    sentence = refused("--steps", "1", "--data-dir", data_dir, "--logdir", tmp_path / "logs")
    assert sentence.startswith(f"{path}: {message}"), sentence


def test_a_gzip_bomb_past_its_header_is_read_no_further_than_the_header_says(data_dir, tmp_path):
    """10,000 labels announced, 2 GB of zeros after them in a 2 MB .gz: the process stays under its 1 GB."""
    (data_dir / (FILES["test_labels"] + ".gz")).unlink()
    path = data_dir / (FILES["test_labels"] + ".gz")
    write_gzip_bomb(path, idx([10000], bytes(10000)), gigabytes=2)
    assert path.stat().st_size < 4 << 20
    sentence = refused("--steps", "1", "--data-dir", data_dir, "--logdir", tmp_path / "logs")
    assert sentence == f"{path}: payload is longer than the 10000 bytes the header (10000 uint8) needs."


# ---- TF_CONFIG ---------------------------------------------------------------------------------------------------

HOSTS = [f"host{i}.example.com:{2000 + i % 60000}" for i in range(3500)]  # ~100 kB of JSON
TF_CONFIG_CASES = [  # (id, TF_CONFIG, the sentence)
    (
        "nested 60000 levels deep",
        "[" * 60000 + "]" * 60000,
        "TF_CONFIG is not a cluster's description (JSON nested thousands of levels deep).",
    ),
    (
        "100 kB job name",
        json.dumps({"cluster": {"x" * 100_000: ["a:1"]}, "task": {}}),
        f"TF_CONFIG's cluster has the job '{'x' * 50}... (100,000 characters)'; this program runs ps, worker and "
        "chief (or master) jobs, and an evaluator.",
    ),
    (
        "a bad host after 3500 good ones",
        json.dumps({"cluster": {"ps": ["ps:1"], "worker": HOSTS + ["nohost"]}, "task": {"type": "ps", "index": 0}}),
        f"TF_CONFIG's worker hosts '{','.join(HOSTS)[:50]}... ({len(','.join(HOSTS + ['nohost'])):,} characters)': "
        "'nohost' is not HOST:PORT (a port from 1 to 65535).",
    ),
    (
        "a port of 5000 digits",
        json.dumps({"cluster": {"ps": ["ps:" + "9" * 5000], "worker": ["w:1"]}, "task": {"type": "ps", "index": 0}}),
        "is not HOST:PORT (a port from 1 to 65535).",
    ),
    ("malformed", '{"cluster": {"ps": [' + '"a:1", ' * 14000, "TF_CONFIG is not valid JSON (Expecting value: line 1"),
]


@pytest.mark.parametrize("text,message", [case[1:] for case in TF_CONFIG_CASES], ids=[c[0] for c in TF_CONFIG_CASES])
def test_a_tf_config_too_large_or_too_deep_gets_one_short_sentence(text, message, tmp_path):
    # Linux passes at most 128 kB in one environment variable (a megabyte fails in execve), so the child gets
    # ~100 kB; the megabyte is read in-process below.
    sentence = refused("--steps", "1", "--logdir", tmp_path, env={**os.environ, "TF_CONFIG": text})
    assert message in sentence and len(sentence) < 300, sentence


def test_a_megabyte_of_tf_config_is_read_in_linear_time():
    hosts = [f"h{i}:{1 + i % 60000}" for i in range(100_000)]
    text = json.dumps({"cluster": {"ps": hosts[:1], "worker": hosts[1:]}, "task": {"type": "worker", "index": 0}})
    assert len(text) > 1 << 20
    assert (
        spec.this_task(None, None, None, None, text).num_workers == 99_999
    )  # checked for duplicates in quadratic time before
    duplicated = json.dumps({"cluster": {"ps": hosts[:1], "worker": hosts}, "task": {"type": "worker", "index": 0}})
    with pytest.raises(GraphNNError, match=r"^h0:1 is given to two tasks in TF_CONFIG"):
        spec.this_task(None, None, None, None, duplicated)
