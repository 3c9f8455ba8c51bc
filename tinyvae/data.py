"""Datasets for tinyvae: reading IDX files, splitting them, and making float batches.

Images live in memory as uint8, exactly as stored; a float batch in [0, 1] is made one batch at a
time by `to_float`, so the training set costs 47 MB rather than 188 MB (float32) or 376 MB (float64).

Sources:
- The IDX format and the MNIST files: Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of
  handwritten digits", http://yann.lecun.com/exdb/mnist/ (section "File formats for the MNIST
  database"). Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017, arXiv:1708.07747) uses the same names
  and format, so `load_split` reads it too.
- Binarized MNIST for a Bernoulli decoder: a pixel is on with probability equal to its grey level.
  "static": one sample fixed for good (Salakhutdinov & Murray, "On the quantitative analysis of
  deep belief networks", ICML 2008, sec. 5); "dynamic": a fresh sample every time a batch is drawn
  (Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016, sec. 5.1).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# reading the files is idx.py's; read_idx and DataError are part of this module's face
from .idx import CHUNK as _CHUNK, DataError, is_gzip, read_idx, read_idx_header

__all__ = [
    "BINARIZE_MODES",
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_MIRRORS",
    "DataError",
    "Dataset",
    "DownloadError",
    "binarize_static",
    "bundled_mnist_dir",
    "download_mnist",
    "epoch_permutation",
    "load_dataset",
    "load_split",
    "read_idx",
    "to_float",
]

# Names without ".gz": a folder may hold either `name.gz` or the decompressed `name`.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# md5 of the *decompressed* bytes: the .gz wrappers differ from source to source, the contents do not.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

# Base URLs serving `<name>.gz`, tried in order.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

BINARIZE_MODES = ("none", "static", "dynamic")


class DownloadError(OSError):
    """No mirror gave a good copy of a file; the message lists every mirror and why it failed."""


# ---------------------------------------------------------------------------------------------
# Splits and datasets


def bundled_mnist_dir() -> Path:
    """The folder holding the copy of MNIST that ships inside the package."""
    return Path(__file__).parent / "datasets" / "mnist"


def load_split(split: str, data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """Load one split ("train" or "test") as (images (N, D) uint8, labels (N,) uint8).

    `data_dir` is any folder holding files with the MNIST names, each as `name.gz` or `name`;
    None means the bundled MNIST. Images are flattened row-major: D = rows * cols.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(MNIST_FILES)}")
    folder = bundled_mnist_dir() if data_dir is None else Path(data_dir)
    if folder.is_file():
        raise DataError(f"--data {folder}: is a file; expected a folder holding the MNIST-format IDX files")
    image_name, label_name = MNIST_FILES[split]
    images_path = _find_data_file(folder, image_name, bundled=data_dir is None)
    labels_path = _find_data_file(folder, label_name, bundled=data_dir is None)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path}: images have shape {images.shape}; expected 3 dims (N, rows, cols)")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: labels have shape {labels.shape}; expected 1 dim (N,)")
    if len(images) == 0:
        raise DataError(f"{images_path}: the {split} split holds 0 images (header shape {images.shape}); "
                        f"expected at least one")
    if len(images) != len(labels):
        raise DataError(
            f"{split} split in {folder}: {len(images)} images in {images_path.name} but "
            f"{len(labels)} labels in {labels_path.name}; expected equal counts"
        )
    return images.reshape(len(images), -1), labels  # (N, D), (N,)


def _find_data_file(folder: Path, name: str, bundled: bool) -> Path:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    if bundled:
        hint = "the bundled copy is missing from this install; reinstall tinyvae"
    else:
        hint = (
            "pass --data DIR naming a folder that holds the MNIST-format files, or fetch MNIST "
            f"with tinyvae.data.download_mnist({str(folder)!r})"
        )
    raise FileNotFoundError(f"neither {name}.gz nor {name} found in {folder}: {hint}")


