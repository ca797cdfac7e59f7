"""A reader for the IDX format that MNIST (and Fashion-MNIST, KMNIST, ...) is shipped in.

An IDX file is: two zero bytes, a dtype code, the number of dimensions, one big-endian
uint32 per dimension, then the payload in big-endian order.  See http://yann.lecun.com/exdb/mnist/.
"""

import gzip
import struct
import zlib

import numpy as np

from graph_nn.core.errors import GraphNNError

DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_bytes(path):
    """The file's content, gunzipped when the name ends in .gz."""
    try:
        if str(path).endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise GraphNNError(f"{path}: file not found.") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise GraphNNError(f"{path}: not a complete gzip file ({e}).") from None
    except OSError as e:
        raise GraphNNError(f"{path}: cannot be read ({e.strerror or e}).") from None


def parse_idx(content, name="IDX data"):
    """Parses IDX bytes into a numpy array in native byte order, checking every header field."""
    if len(content) < 4:
        raise GraphNNError(f"{name}: too short to be an IDX file ({len(content)} bytes).")
    zero1, zero2, dtype_code, ndim = struct.unpack(">BBBB", content[:4])
    if zero1 or zero2 or dtype_code not in DTYPES or ndim == 0:
        raise GraphNNError(f"{name}: wrong magic number 0x{content[:4].hex()}, not an IDX file.")
    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise GraphNNError(f"{name}: truncated header ({len(content)} of {header_size} bytes).")
    shape = struct.unpack(f">{ndim}I", content[4:header_size])
    dtype = DTYPES[dtype_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(content) - header_size
    if payload != expected:
        dims = "x".join(map(str, shape))
        raise GraphNNError(f"{name}: payload is {payload} bytes but the header ({dims} {dtype.name}) needs {expected}.")
    array = np.frombuffer(content, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path):
    return parse_idx(read_bytes(path), name=str(path))
