"""Reading IDX files, the format of the MNIST files (and Fashion-MNIST's): a magic number that names
the element type and the number of dimensions, the sizes, then the elements, big-endian, optionally
gzipped (Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits",
http://yann.lecun.com/exdb/mnist/, section "File formats for the MNIST database").

A malformed file is refused with a ``DataError`` that names the file, what is wrong and what was
expected, before anything large is allocated.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import UserError, file_errors

_IDX_TYPES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}
_GZIP_MAGIC = b"\x1f\x8b"
# Deflate cannot compress better than about 1032:1, so a .gz of S bytes holds fewer than
# 1032 * S bytes; checking this first stops a corrupt header from making us allocate terabytes.
_DEFLATE_MAX_RATIO = 1032
CHUNK = 1 << 20  # bytes read at a time


class DataError(UserError, ValueError):
    """A data file is malformed: the message names the file, what is wrong and what was expected."""


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw, told apart by its first bytes) into a uint8 array.

    The header is a magic number (two zero bytes, a type code, the number of dimensions) followed
    by each dimension's size as a big-endian uint32; the payload is the row-major data, and its
    length must equal the product of the sizes exactly. Only type 0x08 (unsigned byte) is read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    with file_errors("read", path):  # e.g. no read permission: a sentence naming the file
        compressed = is_gzip(path)
        try:
            with (gzip.open if compressed else open)(path, "rb") as f:
                shape = read_idx_header(f, path)
                flat = _read_idx_payload(f, path, shape, compressed)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise DataError(
                f"{path}: the gzip stream is truncated or corrupt ({err}); expected a complete "
                "gzip file - download it again"
            ) from err
    return flat.reshape(shape)


def is_gzip(path: Path) -> bool:
    # Told apart by content, not by name: an IDX file starts with 0x00 0x00, a gzip file never does.
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def read_idx_header(f, path: Path) -> tuple[int, ...]:
    magic = f.read(4)
    if len(magic) < 4:
        raise DataError(f"{path}: only {len(magic)} bytes, too short for the 4-byte IDX magic number")
    if magic[0] != 0 or magic[1] != 0:
        raise DataError(
            f"{path}: bad magic number 0x{magic.hex()}: an IDX file starts with two zero bytes; "
            "this is not an IDX file"
        )
    type_code, ndim = magic[2], magic[3]
    if type_code != 0x08:
        name = _IDX_TYPES.get(type_code, "unknown")
        raise DataError(
            f"{path}: IDX type code 0x{type_code:02x} ({name}) is not supported; "
            "expected 0x08 (uint8)"
        )
    if ndim == 0:
        raise DataError(f"{path}: the IDX header declares 0 dimensions; expected at least 1")
    sizes = f.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DataError(
            f"{path}: the header declares {ndim} dimensions ({4 * ndim} bytes of sizes) "
            f"but the file ends after {len(sizes)} of them"
        )
    return struct.unpack(f">{ndim}I", sizes)


def _read_idx_payload(f, path: Path, shape: tuple[int, ...], compressed: bool) -> np.ndarray:
    expected = int(np.prod(shape, dtype=object))
    header = 4 + 4 * len(shape)
    on_disk = path.stat().st_size
    if not compressed and on_disk - header != expected:
        raise _payload_error(path, shape, expected, on_disk - header)
    if compressed and expected > _DEFLATE_MAX_RATIO * on_disk:
        raise DataError(
            f"{path}: header shape {shape} needs {expected} payload bytes, more than a "
            f"{on_disk}-byte gzip file can hold; the file is truncated or its header is corrupt"
        )
    flat = np.empty(expected, dtype=np.uint8)
    got = _read_into(f, flat)
    extra = _count_rest(f)
    if got != expected or extra:
        raise _payload_error(path, shape, expected, got + extra)
    return flat


def _payload_error(path: Path, shape, expected: int, actual: int) -> DataError:
    what = "too short" if actual < expected else "has trailing bytes"
    return DataError(
        f"{path}: payload {what}: header shape {shape} needs exactly {expected} bytes, "
        f"found {actual}"
    )


def _read_into(f, buffer: np.ndarray) -> int:
    """Fill `buffer` from `f`; return how many bytes arrived before end of file."""
    view = memoryview(buffer)
    got = 0
    while got < len(view):
        # At most 1 MiB a call: gzip decompresses a whole request into a temporary bytes object
        # first, which for one 47 MB request would double the memory the images need.
        n = f.readinto(view[got:got + (1 << 20)])
        if not n:
            break
        got += n
    return got


def _count_rest(f) -> int:
    count = 0
    while chunk := f.read(CHUNK):
        count += len(chunk)
    return count