@dataclass(repr=False)
class Dataset:
    """Train, validation and test arrays, uint8 as stored: x is (N, D), y is (N,).

    The validation arrays may be empty, of shape (0, D) and (0,). `image_shape` is (rows, cols)
    with rows * cols == D; left as None it is taken to be square.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    image_shape: tuple[int, int] | None = None

    def __post_init__(self):
        dim = self.train_x.shape[-1]
        for name in ("train", "val", "test"):
            _check_pair(name, getattr(self, f"{name}_x"), getattr(self, f"{name}_y"), dim)
        if self.image_shape is None:
            side = int(round(dim**0.5))
            self.image_shape = (side, side) if side * side == dim else (1, dim)
        if int(np.prod(self.image_shape)) != dim:
            raise ValueError(f"image_shape {self.image_shape} does not have {dim} pixels")
        self.image_shape = tuple(int(s) for s in self.image_shape)

    @property
    def input_dim(self) -> int:
        """D, the number of pixels per example."""
        return int(self.train_x.shape[1])

    def __repr__(self) -> str:
        return (
            f"Dataset(train={len(self.train_x)}, val={len(self.val_x)}, test={len(self.test_x)}, "
            f"image_shape={self.image_shape})"
        )


def _check_pair(name: str, x: np.ndarray, y: np.ndarray, dim: int) -> None:
    if x.dtype != np.uint8 or y.dtype != np.uint8:
        raise ValueError(
            f"Dataset {name}_x/{name}_y have dtypes {x.dtype}/{y.dtype}; expected uint8 "
            "(floats are made per batch by to_float)"
        )
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or x.shape[1] != dim:
        raise ValueError(
            f"Dataset {name}_x has shape {x.shape} and {name}_y {y.shape}; expected (N, {dim}) and (N,)"
        )


def load_dataset(data_dir=None, validation: int = 0, seed: int = 0) -> Dataset:
    """Load train and test; move `validation` training examples, chosen with `seed`, to val.

    The split is a pure function of (data, validation, seed), and both parts keep the files' order.
    """
    train_x, train_y = load_split("train", data_dir)
    test_x, test_y = load_split("test", data_dir)
    n_train = len(train_x)
    if isinstance(validation, bool) or not isinstance(validation, (int, np.integer)):
        raise ValueError(f"validation must be an int count of examples, got {validation!r}")
    if not 0 <= validation < n_train:
        raise ValueError(f"validation must be in [0, {n_train}) (the training set size), got {validation}")
    order = np.random.default_rng(seed).permutation(n_train)
    val_idx, keep_idx = np.sort(order[:validation]), np.sort(order[validation:])
    if validation:
        val_x, val_y = train_x[val_idx], train_y[val_idx]
        train_x, train_y = train_x[keep_idx], train_y[keep_idx]
    else:
        val_x = np.empty((0, train_x.shape[1]), dtype=np.uint8)
        val_y = np.empty((0,), dtype=np.uint8)
    shape = _image_shape(data_dir)
    return Dataset(train_x, train_y, val_x, val_y, test_x, test_y, image_shape=shape)


def _image_shape(data_dir) -> tuple[int, int]:
    """(rows, cols) from the header of the test images, without reading the pixels."""
    folder = bundled_mnist_dir() if data_dir is None else Path(data_dir)
    path = _find_data_file(folder, MNIST_FILES["test"][0], bundled=data_dir is None)
    with (gzip.open if is_gzip(path) else open)(path, "rb") as f:
        shape = read_idx_header(f, path)
    return shape[1], shape[2]


# ---------------------------------------------------------------------------------------------
# From uint8 to floats, and the order of examples


def binarize_static(images: np.ndarray, seed: int) -> np.ndarray:
    """One fixed Bernoulli sample of `images`: a pixel becomes 255 with probability pixel / 255, else 0.

    The result is uint8 in {0, 255}, so `to_float` maps it to {0., 1.} unchanged. Use a different
    seed per split, or the splits share their noise.
    """
    images = _check_uint8(images, "binarize_static")
    rng = np.random.default_rng(seed)
    out = np.empty(images.shape, dtype=np.uint8)
    source, target = images.reshape(-1), out.reshape(-1)
    # Chunks bound the float32 scratch; the stream of draws is the same as in one call.
    for start in range(0, source.size, _CHUNK):
        block = source[start : start + _CHUNK]
        on = rng.random(block.shape, dtype=np.float32) * np.float32(255) < block
        np.multiply(on, np.uint8(255), out=target[start : start + _CHUNK], dtype=np.uint8)
    return out


def to_float(batch: np.ndarray, binarize: str = "none", rng=None, dtype=np.float32, out=None) -> np.ndarray:
    """Turn a uint8 batch into floats in [0, 1], of the same shape, optionally into `out`.

    "none" and "static" give batch / 255 ("static" data was binarized once at load by
    `binarize_static`). "dynamic" gives a fresh Bernoulli sample, 1. with probability batch / 255,
    drawn from the caller's `rng` (a numpy Generator).
    """
    if binarize not in BINARIZE_MODES:
        raise ValueError(f"unknown binarize mode {binarize!r}; expected one of {BINARIZE_MODES}")
    batch = _check_uint8(batch, "to_float")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"to_float dtype must be float32 or float64, got {dtype}")
    if out is None:
        out = np.empty(batch.shape, dtype=dtype)
    elif out.shape != batch.shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(
            f"out has shape {out.shape} and dtype {out.dtype}; expected a C-contiguous "
            f"{batch.shape} array of {dtype}"
        )
    if binarize != "dynamic":
        # Multiplying by a float32 reciprocal keeps the arithmetic in `dtype`: no float64 temporary.
        return np.multiply(batch, dtype.type(1.0 / 255.0), out=out, dtype=dtype)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"binarize='dynamic' needs rng=np.random.default_rng(...), got {rng!r}")
    # u < batch / 255 is tested as 255 u < batch, which needs no second float buffer.
    rng.random(dtype=dtype, out=out)
    np.multiply(out, dtype.type(255.0), out=out)
    return np.less(out, batch, out=out)


def _check_uint8(images, caller: str) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"{caller} expects uint8 images (0-255), got dtype {images.dtype}")
    return images


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the n examples in epoch `epoch`: a pure function of (n, seed, epoch).

    No generator state is carried between epochs, so training resumed at any epoch visits the
    examples in exactly the order an uninterrupted run would.
    """
    for name, value in (("n", n), ("seed", seed), ("epoch", epoch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"epoch_permutation: {name} must be a non-negative int, got {value!r}")
    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(n)).astype(np.int64, copy=False)


