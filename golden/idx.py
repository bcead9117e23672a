"""IDX files, the format MNIST and its relatives (Fashion-MNIST, KMNIST, ...) ship in.

An IDX file is a big-endian header, then the elements in row-major order. The header is a
magic number ``0x0000TTNN``, giving the element type ``TT`` and the number of dimensions
``NN``, followed by ``NN`` 32-bit sizes. Only unsigned bytes (type ``0x08``) are supported:
images with three dimensions (magic ``0x00000803``) and labels with one (``0x00000801``).
A file whose name ends in ``.gz`` is gzip-compressed.
"""

import gzip
import hashlib
import math
import zlib
from pathlib import Path

import numpy as np

__all__ = ["DatasetError", "IMAGES_MAGIC", "LABELS_MAGIC", "file_md5", "read_idx", "write_idx"]

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

_EXPECTED = {
    "images": (IMAGES_MAGIC, "an image file"),
    "labels": (LABELS_MAGIC, "a label file"),
}

# Every element type the format defines, to say what an unsupported file holds.
_TYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}


class DatasetError(ValueError):
    """A data set file or directory is missing, corrupt, or not what it claims to be.

    The message names the file (or directory) and the problem.
    """


def file_md5(path):
    """Return the MD5 of the file at ``path`` as a lowercase hex string."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "md5").hexdigest()


def _describe_magic(magic):
    if magic >> 16:
        return "not an IDX file"
    type_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    type_name = _TYPE_NAMES.get(type_code, f"unknown type 0x{type_code:02X}")
    return f"{type_name} with {ndim} dimension{'s' * (ndim != 1)}"


def read_idx(path, kind, md5=None):
    """Read an IDX file of unsigned bytes, checking it against its own header.

    Parameters
    ----------
    path : str or pathlib.Path
        The file; gzip-compressed if its name ends in ``.gz``.
    kind : {"images", "labels"}
        What the file must hold: ``(N, H, W)`` images or ``(N,)`` labels.
    md5 : str, optional
        Expected MD5 of the file as stored (that is, of the compressed bytes for ``.gz``).

    Returns
    -------
    numpy.ndarray
        A writable ``uint8`` array of the shape the header declares.

    Raises
    ------
    DatasetError
        If the file cannot be read, fails the MD5 check, is not a valid gzip stream, has
        the wrong magic number, or holds fewer or more bytes than its header declares.
    """
    path = Path(path)
    expected_magic, what = _EXPECTED[kind]
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{path}: cannot read: {error.strerror or error}") from None
    if md5 is not None:
        actual_md5 = hashlib.md5(data).hexdigest()
        if actual_md5 != md5.lower():
            raise DatasetError(f"{path}: md5 mismatch: expected {md5.lower()}, got {actual_md5}")
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise DatasetError(f"{path}: not a gzip file / corrupt gzip stream ({error})") from None

    if len(data) < 4:
        raise DatasetError(f"{path}: truncated: {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DatasetError(f"{path}: bad magic 0x{magic:08X} ({_describe_magic(magic)}; "
                           f"expected 0x{expected_magic:08X} for {what})")
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DatasetError(f"{path}: truncated: {len(data)} bytes, too short for a "
                           f"{header_size}-byte IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    declared, present = math.prod(shape), len(data) - header_size
    layout = "x".join(map(str, shape))
    if present < declared:
        raise DatasetError(f"{path}: truncated: header declares {layout} = {declared} bytes, "
                           f"file has {present}")
    if present > declared:
        raise DatasetError(f"{path}: {present - declared} trailing bytes after the {layout} = "
                           f"{declared} bytes the header declares")
    return np.frombuffer(data, np.uint8, count=declared, offset=header_size).reshape(shape).copy()


def write_idx(path, array):
    """Write a ``uint8`` array as an IDX file, gzip-compressed if ``path`` ends in ``.gz``.

    The output is byte-for-byte reproducible (the gzip timestamp is zero), so that
    generated fixtures have stable checksums.

    Parameters
    ----------
    path : str or pathlib.Path
    array : array_like of uint8
        ``(N, H, W)`` images, ``(N,)`` labels, or any other shape of up to 255 dimensions.
    """
    path = Path(path)
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8 or not 1 <= array.ndim <= 0xFF:
        raise ValueError(f"write_idx: expected a uint8 array of 1 to 255 dimensions, "
                         f"got {array.dtype} with shape {array.shape}")
    header = (0x0800 | array.ndim).to_bytes(4, "big")
    header += b"".join(size.to_bytes(4, "big") for size in array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
