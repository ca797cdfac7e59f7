"""A reader for the IDX format that MNIST (and Fashion-MNIST, KMNIST, ...) is shipped in.

An IDX file is: two zero bytes, a dtype code, the number of dimensions, one big-endian
uint32 per dimension, then the payload in big-endian order.  See http://yann.lecun.com/exdb/mnist/.
"""

import gzip
import math
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


# The largest payload read (a header's dimensions times its item size), checked before it is read: EMNIST's
# largest set is 547 MB; a header that claims more is a mistake, and a .gz cannot be trusted to stop in time.
MAX_PAYLOAD_BYTES = 1 << 30


def read_bytes(path):
    """The IDX content of the file, gunzipped when the name ends in .gz; no more of it than its header announces
    (and one byte to tell a longer file), so that a file that goes on, or a gzip bomb, never fills the memory."""
    try:
        with gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb") as f:
            head = f.read(4)
            head += f.read(4 * head[3]) if len(head) == 4 else b""
            expected = header(head, str(path))[3]
            if expected > MAX_PAYLOAD_BYTES:
                raise GraphNNError(
                    f"{path}: the header claims {expected:,} bytes of data, more than the {MAX_PAYLOAD_BYTES:,} "
                    "graph_nn reads (is its count of items right?)."
                )
            return head + f.read(expected + 1)
    except FileNotFoundError:
        raise GraphNNError(f"{path}: file not found.") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise GraphNNError(f"{path}: not a complete gzip file ({e}).") from None
    except OSError as e:
        raise GraphNNError(f"{path}: cannot be read ({e.strerror or e}).") from None


def header(content, name):
    """(header size, shape, dtype, payload bytes) of IDX content, every header field checked."""
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
    return header_size, shape, dtype, math.prod(shape) * dtype.itemsize  # Python's integers: no overflow


def parse_idx(content, name="IDX data"):
    """Parses IDX bytes into a numpy array in native byte order, checking every header field."""
    header_size, shape, dtype, expected = header(content, name)
    payload = len(content) - header_size
    needs = f"the header ({'x'.join(map(str, shape))} {dtype.name}) needs"
    if payload > expected:
        raise GraphNNError(f"{name}: payload is longer than the {expected} bytes {needs}.")
    if payload < expected:
        raise GraphNNError(f"{name}: payload is {payload} bytes but {needs} {expected}.")
    array = np.frombuffer(content, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path):
    return parse_idx(read_bytes(path), name=str(path))