# ---------------------------------------------------------------------------------------------
# Downloading


def download_mnist(dest_dir, mirrors=MNIST_MIRRORS, md5=MNIST_MD5, files=None, timeout: float = 30.0) -> Path:
    """Download `<name>.gz` for each name in `files` (default: all of `md5`) into `dest_dir`.

    Each mirror is tried in order until one gives a file whose *decompressed* bytes have the md5
    in `md5[name]`; the decompressed bytes are checked because the .gz wrappers differ between
    sources while the contents do not. A file is written to a temporary name in `dest_dir` and
    renamed only once verified, so no partial file is ever left under the real name. Files already
    present and valid are not downloaded again. Returns `dest_dir` as a Path, ready for load_split.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    names = list(md5) if files is None else list(files)
    unknown = [name for name in names if name not in md5]
    if unknown:
        raise ValueError(f"no md5 known for {unknown}; pass md5={{name: md5-of-decompressed-bytes}}")
    if not mirrors:
        raise ValueError("download_mnist needs at least one mirror URL")
    for name in names:
        target = dest / f"{name}.gz"
        if target.is_file() and _gunzip_md5(target) == md5[name]:
            continue
        _download_one(name, target, mirrors, md5[name], timeout)
    return dest


def _download_one(name: str, target: Path, mirrors, want_md5: str, timeout: float) -> None:
    failures = []
    for base in mirrors:
        url = (base if base.endswith("/") else base + "/") + f"{name}.gz"
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, timeout)
            got_md5 = _gunzip_md5(Path(tmp))
            if got_md5 == want_md5:
                os.replace(tmp, target)
                return
            if got_md5 is None:
                failures.append(f"{url}: not a complete gzip file")
            else:
                failures.append(f"{url}: md5 of decompressed bytes is {got_md5}, expected {want_md5}")
        except (OSError, http.client.HTTPException, ValueError) as err:
            failures.append(f"{url}: {type(err).__name__}: {err}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DownloadError(f"could not download {name}.gz from any mirror:\n  " + "\n  ".join(failures))


def _fetch(url: str, out, timeout: float) -> None:
    # Some servers refuse urllib's default User-Agent.
    request = urllib.request.Request(url, headers={"User-Agent": "tinyvae"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        while chunk := response.read(_CHUNK):
            out.write(chunk)
        # read(n) stops quietly at a dropped connection; the count still owed tells us.
        owed = getattr(response, "length", None)
        if owed:
            raise http.client.IncompleteRead(b"", owed)


def _gunzip_md5(path: Path) -> str | None:
    """md5 of the decompressed contents of a .gz file, or None if it is not a complete gzip file."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except (EOFError, OSError, zlib.error):
        return None
    return digest.hexdigest()
