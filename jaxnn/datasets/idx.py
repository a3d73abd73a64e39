"""MNIST-style IDX files (plain or gzip) read from a local folder; nothing is downloaded.

The files are verified, not trusted: a missing file, a truncated one (raw or
gzip), one that is not IDX, images and labels that do not match, or NaN/inf
pixels raise ``ValueError`` naming the file and what to do.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from jaxnn.core.validate import MissingFileError
from jaxnn.core.validate_data import first_bad_column
from jaxnn.datasets.core import Dataset, assemble, check_dtype, is_integral
from jaxnn.datasets.files import existing_file

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_IDX_CLASSES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                      "Shirt", "Sneaker", "Bag", "Ankle boot"),
}


def read_idx(path) -> np.ndarray:
    """Read one IDX file (plain or gzip) into an array of its native shape.

    Header: 2 zero bytes, a dtype code (0x08 uint8 ... 0x0E float64), the number
    of dims, then each dim as a big-endian uint32; the data follow big-endian.

    Args:
      path: the IDX file, plain or gzip-compressed.

    Returns:
      The array, e.g. (m, 28, 28) uint8 images or (m,) uint8 labels.

    Raises:
      ValueError: the file is missing, a folder, truncated (raw or gzip), or not IDX.

    >>> import gzip, pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "labels-idx1-ubyte.gz"
    ...     _ = path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])))
    ...     print(read_idx(path))
    [7 2 1]
    """
    path = existing_file(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
            raise ValueError(f"{path}: the gzip data are truncated or corrupt ({err}); "
                             "download the file again.") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise ValueError(f"{path}: bad IDX magic number {raw[:4].hex() or '(empty)'}; "
                         "expected 00 00 <dtype 08/09/0b/0c/0d/0e> <ndim>. Is it really an IDX "
                         "file (plain or .gz), not an HTML page or a truncated download?")
    ndim, dt = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    dims = [int(d) for d in np.frombuffer(raw, ">u4", ndim, 4)] if len(raw) >= 4 + 4 * ndim \
        else None
    expected = None if dims is None else 4 + 4 * ndim + math.prod(dims) * dt.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: header says dims {dims} ({expected} bytes) but the file has "
                         f"{len(raw)} bytes; it is truncated or corrupt.")
    data = np.frombuffer(raw, dtype=dt, offset=4 + 4 * ndim).reshape(dims)
    return data.astype(dt.newbyteorder("="))


def _find_idx(folder: Path, base: str) -> Path:
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    raise MissingFileError(f"{base} (or {base}.gz) not found in {folder}. load_idx never "
                           f"downloads: put the four files {', '.join(_IDX_FILES)} "
                           "(optionally .gz) in that folder.")


def load_idx(folder, *, kind: str = "mnist", dtype=np.float32,
             name: str | None = None) -> Dataset:
    """Load MNIST / Fashion-MNIST IDX files from a local folder (official split).

    Pixels are scaled to [0, 1] and then standardised with training stats.
    Returns X_*: (784, m_*) and one-hot Y_*: (10, m_*) (60000 / 10000 for the
    full sets).

    Args:
      folder: the folder holding the four IDX files (each plain or .gz).
      kind: "mnist" or "fashion_mnist" (the class names).
      dtype: the floating dtype of the returned arrays.
      name: the data set's name (default: ``kind``).

    Returns:
      The Dataset, X_*: (n_x, m_*), Y_*: (10, m_*).

    Raises:
      MissingFileError: the folder or one of the files is missing (a ``ValueError`` and a
        ``FileNotFoundError``).
      ValueError: a file is truncated or not IDX,
        images and labels do not match, labels are not 0..9, or pixels hold NaN/inf.

    >>> load_idx("no/such/folder")
    Traceback (most recent call last):
    ...
    jaxnn.core.validate.MissingFileError: no/such/folder does not exist...
    """
    if kind not in _IDX_CLASSES:
        raise ValueError(f"unknown kind {kind!r}; valid: {', '.join(_IDX_CLASSES)}.")
    dtype = check_dtype(dtype)
    folder = Path(folder)
    if not folder.is_dir():
        error = ValueError if folder.exists() else MissingFileError
        raise error(f"{folder} " + ("is a file, not a folder" if folder.exists()
                                    else "does not exist") + "; pass the folder holding "
                    f"the IDX files ({', '.join(_IDX_FILES)}).")
    files = [_find_idx(folder, b) for b in _IDX_FILES]
    img_tr, lab_tr, img_te, lab_te = (read_idx(f) for f in files)
    parts = []
    for split, images, labels, f in (("train", img_tr, lab_tr, files[0]),
                                      ("t10k", img_te, lab_te, files[2])):
        if images.ndim < 2 or labels.ndim != 1 or not 0 < images.shape[0] == labels.shape[0]:
            raise ValueError(f"{split}: images {images.shape} and labels {labels.shape} do "
                             "not match: need (m, rows, cols) images and (m,) labels.")
        if not is_integral(labels) or labels.min() < 0 or labels.max() > 9:
            raise ValueError(f"{split} labels must be integers 0..9, found "
                             f"{labels.min()}..{labels.max()}.")
        pixels = images.reshape(images.shape[0], -1)
        first_bad_column(str(f), pixels.T)  # float IDX files can hold NaN/inf
        parts.append(pixels.astype(dtype) / dtype.type(255))
        parts.append(labels.astype(np.int64))
    if parts[0].shape[1] != parts[2].shape[1]:
        raise ValueError(f"train images have {parts[0].shape[1]} pixels, test images "
                         f"{parts[2].shape[1]}; they must be the same size.")
    return assemble(parts[0], parts[2], parts[1], parts[3], task="multiclass",
                    classes=np.arange(10), feature_names=[f"pixel{j}" for j in range(
                        parts[0].shape[1])], class_names=_IDX_CLASSES[kind], dtype=dtype,
                    name=kind if name is None else name)
